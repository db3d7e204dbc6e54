//! A stand-in GitHub for the tests: an HTTP server on `127.0.0.1:0` answering the calls Bosun
//! makes to GitHub as GitHub does — the OAuth pages (`GET /login/oauth/authorize`, which sends
//! the browser straight back with a new `code=<login>-code-<n>`, as the user
//! [`StandInGithub::sign_in_as`] names; `POST /login/oauth/access_token`, which takes a code
//! once, and only with the `redirect_uri` the authorize page was given), and the API
//! (`GET /user`, `GET /user/orgs`, `GET /orgs/{org}/members/{login}`, which needs the caller's
//! own token). Its users (login, token, organizations, membership of the organization Bosun
//! admits) change while it runs; it counts the calls to each path, so a test sees what a cache
//! saved, and can be made to fail like a GitHub that is down (502), rate limited (429, or 403
//! with `x-ratelimit-remaining: 0`) or keeping a token out of an organization behind SSO (403),
//! and to answer slowly.

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "stand-in-client";
pub const CLIENT_SECRET: &str = "stand-in-secret-5be1d0";

/// A GitHub user of the stand-in.
#[derive(Clone, Debug)]
pub struct GithubUser {
    pub login: String,
    pub token: String,
    pub email: Option<String>,
    /// Organizations they are in, besides the admitted one (see `member`).
    pub orgs: Vec<String>,
    /// Whether they are a member of the organization the stand-in was started with.
    pub member: bool,
}

impl GithubUser {
    /// `login`, with token `gho_<login>_token` and no email, a member of the admitted
    /// organization if `member`.
    pub fn new(login: &str, member: bool) -> GithubUser {
        GithubUser {
            login: login.to_string(),
            token: format!("gho_{login}_token"),
            email: None,
            orgs: vec![],
            member,
        }
    }

    pub fn with_orgs(mut self, orgs: &[&str]) -> GithubUser {
        self.orgs = orgs.iter().map(|o| o.to_string()).collect();
        self
    }

    pub fn with_email(mut self, email: &str) -> GithubUser {
        self.email = Some(email.to_string());
        self
    }

    pub fn with_token(mut self, token: &str) -> GithubUser {
        self.token = token.to_string();
        self
    }
}

/// How a path of the stand-in fails: its status and headers, with GitHub's JSON message.
#[derive(Clone, Debug)]
pub struct Failure {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Failure {
    /// GitHub down.
    pub fn down() -> Failure {
        Failure {
            status: 502,
            headers: vec![],
        }
    }

    /// A 403 that is no rate limit: an organization's SAML SSO the token is not authorized for.
    pub fn sso() -> Failure {
        Failure {
            status: 403,
            headers: vec![],
        }
    }

    /// GitHub's secondary rate limit: 429 with `Retry-After: <seconds>`.
    pub fn too_many(seconds: u64) -> Failure {
        Failure {
            status: 429,
            headers: vec![("retry-after".into(), seconds.to_string())],
        }
    }

