//! The node server's stats routes: `GET /stats/summary` (the Summary API) and
//! `GET /metrics/resource` (Prometheus resource metrics), both from one collection of the
//! host's and the runtime's figures ([`crate::stats`]).

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{HttpError, NodeState};
use crate::stats::{self, Summary};

async fn collect(state: &NodeState) -> Result<Summary, HttpError> {
    let now = Instant::now();
    let node = stats::host_stats(&state.cpu_samples, now);
    stats::collect(&*state.lookup.runtime(), &state.cpu_samples, node, now)
        .await
        .map_err(|e| HttpError::internal(format!("collect container stats: {e}")))
}

/// The summary handler.
pub async fn summary(State(state): State<NodeState>) -> Result<Json<Value>, HttpError> {
    let s = collect(&state).await?;
    Ok(Json(stats::summary::render(&state.node_name, &s)))
}

/// The resource metrics handler.
pub async fn resource_metrics(State(state): State<NodeState>) -> Response {
    let s = collect(&state).await;
    if let Err(e) = &s {
        tracing::warn!(error = %e.message, "resource metrics: runtime not readable");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        stats::resource::render(s.as_ref().ok()),
    )
        .into_response()
}
