//! The byte budget: no call makes the server hold more than about `tools.maxResultBytes` of
//! result. Long values are cut in PostgreSQL, rows stop at the budget, the result says so and how
//! to ask better; and the real server process's peak memory (VmHWM) stays flat under
//! `SELECT repeat('x', 500000000)`.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Opts, call, client, embedded_db, json as parse, server, tenant};
use tokio::io::AsyncBufReadExt;

#[tokio::test]
async fn long_values_and_long_results_are_cut_before_the_server_holds_them_and_say_so() {
    let db = embedded_db().await;
    let t = tenant(&db, &[2]).await;
    let srv = server(&db, &t, Opts { max_result_bytes: Some(8192), ..Default::default() }).await;
    let c = client(&srv.url, &[]).await;
    let run = |sql: &'static str| {
        let c = &c;
        async move {
            let (err, text) = call(c, "execute_sales_query", json!({ "postgresql_query": sql })).await;
            assert!(!err, "{sql}: {text}");
            assert!(text.len() < 3 * 8192, "{sql}: {} bytes came back", text.len());
            parse(&text)
        }
    };

    // One long value: cut to the budget, marked, and explained.
    let v = run("SELECT repeat('x', 100000) AS big").await;
    let big = v["r"][0][0].as_str().unwrap();
    assert_eq!(big.chars().count(), 8193);
    assert!(big.ends_with("x…"), "{}", &big[big.len() - 10..]);
    assert_eq!(v["truncated"], json!(true));
    assert!(v["msg"].as_str().unwrap().contains("1 value(s) longer than 8192 characters were cut"), "{v}");

    // Several columns share the budget; JSON arrays too long to show whole become cut text.
    let v = run("SELECT repeat('a', 5000) AS a, array_agg(g) AS ids FROM generate_series(1, 5000) g").await;
    assert_eq!(v["r"][0][0].as_str().unwrap().chars().count(), 4097);
    assert!(v["r"][0][1].as_str().unwrap().starts_with("[1,2,3"), "{v}");
    assert!(v["msg"].as_str().unwrap().contains("2 value(s) longer than 4096"), "{v}");

    // Many rows: they stop at the budget, below the row cap, and the result says so.
    let v = run("SELECT product_id, product_description FROM retail.products ORDER BY product_id").await;
    let n = v["n"].as_u64().unwrap();
    assert!(n > 1 && n < 405, "{n} rows");
    assert_eq!(v["truncated"], json!(true));
    let msg = v["msg"].as_str().unwrap();
    assert!(msg.contains("limit of 8192 bytes") && msg.contains("select fewer columns, aggregate"), "{msg}");
    // Short results are untouched.
    let v = run("SELECT count(*) AS n FROM retail.products").await;
    assert_eq!((v["r"].clone(), v.get("truncated")), (json!([[405]]), None));
}

/// The server's peak resident memory so far, in KiB (`VmHWM` in /proc/<pid>/status).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test]
async fn the_server_process_stays_small_whatever_a_query_returns() {
    let db = embedded_db().await;
    let t = tenant(&db, &[4]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.yaml");
    std::fs::write(
        &config,
        format!(
            "tenant: {}\nlisten: 127.0.0.1:0\ndatabase:\n  url: {}\n  statementTimeout: 120s\nauth:\n  mode: none\ntools:\n  enabled: [execute_sales_query]\nlimits:\n  requestTimeout: 300s\n",
            t.name,
            db.url_as(&t.name.login_role(), "").replace(":@", "@")
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-fleet-server"))
        .args(["serve", "--log-format", "text", "--config"])
        .arg(&config)
        .env("MCP_FLEET_DATABASE_PASSWORD", &t.password)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let pid = child.id().expect("a running server");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.split("listening on ").nth(1) {
                return url.trim().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server listens within 2 minutes");
    // Keep reading its log so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let c = client(&url, &[]).await;
    let sql = |q: &str| json!({ "postgresql_query": q });
    let (err, text) = call(&c, "execute_sales_query", sql("SELECT count(*) FROM retail.orders")).await;
    assert!(!err, "{text}");
    let before = peak_rss_kib(pid);
    let mut peaks = vec![];
    for size in [100_000_000u64, 500_000_000] {
        let (err, text) =
            call(&c, "execute_sales_query", sql(&format!("SELECT repeat('x', {size}) AS big"))).await;
        assert!(!err, "{}", &text[..text.len().min(500)]);
        let v = parse(&text);
        assert_eq!(v["truncated"], json!(true), "{size}");
        assert!(text.len() < 2 << 20, "{size}: {} bytes came back", text.len());
        peaks.push(peak_rss_kib(pid));
    }
    eprintln!(
        "peak RSS of the server: {before} KiB before, {} KiB after repeat('x', 100000000), {} KiB after repeat('x', 500000000)",
        peaks[0], peaks[1]
    );
    // A 1 MiB budget: a few copies of it on the way out, nowhere near the 100 MB or 500 MB asked.
    assert!(peaks[1] < before + 32 * 1024, "peak RSS grew from {before} KiB to {peaks:?} KiB");
    child.kill().await.ok();
}
