//! Row-level security against a real PostgreSQL: every tenant sees exactly its own stores' rows,
//! and nothing a tenant role can do widens that view.

mod support;

use mcp_fleet_core::progress::Progress;
use mcp_fleet_core::tenant::scram_verifier;
use mcp_fleet_seed::{self as seed, SeedConfig};
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::pg::{create_operator_login, unique_name};
use sqlx::{Connection, Executor, PgConnection, Row};
use support::{Tenant, tenant};

/// Tables that carry a store, with the column that names it.
const STORE_TABLES: &[(&str, &str)] = &[
    ("stores", "store_id"),
    ("customers", "primary_store_id"),
    ("inventory", "store_id"),
    ("orders", "store_id"),
    ("order_items", "store_id"),
];
const CATALOG_TABLES: &[&str] =
    &["categories", "product_types", "products", "product_description_embeddings"];

async fn seeded() -> TestDb {
    TestDb::from_template("seeded-small", |pool| async move {
        seed::run(&pool, &SeedConfig::small(), &Progress::quiet()).await.expect("seed");
    })
    .await
}

async fn login(db: &TestDb, t: &Tenant) -> PgConnection {
    db.connect_as(&t.name.login_role(), &t.password).await.expect("tenant login")
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn each_tenant_sees_exactly_its_own_rows_in_every_store_table() {
    let db = seeded().await;
    let tenants = [tenant(&db, &[1]).await, tenant(&db, &[2, 6]).await, tenant(&db, &[8]).await];
    let mut admin = db.admin.acquire().await.unwrap();
    for t in &tenants {
        let mut conn = login(&db, t).await;
        for (table, col) in STORE_TABLES {
            let seen = count(&mut conn, &format!("SELECT count(*) FROM retail.{table}")).await;
            let truth: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM retail.{table} WHERE {col} = ANY($1)"
            )))
            .bind(&t.stores)
            .fetch_one(&mut *admin)
            .await
            .unwrap();
            assert!(truth > 0, "ground truth for {table} should not be empty");
            assert_eq!(seen, truth, "tenant {} on retail.{table}", t.name);
            let foreign = count(
                &mut conn,
                &format!(
                    "SELECT count(*) FROM retail.{table} WHERE NOT ({col} = ANY('{{{}}}'::int[]))",
                    t.stores.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
                ),
            )
            .await;
            assert_eq!(foreign, 0, "tenant {} sees foreign rows in {table}", t.name);
        }
        for table in CATALOG_TABLES {
            let seen = count(&mut conn, &format!("SELECT count(*) FROM retail.{table}")).await;
            let truth: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM retail.{table}")))
                    .fetch_one(&mut *admin)
                    .await
                    .unwrap();
            assert_eq!(seen, truth, "catalog table {table} is shared read-only");
        }
    }
    // Pairwise: no two tenants share an order.
    for a in &tenants {
        for b in &tenants {
            if a.name == b.name {
                continue;
            }
            let mut ca = login(&db, a).await;
            let ids_a: Vec<i32> =
                sqlx::query_scalar("SELECT order_id FROM retail.orders").fetch_all(&mut ca).await.unwrap();
            let mut cb = login(&db, b).await;
            let overlap: i64 =
                sqlx::query_scalar("SELECT count(*) FROM retail.orders WHERE order_id = ANY($1)")
                    .bind(&ids_a)
                    .fetch_one(&mut cb)
                    .await
                    .unwrap();
            assert_eq!(overlap, 0, "{} and {} share orders", a.name, b.name);
        }
    }
}

