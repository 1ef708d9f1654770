//! The operator's tenancy calls against a real PostgreSQL (throwaway cluster, migrated template
//! with the 8 sample stores), as a non-superuser member of `mcpfleet_operator`.

use mcp_fleet_core::TenantName;
use mcp_fleet_core::tenant::{generate_password, scram_verifier};
use mcp_fleet_operator::database::{
    AppliedTenant, Databases, DbError, Retired, RoleLimits, apply_tenant, drop_tenant, retire_other_login,
};
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::pg::{create_operator_login, unique_name};
use sqlx::{Connection as _, Executor, PgConnection};

const LIMITS: RoleLimits = RoleLimits { connection_limit: 5, statement_timeout_ms: 3000 };

/// A migrated database with the sample stores (ids 1..8), and an operator login in
/// `mcpfleet_operator`: returns the database and the operator's admin URL.
async fn database() -> (TestDb, String) {
    let db = TestDb::from_template("operator-stores", |pool| async move {
        mcp_fleet_testkit::pg::insert_sample_stores(&pool).await;
    })
    .await;
    let (op, pw) = create_operator_login(&db.admin).await;
    let url = db.url_as(&op, &pw);
    (db, url)
}

fn tenant() -> TenantName {
    TenantName::new(unique_name("t").replace('_', "-")).expect("a valid generated name")
}

fn refs(stores: &[&str]) -> Vec<String> {
    stores.iter().map(|s| s.to_string()).collect()
}

async fn visible_stores_checked(conn: &mut PgConnection) -> Result<Vec<i32>, sqlx::Error> {
    sqlx::query_scalar("SELECT store_id FROM retail.stores ORDER BY 1").fetch_all(conn).await
}

async fn visible_stores(conn: &mut PgConnection) -> Vec<i32> {
    visible_stores_checked(conn).await.expect("read stores")
}

#[tokio::test]
async fn a_tenant_login_sees_exactly_its_stores_and_follows_store_changes() {
    let (db, url) = database().await;
    let pool = Databases::default().pool(&url, &db.name).unwrap();
    let t = tenant();
    let pw = generate_password();
    let v = scram_verifier(&pw);
    let applied = apply_tenant(
        &pool,
        &t,
        &t.login_role(),
        &refs(&["Zava Retail Seattle", "6"]),
        Some(&v),
        None,
        LIMITS,
    )
    .await
    .unwrap();
    assert!(applied.created);
    assert_eq!(applied.login_role, t.login_role());
    assert_eq!(applied.store_ids, vec![1, 6]);
    let mut conn = db.connect_as(&t.login_role(), &pw).await.unwrap();
    assert_eq!(visible_stores(&mut conn).await, vec![1, 6]);
    drop(conn);

    // Idempotent without a verifier: the password stays; the mapping follows the spec.
    let again = apply_tenant(&pool, &t, &t.login_role(), &refs(&["3"]), None, None, LIMITS).await.unwrap();
    assert!(!again.created);
    let mut conn = db.connect_as(&t.login_role(), &pw).await.unwrap();
    assert_eq!(visible_stores(&mut conn).await, vec![3]);
    let limit: i32 = sqlx::query_scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1")
        .bind(t.login_role())
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(limit, 5);
}

