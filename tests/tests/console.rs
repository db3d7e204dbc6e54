//! The web console's server side over HTTP: its page and files with their security headers,
//! sign-in to cookies, the cookie as authentication (reads, CSRF-checked writes, the Origin
//! check, the live socket), `Authorization` winning over the cookie, sign-out, and the session
//! token kept out of the log. The page in a real browser is `console_browser.rs`.

use bosun_tests::console::{admin_with_password, set_cookies, SetCookie};
use bosun_tests::{spawn_app, Answer, TestApp};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const PASSWORD: &str = "console-password";

/// A browser's view of the server: no `Authorization`, the cookies it was given sent back.
struct Browser {
    base: String,
    http: reqwest::Client,
    session: Option<String>,
    csrf: Option<String>,
}

fn the_cookie<'a>(cookies: &'a [SetCookie], name: &str) -> &'a SetCookie {
    cookies
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
}

impl Browser {
    fn of(app: &TestApp) -> Browser {
        Browser {
            base: app.url(""),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            session: None,
            csrf: None,
        }
    }

    /// The request with the cookies it holds.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        let mut cookies = Vec::new();
        if let Some(session) = &self.session {
            cookies.push(format!("bosun_session={session}"));
        }
        if let Some(csrf) = &self.csrf {
            cookies.push(format!("bosun_csrf={csrf}"));
        }
        if cookies.is_empty() {
            request
        } else {
            request.header("cookie", cookies.join("; "))
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::read(request.send().await.expect("an HTTP answer")).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.request(Method::GET, path)).await
    }

    /// A write as the console sends it: JSON, with `X-CSRF-Token` from the csrf cookie.
    async fn write(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let csrf = self.csrf.clone().expect("signed in");
        self.write_with(method, path, body, &[("x-csrf-token", &csrf)])
            .await
    }

    async fn write_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.request(method, path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn sign_in_as(&mut self, username: &str, password: &str) -> Answer {
        let answer = self
            .send(
                self.request(Method::POST, "/console/session")
                    .json(&json!({"username": username, "password": password})),
            )
            .await;
        let cookies = set_cookies(&answer);
        if let Some(c) = cookies.iter().find(|c| c.name == "bosun_session") {
            self.session = Some(c.value.clone());
        }
        if let Some(c) = cookies.iter().find(|c| c.name == "bosun_csrf") {
            self.csrf = Some(c.value.clone());
        }
        answer
    }
}

/// A server and a browser signed in as its admin.
async fn signed_in() -> (TestApp, Browser, String) {
    let app = spawn_app("").await;
    let admin = admin_with_password(&app.api, PASSWORD).await;
    let mut browser = Browser::of(&app);
    browser
        .sign_in_as(&admin, PASSWORD)
        .await
        .expect(StatusCode::OK);
    (app, browser, admin)
}

