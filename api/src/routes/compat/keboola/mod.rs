//! `/compat/keboola`: Keboola Orchestrator's wire format (COMPAT.md §5, the API Blueprint seed
//! `003`), so its clients run with nothing changed but the base URL. Orchestrations, their
//! tasks and notifications (also at the blueprint's misspelled `nofitications`), their token
//! (`create-token`) and jobs ([`orchestrations`]); running them (`POST …/jobs`, the PHP client's
//! `…/trigger` and `POST /run`), reading and cancelling jobs ([`jobs`]); the shapes ([`render`]).
//! Each call is the `/v1` command or query with the same actor and the same `TaskRules`.
//!
//! Mapping decisions:
//! - Auth: `X-StorageApi-Token: <Bosun token>` (the native `Authorization` header works too).
//! - Ids are the native ids, as strings; times RFC 3339 with an offset, `null` when absent;
//!   statuses the native names (they are Keboola's), but `killed` is Syrup's `terminated`.
//!   Every job also shows `isFinished` (the real server's field the PHP client polls).
//! - A task's `component` is a catalog task, `app/env/task`; `actionParameters` is the native
//!   `parameters` (PHP's empty array `[]` is taken as `{}`), `componentUrl` the native
//!   `component_url`. A notification is `{email, channel, parameters}`; a native webhook one
//!   also shows (and takes) `webhookUrl`.
//! - `tokenId` is accepted and not used: Bosun gives each orchestration a token of its own
//!   (`token.id`), which `create-token` replaces. A task's `phase` (the PHP client's, usually
//!   `null`) is accepted and not used: the tasks run in their order. A `PUT` of an orchestration
//!   as a read shows it is taken: its read-only fields (`id`, `createdTime`,
//!   `lastScheduledTime`, `nextScheduledTime`, `token`, `uri`) are not used.
//! - A deleted orchestration is gone here (404), as in Keboola, for reads and writes alike (the
//!   native refusal `orchestration_deleted` is answered 404, in [`error`]); its jobs stay
//!   readable.
//! - `GET /orchestrations` takes `limit` (1000 by default, the native maximum) and `offset`,
//!   which Keboola's list has not; `X-Total-Count` counts them all.
//! - Only orchestration jobs exist here: `/jobs/{id}` of another job is a 404.
//! - Bodies are JSON whatever their `Content-Type` (a raw body, such as the PHP client's task
//!   array, may come without one), parsed as `/v1` parses one; an unknown field is a 400 naming
//!   it; an empty body where one is needed is a 400.
//! - Errors in Syrup's shape ([`error`]).

pub mod jobs;
pub mod orchestrations;
pub mod render;

use crate::auth::{authenticate, token_from_headers, Caller};
use crate::problem::Problem;
use crate::routes::{POSITION, TOTAL_COUNT};
use crate::startup::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bosun_commands::Written;
use bosun_domain::orchestrations::TaskRules;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The header Keboola's clients carry their (Storage API) token in.
pub const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-storageapi-token");

pub fn router() -> Router<AppState> {
    use orchestrations as o;
    Router::new()
        .route("/orchestrations", get(o::list).post(o::create))
        .route(
            "/orchestrations/{id}",
            get(o::get).put(o::update).delete(o::delete),
        )
        .route("/orchestrations/{id}/create-token", post(o::refresh_token))
        .route(
            "/orchestrations/{id}/tasks",
            get(o::tasks).put(o::replace_tasks),
        )
        .route(
            "/orchestrations/{id}/notifications",
            get(o::notifications).put(o::replace_notifications),
        )
        // The blueprint's spelling of the same resource.
        .route(
            "/orchestrations/{id}/nofitications",
            get(o::notifications).put(o::replace_notifications),
        )
        .route("/orchestrations/{id}/jobs", get(jobs::list).post(jobs::run))
        .route("/orchestrations/{id}/trigger", post(jobs::run))
        .route("/run", post(jobs::run_config))
        .route("/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The server's 404, naming the whole path (a nested router sees only the part after
/// `/compat/keboola`).
async fn not_found(OriginalUri(uri): OriginalUri) -> Problem {
    crate::routes::not_found(uri).await
}

/// The server's 405, naming the whole path.
async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Problem {
    crate::routes::method_not_allowed(method, OriginalUri(uri)).await
}

/// Keboola's (Syrup's) error shape, as its exception listener answers
/// (keboola/syrup: `src/Keboola/Syrup/Listener/SyrupExceptionListener.php`):
/// `{status: "error", error: "User error" | "Application error", code, message, exceptionId,
/// runId}` with the status. `exceptionId` is the request's `Request-Id` (every log line of the
/// request carries it, so an operator finds it); `runId` is `null` (a refusal belongs to no run).
pub fn error(problem: &Problem, request_id: Option<&str>) -> Response {
    let exception_id = request_id.map_or_else(
        || format!("bosun-orchestrator-{}", uuid::Uuid::new_v4().simple()),
        str::to_string,
    );
    let (status, message) = refusal(problem);
    // The message may repeat what the client sent: the code says enough.
    tracing::debug!(
        exception_id = exception_id.as_str(),
        status = status.as_u16(),
        code = problem.code,
        "a /compat/keboola call was refused"
    );
    super::json(
        status,
        &serde_json::json!({
            "status": "error",
            "error": if status.is_server_error() { "Application error" } else { "User error" },
            "code": status.as_u16(),
            "message": message,
            "exceptionId": exception_id,
            "runId": null,
        }),
    )
}

/// A native refusal's status and message here: the native ones, but a deleted orchestration is
/// gone on this surface, writes included (as reads answer it), so `orchestration_deleted` (a
/// 409 natively) is a 404.
fn refusal(problem: &Problem) -> (StatusCode, String) {
    match problem.code {
        "orchestration_deleted" => (
            StatusCode::NOT_FOUND,
            "the orchestration was deleted".to_string(),
        ),
        _ => (super::status(problem), super::message(problem)),
    }
}

/// The caller, by `X-StorageApi-Token` (or the native `Authorization` header): 401 without
/// one, or with one that is unknown, expired or revoked.
pub struct KeboolaCaller(pub Caller);

impl FromRequestParts<AppState> for KeboolaCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = match parts.headers.get(&TOKEN_HEADER) {
            Some(value) => value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .ok_or_else(|| Problem::unauthorized("X-StorageApi-Token is empty or not text"))?,
            None => token_from_headers(&parts.headers)?.ok_or_else(|| {
                Problem::unauthorized("no token: send X-StorageApi-Token: <token>")
            })?,
        };
        authenticate(state, &token).await.map(KeboolaCaller)
    }
}

