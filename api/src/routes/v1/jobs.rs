//! `/v1/jobs`: submit, list, read, follow the output of, cancel, kill and restart jobs.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, OptionalJson, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::{limit, listed, offset, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_commands::jobs::{SubmitJob, Submitted};
use bosun_commands::queries::{JobFilter, Page};
use bosun_commands::Written;
use bosun_projections::read_models::jobs::{self as model, JobView, OutputSelection};
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub const OUTPUT_OFFSET: HeaderName = HeaderName::from_static("bosun-output-offset");
pub const OUTPUT_COMPLETE: HeaderName = HeaderName::from_static("bosun-output-complete");
/// The most output one read returns; a client reads on from `Bosun-Output-Offset`.
const OUTPUT_PAGE: i64 = 1024 * 1024;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    app: String,
    env: String,
    task: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    name: Option<String>,
    timeout_seconds: Option<u64>,
    #[serde(default)]
    wait: bool,
    #[serde(default)]
    notification_emails: Vec<String>,
}

/// `POST /v1/jobs`.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = Submit,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key and body within 24 h give the first job again (200); another body with it is a 409")),
    responses(
        (status = 201, description = "the job, waiting for a worker (with `wait: true`: 200 with the finished job and its output)", body = JobView),
        (status = 200, description = "a retry with the same Idempotency-Key: the first job", body = JobView),
        (status = 202, description = "`wait: true` past the server's bound: the job as it is", body = JobView),
        Refusals),
    security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    headers: axum::http::HeaderMap,
    Json(body): Json<Submit>,
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
    let wait = body.wait;
    let submitted = state
        .commands
        .submit_job(
            &caller.actor,
            &origin,
            &state.catalog,
            SubmitJob {
                app: body.app,
                env: body.env,
                task: body.task,
                variables: body.variables,
                name: body.name,
                timeout_seconds: body.timeout_seconds,
                notification_emails: body.notification_emails,
                idempotency_key,
            },
        )
        .await?;
    let (job, w, status) = match submitted {
        Submitted::Created(job, w) => (job, w, StatusCode::CREATED),
        // A retry: the first job again (as it is now); 200, since this request created nothing.
        Submitted::Existing(job) => (job, Written::default(), StatusCode::OK),
    };
    if !wait {
        return Ok(written(&state, status, Some(&job), w));
    }
    let finished = match wait_until_finished(&state, job).await? {
        Waited::Finished(job) => job,
        // The client follows it from there.
        Waited::Unfinished(job) => {
            let position = Written {
                position: Some(state.freshness.position()),
            };
            return Ok(written(&state, StatusCode::ACCEPTED, Some(&job), position));
        }
    };
    let (stdout, output) = whole_output(&state, finished.id).await?;
    let answer = WaitedJob {
        job: finished,
        stdout,
        output,
    };
    let position = Written {
        position: Some(state.freshness.position()),
    };
    Ok(written(&state, StatusCode::OK, Some(&answer), position))
}

/// How a wait for a job to finish ended.
pub(crate) enum Waited {
    /// The job as it ended.
    Finished(JobView),
    /// The server's bound on a wait (`wait_limit`) passed first: the job as it is.
    Unfinished(JobView),
}

/// Waits until `job` (as it was submitted) has finished, or the server's bound on a wait has
/// passed: `wait: true` of `/v1` and of the compat surfaces. A client that gives up drops this
/// wait, not the job.
pub(crate) async fn wait_until_finished(
    state: &AppState,
    submitted: JobView,
) -> Result<Waited, Problem> {
    let deadline = tokio::time::Instant::now() + state.wait_limit;
    loop {
        let seen = state.freshness.position();
        let job = {
            let client = state.store.pool().get().await?;
            model::get(&**client, submitted.id).await?
        };
        match job {
            Some(job) if job.status.is_finished() => return Ok(Waited::Finished(job)),
            latest if tokio::time::Instant::now() >= deadline => {
                return Ok(Waited::Unfinished(latest.unwrap_or(submitted)))
            }
            _ => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let _ = state
                    .freshness
                    .wait_for(seen + 1, left.min(std::time::Duration::from_secs(1)))
                    .await;
            }
        }
    }
}

