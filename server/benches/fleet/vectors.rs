//! kNN on synthetic products: unit vectors clustered around a few hundred random centres, loaded
//! with binary COPY into `bench.products`, indexed with HNSW (pgvector defaults, cosine), then
//! queried at several `hnsw.ef_search` values and compared with exact search (index scans off).
//! Does database I/O.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use pgvector::Vector;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use sqlx::{Connection as _, PgConnection, PgPool};

use crate::load::Stats;

pub const DIMENSIONS: usize = 384;
/// Per-coordinate standard deviation of the noise added to a centre. The noise vector's length
/// is about 0.05 × √384 ≈ 0.98, so a product's cosine to its centre is about 0.7 and to another
/// member of its cluster about 0.5, while unrelated centres are nearly orthogonal — roughly how
/// sentence embeddings of related and unrelated products behave.
pub const NOISE_SIGMA: f32 = 0.05;
const SEED: u64 = 20_261_125;

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub products: usize,
    pub centres: usize,
    pub queries: usize,
}

/// One `hnsw.ef_search` setting: latency of the indexed query and its recall@10.
#[derive(Clone, Debug)]
pub struct EfResult {
    pub ef_search: u32,
    pub stats: Stats,
    pub recall: f64,
}

#[derive(Clone, Debug)]
pub struct Knn {
    pub shape: Shape,
    pub load_time: Duration,
    pub index_time: Duration,
    pub exact: Stats,
    pub by_ef: Vec<EfResult>,
}

struct Generator {
    rng: ChaCha8Rng,
    centres: Vec<Vec<f32>>,
}

impl Generator {
    fn new(centres: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let centres = (0..centres)
            .map(|_| {
                let mut c: Vec<f32> = (0..DIMENSIONS).map(|_| gaussian(&mut rng)).collect();
                normalize(&mut c);
                c
            })
            .collect();
        Self { rng, centres }
    }

