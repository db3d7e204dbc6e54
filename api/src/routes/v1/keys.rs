//! `/v1/users/{username}/keys`: a user's SSH public keys (OpenSSH's one-line form), read and
//! changed by the user themself or an admin.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::v1::users::{user_path, Fields};
use crate::routes::{listed, written, PageQuery};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_domain::identity::{KeyName, PublicKey, Scope};
use bosun_projections::read_models::keys::KeyView;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    /// `[A-Za-z0-9_.-]`, 1 to 64 characters, unique among the user's keys.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    name: String,
    /// An OpenSSH public key: `<type> <base64> [comment]` (such as a `.pub` file's line).
    key: String,
}

/// `GET /v1/users/{username}/keys?limit=&offset=` (self or admin): by name, with
/// `X-Total-Count`.
#[utoipa::path(get, path = "/v1/users/{username}/keys", tag = "keys",
    params(("username" = String, Path, description = "the user's name"), PageQuery),
    responses((status = 200, description = "the user's keys by name, with `X-Total-Count`", body = Vec<KeyView>), Refusals),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    user_path(&username)?;
    let (keys, total) = state
        .queries
        .keys(&caller.actor, &username, query.page()?)
        .await?;
    Ok(listed(&keys, total))
}

/// `POST /v1/users/{username}/keys` (self or admin): 409 `key_name_taken` for a name the user
/// has, 409 `key_exists` for a key they have under another name.
#[utoipa::path(post, path = "/v1/users/{username}/keys", tag = "keys",
    params(("username" = String, Path, description = "the user's name")),
    request_body = AddKey,
    responses((status = 201, description = "added", body = KeyView), Refusals),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
    Json(body): Json<AddKey>,
) -> Result<Response, Problem> {
    user_path(&username)?;
    // Who may comes first: an outsider learns nothing from how the body is refused.
    caller.actor.require(Scope::Write)?;
    caller.actor.require_self_or_admin(&username)?;
    let mut fields = Fields::default();
    let name = fields.take(KeyName::parse(&body.name));
    let key = fields.take(PublicKey::parse(&body.key));
    fields.finish()?;
    let (Some(name), Some(key)) = (name, key) else {
        return Err(Problem::internal());
    };
    let (view, w) = state
        .commands
        .add_key(&caller.actor, &origin, &username, name, key)
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&view), w))
}

/// `DELETE /v1/users/{username}/keys/{name}` (self or admin): 404 for a key the user does not
/// have.
#[utoipa::path(delete, path = "/v1/users/{username}/keys/{name}", tag = "keys",
    params(("username" = String, Path, description = "the user's name"), ("name" = String, Path, description = "the key's name")),
    responses((status = 204, description = "removed"), Refusals),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((username, name)): Path<(String, String)>,
) -> Result<Response, Problem> {
    user_path(&username)?;
    let w = state
        .commands
        .remove_key(&caller.actor, &origin, &username, &name)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove))
}
