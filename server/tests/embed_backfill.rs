//! `embed` backfill against a real PostgreSQL with pgvector, the seeded sample catalog and the
//! real all-MiniLM-L6-v2 model: every product gets a vector once, re-runs do nothing, batch
//! sizes do not change the result, and plain-language queries find products of the category a
//! shopper would expect.

use std::collections::HashMap;
use std::sync::OnceLock;

use mcp_fleet_core::progress::Progress;
use mcp_fleet_seed::{self as seed, SeedConfig};
use mcp_fleet_server::embed::local::LocalEmbedder;
use mcp_fleet_server::embed::{
    BackfillError, BackfillReport, DIMENSIONS, LOCAL_MODEL_NAME, backfill, default_model_dir, embed_one,
};
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::pg::unique_name;
use pgvector::Vector;
use sqlx::PgPool;

fn model() -> &'static LocalEmbedder {
    static MODEL: OnceLock<LocalEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| LocalEmbedder::load(&default_model_dir()).unwrap_or_else(|e| panic!("{e}")))
}

async fn seeded() -> TestDb {
    TestDb::from_template("seeded-small", |pool| async move {
        seed::run(&pool, &SeedConfig::small(), &Progress::quiet()).await.expect("seed");
    })
    .await
}

/// The report of the first backfill, on the freshly seeded catalog of the `embedded` template.
static FIRST_RUN: OnceLock<BackfillReport> = OnceLock::new();

/// A seeded database whose catalog was then embedded in batches of 64 (once per test process;
/// every later call clones it).
async fn embedded() -> TestDb {
    TestDb::from_template("seeded-small-embedded", |pool| async move {
        seed::run(&pool, &SeedConfig::small(), &Progress::quiet()).await.expect("seed");
        let report = backfill(&pool, model(), 64, false, &Progress::quiet()).await.expect("backfill");
        FIRST_RUN.set(report).expect("the template is built once");
    })
    .await
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn vectors(pool: &PgPool) -> HashMap<i32, Vec<f32>> {
    let rows: Vec<(i32, Vector)> =
        sqlx::query_as("SELECT product_id, description_embedding FROM retail.product_description_embeddings")
            .fetch_all(pool)
            .await
            .expect("query");
    rows.into_iter().map(|(id, v)| (id, v.to_vec())).collect()
}

#[tokio::test]
async fn every_product_is_embedded_once_and_a_second_run_embeds_nothing() {
    let db = embedded().await;
    let products = count(&db.admin, "SELECT count(*) FROM retail.products").await as u64;
    assert!(products > 100, "the sample catalog has {products} products");

    let first = FIRST_RUN.get().expect("the template's backfill ran");
    assert_eq!((first.products, first.embedded, first.skipped), (products, products, 0));
    assert_eq!(first.batches, products.div_ceil(64));
    assert_eq!(first.model, LOCAL_MODEL_NAME);
    let rows = count(
        &db.admin,
        "SELECT count(*) FROM retail.product_description_embeddings WHERE model = 'all-MiniLM-L6-v2'
            AND vector_dims(description_embedding) = 384",
    )
    .await;
    assert_eq!(rows as u64, products);

    let second = backfill(&db.admin, model(), 64, false, &Progress::quiet()).await.unwrap();
    assert_eq!((second.embedded, second.skipped, second.batches), (0, products, 0));

    // Vectors from another model are stale and get replaced.
    make_stale(&db.admin, 5).await;
    let stale = backfill(&db.admin, model(), 64, false, &Progress::quiet()).await.unwrap();
    assert_eq!((stale.embedded, stale.skipped), (5, products - 5));
    let other_models =
        "SELECT count(*) FROM retail.product_description_embeddings WHERE model <> 'all-MiniLM-L6-v2'";
    assert_eq!(count(&db.admin, other_models).await, 0);
}

#[tokio::test]
async fn force_embeds_every_product_again() {
    let db = embedded().await;
    let products = count(&db.admin, "SELECT count(*) FROM retail.products").await as u64;
    let before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(updated_at) FROM retail.product_description_embeddings")
            .fetch_one(&db.admin)
            .await
            .unwrap();
    let forced = backfill(&db.admin, model(), 256, true, &Progress::quiet()).await.unwrap();
    assert_eq!((forced.embedded, forced.skipped, forced.batches), (products, 0, products.div_ceil(256)));
    let refreshed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM retail.product_description_embeddings WHERE updated_at > $1",
    )
    .bind(before)
    .fetch_one(&db.admin)
    .await
    .unwrap();
    assert_eq!(refreshed as u64, products);
}

/// Marks the vectors of the first `n` products as coming from another model, so that the next
/// backfill redoes exactly those (cheaper than starting from an empty table).
async fn make_stale(pool: &PgPool, n: i64) {
    sqlx::query(
        "UPDATE retail.product_description_embeddings SET model = 'older-model'
          WHERE product_id IN (SELECT product_id FROM retail.products ORDER BY product_id LIMIT $1)",
    )
    .bind(n)
    .execute(pool)
    .await
    .expect("query");
}

