//! The console's session: a Bosun session token held in the session cookie (HttpOnly,
//! SameSite=Strict, Secure under TLS) and its CSRF value in the CSRF cookie (readable by the
//! page, derived from the token so the server keeps no state); the [`cookie_auth`] middleware
//! that turns the cookie into `Authorization: Bearer <token>` for every route after checking the
//! request's `Origin` and, for writes, its `X-CSRF-Token`; and `/console/session` (sign in,
//! who am I, sign out).
//!
//! Under TLS the cookies are `__Host-bosun_session` and `__Host-bosun_csrf`: a browser keeps
//! such a cookie only when it is Secure, for `Path=/` and without `Domain`, so a neighbour (a
//! sibling subdomain, a plain-HTTP page of the same host) cannot toss in one of its own. Over
//! plain HTTP they are `bosun_session` and `bosun_csrf`. A session cookie sent twice is no
//! session at all.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::Json;
use crate::problem::Problem;
use crate::routes::written;
use crate::startup::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bosun_commands::identity::secrets::digest;
use serde::{Deserialize, Serialize};

/// The session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "bosun_session";
/// The CSRF cookie over plain HTTP.
pub const CSRF_COOKIE: &str = "bosun_csrf";
/// The session cookie under TLS (`__Host-`: Secure, `Path=/`, no `Domain`).
pub const TLS_SESSION_COOKIE: &str = "__Host-bosun_session";
/// The CSRF cookie under TLS.
pub const TLS_CSRF_COOKIE: &str = "__Host-bosun_csrf";
pub const CSRF_HEADER: HeaderName = HeaderName::from_static("x-csrf-token");
/// The path of the session's routes (sign-in is not behind the cookie).
pub const SESSION_PATH: &str = "/console/session";

/// The session cookie's name: `__Host-bosun_session` when the server serves HTTPS.
pub fn session_cookie(https: bool) -> &'static str {
    if https {
        TLS_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The CSRF cookie's name: `__Host-bosun_csrf` when the server serves HTTPS.
pub fn csrf_cookie(https: bool) -> &'static str {
    if https {
        TLS_CSRF_COOKIE
    } else {
        CSRF_COOKIE
    }
}

/// The CSRF value of a session token: the first 32 hex digits of
/// `sha256("bosun-csrf:" + token)`. Knowing it says nothing about the token.
pub fn csrf_for(token: &str) -> String {
    let mut hex = digest(&format!("bosun-csrf:{token}")).0;
    hex.truncate(32);
    hex
}

/// Appends the two Set-Cookie headers of a signed-in session holding `token`, both lasting
/// `max_age_seconds` (the token's lifetime).
pub fn signed_in_cookies(headers: &mut HeaderMap, token: &str, max_age_seconds: i64, https: bool) {
    let max_age = max_age_seconds.max(0);
    let secure = if https { "; Secure" } else { "" };
    let session = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        session_cookie(https)
    );
    let csrf = format!(
        "{}={}; Path=/; SameSite=Strict; Max-Age={max_age}{secure}",
        csrf_cookie(https),
        csrf_for(token)
    );
    for cookie in [session, csrf] {
        match HeaderValue::from_str(&cookie) {
            Ok(value) => {
                headers.append(header::SET_COOKIE, value);
            }
            // A Bosun token is URL-safe base64; the cookie is not set rather than the token
            // logged.
            Err(_) => tracing::error!("a session token cannot be put in a cookie"),
        }
    }
}

