//! Signing in with GitHub (`auth.github`), for the members of one organization.
//!
//! Two ways in, one rule. The OAuth web flow: `GET /auth/github/login` sends the browser to
//! GitHub's authorize page with a random `state` (also in a cookie, `bosun_oauth_state`, under
//! TLS `__Host-bosun_oauth_state`, with the callback URL the login sent); `GET /auth/github/callback` checks the state, exchanges
//! the code for the user's GitHub token (with the same callback URL), checks the user, signs
//! them in ([`bosun_commands::Commands::github_sign_in`]) for `session_seconds` and sets the
//! console's session cookies. And API clients: a GitHub token sent as a Bosun token
//! (`Authorization: Basic base64(<GitHub token>:x-oauth-basic)` or `Bearer <GitHub token>`)
//! is checked the same way by [`crate::auth::authenticate`] ([`Github::session_token`]) and
//! stands for a Bosun session token of the user, issued for it. Only what looks like a GitHub
//! token ([`looks_like_github_token`]) is sent to GitHub; anything else is a 401 at once.
//!
//! The rule ([`Github::check`]): the token's user (`GET /user`) must be a member of `org`
//! (`GET /orgs/{org}/members/{login}`: 204), else 403 `not_a_member`; they get `read` if their
//! login or one of their organizations (`GET /user/orgs`) is in `authorization.read`, `write`
//! likewise (no inheritance: `write` alone reads nothing), both without `authorization`; none
//! is 403 `no_role`. A token GitHub does not take is 401; a 403 of GitHub's that is not its
//! rate limit (an organization's SSO the token is not authorized for) is 403
//! `github_org_access`; a login Bosun cannot take as a name is 403 `github_login`. GitHub not
//! answering (a timeout, 15 s for the whole check at most, a 5xx, a redirect, its rate limit)
//! is 503 `github_unavailable` with GitHub's `Retry-After` when it gives one, never a 500. The
//! user is `github:<login>`. At most 16 checks (and code exchanges) ask GitHub at once; one
//! that waits more than 3 s for its turn is 503 `github_unavailable` with `Retry-After: 5`, so
//! made-up tokens hold neither unbounded requests nor unbounded calls to GitHub.
//!
//! A GitHub token's check is cached by the token's SHA-256 ([`cache`]): trusted
//! `cache_seconds` (60 s), a refusal at most 30 s, then GitHub is asked again, so a member
//! who leaves the organization (or a list) is refused within that time. Requests with the
//! token while it is checked wait for that check and share its outcome, a failure too. The
//! Bosun token issued for it is kept while its scopes are unchanged and it has more than 5
//! minutes left (the check is held no longer than that); a new one (new scopes) revokes it. A
//! GitHub token is never logged, recorded in an event or answered.
//!
//! Known limits: a user is known by their login, not GitHub's numeric id, so a login given up
//! and taken by someone else (a renamed account) is the same Bosun user; and a refusal takes
//! nothing away in Bosun (the team membership made at a sign-in stays, a web session lasts its
//! `session_seconds`; a removed user is made again at their next sign-in).
//!
//! Does not own: the users, teams and tokens themselves (`bosun_commands`), the console's
//! cookies and their checks (`crate::console::session`).

pub mod cache;
pub mod client;

