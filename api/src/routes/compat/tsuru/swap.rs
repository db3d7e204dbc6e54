//! tsuru's swap: 0.3.9's `PUT /swap?app1=&app2=` and 1.x's `POST /swap` (form `app1`, `app2`,
//! `force`, `cnameOnly`), each `POST /v1/swap` with the same actor → 200 with no body. `force`
//! is taken and changes nothing: tsuru skipped its platform and unit count checks with it,
//! Bosun's rule (the same platform, no restart running) has no override, so a mismatch is
//! refused (409) either way.

use super::body::Fields;
use super::{written, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::Router;

/// The routes of this file (bare paths).
pub fn router() -> Router<AppState> {
    Router::new().route("/swap", put(swap).post(swap))
}

/// `PUT /swap` (0.3.9, a query) and `POST /swap` (1.x, a form): see the module.
pub async fn swap(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let app1 = fields.required("app1")?;
    let app2 = fields.required("app2")?;
    fields.flag("force", false)?;
    let cname_only = fields.flag("cnameOnly", false)?;
    let w = state
        .commands
        .swap_apps(&caller.actor, &origin, &app1, &app2, cname_only)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}
