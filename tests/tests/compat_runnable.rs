//! Runnable api-server 0.2.0's wire format under `/compat/runnable`, spoken as its clients spoke
//! it (the `runnable-token` header, JSON bodies, Runnable's routes): the browser-less
//! conversation of the seed (ask `/users/me`, get 401, make an anonymous user, fork an image,
//! write a file, start, stop, save), each action then read in `/v1` and in `/v1/audit` with the
//! same actor; making a registered user in one call (one append), logging in by name or email
//! (no one and a wrong password one 403), registering later (the token changes, the runnables
//! stay);
//! the files API (list, read, change in place, move, delete); images (save, overwrite, page,
//! read, remove); a started container really running in the bwrap sandbox, synced and stopped;
//! and the refusals, each `{message}` with its status and `Content-Type: application/json`,
//! leaving the log as it was. The server runs in the test's process; but for the sandbox test,
//! no node runs runnables (`runner.workers: 0`, `units: 0`), as in `runnable_runs.rs`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bosun_tests::{spawn_app, Api, LogHead, TestApp};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// No node runs runnables: nothing is appended behind a test's back.
const QUIET: &str = "runner:\n  workers: 0\n  units: 0\n";

/// A client of `/compat/runnable`: every call carries `runnable-token` (none if `token` is
/// empty).
#[derive(Clone)]
struct Runnable {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An answer: status, headers, and the body as JSON (`Null` if empty; a JSON string if not).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    /// Asserts the status and `Content-Type: application/json` exactly; the body.
    #[track_caller]
    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert_json(&self);
        self.body
    }

    /// The answer as Runnable's refusal, `{message}` alone with `status`: its message.
    #[track_caller]
    fn refusal(self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_json(&self);
        let fields = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {}", self.body));
        assert_eq!(fields.len(), 1, "{}", self.body);
        let message = self.body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {}", self.body));
        assert!(!message.is_empty());
        message.to_string()
    }
}

#[track_caller]
fn assert_json(reply: &Reply) {
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{:?}",
        reply.headers
    );
}

impl Runnable {
    fn of(app: &TestApp) -> Runnable {
        Runnable {
            base: app.url("/compat/runnable"),
            token: String::new(),
            http: reqwest::Client::new(),
        }
    }

