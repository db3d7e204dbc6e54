//! Keboola's `/orchestrations` resources: the collection, one orchestration, its tasks, its
//! notifications and its token, each mapped onto the `/v1/orchestrations` command or query.

use super::render::{self, Detail, NotificationIn, TaskIn};
use super::{listed, rules, written, Base, Body, KeboolaCaller};
use crate::auth::RequestOrigin;
use crate::extract::{Path, Query};
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::orchestrations::{CreateOrchestration, UpdateOrchestration};
use bosun_commands::queries::Page;
use bosun_projections::read_models::orchestrations::OrchestrationView;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

/// `POST /orchestrations`. `tokenId` is accepted and not used (see the module doc of
/// `keboola`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Create {
    name: Option<String>,
    crontab_record: Option<String>,
    active: Option<bool>,
    #[allow(dead_code)]
    token_id: Option<IgnoredAny>,
    notifications: Option<Vec<NotificationIn>>,
    tasks: Option<Vec<TaskIn>>,
}

/// `null` and absent told apart: `Some(None)` is an explicit null.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PUT /orchestrations/{id}`: each field given is changed; `crontabRecord: null` removes the
/// schedule. The orchestration as a read shows it is taken too: its read-only fields are not
/// used (nor is `tokenId`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Update {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    crontab_record: Option<Option<String>>,
    active: Option<bool>,
    token_id: Option<IgnoredAny>,
    notifications: Option<Vec<NotificationIn>>,
    tasks: Option<Vec<TaskIn>>,
    id: Option<IgnoredAny>,
    created_time: Option<IgnoredAny>,
    last_scheduled_time: Option<IgnoredAny>,
    next_scheduled_time: Option<IgnoredAny>,
    token: Option<IgnoredAny>,
    uri: Option<IgnoredAny>,
}

/// `?limit=&offset=` of `GET /orchestrations`: every orchestration (up to the native maximum,
/// 1000) by default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `POST …/create-token` takes `{}` (or nothing).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Nothing {}

/// Orchestration `id` as `caller` may read it; a deleted one is gone (404), as in Keboola.
async fn existing(
    state: &AppState,
    caller: &KeboolaCaller,
    id: &str,
) -> Result<OrchestrationView, Problem> {
    let view = state.queries.orchestration(&caller.0.actor, id).await?;
    if view.deleted {
        return Err(Problem::not_found(format!(
            "orchestration {id} was deleted"
        )));
    }
    Ok(view)
}

/// `GET /orchestrations`: the orchestrations not deleted, newest first, one page (Keboola's
/// list has none: by default the native maximum, 1000), with `X-Total-Count` of them all; each
/// without its tasks and notifications, as the blueprint's collection model.
pub async fn list(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    Base(base): Base,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let page = Page {
        limit: crate::routes::limit(Some(query.limit.unwrap_or(1000)))?,
        offset: crate::routes::offset(query.offset)?,
    };
    let (items, total) = state.queries.orchestrations(&caller.0.actor, page).await?;
    let shown: Vec<_> = items
        .iter()
        .map(|view| render::orchestration(view, &base, Detail::Item))
        .collect();
    Ok(listed(&shown, total))
}

/// `POST /orchestrations`: 201 with the orchestration.
pub async fn create(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    RequestOrigin(origin): RequestOrigin,
    Base(base): Base,
    body: Body,
) -> Result<Response, Problem> {
    let body: Create = body.parse("a JSON object with at least a name", "")?;
    let name = body
        .name
        .ok_or_else(|| Problem::invalid_field("name", "is required"))?;
    let (view, w) = state
        .commands
        .create_orchestration(
            &caller.0.actor,
            &origin,
            &rules(&state),
            CreateOrchestration {
                name,
                crontab: body.crontab_record,
                active: body.active,
                tasks: body.tasks.map(render::task_inputs).transpose()?,
                notifications: body.notifications.map(render::notification_inputs),
            },
        )
        .await?;
    let shown = render::orchestration(&view, &base, Detail::Full);
    Ok(written(&state, StatusCode::CREATED, Some(&shown), w))
}

