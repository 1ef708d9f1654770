//! `make demo`, run non-interactively (`scripts/demo.sh --smoke`) in a scratch run directory:
//! the whole fleet comes up on this machine's node (operator and servers as pods, the tour through
//! the ingress) and the tour's results are what a newcomer should see.
// test group: node (scripts/test.sh: it holds the machine's one node)

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

#[test]
fn make_demo_brings_up_the_fleet_and_the_tour_shows_isolation() {
    let root = mcp_fleet_testkit::python::repo_root();
    let run = std::env::temp_dir().join(mcp_fleet_testkit::pg::unique_name("mcpfleet-demo"));
    std::fs::create_dir_all(&run).unwrap();
    let issuer_port = mcp_fleet_testkit::process::free_port();
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .arg("--smoke")
        .env("MCP_FLEET_RUN_DIR", &run)
        .env("MCP_FLEET_DEMO_ISSUER_PORT", issuer_port.to_string())
        .current_dir(&root)
        .output()
        .expect("run scripts/demo.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "demo failed after {:?}:\n{text}", started.elapsed());
    // A hang guard, not the performance target: the demo prints its own timings (about 40 s warm
    // on 2 idle cores once built; this run may include building the binaries on a busy machine).
    assert!(started.elapsed() < Duration::from_secs(1500), "the demo took {:?}", started.elapsed());

    let tour: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("demo/tour.json")).expect("tour.json"))
            .unwrap();
    // Every tool of the catalogue is offered.
    let mut listed: Vec<&str> = tour["tools"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let mut catalogue: Vec<&str> = mcp_fleet_core::tools::ToolName::ALL.iter().map(|t| t.as_str()).collect();
    listed.sort_unstable();
    catalogue.sort_unstable();
    assert_eq!(listed, catalogue, "{tour}");
    assert_eq!(tour["tenants"]["seattle"]["stores"], serde_json::json!(["Zava Retail Seattle"]));
    let mut east: Vec<String> =
        serde_json::from_value(tour["tenants"]["eastside"]["stores"].clone()).unwrap();
    east.sort();
    assert_eq!(east, ["Zava Retail Bellevue", "Zava Retail Redmond"]);
    let (a, b) = (
        tour["tenants"]["seattle"]["revenue_2025"].as_f64().unwrap(),
        tour["tenants"]["eastside"]["revenue_2025"].as_f64().unwrap(),
    );
    assert!(a > 0.0 && b > 0.0 && a != b, "each tenant gets its own numbers: {a} vs {b}");
    assert_eq!(tour["cross_tenant_rows"], serde_json::json!(0), "eastside must not count Seattle's orders");
    assert_eq!(tour["mapping_refused"], serde_json::json!(true));
    assert_eq!(tour["stacked_refused"], serde_json::json!(true));
    let garden = tour["semantic"].as_array().unwrap();
    assert!(
        garden.iter().any(|p| {
            let p = p.as_str().unwrap_or_default();
            p.contains("Hose") || p.contains("Planter") || p.contains("Garden")
        }),
        "{garden:?}"
    );
    assert!(
        text.contains("kubectl get mcpt") && text.contains("seattle") && text.contains("eastside"),
        "{text}"
    );
    assert!(text.contains("kubectl get mcpt,pods") && text.contains("Running"), "{text}");
    // Everything was stopped again: the node is gone with its bridge, and so is the issuer.
    let bridge = Command::new("ip").args(["link", "show", "mcpf0"]).output().expect("ip link");
    assert!(!bridge.status.success(), "the demo left its node's bridge behind");
    let issuer =
        Command::new("pgrep").args(["-f", &format!("demo_issuer.py serve .*--port {issuer_port}")]).output();
    assert!(issuer.map(|o| o.stdout.is_empty()).unwrap_or(true), "the demo left its issuer running");
    let _ = std::fs::remove_dir_all(&run);
}
