//! The authorization matrix, over real HTTP: every operation of `/v1/openapi.json` (and the
//! routes beside it in [`UNDOCUMENTED`]) called by each kind of caller in [`CALLERS`], each in a
//! world of its own, and what it got held against one table, [`MATRIX`]. An operation without a
//! row, or a row whose operation is gone, fails the test, which then prints the table as the
//! server answered it: a new route needs its row, read and agreed to before it is pasted in.
//!
//! A write sends a body that would do it ([`request_of`]), so that the answer is the gate's, not
//! a 400 for the body: a call passes the gate when the answer is neither 401, 403 nor 404 (it
//! was done, or refused for the state it found, a 409, which the table tells apart). The server runs in the test's process
//! (`spawn_app`).

use bosun_tests::service_api::ServiceApi;
use bosun_tests::{spawn_app, Api};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const CONFIG: &str = r#"
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
catalog:
  shop:
    production:
      ok:
        command: ["true"]
      sleep:
        command: ["sleep", "600"]
healers:
  heal-shop: shop/production/ok
"#;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";

/// The kinds of caller, in the order of a row's columns: no token; an expired token (ann's);
/// cid, who shares nothing with ann; bob, a member of ann's team `ops`; ann, who made
/// everything in the world; an admin; ann's token with only the `read` scope; a token of ann's
/// app `shop`; an anonymous user (`POST /v1/users/anonymous`).
const CALLERS: [&str; 9] = [
    "none",
    "expired",
    "other",
    "member",
    "owner",
    "admin",
    "read-only",
    "app token",
    "anonymous",
];

/// Routes of `/v1` the document does not list.
const UNDOCUMENTED: &[&str] = &[
    "GET /v1/openapi.json",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
];

