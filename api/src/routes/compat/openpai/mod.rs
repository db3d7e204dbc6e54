//! `/compat/openpai`: the OpenPAI REST server's wire format (COMPAT.md §2, seed `001`), in the
//! three generations its clients use, so they run with only the base URL changed (the
//! `rest_server_uri` of `@microsoft/openpai-js-sdk` is `http://<host>/compat/openpai`):
//!
//! - the seed (v0.1): `/api/auth` (login; users, admin only) and `/api/job[/:jobName]`, errors
//!   `{error, message}` ([`error`]);
//! - v1: `/api/v1/token`, `/api/v1/user…`, `/api/v1/jobs…` and the namespaced
//!   `/api/v1/user/{user}/jobs…`, errors `{code, message}` ([`coded_error`]);
//! - v2: `/api/v2/authn…`, `/api/v2/jobs…` (YAML protocol v2), `/api/v2/users…`, errors
//!   `{code, message}`.
//!
//! Owns: the routes ([`router`]), the caller ([`PaiCaller`]), the error shapes and OpenPAI's
//! error codes; bodies ([`body`], forms read by `compat::form`), login ([`auth`]), users
//! ([`users`]), job configs ([`config`]), the job shapes ([`render`]) and the job routes
//! ([`jobs`]). Does not own any rule: each route is the `/v1` command or query with the same
//! actor and origin.
//!
//! Mapping decisions:
//! - A token is a Bosun token (login answers one), sent as `Bearer <token>`, or OpenPAI's
//!   application form `Basic base64(<user>:<token>)` (the token must be that user's), or
//!   pulsar's `Basic base64(<token>:x-oauth-basic)` (read by `crate::auth`, as `/v1`'s token;
//!   the surface adds only that a named user must be the token's holder). OpenPAI's reads
//!   without a token (v1's job list and job, the seed's `GET /api/job…`) need one here: Bosun
//!   has no anonymous reader. The SDK's v1 client sends none for those; as a workaround for
//!   such a client only, its base URL may carry the token, `http://<user>:<token>@host/…`,
//!   which `request` sends as Basic. URLs end up in shell histories, proxy and server logs:
//!   prefer a client that sends the header, and a short-lived token where one cannot.
//! - A job is a native *role job* (`POST /v1/jobs` with `roles`): its name is the OpenPAI job
//!   name, unique per user; OpenPAI's framework name `user~job` is that user's job of that name.
//!   States per COMPAT "Decisions"; times are epoch milliseconds.
//! - A wrong name or password at login is one answer (Bosun does not tell which): the seed's 401
//!   `AuthenticationFailed`, v1/v2's 400 `IncorrectPasswordError`.
//! - Never a 500 for bad input, even where OpenPAI answered one (the seed's validation and
//!   not-found errors were 500s): each refusal has its own status.

pub mod auth;
pub mod body;
pub mod config;
pub mod jobs;
pub mod render;
pub mod users;

use crate::auth::{authenticate, token_and_user_from_headers, Caller};
use crate::problem::Problem;
use crate::routes::method_not_allowed;
use crate::startup::AppState;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use axum::Router;
use serde::Serialize;

