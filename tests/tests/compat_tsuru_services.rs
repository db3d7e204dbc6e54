//! tsuru's services side under `/compat/tsuru`, spoken as its clients speak it, against a real
//! service API (`bosun_tests::service_api`): services registered with 0.3.9's YAML manifest
//! and 1.x's form, listed, updated, documented, granted and revoked on both generations'
//! paths, removed; instances created, read (capitalised fields), asked for their status,
//! bound and unbound, and removed through 0.3.9's paths (an instance named alone) and 1.x's (a
//! form, streamed answers, `unbindall`). Each is checked natively (`/v1`), at the service (what
//! it received) and, for a write, in the audit under the caller's name; each refusal is
//! tsuru's plain text with the right status and leaves the log as it was. The server runs in
//! the test's process.

use bosun_tests::service_api::{Call, Mode, ServiceApi, VARIABLES};
use bosun_tests::tsuru::{Body, Tsuru};
use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Plain http to the test's service API; a call times out after 2 s, an answer waits
/// `wait_seconds` for the outcome (3 s where a test wants it in the answer, 0 where it wants
/// the 202 at once).
fn config(wait_seconds: u32) -> String {
    format!(
        "http_tasks:\n  allow_insecure_hosts: [\"127.0.0.1\"]\nservices:\n  timeout_seconds: 2\n  \
         wait_seconds: {wait_seconds}\n"
    )
}

/// The services' password (the manifests').
const PASSWORD: &str = "svc-password-5b7d2c90";

/// The server; its admin; ann (team `ops`, app `shop` on `python`) and bob (team `web`), each
/// natively and as a tsuru client; and a running service API. Bind `app` when destructuring it
/// (`app: _app`): dropping it stops the server.
struct World {
    app: TestApp,
    service: ServiceApi,
    ann: Api,
    bob: Api,
}

impl World {
    fn tsuru(client: &Api) -> Tsuru {
        Tsuru::of(client)
    }
}

async fn world() -> World {
    world_with(&config(3)).await
}

async fn world_with(config: &str) -> World {
    let app = spawn_app(config).await;
    let admin = &app.api;
    admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let ann = admin.new_user("ann", "ann-password").await;
    let bob = admin.new_user("bob", "bob-password").await;
    bob.post("/v1/teams", json!({"name": "web"}))
        .await
        .expect(StatusCode::CREATED);
    ann.team_with_app("ops", "shop", "python").await;
    let service = ServiceApi::start().await;
    World {
        app,
        service,
        ann,
        bob,
    }
}

/// A 0.3.9 manifest of service `name` at `endpoint`, owned by `team`.
fn manifest(name: &str, endpoint: &str, team: &str) -> String {
    format!("id: {name}\npassword: {PASSWORD}\nteam: {team}\nendpoint:\n  production: {endpoint}\n")
}

/// [`world`] with service `mysql` (team `ops`) registered by ann through tsuru (YAML).
async fn with_mysql() -> World {
    with_mysql_in(world().await).await
}

async fn with_mysql_in(world: World) -> World {
    World::tsuru(&world.ann)
        .send(
            Method::POST,
            "/services",
            Body::Text(&manifest("mysql", &world.service.base, "ops")),
        )
        .await
        .expect(StatusCode::OK);
    world
}

/// [`with_mysql`] and its instance `db1` (ann's, team `ops`), made through 0.3.9's path.
async fn with_db1() -> World {
    let world = with_mysql().await;
    World::tsuru(&world.ann)
        .send(
            Method::POST,
            "/services/instances",
            Body::Json(json!({"name": "db1", "service_name": "mysql"})),
        )
        .await
        .expect(StatusCode::OK);
    world
}