/// `http://<Host>/compat/keboola` (`https://` when the server serves HTTPS, `tls`): where the
/// answers' `uri`s point.
pub struct Base(pub String);

impl FromRequestParts<AppState> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .filter(|h| {
                // A host and port only: nothing that could turn the URI into another one.
                !h.is_empty()
                    && h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
            })
            .unwrap_or("localhost");
        let scheme = if state.https { "https" } else { "http" };
        Ok(Base(format!("{scheme}://{host}/compat/keboola")))
    }
}

/// A request body, read whole as `/v1` reads one (a body too large is a 413), and parsed by
/// [`Body::parse`].
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        crate::extract::read_body(request, state).await.map(Body)
    }
}

impl Body {
    /// Whether the body is empty (or only whitespace).
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(u8::is_ascii_whitespace)
    }

    /// The body as JSON `T`, parsed as `/v1` parses one (bad JSON, a NUL anywhere, or a value
    /// of the wrong shape is a 400, the last two naming the field under `prefix`), but whatever
    /// its `Content-Type`: Keboola's clients send raw bodies (the PHP client's task array)
    /// without one, which `/v1`'s `Json` refuses (415). An empty body is a 400 saying what was
    /// expected (`expected`).
    pub fn parse<T: DeserializeOwned>(&self, expected: &str, prefix: &str) -> Result<T, Problem> {
        if self.is_empty() {
            return Err(Problem::invalid_field(
                "body",
                format!("is empty: send {expected}"),
            ));
        }
        crate::extract::parse_body_under(&self.0, prefix)
    }

    /// As [`Body::parse`], but an empty body is `T::default()`.
    pub fn parse_optional<T: DeserializeOwned + Default>(&self) -> Result<T, Problem> {
        if self.is_empty() {
            return Ok(T::default());
        }
        self.parse("a JSON object", "")
    }
}

/// What tasks and notifications are checked against: the same as `/v1`'s.
fn rules(state: &AppState) -> TaskRules<'_> {
    TaskRules {
        catalog: &state.catalog,
        allow_insecure_hosts: &state.allow_insecure_hosts,
    }
}

/// A write's answer: `status`, the body if any (JSON), and `Bosun-Position` as `/v1` gives it.
fn written<T: Serialize>(
    state: &AppState,
    status: StatusCode,
    body: Option<&T>,
    written: Written,
) -> Response {
    let position = written
        .position
        .unwrap_or_else(|| *bosun_eventstore::EventStore::head_changes(&state.store).borrow());
    let mut response = match body {
        Some(body) => super::json(status, body),
        None => status.into_response(),
    };
    response
        .headers_mut()
        .insert(POSITION, HeaderValue::from(position));
    response
}

/// A list's answer with `X-Total-Count`.
fn listed<T: Serialize>(items: &[T], total: i64) -> Response {
    let mut response = super::json(StatusCode::OK, &items);
    response
        .headers_mut()
        .insert(TOTAL_COUNT, HeaderValue::from(total));
    response
}