use crate::auth::RequestOrigin;
use crate::config::{check_github_redirect_uri, GithubSettings, GITHUB_CALLBACK_PATH};
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bosun_commands::identity::secrets::digest;
use bosun_commands::{Actor, Origin};
use bosun_domain::identity::{Scope, Scopes, TeamName, Username};
use cache::{Cache, Kept};
use chrono::{DateTime, Utc};
use client::{GithubClient, GithubError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The cookie holding the OAuth `state` between the login and the callback over plain HTTP
/// (for `Path=/auth/github`): `<state>`, then `.<base64url of the callback URL>` unless
/// `redirect_uri` is configured.
pub const STATE_COOKIE: &str = "bosun_oauth_state";
/// The same under TLS, for `Path=/`: a `__Host-` cookie (Secure, `Path=/`, no `Domain`), which
/// a neighbour (a sibling subdomain, a plain-HTTP page of the same host) cannot set in its
/// place, as the console's session cookies.
pub const TLS_STATE_COOKIE: &str = "__Host-bosun_oauth_state";
const STATE_COOKIE_PATH: &str = "/auth/github";

/// The state cookie's name and path: `__Host-bosun_oauth_state` for `/` when the server serves
/// HTTPS, else `bosun_oauth_state` for `/auth/github`.
fn state_cookie_of(https: bool) -> (&'static str, &'static str) {
    if https {
        (TLS_STATE_COOKIE, "/")
    } else {
        (STATE_COOKIE, STATE_COOKIE_PATH)
    }
}
/// The scope Bosun asks GitHub for: the user's organizations, private memberships included.
pub const OAUTH_SCOPE: &str = "read:org";
pub const LOGIN_PATH: &str = "/auth/github/login";
pub const CALLBACK_PATH: &str = GITHUB_CALLBACK_PATH;
/// How long a browser has between the login and the callback.
const STATE_SECONDS: i64 = 600;
/// How long a Bosun token issued for a GitHub token works; it is reused while it has more
/// than [`REUSE_MARGIN`] left.
const API_SESSION_SECONDS: i64 = 3600;
const REUSE_MARGIN: chrono::Duration = chrono::Duration::minutes(5);
/// The longest a refusal is trusted.
const MAX_REFUSAL_SECONDS: u64 = 30;
/// The longest a whole check (every call to GitHub it makes) may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// How many checks with GitHub (and OAuth code exchanges) run at once, so that tokens made up
/// by the thousand hold neither as many requests nor as many calls to GitHub.
const MAX_CONCURRENT_CHECKS: usize = 16;
/// The longest a check waits for its turn before it is answered 503 `github_unavailable`.
const TURN_WAIT: Duration = Duration::from_secs(3);
/// The `Retry-After` of that 503.
const BUSY_RETRY_AFTER: u64 = 5;
/// How many GitHub tokens' accepted checks are held at once.
const CACHE_CAPACITY: usize = 10_000;
/// How many refusals are held at once (apart: they never push out an accepted check).
const REFUSAL_CAPACITY: usize = 1_000;
/// What GitHub's tokens start with: OAuth (`gho_`), personal (`ghp_`, `github_pat_`), a
/// GitHub App's user-to-server, server-to-server and refresh tokens (`ghu_`, `ghs_`, `ghr_`).
const GITHUB_TOKEN_PREFIXES: [&str; 6] = ["gho_", "ghp_", "ghu_", "ghs_", "ghr_", "github_pat_"];
/// The longest token sent to GitHub (GitHub's are far shorter).
const MAX_GITHUB_TOKEN_LENGTH: usize = 255;

/// Who may sign in and how, and the means to ask GitHub.
pub struct Github {
    client_id: String,
    client_secret: SecretString,
    /// Lowercased.
    org: String,
    /// `None`: every member of `org` gets both scopes. Logins lowercased.
    authorization: Option<Roles>,
    team: Option<TeamName>,
    client: GithubClient,
    cache: Cache<Checked, Problem>,
    /// A turn to ask GitHub ([`MAX_CONCURRENT_CHECKS`] at once; [`Github::turn`]).
    turns: tokio::sync::Semaphore,
    /// The longest a check waits for a turn ([`TURN_WAIT`]).
    turn_wait: Duration,
    accepted_for: Duration,
    refused_for: Duration,
    /// How long a web sign-in lasts (seconds).
    session_seconds: i64,
    /// The callback URL as configured; `None`: made from the login's `Host`.
    redirect_uri: Option<String>,
}

struct Roles {
    read: BTreeSet<String>,
    write: BTreeSet<String>,
}

/// Why GitHub's user may not in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// GitHub does not take the token.
    BadToken,
    NotAMember {
        login: String,
    },
    NoRole {
        login: String,
    },
    /// GitHub answered 403 (not its rate limit) to `what`: the organization's SSO, or its OAuth
    /// app policy, keeps the token out.
    OrgAccess {
        what: String,
    },
    /// GitHub's login for the user is not one Bosun takes as a name.
    BadLogin {
        login: String,
    },
}

/// A user GitHub vouches for, with the scopes the rule gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// Lowercased.
    pub login: String,
    pub scopes: Scopes,
}

/// A GitHub token's check, as the cache holds it.
#[derive(Clone)]
enum Checked {
    Allowed {
        login: String,
        scopes: Scopes,
        /// The Bosun session token issued for the GitHub token, and its id.
        session: SecretString,
        token_id: Uuid,
        expires_at: DateTime<Utc>,
    },
    Refused(Refusal),
}

