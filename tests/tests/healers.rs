//! Healers over real HTTP: configured named catalog tasks, listed to any reader and run by an
//! admin as a job; a healer naming a task the catalog lacks refuses the start, naming its key.

use bosun_tests::{bosun_binary, spawn_app, work_dir, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

const CONFIG: &str = r#"
runner:
  workers: 1
catalog:
  shop:
    production:
      heal:
        command: ["sh", "-c", "echo healed"]
        description: Restart what is stuck
      other:
        command: ["true"]
healers:
  restart-shop: shop/production/heal
  noop: shop/production/other
"#;

async fn start() -> TestApp {
    spawn_app(CONFIG).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_reader_lists_the_healers_by_name() {
    let app = start().await;
    let ann = app.api.new_user("ann", "ann-password").await;
    let list = ann.get("/v1/healers").await.expect(StatusCode::OK);
    assert_eq!(list.total(), 2);
    assert_eq!(
        list.body,
        json!([
            {"name": "noop", "task": "shop/production/other"},
            {"name": "restart-shop", "task": "shop/production/heal"},
        ])
    );
    let page = ann
        .get("/v1/healers?limit=1&offset=1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(page.total(), 2);
    assert_eq!(
        page.body,
        json!([{"name": "restart-shop", "task": "shop/production/heal"}])
    );
    app.api
        .anonymous()
        .refused(Method::GET, "/v1/healers", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_a_healer_and_gets_its_job() {
    let app = start().await;
    let answer = app
        .api
        .call(Method::POST, "/v1/healers/restart-shop", None)
        .await
        .expect(StatusCode::CREATED);
    answer.header("bosun-position");
    let job = answer.body;
    assert_eq!(
        (&job["app"], &job["env"], &job["task"], &job["name"]),
        (
            &json!("shop"),
            &json!("production"),
            &json!("heal"),
            &json!("healer restart-shop")
        )
    );
    assert_eq!(job["created_by"], "admin");
    let id = job["id"].as_str().unwrap();
    let done = app
        .api
        .wait_for(id, Duration::from_secs(30), |j| j["status"] == "success")
        .await;
    assert_eq!(done["exit_code"], 0);
    let output = app
        .api
        .send(Method::GET, &format!("/v1/jobs/{id}/output"), None)
        .await
        .2;
    assert!(output.contains("healed"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_a_healer_again_with_the_same_idempotency_key_gives_the_first_job() {
    let app = start().await;
    let run = || {
        app.api.call_with(
            Method::POST,
            "/v1/healers/noop",
            &[("Idempotency-Key", "k1")],
            None,
        )
    };
    let first = run().await.expect(StatusCode::CREATED);
    let again = run().await.expect(StatusCode::OK);
    assert_eq!(first.body["id"], again.body["id"]);
    // One job in all (the log moves on as a worker runs it, so count jobs, not events).
    let jobs = app.api.get("/v1/jobs").await.expect(StatusCode::OK);
    assert_eq!(jobs.total(), 1, "{}", jobs.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_healer_is_not_found_and_writes_nothing() {
    let app = start().await;
    let head = app.api.log_head().await;
    let problem = head
        .refused(&app.api, Method::POST, "/v1/healers/nope", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert!(problem.detail().contains("nope"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_with_the_write_scope_runs_a_healer() {
    let app = start().await;
    let ann = app.api.new_user("ann", "ann-password").await;
    let issued = app
        .api
        .post(
            "/v1/tokens",
            json!({"description": "ro", "scopes": ["read", "admin"]}),
        )
        .await
        .expect(StatusCode::CREATED);
    let admin_read_only = app.api.with_token(issued.body["token"].as_str().unwrap());
    let head = app.api.log_head().await;
    for client in [&ann, &admin_read_only] {
        for path in ["/v1/healers/restart-shop", "/v1/healers/nope"] {
            head.refused(client, Method::POST, path, None)
                .await
                .expect(StatusCode::FORBIDDEN, "forbidden");
        }
    }
    head.refused(
        &app.api.anonymous(),
        Method::POST,
        "/v1/healers/restart-shop",
        None,
    )
    .await
    .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[test]
fn a_healer_of_a_task_the_catalog_lacks_refuses_the_start_naming_its_key() {
    let dir = work_dir();
    for (file, named) in [
        (
            "catalog:\n  shop:\n    production:\n      heal: {command: [\"true\"]}\nhealers:\n  fix: shop/production/nope\n",
            "healers.fix",
        ),
        ("healers:\n  fix: not-a-task\n", "healers.fix"),
    ] {
        std::fs::write(dir.path().join("bosun.yaml"), file).unwrap();
        let out = std::process::Command::new(bosun_binary())
            .args(["serve", "-c", "bosun.yaml"])
            .current_dir(dir.path())
            .env("BOSUN_LISTEN", "127.0.0.1:0")
            .output()
            .expect("run bosun");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
    }
    assert!(
        !dir.path().join("bosun-data").exists(),
        "nothing was started"
    );
}
