//! Embeddings: one trait, a local (candle) and an OpenAI-compatible provider. (In progress.)
