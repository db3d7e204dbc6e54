//! OpenPAI's jobs, as native role jobs: submitting one (the seed's `PUT /api/job/{name}`, v1's
//! `POST /api/v1/jobs`, `POST /api/v1/user/{user}/jobs` and their `PUT …/{name}`, v2's YAML
//! `POST /api/v2/jobs`), reading one (`GET` of each, `…/attempts/{n}`), its config (`…/config`:
//! v1 JSON, v2 YAML), stopping it (`PUT …/executionType {value: "STOP"}`), removing it
//! (`DELETE`), and listing them (the seed's `/api/job`, any method; `GET /api/v1/jobs`,
//! `/api/v1/user/{user}/jobs`; `GET /api/v2/jobs` with its query).
//!
//! Each is the `/v1` command or query with the same actor: `Commands::submit_role_job`
//! (`POST /v1/jobs` with `roles`, checked against the catalog and `compat.openpai.commands`),
//! `Queries::named_job` (the role job holding a name now), `Commands::stop_job`
//! (`POST /v1/jobs/{id}/stop`), `Commands::release_job_name` (`DELETE /v1/jobs/{id}/name`:
//! OpenPAI's removal frees the name; the job stays in `/v1`, as history), `Queries::jobs`
//! (`GET /v1/jobs?kind=roles`).
//!
//! Mapping decisions:
//! - A framework name `user~job` is that user's role job of that name; a bare name (the seed's,
//!   v1's legacy `/api/v1/jobs/{name}`) is the caller's.
//! - `executionType` `START` changes nothing (a job runs once submitted); `STOP` of a finished
//!   job is a 409 `ReadOnlyJobError`.
//! - Lists show the role jobs holding their names (a removed one is gone, as in OpenPAI), that
//!   the caller may read, newest first: one `Queries::jobs` with the native filters
//!   (`kind: roles`, `name_held`, `created_by_any`, `statuses`, `name_or_creator_contains`,
//!   `order`). The seed's and v1's lists (no paging of their own) show the newest
//!   [`UNPAGED_LIMIT`]; v2's pages with its `offset` and `limit`, its `totalCount` the native
//!   total. v2's `username` and `state` take comma lists (at most [`MAX_USERNAMES`] names,
//!   repeats ignored); `keyword` matches a job's name or user (or its virtual cluster,
//!   `default`: a keyword within `default` matches every job); `order` is `field,ASC|DESC`
//!   (either case; `state` orders by the native status's name); `vc`, `jobPriority` and
//!   `tagsContain` match only `default`, `default` and nothing (Bosun has no virtual
//!   clusters, priorities or tags).
//! - Another user's job the caller may not read is not found (`NoJobError`), as one that does
//!   not exist (`Queries::named_job`): names are guessable.
//! - `…/ssh` is always a 404 `NoJobSshInfoError` (instances run as processes, not containers).
//!
//! Owns: these routes. Does not own: jobs.

use super::body::Body;
use super::config::{self, JobConfig, Run};
use super::render::{self, Generation};
use super::{json, text, PaiCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::routes::written;
use crate::startup::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bosun_commands::jobs::Submitted;
use bosun_commands::queries::{JobFilter, Page};
use bosun_commands::{RoleRequest, RoleTarget, SubmitRoleJob, Written};
use bosun_projections::read_models::jobs::{JobKind, JobOrder, JobOrderField, JobView};
use bosun_projections::read_models::COUNT_CAP;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The most role jobs the seed's and v1's lists show (the newest).
pub const UNPAGED_LIMIT: i64 = 10_000;
/// The most user names v2's `username` may list.
pub const MAX_USERNAMES: usize = 1_000;
/// v2's default and largest `limit`.
const DEFAULT_LIMIT: usize = 5_000;
const MAX_LIMIT: usize = 50_000;

/// OpenPAI's `NoJobError`.
fn no_job(owner: &str, name: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no_job",
        format!("Job {owner}~{name} is not found."),
    )
}

/// The user and job a framework name (`user~job`) names; a bare name is the caller's.
fn framework(caller: &PaiCaller, text: &str) -> (String, String) {
    match text.split_once('~') {
        Some((owner, name)) => (owner.to_string(), name.to_string()),
        None => (
            caller.0.actor.username().unwrap_or_default().to_string(),
            text.to_string(),
        ),
    }
}

