//! Reconciles against a mocked Kubernetes API (tower-test, as kube-rs/controller-rs does it): the
//! minimal example with a real PostgreSQL, whose requests, in order, are exactly the pipeline's
//! reads and writes; and a spec the server would refuse, which stalls having written only its
//! status.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use tower_test::mock::Handle;

use super::reconcile::apply_tenant;
use super::{Backoff, Context};
use crate::crd::McpTenant;
use crate::database::Databases;
use crate::metrics::Metrics;
use crate::resources::MANAGER;
use crate::resources::fixtures::{MINIMAL, defaults, tenant};
use crate::validate::Defaults;

/// What the mocked API server answers to one expected request.
enum Answer {
    /// 404: the object does not exist.
    NotFound,
    /// 200 (201 for a POST) with the request's own body, as server-side apply of a new object does.
    Echo,
    /// 200 with this body.
    Json(serde_json::Value),
}

/// Serves `expected` in order, checking each request's method and path (a path ending in `*` is a
/// prefix) and that every server-side apply is forced under the operator's field manager; then
/// expects no more. Returns the server-side applies it saw: path and body.
async fn api_server(
    mut handle: Handle<Request<Body>, Response<Body>>,
    expected: Vec<(Method, String, Answer)>,
) -> Vec<(String, serde_json::Value)> {
    let mut applies = Vec::new();
    for (i, (method, path, answer)) in expected.into_iter().enumerate() {
        let (request, send) =
            handle.next_request().await.unwrap_or_else(|| panic!("request {i} ({method} {path}) never came"));
        let seen = (request.method().clone(), request.uri().path().to_owned());
        let matches = match path.strip_suffix('*') {
            Some(prefix) => seen.1.starts_with(prefix),
            None => seen.1 == path,
        };
        assert!(seen.0 == method && matches, "request {i}: {seen:?}, expected {method} {path}");
        let query = request.uri().query().unwrap_or_default().to_owned();
        let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let apply = content_type == Some("application/apply-patch+yaml");
        if apply {
            assert!(
                query.contains(&format!("fieldManager={MANAGER}")) && query.contains("force=true"),
                "{path}?{query}"
            );
        }
        let body = request.into_body().collect_bytes().await.expect("request body");
        if apply {
            applies.push((seen.1.clone(), serde_json::from_slice(&body).expect("an applied object is JSON")));
        }
        let (status, body) = match answer {
            Answer::NotFound => (
                StatusCode::NOT_FOUND,
                serde_json::to_vec(&serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                    "code": 404, "message": format!("{path} not found"),
                }))
                .unwrap(),
            ),
            Answer::Echo => {
                (if method == Method::POST { StatusCode::CREATED } else { StatusCode::OK }, body.to_vec())
            }
            Answer::Json(v) => (StatusCode::OK, serde_json::to_vec(&v).unwrap()),
        };
        send.send_response(Response::builder().status(status).body(Body::from(body)).unwrap());
    }
    assert!(handle.next_request().await.is_none(), "no request beyond the expected ones");
    applies
}

/// What a reconcile needs, around `client`, with `admin_url` as the operator's database URL.
fn context(client: Client, admin_url: &str) -> Context {
    Context {
        recorder: Recorder::new(client.clone(), Reporter { controller: MANAGER.into(), instance: None }),
        client,
        defaults: Defaults { admin_url: Some(admin_url.to_owned()), ..defaults() },
        databases: Databases::default(),
        metrics: Arc::new(Metrics::default()),
        tenants: reflector::store::<McpTenant>().0,
        jobs: reflector::store().0,
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        resync: Duration::from_secs(300),
    }
}

