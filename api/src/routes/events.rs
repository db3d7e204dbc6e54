//! `GET /v1/events`: the log in position order, for audit and replay tooling (admin scope), with
//! the secrets' hashes redacted.

use crate::auth::Caller;
use crate::extract::Query;
use crate::problem::Problem;
use crate::routes::limit;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use bosun_domain::identity::redact;
use bosun_eventstore::{EventStore, Filter, RecordedEvent};
use serde::Deserialize;

pub const HEAD: HeaderName = HeaderName::from_static("bosun-head");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    from: Option<u64>,
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

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<EventsQuery>,
) -> Result<Response, Problem> {
    require_log_reader(&caller)?;
    let filter = Filter {
        categories: list_param(&query.category),
        event_types: list_param(&query.event_type),
        actors: list_param(&query.actor),
    };
    let limit = limit(query.limit)? as usize;
    let mut page = state
        .store
        .read_page(query.from.unwrap_or(1), limit, &filter)
        .await?;
    redact_secrets(&mut page.events);
    let mut response = axum::Json(&page.events).into_response();
    response
        .headers_mut()
        .insert(HEAD, HeaderValue::from(page.head));
    Ok(response)
}

/// Hides the password hashes and token digests of identity events: the log keeps them for the
/// aggregates, but no reader of it over the API may see them (an admin included: a hash can be
/// attacked offline, and a digest is all a token check needs).
pub fn redact_secrets(events: &mut [RecordedEvent]) {
    for event in events {
        redact(event.stream_id.category(), &mut event.data);
    }
}

/// Reading the whole log takes an admin acting with the admin scope.
pub fn require_log_reader(caller: &Caller) -> Result<(), Problem> {
    caller.actor.require(bosun_domain::identity::Scope::Read)?;
    caller.actor.require_admin().map_err(|_| {
        Problem::forbidden(
            "reading the whole log needs an admin token with the admin scope; read a stream you may read at /v1/streams/{stream_id}",
        )
    })
}
