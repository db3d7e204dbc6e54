//! `GET /v1/streams/{stream_id}`: one stream's events. An admin reads any; a holder with the read
//! scope reads their own user stream, their teams' streams and their tokens' streams. Password
//! hashes, token digests, sealed values and URL secrets are redacted, as on `/v1/events`.

use crate::auth::Caller;
use crate::extract::Query;
use crate::problem::{Problem, Refusals};
use crate::routes::limit;
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Events from this version on (default 0: the first event's).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    from_version: Option<u64>,
    /// Events up to this version (as `ETag` counts), which the stream must have (404 if not).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    to_version: Option<u64>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/streams/{stream_id}", tag = "streams", params(("stream_id" = String, Path, description = "`<category>-<id>`"), StreamQuery), responses((status = 200, description = "the stream's events from `from_version` up to `to_version`; hashes, sealed values and URL secrets redacted", body = Vec<Object>), Refusals), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(stream_id): Path<String>,
    Query(query): Query<StreamQuery>,
) -> Result<Response, Problem> {
    let limit = limit(query.limit)? as usize;
    let from = crate::routes::counted("from_version", query.from_version)?.unwrap_or(0);
    let to = crate::routes::counted("to_version", query.to_version)?;
    let events = state
        .queries
        .stream(&caller.actor, &stream_id, from, to, limit)
        .await?;
    Ok(axum::Json(events).into_response())
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get))
}
