//! Services and their instances over real HTTP, against a real service API
//! (`bosun_tests::service_api`: an HTTP server in the test that provisions resources, answers
//! binds with variables, and can be told to fail, hang, answer garbage or redirect). Each test
//! checks what the service received (method, path, form fields, Basic auth) as well as what
//! Bosun recorded (answers, reads, the log, the audit): an admin registers a service (its
//! password shown nowhere), teams are granted and revoked, only granted teams create
//! instances, a create, bind, unbind and remove each call the service and record its answer
//! (502 with the service's message when it refused, 202 when it did not answer in time, then
//! finished by the reactor; 502, 503 and 504 tried again; given up after `max_attempts` with
//! what the service did undone), bound variables join the app's environment as private values
//! its own env calls cannot touch and its jobs and units get (the latest bind's value winning,
//! an unbind restoring the one beneath), an app's removal unbinds it first, the invariants
//! refuse with 409 (a team in use is not removed), status maps the service's answer, and
//! neither the password nor a bound value shows in an answer, the log or the live feed. The
//! server runs in the test's process (`spawn_app`); what a crash leaves is
//! `services_crash.rs`'s.

use base64::Engine;
use bosun_tests::service_api::{unreachable_endpoint, Call, Mode, ServiceApi, VARIABLES};
use bosun_tests::{spawn_app, Answer, Api, TestApp};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Plain http to the test's service API; a call times out after 2 s, an answer waits 3 s for
/// the outcome. `show` prints the bound variables.
const CONFIG: &str = r#"
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
services:
  timeout_seconds: 2
  wait_seconds: 3
catalog:
  shop:
    production:
      show:
        command: ["sh", "-c", "echo url=$DATABASE_URL user=$DATABASE_USER"]
"#;

/// The service's password: no answer, event or audit entry may show it in clear.
const PASSWORD: &str = "svc-password-5b7d2c90";

/// The value of a bound variable no answer or event may show in clear.
const BOUND_SECRET: &str = "bound-secret-4e1f9a";

const INSTANCES: &str = "/v1/services/mysql/instances";

/// The server, and ann (team `ops`, app `shop` on `python`) and bob (team `web`).
struct People {
    app: TestApp,
    ann: Api,
    bob: Api,
}

async fn people() -> People {
    people_with(CONFIG, "shop").await
}

/// [`people`] over a server configured with `yaml`, ann's app named `app_name`.
async fn people_with(yaml: &str, app_name: &str) -> People {
    let app = spawn_app(yaml).await;
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
    ann.team_with_app("ops", app_name, "python").await;
    People { app, ann, bob }
}

/// [`People`] and the service `mysql` (teams `[ops]`), registered by the admin, on a fresh
/// service API. Bind `app` when destructuring it (`app: _app`): dropping it stops the server.
struct World {
    app: TestApp,
    service: ServiceApi,
    ann: Api,
    bob: Api,
}

async fn world() -> World {
    let People { app, ann, bob } = people().await;
    let service = ServiceApi::start().await;
    register(&app.api, "mysql", &service.base, &["ops"])
        .await
        .expect(StatusCode::CREATED);
    World {
        app,
        service,
        ann,
        bob,
    }
}

async fn register(client: &Api, name: &str, endpoint: &str, teams: &[&str]) -> Answer {
    client
        .post(
            "/v1/services",
            json!({"name": name, "endpoint": endpoint, "password": PASSWORD,
                   "teams": teams, "doc": "MySQL databases, one per instance"}),
        )
        .await
}

/// `client` asks for instance `name` of mysql (plan `small`, team `ops`): the answer.
async fn create(client: &Api, name: &str) -> Answer {
    create_of(client, "mysql", name).await
}

/// `client` asks for instance `name` of `service` (plan `small`, team `ops`): the answer.
async fn create_of(client: &Api, service: &str, name: &str) -> Answer {
    client
        .post(
            &format!("/v1/services/{service}/instances"),
            json!({"name": name, "plan": "small", "team_owner": "ops",
                   "description": "the shop's database"}),
        )
        .await
}

/// `client` binds mysql's `instance` to `app`: the answer.
async fn bind(client: &Api, instance: &str, app: &str) -> Answer {
    bind_of(client, "mysql", instance, app).await
}

/// `client` binds `service`'s `instance` to `app` (which may carry a query): the answer.
async fn bind_of(client: &Api, service: &str, instance: &str, app: &str) -> Answer {
    client
        .call(
            Method::PUT,
            &format!("/v1/services/{service}/instances/{instance}/apps/{app}"),
            None,
        )
        .await
}

async fn unbind(client: &Api, instance: &str, app: &str) -> Answer {
    unbind_of(client, "mysql", instance, app).await
}

async fn unbind_of(client: &Api, service: &str, instance: &str, app: &str) -> Answer {
    client
        .call(
            Method::DELETE,
            &format!("/v1/services/{service}/instances/{instance}/apps/{app}"),
            None,
        )
        .await
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["name"].as_str().unwrap_or("?"))
        .collect()
}

/// The app's variables as `/v1/apps/{app}/env` lists them, by name.
async fn env(client: &Api, app: &str) -> BTreeMap<String, Value> {
    let list = client
        .get(&format!("/v1/apps/{app}/env"))
        .await
        .expect(StatusCode::OK)
        .body;
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
        .collect()
}

fn bound_names() -> BTreeSet<String> {
    VARIABLES.iter().map(|(k, _)| k.to_string()).collect()
}

