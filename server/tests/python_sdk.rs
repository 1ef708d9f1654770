//! The real server binary, driven by the official MCP Python SDK over Streamable HTTP, against a
//! real PostgreSQL: tool list (golden snapshot), every tool, tenant isolation, bad inputs.

mod support;

use std::io::{BufRead, BufReader};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::issuer::{Issuer, Key};

use support::{Tenant, embedded_db, tenant};

/// A `mcp-fleet-server serve` process on 127.0.0.1, killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server for `t` that requires bearer tokens from `issuer`; returns it and its stderr.
fn spawn_server(
    db: &mcp_fleet_testkit::TestDb,
    t: &Tenant,
    issuer: &Issuer,
    dir: &std::path::Path,
) -> ServerProcess {
    // The public URL must be known before the port is: pick a free one.
    let port = mcp_fleet_testkit::process::free_port();
    let config = dir.join(format!("{}.yaml", t.name));
    std::fs::write(
        &config,
        format!(
            "tenant: {}\nlisten: 127.0.0.1:{port}\npublicUrl: http://127.0.0.1:{port}/mcp\nauth:\n  mode: oidc\n  issuer: {}\n",
            t.name, issuer.url
        ),
    )
    .expect("test setup");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-fleet-server"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--log-format", "json"])
        .env("MCP_FLEET_DATABASE_URL", db.url_as(&t.name.login_role(), "").replace(":@", "@"))
        .env("MCP_FLEET_LOG", "info")
        .env("MCP_FLEET_DATABASE_PASSWORD", &t.password)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mcp-fleet-server");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("mcp-fleet-server: listening on ") {
                let _ = tx.send(url.to_owned());
            }
            if let Ok(mut l) = sink.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(60)).expect("the server prints its address within 60 s");
    ServerProcess { child, url, log }
}

fn token(key: &Key, issuer: &Issuer, url: &str, t: &Tenant) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("test setup").as_secs();
    key.sign(&json!({
        "iss": issuer.url, "aud": url, "sub": "python-e2e", "tenant": t.name.as_str(),
        "roles": ["analyst"], "iat": now, "exp": now + 900,
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_drives_every_tool_and_cannot_cross_tenants() {
    let db = embedded_db().await;
    let a = tenant(&db, &[1]).await;
    let b = tenant(&db, &[2, 6]).await;
    let key = Key::generate("e2e");
    let issuer = Issuer::start(&[&key]).await;
    let dir = tempdir();
    let (sa, sb) = (spawn_server(&db, &a, &issuer, &dir), spawn_server(&db, &b, &issuer, &dir));
    let (ta, tb) = (token(&key, &issuer, &sa.url, &a), token(&key, &issuer, &sb.url, &b));
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tools.json");
    let args = vec![
        "--url-a".to_owned(),
        sa.url.clone(),
        "--url-b".to_owned(),
        sb.url.clone(),
        "--golden".to_owned(),
        golden.display().to_string(),
        "--token-a".to_owned(),
        ta.clone(),
        "--token-b".to_owned(),
        tb.clone(),
    ];
    let started = Instant::now();
    let (ok, output) =
        tokio::task::spawn_blocking(move || mcp_fleet_testkit::python::run_script("server_check.py", &args))
            .await
            .unwrap();
    eprintln!("{output}");
    assert!(ok, "Python SDK checks failed after {:?}:\n{output}", started.elapsed());
    assert!(output.contains("ALL CHECKS PASSED"), "{output}");
    assert!(output.contains("tenants see disjoint orders: stores [1]"), "{output}");

    // The servers logged every call, and no token or database password in any line.
    let logs = format!("{}{}", sa.log.lock().unwrap(), sb.log.lock().unwrap());
    assert!(logs.contains("\"tool call\""), "tool calls are logged: {logs}");
    for secret in [&ta, &tb, &a.password, &b.password] {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
    }
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(mcp_fleet_testkit::pg::unique_name("mcpfleet-e2e"));
    std::fs::create_dir_all(&dir).expect("test setup");
    dir
}
