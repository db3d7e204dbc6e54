//! RFC 9457 problem details: every error a client gets, with a stable `code`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_commands::CommandError;
use bosun_domain::DomainError;
use serde::Serialize;

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// A 412 `version_mismatch`'s version of the resource now (absent: it has none yet). Boxed,
    /// so a `Problem` stays small enough to return by value.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub current_version: Option<Box<u64>>,
    /// A 503's `Retry-After` in seconds, when the cause says (GitHub's rate limit); 1 if not. A 429
    /// with one sends it too.
    /// (Two bytes, so a `Problem` stays small enough to return by value.)
    #[serde(skip)]
    pub retry_after: Option<std::num::NonZeroU16>,
}

/// One offending field of a 400.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// The refusals any `/v1` call may answer, each a problem body (`application/problem+json`)
/// with a stable `code`: listed once for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// Malformed or invalid input; `errors` names the fields.
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(Problem),
    /// No token, or a bad one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token may not do this.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The body did not all arrive within `http.body_read_timeout_seconds`.
    #[response(status = 408, content_type = "application/problem+json")]
    BodyTimeout(Problem),
    /// `If-Match` named another version than the resource's; `current_version` is its own.
    #[response(status = 412, content_type = "application/problem+json")]
    VersionMismatch(Problem),
    /// The resource's state forbids the action.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// The body is too large.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not of the media type the route reads (JSON, unless it says otherwise).
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// The database is unavailable, or the read models are behind; retry after `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("https://bosun.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail: Some(detail.into()),
            errors: Vec::new(),
            current_version: None,
            retry_after: None,
        }
    }

    /// This, answered with `Retry-After: <seconds>` (1 to 65535) if it is a 503.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        let seconds = u16::try_from(seconds).unwrap_or(u16::MAX);
        self.retry_after = std::num::NonZeroU16::new(seconds.max(1));
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn internal() -> Self {
        // Details go to the log, not to the client.
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; see the server log",
        )
    }

    pub fn bad_request(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        let mut p = Problem::new(StatusCode::BAD_REQUEST, "invalid_input", detail);
        p.errors = errors;
        p
    }

    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        Problem::bad_request(
            format!("{field}: {message}"),
            vec![FieldError { field, message }],
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
}

impl From<CommandError> for Problem {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(DomainError::Invalid { field, message }) => {
                Problem::invalid_field(field, message)
            }
            CommandError::Domain(DomainError::Conflict { code, message }) => {
                Problem::new(StatusCode::CONFLICT, code, message)
            }
            CommandError::Domain(DomainError::NotFound(message)) => Problem::not_found(message),
            CommandError::Domain(DomainError::Forbidden { code, message }) => {
                Problem::new(StatusCode::FORBIDDEN, code, message)
            }
            CommandError::Domain(DomainError::TooLarge { code, message }) => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
            }
            CommandError::Domain(DomainError::Refused { code, message }) => {
                Problem::new(StatusCode::BAD_REQUEST, code, message)
            }
            CommandError::Unauthenticated => {
                Problem::unauthorized("a valid token is required (Authorization: Bearer <token>)")
            }
            CommandError::Forbidden(message) => Problem::forbidden(message),
            CommandError::Contended(_) => {
                Problem::new(StatusCode::CONFLICT, "contended", e.to_string())
            }
            CommandError::VersionMismatch { stream, current } => {
                let mut problem = Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "version_mismatch",
                    format!(
                        "If-Match names another version than {stream}'s own ({}): read it again, \
                         then retry with its ETag",
                        current.map_or("none".to_string(), |v| v.to_string())
                    ),
                );
                problem.current_version = current.map(Box::new);
                problem
            }
            CommandError::Unstorable(message) => {
                tracing::warn!(error = %message, "input the log cannot store passed the edge");
                Problem::bad_request(format!("the input cannot be stored: {message}"), vec![])
            }
            CommandError::Unavailable { code, message } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            }
            CommandError::Store(message) => {
                tracing::error!(error = %message, "the event store or database failed");
                Problem::unavailable("the database is unavailable; retry later")
            }
            CommandError::Internal(message) => {
                tracing::error!(error = %message, "command failed");
                Problem::internal()
            }
        }
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Self {
        Problem::from(CommandError::Domain(e))
    }
}

/// An outage (the connection lost, the database shutting down or starting) is a 503 to retry,
/// any other database error a 500: the commands' rule (`CommandError::from`).
impl From<tokio_postgres::Error> for Problem {
    fn from(e: tokio_postgres::Error) -> Self {
        Problem::from(CommandError::from(e))
    }
}

impl From<deadpool_postgres::PoolError> for Problem {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        tracing::error!(error = %e, "no database connection");
        Problem::unavailable("the database is unavailable; retry later")
    }
}

impl From<bosun_eventstore::StoreError> for Problem {
    fn from(e: bosun_eventstore::StoreError) -> Self {
        match e {
            bosun_eventstore::StoreError::Database(e) => Problem::from(e),
            bosun_eventstore::StoreError::Corrupt(message) => {
                tracing::error!(error = %message, "the log holds what this code cannot read");
                Problem::internal()
            }
            other => Problem::from(CommandError::from(other)),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after.map_or(1, std::num::NonZeroU16::get);
        let knows_its_end = self.retry_after.is_some();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        // Kept beside the body, so a compat surface can answer it in its own error shape
        // (`routes::compat::reshape_errors`) without parsing the body back.
        response.extensions_mut().insert(self);
        if status == StatusCode::SERVICE_UNAVAILABLE
            || (status == StatusCode::TOO_MANY_REQUESTS && knows_its_end)
        {
            // Every 503 is a passing condition, and so is a 429 that knows its end: say when
            // to try again.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
        }
        response
    }
}