/// A job's whole output so far: its standard output, and both streams interleaved as they
/// came. The caller has checked that its reader may read the job.
pub(crate) async fn whole_output(
    state: &AppState,
    job_id: Uuid,
) -> Result<(String, String), Problem> {
    output_from(state, job_id, 0, 0).await
}

/// A job's standard output from byte `stdout_from` on, and its interleaved output from byte
/// `combined_from` on.
pub(crate) async fn output_from(
    state: &AppState,
    job_id: Uuid,
    stdout_from: i64,
    combined_from: i64,
) -> Result<(String, String), Problem> {
    let client = state.store.pool().get().await?;
    let read = |selection, from| model::output(&**client, job_id, selection, None, from, i64::MAX);
    let (stdout, _) = read(OutputSelection::Stdout, stdout_from).await?;
    let (output, _) = read(OutputSelection::Combined, combined_from).await?;
    Ok((stdout, output))
}

/// The answer to `wait: true`: the finished job with its output, as pulsar gave it.
#[derive(serde::Serialize)]
struct WaitedJob {
    #[serde(flatten)]
    job: model::JobView,
    /// Its standard output.
    stdout: String,
    /// Standard output and error, interleaved as they came.
    output: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    status: Option<String>,
    app: Option<String>,
    env: Option<String>,
    orchestration_id: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

const STATUSES: [&str; 7] = [
    "waiting",
    "processing",
    "success",
    "error",
    "warning",
    "killed",
    "cancelled",
];

/// `GET /v1/jobs`: newest first, with `X-Total-Count`.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, description = "the jobs the caller may read, newest first, with `X-Total-Count`", body = Vec<JobView>), Refusals),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    if let Some(status) = &query.status {
        if !STATUSES.contains(&status.as_str()) {
            return Err(Problem::invalid_field(
                "status",
                format!("must be one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let page = Page {
        limit: limit(query.limit)?,
        offset: offset(query.offset)?,
    };
    let filter = JobFilter {
        status: query.status,
        app: query.app,
        env: query.env,
        orchestration_id: query.orchestration_id,
    };
    let (jobs, total) = state.queries.jobs(&caller.actor, filter, page).await?;
    Ok(listed(&jobs, total))
}

fn job_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| Problem::not_found(format!("no job {id}")))
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path, description = "the job's id")),
    responses((status = 200, description = "OK", body = JobView), Refusals),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<model::JobView>, Problem> {
    let job = state.queries.job(&caller.actor, job_id(&id)?).await?;
    Ok(axum::Json(job))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
    stream: Option<String>,
    offset: Option<i64>,
    /// Only this orchestration task's output (its index).
    task: Option<i32>,
}

/// `GET /v1/jobs/{id}/output?stream=stdout|stderr|combined&offset=<bytes>`: the output from that
/// byte on, with `Bosun-Output-Offset` (where to read on) and `Bosun-Output-Complete`.
#[utoipa::path(get, path = "/v1/jobs/{id}/output", tag = "jobs",
    params(("id" = Uuid, Path, description = "the job's id"), OutputQuery),
    responses((status = 200, description = "the output from `offset` on, with `Bosun-Output-Offset` and `Bosun-Output-Complete`", body = String, content_type = "text/plain"), Refusals),
    security(("bearer" = [])))]
