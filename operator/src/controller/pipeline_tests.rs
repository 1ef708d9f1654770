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

use super::applied::Applied;
use super::reconcile::apply_tenant;
use super::watched::Watched;
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
    /// 200 (201 for a POST) with the request's own body given a uid and resourceVersion "1", as
    /// server-side apply of a new object does.
    Echo,
    /// 200 with this body.
    Json(serde_json::Value),
}

/// What the mocked API server saw and answered.
#[derive(Default)]
struct Served {
    /// The server-side applies: path and body.
    applies: Vec<(String, serde_json::Value)>,
    /// The objects it answered an apply with (as a watch would then show them).
    stored: Vec<serde_json::Value>,
}

/// Serves `expected` in order, checking each request's method and path (a path ending in `*` is a
/// prefix) and that every server-side apply is forced under the operator's field manager; then
/// expects no more.
async fn api_server(
    mut handle: Handle<Request<Body>, Response<Body>>,
    expected: Vec<(Method, String, Answer)>,
) -> Served {
    let mut served = Served::default();
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
            served
                .applies
                .push((seen.1.clone(), serde_json::from_slice(&body).expect("an applied object is JSON")));
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
                let mut object: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
                object["metadata"]["uid"] = format!("uid-{}", seen.1).into();
                object["metadata"]["resourceVersion"] = "1".into();
                if apply {
                    served.stored.push(object.clone());
                }
                let status = if method == Method::POST { StatusCode::CREATED } else { StatusCode::OK };
                (status, serde_json::to_vec(&object).unwrap())
            }
            Answer::Json(v) => (StatusCode::OK, serde_json::to_vec(&v).unwrap()),
        };
        send.send_response(Response::builder().status(status).body(Body::from(body)).unwrap());
    }
    assert!(handle.next_request().await.is_none(), "no request beyond the expected ones");
    served
}

/// What a reconcile needs, around `client`, with `admin_url` as the operator's database URL and
/// watches that have not listed.
fn context(client: Client, admin_url: &str) -> Context {
    context_watching(client, admin_url, Watched::new().0)
}

fn context_watching(client: Client, admin_url: &str, watched: Watched) -> Context {
    Context {
        recorder: Recorder::new(client.clone(), Reporter { controller: MANAGER.into(), instance: None }),
        client,
        defaults: Defaults { admin_url: Some(admin_url.to_owned()), ..defaults() },
        databases: Databases::default(),
        metrics: Arc::new(Metrics::default()),
        tenants: reflector::store::<McpTenant>().0,
        jobs: reflector::store().0,
        watched,
        applied: Applied::default(),
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        resync: Duration::from_secs(300),
    }
}

/// A minimal McpTenant with a tenant name of its own (in the shared template cluster), and a
/// database holding the sample stores.
async fn minimal_tenant() -> (mcp_fleet_testkit::TestDb, Arc<McpTenant>) {
    let db = mcp_fleet_testkit::TestDb::from_template("operator-stores", |pool| async move {
        mcp_fleet_testkit::pg::insert_sample_stores(&pool).await;
    })
    .await;
    let mut t = tenant(MINIMAL);
    t.spec.tenant = Some(mcp_fleet_testkit::pg::unique_name("t").replace('_', "-"));
    (db, Arc::new(t))
}

const NS: &str = "/api/v1/namespaces/retail";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/retail/events";

fn apis(group: &str, kind: &str, name: &str) -> String {
    format!("/apis/{group}/namespaces/retail/{kind}/{name}")
}

/// The requests of the minimal example's first reconcile, in order. Before the watches have
/// listed, the credentials Secret is read, and the children the spec does not want are looked up
/// to delete them if this McpTenant owns them; after, the watches say they do not exist.
fn first_reconcile(t: &McpTenant, watches_listed: bool) -> Vec<(Method, String, Answer)> {
    let mut expected = vec![
        // dereference: the stored credentials (the admin URL is the operator's own).
        (Method::GET, format!("{NS}/secrets/seattle-db-credentials"), Answer::NotFound),
        // (validate, build and the database step send nothing to the API server.)
        // apply, in order.
        (Method::PATCH, format!("{NS}/serviceaccounts/seattle"), Answer::Echo),
        (Method::PATCH, format!("{NS}/secrets/seattle-db-credentials"), Answer::Echo),
        (Method::PATCH, format!("{NS}/configmaps/seattle-config"), Answer::Echo),
        (Method::PATCH, format!("{NS}/services/seattle"), Answer::Echo),
        (Method::PATCH, apis("apps/v1", "deployments", "seattle"), Answer::Echo),
        (Method::GET, apis("autoscaling/v2", "horizontalpodautoscalers", "seattle"), Answer::NotFound),
        (Method::PATCH, apis("policy/v1", "poddisruptionbudgets", "seattle"), Answer::Echo),
        (Method::PATCH, apis("networking.k8s.io/v1", "networkpolicies", "seattle"), Answer::Echo),
        (Method::GET, apis("networking.k8s.io/v1", "ingresses", "seattle"), Answer::NotFound),
        (Method::GET, apis("batch/v1", "cronjobs", "seattle-backup"), Answer::NotFound),
        // status, then one Event per new condition (DatabaseReady, WorkloadReady,
        // BackupScheduled); Ready, still False, repeats WorkloadReady's reason and has none.
        (
            Method::PATCH,
            apis("mcpfleet.io/v1alpha1", "mcptenants", "seattle/status"),
            Answer::Json(serde_json::to_value(t).unwrap()),
        ),
        (Method::POST, EVENTS.to_owned(), Answer::Echo),
        (Method::POST, EVENTS.to_owned(), Answer::Echo),
        (Method::POST, EVENTS.to_owned(), Answer::Echo),
    ];
    if watches_listed {
        // Nor the credentials Secret: only the operator creates it, and it never did.
        expected.retain(|(method, _, _)| *method != Method::GET);
    }
    expected
}

