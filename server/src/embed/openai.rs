//! The `openai` provider: any OpenAI-compatible `POST {endpoint}/embeddings` — OpenAI itself and
//! servers that copy its API (Bearer token), or Azure OpenAI (`api-key` header and `api-version`
//! query parameter, chosen by setting `apiVersion`). Each request has a timeout; transient
//! failures (timeouts, connection errors, HTTP 429 and 5xx) are retried a bounded number of
//! times with jittered exponential backoff (honouring `Retry-After`), and a circuit breaker makes
//! callers fail fast while the service is down. Does network I/O.

use std::time::Duration;

use futures::future::BoxFuture;
use mcp_fleet_core::server_config::OpenAiSection;
use rand::Rng as _;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Serialize};

use super::breaker::{BreakerOptions, CircuitBreaker};
use super::{DIMENSIONS, EmbedError, Embedder, normalize};
use crate::clock::{self, SharedClock};

/// Model asked for when the configuration names none (OpenAI; Azure uses its deployment).
pub const DEFAULT_MODEL: &str = "text-embedding-3-small";
/// Environment variable holding the key when the configuration names none.
pub const DEFAULT_API_KEY_ENV: &str = "OPENAI_API_KEY";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Texts per request; larger calls are split. OpenAI accepts up to 2048.
pub const MAX_INPUTS_PER_REQUEST: usize = 256;
/// The longest wait between two attempts, whatever `Retry-After` asks for.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// An API key. Its `Debug` prints `***`, so it cannot leak through a log of the options.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Everything the provider needs, resolved (the key read from the environment, durations parsed).
#[derive(Clone, Debug)]
pub struct OpenAiOptions {
    /// Base URL; `/embeddings` is appended.
    pub endpoint: String,
    /// Sent as `model` (Azure ignores it and uses the deployment in the endpoint).
    pub model: String,
    /// Set for Azure OpenAI: sent as `api-version`, and the key goes in an `api-key` header.
    pub api_version: Option<String>,
    pub api_key: ApiKey,
    /// Sent as `dimensions` when set. Every answer must have [`DIMENSIONS`] numbers per vector.
    pub dimensions: Option<usize>,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts after the first, for transient failures only.
    pub max_retries: u32,
    /// First wait between attempts; doubles each time (with jitter), at most 8 s.
    pub backoff: Duration,
    pub breaker: BreakerOptions,
    /// The circuit breaker's clock (tests move a manual one).
    pub clock: SharedClock,
}

impl OpenAiOptions {
    /// Options for `endpoint` with the defaults (OpenAI style, Bearer `api_key`).
    pub fn new(endpoint: impl Into<String>, api_key: ApiKey) -> Self {
        Self {
            endpoint: endpoint.into(),
            model: DEFAULT_MODEL.into(),
            api_version: None,
            api_key,
            dimensions: Some(DIMENSIONS),
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff: Duration::from_millis(250),
            breaker: BreakerOptions::default(),
            clock: clock::system(),
        }
    }

    /// Resolves the configuration file's section: reads the key from the named environment
    /// variable and parses the timeout. Errors name the setting to fix, never a value.
    pub fn from_section(s: &OpenAiSection) -> Result<Self, EmbedError> {
        let key_env = s.api_key_env.as_deref().unwrap_or(DEFAULT_API_KEY_ENV);
        let key = std::env::var(key_env).ok().filter(|k| !k.trim().is_empty()).ok_or_else(|| {
            EmbedError::Config(format!(
                "the API key for the embeddings endpoint is missing: set environment variable {key_env} (or name another one in embeddings.openai.apiKeyEnv)"
            ))
        })?;
        let mut options = Self::new(s.endpoint.clone(), ApiKey::new(key.trim()));
        options.api_version = s.api_version.clone().filter(|v| !v.is_empty());
        if let Some(model) = s.model.clone().filter(|m| !m.is_empty()) {
            options.model = model;
        }
        // `dimensions` is sent when configured, and for OpenAI's text-embedding-3 models (which
        // otherwise answer with 1536 or 3072). Older models and many compatible servers reject it.
        options.dimensions = match s.dimensions {
            Some(d) => Some(d as usize),
            None if options.model.starts_with("text-embedding-3") => Some(DIMENSIONS),
            None => None,
        };
        if let Some(timeout) = &s.timeout {
            options.timeout = humantime::parse_duration(timeout).map_err(|e| {
                EmbedError::Config(format!("embeddings.openai.timeout {timeout:?} is not a duration: {e}"))
            })?;
        }
        if let Some(retries) = s.max_retries {
            options.max_retries = retries;
        }
        Ok(options)
    }

