//! `GET /v1/events`: the log in position order, for audit and replay tooling and for anyone with
//! the read scope, filtered to the streams the caller may read (an admin reads them all; the rule:
//! `bosun_commands::Queries::may_read_stream`), with its secrets redacted
//! (`bosun_domain::identity::redact`): password hashes and token digests, every sealed value, and
//! the secret parts of URLs stored in clear before sealing. `Bosun-Next-From` says where the next
//! page starts: a caller who sees only some streams may get a short page before the head.

use crate::auth::Caller;
use crate::extract::Query;
use crate::problem::{Problem, Refusals};
use crate::routes::limit;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use bosun_eventstore::Filter;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const HEAD: HeaderName = HeaderName::from_static("bosun-head");
pub const NEXT_FROM: HeaderName = HeaderName::from_static("bosun-next-from");

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    from: Option<u64>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    category: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    actor: Option<String>,
}

/// Comma-separated values of a filter parameter.
pub fn list_param(value: &Option<String>) -> Vec<String> {
    value
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery), responses((status = 200, description = "the envelopes of the streams the caller may read, in position order, with `Bosun-Head` and `Bosun-Next-From` (the `from` of the next page); hashes, sealed values and URL secrets redacted", body = Vec<Object>), Refusals), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<EventsQuery>,
) -> Result<Response, Problem> {
    let filter = Filter {
        categories: list_param(&query.category),
        event_types: list_param(&query.event_type),
        actors: list_param(&query.actor),
    };
    let limit = limit(query.limit)? as usize;
    // `from=0` is the start of the log, as `from=1`.
    let from = crate::routes::counted("from", query.from)?
        .unwrap_or(1)
        .max(1);
    let read = |projected| {
        state
            .queries
            .events(&caller.actor, from, limit, &filter, projected)
    };
    let mut page = read(state.freshness.position()).await?;
    if page.events.is_empty() && page.scanned_to < from && page.head >= from {
        // The read models had not reached `from`, so nothing could be judged: wait for them a
        // moment, once, rather than answer a page that does not move on.
        let _ = state
            .freshness
            .wait_for(from, std::time::Duration::from_secs(2))
            .await;
        page = read(state.freshness.position()).await?;
    }
    let mut response = axum::Json(&page.events).into_response();
    let headers = response.headers_mut();
    headers.insert(HEAD, HeaderValue::from(page.head));
    headers.insert(NEXT_FROM, HeaderValue::from(page.scanned_to + 1));
    Ok(response)
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}