/// The role job of `owner`'s that holds `name`: 404 `NoJobError` if none does.
async fn named(
    state: &AppState,
    caller: &PaiCaller,
    owner: &str,
    name: &str,
) -> Result<JobView, Problem> {
    state
        .queries
        .named_job(&caller.0.actor, owner, name)
        .await?
        .ok_or_else(|| no_job(owner, name))
}

/// A native 404 about the job (it went between the read and the write): `NoJobError`.
fn gone(problem: Problem, owner: &str, name: &str) -> Problem {
    if problem.status == 404 {
        no_job(owner, name)
    } else {
        problem
    }
}

/// Submits `config` as the caller's role job (`POST /v1/jobs` with `roles`).
async fn submit(
    state: &AppState,
    caller: &PaiCaller,
    origin: &bosun_commands::Origin,
    config: JobConfig,
) -> Result<(JobView, Written), Problem> {
    let request = SubmitRoleJob {
        name: config.name,
        roles: config
            .roles
            .into_iter()
            .map(|role| RoleRequest {
                name: role.name,
                instances: role.instances,
                target: match role.run {
                    Run::Task(task) => RoleTarget::Task(task),
                    Run::Command(command) => RoleTarget::Command(command),
                },
            })
            .collect(),
        image: config.image,
        retry_count: config.retry_count,
        variables: config.variables,
        timeout_seconds: None,
        idempotency_key: None,
    };
    let submitted = state
        .commands
        .submit_role_job(
            &caller.0.actor,
            origin,
            &state.catalog,
            state.role_settings,
            request,
        )
        .await?;
    Ok(match submitted {
        Submitted::Created(job, w) => (job, w),
        // Only a request with an Idempotency-Key finds an earlier job, and these have none.
        Submitted::Existing(job) => (job, Written::default()),
    })
}

/// A namespaced v1 path's user must be the caller: a job is submitted under its submitter's
/// name.
fn own_namespace(caller: &PaiCaller, username: &str) -> Result<(), Problem> {
    if caller.0.actor.username() == Some(username) {
        return Ok(());
    }
    Err(Problem::forbidden(format!(
        "User {} is not allowed to submit a job as {username}: a job is its submitter's",
        caller.0.actor.name()
    )))
}