    fn validate(&self) -> Result<Url, EmbedError> {
        if let Some(d) = self.dimensions
            && d != DIMENSIONS
        {
            return Err(EmbedError::Config(format!(
                "embeddings.openai.dimensions is {d}, but the database column stores {DIMENSIONS}"
            )));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(600) {
            return Err(EmbedError::Config("embeddings.openai.timeout must be between 1ms and 10m".into()));
        }
        if self.max_retries > 10 {
            return Err(EmbedError::Config("embeddings.openai.maxRetries must be at most 10".into()));
        }
        if self.breaker.failure_threshold == 0 {
            return Err(EmbedError::Config("the circuit breaker threshold must be at least 1".into()));
        }
        // The endpoint is not echoed: it may carry credentials.
        let bad = || EmbedError::Config("embeddings.openai.endpoint is not an http(s) URL".into());
        let mut url = Url::parse(self.endpoint.trim_end_matches('/')).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(bad());
        }
        url.path_segments_mut().map_err(|_| bad())?.pop_if_empty().push("embeddings");
        if let Some(version) = &self.api_version {
            url.query_pairs_mut().append_pair("api-version", version);
        }
        HeaderValue::from_str(&self.api_key.0).map_err(|_| {
            EmbedError::Config("the embeddings API key contains characters not allowed in a header".into())
        })?;
        Ok(url)
    }
}

/// An OpenAI-compatible embeddings endpoint with timeout, retries and a circuit breaker.
pub struct OpenAiEmbedder {
    options: OpenAiOptions,
    url: Url,
    client: reqwest::Client,
    breaker: CircuitBreaker,
}

impl std::fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiEmbedder").field("model", &self.options.model).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    input: &'a [String],
    model: &'a str,
    encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    index: usize,
}

/// One failed attempt: the error, and how long the server asked us to wait.
struct Attempt {
    error: EmbedError,
    retry_after: Option<Duration>,
}

impl From<EmbedError> for Attempt {
    fn from(error: EmbedError) -> Self {
        Self { error, retry_after: None }
    }
}

impl OpenAiEmbedder {
    pub fn new(options: OpenAiOptions) -> Result<Self, EmbedError> {
        let url = options.validate()?;
        // reqwest is built without a default TLS crypto provider; ring is the project's only one.
        // Installing fails harmlessly when something else installed it first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("mcp-fleet-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EmbedError::Config(format!("cannot build the HTTP client: {}", e.without_url())))?;
        let breaker = CircuitBreaker::new(options.breaker, options.clock.clone());
        Ok(Self { options, url, client, breaker })
    }

