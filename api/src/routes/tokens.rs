//! `/v1/tokens`: a user's long-lived API tokens. Lists never show a secret, nor its digest.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Query};
use crate::problem::Problem;
use crate::routes::users::PageQuery;
use crate::routes::{listed, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::identity::NewApiToken;
use bosun_domain::identity::{Scope, Scopes};
use bosun_projections::read_models::identity as model;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[serde(default)]
    description: String,
    expires_in: Option<i64>,
    scopes: Option<Vec<String>>,
}

/// `POST /v1/tokens`.
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
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    caller.actor.require(Scope::Read)?;
    let page = query.page()?;
    let owner = if caller.actor.is_admin() {
        None
    } else {
        Some(caller.holder.username.as_str())
    };
    let client = state.store.pool().get().await?;
    let (tokens, total) = model::tokens(&**client, owner, page).await?;
    Ok(listed(&tokens, total))
}

/// `DELETE /v1/tokens/{token_id}` (its owner or an admin).
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
