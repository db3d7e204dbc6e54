//! `/v1/auth`: logging in, logging out, and who am I.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::Json;
use crate::problem::{Problem, Refusals};
use crate::routes::written;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_domain::identity::Scope;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
    /// Seconds, 1 to ten years (315,360,000).
    #[schema(minimum = 1, maximum = 315_360_000)]
    expires_in: Option<i64>,
}

/// `POST /v1/auth/tokens`: a wrong name and a wrong password get the same 401.
#[utoipa::path(post, path = "/v1/auth/tokens", tag = "auth", request_body = Login, responses((status = 201, description = "a session token (shown once) and its id and expiry", body = Object), (status = 429, description = "too many failed sign-ins of this user or from this address lately (`auth.sign_in_limit`): retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"), Refusals))]
pub async fn login(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<Login>,
) -> Result<Response, Problem> {
    let (token, w) = crate::sign_in::login(
        &state,
        &origin,
        &body.username,
        &body.password,
        body.expires_in,
    )
    .await
    .map_err(|e| e.answer(|| Problem::unauthorized("wrong username or password")))?;
    Ok(written(&state, StatusCode::CREATED, Some(&token), w))
}

/// `DELETE /v1/auth/tokens/current`: the token stops working at once.
#[utoipa::path(delete, path = "/v1/auth/tokens/current", tag = "auth", responses((status = 204, description = "the token no longer works"), Refusals), security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .revoke_current_token(&caller.actor, &origin)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// Who holds the token. For an app token: `user` is `app:<app>` (the name its events record),
/// `app` the app, `admin` false and `teams` empty (it acts with none of its issuer's rights),
/// `scopes` `read` and `write`, its rights only on its app (see `/v1/apps/{app}/tokens`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    user: String,
    /// The app of an app token; `null` for a user's token.
    app: Option<String>,
    admin: bool,
    teams: Vec<String>,
    token_id: uuid::Uuid,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    scopes: Vec<String>,
}

/// `GET /v1/auth/whoami`: a user's token (with the read scope), or an app token.
#[utoipa::path(get, path = "/v1/auth/whoami", tag = "auth", responses((status = 200, description = "OK", body = WhoAmI), Refusals), security(("bearer" = [])))]
pub async fn whoami(caller: Caller) -> Result<axum::Json<WhoAmI>, Problem> {
    let h = caller.holder;
    if let Some(token) = caller.actor.app_token() {
        return Ok(axum::Json(WhoAmI {
            user: bosun_commands::app_actor_name(token.app()),
            app: Some(token.app().to_string()),
            admin: false,
            teams: vec![],
            token_id: h.token_id,
            expires_at: h.expires_at,
            scopes: h.scopes,
        }));
    }
    caller.actor.require(Scope::Read)?;
    Ok(axum::Json(WhoAmI {
        user: h.username,
        app: None,
        admin: h.admin,
        teams: h.teams,
        token_id: h.token_id,
        expires_at: h.expires_at,
        scopes: h.scopes,
    }))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(whoami))
}
