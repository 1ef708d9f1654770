//! `make bench`: the server's performance against baselines measured in the same run, on this
//! machine, over loopback only (issue 4, "Benchmark"). It starts a throwaway PostgreSQL, seeds the
//! sample, starts the release `mcp-fleet-server serve` binary as its own process (with and
//! without the local model) and a bare axum JSON-RPC handler (this program re-run with
//! `--baseline-server`), drives them all with one load generator, and writes BENCHMARKS.md.
//!
//! Flags (after `--`): `--quick` for a short smoke run (small loads, 10,000 synthetic vectors,
//! BENCHMARKS.md untouched); `--no-write` to leave BENCHMARKS.md alone.

mod baseline;
mod clients;
mod fixture;
mod load;
mod proc;
mod report;
mod semantic;
mod vectors;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use serde_json::json;
use sqlx::PgPool;

use crate::clients::{RpcClient, SqlClient, tool_call, tool_text};
use crate::fixture::{Fixture, POOL_SIZE};
use crate::load::{Budget, Client, Stats};
use crate::proc::{RssSampler, ServerProcess};
use crate::report::{Comparison, MemoryRow, Report};

/// "How many orders did each store take on one day": an index lookup, a join, a few rows.
const CHEAP_SQL: &str = "SELECT s.store_name, count(*) AS orders FROM retail.orders o \
JOIN retail.stores s ON s.store_id = o.store_id WHERE o.order_date = DATE '2025-06-14' \
GROUP BY s.store_name ORDER BY s.store_name";
/// "Revenue by category in 2025": joins and aggregates the year's ~70,000 order items.
const ANALYTICS_SQL: &str = "SELECT c.category_name, sum(oi.total_amount) AS revenue, \
count(DISTINCT o.order_id) AS orders FROM retail.order_items oi \
JOIN retail.orders o ON o.order_id = oi.order_id JOIN retail.products p ON p.product_id = oi.product_id \
JOIN retail.categories c ON c.category_id = p.category_id \
WHERE o.order_date >= DATE '2025-01-01' AND o.order_date < DATE '2026-01-01' \
GROUP BY c.category_name ORDER BY revenue DESC";

/// The tools a server without the local model offers (`tools.enabled` in its config file).
const TOOLS_WITHOUT_MODEL: [&str; 4] = [
    "get_multiple_table_schemas",
    "execute_sales_query",
    "full_text_search_products",
    "get_current_utc_date",
];

const CONCURRENCY: [usize; 2] = [1, 32];
/// Where the server's part of BENCHMARKS.md ends: the operator benchmark's section follows.
const OTHER_SECTIONS: &str = "\n## Operator";
const EF_SEARCH: [u32; 5] = [20, 40, 64, 100, 200];

struct Options {
    quick: bool,
    write: bool,
}

impl Options {
    fn load_budget(&self) -> Budget {
        if self.quick {
            Budget {
                warmup: Duration::from_millis(300),
                max_time: Duration::from_millis(1500),
                max_requests: 100_000,
            }
        } else {
            Budget { warmup: Duration::from_secs(1), max_time: Duration::from_secs(6), max_requests: 500_000 }
        }
    }

    fn synthetic(&self) -> vectors::Shape {
        if self.quick {
            vectors::Shape { products: 10_000, centres: 50, queries: 50 }
        } else {
            vectors::Shape { products: 100_000, centres: 300, queries: 200 }
        }
    }
}

fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// A progress line on stderr.
fn log(msg: &str) {
    eprintln!("[bench {:>6.1}s] {msg}", started().elapsed().as_secs_f64());
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--baseline-server") {
        return baseline::main(false);
    }
    if args.iter().any(|a| a == baseline::RMCP_FLAG) {
        return baseline::main(true);
    }
    let opts = Options {
        quick: args.iter().any(|a| a == "--quick"),
        write: !args.iter().any(|a| a == "--no-write"),
    };
    started();
    mcp_fleet_server::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: Options) -> anyhow::Result<()> {
    let mut report = Report::new(opts.quick);
    log(&format!("machine: {} cores, load average {}", report.machine.cores, report.machine.load_start));
    let fx = Fixture::prepare(log).await?;
    report.dataset = fx.summary.clone();
    report.machine.database = report::database_versions(&fx.db.admin).await?;

    let scratch = std::env::temp_dir().join(format!("mcpfleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let no_model_config = scratch.join("no-model.yaml");
    std::fs::write(&no_model_config, format!("tools:\n  enabled: [{}]\n", TOOLS_WITHOUT_MODEL.join(", ")))?;

    log(
        "starting mcp-fleet-server (release) twice: with the local model, and with tools.enabled excluding the embedding tools",
    );
    let with_model = spawn_server("server, local model", &fx, &scratch, None)?;
    let without_model = spawn_server("server, no model", &fx, &scratch, Some(&no_model_config))?;
    let bare = ServerProcess::spawn(
        "bare axum",
        &std::env::current_exe()?,
        &["--baseline-server".to_owned()],
        &[],
        &scratch.join("baseline.log"),
        baseline::READY_PREFIX,
        Duration::from_secs(30),
    )?;
    let rmcp_min = ServerProcess::spawn(
        "minimal rmcp",
        &std::env::current_exe()?,
        &[baseline::RMCP_FLAG.to_owned()],
        &[],
        &scratch.join("baseline-rmcp.log"),
        baseline::READY_PREFIX,
        Duration::from_secs(30),
    )?;
    check_model_loading(&with_model, &without_model)?;
    let pool = fx.tenant_pool().await?;
    sanity_checks(&with_model, &without_model, &bare, &pool).await?;
    sanity_checks_date(&rmcp_min).await?;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = [with_model.memory()?, without_model.memory()?];
    log(&format!("idle RSS: {:.1} MB with the model, {:.1} MB without", mb(idle[0].rss), mb(idle[1].rss)));
    let sampler = RssSampler::start(vec![with_model.pid, without_model.pid]);
    let budget = opts.load_budget();

    // 2. The cheap tool against a bare axum handler.
    let date = tool_call(1, "get_current_utc_date", json!({}));
    for clients in CONCURRENCY {
        let baseline = measure(
            "bare axum get_current_utc_date",
            rpc_clients(bare.addr, clients, std::slice::from_ref(&date)).await?,
            budget,
        )
        .await?;
        let mcp = measure(
            "MCP get_current_utc_date",
            rpc_clients(with_model.addr, clients, std::slice::from_ref(&date)).await?,
            budget,
        )
        .await?;
        let minimal = measure(
            "minimal rmcp get_current_utc_date",
            rpc_clients(rmcp_min.addr, clients, std::slice::from_ref(&date)).await?,
            budget,
        )
        .await?;
        report.tool_vs_rmcp.push(Comparison::new(
            "get_current_utc_date",
            "minimal rmcp server",
            mcp.clone(),
            minimal,
        ));
        report.tool_vs_axum.push(Comparison::new(
            "get_current_utc_date",
            "bare axum JSON-RPC handler",
            mcp,
            baseline,
        ));
    }
    drop(rmcp_min);

    // 1. execute_sales_query against the same SQL through sqlx.
    for (name, sql) in [
        ("cheap query (orders per store, one day)", CHEAP_SQL),
        ("analytics (revenue by category, 2025)", ANALYTICS_SQL),
    ] {
        let body = tool_call(2, "execute_sales_query", json!({ "postgresql_query": sql }));
        for clients in CONCURRENCY {
            let raw = measure(&format!("raw sqlx: {name}"), sql_clients(&pool, clients, sql, false), budget)
                .await?;
            let mcp = measure(
                &format!("MCP: {name}"),
                rpc_clients(with_model.addr, clients, std::slice::from_ref(&body)).await?,
                budget,
            )
            .await?;
            report.query_vs_raw.push(Comparison::new(name, "raw sqlx, same role and transaction", mcp, raw));
        }
    }
    // The server runs model-written SQL as one-off (unnamed) statements; a cached prepared
    // statement is what a hand-written client would use for a repeated query.
    for clients in CONCURRENCY {
        let body = tool_call(3, "execute_sales_query", json!({ "postgresql_query": CHEAP_SQL }));
        let cached = measure(
            "raw sqlx, cached prepared statement: cheap query",
            sql_clients(&pool, clients, CHEAP_SQL, true),
            budget,
        )
        .await?;
        let mcp = measure("MCP: cheap query", rpc_clients(with_model.addr, clients, &[body]).await?, budget)
            .await?;
        report.query_vs_cached.push(Comparison::new(
            "cheap query",
            "raw sqlx, cached prepared statement",
            mcp,
            cached,
        ));
    }
    let load_peaks = sampler.take_peaks();

    // 3. Semantic search: the model alone, the catalog kNN alone, then the tool end to end.
    log("embedding latency: local model in this process, one query at a time");
    report.embed = semantic::embed_latency(fx.embedder.as_ref(), 200, Duration::from_secs(30)).await?;
    log(&format!("embedding p50 {:.2} ms", ms(report.embed.p50)));
    report.catalog_knn =
        semantic::catalog_knn_latency(&fx.db.admin, fx.embedder.as_ref(), 300, Duration::from_secs(20))
            .await?;
    log(&format!("catalog kNN p50 {:.2} ms", ms(report.catalog_knn.p50)));
    sampler.take_peaks();
    let bodies: Vec<Bytes> = semantic::QUERIES
        .iter()
        .enumerate()
        .map(|(i, q)| tool_call(10 + i as u64, "semantic_search_products", json!({ "query_description": q })))
        .collect();
    let semantic_budget = Budget {
        max_requests: 200,
        max_time: Duration::from_secs(if opts.quick { 3 } else { 15 }),
        ..budget
    };
    report.semantic_e2e = measure(
        "MCP semantic_search_products",
        rpc_clients(with_model.addr, 1, &bodies).await?,
        semantic_budget,
    )
    .await?;
    let semantic_peaks = sampler.take_peaks();

    // 4. Memory of the server without the model, under the same kinds of load.
    let short = Budget { max_time: budget.max_time / 2, ..budget };
    let cheap_body = tool_call(4, "execute_sales_query", json!({ "postgresql_query": CHEAP_SQL }));
    measure("no-model server: cheap query", rpc_clients(without_model.addr, 32, &[cheap_body]).await?, short)
        .await?;
    measure(
        "no-model server: get_current_utc_date",
        rpc_clients(without_model.addr, 32, std::slice::from_ref(&date)).await?,
        short,
    )
    .await?;
    let analytics_body = tool_call(5, "execute_sales_query", json!({ "postgresql_query": ANALYTICS_SQL }));
    measure(
        "no-model server: analytics",
        rpc_clients(without_model.addr, 32, &[analytics_body]).await?,
        short,
    )
    .await?;
    let no_model_peaks = sampler.take_peaks();
    sampler.stop().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = [with_model.memory()?, without_model.memory()?];
    report.memory = vec![
        MemoryRow::new(
            "local model loaded (all tools)",
            idle[0],
            load_peaks[0].max(semantic_peaks[0]),
            after[0],
        ),
        MemoryRow::new(
            "without the local model (tools.enabled excludes the embedding tools)",
            idle[1],
            no_model_peaks[1],
            after[1],
        ),
    ];
    drop((with_model, without_model, bare));
    pool.close().await;

    // 3b. kNN at scale, after the servers are gone so nothing competes with the index build.
    report.knn = Some(
        vectors::run(
            &fx.db.admin,
            opts.synthetic(),
            &EF_SEARCH,
            Duration::from_secs(if opts.quick { 10 } else { 60 }),
            log,
        )
        .await?,
    );

    report.finish();
    let markdown = report.markdown();
    println!("\n{markdown}");
    if opts.write && !opts.quick {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
        // Sections written by other benchmarks (`make bench-operator`) stay as they are.
        let kept = std::fs::read_to_string(&path)
            .ok()
            .and_then(|old| old.find(OTHER_SECTIONS).map(|at| old[at..].to_owned()))
            .unwrap_or_default();
        let text =
            if kept.is_empty() { markdown.clone() } else { format!("{}\n{kept}", markdown.trim_end()) };
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        log(&format!("wrote {}", path.canonicalize().unwrap_or(path).display()));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    log("done");
    Ok(())
}

fn spawn_server(
    name: &'static str,
    fx: &Fixture,
    scratch: &Path,
    config: Option<&Path>,
) -> anyhow::Result<ServerProcess> {
    let mut args: Vec<String> =
        ["serve", "--auth", "none", "--listen", "127.0.0.1:0", "--tenant", fx.tenant.as_str()]
            .into_iter()
            .map(str::to_owned)
            .collect();
    // The same 10 connections for the tools as the raw baseline has, plus the audit trail's own.
    args.extend(["--db-max-connections".to_owned(), (POOL_SIZE + 1).to_string()]);
    // The load comes from one caller: lift its fair share, which would otherwise be what is measured.
    for (flag, value) in [
        ("--per-subject-max-concurrent", "1000"),
        ("--per-subject-requests-per-minute", "1000000"),
        ("--per-subject-burst", "1000000"),
    ] {
        args.extend([flag.to_owned(), value.to_owned()]);
    }
    if let Some(c) = config {
        args.extend(["--config".to_owned(), c.display().to_string()]);
    }
    let log_file: PathBuf = scratch.join(format!("{}.log", name.replace([' ', ','], "-")));
    ServerProcess::spawn(
        name,
        Path::new(env!("CARGO_BIN_EXE_mcp-fleet-server")),
        &args,
        &[("MCP_FLEET_DATABASE_URL", fx.tenant_url()), ("MCP_FLEET_DATABASE_PASSWORD", fx.password.clone())],
        &log_file,
        "mcp-fleet-server: listening on ",
        Duration::from_secs(60),
    )
}

/// The model server says it loaded the model; the other must not have.
fn check_model_loading(with_model: &ServerProcess, without_model: &ServerProcess) -> anyhow::Result<()> {
    let loaded =
        |p: &ServerProcess| std::fs::read_to_string(&p.log).map(|t| t.contains("embedding model loaded"));
    anyhow::ensure!(loaded(with_model)?, "{} did not log `embedding model loaded`", with_model.name);
    anyhow::ensure!(!loaded(without_model)?, "{} loaded the embedding model", without_model.name);
    Ok(())
}

/// The minimal rmcp server answers the date call as the others do.
async fn sanity_checks_date(p: &ServerProcess) -> anyhow::Result<()> {
    let date = tool_call(1, "get_current_utc_date", json!({}));
    let text = tool_text(&RpcClient::connect(p.addr, vec![date]).await?.send().await?)
        .with_context(|| format!("{}: get_current_utc_date", p.name))?;
    anyhow::ensure!(text.starts_with("Current UTC Date/Time: "), "{}: {text}", p.name);
    Ok(())
}

/// One call of every workload, checked: both sides answer, and with the same number of rows.
async fn sanity_checks(
    with_model: &ServerProcess,
    without_model: &ServerProcess,
    bare: &ServerProcess,
    pool: &PgPool,
) -> anyhow::Result<()> {
    let date = tool_call(1, "get_current_utc_date", json!({}));
    for p in [with_model, without_model, bare] {
        let text = tool_text(&RpcClient::connect(p.addr, vec![date.clone()]).await?.send().await?)
            .with_context(|| format!("{}: get_current_utc_date", p.name))?;
        anyhow::ensure!(text.starts_with("Current UTC Date/Time: "), "{}: {text}", p.name);
    }
    for sql in [CHEAP_SQL, ANALYTICS_SQL] {
        let body = tool_call(2, "execute_sales_query", json!({ "postgresql_query": sql }));
        let text = tool_text(&RpcClient::connect(with_model.addr, vec![body]).await?.send().await?)
            .context("execute_sales_query")?;
        let compact: serde_json::Value = serde_json::from_str(&text)?;
        let mut tx = pool.begin_with(clients::BEGIN_TENANT_TX).await?;
        let rows = sqlx::query(sql).fetch_all(&mut *tx).await?;
        drop(tx);
        anyhow::ensure!(
            compact["n"].as_u64() == Some(rows.len() as u64) && !rows.is_empty(),
            "MCP returned {} rows, raw sqlx {}: {text}",
            compact["n"],
            rows.len()
        );
        log(&format!(
            "check: {} rows both ways; MCP result starts {}",
            rows.len(),
            text.chars().take(120).collect::<String>()
        ));
    }
    let body = tool_call(3, "semantic_search_products", json!({ "query_description": semantic::QUERIES[0] }));
    let text = tool_text(&RpcClient::connect(with_model.addr, vec![body]).await?.send().await?)
        .context("semantic_search_products")?;
    let compact: serde_json::Value = serde_json::from_str(&text)?;
    anyhow::ensure!(compact["n"].as_u64().unwrap_or(0) > 0, "semantic search found nothing: {text}");
    log(&format!("check: semantic search found {} products for {:?}", compact["n"], semantic::QUERIES[0]));
    Ok(())
}

async fn rpc_clients(addr: SocketAddr, n: usize, bodies: &[Bytes]) -> anyhow::Result<Vec<RpcClient>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(RpcClient::connect(addr, bodies.to_vec()).await?);
    }
    Ok(v)
}

fn sql_clients(pool: &PgPool, n: usize, sql: &'static str, persistent: bool) -> Vec<SqlClient> {
    (0..n).map(|_| SqlClient { pool: pool.clone(), sql, persistent }).collect()
}

async fn measure<C: Client>(what: &str, clients: Vec<C>, budget: Budget) -> anyhow::Result<Stats> {
    let n = clients.len();
    let stats = load::run(clients, budget).await.with_context(|| format!("{what} with {n} clients"))?;
    log(&format!(
        "{what}, {n} client(s): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} requests)",
        stats.per_second(),
        ms(stats.p50),
        ms(stats.p99),
        stats.requests
    ));
    Ok(stats)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
