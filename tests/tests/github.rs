//! GitHub sign-in against a stand-in GitHub (`bosun_tests::github`): the OAuth web flow to the
//! console's session cookie, with which a write member runs a job (and its refusals: a forged
//! or missing state, a non-member, a bad code; under TLS its cookies `__Host-` and Secure),
//! GitHub tokens as API tokens (Basic `<token>:x-oauth-basic` and Bearer) with the roles of
//! `auth.github.authorization` (a write member runs a job, a read-only member watches it and
//! may not kill it, a write-only one reads nothing, a non-member and a member of neither list
//! are refused, a bad token is 401, GitHub down is 503), the cache of GitHub's answers (one
//! check for many requests; a member who leaves is refused once it expires), and the GitHub
//! token kept out of the log. Without `auth.github` nothing of it answers.

use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, StreamId};
use bosun_tests::console::set_cookies;
use bosun_tests::github::{Failure, GithubUser, StandInGithub, CLIENT_ID, CLIENT_SECRET};
use bosun_tests::receivers::SmtpSink;
use bosun_tests::{spawn_app, Answer, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const ORG: &str = "acme";

const CATALOG: &str = r#"
catalog:
  shop:
    production:
      hello:
        command: ["sh", "-c", "echo hello from github"]
      sleep:
        command: ["sh", "-c", "echo sleeping; exec sleep 600"]
"#;

/// alice writes, bob reads, carol reads through an organization, frank does both; dave is a
/// member in neither list; eve is no member. ann_acme (an Enterprise Managed User's login) and
/// bad.login (a login no GitHub gives, with token `gho_badlogin_token`) are in no list.
fn users() -> Vec<GithubUser> {
    vec![
        GithubUser::new("alice", true).with_email("alice@example.org"),
        GithubUser::new("bob", true),
        GithubUser::new("carol", true).with_orgs(&["Readers"]),
        GithubUser::new("dave", true),
        GithubUser::new("eve", false),
        GithubUser::new("Frank", true),
        GithubUser::new("ann_acme", true),
        GithubUser::new("bad.login", true).with_token("gho_badlogin_token"),
    ]
}

/// No one is in organization `writers` at first.
const AUTHORIZATION: &str =
    "    authorization:\n      read: [bob, readers, frank]\n      write: [alice, Frank, writers]\n    team: github\n";

async fn start(extra: &str) -> (StandInGithub, TestApp) {
    let github = StandInGithub::start(ORG, users()).await;
    let app = spawn_app(&format!("{CATALOG}{}", github.config(extra))).await;
    (github, app)
}

fn token_of(login: &str) -> String {
    format!("gho_{login}_token")
}

/// `method path` with GitHub token `token` as pulsar sends it: Basic `<token>:x-oauth-basic`.
async fn basic(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .request(method, app.url(path))
        .basic_auth(token, Some("x-oauth-basic"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    Answer::read(request.send().await.expect("the request")).await
}

async fn bearer(app: &TestApp, token: &str, path: &str) -> Answer {
    let request = reqwest::Client::new().get(app.url(path)).bearer_auth(token);
    Answer::read(request.send().await.expect("the request")).await
}

/// The `Set-Cookie` values of `answer` named `name` (their whole text).
fn set_cookie<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value)
        .expect("name=value")
}

/// A client that follows no redirect, so each hop is seen.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

async fn get(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Answer::read(request.send().await.expect("the request")).await
}

/// The web flow up to the callback: `/auth/github/login`, then the stand-in's authorize page
/// (signing `login` in). Gives the state, the `Cookie` header the browser then sends (the state
/// cookie) and the callback URL GitHub sends the browser back to.
async fn to_the_callback(
    app: &TestApp,
    github: &StandInGithub,
    login: &str,
) -> (String, String, String) {
    to_the_callback_with(app, github, login, &no_redirects(), None).await
}

/// [`to_the_callback`] with `client`, and the callback URL the login should send if it is not
/// the app's own.
async fn to_the_callback_with(
    app: &TestApp,
    github: &StandInGithub,
    login: &str,
    client: &reqwest::Client,
    redirect_uri: Option<&str>,
) -> (String, String, String) {
    let started = get(client, &app.url("/auth/github/login"), &[]).await;
    assert_eq!(started.status, StatusCode::FOUND, "{}", started.body);
    let location = started.header("location").to_string();
    let authorize = format!("{}/login/oauth/authorize?", github.url);
    assert!(location.starts_with(&authorize), "{location}");
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(&location[authorize.len()..]).expect("a query");
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {location}"))
    };
    assert_eq!(param("client_id"), CLIENT_ID);
    assert_eq!(param("scope"), "read:org");
    let own = app.url("/auth/github/callback");
    assert_eq!(param("redirect_uri"), redirect_uri.unwrap_or(&own));
    let state = param("state");
    assert_eq!(state.len(), 64);
    assert!(state.bytes().all(|b| b.is_ascii_hexdigit()));
    // Under TLS a `__Host-` cookie for the whole site (which a neighbour cannot set in its
    // place), else one for /auth/github only.
    let https = app.scheme == "https";
    let (name, path) = state_cookie_of(https);
    let cookies = set_cookies(&started);
    let cookie = cookies
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"));
    let value = cookie.value.clone();
    match redirect_uri {
        // The callback URL the login made is kept with the state, for the callback to send.
        None => assert!(value.starts_with(&format!("{state}.")), "{value}"),
        Some(_) => assert_eq!(value, state, "a configured one is not kept"),
    }
    assert_eq!(cookie.attribute("Path"), Some(path), "{cookie:?}");
    assert_eq!(cookie.attribute("SameSite"), Some("Lax"), "{cookie:?}");
    assert_eq!(cookie.attribute("Max-Age"), Some("600"), "{cookie:?}");
    assert!(cookie.has("HttpOnly"), "{cookie:?}");
    assert!(
        cookie.attribute("Domain").is_none(),
        "no Domain: {cookie:?}"
    );
    assert_eq!(
        cookie.has("Secure"),
        https,
        "Secure under TLS only: {cookie:?}"
    );
    github.sign_in_as(login);
    let back = get(&no_redirects(), &location, &[]).await;
    assert_eq!(back.status, StatusCode::FOUND);
    let mut callback = back.header("location").to_string();
    match redirect_uri {
        None => assert!(
            callback.starts_with(&app.url("/auth/github/callback?")),
            "{callback}"
        ),
        // GitHub sends the browser to the configured URL (a proxy in front of the server,
        // say): here, straight to the server.
        Some(uri) => {
            let query = callback
                .strip_prefix(&format!("{uri}?"))
                .unwrap_or_else(|| panic!("{callback}"))
                .to_string();
            callback = app.url(&format!("/auth/github/callback?{query}"));
        }
    }
    (state, format!("{name}={value}"), callback)
}

