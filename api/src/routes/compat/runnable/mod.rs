//! `/compat/runnable`: Runnable api-server 0.2.0's wire format (COMPAT.md §3, seed `002`), so
//! its clients work with only the base URL changed. Its users are Bosun's users ([`users`]:
//! anonymous ones made by `POST /users`, registered in the same call or later, logging in by
//! name or email); its *containers* under `/users/me/runnables` and its *images* under
//! `/runnables` are Bosun's runnables ([`containers`], [`images`]), their files Bosun's
//! runnables' files ([`files`]); the shapes are [`render`]'s, the bodies [`body`]'s. Each call
//! is the `/v1` command or query, with the same actor and the same `runnables.*` rules.
//!
//! Mapping decisions:
//! - Auth: the `runnable-token` header (the native `Authorization: Bearer` works too). None is
//!   401 `access token required`; one that is unknown, expired or revoked is 401 `must provide
//!   a valid access token` ([`RunnableCaller`]). `POST /users`, `POST /token` and `GET /` (the
//!   base, with or without a slash after it) need none; `GET /runnables?map=true`, which
//!   Runnable answered without one, needs one here (no native read of runnables is for
//!   nobody).
//! - Ids are the native ids as strings: a runnable's uuid, a user's name (`/users/{name}`,
//!   `me` for the caller). A file has no id natively (its path is what it is): its `_id` is its
//!   path in the tree, base64url without padding, so it fits one path segment; moving it
//!   changes its `_id`.
//! - A container is a runnable as its owner reads it; an image is a runnable that has one
//!   (`/runnables` lists and reads only those). Saving (`POST /runnables?from=<id>`) makes or
//!   overwrites that runnable's own image, whose id is the runnable's: so `PUT
//!   /runnables/{id}?from=` takes only `from` = `id` (another is a 400 saying so), and
//!   `DELETE /runnables/{id}` removes the runnable (Bosun keeps no image apart from its
//!   runnable).
//! - `running` is `true` while the runnable is `starting` or `running` (Runnable answered a
//!   start once its process was up; here a runner on some node starts it), `state` is the
//!   native state. `PUT …/runnables/{id}` `{running, name, description}` renames it and starts
//!   or stops it in one native change (one append, or nothing), and answers 200 with it (a
//!   start or stop is recorded; the runner does it). `start_cmd` there, if given, is the
//!   native start command.
//! - `/users/{user}/runnables/{id}…` is `{user}`'s runnable only: another's is a 403
//!   `permission denied` (an image of theirs too, as Runnable's `getContainer` said).
//! - Lists Runnable gave whole (a user's containers, `GET /runnables?map=true`) are the newest
//!   [`LIST_MAX`] here (200, Runnable's largest page).
//! - No native counterpart, so derived or constant: `description` (`""`; one sent is not kept),
//!   `tags` (`[]`), `votes` and the counters (`0`), a file's `default` (`false`; asking for
//!   `true` is a 400), `last_write` (the native `last_access`), `permission_level` (`0`
//!   anonymous, `1` registered, `5` admin).
//! - Files are the native tree: `POST …/files` JSON `{name, path, content}` writes
//!   `<path>/<name>` (201 new, 200 replaced). A folder is the paths of the files in it, so
//!   `{dir: true, name, path}` answers the folder if it exists and is a 400 otherwise (no empty
//!   folder can be kept). Bodies are JSON: multipart uploads are a 400 (not served). `PUT`/`PATCH
//!   …/files/{fileid}` `{content, path, name}` changes content and place in one change.
//! - Registering (`PUT /users/me`, or `POST /users` with `email`) ends the anonymous token, as
//!   natively: the answer carries the new one as `access_token`.
//! - Logging in (`POST /token`): no such user and a wrong password are one 403 `invalid
//!   username or password`, as `/v1` answers them alike (0.2.0 told them apart, 404 and 403:
//!   a deviation decided for security, [`users`]).
//! - Errors are Runnable's `{message}` with the status ([`error`]; a 401 always in Runnable's
//!   words); an unknown route or method is 404 `{message: "resource not found"}`.

pub mod body;
pub mod containers;
pub mod files;
pub mod images;
pub mod render;
pub mod users;

use crate::auth::{authenticate, token_from_headers, Caller};
use crate::problem::Problem;
use crate::routes::POSITION;
use crate::startup::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bosun_commands::Written;
use serde::Serialize;
use uuid::Uuid;

/// The most runnables one list answers (Runnable's `maxPageLimit`): a page of images at most,
/// and the lists Runnable gave whole (a user's containers, `?map=true`), the newest first.
const LIST_MAX: i64 = 200;

/// The header Runnable's clients carry their access token in.
pub const TOKEN_HEADER: HeaderName = HeaderName::from_static("runnable-token");

