//! `/v1/tokens`: a user's long-lived API tokens. Lists never show a secret, nor its digest.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::PageQuery;
use crate::routes::{listed, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::identity::NewApiToken;
use bosun_domain::identity::Scopes;
use bosun_projections::read_models::identity::TokenView;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[serde(default)]
    description: String,
    /// Seconds, 1 to ten years (315,360,000); without it, until revoked.
    #[schema(minimum = 1, maximum = 315_360_000)]
    expires_in: Option<i64>,
    #[schema(min_items = 1, value_type = Option<Vec<ScopeName>>)]
    scopes: Option<Vec<String>>,
}

/// A token's scope as the document names it (`bosun_domain::identity::Scope` reads it).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ScopeName {
    Read,
    Write,
    Admin,
}

/// `POST /v1/tokens`.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken, responses((status = 201, description = "the token (shown once), its id, scopes and expiry", body = Object), Refusals), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<CreateToken>,
) -> Result<Response, Problem> {
    let scopes = body.scopes.as_deref().map(Scopes::parse).transpose()?;
    let (token, w) = state
        .commands
        .issue_api_token(
            &caller.actor,
            &origin,
            NewApiToken {
                description: body.description,
                expires_in: body.expires_in,
                scopes,
            },
        )
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&token), w))
}

/// `GET /v1/tokens?limit=&offset=`: the caller's tokens, newest first, with `X-Total-Count`; an
/// admin sees everyone's.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(PageQuery), responses((status = 200, description = "newest first, with `X-Total-Count`", body = Vec<TokenView>), Refusals), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    let (tokens, total) = state.queries.tokens(&caller.actor, query.page()?).await?;
    Ok(listed(&tokens, total))
}

/// `DELETE /v1/tokens/{token_id}` (its owner or an admin).
#[utoipa::path(delete, path = "/v1/tokens/{token_id}", tag = "tokens", params(("token_id" = Uuid, Path, description = "the token's id")), responses((status = 204, description = "revoked"), Refusals), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(token_id): Path<String>,
) -> Result<Response, Problem> {
    let token_id = Uuid::parse_str(&token_id)
        .map_err(|_| Problem::not_found(format!("no token {token_id}")))?;
    let w = state
        .commands
        .revoke_token(&caller.actor, &origin, token_id, "revoked")
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}
