//! `GET /{app}/{env}/tasks`: the tasks of one app and environment, `{task: description}`, from
//! the catalog query `GET /v1/catalog` answers with (pulsar asked capistrano for them).

use crate::auth::Caller;
use crate::extract::Path;
use crate::problem::Problem;
use crate::routes::compat::json;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::BTreeMap;

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((app, env)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let entry = state
        .queries
        .catalog(&caller.actor, &state.catalog)?
        .into_iter()
        .find(|entry| entry.app == app && entry.env == env)
        .ok_or_else(|| Problem::not_found(format!("the catalog has no {app}/{env}")))?;
    let tasks: BTreeMap<String, String> = entry
        .tasks
        .into_iter()
        .map(|task| (task.name, task.description))
        .collect();
    Ok(json(StatusCode::OK, &tasks))
}
