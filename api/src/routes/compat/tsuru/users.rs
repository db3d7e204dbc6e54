//! tsuru's users and logins: `POST /users` (JSON or form `{email, password}`), logging in at
//! `POST /users/{email}/tokens` and `POST /auth/login`, `DELETE /users/tokens` (log out),
//! `PUT /users/password`, `DELETE /users`, `GET /users` and `GET /users/info`. Each is the
//! `/v1` identity command or query with the same actor. The teams, keys and token routes are
//! [`super::teams`]', [`super::keys`]' and [`super::tokens`]', merged here; the user naming
//! they share is here ([`username_of`], [`email_of`]).
//!
//! Mapping decisions:
//! - tsuru knows users by email: a tsuru user is the Bosun user holding that email (compared
//!   without case), resolved natively under the user's rule (`Queries::username_by_email`): an
//!   admin resolves any address (404 for none), anyone else only their own; another address,
//!   registered or not, is the 403 the native call gives for a user the caller may not see, so
//!   an address says nothing of who holds it. A team's member by email is the team's rule
//!   ([`super::teams`]). A path or field naming a user may also give a Bosun username (anything
//!   without `@`), so users without an email can be named. A user is shown by their email, or
//!   their name if they have none.
//! - `POST /users` registers the Bosun user named after the address (every character but
//!   `[A-Za-z0-9_]` an `_`: `ann@example.com` is `ann_example_com`), with that email: the
//!   native registration, so an admin's token is needed (tsuru with `auth:user-registration`
//!   off); 201, 409 for an email or a name taken.
//! - A login answers `{token, is_admin}` (0.3.9's shape; 1.x reads `token`): a session token,
//!   as `POST /v1/auth/tokens` issues. An unknown email gets the answer of a wrong password
//!   (401), after the same work, as a native login by name does: a login says nothing of which
//!   addresses are registered (tsuru said 404).
//! - `PUT /users/password` takes `old`, `new` and, if sent, 1.x's `confirm` (which must equal
//!   `new`). `DELETE /users` removes the caller, or 1.x's `?user=` (the native rule decides
//!   who may).
//! - `GET /users`: an admin's list is every user; anyone else's is themself (as tsuru 1.x
//!   answers a caller who may list no one). A user is 1.x's `{Email, Roles, Permissions}`,
//!   derived: role `admin` (global) for an admin, `team-member` (of each team) for a member,
//!   each with the permission `*` in its context (a Bosun member may do all its team may).

use super::body::Fields;
use super::{every_page, json, written, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use bosun_commands::identity::NewUser;
use bosun_commands::Actor;
use bosun_domain::identity::{Email, Password, Username};
use bosun_projections::read_models::identity::UserView;
use serde::Serialize;

/// The users routes (and, merged, the teams', keys' and tokens'), merged into tsuru's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", post(create).get(list).delete(remove))
        .route("/users/info", get(info))
        .route("/users/{email}/tokens", post(login_at))
        .route("/auth/login", post(login))
        .route("/users/tokens", delete(logout))
        .route("/users/password", put(change_password))
        .merge(super::teams::router())
        .merge(super::keys::router())
        .merge(super::tokens::router())
}

// Naming users.

/// The Bosun username of the user `user` names: an email's holder, resolved under the user's
/// rule (see the [module](self): 403 for another's address, registered or not; 404 for an
/// admin's unknown one), or `user` itself if it has no `@` (a Bosun username).
pub(super) async fn username_of(
    state: &AppState,
    actor: &Actor,
    user: &str,
) -> Result<String, Problem> {
    if user.contains('@') {
        Ok(state.queries.username_by_email(actor, user).await?)
    } else {
        Ok(user.to_string())
    }
}

/// How tsuru shows a user: their email, or their name if they have none.
pub(super) fn email_of(user: &UserView) -> String {
    user.email.clone().unwrap_or_else(|| user.username.clone())
}

/// The caller's username; an app token is no user (403).
pub(super) fn own_name(actor: &Actor) -> Result<String, Problem> {
    actor
        .username()
        .map(str::to_string)
        .ok_or_else(|| Problem::forbidden("only a user's token has a user"))
}

