//! Product search: semantic (pgvector cosine distance over description embeddings, HNSW index),
//! full text (the generated tsvector, GIN index) and hybrid (a weighted sum of both). Does database
//! I/O as the caller's tenant, and calls the embedder.

use std::time::Instant;

use pgvector::Vector;
use tracing::Instrument as _;

use super::args::{
    FullTextSearchArgs, HybridSearchArgs, MAX_DESCRIPTION_CHARS, MAX_QUERY_CHARS, MAX_ROWS,
    MAX_SEMANTIC_WEIGHT, MAX_SIMILARITY, MIN_ROWS, MIN_SEMANTIC_WEIGHT, MIN_SIMILARITY, SemanticSearchArgs,
};
use super::outcome::ToolFailure;
use super::result::{Collector, Compact, Limits};
use super::state::AppState;
use crate::auth::identity::Caller;
use crate::db::DbError;
/// How many nearest neighbours and text matches each side contributes before fusing.
const HYBRID_CANDIDATES: i64 = 100;

fn check_text(field: &str, text: &str, max: usize) -> Result<String, ToolFailure> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ToolFailure::rejected("invalid_arguments", format!("{field} must not be empty")));
    }
    if t.chars().count() > max {
        return Err(ToolFailure::rejected(
            "invalid_arguments",
            format!("{field} is longer than {max} characters; shorten it"),
        ));
    }
    Ok(t.to_owned())
}

fn check_rows(max_rows: u32) -> Result<i64, ToolFailure> {
    if !(MIN_ROWS..=MAX_ROWS).contains(&max_rows) {
        return Err(ToolFailure::rejected(
            "invalid_arguments",
            format!("max_rows must be between {MIN_ROWS} and {MAX_ROWS}, got {max_rows}"),
        ));
    }
    Ok(i64::from(max_rows))
}

