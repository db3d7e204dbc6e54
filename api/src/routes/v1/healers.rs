//! `/v1/healers`: named catalog tasks (`healers: {name: app/env/task}` in the configuration)
//! that an admin runs by name, as tsuru's healers; running one submits its task as a job.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::Query;
use crate::problem::{Problem, Refusals};
use crate::routes::{listed, written, PageQuery};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::jobs::Submitted;
use bosun_commands::Written;
use bosun_projections::read_models::jobs::JobView;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A healer: its name and the catalog task it runs.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Healer {
    name: String,
    /// `app/env/task`.
    task: String,
}

/// `GET /v1/healers?limit=&offset=` (read scope): by name, with `X-Total-Count`.
#[utoipa::path(get, path = "/v1/healers", tag = "healers", params(PageQuery),
    responses((status = 200, description = "the configured healers by name, with `X-Total-Count`", body = Vec<Healer>), Refusals),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    let page = query.page()?;
    let healers = state.healers.list(&caller.actor)?;
    let total = healers.len() as i64;
    let shown: Vec<Healer> = healers
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .map(|h| Healer {
            name: h.name,
            task: h.task,
        })
        .collect();
    Ok(listed(&shown, total))
}

/// `POST /v1/healers/{healer}` (admin): submits the healer's task as a job.
#[utoipa::path(post, path = "/v1/healers/{healer}", tag = "healers",
    params(
        ("healer" = String, Path, description = "the healer's name"),
        ("Idempotency-Key" = Option<String>, Header, description = "the same key within 24 h gives the first job again (200)")),
    responses(
        (status = 201, description = "the job, waiting for a worker", body = JobView),
        (status = 200, description = "a retry with the same Idempotency-Key: the first job", body = JobView),
        Refusals),
    security(("bearer" = [])))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(healer): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| Problem::invalid_field("Idempotency-Key", "must be visible ASCII"))?
                .to_string(),
        ),
    };
    let submitted = state
        .commands
        .run_healer(
            &caller.actor,
            &origin,
            &state.catalog,
            &state.healers,
            &healer,
            idempotency_key,
        )
        .await?;
    Ok(match submitted {
        Submitted::Created(job, w) => written(&state, StatusCode::CREATED, Some(&job), w),
        Submitted::Existing(job) => written(&state, StatusCode::OK, Some(&job), Written::default()),
    })
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(run))
}
