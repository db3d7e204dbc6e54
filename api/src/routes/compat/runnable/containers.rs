//! Runnable's containers (`/users/{user}/runnables…`): a user's runnables, forked from an image,
//! renamed, started and stopped, synced, removed. `{user}` is `me` or a name read as
//! `/v1/users/{name}` reads it ([`user_named`]: 403, 404); `{id}` is then that user's runnable
//! ([`container_of`]: read as natively, 404 for one the caller does not see, then 403
//! `permission denied` for one that is not `{user}`'s, as Runnable's `getContainer` refused
//! it, before anything is written), and each action the native one, by the native rules.
//!
//! - `POST …/runnables?from=<id>`: forks `from` (`fork_runnable`), 201 with the fork; 400 `must
//!   provide a runnable to fork from` without it. A fork is the caller's: under another user's
//!   name it is a 403.
//! - `GET …/runnables[?parent=<id>]`: that user's runnables, the newest first, at most
//!   [`LIST_MAX`] (Runnable listed them all: a user here may own more, an admin any number).
//! - `GET …/runnables/{id}`: the runnable, with `running`.
//! - `PUT …/runnables/{id}` `{running, name, description[, start_cmd]}`: each of the first three
//!   required, as Runnable had them (400 `must provide a running parameter`, `must provide a
//!   runnable name`, `… description`); renames it (and changes its start command if asked)
//!   and starts or stops it in one native change (`change_runnable`: one append, or nothing
//!   if any part is refused); 200 with it.
//! - `DELETE …/runnables/{id}`: removes it, `{message: "runnable deleted"}`.
//! - `POST …/runnables/{id}/sync`: a running process's files synced back now
//!   (`sync_before_save`, with no image made), 201 `{message, date}`.
//!
//! Does not own: the rules (commands), the shape (`render`).

use super::body::Fields;
use super::users::user_named;
use super::{missing, render, runnable_id, written, RunnableCaller, LIST_MAX};
use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Path, Query};
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::queries::{Page, RunnableFilter};
use bosun_commands::runnables::RunnableChange;
use bosun_projections::read_models::runnables::RunnableView;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// Runnable `id` of `user`'s path: `{user}` read first ([`user_named`]), then the runnable as
/// the caller reads it natively (404); 403 `permission denied` when it is not `{user}`'s (an
/// image of another user's is read at `/runnables/{id}`, not as one's own container).
pub(super) async fn container_of(
    state: &AppState,
    caller: &Caller,
    user: &str,
    id: &str,
) -> Result<RunnableView, Problem> {
    let owner = user_named(state, &caller.actor, user).await?;
    let view = state
        .queries
        .runnable(&caller.actor, runnable_id(id)?)
        .await?;
    if view.owner != owner.username {
        return Err(Problem::forbidden("permission denied"));
    }
    Ok(view)
}

#[derive(Deserialize)]
pub struct ForkQuery {
    from: Option<String>,
}

/// `POST /users/{user}/runnables?from=`: see the [module](self).
pub async fn fork(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(user): Path<String>,
    Query(query): Query<ForkQuery>,
) -> Result<Response, Problem> {
    let owner = user_named(&state, &caller.actor, &user).await?;
    if !caller.actor.is(&owner.username) {
        return Err(Problem::forbidden(
            "a fork is its maker's: fork it under /users/me/runnables",
        ));
    }
    let from = query
        .from
        .filter(|from| !from.is_empty())
        .ok_or_else(|| missing("from", "must provide a runnable to fork from"))?;
    let (view, w) = state
        .commands
        .fork_runnable(&caller.actor, &origin, &state.runnable_rules, &from, None)
        .await?;
    Ok(written(
        &state,
        StatusCode::CREATED,
        &render::container(&view),
        w,
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    parent: Option<String>,
}

/// `GET /users/{user}/runnables?parent=`: see the [module](self).
pub async fn list(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    Path(user): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let owner = user_named(&state, &caller.actor, &user).await?;
    let parent = match query.parent.as_deref() {
        None | Some("") => None,
        Some(parent) => Some(
            Uuid::parse_str(parent)
                .map_err(|_| Problem::invalid_field("parent", "must be a runnable's id"))?,
        ),
    };
    let filter = RunnableFilter {
        owner: Some(owner.username),
        parent,
        has_image: None,
    };
    let page = Page {
        limit: LIST_MAX,
        offset: 0,
    };
    let (runnables, _) = state.queries.runnables(&caller.actor, filter, page).await?;
    let body: Vec<Value> = runnables.iter().map(render::container).collect();
    Ok(super::read(&body))
}

/// `GET /users/{user}/runnables/{id}`: the runnable.
pub async fn get(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    Path((user, id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let view = container_of(&state, &caller, &user, &id).await?;
    Ok(super::read(&render::container(&view)))
}

/// `PUT /users/{user}/runnables/{id}`: see the [module](self).
pub async fn update(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((user, id)): Path<(String, String)>,
    fields: Fields,
) -> Result<Response, Problem> {
    let id = container_of(&state, &caller, &user, &id).await?.id;
    let running = fields
        .flag("running")?
        .ok_or_else(|| missing("running", "must provide a running parameter"))?;
    let name = fields
        .text("name")?
        .ok_or_else(|| missing("name", "must provide a runnable name"))?;
    // Required as Runnable required it; Bosun keeps no description.
    fields
        .text("description")?
        .ok_or_else(|| missing("description", "must provide a runnable description"))?;
    let change = RunnableChange {
        name: Some(name),
        start_command: fields.text("start_cmd")?,
        running: Some(running),
    };
    let (view, w) = state
        .commands
        .change_runnable(&caller.actor, &origin, id, change)
        .await?;
    Ok(written(
        &state,
        StatusCode::OK,
        &render::container(&view),
        w,
    ))
}

/// `DELETE /users/{user}/runnables/{id}`: removes it.
pub async fn remove(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((user, id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let id = container_of(&state, &caller, &user, &id).await?.id;
    let w = state
        .commands
        .remove_runnable(&caller.actor, &origin, id)
        .await?;
    Ok(super::said(&state, "runnable deleted", w))
}

/// `POST /users/{user}/runnables/{id}/sync`: its running process's files synced back now.
pub async fn sync(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((user, id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let id = container_of(&state, &caller, &user, &id).await?.id;
    state
        .commands
        .sync_before_save(&caller.actor, &origin, &state.runnable_rules, id)
        .await?;
    let body = serde_json::json!({
        "message": "files synced successfully",
        "date": chrono::Utc::now(),
    });
    Ok(super::written(
        &state,
        StatusCode::CREATED,
        &body,
        bosun_commands::Written::default(),
    ))
}
