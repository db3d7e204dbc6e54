//! Apps over real HTTP, as a new user of the PaaS would use them: a team member creates an app
//! on a platform an admin added, lists and changes it, grants and revokes teams, adds cnames,
//! sets public and private environment variables (the private ones never shown, nor written
//! anywhere in clear), restarts it and removes it. Every refusal is a problem detail that writes
//! nothing; an outsider may change nothing; every write is in the log, the audit and the live
//! feed. Platforms, quotas and swaps have files of their own. The server runs in the test's
//! process (`spawn_app`).

use bosun_tests::{spawn_app, Api, TestApp};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A value no answer, event or table may show in clear.
const SECRET: &str = "s3cr3t-db-password-7f1c";

/// A server with the platform `python` (added by its admin) and the user ann, member of the
/// team `blue` only.
async fn world() -> (TestApp, Api) {
    world_with("").await
}

/// [`world`] over a server configured with `yaml`.
async fn world_with(yaml: &str) -> (TestApp, Api) {
    let app = spawn_app(yaml).await;
    add_platform(&app.api, "python").await;
    let ann = member(&app.api, "ann", &["blue"]).await;
    (app, ann)
}

async fn add_platform(admin: &Api, name: &str) {
    admin
        .post("/v1/platforms", json!({"name": name}))
        .await
        .expect(StatusCode::CREATED);
}

/// A new user, member of the new teams `teams` (which they create).
async fn member(admin: &Api, username: &str, teams: &[&str]) -> Api {
    let user = admin
        .new_user(username, &format!("{username}-secret-1"))
        .await;
    for team in teams {
        user.post("/v1/teams", json!({"name": team}))
            .await
            .expect(StatusCode::CREATED);
    }
    user
}

/// `client` creates the app `name` on `python` with its default team owner: the answer.
async fn create(client: &Api, name: &str) -> Value {
    client
        .post("/v1/apps", json!({"name": name, "platform": "python"}))
        .await
        .expect(StatusCode::CREATED)
        .body
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["name"].as_str().unwrap_or("?"))
        .collect()
}

