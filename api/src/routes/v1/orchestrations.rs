//! `/v1/orchestrations`: orchestrations (named, ordered tasks on a cron schedule, with
//! notifications), their tasks, notifications and token, and their jobs.
//!
//! Secret URLs are sealed before they are stored and never answered: every `webhook_url`, and a
//! `component_url` with a user name, a password, a query or a fragment, is shown as
//! `scheme://host[:port]/…` (path, query and credentials hidden); any other `component_url` as
//! given. A shown value given back keeps the stored URL (the rule: `commands::orchestrations`).

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, OptionalJson, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::{listed, listed_page, written, PageQuery};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::orchestrations::{CreateOrchestration, RunOrchestration, UpdateOrchestration};
use bosun_domain::orchestrations::{NotificationInput, TaskInput, TaskRules};
use bosun_projections::read_models::jobs::JobView;
use bosun_projections::read_models::orchestrations as model;
use model::OrchestrationView;
use serde::{Deserialize, Deserializer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

fn rules(state: &AppState) -> TaskRules<'_> {
    TaskRules {
        catalog: &state.catalog,
        allow_insecure_hosts: &state.allow_insecure_hosts,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrchestration {
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    name: String,
    crontab: Option<String>,
    active: Option<bool>,
    #[schema(value_type = Option<Vec<Object>>)]
    tasks: Option<Vec<TaskInput>>,
    #[schema(value_type = Option<Vec<Object>>)]
    notifications: Option<Vec<NotificationInput>>,
}

/// `POST /v1/orchestrations`: 201 with the orchestration, its secret URLs shown redacted.
#[utoipa::path(post, path = "/v1/orchestrations", tag = "orchestrations", request_body = NewOrchestration, responses((status = 201, description = "created", body = OrchestrationView), Refusals), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<NewOrchestration>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .create_orchestration(
            &caller.actor,
            &origin,
            &rules(&state),
            CreateOrchestration {
                name: body.name,
                crontab: body.crontab,
                active: body.active,
                tasks: body.tasks,
                notifications: body.notifications,
            },
        )
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&view), w))
}

/// `GET /v1/orchestrations`: newest first, with `X-Total-Count`; deleted ones are not listed.
#[utoipa::path(get, path = "/v1/orchestrations", tag = "orchestrations", params(PageQuery), responses((status = 200, description = "newest first, with `X-Total-Count`", body = Vec<OrchestrationView>), Refusals), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> Result<Response, Problem> {
    let (items, total) = state
        .queries
        .orchestrations(&caller.actor, page.page()?)
        .await?;
    Ok(listed(&items, total))
}

/// `GET /v1/orchestrations/{id}`, deleted ones too (marked `deleted`).
#[utoipa::path(get, path = "/v1/orchestrations/{id}", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id")), responses((status = 200, description = "OK", body = OrchestrationView), Refusals), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<model::OrchestrationView>, Problem> {
    Ok(axum::Json(
        state.queries.orchestration(&caller.actor, &id).await?,
    ))
}

/// `null` and absent told apart: `Some(None)` is an explicit null.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrchestrationChanges {
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    name: Option<String>,
    /// `null` removes the schedule.
    #[serde(default, deserialize_with = "present")]
    crontab: Option<Option<String>>,
    active: Option<bool>,
    #[schema(value_type = Option<Vec<Object>>)]
    tasks: Option<Vec<TaskInput>>,
    #[schema(value_type = Option<Vec<Object>>)]
    notifications: Option<Vec<NotificationInput>>,
}

/// `PATCH /v1/orchestrations/{id}`: any of name, crontab, active, tasks, notifications. A URL
/// given again, in clear or as reads show it, is no change.
#[utoipa::path(patch, path = "/v1/orchestrations/{id}", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id")), request_body = OrchestrationChanges, responses((status = 200, description = "OK", body = OrchestrationView), Refusals), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    Json(body): Json<OrchestrationChanges>,
) -> Result<Response, Problem> {
    let request = UpdateOrchestration {
        name: body.name,
        crontab: body.crontab,
        active: body.active,
        tasks: body.tasks,
        notifications: body.notifications,
    };
    update_with(&state, &caller, &origin, &id, request, |view| {
        serde_json::to_value(view).unwrap_or_default()
    })
    .await
}

/// Applies `request` and answers 200 with the part of the orchestration `shown` picks.
async fn update_with(
    state: &AppState,
    caller: &Caller,
    origin: &bosun_commands::Origin,
    id: &str,
    request: UpdateOrchestration,
    shown: fn(model::OrchestrationView) -> serde_json::Value,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .update_orchestration(&caller.actor, origin, &rules(state), id, request)
        .await?;
    Ok(written(state, StatusCode::OK, Some(&shown(view)), w))
}

