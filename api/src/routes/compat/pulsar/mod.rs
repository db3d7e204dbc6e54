//! `/compat/pulsar`: pulsar-rest-api 0.6.1's wire format (COMPAT.md §1), so its node client and
//! curl scripts work with only the base URL changed. Its jobs are Bosun's jobs: each route is a
//! mapping onto the `/v1` command or query ([`jobs`], [`tasks`]), a job rendered in pulsar's
//! shape by [`job`], the live feed over SockJS in [`feed`]. A caller is a Bosun token, sent as
//! `Bearer` or as pulsar's Basic `<token>:x-oauth-basic` ([`crate::auth::Caller`]); every refusal
//! is answered as pulsar did, `{error}` with the status ([`error`]).

pub mod body;
pub mod feed;
pub mod job;
pub mod jobs;
pub mod tasks;

use crate::problem::Problem;
use crate::routes::{method_not_allowed, not_found};
use crate::startup::AppState;
use axum::extract::OriginalUri;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

/// pulsar's routes, nested at `/compat/pulsar`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(console))
        .route("/jobs", get(jobs::list))
        .route("/job/{id}", get(jobs::get))
        // axum answers HEAD with a GET route's handler: not this one, which kills.
        .route(
            "/job/{id}/kill",
            post(jobs::kill).get(jobs::kill).head(method_not_allowed),
        )
        .route("/job/{id}/restart", post(jobs::restart))
        .route("/{app}/{env}", post(jobs::create))
        .route("/{app}/{env}/tasks", get(tasks::list))
        .nest("/websocket", feed::router())
        // Answered by `error` like every refusal here (the middleware reshapes them).
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
}

/// No route: a 404 naming the whole path.
async fn fallback(OriginalUri(uri): OriginalUri) -> Problem {
    not_found(uri).await
}

/// `GET /compat/pulsar` and `GET /compat/pulsar/` (routed beside the nest, which cannot route
/// the slash): pulsar sent its users to its web page of jobs; here, to Bosun's web console
/// (served at `/compat/pulsar/web` as at `/web`).
pub async fn console() -> Response {
    // 302, as Express's `res.redirect`.
    (
        StatusCode::FOUND,
        [(header::LOCATION, "/compat/pulsar/web")],
    )
        .into_response()
}

/// pulsar's error shape: `{error}` with the status.
pub fn error(problem: &Problem, _request_id: Option<&str>) -> Response {
    super::json(
        super::status(problem),
        &serde_json::json!({ "error": super::message(problem) }),
    )
}
