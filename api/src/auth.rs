//! Who is calling: the token in `Authorization` (`Bearer <token>`, or pulsar's Basic form with
//! the token as the user name and `x-oauth-basic` as the password), checked against the
//! `identity` read model on every request, so an expiry or a revocation is in effect at once.

use crate::problem::Problem;
use crate::startup::{AppState, REQUEST_ID};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bosun_commands::identity::secrets::digest;
use bosun_commands::{Actor, AppActor, Origin};
use bosun_domain::identity::Scopes;
use bosun_projections::read_models::identity::{token_holder, TokenHolder};
use std::net::SocketAddr;

/// An authenticated caller.
pub struct Caller {
    pub actor: Actor,
    pub holder: TokenHolder,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = token_from_headers(&parts.headers)?
            .ok_or_else(|| Problem::unauthorized("no token: send Authorization: Bearer <token>"))?;
        authenticate(state, &token).await
    }
}

/// The token a request carries, if any; a malformed `Authorization` header is a 401.
pub fn token_from_headers(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        Problem::unauthorized(
            "malformed Authorization header: expected Bearer <token> or Basic with the token as user and x-oauth-basic as password",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Some(rest.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        if let Some((token, "x-oauth-basic")) = decoded.split_once(':') {
            if !token.is_empty() {
                return Ok(Some(token.to_string()));
            }
        }
    }
    Err(malformed())
}

/// The caller a token speaks for: 401 if it is unknown, expired or revoked, or its user is gone
/// (an app token: its app is gone; it speaks for the app, not for the user who issued it).
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller, Problem> {
    let client = state.store.pool().get().await?;
    let holder = token_holder(&**client, &digest(token).0)
        .await?
        .ok_or_else(|| Problem::unauthorized("the token is unknown, expired or revoked"))?;
    let scopes = Scopes::parse(&holder.scopes).map_err(|e| {
        tracing::error!(error = %e, "a stored token has unreadable scopes");
        Problem::internal()
    })?;
    let actor = match &holder.app {
        // An app token: its app's rights, none of its issuer's.
        Some(app) => Actor::App(AppActor::new(app, holder.token_id, &holder.username)),
        None => Actor::User {
            username: holder.username.clone(),
            admin: holder.admin,
            teams: holder.teams.clone(),
            token_id: holder.token_id,
            scopes,
        },
    };
    Ok(Caller { actor, holder })
}

/// Where a request came from, for the metadata of the events it causes.
pub struct RequestOrigin(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(512).collect::<String>())
        };
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip().to_string());
        Ok(RequestOrigin(Origin {
            request_id: header(&REQUEST_ID),
            correlation_id: header(&header::HeaderName::from_static("correlation-id")),
            user_agent: header(&header::USER_AGENT),
            source,
        }))
    }
}
