//! The issuer's signing keys: found through OIDC discovery (or a configured URI), cached with a
//! TTL, refreshed when a token names an unknown `kid` — at most once per interval, one fetch at a
//! time, so a flood of random `kid`s costs the identity provider one request. Does HTTP I/O; reads
//! time through the injected clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use tokio::sync::{Mutex, RwLock};

use crate::clock::{self, SharedClock};

/// Where the keys come from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    /// `<issuer>/.well-known/openid-configuration` names the JWKS URI.
    Discovery {
        issuer: String,
    },
    Uri(String),
}

#[derive(Clone, Debug)]
pub struct JwksOptions {
    /// How long fetched keys are trusted before a background refresh.
    pub ttl: Duration,
    /// Least time between two fetches triggered by unknown `kid`s.
    pub min_refresh_interval: Duration,
    pub timeout: Duration,
    /// CA certificates trusted besides the system's (`auth.caFile`).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// Measures the TTL and the refresh interval (tests move a manual one).
    pub clock: SharedClock,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            min_refresh_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            extra_roots: Vec::new(),
            clock: clock::system(),
        }
    }
}

/// The HTTP client that fetches discovery documents and keys.
pub fn http_client(opts: &JwksOptions) -> reqwest::Result<reqwest::Client> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .tls_certs_merge(opts.extra_roots.iter().cloned())
        .build()
}

/// The CA certificates in a PEM file, or a message saying why there are none.
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("auth.caFile {}: {e}", path.display()))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(format!("auth.caFile {} holds no PEM certificate", path.display())),
        Err(e) => Err(format!("auth.caFile {}: not a PEM certificate bundle: {e}", path.display())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("the identity provider's keys cannot be fetched")]
    Unavailable,
}

struct KeySet {
    keys: HashMap<String, DecodingKey>,
    /// Keys without a `kid`, usable when a token names none and there is exactly one.
    anonymous: Vec<DecodingKey>,
    fetched: Option<Instant>,
}

pub struct Jwks {
    http: reqwest::Client,
    source: JwksSource,
    opts: JwksOptions,
    set: RwLock<KeySet>,
    /// Serialises fetches and remembers when the last one started.
    fetching: Mutex<Option<Instant>>,
    /// Fetches made so far (for metrics and tests).
    pub fetches: std::sync::atomic::AtomicU64,
}

impl Jwks {
    /// `Oidc::from_config` has already built a client with these options once, so that a bad
    /// `auth.caFile` is a configuration problem rather than a silent fallback here.
    pub fn new(source: JwksSource, opts: JwksOptions) -> Self {
        let http = http_client(&opts).unwrap_or_default();
        Self {
            http,
            source,
            opts,
            set: RwLock::new(KeySet { keys: HashMap::new(), anonymous: Vec::new(), fetched: None }),
            fetching: Mutex::new(None),
            fetches: 0.into(),
        }
    }

    /// The key for `kid` (or the only key when `kid` is absent), fetching when needed.
    pub async fn key(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, JwksError> {
        {
            let set = self.set.read().await;
            let now = self.opts.clock.now();
            let fresh = set.fetched.is_some_and(|t| now.duration_since(t) < self.opts.ttl);
            if let Some(k) = lookup(&set, kid)
                && fresh
            {
                return Ok(Some(k));
            }
        }
        // Unknown kid, or keys past their TTL: refresh, unless one ran moments ago.
        self.refresh().await?;
        Ok(lookup(&*self.set.read().await, kid))
    }

    async fn refresh(&self) -> Result<(), JwksError> {
        let mut last = self.fetching.lock().await;
        let now = self.opts.clock.now();
        let recently = last.is_some_and(|t| now.duration_since(t) < self.opts.min_refresh_interval);
        let have_keys = self.set.read().await.fetched.is_some();
        if recently {
            return if have_keys { Ok(()) } else { Err(JwksError::Unavailable) };
        }
        *last = Some(now);
        match self.fetch().await {
            Ok(fresh) => {
                *self.set.write().await = fresh;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "fetching the identity provider's keys failed");
                if have_keys { Ok(()) } else { Err(JwksError::Unavailable) }
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uri = match &self.source {
            JwksSource::Uri(u) => u.clone(),
            JwksSource::Discovery { issuer } => {
                let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
                let doc: serde_json::Value = self.get_json(&url).await?;
                doc.get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or("discovery document has no jwks_uri")?
            }
        };
        let set: JwkSet = serde_json::from_value(self.get_json(&uri).await?)
            .map_err(|e| format!("JWKS is not a key set: {e}"))?;
        let mut keys = HashMap::new();
        let mut anonymous = Vec::new();
        for jwk in &set.keys {
            // Only asymmetric keys: a shared secret in a public key set would let anyone sign.
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_) | AlgorithmParameters::Other(_)) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.insert(kid.clone(), key);
                }
                None => anonymous.push(key),
            }
        }
        tracing::info!(keys = keys.len() + anonymous.len(), "fetched the identity provider's signing keys");
        Ok(KeySet { keys, anonymous, fetched: Some(self.opts.clock.now()) })
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        let resp = self.http.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        let bytes = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        if bytes.len() > 1 << 20 {
            return Err(format!("GET {url}: response larger than 1 MiB"));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }
}

fn lookup(set: &KeySet, kid: Option<&str>) -> Option<DecodingKey> {
    match kid {
        Some(k) => set.keys.get(k).cloned(),
        None if set.anonymous.len() + set.keys.len() == 1 => {
            set.anonymous.first().or_else(|| set.keys.values().next()).cloned()
        }
        None => None,
    }
}
