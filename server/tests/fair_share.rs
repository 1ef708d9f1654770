//! Fair sharing between callers (`limits.perSubject`) through a real MCP client over HTTP: a
//! caller past its rate or its running calls gets a rate-limited JSON-RPC error that says when to
//! retry, while other callers are served; refusals are counted and audited.

mod support;

use std::time::{Duration, Instant};

use mcp_fleet_core::server_config::{PerSubjectSection, ServerConfigFile};
use rmcp::ServiceError;
use rmcp::model::ErrorData;
use serde_json::json;
use support::{Opts, call, call_raw, client, embedded_db, metrics, server, tenant, wait_for_audit};

/// The rate-limited error of a refused call.
fn refusal(result: Result<rmcp::model::CallToolResult, ServiceError>) -> ErrorData {
    match result {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("expected a rate-limited error, got {other:?}"),
    }
}

fn with_limits(per_subject: PerSubjectSection) -> Opts {
    let mut file = ServerConfigFile::default();
    file.limits.per_subject = per_subject;
    Opts { file: Some(file), statement_timeout: Some("3s".into()), ..Default::default() }
}

/// The sample's manager header value of `store`.
async fn manager_of(db: &mcp_fleet_testkit::TestDb, store: i32) -> String {
    sqlx::query_scalar::<_, uuid::Uuid>("SELECT rls_user_id FROM retail.stores WHERE store_id = $1")
        .bind(store)
        .fetch_one(&db.admin)
        .await
        .expect("a seeded store")
        .to_string()
}

#[tokio::test]
async fn a_burst_past_the_rate_is_refused_with_when_to_retry_while_another_caller_is_served() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1, 2]).await;
    let limits = PerSubjectSection { requests_per_minute: Some(6), burst: Some(2), ..Default::default() };
    let srv = server(&db, &t, with_limits(limits)).await;
    let (alice_id, bob_id) = (manager_of(&db, 1).await, manager_of(&db, 2).await);
    let alice = client(&srv.url, &[("x-rls-user-id", &alice_id)]).await;
    let bob = client(&srv.url, &[("x-rls-user-id", &bob_id)]).await;

    for _ in 0..2 {
        assert!(!call(&alice, "get_current_utc_date", json!({})).await.0);
    }
    let e = refusal(call_raw(&alice, "get_current_utc_date", json!({})).await);
    assert_eq!(e.code.0, -32029, "{e:?}");
    assert!(e.message.contains("rate limited") && e.message.contains("6 tool calls per minute"), "{e:?}");
    let data = e.data.expect("retry data");
    let retry = data["retryAfterSeconds"].as_u64().expect("seconds");
    assert!((1..=10).contains(&retry), "one call every 10 s at 6 a minute: {data}");
    assert_eq!(data["limit"], json!("rate"));

    // Another caller, and the head office without the header, still have their own shares.
    let (err, text) = call(&bob, "get_current_utc_date", json!({})).await;
    assert!(!err, "{text}");
    let anyone = client(&srv.url, &[]).await;
    assert!(!call(&anyone, "get_current_utc_date", json!({})).await.0);

    let m = metrics(&srv).await;
    assert!(m.contains("mcpfleet_rate_limited_total{kind=\"rate\"} 1"), "{m}");
    assert!(
        m.contains("mcpfleet_tool_calls_total{outcome=\"rejected\",tool=\"get_current_utc_date\"} 1"),
        "{m}"
    );
    let rows = wait_for_audit(&db, 5).await;
    let refused: Vec<_> = rows.iter().filter(|r| r.outcome == "rejected").collect();
    assert_eq!(refused.len(), 1, "{rows:?}");
    assert_eq!(refused[0].subject, format!("x-rls-user-id:{alice_id}"));
    assert!(refused[0].error.as_deref().unwrap_or_default().contains("rate limited"), "{rows:?}");
}

#[tokio::test]
async fn a_caller_past_its_running_calls_is_refused_until_one_ends_and_others_are_served() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1, 2]).await;
    let srv =
        server(&db, &t, with_limits(PerSubjectSection { max_concurrent: Some(1), ..Default::default() }))
            .await;
    let (alice_id, bob_id) = (manager_of(&db, 1).await, manager_of(&db, 2).await);
    let alice = client(&srv.url, &[("x-rls-user-id", &alice_id)]).await;
    let bob = client(&srv.url, &[("x-rls-user-id", &bob_id)]).await;

    // A query that runs until the 3 s statement timeout stops it: alice's one running call.
    let endless = json!({ "postgresql_query":
        "SELECT count(*) FROM retail.order_items a, retail.order_items b, retail.order_items c" });
    let slow = {
        let alice = client(&srv.url, &[("x-rls-user-id", &alice_id)]).await;
        tokio::spawn(async move { call(&alice, "execute_sales_query", endless).await })
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while srv.state.fair_share.callers_running() == 0 {
        assert!(Instant::now() < deadline, "the slow call never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let e = refusal(call_raw(&alice, "get_current_utc_date", json!({})).await);
    assert_eq!(e.code.0, -32029, "{e:?}");
    assert!(e.message.contains("1 tool calls running"), "{e:?}");
    assert_eq!(e.data, Some(json!({"retryAfterSeconds": 1, "limit": "concurrency"})));
    let (err, text) = call(&bob, "get_current_utc_date", json!({})).await;
    assert!(!err, "another caller is served meanwhile: {text}");

    let (err, text) = slow.await.expect("the slow call's task");
    assert!(err && text.contains("statement timeout"), "{text}");
    assert!(!call(&alice, "get_current_utc_date", json!({})).await.0, "served again once it ended");
    let m = metrics(&srv).await;
    assert!(m.contains("mcpfleet_rate_limited_total{kind=\"concurrency\"} 1"), "{m}");
}
