//! Swapping two apps over real HTTP: their cnames (and, unless `cname_only`, their units'
//! addresses) are exchanged in one decision, the same `AppsSwapped` seen on both apps' streams,
//! written in one atomic append. Apps on different platforms are not swapped. The server runs in
//! the test's process (`spawn_app`).

use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, StreamId};
use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A server with the platforms `python` and `ruby`, and ann (team `blue`) with the apps
/// `blue-a` (cname `a.example.com`) and `blue-b` (cname `b.example.com`), both on python.
async fn world() -> (TestApp, Api) {
    let app = spawn_app("").await;
    for platform in ["python", "ruby"] {
        app.api
            .post("/v1/platforms", json!({"name": platform}))
            .await
            .expect(StatusCode::CREATED);
    }
    let ann = app.api.new_user("ann", "ann-secret-1").await;
    ann.post("/v1/teams", json!({"name": "blue"}))
        .await
        .expect(StatusCode::CREATED);
    for (name, cname) in [("blue-a", "a.example.com"), ("blue-b", "b.example.com")] {
        ann.post("/v1/apps", json!({"name": name, "platform": "python"}))
            .await
            .expect(StatusCode::CREATED);
        ann.post(&format!("/v1/apps/{name}/cnames"), json!({"cname": cname}))
            .await
            .expect(StatusCode::OK);
    }
    (app, ann)
}

async fn cnames(client: &Api, app: &str) -> Value {
    client
        .get(&format!("/v1/apps/{app}"))
        .await
        .expect(StatusCode::OK)
        .body["cnames"]
        .clone()
}