pub async fn output(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<OutputQuery>,
) -> Result<Response, Problem> {
    let selection = match query.stream.as_deref().unwrap_or("combined") {
        "stdout" => OutputSelection::Stdout,
        "stderr" => OutputSelection::Stderr,
        "combined" => OutputSelection::Combined,
        _ => {
            return Err(Problem::invalid_field(
                "stream",
                "must be stdout, stderr or combined",
            ))
        }
    };
    let from = query.offset.unwrap_or(0);
    if from < 0 {
        return Err(Problem::invalid_field("offset", "must be 0 or more"));
    }
    if query.task.is_some_and(|task| task < 0) {
        return Err(Problem::invalid_field("task", "must be 0 or more"));
    }
    let job_id = job_id(&id)?;
    // The job first: if it had finished then, its byte counts are the whole output.
    let job = state.queries.job(&caller.actor, job_id).await?;
    if let Some(task) = query.task {
        let tasks = job.tasks.as_array().map_or(0, Vec::len);
        if task as usize >= tasks {
            return Err(Problem::not_found(match tasks {
                0 => format!("job {id} has no tasks (it is not an orchestration job)"),
                n => format!("job {id} has no task {task}: its tasks are 0 to {}", n - 1),
            }));
        }
    }
    let client = state.store.pool().get().await?;
    let (text, next) =
        model::output(&**client, job_id, selection, query.task, from, OUTPUT_PAGE).await?;
    let total = match selection {
        OutputSelection::Stdout => job.stdout_bytes,
        OutputSelection::Stderr => job.stderr_bytes,
        OutputSelection::Combined => job.stdout_bytes + job.stderr_bytes,
    };
    let finished = job.status.is_finished();
    let complete = match query.task {
        None => finished && next.max(from) >= total,
        // A task's output has gaps (other tasks'): complete when nothing of it lies beyond.
        Some(task) => {
            finished
                && model::output(&**client, job_id, selection, Some(task), next.max(from), 1)
                    .await?
                    .0
                    .is_empty()
        }
    };
    let mut response =
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    let headers = response.headers_mut();
    headers.insert(OUTPUT_OFFSET, HeaderValue::from(next.max(from)));
    headers.insert(
        OUTPUT_COMPLETE,
        HeaderValue::from_static(if complete { "true" } else { "false" }),
    );
    Ok(response)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    reason: Option<String>,
}

/// `POST /v1/jobs/{id}/cancel`: 200 with the cancelled job; 409 unless it is waiting.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = Uuid, Path, description = "the job's id")),
    request_body(content = Option<Reason>, description = "optional"),
    responses((status = 200, description = "the cancelled job", body = JobView), Refusals),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<Reason>,
) -> Result<Response, Problem> {
    let (job, w) = state
        .commands
        .cancel_job(&caller.actor, &origin, job_id(&id)?, body.reason)
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&job), w))
}

/// `POST /v1/jobs/{id}/kill`: 202 (the worker kills it); 409 unless it is processing.
#[utoipa::path(post, path = "/v1/jobs/{id}/kill", tag = "jobs", params(("id" = Uuid, Path, description = "the job's id")),
    request_body(content = Option<Reason>, description = "optional"),
    responses((status = 202, description = "the worker kills it; the job ends `killed`", body = JobView), Refusals),
    security(("bearer" = [])))]
pub async fn kill(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<Reason>,
) -> Result<Response, Problem> {
    let (job, w) = state
        .commands
        .kill_job(&caller.actor, &origin, job_id(&id)?, body.reason)
        .await?;
    Ok(written(&state, StatusCode::ACCEPTED, Some(&job), w))
}

/// `POST /v1/jobs/{id}/restart`: 201 with the new job that runs this one's task again; a job
/// restarts once (a repeat answers 200 with that same new job, as an `Idempotency-Key` retry).
#[utoipa::path(post, path = "/v1/jobs/{id}/restart", tag = "jobs", params(("id" = Uuid, Path, description = "the job's id")),
    responses(
        (status = 201, description = "a new job of the same task, variables, name, timeout and notification addresses, waiting for a worker; 409 `job_not_restartable` unless the job ended killed, error, warning or cancelled, and for an orchestration's job (run its orchestration instead)", body = JobView),
        (status = 200, description = "the job was restarted before: the job that restart made (to run it again, restart that one); 409 `job_already_restarted` if it is not the caller's to read", body = JobView),
        Refusals),
    security(("bearer" = [])))]
pub async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (job, w, status) = match state
        .commands
        .restart_job(&caller.actor, &origin, &state.catalog, job_id(&id)?)
        .await?
    {
        Submitted::Created(job, w) => (job, w, StatusCode::CREATED),
        Submitted::Existing(job) => (job, Written::default(), StatusCode::OK),
    };
    Ok(written(&state, status, Some(&job), w))
}

/// The `/v1/jobs` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, submit))
        .routes(routes!(get))
        .routes(routes!(output))
        .routes(routes!(cancel))
        .routes(routes!(kill))
        .routes(routes!(restart))
}
