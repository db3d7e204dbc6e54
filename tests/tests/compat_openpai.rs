//! OpenPAI's REST server's wire format under `/compat/openpai`, spoken as its clients and the
//! seed's curl examples speak it, in its three generations: the seed (`/api/auth`,
//! `/api/job…`, `{error, message}` errors), v1 (`/api/v1/token`, `/api/v1/user…`,
//! `/api/v1/jobs…`, `/api/v1/user/{user}/jobs…`) and v2 (`/api/v2/authn…`, `/api/v2/jobs…`
//! with YAML configs, `/api/v2/users…`), with `{code, message}` errors and OpenPAI's codes.
//! Logins give Bosun tokens; users are Bosun's users; jobs are native role jobs, read back in
//! `/v1` and `/v1/audit` with the same actor. Every refusal is in the generation's error shape
//! with its status and leaves the log as it was. The server runs in the test's process.

use bosun_tests::{spawn_app, Api, LogHead, TestApp};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const CATALOG: &str = r#"
catalog:
  example:
    production:
      deploy:
        command: ["sh", "-c", "echo deploying; sleep 0.2; echo done"]
      broken:
        command: ["sh", "-c", "echo failing >&2; exit 3"]
      sleep:
        command: ["sleep", "600"]
"#;

/// A password good enough for Bosun (6 to 50 characters).
const PASSWORD: &str = "s3cret-pw";

/// An OpenPAI client of the surface: a token (none if empty) sent as `Bearer`.
#[derive(Clone)]
struct Pai {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An answer: status, headers, body as JSON (`Null` if empty; a JSON string if not JSON).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    #[track_caller]
    fn expect(self, status: StatusCode) -> Reply {
        assert_eq!(self.status, status, "{}", self.text);
        self
    }

