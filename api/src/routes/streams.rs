//! `GET /v1/streams/{stream_id}`: one stream's events. An admin reads any; a holder with the read
//! scope reads their own user stream, their teams' streams and their tokens' streams. Password
//! hashes and token digests are redacted, as on `/v1/events`.

use crate::auth::Caller;
use crate::extract::Query;
use crate::problem::Problem;
use crate::routes::events::redact_secrets;
use crate::routes::limit;
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::response::Response;
use bosun_domain::identity::Scope;
use bosun_eventstore::{EventStore, StreamId};
use bosun_projections::read_models::identity as model;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    from_version: Option<u64>,
    limit: Option<i64>,
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(stream_id): Path<String>,
    Query(query): Query<StreamQuery>,
) -> Result<Response, Problem> {
    caller.actor.require(Scope::Read)?;
    let not_found = || Problem::not_found(format!("no events in stream {stream_id}"));
    let stream = StreamId::parse(stream_id.as_str()).map_err(|_| not_found())?;
    if !caller.actor.is_admin() && !may_read(&state, &caller, &stream).await? {
        return Err(Problem::forbidden(format!(
            "you may not read stream {stream_id}"
        )));
    }
    let limit = limit(query.limit)? as usize;
    let from = query.from_version.unwrap_or(0);
    let mut events = state.store.read_stream(&stream, from, limit).await?;
    redact_secrets(&mut events);
    if events.is_empty() {
        let exists = !state.store.read_stream(&stream, 0, 1).await?.is_empty();
        if !exists {
            return Err(not_found());
        }
    }
    Ok(axum::Json(events).into_response())
}

async fn may_read(state: &AppState, caller: &Caller, stream: &StreamId) -> Result<bool, Problem> {
    let id = stream.id();
    Ok(match stream.category() {
        "user" => caller.actor.is(id),
        "team" => caller.actor.is_member(id),
        "token" => match uuid::Uuid::parse_str(id) {
            Ok(token_id) => {
                let client = state.store.pool().get().await?;
                model::token(&**client, token_id)
                    .await?
                    .is_some_and(|t| caller.actor.is(&t.username))
            }
            Err(_) => false,
        },
        // The one read rule for a job, as on /v1/jobs.
        "job" => match uuid::Uuid::parse_str(id) {
            Ok(job_id) => state.commands.may_read_job(&caller.actor, job_id).await?,
            Err(_) => false,
        },
        _ => false,
    })
}
