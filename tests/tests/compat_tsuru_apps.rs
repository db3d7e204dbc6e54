//! tsuru's apps side under `/compat/tsuru`, spoken as its clients speak it: 0.3.9's JSON bodies
//! on bare paths and 1.x's forms (under `/1.x/…` or bare, as `tsuruclient` 0.4 sends them),
//! with `Authorization: bearer <token>`, `type <token>` or a bare token. Apps (created both
//! ways, listed, read, updated, restarted, removed), their environment (set, read and unset in
//! both versions' forms; a private value never shown), swaps (0.3.9's query, 1.x's form),
//! quotas (a user's by email, an app's), platforms and healers. Each write is checked natively
//! (`/v1`) and in the audit under the caller's name; each refusal is tsuru's plain text with the
//! right status and leaves the log as it was (no worker runs: `runner.workers: 0`). The server
//! runs in the test's process.

use bosun_tests::tsuru::{Body, Tsuru};
use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const CONFIG: &str = r#"
runner:
  workers: 0
catalog:
  shop:
    production:
      heal:
        command: ["true"]
healers:
  heal-shop: shop/production/heal
"#;

/// A value no answer may show in clear.
const SECRET: &str = "s3cr3t-tsuru-value-91d2";

/// A server with the platform `python`, and ann (`ann@example.org`), member of team `blue`:
/// the admin's client, ann's native client and ann's tsuru client.
async fn world() -> (TestApp, Api, Tsuru) {
    let app = spawn_app(CONFIG).await;
    app.api
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    app.api
        .post(
            "/v1/users",
            json!({"username": "ann", "password": "ann-secret-1", "email": "ann@example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let ann = app.api.login("ann", "ann-secret-1").await;
    ann.post("/v1/teams", json!({"name": "blue"}))
        .await
        .expect(StatusCode::CREATED);
    let tsuru = Tsuru::of(&ann);
    (app, ann, tsuru)
}

/// ann creates `name` natively.
async fn native_app(ann: &Api, name: &str) {
    ann.post("/v1/apps", json!({"name": name, "platform": "python"}))
        .await
        .expect(StatusCode::CREATED);
}

/// The actor and target of the audit's last `action` (it must be there).
async fn audited(admin: &Api, action: &str) -> (String, String) {
    let audit = admin
        .get("/v1/audit?limit=1000")
        .await
        .expect(StatusCode::OK)
        .body;
    let entry = audit
        .as_array()
        .expect("a list")
        .iter()
        .rev()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} in {audit}"));
    (
        entry["actor"].as_str().unwrap_or_default().to_string(),
        entry["target"].as_str().unwrap_or_default().to_string(),
    )
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap_or("?"))
        .collect()
}

// ---- The version prefix, the caller, the error shape ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_served_bare_and_under_a_version_prefix_once() {
    let (_app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    for path in ["/apps", "/1.0/apps", "/1.4/apps", "/1.12/apps/shop"] {
        let reply = tsuru.get(path).await.expect(StatusCode::OK);
        assert_eq!(reply.headers["supported-tsuru"], "0.8.10", "{path}");
        assert_eq!(reply.headers["supported-crane"], "0.5.1", "{path}");
        assert_eq!(reply.headers["supported-tsuru-admin"], "0.2.1", "{path}");
    }
    let listed = tsuru.get("/1.4/apps").await.json();
    assert_eq!(names(&listed), ["shop"]);
    // The query goes along.
    let filtered = tsuru.get("/1.0/apps?name=nothing").await;
    assert_eq!(filtered.status, StatusCode::NO_CONTENT);
    // Once: a second prefix is a path of its own, and a 404 naming the whole path.
    let text = tsuru
        .get("/1.0/1.0/apps")
        .await
        .refused(StatusCode::NOT_FOUND);
    assert!(text.contains("/compat/tsuru/1.0/1.0/apps"), "{text}");
    tsuru.get("/v1/apps").await.refused(StatusCode::NOT_FOUND);
    // A method the route has not, under a prefix too.
    tsuru
        .send(Method::PATCH, "/1.0/apps", Body::None)
        .await
        .refused(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_taken_as_bearer_any_type_or_bare_and_refused_in_plain_text() {
    let (_app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    for authorization in [
        format!("bearer {}", ann.token),
        format!("token {}", ann.token),
        ann.token.clone(),
    ] {
        tsuru
            .send_with(Method::GET, "/apps/shop", Some(authorization), Body::None)
            .await
            .expect(StatusCode::OK);
    }
    let text = tsuru
        .send_with(Method::GET, "/apps", None, Body::None)
        .await
        .refused(StatusCode::UNAUTHORIZED);
    assert_eq!(text, "You must provide the Authorization header\n");
    for bad in ["bearer nope", "a b c", "bearer "] {
        tsuru
            .send_with(Method::GET, "/apps", Some(bad.to_string()), Body::None)
            .await
            .refused(StatusCode::UNAUTHORIZED);
    }
}

// ---- Creating apps ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_create_is_answered_as_0_3_9_and_is_the_native_app() {
    let (app, ann, tsuru) = world().await;
    let reply = tsuru
        .send(
            Method::POST,
            "/apps",
            Body::Json(json!({"name": "shop", "platform": "python"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"status": "success", "repository_url": ""})
    );
    assert!(reply.headers.contains_key("bosun-position"));
    let native = ann.get("/v1/apps/shop").await.expect(StatusCode::OK).body;
    assert_eq!(
        (&native["platform"], &native["team_owner"], &native["owner"]),
        (&json!("python"), &json!("blue"), &json!("ann"))
    );
    assert_eq!(
        audited(&app.api, "AppCreated").await,
        ("ann".into(), "app-shop".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_create_is_answered_as_1_x_with_its_fields_in_any_case() {
    let (_app, ann, tsuru) = world().await;
    let reply = tsuru
        .send(
            Method::POST,
            "/1.0/apps",
            Body::Form(&[
                ("name", "shop"),
                ("platform", "python"),
                ("TeamOwner", "blue"),
                ("description", "the shop"),
                ("plan", ""),
                ("pool", ""),
            ]),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        reply.json(),
        json!({"status": "success", "repository_url": "", "ip": ""})
    );
    let native = ann.get("/v1/apps/shop").await.expect(StatusCode::OK).body;
    assert_eq!(native["description"], "the shop");
    assert_eq!(native["team_owner"], "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_create_is_plain_text_with_the_native_status_and_writes_nothing() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    let head = app.api.log_head().await;
    let cases: Vec<(Body, StatusCode)> = vec![
        // Taken.
        (
            Body::Json(json!({"name": "shop", "platform": "python"})),
            StatusCode::CONFLICT,
        ),
        // No such platform.
        (
            Body::Form(&[("name", "cart"), ("platform", "cobol")]),
            StatusCode::BAD_REQUEST,
        ),
        // Bosun has no plans.
        (
            Body::Form(&[("name", "cart"), ("platform", "python"), ("plan", "large")]),
            StatusCode::BAD_REQUEST,
        ),
        // A name no app may have.
        (
            Body::Form(&[("name", "Cart!"), ("platform", "python")]),
            StatusCode::BAD_REQUEST,
        ),
        // No name; not JSON.
        (
            Body::Form(&[("platform", "python")]),
            StatusCode::BAD_REQUEST,
        ),
        (Body::Json(json!(["shop"])), StatusCode::BAD_REQUEST),
        // Not a member of the team.
        (
            Body::Form(&[
                ("name", "cart"),
                ("platform", "python"),
                ("teamOwner", "red"),
            ]),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (body, status) in cases {
        tsuru
            .send(Method::POST, "/apps", body)
            .await
            .refused(status);
    }
    // Not JSON at all.
    tsuru
        .send(Method::POST, "/apps", Body::Text("{"))
        .await
        .refused(StatusCode::BAD_REQUEST);
    head.assert_unchanged("the refused creations").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_over_quota_is_refused_403() {
    let (app, _ann, tsuru) = world().await;
    app.api
        .call(
            Method::PUT,
            "/v1/users/ann/quota",
            Some(json!({"limit": 0})),
        )
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    tsuru
        .send(
            Method::POST,
            "/apps",
            Body::Form(&[("name", "shop"), ("platform", "python")]),
        )
        .await
        .refused(StatusCode::FORBIDDEN);
    head.assert_unchanged("the creation past the quota").await;
}

// ---- Reading apps ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_is_204_when_empty_and_then_both_versions_fields() {
    let (app, ann, tsuru) = world().await;
    let empty = tsuru.get("/apps").await.expect(StatusCode::NO_CONTENT);
    assert!(empty.text.is_empty());
    native_app(&ann, "shop").await;
    native_app(&ann, "cart").await;
    // Someone else's app is not listed.
    let bob = app.api.new_user("bob", "bob-secret-1").await;
    bob.post("/v1/teams", json!({"name": "red"}))
        .await
        .expect(StatusCode::CREATED);
    native_app(&bob, "blog").await;
    let list = tsuru.get("/apps").await.expect(StatusCode::OK).json();
    assert_eq!(names(&list), ["cart", "shop"]);
    let shop = &list[1];
    for (field, value) in [
        ("platform", json!("python")),
        ("teams", json!(["blue"])),
        ("teamowner", json!("blue")),
        ("owner", json!("ann")),
        ("units", json!([])),
        ("cname", json!("")),
        ("pool", json!("")),
        ("ready", json!(true)),
        ("tags", json!([])),
    ] {
        assert_eq!(shop[field], value, "{field}: {shop}");
    }
    assert_eq!(shop["lock"]["Locked"], false);
    // 1.x's filters.
    let filtered = tsuru
        .get("/apps?name=sh&teamOwner=blue&owner=ann@example.org&platform=python")
        .await
        .json();
    assert_eq!(names(&filtered), ["shop"]);
    tsuru
        .get("/apps?owner=bob")
        .await
        .expect(StatusCode::NO_CONTENT);
    tsuru
        .get("/apps?pool=default")
        .await
        .refused(StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_address_the_caller_may_not_resolve_matches_no_app() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    // Bob is in team blue too: he sees shop, and not whose address is whose.
    app.api.new_user("bob", "bob-secret-1").await;
    ann.call(Method::PUT, "/v1/teams/blue/members/bob", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let bob = Tsuru::of(&app.api.login("bob", "bob-secret-1").await);
    let all = bob.get("/apps").await.expect(StatusCode::OK).json();
    assert_eq!(names(&all), ["shop"]);
    for owner in ["ann@example.org", "nobody@example.org"] {
        let reply = bob.get(&format!("/apps?owner={owner}")).await;
        assert_eq!(
            reply.status,
            StatusCode::NO_CONTENT,
            "{owner}: {}",
            reply.text
        );
    }
    // An admin's unknown address: no app, not a 404; ann's own address: hers.
    Tsuru::of(&app.api)
        .get("/apps?owner=nobody@example.org")
        .await
        .expect(StatusCode::NO_CONTENT);
    let mine = tsuru
        .get("/apps?owner=ann@example.org")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(names(&mine), ["shop"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_shows_its_cname_as_0_3_9_bare_and_as_1_x_under_a_prefix() {
    let (_app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    ann.post("/v1/apps/shop/cnames", json!({"cname": "shop.example.org"}))
        .await
        .expect(StatusCode::OK);
    let old = tsuru.get("/apps/shop").await.expect(StatusCode::OK).json();
    assert_eq!(old["cname"], "shop.example.org");
    assert_eq!(old["name"], "shop");
    let new = tsuru
        .get("/1.0/apps/shop")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(new["cname"], json!(["shop.example.org"]));
    assert_eq!(new["teamowner"], "blue");
    let text = tsuru
        .get("/apps/nothing")
        .await
        .refused(StatusCode::NOT_FOUND);
    assert!(text.contains("nothing"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_may_not_read_or_change_an_app() {
    let (app, ann, _tsuru) = world().await;
    native_app(&ann, "shop").await;
    let bob = Tsuru::of(&app.api.new_user("bob", "bob-secret-1").await);
    let head = app.api.log_head().await;
    bob.get("/apps/shop").await.refused(StatusCode::FORBIDDEN);
    bob.send(Method::DELETE, "/apps/shop", Body::None)
        .await
        .refused(StatusCode::FORBIDDEN);
    bob.send(Method::POST, "/apps/shop/restart", Body::None)
        .await
        .refused(StatusCode::FORBIDDEN);
    bob.send(
        Method::POST,
        "/apps/shop/env",
        Body::Json(json!({"A": "1"})),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
    head.assert_unchanged("the outsider's calls").await;
}

// ---- Changing and removing apps ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_update_changes_the_native_app_and_streams_what_changed() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    let reply = tsuru
        .send(
            Method::PUT,
            "/1.0/apps/shop",
            Body::Form(&[("description", "new words")]),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(reply.messages().len(), 1, "{reply:?}");
    let native = ann.get("/v1/apps/shop").await.expect(StatusCode::OK).body;
    assert_eq!(native["description"], "new words");
    assert_eq!(audited(&app.api, "AppUpdated").await.0, "ann");
    let head = app.api.log_head().await;
    tsuru
        .send(Method::PUT, "/apps/shop", Body::Form(&[("pool", "big")]))
        .await
        .refused(StatusCode::BAD_REQUEST);
    tsuru
        .send(
            Method::PUT,
            "/apps/shop",
            Body::Form(&[("platform", "cobol")]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    head.assert_unchanged("the refused updates").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_is_0_3_9_text_bare_and_1_x_messages_under_a_prefix() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    native_app(&ann, "cart").await;
    let old = tsuru
        .send(Method::DELETE, "/apps/shop", Body::None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(old.text, "success");
    assert_eq!(
        audited(&app.api, "AppRemoved").await,
        ("ann".into(), "app-shop".into())
    );
    let new = tsuru
        .send(Method::DELETE, "/1.0/apps/cart", Body::None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        new.messages(),
        [
            "---- Removing application \"cart\"...\n",
            "---- Done removing application.\n"
        ]
    );
    ann.get("/v1/apps/shop").await.expect(StatusCode::NOT_FOUND);
    ann.get("/v1/apps/cart").await.expect(StatusCode::NOT_FOUND);
    let head = app.api.log_head().await;
    tsuru
        .send(Method::DELETE, "/apps/shop", Body::None)
        .await
        .refused(StatusCode::NOT_FOUND);
    head.assert_unchanged("removing a removed app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_is_0_3_9_text_on_get_and_1_x_messages_on_post() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    let before = app.api.head().await;
    let old = tsuru.get("/apps/shop/restart").await.expect(StatusCode::OK);
    assert!(old
        .content_type()
        .is_some_and(|c| c.starts_with("text/plain")));
    assert_eq!(old.text, "---- Restarting the app \"shop\" ----\n");
    assert_eq!(
        audited(&app.api, "AppRestartRequested").await,
        ("ann".into(), "app-shop".into())
    );
    let new = tsuru
        .send(Method::POST, "/1.4/apps/shop/restart", Body::Form(&[]))
        .await
        .expect(StatusCode::OK);
    assert_eq!(new.messages(), ["---- Restarting the app \"shop\" ----\n"]);
    assert!(app.api.head().await >= before + 2);
    // A process the catalog does not give the app: the native 400, nothing written.
    let head = app.api.log_head().await;
    tsuru
        .send(
            Method::POST,
            "/apps/shop/restart",
            Body::Form(&[("process", "web")]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    // HEAD does not restart.
    let reply = tsuru
        .send(Method::HEAD, "/apps/shop/restart", Body::None)
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    head.assert_unchanged("the refused restarts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_and_sleep_are_404s_saying_why_whatever_the_method() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    let head = app.api.log_head().await;
    for action in ["start", "stop", "sleep"] {
        for (method, path) in [
            (Method::POST, format!("/1.0/apps/shop/{action}")),
            (Method::PUT, format!("/apps/shop/{action}")),
            (Method::GET, format!("/apps/shop/{action}")),
        ] {
            let text = tsuru
                .send(method, &path, Body::Form(&[]))
                .await
                .refused(StatusCode::NOT_FOUND);
            assert!(text.contains(&format!("no {action}")), "{path}: {text}");
        }
    }
    head.assert_unchanged("start, stop and sleep").await;
    assert_eq!(
        ann.get("/v1/apps/shop").await.body["teams"],
        json!(["blue"])
    );
}

// ---- The environment ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_in_0_3_9_json_sets_public_variables_reads_and_unsets_them() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    let set = tsuru
        .send(
            Method::POST,
            "/apps/shop/env",
            Body::Json(json!({"DB_HOST": "db.internal", "MODE": "live"})),
        )
        .await
        .expect(StatusCode::OK);
    assert!(set.text.is_empty());
    assert_eq!(audited(&app.api, "AppEnvSet").await.0, "ann");
    let native = ann
        .get("/v1/apps/shop/env")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        native,
        json!([
            {"name": "DB_HOST", "value": "db.internal", "public": true},
            {"name": "MODE", "value": "live", "public": true},
        ])
    );
    // A GET's JSON body names those to show.
    let some = tsuru
        .send(
            Method::GET,
            "/apps/shop/env",
            Body::Json(json!(["MODE", "NONE"])),
        )
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        some,
        json!([{"name": "MODE", "value": "live", "public": true}])
    );
    tsuru
        .send(
            Method::DELETE,
            "/apps/shop/env",
            Body::Json(json!(["MODE"])),
        )
        .await
        .expect(StatusCode::OK);
    let left = tsuru.get("/apps/shop/env").await.json();
    assert_eq!(
        left,
        json!([{"name": "DB_HOST", "value": "db.internal", "public": true}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_in_1_x_forms_sets_private_variables_never_shown() {
    let (_app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    let set = tsuru
        .send(
            Method::POST,
            "/1.0/apps/shop/env",
            Body::Form(&[
                ("Envs.0.Name", "DB_PASSWORD"),
                ("Envs.0.Value", SECRET),
                ("Envs.1.Name", "DB_USER"),
                ("Envs.1.Value", "shop"),
                ("NoRestart", "true"),
                ("Private", "true"),
            ]),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        set.messages(),
        ["---- Setting 2 new environment variables ----\n"]
    );
    assert!(!set.text.contains(SECRET));
    let shown = tsuru
        .get("/1.0/apps/shop/env?env=DB_PASSWORD")
        .await
        .expect(StatusCode::OK);
    assert!(!shown.text.contains(SECRET));
    assert_eq!(
        shown.json(),
        json!([{"name": "DB_PASSWORD", "value": null, "public": false}])
    );
    let unset = tsuru
        .send(
            Method::DELETE,
            "/1.0/apps/shop/env?env=DB_PASSWORD&env=DB_USER&noRestart=true",
            Body::None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        unset.messages(),
        ["---- Unsetting 2 environment variables ----\n"]
    );
    let native = ann
        .get("/v1/apps/shop/env")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(native, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_env_change_is_plain_text_and_writes_nothing() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    let head = app.api.log_head().await;
    for (method, path, body) in [
        (Method::POST, "/apps/shop/env", Body::Json(json!(["A"]))),
        (Method::POST, "/apps/shop/env", Body::Json(json!({"A": 1}))),
        (Method::POST, "/apps/shop/env", Body::None),
        (
            Method::POST,
            "/apps/shop/env",
            Body::Json(json!({"NOT A NAME": "x"})),
        ),
        (
            Method::POST,
            "/apps/shop/env",
            Body::Form(&[("Envs.0.Value", "x")]),
        ),
        (Method::DELETE, "/apps/shop/env", Body::None),
        (
            Method::DELETE,
            "/apps/shop/env",
            Body::Json(json!({"A": "1"})),
        ),
    ] {
        tsuru
            .send(method, path, body)
            .await
            .refused(StatusCode::BAD_REQUEST);
    }
    tsuru
        .send(
            Method::POST,
            "/apps/nothing/env",
            Body::Json(json!({"A": "1"})),
        )
        .await
        .refused(StatusCode::NOT_FOUND);
    head.assert_unchanged("the refused env changes").await;
}

// ---- Swaps ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_by_0_3_9_query_or_1_x_form_exchanges_the_cnames() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "blue-shop").await;
    native_app(&ann, "green-shop").await;
    ann.post(
        "/v1/apps/blue-shop/cnames",
        json!({"cname": "shop.example.org"}),
    )
    .await
    .expect(StatusCode::OK);
    tsuru
        .send(
            Method::PUT,
            "/swap?app1=blue-shop&app2=green-shop",
            Body::None,
        )
        .await
        .expect(StatusCode::OK);
    let green = ann.get("/v1/apps/green-shop").await.body;
    assert_eq!(green["cnames"], json!(["shop.example.org"]));
    assert_eq!(audited(&app.api, "AppsSwapped").await.0, "ann");
    tsuru
        .send(
            Method::POST,
            "/1.0/swap",
            Body::Form(&[
                ("app1", "blue-shop"),
                ("app2", "green-shop"),
                ("force", "false"),
                ("cnameOnly", "true"),
            ]),
        )
        .await
        .expect(StatusCode::OK);
    let blue = ann.get("/v1/apps/blue-shop").await.body;
    assert_eq!(blue["cnames"], json!(["shop.example.org"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_swap_is_plain_text_and_writes_nothing() {
    let (app, ann, tsuru) = world().await;
    app.api
        .post("/v1/platforms", json!({"name": "ruby"}))
        .await
        .expect(StatusCode::CREATED);
    native_app(&ann, "shop").await;
    ann.post("/v1/apps", json!({"name": "blog", "platform": "ruby"}))
        .await
        .expect(StatusCode::CREATED);
    let head = app.api.log_head().await;
    tsuru
        .send(Method::PUT, "/swap?app1=shop&app2=blog", Body::None)
        .await
        .refused(StatusCode::CONFLICT);
    tsuru
        .send(Method::PUT, "/swap?app1=shop", Body::None)
        .await
        .refused(StatusCode::BAD_REQUEST);
    tsuru
        .send(
            Method::POST,
            "/swap",
            Body::Form(&[("app1", "shop"), ("app2", "nothing")]),
        )
        .await
        .refused(StatusCode::NOT_FOUND);
    head.assert_unchanged("the refused swaps").await;
}

// ---- Quotas ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_quota_is_read_by_email_and_set_by_an_admin() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    let mine = tsuru
        .get("/users/ann@example.org/quota")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(mine["InUse"], 1);
    assert_eq!(mine["Limit"], -1);
    let admin = Tsuru::of(&app.api);
    admin
        .send(
            Method::PUT,
            "/1.0/users/ann@example.org/quota",
            Body::Form(&[("limit", "3")]),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        audited(&app.api, "QuotaLimitSet").await,
        ("admin".into(), "quota-ann".into())
    );
    let native = ann
        .get("/v1/users/ann/quota")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(native, json!({"limit": 3, "in_use": 1}));
    let old = tsuru.get("/quota/ann").await.expect(StatusCode::OK).json();
    assert_eq!(
        old,
        json!({"Limit": 3, "InUse": 1, "items": 1, "available": 2})
    );
    let head = app.api.log_head().await;
    // Only an admin sets one; a limit must be a number; an unknown address is a 404.
    tsuru
        .send(
            Method::PUT,
            "/users/ann@example.org/quota",
            Body::Form(&[("limit", "9")]),
        )
        .await
        .refused(StatusCode::FORBIDDEN);
    admin
        .send(
            Method::PUT,
            "/users/ann@example.org/quota",
            Body::Form(&[("limit", "many")]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    admin
        .get("/users/nobody@example.org/quota")
        .await
        .refused(StatusCode::NOT_FOUND);
    head.assert_unchanged("the refused quota calls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_quota_counts_its_units_without_a_limit() {
    let (_app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    let quota = tsuru
        .get("/1.0/apps/shop/quota")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(quota, json!({"Limit": -1, "InUse": 0}));
}

// ---- Platforms and healers ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platforms_are_listed_to_readers_and_managed_by_an_admin() {
    let (app, _ann, tsuru) = world().await;
    let list = tsuru.get("/platforms").await.expect(StatusCode::OK).json();
    assert_eq!(list, json!([{"Name": "python", "Disabled": false}]));
    let admin = Tsuru::of(&app.api);
    let added = admin
        .send(
            Method::POST,
            "/1.0/platforms",
            Body::Form(&[("name", "ruby")]),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(added.messages(), ["Platform successfully added!\n"]);
    admin
        .send(
            Method::PUT,
            "/1.0/platforms/ruby",
            Body::Form(&[("disabled", "true")]),
        )
        .await
        .expect(StatusCode::OK);
    let native = app
        .api
        .get("/v1/platforms")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        native,
        json!([{"name": "python", "disabled": false}, {"name": "ruby", "disabled": true}])
    );
    admin
        .send(Method::DELETE, "/platforms/ruby", Body::None)
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    tsuru
        .send(Method::POST, "/platforms", Body::Form(&[("name", "go")]))
        .await
        .refused(StatusCode::FORBIDDEN);
    admin
        .send(Method::PUT, "/platforms/python", Body::Form(&[]))
        .await
        .refused(StatusCode::BAD_REQUEST);
    admin
        .send(
            Method::POST,
            "/platforms",
            Body::Form(&[("name", "python")]),
        )
        .await
        .refused(StatusCode::CONFLICT);
    head.assert_unchanged("the refused platform calls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healers_are_listed_by_path_and_an_admin_runs_one() {
    let (app, _ann, tsuru) = world().await;
    let list = tsuru.get("/healers").await.expect(StatusCode::OK).json();
    assert_eq!(list, json!({"heal-shop": "/healers/heal-shop"}));
    let head = app.api.log_head().await;
    tsuru
        .get("/healers/heal-shop")
        .await
        .refused(StatusCode::FORBIDDEN);
    Tsuru::of(&app.api)
        .get("/healers/nothing")
        .await
        .refused(StatusCode::NOT_FOUND);
    head.assert_unchanged("the refused healer runs").await;
    Tsuru::of(&app.api)
        .get("/healers/heal-shop")
        .await
        .expect(StatusCode::OK);
    let jobs = app.api.get("/v1/jobs").await.expect(StatusCode::OK).body;
    assert_eq!(jobs[0]["task"], "heal");
    assert_eq!(jobs[0]["created_by"], "admin");
}

// ---- Teams and cnames ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_is_granted_and_revoked_at_both_versions_paths() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    ann.post("/v1/teams", json!({"name": "green"}))
        .await
        .expect(StatusCode::CREATED);
    tsuru
        .send(Method::PUT, "/apps/shop/green", Body::None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ann.get("/v1/apps/shop").await.body["teams"],
        json!(["blue", "green"])
    );
    assert_eq!(audited(&app.api, "AppTeamGranted").await.0, "ann");
    tsuru
        .send(Method::DELETE, "/1.0/apps/shop/teams/green", Body::None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ann.get("/v1/apps/shop").await.body["teams"],
        json!(["blue"])
    );
    let head = app.api.log_head().await;
    tsuru
        .send(Method::DELETE, "/apps/shop/blue", Body::None)
        .await
        .refused(StatusCode::CONFLICT);
    head.assert_unchanged("revoking the last team").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_is_added_and_removed_in_both_versions_forms() {
    let (app, ann, tsuru) = world().await;
    native_app(&ann, "shop").await;
    tsuru
        .send(
            Method::POST,
            "/apps/shop/cname",
            Body::Json(json!({"cname": "shop.example.org"})),
        )
        .await
        .expect(StatusCode::OK);
    tsuru
        .send(
            Method::POST,
            "/1.0/apps/shop/cname",
            Body::Form(&[("cname", "www.example.org")]),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ann.get("/v1/apps/shop").await.body["cnames"],
        json!(["shop.example.org", "www.example.org"])
    );
    tsuru
        .send(
            Method::DELETE,
            "/1.0/apps/shop/cname?cname=www.example.org",
            Body::None,
        )
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    tsuru
        .send(
            Method::POST,
            "/1.0/apps/shop/cname",
            Body::Form(&[("cname", "a.example.org"), ("cname", "b.example.org")]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    tsuru
        .send(
            Method::POST,
            "/apps/shop/cname",
            Body::Json(json!({"cname": "not a host"})),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    head.assert_unchanged("the refused cnames").await;
    // 0.3.9's unset, without a body: all its cnames go, and are free for another app.
    ann.post("/v1/apps/shop/cnames", json!({"cname": "blog.example.org"}))
        .await
        .expect(StatusCode::OK);
    tsuru
        .send(Method::DELETE, "/apps/shop/cname", Body::None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(ann.get("/v1/apps/shop").await.body["cnames"], json!([]));
    assert_eq!(audited(&app.api, "AppCnameRemoved").await.0, "ann");
    native_app(&ann, "cart").await;
    for cname in ["shop.example.org", "blog.example.org"] {
        ann.post("/v1/apps/cart/cnames", json!({ "cname": cname }))
            .await
            .expect(StatusCode::OK);
    }
}
