//! pulsar's jobs: create one (`POST /{app}/{env}`), read it (`GET /job/{id}`), kill it
//! (`POST`/`GET /job/{id}/kill`), run it again (`POST /job/{id}/restart`) and list them
//! (`GET /jobs`), each mapped onto the command or query `/v1/jobs` uses.

use super::body::Fields;
use super::job::{self, PulsarJob};
use crate::auth::{Caller, RequestOrigin};
use crate::extract::Path;
use crate::problem::{FieldError, Problem};
use crate::routes::compat::json;
use crate::routes::v1::jobs::{wait_until_finished, Waited};
use crate::routes::written;
use crate::startup::AppState;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bosun_commands::jobs::{SubmitJob, Submitted};
use bosun_commands::queries::{JobFilter, Page};
use bosun_commands::Written;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What a create or a restart answers: the job's id and where pulsar's web page showed it; with
/// `wait`, the job as it ended.
#[derive(Serialize)]
struct Created {
    id: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<PulsarJob>,
}

/// `url`: `http://<Host>/web#job/<id>` as pulsar built it from the request (`https://` when the
/// server serves HTTPS, `tls`), or the bare path for a request with no `Host`.
fn created(headers: &HeaderMap, https: bool, id: Uuid) -> Created {
    let path = format!("/web#job/{id}");
    let scheme = if https { "https" } else { "http" };
    let url = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() => format!("{scheme}://{host}{path}"),
        _ => path,
    };
    Created {
        id: id.to_string(),
        url,
        data: None,
    }
}

/// What `POST /{app}/{env}` asks for, read from the body's fields.
struct Create {
    task: String,
    variables: BTreeMap<String, String>,
    wait: bool,
}

impl Create {
    fn read(fields: &Map<String, Value>) -> Result<Create, Problem> {
        let task = match fields.get("task") {
            Some(Value::String(task)) if !task.trim().is_empty() => task.trim().to_string(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(Problem::invalid_field("task", "is required"))
            }
            Some(_) => return Err(Problem::invalid_field("task", "must be a string")),
        };
        let variables = match fields.get("taskVariables") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(variables)) => variables
                .iter()
                .map(|(name, value)| match value {
                    Value::String(s) => Ok((name.clone(), s.clone())),
                    Value::Number(n) => Ok((name.clone(), n.to_string())),
                    _ => Err(Problem::invalid_field(
                        format!("taskVariables.{name}"),
                        "must be a string or a number",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(Problem::invalid_field(
                    "taskVariables",
                    "must be an object of names to values",
                ))
            }
        };
        Ok(Create {
            task,
            variables,
            wait: wait(fields.get("wait"))?,
        })
    }
}

/// `wait`, as a JSON or form value, read as Express apps read a flag: `true`/`false`,
/// `1`/`0`, `yes`/`no` and `on`/`off` in any case (as text, a JSON boolean or a JSON number
/// 1/0); `""` and none are `false`; anything else is a 400 rather than a guess.
fn wait(value: Option<&Value>) -> Result<bool, Problem> {
    let refused =
        || Problem::invalid_field("wait", "must be true or false (also 1/0, yes/no or on/off)");
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(wait)) => Ok(*wait),
        Some(Value::Number(n)) if n.as_f64() == Some(1.0) => Ok(true),
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(false),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(refused()),
        },
        Some(_) => Err(refused()),
    }
}

/// `POST /{app}/{env}`: submits the task (as `POST /v1/jobs`), answered once the job is
/// recorded, or with `wait` once it has ended (202 with the job as it is if the server's bound
/// on a wait passes first).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((app, env)): Path<(String, String)>,
    headers: HeaderMap,
    Fields(fields): Fields,
) -> Result<Response, Problem> {
    let request = Create::read(&fields)?;
    let submitted = state
        .commands
        .submit_job(
            &caller.actor,
            &origin,
            &state.catalog,
            SubmitJob {
                app,
                env,
                task: request.task,
                variables: request.variables,
                name: None,
                timeout_seconds: None,
                notification_emails: vec![],
                idempotency_key: None,
            },
        )
        .await?;
    let (job, w) = match submitted {
        Submitted::Created(job, w) => (job, w),
        // Only a request with an Idempotency-Key finds an earlier job, and this has none.
        Submitted::Existing(job) => (job, Written::default()),
    };
    let mut answer = created(&headers, state.https, job.id);
    if !request.wait {
        return Ok(written(&state, StatusCode::OK, Some(&answer), w));
    }
    let (status, job) = match wait_until_finished(&state, job).await? {
        Waited::Finished(job) => (StatusCode::OK, job),
        Waited::Unfinished(job) => (StatusCode::ACCEPTED, job),
    };
    answer.data = Some(job::render(&state, job).await?);
    let position = Written {
        position: Some(state.freshness.position()),
    };
    Ok(written(&state, status, Some(&answer), position))
}

