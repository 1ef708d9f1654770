//! Embeddings: text in, 384-dimensional unit vectors out, behind one trait with two providers —
//! `local` (all-MiniLM-L6-v2 run in-process with candle; no network) and `openai` (any
//! OpenAI-compatible `/embeddings` endpoint, Azure OpenAI included). `backfill` fills the product
//! embeddings table. The providers do file or network I/O; this module only chooses between them.

pub mod backfill;
mod breaker;
#[cfg(feature = "local-embeddings")]
pub mod local;
pub mod openai;
pub mod threads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use mcp_fleet_core::server_config::{EmbeddingProvider, EmbeddingsSection};

pub use backfill::{BackfillError, BackfillReport, backfill, product_text};
pub use breaker::{BreakerOptions, CircuitState};
pub use openai::{OpenAiEmbedder, OpenAiOptions};

/// Length of every vector, and of the `vector(384)` column in `retail.product_description_embeddings`.
pub const DIMENSIONS: usize = 384;

/// Name of the local model, also stored in the `model` column of the embeddings table.
pub const LOCAL_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The files the local provider needs in its model directory.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Why texts could not be embedded. `Display` is safe to show an MCP client: no API keys, no
/// endpoint URLs, no upstream response bodies (those go to the log, redacted).
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "the embedding model is not installed: {} lacks {}. Run `make model` (scripts/model.sh), or point embeddings.modelDir or MCP_FLEET_MODEL_DIR at a directory holding {}",
        dir.display(), missing.join(", "), MODEL_FILES.join(", ")
    )]
    ModelMissing { dir: PathBuf, missing: Vec<&'static str> },
    #[error("the embedding model in {} cannot be loaded: {reason}", dir.display())]
    ModelInvalid { dir: PathBuf, reason: String },
    #[error(
        "the `local` embeddings provider is not part of this build (cargo feature `local-embeddings`); configure provider `openai`"
    )]
    LocalNotCompiled,
    #[error("invalid embeddings configuration: {0}")]
    Config(String),
    #[error("computing embeddings failed: {0}")]
    Inference(String),
    #[error("the embeddings service did not answer within {:.1}s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("the embeddings service cannot be reached")]
    Unreachable,
    #[error("the embeddings service is rate-limiting requests; try again later")]
    RateLimited,
    #[error("the embeddings service failed (HTTP {0}); try again later")]
    Upstream(u16),
    #[error("the embeddings service refused the request (HTTP {0}); check the embeddings configuration")]
    Rejected(u16),
    #[error("the embeddings service sent an unexpected response: {0}")]
    BadResponse(String),
    #[error(
        "the embeddings service returned {got}-dimensional vectors, but the database stores {expected}; configure a model or `dimensions` that gives {expected}"
    )]
    Dimensions { expected: usize, got: usize },
    #[error("the embeddings service is unavailable after repeated failures; retrying in {}s", retry_in.as_secs().max(1))]
    CircuitOpen { retry_in: Duration },
}

impl EmbedError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::ModelMissing { .. } => "model_missing",
            Self::ModelInvalid { .. } => "model_invalid",
            Self::LocalNotCompiled => "not_compiled",
            Self::Config(_) => "config",
            Self::Inference(_) => "inference",
            Self::Timeout(_) => "timeout",
            Self::Unreachable => "unreachable",
            Self::RateLimited => "rate_limited",
            Self::Upstream(_) => "upstream",
            Self::Rejected(_) => "rejected",
            Self::BadResponse(_) => "bad_response",
            Self::Dimensions { .. } => "dimensions",
            Self::CircuitOpen { .. } => "circuit_open",
        }
    }

    /// Whether the same request may succeed later (worth a retry, and counted by the breaker).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Unreachable | Self::RateLimited | Self::Upstream(_))
    }
}

