//! The calls Bosun makes to GitHub: the OAuth code exchange (`POST {base_url}/login/oauth/
//! access_token`), the token's user (`GET {api_url}/user`), their organizations
//! (`GET {api_url}/user/orgs`) and their membership of one (`GET {api_url}/orgs/{org}/members/
//! {login}`), each with GitHub's headers and a bounded time. A GitHub token is sent to GitHub
//! only, in `Authorization`, and appears in no error or log line.
//!
//! GitHub's answers other than the expected ones: 401 is a token it does not take; its rate
//! limit (429, or a 403 with `x-ratelimit-remaining: 0` or a `Retry-After`) is a passing
//! [`GithubError::Unavailable`] with the wait GitHub asks for; any other 403 is a refusal
//! ([`GithubError::Forbidden`]: an organization's SAML SSO the token is not authorized for, or
//! its OAuth app policy); a redirect (a renamed organization) or a 5xx is unavailable.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;

/// The longest one call to GitHub may take, connecting included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many pages of organizations are read (100 each).
const MAX_ORG_PAGES: usize = 10;
const ORGS_PER_PAGE: usize = 100;

/// What a call to GitHub came to, when it is not an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GithubError {
    /// GitHub says the token is not (or no longer) valid.
    #[error("GitHub does not accept the token")]
    BadToken,
    /// GitHub refused an OAuth code (expired, used, or not this app's).
    #[error("GitHub refused the sign-in code: {0}")]
    BadCode(String),
    /// GitHub answered 403, not for its rate limit: the token may not see what was asked (an
    /// organization's SSO it is not authorized for, the organization's OAuth app policy). The
    /// text says what was asked.
    #[error("GitHub refused {0} (403)")]
    Forbidden(String),
    /// GitHub did not answer, or not as expected (a timeout, a 5xx, a redirect, its rate
    /// limit): a passing condition, to retry after `retry_after` seconds if GitHub said. The
    /// text says what, without any secret.
    #[error("GitHub is unavailable: {why}")]
    Unavailable {
        why: String,
        retry_after: Option<u64>,
    },
}

impl GithubError {
    /// [`GithubError::Unavailable`] for `why`, with no wait GitHub asked for.
    pub fn unavailable(why: impl Into<String>) -> GithubError {
        GithubError::Unavailable {
            why: why.into(),
            retry_after: None,
        }
    }
}

/// The longest wait a rate limit is answered with (GitHub's reset is within the hour).
const MAX_RETRY_AFTER: u64 = 3600;

/// A GitHub user, as `/user` gives them (their email is not asked for: Bosun keeps none).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GithubUser {
    pub login: String,
}

#[derive(Deserialize)]
struct Organization {
    login: String,
}

/// GitHub's OAuth answer: a token, or an error (both with status 200).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A client of one GitHub (github.com or an Enterprise server).
#[derive(Clone)]
pub struct GithubClient {
    http: reqwest::Client,
    base_url: String,
    api_url: String,
}

