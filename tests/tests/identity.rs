//! Identity, access and the audit API, over real HTTP against the real binary, as a new user
//! would use them: bootstrap admin, users, teams, tokens, refusals, and the log behind it all.

use bosun_eventstore::{EventStore, Filter};
use bosun_tests::{join, work_dir, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

struct Api {
    base: String,
    http: reqwest::Client,
    /// An admin token, to read the log's head.
    admin: String,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Api {
    fn new(server: &Server, admin: &str) -> Api {
        Api {
            base: server.base.clone(),
            http: reqwest::Client::new(),
            admin: admin.to_string(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("user-agent", "identity-test/1");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let a = self
            .post(
                "/v1/auth/tokens",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "login {username}: {}",
            a.body
        );
        a.body["token"].as_str().expect("a token").to_string()
    }

    /// The head of the log, read through the events API.
    async fn head(&self, admin: &str) -> u64 {
        let a = self.get("/v1/events?limit=1", admin).await;
        a.headers["bosun-head"].to_str().unwrap().parse().unwrap()
    }

    /// A refusal: the status, a problem body with that status and a code, and nothing written
    /// (the head of the log is still `head_before`).
    async fn refused(&self, answer: Answer, status: StatusCode, code: &str, head_before: u64) {
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(
            answer.headers["content-type"], "application/problem+json",
            "{}",
            answer.body
        );
        assert_eq!(answer.body["status"], status.as_u16(), "{}", answer.body);
        assert_eq!(answer.body["code"], code, "{}", answer.body);
        let head = self.head(&self.admin).await;
        assert_eq!(
            head, head_before,
            "a refusal wrote to the log: {}",
            answer.body
        );
    }

    /// Every event in the log, in position order.
    async fn all_events(&self, admin: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut from = 1;
        loop {
            let a = self
                .get(&format!("/v1/events?from={from}&limit=1000"), admin)
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            let page = a.body.as_array().unwrap().clone();
            let Some(last) = page.last() else { break };
            from = last["position"].as_u64().unwrap() + 1;
            let full = page.len() == 1000;
            events.extend(page);
            if !full {
                break;
            }
        }
        events
    }
}

/// The whole log as the database holds it, read past the API (which redacts what it shows), as
/// one JSON text to search.
async fn stored_log(dir: &Path) -> String {
    let (_postgres, store) = join(&dir.join("bosun-data")).await;
    let events = store
        .read_all(1, 1_000_000, &Filter::all())
        .await
        .expect("read the stored log");
    serde_json::to_string(&events).unwrap()
}

/// What the log keeps of a token: its SHA-256 digest in lowercase hex.
fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh server of its own, and its bootstrap admin's token.
fn start() -> (tempfile::TempDir, Server, String) {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = std::fs::read_to_string(dir.path().join("bosun-data/admin-token"))
        .unwrap()
        .trim()
        .to_string();
    (dir, server, admin)
}

/// The fields a 400's problem body names.
fn fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

fn bootstrap_password(server: &Server) -> String {
    let printed = server.stdout();
    printed
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("password:")
                .map(|p| p.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no bootstrap password on stdout: {printed:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_teams_tokens_and_every_refusal() {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    // The first start created an admin: its token on disk (0600), its password on stdout once.
    let token_file = dir.path().join("bosun-data/admin-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    let api = Api::new(&server, &admin);
    let admin_password = bootstrap_password(&server);
    let session = api.login("admin", &admin_password).await;
    let me = api.get("/v1/auth/whoami", &session).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        (me.body["user"].as_str(), me.body["admin"].as_bool()),
        (Some("admin"), Some(true))
    );
    assert!(
        me.body["expires_at"].is_string(),
        "a login's token expires: {}",
        me.body
    );

    // A wrong password and an unknown user get the same answer.
    let wrong = api
        .post(
            "/v1/auth/tokens",
            None,
            json!({"username": "admin", "password": "not-it-at-all"}),
        )
        .await;
    let unknown = api
        .post(
            "/v1/auth/tokens",
            None,
            json!({"username": "nobody", "password": "not-it-at-all"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));

    // Users: created by an admin; each refusal says why and writes nothing.
    let created = api
        .post(
            "/v1/users",
            Some(&admin),
            json!({"username": "ann", "password": "ann-secret-1", "email": "ann@example.org"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(created.headers.contains_key("bosun-position"));
    assert_eq!(created.body["username"], "ann");
    assert!(created.body.get("password_hash").is_none());
    let head = api.head(&admin).await;
    for (body, status, code) in [
        (
            json!({"username": "b b", "password": "secret1"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"username": "x".repeat(65), "password": "secret1"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"username": "bob", "password": "12345"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"username": "bob", "password": "p".repeat(51)}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"username": "bob", "pasword": "secret1"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"username": "ann", "password": "secret1"}),
            StatusCode::CONFLICT,
            "user_exists",
        ),
        (
            json!({"username": "bob", "password": "secret1", "email": "ANN@example.org"}),
            StatusCode::CONFLICT,
            "email_taken",
        ),
    ] {
        let answer = api.post("/v1/users", Some(&admin), body).await;
        api.refused(answer, status, code, head).await;
    }
    let bad = api
        .post(
            "/v1/users",
            Some(&admin),
            json!({"username": "b b", "password": "1"}),
        )
        .await;
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["username", "password"]);

    // Authentication refusals.
    let no_token = api.call(Method::GET, "/v1/auth/whoami", None, None).await;
    api.refused(no_token, StatusCode::UNAUTHORIZED, "unauthorized", head)
        .await;
    let forged = api.get("/v1/auth/whoami", "bosun_not-a-real-token").await;
    api.refused(forged, StatusCode::UNAUTHORIZED, "unauthorized", head)
        .await;
    let malformed = api
        .http
        .get(format!("{}/v1/auth/whoami", api.base))
        .header("authorization", "Token abc")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::UNAUTHORIZED);
    // pulsar's form: the token as a Basic user name with x-oauth-basic as the password.
    let basic = api
        .http
        .get(format!("{}/v1/auth/whoami", api.base))
        .basic_auth(&admin, Some("x-oauth-basic"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);

    // Authorization: a non-admin may not manage users, may read only themself.
    let ann = api.login("ann", "ann-secret-1").await;
    let head = api.head(&admin).await;
    let answer = api
        .post(
            "/v1/users",
            Some(&ann),
            json!({"username": "eve", "password": "secret1"}),
        )
        .await;
    api.refused(answer, StatusCode::FORBIDDEN, "forbidden", head)
        .await;
    assert_eq!(
        api.get("/v1/users", &ann).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.get("/v1/users/admin", &ann).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(api.get("/v1/users/ann", &ann).await.status, StatusCode::OK);
    assert_eq!(
        api.get("/v1/events", &ann).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.get("/v1/audit", &ann).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.get("/v1/streams/user-ann", &ann).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/v1/streams/user-admin", &ann).await.status,
        StatusCode::FORBIDDEN
    );

    // Teams: the creator is a member; members and admins manage it, others may not.
    let bob = api
        .post(
            "/v1/users",
            Some(&admin),
            json!({"username": "bob", "password": "bob-secret-1"}),
        )
        .await;
    assert_eq!(bob.status, StatusCode::CREATED);
    let bob = api.login("bob", "bob-secret-1").await;
    let team = api
        .post("/v1/teams", Some(&ann), json!({"name": "ops"}))
        .await;
    assert_eq!(team.status, StatusCode::CREATED, "{}", team.body);
    assert_eq!(team.body["members"], json!(["ann"]));
    let head = api.head(&admin).await;
    let answer = api
        .call(Method::PUT, "/v1/teams/ops/members/bob", Some(&bob), None)
        .await;
    api.refused(answer, StatusCode::FORBIDDEN, "forbidden", head)
        .await;
    let answer = api
        .call(
            Method::PUT,
            "/v1/teams/ops/members/nobody",
            Some(&ann),
            None,
        )
        .await;
    api.refused(answer, StatusCode::NOT_FOUND, "not_found", head)
        .await;
    let answer = api
        .post("/v1/teams", Some(&bob), json!({"name": "ops"}))
        .await;
    api.refused(answer, StatusCode::CONFLICT, "team_exists", head)
        .await;
    assert_eq!(
        api.call(Method::PUT, "/v1/teams/ops/members/bob", Some(&ann), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get("/v1/teams/ops", &bob).await.body["members"],
        json!(["ann", "bob"])
    );
    assert_eq!(
        api.get("/v1/auth/whoami", &bob).await.body["teams"],
        json!(["ops"])
    );
    assert_eq!(
        api.get("/v1/streams/team-ops", &bob).await.status,
        StatusCode::OK
    );

    // Scopes: a read-only token reads but cannot write, nor mint itself more rights.
    let read_only = api
        .post(
            "/v1/tokens",
            Some(&ann),
            json!({"description": "dashboard", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(read_only.status, StatusCode::CREATED, "{}", read_only.body);
    let read_only_id = read_only.body["token_id"].as_str().unwrap().to_string();
    let read_only = read_only.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        api.get("/v1/auth/whoami", &read_only).await.body["scopes"],
        json!(["read"])
    );
    let head = api.head(&admin).await;
    let answer = api
        .post("/v1/teams", Some(&read_only), json!({"name": "dev"}))
        .await;
    api.refused(answer, StatusCode::FORBIDDEN, "forbidden", head)
        .await;
    let answer = api
        .post(
            "/v1/tokens",
            Some(&read_only),
            json!({"scopes": ["read", "write"]}),
        )
        .await;
    api.refused(answer, StatusCode::FORBIDDEN, "forbidden", head)
        .await;
    let answer = api
        .post("/v1/tokens", Some(&ann), json!({"scopes": ["root"]}))
        .await;
    api.refused(answer, StatusCode::BAD_REQUEST, "invalid_input", head)
        .await;
    let admin_read_only = api
        .post("/v1/tokens", Some(&admin), json!({"scopes": ["read"]}))
        .await;
    let admin_read_only = admin_read_only.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        api.get("/v1/users", &admin_read_only).await.status,
        StatusCode::FORBIDDEN,
        "admin rights need the admin scope"
    );

    // Listing tokens shows no secret; bob may not revoke ann's token; ann may, and it stops at once.
    let listed = api.get("/v1/tokens", &ann).await;
    assert_eq!(listed.headers["x-total-count"], "2");
    assert!(
        !listed.body.to_string().contains(&read_only)
            && !listed.body.to_string().contains("digest")
    );
    let head = api.head(&admin).await;
    let answer = api
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{read_only_id}"),
            Some(&bob),
            None,
        )
        .await;
    api.refused(answer, StatusCode::FORBIDDEN, "forbidden", head)
        .await;
    let revoked = api
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{read_only_id}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/v1/auth/whoami", &read_only).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Expiry and logout take effect at once.
    let short = api
        .post(
            "/v1/auth/tokens",
            None,
            json!({"username": "bob", "password": "bob-secret-1", "expires_in": 1}),
        )
        .await;
    let short = short.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        api.get("/v1/auth/whoami", &short).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        api.get("/v1/auth/whoami", &short).await.status,
        StatusCode::UNAUTHORIZED
    );
    let bob2 = api.login("bob", "bob-secret-1").await;
    assert_eq!(
        api.call(Method::DELETE, "/v1/auth/tokens/current", Some(&bob2), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get("/v1/auth/whoami", &bob2).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Passwords: only the user, knowing the old one.
    let head = api.head(&admin).await;
    let answer = api
        .call(
            Method::PUT,
            "/v1/users/ann/password",
            Some(&ann),
            Some(json!({"old": "wrong-old", "new": "ann-secret-2"})),
        )
        .await;
    api.refused(answer, StatusCode::FORBIDDEN, "forbidden", head)
        .await;
    let answer = api
        .call(
            Method::PUT,
            "/v1/users/ann/password",
            Some(&bob),
            Some(json!({"old": "ann-secret-1", "new": "ann-secret-2"})),
        )
        .await;
    api.refused(answer, StatusCode::FORBIDDEN, "forbidden", head)
        .await;
    let answer = api
        .call(
            Method::PUT,
            "/v1/users/ann/password",
            Some(&ann),
            Some(json!({"old": "ann-secret-1", "new": "short"})),
        )
        .await;
    api.refused(answer, StatusCode::BAD_REQUEST, "invalid_input", head)
        .await;
    let changed = api
        .call(
            Method::PUT,
            "/v1/users/ann/password",
            Some(&ann),
            Some(json!({"old": "ann-secret-1", "new": "ann-secret-2"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    api.login("ann", "ann-secret-2").await;

    // The last admin can be neither removed nor demoted; with a second admin, it can.
    let head = api.head(&admin).await;
    let answer = api
        .call(Method::DELETE, "/v1/users/admin", Some(&admin), None)
        .await;
    api.refused(answer, StatusCode::CONFLICT, "last_admin", head)
        .await;
    let answer = api
        .call(
            Method::PATCH,
            "/v1/users/admin",
            Some(&admin),
            Some(json!({"admin": false})),
        )
        .await;
    api.refused(answer, StatusCode::CONFLICT, "last_admin", head)
        .await;
    let promoted = api
        .call(
            Method::PATCH,
            "/v1/users/bob",
            Some(&admin),
            Some(json!({"admin": true})),
        )
        .await;
    assert_eq!(
        (promoted.status, &promoted.body["admin"]),
        (StatusCode::OK, &json!(true))
    );
    let demoted = api
        .call(
            Method::PATCH,
            "/v1/users/bob",
            Some(&admin),
            Some(json!({"admin": false})),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK);

    // A removed user's tokens stop working, and they leave their teams.
    let ann_api_token = api
        .post("/v1/tokens", Some(&ann), json!({"description": "ci"}))
        .await;
    let ann_api_token = ann_api_token.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        api.call(Method::DELETE, "/v1/users/ann", Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get("/v1/auth/whoami", &ann).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.get("/v1/auth/whoami", &ann_api_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.get("/v1/teams/ops", &admin).await.body["members"],
        json!(["bob"])
    );
    assert_eq!(
        api.get("/v1/users/ann", &admin).await.status,
        StatusCode::NOT_FOUND
    );

    // A new user of the removed name starts with no team and none of the old tokens, and can be
    // added to the team again.
    let again = api
        .post(
            "/v1/users",
            Some(&admin),
            json!({"username": "ann", "password": "new-ann-pw"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body["teams"], json!([]));
    assert_eq!(
        api.get("/v1/auth/whoami", &ann_api_token).await.status,
        StatusCode::UNAUTHORIZED,
        "the old user's token stays dead"
    );
    let readded = api
        .call(Method::PUT, "/v1/teams/ops/members/ann", Some(&admin), None)
        .await;
    assert_eq!(readded.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/v1/teams/ops", &admin).await.body["members"],
        json!(["ann", "bob"])
    );

    // Logging out needs no write scope: a read-only token may give itself up.
    let viewer = api
        .post("/v1/tokens", Some(&admin), json!({"scopes": ["read"]}))
        .await;
    let viewer = viewer.body["token"].as_str().unwrap().to_string();
    let out = api
        .call(
            Method::DELETE,
            "/v1/auth/tokens/current",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    assert_eq!(
        api.get("/v1/auth/whoami", &viewer).await.status,
        StatusCode::UNAUTHORIZED
    );

    // More refusals, each with its status, a problem body and nothing written.
    let ann_again = api.login("ann", "new-ann-pw").await;
    let bob_again = api.login("bob", "bob-secret-1").await;
    let carl = api
        .post(
            "/v1/users",
            Some(&admin),
            json!({"username": "carl", "password": "carl-pw-1"}),
        )
        .await;
    assert_eq!(carl.status, StatusCode::CREATED);
    let carl = api.login("carl", "carl-pw-1").await;
    let write_only = api
        .post("/v1/tokens", Some(&admin), json!({"scopes": ["write"]}))
        .await;
    let write_only = write_only.body["token"].as_str().unwrap().to_string();
    let head = api.head(&admin).await;
    let refusals = [
        (
            Method::PATCH,
            "/v1/users/ann",
            &bob_again,
            Some(json!({"admin": true})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::PATCH,
            "/v1/users/nobody",
            &admin,
            Some(json!({"admin": true})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/v1/tokens/00000000-0000-0000-0000-000000000000",
            &admin,
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/v1/tokens/not-a-uuid",
            &admin,
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/audit?limit=0",
            &admin,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/v1/audit?since=yesterday",
            &admin,
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/v1/auth/whoami",
            &write_only,
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::DELETE,
            "/v1/teams/ops/members/bob",
            &carl,
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::DELETE,
            "/v1/teams/ops",
            &carl,
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Method::DELETE,
            "/v1/teams/ops/members/carl",
            &ann_again,
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            "/v1/users",
            &admin,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, path, token, body, status, code) in refusals {
        let answer = api.call(method, path, Some(token), body).await;
        api.refused(answer, status, code, head).await;
    }

    // A member removes another, then the team; then it is gone.
    let removed = api
        .call(
            Method::DELETE,
            "/v1/teams/ops/members/bob",
            Some(&ann_again),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/v1/teams/ops", &ann_again).await.body["members"],
        json!(["ann"])
    );
    let gone = api
        .call(Method::DELETE, "/v1/teams/ops", Some(&ann_again), None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/v1/teams/ops", &ann_again).await.status,
        StatusCode::NOT_FOUND
    );
    let head = api.head(&admin).await;
    let again = api
        .call(Method::DELETE, "/v1/teams/ops", Some(&admin), None)
        .await;
    api.refused(again, StatusCode::NOT_FOUND, "not_found", head)
        .await;

    // Every step is in the log with who, from where, under which request; and in the audit.
    let events = api.all_events(&admin).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for expected in [
        "UserRegistered",
        "TokenIssued",
        "TeamCreated",
        "TeamMemberAdded",
        "TokenRevoked",
        "PasswordChanged",
        "UserUpdated",
        "UserRemoved",
    ] {
        assert!(types.contains(&expected), "no {expected} in {types:?}");
    }
    let removal = events
        .iter()
        .find(|e| e["event_type"] == "UserRemoved")
        .unwrap();
    assert_eq!(removal["stream_id"], "user-ann");
    assert_eq!(removal["metadata"]["actor"], "admin");
    assert_eq!(removal["metadata"]["user_agent"], "identity-test/1");
    assert_eq!(removal["metadata"]["source"], "127.0.0.1");
    assert!(removal["metadata"]["request_id"].is_string());
    for key in ["correlation_id", "causation_id"] {
        assert!(removal["metadata"].get(key).is_some(), "no {key}");
    }
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>());
    let by_ann = api.get("/v1/events?actor=ann&limit=1000", &admin).await;
    assert!(by_ann
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["metadata"]["actor"] == "ann"));
    assert!(by_ann
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event_type"] == "TeamCreated"));

    let audit = api.get("/v1/audit?actor=ann&limit=1000", &admin).await;
    assert_eq!(audit.status, StatusCode::OK);
    let entries = audit.body.as_array().unwrap();
    assert_eq!(
        audit.headers["x-total-count"].to_str().unwrap(),
        entries.len().to_string()
    );
    let created_team = entries
        .iter()
        .find(|e| e["action"] == "TeamCreated")
        .unwrap();
    assert_eq!(created_team["target"], "team-ops");
    assert_eq!(created_team["source"], "127.0.0.1");
    assert!(created_team["at"].is_string() && created_team["request_id"].is_string());
    let since = api
        .get("/v1/audit?since=2999-01-01T00:00:00Z", &admin)
        .await;
    assert_eq!(since.body, json!([]));
    assert_eq!(
        api.get("/v1/streams/user-nobody", &admin).await.status,
        StatusCode::NOT_FOUND
    );

    // No password and no token is anywhere in the log in clear: neither in the log as stored nor
    // in what the API shows of it.
    let stored = stored_log(dir.path()).await;
    let log = serde_json::to_string(&events).unwrap() + &stored;
    let passwords = [
        admin_password.as_str(),
        "ann-secret-1",
        "ann-secret-2",
        "bob-secret-1",
        "new-ann-pw",
        "carl-pw-1",
    ];
    let tokens = [
        &admin,
        &session,
        &ann,
        &bob,
        &read_only,
        &short,
        &ann_api_token,
        &viewer,
        &carl,
        &write_only,
        &ann_again,
        &bob_again,
    ];
    for secret in passwords
        .into_iter()
        .chain(tokens.iter().map(|t| t.as_str()))
    {
        assert!(!log.contains(secret), "a secret is in the log in clear");
    }
    assert!(
        stored.contains("$argon2id$"),
        "passwords are kept as argon2 hashes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_command_line_uses_the_servers_database() {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = std::fs::read_to_string(dir.path().join("bosun-data/admin-token")).unwrap();
    let api = Api::new(&server, admin.trim());
    let run = |args: &[&str]| {
        std::process::Command::new(bosun_tests::bosun_binary())
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run bosun admin")
    };
    let created = run(&["admin", "create-user", "ops_lead", "--admin"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8_lossy(&created.stdout);
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password printed: {stdout}"));
    let session = api.login("ops_lead", password).await;
    assert_eq!(
        api.get("/v1/auth/whoami", &session).await.body["admin"],
        true
    );

    let issued = run(&["admin", "issue-token", "ops_lead"]);
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let token = String::from_utf8_lossy(&issued.stdout).trim().to_string();
    let me = api.get("/v1/auth/whoami", &token).await;
    assert_eq!(
        (me.status, &me.body["user"]),
        (StatusCode::OK, &json!("ops_lead"))
    );

    let bad = run(&["admin", "create-user", "no way"]);
    assert_eq!(bad.status.code(), Some(2), "a bad name is a usage error");
    let unknown = run(&["admin", "issue-token", "ghost"]);
    assert!(!unknown.status.success());
    // A password read from stdin meets the same rule as one in a body: no NUL (nor any other
    // control character), whatever the HTTP layer refuses on its own.
    for password in ["secret\0pw\n", "secret\u{1b}pw\n"] {
        let mut child = std::process::Command::new(bosun_tests::bosun_binary())
            .args(["admin", "create-user", "stdin_user", "--password-stdin"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run bosun admin");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        let refused = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("password"), "{stderr}");
    }
    let events = api.all_events(&token).await;
    let cli = events
        .iter()
        .filter(|e| e["metadata"]["actor"] == "cli")
        .count();
    assert_eq!(
        cli, 2,
        "the user and the token, recorded as done by the command line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_are_unique_without_regard_to_case() {
    let (_dir, server, admin) = start();
    let api = Api::new(&server, &admin);
    let new_user = |name: &str| json!({"username": name, "password": "secret-pw-1"});
    let ann = api.post("/v1/users", Some(&admin), new_user("ann")).await;
    assert_eq!(ann.status, StatusCode::CREATED, "{}", ann.body);

    // A name that differs only in case is taken, as the same name is.
    let head = api.head(&admin).await;
    for name in ["ann", "ANN", "Ann", "aNN"] {
        let answer = api.post("/v1/users", Some(&admin), new_user(name)).await;
        api.refused(answer, StatusCode::CONFLICT, "user_exists", head)
            .await;
    }

    // A name keeps the case it was registered with, in paths and logins alike.
    let mixed = api
        .post("/v1/users", Some(&admin), new_user("Bo_Lee"))
        .await;
    assert_eq!(mixed.status, StatusCode::CREATED, "{}", mixed.body);
    assert_eq!(mixed.body["username"], "Bo_Lee");
    let bo = api.login("Bo_Lee", "secret-pw-1").await;
    assert_eq!(api.get("/v1/auth/whoami", &bo).await.body["user"], "Bo_Lee");
    assert_eq!(
        api.get("/v1/users/Bo_Lee", &admin).await.status,
        StatusCode::OK
    );
    let head = api.head(&admin).await;
    let answer = api
        .post("/v1/users", Some(&admin), new_user("bo_lee"))
        .await;
    api.refused(answer, StatusCode::CONFLICT, "user_exists", head)
        .await;

    // Two registrations of one name in two cases at once: one wins, the other is refused.
    for (lower, upper) in [("carl", "CARL"), ("dana", "Dana"), ("eli", "ELI")] {
        let (a, b) = tokio::join!(
            api.post("/v1/users", Some(&admin), new_user(lower)),
            api.post("/v1/users", Some(&admin), new_user(upper)),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "{lower}: {} / {upper}: {}",
            a.body,
            b.body
        );
        let loser = if a.status == StatusCode::CONFLICT {
            a
        } else {
            b
        };
        assert_eq!(loser.body["code"], "user_exists", "{}", loser.body);
        let users = api.get("/v1/users?limit=1000", &admin).await;
        let holders = users
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["username"].as_str().unwrap().eq_ignore_ascii_case(lower))
            .count();
        assert_eq!(holders, 1, "{}", users.body);
    }

    // A removed user's name is free again, in any case.
    let removed = api
        .call(Method::DELETE, "/v1/users/ann", Some(&admin), None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let again = api.post("/v1/users", Some(&admin), new_user("ANN")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_may_not_hold_control_characters() {
    let (_dir, server, admin) = start();
    let api = Api::new(&server, &admin);
    let created = api
        .post(
            "/v1/users",
            Some(&admin),
            json!({"username": "dan", "password": "dan-secret-1"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let dan = api.login("dan", "dan-secret-1").await;
    let head = api.head(&admin).await;

    // A NUL is refused (by the body's reader or by the password's own rule, whichever is first).
    let answer = api
        .post(
            "/v1/users",
            Some(&admin),
            json!({"username": "eve", "password": "secret\u{0}pw"}),
        )
        .await;
    api.refused(answer, StatusCode::BAD_REQUEST, "invalid_input", head)
        .await;

    // Other control characters, which only the password's rule refuses, name the field.
    let refusals = [
        (
            Method::POST,
            "/v1/users",
            &admin,
            json!({"username": "eve", "password": "secret\u{1b}pw"}),
            "password",
        ),
        (
            Method::PATCH,
            "/v1/users/dan",
            &admin,
            json!({"password": "new\tsecret"}),
            "password",
        ),
        (
            Method::PUT,
            "/v1/users/dan/password",
            &dan,
            json!({"old": "dan-secret-1", "new": "new\nsecret"}),
            "new",
        ),
    ];
    for (method, path, token, body, field) in refusals {
        let answer = api.call(method, path, Some(token), Some(body)).await;
        assert_eq!(fields(&answer.body), [field], "{path}: {}", answer.body);
        api.refused(answer, StatusCode::BAD_REQUEST, "invalid_input", head)
            .await;
    }
    api.login("dan", "dan-secret-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_email_clears_it_and_frees_the_address() {
    let (_dir, server, admin) = start();
    let api = Api::new(&server, &admin);
    for body in [
        json!({"username": "erin", "password": "erin-secret", "email": "erin@example.org"}),
        json!({"username": "fay", "password": "fay-secret-1"}),
    ] {
        let created = api.post("/v1/users", Some(&admin), body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let patch = |user: &str, body: Value| {
        let path = format!("/v1/users/{user}");
        let admin = admin.clone();
        let api = &api;
        async move {
            api.call(Method::PATCH, &path, Some(&admin), Some(body))
                .await
        }
    };

    // An absent email stays as it is, and nothing is written.
    let head = api.head(&admin).await;
    let kept = patch("erin", json!({})).await;
    assert_eq!(
        (kept.status, &kept.body["email"]),
        (StatusCode::OK, &json!("erin@example.org"))
    );
    assert_eq!(api.head(&admin).await, head);

    // An explicit null clears it, in the answer, the read model and the log.
    let cleared = patch("erin", json!({"email": null})).await;
    assert_eq!(
        (cleared.status, &cleared.body["email"]),
        (StatusCode::OK, &Value::Null),
        "{}",
        cleared.body
    );
    assert_eq!(
        api.get("/v1/users/erin", &admin).await.body["email"],
        Value::Null
    );
    let stream = api.get("/v1/streams/user-erin", &admin).await;
    let last = stream.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event_type"], "UserUpdated");
    assert_eq!(
        last["data"],
        json!({"username": "erin", "email_cleared": true})
    );

    // Clearing it again changes nothing and writes nothing.
    let head = api.head(&admin).await;
    let again = patch("erin", json!({"email": null})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(api.head(&admin).await, head);

    // The address is free for another user; then it is taken again.
    let moved = patch("fay", json!({"email": "ERIN@example.org"})).await;
    assert_eq!(
        (moved.status, &moved.body["email"]),
        (StatusCode::OK, &json!("erin@example.org")),
        "{}",
        moved.body
    );
    let head = api.head(&admin).await;
    let taken = patch("erin", json!({"email": "erin@example.org"})).await;
    api.refused(taken, StatusCode::CONFLICT, "email_taken", head)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_token_and_team_lists_are_paged() {
    let (_dir, server, admin) = start();
    let api = Api::new(&server, &admin);
    for name in ["u1", "u2", "u3", "u4"] {
        let created = api
            .post(
                "/v1/users",
                Some(&admin),
                json!({"username": name, "password": "secret-pw-1"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let mut issued = Vec::new();
    for description in ["first", "second"] {
        let token = api
            .post(
                "/v1/tokens",
                Some(&admin),
                json!({"description": description}),
            )
            .await;
        assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
        issued.push(token.body["token_id"].as_str().unwrap().to_string());
    }
    for name in ["t1", "t2", "t3"] {
        let team = api
            .post("/v1/teams", Some(&admin), json!({"name": name}))
            .await;
        assert_eq!(team.status, StatusCode::CREATED, "{}", team.body);
    }

    // A page: at most `limit` after `offset`, and the total of the whole list.
    let page = |path: &str, key: &str| {
        let path = path.to_string();
        let key = key.to_string();
        let api = &api;
        let admin = admin.clone();
        async move {
            let a = api.get(&path, &admin).await;
            assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
            let total: i64 = a.headers["x-total-count"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let items: Vec<String> = a
                .body
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item[&key].as_str().unwrap().to_string())
                .collect();
            (items, total)
        }
    };
    // Users by name: admin, u1, u2, u3, u4.
    assert_eq!(
        page("/v1/users?limit=2&offset=1", "username").await,
        (vec!["u1".to_string(), "u2".into()], 5)
    );
    assert_eq!(
        page("/v1/users?offset=4", "username").await,
        (vec!["u4".to_string()], 5)
    );
    assert_eq!(page("/v1/users?offset=10", "username").await, (vec![], 5));
    // Tokens newest first: the bootstrap token and the two issued.
    assert_eq!(
        page("/v1/tokens?limit=1", "token_id").await,
        (vec![issued[1].clone()], 3)
    );
    assert_eq!(
        page("/v1/tokens?limit=1&offset=1", "token_id").await,
        (vec![issued[0].clone()], 3)
    );
    assert_eq!(page("/v1/tokens?offset=2", "token_id").await.0.len(), 1);
    // Teams by name.
    assert_eq!(
        page("/v1/teams?limit=1&offset=1", "name").await,
        (vec!["t2".to_string()], 3)
    );

    // Bounds out of range: a 400 naming the parameter, and nothing written.
    let head = api.head(&admin).await;
    for list in ["/v1/users", "/v1/tokens", "/v1/teams"] {
        for (query, field) in [
            ("limit=-1", Some("limit")),
            ("limit=0", Some("limit")),
            ("limit=1001", Some("limit")),
            ("offset=-1", Some("offset")),
            ("limit=ten", None),
        ] {
            let path = format!("{list}?{query}");
            let answer = api.get(&path, &admin).await;
            if let Some(field) = field {
                assert_eq!(fields(&answer.body), [field], "{path}: {}", answer.body);
            }
            api.refused(answer, StatusCode::BAD_REQUEST, "invalid_input", head)
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_log_shows_no_password_hash_nor_token_digest() {
    let (dir, server, admin) = start();
    let api = Api::new(&server, &admin);
    let created = api
        .post(
            "/v1/users",
            Some(&admin),
            json!({"username": "hal", "password": "hal-secret-1"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let session = api.login("hal", "hal-secret-1").await;
    let issued = api
        .post("/v1/tokens", Some(&session), json!({"description": "ci"}))
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let token_id = issued.body["token_id"].as_str().unwrap().to_string();
    let token = issued.body["token"].as_str().unwrap().to_string();
    let changed = api
        .call(
            Method::PUT,
            "/v1/users/hal/password",
            Some(&session),
            Some(json!({"old": "hal-secret-1", "new": "hal-secret-2"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    let digests = [digest(&admin), digest(&session), digest(&token)];
    let hides_secrets = |what: &str, body: &Value| {
        let text = body.to_string();
        assert!(!text.contains("$argon2"), "{what} shows a password hash");
        for d in &digests {
            assert!(!text.contains(d.as_str()), "{what} shows a token digest");
        }
    };
    // Each event is there, its secret's field redacted.
    let redacted = |events: &Value, event_type: &str, field: &str| {
        let found: Vec<&Value> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == event_type)
            .collect();
        assert!(!found.is_empty(), "no {event_type} in {events}");
        for event in found {
            assert_eq!(event["data"][field], "[redacted]", "{event}");
        }
    };

    // The user's own stream, as the user and as an admin.
    for reader in [&session, &admin] {
        let stream = api.get("/v1/streams/user-hal", reader).await;
        assert_eq!(stream.status, StatusCode::OK, "{}", stream.body);
        hides_secrets("/v1/streams/user-hal", &stream.body);
        redacted(&stream.body, "UserRegistered", "password_hash");
        redacted(&stream.body, "PasswordChanged", "password_hash");
        assert_eq!(stream.body[0]["data"]["username"], "hal");
    }

    // The token's stream.
    let stream = api
        .get(&format!("/v1/streams/token-{token_id}"), &session)
        .await;
    assert_eq!(stream.status, StatusCode::OK, "{}", stream.body);
    hides_secrets("/v1/streams/token-…", &stream.body);
    redacted(&stream.body, "TokenIssued", "digest");
    assert_eq!(stream.body[0]["data"]["token_id"], token_id.as_str());

    // The whole log, for an admin, filtered or not.
    let events = Value::Array(api.all_events(&admin).await);
    hides_secrets("/v1/events", &events);
    redacted(&events, "UserRegistered", "password_hash");
    redacted(&events, "PasswordChanged", "password_hash");
    redacted(&events, "TokenIssued", "digest");
    let users = api.get("/v1/events?category=user,token", &admin).await;
    hides_secrets("/v1/events?category=user,token", &users.body);

    // The log itself keeps them: the aggregates check passwords and tokens against them.
    let stored = stored_log(dir.path()).await;
    assert!(stored.contains("$argon2id$"));
    for d in &digests {
        assert!(stored.contains(d.as_str()), "the log lost a token's digest");
    }
    api.login("hal", "hal-secret-2").await;
    assert_eq!(
        api.get("/v1/auth/whoami", &token).await.status,
        StatusCode::OK
    );
}

/// The NUL character cannot be stored: in a path or a query it is a 400, never a 500. The
/// refusal itself is the extractors' (api/src/extract.rs); this checks the identity and log
/// routes get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_path_or_a_query_is_a_bad_request() {
    let (_dir, server, admin) = start();
    let api = Api::new(&server, &admin);
    let head = api.head(&admin).await;
    for (method, path) in [
        (Method::GET, "/v1/users/%00"),
        (Method::PATCH, "/v1/users/%00"),
        (Method::DELETE, "/v1/users/%00"),
        (Method::GET, "/v1/teams/%00"),
        (Method::DELETE, "/v1/teams/%00"),
        (Method::DELETE, "/v1/tokens/%00"),
        (Method::GET, "/v1/streams/user-%00"),
        (Method::GET, "/v1/audit?actor=%00"),
        (Method::GET, "/v1/events?actor=%00"),
        (Method::GET, "/v1/events?category=%00"),
        (Method::GET, "/v1/events?type=%00"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"admin": true}));
        let answer = api.call(method.clone(), path, Some(&admin), body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{method} {path}");
        api.refused(answer, StatusCode::BAD_REQUEST, "invalid_input", head)
            .await;
    }
}
