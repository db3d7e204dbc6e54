//! The generated OpenAPI document: served at `/v1/openapi.json`, valid OpenAPI 3.1 (checked by
//! `openapi-spec-validator`, a real validator), and every path it lists is routed; the page for
//! people at `/v1/docs` is served without anything fetched from outside.

use bosun_tests::{spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::process::Command;

async fn document(app: &TestApp) -> Value {
    let response = reqwest::get(app.url("/v1/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1() {
    let app = spawn_app("").await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0", "{document}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let validated = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install Python 3 and `pip install openapi-spec-validator`")
        });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    assert!(
        !said.contains("No module named"),
        "the validator is missing: `pip install openapi-spec-validator`\n{said}"
    );
    assert!(validated.status.success(), "not valid OpenAPI:\n{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_and_every_route_of_api_md_documented() {
    let app = spawn_app("").await;
    let api = &app.api;
    let document = document(&app).await;
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            // Path parameters filled with a value of the right shape; a handler may then refuse
            // it (400, 404…), but the router's own answers mean the route is missing.
            let concrete = path
                .replace("{id}", "00000000-0000-0000-0000-000000000000")
                .replace("{token_id}", "00000000-0000-0000-0000-000000000000")
                .replace("{stream_id}", "job-00000000-0000-0000-0000-000000000000")
                .replace("{username}", "nobody")
                .replace("{team}", "nobody");
            let (status, body) = api.json(method.clone(), &concrete, None).await;
            let routed = !(status == StatusCode::METHOD_NOT_ALLOWED
                || (status == StatusCode::NOT_FOUND
                    && body["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("no resource at"))));
            assert!(
                routed,
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
    // The native API's paths (../shared/API.md, the parts built so far) are all documented.
    for path in [
        "/v1/auth/tokens",
        "/v1/auth/tokens/current",
        "/v1/auth/whoami",
        "/v1/users",
        "/v1/users/{username}",
        "/v1/users/{username}/password",
        "/v1/teams",
        "/v1/teams/{team}",
        "/v1/teams/{team}/members/{username}",
        "/v1/tokens",
        "/v1/tokens/{token_id}",
        "/v1/catalog",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/output",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/kill",
        "/v1/orchestrations",
        "/v1/orchestrations/{id}",
        "/v1/orchestrations/{id}/tasks",
        "/v1/orchestrations/{id}/notifications",
        "/v1/orchestrations/{id}/token",
        "/v1/orchestrations/{id}/jobs",
        "/v1/events",
        "/v1/events/live",
        "/v1/streams/{stream_id}",
        "/v1/audit",
        "/v1/services",
        "/v1/services/{service}",
        "/v1/services/{service}/doc",
        "/v1/services/{service}/teams/{team}",
        "/v1/services/{service}/instances",
        "/v1/services/{service}/instances/{instance}",
        "/v1/services/{service}/instances/{instance}/status",
        "/v1/services/{service}/instances/{instance}/apps/{app}",
        "/v1/runnables",
        "/v1/runnables/{id}",
        "/v1/runnables/{id}/save",
        "/v1/runnables/{id}/start",
        "/v1/runnables/{id}/stop",
        "/v1/runnables/{id}/restart",
        "/v1/runnables/{id}/logs",
        "/v1/runnables/{id}/files",
        "/v1/runnables/{id}/files/{path}",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} is missing from the document"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_is_served_from_the_binary() {
    let app = spawn_app("").await;
    let page = reqwest::get(app.url("/v1/docs/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let script = reqwest::get(app.url("/v1/docs/swagger-ui-bundle.js"))
        .await
        .unwrap();
    assert_eq!(
        script.status(),
        StatusCode::OK,
        "the page's script is in the binary"
    );
}
