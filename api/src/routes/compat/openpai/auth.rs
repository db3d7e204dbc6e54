//! Logging in and out, and what the server says of itself: the seed's `POST /api/auth`, v1's
//! `POST /api/v1/token`, v2's `POST /api/v2/authn/basic/login` (also under `/api/v1/authn`),
//! `DELETE …/authn/basic/logout`, `GET …/authn/info`, and `GET /api/v1` / `/api/v2/info`.
//!
//! A login is `Commands::login` (as `POST /v1/auth/tokens`): the token is a Bosun session
//! token; OpenPAI's `expiration` (seconds, 1 day if absent) is its `expires_in`; `admin` is
//! what the login read of its user. Once the token is written the answer is a success: it
//! waits a bounded while for the read models to have the token (as every write settles), and
//! says where the log is (`Bosun-Position`), never an error then.
//!
//! Owns: reading OpenPAI's login fields and answering in its shapes. Does not own: checking a
//! password or issuing a token.

use super::body::Body;
use super::{json, message, text, PaiCaller};
use crate::auth::RequestOrigin;
use crate::problem::Problem;
use crate::routes::written;
use crate::sign_in::SignInError;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::identity::IssuedToken;
use bosun_commands::{CommandError, Origin, Written};
use serde_json::{json, Map, Value};

/// The fields of a login, as every generation sends them (JSON or a form).
#[derive(Debug, PartialEq)]
struct Login {
    username: String,
    password: String,
    expiration: Option<i64>,
}

impl Login {
    fn read(fields: &Map<String, Value>) -> Result<Login, Problem> {
        let text = |name: &str| match fields.get(name) {
            Some(Value::String(value)) if !value.is_empty() => Ok(value.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                Err(Problem::invalid_field(name, "is required"))
            }
            Some(_) => Err(Problem::invalid_field(name, "must be a string")),
        };
        Ok(Login {
            username: text("username")?,
            password: text("password")?,
            expiration: whole_number(fields.get("expiration"), "expiration")?,
        })
    }
}

/// A whole number as JSON or as text (a form's); absent or `null` is none.
pub(super) fn whole_number(value: Option<&Value>, field: &str) -> Result<Option<i64>, Problem> {
    let invalid = || Problem::invalid_field(field, "must be a whole number");
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(invalid),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// How a generation answers a wrong name or password.
#[derive(Clone, Copy)]
enum Generation {
    /// 401 `AuthenticationFailed`.
    Seed,
    /// 400 `IncorrectPasswordError`.
    Coded,
}

/// The login, its token, whether its user is an admin, and what it wrote.
async fn login(
    state: &AppState,
    origin: &Origin,
    body: &Body,
    generation: Generation,
) -> Result<(IssuedToken, bool, Written), Problem> {
    let request = Login::read(&body.fields()?)?;
    let (token, written) = crate::sign_in::login(
        state,
        origin,
        &request.username,
        &request.password,
        request.expiration,
    )
    .await
    .map_err(|e| match e {
        // OpenPAI's name for the native `expires_in`.
        SignInError::Command(CommandError::Domain(bosun_domain::DomainError::Invalid {
            field: "expires_in",
            message,
        })) => Problem::invalid_field("expiration", message),
        other => other.answer(|| match generation {
            Generation::Seed => Problem::new(
                StatusCode::UNAUTHORIZED,
                "login_failed",
                "authentication failed: wrong username or password",
            ),
            Generation::Coded => Problem::new(
                StatusCode::BAD_REQUEST,
                "incorrect_password",
                "Password is incorrect (or there is no such user).",
            ),
        }),
    })?;
    state.commands.settle(written).await;
    let admin = token.holder_admin.unwrap_or(false);
    Ok((token, admin, written))
}

/// `POST /api/auth` (the seed): `{token, user}`.
pub async fn seed_login(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let (token, _, w) = login(&state, &origin, &body, Generation::Seed).await?;
    Ok(written(
        &state,
        StatusCode::OK,
        Some(&json!({"token": token.token, "user": token.user})),
        w,
    ))
}

/// v1 and v2's login answer: `{user, token, admin, hasGitHubPAT}`.
fn login_info(state: &AppState, (token, admin, w): (IssuedToken, bool, Written)) -> Response {
    written(
        state,
        StatusCode::OK,
        Some(
            &json!({"user": token.user, "token": token.token, "admin": admin, "hasGitHubPAT": false}),
        ),
        w,
    )
}

/// `POST /api/v1/token`.
pub async fn v1_login(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let login = login(&state, &origin, &body, Generation::Coded).await?;
    Ok(login_info(&state, login))
}

/// `POST /api/v2/authn/basic/login` (and `/api/v1/authn/basic/login`).
pub async fn v2_login(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let login = login(&state, &origin, &body, Generation::Coded).await?;
    Ok(login_info(&state, login))
}

/// `DELETE /api/v2/authn/basic/logout`: the caller's token stops working at once
/// (`DELETE /v1/auth/tokens/current`).
pub async fn logout(
    State(state): State<AppState>,
    PaiCaller(caller): PaiCaller,
    RequestOrigin(origin): RequestOrigin,
) -> Result<Response, Problem> {
    state
        .commands
        .revoke_current_token(&caller.actor, &origin)
        .await?;
    Ok(message(StatusCode::OK, "Logout successfully"))
}

/// `GET /api/v2/authn/info`: basic (password) login, at the path OpenPAI named.
pub async fn authn_info() -> Response {
    json(
        StatusCode::OK,
        &json!({
            "authn_type": "basic",
            "loginURI": "/api/v1/authn/basic/login",
            "loginURIMethod": "post",
        }),
    )
}

/// `GET /api/v1` and `GET /api/v2/info`: the server's name and kind.
pub async fn cluster_info() -> Response {
    json(
        StatusCode::OK,
        &json!({
            "name": "PAI RESTful API",
            "version": format!("bosun-{}", env!("CARGO_PKG_VERSION")),
            "launcherType": "k8s",
            "authnMethod": "basic",
        }),
    )
}

/// `GET /api/v2`: v2's greeting, as text.
pub async fn v2_index() -> Response {
    text(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        "PAI RESTful API v2 (beta version)".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_login_reads_its_fields_from_json_or_a_form() {
        let from_form = Login::read(&fields(
            json!({"username": "alice", "password": "secret1", "expiration": "4000"}),
        ))
        .unwrap();
        assert_eq!(from_form.expiration, Some(4000));
        let from_json = Login::read(&fields(
            json!({"username": "alice", "password": "secret1", "expiration": 60}),
        ))
        .unwrap();
        assert_eq!(from_json.expiration, Some(60));
        let no_expiration =
            Login::read(&fields(json!({"username": "alice", "password": "x"}))).unwrap();
        assert_eq!(no_expiration.expiration, None);
    }

    #[test]
    fn a_missing_or_malformed_login_field_is_named() {
        for (body, field) in [
            (json!({"password": "secret1"}), "username"),
            (json!({"username": "", "password": "secret1"}), "username"),
            (json!({"username": "a"}), "password"),
            (json!({"username": 3, "password": "secret1"}), "username"),
            (
                json!({"username": "a", "password": "secret1", "expiration": "soon"}),
                "expiration",
            ),
            (
                json!({"username": "a", "password": "secret1", "expiration": 1.5}),
                "expiration",
            ),
        ] {
            let problem = Login::read(&fields(body)).unwrap_err();
            assert_eq!(problem.errors[0].field, field);
        }
    }
}