/// `Location` of a v1 job.
fn located(mut response: Response, owner: &str, name: &str) -> Response {
    let location = format!("/compat/openpai/api/v1/user/{owner}/jobs/{name}");
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

// Submitting.

/// `PUT /api/job/{name}` (the seed): `{message: "update job X successfully"}`; 409
/// `DuplicateJobSubmission` for a name the caller's job holds.
pub async fn seed_put(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let config = config::parse_v1(&body.fields()?, Some(&name))?;
    let (job, w) = submit(&state, &caller, &origin, config).await?;
    let name = job.name.clone().unwrap_or_default();
    Ok(written(
        &state,
        StatusCode::OK,
        Some(&json!({"message": format!("update job {name} successfully")})),
        w,
    ))
}

/// v1's submission: 202 `{message}` with the job's `Location`.
async fn v1_submission(
    state: &AppState,
    caller: &PaiCaller,
    origin: &bosun_commands::Origin,
    config: JobConfig,
) -> Result<Response, Problem> {
    let (job, w) = submit(state, caller, origin, config).await?;
    let name = job.name.clone().unwrap_or_default();
    let response = written(
        state,
        StatusCode::ACCEPTED,
        Some(&json!({"message": format!("update job {name} successfully")})),
        w,
    );
    Ok(located(response, &job.created_by, &name))
}

/// `POST /api/v1/jobs`: the body's `jobName`.
pub async fn v1_submit(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let config = config::parse_v1(&body.fields()?, None)?;
    v1_submission(&state, &caller, &origin, config).await
}

/// `POST /api/v1/user/{user}/jobs` (what the SDK's v1 `submit` sends, a bracket form).
pub async fn v1_user_submit(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    own_namespace(&caller, &username)?;
    let config = config::parse_v1(&body.fields()?, None)?;
    v1_submission(&state, &caller, &origin, config).await
}

/// `PUT /api/v1/jobs/{name}`.
pub async fn v1_put(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(framework_name): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    own_namespace(&caller, &owner)?;
    let config = config::parse_v1(&body.fields()?, Some(&name))?;
    v1_submission(&state, &caller, &origin, config).await
}

/// `PUT /api/v1/user/{user}/jobs/{name}`.
pub async fn v1_user_put(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((username, name)): Path<(String, String)>,
    body: Body,
) -> Result<Response, Problem> {
    own_namespace(&caller, &username)?;
    let config = config::parse_v1(&body.fields()?, Some(&name))?;
    v1_submission(&state, &caller, &origin, config).await
}

/// `POST /api/v2/jobs` (protocol v2, YAML): 202 `{status: 202, message}`; 409
/// `ConflictJobError` for a name the caller's job holds.
pub async fn v2_submit(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let config = config::parse_v2(&body.yaml()?)?;
    let (job, w) = submit(&state, &caller, &origin, config).await?;
    let name = job.name.clone().unwrap_or_default();
    let accepted = StatusCode::ACCEPTED;
    Ok(written(
        &state,
        accepted,
        Some(&json!({
            "status": accepted.as_u16(),
            "message": format!("Update job {name} for user {} successfully.", job.created_by),
        })),
        w,
    ))
}

// Reading.

/// `GET /api/job/{name}` (the seed; a bare name is the caller's, `user~job` another's).
pub async fn seed_get(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path(framework_name): Path<String>,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    let job = named(&state, &caller, &owner, &name).await?;
    Ok(json(StatusCode::OK, &render::seed_detail(&job)))
}

/// `GET /api/v1/jobs/{user~job | job}`.
pub async fn v1_get(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path(framework_name): Path<String>,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    let job = named(&state, &caller, &owner, &name).await?;
    Ok(json(StatusCode::OK, &render::detail(&job, Generation::V1)))
}

/// `GET /api/v1/user/{user}/jobs/{name}`.
pub async fn v1_user_get(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let job = named(&state, &caller, &owner, &name).await?;
    Ok(json(StatusCode::OK, &render::detail(&job, Generation::V1)))
}

/// `GET /api/v2/jobs/{user~job}`.
pub async fn v2_get(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path(framework_name): Path<String>,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    let job = named(&state, &caller, &owner, &name).await?;
    Ok(json(StatusCode::OK, &render::detail(&job, Generation::V2)))
}

/// `GET /api/v2/jobs/{user~job}/attempts/{n}`: attempt `n` is the job as it is when `n` is its
/// retries so far (Bosun keeps no earlier attempt's state); another is a 404.
pub async fn v2_get_attempt(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path((framework_name, attempt)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    let job = named(&state, &caller, &owner, &name).await?;
    if attempt.parse::<i64>().ok() != Some(job.retries) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no_job",
            format!(
                "JobAttemptId {attempt} is not found in {owner}~{name} (its attempt is {}).",
                job.retries
            ),
        ));
    }
    Ok(json(StatusCode::OK, &render::detail(&job, Generation::V2)))
}

/// Whether the request asks for YAML rather than JSON (`Accept`).
fn wants_yaml(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    accept.contains("yaml") && !accept.contains("json")
}

/// v1's config: JSON (YAML if `Accept` asks for it, as v1 negotiated).
async fn v1_config_of(
    state: &AppState,
    caller: &PaiCaller,
    owner: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let job = named(state, caller, owner, name).await?;
    let config = render::config_of(&job);
    if wants_yaml(headers) {
        return Ok(text(
            StatusCode::OK,
            "text/yaml; charset=utf-8",
            config::render_v2(&config),
        ));
    }
    Ok(json(StatusCode::OK, &config::render_v1(&config)))
}

