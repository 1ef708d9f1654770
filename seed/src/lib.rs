//! `mcp-fleet-server seed`: loads the deterministic sample dataset (Zava DIY retail) with COPY,
//! in one transaction, with progress on stderr. A library the server binary dispatches to; the
//! catalog it draws from is data (`seed/catalog.yaml`). Does database I/O.

mod catalog;
mod generate;

use std::time::Instant;

use sqlx::{Acquire, PgPool, Postgres, Transaction};

use catalog::catalog;
use generate::{Generator, OrderWriter, orders_per_day};
use mcp_fleet_core::progress::Progress;

/// What to generate. The defaults are the sample's shape.
#[derive(Clone, Debug, clap::Args)]
pub struct SeedConfig {
    /// Seed of the random generator; the same seed and sizes always give the same data.
    #[arg(long, env = "MCP_FLEET_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Number of customers, spread over the 8 stores.
    #[arg(long, env = "MCP_FLEET_SEED_CUSTOMERS", default_value_t = 50_000,
          value_parser = clap::value_parser!(u32).range(1..=50_000_000))]
    pub customers: u32,
    /// Number of orders between 2020-01-01 and 2026-10-31 (each with 1 to 5 items).
    #[arg(long, env = "MCP_FLEET_SEED_ORDERS", default_value_t = 200_000,
          value_parser = clap::value_parser!(u32).range(0..=200_000_000))]
    pub orders: u32,
}

impl SeedConfig {
    /// A small dataset for tests: same shape, a few seconds less.
    pub fn small() -> Self {
        Self { seed: 42, customers: 800, orders: 3_000 }
    }
}

impl Default for SeedConfig {
    fn default() -> Self {
        Self { seed: 42, customers: 50_000, orders: 200_000 }
    }
}

/// What `seed` did.
#[derive(Debug, PartialEq, Eq)]
pub enum SeedOutcome {
    Seeded(Counts),
    AlreadySeeded(Counts),
}

#[derive(Debug, Default, PartialEq, Eq, Clone)]
pub struct Counts {
    pub stores: i64,
    pub products: i64,
    pub customers: i64,
    pub orders: i64,
    pub order_items: i64,
    pub inventory: i64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} stores, {} products, {} customers, {} orders, {} order items, {} inventory rows",
            self.stores, self.products, self.customers, self.orders, self.order_items, self.inventory
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(
        "role {0:?} cannot seed: the retail tables FORCE row-level security, so seeding needs a superuser or a role with BYPASSRLS (connect as the database owner's admin user)"
    )]
    NotPrivileged(String),
    #[error(
        "the database is not migrated (schema version {found}, this build expects {expected}): run `mcp-fleet-server migrate` first"
    )]
    NotMigrated { found: i64, expected: i64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Counts the rows of the sample tables (as the connected role sees them).
pub async fn counts(pool: &PgPool) -> Result<Counts, sqlx::Error> {
    let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM retail.stores), (SELECT count(*) FROM retail.products),
                (SELECT count(*) FROM retail.customers), (SELECT count(*) FROM retail.orders),
                (SELECT count(*) FROM retail.order_items), (SELECT count(*) FROM retail.inventory)",
    )
    .fetch_one(pool)
    .await?;
    Ok(Counts {
        stores: row.0,
        products: row.1,
        customers: row.2,
        orders: row.3,
        order_items: row.4,
        inventory: row.5,
    })
}

