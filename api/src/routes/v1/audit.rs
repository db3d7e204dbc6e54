//! `GET /v1/audit` (admin): who did what to which target, when, from where.

use crate::auth::Caller;
use crate::extract::Query;
use crate::problem::{Problem, Refusals};
use crate::routes::{limit, listed, offset};
use crate::startup::AppState;
use axum::extract::State;
use axum::response::Response;
use bosun_projections::read_models::audit::AuditEntry;
use bosun_projections::read_models::audit::AuditQuery;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    actor: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(Params), responses((status = 200, description = "who did what to which target, with `X-Total-Count`", body = Vec<AuditEntry>), Refusals), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<Params>,
) -> Result<Response, Problem> {
    let query = AuditQuery {
        actor: params.actor,
        since: params.since,
        until: params.until,
        limit: limit(params.limit)?,
        offset: offset(params.offset)?,
    };
    let (entries, total) = state.queries.audit(&caller.actor, &query).await?;
    Ok(listed(&entries, total))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}
