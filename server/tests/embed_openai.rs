//! The `openai` embeddings provider against a real HTTP server on 127.0.0.1 that EMULATES the
//! OpenAI embeddings API (`POST /v1/embeddings`): the real service cannot be reached from here,
//! so this is the one stand-in in the test suite. The emulator speaks plain HTTP/1.1 over a
//! tokio socket, records what it was sent, and answers from a script (vectors, HTTP errors,
//! stalls, wrong dimensions, broken JSON). The client side — reqwest, timeouts, retries, the
//! circuit breaker, parsing — is the production code.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_fleet_core::server_config::{EmbeddingProvider, EmbeddingsSection, OpenAiSection};
use mcp_fleet_server::embed::openai::ApiKey;
use mcp_fleet_server::embed::{
    BreakerOptions, DIMENSIONS, EmbedError, Embedder, OpenAiEmbedder, OpenAiOptions, from_config,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod support;

const KEY: &str = "sk-test-0123456789abcdef";

/// What the emulator answers to one request.
#[derive(Clone, Debug)]
enum Reply {
    /// 200 with one vector per input (position `text length % 384` set), in reverse order.
    Vectors,
    /// 200 with vectors of this length.
    VectorsOfLen(usize),
    /// This status with an OpenAI-style error body; `Retry-After: 0` for 429.
    Status(u16),
    /// Waits this long before answering (the client should time out first).
    Stall(Duration),
    /// 200 with this body.
    Body(&'static str),
}

#[derive(Debug)]
struct Seen {
    target: String,
    headers: HashMap<String, String>,
    body: serde_json::Value,
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    fallback: Option<Reply>,
    seen: Vec<Seen>,
}

struct Emulator {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl Emulator {
    /// Starts on a free loopback port; answers `replies` in turn, then `fallback` forever.
    async fn start(replies: Vec<Reply>, fallback: Reply) -> Emulator {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            fallback: Some(fallback),
            seen: Vec::new(),
        }));
        let shared = script.clone();
        // Ends with the test's runtime.
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Emulator { addr, script }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn set_fallback(&self, reply: Reply) {
        self.script.lock().expect("script lock").fallback = Some(reply);
    }

    fn requests(&self) -> usize {
        self.script.lock().expect("script lock").seen.len()
    }

    fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.script.lock().expect("script lock").seen)
    }

    fn options(&self) -> OpenAiOptions {
        let mut o = OpenAiOptions::new(self.endpoint(), ApiKey::new(KEY));
        o.timeout = Duration::from_secs(5);
        o.backoff = Duration::from_millis(20);
        o
    }
}

