//! `/v1/users/{username}/password-reset`: a forgotten password, reset by email (tsuru's
//! `POST /users/{email}/password[?token=]`). Anyone may call both, with no token:
//!
//! - `POST …/password-reset` mails a one-time token to the user's email: 204 once the SMTP
//!   server took the mail; 404 for an unknown user, 409 `no_email` for a user without an email,
//!   429 `too_many_requests` (with `Retry-After`) within a minute of the previous request of
//!   that user, 503 `smtp_not_configured` (nothing recorded) when `notifications.smtp` is not
//!   set. A new token supersedes the ones sent before.
//! - `POST …/password-reset/{token}` mails a new random password, then sets it: 204; 404 for an
//!   unknown user or a token never issued to them (or superseded), 410 `reset_token_used`
//!   (used, or the password changed since) or `reset_token_expired`.
//!
//! The user's tokens keep working, as in tsuru. Nothing is recorded until the SMTP server took
//! the mail: a mail that cannot be sent is a 503 `mail_failed` that changed nothing (the old
//! password and the token still work; ask again). A mail sent whose events then cannot be
//! appended is a 503 `reset_not_recorded`: what it holds does not work, and everything is as
//! it was; ask again. Paths holding a token are logged without it ([`shown_path`]).
//!
//! The reset calls of one user run one at a time on every node, from the check to the append
//! (an advisory lock in the database): of concurrent requests one mails a token and the others
//! are 429; of concurrent uses of one token one mails a password and the others are 410. A
//! refusal by the final append itself is answered as that refusal (429, 410, 404), never as
//! `reset_not_recorded`.

use crate::auth::RequestOrigin;
use crate::mail::Mailer;
use crate::problem::{Problem, Refusals};
use crate::routes::v1::users::user_path;
use crate::routes::written;
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_commands::identity::password_reset::ResetFailure;
use bosun_commands::identity::OutgoingMail;
use bosun_commands::CommandError;
use bosun_domain::identity::{RESET_TOKEN_EXPIRED, RESET_TOKEN_USED};
use bosun_domain::DomainError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const SEGMENT: &str = "/password-reset/";
/// SockJS's transport URLs are `…/websocket/{server}/{session}/{transport}` at pulsar's feed
/// (`/compat/pulsar/websocket`); the session id speaks for its authenticated client.
const SOCKJS: &str = "/websocket/";

/// `path` as logs show it: a reset token in it is left out, and so is a SockJS session id (the
/// segment after `/websocket/{server}/`, shown as `…`).
pub fn shown_path(path: &str) -> std::borrow::Cow<'_, str> {
    if let Some(at) = path.find(SEGMENT) {
        return format!("{}[redacted]", &path[..at + SEGMENT.len()]).into();
    }
    if let Some(at) = path.find(SOCKJS).filter(|_| path.starts_with("/compat/")) {
        let after = &path[at + SOCKJS.len()..];
        if let Some((server, rest)) = after.split_once('/') {
            let transport = rest.find('/').map_or("", |end| &rest[end..]);
            return format!("{}{server}/…{transport}", &path[..at + SOCKJS.len()]).into();
        }
    }
    path.into()
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

/// Sends `mail`; a failure is logged (never the mail's body).
async fn deliver(mailer: &Mailer, mail: OutgoingMail, username: &str) -> Result<(), String> {
    mailer.send(&mail).await.inspect_err(|e| {
        tracing::warn!(error = %e, username, "a password reset mail could not be sent");
    })
}

/// The answer to a reset that did not happen: `mail_failed` and `not_recorded` say what a
/// failed mail and a mail sent but not recorded mean.
fn refusal(failure: ResetFailure<String>, mail_failed: &str, not_recorded: &str) -> Response {
    match failure {
        ResetFailure::Refused(e) => gone(e).into_response(),
        ResetFailure::TooSoon {
            retry_after_seconds,
            message,
        } => {
            let mut response =
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
                    .into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds.max(1)),
            );
            response
        }
        ResetFailure::Mail(_) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "mail_failed", mail_failed)
                .into_response()
        }
        ResetFailure::NotRecorded(e) => {
            tracing::error!(error = %e, "a password reset mail was sent but could not be recorded");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "reset_not_recorded",
                not_recorded,
            )
            .into_response()
        }
    }
}

/// `POST /v1/users/{username}/password-reset` (anyone): mails a one-time reset token.
#[utoipa::path(post, path = "/v1/users/{username}/password-reset", tag = "password-reset",
    params(("username" = String, Path, description = "the user's name")),
    responses(
        (status = 204, description = "the token was mailed to the user's email"),
        (status = 429, description = "a reset of this user was asked for less than a minute ago; `Retry-After` says when to ask again", body = Problem, content_type = "application/problem+json"),
        Refusals))]
pub async fn request(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
) -> Result<Response, Response> {
    user_path(&username).map_err(IntoResponse::into_response)?;
    let mailer = mailer(&state).map_err(IntoResponse::into_response)?;
    let (_, w) = state
        .commands
        .request_password_reset(
            &origin,
            &username,
            state.password_reset_ttl_seconds,
            |mail| deliver(mailer, mail, &username),
        )
        .await
        .map_err(|f| {
            refusal(
                f,
                "the mail with the reset token could not be sent, and nothing was recorded; ask again later",
                "the mail with a reset token was sent but the token could not be recorded, so it does not work; ask again",
            )
        })?;
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
) -> Result<Response, Response> {
    user_path(&username).map_err(IntoResponse::into_response)?;
    let mailer = mailer(&state).map_err(IntoResponse::into_response)?;
    let w = state
        .commands
        .reset_password(&origin, &username, &token, |mail| {
            deliver(mailer, mail, &username)
        })
        .await
        .map_err(|f| {
            refusal(
                f,
                "the mail with the new password could not be sent, so the password was not changed: the old one and the token still work; try again later",
                "the mail with a new password was sent but the change could not be recorded, so that password does not work: the old one and the token still do; try again",
            )
        })?;
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

    #[test]
    fn a_sockjs_session_id_is_left_out_of_the_path_logs_show() {
        for transport in ["websocket", "xhr", "xhr_send", "xhr_streaming"] {
            assert_eq!(
                shown_path(&format!(
                    "/compat/pulsar/websocket/123/s3cr3tid/{transport}"
                )),
                format!("/compat/pulsar/websocket/123/…/{transport}")
            );
        }
        assert_eq!(
            shown_path("/compat/pulsar/websocket/123/s3cr3tid"),
            "/compat/pulsar/websocket/123/…"
        );
        for kept in [
            "/compat/pulsar/websocket",
            "/compat/pulsar/websocket/",
            "/compat/pulsar/websocket/info",
            "/compat/pulsar/websocket/websocket",
            // A native path with such a segment is not SockJS's.
            "/v1/apps/websocket/units/x",
        ] {
            assert_eq!(shown_path(kept), kept);
        }
    }
}
