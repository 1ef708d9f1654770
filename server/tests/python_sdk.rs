//! The real server binary, driven by the official MCP Python SDK over Streamable HTTP, against a
//! real PostgreSQL: tool list (golden snapshot), every tool, tenant isolation, bad inputs.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Tenant, embedded_db, tenant};

/// A `mcp-fleet-server serve` process on 127.0.0.1, killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(db: &mcp_fleet_testkit::TestDb, t: &Tenant) -> ServerProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-fleet-server"))
        .args(["serve", "--auth", "none", "--listen", "127.0.0.1:0", "--log-format", "text", "--tenant", t.name.as_str()])
        .env("MCP_FLEET_DATABASE_URL", db.url_as(&t.name.login_role(), "").replace(":@", "@"))
        .env("MCP_FLEET_DATABASE_PASSWORD", &t.password)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mcp-fleet-server");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("mcp-fleet-server: listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(60)).expect("the server prints its address within 60 s");
    ServerProcess { child, url }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_drives_every_tool_and_cannot_cross_tenants() {
    let db = embedded_db().await;
    let a = tenant(&db, &[1]).await;
    let b = tenant(&db, &[2, 6]).await;
    let (sa, sb) = (spawn_server(&db, &a), spawn_server(&db, &b));
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tools.json");
    let args = vec![
        "--url-a".to_owned(),
        sa.url.clone(),
        "--url-b".to_owned(),
        sb.url.clone(),
        "--golden".to_owned(),
        golden.display().to_string(),
    ];
    let started = Instant::now();
    let (ok, output) = tokio::task::spawn_blocking(move || mcp_fleet_testkit::python::run_script("server_check.py", &args))
        .await
        .unwrap();
    eprintln!("{output}");
    assert!(ok, "Python SDK checks failed after {:?}:\n{output}", started.elapsed());
    assert!(output.contains("ALL CHECKS PASSED"), "{output}");
    assert!(output.contains("tenants see disjoint orders: stores [1]"), "{output}");
}