    /// GitHub's primary rate limit: 403 with `x-ratelimit-remaining: 0`, reset at `reset`
    /// (seconds since the epoch).
    pub fn exhausted(reset: i64) -> Failure {
        Failure {
            status: 403,
            headers: vec![
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset".into(), reset.to_string()),
            ],
        }
    }
}

#[derive(Default)]
struct World {
    org: String,
    users: Vec<GithubUser>,
    /// Who the next authorize page signs in.
    signing_in: Option<String>,
    /// The codes handed out and not used yet: whose, and the `redirect_uri` given with them.
    codes: HashMap<String, (String, String)>,
    codes_made: usize,
    calls: HashMap<String, usize>,
    /// How each path (`*`: every one) fails, if it does.
    failures: HashMap<String, Failure>,
    /// How long each answer of the API waits.
    delay: std::time::Duration,
    /// Requests to the API that lacked GitHub's headers (a User-Agent, its Accept).
    bad_headers: usize,
}

type Shared = Arc<Mutex<World>>;

/// The running stand-in; dropping it stops it.
pub struct StandInGithub {
    /// `http://127.0.0.1:<port>`: both `base_url` and `api_url`.
    pub url: String,
    world: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandInGithub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandInGithub {
    /// Serves `users`; `org` is the organization Bosun admits.
    pub async fn start(org: &str, users: Vec<GithubUser>) -> StandInGithub {
        let world: Shared = Arc::new(Mutex::new(World {
            org: org.to_string(),
            users,
            ..Default::default()
        }));
        let router = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/orgs", get(user_orgs))
            .route("/orgs/{org}/members/{login}", get(membership))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in GitHub");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        StandInGithub { url, world, task }
    }

    /// The `auth:` section of a Bosun configuration using this stand-in, with `extra` lines
    /// (already indented by 4 spaces) under `github:`.
    pub fn config(&self, extra: &str) -> String {
        let org = self.lock().org.clone();
        format!(
            "auth:\n  github:\n    client_id: {CLIENT_ID}\n    client_secret: {CLIENT_SECRET}\n    org: {org}\n    base_url: {url}\n    api_url: {url}\n{extra}",
            url = self.url
        )
    }

    /// The next authorize page signs `login` in.
    pub fn sign_in_as(&self, login: &str) {
        self.lock().signing_in = Some(login.to_string());
    }

    /// Makes `login` a member of the admitted organization, or not.
    pub fn set_member(&self, login: &str, member: bool) {
        let mut world = self.lock();
        if let Some(user) = world.users.iter_mut().find(|u| u.login == login) {
            user.member = member;
        }
    }

    /// Sets `login`'s organizations (besides the admitted one).
    pub fn set_orgs(&self, login: &str, orgs: &[&str]) {
        let mut world = self.lock();
        if let Some(user) = world.users.iter_mut().find(|u| u.login == login) {
            user.orgs = orgs.iter().map(|o| o.to_string()).collect();
        }
    }

    /// Every answer (the code exchange's and the API's) a 502 (GitHub down), or none.
    pub fn set_failing(&self, failing: bool) {
        let mut world = self.lock();
        if failing {
            world.failures.insert("*".into(), Failure::down());
        } else {
            world.failures.clear();
        }
    }

    /// The answers of `path` (as [`StandInGithub::calls`] names them; `*`: every one) fail so.
    pub fn fail(&self, path: &str, failure: Failure) {
        self.lock().failures.insert(path.to_string(), failure);
    }

    /// Each answer of the API waits `delay` first.
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.lock().delay = delay;
    }

    /// How many calls were made to `path` (`/user`, `/user/orgs`, `/orgs/members`,
    /// `/login/oauth/access_token`, `/login/oauth/authorize`).
    pub fn calls(&self, path: &str) -> usize {
        self.lock().calls.get(path).copied().unwrap_or(0)
    }

    /// How many API requests came without GitHub's headers.
    pub fn bad_headers(&self) -> usize {
        self.lock().bad_headers
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().expect("the stand-in's state")
    }
}

fn count(world: &mut World, path: &str) {
    *world.calls.entry(path.to_string()).or_default() += 1;
}

/// The caller of an API request, by its `Authorization: token <t>` or `Bearer <t>`; checks
/// GitHub's headers too (counted when missing).
fn caller(world: &mut World, headers: &HeaderMap) -> Option<GithubUser> {
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    if header(header::USER_AGENT).is_empty()
        || header(header::ACCEPT) != "application/vnd.github+json"
    {
        world.bad_headers += 1;
    }
    let authorization = header(header::AUTHORIZATION);
    let token = authorization
        .strip_prefix("token ")
        .or_else(|| authorization.strip_prefix("Bearer "))?;
    world.users.iter().find(|u| u.token == token).cloned()
}

fn bad_credentials() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})),
    )
        .into_response()
}

/// How `path` fails now, if it does, as GitHub answers it.
fn failure(world: &World, path: &str) -> Option<Response> {
    let failure = world
        .failures
        .get(path)
        .or_else(|| world.failures.get("*"))?;
    let status = StatusCode::from_u16(failure.status).expect("a status");
    let mut response = (
        status,
        Json(json!({"message": "stand-in GitHub fails", "documentation_url": "https://docs.github.com/rest"})),
    )
        .into_response();
    for (name, value) in &failure.headers {
        response.headers_mut().insert(
            header::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            header::HeaderValue::from_str(value).expect("a header value"),
        );
    }
    Some(response)
}

