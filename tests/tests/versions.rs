//! Versions over real HTTP: a resource's answer carries its stream's version as `ETag`, and
//! every `PATCH`, `PUT` and `DELETE` of `/v1` answers to `If-Match`: another version is a 412
//! `version_mismatch` naming the current one that writes nothing; the current one passes. The
//! walk covers every such operation of `/v1/openapi.json`: one without a row in [`writes`] fails
//! the test. The server runs in the test's process (`spawn_app`).

use bosun_tests::service_api::ServiceApi;
use bosun_tests::{spawn_app, Answer, Api};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const CONFIG: &str = r#"
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
catalog:
  ml:
    production:
      ok:
        command: ["true"]
      sleep:
        command: ["sleep", "600"]
"#;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";

/// What a write sends: a JSON body, raw bytes, or nothing.
enum Body {
    None,
    Json(Value),
    Raw(&'static str, &'static [u8]),
}

/// One write of the walk: the operation (`METHOD template`, as the document names it), the
/// concrete call, who makes it, and the stream whose version `If-Match` names.
struct Write {
    operation: &'static str,
    path: String,
    body: Body,
    by_ann: bool,
    stream: String,
}

fn write(
    operation: &'static str,
    path: impl Into<String>,
    body: Body,
    stream: impl Into<String>,
) -> Write {
    Write {
        operation,
        path: path.into(),
        body,
        by_ann: false,
        stream: stream.into(),
    }
}

/// The operations that name no resource with a version: `If-Match` on them is a 400.
const UNVERSIONED: &[&str] = &["DELETE /v1/auth/tokens/current"];

