//! tsuru 0.3.9's healers: `GET /healers` → `{name: "/healers/<name>"}` (any reader) and
//! `GET /healers/{healer}`, which runs it (admin): `GET|POST /v1/healers…` with the same actor.
//! Bosun's healers are the configured named catalog tasks; running one submits its job, and the
//! answer (200 with no body, as tsuru's) does not wait for it: the job is in `/v1/jobs`.
//! tsuru 1.x's node healing (`/healing…`) configures docker nodes, which Bosun has not: not
//! served.

use super::{json, written, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bosun_commands::jobs::Submitted;
use serde_json::{Map, Value};

/// The routes of this file (bare paths).
pub fn router() -> Router<AppState> {
    Router::new().route("/healers", get(list)).route(
        "/healers/{healer}",
        // axum answers HEAD with a GET route's handler: not this one, which runs the healer.
        get(run).head(crate::routes::method_not_allowed),
    )
}

/// `GET /healers`: see the module.
pub async fn list(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
) -> Result<Response, Problem> {
    let healers: Map<String, Value> = state
        .healers
        .list(&caller.actor)?
        .into_iter()
        .map(|h| {
            let path = format!("/healers/{}", h.name);
            (h.name, Value::String(path))
        })
        .collect();
    Ok(json(StatusCode::OK, &healers))
}

/// `GET /healers/{healer}` (admin): submits the healer's job → 200 with no body.
pub async fn run(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(healer): Path<String>,
) -> Result<Response, Problem> {
    let submitted = state
        .commands
        .run_healer(
            &caller.actor,
            &origin,
            &state.catalog,
            &state.healers,
            &healer,
            None,
        )
        .await?;
    let w = match submitted {
        Submitted::Created(_, w) => w,
        Submitted::Existing(_) => bosun_commands::Written::default(),
    };
    Ok(written(&state, StatusCode::OK.into_response(), w))
}