#[tokio::test]
async fn a_rotation_keeps_the_old_login_until_it_is_retired_then_refuses_it() {
    let (db, url) = database().await;
    let pool = Databases::default().pool(&url, &db.name).unwrap();
    let t = tenant();
    let [a, b] = t.login_roles();
    let old = generate_password();
    apply_tenant(&pool, &t, &a, &refs(&["2"]), Some(&scram_verifier(&old)), None, LIMITS).await.unwrap();
    assert_eq!(
        retire_other_login(&pool, &t, &a, false).await.unwrap(),
        Retired::Already,
        "there is no second role yet"
    );
    // A pod of the current rollout holds a session.
    let old_pod = db.connect_as(&a, &old).await.unwrap();

    // The rotation: a new password on the other role; both log in and see the same stores while
    // the pods roll.
    let new = generate_password();
    let applied =
        apply_tenant(&pool, &t, &b, &refs(&["2"]), Some(&scram_verifier(&new)), None, LIMITS).await.unwrap();
    assert_eq!(applied.login_role, b);
    let mut new_pod = db.connect_as(&b, &new).await.unwrap();
    assert_eq!(visible_stores(&mut new_pod).await, vec![2]);
    let mut late = db.connect_as(&a, &old).await.expect("an old pod's new connection still logs in");
    assert_eq!(visible_stores(&mut late).await, vec![2]);
    drop(late);
    let again = apply_tenant(&pool, &t, &b, &refs(&["2"]), None, None, LIMITS).await.unwrap();
    assert!(!again.created);
    let current: bool = sqlx::query_scalar("SELECT tenancy.tenant_is_current($1, '{2}', $2, $3, $4)")
        .bind(t.as_str())
        .bind(LIMITS.connection_limit)
        .bind(LIMITS.statement_timeout_ms)
        .bind(&b)
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert!(current, "an idle reconcile after the switch takes the read-only path");

    // Retired only once no session of the old role is left.
    assert_eq!(retire_other_login(&pool, &t, &b, false).await.unwrap(), Retired::Busy);
    old_pod.close().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let retired = loop {
        match retire_other_login(&pool, &t, &b, false).await.unwrap() {
            Retired::Busy if std::time::Instant::now() < deadline => tokio::task::yield_now().await,
            other => break other,
        }
    };
    assert_eq!(retired, Retired::Now, "the closed session's backend is gone within 10 s");
    let err = db.connect_as(&a, &old).await.expect_err("the old password no longer works").to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(db.connect_as(&b, &new).await.is_ok());
    assert_eq!(retire_other_login(&pool, &t, &b, false).await.unwrap(), Retired::Already);

    // The next rotation goes back to the first role, which logs in again with its new password.
    let newer = generate_password();
    apply_tenant(&pool, &t, &a, &refs(&["2"]), Some(&scram_verifier(&newer)), None, LIMITS).await.unwrap();
    let mut back = db.connect_as(&a, &newer).await.unwrap();
    assert_eq!(visible_stores(&mut back).await, vec![2]);
    drop(back);
    // A session of the old role that outlives the rollout (someone else holding the password)
    // does not keep it alive: forced, it is ended and the role retired.
    let mut squatter = db.connect_as(&b, &new).await.unwrap();
    assert_eq!(retire_other_login(&pool, &t, &a, false).await.unwrap(), Retired::Busy);
    assert_eq!(retire_other_login(&pool, &t, &a, true).await.unwrap(), Retired::Now);
    assert!(visible_stores_checked(&mut squatter).await.is_err(), "the squatter's session was ended");
    let err = db.connect_as(&b, &new).await.expect_err("and cannot log in again").to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    // A login name that is not the tenant's is refused.
    let err = apply_tenant(&pool, &t, "postgres", &refs(&["2"]), None, None, LIMITS).await.unwrap_err();
    assert!(err.to_string().contains("is not one of tenant"), "{err}");
}

#[tokio::test]
async fn rotation_on_one_role_makes_the_new_password_work_and_the_old_one_fail() {
    let (db, url) = database().await;
    let pool = Databases::default().pool(&url, &db.name).unwrap();
    let t = tenant();
    let old = generate_password();
    apply_tenant(&pool, &t, &t.login_role(), &refs(&["2"]), Some(&scram_verifier(&old)), None, LIMITS)
        .await
        .unwrap();
    let new = generate_password();
    apply_tenant(&pool, &t, &t.login_role(), &refs(&["2"]), Some(&scram_verifier(&new)), None, LIMITS)
        .await
        .unwrap();
    assert!(db.connect_as(&t.login_role(), &new).await.is_ok());
    let err = db.connect_as(&t.login_role(), &old).await.unwrap_err();
    assert!(err.to_string().contains("password authentication failed"), "{err}");
}