#[tokio::test]
async fn a_tenant_cannot_widen_its_view() {
    let db = seeded().await;
    let east = tenant(&db, &[2, 6]).await;
    let seattle = tenant(&db, &[1]).await;
    let mut conn = login(&db, &east).await;
    let own = count(&mut conn, "SELECT count(*) FROM retail.orders").await;
    let all: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retail.orders").fetch_one(&db.admin).await.unwrap();
    assert!(own > 0 && own < all);

    // The per-request setting intersects; it never adds stores.
    conn.execute("SET mcpfleet.store_scope = '1,2,3,4,5,6,7,8'").await.unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM retail.orders").await, own);
    conn.execute("SELECT set_config('mcpfleet.store_scope', '1', false)").await.unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM retail.orders").await,
        0,
        "a foreign store narrows to nothing"
    );
    conn.execute("RESET mcpfleet.store_scope").await.unwrap();

    // Roles: another tenant's group is out of reach; the shared privilege role sees nothing.
    let err = conn
        .execute(sqlx::AssertSqlSafe(format!("SET ROLE \"{}\"", seattle.name.group_role())))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    conn.execute("SET ROLE mcpfleet_tenant").await.unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM retail.orders").await, 0);
    conn.execute("RESET ROLE").await.unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM retail.orders").await, own);
    let err = conn.execute("SET SESSION AUTHORIZATION postgres").await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");

    // No writes anywhere, including the mapping table.
    for sql in [
        "INSERT INTO retail.stores (store_name) VALUES ('Mine')",
        "UPDATE retail.orders SET store_id = 2",
        "DELETE FROM retail.order_items",
        "INSERT INTO tenancy.tenant_stores VALUES ('x', 1)",
        "UPDATE tenancy.tenant_stores SET store_id = 1",
        "DELETE FROM tenancy.tenants",
        "TRUNCATE retail.orders",
        "CREATE TABLE retail.evil (x int)",
    ] {
        let err = conn.execute(sql).await.expect_err(sql);
        assert!(err.to_string().contains("permission denied"), "{sql}: {err}");
    }
    // The operator's functions are not the tenant's.
    for sql in [
        format!("SELECT tenancy.apply_tenant('{}', ARRAY['1'])", east.name),
        format!("SELECT tenancy.drop_tenant('{}')", seattle.name),
    ] {
        let err = conn.execute(sqlx::AssertSqlSafe(sql.clone())).await.expect_err(&sql);
        assert!(err.to_string().contains("permission denied"), "{sql}: {err}");
    }
    // The mapping shows the tenant its own stores only.
    let mapped: Vec<i32> = sqlx::query_scalar("SELECT store_id FROM tenancy.tenant_stores ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(mapped, vec![2, 6]);
    let visible: Vec<i32> =
        sqlx::query_scalar("SELECT unnest(tenancy.visible_store_ids())").fetch_all(&mut conn).await.unwrap();
    assert_eq!(visible, vec![2, 6]);
}

#[tokio::test]
async fn a_store_scope_narrows_to_a_subset_and_bad_scopes_fail_closed() {
    let db = seeded().await;
    let east = tenant(&db, &[2, 6]).await;
    let mut conn = login(&db, &east).await;
    let truth: i64 = sqlx::query_scalar("SELECT count(*) FROM retail.orders WHERE store_id = 6")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    tx.execute("SET LOCAL mcpfleet.store_scope = '6'").await.unwrap();
    assert_eq!(count(&mut tx, "SELECT count(*) FROM retail.orders").await, truth);
    tx.rollback().await.unwrap();
    conn.execute("SET mcpfleet.store_scope = 'all'").await.unwrap();
    let err = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM retail.orders")
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid input syntax"), "{err}");
}

