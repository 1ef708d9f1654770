//! Operating the server: the stdio transport, shared-pool tenancy, overload shedding and graceful
//! shutdown — each against the real binary or router and a real PostgreSQL.

mod support;

use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use support::{Opts, call, call_raw, client, embedded_db, json as parse, server, tenant};

fn db_url_without_password(db: &mcp_fleet_testkit::TestDb, user: &str) -> String {
    db.url_as(user, "").replace(":@", "@")
}

/// Waits until PostgreSQL is running a query containing `marker` (fixed sleeps lose races on a
/// busy machine), sent by the call `call`; fails at once if that call ends first.
async fn wait_until_running<T>(
    db: &mcp_fleet_testkit::TestDb,
    marker: &str,
    call: &tokio::task::JoinHandle<T>,
) {
    wait_until_running_n(db, marker, 1, std::slice::from_ref(call)).await;
}

/// Waits until PostgreSQL runs at least `n` queries containing `marker`, sent by `calls`; fails
/// at once if one of those calls ends first.
async fn wait_until_running_n<T>(
    db: &mcp_fleet_testkit::TestDb,
    marker: &str,
    n: i64,
    calls: &[tokio::task::JoinHandle<T>],
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
        )
        .bind(marker)
        .fetch_one(&db.admin)
        .await
        .expect("read pg_stat_activity");
        if running >= n {
            return;
        }
        assert!(
            !calls.iter().any(|c| c.is_finished()),
            "a call ended before {n} queries with {marker:?} were seen running"
        );
        assert!(std::time::Instant::now() < deadline, "{running} of {n} queries with {marker:?} started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_stdio_transport_serves_the_configured_tenant() {
    let db = embedded_db().await;
    let t = tenant(&db, &[3]).await;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-fleet-server"));
    cmd.args([
        "serve",
        "--transport",
        "stdio",
        "--auth",
        "none",
        "--log-format",
        "text",
        "--tenant",
        t.name.as_str(),
    ])
    .env("MCP_FLEET_DATABASE_URL", db_url_without_password(&db, &t.name.login_role()))
    .env("MCP_FLEET_DATABASE_PASSWORD", &t.password);
    let transport = TokioChildProcess::new(cmd).expect("spawn the server over stdio");
    let c = ().serve(transport).await.expect("MCP handshake over stdio");
    let tools = c.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), mcp_fleet_core::tools::names().count());
    let (err, text) = call(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT DISTINCT store_id FROM retail.orders" }),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(parse(&text)["r"], json!([[3]]));
    c.cancel().await.unwrap();
}