    fn with_token(&self, token: &str) -> Runnable {
        Runnable {
            token: token.to_string(),
            ..self.clone()
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match self.token.is_empty() {
            true => request,
            false => request.header("runnable-token", &self.token),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = match text.is_empty() {
            true => Value::Null,
            false => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// A new anonymous user (`POST /users`, no body): a client with its token, and its `_id`.
    async fn anonymous(&self) -> (Runnable, String) {
        let user = self
            .anonymous_client()
            .send(self.request(Method::POST, "/users"))
            .await
            .expect(StatusCode::CREATED);
        let token = user["access_token"].as_str().expect("an access token");
        let id = user["_id"].as_str().expect("an id").to_string();
        (self.with_token(token), id)
    }

    fn anonymous_client(&self) -> Runnable {
        self.with_token("")
    }
}

/// A refusal of `call` by `client`, checked to leave the log as `head` saw it: its message.
async fn refused(head: &LogHead, reply: Reply, status: StatusCode, what: &str) -> String {
    let message = reply.refusal(status);
    head.assert_unchanged(format_args!("{what}: {message}"))
        .await;
    message
}

/// A root runnable of the admin's, saved (an image anyone may fork): its id.
async fn saved_root(admin: &Api, name: &str) -> String {
    let root = admin
        .post(
            "/v1/runnables",
            json!({"name": name, "start_command": "sh main.sh",
                   "files": [{"path": "main.sh", "content": "echo hello\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = root["id"].as_str().expect("an id").to_string();
    admin
        .call(Method::POST, &format!("/v1/runnables/{id}/save"), None)
        .await
        .expect(StatusCode::OK);
    id
}

/// `client`'s fork of `from`: its id.
async fn fork(client: &Runnable, from: &str) -> String {
    let fork = client
        .post(&format!("/users/me/runnables?from={from}"), json!({}))
        .await
        .expect(StatusCode::CREATED);
    fork["_id"].as_str().expect("an id").to_string()
}

/// The file id of native path `path`.
fn file_id(path: &str) -> String {
    URL_SAFE_NO_PAD.encode(path)
}

/// A server (`yaml`), the Runnable client, and an image of the admin's to fork.
async fn world(yaml: &str) -> (TestApp, Runnable, String) {
    let app = spawn_app(yaml).await;
    let root = saved_root(&app.api, "hello").await;
    let client = Runnable::of(&app);
    (app, client, root)
}

/// The events of runnable `id`'s stream, as `/v1/streams` lists them.
async fn stream(admin: &Api, id: &str) -> Vec<Value> {
    admin
        .get(&format!("/v1/streams/runnable-{id}"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .expect("a list")
        .clone()
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

/// The content of file `path` of runnable `id`, as `/v1` reads it.
async fn native_file(admin: &Api, id: &str, path: &str) -> (StatusCode, String) {
    let response = admin
        .request(Method::GET, &format!("/v1/runnables/{id}/files/{path}"))
        .send()
        .await
        .expect("GET a file");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_conversation_runs_and_each_action_is_native_with_the_same_actor() {
    let (app, client, root) = world(QUIET).await;
    let admin = &app.api;
    // The seed: /users/me first; a 401 says make a user.
    let message = client
        .get("/users/me")
        .await
        .refusal(StatusCode::UNAUTHORIZED);
    assert_eq!(message, "access token required");
    let made = client
        .send(client.request(Method::POST, "/users"))
        .await
        .expect(StatusCode::CREATED);
    for field in ["_id", "id", "access_token", "created"] {
        assert!(made[field].is_string(), "{field}: {made}");
    }
    assert_eq!(
        (
            made["permission_level"].clone(),
            made["registered"].clone(),
            made.get("username"),
            made.get("password"),
        ),
        (json!(0), json!(false), None, None),
        "{made}"
    );
    let me = made["_id"].as_str().unwrap().to_string();
    let anon = client.with_token(made["access_token"].as_str().unwrap());
    let read = anon.get("/users/me").await.expect(StatusCode::OK);
    assert_eq!(read["_id"], me.as_str());
    assert!(read.get("access_token").is_none(), "{read}");
    assert_eq!(
        anon.get(&format!("/users/{me}"))
            .await
            .expect(StatusCode::OK)["_id"],
        me
    );

    // The images anyone may fork; then a fork of one.
    let images = anon.get("/runnables").await.expect(StatusCode::OK);
    assert!(
        images.as_array().unwrap().iter().any(|i| i["_id"] == root),
        "{images}"
    );
    let container = anon
        .post(&format!("/users/me/runnables?from={root}"), json!({}))
        .await
        .expect(StatusCode::CREATED);
    let id = container["_id"].as_str().unwrap().to_string();
    assert_eq!(container["id"], id.as_str());
    assert_eq!(container["parent"], root.as_str());
    assert_eq!(container["owner"], me.as_str());
    assert_eq!(container["name"], "hello");
    assert_eq!(container["start_cmd"], "sh main.sh");
    assert_eq!(container["running"], false);
    assert!(container.get("target").is_none(), "{container}");
    let listed = anon.get("/users/me/runnables").await.expect(StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["_id"], id.as_str());

    // A file written, then listed and read back, natively too.
    let written = anon
        .post(
            &format!("/users/me/runnables/{id}/files"),
            json!({"name": "app.py", "path": "/src", "content": "print('hi')\n"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        written,
        json!({"_id": file_id("src/app.py"), "name": "app.py", "path": "/src"})
    );
    assert_eq!(
        native_file(admin, &id, "src/app.py").await,
        (StatusCode::OK, "print('hi')\n".to_string())
    );
    let files = anon
        .get(&format!("/users/me/runnables/{id}/files"))
        .await
        .expect(StatusCode::OK);
    let names: Vec<(&str, &str, bool)> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap(),
                f["name"].as_str().unwrap(),
                f["dir"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("/", "main.sh", false),
            ("/", "src", true),
            ("/src", "app.py", false)
        ]
    );
    let file = anon
        .get(&format!(
            "/users/me/runnables/{id}/files/{}",
            file_id("src/app.py")
        ))
        .await
        .expect(StatusCode::OK);
    assert_eq!(file["content"], "print('hi')\n");
    assert_eq!(file["default"], false);

    // Started, then stopped: what is wanted, recorded; no node runs it here.
    let started = anon
        .put(
            &format!("/users/me/runnables/{id}"),
            json!({"running": true, "name": "mine", "description": ""}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (started["running"].clone(), started["name"].clone()),
        (json!(true), json!("mine"))
    );
    let native = admin
        .get(&format!("/v1/runnables/{id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        (native["state"].clone(), native["name"].clone()),
        (json!("starting"), json!("mine"))
    );
    let stopped = anon
        .put(
            &format!("/users/me/runnables/{id}"),
            json!({"running": false, "name": "mine", "description": ""}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(stopped["running"], false);
    assert_eq!(stopped["state"], "stopped");

    // Saved as an image: listed and read at /runnables, natively its own image.
    let image = anon
        .post(&format!("/runnables?from={id}"), json!({}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        (image["_id"].clone(), image["owner"].clone()),
        (json!(id), json!(me))
    );
    let native = admin
        .get(&format!("/v1/runnables/{id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(native["image"]["digest"].is_string(), "{native}");
    assert_eq!(time(&native["image"]["saved_at"]), time(&image["created"]));
    let read = anon
        .get(&format!("/runnables/{id}"))
        .await
        .expect(StatusCode::OK);
    for field in [
        "_id",
        "name",
        "owner",
        "parent",
        "start_cmd",
        "votes",
        "tags",
    ] {
        assert_eq!(read[field], image[field], "{field}: {read} {image}");
    }
    assert_eq!(time(&read["created"]), time(&image["created"]));
    let container = anon
        .get(&format!("/users/me/runnables/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(container["target"], id.as_str());

    // Each action is the native one, by the anonymous user, from the test's address.
    let events = stream(admin, &id).await;
    for kind in [
        "RunnableCreated",
        "RunnableFileWritten",
        "RunnableUpdated",
        "RunnableStartRequested",
        "RunnableStopRequested",
        "RunnableImageSaved",
    ] {
        let event = events
            .iter()
            .find(|e| e["event_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}: {:?}", types(&events)));
        assert_eq!(event["metadata"]["actor"], me.as_str(), "{event}");
        assert_eq!(event["metadata"]["source"], "127.0.0.1", "{event}");
    }
    let audit = admin
        .get(&format!("/v1/audit?actor={me}&limit=1000"))
        .await
        .expect(StatusCode::OK)
        .body;
    let target = format!("runnable-{id}");
    for action in [
        "RunnableCreated",
        "RunnableFileWritten",
        "RunnableUpdated",
        "RunnableStartRequested",
        "RunnableStopRequested",
        "RunnableImageSaved",
    ] {
        let entry = audit
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action && e["target"] == target.as_str())
            .unwrap_or_else(|| panic!("no {action} in {audit}"));
        assert_eq!(entry["actor"], me.as_str(), "{entry}");
        assert!(entry["request_id"].is_string(), "{entry}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_missing_or_bad_is_refused_with_runnables_words() {
    let (app, client, _) = world(QUIET).await;
    let head = app.api.log_head().await;
    let missing = client.get("/users/me/runnables").await;
    let message = refused(&head, missing, StatusCode::UNAUTHORIZED, "no token").await;
    assert_eq!(message, "access token required");
    for bad in ["bad_token", " "] {
        let reply = client.with_token(bad).get("/users/me").await;
        let message = reply.refusal(StatusCode::UNAUTHORIZED);
        let expected = match bad.trim().is_empty() {
            true => "access token required",
            false => "must provide a valid access token",
        };
        assert_eq!(message, expected, "{bad:?}");
    }
    // The native header works too; a bad one is as bad.
    let reply = client
        .send(
            client
                .request(Method::GET, "/users/me")
                .header("authorization", "Bearer nope"),
        )
        .await;
    assert_eq!(
        reply.refusal(StatusCode::UNAUTHORIZED),
        "must provide a valid access token"
    );
    head.assert_unchanged("bad tokens").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_route_or_method_is_runnables_404() {
    let (app, client, _) = world(QUIET).await;
    let (anon, _) = client.anonymous().await;
    let head = app.api.log_head().await;
    for (method, path) in [
        (Method::GET, "/nothing/here"),
        (Method::DELETE, "/token"),
        (Method::PATCH, "/users/me"),
    ] {
        let reply = anon.call(method.clone(), path, None).await;
        let message = refused(&head, reply, StatusCode::NOT_FOUND, path).await;
        assert_eq!(message, "resource not found", "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_answers_runnables_greeting_without_a_token() {
    let (_app, client, _) = world(QUIET).await;
    // Runnable's `GET /`, at the surface's base (`/compat/runnable`), with a slash or not.
    for base in ["", "/"] {
        assert_eq!(
            client.get(base).await.expect(StatusCode::OK),
            json!({"message": "runnable api"}),
            "{base:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_registered_in_one_call_logs_in_by_name_or_email() {
    let (_app, client, _) = world(QUIET).await;
    let made = client
        .post(
            "/users",
            json!({"email": "ann@example.org", "username": "ann", "password": "ann-password"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        (
            made["_id"].clone(),
            made["username"].clone(),
            made["email"].clone(),
            made["permission_level"].clone(),
            made["registered"].clone()
        ),
        (
            json!("ann"),
            json!("ann"),
            json!("ann@example.org"),
            json!(1),
            json!(true)
        ),
        "{made}"
    );
    assert!(made.get("password").is_none(), "{made}");
    let ann = client.with_token(made["access_token"].as_str().unwrap());
    assert_eq!(
        ann.get("/users/me").await.expect(StatusCode::OK)["_id"],
        "ann"
    );
    for login in [
        json!({"username": "ann", "password": "ann-password"}),
        json!({"email": "ann@example.org", "password": "ann-password"}),
    ] {
        let token = client
            .post("/token", login.clone())
            .await
            .expect(StatusCode::OK);
        assert_eq!(token.as_object().unwrap().len(), 1, "{token}");
        let again = client.with_token(token["access_token"].as_str().unwrap());
        assert_eq!(
            again.get("/users/me").await.expect(StatusCode::OK)["username"],
            "ann",
            "{login}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_answers_no_such_user_as_a_wrong_password_changing_nothing() {
    let (app, client, _) = world(QUIET).await;
    app.api
        .post(
            "/v1/users",
            json!({"username": "ann", "password": "ann-password", "email": "ann@example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let (_, anonymous) = client.anonymous().await;
    let head = app.api.log_head().await;
    // No one by that name or email, an anonymous user (no password), a wrong password: one
    // answer, as /v1 gives it.
    let refused_alike = [
        json!({"username": "nobody", "password": "whatever"}),
        json!({"email": "no@example.org", "password": "whatever"}),
        json!({"username": anonymous, "password": "whatever"}),
        json!({"username": "ann", "password": "wrong-password"}),
        json!({"email": "ann@example.org", "password": "wrong-password"}),
    ];
    for body in refused_alike {
        let reply = client.post("/token", body.clone()).await;
        let message = refused(&head, reply, StatusCode::FORBIDDEN, &body.to_string()).await;
        assert_eq!(message, "invalid username or password", "{body}");
    }
    for (body, expected) in [
        (
            json!({"password": "ann-password"}),
            "username or email required",
        ),
        (json!({"username": "ann"}), "password required"),
    ] {
        let reply = client.post("/token", body.clone()).await;
        let message = refused(&head, reply, StatusCode::BAD_REQUEST, &body.to_string()).await;
        assert_eq!(message, expected, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_made_in_one_call_is_one_append_leaving_no_anonymous_token() {
    let (app, client, _) = world(QUIET).await;
    let head = app.api.head().await;
    let made = client
        .post(
            "/users",
            json!({"email": "ann@example.org", "username": "ann", "password": "ann-password"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let events: Vec<Value> = app
        .api
        .all_events()
        .await
        .into_iter()
        .filter(|e| e["position"].as_u64().unwrap() > head)
        .collect();
    let mut kinds = types(&events);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "AnonymousUserCreated",
            "AnonymousUserRegistered",
            "AnonymousUserRegistering",
            "ReservationClaimed",
            "ReservationClaimed",
            "TokenIssued",
            "UserRegistered",
        ],
        "{events:#?}"
    );
    // One transaction: one time, one request, no one acting but the caller with no token.
    assert!(events[0]["recorded_at"].is_string(), "{}", events[0]);
    for event in &events {
        assert_eq!(event["recorded_at"], events[0]["recorded_at"], "{event}");
        assert_eq!(
            event["metadata"]["request_id"], events[0]["metadata"]["request_id"],
            "{event}"
        );
        assert_eq!(event["metadata"]["actor"], "anonymous", "{event}");
    }
    // The one token issued is the answer's, the new user's; it works.
    let token = events
        .iter()
        .find(|e| e["event_type"] == "TokenIssued")
        .unwrap();
    assert_eq!(token["data"]["username"], "ann", "{token}");
    let ann = client.with_token(made["access_token"].as_str().unwrap());
    assert_eq!(
        ann.get("/users/me").await.expect(StatusCode::OK)["username"],
        "ann"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_users_name_is_made_again_in_one_call() {
    let (app, client, root) = world(QUIET).await;
    let body = json!({"email": "ann@example.org", "username": "ann", "password": "ann-password"});
    let first = client
        .post("/users", body.clone())
        .await
        .expect(StatusCode::CREATED);
    let ann = client.with_token(first["access_token"].as_str().unwrap());
    let old = fork(&ann, &root).await;
    ann.delete("/users/me").await.expect(StatusCode::OK);
    let again = client
        .post("/users", body)
        .await
        .expect(StatusCode::CREATED);
    let ann = client.with_token(again["access_token"].as_str().unwrap());
    assert_eq!(
        ann.get("/users/me/runnables").await.expect(StatusCode::OK),
        json!([])
    );
    // The registry the removal closed is open again: the new ann may fork.
    fork(&ann, &root).await;
    app.api
        .get(&format!("/v1/runnables/{old}"))
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_later_keeps_the_runnables_and_changes_the_token() {
    let (_app, client, root) = world(QUIET).await;
    let (anon, _) = client.anonymous().await;
    let id = fork(&anon, &root).await;
    let registered = anon
        .put(
            "/users/me",
            json!({"email": "bob@example.org", "username": "bob", "password": "bob-password"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (
            registered["_id"].clone(),
            registered["permission_level"].clone()
        ),
        (json!("bob"), json!(1))
    );
    // The anonymous token ended, as natively; the answer carries the new one.
    let message = anon
        .get("/users/me")
        .await
        .refusal(StatusCode::UNAUTHORIZED);
    assert_eq!(message, "must provide a valid access token");
    let bob = client.with_token(registered["access_token"].as_str().unwrap());
    let mine = bob.get("/users/me/runnables").await.expect(StatusCode::OK);
    assert_eq!(mine[0]["_id"], id.as_str(), "{mine}");
    assert_eq!(mine[0]["owner"], "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_refused_makes_no_user() {
    let (app, client, _) = world(QUIET).await;
    app.api
        .post(
            "/v1/users",
            json!({"username": "ann", "password": "ann-password", "email": "ann@example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let head = app.api.log_head().await;
    for (body, status, expected) in [
        (
            json!({"email": "x@example.org", "password": "pass-word"}),
            StatusCode::BAD_REQUEST,
            Some("must provide a username to register with"),
        ),
        (
            json!({"email": "x@example.org", "username": "xavier"}),
            StatusCode::BAD_REQUEST,
            Some("must provide a password to register with"),
        ),
        (
            json!({"email": "x@example.org", "username": "xavier", "password": "short"}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            json!({"email": "x@example.org", "username": "ann", "password": "pass-word"}),
            StatusCode::CONFLICT,
            None,
        ),
        (
            json!({"email": "ann@example.org", "username": "xavier", "password": "pass-word"}),
            StatusCode::CONFLICT,
            None,
        ),
    ] {
        let reply = client.post("/users", body.clone()).await;
        let message = refused(&head, reply, status, &body.to_string()).await;
        if let Some(expected) = expected {
            assert_eq!(message, expected, "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_user_may_not_register_again() {
    let (app, client, _) = world(QUIET).await;
    app.api.new_user("ann", "ann-password").await;
    let token = client
        .post(
            "/token",
            json!({"username": "ann", "password": "ann-password"}),
        )
        .await
        .expect(StatusCode::OK);
    let ann = client.with_token(token["access_token"].as_str().unwrap());
    let head = app.api.log_head().await;
    // Refused before the body is looked at.
    let reply = ann.put("/users/me", json!({})).await;
    let message = refused(&head, reply, StatusCode::FORBIDDEN, "PUT /users/me").await;
    assert_eq!(message, "you are already registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_users_turned_off_are_refused_here_too() {
    let (app, client, _) = world(
        "runner:\n  workers: 0\n  units: 0\nrunnables:\n  anonymous_per_address: {count: 0}\n",
    )
    .await;
    let head = app.api.log_head().await;
    let reply = client.send(client.request(Method::POST, "/users")).await;
    let message = refused(&head, reply, StatusCode::FORBIDDEN, "POST /users").await;
    assert!(
        message.contains("anonymous users are turned off"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_anonymous_users_off_no_one_learns_whether_a_name_is_taken() {
    let (app, client, _) = world(
        "runner:\n  workers: 0\n  units: 0\nrunnables:\n  anonymous_per_address: {count: 0}\n",
    )
    .await;
    app.api
        .post(
            "/v1/users",
            json!({"username": "ann", "password": "ann-password", "email": "ann@example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let head = app.api.log_head().await;
    for body in [
        json!({"email": "x@example.org", "username": "ann", "password": "pass-word"}),
        json!({"email": "ann@example.org", "username": "xavier", "password": "pass-word"}),
        json!({"email": "x@example.org", "username": "xavier", "password": "pass-word"}),
    ] {
        let reply = client.post("/users", body.clone()).await;
        let message = refused(&head, reply, StatusCode::FORBIDDEN, &body.to_string()).await;
        assert!(
            message.contains("anonymous users are turned off"),
            "{body}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_container_with_an_image_is_not_ones_own() {
    let (app, client, root) = world(QUIET).await;
    let (ann, ann_id) = client.anonymous().await;
    let (bob, _) = client.anonymous().await;
    let anns = fork(&ann, &root).await;
    ann.post(&format!("/runnables?from={anns}"), json!({}))
        .await
        .expect(StatusCode::CREATED);
    // Anyone reads the image, at /runnables.
    bob.get(&format!("/runnables/{anns}"))
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    let container = format!("/users/me/runnables/{anns}");
    let main = format!("{container}/files/{}", file_id("main.sh"));
    for (reply, what) in [
        (bob.get(&container).await, "GET"),
        (
            bob.put(
                &container,
                json!({"running": true, "name": "x", "description": ""}),
            )
            .await,
            "PUT",
        ),
        (bob.delete(&container).await, "DELETE"),
        (
            bob.post(&format!("{container}/sync"), json!({})).await,
            "sync",
        ),
        (bob.get(&format!("{container}/files")).await, "GET files"),
        (bob.get(&main).await, "GET a file"),
        (bob.put(&main, json!({"content": "x"})).await, "PUT a file"),
        (bob.delete(&main).await, "DELETE a file"),
        (
            bob.post(
                &format!("{container}/files"),
                json!({"name": "b", "path": "/", "content": "b"}),
            )
            .await,
            "POST a file",
        ),
    ] {
        let message = refused(&head, reply, StatusCode::FORBIDDEN, what).await;
        assert_eq!(message, "permission denied", "{what}");
    }
    // Its owner, by name or as me, is served.
    ann.get(&format!("/users/{ann_id}/runnables/{anns}"))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_data_is_refused() {
    let (app, client, root) = world(QUIET).await;
    let (ann, ann_id) = client.anonymous().await;
    let (bob, _) = client.anonymous().await;
    let anns = fork(&ann, &root).await;
    let head = app.api.log_head().await;
    // Another user: 403 (registered or not); another's container without an image: 404.
    for (reply, status, what) in [
        (
            bob.get(&format!("/users/{ann_id}")).await,
            StatusCode::FORBIDDEN,
            "GET user",
        ),
        (
            bob.delete(&format!("/users/{ann_id}")).await,
            StatusCode::FORBIDDEN,
            "DELETE user",
        ),
        (
            bob.get(&format!("/users/me/runnables/{anns}")).await,
            StatusCode::NOT_FOUND,
            "GET container",
        ),
        (
            bob.put(
                &format!("/users/me/runnables/{anns}"),
                json!({"running": true, "name": "x", "description": ""}),
            )
            .await,
            StatusCode::NOT_FOUND,
            "PUT container",
        ),
        (
            bob.get(&format!("/users/me/runnables/{anns}/files")).await,
            StatusCode::NOT_FOUND,
            "GET files",
        ),
        (
            bob.post(&format!("/runnables?from={anns}"), json!({}))
                .await,
            StatusCode::NOT_FOUND,
            "save",
        ),
    ] {
        refused(&head, reply, status, what).await;
    }
    // An image is anyone's to read, only its owner's to change.
    let reply = bob
        .put(
            &format!("/users/me/runnables/{root}"),
            json!({"running": true, "name": "x", "description": ""}),
        )
        .await;
    refused(&head, reply, StatusCode::FORBIDDEN, "PUT the admin's").await;
    let reply = bob.delete(&format!("/runnables/{root}")).await;
    refused(
        &head,
        reply,
        StatusCode::FORBIDDEN,
        "DELETE the admin's image",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_container_requests_are_refused_changing_nothing() {
    let (app, client, root) = world(QUIET).await;
    let (anon, _) = client.anonymous().await;
    let id = fork(&anon, &root).await;
    // A runnable without an image, to fork from.
    let head = app.api.log_head().await;
    let update = |body: Value| {
        let anon = anon.clone();
        let id = id.clone();
        async move { anon.put(&format!("/users/me/runnables/{id}"), body).await }
    };
    for (reply, status, expected) in [
        (
            anon.post("/users/me/runnables", json!({})).await,
            StatusCode::BAD_REQUEST,
            Some("must provide a runnable to fork from"),
        ),
        (
            anon.post(&format!("/users/me/runnables?from={id}"), json!({}))
                .await,
            StatusCode::CONFLICT,
            None,
        ),
        (
            anon.post(
                &format!("/users/me/runnables?from={}", uuid::Uuid::new_v4()),
                json!({}),
            )
            .await,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            update(json!({"name": "x", "description": ""})).await,
            StatusCode::BAD_REQUEST,
            Some("must provide a running parameter"),
        ),
        (
            update(json!({"running": true, "description": ""})).await,
            StatusCode::BAD_REQUEST,
            Some("must provide a runnable name"),
        ),
        (
            update(json!({"running": true, "name": "x"})).await,
            StatusCode::BAD_REQUEST,
            Some("must provide a runnable description"),
        ),
        (
            update(json!({"running": "yes", "name": "x", "description": ""})).await,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            update(json!({"running": true, "name": "", "description": ""})).await,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            anon.get("/users/me/runnables/not-a-uuid").await,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            anon.post("/runnables", json!({})).await,
            StatusCode::BAD_REQUEST,
            Some("must provide a runnable to save from"),
        ),
        (
            anon.put(&format!("/runnables/{root}?from={id}"), json!({}))
                .await,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            anon.put(&format!("/runnables/{id}?from={id}"), json!({}))
                .await,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            anon.get("/runnables?search=x").await,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            anon.get("/runnables?page=-1").await,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            anon.get("/users/me/runnables?parent=nope").await,
            StatusCode::BAD_REQUEST,
            None,
        ),
    ] {
        let message = refused(&head, reply, status, &format!("{expected:?}")).await;
        if let Some(expected) = expected {
            assert_eq!(message, expected);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_file_requests_are_refused_changing_nothing() {
    let (app, client, root) = world(QUIET).await;
    let (anon, _) = client.anonymous().await;
    let id = fork(&anon, &root).await;
    let files = format!("/users/me/runnables/{id}/files");
    let main = format!("{files}/{}", file_id("main.sh"));
    let head = app.api.log_head().await;
    let multipart = anon
        .send(
            anon.request(Method::POST, &files)
                .header("content-type", "multipart/form-data; boundary=x")
                .body("--x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nhi\r\n--x--\r\n"),
        )
        .await;
    for (reply, status, expected) in [
        (
            anon.post(&files, json!({"path": "/", "content": "x"}))
                .await,
            StatusCode::BAD_REQUEST,
            Some("file must include a name field"),
        ),
        (
            anon.post(&files, json!({"name": "a", "path": "/"})).await,
            StatusCode::BAD_REQUEST,
            Some("file must include a content field"),
        ),
        (
            anon.post(&files, json!({"name": "a", "content": "x"}))
                .await,
            StatusCode::BAD_REQUEST,
            Some("file must include a path field"),
        ),
        (
            anon.post(&files, json!({"name": "a/b", "path": "/", "content": "x"}))
                .await,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            anon.post(
                &files,
                json!({"name": "a", "path": "/../..", "content": "x"}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            anon.post(
                &files,
                json!({"name": "x", "path": "/main.sh", "content": "x"}),
            )
            .await,
            StatusCode::CONFLICT,
            None,
        ),
        (
            anon.post(&files, json!({"dir": true, "name": "empty", "path": "/"}))
                .await,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (multipart, StatusCode::BAD_REQUEST, None),
        (
            anon.put(&main, json!({})).await,
            StatusCode::BAD_REQUEST,
            Some("must provide content, name, path or tag to update operation"),
        ),
        (
            anon.put(&main, json!({"default": true})).await,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            anon.get(&format!("{files}/{}", file_id("nothing"))).await,
            StatusCode::NOT_FOUND,
            Some("file does not exist"),
        ),
        (
            anon.get(&format!("{files}/not*base64")).await,
            StatusCode::NOT_FOUND,
            Some("file does not exist"),
        ),
        (
            anon.delete(&format!("{files}/{}", file_id("nothing")))
                .await,
            StatusCode::NOT_FOUND,
            None,
        ),
    ] {
        let message = refused(&head, reply, status, &format!("{expected:?}")).await;
        if let Some(expected) = expected {
            assert_eq!(message, expected);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_id_or_a_folder_out_of_the_tree_is_refused_changing_nothing() {
    let (app, client, root) = world(QUIET).await;
    let (anon, _) = client.anonymous().await;
    let id = fork(&anon, &root).await;
    let files = format!("/users/me/runnables/{id}/files");
    let head = app.api.log_head().await;
    for path in ["../x", "/etc/passwd", "a/../b", "..", "main.sh/../../x"] {
        let file = format!("{files}/{}", file_id(path));
        for (reply, what) in [
            (anon.get(&file).await, "GET"),
            (anon.put(&file, json!({"content": "x"})).await, "PUT"),
            (
                anon.call(Method::PATCH, &file, Some(json!({"name": "y"})))
                    .await,
                "PATCH",
            ),
            (anon.delete(&format!("{file}?recursive")).await, "DELETE"),
        ] {
            refused(
                &head,
                reply,
                StatusCode::BAD_REQUEST,
                &format!("{what} {path}"),
            )
            .await;
        }
    }
    let main = format!("{files}/{}", file_id("main.sh"));
    for folder in ["/..", "/../..", "/a/../.."] {
        let reply = anon.put(&main, json!({"path": folder})).await;
        refused(&head, reply, StatusCode::BAD_REQUEST, folder).await;
    }
    let reply = anon.get(&format!("{files}?path=/..")).await;
    refused(&head, reply, StatusCode::BAD_REQUEST, "?path=/..").await;
    assert_eq!(
        native_file(&app.api, &id, "main.sh").await,
        (StatusCode::OK, "echo hello\n".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_listed_is_the_native_folder() {
    let (app, client, root) = world(QUIET).await;
    let (anon, _) = client.anonymous().await;
    let id = fork(&anon, &root).await;
    let files = format!("/users/me/runnables/{id}/files");
    anon.post(
        &files,
        json!({"name": "app.py", "path": "/src", "content": "print(1)\n"}),
    )
    .await
    .expect(StatusCode::CREATED);
    for folder in ["/src", "src", "/src/", "//src"] {
        let listed = anon
            .get(&format!("{files}?path={folder}&content"))
            .await
            .expect(StatusCode::OK);
        assert_eq!(
            listed,
            json!([{"_id": file_id("src/app.py"), "name": "app.py", "path": "/src",
                    "dir": false, "default": false, "content": "print(1)\n"}]),
            "{folder}"
        );
    }
    for top in ["/", "//", ""] {
        let listed = anon
            .get(&format!("{files}?path={top}"))
            .await
            .expect(StatusCode::OK);
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["main.sh", "src"], "{top:?}");
    }
    // A folder that is not there is the native 404, not an empty list.
    let head = app.api.log_head().await;
    let reply = anon.get(&format!("{files}?path=/nothing")).await;
    refused(&head, reply, StatusCode::NOT_FOUND, "?path=/nothing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_is_renamed_and_started_in_one_append() {
    let (app, client, root) = world(QUIET).await;
    let (anon, _) = client.anonymous().await;
    let id = fork(&anon, &root).await;
    let before = stream(&app.api, &id).await.len();
    let started = anon
        .put(
            &format!("/users/me/runnables/{id}"),
            json!({"running": true, "name": "renamed", "description": ""}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (started["name"].clone(), started["running"].clone()),
        (json!("renamed"), json!(true))
    );
    let events = stream(&app.api, &id).await;
    let new = &events[before..];
    assert_eq!(types(new), ["RunnableUpdated", "RunnableStartRequested"]);
    assert!(new[0]["recorded_at"].is_string(), "{}", new[0]);
    assert_eq!(new[0]["recorded_at"], new[1]["recorded_at"], "{new:?}");
    assert_eq!(
        new[0]["position"].as_u64().unwrap() + 1,
        new[1]["position"].as_u64().unwrap()
    );
    // A start command that is not one refuses all of it: neither renamed nor stopped.
    let head = app.api.log_head().await;
    let reply = anon
        .put(
            &format!("/users/me/runnables/{id}"),
            json!({"running": false, "name": "again", "description": "", "start_cmd": ""}),
        )
        .await;
    refused(&head, reply, StatusCode::BAD_REQUEST, "start_cmd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changes_content_and_place_in_one_change() {
    let (app, client, root) = world(QUIET).await;
    let (anon, _) = client.anonymous().await;
    let id = fork(&anon, &root).await;
    let files = format!("/users/me/runnables/{id}/files");
    let before = stream(&app.api, &id).await.len();
    let moved = anon
        .call(
            Method::PATCH,
            &format!("{files}/{}", file_id("main.sh")),
            Some(json!({"content": "echo moved\n", "path": "/bin", "name": "run.sh"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        moved,
        json!({"_id": file_id("bin/run.sh"), "name": "run.sh", "path": "/bin", "dir": false,
               "default": false, "content": "echo moved\n"})
    );
    // One append: the old path gone, the new one written.
    let events = stream(&app.api, &id).await;
    assert_eq!(
        types(&events[before..]),
        ["RunnableFilesDeleted", "RunnableFileWritten"]
    );
    assert_eq!(
        events[before]["position"].as_u64().unwrap() + 1,
        events[before + 1]["position"].as_u64().unwrap()
    );
    assert_eq!(
        native_file(&app.api, &id, "main.sh").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        native_file(&app.api, &id, "bin/run.sh").await,
        (StatusCode::OK, "echo moved\n".to_string())
    );
    // A folder moves with what is in it; listing it shows its content by path.
    let folder = anon
        .put(
            &format!("{files}/{}", file_id("bin")),
            json!({"name": "scripts"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (folder["dir"].clone(), folder["path"].clone()),
        (json!(true), json!("/"))
    );
    let listed = anon
        .get(&format!("{files}?path=/scripts&content"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["content"], "echo moved\n");
    assert_eq!(listed[0]["_id"], file_id("scripts/run.sh"));
    // A folder that exists answers as made; it is deleted only recursively.
    let dir = anon
        .post(&files, json!({"dir": true, "name": "scripts", "path": "/"}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(dir["_id"], file_id("scripts"));
    let folder = format!("{files}/{}", file_id("scripts"));
    anon.delete(&folder).await.refusal(StatusCode::BAD_REQUEST);
    assert_eq!(
        anon.delete(&format!("{folder}?recursive"))
            .await
            .expect(StatusCode::OK),
        json!({"message": "file deleted"})
    );
    let left = anon.get(&files).await.expect(StatusCode::OK);
    assert_eq!(left, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_paged_overwritten_and_removed_with_their_runnable() {
    let (app, client, root) = world(QUIET).await;
    let second = saved_root(&app.api, "second").await;
    let (anon, _) = client.anonymous().await;
    // Newest first, 25 a page by default; `page` counts from 0.
    let page = |query: &'static str| {
        let anon = anon.clone();
        async move {
            let images = anon
                .get(&format!("/runnables{query}"))
                .await
                .expect(StatusCode::OK);
            images
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page("").await, [second.clone(), root.clone()]);
    assert_eq!(page("?limit=1&page=1").await, std::slice::from_ref(&root));
    // Above the largest page (200), the default one, as Runnable took it.
    assert_eq!(page("?limit=201").await, [second.clone(), root.clone()]);
    assert_eq!(page("?channel=node.js").await, Vec::<String>::new());
    let map = anon.get("/runnables?map=true").await.expect(StatusCode::OK);
    assert_eq!(map[0], json!({"_id": second, "name": "second", "tags": []}));
    // A container saved (an image of another user's), then its image overwritten from itself.
    let id = fork(&anon, &root).await;
    anon.post(&format!("/runnables?from={id}"), json!({}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(page("?owner=admin").await, [second.clone(), root.clone()]);
    // `published` lists every image, whoever `owner` names.
    assert_eq!(
        page("?owner=admin&published").await,
        [id.clone(), second.clone(), root.clone()]
    );
    anon.post(
        &format!("/users/me/runnables/{id}/files"),
        json!({"name": "b.txt", "path": "/", "content": "b"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let overwritten = anon
        .put(&format!("/runnables/{id}?from={id}"), json!({}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(overwritten["_id"], id.as_str());
    let saves = stream(&app.api, &id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "RunnableImageSaved")
        .count();
    assert_eq!(saves, 2);
    // Removing the image removes its runnable.
    assert_eq!(
        anon.delete(&format!("/runnables/{id}"))
            .await
            .expect(StatusCode::OK),
        json!({"message": "runnable deleted"})
    );
    anon.get(&format!("/users/me/runnables/{id}"))
        .await
        .refusal(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_and_a_user_are_deleted_with_runnables_messages() {
    let (app, client, root) = world(QUIET).await;
    let (anon, _) = client.anonymous().await;
    let id = fork(&anon, &root).await;
    assert_eq!(
        anon.delete(&format!("/users/me/runnables/{id}"))
            .await
            .expect(StatusCode::OK),
        json!({"message": "runnable deleted"})
    );
    assert_eq!(
        types(&stream(&app.api, &id).await)
            .last()
            .map(String::as_str),
        Some("RunnableRemoved")
    );
    // An anonymous user may not remove itself, natively; a registered one may.
    anon.delete("/users/me")
        .await
        .refusal(StatusCode::FORBIDDEN);
    app.api.new_user("ann", "ann-password").await;
    let token = client
        .post(
            "/token",
            json!({"username": "ann", "password": "ann-password"}),
        )
        .await
        .expect(StatusCode::OK);
    let ann = client.with_token(token["access_token"].as_str().unwrap());
    assert_eq!(
        ann.delete("/users/ann").await.expect(StatusCode::OK),
        json!({"message": "user deleted"})
    );
    app.api
        .get("/v1/users/ann")
        .await
        .expect(StatusCode::NOT_FOUND);
}

/// Fails the test, saying how to install it, if bubblewrap is missing.
fn require_bwrap() {
    let found = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "bubblewrap (bwrap) runs runnables and is not installed: apt-get install bubblewrap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_container_runs_in_the_sandbox_syncs_and_stops() {
    require_bwrap();
    let work = tempfile::tempdir().expect("a work dir");
    // The sandbox's user must find its tree under it.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let config = format!(
        "runner:\n  kill_grace_seconds: 2\n  lease_seconds: 3\nrunnables:\n  work_dir: {}\n",
        work.path().join("runs").display()
    );
    let app = spawn_app(&config).await;
    let admin = &app.api;
    let root = admin
        .post(
            "/v1/runnables",
            json!({"name": "sleeper", "start_command": "echo started > out.txt; echo up; exec sleep 600",
                   "files": [{"path": "README.md", "content": "# hi\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let root = root["id"].as_str().unwrap().to_string();
    admin
        .call(Method::POST, &format!("/v1/runnables/{root}/save"), None)
        .await
        .expect(StatusCode::OK);
    let (anon, _) = Runnable::of(&app).anonymous().await;
    let id = fork(&anon, &root).await;
    let container = format!("/users/me/runnables/{id}");
    let put = |running: bool| {
        let anon = anon.clone();
        let container = container.clone();
        async move {
            anon.put(
                &container,
                json!({"running": running, "name": "sleeper", "description": ""}),
            )
            .await
            .expect(StatusCode::OK)
        }
    };
    assert_eq!(put(true).await["running"], true);
    let wait = |state: &'static str| {
        let anon = anon.clone();
        let container = container.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let read = anon.get(&container).await.expect(StatusCode::OK);
                if read["state"] == state {
                    return read;
                }
                assert!(Instant::now() < deadline, "never {state}: {read}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let running = wait("running").await;
    assert_eq!(running["running"], true);
    // What the process wrote is in the tree once synced.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let synced = anon
            .post(&format!("{container}/sync"), json!({}))
            .await
            .expect(StatusCode::CREATED);
        assert_eq!(synced["message"], "files synced successfully");
        assert!(synced["date"].is_string(), "{synced}");
        let files = anon
            .get(&format!("{container}/files"))
            .await
            .expect(StatusCode::OK);
        if files
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "out.txt")
        {
            break;
        }
        assert!(Instant::now() < deadline, "out.txt never synced: {files}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = anon
        .get(&format!("{container}/files/{}", file_id("out.txt")))
        .await
        .expect(StatusCode::OK);
    assert_eq!(out["content"], "started\n");
    let events = stream(admin, &id).await;
    assert!(
        types(&events).iter().any(|t| t == "RunnableFilesSynced"),
        "{:?}",
        types(&events)
    );
    assert_eq!(put(false).await["name"], "sleeper");
    let stopped = wait("stopped").await;
    assert_eq!(stopped["running"], false);
}