/// The Bosun username `POST /users` registers for `email`: see the [module](self).
fn username_for(email: &Email) -> String {
    email
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

// The routes.

/// `POST /users`: JSON (0.3.9) or form (1.x) `{email, password}`; 201.
async fn create(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let email = Email::parse(&fields.required("email")?)?;
    let password = Password::parse("password", &fields.text("password")?.unwrap_or_default())?;
    let username = Username::parse_new(&username_for(&email)).map_err(|_| {
        Problem::invalid_field("email", "gives no Bosun username: use POST /v1/users")
    })?;
    let (_, w) = state
        .commands
        .register_user(
            &caller.actor,
            &origin,
            NewUser {
                username,
                password,
                email: Some(email),
                admin: false,
            },
        )
        .await?;
    Ok(written(&state, StatusCode::CREATED.into_response(), w))
}

/// A login's answer.
#[derive(Serialize)]
struct LoggedIn {
    token: String,
    is_admin: bool,
}

/// Logs in the holder of `email` with `password`: see the [module](self).
async fn log_in(
    state: &AppState,
    origin: &bosun_commands::Origin,
    email: &str,
    fields: &Fields,
) -> Result<Response, Problem> {
    let Some(password) = fields.text("password")? else {
        return Err(Problem::invalid_field(
            "password",
            "is required: You must provide a password to login",
        ));
    };
    // An unknown email logs in as no one: the same refusal as a wrong password, after the
    // same work. A name without `@` is a Bosun username.
    // An unknown address is handed on as it is (no user has it as a name): each is counted
    // apart by the sign-in limit, so its 429 says nothing about which addresses are known.
    let username = if email.contains('@') {
        state
            .queries
            .login_username(email)
            .await?
            .unwrap_or_else(|| email.to_string())
    } else {
        email.to_string()
    };
    let (token, w) = crate::sign_in::login(state, origin, &username, &password, None)
        .await
        .map_err(|e| {
            e.answer(|| Problem::unauthorized("Authentication failed: wrong email or password"))
        })?;
    // The client's next call carries no position to wait for: the token works once this answers.
    state.commands.settle(w).await;
    // Whether the holder is an admin, as the login read it: never a refusal once the token
    // exists (a read model lagging past the wait must not turn a login into a 401).
    let body = LoggedIn {
        is_admin: token.holder_admin.unwrap_or(false),
        token: token.token,
    };
    Ok(written(state, json(StatusCode::OK, &body), w))
}

/// `POST /users/{email}/tokens`: JSON or form `{password}`.
async fn login_at(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    crate::extract::Path(email): crate::extract::Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    log_in(&state, &origin, &email, &fields).await
}

/// `POST /auth/login` (1.x): form `email`, `password`.
async fn login(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let email = fields.required("email")?;
    log_in(&state, &origin, &email, &fields).await
}

/// `DELETE /users/tokens`: the caller's token stops working; 200.
async fn logout(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .revoke_current_token(&caller.actor, &origin)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `PUT /users/password`: `{old, new}` (1.x also `confirm`); 200; 403 for a wrong `old`.
async fn change_password(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let old = fields.non_empty("old")?;
    let new = fields.non_empty("new")?;
    let (Some(old), Some(new)) = (old, new) else {
        return Err(Problem::bad_request(
            "Both the old and the new passwords are required.",
            vec![],
        ));
    };
    if fields
        .text("confirm")?
        .is_some_and(|confirm| confirm != new)
    {
        return Err(Problem::invalid_field(
            "confirm",
            "New password and password confirmation didn't match.",
        ));
    }
    let username = own_name(&caller.actor)?;
    bosun_commands::identity::may_change_password(&caller.actor, &username)?;
    let new = Password::parse("new", &new)?;
    let w = state
        .commands
        .change_password(&caller.actor, &origin, &username, &old, new)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `DELETE /users[?user=]`: removes the caller (or, 1.x, `user`); 200.
async fn remove(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let username = match fields.non_empty("user")? {
        Some(user) => username_of(&state, &caller.actor, &user).await?,
        None => own_name(&caller.actor)?,
    };
    let w = state
        .commands
        .remove_user(&caller.actor, &origin, &username)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// A role or a permission in its context, as tsuru 1.x shows them.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InContext {
    name: String,
    context_type: String,
    context_value: String,
}

/// A user as tsuru 1.x shows one (`apiUser`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TsuruUser {
    email: String,
    roles: Vec<InContext>,
    permissions: Vec<InContext>,
}

impl TsuruUser {
    fn of(user: &UserView) -> TsuruUser {
        let mut contexts = Vec::new();
        if user.admin {
            contexts.push(("admin", "global", String::new()));
        }
        for team in &user.teams {
            contexts.push(("team-member", "team", team.clone()));
        }
        let in_context = |name: &str, kind: &str, value: &str| InContext {
            name: name.to_string(),
            context_type: kind.to_string(),
            context_value: value.to_string(),
        };
        TsuruUser {
            email: email_of(user),
            roles: contexts
                .iter()
                .map(|(role, kind, value)| in_context(role, kind, value))
                .collect(),
            permissions: contexts
                .iter()
                .map(|(_, kind, value)| in_context("*", kind, value))
                .collect(),
        }
    }
}

/// `GET /users[?userEmail=]`: see the [module](self).
async fn list(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    fields: Fields,
) -> Result<Response, Problem> {
    let mut users = if caller.actor.is_admin() {
        every_page(|page| state.queries.users(&caller.actor, page)).await?
    } else {
        vec![state.queries.me(&caller.actor).await?]
    };
    if let Some(email) = fields.non_empty("userEmail")? {
        users.retain(|u| email_of(u).eq_ignore_ascii_case(&email));
    }
    let shown: Vec<TsuruUser> = users.iter().map(TsuruUser::of).collect();
    Ok(json(StatusCode::OK, &shown))
}

/// `GET /users/info`: the caller.
async fn info(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
) -> Result<Response, Problem> {
    let me = state.queries.me(&caller.actor).await?;
    Ok(json(StatusCode::OK, &TsuruUser::of(&me)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_is_the_address_with_underscores() {
        let email = Email::parse("Ann.Lee+ops@Example.com").unwrap();
        assert_eq!(username_for(&email), "ann_lee_ops_example_com");
        let long = Email::parse(&format!("{}@example.com", "a".repeat(80))).unwrap();
        assert_eq!(username_for(&long).len(), 64);
    }
}
