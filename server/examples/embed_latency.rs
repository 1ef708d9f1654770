//! Latency of embedding one short query with the local model, the current path against a frozen
//! copy of the first one (candle-transformers' `BertModel`, as `embed/local.rs` had it), run
//! interleaved in one process so that whatever else the machine does weighs on both alike.
//! Reads the model files; prints p50/p90 of each and their ratio, and the largest cosine
//! deviation between the two paths' vectors.
//!
//! ```sh
//! RAYON_NUM_THREADS=1 cargo run --release -p mcp-fleet-server --example embed_latency [rounds] [new|base]
//! ```
//! `rounds` (default 1) passes over the 200 queries; `new` or `base` runs only that path (for a
//! profiler).

use std::time::{Duration, Instant};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use mcp_fleet_server::embed::default_model_dir;
use mcp_fleet_server::embed::local::{LocalEmbedder, MAX_TOKENS};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// 200 short product questions: each thing asked for in five ways.
fn queries() -> Vec<String> {
    const THINGS: [&str; 40] = [
        "cordless drill",
        "garden hose",
        "circuit breaker",
        "LED bulb",
        "bathroom paint",
        "pipe wrench",
        "tile cutter",
        "safety glasses",
        "garage shelving",
        "outdoor electrical box",
        "extension cord",
        "leaf blower",
        "lawn mower",
        "ceiling fan",
        "kitchen faucet",
        "wood glue",
        "deck screws",
        "smoke detector",
        "door hinge",
        "window blinds",
        "patio heater",
        "water heater",
        "shop vacuum",
        "paint roller",
        "caulk gun",
        "stud finder",
        "ladder",
        "workbench",
        "tool box",
        "hand saw",
        "angle grinder",
        "toilet flapper",
        "shower head",
        "light switch",
        "motion sensor light",
        "weed killer",
        "potting soil",
        "snow shovel",
        "air filter",
        "thermostat",
    ];
    const ASKS: [&str; 5] = [
        "{}",
        "cheap {} for home use",
        "best {} for a small apartment",
        "heavy duty {} that lasts",
        "where can I find a {} under 50 dollars",
    ];
    ASKS.iter().flat_map(|ask| THINGS.iter().map(move |thing| ask.replace("{}", thing))).collect()
}

/// The first path, kept as it was: tokenizer, candle-transformers' BERT, pooling with tensor ops.
struct Baseline {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl Baseline {
    fn load(dir: &std::path::Path) -> anyhow::Result<Self> {
        let config: Config = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(anyhow::Error::msg)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(anyhow::Error::msg)?;
        tokenizer.with_padding(None);
        let device = Device::Cpu;
        let weights = std::fs::read(dir.join("model.safetensors"))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let bert = BertModel::load(vb, &config)?;
        Ok(Self { bert, tokenizer, device })
    }

    fn embed_one(&self, text: &str) -> anyhow::Result<Vec<f32>> {
        let encoding = self.tokenizer.encode(text, true).map_err(anyhow::Error::msg)?;
        let tokens = encoding.get_ids();
        let shape = (1, tokens.len());
        let ids = Tensor::from_vec(tokens.to_vec(), shape, &self.device)?;
        let mask = Tensor::from_vec(vec![1u32; tokens.len()], shape, &self.device)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &token_types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
        let mut rows = mean.broadcast_div(&norms)?.to_vec2::<f32>()?;
        rows.pop().ok_or_else(|| anyhow::anyhow!("no vector"))
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn cosine_deviation(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    1.0 - dot / (na * nb)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(1), |r| r.parse())?;
    let only = args.next();
    let (run_base, run_new) = match only.as_deref() {
        None => (true, true),
        Some("base") => (true, false),
        Some("new") => (false, true),
        Some(other) => anyhow::bail!("unknown path {other:?}: new or base"),
    };

    let dir = default_model_dir();
    let base = Baseline::load(&dir)?;
    let new = LocalEmbedder::load(&dir)?;
    let queries = queries();
    eprintln!(
        "{} queries x {rounds} rounds, candle threads {} (RAYON_NUM_THREADS={:?})",
        queries.len(),
        candle_core::utils::get_num_threads(),
        std::env::var("RAYON_NUM_THREADS").ok()
    );

    let embed_new = |q: &str| -> anyhow::Result<Vec<f32>> {
        let mut v = new.embed_blocking(&[q.to_owned()])?;
        v.pop().ok_or_else(|| anyhow::anyhow!("no vector"))
    };
    for q in queries.iter().take(10) {
        base.embed_one(q)?;
        embed_new(q)?;
    }

    let (mut base_times, mut new_times) = (Vec::new(), Vec::new());
    let mut worst = 0.0f64;
    for round in 0..rounds {
        for (i, q) in queries.iter().enumerate() {
            // A B, then B A: neither path always runs right after the other.
            let mut a = None;
            let mut b = None;
            for step in 0..2 {
                let base_turn = (step == 0) == ((i + round) % 2 == 0);
                if base_turn && run_base {
                    let t = Instant::now();
                    a = Some(base.embed_one(q)?);
                    base_times.push(t.elapsed());
                } else if !base_turn && run_new {
                    let t = Instant::now();
                    b = Some(embed_new(q)?);
                    new_times.push(t.elapsed());
                }
            }
            if let (Some(a), Some(b)) = (a, b) {
                worst = worst.max(cosine_deviation(&a, &b));
            }
        }
    }

    base_times.sort();
    new_times.sort();
    let report = |name: &str, t: &[Duration]| {
        if !t.is_empty() {
            println!(
                "{name:>8}: p50 {:>7.2} ms  p90 {:>7.2} ms  min {:>6.2} ms  (n={})",
                percentile(t, 50).as_secs_f64() * 1e3,
                percentile(t, 90).as_secs_f64() * 1e3,
                t[0].as_secs_f64() * 1e3,
                t.len()
            );
        }
    };
    report("baseline", &base_times);
    report("new", &new_times);
    if run_base && run_new {
        let ratio = |p| percentile(&new_times, p).as_secs_f64() / percentile(&base_times, p).as_secs_f64();
        println!("new/baseline: p50 {:.3}  p90 {:.3}", ratio(50), ratio(90));
        println!("largest cosine deviation new vs baseline: {worst:e}");
    }
    Ok(())
}