/// Every versioned write, in an order each can succeed in (a resource's removal after its
/// parts'), over the world [`world`] builds.
fn writes(ids: &Ids) -> Vec<Write> {
    let Ids {
        orchestration,
        runnable,
        job,
        app_token,
        token,
    } = ids;
    let mut ann_password = write(
        "PUT /v1/users/{username}/password",
        "/v1/users/ann/password",
        Body::Json(json!({"old": "ann-password", "new": "ann-password-2"})),
        "user-ann",
    );
    ann_password.by_ann = true;
    vec![
        write(
            "PATCH /v1/users/{username}",
            "/v1/users/ann",
            Body::Json(json!({"email": "ann@example.com"})),
            "user-ann",
        ),
        ann_password,
        write(
            "PUT /v1/users/{username}/quota",
            "/v1/users/ann/quota",
            Body::Json(json!({"limit": 7})),
            "quota-ann",
        ),
        write(
            "DELETE /v1/users/{username}/keys/{name}",
            "/v1/users/ann/keys/laptop",
            Body::None,
            "user-ann",
        ),
        write(
            "PUT /v1/teams/{team}/members/{username}",
            "/v1/teams/ops/members/ann",
            Body::None,
            "team-ops",
        ),
        write(
            "DELETE /v1/teams/{team}/members/{username}",
            "/v1/teams/ops/members/ann",
            Body::None,
            "team-ops",
        ),
        write(
            "PATCH /v1/platforms/{platform}",
            "/v1/platforms/go",
            Body::Json(json!({"disabled": true})),
            "platform-go",
        ),
        write(
            "PATCH /v1/apps/{app}",
            "/v1/apps/shop",
            Body::Json(json!({"description": "the shop"})),
            "app-shop",
        ),
        write(
            "PUT /v1/apps/{app}/teams/{team}",
            "/v1/apps/shop/teams/web",
            Body::None,
            "app-shop",
        ),
        write(
            "DELETE /v1/apps/{app}/teams/{team}",
            "/v1/apps/shop/teams/web",
            Body::None,
            "app-shop",
        ),
        write(
            "DELETE /v1/apps/{app}/cnames",
            "/v1/apps/shop/cnames",
            Body::Json(json!({"cname": "shop.example.com"})),
            "app-shop",
        ),
        write(
            "PUT /v1/apps/{app}/env",
            "/v1/apps/shop/env",
            Body::Json(json!({"envs": [{"name": "A", "value": "1"}], "restart": false})),
            "app-shop",
        ),
        write(
            "DELETE /v1/apps/{app}/env",
            "/v1/apps/shop/env?name=A",
            Body::None,
            "app-shop",
        ),
        write(
            "DELETE /v1/apps/{app}/tokens/{token_id}",
            format!("/v1/apps/shop/tokens/{app_token}"),
            Body::None,
            format!("token-{app_token}"),
        ),
        write(
            "PATCH /v1/services/{service}",
            "/v1/services/mysql",
            Body::Json(json!({"password": "svc-password-changed"})),
            "service-mysql",
        ),
        write(
            "PUT /v1/services/{service}/doc",
            "/v1/services/mysql/doc",
            Body::Raw("text/plain", b"MySQL, one database per instance"),
            "service-mysql",
        ),
        write(
            "PUT /v1/services/{service}/teams/{team}",
            "/v1/services/mysql/teams/web",
            Body::None,
            "service-mysql",
        ),
        write(
            "DELETE /v1/services/{service}/teams/{team}",
            "/v1/services/mysql/teams/web",
            Body::None,
            "service-mysql",
        ),
        write(
            "PUT /v1/services/{service}/instances/{instance}/apps/{app}",
            "/v1/services/mysql/instances/db/apps/shop",
            Body::None,
            "instance-mysql.db",
        ),
        write(
            "DELETE /v1/services/{service}/instances/{instance}/apps/{app}",
            "/v1/services/mysql/instances/db/apps/shop",
            Body::None,
            "instance-mysql.db",
        ),
        write(
            "DELETE /v1/services/{service}/instances/{instance}",
            "/v1/services/mysql/instances/db",
            Body::None,
            "instance-mysql.db",
        ),
        write(
            "PATCH /v1/orchestrations/{id}",
            format!("/v1/orchestrations/{orchestration}"),
            Body::Json(json!({"name": "nightly-2"})),
            format!("orchestration-{orchestration}"),
        ),
        write(
            "PUT /v1/orchestrations/{id}/tasks",
            format!("/v1/orchestrations/{orchestration}/tasks"),
            Body::Json(
                json!([{"component": "ml/production/ok"}, {"component": "ml/production/ok"}]),
            ),
            format!("orchestration-{orchestration}"),
        ),
        write(
            "PUT /v1/orchestrations/{id}/notifications",
            format!("/v1/orchestrations/{orchestration}/notifications"),
            Body::Json(json!([{"email": "ops@example.com", "channel": "error"}])),
            format!("orchestration-{orchestration}"),
        ),
        write(
            "DELETE /v1/orchestrations/{id}",
            format!("/v1/orchestrations/{orchestration}"),
            Body::None,
            format!("orchestration-{orchestration}"),
        ),
        write(
            "PATCH /v1/runnables/{id}",
            format!("/v1/runnables/{runnable}"),
            Body::Json(json!({"name": "hello-2"})),
            format!("runnable-{runnable}"),
        ),
        write(
            "PUT /v1/runnables/{id}/files/{path}",
            format!("/v1/runnables/{runnable}/files/notes.txt"),
            Body::Raw("application/octet-stream", b"notes\n"),
            format!("runnable-{runnable}"),
        ),
        write(
            "DELETE /v1/runnables/{id}/files/{path}",
            format!("/v1/runnables/{runnable}/files/notes.txt"),
            Body::None,
            format!("runnable-{runnable}"),
        ),
        write(
            "DELETE /v1/runnables/{id}",
            format!("/v1/runnables/{runnable}"),
            Body::None,
            format!("runnable-{runnable}"),
        ),
        write(
            "DELETE /v1/jobs/{id}/name",
            format!("/v1/jobs/{job}/name"),
            Body::None,
            format!("job-{job}"),
        ),
        write(
            "DELETE /v1/tokens/{token_id}",
            format!("/v1/tokens/{token}"),
            Body::None,
            format!("token-{token}"),
        ),
        write(
            "DELETE /v1/platforms/{platform}",
            "/v1/platforms/go",
            Body::None,
            "platform-go",
        ),
        write(
            "DELETE /v1/apps/{app}",
            "/v1/apps/shop",
            Body::None,
            "app-shop",
        ),
        write(
            "DELETE /v1/services/{service}",
            "/v1/services/mysql",
            Body::None,
            "service-mysql",
        ),
        write(
            "DELETE /v1/teams/{team}",
            "/v1/teams/web",
            Body::None,
            "team-web",
        ),
        write(
            "DELETE /v1/users/{username}",
            "/v1/users/ann",
            Body::None,
            "user-ann",
        ),
    ]
}

/// The ids of what [`world`] made.
struct Ids {
    orchestration: String,
    runnable: String,
    job: String,
    app_token: String,
    token: String,
}

fn id_of(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field}: {value}"))
        .to_string()
}

