//! Runnable's images (`/runnables…`): the runnables that have an image, as anyone reads them.
//! An image's id is its runnable's (Bosun keeps an image as its runnable's own).
//!
//! - `POST /runnables?from=<id>`: saves runnable `from` (`save_runnable`: makes its image, or
//!   overwrites it), 201 with the image; 400 `must provide a runnable to save from` without it.
//! - `PUT /runnables/{id}?from=<id>`: overwrites the image of `id`, which must have one (404),
//!   from the same runnable (another `from` is a 400: no image here is apart from its
//!   runnable); 200 with it.
//! - `GET /runnables[?owner=&limit=&page=]`: a page of the images the caller reads, the newest
//!   first (`limit` 25 by default; one above 200 is the default, as 0.2.0 took it: `if
//!   req.query.limit <= configs.maxPageLimit`; one that is not a whole number from 1 is a 400;
//!   `page` from 0). `published` lists them all (any image is public here); `channel` none
//!   (Bosun has no channels); `map=true` the images as `{_id, name, tags}`, the newest
//!   [`LIST_MAX`] (Runnable listed them all); `sort=votes` is the same order (no votes are
//!   kept); `search` is a 400 (not served).
//! - `GET /runnables/{id}`: the image (404 for a runnable without one).
//! - `DELETE /runnables/{id}`: removes the runnable whose image it is (`remove_runnable`),
//!   `{message: "runnable deleted"}`.
//!
//! Does not own: who may save or remove (commands), the shape (`render`).

use super::{missing, render, runnable_id, written, RunnableCaller, LIST_MAX};
use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Path, Query};
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::queries::{Page, RunnableFilter};
use bosun_projections::read_models::runnables::RunnableView;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// Runnable's page size (`defaultPageLimit`); its largest is [`LIST_MAX`] (`maxPageLimit`).
const DEFAULT_LIMIT: i64 = 25;

/// Runnable `id` as `caller` reads it, if it has an image: 404 otherwise.
async fn imaged(state: &AppState, caller: &Caller, id: Uuid) -> Result<RunnableView, Problem> {
    let view = state.queries.runnable(&caller.actor, id).await?;
    if view.image.is_none() {
        return Err(Problem::not_found(format!(
            "runnable {id} has no image: save it first (POST /runnables?from={id})"
        )));
    }
    Ok(view)
}

/// The image's answer: `status` and its JSON.
fn image_answer(
    state: &AppState,
    status: StatusCode,
    view: &RunnableView,
    w: bosun_commands::Written,
) -> Result<Response, Problem> {
    let body = render::image(view).ok_or_else(Problem::internal)?;
    Ok(written(state, status, &body, w))
}

#[derive(Deserialize)]
pub struct SaveQuery {
    from: Option<String>,
}

/// `POST /runnables?from=`: see the [module](self).
pub async fn save(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Query(query): Query<SaveQuery>,
) -> Result<Response, Problem> {
    let from = query
        .from
        .filter(|from| !from.is_empty())
        .ok_or_else(|| missing("from", "must provide a runnable to save from"))?;
    let (view, w) = state
        .commands
        .save_runnable(
            &caller.actor,
            &origin,
            &state.runnable_rules,
            runnable_id(&from)?,
        )
        .await?;
    image_answer(&state, StatusCode::CREATED, &view, w)
}

/// `PUT /runnables/{id}?from=`: see the [module](self).
pub async fn overwrite(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    Query(query): Query<SaveQuery>,
) -> Result<Response, Problem> {
    let from = query
        .from
        .filter(|from| !from.is_empty())
        .ok_or_else(|| missing("from", "must provide a runnable to save from"))?;
    let id = runnable_id(&id)?;
    imaged(&state, &caller, id).await?;
    if Uuid::parse_str(&from).ok() != Some(id) {
        return Err(Problem::invalid_field(
            "from",
            format!(
                "an image here is its own runnable's: save runnable {from} into its own \
                 (POST /runnables?from={from}), or {id} into this one (?from={id})"
            ),
        ));
    }
    let (view, w) = state
        .commands
        .save_runnable(&caller.actor, &origin, &state.runnable_rules, id)
        .await?;
    image_answer(&state, StatusCode::OK, &view, w)
}

#[derive(Deserialize)]
pub struct ListQuery {
    owner: Option<String>,
    limit: Option<String>,
    page: Option<String>,
    published: Option<String>,
    channel: Option<String>,
    search: Option<String>,
    map: Option<String>,
    #[allow(dead_code)]
    sort: Option<String>,
}

/// A count from the query: a whole number, at least `min`.
fn count(field: &str, value: Option<&str>, min: i64) -> Result<Option<i64>, Problem> {
    match value {
        None => Ok(None),
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if n >= min => Ok(Some(n)),
            _ => Err(Problem::invalid_field(
                field,
                format!("must be a whole number, {min} or more"),
            )),
        },
    }
}

/// `GET /runnables`: see the [module](self).
pub async fn list(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    // Above the largest page is the default one, as Runnable took it.
    let limit = count("limit", query.limit.as_deref(), 1)?
        .filter(|limit| *limit <= LIST_MAX)
        .unwrap_or(DEFAULT_LIMIT);
    let page = count("page", query.page.as_deref(), 0)?.unwrap_or(0);
    let offset = page
        .checked_mul(limit)
        .ok_or_else(|| Problem::invalid_field("page", "is too large"))?;
    if query.search.is_some() {
        return Err(Problem::invalid_field(
            "search",
            "searching is not served here: list by owner (?owner=) or page through them",
        ));
    }
    // Runnable's order of its filters: search, published, channel, owner, map, all.
    let owner = match (&query.published, &query.channel) {
        (Some(_), _) => None,
        (None, Some(_)) => return Ok(super::read(&Vec::<Value>::new())),
        (None, None) => query.owner.clone(),
    };
    let filter = RunnableFilter {
        owner,
        parent: None,
        has_image: Some(true),
    };
    if query.map.is_some() && query.published.is_none() && query.owner.is_none() {
        let first = Page {
            limit: LIST_MAX,
            offset: 0,
        };
        let (newest, _) = state
            .queries
            .runnables(&caller.actor, filter, first)
            .await?;
        let body: Vec<Value> = newest.iter().map(render::image_name).collect();
        return Ok(super::read(&body));
    }
    let (runnables, _) = state
        .queries
        .runnables(&caller.actor, filter, Page { limit, offset })
        .await?;
    let body: Vec<Value> = runnables.iter().filter_map(render::image).collect();
    Ok(super::read(&body))
}

/// `GET /runnables/{id}`: the image.
pub async fn get(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let view = imaged(&state, &caller, runnable_id(&id)?).await?;
    let body = render::image(&view).ok_or_else(Problem::internal)?;
    Ok(super::read(&body))
}

/// `DELETE /runnables/{id}`: removes the runnable whose image it is.
pub async fn remove(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = runnable_id(&id)?;
    imaged(&state, &caller, id).await?;
    let w = state
        .commands
        .remove_runnable(&caller.actor, &origin, id)
        .await?;
    Ok(super::said(&state, "runnable deleted", w))
}