#[tokio::test]
async fn the_stored_vector_is_the_embedding_of_name_and_description() {
    let db = embedded().await;
    let (id, name, description): (i32, String, String) = sqlx::query_as(
        "SELECT product_id, product_name, product_description FROM retail.products ORDER BY product_id DESC LIMIT 1",
    )
    .fetch_one(&db.admin)
    .await
    .unwrap();
    let stored = vectors(&db.admin).await.remove(&id).expect("a vector for the product");
    let expected = embed_one(model(), &format!("{name}. {description}")).await.unwrap();
    let dot: f32 = stored.iter().zip(&expected).map(|(a, b)| a * b).sum();
    assert!(dot > 1.0 - 1e-5, "cosine {dot}");
}

#[tokio::test]
async fn batch_size_does_not_change_the_vectors() {
    let db = embedded().await;
    let reference = vectors(&db.admin).await; // embedded in batches of 64
    for (batch_size, batches) in [(7, 7), (1, 45), (500, 1)] {
        make_stale(&db.admin, 45).await;
        let report = backfill(&db.admin, model(), batch_size, false, &Progress::quiet()).await.unwrap();
        assert_eq!((report.embedded, report.batches), (45, batches), "batch size {batch_size}");
        let now = vectors(&db.admin).await;
        assert_eq!(now.len(), reference.len());
        for (id, x) in &now {
            assert_eq!(x.len(), DIMENSIONS);
            let dot: f32 = x.iter().zip(&reference[id]).map(|(p, q)| p * q).sum();
            assert!(dot > 1.0 - 1e-5, "product {id}: cosine {dot} between batch sizes {batch_size} and 64");
        }
    }
}

#[tokio::test]
async fn concurrent_runs_take_turns_and_embed_each_product_once() {
    let db = embedded().await;
    make_stale(&db.admin, 60).await;
    let quiet = Progress::quiet();
    let (a, b) = tokio::join!(
        backfill(&db.admin, model(), 100, false, &quiet),
        backfill(&db.admin, model(), 100, false, &quiet),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.embedded + b.embedded, 60, "one run did the work, the other found none: {a} / {b}");
    assert_eq!(a.embedded.min(b.embedded), 0);
}

#[tokio::test]
async fn bad_batch_sizes_and_unprivileged_roles_are_refused_with_the_fix() {
    let db = seeded().await;
    for size in [0, 1_000_000] {
        let err = backfill(&db.admin, model(), size, false, &Progress::quiet()).await.unwrap_err();
        assert!(matches!(err, BackfillError::BatchSize(_)), "{err}");
    }
    let role = unique_name("reader");
    for sql in [
        format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'"),
        format!("GRANT USAGE ON SCHEMA retail TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA retail TO {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&db.admin).await.unwrap();
    }
    let reader = PgPool::connect(&db.url_as(&role, &format!("pw-{role}"))).await.unwrap();
    let err = backfill(&reader, model(), 64, false, &Progress::quiet()).await.unwrap_err();
    assert!(matches!(err, BackfillError::NotPermitted(_)), "{err}");
    assert!(err.to_string().contains("admin role"), "{err}");
    reader.close().await;
    assert_eq!(count(&db.admin, "SELECT count(*) FROM retail.product_description_embeddings").await, 0);
}

/// Categories of the 5 nearest products to `query` (cosine distance, as semantic search does).
async fn nearest_categories(pool: &PgPool, query: &str) -> Vec<String> {
    let v = Vector::from(embed_one(model(), query).await.expect("embed"));
    sqlx::query_scalar(
        "SELECT c.category_name
           FROM retail.product_description_embeddings e
           JOIN retail.products p USING (product_id)
           JOIN retail.categories c USING (category_id)
          ORDER BY e.description_embedding <=> $1
          LIMIT 5",
    )
    .bind(v)
    .fetch_all(pool)
    .await
    .expect("query")
}

#[tokio::test]
async fn plain_language_queries_find_products_of_the_expected_category() {
    let db = embedded().await;
    let cases = [
        ("something to water my plants", "Garden & Outdoor"),
        ("fix a leaking pipe", "Plumbing"),
        ("cordless drill for screws", "Power Tools"),
        ("paint my living room walls", "Paint & Finishes"),
    ];
    let known: Vec<String> =
        sqlx::query_scalar("SELECT category_name FROM retail.categories").fetch_all(&db.admin).await.unwrap();
    let mut failures = Vec::new();
    for (query, category) in cases {
        assert!(known.iter().any(|k| k == category), "the sample has no category {category:?}: {known:?}");
        let found = nearest_categories(&db.admin, query).await;
        let hits = found.iter().filter(|c| *c == category).count();
        eprintln!("{query:?} -> {found:?}");
        if hits < 4 {
            failures.push(format!("{query:?}: {hits}/5 in {category}, got {found:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