/// `GET /api/v1/jobs/{user~job | job}/config`.
pub async fn v1_config(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path(framework_name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    v1_config_of(&state, &caller, &owner, &name, &headers).await
}

/// `GET /api/v1/user/{user}/jobs/{name}/config` (and the SDK's `/api/v1/jobs/{user}/jobs/{name}/config`).
pub async fn v1_user_config(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    v1_config_of(&state, &caller, &owner, &name, &headers).await
}

/// `GET /api/v2/jobs/{user~job}/config`: the config as YAML (`text/yaml`).
pub async fn v2_config(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path(framework_name): Path<String>,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    let job = named(&state, &caller, &owner, &name).await?;
    let yaml = config::render_v2(&render::config_of(&job));
    Ok(text(StatusCode::OK, "text/yaml; charset=utf-8", yaml))
}

/// `…/ssh`: the job's (to say `NoJobError` for none), but never its SSH info.
async fn ssh(state: &AppState, caller: &PaiCaller, owner: &str, name: &str) -> Problem {
    match named(state, caller, owner, name).await {
        Err(problem) => problem,
        Ok(_) => Problem::new(
            StatusCode::NOT_FOUND,
            "no_ssh_info",
            format!("SSH info of job {owner}~{name} is not found: Bosun runs its instances as processes, not containers."),
        ),
    }
}

/// `GET /api/v1/jobs/{job}/ssh`.
pub async fn v1_ssh(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path(framework_name): Path<String>,
) -> Problem {
    let (owner, name) = framework(&caller, &framework_name);
    ssh(&state, &caller, &owner, &name).await
}

/// `GET /api/v1/user/{user}/jobs/{name}/ssh`.
pub async fn v1_user_ssh(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path((owner, name)): Path<(String, String)>,
) -> Problem {
    ssh(&state, &caller, &owner, &name).await
}

/// `GET /api/v2/jobs/{user~job}/ssh`.
pub async fn v2_ssh(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path(framework_name): Path<String>,
) -> Problem {
    let (owner, name) = framework(&caller, &framework_name);
    ssh(&state, &caller, &owner, &name).await
}

// Stopping and removing.

/// `{value: "START" | "STOP"}`: whether to stop.
fn stop_asked(body: &Body) -> Result<bool, Problem> {
    let fields = body.fields()?;
    match fields.get("value") {
        Some(Value::String(v)) if v.eq_ignore_ascii_case("STOP") => Ok(true),
        Some(Value::String(v)) if v.eq_ignore_ascii_case("START") => Ok(false),
        None | Some(Value::Null) => Err(Problem::invalid_field(
            "value",
            "is required: START or STOP",
        )),
        Some(_) => Err(Problem::invalid_field("value", "must be START or STOP")),
    }
}

/// Stops `owner`'s job `name` if asked (`POST /v1/jobs/{id}/stop`); `START` writes nothing.
async fn execute(
    state: &AppState,
    caller: &PaiCaller,
    origin: &bosun_commands::Origin,
    owner: &str,
    name: &str,
    body: &Body,
) -> Result<Written, Problem> {
    let stop = stop_asked(body)?;
    let job = named(state, caller, owner, name).await?;
    if !stop {
        // No command, and so none to ask: the check every write asks first (the authorization
        // matrix found a read-only token answered 202).
        caller.0.actor.require_writer().map_err(Problem::from)?;
        return Ok(Written::default());
    }
    let (_, w) = state
        .commands
        .stop_job(&caller.0.actor, origin, job.id, None)
        .await
        .map_err(|e| gone(e.into(), owner, name))?;
    Ok(w)
}

/// `PUT /api/v1/jobs/{job}/executionType`: 202 `{message}`.
pub async fn v1_execute(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(framework_name): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    let w = execute(&state, &caller, &origin, &owner, &name, &body).await?;
    Ok(written(
        &state,
        StatusCode::ACCEPTED,
        Some(&json!({"message": format!("execute job {name} successfully")})),
        w,
    ))
}

/// `PUT /api/v1/user/{user}/jobs/{name}/executionType` (the SDK's v1 `execute`).
pub async fn v1_user_execute(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((owner, name)): Path<(String, String)>,
    body: Body,
) -> Result<Response, Problem> {
    let w = execute(&state, &caller, &origin, &owner, &name, &body).await?;
    Ok(written(
        &state,
        StatusCode::ACCEPTED,
        Some(&json!({"message": format!("execute job {name} successfully")})),
        w,
    ))
}

/// `PUT /api/v2/jobs/{user~job}/executionType`: 202 `{status, message}`.
pub async fn v2_execute(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(framework_name): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    let w = execute(&state, &caller, &origin, &owner, &name, &body).await?;
    let accepted = StatusCode::ACCEPTED;
    Ok(written(
        &state,
        accepted,
        Some(&json!({
            "status": accepted.as_u16(),
            "message": format!("Execute job {owner}~{name} successfully."),
        })),
        w,
    ))
}

/// Removes `owner`'s job `name`: its name is free (`DELETE /v1/jobs/{id}/name`, which stops it
/// first if it runs).
async fn remove(
    state: &AppState,
    caller: &PaiCaller,
    origin: &bosun_commands::Origin,
    owner: &str,
    name: &str,
) -> Result<Written, Problem> {
    let job = named(state, caller, owner, name).await?;
    state
        .commands
        .release_job_name(&caller.0.actor, origin, job.id)
        .await
        .map_err(|e| match Problem::from(e) {
            // Released meanwhile: gone, as OpenPAI's removed job.
            p if p.code == "job_name_released" => no_job(owner, name),
            p => gone(p, owner, name),
        })
}

/// `DELETE /api/job/{name}` (the seed): `{message: "deleted job X successfully"}`.
pub async fn seed_delete(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(framework_name): Path<String>,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    let w = remove(&state, &caller, &origin, &owner, &name).await?;
    Ok(written(
        &state,
        StatusCode::OK,
        Some(&json!({"message": format!("deleted job {name} successfully")})),
        w,
    ))
}

/// `DELETE /api/v1/jobs/{job}`: 202 `{message}`.
pub async fn v1_delete(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(framework_name): Path<String>,
) -> Result<Response, Problem> {
    let (owner, name) = framework(&caller, &framework_name);
    let w = remove(&state, &caller, &origin, &owner, &name).await?;
    Ok(written(
        &state,
        StatusCode::ACCEPTED,
        Some(&json!({"message": format!("deleted job {name} successfully")})),
        w,
    ))
}

/// `DELETE /api/v1/user/{user}/jobs/{name}` (the SDK's v1 `delete`).
pub async fn v1_user_delete(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let w = remove(&state, &caller, &origin, &owner, &name).await?;
    Ok(written(
        &state,
        StatusCode::ACCEPTED,
        Some(&json!({"message": format!("deleted job {name} successfully")})),
        w,
    ))
}

// Listing.

/// The role jobs holding their names that the caller may read and `filter` keeps (its kind
/// and `name_held` set here), a page of them, and how many in all.
async fn role_jobs(
    state: &AppState,
    caller: &PaiCaller,
    filter: JobFilter,
    page: Page,
) -> Result<(Vec<JobView>, i64), Problem> {
    let filter = JobFilter {
        kind: Some(JobKind::Roles),
        name_held: Some(true),
        ..filter
    };
    Ok(state.queries.jobs(&caller.0.actor, filter, page).await?)
}

/// The newest [`UNPAGED_LIMIT`] of them, for the lists that do not page.
fn unpaged() -> Page {
    Page {
        limit: UNPAGED_LIMIT,
        offset: 0,
    }
}

/// `/api/job` (the seed, any method): every role job the caller may read.
pub async fn seed_list(
    State(state): State<AppState>,
    caller: PaiCaller,
) -> Result<Response, Problem> {
    let (jobs, _) = role_jobs(&state, &caller, JobFilter::default(), unpaged()).await?;
    let shown: Vec<Value> = jobs.iter().map(render::seed_item).collect();
    Ok(json(StatusCode::OK, &shown))
}

/// The query string as pairs.
fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, Problem> {
    serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| Problem::bad_request(format!("the query string is not valid: {e}"), vec![]))
}

fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// `GET /api/v1/jobs?username=`: v1's list (the user's jobs, or every one the caller may read).
pub async fn v1_list(
    State(state): State<AppState>,
    caller: PaiCaller,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let pairs = query_pairs(query.as_deref())?;
    let filter = JobFilter {
        created_by: query_value(&pairs, "username")
            .filter(|u| !u.is_empty())
            .map(str::to_string),
        ..JobFilter::default()
    };
    let (jobs, _) = role_jobs(&state, &caller, filter, unpaged()).await?;
    let shown: Vec<Value> = jobs
        .iter()
        .map(|job| render::list_item(job, Generation::V1))
        .collect();
    Ok(json(StatusCode::OK, &shown))
}

/// `GET /api/v1/user/{user}/jobs`: the user's jobs.
pub async fn v1_user_list(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path(owner): Path<String>,
) -> Result<Response, Problem> {
    let filter = JobFilter {
        created_by: Some(owner),
        ..JobFilter::default()
    };
    let (jobs, _) = role_jobs(&state, &caller, filter, unpaged()).await?;
    let shown: Vec<Value> = jobs
        .iter()
        .map(|job| render::list_item(job, Generation::V1))
        .collect();
    Ok(json(StatusCode::OK, &shown))
}

/// v2's list query (`routes/v2/job.js`'s `list`).
#[derive(Debug, Default, PartialEq)]
struct ListQuery {
    usernames: Vec<String>,
    states: Vec<String>,
    keyword: Option<String>,
    offset: usize,
    limit: usize,
    with_total_count: bool,
    /// The field (as OpenPAI names it) and whether ascending.
    order: Option<(String, bool)>,
    /// Whether a filter Bosun has nothing of (`vc`, `jobPriority`, `tagsContain`) excludes
    /// every job.
    none: bool,
}