/// What each caller gets from each operation, in [`CALLERS`]' order: `1` a 401, `3` a 403, `4` a
/// 404; past the gate, `0` a 400 (refused for what it sent), `c` a 409 (for the state it found),
/// `.` any other answer.
const MATRIX: &[(&str, &str)] = &[
    ("DELETE /v1/apps/{app}", "1 1 3 . . . 3 3 3"),
    ("DELETE /v1/apps/{app}/cnames", "1 1 3 . . . 3 3 3"),
    ("DELETE /v1/apps/{app}/env", "1 1 3 . . . 3 . 3"),
    ("DELETE /v1/apps/{app}/teams/{team}", "1 1 3 c c c 3 3 3"),
    (
        "DELETE /v1/apps/{app}/tokens/{token_id}",
        "1 1 3 . . . 3 3 3",
    ),
    // Ann's own token ends after she is removed (the walk's last calls): a 401.
    ("DELETE /v1/auth/tokens/current", "1 1 . . 1 . . . 1"),
    ("DELETE /v1/jobs/{id}/name", "1 1 3 3 c c 3 3 3"),
    ("DELETE /v1/orchestrations/{id}", "1 1 3 3 . . 3 3 3"),
    ("DELETE /v1/platforms/{platform}", "1 1 3 3 3 c 3 3 3"),
    ("DELETE /v1/runnables/{id}", "1 1 4 4 . . 3 3 4"),
    (
        "DELETE /v1/runnables/{id}/files/{path}",
        "1 1 4 4 . . 3 3 4",
    ),
    ("DELETE /v1/services/{service}", "1 1 4 c c c 3 3 3"),
    (
        "DELETE /v1/services/{service}/instances/{instance}",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "DELETE /v1/services/{service}/instances/{instance}/apps/{app}",
        "1 1 3 . . . 3 3 3",
    ),
    (
        "DELETE /v1/services/{service}/teams/{team}",
        "1 1 4 c c c 3 3 3",
    ),
    ("DELETE /v1/teams/{team}", "1 1 3 c c c 3 3 3"),
    (
        "DELETE /v1/teams/{team}/members/{username}",
        "1 1 3 . . . 3 3 3",
    ),
    ("DELETE /v1/tokens/{token_id}", "1 1 3 3 . . 3 3 3"),
    ("DELETE /v1/users/{username}", "1 1 3 3 . . 3 3 3"),
    (
        "DELETE /v1/users/{username}/keys/{name}",
        "1 1 3 3 . . 3 3 3",
    ),
    // The operational routes are for the node's own watchers, on its own address.
    ("GET /healthz", ". . . . . . . . ."),
    ("GET /metrics", ". . . . . . . . ."),
    ("GET /readyz", ". . . . . . . . ."),
    ("GET /v1/apps", "1 1 . . . . . . 3"),
    ("GET /v1/apps/{app}", "1 1 3 . . . . . 3"),
    ("GET /v1/apps/{app}/env", "1 1 3 . . . . . 3"),
    ("GET /v1/apps/{app}/tokens", "1 1 3 . . . . 3 3"),
    ("GET /v1/audit", "1 1 3 3 3 . 3 3 3"),
    ("GET /v1/auth/whoami", "1 1 . . . . . . ."),
    ("GET /v1/catalog", "1 1 . . . . . 3 3"),
    ("GET /v1/events", "1 1 . . . . . 3 3"),
    // Without a token the socket opens and waits 5 s for a first message `{"token": …}` (what
    // browsers send), then closes 4401; a bad token in the header is a 401 before the upgrade.
    ("GET /v1/events/live", ". 1 . . . . . 3 3"),
    ("GET /v1/healers", "1 1 . . . . . 3 3"),
    ("GET /v1/jobs", "1 1 . . . . . . 3"),
    ("GET /v1/jobs/{id}", "1 1 3 . . . . . 3"),
    ("GET /v1/jobs/{id}/output", "1 1 3 . . . . . 3"),
    ("GET /v1/openapi.json", ". . . . . . . . ."),
    ("GET /v1/orchestrations", "1 1 . . . . . 3 3"),
    ("GET /v1/orchestrations/{id}", "1 1 . . . . . 3 3"),
    ("GET /v1/orchestrations/{id}/jobs", "1 1 . . . . . 3 3"),
    (
        "GET /v1/orchestrations/{id}/notifications",
        "1 1 . . . . . 3 3",
    ),
    ("GET /v1/orchestrations/{id}/tasks", "1 1 . . . . . 3 3"),
    ("GET /v1/platforms", "1 1 . . . . . 3 3"),
    ("GET /v1/runnables", "1 1 . . . . . 3 ."),
    // A runnable without an image is its owner's alone: hidden (404) from anyone else.
    ("GET /v1/runnables/{id}", "1 1 4 4 . . . 3 4"),
    ("GET /v1/runnables/{id}/files", "1 1 4 4 . . . 3 4"),
    ("GET /v1/runnables/{id}/files/{path}", "1 1 4 4 . . . 3 4"),
    ("GET /v1/runnables/{id}/logs", "1 1 4 4 . . . 3 4"),
    ("GET /v1/services", "1 1 . . . . . 3 3"),
    // A service is seen by the teams that may use it: hidden (404) from anyone else.
    ("GET /v1/services/{service}", "1 1 4 . . . . 3 3"),
    ("GET /v1/services/{service}/doc", "1 1 4 . . . . 3 3"),
    ("GET /v1/services/{service}/instances", "1 1 4 . . . . 3 3"),
    (
        "GET /v1/services/{service}/instances/{instance}",
        "1 1 4 . . . . 3 3",
    ),
    (
        "GET /v1/services/{service}/instances/{instance}/status",
        "1 1 4 . . . . 3 3",
    ),
    ("GET /v1/streams/{stream_id}", "1 1 3 . . . . 3 3"),
    ("GET /v1/teams", "1 1 . . . . . 3 3"),
    ("GET /v1/teams/{team}", "1 1 . . . . . 3 3"),
    ("GET /v1/tokens", "1 1 . . . . . 3 ."),
    ("GET /v1/users", "1 1 3 3 3 . 3 3 3"),
    ("GET /v1/users/me", "1 1 . . . . . 3 ."),
    ("GET /v1/users/{username}", "1 1 3 3 . . . 3 3"),
    ("GET /v1/users/{username}/keys", "1 1 3 3 . . . 3 3"),
    ("GET /v1/users/{username}/quota", "1 1 3 3 . . . 3 3"),
    ("PATCH /v1/apps/{app}", "1 1 3 . . . 3 3 3"),
    ("PATCH /v1/orchestrations/{id}", "1 1 3 3 . . 3 3 3"),
    ("PATCH /v1/platforms/{platform}", "1 1 3 3 3 . 3 3 3"),
    ("PATCH /v1/runnables/{id}", "1 1 4 4 . . 3 3 4"),
    ("PATCH /v1/services/{service}", "1 1 4 . . . 3 3 3"),
    ("PATCH /v1/users/{username}", "1 1 3 3 3 . 3 3 3"),
    ("POST /v1/apps", "1 1 3 . . . 3 3 3"),
    ("POST /v1/apps/{app}/cnames", "1 1 3 . . . 3 3 3"),
    ("POST /v1/apps/{app}/restart", "1 1 3 . . . 3 . 3"),
    ("POST /v1/apps/{app}/tokens", "1 1 3 . . . 3 3 3"),
    // Sign-in, and the routes that need no caller: anyone.
    ("POST /v1/auth/tokens", ". . . . . . . . ."),
    ("POST /v1/healers/{healer}", "1 1 3 3 3 . 3 3 3"),
    ("POST /v1/jobs", "1 1 3 . . . 3 . 3"),
    // Stopping a job is for its submitter, an admin, or its app's token; restarting it is for
    // whoever may submit its task (a member of the app's team).
    ("POST /v1/jobs/{id}/cancel", "1 1 3 3 c c 3 c 3"),
    ("POST /v1/jobs/{id}/kill", "1 1 3 3 . . 3 . 3"),
    ("POST /v1/jobs/{id}/restart", "1 1 3 c c c 3 c 3"),
    ("POST /v1/jobs/{id}/stop", "1 1 3 3 . . 3 . 3"),
    ("POST /v1/orchestrations", "1 1 . . . . 3 3 3"),
    ("POST /v1/orchestrations/{id}/jobs", "1 1 3 3 . . 3 3 3"),
    ("POST /v1/orchestrations/{id}/token", "1 1 3 3 . . 3 3 3"),
    ("POST /v1/platforms", "1 1 3 3 3 . 3 3 3"),
    ("POST /v1/runnables", "1 1 . . . . 3 3 ."),
    ("POST /v1/runnables/{id}/restart", "1 1 4 4 . . 3 3 4"),
    ("POST /v1/runnables/{id}/save", "1 1 4 4 . . 3 3 4"),
    ("POST /v1/runnables/{id}/start", "1 1 4 4 . . 3 3 4"),
    ("POST /v1/runnables/{id}/stop", "1 1 4 4 . . 3 3 4"),
    ("POST /v1/services", "1 1 3 . . . 3 3 3"),
    ("POST /v1/services/{service}/instances", "1 1 4 . . . 3 3 3"),
    ("POST /v1/swap", "1 1 3 . . . 3 3 3"),
    ("POST /v1/teams", "1 1 . . . . 3 3 3"),
    ("POST /v1/tokens", "1 1 . . . . 3 3 3"),
    ("POST /v1/users", "1 1 3 3 3 . 3 3 3"),
    ("POST /v1/users/anonymous", ". . . . . . . . ."),
    // Only an anonymous user registers; ann has removed herself by then (`order`): a 401.
    ("POST /v1/users/me/register", "1 1 3 3 1 3 3 3 ."),
    ("POST /v1/users/{username}/keys", "1 1 3 3 c c 3 3 3"),
    // Anyone may ask for a reset (answered alike for any name); here no mail is configured: 503.
    (
        "POST /v1/users/{username}/password-reset",
        ". . . . . . . . .",
    ),
    (
        "POST /v1/users/{username}/password-reset/{token}",
        ". . . . . . . . .",
    ),
    ("PUT /v1/apps/{app}/env", "1 1 3 . . . 3 . 3"),
    ("PUT /v1/apps/{app}/teams/{team}", "1 1 3 . . . 3 3 3"),
    (
        "PUT /v1/orchestrations/{id}/notifications",
        "1 1 3 3 . . 3 3 3",
    ),
    ("PUT /v1/orchestrations/{id}/tasks", "1 1 3 3 . . 3 3 3"),
    ("PUT /v1/runnables/{id}/files/{path}", "1 1 4 4 . . 3 3 4"),
    ("PUT /v1/services/{service}/doc", "1 1 4 . . . 3 3 3"),
    (
        "PUT /v1/services/{service}/instances/{instance}/apps/{app}",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "PUT /v1/services/{service}/teams/{team}",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "PUT /v1/teams/{team}/members/{username}",
        "1 1 3 . . . 3 3 3",
    ),
    // A user changes their own password, with the old one; an admin does not (a removal and a
    // new user, or a reset, instead).
    ("PUT /v1/users/{username}/password", "1 1 3 3 . 3 3 3 3"),
    ("PUT /v1/users/{username}/quota", "1 1 3 3 3 . 3 3 3"),
];

