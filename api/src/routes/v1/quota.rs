//! `/v1/users/{username}/quota`: how many apps a user may own (`-1`: unlimited) and owns,
//! counted from the log. The user or an admin reads it; an admin sets it. Without a limit of
//! their own, `quota.apps_per_user` applies. The rules are the commands' and queries'.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::Json;
use crate::problem::{Problem, Refusals};
use crate::routes::v1::users::user_path;
use crate::routes::written;
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::apps::QuotaView;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `GET /v1/users/{username}/quota` (self or admin): `{limit, in_use}`.
#[utoipa::path(get, path = "/v1/users/{username}/quota", tag = "quota",
    params(("username" = String, Path, description = "the user's name")),
    responses((status = 200, description = "the limit that applies (`-1`: unlimited) and the apps the user owns", body = QuotaView), Refusals),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<axum::Json<QuotaView>, Problem> {
    user_path(&username)?;
    Ok(axum::Json(
        state
            .queries
            .quota(&caller.actor, &username, &state.app_rules)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuota {
    /// How many apps the user may own; `-1`: unlimited. A limit under what they own keeps
    /// them from creating more.
    #[schema(minimum = -1)]
    limit: i64,
}

/// `PUT /v1/users/{username}/quota` (admin): 200 with `{limit, in_use}`.
#[utoipa::path(put, path = "/v1/users/{username}/quota", tag = "quota",
    params(("username" = String, Path, description = "the user's name")),
    request_body = SetQuota,
    responses((status = 200, description = "the quota now", body = QuotaView), Refusals),
    security(("bearer" = [])))]
pub async fn set(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
    Json(body): Json<SetQuota>,
) -> Result<Response, Problem> {
    user_path(&username)?;
    let (view, w) = state
        .commands
        .set_quota(
            &caller.actor,
            &origin,
            &username,
            body.limit,
            &state.app_rules,
        )
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&view), w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get, set))
}