/// Appends the two Set-Cookie headers that clear the session's cookies.
pub fn signed_out_cookies(headers: &mut HeaderMap, https: bool) {
    let secure = if https { "; Secure" } else { "" };
    for cookie in [
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
            session_cookie(https)
        ),
        format!(
            "{}=; Path=/; SameSite=Strict; Max-Age=0{secure}",
            csrf_cookie(https)
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers, if it is set once and not
/// empty. A name sent twice (a cookie tossed in beside the server's own, for another path or
/// domain) gives none: which one the server set cannot be told. A pair without a name
/// (`=bosun_session=…`) is no cookie of that name.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| key.trim_end() == name)
        .map(|(_, value)| value.trim());
    match (values.next(), values.next()) {
        (Some(value), None) if !value.is_empty() => Some(value),
        _ => None,
    }
}

/// A `host[:port]` (a `Host` header, an origin's authority): the host lowercased (an IPv6
/// literal keeps its brackets) and the port if one is given. `None` when it is no authority.
fn authority(text: &str) -> Option<(String, Option<u16>)> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']')?;
        let (literal, after) = rest.split_at(end);
        let after = &after[1..];
        if literal.is_empty()
            || !literal
                .chars()
                .all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
        {
            return None;
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{literal}]"), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()*+,;=".contains(c))
        {
            return None;
        }
        (host.to_string(), port)
    };
    let port = match port {
        // `host:` is the default port, as URLs have it.
        None | Some("") => None,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => Some(digits.parse().ok()?),
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Whether the request's `Origin`, if it sends one, is the server it is sent to: its host is
/// `Host`'s (case aside) and so is its port (an absent one being its scheme's default: 443 for
/// `https`, 80 for `http`). A server serving HTTPS (`https`) takes `https://` origins only; a
/// plain-HTTP one either scheme (behind a proxy that ends TLS, the browser's origin is
/// `https://`). `Origin: null` (a sandboxed or opaque origin) is another origin.
pub fn same_origin(headers: &HeaderMap, https: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some((scheme, origin)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return false;
    };
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else if scheme.eq_ignore_ascii_case("http") && !https {
        80
    } else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (authority(origin), host.and_then(authority)) {
        (Some((origin_host, origin_port)), Some((host, port))) => {
            origin_host == host
                && origin_port.unwrap_or(default_port) == port.unwrap_or(default_port)
        }
        _ => false,
    }
}

fn cross_origin() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        "the request's Origin is not this server: the console's session works from its own pages only",
    )
}

/// Equal strings, compared in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request brings its own token: `Authorization`, or a compat surface's own token
/// header (Keboola's `X-StorageApi-Token`, Runnable's `runnable-token`). Such a request is
/// the client's, not the console's: the cookie a browser adds to it is not looked at.
fn carries_own_credentials(headers: &HeaderMap) -> bool {
    [
        header::AUTHORIZATION,
        crate::routes::compat::keboola::TOKEN_HEADER,
        crate::routes::compat::runnable::TOKEN_HEADER,
    ]
    .iter()
    .any(|name| headers.contains_key(name))
}

/// The console's cookie as authentication. A request with no token of its own
/// ([`carries_own_credentials`]) and a
/// session cookie ([`session_cookie`] of the server's scheme, sent once): refused 403 `cross_origin` if its `Origin` is another server's (a
/// WebSocket upgrade too); a write (any method but GET, HEAD, OPTIONS) refused 403
/// `csrf_failed` unless `X-CSRF-Token` is the session's [`csrf_for`]; then given
/// `Authorization: Bearer <token>`, so every route authenticates it as it does a client's
/// token (a token no longer valid gets the route's 401). A request with a token of its own is
/// left as it is. Sign-in (`POST /console/session`) is not looked at: it needs no session
/// (a stale cookie must not stop it) and checks its `Origin` itself.
pub async fn cookie_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if carries_own_credentials(headers)
        || (request.method() == Method::POST && request.uri().path() == SESSION_PATH)
    {
        return next.run(request).await;
    }
    let Some(token) = cookie(headers, session_cookie(state.https)).map(str::to_string) else {
        return next.run(request).await;
    };
    if !same_origin(headers, state.https) {
        return cross_origin().into_response();
    }
    let reads = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !reads {
        let sent = headers
            .get(&CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(sent, csrf_for(&token).as_bytes()) {
            return Problem::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "a write with the console's session must send X-CSRF-Token: the CSRF cookie's value (the session's csrf)",
            )
            .into_response();
        }
    }
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    next.run(request).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    username: String,
    password: String,
}

