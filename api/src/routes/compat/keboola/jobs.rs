//! Keboola's jobs: an orchestration's jobs (list with `limit`/`offset` and `X-Total-Count`, run
//! by hand at `POST …/jobs`, the PHP client's `…/trigger` and `POST /run`), one job, and
//! cancelling a waiting one; each mapped onto the `/v1` command or query.
//!
//! A job's `initiatorToken` is what its `JobSubmitted` event's metadata recorded (the token,
//! its holder, the user agent), read for a whole page of jobs at once by the native
//! `job_submissions` query, by the same rule as the jobs; a job just run shows the caller,
//! which is what that metadata holds.

use super::render::{self, Detail, InitiatorToken, TaskIn};
use super::{listed, rules, written, Base, Body, KeboolaCaller};
use crate::auth::RequestOrigin;
use crate::extract::{Path, Query};
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::orchestrations::RunOrchestration;
use bosun_commands::queries::Page;
use bosun_commands::{Actor, Origin};
use bosun_projections::read_models::jobs::JobView;
use bosun_projections::read_models::COUNT_CAP;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// `?limit=&offset=` of a job list: 20 by default (the blueprint's), at most 1000.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

impl JobsQuery {
    fn page(&self) -> Result<Page, Problem> {
        Ok(Page {
            limit: crate::routes::limit(Some(self.limit.unwrap_or(20)))?,
            offset: crate::routes::offset(self.offset)?,
        })
    }
}

/// What a manual run takes (`POST …/jobs`, `…/trigger`): both optional; `tasks` may only
/// change which of the orchestration's tasks are active.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Run {
    notifications_emails: Option<Vec<String>>,
    tasks: Option<Vec<TaskIn>>,
}

/// `POST /run`: the PHP client's run, naming the orchestration as `config` (a string or a
/// number).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RunConfig {
    config: Option<Value>,
    notifications_emails: Option<Vec<String>>,
    tasks: Option<Vec<TaskIn>>,
}

/// Who made job `job_id`, as its `JobSubmitted` event's metadata says.
async fn initiator(
    state: &AppState,
    actor: &Actor,
    job_id: Uuid,
) -> Result<InitiatorToken, Problem> {
    let submissions = state.queries.job_submissions(actor, &[job_id]).await?;
    Ok(render::initiator(submissions.get(&job_id)))
}

/// `job_id` as an id: a malformed one names no job (404), as in `/v1`.
fn job_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| Problem::not_found(format!("no job {id}")))
}

/// An orchestration job as `actor` may read it; any other job is none here (404).
async fn orchestration_job(state: &AppState, actor: &Actor, id: &str) -> Result<JobView, Problem> {
    let job = state.queries.job(actor, job_id(id)?).await?;
    if job.orchestration_id.is_none() {
        return Err(Problem::not_found(format!(
            "job {id} is not an orchestration job"
        )));
    }
    Ok(job)
}

/// `GET /orchestrations/{id}/jobs`: newest first, with `X-Total-Count`; each without its
/// tasks, as the blueprint's collection model.
pub async fn list(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    Base(base): Base,
    Path(id): Path<String>,
    Query(query): Query<JobsQuery>,
) -> Result<Response, Problem> {
    let page = query.page()?;
    let actor = &caller.0.actor;
    let (jobs, total) = state.queries.orchestration_jobs(actor, &id, page).await?;
    let orchestration = state.queries.orchestration(actor, &id).await?;
    let token = render::run_token(orchestration.token_id, &orchestration.name);
    let ids: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
    let submissions = state.queries.job_submissions(actor, &ids).await?;
    let shown: Vec<render::Job> = jobs
        .iter()
        .map(|job| {
            let initiator = render::initiator(submissions.get(&job.id));
            render::job(job, token.clone(), initiator, &base, Detail::Item)
        })
        .collect();
    // Counted up to the cap, as every job list is.
    Ok(listed(&shown, total.min(COUNT_CAP)))
}

/// Runs orchestration `id` by hand: 201 with the job.
async fn run_orchestration(
    state: &AppState,
    caller: &KeboolaCaller,
    origin: &Origin,
    base: &str,
    id: &str,
    tasks: Option<Vec<TaskIn>>,
    emails: Option<Vec<String>>,
) -> Result<Response, Problem> {
    let actor = &caller.0.actor;
    let (run, w) = state
        .commands
        .run_orchestration(
            actor,
            origin,
            &rules(state),
            id,
            RunOrchestration {
                tasks: tasks.map(render::task_inputs).transpose()?,
                notification_emails: emails.unwrap_or_default(),
            },
        )
        .await?;
    // The answer shows what the run made and found, as `/v1` does, needing no read.
    let token = render::run_token(run.token_id, &run.orchestration_name);
    let initiator = InitiatorToken {
        id: actor.token_id().map(|t| t.to_string()),
        description: Some(actor.name().to_string()),
        user_agent: origin.user_agent.clone(),
    };
    let shown = render::job(&run.job, token, initiator, base, Detail::Full);
    Ok(written(state, StatusCode::CREATED, Some(&shown), w))
}

/// `POST /orchestrations/{id}/jobs` and `POST /orchestrations/{id}/trigger`, with an optional
/// body `{notificationsEmails?, tasks?}`.
pub async fn run(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    RequestOrigin(origin): RequestOrigin,
    Base(base): Base,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let run: Run = body.parse_optional()?;
    run_orchestration(
        &state,
        &caller,
        &origin,
        &base,
        &id,
        run.tasks,
        run.notifications_emails,
    )
    .await
}

/// `POST /run` `{config: <orchestration id>, tasks?, notificationsEmails?}`.
pub async fn run_config(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    RequestOrigin(origin): RequestOrigin,
    Base(base): Base,
    body: Body,
) -> Result<Response, Problem> {
    let run: RunConfig = body.parse("a JSON object with config, the orchestration's id", "")?;
    let id = match run.config {
        Some(Value::String(id)) if !id.is_empty() => id,
        Some(Value::Number(id)) => id.to_string(),
        None | Some(Value::Null) => {
            return Err(Problem::invalid_field(
                "config",
                "is required: the orchestration's id",
            ))
        }
        Some(_) => {
            return Err(Problem::invalid_field(
                "config",
                "must be the orchestration's id, a string or a number",
            ))
        }
    };
    run_orchestration(
        &state,
        &caller,
        &origin,
        &base,
        &id,
        run.tasks,
        run.notifications_emails,
    )
    .await
}

/// `GET /jobs/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    Base(base): Base,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let actor = &caller.0.actor;
    let job = orchestration_job(&state, actor, &id).await?;
    let orchestration = job.orchestration_id.as_deref().unwrap_or_default();
    // Its orchestration, deleted or not: a job stays readable.
    let orchestration = state.queries.orchestration(actor, orchestration).await?;
    let token = render::run_token(orchestration.token_id, &orchestration.name);
    let initiator = initiator(&state, actor, job.id).await?;
    let shown = render::job(&job, token, initiator, &base, Detail::Full);
    Ok(crate::routes::compat::json(StatusCode::OK, &shown))
}

/// `DELETE /jobs/{id}`: cancels a waiting job, 204; 409 for any other status (the native
/// cancel's rule).
pub async fn cancel(
    State(state): State<AppState>,
    caller: KeboolaCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let actor = &caller.0.actor;
    let job = orchestration_job(&state, actor, &id).await?;
    let (_, w) = state
        .commands
        .cancel_job(actor, &origin, job.id, None)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}