    /// Whether the circuit breaker is failing requests fast right now (for readiness).
    pub fn is_circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    async fn embed_chunk(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut attempt = 0u32;
        loop {
            let permit = self.breaker.permit()?;
            match self.send(texts).await {
                Ok(vectors) => {
                    permit.succeeded();
                    return Ok(vectors);
                }
                Err(Attempt { error, retry_after }) if error.is_transient() => {
                    permit.failed();
                    if attempt >= self.options.max_retries {
                        return Err(error);
                    }
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt)).min(MAX_BACKOFF);
                    tracing::warn!(
                        error = %error,
                        attempt = attempt + 1,
                        wait_ms = wait.as_millis() as u64,
                        "embeddings request failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(Attempt { error, .. }) => {
                    // The service answered, so it is up; the request or the setup is wrong.
                    permit.succeeded();
                    return Err(error);
                }
            }
        }
    }

    /// `backoff × 2^attempt`, at most [`MAX_BACKOFF`], with the upper half jittered.
    fn backoff(&self, attempt: u32) -> Duration {
        let full = self.options.backoff.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF);
        let half = full / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    async fn send(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, Attempt> {
        let body = EmbeddingsRequest {
            input: texts,
            model: &self.options.model,
            encoding_format: "float",
            dimensions: self.options.dimensions,
        };
        let (name, value) = match &self.options.api_version {
            Some(_) => ("api-key", self.options.api_key.0.clone()),
            None => (AUTHORIZATION.as_str(), format!("Bearer {}", self.options.api_key.0)),
        };
        // Checked in `validate`; marked sensitive so that no debug output shows it.
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            EmbedError::Config("the embeddings API key contains characters not allowed in a header".into())
        })?;
        value.set_sensitive(true);
        let request = self.client.post(self.url.clone()).json(&body).header(name, value);
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let detail = read_limited(response, 4096).await.unwrap_or_default();
            let detail = String::from_utf8_lossy(&detail).replace(&self.options.api_key.0, "***");
            tracing::warn!(status = status.as_u16(), detail = %detail, "embeddings endpoint answered with an error");
            let error = match status.as_u16() {
                429 => EmbedError::RateLimited,
                408 => EmbedError::Timeout(self.options.timeout),
                s @ 500..=599 => EmbedError::Upstream(s),
                s => EmbedError::Rejected(s),
            };
            return Err(Attempt { error, retry_after });
        }
        // A vector of 384 floats is about 8 KB of JSON; allow generous room, not unbounded.
        let limit = 64 * 1024 + texts.len() * DIMENSIONS * 32;
        let bytes = read_limited(response, limit).await.map_err(|e| match e {
            ReadError::TooLarge => EmbedError::BadResponse(format!("more than {limit} bytes")).into(),
            ReadError::Transport(e) => self.transport_error(e),
        })?;
        Ok(parse_response(&bytes, texts.len())?)
    }

    fn transport_error(&self, e: reqwest::Error) -> Attempt {
        // reqwest's message names the URL; keep it out of errors and logs.
        let error = if e.is_timeout() {
            EmbedError::Timeout(self.options.timeout)
        } else if e.is_decode() {
            EmbedError::BadResponse("the body could not be read".into())
        } else {
            EmbedError::Unreachable
        };
        tracing::debug!(error = %e.without_url(), "embeddings request did not complete");
        error.into()
    }
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Checks an answer for `expected` texts: one vector per index, each [`DIMENSIONS`] long; returns
/// them in input order, L2-normalised.
fn parse_response(bytes: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let response: EmbeddingsResponse = serde_json::from_slice(bytes)
        .map_err(|e| EmbedError::BadResponse(format!("not an embeddings list ({})", json_problem(&e))))?;
    if response.data.len() != expected {
        return Err(EmbedError::BadResponse(format!("{} vectors for {expected} texts", response.data.len())));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
    for item in response.data {
        if item.embedding.len() != DIMENSIONS {
            return Err(EmbedError::Dimensions { expected: DIMENSIONS, got: item.embedding.len() });
        }
        let slot = out.get_mut(item.index).filter(|s| s.is_none()).ok_or_else(|| {
            EmbedError::BadResponse(format!("index {} is out of range or repeated", item.index))
        })?;
        let mut v = item.embedding;
        if !normalize(&mut v) {
            return Err(EmbedError::BadResponse("a vector of zeros".into()));
        }
        *slot = Some(v);
    }
    Ok(out.into_iter().flatten().collect())
}

/// What was wrong with a JSON body, in words that do not quote it.
fn json_problem(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected fields",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.options.model
    }

    fn circuit(&self) -> Option<super::CircuitState> {
        Some(self.breaker.circuit())
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(MAX_INPUTS_PER_REQUEST) {
                // The API rejects empty strings; a space embeds "nothing" just as well.
                let chunk: Vec<String> = chunk
                    .iter()
                    .map(|t| if t.trim().is_empty() { " ".to_owned() } else { t.clone() })
                    .collect();
                out.extend(self.embed_chunk(&chunk).await?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_json(index: usize, len: usize) -> String {
        let v: Vec<String> = (0..len).map(|i| format!("{}", (i + 1) as f32 / 100.0)).collect();
        format!(r#"{{"object":"embedding","index":{index},"embedding":[{}]}}"#, v.join(","))
    }

    #[test]
    fn answers_are_reordered_by_index_and_checked() {
        let body = format!(r#"{{"data":[{},{}]}}"#, vector_json(1, DIMENSIONS), vector_json(0, DIMENSIONS));
        let v = parse_response(body.as_bytes(), 2).unwrap();
        assert_eq!(v.len(), 2);
        let norm: f32 = v[0].iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);

        let dup = format!(r#"{{"data":[{},{}]}}"#, vector_json(0, DIMENSIONS), vector_json(0, DIMENSIONS));
        assert!(matches!(parse_response(dup.as_bytes(), 2), Err(EmbedError::BadResponse(_))));
        let short = format!(r#"{{"data":[{}]}}"#, vector_json(0, 1536));
        assert!(matches!(parse_response(short.as_bytes(), 1), Err(EmbedError::Dimensions { got: 1536, .. })));
        assert!(matches!(parse_response(b"{\"data\":", 1), Err(EmbedError::BadResponse(_))));
    }

    #[test]
    fn azure_style_puts_the_api_version_in_the_query() {
        let mut o =
            OpenAiOptions::new("https://r.openai.azure.com/openai/deployments/mini/", ApiKey::new("k"));
        o.api_version = Some("2024-10-21".into());
        let url = o.validate().unwrap();
        assert_eq!(
            url.as_str(),
            "https://r.openai.azure.com/openai/deployments/mini/embeddings?api-version=2024-10-21"
        );
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_endpoint() {
        let o = OpenAiOptions::new("ftp://user:secret@host/v1", ApiKey::new("k"));
        let msg = o.validate().unwrap_err().to_string();
        assert!(!msg.contains("secret") && msg.contains("endpoint"), "{msg}");
        let mut o = OpenAiOptions::new("http://127.0.0.1:1/v1", ApiKey::new("k"));
        o.dimensions = Some(1536);
        assert!(o.validate().unwrap_err().to_string().contains("1536"));
        assert_eq!(format!("{:?}", ApiKey::new("sk-secret")), "***");
    }

    #[test]
    fn a_missing_key_names_the_variable_not_a_value() {
        let section = OpenAiSection {
            endpoint: "http://127.0.0.1:1/v1".into(),
            api_key_env: Some("MCP_FLEET_TEST_SURELY_UNSET_KEY".into()),
            ..Default::default()
        };
        let msg = OpenAiOptions::from_section(&section).unwrap_err().to_string();
        assert!(msg.contains("MCP_FLEET_TEST_SURELY_UNSET_KEY"), "{msg}");
    }
}