/// The surface's routes, nested at `/compat/openpai`.
pub fn router() -> Router<AppState> {
    let router = Router::new()
        // The seed (v0.1).
        .route(
            "/api/auth",
            post(auth::seed_login)
                .put(users::seed_update)
                .delete(users::seed_remove),
        )
        .route("/api/job", any(jobs::seed_list))
        .route(
            "/api/job/{name}",
            get(jobs::seed_get)
                .put(jobs::seed_put)
                .delete(jobs::seed_delete),
        )
        // v1.
        .route("/api/v1", get(auth::cluster_info))
        .route("/api/v1/", get(auth::cluster_info))
        .route("/api/v1/token", post(auth::v1_login))
        .route("/api/v1/authn/info", get(auth::authn_info))
        .route("/api/v1/authn/basic/login", post(auth::v2_login))
        .route("/api/v1/authn/basic/logout", delete(auth::logout))
        .route(
            "/api/v1/user",
            get(users::v1_list)
                .put(users::v1_update)
                .delete(users::v1_remove),
        )
        .route("/api/v1/user/{username}", get(users::v2_get))
        .route("/api/v1/user/{username}/", get(users::v2_get))
        .route(
            "/api/v1/user/{username}/jobs",
            get(jobs::v1_user_list).post(jobs::v1_user_submit),
        )
        .route(
            "/api/v1/user/{username}/jobs/{name}",
            get(jobs::v1_user_get)
                .put(jobs::v1_user_put)
                .delete(jobs::v1_user_delete),
        )
        .route(
            "/api/v1/user/{username}/jobs/{name}/executionType",
            put(jobs::v1_user_execute),
        )
        .route(
            "/api/v1/user/{username}/jobs/{name}/config",
            get(jobs::v1_user_config),
        )
        .route(
            "/api/v1/user/{username}/jobs/{name}/ssh",
            get(jobs::v1_user_ssh),
        )
        .route("/api/v1/jobs", get(jobs::v1_list).post(jobs::v1_submit))
        .route(
            "/api/v1/jobs/{framework}",
            get(jobs::v1_get).put(jobs::v1_put).delete(jobs::v1_delete),
        )
        .route(
            "/api/v1/jobs/{framework}/executionType",
            put(jobs::v1_execute),
        )
        .route("/api/v1/jobs/{framework}/config", get(jobs::v1_config))
        .route("/api/v1/jobs/{framework}/ssh", get(jobs::v1_ssh))
        // The SDK's v1 `getConfig` asks this (a typo of `/user/{user}/jobs/{job}/config`).
        .route(
            "/api/v1/jobs/{framework}/jobs/{name}/config",
            get(jobs::v1_user_config),
        )
        // v2.
        .route("/api/v2", get(auth::v2_index))
        .route("/api/v2/", get(auth::v2_index))
        .route("/api/v2/info", get(auth::cluster_info))
        .route("/api/v2/authn/info", get(auth::authn_info))
        .route("/api/v2/authn/basic/login", post(auth::v2_login))
        .route("/api/v2/authn/basic/logout", delete(auth::logout))
        .route("/api/v2/jobs", get(jobs::v2_list).post(jobs::v2_submit))
        .route("/api/v2/jobs/{framework}", get(jobs::v2_get))
        .route(
            "/api/v2/jobs/{framework}/attempts/{attempt}",
            get(jobs::v2_get_attempt),
        )
        .route(
            "/api/v2/jobs/{framework}/executionType",
            put(jobs::v2_execute),
        )
        .route("/api/v2/jobs/{framework}/config", get(jobs::v2_config))
        .route("/api/v2/jobs/{framework}/ssh", get(jobs::v2_ssh));
    let router = users::v2_routes(router, "/api/v2/users");
    users::v2_routes(router, "/api/v2/user")
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
}

/// No route: OpenPAI's `NoApiError`, a 404 naming the whole path.
async fn fallback(OriginalUri(uri): OriginalUri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no_api",
        format!("API {} is not found.", uri.path()),
    )
}

/// The caller, by its Bosun token: `Authorization: Bearer <token>`, or `Basic` with
/// `<user>:<token>` (OpenPAI's application tokens: the token must be `<user>`'s) or
/// `<token>:x-oauth-basic`. 401 without one (OpenPAI's "Guest is not allowed to do this
/// operation.") or with a bad one.
pub struct PaiCaller(pub Caller);

impl FromRequestParts<AppState> for PaiCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Some((token, user)) = token_and_user_from_headers(&parts.headers)? else {
            return Err(Problem::unauthorized(
                "Guest is not allowed to do this operation: send Authorization: Bearer <token>",
            ));
        };
        let caller = authenticate(state, &token).await?;
        if let Some(user) = user {
            if caller.holder.username != user {
                return Err(Problem::unauthorized("Your token is invalid."));
            }
        }
        Ok(PaiCaller(caller))
    }
}

/// OpenPAI v1 and v2's code for a refusal (its `utils/error.js` codes). The surface's own
/// refusals carry codes that say which resource was missing (`no_job`, `no_user`, …).
fn pai_code(problem: &Problem) -> &'static str {
    match problem.code {
        "no_job" => "NoJobError",
        "no_job_config" => "NoJobConfigError",
        "no_ssh_info" => "NoJobSshInfoError",
        "no_user" => "NoUserError",
        "no_api" | "not_found" | "method_not_allowed" => "NoApiError",
        "incorrect_password" => "IncorrectPasswordError",
        "invalid_protocol" => "InvalidProtocolError",
        "job_name_taken" => "ConflictJobError",
        "user_exists" | "email_taken" | "user_conflict" => "ConflictUserError",
        "last_admin" => "RemoveAdminError",
        "job_finished" => "ReadOnlyJobError",
        _ => match problem.status {
            400 | 413 | 415 => "InvalidParametersError",
            401 => "UnauthorizedUserError",
            403 => "ForbiddenUserError",
            404 => "NoApiError",
            409 => "ConflictJobError",
            _ => "UnknownError",
        },
    }
}