impl GithubClient {
    /// `base_url` and `api_url` without a trailing `/`.
    pub fn new(base_url: &str, api_url: &str) -> Result<GithubClient, String> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect is an answer of its own here (a membership GitHub will not show).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bosun/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("auth.github: cannot make an HTTP client: {e}"))?;
        Ok(GithubClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_url: api_url.trim_end_matches('/').to_string(),
        })
    }

    /// The address GitHub's OAuth authorize page is at.
    pub fn authorize_url(&self) -> String {
        format!("{}/login/oauth/authorize", self.base_url)
    }

    /// Exchanges an OAuth `code` for the user's token.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        code: &str,
        redirect_uri: &str,
    ) -> Result<SecretString, GithubError> {
        let response = self
            .http
            .post(format!("{}/login/oauth/access_token", self.base_url))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("client_id", client_id),
                ("client_secret", client_secret.expose_secret()),
                ("code", code),
                ("redirect_uri", redirect_uri),
            ])
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(unexpected("the code exchange", &response));
        }
        let answer: TokenAnswer = response.json().await.map_err(|_| {
            GithubError::unavailable("the code exchange's answer is not GitHub's JSON")
        })?;
        match (answer.access_token, answer.error) {
            (Some(token), None) if !token.is_empty() => Ok(SecretString::from(token)),
            (_, Some(error)) => Err(GithubError::BadCode(match answer.error_description {
                Some(description) => format!("{error}: {description}"),
                None => error,
            })),
            _ => Err(GithubError::unavailable(
                "the code exchange answered neither a token nor an error",
            )),
        }
    }

    /// The user `token` is of; [`GithubError::BadToken`] if GitHub does not accept it.
    pub async fn user(&self, token: &str) -> Result<GithubUser, GithubError> {
        let response = self.get(token, "/user").await?;
        match response.status().as_u16() {
            200 => response.json().await.map_err(|_| {
                GithubError::unavailable("/user answered something other than a user")
            }),
            401 => Err(GithubError::BadToken),
            _ => Err(unexpected("/user", &response)),
        }
    }

    /// Whether `login` is a member of `org`, as the token of `login` sees it: 204 is, 404 (or a
    /// redirect to the public membership: the caller is no member) is not.
    pub async fn is_member(
        &self,
        token: &str,
        org: &str,
        login: &str,
    ) -> Result<bool, GithubError> {
        let response = self
            .get(token, &format!("/orgs/{org}/members/{login}"))
            .await?;
        match response.status().as_u16() {
            204 => Ok(true),
            302 | 404 => Ok(false),
            401 => Err(GithubError::BadToken),
            _ => Err(unexpected("the membership check", &response)),
        }
    }

    /// The logins (lowercased) of the organizations the token's user is in, as far as the token
    /// may see them (`read:org` shows the private memberships).
    pub async fn organizations(&self, token: &str) -> Result<Vec<String>, GithubError> {
        let mut logins = Vec::new();
        for page in 1..=MAX_ORG_PAGES {
            let response = self
                .get(
                    token,
                    &format!("/user/orgs?per_page={ORGS_PER_PAGE}&page={page}"),
                )
                .await?;
            let organizations: Vec<Organization> = match response.status().as_u16() {
                200 => response.json().await.map_err(|_| {
                    GithubError::unavailable("/user/orgs answered something other than a list")
                })?,
                401 => return Err(GithubError::BadToken),
                _ => return Err(unexpected("/user/orgs", &response)),
            };
            let full = organizations.len() == ORGS_PER_PAGE;
            logins.extend(
                organizations
                    .into_iter()
                    .map(|o| o.login.to_ascii_lowercase()),
            );
            if !full {
                break;
            }
        }
        Ok(logins)
    }

    async fn get(&self, token: &str, path: &str) -> Result<reqwest::Response, GithubError> {
        self.http
            .get(format!("{}{path}", self.api_url))
            .header(reqwest::header::AUTHORIZATION, format!("token {token}"))
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(unreachable)
    }
}

/// A call that got no answer. reqwest's error names the URL (never a header), which holds no
/// secret; it is said without its source chain all the same, short.
fn unreachable(e: reqwest::Error) -> GithubError {
    let what = if e.is_timeout() {
        "GitHub did not answer in time"
    } else if e.is_connect() {
        "GitHub could not be reached"
    } else {
        "the call to GitHub failed"
    };
    GithubError::unavailable(what)
}

/// An answer where it makes no sense (see the [module](self)): GitHub's rate limit, another
/// 403, a redirect, a 5xx.
fn unexpected(what: &str, response: &reqwest::Response) -> GithubError {
    let status = response.status().as_u16();
    let headers = response.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    if status == 429 || (status == 403 && (exhausted || header("retry-after").is_some())) {
        // GitHub's reset time (seconds since the epoch) when it gives no `Retry-After`.
        let until_reset = || {
            let reset = header("x-ratelimit-reset")?.parse::<i64>().ok()?;
            u64::try_from(reset - chrono::Utc::now().timestamp()).ok()
        };
        let wait = retry_after
            .or_else(until_reset)
            .unwrap_or(60)
            .clamp(1, MAX_RETRY_AFTER);
        return GithubError::Unavailable {
            why: format!("{what} hit GitHub's rate limit ({status}); it asks to wait {wait} s"),
            retry_after: Some(wait),
        };
    }
    match status {
        403 => GithubError::Forbidden(what.to_string()),
        301 | 302 | 307 | 308 => {
            // Not followed: a redirect of the API is a renamed organization (or user), which
            // the configuration must follow, not the server on its own.
            let to = header("location").unwrap_or("elsewhere");
            GithubError::unavailable(format!(
                "{what} answered {status}, a redirect to {to}: was auth.github.org renamed? (GitHub sends an old organization name's calls to the new one)"
            ))
        }
        _ => GithubError::unavailable(format!("{what} answered {status}")),
    }
}