/// Whether `token` may be a GitHub token: one of GitHub's prefixes then letters, digits and
/// underscores, or an old-style token (40 lowercase hex digits); at most 255 characters.
/// Anything else is not sent to GitHub.
pub fn looks_like_github_token(token: &str) -> bool {
    if token.len() > MAX_GITHUB_TOKEN_LENGTH {
        return false;
    }
    if let Some(rest) = GITHUB_TOKEN_PREFIXES
        .iter()
        .find_map(|prefix| token.strip_prefix(prefix))
    {
        return !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    }
    token.len() == 40
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// How long an accepted check is held at `now`: `accepted_for`, and never past the point
/// where its Bosun token (expiring at `expires_at`) stops being reused.
fn held_for(accepted_for: Duration, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    let reusable = (expires_at - now - REUSE_MARGIN)
        .to_std()
        .unwrap_or(Duration::ZERO);
    accepted_for.min(reusable)
}

/// A result of one call to GitHub, with what is a refusal told apart from what is a failure.
fn settled<T>(result: Result<T, GithubError>) -> Result<Result<T, Refusal>, GithubError> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(GithubError::BadToken) => Ok(Err(Refusal::BadToken)),
        Err(GithubError::Forbidden(what)) => Ok(Err(Refusal::OrgAccess { what })),
        Err(e) => Err(e),
    }
}