#[tokio::test]
async fn the_audit_trail_is_append_only_and_tenant_stamped() {
    let db = seeded().await;
    let a = tenant(&db, &[3]).await;
    let b = tenant(&db, &[4]).await;
    let mut conn = login(&db, &a).await;
    conn.execute("INSERT INTO audit.tool_calls (tool, outcome, subject) VALUES ('get_current_utc_date', 'ok', 'alice')").await.unwrap();
    let err = conn
        .execute(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit.tool_calls (tenant, tool, outcome) VALUES ('{}', 'x', 'ok')",
            b.name
        )))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    // The policy judges every row of a batch, as the server writes them: one foreign row refuses all.
    let err = conn
        .execute(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit.tool_calls (tenant, tool, outcome) VALUES ('{}', 'x', 'ok'), ('{}', 'x', 'ok')",
            a.name, b.name
        )))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    for sql in [
        "SELECT count(*) FROM audit.tool_calls",
        "UPDATE audit.tool_calls SET outcome = 'ok'",
        "DELETE FROM audit.tool_calls",
        "SELECT * FROM audit.calls_by_tool",
    ] {
        let err = conn.execute(sql).await.expect_err(sql);
        assert!(err.to_string().contains("permission denied"), "{sql}: {err}");
    }
    let rows =
        sqlx::query("SELECT tenant, subject FROM audit.tool_calls").fetch_all(&db.admin).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<String, _>("tenant"), a.name.as_str());
    // Admin monitoring views work for an auditor.
    let calls: i64 = sqlx::query_scalar("SELECT sum(calls)::bigint FROM audit.calls_by_tool")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn rls_is_forced_so_even_the_table_owner_is_filtered() {
    let db = seeded().await;
    let forced: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'retail' AND c.relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&db.admin)
    .await
    .unwrap();
    for (table, col) in STORE_TABLES {
        let row = forced.iter().find(|r| r.0 == *table).expect("table exists");
        assert!(row.1 && row.2, "{table} ({col}) must ENABLE and FORCE row-level security");
    }
    let owner = unique_name("owner");
    let mut admin = db.admin.acquire().await.unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE ROLE {owner} NOLOGIN"))).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("GRANT USAGE ON SCHEMA retail, tenancy TO {owner}")))
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "GRANT EXECUTE ON FUNCTION tenancy.visible_store_ids() TO {owner}"
        )))
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "GRANT SELECT ON tenancy.tenants, tenancy.tenant_stores TO {owner}"
        )))
        .await
        .unwrap();
    admin.execute(sqlx::AssertSqlSafe(format!("ALTER TABLE retail.orders OWNER TO {owner}"))).await.unwrap();
    let mut tx = admin.begin().await.unwrap();
    tx.execute(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {owner}"))).await.unwrap();
    assert_eq!(
        count(&mut tx, "SELECT count(*) FROM retail.orders").await,
        0,
        "the owner belongs to no tenant"
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn apply_tenant_updates_stores_rotates_passwords_and_drop_removes_roles() {
    let db = seeded().await;
    let mut t = tenant(&db, &[5]).await;
    let mut conn = login(&db, &t).await;
    let before = count(&mut conn, "SELECT count(*) FROM retail.stores").await;
    assert_eq!(before, 1);

    // Update: more stores by name, same password (NULL verifier keeps it).
    sqlx::query("SELECT * FROM tenancy.apply_tenant($1, ARRAY['5', 'zava retail kirkland'], NULL)")
        .bind(t.name.as_str())
        .execute(&db.admin)
        .await
        .unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) FROM retail.stores").await,
        2,
        "the mapping change applies to open sessions"
    );
    drop(conn);

    // Rotate: the new password works and the old one does not.
    let old = std::mem::replace(&mut t.password, mcp_fleet_core::tenant::generate_password());
    sqlx::query("SELECT * FROM tenancy.apply_tenant($1, ARRAY['5','7'], $2)")
        .bind(t.name.as_str())
        .bind(scram_verifier(&t.password))
        .execute(&db.admin)
        .await
        .unwrap();
    login(&db, &t).await;
    let err = db.connect_as(&t.name.login_role(), &old).await.unwrap_err();
    assert!(err.to_string().contains("password authentication failed"), "{err}");

    // Drop: roles and mapping gone; a second drop reports nothing to do.
    let dropped: bool = sqlx::query_scalar("SELECT tenancy.drop_tenant($1)")
        .bind(t.name.as_str())
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert!(dropped);
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2)")
        .bind(t.name.group_role())
        .bind(t.name.login_role())
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(roles, 0);
    let mapped: i64 = sqlx::query_scalar("SELECT count(*) FROM tenancy.tenant_stores WHERE tenant_name = $1")
        .bind(t.name.as_str())
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(mapped, 0);
    let again: bool = sqlx::query_scalar("SELECT tenancy.drop_tenant($1)")
        .bind(t.name.as_str())
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert!(!again);
}

#[tokio::test]
async fn apply_tenant_refuses_bad_input_with_actionable_errors_and_changes_nothing() {
    let db = seeded().await;
    let owner = tenant(&db, &[1]).await;
    let verifier = scram_verifier("pw");
    let cases: Vec<(String, Vec<&str>, Option<String>, &str)> = vec![
        ("Bad Name".into(), vec!["1"], Some(verifier.clone()), "invalid tenant name"),
        ("x".repeat(41), vec!["1"], Some(verifier.clone()), "invalid tenant name"),
        (unique_name("t").replace('_', "-"), vec![], Some(verifier.clone()), "at least one store"),
        (
            unique_name("t").replace('_', "-"),
            vec!["Zava Retail Atlantis"],
            Some(verifier.clone()),
            "unknown store 'Zava Retail Atlantis'",
        ),
        (unique_name("t").replace('_', "-"), vec!["1"], Some(verifier.clone()), "already belong to tenant"),
        (
            unique_name("t").replace('_', "-"),
            vec!["3"],
            Some("plaintext-password".into()),
            "SCRAM-SHA-256 verifier",
        ),
        (unique_name("t").replace('_', "-"), vec!["3"], None, "needs a password verifier"),
    ];
    let names: Vec<String> = cases.iter().map(|c| c.0.clone()).collect();
    for (name, stores, verifier, expected) in cases {
        let err = sqlx::query("SELECT * FROM tenancy.apply_tenant($1, $2, $3)")
            .bind(&name)
            .bind(&stores)
            .bind(&verifier)
            .execute(&db.admin)
            .await
            .unwrap_err();
        let msg = match &err {
            sqlx::Error::Database(d) => d.message().to_owned(),
            other => other.to_string(),
        };
        assert!(msg.contains(expected), "{name} {stores:?}: expected {expected:?} in {msg:?}");
    }
    let created: Vec<String> = sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE ANY (SELECT 'mcpt_' || n || '%' FROM unnest($1::text[]) n)")
        .bind(&names)
        .fetch_all(&db.admin)
        .await
        .unwrap();
    assert!(created.is_empty(), "a refused call creates no role: {created:?}");
    let mapped: Vec<i32> =
        sqlx::query_scalar("SELECT store_id FROM tenancy.tenant_stores WHERE tenant_name = $1")
            .bind(owner.name.as_str())
            .fetch_all(&db.admin)
            .await
            .unwrap();
    assert_eq!(mapped, vec![1], "the owner keeps its store");
    // The hint lists the known stores so the operator can say what to fix.
    let err =
        sqlx::query("SELECT tenancy.resolve_stores(ARRAY['Nowhere'])").execute(&db.admin).await.unwrap_err();
    let hint = err
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .and_then(|d| d.hint().map(str::to_owned));
    assert!(hint.unwrap_or_default().contains("'Zava Retail Seattle'"));
}