/// Polls `read` (at most 60 s) until `done` says its answer is what the test waits for.
async fn eventually(what: &str, read: impl AsyncFn() -> Value, done: impl Fn(&Value) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let value = read().await;
        if done(&value) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {value}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn sorted(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a name").to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_manifest_registers_a_service() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = world().await;
    let reply = World::tsuru(&ann)
        .send(
            Method::POST,
            "/services",
            Body::Text(&manifest("mysql", &service.base, "ops")),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(reply.text, "success");
    let native = ann
        .get("/v1/services/mysql")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(native["endpoint"], service.base.as_str());
    assert_eq!(native["owner_teams"], json!(["ops"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_manifest_registers_a_service_with_201() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = world().await;
    let reply = World::tsuru(&ann)
        .send(
            Method::POST,
            "/1.0/services",
            Body::Form(&[
                ("id", "mysql"),
                ("username", "mysql"),
                ("password", PASSWORD),
                ("endpoint", &service.base),
                ("team", "ops"),
            ]),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(reply.text, "success");
    ann.get("/v1/services/mysql").await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_without_a_team_is_owned_by_the_callers_teams() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = world().await;
    let text = format!(
        "id: mysql\npassword: {PASSWORD}\nendpoint:\n  production: {}\n",
        service.base
    );
    World::tsuru(&ann)
        .send(Method::POST, "/services", Body::Text(&text))
        .await
        .expect(StatusCode::OK);
    let native = ann.get("/v1/services/mysql").await.body;
    assert_eq!(native["owner_teams"], json!(["ops"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_manifests_change_nothing() {
    let World {
        app,
        service,
        ann,
        bob,
    } = with_mysql().await;
    let head = app.api.log_head().await;
    let tsuru = World::tsuru(&ann);
    let base = service.base.as_str();
    for (manifest, status) in [
        // Not YAML of a manifest.
        ("id: [unclosed".to_string(), StatusCode::BAD_REQUEST),
        (
            format!("id: pg\npassword: {PASSWORD}\nteam: ops\n"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("id: pg\npassword: {PASSWORD}\nendpoint:\n  test: {base}\n"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("id: pg\nusername: root\npassword: {PASSWORD}\nendpoint: {base}\n"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("id: pg\nendpoint: {base}\n"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("id: pg\npassword: {PASSWORD}\nendpoint: {base}\ncolour: red\n"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("id: pg\npassword: {PASSWORD}\nteam: web\nendpoint: {base}\n"),
            StatusCode::FORBIDDEN,
        ),
        (manifest("mysql", base, "ops"), StatusCode::CONFLICT),
    ] {
        tsuru
            .send(Method::POST, "/services", Body::Text(&manifest))
            .await
            .refused(status);
    }
    tsuru
        .send(Method::POST, "/services", Body::Text(""))
        .await
        .refused(StatusCode::BAD_REQUEST);
    // YAML reads `0x1F` as the number 31, `1e3` as 1000: refused, asking to quote it.
    for (text, field) in [
        (
            format!("id: pg\npassword: 0x1F\nendpoint: {base}\n"),
            "password",
        ),
        (
            format!("id: 1e3\npassword: {PASSWORD}\nendpoint: {base}\n"),
            "id",
        ),
    ] {
        let said = tsuru
            .send(Method::POST, "/services", Body::Text(&text))
            .await
            .refused(StatusCode::BAD_REQUEST);
        assert!(
            said.contains(field) && said.contains("quote it"),
            "{field}: {said}"
        );
    }
    // A NUL in a form, as in JSON: a 400 naming the field, for a manifest and a doc alike.
    let said = tsuru
        .send(
            Method::POST,
            "/1.0/services",
            Body::Form(&[
                ("id", "pg"),
                ("password", "pass\0word"),
                ("endpoint", base),
                ("team", "ops"),
            ]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    assert!(said.contains("password"), "{said}");
    tsuru
        .send(
            Method::PUT,
            "/1.0/services/mysql/doc",
            Body::Form(&[("doc", "a\0b")]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    // Bob is not of ops: he may not remove ann's service.
    World::tsuru(&bob)
        .send(Method::DELETE, "/services/mysql", Body::None)
        .await
        .refused(StatusCode::NOT_FOUND);
    head.assert_unchanged("the refused manifests").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_list_is_empty_as_each_generation_expects() {
    let World { app: _app, ann, .. } = world().await;
    let tsuru = World::tsuru(&ann);
    let bare = tsuru.get("/services").await.expect(StatusCode::OK);
    assert_eq!(bare.json(), json!([]));
    tsuru
        .get("/1.0/services")
        .await
        .expect(StatusCode::NO_CONTENT);
    tsuru
        .get("/1.0/services/instances")
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lists_show_each_service_with_its_instances() {
    let World { app: _app, ann, .. } = with_db1().await;
    let tsuru = World::tsuru(&ann);
    let list = tsuru.get("/services").await.expect(StatusCode::OK).json();
    assert_eq!(
        list,
        json!([{"service": "mysql", "instances": ["db1"], "plans": [""],
                "service_instances": [{"name": "db1", "tags": []}]}])
    );
    let instances = tsuru
        .get("/services/instances")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(instances, list);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_changes_the_endpoint_with_its_password() {
    let World {
        app, service, ann, ..
    } = with_mysql().await;
    let tsuru = World::tsuru(&ann);
    let other = ServiceApi::start().await;
    tsuru
        .send(
            Method::PUT,
            "/services",
            Body::Text(&manifest("mysql", &other.base, "ops")),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        ann.get("/v1/services/mysql").await.body["endpoint"],
        other.base.as_str()
    );
    tsuru
        .send(
            Method::PUT,
            "/1.0/services/mysql",
            Body::Form(&[("endpoint", &service.base), ("password", PASSWORD)]),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ann.get("/v1/services/mysql").await.body["endpoint"],
        service.base.as_str()
    );
    // Another owner team, or a new endpoint without its password: refused, nothing changed.
    let head = app.api.log_head().await;
    tsuru
        .send(
            Method::PUT,
            "/1.0/services/mysql",
            Body::Form(&[
                ("endpoint", &service.base),
                ("password", PASSWORD),
                ("team", "web"),
            ]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    tsuru
        .send(
            Method::PUT,
            "/1.0/services/mysql",
            Body::Form(&[("endpoint", &other.base)]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    head.assert_unchanged("the refused updates").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doc_is_set_as_text_or_a_form_and_read_as_text() {
    let World { app: _app, ann, .. } = with_mysql().await;
    let tsuru = World::tsuru(&ann);
    tsuru
        .send(
            Method::PUT,
            "/services/mysql/doc",
            Body::Text("MySQL databases, one per instance"),
        )
        .await
        .expect(StatusCode::OK);
    let doc = tsuru
        .get("/services/mysql/doc")
        .await
        .expect(StatusCode::OK);
    assert_eq!(doc.text, "MySQL databases, one per instance");
    tsuru
        .send(
            Method::PUT,
            "/1.0/services/mysql/doc",
            Body::Form(&[("doc", "Version two")]),
        )
        .await
        .expect(StatusCode::OK);
    let native = ann
        .get("/v1/services/mysql/doc")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(native, "Version two");
    let plans = tsuru
        .get("/services/mysql/plans")
        .await
        .expect(StatusCode::OK);
    assert_eq!(plans.json(), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_are_granted_and_revoked_on_both_paths() {
    let World { app: _app, ann, .. } = with_mysql().await;
    let tsuru = World::tsuru(&ann);
    tsuru
        .send(Method::PUT, "/services/mysql/web", Body::None)
        .await
        .expect(StatusCode::OK);
    let teams = ann.get("/v1/services/mysql").await.body["teams"].clone();
    assert_eq!(sorted(&teams), ["ops", "web"]);
    tsuru
        .send(Method::DELETE, "/1.0/services/mysql/team/web", Body::None)
        .await
        .expect(StatusCode::OK);
    let teams = ann.get("/v1/services/mysql").await.body["teams"].clone();
    assert_eq!(teams, json!(["ops"]));
    tsuru
        .send(Method::PUT, "/1.0/services/mysql/team/web", Body::None)
        .await
        .expect(StatusCode::OK);
    tsuru
        .send(Method::DELETE, "/services/mysql/web", Body::None)
        .await
        .expect(StatusCode::OK);
    let teams = ann.get("/v1/services/mysql").await.body["teams"].clone();
    assert_eq!(teams, json!(["ops"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_created_at_the_service_with_the_callers_team() {
    let World {
        app, service, ann, ..
    } = with_db1().await;
    let created = service.requests_of(Call::Create);
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(created[0].field("name"), Some("db1"));
    assert_eq!(created[0].field("team"), Some("ops"));
    assert_eq!(created[0].basic_auth(), (Some("mysql"), Some(PASSWORD)));
    let native = ann
        .get("/v1/services/mysql/instances/db1")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(native["team_owner"], "ops");
    assert_eq!(native["state"], "ready");
    let audit = app
        .api
        .get("/v1/audit?actor=ann&limit=1000")
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "InstanceCreationRequested"
                && e["target"] == "instance-mysql.db1"),
        "the instance's creation is not in ann's audit: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_reads_with_tsurus_capitalised_fields_and_status_text() {
    let World { app: _app, ann, .. } = with_db1().await;
    let tsuru = World::tsuru(&ann);
    let instance = tsuru
        .get("/services/instances/db1")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(instance["Name"], "db1");
    assert_eq!(instance["ServiceName"], "mysql");
    assert_eq!(instance["PlanName"], "");
    assert_eq!(instance["Apps"], json!([]));
    assert_eq!(instance["Teams"], json!(["ops"]));
    assert_eq!(instance["TeamOwner"], "ops");
    assert_eq!(
        tsuru
            .get("/1.0/services/mysql/instances/db1")
            .await
            .expect(StatusCode::OK)
            .json(),
        instance
    );
    let info = tsuru
        .get("/services/mysql")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(info, json!([instance]));
    for path in [
        "/services/instances/db1/status",
        "/1.0/services/mysql/instances/db1/status",
    ] {
        let status = tsuru.get(path).await.expect(StatusCode::OK);
        assert_eq!(status.text, "Service instance \"db1\" is up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_9_bind_answers_the_variables_names_and_an_unbind_takes_them_away() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = with_db1().await;
    let tsuru = World::tsuru(&ann);
    let names = tsuru
        .send(Method::PUT, "/services/instances/db1/shop", Body::None)
        .await
        .expect(StatusCode::OK)
        .json();
    let mut expected: Vec<&str> = VARIABLES.iter().map(|(name, _)| *name).collect();
    expected.sort();
    assert_eq!(sorted(&names), expected);
    assert_eq!(service.requests_of(Call::Bind).len(), 1);
    let env = ann.get("/v1/apps/shop/env").await.body;
    for name in &expected {
        assert!(
            env.as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == *name && v["value"].is_null() && v["public"] == false),
            "{name} is not a private variable of shop: {env}"
        );
    }
    // Another instance, bound to nothing: not among shop's.
    tsuru
        .send(
            Method::POST,
            "/1.0/services/mysql/instances",
            Body::Form(&[("name", "db2")]),
        )
        .await
        .expect(StatusCode::CREATED);
    let bound = tsuru
        .get("/services/instances?app=shop")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        bound,
        json!([{"service": "mysql", "instances": ["db1"], "plans": [""],
                "service_instances": [{"name": "db1", "tags": []}]}])
    );
    let all = tsuru
        .get("/services/instances")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(all[0]["instances"], json!(["db1", "db2"]));
    let reply = tsuru
        .send(Method::DELETE, "/services/instances/db1/shop", Body::None)
        .await
        .expect(StatusCode::OK);
    assert!(reply.text.is_empty());
    assert_eq!(service.requests_of(Call::Unbind).len(), 1);
    let instance = ann.get("/v1/services/mysql/instances/db1").await.body;
    assert_eq!(instance["apps"], json!([]));
    let removed = tsuru
        .send(Method::DELETE, "/services/instances/db1", Body::None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(removed.text, "service instance successfully removed\n");
    ann.get("/v1/services/mysql/instances/db1")
        .await
        .expect(StatusCode::NOT_FOUND);
    tsuru
        .send(Method::DELETE, "/services/instances/db2", Body::None)
        .await
        .expect(StatusCode::OK);
    assert!(service.resources().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1x_instance_is_made_with_a_form_bound_in_a_stream_and_removed_with_its_binds() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = with_mysql().await;
    let tsuru = World::tsuru(&ann);
    tsuru
        .send(
            Method::POST,
            "/1.0/services/mysql/instances",
            Body::Form(&[
                ("name", "db2"),
                ("plan", "small"),
                ("owner", "ops"),
                ("description", "the shop's"),
            ]),
        )
        .await
        .expect(StatusCode::CREATED);
    let created = service.requests_of(Call::Create);
    assert_eq!(created[0].field("plan"), Some("small"));
    let native = ann.get("/v1/services/mysql/instances/db2").await.body;
    assert_eq!(native["description"], "the shop's");
    let bind = tsuru
        .send(
            Method::PUT,
            "/1.0/services/mysql/instances/db2/shop",
            Body::Form(&[("noRestart", "true")]),
        )
        .await
        .expect(StatusCode::OK);
    let said = bind.messages().concat();
    assert!(
        said.contains("Instance \"db2\" is now bound to the app \"shop\"."),
        "{said}"
    );
    for (name, _) in VARIABLES {
        assert!(said.contains(&format!("- {name}\n")), "{said}");
    }
    let removed = tsuru
        .send(
            Method::DELETE,
            "/1.0/services/mysql/instances/db2?unbindall=true",
            Body::None,
        )
        .await
        .expect(StatusCode::OK);
    let said = removed.messages().concat();
    assert!(
        said.contains("Instance \"db2\" is not bound to the app \"shop\" anymore."),
        "{said}"
    );
    assert!(
        said.ends_with("service instance successfully removed\n"),
        "{said}"
    );
    assert_eq!(service.requests_of(Call::Unbind).len(), 1);
    assert!(service.resources().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbindall_refused_for_one_app_unbinds_none_and_removes_nothing() {
    let World {
        app,
        service,
        ann,
        bob,
    } = with_db1().await;
    let tsuru = World::tsuru(&ann);
    tsuru
        .send(Method::PUT, "/services/instances/db1/shop", Body::None)
        .await
        .expect(StatusCode::OK);
    // Bob's app zoo, bound to db1 by the admin: ann sees db1 and manages shop, not zoo.
    bob.post(
        "/v1/apps",
        json!({"name": "zoo", "platform": "python", "team_owner": "web"}),
    )
    .await
    .expect(StatusCode::CREATED);
    app.api
        .call(
            Method::PUT,
            "/v1/services/mysql/instances/db1/apps/zoo?restart=false",
            None,
        )
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    let calls = service.requests().len();
    World::tsuru(&ann)
        .send(
            Method::DELETE,
            "/1.0/services/mysql/instances/db1?unbindall=true",
            Body::None,
        )
        .await
        .refused(StatusCode::FORBIDDEN);
    head.assert_unchanged("the refused unbindall").await;
    assert_eq!(service.requests().len(), calls, "{:#?}", service.requests());
    let instance = app.api.get("/v1/services/mysql/instances/db1").await.body;
    assert_eq!(instance["apps"], json!(["shop", "zoo"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1x_unbind_streams_what_it_did() {
    let World { app: _app, ann, .. } = with_db1().await;
    let tsuru = World::tsuru(&ann);
    tsuru
        .send(
            Method::PUT,
            "/1.0/services/mysql/instances/db1/shop",
            Body::Form(&[]),
        )
        .await
        .expect(StatusCode::OK);
    let reply = tsuru
        .send(
            Method::DELETE,
            "/1.0/services/mysql/instances/db1/shop",
            Body::None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        reply.messages(),
        ["\nInstance \"db1\" is not bound to the app \"shop\" anymore.\n"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_instance_calls_change_nothing() {
    let World {
        app,
        service,
        ann,
        bob,
    } = with_db1().await;
    let tsuru = World::tsuru(&ann);
    tsuru
        .send(Method::PUT, "/services/instances/db1/shop", Body::None)
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    let calls = service.requests().len();
    tsuru
        .send(
            Method::POST,
            "/services/instances",
            Body::Json(json!({"name": "db9", "service_name": "nope"})),
        )
        .await
        .refused(StatusCode::NOT_FOUND);
    tsuru
        .send(
            Method::POST,
            "/services/instances",
            Body::Json(json!({"name": "db1", "service_name": "mysql"})),
        )
        .await
        .refused(StatusCode::CONFLICT);
    tsuru
        .send(
            Method::POST,
            "/1.0/services/mysql/instances",
            Body::Form(&[("name", "db9"), ("tag", "blue")]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    tsuru
        .send(
            Method::POST,
            "/1.0/services/mysql/instances",
            Body::Form(&[]),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    // Bound: neither it nor its service may go.
    tsuru
        .send(Method::DELETE, "/services/instances/db1", Body::None)
        .await
        .refused(StatusCode::CONFLICT);
    tsuru
        .send(Method::DELETE, "/services/mysql", Body::None)
        .await
        .refused(StatusCode::CONFLICT);
    tsuru
        .send(Method::PUT, "/services/instances/db1/shop", Body::None)
        .await
        .refused(StatusCode::CONFLICT);
    // Bob's team may not use mysql, and he may not read ann's instance.
    let bobs = World::tsuru(&bob);
    bobs.send(
        Method::POST,
        "/1.0/services/mysql/instances",
        Body::Form(&[("name", "db9"), ("owner", "web")]),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    bobs.get("/services/instances/db1")
        .await
        .refused(StatusCode::NOT_FOUND);
    bobs.send(Method::DELETE, "/services/instances/db1/shop", Body::None)
        .await
        .refused(StatusCode::NOT_FOUND);
    head.assert_unchanged("the refused instance calls").await;
    assert_eq!(service.requests().len(), calls, "{:#?}", service.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_name_two_services_have_is_ambiguous_on_0_3_9_paths() {
    let World { app, ann, .. } = with_db1().await;
    // Another service API: the first has a resource db1 already.
    let other = ServiceApi::start().await;
    let tsuru = World::tsuru(&ann);
    tsuru
        .send(
            Method::POST,
            "/services",
            Body::Text(&manifest("pg", &other.base, "ops")),
        )
        .await
        .expect(StatusCode::OK);
    tsuru
        .send(
            Method::POST,
            "/1.0/services/pg/instances",
            Body::Form(&[("name", "db1")]),
        )
        .await
        .expect(StatusCode::CREATED);
    let head = app.api.log_head().await;
    let text = tsuru
        .get("/services/instances/db1")
        .await
        .refused(StatusCode::CONFLICT);
    assert!(text.contains("mysql") && text.contains("pg"), "{text}");
    tsuru
        .send(Method::DELETE, "/services/instances/db1", Body::None)
        .await
        .refused(StatusCode::CONFLICT);
    head.assert_unchanged("the ambiguous calls").await;
    let pg = tsuru
        .get("/1.0/services/pg/instances/db1")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(pg["ServiceName"], "pg");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_refuses_is_a_502_with_its_message() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = with_mysql().await;
    service.next(Call::Create, Mode::fail(500, "out of disk"));
    let text = World::tsuru(&ann)
        .send(
            Method::POST,
            "/services/instances",
            Body::Json(json!({"name": "db1", "service_name": "mysql"})),
        )
        .await
        .refused(StatusCode::BAD_GATEWAY);
    assert!(text.contains("out of disk"), "{text}");
    ann.get("/v1/services/mysql/instances/db1")
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_instances_is_removed() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = with_mysql().await;
    let tsuru = World::tsuru(&ann);
    tsuru
        .send(Method::DELETE, "/services/mysql", Body::None)
        .await
        .expect(StatusCode::NO_CONTENT);
    ann.get("/v1/services/mysql")
        .await
        .expect(StatusCode::NOT_FOUND);
    tsuru
        .send(
            Method::POST,
            "/services",
            Body::Text(&manifest("pg", &service.base, "ops")),
        )
        .await
        .expect(StatusCode::OK);
    tsuru
        .send(Method::DELETE, "/1.0/services/pg", Body::None)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_service_has_not_answered_yet_is_a_202_the_server_finishes() {
    // The answer waits for no outcome: a 202 at once, for the creation too.
    let World {
        app: _app,
        service,
        ann,
        ..
    } = with_mysql_in(world_with(&config(0)).await).await;
    let tsuru = World::tsuru(&ann);
    let created = tsuru
        .send(
            Method::POST,
            "/services/instances",
            Body::Json(json!({"name": "db1", "service_name": "mysql"})),
        )
        .await;
    assert!(
        [StatusCode::OK, StatusCode::ACCEPTED].contains(&created.status),
        "{created:?}"
    );
    let db1 = async || ann.get("/v1/services/mysql/instances/db1").await.body;
    eventually("never created", db1, |i| i["state"] == "ready").await;
    // The bind is done and never answered (the reactor's retry is answered).
    service.next(Call::Bind, Mode::Hang);
    let reply = tsuru
        .send(Method::PUT, "/services/instances/db1/shop", Body::None)
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(reply.json(), json!([]));
    eventually("never bound", db1, |i| i["apps"] == json!(["shop"])).await;
}