impl Github {
    /// From `auth.github`, checked ([`GithubSettings::check`]); the client secret read from
    /// its file if it is in one.
    pub fn new(settings: &GithubSettings) -> Result<Github, String> {
        settings.check()?;
        let client_secret = match (&settings.client_secret, &settings.client_secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "auth.github.client_secret_file: cannot read {}: {e}",
                        path.display()
                    )
                })?;
                let secret = text.strip_suffix('\n').unwrap_or(&text);
                let secret = secret.strip_suffix('\r').unwrap_or(secret);
                if secret.is_empty() {
                    return Err(format!(
                        "auth.github.client_secret_file: {} is empty",
                        path.display()
                    ));
                }
                SecretString::from(secret.to_string())
            }
            (None, None) => return Err("auth.github.client_secret: is required".into()),
        };
        let lowered = |logins: &[String]| -> BTreeSet<String> {
            logins.iter().map(|l| l.to_ascii_lowercase()).collect()
        };
        let team = match &settings.team {
            Some(team) => {
                Some(TeamName::parse(team).map_err(|e| format!("auth.github.team: {e}"))?)
            }
            None => None,
        };
        Ok(Github {
            client_id: settings.client_id.trim().to_string(),
            client_secret,
            org: settings.org.to_ascii_lowercase(),
            authorization: settings.authorization.as_ref().map(|a| Roles {
                read: lowered(&a.read),
                write: lowered(&a.write),
            }),
            team,
            client: GithubClient::new(&settings.base_url, &settings.api_url)?,
            cache: Cache::new(CACHE_CAPACITY, REFUSAL_CAPACITY),
            turns: tokio::sync::Semaphore::new(MAX_CONCURRENT_CHECKS),
            turn_wait: TURN_WAIT,
            accepted_for: Duration::from_secs(settings.cache_seconds),
            refused_for: Duration::from_secs(settings.cache_seconds.min(MAX_REFUSAL_SECONDS)),
            session_seconds: settings.session_seconds,
            redirect_uri: settings.redirect_uri.clone(),
        })
    }

    /// Whether GitHub's user of `token` may in, and with which scopes (see the [module](self)).
    pub async fn check(&self, token: &str) -> Result<Result<Allowed, Refusal>, GithubError> {
        let user = match settled(self.client.user(token).await)? {
            Ok(user) => user,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if Username::github(&user.login).is_err() {
            tracing::warn!(login = ?user.login, "GitHub answered a login Bosun cannot take as a name");
            return Ok(Err(Refusal::BadLogin { login: user.login }));
        }
        let login = user.login.to_ascii_lowercase();
        let member = match settled(self.client.is_member(token, &self.org, &login).await)? {
            Ok(member) => member,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if !member {
            return Ok(Err(Refusal::NotAMember { login }));
        }
        let granted = match &self.authorization {
            None => vec![Scope::Read, Scope::Write],
            Some(roles) => {
                // Membership of `org` is known already; the others are asked only if a list
                // could still grant something through them.
                let mut read = roles.read.contains(&login) || roles.read.contains(&self.org);
                let mut write = roles.write.contains(&login) || roles.write.contains(&self.org);
                if (!read && !roles.read.is_empty()) || (!write && !roles.write.is_empty()) {
                    let orgs = match settled(self.client.organizations(token).await)? {
                        Ok(orgs) => orgs,
                        Err(refusal) => return Ok(Err(refusal)),
                    };
                    read |= orgs.iter().any(|o| roles.read.contains(o));
                    write |= orgs.iter().any(|o| roles.write.contains(o));
                }
                [(read, Scope::Read), (write, Scope::Write)]
                    .into_iter()
                    .filter_map(|(has, scope)| has.then_some(scope))
                    .collect()
            }
        };
        let names: Vec<String> = granted.iter().map(|s| s.as_str().to_string()).collect();
        let Ok(scopes) = Scopes::parse(&names) else {
            return Ok(Err(Refusal::NoRole { login }));
        };
        Ok(Ok(Allowed { login, scopes }))
    }

    /// A turn to ask GitHub: one of [`MAX_CONCURRENT_CHECKS`], waited for at most
    /// `turn_wait`; then unavailable (503 `github_unavailable`, `Retry-After` 5 s).
    async fn turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, GithubError> {
        match tokio::time::timeout(self.turn_wait, self.turns.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Never closed; timed out.
            Ok(Err(_)) | Err(_) => Err(GithubError::Unavailable {
                why: format!("{MAX_CONCURRENT_CHECKS} checks with GitHub are under way already"),
                retry_after: Some(BUSY_RETRY_AFTER),
            }),
        }
    }

    /// [`Github::check`] in its [turn](Github::turn), given at most [`CHECK_TIMEOUT`] once it
    /// has one.
    pub async fn check_in_time(
        &self,
        token: &str,
    ) -> Result<Result<Allowed, Refusal>, GithubError> {
        let _turn = self.turn().await?;
        self.check_in_turn(token).await
    }

    /// [`Github::check`] given at most [`CHECK_TIMEOUT`], by a caller that holds a turn.
    async fn check_in_turn(&self, token: &str) -> Result<Result<Allowed, Refusal>, GithubError> {
        tokio::time::timeout(CHECK_TIMEOUT, self.check(token))
            .await
            .unwrap_or_else(|_| {
                Err(GithubError::unavailable(format!(
                    "GitHub did not answer the check within {} s",
                    CHECK_TIMEOUT.as_secs()
                )))
            })
    }

    /// The Bosun session token GitHub token `token` stands for (see the [module](self)): from
    /// the cache while its check holds, else checked with GitHub and, if allowed, the one
    /// issued before (same scopes, more than 5 minutes left) or a new one (the one before
    /// revoked). 401 for a token GitHub does not take, 403 `not_a_member` / `no_role` /
    /// `github_org_access` / `github_login`, 503 `github_unavailable`. `origin` is the request's,
    /// for the events a sign-in writes.
    pub async fn session_token(
        &self,
        state: &AppState,
        token: &str,
        origin: &Origin,
    ) -> Result<String, Problem> {
        let key = digest(token).0;
        let checked = self
            .cache
            .get_or_check(&key, Instant::now, |previous| async move {
                let verdict = self.check_in_time(token).await.map_err(unavailable)?;
                let allowed = match verdict {
                    Ok(allowed) => allowed,
                    Err(refusal) => {
                        return Ok((Checked::Refused(refusal), self.refused_for, Kept::Refused))
                    }
                };
                let now = Utc::now();
                let mut superseded = None;
                if let Some(Checked::Allowed {
                    login,
                    scopes,
                    session,
                    token_id,
                    expires_at,
                }) = previous
                {
                    if login == allowed.login
                        && scopes == allowed.scopes
                        && expires_at - now > REUSE_MARGIN
                    {
                        let lasts = held_for(self.accepted_for, expires_at, now);
                        let reused = Checked::Allowed {
                            login,
                            scopes,
                            session,
                            token_id,
                            expires_at,
                        };
                        return Ok((reused, lasts, Kept::Accepted));
                    }
                    if expires_at > now {
                        superseded = Some(token_id);
                    }
                }
                let (issued, _) = state
                    .commands
                    .github_sign_in(
                        origin,
                        &allowed.login,
                        allowed.scopes.clone(),
                        self.team.clone(),
                        API_SESSION_SECONDS,
                    )
                    .await
                    .map_err(Problem::from)?;
                let expires_at = issued
                    .expires_at
                    .unwrap_or_else(|| now + chrono::Duration::seconds(API_SESSION_SECONDS));
                tracing::info!(login = %allowed.login, token_id = %issued.token_id, "a GitHub token was given a Bosun session token");
                if let Some(old) = superseded {
                    self.revoke_superseded(state, origin, old).await;
                }
                let lasts = held_for(self.accepted_for, expires_at, Utc::now());
                let checked = Checked::Allowed {
                    login: allowed.login,
                    scopes: allowed.scopes,
                    session: SecretString::from(issued.token),
                    token_id: issued.token_id,
                    expires_at,
                };
                Ok::<_, Problem>((checked, lasts, Kept::Accepted))
            })
            .await?;
        match checked {
            Checked::Allowed { session, .. } => Ok(session.expose_secret().to_string()),
            Checked::Refused(refusal) => Err(refused(&refusal)),
        }
    }

    /// Revokes the Bosun token `token_id` a new one (other scopes) replaced, as the server; a
    /// failure is logged only (the token expires within the hour all the same).
    async fn revoke_superseded(&self, state: &AppState, origin: &Origin, token_id: Uuid) {
        let revoked = state
            .commands
            .revoke_token(
                &Actor::System("system"),
                origin,
                token_id,
                "superseded: the GitHub user's scopes changed",
            )
            .await;
        match revoked {
            Ok(_) => {
                tracing::info!(%token_id, "the Bosun token a GitHub token had before was revoked")
            }
            Err(e) => {
                tracing::warn!(%token_id, error = %e, "the Bosun token a GitHub token had before could not be revoked")
            }
        }
    }

    /// Forgets the Bosun token held for GitHub token `token` if it is `session` (it no longer
    /// works: revoked, or its user removed), so the next call checks and issues anew.
    pub fn forget_session(&self, token: &str, session: &str) {
        let key = digest(token).0;
        self.cache.forget_if(&key, |checked| {
            matches!(checked, Checked::Allowed { session: held, .. } if held.expose_secret() == session)
        });
    }

    /// GitHub's authorize page for a browser to go to, with `state` and `redirect_uri`.
    fn authorize_location(&self, state: &str, redirect_uri: &str) -> String {
        let query = serde_urlencoded::to_string([
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("scope", OAUTH_SCOPE),
            ("state", state),
        ])
        .unwrap_or_default();
        format!("{}?{query}", self.client.authorize_url())
    }
}

/// The refusal's answer to an API client.
pub fn refused(refusal: &Refusal) -> Problem {
    match refusal {
        Refusal::BadToken => Problem::unauthorized(
            "the token is unknown, expired or revoked (GitHub does not take it either)",
        ),
        Refusal::NotAMember { login } => Problem::new(
            StatusCode::FORBIDDEN,
            "not_a_member",
            format!("GitHub user {login} is not a member of the organization this server admits"),
        ),
        Refusal::NoRole { login } => Problem::new(
            StatusCode::FORBIDDEN,
            "no_role",
            format!("GitHub user {login} is given neither read nor write on this server (auth.github.authorization)"),
        ),
        Refusal::OrgAccess { what } => Problem::new(
            StatusCode::FORBIDDEN,
            "github_org_access",
            format!("GitHub refused {what} to this token (403): authorize the OAuth app for the organization, or its SSO (single sign-on) for the token"),
        ),
        Refusal::BadLogin { login } => Problem::new(
            StatusCode::FORBIDDEN,
            "github_login",
            format!("GitHub user {login:?} has a login Bosun cannot take as a user name (at most 39 letters, digits, dashes and underscores)"),
        ),
    }
}

/// What a call to GitHub came to, as an answer: a refusal, a bad code (400 `oauth_code`), or
/// GitHub not answering, 503 `github_unavailable` with GitHub's `Retry-After` if it gave one.
/// What failed is logged; the message holds no secret.
pub fn unavailable(e: GithubError) -> Problem {
    match e {
        GithubError::BadToken => refused(&Refusal::BadToken),
        GithubError::Forbidden(what) => refused(&Refusal::OrgAccess { what }),
        GithubError::BadCode(why) => Problem::new(
            StatusCode::BAD_REQUEST,
            "oauth_code",
            format!("{why}: sign in again"),
        ),
        GithubError::Unavailable { why, retry_after } => {
            tracing::warn!(error = %why, "GitHub did not answer as expected");
            let problem = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "github_unavailable",
                format!("GitHub cannot be asked now ({why}): retry later"),
            );
            match retry_after {
                Some(seconds) => problem.with_retry_after(seconds),
                None => problem,
            }
        }
    }
}