/// Counts a call to `path` and says how it fails, if it does, after the delay.
async fn enter(world: &Shared, path: &str) -> Option<Response> {
    let delay = {
        let mut world = world.lock().expect("the stand-in's state");
        count(&mut world, path);
        world.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    failure(&world.lock().expect("the stand-in's state"), path)
}

async fn authorize(
    State(world): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut world = world.lock().expect("the stand-in's state");
    count(&mut world, "/login/oauth/authorize");
    let (Some(redirect_uri), Some(state)) = (query.get("redirect_uri"), query.get("state")) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri and state are required",
        )
            .into_response();
    };
    if query.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || query.get("scope").map(String::as_str) != Some("read:org")
    {
        return (StatusCode::BAD_REQUEST, "wrong client_id or scope").into_response();
    }
    let login = world.signing_in.clone().unwrap_or_default();
    world.codes_made += 1;
    let code = format!("{login}-code-{}", world.codes_made);
    world
        .codes
        .insert(code.clone(), (login, redirect_uri.clone()));
    let back =
        serde_urlencoded::to_string([("code", code), ("state", state.clone())]).expect("a query");
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{redirect_uri}?{back}"))],
    )
        .into_response()
}

async fn access_token(
    State(world): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(failed) = enter(&world, "/login/oauth/access_token").await {
        return failed;
    }
    let mut world = world.lock().expect("the stand-in's state");
    let json_asked = headers
        .get(header::ACCEPT)
        .is_some_and(|a| a == "application/json");
    if !json_asked {
        return (StatusCode::NOT_ACCEPTABLE, "ask for application/json").into_response();
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return Json(json!({"error": "incorrect_client_credentials"})).into_response();
    }
    let code = form.get("code").cloned().unwrap_or_default();
    // A code works once, and only with the redirect_uri it was made for.
    let Some((login, redirect_uri)) = world.codes.remove(&code) else {
        return Json(json!({
            "error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired.",
        }))
        .into_response();
    };
    if form.get("redirect_uri") != Some(&redirect_uri) {
        return Json(json!({
            "error": "redirect_uri_mismatch",
            "error_description": "The redirect_uri MUST match the registered callback URL for this application.",
        }))
        .into_response();
    }
    let user = world.users.iter().find(|u| u.login == login);
    match user {
        Some(user) => Json(json!({
            "access_token": user.token,
            "token_type": "bearer",
            "scope": "read:org",
        }))
        .into_response(),
        None => Json(json!({
            "error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired.",
        }))
        .into_response(),
    }
}

async fn user(State(world): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(failed) = enter(&world, "/user").await {
        return failed;
    }
    let mut world = world.lock().expect("the stand-in's state");
    match caller(&mut world, &headers) {
        Some(user) => Json(json!({
            "login": user.login,
            "id": 1000 + user.login.len(),
            "type": "User",
            "email": user.email,
        }))
        .into_response(),
        None => bad_credentials(),
    }
}

async fn user_orgs(State(world): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(failed) = enter(&world, "/user/orgs").await {
        return failed;
    }
    let mut world = world.lock().expect("the stand-in's state");
    let org = world.org.clone();
    match caller(&mut world, &headers) {
        Some(user) => {
            let mut orgs = user.orgs.clone();
            if user.member {
                orgs.push(org);
            }
            let listed: Vec<_> = orgs.iter().map(|o| json!({"login": o})).collect();
            Json(listed).into_response()
        }
        None => bad_credentials(),
    }
}

async fn membership(
    State(world): State<Shared>,
    Path((org, login)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(failed) = enter(&world, "/orgs/members").await {
        return failed;
    }
    let mut world = world.lock().expect("the stand-in's state");
    let admitted = world.org.clone();
    let Some(caller) = caller(&mut world, &headers) else {
        return bad_credentials();
    };
    let member_of = |user: &GithubUser, org: &str| {
        (user.member && org.eq_ignore_ascii_case(&admitted))
            || user.orgs.iter().any(|o| o.eq_ignore_ascii_case(org))
    };
    if !member_of(&caller, &org) {
        // GitHub sends a caller who is no member to the public membership.
        return (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                format!("/orgs/{org}/public_members/{login}"),
            )],
        )
            .into_response();
    }
    let target = world
        .users
        .iter()
        .find(|u| u.login.eq_ignore_ascii_case(&login));
    match target {
        Some(user) if member_of(user, &org) => StatusCode::NO_CONTENT.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