/// Runnable's routes, nested at `/compat/runnable`.
pub fn router() -> Router<AppState> {
    use containers as c;
    Router::new()
        .route("/", get(root))
        .route("/token", post(users::token))
        .route("/users", post(users::create))
        .route(
            "/users/{user}",
            get(users::get).put(users::register).delete(users::remove),
        )
        .route("/users/{user}/runnables", get(c::list).post(c::fork))
        .route(
            "/users/{user}/runnables/{id}",
            get(c::get).put(c::update).delete(c::remove),
        )
        .route("/users/{user}/runnables/{id}/sync", post(c::sync))
        .route(
            "/users/{user}/runnables/{id}/files",
            get(files::list).post(files::create),
        )
        .route(
            "/users/{user}/runnables/{id}/files/{file}",
            get(files::get)
                .put(files::update)
                .patch(files::update)
                .delete(files::remove),
        )
        .route("/runnables", get(images::list).post(images::save))
        .route(
            "/runnables/{id}",
            get(images::get)
                .put(images::overwrite)
                .delete(images::remove),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
}

/// `GET /`: Runnable's greeting (at `/compat/runnable` and `/compat/runnable/`).
pub async fn root() -> Response {
    super::json(
        StatusCode::OK,
        &serde_json::json!({ "message": "runnable api" }),
    )
}

/// No route, or not this method (Express answered both from its last `app.all '*'`).
async fn not_found() -> Problem {
    Problem::not_found("resource not found")
}

/// The message with no token at all, Runnable's words.
const TOKEN_REQUIRED: &str = "access token required";
/// The message for a token that does not work (unknown, expired, revoked, or no longer its
/// user's), Runnable's words.
const TOKEN_INVALID: &str = "must provide a valid access token";

/// Runnable's error shape: `{message}` with the status (`res.json err.code, message: err.msg`).
/// A 401 is in Runnable's words whatever refused the token ([`RunnableCaller`], or a command
/// finding it no longer works: the native words name `Authorization: Bearer`).
pub fn error(problem: &Problem, _request_id: Option<&str>) -> Response {
    super::json(
        super::status(problem),
        &serde_json::json!({ "message": message(problem) }),
    )
}

/// The message of Runnable's refusal for `problem`: its own, but for a 401 not in Runnable's
/// words.
fn message(problem: &Problem) -> String {
    match super::message(problem) {
        message if super::status(problem) != StatusCode::UNAUTHORIZED => message,
        message if message == TOKEN_REQUIRED => message,
        _ => TOKEN_INVALID.to_string(),
    }
}

/// A refusal whose message is Runnable's words for it, with the native status and code.
fn refusal(status: StatusCode, code: &'static str, message: &str) -> Problem {
    Problem::new(status, code, message)
}

/// A 400 with Runnable's message, naming `field`.
fn missing(field: &str, message: &str) -> Problem {
    Problem::bad_request(
        message,
        vec![crate::problem::FieldError {
            field: field.to_string(),
            message: message.to_string(),
        }],
    )
}

/// The caller, by `runnable-token` (or the native `Authorization: Bearer`): 401 `access token
/// required` without one, 401 `must provide a valid access token` with one that is unknown,
/// expired or revoked (or malformed).
pub struct RunnableCaller(pub Caller);

impl FromRequestParts<AppState> for RunnableCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let invalid = || Problem::unauthorized(TOKEN_INVALID);
        let token = match parts.headers.get(&TOKEN_HEADER) {
            Some(value) => {
                let token = value.to_str().map_err(|_| invalid())?.trim();
                (!token.is_empty()).then(|| token.to_string())
            }
            None => token_from_headers(&parts.headers).map_err(|_| invalid())?,
        };
        let token = token.ok_or_else(|| Problem::unauthorized(TOKEN_REQUIRED))?;
        match authenticate(state, &token).await {
            Ok(caller) => Ok(RunnableCaller(caller)),
            Err(problem) if problem.status == StatusCode::UNAUTHORIZED.as_u16() => Err(invalid()),
            Err(problem) => Err(problem),
        }
    }
}

/// A runnable's id from the path: anything but a uuid names no runnable (404, as natively).
fn runnable_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| Problem::not_found(format!("no runnable {id}")))
}

/// A write's answer: `status`, the JSON body, and `Bosun-Position` as `/v1` gives it.
fn written<T: Serialize>(
    state: &AppState,
    status: StatusCode,
    body: &T,
    written: Written,
) -> Response {
    let position = written
        .position
        .unwrap_or_else(|| *bosun_eventstore::EventStore::head_changes(&state.store).borrow());
    let mut response = super::json(status, body);
    response
        .headers_mut()
        .insert(POSITION, HeaderValue::from(position));
    response
}

/// `{message}` with 200, Runnable's answer to a deletion, with `Bosun-Position`.
fn said(state: &AppState, message: &str, w: Written) -> Response {
    written(
        state,
        StatusCode::OK,
        &serde_json::json!({ "message": message }),
        w,
    )
}

/// A read's answer: 200 and the JSON body.
fn read<T: Serialize>(body: &T) -> Response {
    super::json(StatusCode::OK, body)
}

/// An answer that wrote nothing: `status` and the JSON body.
fn read_with<T: Serialize>(status: StatusCode, body: &T) -> Response {
    super::json(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_commands::CommandError;

    #[test]
    fn a_token_refused_inside_a_command_is_in_runnables_words() {
        let refused = Problem::from(CommandError::Unauthenticated);
        assert_eq!(refused.status, 401);
        assert_eq!(message(&refused), TOKEN_INVALID);
        assert_eq!(
            message(&Problem::unauthorized(TOKEN_REQUIRED)),
            TOKEN_REQUIRED
        );
        // Other refusals keep their own words.
        assert_eq!(
            message(&Problem::forbidden("permission denied")),
            "permission denied"
        );
    }
}
