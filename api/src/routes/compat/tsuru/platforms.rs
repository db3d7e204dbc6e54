//! tsuru's platforms: `GET /platforms` (any reader; 0.3.9's `[{Name}]` and 1.x's `[{Name,
//! Disabled}]` are the same list), and 1.x's admin routes `POST /platforms` (form `name`),
//! `PUT /platforms/{name}` (form `disabled`), `DELETE /platforms/{name}`; each the
//! `/v1/platforms` query or command with the same actor. A platform here is a name only: a
//! `dockerfile` or any other build argument tsuru took is not used (Bosun builds no image).

use super::body::Fields;
use super::{every_page, json, messages, written, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde_json::{json, Value};

/// The routes of this file (bare paths).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platforms", get(list).post(add))
        .route("/platforms/{name}", put(update).delete(remove))
}

/// `GET /platforms`: every platform, `[{Name, Disabled}]` (200, `[]` for none: 0.3.9's clients
/// decode the body whatever the status, 1.x's take `[]` as none).
pub async fn list(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
) -> Result<Response, Problem> {
    let shown: Vec<Value> = every_page(|page| state.queries.platforms(&caller.actor, page))
        .await?
        .iter()
        .map(|p| json!({"Name": p.name, "Disabled": p.disabled}))
        .collect();
    Ok(json(StatusCode::OK, &shown))
}

/// `POST /platforms` (admin), `name` → 200, tsuru's message.
pub async fn add(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let name = fields.required("name")?;
    let (_, w) = state
        .commands
        .add_platform(&caller.actor, &origin, &name)
        .await?;
    Ok(written(
        &state,
        messages(
            StatusCode::OK,
            ["Platform successfully added!\n".to_string()],
        ),
        w,
    ))
}

/// `PUT /platforms/{name}` (admin), `disabled=true|false` (required: it is all a platform has
/// to change) → 200, tsuru's message.
pub async fn update(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(name): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    if fields.non_empty("disabled")?.is_none() {
        return Err(Problem::invalid_field(
            "disabled",
            "is required: true or false (a platform has nothing else to change)",
        ));
    }
    let disabled = fields.flag("disabled", false)?;
    let (_, w) = state
        .commands
        .update_platform(&caller.actor, &origin, &name, disabled)
        .await?;
    Ok(written(
        &state,
        messages(
            StatusCode::OK,
            ["Platform successfully updated!\n".to_string()],
        ),
        w,
    ))
}

/// `DELETE /platforms/{name}` (admin) → 200; 409 while an app runs on it.
pub async fn remove(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .remove_platform(&caller.actor, &origin, &name)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}
