//! The operator's own HTTP endpoints: `/metrics` (Prometheus), `/health`, `/health/live` and
//! `/health/ready`. Does I/O (a TCP listener).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(|| async { "ok" }))
        .route("/health/live", get(|| async { "ok" }))
        // A standby replica is ready too: it serves metrics and waits for the lease.
        .route("/health/ready", get(|| async { "ok" }))
        .with_state(metrics)
}

async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render())
}