/// The last event of stream `stream`.
async fn last_event(admin: &Api, stream: &str) -> Value {
    let events = admin
        .get(&format!("/v1/streams/{stream}"))
        .await
        .expect(StatusCode::OK)
        .body;
    events.as_array().unwrap().last().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_exchanges_the_cnames_of_both_apps_in_one_event() {
    let (app, ann) = world().await;
    let admin = &app.api;
    let before = admin.head().await;
    let swapped = ann
        .post("/v1/swap", json!({"app1": "blue-a", "app2": "blue-b"}))
        .await
        .expect(StatusCode::OK);
    let position: u64 = swapped.header("bosun-position").parse().unwrap();
    assert!(position > before);
    assert_eq!(cnames(&ann, "blue-a").await, json!(["b.example.com"]));
    assert_eq!(cnames(&ann, "blue-b").await, json!(["a.example.com"]));

    // One decision: the same event on both streams, under one request, in one append.
    let on_a = last_event(admin, "app-blue-a").await;
    let on_b = last_event(admin, "app-blue-b").await;
    assert_eq!(on_a["event_type"], "AppsSwapped");
    assert_eq!(on_a["event_type"], on_b["event_type"]);
    assert_eq!(on_a["data"], on_b["data"]);
    assert_eq!(on_a["data"]["app1"], "blue-a");
    assert_eq!(on_a["data"]["app2"], "blue-b");
    assert_eq!(on_a["data"]["cname_only"], false);
    assert_eq!(on_a["data"]["cnames1"], json!(["b.example.com"]));
    assert_eq!(on_a["data"]["cnames2"], json!(["a.example.com"]));
    assert_eq!(on_a["metadata"]["request_id"], swapped.header("request-id"));
    assert_eq!(
        on_a["metadata"]["request_id"],
        on_b["metadata"]["request_id"]
    );
    // Everything the swap wrote is one run of positions, all of that one request.
    let written = admin
        .get(&format!("/v1/events?from={}", before + 1))
        .await
        .body;
    let written = written.as_array().unwrap();
    let positions: Vec<u64> = written
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, ((before + 1)..=position).collect::<Vec<_>>());
    assert!(written
        .iter()
        .all(|e| e["metadata"]["request_id"] == on_a["metadata"]["request_id"]));
    assert_eq!(
        written
            .iter()
            .filter(|e| e["event_type"] == "AppsSwapped")
            .count(),
        2
    );
    // Another app may now not take a cname either holds.
    ann.post("/v1/apps", json!({"name": "blue-c", "platform": "python"}))
        .await
        .expect(StatusCode::CREATED);
    ann.refused(
        Method::POST,
        "/v1/apps/blue-c/cnames",
        Some(json!({"cname": "a.example.com"})),
    )
    .await
    .expect(StatusCode::CONFLICT, "cname_taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_only_swap_keeps_the_units_where_they_are() {
    let (app, ann) = world().await;
    ann.post(
        "/v1/swap",
        json!({"app1": "blue-a", "app2": "blue-b", "cname_only": true}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(cnames(&ann, "blue-a").await, json!(["b.example.com"]));
    let event = last_event(&app.api, "app-blue-a").await;
    assert_eq!(event["data"]["cname_only"], true);
    assert_eq!(event["data"]["units_of1"], "blue-a");
    assert_eq!(event["data"]["units_of2"], "blue-b");

    // Without cname_only, the units' addresses are exchanged too.
    ann.post("/v1/swap", json!({"app1": "blue-a", "app2": "blue-b"}))
        .await
        .expect(StatusCode::OK);
    let event = last_event(&app.api, "app-blue-b").await;
    assert_eq!(event["data"]["units_of1"], "blue-b");
    assert_eq!(event["data"]["units_of2"], "blue-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_on_different_platforms_are_not_swapped() {
    let (app, ann) = world().await;
    ann.post("/v1/apps", json!({"name": "blue-r", "platform": "ruby"}))
        .await
        .expect(StatusCode::CREATED);
    let log = app.api.log_head().await;
    log.refused(
        &ann,
        Method::POST,
        "/v1/swap",
        Some(json!({"app1": "blue-a", "app2": "blue-r"})),
    )
    .await
    .expect(StatusCode::CONFLICT, "platform_mismatch");
    assert_eq!(cnames(&ann, "blue-a").await, json!(["a.example.com"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_swap_is_refused_and_changes_nothing() {
    let (app, ann) = world().await;
    let log = app.api.log_head().await;
    for (body, status, code) in [
        (
            json!({"app1": "blue-a", "app2": "nothing"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"app1": "nothing", "app2": "blue-a"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"app1": "blue-a", "app2": "blue-a"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"app1": "blue-a"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"app1": "blue-a", "app2": "blue-b", "cname_only": "yes"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"app1": "blue-a", "app2": "blue-b", "force": true}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ] {
        log.refused(&ann, Method::POST, "/v1/swap", Some(body.clone()))
            .await
            .expect(status, code);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_needs_a_right_on_both_apps() {
    let (app, ann) = world().await;
    let bob = app.api.new_user("bob", "bob-secret-1").await;
    bob.post("/v1/teams", json!({"name": "red"}))
        .await
        .expect(StatusCode::CREATED);
    bob.post("/v1/apps", json!({"name": "red-a", "platform": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let log = app.api.log_head().await;
    for client in [&ann, &bob] {
        log.refused(
            client,
            Method::POST,
            "/v1/swap",
            Some(json!({"app1": "blue-a", "app2": "red-a"})),
        )
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    // An admin may.
    app.api
        .post("/v1/swap", json!({"app1": "blue-a", "app2": "red-a"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(cnames(&bob, "red-a").await, json!(["a.example.com"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_shows_the_swap_on_both_apps() {
    let (app, ann) = world().await;
    ann.post("/v1/swap", json!({"app1": "blue-a", "app2": "blue-b"}))
        .await
        .expect(StatusCode::OK);
    let audit = app.api.get("/v1/audit?actor=ann&limit=1000").await.body;
    let mut targets: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "AppsSwapped")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    targets.sort();
    assert_eq!(targets, ["app-blue-a", "app-blue-b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_learns_nothing_of_app2_through_a_swap() {
    let (app, _ann) = world().await;
    let bob = app.api.new_user("bob", "bob-secret-1").await;
    bob.post("/v1/teams", json!({"name": "red"}))
        .await
        .expect(StatusCode::CREATED);
    bob.post("/v1/apps", json!({"name": "red-a", "platform": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let log = app.api.log_head().await;
    // bob may not change blue-a: the same 403 whether app2 exists or not.
    for app2 in ["blue-b", "nothing", "red-a"] {
        log.refused(
            &bob,
            Method::POST,
            "/v1/swap",
            Some(json!({"app1": "blue-a", "app2": app2})),
        )
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    // Of his own app1, an unknown app2 is a 404; ann's blue-a a 403.
    log.refused(
        &bob,
        Method::POST,
        "/v1/swap",
        Some(json!({"app1": "red-a", "app2": "nothing"})),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not_found");
    log.refused(
        &bob,
        Method::POST,
        "/v1/swap",
        Some(json!({"app1": "red-a", "app2": "blue-a"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
}

/// Appends `event_type` with `data` to unit `unit`'s stream, as a worker would.
async fn unit_event(app: &TestApp, unit: &str, event_type: &str, data: Value) {
    app.store()
        .await
        .append(
            &StreamId::parse(format!("unit-{unit}")).unwrap(),
            ExpectedVersion::Any,
            vec![NewEvent::new(event_type, data)],
        )
        .await
        .expect("append the unit's event");
}

/// `app`'s units once there are `count` of them.
async fn wait_units(client: &Api, app: &str, count: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let units = client
            .get(&format!("/v1/apps/{app}"))
            .await
            .expect(StatusCode::OK)
            .body["units"]
            .clone();
        if units.as_array().is_some_and(|u| u.len() == count) {
            return units;
        }
        assert!(Instant::now() < deadline, "{app}'s units: {units}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_in_error_does_not_hold_up_a_swap_and_a_restarting_one_does() {
    let (app, ann) = world().await;
    // blue-a's unit failed to start at generation 0, and waits to be tried again (`error`):
    // its next attempt starts it at its app's generation, whatever it is then.
    unit_event(
        &app,
        "blue-a.production.web.0",
        "UnitStartFailed",
        json!({
            "app": "blue-a", "env": "production", "process": "web", "index": 0,
            "node": "node-1", "generation": 0, "diagnostics": "no such program",
            "restarts": 3, "failures": 5, "at": "2024-01-01T00:00:00Z",
        }),
    )
    .await;
    let units = wait_units(&ann, "blue-a", 1).await;
    assert_eq!(units[0]["state"], "error", "{units}");
    ann.post("/v1/apps/blue-a/restart", json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
    // A crash-looping unit does not block swaps.
    ann.post("/v1/swap", json!({"app1": "blue-a", "app2": "blue-b"}))
        .await
        .expect(StatusCode::OK);

    // A unit running an older generation than its app's is a restart running: 409.
    unit_event(
        &app,
        "blue-b.production.web.0",
        "UnitStarted",
        json!({
            "app": "blue-b", "env": "production", "process": "web", "index": 0,
            "node": "node-1", "pid": 4242, "port": 20001, "address": "127.0.0.1:20001",
            "generation": 0, "at": "2024-01-01T00:00:00Z",
        }),
    )
    .await;
    let units = wait_units(&ann, "blue-b", 1).await;
    assert_eq!(units[0]["state"], "starting", "{units}");
    let log = app.api.log_head().await;
    log.refused(
        &ann,
        Method::POST,
        "/v1/swap",
        Some(json!({"app1": "blue-a", "app2": "blue-b"})),
    )
    .await
    .expect(StatusCode::CONFLICT, "restart_running");
}