#[tokio::test]
async fn shared_mode_switches_to_the_callers_tenant_and_sees_nothing_else() {
    let db = embedded_db().await;
    let a = tenant(&db, &[1]).await;
    let b = tenant(&db, &[4]).await;
    let gateway = mcp_fleet_testkit::pg::unique_name("gw");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {gateway} LOGIN NOINHERIT PASSWORD 'gw-pw' IN ROLE mcpfleet_gateway"
    )))
    .execute(&db.admin)
    .await
    .unwrap();
    let args = mcp_fleet_server::config::ServeArgs {
        database_url: Some(db_url_without_password(&db, &gateway)),
        tenancy_mode: Some(mcp_fleet_core::server_config::TenancyMode::Shared),
        auth: Some(mcp_fleet_core::server_config::AuthMode::None),
        ..Default::default()
    };
    let cfg = mcp_fleet_server::config::resolve(
        &args,
        Default::default(),
        |k| (k == "MCP_FLEET_DATABASE_PASSWORD").then(|| "gw-pw".to_owned()),
        |p| std::fs::read_to_string(p),
    )
    .unwrap();
    mcp_fleet_server::install_crypto_provider();
    let state = std::sync::Arc::new(mcp_fleet_server::serve::state(&cfg).await.unwrap());
    let app = mcp_fleet_server::http::router(
        state,
        std::sync::Arc::new(mcp_fleet_server::auth::Authenticator::None {
            tenant: None,
            mode: cfg.database.mode,
        }),
        mcp_fleet_server::http::HttpOptions {
            allowed_hosts: vec![],
            max_concurrent_requests: 8,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 1 << 20,
            expected_tenant: None,
            terminating: tokio_util::sync::CancellationToken::new(),
        },
        tokio_util::sync::CancellationToken::new(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/mcp");
    // A pod of this server is only ever routed to once its readiness probe passes.
    let ready = reqwest::get(format!("http://{addr}/health/ready")).await.unwrap();
    let status = ready.status();
    assert_eq!(status, 200, "shared-mode readiness: {}", ready.text().await.unwrap_or_default());
    let q = json!({ "postgresql_query": "SELECT array_agg(DISTINCT store_id) AS s FROM retail.orders" });
    for (t, stores) in [(&a, json!([1])), (&b, json!([4]))] {
        let c = client(&url, &[("x-mcp-tenant", t.name.as_str())]).await;
        let (err, text) = call(&c, "execute_sales_query", q.clone()).await;
        assert!(!err, "{text}");
        assert_eq!(parse(&text)["r"][0][0], stores, "tenant {}", t.name);
    }
    // The gateway role alone sees nothing, and a tenant that does not exist is refused.
    let mut conn = db.connect_as(&gateway, "gw-pw").await.unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retail.orders").fetch_one(&mut conn).await.unwrap_or(-1);
    assert!(n <= 0, "the gateway must see no rows by itself, saw {n}");
    let c = client(&url, &[("x-mcp-tenant", "no-such-tenant")]).await;
    match call_raw(&c, "execute_sales_query", q.clone()).await {
        Ok(r) => assert_eq!(r.is_error, Some(true), "{r:?}"),
        // Its audit record cannot be written under a role that does not exist: refused, and said so.
        Err(e) => assert!(e.to_string().contains("no-such-tenant"), "{e}"),
    }
    // That refused record does not hold the audit trail back: the tenants' calls go on.
    for _ in 0..3 {
        let c = client(&url, &[("x-mcp-tenant", a.name.as_str())]).await;
        let (err, text) = call(&c, "execute_sales_query", q.clone()).await;
        assert!(!err, "{text}");
    }
}

/// A PostgreSQL restart ends the sessions of running queries ("terminating connection due to
/// administrator command"). The caller's query was fine: it hears that the database is
/// unavailable and to try again, and the next call works on a fresh connection.
#[tokio::test]
async fn a_query_whose_session_the_database_ends_is_told_to_try_again() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let srv = server(&db, &t, Opts { statement_timeout: Some("30s".into()), ..Default::default() }).await;
    let c = client(&srv.url, &[]).await;
    let slow = json!({ "postgresql_query": "SELECT count(*) AS n FROM retail.order_items a, (SELECT 1 FROM generate_series(1, 2999)) b" });
    let running = tokio::spawn(async move { call(&c, "execute_sales_query", slow).await });
    wait_until_running(&db, "generate_series(1, 2999)", &running).await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE strpos(query, 'generate_series(1, 2999)') > 0 AND pid <> pg_backend_pid()",
    )
    .execute(&db.admin)
    .await
    .expect("end the session as a restart does");
    let (err, text) = tokio::time::timeout(Duration::from_secs(30), running).await.unwrap().unwrap();
    assert!(err, "{text}");
    assert_eq!(
        parse(&text)["err"],
        json!("the database is unavailable right now; try again shortly"),
        "{text}"
    );
    let c = client(&srv.url, &[]).await;
    let (err, text) = call(&c, "execute_sales_query", json!({"postgresql_query": "SELECT 1 AS one"})).await;
    assert!(!err && parse(&text)["r"] == json!([[1]]), "the next call works: {text}");
}

#[tokio::test]
async fn overload_is_shed_with_503_instead_of_queueing() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let srv = server(
        &db,
        &t,
        Opts { max_concurrent_requests: Some(1), statement_timeout: Some("3s".into()), ..Default::default() },
    )
    .await;
    let c = client(&srv.url, &[]).await;
    // Far more work than the 3 s statement timeout allows, so the slot stays held until it fires.
    let slow = json!({ "postgresql_query": "SELECT count(*) FROM retail.order_items a, retail.order_items b, (SELECT 1 FROM generate_series(1, 1000)) g" });
    let busy = tokio::spawn(async move {
        let r = call(&c, "execute_sales_query", slow).await;
        drop(c);
        r
    });
    // Probe only once PostgreSQL runs the slow query: until then the slot may still be free.
    wait_until_running(&db, "generate_series(1, 1000)", &busy).await;
    let resp = reqwest::Client::new()
        .post(&srv.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    // The call that held the only slot still gets its answer (a count, or the timeout explained).
    let (err, text) = tokio::time::timeout(Duration::from_secs(30), busy).await.unwrap().unwrap();
    assert!(if err { text.contains("statement timeout") } else { parse(&text)["n"] == json!(1) }, "{text}");
}