fn check_range(field: &str, value: f64, min: u8, max: u8) -> Result<(), ToolFailure> {
    if !(f64::from(min)..=f64::from(max)).contains(&value) {
        return Err(ToolFailure::rejected(
            "invalid_arguments",
            format!("{field} must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

async fn embed_query(state: &AppState, text: &str) -> Result<Vector, ToolFailure> {
    let Some(embedder) = &state.embedder else {
        return Err(ToolFailure::error("no_embedder", "semantic search is not configured on this server"));
    };
    let mut vectors = embedder
        .embed(&[text.to_owned()])
        .instrument(tracing::info_span!("embed query", model = embedder.model()))
        .await
        .map_err(|e| ToolFailure::error("embedding_failed", e.to_string()))?;
    let v = vectors
        .pop()
        .ok_or_else(|| ToolFailure::error("embedding_failed", "the embedder returned no vector"))?;
    Ok(Vector::from(v))
}

async fn run(
    state: &AppState,
    caller: &Caller,
    tool: &str,
    q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<Compact, ToolFailure> {
    query(state, caller, tool, q).instrument(crate::db::query_span()).await
}

async fn query(
    state: &AppState,
    caller: &Caller,
    tool: &str,
    q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<Compact, ToolFailure> {
    let mut tx = state.db.read_only(caller).await?;
    let started = Instant::now();
    // The query's own LIMIT bounds the rows; the byte budget bounds long descriptions.
    let limits = Limits { rows: MAX_ROWS as usize, bytes: state.max_result_bytes };
    let result = Collector::native(limits)
        .read(q.fetch(&mut *tx))
        .await
        .map_err(|e| DbError::from_query(e, state.db.statement_timeout()))?;
    state.metrics.query_duration.with_label_values(&[tool]).observe(started.elapsed().as_secs_f64());
    result.map_err(|e| ToolFailure::error("unsupported_type", e.to_string()))
}

pub async fn semantic(
    state: &AppState,
    caller: &Caller,
    args: &SemanticSearchArgs,
) -> Result<Compact, ToolFailure> {
    let text = check_text("query_description", &args.query_description, MAX_DESCRIPTION_CHARS)?;
    let limit = check_rows(args.max_rows)?;
    check_range("similarity_threshold", args.similarity_threshold, MIN_SIMILARITY, MAX_SIMILARITY)?;
    let vector = embed_query(state, &text).await?;
    // similarity percent = (1 - cosine distance) * 100, as in the reference sample.
    let max_distance = 1.0 - args.similarity_threshold / 100.0;
    let q = sqlx::query(
        "SELECT p.product_id, p.sku, p.product_name, p.category_id, p.type_id, p.cost, p.base_price,
                p.gross_margin_percent, p.product_description,
                (e.description_embedding <=> $1) AS similarity_distance,
                round(((1 - (e.description_embedding <=> $1)) * 100)::numeric, 1) AS sp
         FROM retail.product_description_embeddings e
         JOIN retail.products p ON p.product_id = e.product_id
         WHERE (e.description_embedding <=> $1) <= $3
         ORDER BY e.description_embedding <=> $1
         LIMIT $2",
    )
    .bind(vector)
    .bind(limit)
    .bind(max_distance);
    let mut c = run(state, caller, "semantic_search_products", q).await?;
    if c.rows.is_empty() {
        c.msg = Some(format!("No products >= {}%", args.similarity_threshold));
    }
    Ok(c)
}

pub async fn full_text(
    state: &AppState,
    caller: &Caller,
    args: &FullTextSearchArgs,
) -> Result<Compact, ToolFailure> {
    let text = check_text("query", &args.query, MAX_QUERY_CHARS)?;
    let limit = check_rows(args.max_rows)?;
    let q = sqlx::query(
        "SELECT p.product_id, p.sku, p.product_name, c.category_name, t.type_name, p.base_price,
                p.product_description,
                round(ts_rank_cd(p.product_search, q.tsq, 32)::numeric, 4) AS rank
         FROM retail.products p
         JOIN retail.categories c ON c.category_id = p.category_id
         JOIN retail.product_types t ON t.type_id = p.type_id,
              websearch_to_tsquery('english', $1) AS q(tsq)
         WHERE p.product_search @@ q.tsq
         ORDER BY rank DESC, p.product_id
         LIMIT $2",
    )
    .bind(&text)
    .bind(limit);
    let mut c = run(state, caller, "full_text_search_products", q).await?;
    if c.rows.is_empty() {
        c.msg = Some(format!(
            "No products match {text:?}; try fewer or different words, or semantic_search_products"
        ));
    }
    Ok(c)
}

pub async fn hybrid(
    state: &AppState,
    caller: &Caller,
    args: &HybridSearchArgs,
) -> Result<Compact, ToolFailure> {
    let text = check_text("query_description", &args.query_description, MAX_DESCRIPTION_CHARS)?;
    let limit = check_rows(args.max_rows)?;
    check_range("semantic_weight", args.semantic_weight, MIN_SEMANTIC_WEIGHT, MAX_SEMANTIC_WEIGHT)?;
    let vector = embed_query(state, &text).await?;
    // Candidates: the nearest neighbours by meaning plus the best text matches; each is scored
    // on both signals. ts_rank_cd with normalisation 32 maps the rank into 0..1.
    let q = sqlx::query(
        "WITH q AS (SELECT websearch_to_tsquery('english', $2) AS tsq),
         sem AS (
            SELECT product_id FROM retail.product_description_embeddings
            ORDER BY description_embedding <=> $1 LIMIT $5),
         fts AS (
            SELECT p.product_id FROM retail.products p, q
            WHERE p.product_search @@ q.tsq
            ORDER BY ts_rank_cd(p.product_search, q.tsq, 32) DESC LIMIT $5),
         scored AS (
            SELECT p.product_id,
                   1 - (e.description_embedding <=> $1) AS semantic_score,
                   coalesce(ts_rank_cd(p.product_search, q.tsq, 32), 0) AS text_score
            FROM (SELECT product_id FROM sem UNION SELECT product_id FROM fts) ids
            JOIN retail.products p ON p.product_id = ids.product_id
            JOIN retail.product_description_embeddings e ON e.product_id = p.product_id
            CROSS JOIN q)
         SELECT p.product_id, p.sku, p.product_name, c.category_name, t.type_name, p.base_price,
                p.product_description,
                round(s.semantic_score::numeric, 4) AS semantic_score,
                round(s.text_score::numeric, 4) AS text_score,
                round(($4 * s.semantic_score + (1 - $4) * s.text_score)::numeric, 4) AS score
         FROM scored s
         JOIN retail.products p ON p.product_id = s.product_id
         JOIN retail.categories c ON c.category_id = p.category_id
         JOIN retail.product_types t ON t.type_id = p.type_id
         ORDER BY score DESC, p.product_id
         LIMIT $3",
    )
    .bind(vector)
    .bind(&text)
    .bind(limit)
    .bind(args.semantic_weight)
    .bind(HYBRID_CANDIDATES);
    run(state, caller, "hybrid_search_products", q).await
}