/// The names a bind's answer `{env: [names]}` gives.
fn answered_names(body: &Value) -> BTreeSet<String> {
    body["env"]
        .as_array()
        .unwrap_or_else(|| panic!("no env list: {body}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// The events of `stream` as `/v1/streams` lists them: their types.
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

/// The events of `stream` as `/v1/streams` lists them.
async fn stream_events(admin: &Api, stream: &str) -> Vec<Value> {
    admin
        .get(&format!("/v1/streams/{stream}"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap()
        .clone()
}

/// The last event of `stream`.
async fn last_event(admin: &Api, stream: &str) -> Value {
    stream_events(admin, stream)
        .await
        .pop()
        .unwrap_or_else(|| panic!("{stream} is empty"))
}

/// Waits until every read model has applied the log's head (`Bosun-Min-Position`).
async fn caught_up(admin: &Api) {
    let head = admin.head().await.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = admin
            .call_with(
                Method::GET,
                "/readyz",
                &[("Bosun-Min-Position", &head)],
                None,
            )
            .await;
        if answer.status == StatusCode::OK {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the read models never reached {head}: {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// App `name`'s restart generation in the apps read model (what its units restart on), once
/// the read models have caught up with the log.
async fn restart_generation(app: &TestApp, name: &str) -> i64 {
    caught_up(&app.api).await;
    let store = app.store().await;
    let client = store.pool().get().await.expect("a connection");
    client
        .query_one(
            "SELECT restart_generation FROM apps WHERE name = $1",
            &[&name],
        )
        .await
        .expect("read the apps read model")
        .get(0)
}

/// Polls mysql's instance `name` (as `client`) until `done` holds for it (at most 30 s).
async fn wait_instance(client: &Api, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = client.get(&format!("{INSTANCES}/{name}")).await;
        if read.status == StatusCode::OK && done(&read.body) {
            return read.body;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never got there: {} {}",
            read.status,
            read.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until the log has an event of type `kind` (at most `limit`): those events, once every
/// read model holds them.
async fn wait_events(admin: &Api, kind: &str, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let events = events_of(admin, kind).await;
        if !events.is_empty() {
            // What the test reads next comes from the read models: they hold these too first.
            caught_up(admin).await;
            return events;
        }
        assert!(Instant::now() < deadline, "no {kind} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events of type `kind` in the log.
async fn events_of(admin: &Api, kind: &str) -> Vec<Value> {
    admin
        .get(&format!("/v1/events?type={kind}&limit=1000"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap()
        .clone()
}

/// The events table's text (the type, data and metadata of every event), read past the API.
async fn stored_text(app: &TestApp) -> String {
    let store = app.store().await;
    let client = store.pool().get().await.expect("a connection");
    let rows = client
        .query(
            "SELECT event_type || ' ' || data::text || ' ' || metadata::text \
             FROM events ORDER BY position",
            &[],
        )
        .await
        .expect("read the events table");
    rows.iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Submits shop's `show` as `client` and waits for it: its stdout.
async fn show(client: &Api) -> String {
    let job = client
        .post(
            "/v1/jobs",
            json!({"app": "shop", "env": "production", "task": "show", "wait": true}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(job["status"], "success", "{job}");
    job["stdout"].as_str().unwrap_or_default().to_string()
}

/// A text/plain `PUT` of `text` to `path`.
async fn put_text(client: &Api, path: &str, text: &str) -> Answer {
    let response = client
        .request(Method::PUT, path)
        .header("content-type", "text/plain")
        .body(text.to_string())
        .send()
        .await
        .expect("PUT");
    Answer::read(response).await
}

// ---- Registering a service ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_registers_a_service_and_its_password_is_never_shown() {
    let People { app, ann, .. } = people().await;
    let admin = &app.api;
    let service = ServiceApi::start().await;
    let answer = register(admin, "mysql", &service.base, &["ops"])
        .await
        .expect(StatusCode::CREATED);
    assert!(answer.header("bosun-position").parse::<u64>().is_ok());
    let registered = answer.body;
    assert_eq!(registered["name"], "mysql");
    assert_eq!(registered["endpoint"], service.base.as_str());
    assert_eq!(registered["teams"], json!(["ops"]));
    assert_eq!(registered["owner_teams"], json!(["ops"]));
    assert_eq!(registered["instances"], json!([]));
    assert!(registered["created_at"].is_string(), "{registered}");
    assert!(registered.get("password").is_none(), "{registered}");
    // A member of its team reads it as the admin does.
    for client in [admin, &ann] {
        let read = client
            .get("/v1/services/mysql")
            .await
            .expect(StatusCode::OK)
            .body;
        for field in ["name", "endpoint", "teams", "owner_teams", "instances"] {
            assert_eq!(read[field], registered[field], "{field}: {read}");
        }
        assert_eq!(names(&client.get("/v1/services").await.body), ["mysql"]);
    }
    // Registering calls nothing.
    assert!(service.requests().is_empty(), "{:?}", service.requests());
    // The log has it, its password sealed.
    let events = events_of(admin, "ServiceRegistered").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["stream_id"], "service-mysql");
    assert_eq!(events[0]["metadata"]["actor"], "admin");
    let shown = serde_json::to_string(&(
        &registered,
        admin.get("/v1/services").await.body,
        admin.all_events().await,
        admin.get("/v1/audit?limit=1000").await.body,
    ))
    .unwrap();
    assert!(!shown.contains(PASSWORD), "the password is in an answer");
    assert!(!stored_text(&app).await.contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_service_is_refused_naming_the_field_and_writes_nothing() {
    let People { app, .. } = people().await;
    let admin = &app.api;
    let ok = "http://127.0.0.1:9";
    let long = "x".repeat(257);
    let cases = [
        (
            json!({"name": "MySQL", "endpoint": ok, "password": PASSWORD, "teams": ["ops"]}),
            "name",
        ),
        (
            json!({"name": "1db", "endpoint": ok, "password": PASSWORD, "teams": ["ops"]}),
            "name",
        ),
        (
            json!({"name": "a".repeat(41), "endpoint": ok, "password": PASSWORD, "teams": ["ops"]}),
            "name",
        ),
        (
            json!({"name": "my_sql", "endpoint": ok, "password": PASSWORD, "teams": ["ops"]}),
            "name",
        ),
        (
            json!({"name": "mysql", "endpoint": "not a url", "password": PASSWORD, "teams": ["ops"]}),
            "endpoint",
        ),
        (
            json!({"name": "mysql", "endpoint": "/relative", "password": PASSWORD, "teams": ["ops"]}),
            "endpoint",
        ),
        (
            json!({"name": "mysql", "endpoint": "ftp://127.0.0.1/x", "password": PASSWORD, "teams": ["ops"]}),
            "endpoint",
        ),
        (
            json!({"name": "mysql", "endpoint": "http://user:pw@127.0.0.1:9", "password": PASSWORD, "teams": ["ops"]}),
            "endpoint",
        ),
        (
            json!({"name": "mysql", "endpoint": "http://127.0.0.1:9/api?key=1", "password": PASSWORD, "teams": ["ops"]}),
            "endpoint",
        ),
        (
            json!({"name": "mysql", "endpoint": "http://127.0.0.1:9/api#top", "password": PASSWORD, "teams": ["ops"]}),
            "endpoint",
        ),
        (
            json!({"name": "mysql", "endpoint": ok, "password": "", "teams": ["ops"]}),
            "password",
        ),
        (
            json!({"name": "mysql", "endpoint": ok, "password": long, "teams": ["ops"]}),
            "password",
        ),
        (
            json!({"name": "mysql", "endpoint": ok, "password": PASSWORD, "teams": []}),
            "teams",
        ),
        (
            json!({"name": "mysql", "endpoint": ok, "password": PASSWORD, "teams": ["nosuch"]}),
            "teams",
        ),
    ];
    let log = admin.log_head().await;
    for (body, field) in cases {
        let problem = log
            .refused(admin, Method::POST, "/v1/services", Some(body.clone()))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), [field], "{body}: {problem}");
        assert!(!problem.body.to_string().contains(PASSWORD), "{problem}");
    }
    // The unknown team is named.
    let problem = admin
        .refused(
            Method::POST,
            "/v1/services",
            Some(json!({"name": "mysql", "endpoint": ok, "password": PASSWORD, "teams": ["ops", "nosuch"]})),
        )
        .await;
    assert!(problem.detail().contains("nosuch"), "{problem}");
    // Fields missing, or of another type, or unknown.
    for body in [
        json!({"name": "mysql", "endpoint": ok, "teams": ["ops"]}),
        json!({"name": "mysql", "password": PASSWORD, "teams": ["ops"]}),
        json!({"name": "mysql", "endpoint": ok, "password": PASSWORD, "teams": "ops"}),
        json!({"name": "mysql", "endpoint": ok, "password": PASSWORD, "teams": ["ops"], "colour": "red"}),
    ] {
        log.refused(admin, Method::POST, "/v1/services", Some(body))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
    admin
        .refused(Method::GET, "/v1/services/mysql", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_unless_the_host_is_allowed() {
    let People { app, .. } = people().await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for endpoint in ["http://example.com/api", "http://localhost:8080"] {
        let problem = log
            .refused(
                admin,
                Method::POST,
                "/v1/services",
                Some(json!({"name": "mysql", "endpoint": endpoint, "password": PASSWORD, "teams": ["ops"]})),
            )
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), ["endpoint"]);
        assert!(problem.detail().contains("https"), "{problem}");
    }
    // https to any host, plain http to an allowed one; a trailing `/` is dropped.
    let secure = register(admin, "mysql", "https://example.com/api/", &["ops"])
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(secure.body["endpoint"], "https://example.com/api");
    register(admin, "redis", "http://127.0.0.1:9", &["ops"])
        .await
        .expect(StatusCode::CREATED);
    // PATCH keeps the rule.
    let log = admin.log_head().await;
    let problem = log
        .refused(
            admin,
            Method::PATCH,
            "/v1/services/mysql",
            Some(json!({"endpoint": "http://example.com/api", "password": PASSWORD})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(problem.fields(), ["endpoint"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_name_is_one_service_at_a_time() {
    let World { app, service, .. } = world().await;
    let admin = &app.api;
    let log = admin.log_head().await;
    let again = log
        .refused(
            admin,
            Method::POST,
            "/v1/services",
            Some(json!({"name": "mysql", "endpoint": service.base, "password": PASSWORD, "teams": ["ops"]})),
        )
        .await
        .expect(StatusCode::CONFLICT, "service_exists");
    assert!(again.detail().contains("mysql"), "{again}");
    // Removed, its name is free, for a service that starts clean.
    admin
        .call(Method::DELETE, "/v1/services/mysql", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .refused(Method::GET, "/v1/services/mysql", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    let other = ServiceApi::start().await;
    let fresh = register(admin, "mysql", &other.base, &["ops"])
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(fresh["endpoint"], other.base.as_str());
    assert_eq!(fresh["instances"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_or_a_member_of_every_team_named_registers_a_service() {
    let People { app, bob, .. } = people().await;
    let service = ServiceApi::start().await;
    let log = app.api.log_head().await;
    for teams in [vec!["ops"], vec!["web", "ops"]] {
        log.refused(
            &bob,
            Method::POST,
            "/v1/services",
            Some(json!({"name": "redis", "endpoint": service.base, "password": PASSWORD, "teams": teams})),
        )
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    let mine = register(&bob, "redis", &service.base, &["web"])
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(mine["owner_teams"], json!(["web"]));
}

// ---- Who sees and manages a service ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_seen_only_by_its_teams_and_admins() {
    let World {
        app: _app,
        ann,
        bob,
        ..
    } = world().await;
    assert_eq!(names(&ann.get("/v1/services").await.body), ["mysql"]);
    let listed = bob.get("/v1/services").await.expect(StatusCode::OK);
    assert_eq!(listed.body, json!([]));
    for path in ["/v1/services/mysql", "/v1/services/mysql/doc", INSTANCES] {
        bob.refused(Method::GET, path, None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_granted_the_service_sees_it_and_creates_instances_until_revoked() {
    let World {
        app, service, bob, ..
    } = world().await;
    let admin = &app.api;
    admin
        .call(Method::PUT, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let read = bob
        .get("/v1/services/mysql")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(read["teams"], json!(["ops", "web"]));
    assert_eq!(read["owner_teams"], json!(["ops"]), "a grant owns nothing");
    let created = bob
        .post(INSTANCES, json!({"name": "blog-db", "team_owner": "web"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(created["team_owner"], "web");
    let got = service.requests_of(Call::Create);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].field("team"), Some("web"));
    // Granted again: nothing written.
    let log = admin.log_head().await;
    admin
        .call(Method::PUT, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    log.assert_unchanged("granting a granted team").await;
    // Revoked: bob's team no longer sees the service, nor creates instances of it.
    admin
        .call(Method::DELETE, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let read = admin.get("/v1/services/mysql").await.body;
    assert_eq!(read["teams"], json!(["ops"]));
    bob.refused(Method::GET, "/v1/services/mysql", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    let log = admin.log_head().await;
    log.refused(
        &bob,
        Method::POST,
        INSTANCES,
        Some(json!({"name": "blog-db2", "team_owner": "web"})),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(service.requests_of(Call::Create).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_team_is_not_revoked_and_an_unknown_team_is_not_granted() {
    let World { app, .. } = world().await;
    let admin = &app.api;
    let log = admin.log_head().await;
    log.refused(admin, Method::DELETE, "/v1/services/mysql/teams/ops", None)
        .await
        .expect(StatusCode::CONFLICT, "owner_team");
    log.refused(admin, Method::PUT, "/v1/services/mysql/teams/nosuch", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    log.refused(admin, Method::DELETE, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_a_granted_team_uses_the_service_but_does_not_manage_it() {
    let World { app, bob, .. } = world().await;
    let admin = &app.api;
    admin
        .call(Method::PUT, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let log = admin.log_head().await;
    for (method, path, body) in [
        (
            Method::PATCH,
            "/v1/services/mysql",
            Some(json!({"endpoint": "https://example.com", "password": PASSWORD})),
        ),
        (Method::DELETE, "/v1/services/mysql", None),
        (Method::PUT, "/v1/services/mysql/teams/ops", None),
        (Method::DELETE, "/v1/services/mysql/teams/web", None),
    ] {
        log.refused(&bob, method, path, body)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    let answer = put_text(&bob, "/v1/services/mysql/doc", "mine now").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    log.assert_unchanged("bob's doc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doc_is_plain_text_set_by_an_owner_and_read_by_its_teams() {
    let World { app, ann, .. } = world().await;
    let read = |client: Api| async move {
        let response = client
            .request(Method::GET, "/v1/services/mysql/doc")
            .send()
            .await
            .unwrap();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (response.status(), kind, response.text().await.unwrap())
    };
    let (status, kind, text) = read(ann.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/plain"), "{kind}");
    assert_eq!(text, "MySQL databases, one per instance");
    let doc = "# mysql\n\nPlans: small, large.\n";
    let answer = put_text(&ann, "/v1/services/mysql/doc", doc).await;
    assert!(
        answer.status.is_success(),
        "{} {}",
        answer.status,
        answer.body
    );
    assert_eq!(read(ann.clone()).await.2, doc);
    assert_eq!(read(app.api.clone()).await.2, doc);
    // The same doc again writes nothing.
    let log = app.api.log_head().await;
    let answer = put_text(&ann, "/v1/services/mysql/doc", doc).await;
    assert!(
        answer.status.is_success(),
        "{} {}",
        answer.status,
        answer.body
    );
    log.assert_unchanged("the same doc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patched_endpoint_and_password_are_what_later_calls_use() {
    let World {
        app, service, ann, ..
    } = world().await;
    let other = ServiceApi::start().await;
    let new_password = "svc-password-2-9d04e6";
    let patched = app
        .api
        .call(
            Method::PATCH,
            "/v1/services/mysql",
            Some(json!({"endpoint": other.base, "password": new_password})),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(patched["endpoint"], other.base.as_str());
    assert!(!patched.to_string().contains(new_password), "{patched}");
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    assert!(service.requests().is_empty(), "{:?}", service.requests());
    let got = other.requests_of(Call::Create);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].basic_auth(), (Some("mysql"), Some(new_password)));
    let shown = serde_json::to_string(&(
        app.api.all_events().await,
        app.api.get("/v1/audit?limit=1000").await.body,
    ))
    .unwrap();
    assert!(!shown.contains(new_password));
    assert!(!stored_text(&app).await.contains(new_password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_endpoint_needs_the_password_again() {
    let World {
        app, service, ann, ..
    } = world().await;
    let admin = &app.api;
    let other = ServiceApi::start().await;
    let log = admin.log_head().await;
    let problem = log
        .refused(
            admin,
            Method::PATCH,
            "/v1/services/mysql",
            Some(json!({"endpoint": other.base})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(problem.fields(), ["password"], "{problem}");
    assert_eq!(
        admin.get("/v1/services/mysql").await.body["endpoint"],
        service.base.as_str()
    );
    // The stored password went nowhere: the new host heard nothing.
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    assert_eq!(service.requests_of(Call::Create).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_a_service_names_is_not_removed() {
    let World { app, ann, bob, .. } = world().await;
    let admin = &app.api;
    // dba owns redis; web was granted mysql. Neither team has an app.
    ann.post("/v1/teams", json!({"name": "dba"}))
        .await
        .expect(StatusCode::CREATED);
    let redis = ServiceApi::start().await;
    register(admin, "redis", &redis.base, &["dba"])
        .await
        .expect(StatusCode::CREATED);
    admin
        .call(Method::PUT, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let log = admin.log_head().await;
    for (client, team) in [(&ann, "dba"), (&bob, "web")] {
        log.refused(client, Method::DELETE, &format!("/v1/teams/{team}"), None)
            .await
            .expect(StatusCode::CONFLICT, "team_has_services");
    }
    // No longer named: removed.
    admin
        .call(Method::DELETE, "/v1/services/redis", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .call(Method::DELETE, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    for (client, team) in [(&ann, "dba"), (&bob, "web")] {
        client
            .call(Method::DELETE, &format!("/v1/teams/{team}"), None)
            .await
            .expect(StatusCode::NO_CONTENT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_that_owns_an_instance_is_not_removed() {
    let World {
        app, bob, service, ..
    } = world().await;
    let admin = &app.api;
    admin
        .call(Method::PUT, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    bob.post(INSTANCES, json!({"name": "blog-db", "team_owner": "web"}))
        .await
        .expect(StatusCode::CREATED);
    // Revoked from the service, web still owns the instance.
    admin
        .call(Method::DELETE, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let log = admin.log_head().await;
    log.refused(&bob, Method::DELETE, "/v1/teams/web", None)
        .await
        .expect(StatusCode::CONFLICT, "team_has_instances");
    admin
        .call(Method::DELETE, &format!("{INSTANCES}/blog-db"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(service.requests_of(Call::Remove).len(), 1);
    bob.call(Method::DELETE, "/v1/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

// ---- Instances ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_instance_calls_the_service_with_the_form_and_basic_auth() {
    let World {
        app, service, ann, ..
    } = world().await;
    let answer = create(&ann, "db1").await.expect(StatusCode::CREATED);
    assert!(answer.header("bosun-position").parse::<u64>().is_ok());
    let created = answer.body;
    assert_eq!(created["name"], "db1");
    assert_eq!(created["service"], "mysql");
    assert_eq!(created["plan"], "small");
    assert_eq!(created["team_owner"], "ops");
    assert_eq!(created["teams"], json!(["ops"]));
    assert_eq!(created["apps"], json!([]));
    assert_eq!(created["description"], "the shop's database");
    assert_eq!(created["state"], "ready");
    assert!(created["pending"].is_null(), "{created}");
    assert!(created["version"].as_u64().is_some(), "{created}");
    // What the service got: one form POST, with the service's name and password.
    let got = service.requests_of(Call::Create);
    assert_eq!(got.len(), 1, "{got:?}");
    let request = &got[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/resources")
    );
    assert!(
        request
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")),
        "{request:?}"
    );
    assert_eq!(request.field("name"), Some("db1"));
    assert_eq!(request.field("plan"), Some("small"));
    assert_eq!(request.field("team"), Some("ops"));
    assert_eq!(request.basic_auth(), (Some("mysql"), Some(PASSWORD)));
    assert!(service.resources().contains_key("db1"));
    // What Bosun recorded and reads.
    let read = ann
        .get(&format!("{INSTANCES}/db1"))
        .await
        .expect(StatusCode::OK)
        .body;
    for field in [
        "name",
        "service",
        "plan",
        "team_owner",
        "teams",
        "apps",
        "description",
        "state",
    ] {
        assert_eq!(read[field], created[field], "{field}: {read}");
    }
    assert_eq!(names(&ann.get(INSTANCES).await.body), ["db1"]);
    assert_eq!(
        ann.get("/v1/services/mysql").await.body["instances"],
        json!(["db1"])
    );
    assert_eq!(
        stream_types(&app.api, "instance-mysql.db1").await,
        ["InstanceCreationRequested", "InstanceCreated"]
    );
    assert!(stream_types(&app.api, "service-mysql")
        .await
        .contains(&"ServiceInstanceAdded".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_name_is_one_instance_of_a_service_at_a_time() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    let log = app.api.log_head().await;
    log.refused(
        &ann,
        Method::POST,
        INSTANCES,
        Some(json!({"name": "db1", "team_owner": "ops"})),
    )
    .await
    .expect(StatusCode::CONFLICT, "instance_exists");
    assert_eq!(service.requests_of(Call::Create).len(), 1);
    // A malformed name is refused before the service hears of it.
    for name in ["DB1", "1db", "db_1", ""] {
        let problem = log
            .refused(
                &ann,
                Method::POST,
                INSTANCES,
                Some(json!({"name": name, "team_owner": "ops"})),
            )
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), ["name"], "{name}: {problem}");
    }
    assert_eq!(service.requests_of(Call::Create).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_team_granted_the_service_owns_an_instance_of_it() {
    let World {
        app, service, ann, ..
    } = world().await;
    let admin = &app.api;
    let log = admin.log_head().await;
    // The admin may do anything, yet web was not granted mysql.
    log.refused(
        admin,
        Method::POST,
        INSTANCES,
        Some(json!({"name": "db1", "team_owner": "web"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "team_not_granted");
    // Ann is not in web at all.
    log.refused(
        &ann,
        Method::POST,
        INSTANCES,
        Some(json!({"name": "db1", "team_owner": "web"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    assert!(service.requests().is_empty(), "{:?}", service.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_the_service_refuses_is_502_with_its_message_and_leaves_no_instance() {
    let World {
        app, service, ann, ..
    } = world().await;
    service.set(Call::Create, Mode::fail(500, "no capacity left in zone b"));
    let problem = create(&ann, "db1")
        .await
        .problem()
        .expect(StatusCode::BAD_GATEWAY, "service_unavailable");
    assert!(
        problem.detail().contains("no capacity left in zone b"),
        "{problem}"
    );
    ann.refused(Method::GET, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(ann.get(INSTANCES).await.body, json!([]));
    assert_eq!(
        ann.get("/v1/services/mysql").await.body["instances"],
        json!([])
    );
    let failed = events_of(&app.api, "InstanceCreationFailed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["data"]["status"], 500);
    assert!(failed[0]["data"]["message"]
        .as_str()
        .unwrap()
        .contains("no capacity left in zone b"));
    // Nothing left pending; the name is free once the service works.
    service.set(Call::Create, Mode::Ok);
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    assert_eq!(service.requests_of(Call::Create).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = world().await;
    service.set(Call::Create, Mode::Redirect("/elsewhere".into()));
    create(&ann, "db1")
        .await
        .problem()
        .expect(StatusCode::BAD_GATEWAY, "service_unavailable");
    assert_eq!(service.requests_of(Call::Create).len(), 1);
    let followed: Vec<_> = service
        .requests()
        .into_iter()
        .filter(|r| r.path == "/elsewhere")
        .collect();
    assert!(followed.is_empty(), "{followed:?}");
    ann.refused(Method::GET, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_the_service_does_not_answer_is_202_and_the_reactor_finishes_it() {
    let World {
        app, service, ann, ..
    } = world().await;
    // The first two asks are done and never answered (the second is the reactor's, which cannot
    // end before the answer's wait does); the third is answered.
    service.next(Call::Create, Mode::Hang);
    service.next(Call::Create, Mode::Hang);
    let started = Instant::now();
    let answer = create(&ann, "db1").await.expect(StatusCode::ACCEPTED);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the answer waited {:?}",
        started.elapsed()
    );
    let pending = answer.body;
    assert_eq!(pending["name"], "db1");
    assert_eq!(pending["state"], "creating");
    assert_eq!(pending["pending"]["operation"], "create", "{pending}");
    // The service did create it.
    assert!(service.resources().contains_key("db1"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let read = ann.get(&format!("{INSTANCES}/db1")).await.body;
        if read["state"] == "ready" {
            break read;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {read}; the service got {:#?}; the stream: {:?}",
            service.requests(),
            stream_types(&app.api, "instance-mysql.db1").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(ready["pending"].is_null(), "{ready}");
    // Tried again (its 409 to the third ask: created), each attempt with the same form.
    let got = service.requests_of(Call::Create);
    assert_eq!(got.len(), 3, "{got:?}");
    for request in &got {
        assert_eq!(request.field("name"), Some("db1"));
        assert_eq!(request.basic_auth(), (Some("mysql"), Some(PASSWORD)));
    }
    let types = stream_types(&app.api, "instance-mysql.db1").await;
    assert_eq!(
        types.first().map(String::as_str),
        Some("InstanceCreationRequested")
    );
    assert_eq!(
        types.last().map(String::as_str),
        Some("InstanceCreated"),
        "{types:?}"
    );
    assert!(
        types.contains(&"ServiceCallFailed".to_string()),
        "{types:?}"
    );
    assert!(
        !types.contains(&"InstanceCreationFailed".to_string()),
        "{types:?}"
    );
    let created = events_of(&app.api, "InstanceCreated").await;
    assert_eq!(created[0]["metadata"]["actor"], "services", "{created:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_still_being_created_is_not_bound() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = world().await;
    service.set(Call::Create, Mode::Hang);
    create(&ann, "db1").await.expect(StatusCode::ACCEPTED);
    bind(&ann, "db1", "shop")
        .await
        .problem()
        .expect(StatusCode::CONFLICT, "instance_pending");
    assert!(service.requests_of(Call::Bind).is_empty());
    assert!(env(&ann, "shop").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_instance_calls_the_service_and_frees_its_name() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    ann.call(Method::DELETE, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let got = service.requests_of(Call::Remove);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("DELETE", "/resources/db1")
    );
    assert_eq!(got[0].basic_auth(), (Some("mysql"), Some(PASSWORD)));
    assert!(service.resources().is_empty());
    ann.refused(Method::GET, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        ann.get("/v1/services/mysql").await.body["instances"],
        json!([])
    );
    let types = stream_types(&app.api, "instance-mysql.db1").await;
    assert_eq!(
        &types[types.len() - 2..],
        ["InstanceRemovalRequested", "InstanceRemoved"]
    );
    assert!(stream_types(&app.api, "service-mysql")
        .await
        .contains(&"ServiceInstanceDropped".to_string()));
    create(&ann, "db1").await.expect(StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_the_service_refuses_is_502_and_the_instance_stays() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    service.set(
        Call::Remove,
        Mode::fail(500, "resource is locked by a backup"),
    );
    let problem = ann
        .call(Method::DELETE, &format!("{INSTANCES}/db1"), None)
        .await
        .problem()
        .expect(StatusCode::BAD_GATEWAY, "service_unavailable");
    assert!(problem.detail().contains("locked by a backup"), "{problem}");
    let read = ann
        .get(&format!("{INSTANCES}/db1"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(read["state"], "ready");
    assert!(read["pending"].is_null(), "{read}");
    service.set(Call::Remove, Mode::Ok);
    ann.call(Method::DELETE, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_with_instances_is_not_removed() {
    let World {
        app, service, ann, ..
    } = world().await;
    let admin = &app.api;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    let log = admin.log_head().await;
    let problem = log
        .refused(admin, Method::DELETE, "/v1/services/mysql", None)
        .await
        .expect(StatusCode::CONFLICT, "service_has_instances");
    // Counted, not named: its managers may not see every instance.
    assert!(problem.detail().contains("1 instance"), "{problem}");
    assert!(!problem.detail().contains("db1"), "{problem}");
    admin.get("/v1/services/mysql").await.expect(StatusCode::OK);
    ann.call(Method::DELETE, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .call(Method::DELETE, "/v1/services/mysql", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(admin.get("/v1/services").await.body, json!([]));
    // Removing the service calls nothing itself.
    assert_eq!(service.requests().len(), 2, "{:?}", service.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_seen_only_by_its_teams() {
    let World { app, ann, bob, .. } = world().await;
    app.api
        .call(Method::PUT, "/v1/services/mysql/teams/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    // Bob sees the service (web was granted it), not ann's instance of it.
    assert_eq!(
        bob.get(INSTANCES).await.expect(StatusCode::OK).body,
        json!([])
    );
    assert_eq!(
        bob.get("/v1/services/mysql").await.body["instances"],
        json!([])
    );
    let log = app.api.log_head().await;
    for (method, path) in [
        (Method::GET, format!("{INSTANCES}/db1")),
        (Method::GET, format!("{INSTANCES}/db1/status")),
        (Method::DELETE, format!("{INSTANCES}/db1")),
    ] {
        log.refused(&bob, method, &path, None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(ann.get(INSTANCES).await.body[0]["name"], "db1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_503_is_tried_again() {
    let World {
        app, service, ann, ..
    } = world().await;
    service.next(Call::Create, Mode::fail(503, "warming up"));
    let answer = create(&ann, "db1").await;
    assert!(
        answer.status == StatusCode::CREATED || answer.status == StatusCode::ACCEPTED,
        "{} {}",
        answer.status,
        answer.body
    );
    let ready = wait_instance(&ann, "db1", |i| i["state"] == "ready").await;
    assert!(ready["pending"].is_null(), "{ready}");
    let got = service.requests_of(Call::Create);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter().all(|r| r.field("name") == Some("db1")),
        "{got:?}"
    );
    assert!(service.resources().contains_key("db1"));
    let types = stream_types(&app.api, "instance-mysql.db1").await;
    assert_eq!(
        types,
        [
            "InstanceCreationRequested",
            "ServiceCallFailed",
            "InstanceCreated"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_answered_404_is_done() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    service.set(Call::Remove, Mode::fail(404, "no resource db1"));
    ann.call(Method::DELETE, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(service.requests_of(Call::Remove).len(), 1);
    ann.refused(Method::GET, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        ann.get("/v1/services/mysql").await.body["instances"],
        json!([])
    );
    let types = stream_types(&app.api, "instance-mysql.db1").await;
    assert_eq!(types.last().map(String::as_str), Some("InstanceRemoved"));
}

/// Calls time out after 1 s, the answer does not wait (202 at once), and a call is given up
/// after its second unanswered attempt.
const GIVE_UP_CONFIG: &str = r#"
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
services:
  timeout_seconds: 1
  wait_seconds: 0
  max_attempts: 2
"#;

/// [`world`] over [`GIVE_UP_CONFIG`].
async fn giving_up_world() -> World {
    let People { app, ann, bob } = people_with(GIVE_UP_CONFIG, "shop").await;
    let service = ServiceApi::start().await;
    register(&app.api, "mysql", &service.base, &["ops"])
        .await
        .expect(StatusCode::CREATED);
    World {
        app,
        service,
        ann,
        bob,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_never_answered_is_given_up_and_the_resource_removed() {
    let World {
        app, service, ann, ..
    } = giving_up_world().await;
    // The service creates it each time, and never answers.
    service.set(Call::Create, Mode::Hang);
    let pending = create(&ann, "db1").await.expect(StatusCode::ACCEPTED).body;
    assert_eq!(pending["state"], "creating", "{pending}");
    let failed = wait_events(&app.api, "InstanceCreationFailed", Duration::from_secs(30)).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    let data = &failed[0]["data"];
    assert!(data["status"].is_null(), "{data}");
    let message = data["message"].as_str().unwrap_or_default();
    assert!(message.contains("did not answer"), "{data}");
    assert!(message.contains("2 attempts"), "{data}");
    assert_eq!(service.requests_of(Call::Create).len(), 2);
    // Before that was recorded, what the service did was undone: one DELETE of the resource.
    let removals = service.requests_of(Call::Remove);
    assert_eq!(removals.len(), 1, "{removals:?}");
    assert_eq!(removals[0].path, "/resources/db1");
    assert_eq!(removals[0].basic_auth(), (Some("mysql"), Some(PASSWORD)));
    assert!(service.resources().is_empty(), "{:?}", service.resources());
    ann.refused(Method::GET, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        ann.get("/v1/services/mysql").await.body["instances"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_echoing_the_credentials_does_not_show_them() {
    let World {
        app, service, ann, ..
    } = world().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("mysql:{PASSWORD}"));
    service.set(
        Call::Create,
        Mode::fail(
            500,
            &format!("denied: password {PASSWORD}, header Basic {basic}"),
        ),
    );
    let problem = create(&ann, "db1")
        .await
        .problem()
        .expect(StatusCode::BAD_GATEWAY, "service_unavailable");
    assert!(problem.detail().contains("denied"), "{problem}");
    let failed = events_of(&app.api, "InstanceCreationFailed").await;
    let shown = serde_json::to_string(&(&problem.body, &failed)).unwrap();
    let stored = stored_text(&app).await;
    for secret in [PASSWORD, basic.as_str()] {
        assert!(!shown.contains(secret), "{secret} is in {shown}");
        assert!(!stored.contains(secret), "{secret} is in the events table");
    }
}

// ---- Binding ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_puts_the_services_variables_in_the_apps_env_as_private_values() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    ann.post("/v1/apps/shop/cnames", json!({"cname": "shop.example.com"}))
        .await
        .expect(StatusCode::OK);
    ann.call(
        Method::PUT,
        "/v1/apps/shop/env",
        Some(json!({"envs": [{"name": "OWN", "value": "mine"}], "restart": false})),
    )
    .await
    .expect(StatusCode::OK);
    let answer = bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    assert!(answer.header("bosun-position").parse::<u64>().is_ok());
    assert_eq!(answered_names(&answer.body), bound_names());
    assert!(!answer.body.to_string().contains(BOUND_SECRET));
    // The service got the app's name and host (its first cname), with Basic auth.
    let got = service.requests_of(Call::Bind);
    assert_eq!(got.len(), 1, "{got:?}");
    let request = &got[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/resources/db1/bind-app")
    );
    assert_eq!(request.field("app-name"), Some("shop"));
    assert_eq!(request.field("app-host"), Some("shop.example.com"));
    assert_eq!(request.basic_auth(), (Some("mysql"), Some(PASSWORD)));
    // The app's env lists them private, set by the instance; its own variable as it was.
    let listed = env(&ann, "shop").await;
    for name in bound_names() {
        let var = &listed[&name];
        assert_eq!(var["value"], Value::Null, "{var}");
        assert_eq!(var["public"], false, "{var}");
        assert_eq!(
            var["bound"],
            json!({"service": "mysql", "instance": "db1"}),
            "{var}"
        );
    }
    assert_eq!(listed["OWN"]["value"], "mine");
    assert!(listed["OWN"]["bound"].is_null(), "{}", listed["OWN"]);
    let instance = ann
        .get(&format!("{INSTANCES}/db1"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(instance["apps"], json!(["shop"]));
    // One bind, both streams: the instance's and the app's.
    let types = stream_types(&app.api, "instance-mysql.db1").await;
    assert_eq!(
        &types[types.len() - 2..],
        ["InstanceBindRequested", "InstanceBound"]
    );
    let types = stream_types(&app.api, "app-shop").await;
    assert_eq!(
        &types[types.len() - 2..],
        ["AppInstanceBindRequested", "AppInstanceBound"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_own_env_calls_do_not_touch_a_bound_name() {
    let World { app, ann, .. } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    let log = app.api.log_head().await;
    log.refused(
        &ann,
        Method::PUT,
        "/v1/apps/shop/env",
        Some(json!({"envs": [{"name": "DATABASE_URL", "value": "mine"}], "restart": false})),
    )
    .await
    .expect(StatusCode::CONFLICT, "env_bound");
    log.refused(
        &ann,
        Method::DELETE,
        "/v1/apps/shop/env?name=DATABASE_USER",
        None,
    )
    .await
    .expect(StatusCode::CONFLICT, "env_bound");
    assert!(env(&ann, "shop").await["DATABASE_URL"]["bound"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_the_app_gets_the_bound_variables() {
    let World { app: _app, ann, .. } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    assert_eq!(show(&ann).await, "url= user=\n");
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    let url = VARIABLES[0].1;
    assert_eq!(show(&ann).await, format!("url={url} user=shop\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbinding_calls_the_service_and_takes_the_variables_out_of_the_apps_env() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    unbind(&ann, "db1", "shop")
        .await
        .expect(StatusCode::NO_CONTENT);
    let got = service.requests_of(Call::Unbind);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("DELETE", "/resources/db1/bind-app")
    );
    assert_eq!(got[0].field("app-name"), Some("shop"));
    assert_eq!(got[0].basic_auth(), (Some("mysql"), Some(PASSWORD)));
    assert!(service.resources()["db1"].is_empty());
    assert!(env(&ann, "shop").await.is_empty());
    assert_eq!(
        ann.get(&format!("{INSTANCES}/db1")).await.body["apps"],
        json!([])
    );
    assert_eq!(show(&ann).await, "url= user=\n");
    let types = stream_types(&app.api, "app-shop").await;
    assert_eq!(types.last().map(String::as_str), Some("AppInstanceUnbound"));
    // The name is the app's own again.
    ann.call(
        Method::PUT,
        "/v1/apps/shop/env",
        Some(json!({"envs": [{"name": "DATABASE_URL", "value": "mine"}], "restart": false})),
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_twice_or_an_unbind_of_what_is_not_bound_is_409() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    let log = app.api.log_head().await;
    unbind(&ann, "db1", "shop")
        .await
        .problem()
        .expect(StatusCode::CONFLICT, "not_bound");
    log.assert_unchanged("unbinding what is not bound").await;
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    let log = app.api.log_head().await;
    bind(&ann, "db1", "shop")
        .await
        .problem()
        .expect(StatusCode::CONFLICT, "already_bound");
    log.assert_unchanged("binding again").await;
    assert_eq!(service.requests_of(Call::Bind).len(), 1);
    assert!(service.requests_of(Call::Unbind).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_needs_the_instances_team_and_the_apps() {
    let World {
        app,
        service,
        ann,
        bob,
    } = world().await;
    bob.post(
        "/v1/apps",
        json!({"name": "blog", "platform": "python", "team_owner": "web"}),
    )
    .await
    .expect(StatusCode::CREATED);
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    let log = app.api.log_head().await;
    // Ann's instance, bob's app: ann may not change blog.
    log.refused(
        &ann,
        Method::PUT,
        &format!("{INSTANCES}/db1/apps/blog"),
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    // Bob does not see the instance (nor the service).
    log.refused(
        &bob,
        Method::PUT,
        &format!("{INSTANCES}/db1/apps/blog"),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not_found");
    // No such app.
    log.refused(
        &ann,
        Method::PUT,
        &format!("{INSTANCES}/db1/apps/nosuch"),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not_found");
    assert!(service.requests_of(Call::Bind).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_the_service_refuses_leaves_nothing_bound_and_says_why() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    service.set(
        Call::Bind,
        Mode::fail(500, "too many connections for plan small"),
    );
    let problem = bind(&ann, "db1", "shop")
        .await
        .problem()
        .expect(StatusCode::BAD_GATEWAY, "service_unavailable");
    assert!(
        problem
            .detail()
            .contains("too many connections for plan small"),
        "{problem}"
    );
    assert_eq!(service.requests_of(Call::Bind).len(), 1);
    assert!(env(&ann, "shop").await.is_empty());
    assert_eq!(
        ann.get(&format!("{INSTANCES}/db1")).await.body["apps"],
        json!([])
    );
    let failed = events_of(&app.api, "InstanceBindFailed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["data"]["status"], 500);
    assert_eq!(events_of(&app.api, "AppInstanceBindFailed").await.len(), 1);
    // Nothing holds either side: the app and the instance are removed without a word.
    ann.call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    ann.call(Method::DELETE, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_answered_with_what_bosun_cannot_use_binds_nothing() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    for garbage in [
        "this is not json",
        r#"["DATABASE_URL"]"#,
        r#"{"DATABASE_URL": 5432}"#,
        r#"{"DATABASE_URL": {"host": "db"}}"#,
        r#"{"1BAD": "x"}"#,
        r#"{"BAD NAME": "x"}"#,
    ] {
        service.set(Call::Bind, Mode::Garbage(garbage.to_string()));
        bind(&ann, "db1", "shop")
            .await
            .problem()
            .expect(StatusCode::BAD_GATEWAY, "service_unavailable");
        assert!(env(&ann, "shop").await.is_empty(), "after {garbage}");
        let instance = ann.get(&format!("{INSTANCES}/db1")).await.body;
        assert_eq!(instance["apps"], json!([]), "after {garbage}");
        assert!(instance["pending"].is_null(), "after {garbage}: {instance}");
    }
    // A usable answer binds.
    service.set(Call::Bind, Mode::Ok);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_instance_is_not_removed() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    let log = app.api.log_head().await;
    let problem = log
        .refused(&ann, Method::DELETE, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::CONFLICT, "instance_bound");
    // Counted, not named: the instance's teams may not see every app bound to it.
    assert!(problem.detail().contains("1 app"), "{problem}");
    assert!(!problem.detail().contains("shop"), "{problem}");
    assert!(service.requests_of(Call::Remove).is_empty());
    assert_eq!(
        ann.get(&format!("{INSTANCES}/db1")).await.body["apps"],
        json!(["shop"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_the_service_does_not_answer_is_202_and_the_reactor_finishes_it() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    // The first two asks are done and never answered (the second is the reactor's, which
    // cannot end before the answer's wait does); the third is answered.
    service.next(Call::Bind, Mode::Hang);
    service.next(Call::Bind, Mode::Hang);
    let pending = bind(&ann, "db1", "shop")
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(pending["pending"]["operation"], "bind", "{pending}");
    assert_eq!(pending["pending"]["app"], "shop", "{pending}");
    assert_eq!(pending["apps"], json!([]), "{pending}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed = env(&ann, "shop").await;
        if listed.keys().cloned().collect::<BTreeSet<_>>() == bound_names() {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "never bound: {listed:?}; the service got {:#?}",
            service.requests()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for var in listed.values() {
        assert_eq!(
            var["bound"],
            json!({"service": "mysql", "instance": "db1"}),
            "{var}"
        );
    }
    let instance = wait_instance(&ann, "db1", |i| i["pending"].is_null()).await;
    assert_eq!(instance["apps"], json!(["shop"]), "{instance}");
    let got = service.requests_of(Call::Bind);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter().all(|r| r.field("app-name") == Some("shop")),
        "{got:?}"
    );
    let types = stream_types(&app.api, "instance-mysql.db1").await;
    assert_eq!(
        &types[1..],
        [
            "InstanceCreated",
            "InstanceBindRequested",
            "ServiceCallFailed",
            "ServiceCallFailed",
            "InstanceBound"
        ]
    );
    let url = VARIABLES[0].1;
    assert_eq!(show(&ann).await, format!("url={url} user=shop\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbind_the_service_refuses_is_502_and_the_variables_stay() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    service.set(Call::Unbind, Mode::fail(500, "replica is lagging"));
    let problem = unbind(&ann, "db1", "shop")
        .await
        .problem()
        .expect(StatusCode::BAD_GATEWAY, "service_unavailable");
    assert!(problem.detail().contains("replica is lagging"), "{problem}");
    assert_eq!(service.requests_of(Call::Unbind).len(), 1);
    let listed = env(&ann, "shop").await;
    assert_eq!(
        listed.keys().cloned().collect::<BTreeSet<_>>(),
        bound_names()
    );
    assert!(listed["DATABASE_URL"]["bound"].is_object(), "{listed:?}");
    let instance = ann
        .get(&format!("{INSTANCES}/db1"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(instance["apps"], json!(["shop"]), "{instance}");
    assert!(instance["pending"].is_null(), "{instance}");
    assert_eq!(events_of(&app.api, "InstanceUnbindFailed").await.len(), 1);
    assert!(events_of(&app.api, "AppInstanceUnbound").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_answered_with_what_bosun_cannot_use_is_unbound_at_the_service() {
    let World {
        app: _app,
        service,
        ann,
        ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    service.set(
        Call::Bind,
        Mode::Garbage(r#"{"DATABASE_URL": 5432}"#.to_string()),
    );
    bind(&ann, "db1", "shop")
        .await
        .problem()
        .expect(StatusCode::BAD_GATEWAY, "service_unavailable");
    // Undone before the refusal was recorded: one DELETE of the binding.
    let unbinds = service.requests_of(Call::Unbind);
    assert_eq!(unbinds.len(), 1, "{unbinds:?}");
    assert_eq!(unbinds[0].path, "/resources/db1/bind-app");
    assert_eq!(unbinds[0].field("app-name"), Some("shop"));
    assert_eq!(unbinds[0].basic_auth(), (Some("mysql"), Some(PASSWORD)));
    assert!(env(&ann, "shop").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_never_answered_is_given_up_and_unbound_at_the_service() {
    let World {
        app, service, ann, ..
    } = giving_up_world().await;
    ann.post(INSTANCES, json!({"name": "db1", "team_owner": "ops"}))
        .await
        .expect(StatusCode::ACCEPTED);
    wait_instance(&ann, "db1", |i| i["state"] == "ready").await;
    service.set(Call::Bind, Mode::Hang);
    bind(&ann, "db1", "shop").await.expect(StatusCode::ACCEPTED);
    let failed = wait_events(&app.api, "InstanceBindFailed", Duration::from_secs(30)).await;
    let data = &failed[0]["data"];
    assert!(data["status"].is_null(), "{data}");
    assert!(
        data["message"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer"),
        "{data}"
    );
    assert_eq!(service.requests_of(Call::Bind).len(), 2);
    let unbinds = service.requests_of(Call::Unbind);
    assert_eq!(unbinds.len(), 1, "{unbinds:?}");
    assert_eq!(unbinds[0].field("app-name"), Some("shop"));
    assert!(service.resources()["db1"].is_empty());
    assert!(env(&ann, "shop").await.is_empty());
    let instance = wait_instance(&ann, "db1", |i| i["pending"].is_null()).await;
    assert_eq!(instance["apps"], json!([]), "{instance}");
}

/// [`world`], with a second service `redis` (teams `[ops]`) whose binds set `DATABASE_URL`
/// too, and its instance `cache`: the redis service API.
async fn second_service(world: &World) -> ServiceApi {
    let redis = ServiceApi::with_variables(&[("DATABASE_URL", REDIS_URL)]).await;
    register(&world.app.api, "redis", &redis.base, &["ops"])
        .await
        .expect(StatusCode::CREATED);
    create_of(&world.ann, "redis", "cache")
        .await
        .expect(StatusCode::CREATED);
    redis
}

const REDIS_URL: &str = "redis://cache.internal:6379/0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_bind_wins_and_unbinding_it_restores_the_earlier_value() {
    let world = world().await;
    let _redis = second_service(&world).await;
    let ann = &world.ann;
    create(ann, "db1").await.expect(StatusCode::CREATED);
    bind(ann, "db1", "shop").await.expect(StatusCode::OK);
    bind_of(ann, "redis", "cache", "shop")
        .await
        .expect(StatusCode::OK);
    assert_eq!(show(ann).await, format!("url={REDIS_URL} user=shop\n"));
    let listed = env(ann, "shop").await;
    assert_eq!(
        listed["DATABASE_URL"]["bound"],
        json!({"service": "redis", "instance": "cache"})
    );
    assert_eq!(
        listed["DATABASE_USER"]["bound"],
        json!({"service": "mysql", "instance": "db1"})
    );
    unbind_of(ann, "redis", "cache", "shop")
        .await
        .expect(StatusCode::NO_CONTENT);
    let url = VARIABLES[0].1;
    assert_eq!(show(ann).await, format!("url={url} user=shop\n"));
    let listed = env(ann, "shop").await;
    assert_eq!(
        listed["DATABASE_URL"]["bound"],
        json!({"service": "mysql", "instance": "db1"}),
        "{listed:?}"
    );
    assert_eq!(listed["DATABASE_URL"]["value"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbinding_the_earlier_bind_leaves_the_later_value() {
    let world = world().await;
    let _redis = second_service(&world).await;
    let ann = &world.ann;
    create(ann, "db1").await.expect(StatusCode::CREATED);
    bind(ann, "db1", "shop").await.expect(StatusCode::OK);
    bind_of(ann, "redis", "cache", "shop")
        .await
        .expect(StatusCode::OK);
    unbind(ann, "db1", "shop")
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(show(ann).await, format!("url={REDIS_URL} user=\n"));
    let listed = env(ann, "shop").await;
    assert_eq!(
        listed.keys().map(String::as_str).collect::<Vec<_>>(),
        ["DATABASE_URL"]
    );
    assert_eq!(
        listed["DATABASE_URL"]["bound"],
        json!({"service": "redis", "instance": "cache"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_variable_a_bind_overrides_comes_back_on_unbind() {
    let World { app: _app, ann, .. } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    ann.call(
        Method::PUT,
        "/v1/apps/shop/env",
        Some(json!({"envs": [{"name": "DATABASE_URL", "value": "sqlite:///mine.db"}], "restart": false})),
    )
    .await
    .expect(StatusCode::OK);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    let url = VARIABLES[0].1;
    assert_eq!(show(&ann).await, format!("url={url} user=shop\n"));
    let listed = env(&ann, "shop").await;
    assert_eq!(listed["DATABASE_URL"]["value"], Value::Null, "{listed:?}");
    assert!(listed["DATABASE_URL"]["bound"].is_object(), "{listed:?}");
    unbind(&ann, "db1", "shop")
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(show(&ann).await, "url=sqlite:///mine.db user=\n");
    let listed = env(&ann, "shop").await;
    assert_eq!(
        listed.keys().map(String::as_str).collect::<Vec<_>>(),
        ["DATABASE_URL"]
    );
    let own = &listed["DATABASE_URL"];
    assert_eq!(own["value"], "sqlite:///mine.db", "{own}");
    assert_eq!(own["public"], true, "{own}");
    assert!(own.get("bound").is_none(), "{own}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_shows_the_instances_bound_to_it() {
    let World { app: _app, ann, .. } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    let instances = |ann: Api| async move {
        let one = ann.get("/v1/apps/shop").await.expect(StatusCode::OK).body;
        let list = ann.get("/v1/apps").await.expect(StatusCode::OK).body;
        assert_eq!(list[0]["name"], "shop", "{list}");
        assert_eq!(list[0]["instances"], one["instances"], "{list} {one}");
        one["instances"].clone()
    };
    assert_eq!(instances(ann.clone()).await, json!([]));
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    assert_eq!(instances(ann.clone()).await, json!(["mysql/db1"]));
    unbind(&ann, "db1", "shop")
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(instances(ann.clone()).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_app_unbinds_its_instances_first() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    let answer = ann
        .call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(answer.header("bosun-position").parse::<u64>().is_ok());
    let unbinds = service.requests_of(Call::Unbind);
    assert_eq!(unbinds.len(), 1, "{unbinds:?}");
    assert_eq!(unbinds[0].path, "/resources/db1/bind-app");
    assert_eq!(unbinds[0].field("app-name"), Some("shop"));
    assert!(service.resources()["db1"].is_empty());
    ann.refused(Method::GET, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        ann.get(&format!("{INSTANCES}/db1")).await.body["apps"],
        json!([])
    );
    // Unbound without a restart, then removed.
    let events = stream_events(&app.api, "app-shop").await;
    let unbound = events
        .iter()
        .position(|e| e["event_type"] == "AppInstanceUnbound")
        .unwrap_or_else(|| panic!("not unbound: {events:?}"));
    assert_eq!(events[unbound]["data"]["restart"], false);
    assert_eq!(unbound, events.len() - 2, "{events:?}");
    // The instance is free to go.
    ann.call(Method::DELETE, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_whose_unbind_the_service_refuses_is_not_removed() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    service.set(Call::Unbind, Mode::fail(500, "backup in progress"));
    let problem = ann
        .call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .problem()
        .expect(StatusCode::BAD_GATEWAY, "service_unavailable");
    assert!(problem.detail().contains("mysql/db1"), "{problem}");
    assert!(problem.detail().contains("backup in progress"), "{problem}");
    ann.get("/v1/apps/shop").await.expect(StatusCode::OK);
    assert_eq!(
        env(&ann, "shop")
            .await
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        bound_names()
    );
    assert_eq!(
        ann.get(&format!("{INSTANCES}/db1")).await.body["apps"],
        json!(["shop"])
    );
    assert!(events_of(&app.api, "AppRemoved").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_still_being_unbound_is_not_removed() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    service.set(Call::Unbind, Mode::Hang);
    let problem = ann
        .call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .problem()
        .expect(StatusCode::CONFLICT, "app_has_bindings");
    assert!(problem.detail().contains("mysql/db1"), "{problem}");
    assert!(!service.requests_of(Call::Unbind).is_empty());
    ann.get("/v1/apps/shop").await.expect(StatusCode::OK);
    assert!(events_of(&app.api, "AppRemoved").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_a_bind_still_pending_is_not_removed() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    service.set(Call::Bind, Mode::Hang);
    bind(&ann, "db1", "shop").await.expect(StatusCode::ACCEPTED);
    ann.refused(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::CONFLICT, "app_has_bindings");
    assert!(service.requests_of(Call::Unbind).is_empty());
    ann.get("/v1/apps/shop").await.expect(StatusCode::OK);
    assert!(events_of(&app.api, "AppRemoved").await.is_empty());
}

/// App `web` (catalog processes: one unit of `http`), ports of its own.
const UNITS_CONFIG: &str = r#"
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
services:
  timeout_seconds: 2
  wait_seconds: 3
runner:
  kill_grace_seconds: 2
  unit_ports: "23000-23049"
catalog:
  web:
    production:
      processes:
        http:
          command: ["sh", "-c", "exec sleep 600"]
          units: 1
"#;

/// The environment of process `pid`, as the kernel has it.
fn environ(pid: i64) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("the process's environment");
    raw.split(|b| *b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            entry
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Polls app `web`'s one unit until `done` holds for it.
async fn wait_unit(api: &Api, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let app = api.get("/v1/apps/web").await.expect(StatusCode::OK).body;
        if let Some(unit) = app["units"].as_array().and_then(|u| u.first()) {
            if done(unit) {
                return unit.clone();
            }
        }
        assert!(Instant::now() < deadline, "the unit never got there: {app}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_restarts_the_apps_units_with_the_variables_unless_told_not_to() {
    let People { app, ann, .. } = people_with(UNITS_CONFIG, "web").await;
    let service = ServiceApi::start().await;
    register(&app.api, "mysql", &service.base, &["ops"])
        .await
        .expect(StatusCode::CREATED);
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    let first = wait_unit(&ann, |u| u["state"] == "started").await;
    let generation = first["generation"].as_u64().unwrap_or(0);
    bind(&ann, "db1", "web").await.expect(StatusCode::OK);
    let restarted = wait_unit(&ann, |u| {
        u["state"] == "started"
            && u["generation"].as_u64().unwrap_or(0) > generation
            && u["pid"] != first["pid"]
    })
    .await;
    let pid = restarted["pid"].as_i64().expect("a pid");
    let seen = environ(pid);
    assert_eq!(
        seen.get("DATABASE_URL").map(String::as_str),
        Some(VARIABLES[0].1)
    );
    assert_eq!(seen.get("DATABASE_USER").map(String::as_str), Some("shop"));
    // Unbound with restart=false: the unit runs on as it was.
    // Unbound, then bound again, with restart=false: recorded so, and the app's restart
    // generation (what its units restart on) stays where it was.
    let before = restart_generation(&app, "web").await;
    unbind(&ann, "db1", "web?restart=false")
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(env(&ann, "web").await.is_empty());
    let unbound = last_event(&app.api, "app-web").await;
    assert_eq!(unbound["event_type"], "AppInstanceUnbound", "{unbound}");
    assert_eq!(unbound["data"]["restart"], false, "{unbound}");
    assert_eq!(restart_generation(&app, "web").await, before);
    bind(&ann, "db1", "web?restart=false")
        .await
        .expect(StatusCode::OK);
    let bound = last_event(&app.api, "app-web").await;
    assert_eq!(bound["event_type"], "AppInstanceBound", "{bound}");
    assert_eq!(bound["data"]["restart"], false, "{bound}");
    assert_eq!(restart_generation(&app, "web").await, before);
    let after = wait_unit(&ann, |u| u["state"] == "started").await;
    assert_eq!(after["pid"], restarted["pid"], "{after}");
    assert_eq!(after["generation"], restarted["generation"], "{after}");
}

// ---- Status ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_asks_the_service_and_maps_its_answer() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    let path = format!("{INSTANCES}/db1/status");
    let log = app.api.log_head().await;
    let up = ann.get(&path).await.expect(StatusCode::OK).body;
    assert_eq!(up["status"], "up", "{up}");
    let got = service.requests_of(Call::Status);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("GET", "/resources/db1/status")
    );
    assert_eq!(got[0].basic_auth(), (Some("mysql"), Some(PASSWORD)));
    service.set(Call::Status, Mode::fail(202, "still provisioning"));
    let pending = ann.get(&path).await.expect(StatusCode::OK).body;
    assert_eq!(
        pending,
        json!({"status": "pending", "message": "still provisioning"})
    );
    service.set(Call::Status, Mode::fail(500, "  disk full\n"));
    let down = ann.get(&path).await.expect(StatusCode::OK).body;
    assert_eq!(down, json!({"status": "down", "message": "disk full"}));
    log.assert_unchanged("reading the status").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_answer_is_down_with_the_reason() {
    let World {
        app, service, ann, ..
    } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    let path = format!("{INSTANCES}/db1/status");
    // It accepts the connection and never answers: down once the timeout is past.
    service.set(Call::Status, Mode::Hang);
    let started = Instant::now();
    let hung = ann.get(&path).await.expect(StatusCode::OK).body;
    assert_eq!(hung["status"], "down", "{hung}");
    let message = hung["message"].as_str().unwrap_or_default();
    assert!(message.contains("did not answer"), "{hung}");
    assert!(message.contains("within 2s"), "{hung}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // Nothing listens at its endpoint any more.
    app.api
        .call(
            Method::PATCH,
            "/v1/services/mysql",
            Some(json!({"endpoint": unreachable_endpoint(), "password": PASSWORD})),
        )
        .await
        .expect(StatusCode::OK);
    let gone = ann.get(&path).await.expect(StatusCode::OK).body;
    assert_eq!(gone["status"], "down", "{gone}");
    let message = gone["message"].as_str().unwrap_or_default();
    assert!(message.contains("did not answer"), "{gone}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{gone}"
    );
    assert!(!gone.to_string().contains(PASSWORD));
}

// ---- Secrets, the audit ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_and_the_bound_values_are_nowhere_in_clear() {
    let World { app, ann, .. } = world().await;
    let admin = &app.api;
    let new_password = "svc-password-3-71aa0c";
    admin
        .call(
            Method::PATCH,
            "/v1/services/mysql",
            Some(json!({"password": new_password})),
        )
        .await
        .expect(StatusCode::OK);
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    let mut answers = vec![bind(&ann, "db1", "shop").await.expect(StatusCode::OK).body];
    for client in [&ann, admin] {
        for path in [
            "/v1/services",
            "/v1/services/mysql",
            INSTANCES,
            "/v1/services/mysql/instances/db1",
            "/v1/apps/shop",
            "/v1/apps/shop/env",
        ] {
            answers.push(client.get(path).await.expect(StatusCode::OK).body);
        }
    }
    for stream in ["service-mysql", "instance-mysql.db1", "app-shop"] {
        answers.push(
            admin
                .get(&format!("/v1/streams/{stream}"))
                .await
                .expect(StatusCode::OK)
                .body,
        );
    }
    answers.push(serde_json::to_value(admin.all_events().await).unwrap());
    answers.push(admin.get("/v1/audit?limit=1000").await.body);
    let shown = serde_json::to_string(&answers).unwrap();
    let stored = stored_text(&app).await;
    // The bind is stored, its names in clear (what the secrets' absence below is checked on).
    assert!(stored.contains("AppInstanceBound"), "{stored}");
    assert!(stored.contains("DATABASE_URL"), "{stored}");
    for secret in [PASSWORD, new_password, BOUND_SECRET] {
        assert!(!shown.contains(secret), "{secret} is in an answer");
        assert!(!stored.contains(secret), "{secret} is in the events table");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_shows_who_asked_and_that_the_service_answered() {
    let World { app, ann, .. } = world().await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    unbind(&ann, "db1", "shop")
        .await
        .expect(StatusCode::NO_CONTENT);
    ann.call(Method::DELETE, &format!("{INSTANCES}/db1"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let audit = app
        .api
        .get("/v1/audit?limit=1000")
        .await
        .expect(StatusCode::OK)
        .body;
    let entries = audit.as_array().unwrap();
    let find = |action: &str, target: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["target"] == target)
            .unwrap_or_else(|| panic!("no {action} on {target} in {audit}"))
            .clone()
    };
    let registered = find("ServiceRegistered", "service-mysql");
    assert_eq!(registered["actor"], "admin");
    for (action, target) in [
        ("InstanceCreationRequested", "instance-mysql.db1"),
        ("InstanceBindRequested", "instance-mysql.db1"),
        ("AppInstanceBindRequested", "app-shop"),
        ("InstanceUnbindRequested", "instance-mysql.db1"),
        ("InstanceRemovalRequested", "instance-mysql.db1"),
    ] {
        let entry = find(action, target);
        assert_eq!(entry["actor"], "ann", "{entry}");
        assert_eq!(entry["source"], "127.0.0.1", "{entry}");
        assert!(entry["request_id"].is_string(), "{entry}");
    }
    for (action, target) in [
        ("InstanceCreated", "instance-mysql.db1"),
        ("InstanceBound", "instance-mysql.db1"),
        ("AppInstanceBound", "app-shop"),
        ("InstanceUnbound", "instance-mysql.db1"),
        ("AppInstanceUnbound", "app-shop"),
        ("InstanceRemoved", "instance-mysql.db1"),
    ] {
        assert_eq!(find(action, target)["actor"], "services", "{action}");
    }
}

/// The live feed (`/v1/events/live` over a WebSocket, as the admin) from position 1 until the
/// event at `last`.
async fn live_feed(app: &TestApp, last: u64, socket: Option<Socket>) -> Vec<Value> {
    let mut socket = match socket {
        Some(socket) => socket,
        None => open_live_feed(app).await,
    };
    let mut got: Vec<Value> = Vec::new();
    while got.last().and_then(|e| e["position"].as_u64()).unwrap_or(0) < last {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .unwrap_or_else(|_| panic!("no event within 30 s after {:?}", got.last()))
            .expect("the feed ended")
            .expect("a WebSocket error");
        match message {
            Message::Text(text) => got.push(serde_json::from_str(&text).expect("an envelope")),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
    got
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_live_feed(app: &TestApp) -> Socket {
    let mut request = format!("ws://{}/v1/events/live?from=1", app.address)
        .into_client_request()
        .expect("a WebSocket request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.api.token)
            .parse()
            .expect("a header"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("open the live feed")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_shows_the_service_calls_without_the_password_or_the_values() {
    let World { app, ann, .. } = world().await;
    // One subscriber live while it happens, one catching up after.
    let early = open_live_feed(&app).await;
    create(&ann, "db1").await.expect(StatusCode::CREATED);
    bind(&ann, "db1", "shop").await.expect(StatusCode::OK);
    let head = app.api.head().await;
    let live = live_feed(&app, head, Some(early)).await;
    let caught_up = live_feed(&app, head, None).await;
    assert_eq!(live, caught_up, "the hub and the catch-up differ");
    let types: BTreeSet<&str> = live
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    for kind in [
        "ServiceRegistered",
        "InstanceCreated",
        "InstanceBound",
        "AppInstanceBound",
    ] {
        assert!(types.contains(kind), "no {kind} in {types:?}");
    }
    let shown = serde_json::to_string(&live).unwrap();
    assert!(shown.contains("DATABASE_URL"), "the names are shown");
    for secret in [PASSWORD, BOUND_SECRET] {
        assert!(!shown.contains(secret), "{secret} is in the live feed");
    }
}