#[tokio::test]
async fn a_reconcile_reads_then_writes_the_database_every_child_and_the_status_in_order() {
    // PostgreSQL with the sample stores, reached as its admin.
    let db = mcp_fleet_testkit::TestDb::from_template("operator-stores", |pool| async move {
        mcp_fleet_testkit::pg::insert_sample_stores(&pool).await;
    })
    .await;

    let mut t = tenant(MINIMAL);
    // A tenant name of its own in the shared template cluster.
    t.spec.tenant = Some(mcp_fleet_testkit::pg::unique_name("t").replace('_', "-"));
    let t = Arc::new(t);

    let ns = "/api/v1/namespaces/retail";
    let apis = |group: &str, kind: &str, name: &str| format!("/apis/{group}/namespaces/retail/{kind}/{name}");
    let events = "/apis/events.k8s.io/v1/namespaces/retail/events".to_owned();
    let expected = vec![
        // dereference: the stored credentials (the admin URL is the operator's own).
        (Method::GET, format!("{ns}/secrets/seattle-db-credentials"), Answer::NotFound),
        // (validate, build and the database step send nothing to the API server.)
        // apply, in order; unwanted children are looked up to delete them if this McpTenant owns them.
        (Method::PATCH, format!("{ns}/serviceaccounts/seattle"), Answer::Echo),
        (Method::PATCH, format!("{ns}/secrets/seattle-db-credentials"), Answer::Echo),
        (Method::PATCH, format!("{ns}/configmaps/seattle-config"), Answer::Echo),
        (Method::PATCH, format!("{ns}/services/seattle"), Answer::Echo),
        (Method::PATCH, apis("apps/v1", "deployments", "seattle"), Answer::Echo),
        (Method::GET, apis("autoscaling/v2", "horizontalpodautoscalers", "seattle"), Answer::NotFound),
        (Method::PATCH, apis("policy/v1", "poddisruptionbudgets", "seattle"), Answer::Echo),
        (Method::PATCH, apis("networking.k8s.io/v1", "networkpolicies", "seattle"), Answer::Echo),
        (Method::GET, apis("networking.k8s.io/v1", "ingresses", "seattle"), Answer::NotFound),
        (Method::GET, apis("batch/v1", "cronjobs", "seattle-backup"), Answer::NotFound),
        // status, then one Event per new condition (Ready, DatabaseReady, WorkloadReady,
        // BackupScheduled); WorkloadReady's reason is Ready's (Progressing), so the recorder counts
        // it as a repeat of that Event (a patch of its series) instead of creating one.
        (
            Method::PATCH,
            apis("mcpfleet.io/v1alpha1", "mcptenants", "seattle/status"),
            Answer::Json(serde_json::to_value(&*t).unwrap()),
        ),
        (Method::POST, events.clone(), Answer::Echo),
        (Method::POST, events.clone(), Answer::Echo),
        (Method::PATCH, format!("{events}/seattle.*"), Answer::Echo),
        (Method::POST, events, Answer::Echo),
    ];

    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(api_server(handle, expected));
    let ctx = context(Client::new(service, "default"), &db.admin_url());
    let action = apply_tenant(t.clone(), &ctx).await.expect("the reconcile succeeds");
    assert_eq!(action, kube::runtime::controller::Action::requeue(Duration::from_secs(300)));
    drop(ctx);
    let applies = server.await.expect("the mocked API server saw exactly the expected requests");
    assert_eq!(applies.len(), 8, "seven children and the status, each a forced apply as {MANAGER}");

    // The database step ran: the tenant's roles own the Seattle store.
    let login = crate::validate::tenant_name(&t).unwrap().login_role();
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
        .bind(&login)
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert!(exists, "{login} was created");
}

#[tokio::test]
async fn a_spec_the_server_would_refuse_stalls_before_anything_is_written() {
    // Roles inheriting in a cycle: the CRD schema cannot see it, the server would refuse it.
    let mut t = tenant(MINIMAL);
    let role = |parent: &str| mcp_fleet_core::server_config::RoleSection {
        inherits: vec![parent.into()],
        ..Default::default()
    };
    t.spec.auth.roles.insert("a".into(), role("b"));
    t.spec.auth.roles.insert("b".into(), role("a"));
    let t = Arc::new(t);

    let tenant_json = serde_json::to_value(&*t).unwrap();
    let events = "/apis/events.k8s.io/v1/namespaces/retail/events".to_owned();
    let expected = vec![
        (
            Method::GET,
            "/api/v1/namespaces/retail/secrets/seattle-db-credentials".to_owned(),
            Answer::NotFound,
        ),
        // No child, no database: only the status and its Events (Ready and Stalled share the reason,
        // so the second is a repeat of the first).
        (
            Method::PATCH,
            "/apis/mcpfleet.io/v1alpha1/namespaces/retail/mcptenants/seattle/status".to_owned(),
            Answer::Json(tenant_json),
        ),
        (Method::POST, events.clone(), Answer::Echo),
        (Method::PATCH, format!("{events}/seattle.*"), Answer::Echo),
    ];
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(api_server(handle, expected));
    // Nothing listens there: the database step must not run.
    let ctx = context(Client::new(service, "default"), "postgres://op:pw@127.0.0.1:1/zava");
    let action = apply_tenant(t, &ctx).await.expect("a stall is not an error");
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    drop(ctx);
    let applies = server.await.expect("exactly the expected requests");
    assert_eq!(applies.len(), 1, "only the status is applied");
    let conditions = applies[0].1["status"]["conditions"].as_array().unwrap().clone();
    let stalled = conditions.iter().find(|c| c["type"] == "Stalled").expect("a Stalled condition");
    assert_eq!(
        (stalled["status"].as_str(), stalled["reason"].as_str()),
        (Some("True"), Some("InvalidServerConfig"))
    );
    let message = stalled["message"].as_str().unwrap();
    assert!(message.contains("auth.roles inherit in a cycle: a -> b -> a"), "{message}");
}
