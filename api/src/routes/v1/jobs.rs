//! `/v1/jobs`: submit (a catalog task, or a role job: `roles`), list, read, follow the output of,
//! cancel, kill, stop and restart jobs, and release a role job's name.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, OptionalJson, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::{limit, listed_page, offset, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_commands::jobs::{SubmitJob, Submitted};
use bosun_commands::queries::{JobFilter, Page};
use bosun_commands::{RoleRequest, RoleTarget, SubmitRoleJob, Written};
use bosun_projections::read_models::jobs::{
    self as model, JobCursor, JobKind, JobView, OutputSelection,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub const OUTPUT_OFFSET: HeaderName = HeaderName::from_static("bosun-output-offset");
pub const OUTPUT_COMPLETE: HeaderName = HeaderName::from_static("bosun-output-complete");
/// The most output one read returns; a client reads on from `Bosun-Output-Offset`.
const OUTPUT_PAGE: i64 = 1024 * 1024;

/// A job to run: a catalog task (`app`, `env`, `task`), or a role job (`name` and `roles`, with
/// no `app`, `env` or `task`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// The catalog task's (required unless `roles`).
    app: Option<String>,
    env: Option<String>,
    task: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// Free text; for a role job, its name (required): `[A-Za-z0-9._-]+` (no `~`: OpenPAI
    /// names a user's job `user~name`), at most 64 characters, unique among the submitter's
    /// role jobs holding their names.
    name: Option<String>,
    timeout_seconds: Option<u64>,
    #[serde(default)]
    wait: bool,
    #[serde(default)]
    notification_emails: Vec<String>,
    /// A role job's roles: each instance of each runs at once, as a task of the job.
    roles: Option<Vec<RoleBody>>,
    /// A role job's image: recorded and shown, not used.
    image: Option<String>,
    /// How many times a role job's failed attempt runs again (every instance).
    retry_count: Option<u32>,
}

/// A role of a role job: `instances` instances (default 1, at most 100) of a catalog task
/// (`task: app/env/task`) or of a shell command (`command`, run with `sh -c` in the sandbox;
/// refused with 400 `commands_not_allowed` unless the server has `compat.openpai.commands:
/// sandbox`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `[A-Za-z0-9_-]+`, at most 64 characters, distinct within the job.
    name: String,
    #[serde(default = "one")]
    instances: u32,
    task: Option<String>,
    command: Option<String>,
}

fn one() -> u32 {
    1
}

/// What a submission's body asks for.
enum Asked {
    Task(SubmitJob),
    Roles(SubmitRoleJob),
}

impl Submit {
    /// The body as one kind of job or the other; a field of the other kind is a 400 naming it.
    fn asked(self, idempotency_key: Option<String>) -> Result<Asked, Problem> {
        let Some(roles) = self.roles else {
            if self.image.is_some() {
                return Err(Problem::invalid_field(
                    "image",
                    "only a role job (roles) has one",
                ));
            }
            if self.retry_count.is_some() {
                return Err(Problem::invalid_field(
                    "retry_count",
                    "only a role job (roles) has one",
                ));
            }
            let required = |value: Option<String>, field: &str| {
                value.ok_or_else(|| {
                    Problem::invalid_field(field, "required (or roles, for a role job)")
                })
            };
            return Ok(Asked::Task(SubmitJob {
                app: required(self.app, "app")?,
                env: required(self.env, "env")?,
                task: required(self.task, "task")?,
                variables: self.variables,
                name: self.name,
                timeout_seconds: self.timeout_seconds,
                notification_emails: self.notification_emails,
                idempotency_key,
            }));
        };
        for (field, given) in [
            ("app", self.app.is_some()),
            ("env", self.env.is_some()),
            ("task", self.task.is_some()),
            ("notification_emails", !self.notification_emails.is_empty()),
        ] {
            if given {
                return Err(Problem::invalid_field(
                    field,
                    "a role job (roles) has none: each role names its task",
                ));
            }
        }
        let name = self
            .name
            .ok_or_else(|| Problem::invalid_field("name", "a role job's name is required"))?;
        let mut requests = Vec::with_capacity(roles.len());
        for (index, role) in roles.into_iter().enumerate() {
            let target = match (role.task, role.command) {
                (Some(task), None) => RoleTarget::Task(task),
                (None, Some(command)) => RoleTarget::Command(command),
                _ => {
                    return Err(Problem::invalid_field(
                        format!("roles[{index}]"),
                        "exactly one of task (app/env/task) and command",
                    ))
                }
            };
            requests.push(RoleRequest {
                name: role.name,
                instances: role.instances,
                target,
            });
        }
        Ok(Asked::Roles(SubmitRoleJob {
            name,
            roles: requests,
            image: self.image,
            retry_count: self.retry_count.unwrap_or(0),
            variables: self.variables,
            timeout_seconds: self.timeout_seconds,
            idempotency_key,
        }))
    }
}

