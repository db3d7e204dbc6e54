//! App quotas over real HTTP: how many apps a user may own, set by an admin per user or for
//! everyone in the configuration (`quota.apps_per_user`), counted from the log; the app past it
//! is refused (403 `quota_exceeded`) and writes nothing. The server runs in the test's process
//! (`spawn_app`).

use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A server configured with `yaml`, the platform `python`, and ann, member of `blue`.
async fn world(yaml: &str) -> (TestApp, Api) {
    let app = spawn_app(yaml).await;
    app.api
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let ann = app.api.new_user("ann", "ann-secret-1").await;
    ann.post("/v1/teams", json!({"name": "blue"}))
        .await
        .expect(StatusCode::CREATED);
    (app, ann)
}

fn app_named(name: &str) -> serde_json::Value {
    json!({"name": name, "platform": "python"})
}

/// The admin sets ann's own limit: the answer.
async fn set_anns_quota(admin: &Api, limit: i64) -> bosun_tests::Answer {
    admin
        .call(
            Method::PUT,
            "/v1/users/ann/quota",
            Some(json!({"limit": limit})),
        )
        .await
        .expect(StatusCode::OK)
}

/// `client` creates the app `name` on `python`.
async fn create(client: &Api, name: &str) {
    client
        .post("/v1/apps", app_named(name))
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_their_quota_cannot_create_an_app() {
    let (app, ann) = world("").await;
    let admin = &app.api;
    let set = set_anns_quota(admin, 1).await;
    assert!(set.header("bosun-position").parse::<u64>().unwrap() > 0);
    assert_eq!(set.body, json!({"limit": 1, "in_use": 0}));
    create(&ann, "shop").await;
    let log = admin.log_head().await;
    log.refused(&ann, Method::POST, "/v1/apps", Some(app_named("cart")))
        .await
        .expect(StatusCode::FORBIDDEN, "quota_exceeded");
    assert_eq!(
        ann.get("/v1/users/ann/quota")
            .await
            .expect(StatusCode::OK)
            .body,
        json!({"limit": 1, "in_use": 1})
    );
    // Raising it lets the next one in.
    set_anns_quota(admin, 2).await;
    create(&ann, "cart").await;
    assert_eq!(
        admin.get("/v1/users/ann/quota").await.body,
        json!({"limit": 2, "in_use": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_app_gives_its_place_back() {
    let (app, ann) = world("").await;
    set_anns_quota(&app.api, 1).await;
    create(&ann, "shop").await;
    ann.call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        ann.get("/v1/users/ann/quota").await.body,
        json!({"limit": 1, "in_use": 0})
    );
    create(&ann, "cart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_a_user_has_no_limit() {
    let (_app, ann) = world("").await;
    for name in ["a1", "a2", "a3"] {
        create(&ann, name).await;
    }
    assert_eq!(
        ann.get("/v1/users/ann/quota").await.body,
        json!({"limit": -1, "in_use": 3})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_limit_holds_for_every_user_without_one_of_their_own() {
    let (app, ann) = world("quota:\n  apps_per_user: 1\n").await;
    assert_eq!(
        ann.get("/v1/users/ann/quota").await.body,
        json!({"limit": 1, "in_use": 0})
    );
    create(&ann, "shop").await;
    let log = app.api.log_head().await;
    log.refused(&ann, Method::POST, "/v1/apps", Some(app_named("cart")))
        .await
        .expect(StatusCode::FORBIDDEN, "quota_exceeded");
    // An admin lifts it for ann alone.
    set_anns_quota(&app.api, -1).await;
    create(&ann, "cart").await;
    assert_eq!(
        ann.get("/v1/users/ann/quota").await.body,
        json!({"limit": -1, "in_use": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_sets_a_quota_and_a_user_reads_only_their_own() {
    let (app, ann) = world("").await;
    let admin = &app.api;
    admin.new_user("bob", "bob-secret-1").await;
    let log = admin.log_head().await;
    for username in ["ann", "bob"] {
        log.refused(
            &ann,
            Method::PUT,
            &format!("/v1/users/{username}/quota"),
            Some(json!({"limit": 100})),
        )
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    log.refused(&ann, Method::GET, "/v1/users/bob/quota", None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    admin
        .get("/v1/users/bob/quota")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_quota_is_refused_and_changes_nothing() {
    let (app, _ann) = world("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for body in [
        json!({"limit": -2}),
        json!({"limit": "ten"}),
        json!({"limit": 1.5}),
        json!({}),
        json!({"limit": 1, "in_use": 0}),
    ] {
        log.refused(
            admin,
            Method::PUT,
            "/v1/users/ann/quota",
            Some(body.clone()),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
    for path in ["/v1/users/nobody/quota", "/v1/users/no%20body/quota"] {
        log.refused(admin, Method::PUT, path, Some(json!({"limit": 1})))
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
        log.refused(admin, Method::GET, path, None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_set_is_in_the_log_and_the_audit() {
    let (app, _ann) = world("").await;
    let admin = &app.api;
    set_anns_quota(admin, 3).await;
    let audit = admin.get("/v1/audit?actor=admin&limit=1000").await.body;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "QuotaLimitSet" && e["target"] == "quota-ann"),
        "{audit}"
    );
}
