//! The `local` provider with the real all-MiniLM-L6-v2 weights (`make model`): its vectors match
//! sentence-transformers' (reference vectors in tests/data, made by
//! scripts/embedding-reference.py), batching and truncation do not change them, inference stays
//! off the async runtime's threads, and a missing model is reported with the fix.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mcp_fleet_core::server_config::{EmbeddingProvider, EmbeddingsSection};
use mcp_fleet_server::embed::local::{LocalEmbedder, MAX_TOKENS};
use mcp_fleet_server::embed::{DIMENSIONS, EmbedError, Embedder, default_model_dir, embed_one, from_config};

fn model() -> &'static LocalEmbedder {
    static MODEL: OnceLock<LocalEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| LocalEmbedder::load(&default_model_dir()).unwrap_or_else(|e| panic!("{e}")))
}

#[derive(serde::Deserialize)]
struct Reference {
    produced_by: String,
    sentences: Vec<ReferenceSentence>,
}

#[derive(serde::Deserialize)]
struct ReferenceSentence {
    text: String,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/embedding_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference file")).expect("reference JSON")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn vectors_match_sentence_transformers_within_1e_4_cosine() {
    let reference = reference();
    let texts: Vec<String> = reference.sentences.iter().map(|s| s.text.clone()).collect();
    let vectors = model().embed(&texts).await.unwrap();
    let mut worst = 0.0f64;
    for (s, v) in reference.sentences.iter().zip(&vectors) {
        assert_eq!(v.len(), DIMENSIONS);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit length, got {norm}");
        let deviation = 1.0 - cosine(v, &s.embedding);
        worst = worst.max(deviation);
        assert!(
            deviation < 1e-4,
            "{:?}: cosine deviation {deviation:e} from {}",
            s.text,
            reference.produced_by
        );
    }
    eprintln!("max cosine deviation from sentence-transformers: {worst:e} ({})", reference.produced_by);
}

#[tokio::test]
async fn a_text_embeds_the_same_alone_as_in_a_padded_batch() {
    let reference = reference();
    let texts: Vec<String> = reference.sentences.iter().map(|s| s.text.clone()).collect();
    let batch = model().embed(&texts).await.unwrap();
    for (text, in_batch) in texts.iter().zip(&batch) {
        let alone = embed_one(model(), text).await.unwrap();
        let c = cosine(&alone, in_batch);
        assert!(1.0 - c < 1e-6, "{text:?}: alone vs batch cosine {c}");
    }
}

#[tokio::test]
async fn texts_are_cut_at_256_word_pieces() {
    let long = "sand the oak surface and brush on a coat of varnish ".repeat(40);
    let a = embed_one(model(), &long).await.unwrap();
    let b = embed_one(model(), &format!("{long} then hang a completely different picture of a boat"))
        .await
        .unwrap();
    assert!(1.0 - cosine(&a, &b) < 1e-6, "words past {MAX_TOKENS} word pieces must not count");
    let short = embed_one(model(), "sand the oak surface").await.unwrap();
    assert!(1.0 - cosine(&a, &short) > 1e-3, "but words inside the limit do");
}

#[tokio::test]
async fn related_texts_are_closer_than_unrelated_ones() {
    let v = model()
        .embed(&[
            "a garden hose for watering plants".to_owned(),
            "something to water my flowers".to_owned(),
            "a cordless drill for driving screws".to_owned(),
        ])
        .await
        .unwrap();
    let related = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(related > unrelated + 0.2, "related {related:.3}, unrelated {unrelated:.3}");
    assert!(model().embed(&[]).await.unwrap().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn inference_never_blocks_the_async_runtime() {
    // On a single-threaded runtime a ticker only advances while the runtime thread is free.
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(5));
            loop {
                interval.tick().await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let texts: Vec<String> = (0..48)
        .map(|i| format!("product {i}: {}", "a sturdy shovel for digging garden beds ".repeat(6)))
        .collect();
    let started = Instant::now();
    model().embed(&texts).await.unwrap();
    let took = started.elapsed();
    ticker.abort();
    let ticked = ticks.load(std::sync::atomic::Ordering::Relaxed);
    let expected = (took.as_millis() / 5) as u32;
    assert!(
        took < Duration::from_millis(50) || ticked * 2 >= expected,
        "the runtime thread was busy: {ticked} ticks of 5 ms in {took:?}"
    );
}

/// A fresh directory under the system temp dir, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mcpfleet-embed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_missing_model_names_the_directory_and_make_model() {
    let dir = ScratchDir::new("missing");
    let section = EmbeddingsSection {
        provider: Some(EmbeddingProvider::Local),
        model_dir: Some(dir.path().join("nowhere")),
        openai: None,
    };
    let err = from_config(&section).err().expect("no model there");
    assert!(matches!(err, EmbedError::ModelMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().join("nowhere").display().to_string()), "{msg}");
    assert!(msg.contains("make model") && msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn a_damaged_model_is_reported_as_invalid_not_missing() {
    let dir = ScratchDir::new("damaged");
    let real = default_model_dir();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(real.join(file), dir.path().join(file)).unwrap();
    }
    std::fs::write(dir.path().join("model.safetensors"), b"truncated download").unwrap();
    let err = LocalEmbedder::load(dir.path()).err().expect("damaged weights");
    assert!(matches!(err, EmbedError::ModelInvalid { .. }), "{err:?}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

/// Single-query latency (a short search query) over 40 runs after warm-up. Run with
/// `--nocapture` to see the numbers. The bound is on the fastest run, which other tests running
/// at the same time barely move, and it still catches an unoptimised candle (about 20x slower).
#[tokio::test]
async fn single_query_latency() {
    let query = "cordless drill for screws".to_owned();
    for _ in 0..3 {
        embed_one(model(), &query).await.unwrap();
    }
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..40 {
        let started = Instant::now();
        embed_one(model(), &query).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let (min, p50, p90) = (times[0], times[times.len() / 2], times[times.len() * 9 / 10]);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    eprintln!("single-query embedding latency ({profile}): p50 {p50:?}, p90 {p90:?}, min {min:?}");
    assert!(
        min < Duration::from_millis(150),
        "fastest of 40 took {min:?}: is candle built with opt-level 3?"
    );
}
