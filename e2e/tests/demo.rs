//! `make demo` in a scratch run directory, as a user runs it: the whole fleet comes up on this
//! machine's node (operator and servers as pods, the tour through the ingress), the tour's results
//! are what a newcomer should see, and `make demo-down` from elsewhere ends the serving demo.
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
    let demo = |mode: Option<&str>, log: &std::path::Path| {
        let log = std::fs::File::create(log).expect("demo log");
        let mut cmd = Command::new("bash");
        cmd.arg(root.join("scripts/demo.sh"))
            .args(mode)
            .env("MCP_FLEET_RUN_DIR", &run)
            .env("MCP_FLEET_DEMO_ISSUER_PORT", issuer_port.to_string())
            .current_dir(&root)
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        cmd
    };
    let log = run.join("demo.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    let mut serving = demo(None, &log).spawn().expect("run scripts/demo.sh");
    // A hang guard, not the performance target: the demo prints its own timings (about 40 s warm
    // on 2 idle cores once built; this run may include building the binaries on a busy machine).
    let up_by = started + Duration::from_secs(1500);
    while !read_log().contains("\nServing.") {
        if let Some(status) = serving.try_wait().unwrap() {
            panic!("demo ended ({status}) after {:?} before serving:\n{}", started.elapsed(), read_log());
        }
        assert!(Instant::now() < up_by, "the demo took {:?}:\n{}", started.elapsed(), read_log());
        std::thread::sleep(Duration::from_millis(500));
    }
    // `make demo-down` in another terminal: the serving demo tears down, says so and ends well.
    let down = demo(Some("down"), &run.join("down.log")).status().expect("run scripts/demo.sh down");
    assert!(down.success(), "demo down failed: {}", std::fs::read_to_string(run.join("down.log")).unwrap());
    let ended_by = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = serving.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > ended_by {
            let _ = serving.kill();
            panic!("the serving demo was still running 180 s after demo down:\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = read_log();
    assert!(status.success(), "the demo ended with {status} after demo down:\n{text}");
    assert!(text.trim_end().ends_with("demo: stopped"), "{text}");

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
