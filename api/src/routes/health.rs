//! `/healthz` (the process answers) and `/readyz` (the database answers and every projection is
//! within its lag bound).

use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::Json;
use bosun_eventstore::EventStore;
use serde_json::{json, Value};
use std::time::Duration;

/// Events a projection may trail the log by and still be ready.
pub const MAX_READY_LAG: u64 = 10_000;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let head = tokio::time::timeout(Duration::from_secs(2), state.store.head())
        .await
        .map_err(|_| Problem::unavailable("the database did not answer within 2 s"))?
        .map_err(|e| Problem::unavailable(format!("the database is unreachable: {e}")))?;
    let lags: serde_json::Map<String, Value> = state
        .freshness
        .checkpoints()
        .into_iter()
        .map(|(name, position)| (name, json!(head.saturating_sub(position))))
        .collect();
    if let Some((name, lag)) = lags
        .iter()
        .find(|(_, lag)| lag.as_u64().unwrap_or(0) > MAX_READY_LAG)
    {
        return Err(Problem::unavailable(format!(
            "projection {name} is {lag} events behind (bound {MAX_READY_LAG})"
        )));
    }
    Ok(Json(
        json!({ "status": "ready", "head": head, "projection_lag": lags }),
    ))
}
