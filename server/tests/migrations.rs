//! Migrations and the seed against a real PostgreSQL.

use mcp_fleet_core::migrations::migrate;
use mcp_fleet_core::progress::Progress;
use mcp_fleet_seed::{self as seed, SeedConfig, SeedOutcome};
use mcp_fleet_testkit::TestDb;

#[tokio::test]
async fn migrations_apply_on_an_empty_database_and_rerun_as_a_no_op() {
    let db = TestDb::empty().await;
    let applied = migrate(&db.admin).await.expect("first run");
    assert_eq!(applied.len() as i64, mcp_fleet_core::migrations::expected_version(), "{applied:?}");
    let again = migrate(&db.admin).await.expect("second run");
    assert!(again.is_empty(), "re-run applied {again:?}");
    // A second database in the same cluster: the cluster-wide roles already exist.
    let other = TestDb::empty().await;
    migrate(&other.admin).await.expect("migrating a second database in the same cluster");
    let version: i64 =
        sqlx::query_scalar("SELECT tenancy.schema_version()").fetch_one(&db.admin).await.unwrap();
    assert_eq!(version, mcp_fleet_core::migrations::expected_version());
    // Database-level least privilege (not carried by CREATE DATABASE ... TEMPLATE, so checked
    // here on a directly migrated database): no temporary tables for tenants.
    let temp: bool =
        sqlx::query_scalar("SELECT has_database_privilege('mcpfleet_tenant', current_database(), 'TEMP')")
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert!(!temp, "tenants must not create temporary tables");
}

#[tokio::test]
async fn seed_loads_the_sample_shape_once_and_is_deterministic() {
    let a = TestDb::migrated().await;
    let b = TestDb::migrated().await;
    let cfg = SeedConfig::small();
    let SeedOutcome::Seeded(counts) = seed::run(&a.admin, &cfg, &Progress::quiet()).await.unwrap() else {
        panic!("expected a fresh seed");
    };
    assert_eq!(counts.stores, 8);
    assert_eq!(counts.customers, i64::from(cfg.customers));
    assert_eq!(counts.orders, i64::from(cfg.orders));
    assert!(counts.products >= 400, "{counts}");
    assert_eq!(counts.inventory, counts.stores * counts.products);
    assert!(counts.order_items >= counts.orders);

    let again = seed::run(&a.admin, &cfg, &Progress::quiet()).await.unwrap();
    assert_eq!(again, SeedOutcome::AlreadySeeded(counts.clone()), "a second seed must not duplicate");

    seed::run(&b.admin, &cfg, &Progress::quiet()).await.unwrap();
    let digest = "SELECT md5(string_agg(concat_ws('|', o.order_id, o.customer_id, o.store_id, o.order_date, i.product_id, i.quantity, i.total_amount), ',' ORDER BY i.order_item_id))
                  FROM retail.orders o JOIN retail.order_items i USING (order_id)";
    let da: String = sqlx::query_scalar(digest).fetch_one(&a.admin).await.unwrap();
    let db_: String = sqlx::query_scalar(digest).fetch_one(&b.admin).await.unwrap();
    assert_eq!(da, db_, "same seed, same data");

    // Orders span 2020-2026, every order is at its customer's store, totals add up.
    let (first, last): (chrono::NaiveDate, chrono::NaiveDate) =
        sqlx::query_as("SELECT min(order_date), max(order_date) FROM retail.orders")
            .fetch_one(&a.admin)
            .await
            .unwrap();
    assert_eq!(first.to_string().get(..4), Some("2020"));
    assert_eq!(last.to_string().get(..4), Some("2026"));
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM retail.orders o JOIN retail.customers c USING (customer_id) WHERE c.primary_store_id <> o.store_id",
    )
    .fetch_one(&a.admin)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);
    let bad_totals: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM retail.order_items WHERE total_amount <> unit_price * quantity - discount_amount",
    )
    .fetch_one(&a.admin)
    .await
    .unwrap();
    assert_eq!(bad_totals, 0);
    // Full-text search works on the generated column.
    let hits: i64 = sqlx::query_scalar("SELECT count(*) FROM retail.products WHERE product_search @@ websearch_to_tsquery('english', 'garden hose')")
        .fetch_one(&a.admin)
        .await
        .unwrap();
    assert!(hits > 0);
}

#[tokio::test]
async fn seed_refuses_unprivileged_roles_and_unmigrated_databases() {
    let empty = TestDb::empty().await;
    let err = seed::run(&empty.admin, &SeedConfig::small(), &Progress::quiet()).await.unwrap_err();
    assert!(err.to_string().contains("run `mcp-fleet-server migrate` first"), "{err}");

    let db = TestDb::migrated().await;
    let user = mcp_fleet_testkit::pg::unique_name("plain");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {user} LOGIN PASSWORD 'pw'")))
        .execute(&db.admin)
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&db.url_as(&user, "pw")).await.unwrap();
    let err = seed::run(&pool, &SeedConfig::small(), &Progress::quiet()).await.unwrap_err();
    assert!(err.to_string().contains("BYPASSRLS"), "{err}");
}
