//! The `local` provider: all-MiniLM-L6-v2 run in-process with candle on the CPU, computing what
//! sentence-transformers computes — WordPiece tokens truncated at 256, BERT, mean pooling over
//! the attention mask, L2 normalisation. Reads the model files once at load; inference runs on
//! tokio's blocking pool so it never stalls the async runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use futures::future::BoxFuture;
use mcp_fleet_encoder::{Encoder, mean_pool_normalised};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};
use tokio::sync::Semaphore;

use super::{DIMENSIONS, EmbedError, Embedder, LOCAL_MODEL_NAME, MODEL_FILES};

/// Word pieces per text, [CLS] and [SEP] included: sentence-transformers' `max_seq_length` for
/// this model (`sentence_bert_config.json`). Longer texts are cut, as sentence-transformers does.
pub const MAX_TOKENS: usize = 256;

/// Most tokens (texts × padded length) in one forward pass; bounds the memory of a batch
/// (attention scores grow with the square of the length).
const TOKEN_BUDGET: usize = 8192;

/// all-MiniLM-L6-v2, loaded and ready.
pub struct LocalEmbedder {
    model: Arc<LoadedModel>,
    /// One forward pass per thread at a time; more would only queue on the CPU and hold memory.
    slots: Arc<Semaphore>,
}

struct LoadedModel {
    encoder: Encoder,
    tokenizer: Tokenizer,
    device: Device,
}

impl LocalEmbedder {
    /// Loads the model from `dir` (`config.json`, `tokenizer.json`, `model.safetensors`).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let started = std::time::Instant::now();
        let missing: Vec<&'static str> = MODEL_FILES.into_iter().filter(|f| !dir.join(f).is_file()).collect();
        if !missing.is_empty() {
            return Err(EmbedError::ModelMissing { dir: dir.to_path_buf(), missing });
        }
        let invalid = |reason: String| EmbedError::ModelInvalid { dir: dir.to_path_buf(), reason };

        let config: Config = std::fs::read(dir.join("config.json"))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| invalid(format!("config.json: {e}")))?;
        if config.hidden_size != DIMENSIONS {
            return Err(invalid(format!(
                "config.json says hidden_size {}, but the database stores {DIMENSIONS} dimensions",
                config.hidden_size
            )));
        }

        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| invalid(format!("tokenizer.json: {e}")))?;
        // The file ships with truncation at 128 and padding to a fixed 128; sentence-transformers
        // overrides both per call (truncate at 256, pad to the longest text of the batch).
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| invalid(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);

        let device = Device::Cpu;
        // Read into memory rather than mmap: the workspace forbids `unsafe`, and the weights are
        // copied into tensors either way (about 90 MB), after which the buffer is dropped.
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| invalid(format!("model.safetensors: {e}")))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| invalid(format!("model.safetensors: {e}")))?;
        let encoder = Encoder::load(vb, &config).map_err(|e| invalid(format!("model.safetensors: {e}")))?;

        // The count the binary settled at start-up (`super::threads`): one forward pass per thread.
        let threads = candle_core::utils::get_num_threads();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(dir = %dir.display(), elapsed_ms, threads, "loaded {LOCAL_MODEL_NAME}");
        Ok(Self {
            model: Arc::new(LoadedModel { encoder, tokenizer, device }),
            slots: Arc::new(Semaphore::new(threads)),
        })
    }

    /// The directory `make model` fills, see [`super::default_model_dir`].
    pub fn default_dir() -> PathBuf {
        super::default_model_dir()
    }

    /// Embeds on the calling thread (CPU-bound: call from a blocking context).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.model.embed(texts)
    }
}

impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        LOCAL_MODEL_NAME
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let slot = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| EmbedError::Inference("the model is shutting down".into()))?;
            let model = self.model.clone();
            let texts = texts.to_vec();
            // The slot moves into the task, so a caller that gives up does not free it while the
            // CPU is still busy with its texts.
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                model.embed(&texts)
            })
            .await
            .map_err(|_| EmbedError::Inference("the embedding task panicked".into()))?
        })
    }
}

impl LoadedModel {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = if inputs.len() == 1 {
            vec![self.tokenizer.encode(inputs[0], true).map_err(tokenize_error)?]
        } else {
            self.tokenizer.encode_batch(inputs, true).map_err(tokenize_error)?
        };
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();

        // Shortest first, so each batch pads little; results go back to input order.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); ids.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len() && (end + 1 - start) * ids[order[end]].len() <= TOKEN_BUDGET {
                end += 1;
            }
            let batch: Vec<&[u32]> = order[start..end].iter().map(|&i| ids[i]).collect();
            let vectors = self.forward(&batch).map_err(|e| EmbedError::Inference(e.to_string()))?;
            for (&i, v) in order[start..end].iter().zip(vectors) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// One forward pass over texts padded to the longest; mean pooling over real tokens, then
    /// L2 normalisation (what sentence-transformers' Pooling and Normalize modules do).
    fn forward(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let len = batch.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; batch.len() * len];
        for (row, tokens) in batch.iter().enumerate() {
            ids[row * len..row * len + tokens.len()].copy_from_slice(tokens);
        }
        let lengths: Vec<usize> = batch.iter().map(|t| t.len()).collect();
        let ids = Tensor::from_vec(ids, (batch.len(), len), &self.device)?;
        let hidden = self.encoder.forward(&ids, &lengths)?;
        mean_pool_normalised(&hidden, &lengths)
    }
}

fn tokenize_error(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Inference(format!("tokenizing failed: {e}"))
}