/// Loads the dataset unless the database already holds stores. All or nothing: one transaction.
pub async fn run(pool: &PgPool, cfg: &SeedConfig, progress: &Progress) -> Result<SeedOutcome, SeedError> {
    let (user, privileged): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    if !privileged {
        return Err(SeedError::NotPrivileged(user));
    }
    let expected = mcp_fleet_core::migrations::expected_version();
    let found = mcp_fleet_core::migrations::schema_version(pool).await?;
    if found < expected {
        return Err(SeedError::NotMigrated { found, expected });
    }

    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    // Serialise concurrent seeds; the second one then sees the first one's stores.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mcpfleet.seed'))").execute(&mut *tx).await?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM retail.stores").fetch_one(&mut *tx).await?;
    if existing > 0 {
        tx.rollback().await?;
        return Ok(SeedOutcome::AlreadySeeded(counts(pool).await?));
    }

    let started = Instant::now();
    let mut g = Generator::new(cfg.seed);
    copy(&mut tx, "retail.stores (store_id, store_name, rls_user_id, is_online)", g.stores()).await?;
    let (cats, types) = g.categories_and_types();
    copy(&mut tx, "retail.categories (category_id, category_name)", cats).await?;
    copy(&mut tx, "retail.product_types (type_id, category_id, type_name)", types).await?;
    let (products_rows, products) = g.products();
    copy(
        &mut tx,
        "retail.products (product_id, sku, product_name, category_id, type_id, cost, base_price, gross_margin_percent, product_description)",
        products_rows,
    )
    .await?;
    progress.step(&format!(
        "catalog: {} stores, {} categories, {} products",
        catalog().stores.len(),
        catalog().categories.len(),
        products.len()
    ));

    let (customer_rows, by_store) = g.customers(cfg.customers);
    copy(
        &mut tx,
        "retail.customers (customer_id, first_name, last_name, email, phone, primary_store_id, created_at)",
        customer_rows,
    )
    .await?;
    progress.step(&format!("customers: {}", cfg.customers));
    copy(&mut tx, "retail.inventory (store_id, product_id, stock_level)", g.inventory(&products)).await?;

    let mut writer = OrderWriter::new(&products, &by_store);
    let days = orders_per_day(cfg.orders);
    let mut done = 0u64;
    let mut bar = progress.counter("orders", u64::from(cfg.orders));
    // Orders and items stream in batches of a few MB, so memory stays small at any size while
    // each COPY is large enough that round trips do not dominate.
    const FLUSH_BYTES: usize = 8 << 20;
    let (mut orders, mut items) = (String::new(), String::new());
    for (i, &(day, n)) in days.iter().enumerate() {
        writer.day(&mut g, day, n, &mut orders, &mut items);
        done += u64::from(n);
        if orders.len() + items.len() >= FLUSH_BYTES || i + 1 == days.len() {
            copy(
                &mut tx,
                "retail.orders (order_id, customer_id, store_id, order_date)",
                std::mem::take(&mut orders),
            )
            .await?;
            copy(
                &mut tx,
                "retail.order_items (order_item_id, order_id, store_id, product_id, quantity, unit_price, discount_percent, discount_amount, total_amount)",
                std::mem::take(&mut items),
            )
            .await?;
            bar.set(done);
        }
    }
    bar.finish();

    for (table, column) in [
        ("stores", "store_id"),
        ("categories", "category_id"),
        ("product_types", "type_id"),
        ("products", "product_id"),
        ("customers", "customer_id"),
        ("orders", "order_id"),
        ("order_items", "order_item_id"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence('retail.{table}', '{column}'), coalesce((SELECT max({column}) FROM retail.{table}), 0) + 1, false)"
        )))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    sqlx::query("ANALYZE retail.stores, retail.customers, retail.products, retail.inventory, retail.orders, retail.order_items")
        .execute(pool)
        .await?;
    let counts = counts(pool).await?;
    progress.step(&format!("seeded {counts} in {:.1}s", started.elapsed().as_secs_f64()));
    Ok(SeedOutcome::Seeded(counts))
}

async fn copy(tx: &mut Transaction<'_, Postgres>, target: &str, rows: String) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut copy = tx.copy_in_raw(&format!("COPY {target} FROM STDIN (FORMAT text)")).await?;
    copy.send(rows.into_bytes()).await?;
    copy.finish().await
}