/// The audit trail writes through a connection of its own. When callers' queries hold every
/// other connection of the pool, a call that finishes still gets its record committed and its
/// answer; sharing the pool, its answer was withheld ("the audit trail could not record this call
/// in time"), as 32 benchmark callers of a 2.5-s query showed.
#[tokio::test]
async fn queries_holding_every_connection_do_not_keep_other_calls_from_being_audited() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let mut file = mcp_fleet_core::server_config::ServerConfigFile::default();
    file.database.max_connections = Some(3);
    let srv = server(
        &db,
        &t,
        Opts { file: Some(file), statement_timeout: Some("4s".into()), ..Default::default() },
    )
    .await;
    let tools_pool = srv.state.db.pool().options().get_max_connections();
    let slow = json!({ "postgresql_query": "SELECT count(*) FROM retail.order_items a, retail.order_items b, (SELECT 1 FROM generate_series(1, 1000)) g" });
    let mut busy = Vec::new();
    for _ in 0..3 {
        let (c, slow) = (client(&srv.url, &[]).await, slow.clone());
        busy.push(tokio::spawn(async move { call(&c, "execute_sales_query", slow).await }));
    }
    // Every connection the tools may use runs a slow query.
    wait_until_running_n(&db, "generate_series(1, 1000)", i64::from(tools_pool), &busy).await;
    let c = client(&srv.url, &[]).await;
    let (err, text) = call(&c, "get_current_utc_date", json!({})).await;
    assert!(!err && text.starts_with("Current UTC Date/Time"), "{text}");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.tool_calls WHERE tool = 'get_current_utc_date'")
            .fetch_one(&db.admin)
            .await
            .expect("count audit rows");
    assert_eq!(audited, 1, "the date call's record is committed before its answer");
    for b in busy {
        tokio::time::timeout(Duration::from_secs(30), b)
            .await
            .expect("the slow calls end")
            .expect("a slow call");
    }
}

/// The server binary, serving `t` in development mode on a free loopback port, with `extra`
/// arguments: the child, its MCP URL and its stderr lines.
#[cfg(unix)]
fn spawn_server(
    db: &mcp_fleet_testkit::TestDb,
    t: &support::Tenant,
    extra: &[&str],
) -> (std::process::Child, String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-fleet-server"))
        .args(["serve", "--auth", "none", "--listen", "127.0.0.1:0", "--log-format", "text"])
        .args(["--tenant", t.name.as_str()])
        .args(extra)
        .env("MCP_FLEET_DATABASE_URL", db_url_without_password(db, &t.name.login_role()))
        .env("MCP_FLEET_DATABASE_PASSWORD", &t.password)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the server binary");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("server starts");
        if let Some(u) = line.strip_prefix("mcp-fleet-server: listening on ") {
            break u.to_owned();
        }
    };
    (child, url, rx)
}

#[cfg(unix)]
fn sigterm(child: &std::process::Child) {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}: {sent}");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_drains_in_flight_calls_then_exits_cleanly() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let (mut child, url, rx) = spawn_server(&db, &t, &["--statement-timeout", "30s"]);
    let c = client(&url, &[]).await;
    // Seconds of work (about 20 million rows to count on the small seed), so SIGTERM arrives
    // while it runs and the probe below cannot miss it.
    let slow = json!({ "postgresql_query": "SELECT count(*) AS n FROM retail.order_items a, (SELECT 1 FROM generate_series(1, 3000)) b" });
    let in_flight = tokio::spawn(async move { call(&c, "execute_sales_query", slow).await });
    // SIGTERM only once PostgreSQL runs the query (a fixed sleep loses the race on a busy machine).
    wait_until_running(&db, "generate_series(1, 3000)", &in_flight).await;
    sigterm(&child);
    let (err, text) = tokio::time::timeout(Duration::from_secs(30), in_flight).await.unwrap().unwrap();
    assert!(!err, "the in-flight call must finish after SIGTERM: {text}");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status}");
    let logs: Vec<String> = rx.try_iter().collect();
    assert!(logs.iter().any(|l| l.contains("draining")), "{logs:?}");
}

/// In a pod, endpoints and the ingress go on sending calls for a moment after SIGTERM. With a
/// shutdown delay the server says it is not ready at once, yet answers every call that still
/// arrives, on new connections too, until the delay ends (or a second signal cuts it short).
#[cfg(unix)]
#[tokio::test]
async fn after_sigterm_readiness_drops_at_once_while_calls_are_still_served_for_the_delay() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let (mut child, url, rx) = spawn_server(&db, &t, &["--shutdown-delay", "60s"]);
    let base = url.trim_end_matches("/mcp").to_owned();
    let http = reqwest::Client::new();
    let ready =
        || async { http.get(format!("{base}/health/ready")).send().await.map(|r| r.status().as_u16()) };
    assert_eq!(ready().await.unwrap(), 200);
    sigterm(&child);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ready().await.ok() != Some(503) {
        assert!(std::time::Instant::now() < deadline, "readiness still up 10 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval, not a wait for an event
    }
    // A new client (new connection) after SIGTERM is still answered, with the right rows.
    let c = client(&url, &[]).await;
    let (err, text) = call(
        &c,
        "execute_sales_query",
        json!({"postgresql_query": "SELECT DISTINCT store_id FROM retail.orders"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(parse(&text)["r"], json!([[1]]), "{text}");
    drop(c);
    assert!(!rx.try_iter().any(|l| l.contains("draining")), "no drain before the delay ends");
    // A second signal ends the wait: the server drains and exits well before the 60 s delay.
    sigterm(&child);
    let status =
        tokio::time::timeout(Duration::from_secs(30), tokio::task::spawn_blocking(move || child.wait()))
            .await
            .expect("a second SIGTERM cuts the delay short")
            .unwrap()
            .unwrap();
    assert!(status.success(), "exit status {status}");
}
