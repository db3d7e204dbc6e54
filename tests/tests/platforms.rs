//! Platforms over real HTTP: an admin adds, lists, disables and deletes the platforms apps run
//! on; a platform an app uses stays; anyone else may only list them. Every refusal is a
//! problem detail that writes nothing. The server runs in the test's process (`spawn_app`).

use bosun_tests::{spawn_app, Answer, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["name"].as_str().unwrap_or("?"))
        .collect()
}

async fn add(admin: &Api, name: &str) -> Value {
    admin
        .post("/v1/platforms", json!({"name": name}))
        .await
        .expect(StatusCode::CREATED)
        .body
}

/// A server whose admin added the platform `python`.
async fn with_python() -> TestApp {
    let app = spawn_app("").await;
    add(&app.api, "python").await;
    app
}

/// The admin sets `platform`'s `disabled`: the answer (200).
async fn set_disabled(admin: &Api, platform: &str, disabled: bool) -> Answer {
    admin
        .call(
            Method::PATCH,
            &format!("/v1/platforms/{platform}"),
            Some(json!({"disabled": disabled})),
        )
        .await
        .expect(StatusCode::OK)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_lists_disables_and_deletes_a_platform() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let added = admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    assert!(added.header("bosun-position").parse::<u64>().unwrap() > 0);
    assert_eq!(added.body, json!({"name": "python", "disabled": false}));
    add(admin, "go").await;

    let list = admin.get("/v1/platforms").await.expect(StatusCode::OK);
    assert_eq!(names(&list.body), ["go", "python"]);
    assert_eq!(list.total(), 2);

    let disabled = set_disabled(admin, "python", true).await;
    assert!(disabled.header("bosun-position").parse::<u64>().unwrap() > 0);
    assert_eq!(disabled.body, json!({"name": "python", "disabled": true}));
    let list = admin.get("/v1/platforms").await.body;
    assert_eq!(list[1], json!({"name": "python", "disabled": true}));

    let deleted = admin
        .call(Method::DELETE, "/v1/platforms/python", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(deleted.header("bosun-position").parse::<u64>().unwrap() > 0);
    let list = admin.get("/v1/platforms").await;
    assert_eq!(names(&list.body), ["go"]);
    assert_eq!(list.total(), 1);
    // A deleted platform's name may be added again.
    add(admin, "python").await;

    let types: Vec<String> = admin
        .all_events()
        .await
        .iter()
        .filter(|e| e["stream_id"] == "platform-python")
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "PlatformAdded",
            "PlatformUpdated",
            "PlatformRemoved",
            "PlatformAdded"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_pages_with_limit_and_offset() {
    let app = spawn_app("").await;
    for name in ["a", "b", "c", "d"] {
        add(&app.api, name).await;
    }
    let page = app
        .api
        .get("/v1/platforms?limit=2&offset=1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&page.body), ["b", "c"]);
    assert_eq!(page.total(), 4);
    app.api
        .refused(Method::GET, "/v1/platforms?limit=0", None)
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_user_lists_the_platforms_but_only_an_admin_changes_them() {
    let app = with_python().await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    assert_eq!(
        names(&ann.get("/v1/platforms").await.expect(StatusCode::OK).body),
        ["python"]
    );
    let log = admin.log_head().await;
    for (method, path, body) in [
        (Method::POST, "/v1/platforms", Some(json!({"name": "ruby"}))),
        (
            Method::PATCH,
            "/v1/platforms/python",
            Some(json!({"disabled": true})),
        ),
        (Method::DELETE, "/v1/platforms/python", None),
    ] {
        log.refused(&ann, method, path, body)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    log.refused(&admin.anonymous(), Method::GET, "/v1/platforms", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_in_use_is_not_deleted() {
    let app = with_python().await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    ann.post("/v1/teams", json!({"name": "blue"}))
        .await
        .expect(StatusCode::CREATED);
    ann.post("/v1/apps", json!({"name": "shop", "platform": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let log = admin.log_head().await;
    log.refused(admin, Method::DELETE, "/v1/platforms/python", None)
        .await
        .expect(StatusCode::CONFLICT, "platform_in_use");
    // Disabling it keeps its apps and refuses new ones.
    set_disabled(admin, "python", true).await;
    ann.get("/v1/apps/shop").await.expect(StatusCode::OK);
    // Once its last app is gone, it may go.
    ann.call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .call(Method::DELETE, "/v1/platforms/python", None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_taken_platform_is_refused_and_changes_nothing() {
    let app = with_python().await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for body in [
        json!({"name": "Python"}),
        json!({"name": "3python"}),
        json!({"name": ""}),
        json!({"name": "p".repeat(41)}),
    ] {
        let problem = log
            .refused(admin, Method::POST, "/v1/platforms", Some(body.clone()))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), ["name"], "{body}");
    }
    for body in [
        json!({}),
        json!({"name": "ruby", "disabled": "no"}),
        json!({"name": "ruby", "colour": 1}),
    ] {
        log.refused(admin, Method::POST, "/v1/platforms", Some(body))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
    log.refused(
        admin,
        Method::POST,
        "/v1/platforms",
        Some(json!({"name": "python"})),
    )
    .await
    .expect(StatusCode::CONFLICT, "platform_exists");
    for body in [json!({}), json!({"disabled": "yes"}), json!({"name": "go"})] {
        log.refused(admin, Method::PATCH, "/v1/platforms/python", Some(body))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
    // Disabling a disabled platform writes nothing more.
    set_disabled(admin, "python", false).await;
    log.assert_unchanged("enabling an enabled platform").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_platform_is_not_found() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for (method, path, body) in [
        (
            Method::PATCH,
            "/v1/platforms/cobol",
            Some(json!({"disabled": true})),
        ),
        (Method::DELETE, "/v1/platforms/cobol", None),
        (Method::DELETE, "/v1/platforms/Not_A_Name", None),
    ] {
        log.refused(admin, method, path, body)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}
