//! `/v1/apps/{app}/tokens`: an app's tokens, each acting on that app only (its jobs and their
//! output, its env, its restarts). A member of one of the app's teams or an admin issues, lists
//! and revokes them; the secret is shown once, in the answer that issues it. The handlers are
//! named `*_token` so their operation ids (`apps_<handler>`) differ from the apps routes'.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{OptionalJson, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::PageQuery;
use crate::routes::{listed, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::identity::NewAppToken;
use bosun_projections::read_models::identity::TokenView;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppToken {
    #[serde(default)]
    description: String,
    /// Seconds; none: until revoked or the app is removed.
    expires_in: Option<i64>,
}

/// `POST /v1/apps/{app}/tokens`: 201 `{token, token_id, app, description, expires_at,
/// created_at}`, the token shown this once.
#[utoipa::path(post, path = "/v1/apps/{app}/tokens", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    request_body(content = Option<CreateAppToken>, description = "optional"),
    responses((status = 201, description = "the token (shown once), its id, app and expiry", body = Object), Refusals),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    OptionalJson(body): OptionalJson<CreateAppToken>,
) -> Result<Response, Problem> {
    let (token, w) = state
        .commands
        .issue_app_token(
            &caller.actor,
            &origin,
            &app,
            NewAppToken {
                description: body.description,
                expires_in: body.expires_in,
            },
        )
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&token), w))
}

/// `GET /v1/apps/{app}/tokens?limit=&offset=`: newest first, with `X-Total-Count`; no secrets.
#[utoipa::path(get, path = "/v1/apps/{app}/tokens", tag = "apps",
    params(("app" = String, Path, description = "the app's name"), PageQuery),
    responses((status = 200, description = "newest first, with `X-Total-Count`", body = Vec<TokenView>), Refusals),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    let (tokens, total) = state
        .queries
        .app_tokens(&caller.actor, &app, query.page()?)
        .await?;
    Ok(listed(&tokens, total))
}

/// `DELETE /v1/apps/{app}/tokens/{token_id}`: 204; the token stops working at once.
#[utoipa::path(delete, path = "/v1/apps/{app}/tokens/{token_id}", tag = "apps",
    params(("app" = String, Path, description = "the app's name"), ("token_id" = Uuid, Path, description = "the token's id")),
    responses((status = 204, description = "revoked"), Refusals),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((app, token_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let token_id = Uuid::parse_str(&token_id)
        .map_err(|_| Problem::not_found(format!("app {app} has no token {token_id}")))?;
    let w = state
        .commands
        .revoke_app_token(&caller.actor, &origin, &app, token_id)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}
