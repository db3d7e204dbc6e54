//! Nothing half-done after a crash: the real `bosun` binary (its managed PostgreSQL) calls a
//! real service API (`bosun_tests::service_api`) that does what it is asked and then does not
//! answer; the server is killed with SIGKILL between the service's work and the outcome's
//! record; the service answers again; after a restart, the reactor finishes the intent: a bind
//! ends recorded with the variables in the app's environment, a create with the instance
//! ready, and the service was asked twice. What a live server does with the service's answers
//! is `services.rs`'s.

use bosun_tests::service_api::{Call, Mode, ServiceApi, VARIABLES};
use bosun_tests::{config_file, work_dir, Api, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Calls time out after 10 s, so the first attempt cannot end (and record that it got no
/// answer) before the kill, and the restarted server's reactor takes an intent up about 15 s
/// after it was made.
const CONFIG: &str = r#"
listen: 127.0.0.1:0
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
services:
  timeout_seconds: 10
catalog:
  shop:
    production:
      show:
        command: ["sh", "-c", "echo url=$DATABASE_URL user=$DATABASE_USER"]
"#;

const PASSWORD: &str = "svc-password-crash-61c2";

const INSTANCES: &str = "/v1/services/mysql/instances";

/// `bosun serve -c <dir>/bosun.yaml` in `dir` (its data in `<dir>/bosun-data`).
fn start(dir: &Path) -> Server {
    let config = dir.join("bosun.yaml");
    Server::start(dir, &["-c", config.to_str().unwrap()], &[])
}

/// The same client, on `server`.
fn on(server: &Server, client: &Api) -> Api {
    Api::at(&server.base, &client.token)
}

/// A first start, with the platform `python`, ann (team `ops`, app `shop`) and the service
/// `mysql` (teams `[ops]`) at `service`: the server, the admin, ann.
async fn first_start(dir: &Path, service: &ServiceApi) -> (Server, Api, Api) {
    config_file(dir, CONFIG);
    let server = start(dir);
    let admin = Api::new(&server, dir);
    admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let ann = admin.new_user("ann", "ann-password").await;
    ann.team_with_app("ops", "shop", "python").await;
    admin
        .post(
            "/v1/services",
            json!({"name": "mysql", "endpoint": service.base, "password": PASSWORD,
                   "teams": ["ops"]}),
        )
        .await
        .expect(StatusCode::CREATED);
    (server, admin, ann)
}

/// The event types of `stream`.
async fn stream_types(admin: &Api, stream: &str) -> Vec<String> {
    admin
        .get(&format!("/v1/streams/{stream}"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect()
}

fn count(types: &[String], kind: &str) -> usize {
    types.iter().filter(|t| t.as_str() == kind).count()
}

/// Polls `path` (as `client`) until `done` holds for its answer (at most `limit`).
async fn wait_until(
    client: &Api,
    path: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let answer = client.get(path).await;
        if answer.status == StatusCode::OK && done(&answer.body) {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The names `/v1/apps/{app}/env` lists as bound to mysql's db1, private and valueless.
fn bound_to_db1(env: &Value) -> Vec<String> {
    env.as_array()
        .map(|vars| {
            vars.iter()
                .filter(|v| {
                    v["bound"] == json!({"service": "mysql", "instance": "db1"})
                        && v["value"].is_null()
                        && v["public"] == false
                })
                .filter_map(|v| v["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_the_service_did_before_a_sigkill_ends_recorded_with_its_variables() {
    let dir = work_dir();
    let service = ServiceApi::start().await;
    let (server, admin, ann) = first_start(dir.path(), &service).await;
    ann.post(INSTANCES, json!({"name": "db1", "team_owner": "ops"}))
        .await
        .expect(StatusCode::CREATED);
    // The service binds, then never answers; the server is killed while it waits.
    service.set(Call::Bind, Mode::Hang);
    let binding = {
        let ann = ann.clone();
        tokio::spawn(async move {
            ann.call(Method::PUT, &format!("{INSTANCES}/db1/apps/shop"), None)
                .await
        })
    };
    service
        .wait_for(Call::Bind, 1, Duration::from_secs(30))
        .await;
    server.kill();
    binding.abort();
    assert!(service.resources()["db1"].contains("shop"));

    // The service answers again; the restarted server's reactor finishes the bind.
    service.set(Call::Bind, Mode::Ok);
    let server = start(dir.path());
    let (admin, ann) = (on(&server, &admin), on(&server, &ann));
    let env = wait_until(&ann, "/v1/apps/shop/env", Duration::from_secs(90), |env| {
        bound_to_db1(env).len() == VARIABLES.len()
    })
    .await;
    let mut bound = bound_to_db1(&env);
    bound.sort();
    assert_eq!(bound, ["DATABASE_URL", "DATABASE_USER"], "{env}");
    let instance = ann
        .get(&format!("{INSTANCES}/db1"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(instance["apps"], json!(["shop"]), "{instance}");
    assert!(instance["pending"].is_null(), "{instance}");
    // Asked twice, the same way each time; recorded once.
    let got = service.requests_of(Call::Bind);
    assert_eq!(got.len(), 2, "{got:?}");
    for request in &got {
        assert_eq!(request.path, "/resources/db1/bind-app");
        assert_eq!(request.field("app-name"), Some("shop"));
        assert_eq!(request.basic_auth(), (Some("mysql"), Some(PASSWORD)));
    }
    let types = stream_types(&admin, "instance-mysql.db1").await;
    assert_eq!(count(&types, "InstanceBindRequested"), 1, "{types:?}");
    assert_eq!(count(&types, "InstanceBound"), 1, "{types:?}");
    assert_eq!(types.last().map(String::as_str), Some("InstanceBound"));
    // Killed before any outcome of the first call: no unanswered attempt was recorded.
    assert_eq!(count(&types, "ServiceCallFailed"), 0, "{types:?}");
    let types = stream_types(&admin, "app-shop").await;
    assert_eq!(count(&types, "AppInstanceBound"), 1, "{types:?}");
    // The values are usable: a job of the app gets them.
    let job = ann
        .post(
            "/v1/jobs",
            json!({"app": "shop", "env": "production", "task": "show", "wait": true}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        job["stdout"],
        format!("url={} user=shop\n", VARIABLES[0].1),
        "{job}"
    );
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_the_service_created_before_a_sigkill_ends_a_ready_instance() {
    let dir = work_dir();
    let service = ServiceApi::start().await;
    let (server, admin, ann) = first_start(dir.path(), &service).await;
    service.set(Call::Create, Mode::Hang);
    let creating = {
        let ann = ann.clone();
        tokio::spawn(async move {
            ann.post(INSTANCES, json!({"name": "db1", "team_owner": "ops"}))
                .await
        })
    };
    service
        .wait_for(Call::Create, 1, Duration::from_secs(30))
        .await;
    server.kill();
    creating.abort();
    assert!(service.resources().contains_key("db1"));

    service.set(Call::Create, Mode::Ok);
    let server = start(dir.path());
    let (admin, ann) = (on(&server, &admin), on(&server, &ann));
    let instance = wait_until(
        &ann,
        &format!("{INSTANCES}/db1"),
        Duration::from_secs(90),
        |i| i["state"] == "ready",
    )
    .await;
    assert!(instance["pending"].is_null(), "{instance}");
    // The second ask got 409 (it has it): Bosun took that as created, and knows the resource.
    assert_eq!(service.requests_of(Call::Create).len(), 2);
    assert_eq!(
        ann.get("/v1/services/mysql").await.body["instances"],
        json!(["db1"])
    );
    let types = stream_types(&admin, "instance-mysql.db1").await;
    assert_eq!(
        types.last().map(String::as_str),
        Some("InstanceCreated"),
        "{types:?}"
    );
    assert_eq!(count(&types, "InstanceCreationFailed"), 0, "{types:?}");
    assert_eq!(count(&types, "ServiceCallFailed"), 0, "{types:?}");
    assert!(server.terminate().success());
}