/// The ids of what [`world`] made, to fill templates with.
struct World {
    callers: Vec<Api>,
    job_to_kill: String,
    job_to_stop: String,
    service: String,
    root: String,
    job: String,
    orchestration: String,
    runnable: String,
    token: String,
    app_token: String,
}

fn id_of(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_string()
}

/// Ann's world: her team `ops` (bob a member too) and its app `shop`, a job, an
/// orchestration, a runnable, an instance `db` of the admin's service `mysql`, a key, tokens;
/// and a client for each of [`CALLERS`].
async fn world(admin: &Api, service: &ServiceApi) -> World {
    admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let ann = admin.new_user("ann", "ann-password").await;
    let bob = admin.new_user("bob", "bob-password").await;
    let cid = admin.new_user("cid", "cid-password").await;
    ann.team_with_app("ops", "shop", "python").await;
    ann.call(Method::PUT, "/v1/teams/ops/members/bob", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    // One running job each for the calls that end one, so that none ends another's.
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let job = ann
            .post(
                "/v1/jobs",
                json!({"app": "shop", "env": "production", "task": "sleep"}),
            )
            .await
            .expect(StatusCode::CREATED)
            .body;
        jobs.push(id_of(&job, "id"));
    }
    let orchestration = ann
        .post(
            "/v1/orchestrations",
            json!({"name": "nightly", "tasks": [{"component": "shop/production/ok"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    // A root runnable is an admin's, with an image; ann's is forked from it.
    let root = admin
        .post(
            "/v1/runnables",
            json!({"name": "hello", "start_command": "sh main.sh",
                   "files": [{"path": "main.sh", "content": "echo hello\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let root = id_of(&root, "id");
    ann.post(
        "/v1/apps",
        json!({"name": "web", "platform": "python", "team_owner": "ops"}),
    )
    .await
    .expect(StatusCode::CREATED);
    admin
        .post(&format!("/v1/runnables/{root}/save"), json!({}))
        .await
        .expect(StatusCode::OK);
    let runnable = ann
        .post("/v1/runnables", json!({"from": root, "name": "mine"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    admin
        .post(
            "/v1/services",
            json!({"name": "mysql", "endpoint": service.base, "password": "svc-password-5b7d2c90",
                   "teams": ["ops"], "doc": "MySQL databases"}),
        )
        .await
        .expect(StatusCode::CREATED);
    ann.post(
        "/v1/services/mysql/instances",
        json!({"name": "db", "plan": "small", "team_owner": "ops"}),
    )
    .await
    .expect(StatusCode::CREATED);
    ann.until("/v1/services/mysql/instances/db", |i| i["state"] == "ready")
        .await;
    ann.post(
        "/v1/users/ann/keys",
        json!({"name": "laptop", "key": ED25519}),
    )
    .await
    .expect(StatusCode::CREATED);
    let token = ann
        .post("/v1/tokens", json!({"description": "another"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let app_token = ann
        .post("/v1/apps/shop/tokens", json!({"description": "deploys"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let read_only = ann
        .post(
            "/v1/tokens",
            json!({"description": "reads", "scopes": ["read"]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let expired = ann
        .post(
            "/v1/tokens",
            json!({"description": "soon gone", "expires_in": 1}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let anonymous = admin
        .anonymous()
        .post("/v1/users/anonymous", json!({}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let callers = vec![
        admin.anonymous(),
        admin.with_token(&id_of(&expired, "token")),
        cid,
        bob,
        ann.clone(),
        admin.clone(),
        admin.with_token(&id_of(&read_only, "token")),
        admin.with_token(&id_of(&app_token, "token")),
        admin.with_token(&id_of(&anonymous["token"], "token")),
    ];
    World {
        callers,
        service: service.base.clone(),
        root,
        job: jobs[0].clone(),
        job_to_kill: jobs[1].clone(),
        job_to_stop: jobs[2].clone(),
        orchestration: id_of(&orchestration, "id"),
        runnable: id_of(&runnable, "id"),
        token: id_of(&token, "token_id"),
        app_token: id_of(&app_token, "token_id"),
    }
}

/// `template` with the world's names and ids in its parameters.
fn fill(template: &str, world: &World) -> String {
    let id = if template == "/v1/jobs/{id}/kill" {
        &world.job_to_kill
    } else if template == "/v1/jobs/{id}/stop" {
        &world.job_to_stop
    } else if template.starts_with("/v1/jobs/") {
        &world.job
    } else if template.starts_with("/v1/orchestrations/") {
        &world.orchestration
    } else {
        &world.runnable
    };
    let token_id = if template.starts_with("/v1/apps/") {
        &world.app_token
    } else {
        &world.token
    };
    template
        .replace("{app}", "shop")
        .replace("{team}", "ops")
        .replace("/members/{username}", "/members/cid")
        .replace("{username}", "ann")
        .replace("{service}", "mysql")
        .replace("{instance}", "db")
        .replace("{platform}", "python")
        .replace("{name}", "laptop")
        .replace("{healer}", "heal-shop")
        .replace("{stream_id}", "app-shop")
        .replace("{token}", "no-such-reset-token")
        .replace("{path}", "main.sh")
        .replace("{token_id}", token_id)
        .replace("{id}", id)
}

/// Where an operation goes in a walk: reads, then writes, then removals deepest first; a caller
/// ending its own token or user last of all, so every other call is made with it alive.
fn order(operation: &str) -> (u8, std::cmp::Reverse<usize>, String) {
    let (method, path) = operation.split_once(' ').unwrap_or((operation, ""));
    let phase = match method {
        _ if operation == "DELETE /v1/auth/tokens/current" => 5,
        _ if operation == "DELETE /v1/users/{username}" => 3,
        _ if operation == "PUT /v1/users/{username}/password" => 3,
        // An anonymous user registered is one no more: its token with it.
        _ if operation == "POST /v1/users/me/register" => 4,
        "GET" | "HEAD" => 0,
        "DELETE" => 2,
        _ => 1,
    };
    (
        phase,
        std::cmp::Reverse(path.matches('/').count()),
        operation.to_string(),
    )
}

/// Every operation: the document's, and [`UNDOCUMENTED`].
async fn operations(admin: &Api) -> Vec<String> {
    let document = admin
        .get("/v1/openapi.json")
        .await
        .expect(StatusCode::OK)
        .body;
    let mut operations: Vec<String> = UNDOCUMENTED.iter().map(|o| o.to_string()).collect();
    operations.push(LIVE.to_string());
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                operations.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations.sort_by_key(|o| order(o));
    operations.dedup();
    operations
}

/// The live feed, called as a WebSocket handshake (101 when it is let through).
const LIVE: &str = "GET /v1/events/live";

/// What a call sends.
enum Body {
    None,
    Json(Value),
    Text(&'static str),
}

/// What `operation` sends beside its path: a query, and a body that would do it.
fn request_of(operation: &str, world: &World) -> (&'static str, Body) {
    let json = |value: Value| ("", Body::Json(value));
    match operation {
        "DELETE /v1/apps/{app}/cnames" | "POST /v1/apps/{app}/cnames" => {
            json(json!({"cname": "www.example.com"}))
        }
        "DELETE /v1/apps/{app}/env" => ("?name=V", Body::None),
        "PATCH /v1/apps/{app}" => json(json!({"description": "the shop"})),
        "PATCH /v1/platforms/{platform}" => json(json!({"disabled": false})),
        "PATCH /v1/runnables/{id}" => json(json!({"name": "renamed"})),
        "PATCH /v1/services/{service}" => json(json!({"password": "svc-password-0c4e9a13"})),
        "PATCH /v1/users/{username}" => json(json!({"email": "ann@example.com"})),
        "PATCH /v1/orchestrations/{id}" => json(json!({"active": false})),
        "POST /v1/apps" => json(json!({"name": "blog", "platform": "python", "team_owner": "ops"})),
        "POST /v1/apps/{app}/tokens" | "POST /v1/tokens" => json(json!({"description": "more"})),
        "POST /v1/auth/tokens" => json(json!({"username": "ann", "password": "ann-password"})),
        "POST /v1/jobs" => json(json!({"app": "shop", "env": "production", "task": "ok"})),
        "POST /v1/orchestrations" => {
            json(json!({"name": "weekly", "tasks": [{"component": "shop/production/ok"}]}))
        }
        "POST /v1/platforms" => json(json!({"name": "go"})),
        "POST /v1/runnables" => json(json!({"from": world.root})),
        "POST /v1/services" => json(json!({"name": "redis", "endpoint": world.service,
                                           "password": "svc-password-77ab01ce", "teams": ["ops"]})),
        "POST /v1/services/{service}/instances" => {
            json(json!({"name": "db2", "plan": "small", "team_owner": "ops"}))
        }
        "POST /v1/swap" => json(json!({"app1": "web", "app2": "blog"})),
        "POST /v1/teams" => json(json!({"name": "dev"})),
        "POST /v1/users" => json(json!({"username": "dan", "password": "dan-password"})),
        "POST /v1/users/{username}/keys" => json(json!({"name": "desk", "key": ED25519})),
        "POST /v1/users/me/register" => {
            json(json!({"username": "eve", "password": "eve-password", "email": "eve@example.com"}))
        }
        "PUT /v1/apps/{app}/env" => {
            json(json!({"envs": [{"name": "V", "value": "1"}], "restart": false}))
        }
        "PUT /v1/orchestrations/{id}/notifications" => {
            json(json!([{"email": "ops@example.com", "channel": "error"}]))
        }
        "PUT /v1/orchestrations/{id}/tasks" => json(json!([{"component": "shop/production/ok"}])),
        "PUT /v1/runnables/{id}/files/{path}" => ("", Body::Text("echo again\n")),
        "PUT /v1/services/{service}/doc" => ("", Body::Text("MySQL, the database")),
        "PUT /v1/users/{username}/password" => {
            json(json!({"old": "ann-password", "new": "ann-password-2"}))
        }
        "PUT /v1/users/{username}/quota" => json(json!({"limit": 10})),
        _ if operation.starts_with("GET ") || operation.starts_with("DELETE ") => ("", Body::None),
        _ => json(json!({})),
    }
}

fn class(status: StatusCode) -> char {
    match status.as_u16() {
        401 => '1',
        403 => '3',
        404 => '4',
        400 => '0',
        409 => 'c',
        _ => '.',
    }
}

/// What caller `kind` (an index of [`CALLERS`]) gets from each operation, in a world of its
/// own: `(operation, class, status)`.
async fn walk(kind: usize, operations: &[String]) -> Vec<(String, char, u16)> {
    let app = spawn_app(CONFIG).await;
    let service = ServiceApi::start().await;
    let world = world(&app.api, &service).await;
    let caller = &world.callers[kind];
    let mut answers = Vec::new();
    for operation in operations {
        let (method, template) = operation.split_once(' ').expect("METHOD path");
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let (query, body) = request_of(operation, &world);
        let path = format!("{}{query}", fill(template, &world));
        let mut request = caller.request(method, &path);
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Text(text) => request.header("content-type", "text/plain").body(text),
        };
        if operation == LIVE {
            request = request
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{operation}: {e}"));
        let answer = bosun_tests::Answer::read(response).await;
        assert_ne!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{} {operation}: {}",
            CALLERS[kind],
            answer.body
        );
        answers.push((
            operation.clone(),
            class(answer.status),
            answer.status.as_u16(),
        ));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_kind_of_caller_as_its_row_says() {
    let app = spawn_app(CONFIG).await;
    let operations = operations(&app.api).await;
    drop(app);
    let walks: Vec<Vec<(String, char, u16)>> = futures::stream::iter(0..CALLERS.len())
        .map(|kind| walk(kind, &operations))
        .buffered(3)
        .collect()
        .await;
    let mut seen: BTreeMap<&str, (String, Vec<u16>)> = BTreeMap::new();
    for walk in &walks {
        for (operation, class, status) in walk {
            let row = seen.entry(operation.as_str()).or_default();
            row.0.push(*class);
            row.1.push(*status);
        }
    }
    let expected: BTreeMap<&str, &str> = MATRIX.iter().copied().collect();
    let mut wrong = Vec::new();
    for (operation, (classes, statuses)) in &seen {
        match expected.get(operation) {
            Some(row) if row.replace(' ', "") == *classes => {}
            Some(row) => wrong.push(format!(
                "{operation}: expected {row}, got {classes} ({statuses:?})"
            )),
            None => wrong.push(format!("{operation}: no row (got {classes}, {statuses:?})")),
        }
    }
    for operation in expected.keys() {
        if !seen.contains_key(operation) {
            wrong.push(format!(
                "{operation}: a row for an operation the server has not"
            ));
        }
    }
    let table: Vec<String> = seen
        .iter()
        .map(|(operation, (classes, _))| {
            let spaced: Vec<String> = classes.chars().map(String::from).collect();
            format!("    (\"{operation}\", \"{}\"),", spaced.join(" "))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} rows differ from the server's answers ({}):\n{}\n\nthe server's table:\n{}",
        wrong.len(),
        CALLERS.join(", "),
        wrong.join("\n"),
        table.join("\n")
    );
}
