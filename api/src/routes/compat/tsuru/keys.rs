//! tsuru's SSH keys of the caller: `POST /users/keys` (0.3.9 JSON `{key}`; 1.x form `key`,
//! `name`, `force`), `DELETE /users/keys` (0.3.9: the key given by its content), `DELETE
//! /users/keys/{name}` (1.x: by name), `GET /users/keys` (1.x: the caller's) and `GET
//! /users/{email}/keys` (0.3.9), each `{name: key}`. Each is the `/v1/users/{username}/keys`
//! command or query with the same actor.
//!
//! Mapping decisions:
//! - A key sent without a name (0.3.9 named it `<email>-<n>`) is named `<username>-<n>`, `n`
//!   the first from the number of keys the user has plus one that no key of theirs has.
//! - 1.x's `force=true` puts the key under its name whether or not the user has a key of that
//!   name: the native replace (`Commands::replace_key`), one write, so a refused key (one they
//!   hold under another name) leaves the old one in place.
//! - A key removed by content is the user's key that is the same key (its type and blob,
//!   whatever the comment); 404 for none.
//! - The writes answer 200 with no body, as tsuru did (natively 201 and 204).
//! - Another user's keys (`GET /users/{email}/keys`) are read under the user's rule, the address
//!   too ([`super::users::username_of`]).

use super::body::Fields;
use super::users::{own_name, username_of};
use super::{every_page, json, written, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use bosun_commands::Actor;
use bosun_domain::identity::{KeyName, PublicKey};
use bosun_projections::read_models::keys::KeyView;
use std::collections::BTreeMap;

/// The keys routes, merged into the users routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/users/keys",
            post(add).delete(remove_by_content).get(list_own),
        )
        .route("/users/keys/{key}", delete(remove_by_name))
        .route("/users/{email}/keys", get(list_of))
}

/// Every key of `username`.
async fn all_keys(
    state: &AppState,
    actor: &Actor,
    username: &str,
) -> Result<Vec<KeyView>, Problem> {
    every_page(|page| state.queries.keys(actor, username, page)).await
}

/// The keys as tsuru shows them: `{name: key}`.
fn shown(keys: Vec<KeyView>) -> BTreeMap<String, String> {
    keys.into_iter().map(|k| (k.name, k.key)).collect()
}

/// The name of a key sent without one: see the [module](self).
fn derived_name(username: &str, keys: &[KeyView]) -> Result<KeyName, Problem> {
    let mut n = keys.len() + 1;
    loop {
        let suffix = format!("-{n}");
        let stem: String = username.chars().take(64 - suffix.len()).collect();
        let name = format!("{stem}{suffix}");
        if !keys.iter().any(|k| k.name == name) {
            return Ok(KeyName::parse(&name)?);
        }
        n += 1;
    }
}

/// `POST /users/keys`: adds the key to the caller's (`force`: in place of the one of its name);
/// 200; 409 `key_exists` for a key they have, `key_name_taken` for a name they use (unforced).
async fn add(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let username = own_name(&caller.actor)?;
    let key = PublicKey::parse(&fields.required("key")?)?;
    let force = fields.flag("force", false)?;
    let name = match fields.non_empty("name")? {
        Some(name) => KeyName::parse(&name)?,
        None => derived_name(
            &username,
            &all_keys(&state, &caller.actor, &username).await?,
        )?,
    };
    let (_, w) = if force {
        state
            .commands
            .replace_key(&caller.actor, &origin, &username, name, key)
            .await?
    } else {
        state
            .commands
            .add_key(&caller.actor, &origin, &username, name, key)
            .await?
    };
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `DELETE /users/keys` (0.3.9): `{key}`, the caller's key that is the same key; 200.
async fn remove_by_content(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let username = own_name(&caller.actor)?;
    let key = PublicKey::parse(&fields.required("key")?)?;
    let keys = all_keys(&state, &caller.actor, &username).await?;
    let Some(held) = keys
        .into_iter()
        .find(|k| PublicKey::parse(&k.key).is_ok_and(|k| k.same_key_as(&key)))
    else {
        return Err(Problem::not_found("User does not have this key"));
    };
    let w = state
        .commands
        .remove_key(&caller.actor, &origin, &username, &held.name)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `DELETE /users/keys/{name}` (1.x): the caller's key of that name; 200.
async fn remove_by_name(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let username = own_name(&caller.actor)?;
    let w = state
        .commands
        .remove_key(&caller.actor, &origin, &username, &name)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `GET /users/keys` (1.x): the caller's keys.
async fn list_own(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
) -> Result<Response, Problem> {
    let username = own_name(&caller.actor)?;
    let keys = all_keys(&state, &caller.actor, &username).await?;
    Ok(json(StatusCode::OK, &shown(keys)))
}

/// `GET /users/{email}/keys` (0.3.9): that user's keys (themself, or an admin).
async fn list_of(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(email): Path<String>,
) -> Result<Response, Problem> {
    let username = username_of(&state, &caller.actor, &email).await?;
    let keys = all_keys(&state, &caller.actor, &username).await?;
    Ok(json(StatusCode::OK, &shown(keys)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> KeyView {
        KeyView {
            name: name.into(),
            key: "ssh-ed25519 AAAA".into(),
            added_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_derived_name_is_the_first_free_one() {
        assert_eq!(derived_name("ann", &[]).unwrap().as_str(), "ann-1");
        let keys = [key("ann-2"), key("laptop")];
        assert_eq!(derived_name("ann", &keys).unwrap().as_str(), "ann-3");
        let long = "a".repeat(64);
        assert_eq!(derived_name(&long, &[]).unwrap().as_str().len(), 64);
    }
}