#[tokio::test]
async fn a_reconcile_reads_then_writes_the_database_every_child_and_the_status_in_order() {
    let (db, t) = minimal_tenant().await;
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(api_server(handle, first_reconcile(&t, false)));
    let ctx = context(Client::new(service, "default"), &db.admin_url());
    let action = apply_tenant(t.clone(), &ctx).await.expect("the reconcile succeeds");
    assert_eq!(action, kube::runtime::controller::Action::requeue(Duration::from_secs(300)));
    drop(ctx);
    let served = server.await.expect("the mocked API server saw exactly the expected requests");
    assert_eq!(served.applies.len(), 8, "seven children and the status, each a forced apply as {MANAGER}");

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
        // No child, no database: only the status and one Event, Stalled's (Ready, False, repeats
        // its reason and has none).
        (
            Method::PATCH,
            "/apis/mcpfleet.io/v1alpha1/namespaces/retail/mcptenants/seattle/status".to_owned(),
            Answer::Json(tenant_json),
        ),
        (Method::POST, events.clone(), Answer::Echo),
    ];
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(api_server(handle, expected));
    // Nothing listens there: the database step must not run.
    let ctx = context(Client::new(service, "default"), "postgres://op:pw@127.0.0.1:1/zava");
    let action = apply_tenant(t, &ctx).await.expect("a stall is not an error");
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    drop(ctx);
    let applies = server.await.expect("exactly the expected requests").applies;
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

/// One reconcile of `t` against a mocked API server that expects `expected`, with the operator's
/// watches and memory of its applies kept across calls.
async fn reconcile_against(
    t: &Arc<McpTenant>,
    db: &mcp_fleet_testkit::TestDb,
    (watched, applied): (&Watched, &Applied),
    expected: Vec<(Method, String, Answer)>,
) -> Served {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(api_server(handle, expected));
    let mut ctx = context_watching(Client::new(service, "default"), &db.admin_url(), watched.clone());
    ctx.applied = applied.clone();
    let action = apply_tenant(t.clone(), &ctx).await.expect("the reconcile succeeds");
    assert_eq!(action, kube::runtime::controller::Action::requeue(Duration::from_secs(300)));
    drop(ctx);
    server.await.expect("the mocked API server saw exactly the expected requests")
}

#[tokio::test]
async fn once_the_watches_show_what_it_applied_a_reconcile_that_changes_nothing_sends_no_request() {
    let (db, t) = minimal_tenant().await;
    let (watched, mut watches) = Watched::new();
    watches.list_nothing();
    let operator = (&watched, &Applied::default());

    // The first reconcile writes every child; the watches then show what the API server stored.
    let first = reconcile_against(&t, &db, operator, first_reconcile(&t, true)).await;
    assert_eq!(first.applies.len(), 8, "seven children and the status");
    for object in &first.stored {
        watches.show(object);
    }
    let status = first.applies.last().map(|(_, body)| body["status"].clone()).expect("a status");
    let mut t = (*t).clone();
    t.status = Some(serde_json::from_value(status).expect("the status written"));
    let t = Arc::new(t);

    // Nothing changed: no request at all (the database step still runs, and writes nothing).
    assert!(reconcile_against(&t, &db, operator, vec![]).await.applies.is_empty());

    // Someone edits the ConfigMap: the watch shows a new resourceVersion, and only the ConfigMap
    // is applied again.
    let mut edited = first.stored.iter().find(|o| o["kind"] == "ConfigMap").expect("the ConfigMap").clone();
    edited["metadata"]["resourceVersion"] = "2".into();
    watches.show(&edited);
    let again = vec![(Method::PATCH, format!("{NS}/configmaps/seattle-config"), Answer::Echo)];
    let served = reconcile_against(&t, &db, operator, again).await;
    assert_eq!(served.applies.len(), 1);
}