/// What the console knows of its session.
#[derive(Serialize)]
pub struct Session {
    username: String,
    admin: bool,
    scopes: Vec<String>,
    /// The value to send as `X-CSRF-Token` (also in the CSRF cookie).
    csrf: String,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST /console/session` `{username, password}`: a session token (as `POST /v1/auth/tokens`
/// issues, its default lifetime) in the cookies. A wrong name and a wrong password get the same
/// 401 and no cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Json(body): Json<SignIn>,
) -> Result<Response, Problem> {
    if !same_origin(&headers, state.https) {
        return Err(cross_origin());
    }
    let (issued, w) = crate::sign_in::login(&state, &origin, &body.username, &body.password, None)
        .await
        .map_err(|e| e.answer(|| Problem::unauthorized("wrong username or password")))?;
    let max_age = issued
        .expires_at
        .map(|at| (at - chrono::Utc::now()).num_seconds())
        .unwrap_or(bosun_commands::identity::DEFAULT_SESSION_SECONDS);
    let session = Session {
        username: issued.user.clone(),
        admin: issued.holder_admin.unwrap_or(false),
        scopes: issued
            .scopes
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        csrf: csrf_for(&issued.token),
        expires_at: issued.expires_at,
    };
    let mut response = written(&state, StatusCode::OK, Some(&session), w);
    signed_in_cookies(response.headers_mut(), &issued.token, max_age, state.https);
    Ok(response)
}

/// `GET /console/session`: the session of the cookie (401 without a valid one: the page then
/// shows its sign-in).
pub async fn current(headers: HeaderMap, caller: Caller) -> Result<axum::Json<Session>, Problem> {
    refuse_app_token(&caller)?;
    // The token the middleware put in `Authorization` (or the client's own).
    let token = crate::auth::token_from_headers(&headers)?.unwrap_or_default();
    let holder = caller.holder;
    Ok(axum::Json(Session {
        username: holder.username,
        admin: holder.admin,
        scopes: holder.scopes,
        csrf: csrf_for(&token),
        expires_at: holder.expires_at,
    }))
}

/// An app token is no console session (403): neither shown (`GET`) nor revoked (`DELETE`)
/// here; its app's owner revokes it where it is managed.
fn refuse_app_token(caller: &Caller) -> Result<(), Problem> {
    if caller.actor.app_token().is_some() {
        return Err(Problem::forbidden(
            "an app token has no console session: sign in as a user",
        ));
    }
    Ok(())
}

/// `DELETE /console/session`: the session's token stops working at once and the cookies are
/// cleared (also when the token already no longer works: then with the 401; an app token is
/// refused 403 and left working, as `GET` refuses it).
pub async fn sign_out(
    State(state): State<AppState>,
    caller: Result<Caller, Problem>,
    RequestOrigin(origin): RequestOrigin,
) -> Response {
    let caller = caller.and_then(|caller| refuse_app_token(&caller).map(|()| caller));
    let mut response = match caller {
        Ok(caller) => match state
            .commands
            .revoke_current_token(&caller.actor, &origin)
            .await
        {
            Ok(w) => written::<()>(&state, StatusCode::NO_CONTENT, None, w),
            Err(e) => Problem::from(e).into_response(),
        },
        Err(problem) => problem.into_response(),
    };
    signed_out_cookies(response.headers_mut(), state.https);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_csrf_value_is_derived_from_the_token() {
        let csrf = csrf_for("bosun_abc");
        assert_eq!(csrf.len(), 32);
        assert_eq!(csrf, csrf_for("bosun_abc"));
        assert_ne!(csrf, csrf_for("bosun_abd"));
        assert!(!csrf.contains("abc"));
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let h = headers(&[
            (header::COOKIE, "a=1; bosun_csrf=x"),
            (header::COOKIE, "bosun_session=bosun_t"),
        ]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("bosun_t"));
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("x"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(
            cookie(
                &headers(&[(header::COOKIE, "bosun_session=")]),
                SESSION_COOKIE
            ),
            None
        );
    }

    #[test]
    fn a_cookie_sent_twice_or_without_a_name_is_no_cookie() {
        let of = |values: &[&str], name: &str| {
            let pairs: Vec<_> = values.iter().map(|v| (header::COOKIE, *v)).collect();
            cookie(&headers(&pairs), name).map(str::to_string)
        };
        // Tossed in beside the server's own, in the same header or another.
        assert_eq!(
            of(
                &["bosun_session=bosun_mine; bosun_session=bosun_theirs"],
                SESSION_COOKIE
            ),
            None
        );
        assert_eq!(
            of(
                &["bosun_session=bosun_mine", "bosun_session=bosun_theirs"],
                SESSION_COOKIE
            ),
            None
        );
        assert_eq!(
            of(
                &["bosun_session=; bosun_session=bosun_theirs"],
                SESSION_COOKIE
            ),
            None
        );
        assert_eq!(
            of(
                &["__Host-bosun_session=bosun_a; __Host-bosun_session=bosun_b"],
                TLS_SESSION_COOKIE
            ),
            None
        );
        // A nameless pair is not the session, alone or beside it.
        assert_eq!(of(&["=bosun_session=bosun_theirs"], SESSION_COOKIE), None);
        assert_eq!(
            of(&["=__Host-bosun_session=bosun_theirs"], TLS_SESSION_COOKIE),
            None
        );
        assert_eq!(
            of(
                &["=bosun_session=bosun_theirs; bosun_session=bosun_mine"],
                SESSION_COOKIE
            ),
            Some("bosun_mine".into())
        );
        assert_eq!(of(&["bosun_session"], SESSION_COOKIE), None);
        // Each name is its own: the plain one is not the TLS one.
        assert_eq!(of(&["bosun_session=bosun_plain"], TLS_SESSION_COOKIE), None);
        assert_eq!(
            of(
                &["bosun_session=bosun_plain; __Host-bosun_session=bosun_tls"],
                TLS_SESSION_COOKIE
            ),
            Some("bosun_tls".into())
        );
    }

    /// `same_origin` for `Origin: origin` (if any) to a server at `Host: host`.
    fn same(host: Option<&str>, origin: Option<&str>, https: bool) -> bool {
        let mut pairs = Vec::new();
        if let Some(host) = host {
            pairs.push((header::HOST, host));
        }
        if let Some(origin) = origin {
            pairs.push((header::ORIGIN, origin));
        }
        same_origin(&headers(&pairs), https)
    }

    #[test]
    fn an_origin_is_the_same_when_its_host_and_port_are_hosts() {
        let plain = |origin: Option<&str>| same(Some("bosun.example:8080"), origin, false);
        assert!(plain(None));
        assert!(plain(Some("http://bosun.example:8080")));
        // Behind a proxy that ends TLS, the browser's origin is https.
        assert!(plain(Some("https://bosun.example:8080")));
        assert!(!plain(Some("http://bosun.example")));
        assert!(!plain(Some("https://bosun.example")));
        assert!(!plain(Some("http://evil.example:8080")));
        assert!(!plain(Some("http://bosun.example:8080.evil.example")));
        assert!(!plain(Some("http://evil.example@bosun.example:8080")));
        assert!(!plain(Some("http://bosun.example:8080/path")));
        assert!(!plain(Some("ftp://bosun.example:8080")));
        assert!(!plain(Some("bosun.example:8080")));
        assert!(!plain(Some("null")));
        // An Origin with no Host to compare it with is another origin.
        assert!(!same(None, Some("http://bosun.example"), false));
        assert!(same(None, None, false));
    }

    #[test]
    fn under_tls_an_origin_must_be_https() {
        let tls = |host: &str, origin: &str| same(Some(host), Some(origin), true);
        assert!(tls("bosun.example:8443", "https://bosun.example:8443"));
        assert!(!tls("bosun.example:8443", "http://bosun.example:8443"));
        assert!(!tls("bosun.example", "http://bosun.example"));
        assert!(!tls("bosun.example:80", "http://bosun.example"));
        assert!(tls("bosun.example", "https://bosun.example"));
        // No Origin at all is not a cross-origin request.
        assert!(same(Some("bosun.example"), None, true));
    }

    #[test]
    fn a_default_port_is_the_same_as_none() {
        for https in [false, true] {
            assert!(same(Some("x:443"), Some("https://x"), https));
            assert!(same(Some("x"), Some("https://x:443"), https));
            assert!(same(Some("x"), Some("https://x"), https));
            assert!(!same(Some("x:80"), Some("https://x"), https));
            assert!(!same(Some("x:443"), Some("https://x:8443"), https));
        }
        assert!(same(Some("x:80"), Some("http://x"), false));
        assert!(same(Some("x"), Some("http://x:80"), false));
        assert!(!same(Some("x:443"), Some("http://x"), false));
        assert!(!same(Some("x:8o"), Some("http://x"), false));
        assert!(!same(Some("x:99999"), Some("http://x:99999"), false));
    }

    #[test]
    fn hosts_are_compared_without_case_ipv6_literals_in_brackets() {
        assert!(same(
            Some("Bosun.Example"),
            Some("https://bosun.EXAMPLE"),
            true
        ));
        assert!(same(
            Some("BOSUN.example:8080"),
            Some("HTTP://bosun.example:8080"),
            false
        ));
        assert!(same(Some("[::1]:8443"), Some("https://[::1]:8443"), true));
        assert!(same(Some("[::1]:443"), Some("https://[::1]"), true));
        assert!(same(
            Some("[2001:DB8::1]"),
            Some("http://[2001:db8::1]"),
            false
        ));
        assert!(!same(Some("[::1]:8443"), Some("https://[::2]:8443"), true));
        assert!(!same(Some("[::1]:8443"), Some("https://[::1]:8444"), true));
        assert!(!same(Some("::1"), Some("https://[::1]"), true));
        assert!(!same(Some("[::1]"), Some("https://::1"), true));
        assert!(!same(Some("[::1]x"), Some("https://[::1]x"), true));
        assert!(!same(Some("[]"), Some("https://[]"), true));
    }

    #[test]
    fn cookies_say_secure_under_tls_only() {
        let mut plain = HeaderMap::new();
        signed_in_cookies(&mut plain, "bosun_t", 60, false);
        let plain: Vec<_> = plain.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(
            plain[0],
            "bosun_session=bosun_t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert_eq!(
            plain[1].to_str().unwrap(),
            format!(
                "bosun_csrf={}; Path=/; SameSite=Strict; Max-Age=60",
                csrf_for("bosun_t")
            )
        );
        let mut tls = HeaderMap::new();
        signed_out_cookies(&mut tls, true);
        for value in tls.get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            assert!(value.starts_with("__Host-bosun_"), "{value}");
            assert!(value.ends_with("; Max-Age=0; Secure"), "{value}");
        }
    }

    #[test]
    fn under_tls_the_cookies_are_host_prefixed() {
        let mut tls = HeaderMap::new();
        signed_in_cookies(&mut tls, "bosun_t", 60, true);
        let tls: Vec<_> = tls
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            tls,
            [
                "__Host-bosun_session=bosun_t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
                    .to_string(),
                format!(
                    "__Host-bosun_csrf={}; Path=/; SameSite=Strict; Max-Age=60; Secure",
                    csrf_for("bosun_t")
                ),
            ]
        );
        // The prefix's rules: Secure, Path=/, no Domain.
        for value in &tls {
            assert!(!value.to_ascii_lowercase().contains("domain="), "{value}");
        }
    }

    #[test]
    fn comparing_needs_equal_length_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