    /// `Content-Type` exactly `application/json`.
    #[track_caller]
    fn json(self) -> Reply {
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{:?} {}",
            self.headers,
            self.text
        );
        self
    }

    /// v1 and v2's refusal: `{code, message}` with `status`; its message.
    #[track_caller]
    fn coded(self, status: StatusCode, code: &str) -> String {
        let reply = self.expect(status).json();
        let keys: Vec<&String> = reply.body.as_object().expect("an object").keys().collect();
        assert_eq!(keys, ["code", "message"], "{}", reply.body);
        assert_eq!(reply.body["code"], code, "{}", reply.body);
        let message = reply.body["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{}", reply.body);
        message.to_string()
    }

    /// The seed's refusal: `{error, message}` with `status`; its message.
    #[track_caller]
    fn seed_error(self, status: StatusCode, error: &str) -> String {
        let reply = self.expect(status).json();
        let keys: Vec<&String> = reply.body.as_object().expect("an object").keys().collect();
        assert_eq!(keys, ["error", "message"], "{}", reply.body);
        assert_eq!(reply.body["error"], error, "{}", reply.body);
        reply.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Pai {
    fn new(app: &TestApp, token: &str) -> Pai {
        Pai {
            base: app.url("/compat/openpai"),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    fn with_token(&self, token: &str) -> Pai {
        Pai {
            token: token.to_string(),
            ..self.clone()
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        if self.token.is_empty() {
            request
        } else {
            request.bearer_auth(&self.token)
        }
    }

    async fn send(request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("an HTTP answer");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
        };
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// `method path` with a JSON body, if any, as the SDK sends it (`content-type:
    /// application/json` on every call).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .request(method, path)
            .header("content-type", "application/json");
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        Pai::send(request).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// `method path` with a form body (`pairs` as written, already encoded).
    async fn form(&self, method: Method, path: &str, body: &str) -> Reply {
        let request = self
            .request(method, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        Pai::send(request).await
    }

    /// `method path` with `body` sent with `content_type`, as curl would.
    async fn raw(&self, method: Method, path: &str, content_type: &str, body: &str) -> Reply {
        let request = self
            .request(method, path)
            .header("content-type", content_type)
            .body(body.to_string());
        Pai::send(request).await
    }
}

struct World {
    app: TestApp,
    /// The admin, on the surface.
    admin: Pai,
}

impl World {
    async fn start() -> World {
        World::with(CATALOG).await
    }

    /// A server whose jobs wait (no worker): for refusals that must find the log as it was,
    /// with no job's events racing them.
    async fn idle() -> World {
        World::with(&format!("{CATALOG}\nrunner:\n  workers: 0\n")).await
    }

    async fn with(config: &str) -> World {
        let app = spawn_app(config).await;
        let admin = Pai::new(&app, &app.api.token);
        World { app, admin }
    }

    /// A new user `name` (not an admin) made natively, and their surface client, logged in
    /// natively.
    async fn user(&self, name: &str) -> (Api, Pai) {
        let api = self.app.api.new_user(name, PASSWORD).await;
        let pai = Pai::new(&self.app, &api.token);
        (api, pai)
    }

    async fn log_head(&self) -> LogHead {
        self.app.api.log_head().await
    }
}

/// The native caller a token is (`GET /v1/auth/whoami`).
async fn whoami(app: &TestApp, token: &str) -> Value {
    app.api
        .with_token(token)
        .get("/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body
}

// Logging in.

#[tokio::test]
async fn the_seeds_curl_login_a_form_sent_as_json_gives_a_bosun_token() {
    let world = World::start().await;
    world.user("alice").await;
    // `curl -H "Content-Type: application/json" -X POST …/api/auth -d "username=…" -d "password=…"`
    let reply = world
        .admin
        .with_token("")
        .raw(
            Method::POST,
            "/api/auth",
            "application/json",
            &format!("username=alice&password={PASSWORD}"),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(reply.body["user"], "alice", "{}", reply.body);
    let token = reply.body["token"].as_str().expect("a token");
    assert_eq!(whoami(&world.app, token).await["user"], "alice");
}

#[tokio::test]
async fn a_seed_login_with_a_wrong_password_is_authentication_failed_and_writes_nothing() {
    let world = World::start().await;
    world.user("alice").await;
    let head = world.log_head().await;
    for body in [
        json!({"username": "alice", "password": "wrong-password"}),
        json!({"username": "nobody", "password": PASSWORD}),
    ] {
        world
            .admin
            .with_token("")
            .call(Method::POST, "/api/auth", Some(body))
            .await
            .seed_error(StatusCode::UNAUTHORIZED, "AuthenticationFailed");
    }
    head.assert_unchanged("failed seed logins").await;
}

#[tokio::test]
async fn a_v2_login_is_the_sdks_form_and_answers_login_info() {
    let world = World::start().await;
    world.user("alice").await;
    let reply = world
        .admin
        .with_token("")
        .form(
            Method::POST,
            "/api/v2/authn/basic/login",
            &format!("expiration=4000&password={PASSWORD}&username=alice"),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    let body = &reply.body;
    assert_eq!(body["user"], "alice", "{body}");
    assert_eq!(body["admin"], false, "{body}");
    assert_eq!(body["hasGitHubPAT"], false, "{body}");
    let me = whoami(&world.app, body["token"].as_str().unwrap()).await;
    assert_eq!(me["user"], "alice");
    // `expiration` is the token's lifetime.
    let expires = chrono::DateTime::parse_from_rfc3339(me["expires_at"].as_str().unwrap()).unwrap();
    let left = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((3900..=4000).contains(&left), "{me}");
}

#[tokio::test]
async fn a_v1_token_login_takes_json_and_says_an_admin_is_one() {
    let world = World::start().await;
    world
        .app
        .api
        .post(
            "/v1/users",
            json!({"username": "root2", "password": PASSWORD, "admin": true}),
        )
        .await
        .expect(StatusCode::CREATED);
    let reply = world
        .admin
        .with_token("")
        .call(
            Method::POST,
            "/api/v1/token",
            Some(json!({"username": "root2", "password": PASSWORD})),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(reply.body["admin"], true, "{}", reply.body);
    assert_eq!(reply.body["user"], "root2");
}

#[tokio::test]
async fn a_login_form_of_too_many_fields_is_refused_at_once() {
    let world = World::start().await;
    world.user("alice").await;
    let head = world.log_head().await;
    let anonymous = world.admin.with_token("");
    let many = format!(
        "username=alice&password={PASSWORD}&{}",
        (0..10_000)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&")
    );
    let started = std::time::Instant::now();
    let message = anonymous
        .form(Method::POST, "/api/v2/authn/basic/login", &many)
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    assert!(message.contains("10000"), "{message}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    head.assert_unchanged("a login of too many fields").await;
}

#[tokio::test]
async fn a_v2_login_refused_is_coded_and_writes_nothing() {
    let world = World::start().await;
    world.user("alice").await;
    let head = world.log_head().await;
    let anonymous = world.admin.with_token("");
    anonymous
        .form(
            Method::POST,
            "/api/v2/authn/basic/login",
            "username=alice&password=wrong-password",
        )
        .await
        .coded(StatusCode::BAD_REQUEST, "IncorrectPasswordError");
    anonymous
        .form(Method::POST, "/api/v2/authn/basic/login", "username=alice")
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    let message = anonymous
        .form(
            Method::POST,
            "/api/v1/token",
            &format!("username=alice&password={PASSWORD}&expiration=0"),
        )
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    assert!(message.contains("expiration"), "{message}");
    head.assert_unchanged("refused logins").await;
}

#[tokio::test]
async fn a_v2_logout_ends_the_token_at_once() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    alice
        .get("/api/v2/users/alice")
        .await
        .expect(StatusCode::OK);
    let reply = alice
        .call(Method::DELETE, "/api/v2/authn/basic/logout", None)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(reply.body, json!({"message": "Logout successfully"}));
    alice
        .get("/api/v2/users/alice")
        .await
        .coded(StatusCode::UNAUTHORIZED, "UnauthorizedUserError");
}

#[tokio::test]
async fn the_server_describes_itself_and_its_login() {
    let world = World::start().await;
    let anonymous = world.admin.with_token("");
    let info = anonymous
        .get("/api/v2/authn/info")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(info.body["authn_type"], "basic");
    assert_eq!(info.body["loginURIMethod"], "post");
    for path in ["/api/v1", "/api/v1/", "/api/v2/info"] {
        let cluster = anonymous.get(path).await.expect(StatusCode::OK).json();
        assert_eq!(cluster.body["name"], "PAI RESTful API", "{path}");
        assert_eq!(cluster.body["authnMethod"], "basic", "{path}");
    }
}

// Who is calling.

#[tokio::test]
async fn a_token_may_come_as_openpais_basic_user_and_token() {
    let world = World::start().await;
    let (api, _) = world.user("alice").await;
    let basic = |user: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", api.token))
        )
    };
    let anonymous = world.admin.with_token("");
    let reply = Pai::send(
        anonymous
            .request(Method::GET, "/api/v2/users/alice")
            .header("authorization", basic("alice")),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(reply.body["username"], "alice");
    Pai::send(
        anonymous
            .request(Method::GET, "/api/v2/users/alice")
            .header("authorization", basic("bob")),
    )
    .await
    .coded(StatusCode::UNAUTHORIZED, "UnauthorizedUserError");
}

#[tokio::test]
async fn a_token_may_come_as_pulsars_basic_token_and_x_oauth_basic() {
    let world = World::start().await;
    let (api, _) = world.user("alice").await;
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:x-oauth-basic", api.token))
    );
    let anonymous = world.admin.with_token("");
    let reply = Pai::send(
        anonymous
            .request(Method::GET, "/api/v2/users/me")
            .header("authorization", basic),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(reply.body["username"], "alice", "{}", reply.body);
}

#[tokio::test]
async fn no_token_is_a_guest_refused_in_each_generations_shape() {
    let world = World::start().await;
    let anonymous = world.admin.with_token("");
    let message = anonymous
        .get("/api/v2/users/admin")
        .await
        .coded(StatusCode::UNAUTHORIZED, "UnauthorizedUserError");
    assert!(message.contains("Guest"), "{message}");
    anonymous
        .get("/api/v1/user")
        .await
        .coded(StatusCode::UNAUTHORIZED, "UnauthorizedUserError");
    anonymous
        .call(Method::DELETE, "/api/auth", Some(json!({"username": "x"})))
        .await
        .seed_error(StatusCode::UNAUTHORIZED, "UnauthorizedError");
}

#[tokio::test]
async fn an_unknown_path_is_no_api_in_each_generations_shape() {
    let world = World::start().await;
    let message = world
        .admin
        .get("/api/v2/nothing/here")
        .await
        .coded(StatusCode::NOT_FOUND, "NoApiError");
    assert!(
        message.contains("/compat/openpai/api/v2/nothing/here"),
        "{message}"
    );
    world
        .admin
        .get("/api/v1/nothing")
        .await
        .coded(StatusCode::NOT_FOUND, "NoApiError");
    world
        .admin
        .get("/api/nothing")
        .await
        .seed_error(StatusCode::NOT_FOUND, "NotFound");
    world
        .admin
        .call(Method::PATCH, "/api/v2/authn/info", None)
        .await
        .coded(StatusCode::METHOD_NOT_ALLOWED, "NoApiError");
}

// Users.

#[tokio::test]
async fn the_seed_adds_changes_and_removes_users_as_an_admin() {
    let world = World::start().await;
    let anonymous = world.admin.with_token("");
    let added = world
        .admin
        .call(
            Method::PUT,
            "/api/auth",
            Some(
                json!({"username": "carol", "password": PASSWORD, "admin": false, "modify": false}),
            ),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(added.body, json!({"message": "update successfully"}));
    anonymous
        .call(
            Method::POST,
            "/api/auth",
            Some(json!({"username": "carol", "password": PASSWORD})),
        )
        .await
        .expect(StatusCode::OK);
    world
        .admin
        .call(
            Method::PUT,
            "/api/auth",
            Some(json!({"username": "carol", "password": "another-pw", "modify": true})),
        )
        .await
        .expect(StatusCode::OK);
    anonymous
        .call(
            Method::POST,
            "/api/auth",
            Some(json!({"username": "carol", "password": "another-pw"})),
        )
        .await
        .expect(StatusCode::OK);
    let removed = world
        .admin
        .call(
            Method::DELETE,
            "/api/auth",
            Some(json!({"username": "carol"})),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(removed.body, json!({"message": "remove successfully"}));
    world
        .app
        .api
        .get("/v1/users/carol")
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn seed_user_changes_refused_are_shaped_and_write_nothing() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    let head = world.log_head().await;
    alice
        .call(
            Method::PUT,
            "/api/auth",
            Some(json!({"username": "dave", "password": PASSWORD, "modify": false})),
        )
        .await
        .seed_error(StatusCode::FORBIDDEN, "NotAuthorized");
    world
        .admin
        .call(
            Method::PUT,
            "/api/auth",
            Some(json!({"username": "alice", "password": PASSWORD, "modify": false})),
        )
        .await
        .seed_error(StatusCode::CONFLICT, "UpdateFailed");
    world
        .admin
        .call(
            Method::PUT,
            "/api/auth",
            Some(json!({"username": "dave", "password": PASSWORD})),
        )
        .await
        .seed_error(StatusCode::BAD_REQUEST, "ParameterValidationError");
    world
        .admin
        .call(
            Method::PUT,
            "/api/auth",
            Some(json!({"username": "dave", "password": "short", "modify": false})),
        )
        .await
        .seed_error(StatusCode::BAD_REQUEST, "ParameterValidationError");
    head.assert_unchanged("refused seed user changes").await;
}

#[tokio::test]
async fn v1_users_are_put_listed_and_removed_with_bodies() {
    let world = World::start().await;
    world
        .admin
        .form(
            Method::PUT,
            "/api/v1/user",
            &format!("username=erin&password={PASSWORD}&admin=false&modify=false"),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    let listed = world
        .admin
        .get("/api/v1/user")
        .await
        .expect(StatusCode::OK)
        .json();
    let erin = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "erin")
        .cloned()
        .expect("erin listed");
    assert_eq!(erin["admin"], false);
    let one = world
        .admin
        .get("/api/v1/user/erin/")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(one.body["username"], "erin");
    world
        .admin
        .call(
            Method::DELETE,
            "/api/v1/user",
            Some(json!({"username": "erin"})),
        )
        .await
        .expect(StatusCode::OK);
    world
        .admin
        .call(
            Method::DELETE,
            "/api/v1/user",
            Some(json!({"username": "erin"})),
        )
        .await
        .coded(StatusCode::NOT_FOUND, "NoUserError");
}

#[tokio::test]
async fn a_v1_user_changes_their_own_password_with_the_old_one() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    alice
        .call(
            Method::PUT,
            "/api/v1/user",
            Some(json!({"username": "alice", "password": "new-password", "modify": true, "oldPassword": PASSWORD})),
        )
        .await
        .expect(StatusCode::CREATED);
    world.app.api.login("alice", "new-password").await;
    // Without the old one, it is an admin's change.
    let head = world.log_head().await;
    alice
        .call(
            Method::PUT,
            "/api/v1/user",
            Some(json!({"username": "alice", "password": "third-password", "modify": true})),
        )
        .await
        .coded(StatusCode::FORBIDDEN, "ForbiddenUserError");
    head.assert_unchanged("a user's change without the old password")
        .await;
}

#[tokio::test]
async fn v2_users_are_created_read_changed_and_removed() {
    let world = World::start().await;
    world
        .admin
        .call(
            Method::POST,
            "/api/v2/users/",
            Some(json!({"username": "frank", "email": "frank@example.com", "virtualCluster": ["default"], "admin": false, "password": PASSWORD, "extension": {}})),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    let all = world
        .admin
        .get("/api/v2/users/")
        .await
        .expect(StatusCode::OK)
        .json();
    assert!(
        all.body
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "frank"),
        "{}",
        all.body
    );
    let frank = world
        .admin
        .get("/api/v2/users/frank")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(frank.body["email"], "frank@example.com");
    assert_eq!(frank.body["admin"], false);
    assert_eq!(frank.body["virtualCluster"], json!(["default"]));
    world
        .admin
        .call(
            Method::PUT,
            "/api/v2/users",
            Some(json!({"patch": true, "data": {"username": "frank", "admin": true}})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        world
            .app
            .api
            .get("/v1/users/frank")
            .await
            .expect(StatusCode::OK)
            .body["admin"],
        true
    );
    let removed = world
        .admin
        .call(Method::DELETE, "/api/v2/users/frank", None)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        removed.body,
        json!({"message": "user is removed successfully"})
    );
    world
        .admin
        .get("/api/v2/users/frank")
        .await
        .coded(StatusCode::NOT_FOUND, "NoUserError");
}

#[tokio::test]
async fn a_v2_user_changes_their_password_at_me() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    alice
        .call(
            Method::PUT,
            "/api/v2/users/me",
            Some(json!({"patch": true, "data": {"username": "alice", "newPassword": "new-password", "oldPassword": PASSWORD}})),
        )
        .await
        .expect(StatusCode::CREATED);
    world.app.api.login("alice", "new-password").await;
}

#[tokio::test]
async fn a_v2_user_reads_themself_at_me() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    let me = alice
        .get("/api/v2/users/me")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(me.body["username"], "alice", "{}", me.body);
    assert_eq!(me.body["admin"], false, "{}", me.body);
}

#[tokio::test]
async fn a_new_password_with_a_bad_email_at_me_changes_nothing() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    let head = world.log_head().await;
    alice
        .call(
            Method::PUT,
            "/api/v2/users/me",
            Some(json!({"data": {"username": "alice", "newPassword": "new-password", "oldPassword": PASSWORD, "email": "not an email"}})),
        )
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    // A good email is an admin's to change: refused before the password is.
    alice
        .call(
            Method::PUT,
            "/api/v2/users/me",
            Some(json!({"data": {"username": "alice", "newPassword": "new-password", "oldPassword": PASSWORD, "email": "alice@example.org"}})),
        )
        .await
        .coded(StatusCode::FORBIDDEN, "ForbiddenUserError");
    head.assert_unchanged("refused changes at me").await;
    world.app.api.login("alice", PASSWORD).await;
}

#[tokio::test]
async fn an_admin_changes_their_password_and_email_at_me_at_once() {
    let world = World::start().await;
    world
        .app
        .api
        .post(
            "/v1/users",
            json!({"username": "root2", "password": PASSWORD, "admin": true, "email": "old@example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let root = world.app.api.login("root2", PASSWORD).await;
    let pai = Pai::new(&world.app, &root.token);
    // A wrong old password: neither changes.
    let head = world.log_head().await;
    pai.call(
        Method::PUT,
        "/api/v2/users/me",
        Some(json!({"data": {"username": "root2", "newPassword": "new-password", "oldPassword": "wrong-password", "email": "new@example.org"}})),
    )
    .await
    .coded(StatusCode::FORBIDDEN, "ForbiddenUserError");
    head.assert_unchanged("a wrong old password at me").await;
    pai.call(
        Method::PUT,
        "/api/v2/users/me",
        Some(json!({"data": {"username": "root2", "newPassword": "new-password", "oldPassword": PASSWORD, "email": "new@example.org"}})),
    )
    .await
    .expect(StatusCode::CREATED);
    let again = world.app.api.login("root2", "new-password").await;
    let me = again.get("/v1/users/me").await.expect(StatusCode::OK).body;
    assert_eq!(me["email"], "new@example.org", "{me}");
}

#[tokio::test]
async fn v2_user_refusals_are_coded_and_write_nothing() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    let head = world.log_head().await;
    world
        .admin
        .call(
            Method::POST,
            "/api/v2/users",
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await
        .coded(StatusCode::CONFLICT, "ConflictUserError");
    alice
        .call(
            Method::POST,
            "/api/v2/users",
            Some(json!({"username": "gina", "password": PASSWORD})),
        )
        .await
        .coded(StatusCode::FORBIDDEN, "ForbiddenUserError");
    alice
        .get("/api/v2/users/admin")
        .await
        .coded(StatusCode::FORBIDDEN, "ForbiddenUserError");
    alice
        .call(
            Method::PUT,
            "/api/v2/users/me",
            Some(json!({"data": {"username": "admin", "newPassword": "new-password", "oldPassword": PASSWORD}})),
        )
        .await
        .coded(StatusCode::FORBIDDEN, "ForbiddenUserError");
    alice
        .call(
            Method::PUT,
            "/api/v2/users/me",
            Some(json!({"data": {"username": "alice", "newPassword": "new-password", "oldPassword": "wrong-password"}})),
        )
        .await
        .coded(StatusCode::FORBIDDEN, "ForbiddenUserError");
    world
        .admin
        .call(
            Method::POST,
            "/api/v2/users",
            Some(json!({"username": "gina", "password": PASSWORD, "grouplist": []})),
        )
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    world
        .admin
        .raw(Method::POST, "/api/v2/users", "text/plain", "username=gina")
        .await
        .coded(StatusCode::UNSUPPORTED_MEDIA_TYPE, "InvalidParametersError");
    world
        .admin
        .call(Method::DELETE, "/api/v2/users/nobody", None)
        .await
        .coded(StatusCode::NOT_FOUND, "NoUserError");
    head.assert_unchanged("refused v2 user calls").await;
}

#[tokio::test]
async fn surface_user_actions_are_audited_under_the_same_actor() {
    let world = World::start().await;
    world
        .admin
        .call(
            Method::POST,
            "/api/v2/users",
            Some(json!({"username": "hank", "password": PASSWORD})),
        )
        .await
        .expect(StatusCode::CREATED);
    let me = whoami(&world.app, &world.admin.token).await;
    let admin = me["user"].as_str().unwrap();
    let audit = world
        .app
        .api
        .get(&format!("/v1/audit?actor={admin}&limit=1000"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"].as_str().is_some_and(|t| t.contains("hank"))),
        "{audit}"
    );
}

// Jobs.

/// A v2 job config (YAML) of task roles `roles` (`(name, instances, command)`).
fn v2_config(name: &str, roles: &[(&str, u32, &str)]) -> String {
    let mut yaml = format!(
        "protocolVersion: 2\nname: {name}\ntype: job\nprerequisites:\n  - name: image\n    type: dockerimage\n    uri: ubuntu:22.04\ntaskRoles:\n"
    );
    for (role, instances, command) in roles {
        yaml.push_str(&format!(
            "  {role}:\n    instances: {instances}\n    dockerImage: image\n    resourcePerInstance: {{cpu: 1, memoryMB: 512, gpu: 0}}\n    commands:\n      - '{command}'\n"
        ));
    }
    yaml
}

impl Pai {
    /// `POST /api/v2/jobs` with a YAML body, as the SDK's `createJob` sends it.
    async fn submit_v2(&self, yaml: &str) -> Reply {
        self.raw(Method::POST, "/api/v2/jobs", "text/yaml", yaml)
            .await
    }

    /// Polls `path` (a job) until its state (`state_at` picks it) is `state`.
    async fn wait_state(&self, path: &str, state: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let reply = self.get(path).await.expect(StatusCode::OK).json();
            let now = reply.body["jobStatus"]["state"]
                .as_str()
                .or_else(|| reply.body["state"].as_str())
                .unwrap_or_default()
                .to_string();
            if now == state {
                return reply.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never {state}: {}",
                reply.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_v2_yaml_job_of_a_catalog_task_runs_its_instances_to_succeeded() {
    let world = World::start().await;
    let (api, alice) = world.user("alice").await;
    let reply = alice
        .submit_v2(&v2_config(
            "train",
            &[("worker", 2, "example/production/deploy")],
        ))
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(reply.body["status"], 202, "{}", reply.body);
    let job = alice
        .wait_state("/api/v2/jobs/alice~train", "SUCCEEDED")
        .await;
    assert_eq!(job["name"], "train", "{job}");
    let status = &job["jobStatus"];
    assert_eq!(status["username"], "alice", "{job}");
    assert_eq!(status["subState"], "Completed", "{job}");
    assert_eq!(status["executionType"], "START", "{job}");
    assert_eq!(status["appExitCode"], 0, "{job}");
    assert!(
        status["createdTime"].is_i64() && status["completedTime"].is_i64(),
        "{job}"
    );
    let tasks = job["taskRoles"]["worker"]["taskStatuses"]
        .as_array()
        .unwrap();
    assert_eq!(tasks.len(), 2, "{job}");
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(task["taskIndex"], i, "{job}");
        assert_eq!(task["taskState"], "SUCCEEDED", "{job}");
    }
    // The same job natively, by the same user.
    let native = api
        .get(&format!("/v1/jobs/{}", status["appId"].as_str().unwrap()))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(native["kind"], "roles", "{native}");
    assert_eq!(native["created_by"], "alice", "{native}");
    assert_eq!(native["image"], "ubuntu:22.04", "{native}");
    assert_eq!(native["status"], "success", "{native}");
    let audit = world
        .app
        .api
        .get("/v1/audit?actor=alice&limit=1000")
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        audit.as_array().unwrap().iter().any(|e| e["target"]
            .as_str()
            .is_some_and(|t| t.contains(native["id"].as_str().unwrap()))),
        "{audit}"
    );
}

#[tokio::test]
async fn a_v2_job_of_a_failing_task_is_failed_naming_its_instance() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    alice
        .submit_v2(&v2_config(
            "bad",
            &[("main", 1, "example/production/broken")],
        ))
        .await
        .expect(StatusCode::ACCEPTED);
    let job = alice.wait_state("/api/v2/jobs/alice~bad", "FAILED").await;
    assert_eq!(job["jobStatus"]["appExitCode"], 3, "{job}");
    assert_eq!(
        job["jobStatus"]["appExitTriggerTaskRoleName"], "main",
        "{job}"
    );
    assert_eq!(
        job["taskRoles"]["main"]["taskStatuses"][0]["containerExitCode"], 3,
        "{job}"
    );
}

#[tokio::test]
async fn a_v2_config_reads_back_as_yaml() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    alice
        .submit_v2(&v2_config(
            "cfg",
            &[
                ("a", 1, "example/production/deploy"),
                ("b", 2, "example/production/deploy"),
            ],
        ))
        .await
        .expect(StatusCode::ACCEPTED);
    let reply = alice
        .get("/api/v2/jobs/alice~cfg/config")
        .await
        .expect(StatusCode::OK);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/yaml"),
        "{:?}",
        reply.headers
    );
    // The SDK parses it with js-yaml (the client test); here, its lines.
    let text = &reply.text;
    for line in [
        "protocolVersion: 2",
        "name: cfg",
        "type: job",
        "  uri: ubuntu:22.04",
        "  b:\n    instances: 2",
        "  - example/production/deploy",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    let (a, b) = (text.find("\n  a:\n"), text.find("\n  b:\n"));
    assert!(a.is_some() && a < b, "the roles in order: {text}");
}

#[tokio::test]
async fn a_v2_stop_stops_every_instance_of_a_running_job() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    alice
        .submit_v2(&v2_config(
            "long",
            &[("main", 2, "example/production/sleep")],
        ))
        .await
        .expect(StatusCode::ACCEPTED);
    alice.wait_state("/api/v2/jobs/alice~long", "RUNNING").await;
    let reply = alice
        .call(
            Method::PUT,
            "/api/v2/jobs/alice~long/executionType",
            Some(json!({"value": "STOP"})),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(reply.body["status"], 202, "{}", reply.body);
    let job = alice.wait_state("/api/v2/jobs/alice~long", "STOPPED").await;
    assert_eq!(job["jobStatus"]["executionType"], "STOP", "{job}");
    for task in job["taskRoles"]["main"]["taskStatuses"].as_array().unwrap() {
        assert_ne!(task["taskState"], "RUNNING", "{job}");
    }
    // A finished job cannot be stopped again.
    let head = world.log_head().await;
    alice
        .call(
            Method::PUT,
            "/api/v2/jobs/alice~long/executionType",
            Some(json!({"value": "STOP"})),
        )
        .await
        .coded(StatusCode::CONFLICT, "ReadOnlyJobError");
    head.assert_unchanged("a stop of a stopped job").await;
}

#[tokio::test]
async fn v2_job_submissions_refused_are_coded_and_write_nothing() {
    let world = World::idle().await;
    let (_, alice) = world.user("alice").await;
    alice
        .submit_v2(&v2_config(
            "taken",
            &[("main", 1, "example/production/deploy")],
        ))
        .await
        .expect(StatusCode::ACCEPTED);
    let head = world.log_head().await;
    alice
        .submit_v2(&v2_config(
            "taken",
            &[("main", 1, "example/production/deploy")],
        ))
        .await
        .coded(StatusCode::CONFLICT, "ConflictJobError");
    let message = alice
        .submit_v2(&v2_config("cmd", &[("main", 1, "echo hello")]))
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    assert!(message.contains("compat.openpai.commands"), "{message}");
    alice
        .submit_v2(&v2_config(
            "nocat",
            &[("main", 1, "example/production/nothing")],
        ))
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    alice
        .submit_v2("name: j\ntaskRoles: {main: {commands: [a/b/c]}, other: {}}")
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidProtocolError");
    alice
        .submit_v2("name: [")
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    alice
        .submit_v2(&v2_config(
            "bad name!",
            &[("main", 1, "example/production/deploy")],
        ))
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    alice
        .submit_v2(&v2_config(
            "many",
            &[("main", 101, "example/production/deploy")],
        ))
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    world
        .admin
        .with_token("")
        .submit_v2(&v2_config(
            "anon",
            &[("main", 1, "example/production/deploy")],
        ))
        .await
        .coded(StatusCode::UNAUTHORIZED, "UnauthorizedUserError");
    head.assert_unchanged("refused v2 submissions").await;
}

/// Nine levels of nine aliases each: 9^9 values once expanded, from under a kilobyte.
fn alias_bomb() -> String {
    let mut text = String::from("protocolVersion: 2\nname: bomb\ntype: job\nextras:\n  a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for level in 1..=9 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 9].join(", ");
        text.push_str(&format!("  a{level}: &a{level} [{items}]\n"));
    }
    text.push_str("taskRoles:\n  main:\n    commands: [example/production/deploy]\n");
    text
}

#[tokio::test]
async fn a_yaml_alias_bomb_or_a_yaml_too_large_is_refused_at_once() {
    let world = World::idle().await;
    let (_, alice) = world.user("alice").await;
    let head = world.log_head().await;
    let started = std::time::Instant::now();
    let message = alice
        .submit_v2(&alias_bomb())
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    assert!(message.contains("aliases"), "{message}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let large = format!(
        "{}extras: '{}'\n",
        v2_config("large", &[("main", 1, "example/production/deploy")]),
        "x".repeat(300 * 1024)
    );
    alice
        .submit_v2(&large)
        .await
        .coded(StatusCode::PAYLOAD_TOO_LARGE, "InvalidParametersError");
    head.assert_unchanged("refused YAML bodies").await;
    // An alias as js-yaml's safeDump writes one is taken.
    let aliased = "protocolVersion: 2\nname: aliased\ntype: job\ntaskRoles:\n  a:\n    resourcePerInstance: &ref_0 {cpu: 1, memoryMB: 512, gpu: 0}\n    commands: [example/production/deploy]\n  b:\n    resourcePerInstance: *ref_0\n    commands: [example/production/deploy]\n";
    alice.submit_v2(aliased).await.expect(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_v2_list_of_one_user_named_many_times_is_that_users() {
    let world = World::idle().await;
    let (_, alice) = world.user("alice").await;
    alice
        .submit_v2(&v2_config(
            "only",
            &[("main", 1, "example/production/deploy")],
        ))
        .await
        .expect(StatusCode::ACCEPTED);
    let many = vec!["alice"; 5_000].join(",");
    let reply = world
        .admin
        .get(&format!("/api/v2/jobs?username={many}&withTotalCount=true"))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(reply.body["totalCount"], 1, "{}", reply.body);
    assert_eq!(reply.body["data"][0]["name"], "only", "{}", reply.body);
}

#[tokio::test]
async fn an_unresolved_reference_in_a_command_is_refused_naming_it() {
    let world = World::with(&format!(
        "{CATALOG}\nrunner:\n  workers: 0\ncompat:\n  openpai:\n    commands: sandbox\n"
    ))
    .await;
    let (_, alice) = world.user("alice").await;
    let head = world.log_head().await;
    let config = "protocolVersion: 2\nname: unresolved\ntype: job\nparameters:\n  a: 1\n\
                  taskRoles:\n  main:\n    commands:\n      - 'echo <% $parameters.a %>'\n      - 'echo <% $parameters.b %>'\n";
    let message = alice
        .submit_v2(config)
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidProtocolError");
    assert!(message.contains("taskRoles.main.commands[1]"), "{message}");
    head.assert_unchanged("an unresolved reference").await;
}

#[tokio::test]
async fn another_users_job_is_not_yours_to_read_or_stop() {
    let world = World::idle().await;
    let (_, alice) = world.user("alice").await;
    let (_, bob) = world.user("bob").await;
    alice
        .submit_v2(&v2_config(
            "mine",
            &[("main", 1, "example/production/sleep")],
        ))
        .await
        .expect(StatusCode::ACCEPTED);
    let head = world.log_head().await;
    // Not found, as a name alice has no job of: whether another's name is taken is not told.
    let hidden = bob
        .get("/api/v2/jobs/alice~mine")
        .await
        .coded(StatusCode::NOT_FOUND, "NoJobError");
    let missing = bob
        .get("/api/v2/jobs/alice~other")
        .await
        .coded(StatusCode::NOT_FOUND, "NoJobError");
    assert_eq!(hidden.replace("mine", "other"), missing);
    bob.call(
        Method::PUT,
        "/api/v2/jobs/alice~mine/executionType",
        Some(json!({"value": "STOP"})),
    )
    .await
    .coded(StatusCode::NOT_FOUND, "NoJobError");
    bob.get("/api/v2/jobs/bob~mine")
        .await
        .coded(StatusCode::NOT_FOUND, "NoJobError");
    bob.form(
        Method::POST,
        "/api/v1/user/alice/jobs",
        "jobName=x&taskRoles[0][name]=m&taskRoles[0][command]=example/production/deploy",
    )
    .await
    .coded(StatusCode::FORBIDDEN, "ForbiddenUserError");
    bob.call(
        Method::PUT,
        "/api/v2/jobs/alice~mine/executionType",
        Some(json!({"value": "PAUSE"})),
    )
    .await
    .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
    head.assert_unchanged("bob's calls on alice's job").await;
    // An admin may.
    world
        .admin
        .get("/api/v2/jobs/alice~mine")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn v2s_list_filters_by_user_and_state_and_counts() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    let (_, bob) = world.user("bob").await;
    alice
        .submit_v2(&v2_config(
            "one",
            &[("main", 1, "example/production/deploy")],
        ))
        .await
        .expect(StatusCode::ACCEPTED);
    alice
        .wait_state("/api/v2/jobs/alice~one", "SUCCEEDED")
        .await;
    alice
        .submit_v2(&v2_config(
            "two",
            &[("main", 1, "example/production/sleep")],
        ))
        .await
        .expect(StatusCode::ACCEPTED);
    bob.submit_v2(&v2_config(
        "three",
        &[("main", 1, "example/production/deploy")],
    ))
    .await
    .expect(StatusCode::ACCEPTED);
    let names = |reply: &Value| -> Vec<String> {
        reply
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                format!(
                    "{}~{}",
                    j["username"].as_str().unwrap(),
                    j["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let all = world
        .admin
        .get("/api/v2/jobs")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        names(&all.body),
        ["bob~three", "alice~two", "alice~one"],
        "{}",
        all.body
    );
    let item = &all.body[2];
    for field in [
        "name",
        "username",
        "state",
        "subState",
        "executionType",
        "retries",
        "retryDetails",
        "createdTime",
        "completedTime",
        "virtualCluster",
        "appExitCode",
        "totalGpuNumber",
        "totalTaskNumber",
        "totalTaskRoleNumber",
    ] {
        assert!(item.get(field).is_some(), "{field}: {item}");
    }
    assert_eq!(item["state"], "SUCCEEDED");
    // Every job where it stays while the filters are looked at: two done, one running.
    world
        .admin
        .wait_state("/api/v2/jobs/alice~two", "RUNNING")
        .await;
    world
        .admin
        .wait_state("/api/v2/jobs/bob~three", "SUCCEEDED")
        .await;
    let listed = |query: &'static str| {
        let admin = world.admin.clone();
        async move {
            let reply = admin
                .get(&format!("/api/v2/jobs?{query}"))
                .await
                .expect(StatusCode::OK)
                .json();
            names(&reply.body)
        }
    };
    assert_eq!(
        listed("username=alice&state=SUCCEEDED,WAITING").await,
        ["alice~one"]
    );
    assert_eq!(listed("username=alice&state=RUNNING").await, ["alice~two"]);
    assert_eq!(listed("state=RUNNING").await, ["alice~two"]);
    assert_eq!(listed("state=SUCCEEDED").await, ["bob~three", "alice~one"]);
    assert_eq!(
        listed("username=alice,bob&state=SUCCEEDED,RUNNING").await,
        ["bob~three", "alice~two", "alice~one"]
    );
    assert!(listed("username=carol").await.is_empty());
    assert!(listed("state=STOPPED").await.is_empty());
    // OpenPAI's order, its direction in either case.
    assert_eq!(
        listed("order=jobName,asc").await,
        ["alice~one", "bob~three", "alice~two"]
    );
    assert_eq!(
        listed("order=username,DESC").await,
        ["bob~three", "alice~two", "alice~one"]
    );
    let counted = world
        .admin
        .get("/api/v2/jobs?withTotalCount=true&limit=1&offset=1")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(counted.body["totalCount"], 3, "{}", counted.body);
    assert_eq!(names(&counted.body["data"]), ["alice~two"]);
    let keyword = world
        .admin
        .get("/api/v2/jobs?keyword=thr")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(names(&keyword.body), ["bob~three"]);
    // A user sees the jobs they may read.
    let bobs = bob.get("/api/v2/jobs").await.expect(StatusCode::OK).json();
    assert_eq!(names(&bobs.body), ["bob~three"]);
    world
        .admin
        .get("/api/v2/jobs?limit=50001")
        .await
        .coded(StatusCode::BAD_REQUEST, "InvalidParametersError");
}

#[tokio::test]
async fn a_v1_conversation_submits_a_form_reads_stops_and_removes_a_job() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    // What the SDK's v1 `submit` sends: `qs.stringify` of the config.
    let form = "jobName=v1job&image=aiplatform%2Fpai.build.base&codeDir=%24PAI_DEFAULT_FS_URI%2Fcode\
                &taskRoles%5B0%5D%5Bname%5D=main&taskRoles%5B0%5D%5BtaskNumber%5D=2\
                &taskRoles%5B0%5D%5BcpuNumber%5D=1&taskRoles%5B0%5D%5BmemoryMB%5D=1024\
                &taskRoles%5B0%5D%5BgpuNumber%5D=0&taskRoles%5B0%5D%5Bcommand%5D=example%2Fproduction%2Fsleep\
                &jobEnvs%5BMODE%5D=fast";
    let submitted = alice
        .form(Method::POST, "/api/v1/user/alice/jobs", form)
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(submitted.body["message"], "update job v1job successfully");
    assert_eq!(
        submitted.headers["location"],
        "/compat/openpai/api/v1/user/alice/jobs/v1job"
    );
    let job = alice
        .wait_state("/api/v1/user/alice/jobs/v1job", "RUNNING")
        .await;
    assert_eq!(job["jobStatus"]["name"], "v1job", "{job}");
    assert_eq!(job["jobStatus"]["subState"], "APPLICATION_RUNNING", "{job}");
    assert_eq!(
        job["taskRoles"]["main"]["taskStatuses"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The legacy path reads the same job.
    let legacy = alice
        .get("/api/v1/jobs/alice~v1job")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(legacy.body["jobStatus"]["appId"], job["jobStatus"]["appId"]);
    let config = alice
        .get("/api/v1/user/alice/jobs/v1job/config")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(config.body["jobName"], "v1job");
    assert_eq!(config.body["image"], "aiplatform/pai.build.base");
    assert_eq!(config.body["taskRoles"][0]["taskNumber"], 2);
    assert_eq!(config.body["jobEnvs"], json!({"MODE": "fast"}));
    let listed = alice
        .get("/api/v1/user/alice/jobs")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(listed.body[0]["name"], "v1job", "{}", listed.body);
    alice
        .call(
            Method::PUT,
            "/api/v1/user/alice/jobs/v1job/executionType",
            Some(json!({"value": "STOP"})),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    alice
        .wait_state("/api/v1/user/alice/jobs/v1job", "STOPPED")
        .await;
    let removed = alice
        .call(Method::DELETE, "/api/v1/user/alice/jobs/v1job", None)
        .await
        .expect(StatusCode::ACCEPTED)
        .json();
    assert_eq!(removed.body["message"], "deleted job v1job successfully");
    alice
        .get("/api/v1/user/alice/jobs/v1job")
        .await
        .coded(StatusCode::NOT_FOUND, "NoJobError");
    // Its name is free again.
    alice
        .form(Method::POST, "/api/v1/user/alice/jobs", form)
        .await
        .expect(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_v1_job_has_no_ssh_info() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    alice
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(json!({"jobName": "s", "image": "x", "taskRoles": [{"name": "m", "command": "example/production/deploy"}]})),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    alice
        .get("/api/v1/user/alice/jobs/s/ssh")
        .await
        .coded(StatusCode::NOT_FOUND, "NoJobSshInfoError");
    alice
        .get("/api/v2/jobs/alice~nothing/ssh")
        .await
        .coded(StatusCode::NOT_FOUND, "NoJobError");
}

/// The seed's `exampleJob.json` (examples/README.md of v0.1): one task role running a catalog
/// task here.
fn example_job() -> Value {
    json!({
        "jobName": "exampleJob",
        "image": "aiplatform/pai.run.tensorflow",
        "dataDir": "hdfs://path/tensorflow-distributed-jobguid/data",
        "outputDir": "hdfs://path/tensorflow-distributed-jobguid/output",
        "codeDir": "hdfs://path/tensorflow-distributed-jobguid/code",
        "taskRoles": [
            {
                "name": "ps_server",
                "taskNumber": 2,
                "cpuNumber": 2,
                "memoryMB": 8192,
                "gpuNumber": 0,
                "command": "example/production/deploy"
            }
        ],
        "killAllOnCompletedTaskNumber": 0,
        "retryCount": 0
    })
}

#[tokio::test]
async fn the_seeds_conversation_submits_monitors_and_removes_example_job() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    // `curl -H "Content-Type: application/json" -H "Authorization: Bearer …" -X PUT …/api/job/exampleJob -d @exampleJob.json`
    let put = alice
        .call(Method::PUT, "/api/job/exampleJob", Some(example_job()))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        put.body,
        json!({"message": "update job exampleJob successfully"})
    );
    let job = alice.wait_state("/api/job/exampleJob", "SUCCEEDED").await;
    for field in [
        "name",
        "state",
        "createdTime",
        "completedTime",
        "appId",
        "appProgress",
        "appTrackingUrl",
        "appLaunchedTime",
        "appCompletedTime",
        "appExitCode",
        "appExitDiagnostics",
        "retries",
        "username",
    ] {
        assert!(job.get(field).is_some(), "{field}: {job}");
    }
    assert_eq!(job["appExitCode"], 0, "{job}");
    // The list answers any method.
    for method in [Method::GET, Method::POST] {
        let list = alice
            .call(method, "/api/job", None)
            .await
            .expect(StatusCode::OK)
            .json();
        assert_eq!(list.body[0]["name"], "exampleJob", "{}", list.body);
        assert_eq!(list.body[0]["username"], "alice", "{}", list.body);
    }
    let head = world.log_head().await;
    alice
        .call(Method::PUT, "/api/job/exampleJob", Some(example_job()))
        .await
        .seed_error(StatusCode::CONFLICT, "DuplicateJobSubmission");
    let mut bad = example_job();
    bad["taskRoles"][0]["command"] = json!(null);
    alice
        .call(Method::PUT, "/api/job/other", Some(bad))
        .await
        .seed_error(StatusCode::BAD_REQUEST, "ParameterValidationError");
    head.assert_unchanged("refused seed submissions").await;
    let deleted = alice
        .call(Method::DELETE, "/api/job/exampleJob", None)
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        deleted.body,
        json!({"message": "deleted job exampleJob successfully"})
    );
    alice
        .get("/api/job/exampleJob")
        .await
        .seed_error(StatusCode::NOT_FOUND, "JOB_NOT_FOUND");
}

#[tokio::test]
async fn a_v2_jobs_commands_run_joined_in_the_sandbox_where_commands_are_allowed() {
    assert!(
        std::process::Command::new("bwrap")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "bubblewrap (bwrap) is needed to run a task role's commands: apt-get install bubblewrap"
    );
    let world = World::with(&format!(
        "{CATALOG}\ncompat:\n  openpai:\n    commands: sandbox\n"
    ))
    .await;
    let (api, alice) = world.user("alice").await;
    let config = "protocolVersion: 2\nname: shell\ntype: job\nparameters:\n  greeting: hello\n\
                  taskRoles:\n  main:\n    instances: 1\n    commands:\n      - 'echo <% $parameters.greeting %>'\n      - 'echo $PAI_TASK_ROLE_NAME'\n";
    alice.submit_v2(config).await.expect(StatusCode::ACCEPTED);
    let job = alice
        .wait_state("/api/v2/jobs/alice~shell", "SUCCEEDED")
        .await;
    let id = job["jobStatus"]["appId"].as_str().unwrap();
    let native = api
        .get(&format!("/v1/jobs/{id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        native["roles"][0]["command"], "echo hello && echo $PAI_TASK_ROLE_NAME",
        "{native}"
    );
    let output = api
        .get(&format!("/v1/jobs/{id}/output?stream=stdout"))
        .await
        .expect(StatusCode::OK);
    // The parameter rendered, then the role's name from its variable: one line each.
    assert_eq!(
        output.body.as_str(),
        Some("hello\nmain\n"),
        "{}",
        output.body
    );
}

#[tokio::test]
async fn a_v2_jobs_retry_count_runs_a_failed_job_again() {
    let world = World::start().await;
    let (_, alice) = world.user("alice").await;
    let config = format!(
        "{}jobRetryCount: 1\n",
        v2_config("again", &[("main", 1, "example/production/broken")])
    );
    alice.submit_v2(&config).await.expect(StatusCode::ACCEPTED);
    let job = alice.wait_state("/api/v2/jobs/alice~again", "FAILED").await;
    assert_eq!(job["jobStatus"]["retries"], 1, "{job}");
    assert_eq!(job["jobStatus"]["attemptId"], 1, "{job}");
    alice
        .get("/api/v2/jobs/alice~again/attempts/1")
        .await
        .expect(StatusCode::OK);
    alice
        .get("/api/v2/jobs/alice~again/attempts/0")
        .await
        .coded(StatusCode::NOT_FOUND, "NoJobError");
    let listed = alice
        .get("/api/v2/jobs")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(listed.body[0]["retries"], 1, "{}", listed.body);
}
