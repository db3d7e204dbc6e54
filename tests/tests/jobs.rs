//! Jobs over HTTP against the real binary. So far: the task catalog from configuration.

use bosun_tests::{config_file, work_dir, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_the_configured_tasks() {
    let dir = work_dir();
    let config = config_file(
        dir.path(),
        r#"
catalog:
  example:
    production:
      deploy:
        command: ["sh", "-c", "echo deploying $VERSION"]
        description: Deploy the app
        timeout_seconds: 600
      restart:
        command: ["true"]
    staging:
      deploy:
        command: ["true"]
"#,
    );
    let server = Server::start(
        dir.path(),
        &["-c", config.to_str().unwrap()],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = std::fs::read_to_string(dir.path().join("bosun-data/admin-token")).unwrap();
    let http = reqwest::Client::new();
    let listed: serde_json::Value = http
        .get(server.url("/v1/catalog"))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!([
            {"app": "example", "env": "production", "tasks": [
                {"name": "deploy", "description": "Deploy the app"},
                {"name": "restart", "description": ""}
            ]},
            {"app": "example", "env": "staging", "tasks": [{"name": "deploy", "description": ""}]}
        ])
    );
    let anonymous = http.get(server.url("/v1/catalog")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