#[track_caller]
fn assert_console_headers(answer: &Answer, path: &str) {
    assert_eq!(answer.header("content-security-policy"), CSP, "{path}");
    assert_eq!(answer.header("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(answer.header("referrer-policy"), "same-origin", "{path}");
    assert_eq!(answer.header("x-frame-options"), "DENY", "{path}");
    assert_eq!(answer.header("cache-control"), "no-cache", "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_at_the_root_at_web_and_at_pulsars_web_with_its_security_headers() {
    let app = spawn_app("").await;
    let browser = Browser::of(&app);
    for path in ["/", "/web", "/compat/pulsar/web"] {
        let answer = browser.get(path).await.expect(StatusCode::OK);
        assert_eq!(
            answer.header("content-type"),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_console_headers(&answer, path);
        let page = answer.body.as_str().expect("a page");
        assert!(
            page.contains("/console/assets/console.js"),
            "{path}: {page}"
        );
        assert!(!page.contains("<script>"), "an inline script: {page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulsars_job_url_opens_the_console() {
    let app = spawn_app(
        "catalog:\n  example:\n    production:\n      noop:\n        command: [\"true\"]\n",
    )
    .await;
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:x-oauth-basic", app.api.token),
    );
    let created = Answer::read(
        app.api
            .http
            .post(app.url("/compat/pulsar/example/production"))
            .header("authorization", format!("Basic {basic}"))
            .json(&json!({"task": "noop"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(created.status.is_success(), "{}", created.body);
    let url = created.body["url"].as_str().expect("a url");
    let id = created.body["id"].as_str().expect("an id");
    assert_eq!(url, app.url(&format!("/web#job/{id}")));
    // The fragment stays in the browser; the page is what the path serves.
    let (page, _) = url.split_once('#').unwrap();
    let answer = Answer::read(reqwest::get(page).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "text/html; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_are_served_with_their_media_type_and_an_unknown_one_is_404() {
    let app = spawn_app("").await;
    let browser = Browser::of(&app);
    for (file, media_type) in [
        ("console.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
    ] {
        let path = format!("/console/assets/{file}");
        let answer = browser.get(&path).await.expect(StatusCode::OK);
        assert_eq!(answer.header("content-type"), media_type, "{path}");
        assert_console_headers(&answer, &path);
    }
    for path in [
        "/console/assets/nothing.js",
        "/console/assets/..%2F..%2FCargo.toml",
        "/console/assets/",
    ] {
        browser
            .get(path)
            .await
            .problem()
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_say_whether_github_sign_in_is_offered() {
    let app = spawn_app("").await;
    let answer = Browser::of(&app)
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.body, json!({"github": false}));
    drop(app);
    let app = spawn_app(
        "auth:\n  github:\n    client_id: console-client\n    client_secret: console-secret\n    org: acme\n",
    )
    .await;
    let answer = Browser::of(&app)
        .get("/console/settings")
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.body, json!({"github": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_sets_an_http_only_session_cookie_and_a_readable_csrf_cookie() {
    let app = spawn_app("").await;
    let admin = admin_with_password(&app.api, PASSWORD).await;
    let mut browser = Browser::of(&app);
    let answer = browser.sign_in_as(&admin, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let cookies = set_cookies(&answer);
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let session = the_cookie(&cookies, "bosun_session");
    let csrf = the_cookie(&cookies, "bosun_csrf");
    assert!(session.value.starts_with("bosun_"), "{session:?}");
    assert!(session.has("HttpOnly"), "{session:?}");
    assert!(!csrf.has("HttpOnly"), "the page reads it: {csrf:?}");
    for cookie in [session, csrf] {
        assert_eq!(cookie.attribute("SameSite"), Some("Strict"), "{cookie:?}");
        assert_eq!(cookie.attribute("Path"), Some("/"), "{cookie:?}");
        assert!(!cookie.has("Secure"), "no TLS here: {cookie:?}");
        // The session token's lifetime: a day.
        let max_age: i64 = cookie.attribute("Max-Age").unwrap().parse().unwrap();
        assert!((86_300..=86_400).contains(&max_age), "{cookie:?}");
    }
    assert_eq!(answer.body["username"], json!(admin));
    assert_eq!(answer.body["admin"], json!(true));
    assert_eq!(answer.body["csrf"], json!(csrf.value));
    assert_eq!(answer.body["scopes"], json!(["read", "write", "admin"]));
    assert!(answer.body["expires_at"].is_string(), "{}", answer.body);
    assert!(
        !answer.body.to_string().contains(&session.value),
        "the token is in the body: {}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_an_unknown_user_is_401_with_no_cookie() {
    let app = spawn_app("").await;
    let admin = admin_with_password(&app.api, PASSWORD).await;
    let mut browser = Browser::of(&app);
    for (username, password) in [(admin.as_str(), "wrong-password"), ("nobody", PASSWORD)] {
        let log = app.api.log_head().await;
        let answer = browser.sign_in_as(username, password).await;
        assert!(set_cookies(&answer).is_empty(), "{:?}", answer.headers);
        let problem = answer
            .problem()
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(problem.detail(), "wrong username or password");
        log.assert_unchanged(format_args!("signing in as {username}"))
            .await;
    }
    assert!(browser.session.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_needs_json_and_the_servers_own_origin() {
    let app = spawn_app("").await;
    let admin = admin_with_password(&app.api, PASSWORD).await;
    let browser = Browser::of(&app);
    let log = app.api.log_head().await;
    let form = browser
        .send(
            browser
                .request(Method::POST, "/console/session")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("username={admin}&password={PASSWORD}")),
        )
        .await;
    assert!(set_cookies(&form).is_empty());
    form.problem()
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let foreign = browser
        .write_with(
            Method::POST,
            "/console/session",
            Some(json!({"username": admin, "password": PASSWORD})),
            &[("origin", "http://evil.example")],
        )
        .await;
    assert!(set_cookies(&foreign).is_empty());
    foreign
        .problem()
        .expect(StatusCode::FORBIDDEN, "cross_origin");
    log.assert_unchanged("refused sign-ins").await;
    let own = browser
        .write_with(
            Method::POST,
            "/console/session",
            Some(json!({"username": admin, "password": PASSWORD})),
            &[("origin", &app.url(""))],
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_only_the_cookie_is_the_sessions_user() {
    let (_app, browser, admin) = signed_in().await;
    let whoami = browser.get("/v1/auth/whoami").await.expect(StatusCode::OK);
    assert_eq!(whoami.body["user"], json!(admin));
    let session = browser.get("/console/session").await.expect(StatusCode::OK);
    assert_eq!(session.body["username"], json!(admin));
    assert_eq!(session.body["csrf"], json!(browser.csrf.clone().unwrap()));
    assert_eq!(session.body["admin"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_the_session_is_401() {
    let app = spawn_app("").await;
    let mut browser = Browser::of(&app);
    browser
        .get("/console/session")
        .await
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    // A cookie whose token is not one gets the routes' own 401.
    browser.session = Some("bosun_not-a-token".into());
    for path in ["/console/session", "/v1/auth/whoami"] {
        browser
            .get(path)
            .await
            .problem()
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_the_cookie_and_no_or_a_wrong_csrf_header_is_refused_and_changes_nothing() {
    let (app, browser, _) = signed_in().await;
    let user = json!({"username": "carol", "password": "carol-password"});
    let wrong = "0".repeat(32);
    let other_token_csrf = {
        // The CSRF value of another session of the same user.
        let mut other = Browser::of(&app);
        let admin = app.api.get("/v1/auth/whoami").await.body["user"].clone();
        other
            .sign_in_as(admin.as_str().unwrap(), PASSWORD)
            .await
            .expect(StatusCode::OK);
        other.csrf.unwrap()
    };
    let log = app.api.log_head().await;
    for headers in [
        vec![],
        vec![("x-csrf-token", wrong.as_str())],
        vec![("x-csrf-token", "")],
        vec![("x-csrf-token", other_token_csrf.as_str())],
    ] {
        let answer = browser
            .write_with(Method::POST, "/v1/users", Some(user.clone()), &headers)
            .await;
        answer
            .problem()
            .expect(StatusCode::FORBIDDEN, "csrf_failed");
    }
    // Every method but GET, HEAD and OPTIONS is a write.
    for method in [Method::DELETE, Method::PATCH, Method::PUT] {
        browser
            .write_with(method, "/v1/users/carol", Some(json!({})), &[])
            .await
            .problem()
            .expect(StatusCode::FORBIDDEN, "csrf_failed");
    }
    // Sign-out too.
    browser
        .write_with(Method::DELETE, "/console/session", None, &[])
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "csrf_failed");
    log.assert_unchanged("writes without the CSRF header").await;
    app.api
        .get("/v1/users/carol")
        .await
        .problem()
        .expect(StatusCode::NOT_FOUND, "not_found");
    browser.get("/v1/auth/whoami").await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_the_cookie_and_its_csrf_header_is_done() {
    let (app, browser, admin) = signed_in().await;
    let answer = browser
        .write(
            Method::POST,
            "/v1/users",
            Some(json!({"username": "carol", "password": "carol-password"})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(answer.body["username"], "carol");
    // Recorded as the session's user's.
    let events = app.api.all_events().await;
    let created = events
        .iter()
        .rev()
        .find(|e| e["stream_id"] == "user-carol")
        .expect("carol's creation");
    assert_eq!(created["metadata"]["actor"], json!(admin), "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_from_another_origin_is_refused() {
    let (app, browser, _) = signed_in().await;
    let own = app.url("");
    // Its own origin; over plain HTTP also as https:// (a proxy in front that ends TLS).
    for origin in [own.clone(), own.replacen("http://", "https://", 1)] {
        browser
            .write_with(Method::GET, "/v1/auth/whoami", None, &[("origin", &origin)])
            .await
            .expect(StatusCode::OK);
    }
    let log = app.api.log_head().await;
    let other_port = format!("http://127.0.0.1:{}", app.address.port() ^ 1);
    for origin in [
        "http://evil.example",
        "null",
        "http://127.0.0.1:1",
        &other_port,
        "http://127.0.0.1",
        "https://127.0.0.1",
    ] {
        browser
            .write_with(Method::GET, "/v1/auth/whoami", None, &[("origin", origin)])
            .await
            .problem()
            .expect(StatusCode::FORBIDDEN, "cross_origin");
        let csrf = browser.csrf.clone().unwrap();
        browser
            .write_with(
                Method::POST,
                "/v1/users",
                Some(json!({"username": "mallory", "password": "mallory-password"})),
                &[("origin", origin), ("x-csrf-token", &csrf)],
            )
            .await
            .problem()
            .expect(StatusCode::FORBIDDEN, "cross_origin");
    }
    log.assert_unchanged("cross-origin calls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_sent_twice_is_no_session_and_a_nameless_one_none_at_all() {
    let (_app, browser, _) = signed_in().await;
    let session = browser.session.clone().unwrap();
    browser.get("/console/session").await.expect(StatusCode::OK);
    // Tossed in beside the real one: in another Cookie header, or the same one.
    for tossed in [
        "bosun_session=bosun_tossed".to_string(),
        format!("bosun_session={session}"),
    ] {
        browser
            .write_with(
                Method::GET,
                "/console/session",
                None,
                &[("cookie", &tossed)],
            )
            .await
            .problem()
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let http = reqwest::Client::new();
    let with_cookie = |cookie: String| {
        let request = http
            .get(format!("{}/console/session", browser.base))
            .header("cookie", cookie);
        browser.send(request)
    };
    with_cookie(format!("bosun_session={session}; bosun_session={session}"))
        .await
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    // A pair without a name is not the session cookie: alone it is none, beside the real one it
    // does not count.
    with_cookie(format!("=bosun_session={session}"))
        .await
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    with_cookie(format!(
        "=bosun_session=bosun_tossed; bosun_session={session}"
    ))
    .await
    .expect(StatusCode::OK);
    // Under plain HTTP the `__Host-` name is not the session.
    with_cookie(format!("__Host-bosun_session={session}"))
        .await
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_authorization_ignores_the_cookie() {
    let (app, browser, _) = signed_in().await;
    let bob = app.api.new_user("bob", "bob-password").await;
    let whoami = browser
        .write_with(
            Method::GET,
            "/v1/auth/whoami",
            None,
            &[("authorization", &format!("Bearer {}", bob.token))],
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(whoami.body["user"], "bob");
    // Neither the Origin nor the CSRF check: the client holds its token itself.
    browser
        .write_with(
            Method::POST,
            "/v1/teams",
            Some(json!({"name": "bobs"})),
            &[
                ("authorization", &format!("Bearer {}", bob.token)),
                ("origin", "http://elsewhere.example"),
            ],
        )
        .await
        .expect(StatusCode::CREATED);
    // Nor a compat surface's own token header: Keboola's and Runnable's clients send their
    // token there, and a browser's cookie beside it is not looked at.
    let elsewhere = ("origin", "http://elsewhere.example");
    browser
        .write_with(
            Method::DELETE,
            &format!("/compat/keboola/jobs/{}", uuid::Uuid::new_v4()),
            None,
            &[("x-storageapi-token", &bob.token), elsewhere],
        )
        .await
        .expect(StatusCode::NOT_FOUND);
    let bob_there = browser
        .write_with(
            Method::GET,
            "/compat/runnable/users/bob",
            None,
            &[("runnable-token", &bob.token), elsewhere],
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(bob_there.body["username"], "bob", "{:?}", bob_there.body);
    // A bad token in Authorization is not rescued by a good cookie.
    browser
        .write_with(
            Method::GET,
            "/v1/auth/whoami",
            None,
            &[("authorization", "Bearer bosun_not-a-token")],
        )
        .await
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_revokes_the_session_and_clears_the_cookies() {
    let (app, browser, _) = signed_in().await;
    let answer = browser
        .write(Method::DELETE, "/console/session", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let cookies = set_cookies(&answer);
    for name in ["bosun_session", "bosun_csrf"] {
        let cookie = the_cookie(&cookies, name);
        assert_eq!(cookie.value, "", "{cookie:?}");
        assert_eq!(cookie.attribute("Max-Age"), Some("0"), "{cookie:?}");
    }
    // The old cookie no longer works, anywhere.
    for path in ["/v1/auth/whoami", "/console/session"] {
        browser
            .get(path)
            .await
            .problem()
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // Revoked as a logout is.
    let events = app.api.all_events().await;
    assert!(
        events
            .iter()
            .any(|e| e["event_type"] == "TokenRevoked" && e["data"]["reason"] == "logout"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cookie_does_not_stop_signing_in_again() {
    let (app, mut browser, admin) = signed_in().await;
    browser
        .write(Method::DELETE, "/console/session", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    // The browser still sends the revoked cookie, and no CSRF header.
    let answer = browser.sign_in_as(&admin, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    browser.get("/v1/auth/whoami").await.expect(StatusCode::OK);
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_token_is_never_in_an_event() {
    let (app, browser, _) = signed_in().await;
    let token = browser.session.clone().unwrap();
    browser
        .write(
            Method::POST,
            "/v1/teams",
            Some(json!({"name": "console_team"})),
        )
        .await
        .expect(StatusCode::CREATED);
    browser
        .write(Method::DELETE, "/console/session", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let events = app.api.all_events().await;
    assert!(
        events.iter().any(|e| e["event_type"] == "TokenIssued"),
        "{events:?}"
    );
    let log = serde_json::to_string(&events).unwrap();
    assert!(!log.contains(&token), "the session token is in the log");
    let secret = token.trim_start_matches("bosun_");
    assert!(!log.contains(secret), "the session token is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_socket_authenticates_with_only_the_cookie_from_the_servers_own_origin() {
    let (app, browser, _) = signed_in().await;
    let cookie = format!("bosun_session={}", browser.session.clone().unwrap());
    let url = format!(
        "{}/v1/events/live?from=1",
        app.url("").replacen("http://", "ws://", 1)
    );
    let mut request = url.clone().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    request
        .headers_mut()
        .insert("origin", app.url("").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("open the live feed with the cookie");
    // No first message is sent: only the cookie can have authenticated it (else the server's
    // close 4401 after 5 s is what arrives, and is not an event). 30 s: a loaded machine may
    // take its time with the first event.
    let first = tokio::time::timeout(Duration::from_secs(30), socket.next())
        .await
        .expect("no event (and no close) within 30 s")
        .expect("the feed ended")
        .expect("a WebSocket error");
    let Message::Text(text) = first else {
        panic!("not an event: {first:?}")
    };
    let envelope: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(envelope["position"], 1, "{envelope}");

    let mut foreign = url.into_client_request().unwrap();
    foreign
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    foreign
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(foreign).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("a cross-origin upgrade was not refused: {other:?}"),
    }
}

/// The answer is a pulsar refusal with `status`: `{error: "<message>"}` only, as
/// `application/json` (not a problem); its message.
#[track_caller]
fn pulsar_error(answer: &Answer, status: StatusCode) -> String {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.header("content-type"), "application/json");
    let fields = answer.body.as_object().expect("an object");
    assert_eq!(fields.len(), 1, "only `error`: {}", answer.body);
    answer.body["error"]
        .as_str()
        .expect("a message")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookies_refusals_under_a_compat_surface_are_in_its_shape_and_counted() {
    let (app, browser, _) = signed_in().await;
    let log = app.api.log_head().await;
    let kill = format!("/compat/pulsar/job/{}/kill", uuid::Uuid::new_v4());
    // A write without the CSRF header: pulsar's `{error}`, not a problem.
    let answer = browser.write_with(Method::POST, &kill, None, &[]).await;
    let message = pulsar_error(&answer, StatusCode::FORBIDDEN);
    assert!(message.contains("X-CSRF-Token"), "{message}");
    // Another origin's read, likewise.
    let answer = browser
        .write_with(
            Method::GET,
            "/compat/pulsar/jobs",
            None,
            &[("origin", "http://evil.example")],
        )
        .await;
    let message = pulsar_error(&answer, StatusCode::FORBIDDEN);
    assert!(message.contains("Origin"), "{message}");
    log.assert_unchanged("refused cookie requests").await;
    // Counted like any other answer.
    let metrics = app.api.anonymous().get("/metrics").await;
    let metrics = metrics.body.as_str().expect("text");
    for expected in [
        r#"bosun_http_requests_total{method="POST",route="/compat/pulsar/job/{id}/kill",status="403"} 1"#,
        r#"bosun_http_requests_total{method="GET",route="/compat/pulsar/jobs",status="403"} 1"#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected:?} in:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_token_has_no_console_session_to_show_or_to_end() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin.shop_of_team_ops().await;
    let issued = admin
        .post("/v1/apps/shop/tokens", json!({}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let token = admin.with_token(issued["token"].as_str().expect("its secret"));
    let log = app.api.log_head().await;
    token
        .get("/console/session")
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "forbidden");
    token
        .call(Method::DELETE, "/console/session", None)
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "forbidden");
    log.assert_unchanged("an app token's sign-out").await;
    // Not revoked: it still works.
    let whoami = token.get("/v1/auth/whoami").await.expect(StatusCode::OK);
    assert_eq!(whoami.body["user"], "app:shop", "{}", whoami.body);
}
