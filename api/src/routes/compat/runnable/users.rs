//! Runnable's users (`src/rest/users.coffee`): `POST /users` makes an anonymous user (with
//! `email`, `username` and `password`, registered in the same call), `POST /token` logs in by
//! name or email, and `/users/me` or `/users/{name}` read, register and remove the caller.
//!
//! - `POST /users`: the native anonymous user, limited and turned off as `POST
//!   /v1/users/anonymous` is ([`anonymous_refusal`]). With `email`, the fields are checked
//!   first (400), then whether anonymous users may be made here (403, 429), and then the
//!   anonymous user is made and registered in one native call (`sign_up`: 409 for a name or
//!   email taken, and nothing made; no anonymous token is left behind). 201 with the user and
//!   its `access_token` (the registered user's, once registered).
//! - `POST /token` `{email | username, password}`: 200 `{access_token}`, a session token
//!   (`Commands::login`, an email first turned into its holder's name by
//!   `Queries::login_username`). A deviation from 0.2.0, decided for security: no such user
//!   and a wrong password are one answer, 403 `invalid username or password`, after the same
//!   work, as `/v1` answers them (0.2.0 answered 404 `user not found` and 403 `invalid
//!   password`, telling who has an account).
//! - `/users/{user}`: `me` is the caller; another name is read first as `/v1/users/{name}`
//!   reads it (403 for someone else but to an admin, 404 for no one), and the action is then
//!   the native one for that user. `PUT` registers the anonymous caller (403 `you are already
//!   registered` for anyone else, before the body is looked at) and answers the user with its
//!   new `access_token` (the old one ends); `DELETE` removes the user (`{message: "user
//!   deleted"}`: an anonymous user may not, natively).
//!
//! Does not own: who may do what (the commands and queries), the user's shape (`render`).

use super::body::Fields;
use super::{missing, refusal, render, written, RunnableCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::routes::v1::users::{anonymous_refusal, user_path, Fields as FieldErrors};
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::identity::{require_anonymous, Registration};
use bosun_commands::{Actor, CommandError};
use bosun_domain::identity::{Email, Password, Username};
use bosun_domain::DomainError;
use bosun_projections::read_models::identity::UserView;

/// The name `/users/{user}` stands for: `me` is the caller (403 for a token that is no user's);
/// another is read as `/v1/users/{name}` reads it (404, 403), and is that user.
pub(super) async fn user_named(
    state: &AppState,
    actor: &Actor,
    user: &str,
) -> Result<UserView, Problem> {
    if user == "me" {
        return Ok(state.queries.me(actor).await?);
    }
    user_path(user)?;
    Ok(state.queries.user(actor, user).await?)
}

/// `email`, `username` and `password` as a registration: each missing one is Runnable's 400;
/// then each is parsed as `/v1` parses it (every bad one named at once).
fn registration(fields: &Fields) -> Result<Registration, Problem> {
    let email = fields
        .text("email")?
        .ok_or_else(|| missing("email", "must provide an email to register with"))?;
    let username = fields
        .text("username")?
        .ok_or_else(|| missing("username", "must provide a username to register with"))?;
    let password = fields
        .text("password")?
        .ok_or_else(|| missing("password", "must provide a password to register with"))?;
    let mut errors = FieldErrors::default();
    let username = errors.take(Username::parse_new(&username));
    let password = errors.take(Password::parse("password", &password));
    let email = errors.take(Email::parse(&email));
    errors.finish()?;
    let (Some(username), Some(password), Some(email)) = (username, password, email) else {
        return Err(Problem::internal());
    };
    Ok(Registration {
        username,
        password,
        email,
    })
}

/// `POST /users`: see the [module](self).
pub async fn create(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let registration = match fields.has("email") {
        true => Some(registration(&fields)?),
        false => None,
    };
    // Who may comes before whether the name and email are free: no caller learns which are
    // taken where anonymous users are turned off.
    if let Some(refusal) = anonymous_refusal(&state, &origin) {
        return Ok(refusal);
    }
    let (user, token, w) = match registration {
        None => {
            state
                .commands
                .create_anonymous_user(&origin, state.anonymous_token_seconds)
                .await?
        }
        Some(registration) => state.commands.sign_up(&origin, registration).await?,
    };
    let body = render::user_with_token(&user, &token.token);
    Ok(written(&state, StatusCode::CREATED, &body, w))
}

/// `POST /token`: see the [module](self).
pub async fn token(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    // Runnable looked the login up as a name or an email, from `email` or else `username`.
    let login = match fields.text("email")? {
        Some(email) => email,
        None => fields
            .text("username")?
            .ok_or_else(|| missing("username", "username or email required"))?,
    };
    let password = fields
        .text("password")?
        .ok_or_else(|| missing("password", "password required"))?;
    // An address no one holds is handed on as it is: no user has it as a name, so the login
    // refuses it after the same work as a wrong password.
    let username = match login.contains('@') {
        true => state.queries.login_username(&login).await?.unwrap_or(login),
        false => login,
    };
    let (token, w) = crate::sign_in::login(&state, &origin, &username, &password, None)
        .await
        .map_err(|e| {
            e.answer(|| {
                refusal(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "invalid username or password",
                )
            })
        })?;
    let body = serde_json::json!({ "access_token": token.token });
    Ok(written(&state, StatusCode::OK, &body, w))
}

/// `GET /users/{user}`: the user.
pub async fn get(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    Path(user): Path<String>,
) -> Result<Response, Problem> {
    let view = user_named(&state, &caller.actor, &user).await?;
    Ok(super::read(&render::user(&view)))
}

/// `PUT /users/{user}` `{email, username, password}`: registers the anonymous caller.
pub async fn register(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(user): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    user_named(&state, &caller.actor, &user).await?;
    // Who may comes first, then the body.
    require_anonymous(&caller.actor).map_err(|e| match e {
        CommandError::Domain(DomainError::Forbidden { code, .. }) => {
            refusal(StatusCode::FORBIDDEN, code, "you are already registered")
        }
        other => other.into(),
    })?;
    let registration = registration(&fields)?;
    let (user, token, w) = state
        .commands
        .register_anonymous(&caller.actor, &origin, registration)
        .await?;
    let body = render::user_with_token(&user, &token.token);
    Ok(written(&state, StatusCode::OK, &body, w))
}

/// `DELETE /users/{user}`: removes the user; `{message: "user deleted"}`.
pub async fn remove(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(user): Path<String>,
) -> Result<Response, Problem> {
    let username = match user.as_str() {
        "me" => caller
            .actor
            .username()
            .map(str::to_string)
            .ok_or_else(|| Problem::forbidden("only a user's token has a user"))?,
        _ => user_named(&state, &caller.actor, &user).await?.username,
    };
    let w = state
        .commands
        .remove_user(&caller.actor, &origin, &username)
        .await?;
    Ok(super::said(&state, "user deleted", w))
}