#[tokio::test]
async fn a_login_role_lost_outside_the_operator_comes_back_with_the_stored_password() {
    let (db, url) = database().await;
    let pool = Databases::default().pool(&url, &db.name).unwrap();
    let t = tenant();
    let pw = generate_password();
    let v = scram_verifier(&pw);
    apply_tenant(&pool, &t, &t.login_role(), &refs(&["4"]), Some(&v), None, LIMITS).await.unwrap();
    db.admin.execute(sqlx::AssertSqlSafe(format!("DROP ROLE \"{}\"", t.login_role()))).await.unwrap();
    let err = apply_tenant(&pool, &t, &t.login_role(), &refs(&["4"]), None, None, LIMITS).await.unwrap_err();
    assert_eq!(err.reason(), "StoresRejected", "{err}");
    apply_tenant(&pool, &t, &t.login_role(), &refs(&["4"]), None, Some(&pw), LIMITS).await.unwrap();
    let mut conn = db.connect_as(&t.login_role(), &pw).await.unwrap();
    assert_eq!(visible_stores(&mut conn).await, vec![4]);
}

#[tokio::test]
async fn refusals_name_the_problem_and_how_to_fix_it() {
    let (db, url) = database().await;
    let pool = Databases::default().pool(&url, &db.name).unwrap();
    let owner = tenant();
    apply_tenant(&pool, &owner, &owner.login_role(), &refs(&["5"]), Some(&scram_verifier("x")), None, LIMITS)
        .await
        .unwrap();

    let other = tenant();
    let err = apply_tenant(
        &pool,
        &other,
        &other.login_role(),
        &refs(&["Nowhere"]),
        Some(&scram_verifier("x")),
        None,
        LIMITS,
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), "StoresRejected");
    assert!(err.needs_user_action());
    let msg = err.to_string();
    assert!(msg.contains("unknown store 'Nowhere'") && msg.contains("'Zava Retail Seattle'"), "{msg}");

    let other = tenant();
    let err = apply_tenant(
        &pool,
        &other,
        &other.login_role(),
        &refs(&["5"]),
        Some(&scram_verifier("x")),
        None,
        LIMITS,
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), "StoreOwnedByAnotherTenant");
    assert!(err.to_string().contains(owner.as_str()), "{err}");

    let squat = tenant();
    db.admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE ROLE \"{}\" NOLOGIN", squat.group_role())))
        .await
        .unwrap();
    let err = apply_tenant(
        &pool,
        &squat,
        &squat.login_role(),
        &refs(&["7"]),
        Some(&scram_verifier("x")),
        None,
        LIMITS,
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), "RoleNotManaged");
    assert!(err.to_string().contains("choose another tenant name"), "{err}");
}

#[tokio::test]
async fn a_role_outside_mcpfleet_operator_is_told_what_is_missing() {
    let (db, _) = database().await;
    let plain = unique_name("plain");
    db.admin.execute(sqlx::AssertSqlSafe(format!("CREATE ROLE {plain} LOGIN PASSWORD 'pw'"))).await.unwrap();
    let pool = Databases::default().pool(&db.url_as(&plain, "pw"), &db.name).unwrap();
    let other = tenant();
    let err = apply_tenant(
        &pool,
        &other,
        &other.login_role(),
        &refs(&["1"]),
        Some(&scram_verifier("x")),
        None,
        LIMITS,
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), "OperatorNotPermitted", "{err}");
    assert!(err.to_string().contains("mcpfleet_operator"), "{err}");
}

#[tokio::test]
async fn drop_removes_all_three_roles_and_is_idempotent() {
    let (db, url) = database().await;
    let pool = Databases::default().pool(&url, &db.name).unwrap();
    let t = tenant();
    apply_tenant(&pool, &t, &t.login_role(), &refs(&["8"]), Some(&scram_verifier("x")), None, LIMITS)
        .await
        .unwrap();
    let [a, b] = t.login_roles();
    apply_tenant(&pool, &t, &b, &refs(&["8"]), Some(&scram_verifier("y")), None, LIMITS).await.unwrap();
    assert!(drop_tenant(&pool, &t).await.unwrap());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2, $3)")
        .bind(t.group_role())
        .bind(a)
        .bind(b)
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(!drop_tenant(&pool, &t).await.unwrap(), "nothing left to drop");
}

#[tokio::test]
async fn an_unreachable_database_is_a_transient_error_without_the_password() {
    let port = mcp_fleet_testkit::process::free_port();
    let url = format!("postgres://op:hunter2@127.0.0.1:{port}/zava");
    let pool = Databases::default().pool(&url, "zava").unwrap();
    let started = std::time::Instant::now();
    let other = tenant();
    let err = apply_tenant(&pool, &other, &other.login_role(), &refs(&["1"]), None, None, LIMITS)
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Unreachable(_)), "{err:?}");
    assert_eq!(err.reason(), "DatabaseUnreachable");
    assert!(!err.needs_user_action());
    assert!(!err.to_string().contains("hunter2"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "fails fast: {:?}", started.elapsed());
}

