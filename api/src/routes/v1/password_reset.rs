//! `/v1/users/{username}/password-reset`: a forgotten password, reset by email (tsuru's
//! `POST /users/{email}/password[?token=]`). Anyone may call both, with no token:
//!
//! - `POST …/password-reset` mails a one-time token to the user's email: 204 once the SMTP
//!   server took the mail; 404 for an unknown user, 409 `no_email` for a user without an email,
//!   503 `smtp_not_configured` (nothing recorded) when `notifications.smtp` is not set.
//! - `POST …/password-reset/{token}` sets a new random password and mails it: 204; 404 for an
//!   unknown user or a token never issued to them, 410 `reset_token_used` (used, or the
//!   password changed since) or `reset_token_expired`.
//!
//! The user's tokens keep working, as in tsuru. A mail that cannot be sent after the write is a
//! 503 `mail_failed`: ask again. Paths holding a token are logged without it ([`shown_path`]).

use crate::auth::RequestOrigin;
use crate::mail::Mailer;
use crate::problem::{Problem, Refusals};
use crate::routes::v1::users::user_path;
use crate::routes::written;
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::identity::OutgoingMail;
use bosun_commands::CommandError;
use bosun_domain::identity::{RESET_TOKEN_EXPIRED, RESET_TOKEN_USED};
use bosun_domain::DomainError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const SEGMENT: &str = "/password-reset/";

/// `path` as logs show it: a reset token in it is left out.
pub fn shown_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.find(SEGMENT) {
        Some(at) => format!("{}[redacted]", &path[..at + SEGMENT.len()]).into(),
        None => path.into(),
    }
}

/// The mailer, or the 503 that says none is configured (before anything is recorded).
fn mailer(state: &AppState) -> Result<&Mailer, Problem> {
    state.mailer.as_deref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "smtp_not_configured",
            "password reset needs a mail server, and this server has none (notifications.smtp)",
        )
    })
}

/// Sends `mail`; a failure is logged (never the mail's body) and answered with `detail`.
async fn deliver(
    mailer: &Mailer,
    mail: &OutgoingMail,
    username: &str,
    detail: &str,
) -> Result<(), Problem> {
    mailer.send(mail).await.map_err(|e| {
        tracing::warn!(error = %e, username, "a password reset mail could not be sent");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "mail_failed", detail)
    })
}

/// `POST /v1/users/{username}/password-reset` (anyone): mails a one-time reset token.
#[utoipa::path(post, path = "/v1/users/{username}/password-reset", tag = "password-reset",
    params(("username" = String, Path, description = "the user's name")),
    responses((status = 204, description = "the token was mailed to the user's email"), Refusals))]
pub async fn request(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
) -> Result<Response, Problem> {
    user_path(&username)?;
    let mailer = mailer(&state)?;
    let (requested, w) = state
        .commands
        .request_password_reset(&origin, &username, state.password_reset_ttl_seconds)
        .await?;
    deliver(
        mailer,
        &requested.mail,
        &username,
        "the mail with the reset token could not be sent; ask again later",
    )
    .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `POST /v1/users/{username}/password-reset/{token}` (anyone): a new random password, mailed.
#[utoipa::path(post, path = "/v1/users/{username}/password-reset/{token}", tag = "password-reset",
    params(("username" = String, Path, description = "the user's name"), ("token" = String, Path, description = "the token the reset mail held")),
    responses(
        (status = 204, description = "a new password was set and mailed to the user's email"),
        (status = 410, description = "the token was used (or the password changed since), or it expired", body = Problem, content_type = "application/problem+json"),
        Refusals))]
pub async fn reset(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    Path((username, token)): Path<(String, String)>,
) -> Result<Response, Problem> {
    user_path(&username)?;
    let mailer = mailer(&state)?;
    let (mail, w) = state
        .commands
        .reset_password(&origin, &username, &token)
        .await
        .map_err(gone)?;
    deliver(
        mailer,
        &mail,
        &username,
        "the password was reset, but the mail with the new one could not be sent; ask for another reset",
    )
    .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// A token used or expired is gone (410), not a conflict.
fn gone(e: CommandError) -> Problem {
    match e {
        CommandError::Domain(DomainError::Conflict {
            code: code @ (RESET_TOKEN_USED | RESET_TOKEN_EXPIRED),
            message,
        }) => Problem::new(StatusCode::GONE, code, message),
        other => other.into(),
    }
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request))
        .routes(routes!(reset))
}

#[cfg(test)]
mod tests {
    use super::shown_path;

    #[test]
    fn a_reset_token_is_left_out_of_the_path_logs_show() {
        assert_eq!(
            shown_path("/v1/users/ann/password-reset/bosun_s3cret"),
            "/v1/users/ann/password-reset/[redacted]"
        );
        assert_eq!(
            shown_path("/v1/users/ann/password-reset"),
            "/v1/users/ann/password-reset"
        );
        assert_eq!(shown_path("/v1/jobs"), "/v1/jobs");
    }
}