/// The app's variables as `/v1/apps/{app}/env` lists them: `(name, value, public)`.
fn env_of(list: &Value) -> Vec<(String, Value, bool)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["value"].clone(),
                v["public"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Sets `DB_HOST` (public) and `DB_PASSWORD` (private, [`SECRET`]) on `app`.
async fn set_db_env(client: &Api, app: &str) -> Value {
    client
        .call(
            Method::PUT,
            &format!("/v1/apps/{app}/env"),
            Some(json!({
                "envs": [
                    {"name": "DB_HOST", "value": "db.internal"},
                    {"name": "DB_PASSWORD", "value": SECRET, "public": false},
                ],
                "restart": false,
            })),
        )
        .await
        .expect(StatusCode::OK)
        .body
}

/// Every write answers `Bosun-Position`: the position of its last event.
#[track_caller]
fn position_of(answer: &bosun_tests::Answer) -> u64 {
    answer.header("bosun-position").parse().expect("a position")
}

/// The events table's text (data and metadata of every event), read past the API.
async fn stored_text(app: &TestApp) -> String {
    let store = app.store().await;
    let client = store.pool().get().await.expect("a connection");
    let rows = client
        .query(
            "SELECT data::text || ' ' || metadata::text FROM events ORDER BY position",
            &[],
        )
        .await
        .expect("read the events table");
    rows.iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- Creating an app ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_member_creates_an_app_owned_by_their_only_team() {
    let (app, ann) = world().await;
    let answer = ann
        .post(
            "/v1/apps",
            json!({"name": "shop", "platform": "python", "description": "the web shop"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert!(position_of(&answer) > 0);
    let shop = answer.body;
    assert_eq!(shop["name"], "shop");
    assert_eq!(shop["platform"], "python");
    assert_eq!(shop["team_owner"], "blue");
    assert_eq!(shop["teams"], json!(["blue"]));
    assert_eq!(shop["owner"], "ann");
    assert_eq!(shop["description"], "the web shop");
    assert_eq!(shop["cnames"], json!([]));
    assert_eq!(shop["units"], json!([]));
    assert_eq!(shop["instances"], json!([]));
    assert!(shop["created_at"].is_string(), "{shop}");
    // Its stream's version: 0 for its first event.
    assert!(shop["version"].as_u64().is_some(), "{shop}");

    let read = ann.get("/v1/apps/shop").await.expect(StatusCode::OK).body;
    for field in [
        "name",
        "platform",
        "team_owner",
        "teams",
        "owner",
        "description",
        "cnames",
        "units",
        "instances",
        "created_at",
        "version",
    ] {
        assert_eq!(read[field], shop[field], "{field}: {read}");
    }
    // The admin sees it too.
    app.api.get("/v1/apps/shop").await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creator_of_several_teams_names_the_team_owner() {
    let (app, _) = world().await;
    let bob = member(&app.api, "bob", &["red", "green"]).await;
    let log = app.api.log_head().await;
    let problem = log
        .refused(
            &bob,
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "shop", "platform": "python"})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(problem.fields(), ["team_owner"]);
    let shop = bob
        .post(
            "/v1/apps",
            json!({"name": "shop", "platform": "python", "team_owner": "green"}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(shop["team_owner"], "green");
    assert_eq!(shop["teams"], json!(["green"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creator_of_no_team_cannot_create_an_app_without_one() {
    let (app, _) = world().await;
    let loner = member(&app.api, "loner", &[]).await;
    let log = app.api.log_head().await;
    let problem = log
        .refused(
            &loner,
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "shop", "platform": "python"})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(problem.fields(), ["team_owner"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_member_of_the_team_owner_creates_an_app_for_it() {
    let (app, ann) = world().await;
    member(&app.api, "bob", &["red"]).await;
    let log = app.api.log_head().await;
    log.refused(
        &ann,
        Method::POST,
        "/v1/apps",
        Some(json!({"name": "shop", "platform": "python", "team_owner": "red"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    // An admin may create one for any team.
    let shop = app
        .api
        .post(
            "/v1/apps",
            json!({"name": "shop", "platform": "python", "team_owner": "red"}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(shop["team_owner"], "red");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_on_an_unknown_or_disabled_platform_is_refused() {
    let (app, ann) = world().await;
    add_platform(&app.api, "ruby").await;
    app.api
        .call(
            Method::PATCH,
            "/v1/platforms/ruby",
            Some(json!({"disabled": true})),
        )
        .await
        .expect(StatusCode::OK);
    let log = app.api.log_head().await;
    for platform in ["cobol", "ruby"] {
        let problem = log
            .refused(
                &ann,
                Method::POST,
                "/v1/apps",
                Some(json!({"name": "shop", "platform": platform})),
            )
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), ["platform"], "{platform}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_name_is_one_app_at_a_time() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    let bob = member(&app.api, "bob", &["red"]).await;
    let log = app.api.log_head().await;
    for client in [&ann, &bob] {
        log.refused(
            client,
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "shop", "platform": "python"})),
        )
        .await
        .expect(StatusCode::CONFLICT, "app_exists");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_app_is_refused_naming_the_field() {
    let (app, ann) = world().await;
    let log = app.api.log_head().await;
    for (body, field) in [
        (json!({"name": "Shop", "platform": "python"}), "name"),
        (json!({"name": "1shop", "platform": "python"}), "name"),
        (json!({"name": "sh op", "platform": "python"}), "name"),
        (json!({"name": "", "platform": "python"}), "name"),
        (
            json!({"name": "a".repeat(41), "platform": "python"}),
            "name",
        ),
        (json!({"name": "shop", "platform": "Py thon"}), "platform"),
        (
            json!({"name": "shop", "platform": "python", "description": "d".repeat(1025)}),
            "description",
        ),
    ] {
        let problem = log
            .refused(&ann, Method::POST, "/v1/apps", Some(body.clone()))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), [field], "{body}");
    }
    for body in [
        json!({"platform": "python"}),
        json!({"name": "shop", "platform": "python", "colour": "red"}),
        json!({"name": 3, "platform": "python"}),
    ] {
        log.refused(&ann, Method::POST, "/v1/apps", Some(body))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_no_app() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    let log = app.api.log_head().await;
    let anonymous = app.api.anonymous();
    log.refused(
        &anonymous,
        Method::POST,
        "/v1/apps",
        Some(json!({"name": "cart", "platform": "python"})),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    for path in ["/v1/apps", "/v1/apps/shop", "/v1/apps/shop/env"] {
        log.refused(&anonymous, Method::GET, path, None)
            .await
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

// ---- Reading apps ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_lists_the_apps_of_their_teams_and_an_admin_all() {
    let (app, ann) = world().await;
    let bob = member(&app.api, "bob", &["red"]).await;
    create(&ann, "shop").await;
    create(&ann, "cart").await;
    create(&bob, "blog").await;

    let mine = ann.get("/v1/apps").await.expect(StatusCode::OK);
    assert_eq!(names(&mine.body), ["cart", "shop"]);
    assert_eq!(mine.total(), 2);
    assert_eq!(names(&bob.get("/v1/apps").await.body), ["blog"]);
    let all = app.api.get("/v1/apps").await.expect(StatusCode::OK);
    assert_eq!(names(&all.body), ["blog", "cart", "shop"]);
    assert_eq!(all.total(), 3);
    let shop = &mine.body[1];
    assert_eq!(shop["teams"], json!(["blue"]));
    assert_eq!(shop["owner"], "ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_is_filtered_by_team_and_platform() {
    let (app, ann) = world().await;
    add_platform(&app.api, "ruby").await;
    let bob = member(&app.api, "bob", &["red"]).await;
    create(&ann, "shop").await;
    ann.post("/v1/apps", json!({"name": "cart", "platform": "ruby"}))
        .await
        .expect(StatusCode::CREATED);
    create(&bob, "blog").await;
    let admin = &app.api;
    for (query, expected) in [
        ("?team=blue", vec!["cart", "shop"]),
        ("?team=red", vec!["blog"]),
        ("?platform=python", vec!["blog", "shop"]),
        ("?platform=ruby", vec!["cart"]),
        ("?team=blue&platform=python", vec!["shop"]),
        ("?team=red&platform=ruby", vec![]),
        ("?team=nobody", vec![]),
    ] {
        let answer = admin
            .get(&format!("/v1/apps{query}"))
            .await
            .expect(StatusCode::OK);
        assert_eq!(names(&answer.body), expected, "{query}");
        assert_eq!(answer.total(), expected.len() as u64, "{query}");
    }
    // A filter narrows what the caller may see, never widens it.
    assert_eq!(
        names(&ann.get("/v1/apps?team=red").await.body),
        Vec::<&str>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_pages_with_limit_and_offset_and_gives_the_total() {
    let (_app, ann) = world().await;
    for name in ["a1", "a2", "a3", "a4", "a5"] {
        create(&ann, name).await;
    }
    let page = ann
        .get("/v1/apps?limit=2&offset=1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(names(&page.body), ["a2", "a3"]);
    assert_eq!(page.total(), 5);
    let last = ann.get("/v1/apps?limit=2&offset=4").await;
    assert_eq!(names(&last.body), ["a5"]);
    assert_eq!(last.total(), 5);
    for query in [
        "limit=0",
        "limit=1001",
        "offset=-1",
        "limit=x",
        "colour=red",
    ] {
        ann.refused(Method::GET, &format!("/v1/apps?{query}"), None)
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_impossible_app_is_not_found() {
    let (app, ann) = world().await;
    let log = app.api.log_head().await;
    for path in [
        "/v1/apps/nothing",
        "/v1/apps/Not_A_Name",
        "/v1/apps/nothing/env",
    ] {
        log.refused(&ann, Method::GET, path, None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
    for (method, path, body) in [
        (
            Method::PATCH,
            "/v1/apps/nothing",
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, "/v1/apps/nothing", None),
        (Method::PUT, "/v1/apps/nothing/teams/blue", None),
        (
            Method::POST,
            "/v1/apps/nothing/cnames",
            Some(json!({"cname": "shop.example.com"})),
        ),
        (
            Method::PUT,
            "/v1/apps/nothing/env",
            Some(json!({"envs": [{"name": "A", "value": "1"}]})),
        ),
        (Method::DELETE, "/v1/apps/nothing/env?name=A", None),
        (Method::POST, "/v1/apps/nothing/restart", Some(json!({}))),
    ] {
        log.refused(&app.api, method, path, body)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}

// ---- Changing an app ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_changes_the_description_platform_and_team_owner() {
    let (app, ann) = world().await;
    add_platform(&app.api, "ruby").await;
    ann.post("/v1/teams", json!({"name": "green"}))
        .await
        .expect(StatusCode::CREATED);
    ann.post(
        "/v1/apps",
        json!({"name": "shop", "platform": "python", "team_owner": "blue"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let answer = ann
        .call(
            Method::PATCH,
            "/v1/apps/shop",
            Some(json!({"description": "now in ruby", "platform": "ruby", "team_owner": "green"})),
        )
        .await
        .expect(StatusCode::OK);
    assert!(position_of(&answer) > 0);
    let shop = answer.body;
    assert_eq!(shop["description"], "now in ruby");
    assert_eq!(shop["platform"], "ruby");
    assert_eq!(shop["team_owner"], "green");
    // The new owner is granted; the old team keeps its access.
    let mut teams: Vec<&str> = shop["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    teams.sort();
    assert_eq!(teams, ["blue", "green"]);
    assert_eq!(ann.get("/v1/apps/shop").await.body["platform"], "ruby");

    // An empty patch changes nothing.
    let log = app.api.log_head().await;
    ann.call(Method::PATCH, "/v1/apps/shop", Some(json!({})))
        .await
        .expect(StatusCode::OK);
    log.assert_unchanged("an empty PATCH").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_patch_is_refused_and_changes_nothing() {
    let (app, ann) = world().await;
    add_platform(&app.api, "ruby").await;
    app.api
        .call(
            Method::PATCH,
            "/v1/platforms/ruby",
            Some(json!({"disabled": true})),
        )
        .await
        .expect(StatusCode::OK);
    member(&app.api, "bob", &["red"]).await;
    create(&ann, "shop").await;
    let log = app.api.log_head().await;
    for (body, status, code) in [
        (
            json!({"platform": "cobol"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"platform": "ruby"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"description": "d".repeat(1025)}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "other"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        // ann is not a member of red.
        (
            json!({"team_owner": "red"}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        log.refused(&ann, Method::PATCH, "/v1/apps/shop", Some(body.clone()))
            .await
            .expect(status, code);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_is_granted_and_revoked_but_never_the_last() {
    let (app, ann) = world().await;
    let bob = member(&app.api, "bob", &["red"]).await;
    create(&ann, "shop").await;
    assert_eq!(names(&bob.get("/v1/apps").await.body), Vec::<&str>::new());

    let granted = ann
        .call(Method::PUT, "/v1/apps/shop/teams/red", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(position_of(&granted) > 0);
    assert_eq!(
        ann.get("/v1/apps/shop").await.body["teams"],
        json!(["blue", "red"])
    );
    // red's members now see and change it.
    assert_eq!(names(&bob.get("/v1/apps").await.body), ["shop"]);
    bob.call(
        Method::PATCH,
        "/v1/apps/shop",
        Some(json!({"description": "by bob"})),
    )
    .await
    .expect(StatusCode::OK);

    let revoked = ann
        .call(Method::DELETE, "/v1/apps/shop/teams/red", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(position_of(&revoked) > position_of(&granted));
    assert_eq!(
        ann.get("/v1/apps/shop").await.body["teams"],
        json!(["blue"])
    );
    assert_eq!(names(&bob.get("/v1/apps").await.body), Vec::<&str>::new());

    let log = app.api.log_head().await;
    log.refused(&ann, Method::DELETE, "/v1/apps/shop/teams/blue", None)
        .await
        .expect(StatusCode::CONFLICT, "last_team");
    log.refused(&ann, Method::PUT, "/v1/apps/shop/teams/nobody", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_is_added_and_removed_and_belongs_to_one_app() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    create(&ann, "cart").await;
    let added = ann
        .post("/v1/apps/shop/cnames", json!({"cname": "Shop.Example.com"}))
        .await
        .expect(StatusCode::OK);
    assert!(position_of(&added) > 0);
    assert_eq!(added.body["name"], "shop");
    assert_eq!(added.body["cnames"], json!(["shop.example.com"]));
    assert_eq!(
        ann.get("/v1/apps/shop").await.body["cnames"],
        json!(["shop.example.com"])
    );

    let log = app.api.log_head().await;
    log.refused(
        &ann,
        Method::POST,
        "/v1/apps/cart/cnames",
        Some(json!({"cname": "shop.example.com"})),
    )
    .await
    .expect(StatusCode::CONFLICT, "cname_taken");
    for cname in ["not a host", "", "-shop.example.com", "10.0.0.1"] {
        let problem = log
            .refused(
                &ann,
                Method::POST,
                "/v1/apps/cart/cnames",
                Some(json!({"cname": cname})),
            )
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), ["cname"], "{cname:?}");
    }

    let removed = ann
        .call(
            Method::DELETE,
            "/v1/apps/shop/cnames",
            Some(json!({"cname": "shop.example.com"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(removed.body["cnames"], json!([]));
    // Free again: another app takes it.
    let taken = ann
        .post("/v1/apps/cart/cnames", json!({"cname": "shop.example.com"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(taken.body["cnames"], json!(["shop.example.com"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_app_is_gone_and_its_name_free() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    ann.post("/v1/apps/shop/cnames", json!({"cname": "shop.example.com"}))
        .await
        .expect(StatusCode::OK);
    let removed = ann
        .call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(position_of(&removed) > 0);
    ann.refused(Method::GET, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(names(&ann.get("/v1/apps").await.body), Vec::<&str>::new());
    let log = app.api.log_head().await;
    log.refused(&ann, Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    // Its name and its cnames are free again.
    let again = create(&ann, "shop").await;
    assert_eq!(again["cnames"], json!([]));
    create(&ann, "cart").await;
    ann.post("/v1/apps/cart/cnames", json!({"cname": "shop.example.com"}))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_is_accepted_with_the_apps_units() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    let restart = ann
        .post("/v1/apps/shop/restart", json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
    assert!(position_of(&restart) > 0);
    assert_eq!(restart.body["units"], json!([]));
    // The body may be left out, or name a process.
    ann.call(Method::POST, "/v1/apps/shop/restart", None)
        .await
        .expect(StatusCode::ACCEPTED);
    let restarts = app.api.get("/v1/events?type=AppRestartRequested").await;
    assert_eq!(restarts.body.as_array().unwrap().len(), 2);
    let log = app.api.log_head().await;
    log.refused(
        &ann,
        Method::POST,
        "/v1/apps/shop/restart",
        Some(json!({"process": 3})),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "invalid_input");
    // A process the app does not have (this catalog gives it none): 400 naming `process`.
    let unknown = log
        .refused(
            &ann,
            Method::POST,
            "/v1/apps/shop/restart",
            Some(json!({"process": "web"})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(unknown.fields(), ["process"], "{unknown}");
}

/// Shop's catalog entry with two processes, `web` and `worker`, one unit each.
const TWO_PROCESSES: &str = r#"
runner:
  kill_grace_seconds: 2
  unit_ports: "22600-22699"
catalog:
  shop:
    production:
      processes:
        web:
          command: ["sh", "-c", "exec sleep 600"]
          units: 1
        worker:
          command: ["sh", "-c", "exec sleep 600"]
          units: 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_naming_a_process_restarts_every_process_of_the_app() {
    let (app, ann) = world_with(TWO_PROCESSES).await;
    create(&ann, "shop").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let units = ann.get("/v1/apps/shop").await.expect(StatusCode::OK).body["units"].clone();
        if units.as_array().is_some_and(|u| u.len() == 2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shop's units never came: {units}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The app has one restart generation: naming `web` restarts `worker` too, and the answer
    // says so.
    let restart = ann
        .post("/v1/apps/shop/restart", json!({"process": "web"}))
        .await
        .expect(StatusCode::ACCEPTED);
    let mut processes: Vec<&str> = restart.body["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["process"].as_str().unwrap())
        .collect();
    processes.sort();
    assert_eq!(processes, ["web", "worker"], "{}", restart.body);
    let log = app.api.log_head().await;
    let unknown = log
        .refused(
            &ann,
            Method::POST,
            "/v1/apps/shop/restart",
            Some(json!({"process": "cron"})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(unknown.fields(), ["process"], "{unknown}");
    assert!(unknown.detail().contains("web, worker"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_that_still_has_apps_is_not_removed() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    // Apps are authorized by team name: a team made later under the same name would inherit
    // shop. So blue stays while shop has it.
    let log = app.api.log_head().await;
    let problem = log
        .refused(&ann, Method::DELETE, "/v1/teams/blue", None)
        .await
        .expect(StatusCode::CONFLICT, "team_has_apps");
    assert!(problem.detail().contains("shop"), "{problem}");
    ann.get("/v1/teams/blue").await.expect(StatusCode::OK);
    // A granted team counts as much as the team owner.
    ann.post("/v1/teams", json!({"name": "green"}))
        .await
        .expect(StatusCode::CREATED);
    ann.call(Method::PUT, "/v1/apps/shop/teams/green", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let log = app.api.log_head().await;
    log.refused(&ann, Method::DELETE, "/v1/teams/green", None)
        .await
        .expect(StatusCode::CONFLICT, "team_has_apps");
    // Revoked from the app, or the app removed: the team goes.
    ann.call(Method::DELETE, "/v1/apps/shop/teams/green", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    ann.call(Method::DELETE, "/v1/teams/green", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    ann.call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    ann.call(Method::DELETE, "/v1/teams/blue", None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

// ---- The environment ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_variable_is_shown_as_null() {
    let (_app, ann) = world().await;
    create(&ann, "shop").await;
    let answer = ann
        .call(
            Method::PUT,
            "/v1/apps/shop/env",
            Some(json!({
                "envs": [
                    {"name": "DB_HOST", "value": "db.internal"},
                    {"name": "DB_PASSWORD", "value": SECRET, "public": false},
                ],
                "restart": false,
            })),
        )
        .await
        .expect(StatusCode::OK);
    assert!(position_of(&answer) > 0);
    let expected = vec![
        ("DB_HOST".to_string(), json!("db.internal"), true),
        ("DB_PASSWORD".to_string(), Value::Null, false),
    ];
    assert_eq!(env_of(&answer.body), expected);
    let read = ann
        .get("/v1/apps/shop/env")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(env_of(&read), expected);

    // A public value is replaced; a private one made public shows.
    let changed = set(&ann, json!([{"name": "DB_HOST", "value": "db2.internal"}])).await;
    assert_eq!(changed[0]["value"], "db2.internal");
    let public = set(
        &ann,
        json!([{"name": "DB_PASSWORD", "value": "not-a-secret", "public": true}]),
    )
    .await;
    assert_eq!(public[1]["value"], "not-a-secret");
    assert_eq!(public[1]["public"], true);
}

/// Sets `envs` on shop (no restart): the list answered.
async fn set(client: &Api, envs: Value) -> Value {
    client
        .call(
            Method::PUT,
            "/v1/apps/shop/env",
            Some(json!({"envs": envs, "restart": false})),
        )
        .await
        .expect(StatusCode::OK)
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_are_unset_by_repeated_name_keys() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    set(
        &ann,
        json!([
            {"name": "A", "value": "1"},
            {"name": "B", "value": "2", "public": false},
            {"name": "C", "value": "3"},
        ]),
    )
    .await;
    let answer = ann
        .call(Method::DELETE, "/v1/apps/shop/env?name=A&name=B", None)
        .await
        .expect(StatusCode::OK);
    assert!(position_of(&answer) > 0);
    assert_eq!(
        env_of(&answer.body),
        vec![("C".to_string(), json!("3"), true)]
    );
    assert_eq!(names(&ann.get("/v1/apps/shop/env").await.body), ["C"]);
    let unset = app.api.get("/v1/events?type=AppEnvUnset").await.body;
    assert_eq!(unset[0]["data"]["names"], json!(["A", "B"]));

    // Unsetting what is not set changes nothing.
    let log = app.api.log_head().await;
    ann.call(Method::DELETE, "/v1/apps/shop/env?name=A", None)
        .await
        .expect(StatusCode::OK);
    log.assert_unchanged("unsetting an unset variable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_variable_is_refused_and_changes_nothing() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    let log = app.api.log_head().await;
    for body in [
        json!({"envs": []}),
        json!({"envs": [{"name": "1ABC", "value": "x"}]}),
        json!({"envs": [{"name": "A B", "value": "x"}]}),
        json!({"envs": [{"name": "", "value": "x"}]}),
        json!({"envs": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
        json!({"envs": [{"name": "A"}]}),
        json!({"envs": [{"name": "A", "value": 3}]}),
        json!({"envs": [{"name": "A", "value": "1", "secret": true}]}),
        json!({"envs": [{"name": "A", "value": "1"}], "restart": "yes"}),
        json!({"vars": [{"name": "A", "value": "1"}]}),
    ] {
        log.refused(&ann, Method::PUT, "/v1/apps/shop/env", Some(body.clone()))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
    for query in ["", "?name=", "?name=1ABC", "?names=A", "?name=A&colour=red"] {
        log.refused(
            &ann,
            Method::DELETE,
            &format!("/v1/apps/shop/env{query}"),
            None,
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_value_is_nowhere_in_clear() {
    let (app, ann) = world().await;
    let admin = &app.api;
    create(&ann, "shop").await;
    let mut answers = vec![set_db_env(&ann, "shop").await];
    // Changed again, private still.
    answers.push(
        ann.call(
            Method::PUT,
            "/v1/apps/shop/env",
            Some(json!({"envs": [{"name": "DB_PASSWORD", "value": format!("{SECRET}-2"), "public": false}]})),
        )
        .await
        .expect(StatusCode::OK)
        .body,
    );
    for client in [&ann, admin] {
        for path in ["/v1/apps/shop", "/v1/apps/shop/env", "/v1/apps"] {
            answers.push(client.get(path).await.expect(StatusCode::OK).body);
        }
    }
    answers.push(
        admin
            .get("/v1/streams/app-shop")
            .await
            .expect(StatusCode::OK)
            .body,
    );
    answers.push(serde_json::to_value(admin.all_events().await).unwrap());
    answers.push(admin.get("/v1/audit?limit=1000").await.body);
    let shown = serde_json::to_string(&answers).unwrap();
    assert!(!shown.contains(SECRET), "a private value is in an answer");
    // The log as stored holds it sealed.
    let stored = stored_text(&app).await;
    assert!(stored.contains("AppEnvSet") || stored.contains("DB_PASSWORD"));
    assert!(
        !stored.contains(SECRET),
        "a private value is in the events table in clear"
    );
    // The stream read shows that a private value was set, not what it is.
    let stream = admin.get("/v1/streams/app-shop").await.body;
    let set = stream
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "AppEnvSet")
        .expect("an AppEnvSet on the app's stream");
    assert!(set["data"].to_string().contains("DB_PASSWORD"), "{set}");
}

// ---- Who may change an app ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_may_change_nothing_of_an_app() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    set_db_env(&ann, "shop").await;
    ann.post("/v1/apps/shop/cnames", json!({"cname": "shop.example.com"}))
        .await
        .expect(StatusCode::OK);
    // carl has an app of his own, on the same platform, in a team of his own.
    let carl = member(&app.api, "carl", &["red"]).await;
    create(&carl, "blog").await;
    assert_eq!(names(&carl.get("/v1/apps").await.body), ["blog"]);

    let log = app.api.log_head().await;
    for (method, path, body) in [
        (
            Method::PATCH,
            "/v1/apps/shop",
            Some(json!({"description": "mine now"})),
        ),
        (Method::DELETE, "/v1/apps/shop", None),
        (Method::PUT, "/v1/apps/shop/teams/red", None),
        (Method::DELETE, "/v1/apps/shop/teams/blue", None),
        (
            Method::POST,
            "/v1/apps/shop/cnames",
            Some(json!({"cname": "carl.example.com"})),
        ),
        (
            Method::DELETE,
            "/v1/apps/shop/cnames",
            Some(json!({"cname": "shop.example.com"})),
        ),
        (
            Method::PUT,
            "/v1/apps/shop/env",
            Some(json!({"envs": [{"name": "DB_HOST", "value": "evil.example.com"}]})),
        ),
        (Method::DELETE, "/v1/apps/shop/env?name=DB_HOST", None),
        (Method::POST, "/v1/apps/shop/restart", Some(json!({}))),
        (
            Method::POST,
            "/v1/swap",
            Some(json!({"app1": "blog", "app2": "shop"})),
        ),
        (
            Method::POST,
            "/v1/swap",
            Some(json!({"app1": "shop", "app2": "blog"})),
        ),
    ] {
        log.refused(&carl, method.clone(), path, body)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    // Nor read its environment.
    let problem = carl.refused(Method::GET, "/v1/apps/shop/env", None).await;
    assert!(
        [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&problem.status),
        "{problem}"
    );
    assert_eq!(ann.get("/v1/apps/shop").await.body["description"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_changes_no_app() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    let issued = ann
        .post(
            "/v1/tokens",
            json!({"description": "ro", "scopes": ["read"]}),
        )
        .await
        .expect(StatusCode::CREATED);
    let read_only = ann.with_token(issued.body["token"].as_str().unwrap());
    read_only.get("/v1/apps/shop").await.expect(StatusCode::OK);
    let log = app.api.log_head().await;
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "cart", "platform": "python"})),
        ),
        (
            Method::PATCH,
            "/v1/apps/shop",
            Some(json!({"description": "x"})),
        ),
        (
            Method::PUT,
            "/v1/apps/shop/env",
            Some(json!({"envs": [{"name": "A", "value": "1"}]})),
        ),
        (Method::POST, "/v1/apps/shop/restart", Some(json!({}))),
    ] {
        log.refused(&read_only, method, path, body)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
}

// ---- The log, the audit and the live feed ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_shows_each_action_on_an_app_with_its_target() {
    let (app, ann) = world().await;
    create(&ann, "shop").await;
    ann.call(
        Method::PATCH,
        "/v1/apps/shop",
        Some(json!({"description": "d"})),
    )
    .await
    .expect(StatusCode::OK);
    ann.post("/v1/apps/shop/cnames", json!({"cname": "shop.example.com"}))
        .await
        .expect(StatusCode::OK);
    set_db_env(&ann, "shop").await;
    ann.call(Method::DELETE, "/v1/apps/shop/env?name=DB_HOST", None)
        .await
        .expect(StatusCode::OK);
    ann.post("/v1/apps/shop/restart", json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
    ann.call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NO_CONTENT);

    let audit = app
        .api
        .get("/v1/audit?actor=ann&limit=1000")
        .await
        .expect(StatusCode::OK)
        .body;
    let entries = audit.as_array().unwrap();
    for action in [
        "AppCreated",
        "AppUpdated",
        "AppCnameAdded",
        "AppEnvSet",
        "AppEnvUnset",
        "AppRestartRequested",
        "AppRemoved",
    ] {
        let entry = entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {audit}"));
        assert_eq!(entry["target"], "app-shop", "{entry}");
        assert_eq!(entry["actor"], "ann");
        assert_eq!(entry["source"], "127.0.0.1");
        assert!(entry["request_id"].is_string(), "{entry}");
    }
    let platform = app.api.get("/v1/audit?actor=admin&limit=1000").await.body;
    assert!(
        platform
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "PlatformAdded" && e["target"] == "platform-python"),
        "{platform}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_event_carries_the_actor_request_and_source() {
    let (app, ann) = world().await;
    let created = ann
        .post("/v1/apps", json!({"name": "shop", "platform": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let request_id = created.header("request-id").to_string();
    let stream = app
        .api
        .get("/v1/streams/app-shop")
        .await
        .expect(StatusCode::OK)
        .body;
    let first = &stream[0];
    assert_eq!(first["event_type"], "AppCreated");
    assert_eq!(first["metadata"]["actor"], "ann");
    assert_eq!(first["metadata"]["request_id"], request_id.as_str());
    assert_eq!(first["metadata"]["source"], "127.0.0.1");
    assert_eq!(first["metadata"]["user_agent"], bosun_tests::USER_AGENT);
    // The app's creation and its owner's quota are one write: Bosun-Position is its last event.
    assert!(position_of(&created) >= first["position"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_carries_the_app_events() {
    let (app, ann) = world().await;
    let url = format!("ws://{}/v1/events/live?category=app", app.address);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.api.token).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("open the live feed");
    create(&ann, "shop").await;
    let last = position_of(
        &ann.call(
            Method::PUT,
            "/v1/apps/shop/env",
            Some(json!({"envs": [{"name": "DB_PASSWORD", "value": SECRET, "public": false}]})),
        )
        .await
        .expect(StatusCode::OK),
    );
    let mut got: Vec<Value> = Vec::new();
    while got.last().and_then(|e| e["position"].as_u64()).unwrap_or(0) < last {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("an event within 30 s")
            .expect("the feed goes on")
            .expect("no WebSocket error");
        if let Message::Text(text) = message {
            got.push(serde_json::from_str(&text).expect("an envelope"));
        }
    }
    let types: Vec<&str> = got
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["AppCreated", "AppEnvSet"]);
    assert!(got.iter().all(|e| e["stream_id"] == "app-shop"));
    assert!(!serde_json::to_string(&got).unwrap().contains(SECRET));
}