/// `GET /auth/github/login` and `GET /auth/github/callback`; both 404 without `auth.github`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(LOGIN_PATH, get(login))
        .route(CALLBACK_PATH, get(callback))
}

fn not_configured() -> Problem {
    Problem::not_found("GitHub sign-in is not configured on this server (auth.github)")
}

/// `GET /auth/github/login`: 302 to GitHub's authorize page, with a new `state` in
/// `bosun_oauth_state` (10 minutes, only for `/auth/github`; under TLS
/// `__Host-bosun_oauth_state`, for `/`), and the callback URL: the
/// configured `redirect_uri`, else this server as the browser named it (kept in the cookie, so
/// the callback sends GitHub the very same).
async fn login(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Problem> {
    let github = state.github.clone().ok_or_else(not_configured)?;
    let (redirect_uri, kept) = match &github.redirect_uri {
        Some(configured) => (configured.clone(), None),
        None => {
            let made = callback_url(&headers, state.https)?;
            let kept = URL_SAFE_NO_PAD.encode(made.as_bytes());
            (made, Some(kept))
        }
    };
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| {
        tracing::error!(error = %e, "no randomness for an OAuth state");
        Problem::internal()
    })?;
    let oauth_state: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let location = github.authorize_location(&oauth_state, &redirect_uri);
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(|_| Problem::internal())?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let value = match kept {
        Some(kept) => format!("{oauth_state}.{kept}"),
        None => oauth_state,
    };
    let (name, path) = state_cookie_of(state.https);
    let cookie = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={STATE_SECONDS}{}",
        secure(state.https)
    );
    headers.append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| Problem::internal())?,
    );
    Ok(response)
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// GitHub's, when the user did not authorize the app (`access_denied`).
    error: Option<String>,
}