/// As the admin: platforms python and go, teams ops (with app shop, its cname, an instance db of
/// service mysql) and web, user ann with a key, an orchestration, a runnable, a running role
/// job holding its name, an app token and a token of the admin's.
async fn world(admin: &Api, service: &ServiceApi) -> (Api, Ids) {
    for platform in ["python", "go"] {
        admin
            .post("/v1/platforms", json!({"name": platform}))
            .await
            .expect(StatusCode::CREATED);
    }
    admin.team_with_app("ops", "shop", "python").await;
    admin
        .post("/v1/teams", json!({"name": "web"}))
        .await
        .expect(StatusCode::CREATED);
    admin
        .post("/v1/apps/shop/cnames", json!({"cname": "shop.example.com"}))
        .await
        .expect(StatusCode::OK);
    let ann = admin.new_user("ann", "ann-password").await;
    admin
        .call(
            Method::PUT,
            "/v1/users/ann/quota",
            Some(json!({"limit": 5})),
        )
        .await
        .expect(StatusCode::OK);
    ann.post(
        "/v1/users/ann/keys",
        json!({"name": "laptop", "key": ED25519}),
    )
    .await
    .expect(StatusCode::CREATED);
    admin
        .post(
            "/v1/services",
            json!({"name": "mysql", "endpoint": service.base, "password": "svc-password-5b7d2c90",
                   "teams": ["ops"], "doc": "MySQL databases"}),
        )
        .await
        .expect(StatusCode::CREATED);
    admin
        .post(
            "/v1/services/mysql/instances",
            json!({"name": "db", "plan": "small", "team_owner": "ops"}),
        )
        .await
        .expect(StatusCode::CREATED);
    admin
        .until("/v1/services/mysql/instances/db", |i| i["state"] == "ready")
        .await;
    let orchestration = admin
        .post(
            "/v1/orchestrations",
            json!({"name": "nightly", "tasks": [{"component": "ml/production/ok"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let runnable = admin
        .post(
            "/v1/runnables",
            json!({"name": "hello", "start_command": "sh main.sh",
                   "files": [{"path": "main.sh", "content": "echo hello\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job = admin
        .post(
            "/v1/jobs",
            json!({"name": "train.1", "roles": [{"name": "worker", "instances": 1, "task": "ml/production/sleep"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    // Still running when its name is released, which stops it: a write to its stream.
    let job = id_of(&job, "id");
    let app_token = admin
        .post("/v1/apps/shop/tokens", json!({"description": "deploys"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let token = admin
        .post("/v1/tokens", json!({"description": "another"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let ids = Ids {
        orchestration: id_of(&orchestration, "id"),
        runnable: id_of(&runnable, "id"),
        job,
        app_token: id_of(&app_token, "token_id"),
        token: id_of(&token, "token_id"),
    };
    (ann, ids)
}

/// The version of `stream`'s last event, as `/v1/streams` shows it.
async fn version_of(admin: &Api, stream: &str) -> u64 {
    let events = admin
        .get(&format!("/v1/streams/{stream}?limit=1000"))
        .await
        .expect(StatusCode::OK)
        .body;
    let events = events.as_array().expect("a list");
    assert!(events.len() < 1000, "{stream} is longer than one page");
    events
        .last()
        .and_then(|e| e["version"].as_u64())
        .unwrap_or_else(|| panic!("{stream} has no events"))
}

async fn send(client: &Api, method: &Method, write: &Write, if_match: &str) -> Answer {
    let mut request = client
        .request(method.clone(), &write.path)
        .header("if-match", if_match);
    request = match &write.body {
        Body::None => request,
        Body::Json(body) => request.json(body),
        Body::Raw(kind, bytes) => request.header("content-type", *kind).body(bytes.to_vec()),
    };
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", write.operation));
    Answer::read(response).await
}

/// Every `PATCH`, `PUT` and `DELETE` of the document, as `METHOD template`.
async fn documented_writes(admin: &Api) -> BTreeSet<String> {
    let document = admin
        .get("/v1/openapi.json")
        .await
        .expect(StatusCode::OK)
        .body;
    let mut writes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["patch", "put", "delete"] {
            if item.get(method).is_some() {
                writes.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_of_a_resource_answers_to_if_match() {
    let app = spawn_app(CONFIG).await;
    let admin = &app.api;
    let service = ServiceApi::start().await;
    let (ann, ids) = world(admin, &service).await;
    let walk = writes(&ids);

    let covered: BTreeSet<String> = walk
        .iter()
        .map(|w| w.operation.to_string())
        .chain(UNVERSIONED.iter().map(|o| o.to_string()))
        .collect();
    let documented = documented_writes(admin).await;
    let missing: Vec<_> = documented.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "writes without a row in this test: {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&documented).collect();
    assert!(
        stale.is_empty(),
        "rows for writes the document lacks: {stale:?}"
    );

    let Ids {
        orchestration,
        runnable,
        job,
        ..
    } = &ids;
    let reads = [
        ("/v1/users/ann".to_string(), "user-ann".to_string()),
        ("/v1/users/ann/quota".into(), "quota-ann".into()),
        ("/v1/teams/ops".into(), "team-ops".into()),
        ("/v1/apps/shop".into(), "app-shop".into()),
        ("/v1/apps/shop/env".into(), "app-shop".into()),
        ("/v1/services/mysql".into(), "service-mysql".into()),
        (
            "/v1/services/mysql/instances/db".into(),
            "instance-mysql.db".into(),
        ),
        (
            format!("/v1/orchestrations/{orchestration}"),
            format!("orchestration-{orchestration}"),
        ),
        (
            format!("/v1/runnables/{runnable}"),
            format!("runnable-{runnable}"),
        ),
        (format!("/v1/jobs/{job}"), format!("job-{job}")),
    ];
    // The job picked up by a worker, and whatever else the world set off, done first.
    admin.still().await;
    for (path, stream) in &reads {
        let read = admin.get(path).await.expect(StatusCode::OK);
        let version = version_of(admin, stream).await;
        assert_eq!(read.header("etag"), format!("\"{version}\""), "GET {path}");
    }

    for write in &walk {
        let method: Method = write
            .operation
            .split(' ')
            .next()
            .and_then(|m| m.parse().ok())
            .expect("a method");
        let client = if write.by_ann { &ann } else { admin };
        let current = version_of(admin, &write.stream).await;

        let log = admin.log_head().await;
        // Far from any version the stream could reach meanwhile.
        let refused = send(client, &method, write, &format!("\"{}\"", current + 1000)).await;
        assert_eq!(
            refused.status,
            StatusCode::PRECONDITION_FAILED,
            "{} with a stale If-Match: {}",
            write.operation,
            refused.body
        );
        let problem = refused
            .problem()
            .expect(StatusCode::PRECONDITION_FAILED, "version_mismatch");
        assert_eq!(
            problem.body["current_version"], current,
            "{}",
            write.operation
        );
        log.assert_unchanged(format_args!("{} with a stale If-Match", write.operation))
            .await;

        let done = send(client, &method, write, &format!("\"{current}\"")).await;
        assert!(
            done.status.is_success(),
            "{} with its current version: {} {}",
            write.operation,
            done.status,
            done.body
        );
        if write.operation == "DELETE /v1/jobs/{id}/name" {
            // Its worker records the stop it asked for: let it, before the next row counts
            // the log.
            admin
                .until(&write.path.replace("/name", ""), |j| {
                    !matches!(j["status"].as_str(), Some("waiting" | "processing"))
                })
                .await;
            admin.still().await;
        }
        let after = version_of(admin, &write.stream).await;
        assert!(
            after > current,
            "{} wrote nothing to {}",
            write.operation,
            write.stream
        );
        if done.status != StatusCode::NO_CONTENT {
            assert_eq!(
                done.header("etag"),
                format!("\"{after}\""),
                "{}: its answer's ETag",
                write.operation
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_read_carries_its_stream_version_and_a_write_moves_it() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin.shop_of_team_ops().await;
    let read = admin.get("/v1/apps/shop").await.expect(StatusCode::OK);
    let version = version_of(admin, "app-shop").await;
    assert_eq!(read.header("etag"), format!("\"{version}\""));

    let changed = admin
        .call_with(
            Method::PATCH,
            "/v1/apps/shop",
            &[("if-match", read.header("etag"))],
            Some(json!({"description": "the shop"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed.header("etag"), format!("\"{}\"", version + 1));
    let again = admin.get("/v1/apps/shop").await.expect(StatusCode::OK);
    assert_eq!(again.header("etag"), changed.header("etag"));
    let env = admin.get("/v1/apps/shop/env").await.expect(StatusCode::OK);
    assert_eq!(env.header("etag"), changed.header("etag"));

    // The tag read before the write is stale now.
    let log = admin.log_head().await;
    admin
        .call_with(
            Method::PATCH,
            "/v1/apps/shop",
            &[("if-match", read.header("etag"))],
            Some(json!({"description": "lost update"})),
        )
        .await
        .problem()
        .expect(StatusCode::PRECONDITION_FAILED, "version_mismatch");
    log.assert_unchanged("a PATCH with a stale tag").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_is_one_strong_tag_on_a_resource() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin.shop_of_team_ops().await;
    let log = admin.log_head().await;
    for bad in ["3", "W/\"3\"", "\"1\", \"2\"", "\"x\""] {
        admin
            .call_with(
                Method::PATCH,
                "/v1/apps/shop",
                &[("if-match", bad)],
                Some(json!({"description": "x"})),
            )
            .await
            .problem()
            .expect(StatusCode::BAD_REQUEST, "invalid_header");
    }
    for operation in UNVERSIONED {
        let (method, path) = operation.split_once(' ').expect("METHOD path");
        admin
            .call_with(
                method.parse().expect("a method"),
                path,
                &[("if-match", "\"0\"")],
                None,
            )
            .await
            .problem()
            .expect(StatusCode::BAD_REQUEST, "invalid_header");
    }
    log.assert_unchanged("malformed or misplaced If-Match")
        .await;
    // `*` asks only that the resource exist.
    admin
        .call_with(
            Method::PATCH,
            "/v1/apps/shop",
            &[("if-match", "*")],
            Some(json!({"description": "any version"})),
        )
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_written_in_another_form_is_checked_all_the_same() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let token = admin
        .post("/v1/tokens", json!({"description": "ci"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = token["token_id"].as_str().expect("a token id");
    let log = admin.log_head().await;
    for form in [id.to_uppercase(), id.replace('-', "")] {
        admin
            .call_with(
                Method::DELETE,
                &format!("/v1/tokens/{form}"),
                &[("if-match", "\"999\"")],
                None,
            )
            .await
            .problem()
            .expect(StatusCode::PRECONDITION_FAILED, "version_mismatch");
    }
    log.assert_unchanged("a stale If-Match on another form of the id")
        .await;
}

/// `DELETE path` with a stale tag is a 412 that writes nothing; with the tag its GET answers, it
/// removes the resource.
async fn removed_only_with_its_tag(admin: &Api, path: &str) {
    let log = admin.log_head().await;
    admin
        .call_with(Method::DELETE, path, &[("if-match", "\"999\"")], None)
        .await
        .problem()
        .expect(StatusCode::PRECONDITION_FAILED, "version_mismatch");
    log.assert_unchanged(format_args!("DELETE {path} with a stale If-Match"))
        .await;
    let tag = admin
        .get(path)
        .await
        .expect(StatusCode::OK)
        .header("etag")
        .to_string();
    admin
        .call_with(Method::DELETE, path, &[("if-match", &tag)], None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_admin_with_a_stale_tag_writes_nothing_and_with_its_tag_removes() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin
        .post(
            "/v1/users",
            json!({"username": "root2", "password": "root2-password", "admin": true}),
        )
        .await
        .expect(StatusCode::CREATED);
    removed_only_with_its_tag(admin, "/v1/users/root2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_app_with_a_bound_instance_answers_to_if_match() {
    let app = spawn_app(CONFIG).await;
    let service = ServiceApi::start().await;
    let admin = &app.api;
    admin.shop_of_team_ops().await;
    admin
        .post(
            "/v1/services",
            json!({"name": "mysql", "endpoint": service.base, "password": "svc-password-5b7d2c90",
                   "teams": ["ops"]}),
        )
        .await
        .expect(StatusCode::CREATED);
    admin
        .post(
            "/v1/services/mysql/instances",
            json!({"name": "db", "plan": "small", "team_owner": "ops"}),
        )
        .await
        .expect(StatusCode::CREATED);
    admin
        .until("/v1/services/mysql/instances/db", |i| i["state"] == "ready")
        .await;
    let bound = admin
        .call(
            Method::PUT,
            "/v1/services/mysql/instances/db/apps/shop",
            None,
        )
        .await;
    assert!(bound.status.is_success(), "{}", bound.body);
    admin.still().await;
    // Its unbinding writes to the app's stream before the removal: the tag read before both
    // still removes it.
    removed_only_with_its_tag(admin, "/v1/apps/shop").await;
    admin
        .get("/v1/apps/shop")
        .await
        .problem()
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_any_is_refused_on_a_resource_with_no_version_yet() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin
        .post(
            "/v1/users",
            json!({"username": "bob", "password": "bob-password"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let log = admin.log_head().await;
    admin
        .call_with(
            Method::PUT,
            "/v1/users/bob/quota",
            &[("if-match", "*")],
            Some(json!({"limit": 3})),
        )
        .await
        .problem()
        .expect(StatusCode::PRECONDITION_FAILED, "version_mismatch");
    log.assert_unchanged("If-Match: * on a quota never set")
        .await;
    admin
        .call(
            Method::PUT,
            "/v1/users/bob/quota",
            Some(json!({"limit": 3})),
        )
        .await
        .expect(StatusCode::OK);
}