/// A job id as pulsar's routes take it: a malformed one is pulsar's 400 `Invalid job`.
fn job_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| {
        Problem::bad_request(
            "Invalid job",
            vec![FieldError {
                field: "id".into(),
                message: "must be a job id (a UUID)".into(),
            }],
        )
    })
}

/// `GET /job/{id}`: the job with its output so far.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let view = state.queries.job(&caller.actor, job_id(&id)?).await?;
    Ok(json(StatusCode::OK, &job::render(&state, view).await?))
}

/// `POST /job/{id}/kill` (the code's) and `GET /job/{id}/kill` (the seed's): asks the worker to
/// kill it, as `POST /v1/jobs/{id}/kill`, answered with Express's `res.send(200)`: text `OK`.
pub async fn kill(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (_, w) = state
        .commands
        .kill_job(&caller.actor, &origin, job_id(&id)?, None)
        .await?;
    let mut response = written::<()>(&state, StatusCode::OK, None, w);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    *response.body_mut() = Body::from("OK");
    Ok(response)
}

/// `POST /job/{id}/restart`: runs a killed or failed job again, as a new job (pulsar reran the
/// same one): `POST /v1/jobs/{id}/restart`, answered with the new job's `{id, url}`; asked again,
/// the same new job's (a job restarts once: to run it again, restart the new one). Any other job
/// is a 409 (pulsar answered 500).
pub async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (job, w) = match state
        .commands
        .restart_job(&caller.actor, &origin, &state.catalog, job_id(&id)?)
        .await?
    {
        Submitted::Created(job, w) => (job, w),
        Submitted::Existing(job) => (job, Written::default()),
    };
    Ok(written(
        &state,
        StatusCode::OK,
        Some(&created(&headers, state.https, job.id)),
        w,
    ))
}

/// `currentPage` or `pageSize`: a whole number, as JSON or as text.
fn whole_number(field: &str, value: &Value) -> Result<Option<i64>, Problem> {
    let invalid = || Problem::invalid_field(field, "must be a whole number");
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(invalid),
        Value::String(s) => s.trim().parse().map(Some).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// The most jobs one `GET /jobs` page holds: each comes with its whole output, so a page is
/// bounded tighter than a `/v1` list (1000) is; a larger `pageSize` is a 400 saying so.
pub const MAX_PAGE_SIZE: i64 = 100;

/// The page `GET /jobs` asks for: `currentPage` (from 0) and `pageSize` (10 if not given, at
/// most [`MAX_PAGE_SIZE`]), from the body (pulsar read them there) or else the query string
/// (where its README put them).
fn page(query: Option<&str>, body: &Map<String, Value>) -> Result<Page, Problem> {
    let query: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| Problem::bad_request(format!("the query string is not valid: {e}"), vec![]))?;
    let field = |name: &str| -> Result<Option<i64>, Problem> {
        if let Some(value) = body.get(name) {
            if let Some(n) = whole_number(name, value)? {
                return Ok(Some(n));
            }
        }
        match query.iter().find(|(key, _)| key == name) {
            Some((_, value)) => whole_number(name, &Value::String(value.clone())),
            None => Ok(None),
        }
    };
    let limit = field("pageSize")?.unwrap_or(10);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(Problem::invalid_field(
            "pageSize",
            format!("must be 1 to {MAX_PAGE_SIZE} (a page of jobs with their output holds at most {MAX_PAGE_SIZE})"),
        ));
    }
    // The bound of a `/v1` list's `offset`, under pulsar's name.
    let current = field("currentPage")?.unwrap_or(0);
    crate::routes::offset(Some(current)).map_err(|p| renamed(p, "currentPage"))?;
    let offset = current
        .checked_mul(limit)
        .ok_or_else(|| Problem::invalid_field("currentPage", "is too large"))?;
    Ok(Page { limit, offset })
}

/// `problem`, a refusal of one field, as a refusal of `field`.
fn renamed(problem: Problem, field: &str) -> Problem {
    let message = problem.errors.first().map(|e| e.message.clone());
    Problem::invalid_field(field, message.unwrap_or_else(|| problem.title.to_string()))
}