/// A comma list's items, in their first order, each once.
fn comma_list(value: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty() && seen.insert(*v))
        .map(str::to_string)
        .collect()
}

impl ListQuery {
    fn read(query: Option<&str>) -> Result<ListQuery, Problem> {
        let pairs = query_pairs(query)?;
        let get = |name: &str| query_value(&pairs, name);
        let number = |name: &str| -> Result<Option<usize>, Problem> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| Problem::invalid_field(name, "must be a whole number from 0"))
                })
                .transpose()
        };
        let limit = number("limit")?.unwrap_or(DEFAULT_LIMIT);
        if limit > MAX_LIMIT {
            return Err(Problem::invalid_field(
                "limit",
                format!("Limit exceeds max number {MAX_LIMIT}."),
            ));
        }
        let only_default =
            |name: &str| get(name).is_some_and(|v| !comma_list(v).iter().any(|x| x == "default"));
        let order = get("order").and_then(|o| {
            let (field, ordering) = o.split_once(',')?;
            let ordering = ordering.trim();
            if ordering.eq_ignore_ascii_case("ASC") {
                Some((field.trim().to_string(), true))
            } else if ordering.eq_ignore_ascii_case("DESC") {
                Some((field.trim().to_string(), false))
            } else {
                None
            }
        });
        let usernames = get("username").map(comma_list).unwrap_or_default();
        if usernames.len() > MAX_USERNAMES {
            return Err(Problem::invalid_field(
                "username",
                format!("names {} users: at most {MAX_USERNAMES}", usernames.len()),
            ));
        }
        Ok(ListQuery {
            usernames,
            states: get("state").map(comma_list).unwrap_or_default(),
            keyword: get("keyword").filter(|k| !k.is_empty()).map(str::to_string),
            offset: number("offset")?.unwrap_or(0),
            limit,
            with_total_count: get("withTotalCount") == Some("true"),
            order,
            none: only_default("vc")
                || only_default("jobPriority")
                || get("tagsContain").is_some_and(|t| !comma_list(t).is_empty()),
        })
    }

    /// The native statuses asked: `None` for any, else those the states mean (none for states
    /// Bosun never shows: then no job matches).
    fn statuses(&self) -> Option<Vec<String>> {
        if self.states.is_empty() {
            return None;
        }
        let statuses: BTreeSet<&str> = self
            .states
            .iter()
            .flat_map(|s| render::statuses_of(s).iter().copied())
            .collect();
        Some(statuses.into_iter().map(str::to_string).collect())
    }

    /// The native order `order` asks (OpenPAI's field names; another field is its default,
    /// submission time).
    fn native_order(&self) -> JobOrder {
        let Some((field, ascending)) = &self.order else {
            return JobOrder::default();
        };
        let field = match field.as_str() {
            "jobName" => JobOrderField::Name,
            "username" => JobOrderField::CreatedBy,
            "retries" => JobOrderField::Retries,
            "totalTaskNumber" => JobOrderField::TaskCount,
            "state" => JobOrderField::Status,
            "completionTime" => JobOrderField::FinishedAt,
            _ => JobOrderField::CreatedAt,
        };
        JobOrder {
            field,
            ascending: *ascending,
        }
    }
}

