//! The parts of semantic search measured on their own: embedding one query with the local model
//! (in this process, release build), and kNN over the sample catalog's embeddings. Calls the model
//! and does database I/O.

use std::time::{Duration, Instant};

use mcp_fleet_server::embed::{Embedder, embed_one};
use pgvector::Vector;
use sqlx::PgPool;

use crate::load::Stats;

/// Plain-language product questions, as an assistant would pass them on.
pub const QUERIES: [&str; 10] = [
    "waterproof electrical box for outdoor use",
    "15 amp circuit breaker",
    "LED light bulbs for kitchen ceiling",
    "cordless drill for deck screws",
    "paint for a bathroom that resists mildew",
    "garden hose that does not kink",
    "something to fix a leaking pipe under the sink",
    "heavy duty shelving for the garage",
    "tool to cut ceramic tiles",
    "safety glasses for woodworking",
];

/// Embeds the queries in turn, `max_calls` times or for `max_time`, after a warm-up of 5 calls.
pub async fn embed_latency(
    embedder: &dyn Embedder,
    max_calls: usize,
    max_time: Duration,
) -> anyhow::Result<Stats> {
    for q in QUERIES.iter().take(5) {
        embed_one(embedder, q).await?;
    }
    let deadline = Instant::now() + max_time;
    let mut times = Vec::with_capacity(max_calls);
    for i in 0..max_calls {
        if Instant::now() > deadline {
            break;
        }
        let t0 = Instant::now();
        let v = embed_one(embedder, QUERIES[i % QUERIES.len()]).await?;
        times.push(t0.elapsed());
        anyhow::ensure!(v.len() == 384, "the model returned {} dimensions", v.len());
    }
    let window = times.iter().sum();
    Ok(Stats::from_samples(1, times, window))
}

/// kNN over `retail.product_description_embeddings` (the sample catalog) with precomputed query
/// vectors: the database's share of `semantic_search_products`.
pub async fn catalog_knn_latency(
    admin: &PgPool,
    embedder: &dyn Embedder,
    max_calls: usize,
    max_time: Duration,
) -> anyhow::Result<Stats> {
    let mut vectors = Vec::new();
    for q in QUERIES {
        vectors.push(Vector::from(embed_one(embedder, q).await?));
    }
    let sql = "SELECT product_id FROM retail.product_description_embeddings ORDER BY description_embedding <=> $1 LIMIT 20";
    let mut conn = admin.acquire().await?;
    for v in &vectors {
        sqlx::query(sql).bind(v.clone()).fetch_all(&mut *conn).await?;
    }
    let deadline = Instant::now() + max_time;
    let mut times = Vec::with_capacity(max_calls);
    for i in 0..max_calls {
        if Instant::now() > deadline {
            break;
        }
        let t0 = Instant::now();
        let rows = sqlx::query(sql).bind(vectors[i % vectors.len()].clone()).fetch_all(&mut *conn).await?;
        times.push(t0.elapsed());
        anyhow::ensure!(rows.len() == 20, "catalog kNN returned {} rows", rows.len());
    }
    let window = times.iter().sum();
    let stats = Stats::from_samples(1, times, window);
    anyhow::ensure!(stats.requests > 0, "no catalog kNN query ran");
    Ok(stats)
}