async fn serve(mut stream: TcpStream, script: Arc<Mutex<Script>>) {
    let Some((target, headers, body)) = read_request(&mut stream).await else { return };
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let reply = {
        let mut s = script.lock().expect("script lock");
        s.seen.push(Seen { target, headers, body: body.clone() });
        s.replies.pop_front().or_else(|| s.fallback.clone()).expect("a fallback reply")
    };
    let texts: Vec<String> = body["input"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default();
    let (status, extra, payload) = match reply {
        Reply::Vectors => (200, "", vectors_json(&texts, DIMENSIONS)),
        Reply::VectorsOfLen(n) => (200, "", vectors_json(&texts, n)),
        Reply::Status(code) => (
            code,
            if code == 429 { "Retry-After: 0\r\n" } else { "" },
            // Real services sometimes echo parts of the request; the client must not pass it on.
            format!(r#"{{"error":{{"message":"failure for key {KEY}","type":"server_error"}}}}"#),
        ),
        Reply::Stall(d) => {
            tokio::time::sleep(d).await;
            (200, "", vectors_json(&texts, DIMENSIONS))
        }
        Reply::Body(b) => (200, "", b.to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        payload.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(payload.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads one HTTP/1.1 request with a Content-Length body (bounded sizes).
async fn read_request(stream: &mut TcpStream) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0).min(8 << 20);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((target, headers, body))
}

/// One vector per text, answered in reverse order with `index` set, as the API allows.
fn vectors_json(texts: &[String], len: usize) -> String {
    let items: Vec<String> = texts
        .iter()
        .enumerate()
        .rev()
        .map(|(i, t)| {
            let mut v = vec!["0".to_owned(); len];
            if len > 0 {
                v[t.chars().count() % len] = "2.0".into();
            }
            format!(r#"{{"object":"embedding","index":{i},"embedding":[{}]}}"#, v.join(","))
        })
        .collect();
    format!(
        r#"{{"object":"list","data":[{}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":1,"total_tokens":1}}}}"#,
        items.join(",")
    )
}

fn texts(lens: &[usize]) -> Vec<String> {
    lens.iter().map(|&n| "x".repeat(n)).collect()
}

fn hot_index(v: &[f32]) -> usize {
    v.iter().position(|&x| x > 0.5).expect("one component set")
}

#[tokio::test]
async fn embeds_in_input_order_with_bearer_auth_and_384_dimensions() {
    let emu = Emulator::start(vec![], Reply::Vectors).await;
    let embedder = OpenAiEmbedder::new(emu.options()).unwrap();
    assert_eq!(embedder.model(), "text-embedding-3-small");
    let vectors = embedder.embed(&texts(&[3, 1, 2])).await.unwrap();
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors.iter().map(|v| hot_index(v)).collect::<Vec<_>>(), [3, 1, 2], "input order kept");
    for v in &vectors {
        assert_eq!(v.len(), DIMENSIONS);
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5, "unit length");
    }
    let seen = emu.take_seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/v1/embeddings");
    assert_eq!(seen[0].headers.get("authorization").map(String::as_str), Some(&*format!("Bearer {KEY}")));
    assert!(!seen[0].headers.contains_key("api-key"));
    assert_eq!(seen[0].body["model"], "text-embedding-3-small");
    assert_eq!(seen[0].body["dimensions"], DIMENSIONS);
    assert_eq!(seen[0].body["input"], serde_json::json!(["xxx", "x", "xx"]));

    assert!(embedder.embed(&[]).await.unwrap().is_empty());
    assert_eq!(emu.requests(), 0, "nothing to embed, nothing sent");
}

#[tokio::test]
async fn azure_openai_gets_an_api_key_header_and_api_version() {
    let emu = Emulator::start(vec![], Reply::Vectors).await;
    let mut options = emu.options();
    options.endpoint = format!("http://{}/openai/deployments/minilm", emu.addr);
    options.api_version = Some("2024-10-21".into());
    let embedder = OpenAiEmbedder::new(options).unwrap();
    embedder.embed(&texts(&[5])).await.unwrap();
    let seen = emu.take_seen();
    assert_eq!(seen[0].target, "/openai/deployments/minilm/embeddings?api-version=2024-10-21");
    assert_eq!(seen[0].headers.get("api-key").map(String::as_str), Some(KEY));
    assert!(!seen[0].headers.contains_key("authorization"), "the key is sent once, in api-key");
}

#[tokio::test]
async fn from_config_reads_the_key_from_the_named_environment_variable() {
    let emu = Emulator::start(vec![], Reply::Vectors).await;
    // HOME is set in every test environment; its value stands in for a key.
    let home = std::env::var("HOME").expect("HOME is set");
    let section = EmbeddingsSection {
        provider: Some(EmbeddingProvider::Openai),
        model_dir: None,
        openai: Some(OpenAiSection {
            endpoint: emu.endpoint(),
            model: Some("my-minilm".into()),
            api_key_env: Some("HOME".into()),
            timeout: Some("2s".into()),
            ..Default::default()
        }),
    };
    let embedder = from_config(&section).unwrap();
    assert_eq!(embedder.model(), "my-minilm");
    embedder.embed(&texts(&[4])).await.unwrap();
    let seen = emu.take_seen();
    assert_eq!(seen[0].headers.get("authorization"), Some(&format!("Bearer {home}")));
    assert!(seen[0].body.get("dimensions").is_none(), "not sent for models that may not support it");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_until_success() {
    let emu =
        Emulator::start(vec![Reply::Status(429), Reply::Status(503), Reply::Status(500)], Reply::Vectors)
            .await;
    let embedder = OpenAiEmbedder::new(emu.options()).unwrap();
    let vectors = embedder.embed(&texts(&[7])).await.unwrap();
    assert_eq!(hot_index(&vectors[0]), 7);
    assert_eq!(emu.requests(), 4, "three failures, then the success");
}

#[tokio::test]
async fn retries_are_bounded_and_the_last_error_is_reported() {
    let emu = Emulator::start(vec![], Reply::Status(429)).await;
    let mut options = emu.options();
    options.max_retries = 2;
    let embedder = OpenAiEmbedder::new(options).unwrap();
    let err = embedder.embed(&texts(&[1])).await.unwrap_err();
    assert!(matches!(err, EmbedError::RateLimited), "{err:?}");
    assert_eq!(emu.requests(), 3, "one attempt plus two retries");
}

#[tokio::test]
async fn persistent_server_errors_open_the_breaker_which_fails_fast_then_recovers() {
    let emu = Emulator::start(vec![], Reply::Status(500)).await;
    let mut options = emu.options();
    options.max_retries = 1;
    options.breaker = BreakerOptions { failure_threshold: 4, cool_down: Duration::from_millis(600) };
    let clock = mcp_fleet_server::clock::ManualClock::new();
    options.clock = clock.shared();
    let embedder = OpenAiEmbedder::new(options).unwrap();
    let one = texts(&[2]);

    let err = embedder.embed(&one).await.unwrap_err();
    assert!(matches!(err, EmbedError::Upstream(500)), "{err:?}");
    assert_eq!(emu.requests(), 2);
    assert!(!embedder.is_circuit_open());
    // Third and fourth consecutive failures: the breaker opens during this call.
    let err = embedder.embed(&one).await.unwrap_err();
    assert!(embedder.is_circuit_open(), "{err:?}");
    assert_eq!(emu.requests(), 4);

    let started = Instant::now();
    let err = embedder.embed(&one).await.unwrap_err();
    assert!(matches!(err, EmbedError::CircuitOpen { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(100), "fails fast");
    assert_eq!(emu.requests(), 4, "no request while open");
    assert!(err.to_string().contains("unavailable"), "{err}");

    // After the cool-down one probe goes through; it fails, so the breaker opens again.
    clock.advance(Duration::from_millis(700));
    let err = embedder.embed(&one).await.unwrap_err();
    assert_eq!(emu.requests(), 5, "exactly one probe");
    assert!(matches!(err, EmbedError::CircuitOpen { .. } | EmbedError::Upstream(500)), "{err:?}");
    assert!(embedder.is_circuit_open());

    // The service recovers: the next probe succeeds and closes the breaker.
    emu.set_fallback(Reply::Vectors);
    clock.advance(Duration::from_millis(700));
    embedder.embed(&one).await.unwrap();
    assert!(!embedder.is_circuit_open());
    embedder.embed(&one).await.unwrap();
}

#[tokio::test]
async fn a_stalled_endpoint_times_out_within_the_configured_bound() {
    let emu = Emulator::start(vec![], Reply::Stall(Duration::from_secs(5))).await;
    let mut options = emu.options();
    options.timeout = Duration::from_millis(200);
    options.max_retries = 1;
    let embedder = OpenAiEmbedder::new(options).unwrap();
    let started = Instant::now();
    let err = embedder.embed(&texts(&[1])).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, EmbedError::Timeout(_)), "{err:?}");
    assert_eq!(emu.requests(), 2, "a timeout is retried");
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn vectors_of_the_wrong_length_are_refused_without_retrying() {
    let emu = Emulator::start(vec![], Reply::VectorsOfLen(1536)).await;
    let embedder = OpenAiEmbedder::new(emu.options()).unwrap();
    let err = embedder.embed(&texts(&[1, 2])).await.unwrap_err();
    assert!(matches!(err, EmbedError::Dimensions { expected: 384, got: 1536 }), "{err:?}");
    assert!(err.to_string().contains("1536"), "{err}");
    assert_eq!(emu.requests(), 1);
}

#[tokio::test]
async fn broken_or_mismatched_answers_are_bad_responses() {
    for body in [
        "this is not json",
        r#"{"data": [{"embedding": [1.0], "ind"#,
        r#"{"object":"list","data":[]}"#,
        r#"{"error":{"message":"nope"}}"#,
    ] {
        let emu = Emulator::start(vec![], Reply::Body(body)).await;
        let embedder = OpenAiEmbedder::new(emu.options()).unwrap();
        let err = embedder.embed(&texts(&[1])).await.unwrap_err();
        assert!(matches!(err, EmbedError::BadResponse(_)), "{body}: {err:?}");
        assert_eq!(emu.requests(), 1, "{body}: not retried");
        assert!(!err.to_string().contains(body), "the body is not echoed: {err}");
    }
}

#[tokio::test]
async fn errors_never_show_the_key_or_the_endpoint_and_client_errors_are_not_retried() {
    let emu = Emulator::start(vec![], Reply::Status(401)).await;
    let embedder = OpenAiEmbedder::new(emu.options()).unwrap();
    let err = embedder.embed(&texts(&[1])).await.unwrap_err();
    assert!(matches!(err, EmbedError::Rejected(401)), "{err:?}");
    assert_eq!(emu.requests(), 1);
    for shown in [err.to_string(), format!("{err:?}"), format!("{embedder:?}")] {
        assert!(!shown.contains(KEY) && !shown.contains(&emu.addr.to_string()), "{shown}");
    }
    let shown = format!("{:?}", emu.options());
    assert!(!shown.contains(KEY), "options' Debug hides the key: {shown}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_such() {
    // A port that was just free: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let mut options = OpenAiOptions::new(format!("http://{addr}/v1"), ApiKey::new(KEY));
    options.backoff = Duration::from_millis(10);
    options.max_retries = 1;
    let embedder = OpenAiEmbedder::new(options).unwrap();
    let err = embedder.embed(&texts(&[1])).await.unwrap_err();
    assert!(matches!(err, EmbedError::Unreachable), "{err:?}");
    assert!(!err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn large_calls_are_split_into_requests_of_at_most_256_texts() {
    let emu = Emulator::start(vec![], Reply::Vectors).await;
    let embedder = OpenAiEmbedder::new(emu.options()).unwrap();
    let lens: Vec<usize> = (0..300).map(|i| i % 100 + 1).collect();
    let vectors = embedder.embed(&texts(&lens)).await.unwrap();
    assert_eq!(vectors.iter().map(|v| hot_index(v)).collect::<Vec<_>>(), lens);
    let sizes: Vec<usize> =
        emu.take_seen().iter().map(|s| s.body["input"].as_array().map_or(0, Vec::len)).collect();
    assert_eq!(sizes, [256, 44]);
}

#[tokio::test]
async fn an_open_breaker_shows_in_health_and_metrics_and_search_fails_fast() {
    let emu = Emulator::start(vec![], Reply::Status(500)).await;
    let db = support::embedded_db().await;
    let t = support::tenant(&db, &[1]).await;
    let file = mcp_fleet_core::server_config::ServerConfigFile {
        embeddings: EmbeddingsSection {
            provider: Some(EmbeddingProvider::Openai),
            model_dir: None,
            openai: Some(OpenAiSection {
                endpoint: emu.endpoint(),
                // HOME is set in every test environment; its value stands in for a key.
                api_key_env: Some("HOME".into()),
                dimensions: Some(384),
                max_retries: Some(0),
                ..Default::default()
            }),
        },
        ..Default::default()
    };
    let srv = support::server(&db, &t, support::Opts { file: Some(file), ..Default::default() }).await;
    let http = reqwest::Client::new();
    let health = || async {
        let v: serde_json::Value =
            http.get(format!("{}/health", srv.base)).send().await.unwrap().json().await.unwrap();
        v
    };
    let circuit = || async {
        let text = http.get(format!("{}/metrics", srv.base)).send().await.unwrap().text().await.unwrap();
        ["closed", "open", "half_open"]
            .into_iter()
            .filter(|s| text.contains(&format!("mcpfleet_embeddings_circuit_state{{state=\"{s}\"}} 1")))
            .collect::<Vec<_>>()
    };
    let v = health().await;
    assert_eq!(
        (v["status"].as_str(), v["checks"]["embeddings_circuit"].as_str()),
        (Some("ok"), Some("closed"))
    );
    assert_eq!(circuit().await, ["closed"]);

    // The default breaker opens after five failures in a row.
    let c = support::client(&srv.url, &[]).await;
    for _ in 0..5 {
        let (err, text) = support::call(
            &c,
            "semantic_search_products",
            serde_json::json!({ "query_description": "drill" }),
        )
        .await;
        assert!(err && text.contains("HTTP 500"), "{text}");
    }
    let v = health().await;
    assert_eq!(
        (v["status"].as_str(), v["checks"]["embeddings_circuit"].as_str()),
        (Some("degraded"), Some("open"))
    );
    assert_eq!(circuit().await, ["open"]);
    let (err, text) =
        support::call(&c, "semantic_search_products", serde_json::json!({ "query_description": "drill" }))
            .await;
    assert!(err && text.contains("unavailable after repeated failures"), "{text}");
    assert_eq!(emu.requests(), 5, "no request while the circuit is open");
    // The pod stays ready: everything but the search tools still works.
    assert_eq!(http.get(format!("{}/health/ready", srv.base)).send().await.unwrap().status(), 200);
}