/// The seed's `error` name for a refusal (its controllers' names; a status of its own for
/// each, where the seed answered 500).
fn seed_code(problem: &Problem) -> &'static str {
    match problem.code {
        "no_job" => "JOB_NOT_FOUND",
        "job_name_taken" => "DuplicateJobSubmission",
        "login_failed" => "AuthenticationFailed",
        "user_exists" | "email_taken" | "last_admin" | "user_conflict" => "UpdateFailed",
        "no_api" | "not_found" => "NotFound",
        _ => match problem.status {
            400 | 413 | 415 => "ParameterValidationError",
            401 => "UnauthorizedError",
            403 => "NotAuthorized",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            _ => "InternalServerError",
        },
    }
}

/// The seed's error shape, under `/compat/openpai` outside `/api/v1` and `/api/v2`:
/// `{error, message}` with the status.
pub fn error(problem: &Problem, _request_id: Option<&str>) -> Response {
    super::json(
        super::status(problem),
        &serde_json::json!({ "error": seed_code(problem), "message": super::message(problem) }),
    )
}

/// v1 and v2's error shape (`/compat/openpai/api/v1…`, `…/api/v2…`): `{code, message}` with
/// the status, the code one of OpenPAI's (the SDK maps its errors by `code`).
pub fn coded_error(problem: &Problem, _request_id: Option<&str>) -> Response {
    super::json(
        super::status(problem),
        &serde_json::json!({ "code": pai_code(problem), "message": super::message(problem) }),
    )
}

/// A JSON answer (`Content-Type: application/json` exactly).
fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    super::json(status, body)
}

/// `{message}` with `status`, as OpenPAI's writes answered.
fn message(status: StatusCode, message: impl Into<String>) -> Response {
    json(status, &serde_json::json!({ "message": message.into() }))
}

/// A text answer of `content_type`.
fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_get_openpais_codes() {
        let of = |status: StatusCode, code: &'static str| pai_code(&Problem::new(status, code, ""));
        assert_eq!(of(StatusCode::NOT_FOUND, "no_job"), "NoJobError");
        assert_eq!(
            of(StatusCode::CONFLICT, "job_name_taken"),
            "ConflictJobError"
        );
        assert_eq!(of(StatusCode::CONFLICT, "user_exists"), "ConflictUserError");
        assert_eq!(
            of(StatusCode::CONFLICT, "user_conflict"),
            "ConflictUserError"
        );
        assert_eq!(
            of(StatusCode::UNAUTHORIZED, "unauthorized"),
            "UnauthorizedUserError"
        );
        assert_eq!(of(StatusCode::FORBIDDEN, "forbidden"), "ForbiddenUserError");
        assert_eq!(
            of(StatusCode::BAD_REQUEST, "invalid_input"),
            "InvalidParametersError"
        );
        assert_eq!(
            of(StatusCode::BAD_REQUEST, "commands_not_allowed"),
            "InvalidParametersError"
        );
        assert_eq!(of(StatusCode::NOT_FOUND, "no_user"), "NoUserError");
        assert_eq!(
            of(StatusCode::BAD_REQUEST, "incorrect_password"),
            "IncorrectPasswordError"
        );
        assert_eq!(
            of(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            "UnknownError"
        );
        let seed =
            |status: StatusCode, code: &'static str| seed_code(&Problem::new(status, code, ""));
        assert_eq!(seed(StatusCode::NOT_FOUND, "no_job"), "JOB_NOT_FOUND");
        assert_eq!(
            seed(StatusCode::CONFLICT, "job_name_taken"),
            "DuplicateJobSubmission"
        );
        assert_eq!(
            seed(StatusCode::UNAUTHORIZED, "login_failed"),
            "AuthenticationFailed"
        );
        assert_eq!(
            seed(StatusCode::BAD_REQUEST, "invalid_input"),
            "ParameterValidationError"
        );
    }
}
