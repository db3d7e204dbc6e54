//! `POST /v1/swap`: exchanges two apps' cnames (and, unless `cname_only`, their units'
//! addresses) in one decision, the same `AppsSwapped` written to both apps' streams in one
//! atomic append. The rules are the commands' (`bosun_commands::apps`).

use crate::auth::{Caller, RequestOrigin};
use crate::extract::Json;
use crate::problem::{Problem, Refusals};
use crate::routes::written;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::apps::AppView;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Swap {
    app1: String,
    app2: String,
    /// Exchange only the cnames, not the units' addresses (default `false`).
    #[serde(default)]
    cname_only: bool,
}

/// `POST /v1/swap`: 200 with both apps as they are now, `app1` first; 409 `platform_mismatch`
/// for apps on different platforms, 409 `restart_running` while either restarts.
#[utoipa::path(post, path = "/v1/swap", tag = "apps", request_body = Swap,
    responses((status = 200, description = "swapped: both apps, `app1` first", body = Vec<AppView>), Refusals),
    security(("bearer" = [])))]
pub async fn swap(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<Swap>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .swap_apps(
            &caller.actor,
            &origin,
            &body.app1,
            &body.app2,
            body.cname_only,
        )
        .await?;
    // The write has settled the read models: both apps read as swapped.
    let apps = vec![
        state.queries.app(&caller.actor, &body.app1).await?,
        state.queries.app(&caller.actor, &body.app2).await?,
    ];
    Ok(written(&state, StatusCode::OK, Some(&apps), w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(swap))
}