/// `GET /orchestrations/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    Base(base): Base,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let view = existing(&state, &caller, &id).await?;
    let shown = render::orchestration(&view, &base, Detail::Full);
    Ok(crate::routes::compat::json(StatusCode::OK, &shown))
}

/// `PUT /orchestrations/{id}`: 200 with the orchestration.
pub async fn update(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    RequestOrigin(origin): RequestOrigin,
    Base(base): Base,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let body: Update = body.parse("a JSON object of the fields to change", "")?;
    let request = UpdateOrchestration {
        name: body.name,
        crontab: body.crontab_record,
        active: body.active,
        tasks: body.tasks.map(render::task_inputs).transpose()?,
        notifications: body.notifications.map(render::notification_inputs),
    };
    let view = change(&state, &caller, &origin, &id, request).await?;
    let shown = render::orchestration(&view.0, &base, Detail::Full);
    Ok(written(&state, StatusCode::OK, Some(&shown), view.1))
}

/// Applies `request` to orchestration `id` by the native command.
async fn change(
    state: &AppState,
    caller: &KeboolaCaller,
    origin: &bosun_commands::Origin,
    id: &str,
    request: UpdateOrchestration,
) -> Result<(OrchestrationView, bosun_commands::Written), Problem> {
    Ok(state
        .commands
        .update_orchestration(&caller.0.actor, origin, &rules(state), id, request)
        .await?)
}

/// `DELETE /orchestrations/{id}`: 204; its jobs stay readable.
pub async fn delete(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .delete_orchestration(&caller.0.actor, &origin, &id)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `POST /orchestrations/{id}/create-token`: a new run token (the old one is no longer sent);
/// 200 with the orchestration.
pub async fn refresh_token(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    RequestOrigin(origin): RequestOrigin,
    Base(base): Base,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let Nothing {} = body.parse_optional()?;
    let (view, w) = state
        .commands
        .refresh_orchestration_token(&caller.0.actor, &origin, &id)
        .await?;
    let shown = render::orchestration(&view, &base, Detail::Full);
    Ok(written(&state, StatusCode::OK, Some(&shown), w))
}

/// `GET /orchestrations/{id}/tasks`.
pub async fn tasks(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let view = existing(&state, &caller, &id).await?;
    Ok(crate::routes::compat::json(
        StatusCode::OK,
        &render::tasks(&view.tasks),
    ))
}

/// `PUT /orchestrations/{id}/tasks`: the raw JSON array replaces the tasks; 202 with them.
pub async fn replace_tasks(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let tasks: Vec<TaskIn> = body.parse("a JSON array of tasks", "tasks")?;
    let request = UpdateOrchestration {
        tasks: Some(render::task_inputs(tasks)?),
        ..UpdateOrchestration::default()
    };
    let (view, w) = change(&state, &caller, &origin, &id, request).await?;
    let shown = render::tasks(&view.tasks);
    Ok(written(&state, StatusCode::ACCEPTED, Some(&shown), w))
}

/// `GET /orchestrations/{id}/notifications` (and `…/nofitications`).
pub async fn notifications(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let view = existing(&state, &caller, &id).await?;
    Ok(crate::routes::compat::json(
        StatusCode::OK,
        &render::notifications(&view.notifications),
    ))
}

/// `PUT /orchestrations/{id}/notifications` (and `…/nofitications`): the JSON array replaces
/// the notifications; 202 with them.
pub async fn replace_notifications(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let notifications: Vec<NotificationIn> =
        body.parse("a JSON array of notifications", "notifications")?;
    let request = UpdateOrchestration {
        notifications: Some(render::notification_inputs(notifications)),
        ..UpdateOrchestration::default()
    };
    let (view, w) = change(&state, &caller, &origin, &id, request).await?;
    let shown = render::notifications(&view.notifications);
    Ok(written(&state, StatusCode::ACCEPTED, Some(&shown), w))
}
