//! `/compat/<system>`: the old systems' wire formats, so their existing clients keep working.
//!
//! Each system is a folder here (`pulsar/`, `keboola/`, `openpai/`, `tsuru/`, `runnable/`) and one
//! line in [`router`] (and one in [`SURFACES`] for its error shape). A surface is a mapping only:
//! it parses the old request, calls the same command (`bosun_commands::Commands`) or query as
//! `/v1` with the same actor, and renders the old shape and error format. No rule, check or
//! state lives here; an old field with no native counterpart is derived from the native one.
//! `../shared/COMPAT.md` lists what each system's clients send and expect.
//!
//! Errors: every refusal is a [`Problem`] wherever it arises (an extractor, a command, the
//! server's own layers); [`reshape_errors`] answers it in the shape of the surface its path is
//! under, with the same status.

pub mod body;
pub mod form;
pub mod keboola;
pub mod openpai;
pub mod pulsar;
pub mod runnable;
pub mod tsuru;

use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;

/// Every compat surface, mounted under `/compat/<system>`.
pub fn router() -> Router<AppState> {
    Router::new()
        .nest("/compat/pulsar", pulsar::router())
        .route("/compat/pulsar/", axum::routing::get(pulsar::console))
        .nest("/compat/keboola", keboola::router())
        .nest("/compat/openpai", openpai::router())
        .nest("/compat/tsuru", tsuru::router())
        .nest("/compat/runnable", runnable::router())
        .route("/compat/runnable/", axum::routing::get(runnable::root))
}

/// How a surface answers a refusal, given the request's id (`Request-Id`).
type ErrorShape = fn(&Problem, Option<&str>) -> Response;

/// Each surface's prefix and its error shape.
const SURFACES: &[(&str, ErrorShape)] = &[
    ("/compat/pulsar", pulsar::error),
    ("/compat/keboola", keboola::error),
    ("/compat/openpai/api/v1", openpai::coded_error),
    ("/compat/openpai/api/v2", openpai::coded_error),
    ("/compat/openpai", openpai::error),
    ("/compat/tsuru", tsuru::error),
    ("/compat/runnable", runnable::error),
];

/// A refusal under `/compat/<system>`, answered in that system's error shape (the status and
/// `Retry-After` kept). Outermost of the server's layers, so the refusals of the other layers
/// (a NUL in the path, a position not yet reached, a body too large) are reshaped too.
pub async fn reshape_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let surface = SURFACES.iter().find(|(prefix, _)| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    let Some((_, render)) = surface.copied() else {
        return next.run(request).await;
    };
    let request_id = request
        .headers()
        .get(crate::startup::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut response = next.run(request).await;
    let Some(problem) = response.extensions_mut().remove::<Problem>() else {
        return response;
    };
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let mut reshaped = render(&problem, request_id.as_deref());
    if let Some(value) = retry_after {
        reshaped.headers_mut().insert(header::RETRY_AFTER, value);
    }
    reshaped
}

/// A JSON answer with `Content-Type: application/json` exactly (some old clients reject a
/// charset parameter).
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a compat answer");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// The problem's words for a client: its detail, or its title.
pub fn message(problem: &Problem) -> String {
    problem
        .detail
        .clone()
        .unwrap_or_else(|| problem.title.to_string())
}

/// The problem's status.
pub fn status(problem: &Problem) -> StatusCode {
    StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