/// `GET /jobs`: the jobs the caller may read, newest first, each with its whole output: at most
/// [`MAX_PAGE_SIZE`] a page. (The `/v1` list query also counts the jobs, which pulsar's answer
/// has no place for; it cannot skip that count.)
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    Fields(body): Fields,
) -> Result<Response, Problem> {
    let page = page(query.as_deref(), &body)?;
    let (views, _) = state
        .queries
        .jobs(&caller.actor, JobFilter::default(), page)
        .await?;
    let mut jobs = Vec::with_capacity(views.len());
    for view in views {
        jobs.push(job::render(&state, view).await?);
    }
    Ok(json(StatusCode::OK, &jobs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_task_is_required_and_trimmed() {
        let create = Create::read(&fields(json!({"task": "  deploy \n"}))).unwrap();
        assert_eq!(create.task, "deploy");
        for body in [json!({}), json!({"task": "  "}), json!({"task": 3})] {
            let problem = Create::read(&fields(body)).err().unwrap();
            assert_eq!(problem.errors[0].field, "task");
        }
    }

    #[test]
    fn task_variables_are_strings_or_numbers() {
        let create = Create::read(&fields(
            json!({"task": "t", "taskVariables": {"A": "x", "B": 2, "C": 1.5}}),
        ))
        .unwrap();
        assert_eq!(
            create.variables,
            BTreeMap::from([
                ("A".to_string(), "x".to_string()),
                ("B".to_string(), "2".to_string()),
                ("C".to_string(), "1.5".to_string()),
            ])
        );
        for variables in [json!({"A": true}), json!({"A": {"b": 1}}), json!(["A"])] {
            let body = json!({"task": "t", "taskVariables": variables});
            assert_eq!(Create::read(&fields(body)).err().unwrap().status, 400);
        }
    }

    #[test]
    fn wait_is_a_flag_as_pulsar_clients_send_it() {
        for yes in [
            json!(true),
            json!(1),
            json!(1.0),
            json!("true"),
            json!("TRUE"),
            json!("True"),
            json!("1"),
            json!("yes"),
            json!("Yes"),
            json!("on"),
            json!("ON"),
        ] {
            assert!(wait(Some(&yes)).unwrap(), "{yes}");
        }
        for no in [
            json!(false),
            json!(0),
            json!("false"),
            json!("FALSE"),
            json!("0"),
            json!("no"),
            json!("NO"),
            json!("off"),
            json!("Off"),
            json!(""),
            Value::Null,
        ] {
            assert!(!wait(Some(&no)).unwrap(), "{no}");
        }
        assert!(!wait(None).unwrap());
        for bad in [
            json!("maybe"),
            json!("y"),
            json!("2"),
            json!(2),
            json!(-1),
            json!([]),
            json!({}),
        ] {
            assert_eq!(wait(Some(&bad)).unwrap_err().errors[0].field, "wait");
        }
    }

    #[test]
    fn a_page_comes_from_the_body_or_else_the_query() {
        let empty = Map::new();
        let default = page(None, &empty).unwrap();
        assert_eq!((default.limit, default.offset), (10, 0));
        let queried = page(Some("currentPage=2&pageSize=5"), &empty).unwrap();
        assert_eq!((queried.limit, queried.offset), (5, 10));
        let body = fields(json!({"currentPage": "1", "pageSize": 20}));
        let bodied = page(Some("currentPage=7&pageSize=5"), &body).unwrap();
        assert_eq!((bodied.limit, bodied.offset), (20, 20));
        let largest = page(Some("pageSize=100"), &empty).unwrap();
        assert_eq!(largest.limit, MAX_PAGE_SIZE);
    }

    #[test]
    fn a_bad_page_is_refused_naming_its_field() {
        let empty = Map::new();
        for (query, field) in [
            ("pageSize=0", "pageSize"),
            ("pageSize=101", "pageSize"),
            ("pageSize=ten", "pageSize"),
            ("currentPage=-1", "currentPage"),
            ("currentPage=1.5", "currentPage"),
            ("currentPage=9223372036854775807&pageSize=2", "currentPage"),
        ] {
            let problem = page(Some(query), &empty).unwrap_err();
            assert_eq!(problem.errors[0].field, field, "{query}");
        }
        let body = fields(json!({"pageSize": true}));
        assert_eq!(page(None, &body).unwrap_err().errors[0].field, "pageSize");
    }

    #[test]
    fn the_url_is_the_web_page_on_the_host_asked() {
        let id = Uuid::nil();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("ci.example:8080"));
        assert_eq!(
            created(&headers, false, id).url,
            format!("http://ci.example:8080/web#job/{id}")
        );
        assert_eq!(
            created(&headers, true, id).url,
            format!("https://ci.example:8080/web#job/{id}")
        );
        assert_eq!(
            created(&HeaderMap::new(), false, id).url,
            format!("/web#job/{id}")
        );
    }
}
