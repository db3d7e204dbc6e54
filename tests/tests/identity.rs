//! Identity, access and the audit API, over real HTTP against the real binary, as a new user
//! would use them: bootstrap admin, users, teams, tokens, refusals, and the log behind it all.

use bosun_tests::{work_dir, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
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

    // No password and no token is anywhere in the log in clear.
    let log = serde_json::to_string(&events).unwrap();
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
        log.contains("$argon2id$"),
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