/// Turns texts into [`DIMENSIONS`]-long, L2-normalised vectors, one per text, in order.
pub trait Embedder: Send + Sync + 'static {
    /// The model's name, as stored in the embeddings table (e.g. `all-MiniLM-L6-v2`).
    fn model(&self) -> &str;
    /// Embeds `texts`; an empty slice gives an empty result without any work.
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
    /// The state of the circuit breaker in front of a remote provider; `None` for one that
    /// runs in-process.
    fn circuit(&self) -> Option<CircuitState> {
        None
    }
}

/// Embeds one text (a search query, typically).
pub async fn embed_one(embedder: &dyn Embedder, text: &str) -> Result<Vec<f32>, EmbedError> {
    let texts = [text.to_owned()];
    let mut vectors = embedder.embed(&texts).await?;
    vectors.pop().ok_or_else(|| EmbedError::BadResponse("no vector for the text".into()))
}

/// Builds the configured provider: `local` (the default) loads the model now, so a missing or
/// broken model fails at start-up; `openai` resolves its API key from the environment now and
/// makes no request until the first `embed`.
pub fn from_config(section: &EmbeddingsSection) -> Result<Arc<dyn Embedder>, EmbedError> {
    match section.provider.unwrap_or(EmbeddingProvider::Local) {
        EmbeddingProvider::Local => {
            let dir = section.model_dir.clone().unwrap_or_else(default_model_dir);
            load_local(dir)
        }
        EmbeddingProvider::Openai => {
            let Some(openai) = &section.openai else {
                return Err(EmbedError::Config(
                    "provider `openai` needs an `embeddings.openai` section with at least `endpoint`".into(),
                ));
            };
            Ok(Arc::new(OpenAiEmbedder::new(OpenAiOptions::from_section(openai)?)?))
        }
    }
}

#[cfg(feature = "local-embeddings")]
fn load_local(dir: PathBuf) -> Result<Arc<dyn Embedder>, EmbedError> {
    Ok(Arc::new(local::LocalEmbedder::load(&dir)?))
}

#[cfg(not(feature = "local-embeddings"))]
fn load_local(_dir: PathBuf) -> Result<Arc<dyn Embedder>, EmbedError> {
    Err(EmbedError::LocalNotCompiled)
}

/// Where `make model` puts the local model: `$MCP_FLEET_MODEL_DIR`, else
/// `~/.cache/mcp-fleet/models/all-MiniLM-L6-v2` (`$MCP_FLEET_CACHE/models/...` when that is set,
/// as in scripts/model.sh).
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MCP_FLEET_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("MCP_FLEET_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/nonexistent"))
                .join(".cache/mcp-fleet")
        });
    cache.join("models").join(LOCAL_MODEL_NAME)
}

/// Scales `v` to unit length in place; `false` when it has no direction (all zeros, or not finite).
pub(crate) fn normalize(v: &mut [f32]) -> bool {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm <= f32::EPSILON {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_shown_to_clients_name_the_fix() {
        let e = EmbedError::ModelMissing { dir: "/m".into(), missing: vec!["tokenizer.json"] };
        let msg = e.to_string();
        assert!(msg.contains("/m") && msg.contains("make model") && msg.contains("tokenizer.json"), "{msg}");
        let e = EmbedError::Dimensions { expected: 384, got: 1536 };
        assert!(e.to_string().contains("1536"), "{e}");
        assert!(EmbedError::Upstream(503).is_transient());
        assert!(!EmbedError::Rejected(401).is_transient());
    }

    #[test]
    fn normalize_gives_unit_length_and_refuses_zero() {
        let mut v = vec![3.0, 4.0];
        assert!(normalize(&mut v));
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(!normalize(&mut [0.0, 0.0]));
    }

    #[test]
    fn openai_without_its_section_is_a_config_error() {
        let section = EmbeddingsSection { provider: Some(EmbeddingProvider::Openai), ..Default::default() };
        let err = from_config(&section).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("embeddings.openai"), "{err}");
    }
}
