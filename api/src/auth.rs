//! Who is calling: the token in `Authorization` (`Bearer <token>`, or pulsar's Basic form with
//! the token as the user name and `x-oauth-basic` as the password), checked against the
//! `identity` read model on every request, so an expiry or a revocation is in effect at once.
//! With `auth.github`, a token that is not a Bosun token (`bosun_…`) is taken for a GitHub
//! token if it looks like one ([`crate::github::looks_like_github_token`]; anything else is a
//! 401 at once) and stands for the Bosun session token [`crate::github`] issues for it.

use crate::problem::Problem;
use crate::startup::{AppState, REQUEST_ID};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bosun_commands::identity::secrets::{digest, TOKEN_PREFIX};
use bosun_commands::{Actor, AppActor, Origin};
use bosun_domain::identity::Scopes;
use bosun_projections::read_models::identity::{token_holder, TokenHolder};
use std::net::SocketAddr;

/// An authenticated caller. A middleware that authenticated the request already leaves it in
/// the request's extensions, where the extractor takes it from.
#[derive(Clone)]
pub struct Caller {
    pub actor: Actor,
    pub holder: TokenHolder,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = token_from_headers(&parts.headers)?
            .ok_or_else(|| Problem::unauthorized("no token: send Authorization: Bearer <token>"))?;
        authenticate_from(state, &token, &origin_of(parts)).await
    }
}

/// The token a request carries, if any; a malformed `Authorization` header is a 401.
pub fn token_from_headers(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let malformed = || {
        Problem::unauthorized(
            "malformed Authorization header: expected Bearer <token> or Basic with the token as user and x-oauth-basic as password",
        )
    };
    match authorization(headers, malformed)? {
        None => Ok(None),
        Some((token, None)) => Ok(Some(token)),
        Some((_, Some(_))) => Err(malformed()),
    }
}

/// The token a request carries, if any, and the user a `Basic base64(<user>:<token>)` names
/// with it (OpenPAI's application tokens: `/compat/openpai` checks the token is that user's);
/// `Bearer <token>` and `Basic base64(<token>:x-oauth-basic)` name none. A malformed
/// `Authorization` header is a 401.
pub fn token_and_user_from_headers(
    headers: &HeaderMap,
) -> Result<Option<(String, Option<String>)>, Problem> {
    authorization(headers, || {
        Problem::unauthorized(
            "malformed Authorization header: expected Bearer <token>, or Basic with <user>:<token> or <token>:x-oauth-basic",
        )
    })
}

/// `Authorization`'s token and the user a `Basic` value names with it; `malformed` for a value
/// that is neither `Bearer <token>` nor `Basic` of `<token>:x-oauth-basic` or `<user>:<token>`.
fn authorization(
    headers: &HeaderMap,
    malformed: impl Fn() -> Problem,
) -> Result<Option<(String, Option<String>)>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(&malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Some((rest.to_string(), None)));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(rest).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    // At the last colon: the token has none (Bosun's and GitHub's are URL-safe), and a user's
    // name may (a GitHub user's, `github:<login>`).
    match decoded.rsplit_once(':') {
        Some((token, "x-oauth-basic")) if !token.is_empty() => Ok(Some((token.to_string(), None))),
        Some((user, token)) if !user.is_empty() && !token.is_empty() => {
            Ok(Some((token.to_string(), Some(user.to_string()))))
        }
        _ => Err(malformed()),
    }
}

/// The caller a token speaks for: 401 if it is unknown, expired or revoked, or its user is gone
/// (an app token: its app is gone; it speaks for the app, not for the user who issued it).
///
/// With `auth.github`, a token that does not start with `bosun_` and looks like a GitHub token
/// is one: it speaks for the session token of its GitHub user that
/// [`crate::github::Github::session_token`] gives (403 `not_a_member`, `no_role`,
/// `github_org_access` or `github_login`, 503 `github_unavailable`, 401 if GitHub does not
/// take it). One that looks like neither is a 401, GitHub not asked.
///
/// The events a GitHub sign-in writes have no origin; [`authenticate_from`] gives them the
/// request's.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller, Problem> {
    authenticate_from(state, token, &Origin::default()).await
}

/// [`authenticate`], for a request from `origin` (the origin of the events a GitHub token's
/// sign-in writes).
pub async fn authenticate_from(
    state: &AppState,
    token: &str,
    origin: &Origin,
) -> Result<Caller, Problem> {
    let Some(github) = state
        .github
        .as_ref()
        .filter(|_| !token.starts_with(TOKEN_PREFIX))
    else {
        return authenticate_bosun(state, token).await;
    };
    if !crate::github::looks_like_github_token(token) {
        return Err(Problem::unauthorized(
            "the token is unknown, expired or revoked",
        ));
    }
    let session = github.session_token(state, token, origin).await?;
    match authenticate_bosun(state, &session).await {
        Err(problem) if problem.status == 401 => {
            // The session token no longer works (revoked by a logout, its user removed): a
            // new one, checked with GitHub again.
            github.forget_session(token, &session);
            let session = github.session_token(state, token, origin).await?;
            authenticate_bosun(state, &session).await
        }
        answer => answer,
    }
}

/// [`authenticate`] of a Bosun token.
async fn authenticate_bosun(state: &AppState, token: &str) -> Result<Caller, Problem> {
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
        Ok(RequestOrigin(origin_of(parts)))
    }
}

/// Where the request of `parts` came from: its request and correlation ids, user agent (each
/// at most 512 characters) and peer address.
fn origin_of(parts: &Parts) -> Origin {
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
    Origin {
        request_id: header(&REQUEST_ID),
        correlation_id: header(&header::HeaderName::from_static("correlation-id")),
        user_agent: header(&header::USER_AGENT),
        source,
        if_match: parts.extensions.get::<bosun_commands::IfMatch>().cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn basic(text: &str) -> String {
        format!("Basic {}", STANDARD.encode(text))
    }

    #[test]
    fn a_token_comes_as_bearer_or_as_basic_with_x_oauth_basic() {
        assert_eq!(token_from_headers(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            token_from_headers(&headers("Bearer abc"))
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            token_from_headers(&headers(&basic("abc:x-oauth-basic")))
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        // A user with the token is OpenPAI's, not `/v1`'s.
        assert_eq!(
            token_from_headers(&headers(&basic("alice:abc")))
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn openpais_basic_names_the_tokens_user() {
        let of = |value: &str| token_and_user_from_headers(&headers(value));
        assert_eq!(of("Bearer abc").unwrap(), Some(("abc".into(), None)));
        assert_eq!(of("bearer  abc ").unwrap(), Some(("abc".into(), None)));
        assert_eq!(
            of(&basic("alice:abc")).unwrap(),
            Some(("abc".into(), Some("alice".into())))
        );
        assert_eq!(
            of(&basic("abc:x-oauth-basic")).unwrap(),
            Some(("abc".into(), None))
        );
        // A GitHub user's name has a colon: the token is after the last one.
        assert_eq!(
            of(&basic("github:alice:bosun_abc")).unwrap(),
            Some(("bosun_abc".into(), Some("github:alice".into())))
        );
        for bad in [
            "abc".to_string(),
            "Bearer ".into(),
            "Token abc".into(),
            basic("alice"),
            basic(":abc"),
            basic("alice:"),
            "Basic !!!".into(),
        ] {
            assert_eq!(of(&bad).unwrap_err().status, 401, "{bad}");
        }
    }
}
