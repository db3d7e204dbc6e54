//! `GET /v1/audit` (admin): who did what to which target, when, from where.

use crate::auth::Caller;
use crate::extract::Query;
use crate::problem::Problem;
use crate::routes::events::require_log_reader;
use crate::routes::{limit, listed, offset};
use crate::startup::AppState;
use axum::extract::State;
use axum::response::Response;
use bosun_projections::read_models::audit::{list as entries, AuditQuery};
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    actor: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<Params>,
) -> Result<Response, Problem> {
    require_log_reader(&caller)?;
    let query = AuditQuery {
        actor: params.actor,
        since: params.since,
        until: params.until,
        limit: limit(params.limit)?,
        offset: offset(params.offset)?,
    };
    let client = state.store.pool().get().await?;
    let (entries, total) = entries(&**client, &query).await?;
    Ok(listed(&entries, total))
}