/// `GET /auth/github/callback?code=…&state=…`: 303 to `/#jobs` with the console's session
/// cookies (for `session_seconds`); a refusal is a small page for a browser (a problem for
/// other clients): 400 `oauth_state` (no state, or not the cookie's), 403 `oauth_denied`, 400
/// `oauth_code`, 401, 403 `not_a_member` / `no_role` / `github_org_access` / `github_login`,
/// 503 `github_unavailable`. The state cookie is cleared.
async fn callback(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let browser = wants_html(&headers);
    let https = state.https;
    let answer = match signed_in(&state, &origin, &headers, query).await {
        Ok(response) => response,
        Err(problem) if browser => refusal_page(&problem),
        Err(problem) => problem.into_response(),
    };
    let mut answer = answer;
    let (name, path) = state_cookie_of(https);
    let clear = format!(
        "{name}=; Path={path}; HttpOnly; SameSite=Lax; Max-Age=0{}",
        secure(https)
    );
    if let Ok(value) = HeaderValue::from_str(&clear) {
        answer.headers_mut().append(header::SET_COOKIE, value);
    }
    answer
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

/// The state cookie's value: the state, and the callback URL the login sent if it kept one.
fn state_cookie(value: &str) -> (&str, Option<String>) {
    match value.split_once('.') {
        Some((state, kept)) => {
            let uri = URL_SAFE_NO_PAD
                .decode(kept)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|uri| check_github_redirect_uri(uri).is_ok());
            (state, uri)
        }
        None => (value, None),
    }
}

async fn signed_in(
    state: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    query: CallbackQuery,
) -> Result<Response, Problem> {
    let github = state.github.clone().ok_or_else(not_configured)?;
    let bad_state = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "oauth_state",
            "the sign-in's state is missing or not this browser's (an old or forged link): sign in again from the start",
        )
    };
    let (name, _) = state_cookie_of(state.https);
    let cookie = crate::console::session::cookie(headers, name).ok_or_else(bad_state)?;
    let (expected, kept_uri) = state_cookie(cookie);
    let state_matches = query
        .state
        .as_deref()
        .is_some_and(|given| constant_time_eq(expected.as_bytes(), given.as_bytes()));
    if !state_matches {
        return Err(bad_state());
    }
    // The callback URL the login sent GitHub: GitHub gives a token only for the same.
    let redirect_uri = match (&github.redirect_uri, kept_uri) {
        (Some(configured), _) => configured.clone(),
        (None, Some(kept)) => kept,
        (None, None) => return Err(bad_state()),
    };
    if let Some(error) = query.error {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "oauth_denied",
            format!("GitHub did not authorize the sign-in ({error})"),
        ));
    }
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "oauth_code",
            "GitHub sent no code: sign in again",
        ));
    };
    // One turn for the exchange and the check: the code is spent by the exchange, so the check
    // after it must not wait for a second turn (and be refused for want of one).
    let allowed = {
        let _turn = github.turn().await.map_err(unavailable)?;
        let token = github
            .client
            .exchange_code(
                &github.client_id,
                &github.client_secret,
                &code,
                &redirect_uri,
            )
            .await
            .map_err(unavailable)?;
        github
            .check_in_turn(token.expose_secret())
            .await
            .map_err(unavailable)?
            .map_err(|refusal| refused(&refusal))?
    };
    let (issued, _) = state
        .commands
        .github_sign_in(
            origin,
            &allowed.login,
            allowed.scopes,
            github.team.clone(),
            github.session_seconds,
        )
        .await?;
    tracing::info!(login = %allowed.login, token_id = %issued.token_id, "signed in with GitHub");
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/#jobs"));
    crate::console::session::signed_in_cookies(
        headers,
        &issued.token,
        github.session_seconds,
        state.https,
    );
    Ok(response)
}

