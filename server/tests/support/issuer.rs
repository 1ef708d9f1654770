//! A real OpenID Connect issuer for tests: discovery document and JWKS served over HTTP on
//! 127.0.0.1, ES256 keys generated in the test, keys rotated on demand, fetches counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

pub struct Key {
    pub kid: String,
    signing: SigningKey,
}

impl Key {
    pub fn generate(kid: &str) -> Self {
        Self { kid: kid.to_owned(), signing: SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng) }
    }

    pub fn jwk(&self) -> Value {
        let point = self.signing.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": B64.encode(point.x().expect("x")), "y": B64.encode(point.y().expect("y")),
        })
    }

    /// The public key as raw SEC1 bytes (what an HS256 "key confusion" attacker would use).
    pub fn public_bytes(&self) -> Vec<u8> {
        self.signing.verifying_key().to_encoded_point(false).as_bytes().to_vec()
    }

    pub fn sign(&self, claims: &Value) -> String {
        let der = self.signing.to_pkcs8_der().expect("pkcs8");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(der.as_bytes())).expect("sign")
    }
}

struct IssuerState {
    issuer: Mutex<String>,
    keys: Mutex<Vec<Value>>,
    jwks_fetches: AtomicU64,
}

pub struct Issuer {
    pub url: String,
    state: Arc<IssuerState>,
}

impl Issuer {
    pub async fn start(keys: &[&Key]) -> Self {
        let state = Arc::new(IssuerState {
            issuer: Mutex::new(String::new()),
            keys: Mutex::new(keys.iter().map(|k| k.jwk()).collect()),
            jwks_fetches: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind issuer");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        *state.issuer.lock().expect("issuer state") = url.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// Publishes a new key set (key rotation).
    pub fn publish(&self, keys: &[&Key]) {
        *self.state.keys.lock().expect("issuer state") = keys.iter().map(|k| k.jwk()).collect();
    }

    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }
}

async fn discovery(State(s): State<Arc<IssuerState>>) -> Json<Value> {
    let issuer = s.issuer.lock().expect("issuer state").clone();
    Json(
        json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks"), "id_token_signing_alg_values_supported": ["ES256"] }),
    )
}

async fn jwks(State(s): State<Arc<IssuerState>>) -> Json<Value> {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "keys": s.keys.lock().expect("issuer state").clone() }))
}