/// The OAuth state cookie's name and path: `__Host-bosun_oauth_state` for `/` under TLS, else
/// `bosun_oauth_state` for `/auth/github`.
fn state_cookie_of(https: bool) -> (&'static str, &'static str) {
    if https {
        ("__Host-bosun_oauth_state", "/")
    } else {
        ("bosun_oauth_state", "/auth/github")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_flow_signs_a_member_in_with_the_consoles_session_cookie() {
    let (github, app) = start(AUTHORIZATION).await;
    shop_of_team_github(&app).await;
    let client = no_redirects();
    let (_, cookie, callback) = to_the_callback(&app, &github, "Frank").await;
    let signed_in = get(
        &client,
        &callback,
        &[("cookie", &cookie), ("accept", "text/html")],
    )
    .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.header("location"), "/#jobs");
    let session = set_cookie(&signed_in, "bosun_session").expect("the session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    // A web sign-in lasts auth.github.session_seconds: an hour unless configured.
    assert!(session.contains("Max-Age=3600"), "{session}");
    let csrf =
        cookie_value(set_cookie(&signed_in, "bosun_csrf").expect("the CSRF cookie")).to_string();
    let cleared = set_cookie(&signed_in, "bosun_oauth_state").expect("the state cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let token = cookie_value(session).to_string();
    assert!(token.starts_with("bosun_"), "a Bosun session token");

    // The cookie is the console's session of github:frank, with both scopes.
    let session_cookie = format!("bosun_session={token}");
    let console = get(
        &client,
        &app.url("/console/session"),
        &[("cookie", &session_cookie)],
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(console.body["username"], "github:frank");
    assert_eq!(console.body["scopes"], json!(["read", "write"]));
    assert_eq!(console.body["admin"], false);
    let expires_at: chrono::DateTime<chrono::Utc> = console.body["expires_at"]
        .as_str()
        .expect("an expiry")
        .parse()
        .expect("a time");
    let lasts = expires_at - chrono::Utc::now();
    assert!(
        (3500..=3600).contains(&lasts.num_seconds()),
        "an hour: {lasts}"
    );
    let whoami = get(
        &client,
        &app.url("/v1/auth/whoami"),
        &[("cookie", &session_cookie)],
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(whoami.body["user"], "github:frank");
    assert_eq!(whoami.body["teams"], json!(["github"]));

    // A write member runs a job as the console does: the cookie and X-CSRF-Token.
    let submitted = Answer::read(
        client
            .post(app.url("/v1/jobs"))
            .header("cookie", &session_cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({"app": "shop", "env": "production", "task": "hello"}))
            .send()
            .await
            .expect("submit a job"),
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    assert_eq!(submitted["created_by"], "github:frank", "{submitted}");
    let id = submitted["id"].as_str().expect("a job id");
    let done = app
        .api
        .wait_for(id, Duration::from_secs(60), |job| {
            job["status"] == "success"
        })
        .await;
    assert_eq!(done["status"], "success", "{done}");
    let output = get(
        &client,
        &app.url(&format!("/v1/jobs/{id}/output")),
        &[("cookie", &session_cookie)],
    )
    .await
    .expect(StatusCode::OK);
    assert!(
        output.body.to_string().contains("hello from github"),
        "{}",
        output.body
    );
    // Without the CSRF header the cookie writes nothing.
    Answer::read(
        client
            .post(app.url("/v1/jobs"))
            .header("cookie", &session_cookie)
            .json(&json!({"app": "shop", "env": "production", "task": "hello"}))
            .send()
            .await
            .expect("submit a job"),
    )
    .await
    .problem()
    .expect(StatusCode::FORBIDDEN, "csrf_failed");
    assert_eq!(github.calls("/login/oauth/access_token"), 1);
    assert_eq!(
        github.bad_headers(),
        0,
        "GitHub's headers on every API call"
    );

    // The user is github:frank, made once: signing in again reuses them.
    let (_, cookie, callback) = to_the_callback(&app, &github, "Frank").await;
    get(&client, &callback, &[("cookie", &cookie)])
        .await
        .expect(StatusCode::SEE_OTHER);
    let users = app.api.get("/v1/users").await.expect(StatusCode::OK).body;
    let github_users: Vec<&str> = users
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .filter(|name| name.starts_with("github:"))
        .collect();
    assert_eq!(github_users, ["github:frank"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_refuses_a_forged_or_missing_state_a_bad_code_and_a_non_member() {
    let (github, app) = start(AUTHORIZATION).await;
    let client = no_redirects();
    let (state, cookie, callback) = to_the_callback(&app, &github, "alice").await;
    let log = app.api.log_head().await;
    // Another state than the cookie's, no cookie, no state, a cookie without the callback URL
    // the login sent: 400 oauth_state, nothing signed in.
    let forged = callback.replace(&state, &"0".repeat(64));
    for (url, cookie) in [
        (forged.as_str(), cookie.clone()),
        (callback.as_str(), String::new()),
        (
            &app.url("/auth/github/callback?code=alice-code-1") as &str,
            cookie.clone(),
        ),
        (callback.as_str(), format!("bosun_oauth_state={state}")),
    ] {
        let answer = get(&client, url, &[("cookie", &cookie)]).await;
        assert!(set_cookie(&answer, "bosun_session").is_none());
        answer
            .problem()
            .expect(StatusCode::BAD_REQUEST, "oauth_state");
    }
    // A browser gets a page saying so.
    let page = get(
        &client,
        &forged,
        &[("cookie", &cookie), ("accept", "text/html,*/*")],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page
        .body
        .as_str()
        .unwrap_or_default()
        .contains("oauth_state"));
    assert_eq!(
        github.calls("/login/oauth/access_token"),
        0,
        "no code exchanged"
    );
    // A code GitHub does not know.
    let bad_code = app.url(&format!(
        "/auth/github/callback?code=nobody-code&state={state}"
    ));
    get(&client, &bad_code, &[("cookie", &cookie)])
        .await
        .problem()
        .expect(StatusCode::BAD_REQUEST, "oauth_code");
    // A non-member, and a member in neither list.
    for (login, code) in [("eve", "not_a_member"), ("dave", "no_role")] {
        let (_, cookie, callback) = to_the_callback(&app, &github, login).await;
        let answer = get(&client, &callback, &[("cookie", &cookie)]).await;
        assert!(set_cookie(&answer, "bosun_session").is_none());
        answer.problem().expect(StatusCode::FORBIDDEN, code);
    }
    log.assert_unchanged("the refused sign-ins").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_member_runs_a_job_a_read_member_watches_it_and_may_not_kill_it() {
    let (github, app) = start(AUTHORIZATION).await;
    let admin = &app.api;
    // Team `github` holds app `shop`, so its members read its jobs.
    shop_of_team_github(&app).await;

    // alice (write only) submits, as pulsar's clients send a token.
    let alice = token_of("alice");
    let sleeper = basic(
        &app,
        &alice,
        Method::POST,
        "/v1/jobs",
        Some(json!({"app": "shop", "env": "production", "task": "sleep"})),
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    let id = sleeper["id"].as_str().expect("a job id").to_string();
    assert_eq!(sleeper["created_by"], "github:alice");
    let running = admin
        .wait_for(&id, Duration::from_secs(60), |job| {
            job["status"] == "processing"
        })
        .await;
    assert_eq!(running["status"], "processing");
    // Its one line of output is in the log too: from here on it appends nothing, so a refusal
    // below that moved the log would be the refusal's doing.
    let started = std::time::Instant::now();
    loop {
        let output = admin
            .get(&format!("/v1/jobs/{id}/output"))
            .await
            .expect(StatusCode::OK)
            .body;
        if output.as_str().is_some_and(|o| o.contains("sleeping")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no output after 30 s: {output}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No inheritance: write reads nothing.
    basic(&app, &alice, Method::GET, "/v1/jobs", None)
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "forbidden");

    // bob (read only) watches it, and may not kill it; neither may carol (read by her org).
    for reader in ["bob", "carol"] {
        let token = token_of(reader);
        let list = basic(&app, &token, Method::GET, "/v1/jobs", None)
            .await
            .expect(StatusCode::OK)
            .body;
        let ids: Vec<&str> = list
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|j| j["id"].as_str())
            .collect();
        assert!(ids.contains(&id.as_str()), "{reader} sees the job: {list}");
        basic(&app, &token, Method::GET, &format!("/v1/jobs/{id}"), None)
            .await
            .expect(StatusCode::OK);
        let log = admin.log_head().await;
        basic(
            &app,
            &token,
            Method::POST,
            &format!("/v1/jobs/{id}/kill"),
            None,
        )
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "forbidden");
        log.assert_unchanged(format_args!("{reader}'s kill")).await;
    }
    let whoami = bearer(&app, &token_of("bob"), "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(whoami["user"], "github:bob");
    assert_eq!(whoami["scopes"], json!(["read"]));
    assert_eq!(whoami["teams"], json!(["github"]));

    // alice, who may write, kills it.
    basic(
        &app,
        &alice,
        Method::POST,
        &format!("/v1/jobs/{id}/kill"),
        None,
    )
    .await
    .expect(StatusCode::ACCEPTED);
    admin
        .wait_for(&id, Duration::from_secs(30), |job| {
            job["status"] == "killed"
        })
        .await;

    // A job of the registered app runs for a GitHub member of its team (`github:` has a colon).
    let hello = basic(
        &app,
        &alice,
        Method::POST,
        "/v1/jobs",
        Some(json!({"app": "shop", "env": "production", "task": "hello"})),
    )
    .await
    .expect(StatusCode::CREATED)
    .body;
    let hello_id = hello["id"].as_str().expect("a job id");
    let done = admin
        .wait_for(hello_id, Duration::from_secs(60), |job| {
            !matches!(job["status"].as_str(), Some("waiting" | "processing"))
        })
        .await;
    assert_eq!(done["status"], "success", "{done}");
    let output = admin
        .get(&format!("/v1/jobs/{hello_id}/output"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(output.to_string().contains("hello from github"), "{output}");

    // A non-member, a member of neither list, a token GitHub does not take.
    for (login, status, code) in [
        ("eve", StatusCode::FORBIDDEN, "not_a_member"),
        ("dave", StatusCode::FORBIDDEN, "no_role"),
        ("nobody", StatusCode::UNAUTHORIZED, "unauthorized"),
    ] {
        let log = admin.log_head().await;
        basic(&app, &token_of(login), Method::GET, "/v1/jobs", None)
            .await
            .problem()
            .expect(status, code);
        log.assert_unchanged(format_args!("{login}'s request"))
            .await;
    }
    bearer(&app, &token_of("eve"), "/v1/auth/whoami")
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "not_a_member");
    assert_eq!(github.bad_headers(), 0);

    // GitHub down: 503 github_unavailable with Retry-After, for a token not checked yet.
    github.set_failing(true);
    let down = bearer(&app, &token_of("Frank"), "/v1/auth/whoami").await;
    assert_eq!(down.header("retry-after"), "1");
    down.problem()
        .expect(StatusCode::SERVICE_UNAVAILABLE, "github_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_with_one_token_ask_github_once() {
    let (github, app) = start(AUTHORIZATION).await;
    let bob = token_of("bob");
    // Together, and one after another.
    let together = (0..5).map(|_| basic(&app, &bob, Method::GET, "/v1/jobs", None));
    for answer in futures::future::join_all(together).await {
        answer.expect(StatusCode::OK);
    }
    for _ in 0..5 {
        basic(&app, &bob, Method::GET, "/v1/jobs", None)
            .await
            .expect(StatusCode::OK);
    }
    assert_eq!(github.calls("/user"), 1);
    assert_eq!(github.calls("/orgs/members"), 1);
    // His organizations are asked once too (one could give him `write`).
    assert_eq!(github.calls("/user/orgs"), 1);
    // One Bosun token was issued for it.
    let tokens = basic(&app, &bob, Method::GET, "/v1/tokens", None)
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(tokens.as_array().map(Vec::len), Some(1), "{tokens}");
    // A refusal is held too.
    for _ in 0..3 {
        basic(&app, &token_of("eve"), Method::GET, "/v1/jobs", None)
            .await
            .problem()
            .expect(StatusCode::FORBIDDEN, "not_a_member");
    }
    assert_eq!(github.calls("/user"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_leaves_is_refused_once_the_check_expires() {
    let (github, app) = start(&format!("{AUTHORIZATION}    cache_seconds: 1\n")).await;
    let bob = token_of("bob");
    let before = bearer(&app, &bob, "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    // Past the check's expiry GitHub is asked again, and the Bosun token issued before is
    // reused (same scopes, far from its own expiry).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let checked_again = bearer(&app, &bob, "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(github.calls("/user"), 2);
    assert_eq!(checked_again["token_id"], before["token_id"]);
    // bob leaves the organization: refused once the check expires.
    github.set_member("bob", false);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    bearer(&app, &bob, "/v1/auth/whoami")
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "not_a_member");
    // He comes back: admitted again once the refusal expires, with a new Bosun token.
    github.set_member("bob", true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = bearer(&app, &bob, "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(after["user"], "github:bob");
    assert_ne!(after["token_id"], before["token_id"]);

    // A logout revokes the Bosun token; the GitHub token then gets a new one.
    bearer_call(&app, &bob, Method::DELETE, "/v1/auth/tokens/current")
        .await
        .expect(StatusCode::NO_CONTENT);
    let again = bearer(&app, &bob, "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_ne!(again["token_id"], after["token_id"]);
}

async fn bearer_call(app: &TestApp, token: &str, method: Method, path: &str) -> Answer {
    let request = reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(token);
    Answer::read(request.send().await.expect("the request")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_github_token_and_the_client_secret_are_in_no_event() {
    let (github, app) = start(AUTHORIZATION).await;
    // A sign-in of each kind, and a job.
    let client = no_redirects();
    let (_, cookie, callback) = to_the_callback(&app, &github, "alice").await;
    get(&client, &callback, &[("cookie", &cookie)])
        .await
        .expect(StatusCode::SEE_OTHER);
    basic(
        &app,
        &token_of("alice"),
        Method::POST,
        "/v1/jobs",
        Some(json!({"app": "shop", "env": "production", "task": "hello"})),
    )
    .await
    .expect(StatusCode::CREATED);
    basic(&app, &token_of("bob"), Method::GET, "/v1/jobs", None)
        .await
        .expect(StatusCode::OK);
    basic(&app, &token_of("eve"), Method::GET, "/v1/jobs", None)
        .await
        .expect(StatusCode::FORBIDDEN);

    let stored = app
        .store()
        .await
        .read_all(1, 1_000_000, &bosun_eventstore::Filter::all())
        .await
        .expect("read the stored log");
    let stored = serde_json::to_string(&stored).expect("events as JSON");
    let answered = app
        .api
        .get("/v1/events?limit=1000")
        .await
        .expect(StatusCode::OK)
        .body
        .to_string();
    for text in [&stored, &answered] {
        for secret in [
            token_of("alice"),
            token_of("bob"),
            token_of("eve"),
            CLIENT_SECRET.to_string(),
            "alice-code".to_string(),
        ] {
            assert!(!text.contains(&secret), "{secret} is in the log");
        }
        assert!(text.contains("github:alice") && text.contains("github:bob"));
    }
    let alice = app
        .api
        .get("/v1/users/github:alice")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(alice["username"], "github:alice");
    // GitHub's email is not copied (the stand-in gives alice's).
    assert_eq!(alice["email"], Value::Null, "{alice}");
    assert_eq!(alice["admin"], false);
    // No one registers a github: name themself.
    app.api
        .refused(
            Method::POST,
            "/v1/users",
            Some(json!({"username": "github:mallory", "password": "mallory-password"})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_github_nothing_of_it_answers_and_other_tokens_are_not_sent_to_github() {
    let github = StandInGithub::start(ORG, users()).await;
    let app = spawn_app(CATALOG).await;
    for path in ["/auth/github/login", "/auth/github/callback?code=x&state=y"] {
        get(&no_redirects(), &app.url(path), &[])
            .await
            .problem()
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
    basic(&app, &token_of("alice"), Method::GET, "/v1/jobs", None)
        .await
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    drop(app);
    // With it, a Bosun token is never sent to GitHub: a wrong one is 401 at once.
    let app = spawn_app(&format!("{CATALOG}{}", github.config(""))).await;
    bearer(&app, "bosun_not-a-real-token", "/v1/auth/whoami")
        .await
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    app.api.get("/v1/auth/whoami").await.expect(StatusCode::OK);
    assert_eq!(github.calls("/user"), 0);
    // Without `authorization`, every member reads and writes.
    let whoami = bearer(&app, &token_of("dave"), "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(whoami["scopes"], json!(["read", "write"]));
    assert_eq!(whoami["teams"], json!([]), "no team configured");
}

/// Team `github` (which every GitHub user joins) holds app `shop`.
async fn shop_of_team_github(app: &TestApp) {
    let admin = &app.api;
    admin
        .post("/v1/teams", json!({"name": "github"}))
        .await
        .expect(StatusCode::CREATED);
    admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    admin
        .post(
            "/v1/apps",
            json!({"name": "shop", "platform": "python", "team_owner": "github"}),
        )
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_user_has_no_password_and_no_token_that_outlives_the_sign_in() {
    let smtp = SmtpSink::start();
    let (github, app) = start(&format!(
        "{AUTHORIZATION}notifications:\n  smtp: {{host: 127.0.0.1, port: {}, from: bosun@example.com}}\n",
        smtp.port
    ))
    .await;
    shop_of_team_github(&app).await;
    let frank = token_of("Frank");
    bearer(&app, &frank, "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK);
    let admin = &app.api;
    // An admin may give the user an email; a password reset still is not theirs to ask.
    admin
        .call(
            Method::PATCH,
            "/v1/users/github:frank",
            Some(json!({"email": "frank@example.org"})),
        )
        .await
        .expect(StatusCode::OK);
    let log = admin.log_head().await;
    let refusal = |answer: Answer| {
        let problem = answer
            .problem()
            .expect(StatusCode::FORBIDDEN, "github_user");
        assert!(problem.detail().contains("GitHub"), "{}", problem.detail());
    };
    refusal(
        app.api
            .anonymous()
            .call(Method::POST, "/v1/users/github:frank/password-reset", None)
            .await,
    );
    // Nor may an admin set a password, nor the user change one.
    refusal(
        admin
            .call(
                Method::PATCH,
                "/v1/users/github:frank",
                Some(json!({"password": "a-password-of-mine"})),
            )
            .await,
    );
    refusal(
        bearer_send(
            &app,
            &frank,
            Method::PUT,
            "/v1/users/github:frank/password",
            json!({"old": "whatever-it-was", "new": "a-password-of-mine"}),
        )
        .await,
    );
    // Nor may an admin make them an admin: their rights come from GitHub's lists.
    refusal(
        admin
            .call(
                Method::PATCH,
                "/v1/users/github:frank",
                Some(json!({"admin": true})),
            )
            .await,
    );
    // Nor hold an API token or an app token (they would outlive GitHub's say).
    let token = bearer_send(
        &app,
        &frank,
        Method::POST,
        "/v1/tokens",
        json!({"description": "ci"}),
    )
    .await;
    let problem = token.problem().expect(StatusCode::FORBIDDEN, "github_user");
    assert!(
        problem.detail().contains("use your GitHub token"),
        "{}",
        problem.detail()
    );
    refusal(
        bearer_send(
            &app,
            &frank,
            Method::POST,
            "/v1/apps/shop/tokens",
            json!({"description": "deploys"}),
        )
        .await,
    );
    log.assert_unchanged("the refused password and token requests")
        .await;
    assert!(smtp.mails().is_empty(), "no reset mail sent");

    // A password their stream holds all the same (written by an older server, say) logs
    // no one in.
    let password = bosun_domain::identity::Password::parse("password", "known-password-1")
        .expect("a password");
    let hash = bosun_commands::identity::secrets::hash_password(&password)
        .await
        .expect("a hash");
    let changed = bosun_domain::identity::UserEvent::PasswordChanged {
        username: bosun_domain::identity::Username::parse("github:frank").expect("a name"),
        password_hash: hash,
    };
    let (event_type, data) = bosun_domain::encode(&changed).expect("an event");
    app.store()
        .await
        .append(
            &StreamId::parse("user-github:frank").expect("a stream"),
            ExpectedVersion::StreamExists,
            vec![NewEvent::new(event_type, data)],
        )
        .await
        .expect("appended");
    // An admin's write answers once the read models hold it, and the event before it.
    admin
        .post(
            "/v1/users",
            json!({"username": "zed", "password": "known-password-1"}),
        )
        .await
        .expect(StatusCode::CREATED);
    for username in ["github:frank", "GitHub:frank"] {
        admin
            .anonymous()
            .refused(
                Method::POST,
                "/v1/auth/tokens",
                Some(json!({"username": username, "password": "known-password-1"})),
            )
            .await
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // The same password logs in a user who has it.
    admin
        .anonymous()
        .call(
            Method::POST,
            "/v1/auth/tokens",
            Some(json!({"username": "zed", "password": "known-password-1"})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(github.bad_headers(), 0);
}

async fn bearer_send(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> Answer {
    let request = reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body);
    Answer::read(request.send().await.expect("the request")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_github_tokens_go_to_github_and_its_403s_429s_and_outages_answer_apart() {
    let (github, app) = start(AUTHORIZATION).await;
    // Not a GitHub token's shape: 401 at once, GitHub not asked.
    for token in [
        "not-a-github-token",
        "gho_has-a-dash",
        "ABCDEF0123456789abcdef0123456789abcdef01",
    ] {
        bearer(&app, token, "/v1/auth/whoami")
            .await
            .problem()
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_eq!(github.calls("/user"), 0);
    // One that is, but GitHub does not know: 401 after asking.
    bearer(
        &app,
        "ghp_0000000000000000000000000000000000aa",
        "/v1/auth/whoami",
    )
    .await
    .problem()
    .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(github.calls("/user"), 1);

    // A 403 of GitHub's that is no rate limit (an organization's SSO): a refusal, held as one.
    github.fail("/orgs/members", Failure::sso());
    for _ in 0..2 {
        let refused = bearer(&app, &token_of("bob"), "/v1/auth/whoami")
            .await
            .problem()
            .expect(StatusCode::FORBIDDEN, "github_org_access");
        assert!(
            refused
                .detail()
                .contains("authorize the OAuth app for the organization, or its SSO"),
            "{}",
            refused.detail()
        );
    }
    assert_eq!(github.calls("/user"), 2, "the refusal is held");

    // GitHub's rate limits: 503 with the wait GitHub asks for.
    github.fail("/user", Failure::too_many(7));
    let limited = bearer(&app, &token_of("carol"), "/v1/auth/whoami").await;
    assert_eq!(limited.header("retry-after"), "7");
    limited
        .problem()
        .expect(StatusCode::SERVICE_UNAVAILABLE, "github_unavailable");
    let reset = chrono::Utc::now().timestamp() + 120;
    github.fail("/user", Failure::exhausted(reset));
    let exhausted = bearer(&app, &token_of("dave"), "/v1/auth/whoami").await;
    let wait: u64 = exhausted.header("retry-after").parse().expect("seconds");
    assert!((100..=121).contains(&wait), "until GitHub's reset: {wait}");
    exhausted
        .problem()
        .expect(StatusCode::SERVICE_UNAVAILABLE, "github_unavailable");
    // Neither is held: GitHub back, carol is checked again and admitted.
    github.set_failing(false);
    bearer(&app, &token_of("carol"), "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK);

    // GitHub down and slow: requests together with one token wait for one check and share
    // its failure.
    github.set_failing(true);
    github.set_delay(Duration::from_millis(400));
    let before = github.calls("/user");
    let frank = token_of("Frank");
    let together = (0..5).map(|_| bearer(&app, &frank, "/v1/auth/whoami"));
    for answer in futures::future::join_all(together).await {
        answer
            .problem()
            .expect(StatusCode::SERVICE_UNAVAILABLE, "github_unavailable");
    }
    assert_eq!(github.calls("/user"), before + 1, "GitHub asked once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enterprise_managed_users_login_signs_in_and_one_bosun_cannot_take_is_refused() {
    let (github, app) = start("").await;
    let whoami = bearer(&app, &token_of("ann_acme"), "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(whoami["user"], "github:ann_acme");
    let log = app.api.log_head().await;
    bearer(&app, "gho_badlogin_token", "/v1/auth/whoami")
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "github_login");
    log.assert_unchanged("the refused login").await;
    // Held as a refusal.
    bearer(&app, "gho_badlogin_token", "/v1/auth/whoami")
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "github_login");
    assert_eq!(github.calls("/user"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_sends_github_the_callback_url_the_login_sent_and_a_code_works_once() {
    let (github, app) = start(AUTHORIZATION).await;
    let client = no_redirects();
    // The browser names the server otherwise at the callback (another name for it): the code
    // is exchanged with the callback URL the login sent, which GitHub requires.
    let (_, cookie, callback) = to_the_callback(&app, &github, "Frank").await;
    let other_host = format!("localhost:{}", app.address.port());
    let signed_in = get(
        &client,
        &callback,
        &[("cookie", &cookie), ("host", &other_host)],
    )
    .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    // The same code again: GitHub takes a code once.
    get(&client, &callback, &[("cookie", &cookie)])
        .await
        .problem()
        .expect(StatusCode::BAD_REQUEST, "oauth_code");
    assert_eq!(github.calls("/login/oauth/access_token"), 2);
    drop(app);

    // A configured redirect_uri is sent as given, at the login and at the exchange; and a
    // web sign-in lasts session_seconds.
    let uri = "https://bosun.example/auth/github/callback";
    let app = spawn_app(&format!(
        "{CATALOG}{}",
        github.config(&format!(
            "{AUTHORIZATION}    redirect_uri: {uri}\n    session_seconds: 120\n"
        ))
    ))
    .await;
    let (_, cookie, callback) =
        to_the_callback_with(&app, &github, "Frank", &client, Some(uri)).await;
    let signed_in = get(&client, &callback, &[("cookie", &cookie)]).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    let session = set_cookie(&signed_in, "bosun_session").expect("the session cookie");
    assert!(session.contains("Max-Age=120"), "{session}");
    let token = cookie_value(session).to_string();
    let console = get(
        &client,
        &app.url("/console/session"),
        &[("cookie", &format!("bosun_session={token}"))],
    )
    .await
    .expect(StatusCode::OK);
    let expires_at: chrono::DateTime<chrono::Utc> = console.body["expires_at"]
        .as_str()
        .expect("an expiry")
        .parse()
        .expect("a time");
    let lasts = (expires_at - chrono::Utc::now()).num_seconds();
    assert!((60..=120).contains(&lasts), "two minutes: {lasts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_scopes_get_a_new_bosun_token_and_the_one_before_is_revoked() {
    let (github, app) = start(&format!("{AUTHORIZATION}    cache_seconds: 1\n")).await;
    let bob = token_of("bob");
    // The sign-in's events carry the request's origin.
    let first = Answer::read(
        reqwest::Client::new()
            .get(app.url("/v1/auth/whoami"))
            .bearer_auth(&bob)
            .header("request-id", "github-origin-1")
            .header("user-agent", "github-origin-agent")
            .send()
            .await
            .expect("the request"),
    )
    .await
    .expect(StatusCode::OK)
    .body;
    assert_eq!(first["scopes"], json!(["read"]));
    let first_id = first["token_id"].as_str().expect("a token id").to_string();
    let stored = app
        .store()
        .await
        .read_all(1, 1_000_000, &bosun_eventstore::Filter::all())
        .await
        .expect("read the stored log");
    let issued = stored
        .iter()
        .find(|e| e.event_type == "TokenIssued" && e.data["token_id"] == first_id.as_str())
        .expect("the token's issue");
    assert_eq!(issued.metadata["request_id"], "github-origin-1");
    assert_eq!(issued.metadata["user_agent"], "github-origin-agent");
    assert_eq!(issued.metadata["actor"], "github:bob");

    // bob joins an organization that writes: past the check's expiry, his new scopes get a
    // new Bosun token, and the one before is revoked.
    github.set_orgs("bob", &["Writers"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = bearer(&app, &bob, "/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(second["scopes"], json!(["read", "write"]));
    assert_ne!(second["token_id"], first["token_id"]);
    let stored = app
        .store()
        .await
        .read_all(1, 1_000_000, &bosun_eventstore::Filter::all())
        .await
        .expect("read the stored log");
    let revoked = stored
        .iter()
        .find(|e| e.event_type == "TokenRevoked" && e.data["token_id"] == first_id.as_str())
        .expect("the token before is revoked");
    assert!(
        revoked.data["reason"]
            .as_str()
            .is_some_and(|r| r.contains("superseded")),
        "{}",
        revoked.data
    );
    assert_eq!(revoked.metadata["actor"], "system");
    let tokens = bearer(&app, &bob, "/v1/tokens")
        .await
        .expect(StatusCode::OK)
        .body;
    // Listed as revoked, if revoked tokens are listed at all.
    let listed = tokens
        .as_array()
        .expect("a list")
        .iter()
        .find(|t| t["token_id"] == first_id.as_str());
    if let Some(listed) = listed {
        assert!(!listed["revoked_at"].is_null(), "{tokens}");
    }
}

/// A self-signed certificate for 127.0.0.1, as `tls:` lines (its files in `dir`).
fn self_signed_tls(dir: &std::path::Path) -> String {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("a certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write the key");
    format!(
        "tls:\n  cert: {}\n  key: {}\n",
        cert.display(),
        key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tls_the_cookies_are_secure_and_host_prefixed_and_github_sends_the_browser_back_to_https(
) {
    let dir = tempfile::tempdir().expect("a folder");
    let github = StandInGithub::start(ORG, users()).await;
    let app = spawn_app(&format!(
        "{CATALOG}{}{}",
        self_signed_tls(dir.path()),
        github.config(AUTHORIZATION)
    ))
    .await;
    assert_eq!(app.scheme, "https");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .expect("a client");
    // `to_the_callback_with` checks the state cookie is `__Host-bosun_oauth_state`, Secure,
    // for `/`, and the callback URL https://.
    let (_, cookie, callback) = to_the_callback_with(&app, &github, "Frank", &client, None).await;
    assert!(cookie.starts_with("__Host-bosun_oauth_state="), "{cookie}");
    assert!(callback.starts_with("https://"), "{callback}");
    // The plain-HTTP name is not the state under TLS.
    let plain = cookie.replacen("__Host-", "", 1);
    get(&client, &callback, &[("cookie", &plain)])
        .await
        .problem()
        .expect(StatusCode::BAD_REQUEST, "oauth_state");
    let signed_in = get(&client, &callback, &[("cookie", &cookie)]).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    let cookies = set_cookies(&signed_in);
    let named = |name: &str| {
        cookies
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
    };
    let cleared = named("__Host-bosun_oauth_state");
    assert_eq!(cleared.value, "", "{cleared:?}");
    assert_eq!(cleared.attribute("Max-Age"), Some("0"), "{cleared:?}");
    assert_eq!(cleared.attribute("Path"), Some("/"), "{cleared:?}");
    assert!(cleared.has("Secure"), "{cleared:?}");
    // The console's session, as a password sign-in under TLS sets it.
    let session = named("__Host-bosun_session");
    assert!(
        session.has("Secure") && session.has("HttpOnly"),
        "{session:?}"
    );
    assert_eq!(session.attribute("Path"), Some("/"), "{session:?}");
    assert!(named("__Host-bosun_csrf").has("Secure"));
    assert!(
        !cookies.iter().any(|c| c.name == "bosun_session"),
        "{cookies:?}"
    );
    // And it is GitHub's user signed in.
    let console = get(
        &client,
        &app.url("/console/session"),
        &[("cookie", &format!("__Host-bosun_session={}", session.value))],
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(console.body["username"], "github:frank");
    assert_eq!(console.body["scopes"], json!(["read", "write"]));
}