/// `POST /v1/jobs`.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = Submit,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key and body within 24 h give the first job again (200); another body with it is a 409")),
    responses(
        (status = 201, description = "the job, waiting for a worker (with `wait: true`: 200 with the finished job and its output). A role job (`roles`) whose name the submitter's role job holds is a 409 `job_name_taken`; a role's command where commands are off a 400 `commands_not_allowed`", body = JobView),
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
    let submitted = match body.asked(idempotency_key)? {
        Asked::Task(request) => {
            state
                .commands
                .submit_job(&caller.actor, &origin, &state.catalog, request)
                .await?
        }
        Asked::Roles(request) => {
            state
                .commands
                .submit_role_job(
                    &caller.actor,
                    &origin,
                    &state.catalog,
                    state.role_settings,
                    request,
                )
                .await?
        }
    };
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

#[derive(Clone, Deserialize, Serialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(pattern = "^(waiting|processing|success|error|warning|killed|cancelled)$")]
    status: Option<String>,
    app: Option<String>,
    env: Option<String>,
    orchestration_id: Option<String>,
    /// Submitted by this user.
    created_by: Option<String>,
    /// Named so.
    name: Option<String>,
    /// `task`, `orchestration` or `roles`.
    #[param(pattern = "^(task|orchestration|roles)$")]
    kind: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// The jobs after this cursor, as the previous page's `Link: rel="next"` gives it: a page
    /// that costs the same however deep in the list, where `offset` costs what it skips.
    #[param(
        pattern = r"^[0-9]{1,16}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    after: Option<String>,
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

/// `GET /v1/jobs`: newest first, with `X-Total-Count` (up to 10,000, then
/// `X-Total-Count-Capped: true`) and, when more follow, `Link: <…&after=…>; rel="next"`.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, description = "the jobs the caller may read, newest first, with `X-Total-Count` (counted up to 10,000; past it, 10,000 and `X-Total-Count-Capped: true`) and, when more follow, `Link: <…>; rel=\"next\"`", body = Vec<JobView>), Refusals),
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
    let after = match query.after.as_deref() {
        None => None,
        Some(text) => Some(JobCursor::parse(text).ok_or_else(|| {
            Problem::invalid_field(
                "after",
                "must be a cursor a previous page's Link header gave",
            )
        })?),
    };
    let kind = match query.kind.as_deref() {
        None => None,
        Some(kind) => Some(JobKind::parse(kind).ok_or_else(|| {
            Problem::invalid_field("kind", "must be one of task, orchestration, roles")
        })?),
    };
    let filter = JobFilter {
        status: query.status.clone(),
        app: query.app.clone(),
        env: query.env.clone(),
        orchestration_id: query.orchestration_id.clone(),
        created_by: query.created_by.clone(),
        name: query.name.clone(),
        kind,
        after,
        ..JobFilter::default()
    };
    // One more than the page, to know whether a next one is there to link to.
    let asked = Page {
        limit: page.limit + 1,
        ..page
    };
    let (mut jobs, total) = state.queries.jobs(&caller.actor, filter, asked).await?;
    let more = jobs.len() as i64 > page.limit;
    jobs.truncate(page.limit as usize);
    let next = match jobs.last() {
        Some(last) if more => {
            let next = ListQuery {
                offset: None,
                after: Some(JobCursor::after(last).to_string()),
                ..query
            };
            serde_urlencoded::to_string(&next)
                .ok()
                .map(|q| format!("/v1/jobs?{q}"))
        }
        _ => None,
    };
    Ok(listed_page(&jobs, total, next))
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
    #[param(pattern = "^(stdout|stderr|combined)$")]
    stream: Option<String>,
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// Only this orchestration task's output (its index).
    #[param(minimum = 0)]
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

/// `POST /v1/jobs/{id}/stop`: 200 with the job, cancelled if it was waiting, or being killed if
/// it was processing (it ends `killed`); 409 `job_finished` once it has finished.
#[utoipa::path(post, path = "/v1/jobs/{id}/stop", tag = "jobs", params(("id" = Uuid, Path, description = "the job's id")),
    request_body(content = Option<Reason>, description = "optional"),
    responses((status = 200, description = "the job: cancelled, or its kill requested (every instance of a role job is killed)", body = JobView), Refusals),
    security(("bearer" = [])))]
pub async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<Reason>,
) -> Result<Response, Problem> {
    let (job, w) = state
        .commands
        .stop_job(&caller.actor, &origin, job_id(&id)?, body.reason)
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&job), w))
}

/// `DELETE /v1/jobs/{id}/name`: 204; a role job's name is free again (the job stopped first if
/// it had not finished); the job stays, as history.
#[utoipa::path(delete, path = "/v1/jobs/{id}/name", tag = "jobs", params(("id" = Uuid, Path, description = "the job's id")),
    responses((status = 204, description = "the name is free; 409 `job_not_named` for a job that is not a role job, `job_name_released` if it was released already"), Refusals),
    security(("bearer" = [])))]
pub async fn release_name(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .release_job_name(&caller.actor, &origin, job_id(&id)?)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
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
        .routes(routes!(stop))
        .routes(routes!(release_name))
        .routes(routes!(restart))
}