/// Where GitHub sends the browser back when no `redirect_uri` is configured: this server as
/// the browser named it (`Host`), under its scheme. GitHub accepts it only if it is under the
/// OAuth app's callback URL.
fn callback_url(headers: &HeaderMap, https: bool) -> Result<String, Problem> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::trim)
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_host",
                "the request names no host (Host) a browser can come back to",
            )
        })?;
    let scheme = if https { "https" } else { "http" };
    Ok(format!("{scheme}://{host}{CALLBACK_PATH}"))
}

fn secure(https: bool) -> &'static str {
    if https {
        "; Secure"
    } else {
        ""
    }
}

/// Whether the client asks for a page (a browser's `Accept: text/html,…`).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// A refusal as a small page: what happened, its code, and a way back.
fn refusal_page(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
    let detail = problem.detail.as_deref().unwrap_or_default();
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>GitHub sign-in refused</title></head>\n<body><h1>GitHub sign-in refused</h1>\n<p>{}</p>\n<p><code>{}</code></p>\n<p><a href=\"/\">Back to the console</a></p></body></html>\n",
        escape_html(detail),
        escape_html(problem.code),
    );
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page,
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(problem.retry_after.map_or(1, std::num::NonZeroU16::get)),
        );
    }
    response
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Equal strings, compared in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_comes_back_to_the_host_the_browser_named() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("bosun.example:8443"));
        assert_eq!(
            callback_url(&headers, true).unwrap(),
            "https://bosun.example:8443/auth/github/callback"
        );
        assert_eq!(
            callback_url(&headers, false).unwrap(),
            "http://bosun.example:8443/auth/github/callback"
        );
        headers.insert(header::HOST, HeaderValue::from_static("evil/path?x"));
        assert_eq!(callback_url(&headers, false).unwrap_err().status, 400);
        assert_eq!(
            callback_url(&HeaderMap::new(), false).unwrap_err().status,
            400
        );
    }

    #[tokio::test]
    async fn a_refusal_page_escapes_what_it_shows() {
        let problem = Problem::new(StatusCode::FORBIDDEN, "no_role", "<script>x</script> & co");
        let response = refusal_page(&problem);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[header::CONTENT_SECURITY_POLICY],
            "default-src 'none'"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains("&lt;script&gt;x&lt;/script&gt; &amp; co"),
            "{body}"
        );
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("<code>no_role</code>"), "{body}");
        // A 503's page says when to come back, as GitHub asked.
        let unavailable = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "github_unavailable", "x")
            .with_retry_after(42);
        assert_eq!(
            refusal_page(&unavailable).headers()[header::RETRY_AFTER],
            "42"
        );
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    fn settings(extra: impl FnOnce(&mut GithubSettings)) -> GithubSettings {
        let mut settings = GithubSettings {
            client_id: "id".into(),
            org: "Acme".into(),
            base_url: "https://github.com".into(),
            api_url: "https://api.github.com/".into(),
            cache_seconds: 60,
            session_seconds: 3600,
            ..GithubSettings::default()
        };
        extra(&mut settings);
        settings
    }

    #[test]
    fn the_client_secret_is_read_from_its_file_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let github = Github::new(&settings(|s| s.client_secret_file = Some(path.clone()))).unwrap();
        assert_eq!(github.client_secret.expose_secret(), "s3cret");
        assert_eq!(github.org, "acme");
        assert_eq!(github.refused_for, Duration::from_secs(30));
        let location = github.authorize_location("abc", "http://h/auth/github/callback");
        assert_eq!(
            location,
            "https://github.com/login/oauth/authorize?client_id=id&redirect_uri=http%3A%2F%2Fh%2Fauth%2Fgithub%2Fcallback&scope=read%3Aorg&state=abc"
        );
        std::fs::write(&path, "\n").unwrap();
        let empty = Github::new(&settings(|s| s.client_secret_file = Some(path.clone())));
        assert!(empty.err().unwrap().contains("is empty"));
        let missing = Github::new(&settings(|s| {
            s.client_secret_file = Some(dir.path().join("nope"))
        }));
        let missing = missing.err().unwrap();
        assert!(
            missing.contains("auth.github.client_secret_file") && missing.contains("nope"),
            "{missing}"
        );
        // Checked as the configuration is.
        let both = Github::new(&settings(|s| {
            s.client_secret = Some(SecretString::from("x".to_string()));
            s.client_secret_file = Some(path.clone());
        }));
        assert!(both.err().unwrap().contains("not both"));
    }

    #[tokio::test]
    async fn at_most_16_checks_ask_github_at_once_and_one_kept_waiting_is_503() {
        let mut github = Github::new(&settings(|s| {
            s.client_secret = Some(SecretString::from("x".to_string()))
        }))
        .unwrap();
        github.turn_wait = Duration::from_millis(300);
        let github = github;
        let mut held = Vec::new();
        for _ in 0..MAX_CONCURRENT_CHECKS {
            held.push(github.turn().await.expect("a turn"));
        }
        // Every turn taken: the 17th check waits its while, then is refused before it asks
        // GitHub anything.
        let started = Instant::now();
        let busy = github.check_in_time("gho_made_up").await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(
            matches!(
                &busy,
                GithubError::Unavailable {
                    retry_after: Some(5),
                    ..
                }
            ),
            "{busy:?}"
        );
        let answer = unavailable(busy);
        assert_eq!((answer.status, answer.code), (503, "github_unavailable"));
        assert_eq!(answer.into_response().headers()[header::RETRY_AFTER], "5");
        // One given back while another waits: that one gets it.
        let (waited, ()) = tokio::join!(github.turn(), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            held.pop();
        });
        assert!(waited.is_ok());
        assert_eq!(github.turns.available_permits(), 0);
        drop(waited);
        drop(held);
        assert_eq!(github.turns.available_permits(), MAX_CONCURRENT_CHECKS);
    }

    #[test]
    fn the_state_cookie_is_host_prefixed_for_the_whole_site_under_tls() {
        assert_eq!(state_cookie_of(true), ("__Host-bosun_oauth_state", "/"));
        assert_eq!(
            state_cookie_of(false),
            ("bosun_oauth_state", "/auth/github")
        );
    }

    #[test]
    fn states_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn only_what_looks_like_a_github_token_is_sent_to_github() {
        for token in [
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            "ghp_abc",
            "ghu_x",
            "ghs_x",
            "ghr_x",
            "github_pat_11ABCDEFG_abcdef",
            "gho_alice_token",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(looks_like_github_token(token), "{token}");
        }
        for token in [
            "",
            "gho_",
            "gho_a-b",
            "gho_a.b",
            "GHO_abc",
            "bosun_abc",
            "not-a-token",
            "0123456789ABCDEF0123456789ABCDEF01234567",
            "0123456789abcdef0123456789abcdef0123456",
            &format!("ghp_{}", "a".repeat(252)),
        ] {
            assert!(!looks_like_github_token(token), "{token}");
        }
        assert!(looks_like_github_token(&format!("ghp_{}", "a".repeat(251))));
    }

    #[test]
    fn a_check_is_held_no_longer_than_its_bosun_token_is_reused() {
        let now = Utc::now();
        let minute = Duration::from_secs(60);
        // Far from its expiry: the configured time.
        assert_eq!(
            held_for(minute, now + chrono::Duration::hours(1), now),
            minute
        );
        // Close to it: until it is no longer reused (5 minutes before it expires).
        assert_eq!(
            held_for(minute, now + chrono::Duration::seconds(320), now),
            Duration::from_secs(20)
        );
        assert_eq!(
            held_for(minute, now + chrono::Duration::seconds(100), now),
            Duration::ZERO
        );
        assert_eq!(
            held_for(minute, now - chrono::Duration::hours(1), now),
            Duration::ZERO
        );
    }

    #[test]
    fn the_state_cookie_keeps_the_callback_url_the_login_sent() {
        let uri = "https://bosun.example:8443/auth/github/callback";
        let value = format!("abc.{}", URL_SAFE_NO_PAD.encode(uri));
        assert_eq!(state_cookie(&value), ("abc", Some(uri.to_string())));
        assert_eq!(state_cookie("abc"), ("abc", None));
        // One not made by a login (a forged cookie) is not sent to GitHub.
        for bad in [
            "https://evil.example/steal",
            "javascript:alert(1)//auth/github/callback",
        ] {
            let value = format!("abc.{}", URL_SAFE_NO_PAD.encode(bad));
            assert_eq!(state_cookie(&value), ("abc", None), "{bad}");
        }
        assert_eq!(state_cookie("abc.!!!"), ("abc", None));
    }

    #[test]
    fn github_refusals_and_failures_answer_as_they_should() {
        assert_eq!(
            unavailable(GithubError::Forbidden("the membership check".into())).code,
            "github_org_access"
        );
        let limited = unavailable(GithubError::Unavailable {
            why: "rate limit".into(),
            retry_after: Some(30),
        });
        assert_eq!((limited.status, limited.code), (503, "github_unavailable"));
        let response = limited.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
        let down = unavailable(GithubError::unavailable("502")).into_response();
        assert_eq!(down.headers()[header::RETRY_AFTER], "1");
        let login = refused(&Refusal::BadLogin {
            login: "a.b".into(),
        });
        assert_eq!((login.status, login.code), (403, "github_login"));
    }
}
