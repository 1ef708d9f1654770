//! `mcp-fleet-server embed`: fills `retail.product_description_embeddings` with a vector per
//! product, in batches, with progress. Idempotent: a product that already has a vector from the
//! same model is skipped unless forced, each batch is committed on its own (an interrupted run
//! resumes where it stopped), and concurrent runs take turns. Does database I/O.

use std::time::{Duration, Instant};

use pgvector::Vector;
use sqlx::{Connection, PgConnection, PgPool};

use super::{DIMENSIONS, EmbedError, Embedder};
use mcp_fleet_core::progress::Progress;

/// Largest accepted batch.
pub const MAX_BATCH_SIZE: usize = 4096;

/// The text embedded for a product: its name, a full stop, then its description — so that a
/// query naming the product ("cordless drill") matches even when the description only says what
/// it is for. Semantic search embeds the user's query as is.
pub fn product_text(product_name: &str, product_description: &str) -> String {
    format!("{product_name}. {product_description}")
}

/// What a backfill did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackfillReport {
    /// The model whose vectors were written.
    pub model: String,
    /// Products in the catalog.
    pub products: u64,
    /// Products embedded (inserted or replaced) by this run.
    pub embedded: u64,
    /// Products skipped because they already had a vector from this model.
    pub skipped: u64,
    /// Batches sent to the embedder.
    pub batches: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for BackfillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} products embedded with {} in {} batches ({} already up to date) in {:.1}s",
            self.embedded,
            self.products,
            self.model,
            self.batches,
            self.skipped,
            self.elapsed.as_secs_f64()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("batch size must be between 1 and {MAX_BATCH_SIZE}, not {0}")]
    BatchSize(usize),
    #[error(
        "role {0:?} may not write retail.product_description_embeddings: run `embed` as the database's admin role (the one that runs `migrate` and `seed`)"
    )]
    NotPermitted(String),
    #[error(
        "the database is not migrated (schema version {found}, this build expects {expected}): run `mcp-fleet-server migrate` first"
    )]
    NotMigrated { found: i64, expected: i64 },
    #[error("embedding products failed: {0}")]
    Embed(#[from] EmbedError),
    #[error("the embedder returned {got} vectors for {expected} products")]
    VectorCount { expected: usize, got: usize },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Embeds every product lacking a vector from `embedder`'s model (every product when `force`),
/// `batch_size` at a time, and upserts the vectors. Needs a role that may write the embeddings
/// table (the admin role).
pub async fn backfill(
    pool: &PgPool,
    embedder: &dyn Embedder,
    batch_size: usize,
    force: bool,
    progress: &Progress,
) -> Result<BackfillReport, BackfillError> {
    if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
        return Err(BackfillError::BatchSize(batch_size));
    }
    let started = Instant::now();
    let model = embedder.model().to_owned();

    // A connection of its own, closed (not returned to the pool) when this function ends, so the
    // session lock below is released even if the caller drops this future half-way.
    let mut conn = pool.acquire().await?.detach();
    // NULL when the table does not exist yet; checked before the schema version, which a role
    // without privileges cannot even read.
    let (user, may_write): (String, Option<bool>) = sqlx::query_as(
        "SELECT current_user::text,
                CASE WHEN to_regclass('retail.product_description_embeddings') IS NOT NULL THEN
                     has_table_privilege('retail.product_description_embeddings', 'INSERT')
                     AND has_table_privilege('retail.product_description_embeddings', 'UPDATE')
                END",
    )
    .fetch_one(&mut conn)
    .await?;
    let expected = mcp_fleet_core::migrations::expected_version();
    match may_write {
        None => return Err(BackfillError::NotMigrated { found: 0, expected }),
        Some(false) => return Err(BackfillError::NotPermitted(user)),
        Some(true) => {}
    }
    let found = mcp_fleet_core::migrations::schema_version(pool).await?;
    if found < expected {
        return Err(BackfillError::NotMigrated { found, expected });
    }
    // A second run waits for the first, then finds nothing left to do.
    sqlx::query("SELECT pg_advisory_lock(hashtext('mcpfleet.embed'))").execute(&mut conn).await?;
    let result = run_locked(&mut conn, embedder, &model, batch_size, force, progress, started).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext('mcpfleet.embed'))").execute(&mut conn).await;
    let _ = conn.close().await;
    result
}

async fn run_locked(
    conn: &mut PgConnection,
    embedder: &dyn Embedder,
    model: &str,
    batch_size: usize,
    force: bool,
    progress: &Progress,
    started: Instant,
) -> Result<BackfillReport, BackfillError> {
    let (products, todo): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE $1 OR e.product_id IS NULL OR e.model <> $2)
           FROM retail.products p
           LEFT JOIN retail.product_description_embeddings e USING (product_id)",
    )
    .bind(force)
    .bind(model)
    .fetch_one(&mut *conn)
    .await?;
    let (products, todo) = (products as u64, todo as u64);
    progress.step(&format!("{todo} of {products} products to embed with {model}"));

    let mut counter = progress.counter("products", todo);
    let (mut embedded, mut batches, mut after) = (0u64, 0u64, i32::MIN);
    loop {
        // Keyset pagination: each product is looked at once per run, forced or not.
        let rows: Vec<(i32, String, String)> = sqlx::query_as(
            "SELECT p.product_id, p.product_name, p.product_description
               FROM retail.products p
               LEFT JOIN retail.product_description_embeddings e USING (product_id)
              WHERE p.product_id > $1 AND ($2 OR e.product_id IS NULL OR e.model <> $3)
              ORDER BY p.product_id
              LIMIT $4",
        )
        .bind(after)
        .bind(force)
        .bind(model)
        .bind(batch_size as i64)
        .fetch_all(&mut *conn)
        .await?;
        let Some(&(last, _, _)) = rows.last() else { break };
        after = last;

        let texts: Vec<String> = rows.iter().map(|(_, name, desc)| product_text(name, desc)).collect();
        let vectors = embedder.embed(&texts).await?;
        if vectors.len() != rows.len() {
            return Err(BackfillError::VectorCount { expected: rows.len(), got: vectors.len() });
        }
        if let Some(v) = vectors.iter().find(|v| v.len() != DIMENSIONS) {
            return Err(EmbedError::Dimensions { expected: DIMENSIONS, got: v.len() }.into());
        }
        let ids: Vec<i32> = rows.iter().map(|(id, _, _)| *id).collect();
        let vectors: Vec<Vector> = vectors.into_iter().map(Vector::from).collect();
        sqlx::query(
            "INSERT INTO retail.product_description_embeddings (product_id, description_embedding, model, updated_at)
             SELECT id, v, $3, now() FROM unnest($1::int[], $2::vector[]) AS t(id, v)
             ON CONFLICT (product_id) DO UPDATE
                SET description_embedding = EXCLUDED.description_embedding,
                    model = EXCLUDED.model,
                    updated_at = EXCLUDED.updated_at",
        )
        .bind(&ids)
        .bind(&vectors)
        .bind(model)
        .execute(&mut *conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("42501") => {
                BackfillError::NotPermitted("the current role".into())
            }
            _ => e.into(),
        })?;
        embedded += ids.len() as u64;
        batches += 1;
        counter.set(embedded);
    }
    counter.finish();
    let report = BackfillReport {
        model: model.to_owned(),
        products,
        embedded,
        skipped: products.saturating_sub(embedded),
        batches,
        elapsed: started.elapsed(),
    };
    progress.step(&report.to_string());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_text_leads_with_the_name() {
        assert_eq!(product_text("Zava Hose", "For watering."), "Zava Hose. For watering.");
    }
}
