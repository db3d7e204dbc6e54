//! `GET /v1/audit` (admin): who did what to which target, when, from where.

use crate::auth::Caller;
use crate::extract::Query;
use crate::problem::{Problem, Refusals};
use crate::routes::{counted, limit, listed_page, offset};
use crate::startup::AppState;
use axum::extract::State;
use axum::response::Response;
use bosun_projections::read_models::audit::AuditEntry;
use bosun_projections::read_models::audit::AuditQuery;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, Serialize, utoipa::IntoParams)]
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
    /// The entries after this position, as the previous page's `Link: rel="next"` gives it: a
    /// page that costs the same however deep in the audit, where `offset` costs what it skips.
    #[param(minimum = 0)]
    after: Option<u64>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(Params), responses((status = 200, description = "who did what to which target, oldest first, with `X-Total-Count` (counted up to 10,000; past it, 10,000 and `X-Total-Count-Capped: true`) and, when more follow, `Link: <…>; rel=\"next\"`", body = Vec<AuditEntry>), Refusals), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<Params>,
) -> Result<Response, Problem> {
    let query = AuditQuery {
        actor: params.actor.clone(),
        since: params.since,
        until: params.until,
        after: counted("after", params.after)?,
        // One more than the page, to know whether a next one is there to link to.
        limit: limit(params.limit)? + 1,
        offset: offset(params.offset)?,
    };
    let (mut entries, total) = state.queries.audit(&caller.actor, &query).await?;
    let more = entries.len() as i64 == query.limit;
    entries.truncate(query.limit as usize - 1);
    let next = match entries.last() {
        Some(last) if more => {
            let next = Params {
                offset: None,
                after: Some(last.position),
                ..params
            };
            serde_urlencoded::to_string(&next)
                .ok()
                .map(|q| format!("/v1/audit?{q}"))
        }
        _ => None,
    };
    Ok(listed_page(&entries, total, next))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}