/// `DELETE /v1/orchestrations/{id}`: 204; nothing more is scheduled, its jobs stay readable.
#[utoipa::path(delete, path = "/v1/orchestrations/{id}", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id")), responses((status = 204, description = "deleted; its jobs stay readable"), Refusals), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .delete_orchestration(&caller.actor, &origin, &id)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `GET /v1/orchestrations/{id}/tasks`.
#[utoipa::path(get, path = "/v1/orchestrations/{id}/tasks", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id")), responses((status = 200, description = "OK", body = Vec<Object>), Refusals), security(("bearer" = [])))]
pub async fn tasks(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    read_part(&state, &caller, &id, |view| view.tasks).await
}

/// `GET /v1/orchestrations/{id}/notifications`.
#[utoipa::path(get, path = "/v1/orchestrations/{id}/notifications", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id")), responses((status = 200, description = "OK", body = Vec<Object>), Refusals), security(("bearer" = [])))]
pub async fn notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    read_part(&state, &caller, &id, |view| view.notifications).await
}

/// The part of orchestration `id` that `shown` picks.
async fn read_part(
    state: &AppState,
    caller: &Caller,
    id: &str,
    shown: fn(model::OrchestrationView) -> serde_json::Value,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    Ok(axum::Json(shown(
        state.queries.orchestration(&caller.actor, id).await?,
    )))
}

/// `PUT /v1/orchestrations/{id}/tasks`: the whole list, replaced; 200 with it.
#[utoipa::path(put, path = "/v1/orchestrations/{id}/tasks", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id")), request_body = Vec<Object>, responses((status = 200, description = "OK", body = Vec<Object>), Refusals), security(("bearer" = [])))]
pub async fn replace_tasks(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    Json(tasks): Json<Vec<TaskInput>>,
) -> Result<Response, Problem> {
    let request = UpdateOrchestration {
        tasks: Some(tasks),
        ..UpdateOrchestration::default()
    };
    update_with(&state, &caller, &origin, &id, request, |view| view.tasks).await
}

/// `PUT /v1/orchestrations/{id}/notifications`: the whole list, replaced; 200 with it, each
/// `webhook_url` shown as `scheme://host[:port]/…`.
#[utoipa::path(put, path = "/v1/orchestrations/{id}/notifications", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id")), request_body = Vec<Object>, responses((status = 200, description = "OK", body = Vec<Object>), Refusals), security(("bearer" = [])))]
pub async fn replace_notifications(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    Json(notifications): Json<Vec<NotificationInput>>,
) -> Result<Response, Problem> {
    let request = UpdateOrchestration {
        notifications: Some(notifications),
        ..UpdateOrchestration::default()
    };
    update_with(&state, &caller, &origin, &id, request, |view| {
        view.notifications
    })
    .await
}

/// `POST /v1/orchestrations/{id}/token`: 200 with the orchestration and its fresh `token_id`;
/// the old token is no longer sent.
#[utoipa::path(post, path = "/v1/orchestrations/{id}/token", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id")), responses((status = 200, description = "with its new `token_id`", body = OrchestrationView), Refusals), security(("bearer" = [])))]
pub async fn refresh_token(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .refresh_orchestration_token(&caller.actor, &origin, &id)
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&view), w))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Run {
    #[schema(value_type = Option<Vec<Object>>)]
    tasks: Option<Vec<TaskInput>>,
    #[serde(default)]
    notification_emails: Vec<String>,
}

/// `POST /v1/orchestrations/{id}/jobs`: 201 with the job (`initialized_by: manual`). The body
/// is optional.
#[utoipa::path(post, path = "/v1/orchestrations/{id}/jobs", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id")), request_body(content = Option<Run>, description = "optional"), responses((status = 201, description = "created", body = JobView), Refusals), security(("bearer" = [])))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    OptionalJson(run): OptionalJson<Run>,
) -> Result<Response, Problem> {
    let (run, w) = state
        .commands
        .run_orchestration(
            &caller.actor,
            &origin,
            &rules(&state),
            &id,
            RunOrchestration {
                tasks: run.tasks,
                notification_emails: run.notification_emails,
            },
        )
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&run.job), w))
}

/// `GET /v1/orchestrations/{id}/jobs`: its jobs, newest first, with `X-Total-Count` (counted up
/// to 10,000, as `/v1/jobs`).
#[utoipa::path(get, path = "/v1/orchestrations/{id}/jobs", tag = "orchestrations", params(("id" = String, Path, description = "the orchestration's id"), PageQuery), responses((status = 200, description = "newest first, with `X-Total-Count` (counted up to 10,000; past it, 10,000 and `X-Total-Count-Capped: true`)", body = Vec<JobView>), Refusals), security(("bearer" = [])))]
pub async fn jobs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Problem> {
    let (items, total) = state
        .queries
        .orchestration_jobs(&caller.actor, &id, page.page()?)
        .await?;
    Ok(listed_page(&items, total, None))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(tasks, replace_tasks))
        .routes(routes!(notifications, replace_notifications))
        .routes(routes!(refresh_token))
        .routes(routes!(jobs, run))
}
