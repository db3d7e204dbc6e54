//! `Bosun-Min-Position` on a GET: wait (bounded) until the read models have applied that
//! position, so a client that wrote through another node still reads its own write.

use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

pub const MIN_POSITION: HeaderName = HeaderName::from_static("bosun-min-position");
/// How long a GET may wait for the read models.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

pub async fn wait_for_min_position(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(value) = request.headers().get(&MIN_POSITION) {
        let Some(position) = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                "Bosun-Min-Position must be a non-negative integer (a log position)",
            )
            .into_response();
        };
        if position > state.freshness.position() && position > head(&state).await {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "position_beyond_head",
                format!(
                    "Bosun-Min-Position {position} is past the end of the log: no write has reached it"
                ),
            )
            .into_response();
        }
        if let Err(e) = state.freshness.wait_for(position, MAX_WAIT).await {
            return Problem::unavailable(format!("{e}; retry later")).into_response();
        }
    }
    next.run(request).await
}

/// The log's head as the database has it now (a write on another node may be ahead of this
/// node's view); if the database cannot say, the position is taken as reachable and waited for.
async fn head(state: &AppState) -> u64 {
    bosun_eventstore::EventStore::head(&state.store)
        .await
        .unwrap_or(u64::MAX)
}