#[tokio::test]
async fn a_non_superuser_operator_role_manages_tenants_and_cannot_adopt_foreign_roles() {
    let db = seeded().await;
    let (op, op_pw) = create_operator_login(&db.admin).await;
    let mut admin = db.admin.acquire().await.unwrap();
    let mut conn = db.connect_as(&op, &op_pw).await.unwrap();
    let name = unique_name("t").replace('_', "-");
    let row: (String, String, Vec<i32>, bool) =
        sqlx::query_as("SELECT * FROM tenancy.apply_tenant($1, ARRAY['Zava Retail Tacoma'], $2)")
            .bind(&name)
            .bind(scram_verifier("tenant-pw"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(row.2, vec![3]);
    assert!(row.3, "created");
    let tenants: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenancy.tenants").fetch_one(&mut conn).await.unwrap();
    assert!(tenants >= 1, "the operator reads the mapping");
    // The operator cannot read tenant data.
    let err = conn.execute("SELECT count(*) FROM retail.orders").await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    let dropped: bool =
        sqlx::query_scalar("SELECT tenancy.drop_tenant($1)").bind(&name).fetch_one(&mut conn).await.unwrap();
    assert!(dropped);

    // A role of the same name that mcp-fleet did not create is never adopted or dropped.
    let squat = unique_name("t").replace('_', "-");
    admin.execute(sqlx::AssertSqlSafe(format!("CREATE ROLE \"mcpt_{squat}\" NOLOGIN"))).await.unwrap();
    let err = sqlx::query("SELECT * FROM tenancy.apply_tenant($1, ARRAY['4'], $2)")
        .bind(&squat)
        .bind(scram_verifier("x"))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not managed by mcp-fleet"), "{err}");
    let err =
        sqlx::query("SELECT tenancy.drop_tenant($1)").bind(&squat).execute(&mut conn).await.unwrap_err();
    assert!(err.to_string().contains("not managed by mcp-fleet"), "{err}");
}

#[tokio::test]
async fn pii_is_withheld_from_group_roles_and_masked_through_the_view() {
    let db = seeded().await;
    let t = tenant(&db, &[2]).await;
    let truth: i64 = sqlx::query_scalar("SELECT count(*) FROM retail.customers WHERE primary_store_id = 2")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    let mut conn = login(&db, &t).await;
    // The login role (used for PII-granted callers) reads raw values of its own customers.
    let raw: Vec<String> =
        sqlx::query_scalar("SELECT email FROM retail.customers").fetch_all(&mut conn).await.unwrap();
    assert_eq!(raw.len() as i64, truth);
    assert!(raw.iter().all(|e| e.contains('@') && !e.contains("***")));

    // The group role (used for everyone else) is refused the raw columns by PostgreSQL...
    conn.execute(sqlx::AssertSqlSafe(format!("SET ROLE \"{}\"", t.name.group_role()))).await.unwrap();
    for sql in [
        "SELECT email FROM retail.customers",
        "SELECT * FROM retail.customers",
        "SELECT row_to_json(c) FROM retail.customers c",
    ] {
        let err = conn.execute(sql).await.expect_err(sql);
        assert!(err.to_string().contains("permission denied"), "{sql}: {err}");
    }
    let names: i64 = count(&mut conn, "SELECT count(first_name) FROM retail.customers").await;
    assert_eq!(names, truth, "non-PII columns stay readable");
    // ...and reads masked values, of its own customers only, through the view.
    let masked: Vec<(i32, String, Option<String>)> =
        sqlx::query_as("SELECT primary_store_id, email, phone FROM retail.customers_masked")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(masked.len() as i64, truth, "row-level security applies through the view");
    assert!(masked.iter().all(|(store, ..)| *store == 2));
    assert!(masked.iter().all(|(_, email, _)| email.contains("***@example.com")), "{:?}", masked.first());
    assert!(masked.iter().all(|(_, _, phone)| phone.as_deref().is_none_or(|p| p.contains("***"))));
    conn.execute("RESET ROLE").await.unwrap();
}