    /// A unit vector near a random centre.
    fn sample(&mut self) -> Vec<f32> {
        let c = self.rng.random_range(0..self.centres.len());
        let mut v: Vec<f32> =
            (0..DIMENSIONS).map(|i| self.centres[c][i] + NOISE_SIGMA * gaussian(&mut self.rng)).collect();
        normalize(&mut v);
        v
    }
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

/// PostgreSQL's binary COPY format for rows `(integer, vector)`.
fn copy_rows(first_id: usize, vectors: &[Vec<f32>], with_header: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(vectors.len() * (DIMENSIONS * 4 + 20) + 19);
    if with_header {
        out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
    }
    for (i, v) in vectors.iter().enumerate() {
        out.extend_from_slice(&2i16.to_be_bytes());
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(&((first_id + i) as i32).to_be_bytes());
        // pgvector's binary form: dimensions (int16), unused (int16), then float4s.
        out.extend_from_slice(&((4 + 4 * DIMENSIONS) as i32).to_be_bytes());
        out.extend_from_slice(&(DIMENSIONS as i16).to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        for x in v {
            out.extend_from_slice(&x.to_be_bytes());
        }
    }
    out
}

const KNN_SQL: &str = "SELECT product_id FROM bench.products ORDER BY embedding <=> $1 LIMIT 10";

async fn nearest(conn: &mut PgConnection, q: &[f32]) -> anyhow::Result<Vec<i32>> {
    Ok(sqlx::query_scalar(KNN_SQL).bind(Vector::from(q.to_vec())).fetch_all(&mut *conn).await?)
}

/// Builds the synthetic table and index, then measures exact search and each `ef_search` value.
/// Bounded: every phase stops at its count or at `time_per_phase`, whichever comes first.
pub async fn run(
    admin: &PgPool,
    shape: Shape,
    ef_values: &[u32],
    time_per_phase: Duration,
    log: impl Fn(&str),
) -> anyhow::Result<Knn> {
    let mut conn = admin.acquire().await?.detach();
    let mut generator = Generator::new(shape.centres);

    log(&format!(
        "synthetic kNN: generating and COPYing {} unit vectors around {} centres (σ = {NOISE_SIGMA})",
        shape.products, shape.centres
    ));
    let started = Instant::now();
    sqlx::raw_sql(
        "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;
         CREATE TABLE bench.products (product_id integer PRIMARY KEY, embedding vector(384) NOT NULL)",
    )
    .execute(&mut conn)
    .await?;
    let mut copy =
        conn.copy_in_raw("COPY bench.products (product_id, embedding) FROM STDIN (FORMAT binary)").await?;
    const CHUNK: usize = 2000;
    for start in (0..shape.products).step_by(CHUNK) {
        let batch: Vec<Vec<f32>> =
            (start..(start + CHUNK).min(shape.products)).map(|_| generator.sample()).collect();
        copy.send(copy_rows(start + 1, &batch, start == 0)).await?;
    }
    copy.send((-1i16).to_be_bytes().as_slice()).await?;
    let rows = copy.finish().await?;
    anyhow::ensure!(rows as usize == shape.products, "COPY loaded {rows} rows, expected {}", shape.products);
    let load_time = started.elapsed();

    log(&format!(
        "synthetic kNN: building the HNSW index (m 16, ef_construction 64, cosine) on {} rows",
        shape.products
    ));
    let started = Instant::now();
    sqlx::raw_sql(
        "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 1; SET statement_timeout = '20min';
         CREATE INDEX bench_products_hnsw ON bench.products USING hnsw (embedding vector_cosine_ops);
         RESET statement_timeout; ANALYZE bench.products",
    )
    .execute(&mut conn)
    .await
    .context("building the HNSW index")?;
    let index_time = started.elapsed();
    log(&format!("synthetic kNN: index built in {:.1}s", index_time.as_secs_f64()));

    let queries: Vec<Vec<f32>> = (0..shape.queries).map(|_| generator.sample()).collect();

    log(&format!("synthetic kNN: exact top-10 of {} queries (index scans off)", queries.len()));
    let mut exact = Vec::new();
    let mut exact_times = Vec::new();
    let deadline = Instant::now() + time_per_phase;
    for q in &queries {
        if Instant::now() > deadline {
            break;
        }
        let t0 = Instant::now();
        let mut tx = conn.begin().await?;
        sqlx::query("SET LOCAL enable_indexscan = off").execute(&mut *tx).await?;
        let ids = nearest(&mut tx, q).await?;
        tx.commit().await?;
        exact_times.push(t0.elapsed());
        exact.push(ids);
    }
    let exact_window = exact_times.iter().sum();
    let exact_stats = Stats::from_samples(1, exact_times, exact_window);
    // Check the plan, so "exact" is not silently an index scan.
    let plan: Vec<String> = {
        let mut tx = conn.begin().await?;
        sqlx::query("SET LOCAL enable_indexscan = off").execute(&mut *tx).await?;
        let plan = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {KNN_SQL}")))
            .bind(Vector::from(queries[0].clone()))
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await?;
        plan
    };
    anyhow::ensure!(
        !plan.iter().any(|l| l.contains("bench_products_hnsw")),
        "exact search used the index: {plan:?}"
    );

    let mut by_ef = Vec::new();
    for &ef in ef_values {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET hnsw.ef_search = {ef}"))).execute(&mut conn).await?;
        for q in queries.iter().take(20) {
            nearest(&mut conn, q).await?;
        }
        let mut times = Vec::new();
        let mut hits = 0usize;
        let mut compared = 0usize;
        let deadline = Instant::now() + time_per_phase;
        for (i, q) in queries.iter().enumerate() {
            if Instant::now() > deadline {
                break;
            }
            let t0 = Instant::now();
            let ids = nearest(&mut conn, q).await?;
            times.push(t0.elapsed());
            if let Some(truth) = exact.get(i) {
                hits += ids.iter().filter(|id| truth.contains(id)).count();
                compared += truth.len();
            }
        }
        let window = times.iter().sum();
        let stats = Stats::from_samples(1, times, window);
        let recall = hits as f64 / compared.max(1) as f64;
        log(&format!(
            "synthetic kNN: ef_search {ef}: p50 {:.2} ms, recall@10 {recall:.3}",
            stats.p50.as_secs_f64() * 1e3
        ));
        by_ef.push(EfResult { ef_search: ef, stats, recall });
    }
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {KNN_SQL}")))
        .bind(Vector::from(queries[0].clone()))
        .fetch_all(&mut conn)
        .await?;
    anyhow::ensure!(
        plan.iter().any(|l| l.contains("bench_products_hnsw")),
        "the kNN query did not use the HNSW index: {plan:?}"
    );
    sqlx::raw_sql("RESET hnsw.ef_search; DROP SCHEMA bench CASCADE").execute(&mut conn).await?;
    let _ = conn.close().await;
    Ok(Knn { shape, load_time, index_time, exact: exact_stats, by_ef })
}
