//! The web console's server side: its page at `/`, `/web` (pulsar's job URLs are
//! `/web#job/<id>`) and `/compat/pulsar/web`; its embedded files at `/console/assets/{file}`
//! ([`assets`]); `/console/settings` (what sign-in the page offers); the session routes and the
//! cookie middleware ([`session`]). Every page and file answers with a strict
//! Content-Security-Policy (no inline script or style, nothing from another origin) and the
//! other headers that keep it out of frames and sniffing.
//!
//! The page itself talks to the native API (`/v1`, `/v1/events/live`) with the session cookie.

pub mod assets;
pub mod session;

use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// What the console's page may load and reach: its own origin only (and its WebSocket).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/web", get(index))
        .route("/compat/pulsar/web", get(index))
        .route("/console/assets/{file}", get(asset))
        .route("/console/settings", get(settings))
        .route(
            session::SESSION_PATH,
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
}

/// The headers of every page and file of the console.
fn console_headers() -> [(HeaderName, HeaderValue); 6] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

fn serve(asset: &'static assets::Asset) -> Response {
    (
        console_headers(),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.bytes,
    )
        .into_response()
}

/// `GET /`, `/web`, `/compat/pulsar/web`: the console's page (it routes by the URL's `#…`).
pub async fn index() -> Response {
    serve(assets::index())
}

/// `GET /console/assets/{file}`: an embedded file; 404 for a name the console has not.
pub async fn asset(Path(file): Path<String>) -> Response {
    match assets::asset(&file) {
        Some(asset) => serve(asset),
        None => Problem::not_found(format!("the console has no file {file}")).into_response(),
    }
}

/// `GET /console/settings` (no auth): what the sign-in page offers (`github`: whether
/// `auth.github` is configured, so `/auth/github/login` works).
pub async fn settings(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "github": state.github.is_some() }))
}