/// `GET /api/v2/jobs?username=&state=&keyword=&offset=&limit=&withTotalCount=&order=`.
pub async fn v2_list(
    State(state): State<AppState>,
    caller: PaiCaller,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let query = ListQuery::read(query.as_deref())?;
    let statuses = query.statuses();
    let (jobs, total) = if query.none || statuses.as_ref().is_some_and(Vec::is_empty) {
        (Vec::new(), 0)
    } else {
        let filter = JobFilter {
            created_by_any: query.usernames.clone(),
            statuses: statuses.unwrap_or_default(),
            // Every job's virtual cluster is `default`: a keyword within it matches all.
            name_or_creator_contains: query
                .keyword
                .clone()
                .filter(|keyword| !"default".contains(keyword.as_str())),
            order: query.native_order(),
            ..JobFilter::default()
        };
        let page = Page {
            limit: query.limit as i64,
            offset: i64::try_from(query.offset).unwrap_or(i64::MAX),
        };
        role_jobs(&state, &caller, filter, page).await?
    };
    let page: Vec<Value> = jobs
        .iter()
        .map(|job| render::list_item(job, Generation::V2))
        .collect();
    if query.with_total_count {
        return Ok(json(
            StatusCode::OK,
            // Counted up to the cap, as every job list is.
            &json!({"totalCount": total.min(COUNT_CAP), "data": page}),
        ));
    }
    Ok(json(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2s_list_query_is_read_as_its_server_read_it() {
        let query = ListQuery::read(Some(
            "username=alice,bob&state=RUNNING,FAILED&keyword=mnist&offset=5&limit=10&withTotalCount=true&order=jobName,ASC",
        ))
        .unwrap();
        assert_eq!(query.usernames, ["alice", "bob"]);
        assert_eq!(query.states, ["RUNNING", "FAILED"]);
        assert_eq!(query.keyword.as_deref(), Some("mnist"));
        assert_eq!((query.offset, query.limit), (5, 10));
        assert!(query.with_total_count);
        assert_eq!(query.order, Some(("jobName".into(), true)));
        assert_eq!(
            query.native_order(),
            JobOrder {
                field: JobOrderField::Name,
                ascending: true
            }
        );
        assert_eq!(
            query.statuses(),
            Some(vec!["error".into(), "processing".into(), "warning".into()])
        );
        let default = ListQuery::read(None).unwrap();
        assert_eq!(default.limit, DEFAULT_LIMIT);
        assert_eq!(default.statuses(), None);
        assert_eq!(default.native_order(), JobOrder::default());
        assert!(!default.none);
    }

    #[test]
    fn an_order_is_read_in_either_case() {
        for (order, ascending) in [
            ("jobName,asc", true),
            ("jobName,Desc", false),
            ("jobName, ASC", true),
        ] {
            let query = ListQuery::read(Some(&format!("order={order}"))).unwrap();
            assert_eq!(query.order, Some(("jobName".into(), ascending)), "{order}");
        }
        assert_eq!(
            ListQuery::read(Some("order=jobName,up")).unwrap().order,
            None
        );
    }

    #[test]
    fn user_names_are_taken_once_and_bounded() {
        let repeated = vec!["a"; 5000].join(",");
        let query = ListQuery::read(Some(&format!("username={repeated},b,a"))).unwrap();
        assert_eq!(query.usernames, ["a", "b"]);
        let many: Vec<String> = (0..=MAX_USERNAMES).map(|i| format!("u{i}")).collect();
        let problem = ListQuery::read(Some(&format!("username={}", many.join(",")))).unwrap_err();
        assert_eq!(problem.errors[0].field, "username");
    }

    #[test]
    fn filters_bosun_has_nothing_of_match_only_their_default() {
        assert!(!ListQuery::read(Some("vc=default,vc2")).unwrap().none);
        assert!(ListQuery::read(Some("vc=vc2")).unwrap().none);
        assert!(ListQuery::read(Some("tagsContain=a")).unwrap().none);
        assert!(!ListQuery::read(Some("tagsNotContain=a")).unwrap().none);
        assert!(ListQuery::read(Some("jobPriority=high")).unwrap().none);
        assert_eq!(
            ListQuery::read(Some("state=UNKNOWN")).unwrap().statuses(),
            Some(vec![])
        );
    }

    #[test]
    fn a_bad_list_query_is_refused_naming_it() {
        for (query, field) in [
            ("limit=50001", "limit"),
            ("limit=ten", "limit"),
            ("offset=-1", "offset"),
        ] {
            let problem = ListQuery::read(Some(query)).unwrap_err();
            assert_eq!(problem.errors[0].field, field, "{query}");
        }
        assert!(ListQuery::read(Some("limit=50000")).is_ok());
    }
}