/// The version (`xmin`) of every row `apply_tenant` writes for `t`: its login role, the login's
/// per-database settings, its `tenancy.tenants` row and its store mapping.
async fn row_versions(db: &TestDb, t: &TenantName) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT concat_ws(' ',
             (SELECT xmin::text FROM pg_authid WHERE rolname = $2),
             (SELECT xmin::text FROM pg_db_role_setting WHERE setrole = (SELECT oid FROM pg_roles WHERE rolname = $2)),
             (SELECT xmin::text FROM tenancy.tenants WHERE tenant_name = $1),
             (SELECT string_agg(xmin::text, ',' ORDER BY store_id) FROM tenancy.tenant_stores WHERE tenant_name = $1))",
    )
    .bind(t.as_str())
    .bind(t.login_role())
    .fetch_one(&db.admin)
    .await
    .map(|s: String| s.split(' ').map(str::to_owned).collect())
    .expect("read row versions")
}

#[tokio::test]
async fn an_unchanged_apply_writes_nothing_and_a_change_is_still_written() {
    let (db, url) = database().await;
    let pool = Databases::default().pool(&url, &db.name).unwrap();
    let t = tenant();
    let stores = refs(&["2", "Zava Retail Redmond"]);
    let first = apply_tenant(
        &pool,
        &t,
        &t.login_role(),
        &stores,
        Some(&scram_verifier(&generate_password())),
        None,
        LIMITS,
    )
    .await
    .unwrap();
    let before = row_versions(&db, &t).await;
    assert_eq!(before.len(), 4, "{before:?}");

    // What the operator's resync does: the same spec, no new password. Nothing is written.
    for _ in 0..3 {
        let again = apply_tenant(&pool, &t, &t.login_role(), &stores, None, None, LIMITS).await.unwrap();
        assert_eq!(again, AppliedTenant { created: false, ..first.clone() });
    }
    assert_eq!(row_versions(&db, &t).await, before, "an unchanged apply writes no row");

    // Bad limits are still refused for a tenant that exists, and change nothing.
    let err = apply_tenant(
        &pool,
        &t,
        &t.login_role(),
        &stores,
        None,
        None,
        RoleLimits { connection_limit: 0, ..LIMITS },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("connection limit must be between 1 and 1000"), "{err}");
    assert_eq!(row_versions(&db, &t).await, before);

    // Each kind of change is written.
    let wider = RoleLimits { connection_limit: LIMITS.connection_limit + 1, ..LIMITS };
    apply_tenant(&pool, &t, &t.login_role(), &stores, None, None, wider).await.unwrap();
    let limit: i32 = sqlx::query_scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1")
        .bind(t.login_role())
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(limit, wider.connection_limit);
    let slower = RoleLimits { statement_timeout_ms: 4000, ..wider };
    apply_tenant(&pool, &t, &t.login_role(), &stores, None, None, slower).await.unwrap();
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(setconfig) FROM pg_db_role_setting WHERE setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)",
    )
    .bind(t.login_role())
    .fetch_all(&db.admin)
    .await
    .unwrap();
    assert!(settings.contains(&"statement_timeout=4000ms".to_owned()), "{settings:?}");
    let fewer = apply_tenant(&pool, &t, &t.login_role(), &refs(&["2"]), None, None, slower).await.unwrap();
    assert_eq!(fewer.store_ids, vec![2]);

    // A grant lost outside the operator comes back on the next apply.
    db.admin
        .execute(sqlx::AssertSqlSafe(format!("REVOKE mcpfleet_pii FROM \"{}\"", t.login_role())))
        .await
        .unwrap();
    apply_tenant(&pool, &t, &t.login_role(), &refs(&["2"]), None, None, slower).await.unwrap();
    let pii: bool = sqlx::query_scalar("SELECT pg_has_role($1, 'mcpfleet_pii', 'MEMBER')")
        .bind(t.login_role())
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert!(pii, "the PII grant is restored");
}
