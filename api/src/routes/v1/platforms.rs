//! `/v1/platforms`: what apps run on. Any holder of the read scope lists them; an admin adds,
//! disables and removes them (not one an app still runs on: 409 `platform_in_use`). The rules
//! are the commands' (`bosun_commands::apps`).

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::{listed, written, PageQuery};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::apps::PlatformView;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPlatform {
    /// `^[a-z][a-z0-9-]{0,39}$`.
    #[schema(pattern = "^[a-z][a-z0-9-]{0,39}$")]
    name: String,
}

/// `POST /v1/platforms` (admin): 201 with the platform, enabled; 409 `platform_exists`.
#[utoipa::path(post, path = "/v1/platforms", tag = "platforms", request_body = AddPlatform,
    responses((status = 201, description = "added, enabled", body = PlatformView), Refusals),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<AddPlatform>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .add_platform(&caller.actor, &origin, &body.name)
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&view), w))
}

/// `GET /v1/platforms?limit=&offset=`: by name, with `X-Total-Count`.
#[utoipa::path(get, path = "/v1/platforms", tag = "platforms", params(PageQuery),
    responses((status = 200, description = "the platforms by name, with `X-Total-Count`", body = Vec<PlatformView>), Refusals),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    let (platforms, total) = state
        .queries
        .platforms(&caller.actor, query.page()?)
        .await?;
    Ok(listed(&platforms, total))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlatform {
    /// A disabled platform takes no new app, nor an app moved to it; its apps keep running.
    disabled: bool,
}

/// `PATCH /v1/platforms/{platform}` (admin): 200 with the platform.
#[utoipa::path(patch, path = "/v1/platforms/{platform}", tag = "platforms",
    params(("platform" = String, Path, description = "the platform's name")),
    request_body = UpdatePlatform,
    responses((status = 200, description = "OK", body = PlatformView), Refusals),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(platform): Path<String>,
    Json(body): Json<UpdatePlatform>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .update_platform(&caller.actor, &origin, &platform, body.disabled)
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&view), w))
}

/// `DELETE /v1/platforms/{platform}` (admin): 204; 409 `platform_in_use` while an app runs on
/// it.
#[utoipa::path(delete, path = "/v1/platforms/{platform}", tag = "platforms",
    params(("platform" = String, Path, description = "the platform's name")),
    responses((status = 204, description = "removed"), Refusals),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(platform): Path<String>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .remove_platform(&caller.actor, &origin, &platform)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(update, remove))
}
