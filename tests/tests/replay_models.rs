//! `bosun replay` rebuilds every read model equal to the live one, row for row, after a rich
//! history of every kind of resource: platforms (one disabled, one removed), users (one removed
//! with their key), teams, apps (one removed and created again under its name, cnames, teams
//! granted and revoked, public and private variables set and unset, swaps with and without
//! `cname_only`, a restart), quotas, SSH keys, app tokens issued and revoked, a job of an app,
//! and the units of a catalog process (one killed by hand, then all stopped with their app);
//! then services (updated, documented, teams granted and revoked, one removed and registered
//! again, one removed after its only instance's creation got no answer) and their instances
//! (created, refused, removed, a removal refused, bound and unbound, a bind refused, two whose
//! creation is still pending when the models are compared, one of them after an attempt that
//! got no answer), against a small service API run by the test; then runnables (a root one
//! the admin made, renamed, written and saved; forks of it with files written, deleted and
//! read, a folder deleted, saved again; one removed; one left without an image).
//! Every projection of `bosun_projections::all()` is compared, table by table, so a read model
//! added later is covered without this file changing. The server runs in the test's process
//! (`spawn_app`) and keeps serving while the rebuild runs, as it would beside `bosun replay`.

use bosun_eventstore::PgEventStore;
use bosun_projections::{rebuild, Projections};
use bosun_tests::{spawn_app, Api, TestApp};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `shop`'s job task; `web`'s two units of a process that does not listen (counted as started
/// after a short while up). The service API runs on 127.0.0.1 over plain http. A call is given
/// 300 s, so one left hanging is not ended (nor tried again) by the reactor before the models
/// are compared; one that gets no answer is tried twice, so the creation on a dead port ends
/// failed after one retry.
const CONFIG: &str = r#"
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
services:
  timeout_seconds: 300
  wait_seconds: 5
  max_attempts: 2
runner:
  kill_grace_seconds: 2
  unit_ports: "21400-21499"
catalog:
  shop:
    production:
      show:
        command: ["sh", "-c", "echo shop $GREETING"]
  web:
    production:
      processes:
        http:
          command: ["sh", "-c", "exec sleep 600"]
          units: 2
"#;

/// A private value: it must be in no read model, live or rebuilt.
const SECRET: &str = "s3cr3t-replay-value-5d2e";

/// A service's password and a bound variable's value: in no read model either.
const SERVICE_PASSWORD: &str = "svc-password-replay-81c4";
const BOUND_SECRET: &str = "bound-secret-replay-3f9a";

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC9YH+6nluXqa51cc8NgxU28IuiBL9VSYuwofqcXWYpfHVovHOXe8Z9FiCoaHeevI5A0hXtmC70xqM4MycG9/glIzTX3rWFWMPDeyvmaIf6Q4vlXBnt4vsAwTiIs30GjsOkVRH8cFCvZ53S8RpuluLYfUW6GvPoTy4JH+Bu5KlKvw== ann@desk";

async fn put(client: &Api, path: &str, body: Option<Value>) -> bosun_tests::Answer {
    client.call(Method::PUT, path, body).await
}

async fn delete(client: &Api, path: &str) -> bosun_tests::Answer {
    client.call(Method::DELETE, path, None).await
}

async fn patch(client: &Api, path: &str, body: Value) -> bosun_tests::Answer {
    client.call(Method::PATCH, path, Some(body)).await
}

/// ann creates app `name` on python, owned by `blue`.
async fn create_app(ann: &Api, name: &str, description: &str) {
    ann.post(
        "/v1/apps",
        json!({"name": name, "platform": "python", "team_owner": "blue", "description": description}),
    )
    .await
    .expect(StatusCode::CREATED);
}

async fn units(api: &Api, app: &str) -> Vec<Value> {
    let answer = api
        .get(&format!("/v1/apps/{app}"))
        .await
        .expect(StatusCode::OK);
    answer.body["units"]
        .as_array()
        .unwrap_or_else(|| panic!("no units in {}", answer.body))
        .clone()
}

/// Polls the app's units until `done` holds for them (at most 30 s).
async fn wait_units(api: &Api, app: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = units(api, app).await;
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the units never got there: {}",
            Value::Array(now)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events of type `event_type` in the log.
async fn events_of_type(admin: &Api, event_type: &str) -> Vec<Value> {
    admin
        .get(&format!("/v1/events?type={event_type}&limit=1000"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .expect("a list")
        .clone()
}

/// Waits until every read model has applied `position` (`Bosun-Min-Position`, retried past
/// its 5 s bound).
async fn caught_up(api: &Api, position: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = api
            .call_with(
                Method::GET,
                "/readyz",
                &[("Bosun-Min-Position", &position.to_string())],
                None,
            )
            .await;
        if answer.status == StatusCode::OK {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the read models never reached position {position}: {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every table of every projection, keyed `<projection>.<table>`: its rows as one JSON array
/// in a stable order (by each row's text). Every column is compared: none of them may differ
/// on a rebuild (the checkpoints' `updated_at` is the one clock reading, and it is in no
/// projection's tables).
async fn dump(store: &PgEventStore) -> BTreeMap<String, Value> {
    let client = store.pool().get().await.expect("a connection");
    let mut tables = BTreeMap::new();
    for projection in bosun_projections::all() {
        for table in projection.tables() {
            let sql =
                format!("SELECT coalesce(jsonb_agg(t ORDER BY t::text), '[]') FROM {table} t");
            let rows: Value = client
                .query_one(&sql, &[])
                .await
                .unwrap_or_else(|e| panic!("dump {table}: {e}"))
                .get(0);
            tables.insert(format!("{}.{table}", projection.name()), rows);
        }
    }
    tables
}

/// Each projection table's OID, keyed as in [`dump`]: a rebuild swaps in new tables, so every
/// one changes (the comparison is of the rebuilt tables, not the live ones left as they were).
async fn oids(store: &PgEventStore) -> BTreeMap<String, u32> {
    let client = store.pool().get().await.expect("a connection");
    let mut oids = BTreeMap::new();
    for projection in bosun_projections::all() {
        for table in projection.tables() {
            let oid: u32 = client
                .query_one("SELECT $1::TEXT::regclass::oid", &[table])
                .await
                .unwrap_or_else(|e| panic!("the OID of {table}: {e}"))
                .get(0);
            oids.insert(format!("{}.{table}", projection.name()), oid);
        }
    }
    oids
}

fn rows(dump: &BTreeMap<String, Value>, table: &str) -> Vec<Value> {
    dump.get(table)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no table {table} in {:?}", dump.keys()))
        .clone()
}

/// A service API on 127.0.0.1 (also under `/v2`): creates every instance but `refused` (500),
/// `stuck` (answered only once [`ServiceApi::release`] is called) and `again` (503, which
/// Bosun takes for no answer, to the first ask; later asks answered once released); removes
/// every one but `sticky` (500); binds every app but `blog` (500), answering [`BOUND_SECRET`]
/// among the variables; unbinds every one.
struct ServiceApi {
    base: String,
    release: Arc<tokio::sync::watch::Sender<bool>>,
    again_asked: Arc<AtomicUsize>,
}

/// What the service's answers wait on: the release, and how many times `again` was asked.
#[derive(Clone)]
struct Held {
    released: tokio::sync::watch::Receiver<bool>,
    again_asked: Arc<AtomicUsize>,
}

impl ServiceApi {
    async fn start() -> ServiceApi {
        let (release, released) = tokio::sync::watch::channel(false);
        let again_asked = Arc::new(AtomicUsize::new(0));
        let held = Held {
            released,
            again_asked: again_asked.clone(),
        };
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method, uri: axum::http::Uri, body: String| {
                let held = held.clone();
                async move { service_answer(held, method, uri, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the service API");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ServiceApi {
            base,
            release: Arc::new(release),
            again_asked,
        }
    }

    /// How many times the creation of `again` was asked for.
    fn again_asked(&self) -> usize {
        self.again_asked.load(Ordering::SeqCst)
    }

    /// Answers the creations held (waiting now, or still to come).
    fn release(&self) {
        self.release.send_replace(true);
    }
}

async fn service_answer(
    mut held: Held,
    method: axum::http::Method,
    uri: axum::http::Uri,
    body: String,
) -> axum::response::Response {
    use axum::http::StatusCode as Http;
    use axum::response::IntoResponse;
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let path = uri.path();
    let path = path.strip_prefix("/v2").unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["resources"]) => match field("name") {
            "refused" => (Http::INTERNAL_SERVER_ERROR, "no room for refused").into_response(),
            "stuck" => {
                let _ = held.released.wait_for(|released| *released).await;
                Http::CREATED.into_response()
            }
            "again" => {
                if held.again_asked.fetch_add(1, Ordering::SeqCst) == 0 {
                    return (Http::SERVICE_UNAVAILABLE, "again: warming up").into_response();
                }
                let _ = held.released.wait_for(|released| *released).await;
                Http::CREATED.into_response()
            }
            _ => Http::CREATED.into_response(),
        },
        ("DELETE", ["resources", "sticky"]) => {
            (Http::INTERNAL_SERVER_ERROR, "sticky stays").into_response()
        }
        ("DELETE", ["resources", _]) => Http::OK.into_response(),
        ("POST", ["resources", instance, "bind-app"]) => match field("app-name") {
            "blog" => (Http::INTERNAL_SERVER_ERROR, "blog may not bind").into_response(),
            app => (
                Http::CREATED,
                axum::Json(json!({
                    "PG_URL": format!("postgres://{instance}.example/{app}"),
                    "PG_PASSWORD": BOUND_SECRET,
                })),
            )
                .into_response(),
        },
        ("DELETE", ["resources", _, "bind-app"]) => Http::OK.into_response(),
        ("GET", ["resources", _, "status"]) => Http::NO_CONTENT.into_response(),
        _ => Http::NOT_FOUND.into_response(),
    }
}

/// Creates instance `name` of `service` owned by `team`: the answer's status.
async fn create_instance(user: &Api, service: &str, name: &str, team: &str) -> StatusCode {
    user.post(
        &format!("/v1/services/{service}/instances"),
        json!({"name": name, "plan": "small", "team_owner": team, "description": format!("{name} of {service}")}),
    )
    .await
    .status
}

/// The services part of the history (after [`history`]'s, whose users, teams and apps it uses).
async fn services_history(app: &TestApp, service_api: &ServiceApi) {
    let admin = &app.api;
    let ann = admin.login("ann", "ann-password-1").await;
    let bob = admin.login("bob", "bob-password-1").await;
    let endpoint = service_api.base.as_str();

    // pg: registered by the admin for blue, moved under /v2 with a new password, documented,
    // green granted, red granted and revoked. cache: ann's, for both her teams.
    admin
        .post(
            "/v1/services",
            json!({"name": "pg", "endpoint": endpoint, "password": SERVICE_PASSWORD,
                   "teams": ["blue"], "doc": "postgres databases"}),
        )
        .await
        .expect(StatusCode::CREATED);
    patch(
        admin,
        "/v1/services/pg",
        json!({"endpoint": format!("{endpoint}/v2"), "password": format!("{SERVICE_PASSWORD}-2")}),
    )
    .await
    .expect(StatusCode::OK);
    let doc = admin
        .request(Method::PUT, "/v1/services/pg/doc")
        .header("content-type", "text/plain")
        .body("ask ann for a bigger plan")
        .send()
        .await
        .expect("PUT the doc");
    assert!(doc.status().is_success(), "PUT doc: {}", doc.status());
    for (method, team) in [
        (Method::PUT, "green"),
        (Method::PUT, "red"),
        (Method::DELETE, "red"),
    ] {
        admin
            .call(method, &format!("/v1/services/pg/teams/{team}"), None)
            .await
            .expect(StatusCode::NO_CONTENT);
    }
    ann.post(
        "/v1/services",
        json!({"name": "cache", "endpoint": endpoint, "password": SERVICE_PASSWORD,
               "teams": ["blue", "red"]}),
    )
    .await
    .expect(StatusCode::CREATED);

    // old: bob's, removed, then registered again by the admin for blue.
    bob.post(
        "/v1/services",
        json!({"name": "old", "endpoint": endpoint, "password": SERVICE_PASSWORD, "teams": ["green"]}),
    )
    .await
    .expect(StatusCode::CREATED);
    delete(admin, "/v1/services/old")
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .post(
            "/v1/services",
            json!({"name": "old", "endpoint": endpoint, "password": SERVICE_PASSWORD, "teams": ["blue"]}),
        )
        .await
        .expect(StatusCode::CREATED);

    // dead: nothing listens at its endpoint; its one instance gets no answer twice, fails, and
    // the service is removed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let dead_endpoint = format!("http://{}", dead.local_addr().expect("address"));
    drop(dead);
    admin
        .post(
            "/v1/services",
            json!({"name": "dead", "endpoint": dead_endpoint, "password": SERVICE_PASSWORD, "teams": ["blue"]}),
        )
        .await
        .expect(StatusCode::CREATED);
    let lost = create_instance(&ann, "dead", "lost", "blue").await;
    assert!(
        lost == StatusCode::ACCEPTED || lost == StatusCode::BAD_GATEWAY,
        "the creation on a dead port: {lost}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = ann.get("/v1/services/dead/instances/lost").await;
        if answer.status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the creation that got no answer never failed: {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    delete(admin, "/v1/services/dead")
        .await
        .expect(StatusCode::NO_CONTENT);

    // pg's instances: db (ann's) and db2 (bob's, green) created; refused refused; tmp created
    // and removed; sticky's removal refused.
    for (user, name, team, status) in [
        (&ann, "db", "blue", StatusCode::CREATED),
        (&bob, "db2", "green", StatusCode::CREATED),
        (&ann, "refused", "blue", StatusCode::BAD_GATEWAY),
        (&bob, "tmp", "green", StatusCode::CREATED),
        (&ann, "sticky", "blue", StatusCode::CREATED),
    ] {
        assert_eq!(
            create_instance(user, "pg", name, team).await,
            status,
            "{name}"
        );
    }
    delete(&bob, "/v1/services/pg/instances/tmp")
        .await
        .expect(StatusCode::NO_CONTENT);
    delete(&ann, "/v1/services/pg/instances/sticky")
        .await
        .expect(StatusCode::BAD_GATEWAY);

    // Binds: db to shop (kept), to blog (refused), to cart without a restart, then unbound.
    let bound = put(&ann, "/v1/services/pg/instances/db/apps/shop", None)
        .await
        .expect(StatusCode::OK)
        .body;
    let mut names: Vec<&str> = bound["env"]
        .as_array()
        .unwrap_or_else(|| panic!("no env in {bound}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    names.sort();
    assert_eq!(names, ["PG_PASSWORD", "PG_URL"], "{bound}");
    put(&ann, "/v1/services/pg/instances/db/apps/blog", None)
        .await
        .expect(StatusCode::BAD_GATEWAY);
    put(
        &ann,
        "/v1/services/pg/instances/db/apps/cart?restart=false",
        None,
    )
    .await
    .expect(StatusCode::OK);
    delete(&ann, "/v1/services/pg/instances/db/apps/cart")
        .await
        .expect(StatusCode::NO_CONTENT);

    // stuck: the service takes it and does not answer (until released after the comparison).
    assert_eq!(
        create_instance(&ann, "pg", "stuck", "blue").await,
        StatusCode::ACCEPTED
    );
    // again: its first ask gets no answer Bosun can use (recorded, to be tried again), the
    // next one is held like stuck's.
    assert_eq!(
        create_instance(&ann, "pg", "again", "blue").await,
        StatusCode::ACCEPTED
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while service_api.again_asked() < 2 {
        assert!(
            Instant::now() < deadline,
            "the reactor never tried again's creation again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `content` as file `path` of runnable `id`: the answer's status.
async fn write_file(user: &Api, id: &str, path: &str, content: Vec<u8>) -> StatusCode {
    user.request(Method::PUT, &format!("/v1/runnables/{id}/files/{path}"))
        .header("content-type", "application/octet-stream")
        .body(content)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
        .status()
}

/// The id in a runnable's answer.
fn runnable_id(answer: bosun_tests::Answer) -> String {
    answer.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", answer.body))
        .to_string()
}

/// The runnables part of the history (after [`history`]'s, whose users it uses).
async fn runnables_history(app: &TestApp) {
    let admin = &app.api;
    let ann = admin.login("ann", "ann-password-1").await;
    let bob = admin.login("bob", "bob-password-1").await;

    // hello: the admin's root runnable, renamed, a file added, saved.
    let hello = runnable_id(
        admin
            .post(
                "/v1/runnables",
                json!({"name": "hello", "start_command": "sh main.sh", "files": [
                    {"path": "main.sh", "content": "echo hello"},
                    {"path": "lib/util.sh", "content": "greet() { echo hi; }"},
                    {"path": "lib/old/notes.txt", "content": "old notes"},
                ]}),
            )
            .await
            .expect(StatusCode::CREATED),
    );
    patch(
        admin,
        &format!("/v1/runnables/{hello}"),
        json!({"name": "hello world"}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        write_file(admin, &hello, "data/blob.bin", vec![0, 159, 146, 150, 255]).await,
        StatusCode::CREATED
    );
    admin
        .post(&format!("/v1/runnables/{hello}/save"), json!({}))
        .await
        .expect(StatusCode::OK);

    // ann's fork: a file replaced, one added and read, one deleted, a folder deleted, its
    // start command changed, saved twice.
    let mine = runnable_id(
        ann.post(
            "/v1/runnables",
            json!({"from": hello, "name": "ann's hello"}),
        )
        .await
        .expect(StatusCode::CREATED),
    );
    assert_eq!(
        write_file(&ann, &mine, "main.sh", b"echo ann".to_vec()).await,
        StatusCode::OK
    );
    assert_eq!(
        write_file(&ann, &mine, "src/app.py", b"print('hi')".to_vec()).await,
        StatusCode::CREATED
    );
    ann.get(&format!("/v1/runnables/{mine}/files/src/app.py"))
        .await
        .expect(StatusCode::OK);
    ann.post(&format!("/v1/runnables/{mine}/save"), json!({}))
        .await
        .expect(StatusCode::OK);
    let gone = delete(&ann, &format!("/v1/runnables/{mine}/files/lib/util.sh")).await;
    assert!(gone.status.is_success(), "{} {}", gone.status, gone.body);
    let gone = delete(
        &ann,
        &format!("/v1/runnables/{mine}/files/lib?recursive=true"),
    )
    .await;
    assert!(gone.status.is_success(), "{} {}", gone.status, gone.body);
    patch(
        &ann,
        &format!("/v1/runnables/{mine}"),
        json!({"start_command": "sh main.sh --ann"}),
    )
    .await
    .expect(StatusCode::OK);
    ann.post(&format!("/v1/runnables/{mine}/save"), json!({}))
        .await
        .expect(StatusCode::OK);

    // ann's second fork, removed; bob's fork of ann's, a file written, never saved.
    let scratch = runnable_id(
        ann.post("/v1/runnables", json!({"from": hello}))
            .await
            .expect(StatusCode::CREATED),
    );
    let removed = delete(&ann, &format!("/v1/runnables/{scratch}")).await;
    assert!(
        removed.status.is_success(),
        "{} {}",
        removed.status,
        removed.body
    );
    let bobs = runnable_id(
        bob.post("/v1/runnables", json!({"from": mine, "name": "bob's"}))
            .await
            .expect(StatusCode::CREATED),
    );
    assert_eq!(
        write_file(&bob, &bobs, "notes/todo.txt", b"fork it".to_vec()).await,
        StatusCode::CREATED
    );
}

/// Builds the history the read models are compared after.
async fn history(app: &TestApp) {
    let admin = &app.api;

    // Platforms: python used; ruby disabled; go removed.
    for platform in ["python", "ruby", "go"] {
        admin
            .post("/v1/platforms", json!({"name": platform}))
            .await
            .expect(StatusCode::CREATED);
    }
    patch(admin, "/v1/platforms/ruby", json!({"disabled": true}))
        .await
        .expect(StatusCode::OK);
    delete(admin, "/v1/platforms/go")
        .await
        .expect(StatusCode::NO_CONTENT);

    // Users and teams: ann in blue and red, bob in green and (added by the admin) blue; carl
    // removed with his key; a team made and removed.
    let ann = admin.new_user("ann", "ann-password-1").await;
    let bob = admin.new_user("bob", "bob-password-1").await;
    let carl = admin.new_user("carl", "carl-password-1").await;
    for (user, team) in [
        (&ann, "blue"),
        (&ann, "red"),
        (&bob, "green"),
        (&ann, "temp"),
    ] {
        user.post("/v1/teams", json!({"name": team}))
            .await
            .expect(StatusCode::CREATED);
    }
    put(admin, "/v1/teams/blue/members/bob", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    delete(admin, "/v1/teams/temp")
        .await
        .expect(StatusCode::NO_CONTENT);

    // Quotas.
    put(admin, "/v1/users/ann/quota", Some(json!({"limit": 10})))
        .await
        .expect(StatusCode::OK);
    put(admin, "/v1/users/bob/quota", Some(json!({"limit": 2})))
        .await
        .expect(StatusCode::OK);

    // SSH keys: ann keeps one of two; carl's goes with him.
    ann.post(
        "/v1/users/ann/keys",
        json!({"name": "laptop", "key": ED25519}),
    )
    .await
    .expect(StatusCode::CREATED);
    ann.post("/v1/users/ann/keys", json!({"name": "desk", "key": RSA}))
        .await
        .expect(StatusCode::CREATED);
    delete(&ann, "/v1/users/ann/keys/desk")
        .await
        .expect(StatusCode::NO_CONTENT);
    carl.post(
        "/v1/users/carl/keys",
        json!({"name": "laptop", "key": ED25519}),
    )
    .await
    .expect(StatusCode::CREATED);
    delete(admin, "/v1/users/carl")
        .await
        .expect(StatusCode::NO_CONTENT);

    // Apps.
    create_app(&ann, "shop", "the shop").await;
    create_app(&ann, "blog", "the blog").await;
    for (name, cname) in [
        ("shop", "shop.example.com"),
        ("shop", "www.shop.example.com"),
        ("blog", "blog.example.com"),
    ] {
        ann.post(&format!("/v1/apps/{name}/cnames"), json!({"cname": cname}))
            .await
            .expect(StatusCode::OK);
    }
    ann.call(
        Method::DELETE,
        "/v1/apps/shop/cnames",
        Some(json!({"cname": "www.shop.example.com"})),
    )
    .await
    .expect(StatusCode::OK);
    put(&ann, "/v1/apps/shop/teams/red", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    put(admin, "/v1/apps/shop/teams/green", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    delete(&ann, "/v1/apps/shop/teams/red")
        .await
        .expect(StatusCode::NO_CONTENT);
    patch(
        &ann,
        "/v1/apps/shop",
        json!({"description": "the shop, owned by red", "team_owner": "red"}),
    )
    .await
    .expect(StatusCode::OK);
    put(
        &ann,
        "/v1/apps/shop/env",
        Some(json!({"envs": [
            {"name": "GREETING", "value": "hello"},
            {"name": "API_KEY", "value": SECRET, "public": false},
            {"name": "LEVEL", "value": "debug"},
        ], "restart": false})),
    )
    .await
    .expect(StatusCode::OK);
    // With the default restart: a new generation.
    put(
        &ann,
        "/v1/apps/shop/env",
        Some(json!({"envs": [{"name": "GREETING", "value": "hello again"}]})),
    )
    .await
    .expect(StatusCode::OK);
    delete(&ann, "/v1/apps/shop/env?name=LEVEL")
        .await
        .expect(StatusCode::OK);
    put(
        &ann,
        "/v1/apps/blog/env",
        Some(json!({"envs": [{"name": "THEME", "value": "dark"}], "restart": false})),
    )
    .await
    .expect(StatusCode::OK);
    ann.post("/v1/swap", json!({"app1": "shop", "app2": "blog"}))
        .await
        .expect(StatusCode::OK);
    ann.post(
        "/v1/swap",
        json!({"app1": "blog", "app2": "shop", "cname_only": true}),
    )
    .await
    .expect(StatusCode::OK);
    ann.post("/v1/apps/shop/restart", json!({}))
        .await
        .expect(StatusCode::ACCEPTED);

    // cart: a token, variables and a cname, removed (its token with it), then created again.
    create_app(&ann, "cart", "the first cart").await;
    ann.post("/v1/apps/cart/cnames", json!({"cname": "cart.example.com"}))
        .await
        .expect(StatusCode::OK);
    put(
        &ann,
        "/v1/apps/cart/env",
        Some(json!({"envs": [{"name": "OLD", "value": "1"}], "restart": false})),
    )
    .await
    .expect(StatusCode::OK);
    ann.post("/v1/apps/cart/tokens", json!({"description": "old cart"}))
        .await
        .expect(StatusCode::CREATED);
    delete(&ann, "/v1/apps/cart")
        .await
        .expect(StatusCode::NO_CONTENT);
    create_app(&ann, "cart", "the second cart").await;

    // App tokens of shop: one kept, one revoked.
    for description in ["deploys", "ci"] {
        ann.post(
            "/v1/apps/shop/tokens",
            json!({"description": description, "expires_in": 3600}),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let tokens = ann
        .get("/v1/apps/shop/tokens")
        .await
        .expect(StatusCode::OK)
        .body;
    let ci = tokens
        .as_array()
        .expect("a list")
        .iter()
        .find(|t| t["description"] == "ci")
        .unwrap_or_else(|| panic!("no ci token in {tokens}"));
    delete(
        &ann,
        &format!("/v1/apps/shop/tokens/{}", ci["token_id"].as_str().unwrap()),
    )
    .await
    .expect(StatusCode::NO_CONTENT);

    // A job of shop, run to its end.
    let job = ann
        .post(
            "/v1/jobs",
            json!({"app": "shop", "env": "production", "task": "show", "wait": true}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(job["status"], "success", "{job}");

    // web's two units: started, one killed by hand (restarted), then both stopped with web.
    create_app(&ann, "web", "the web units").await;
    let started = wait_units(&ann, "web", |units| {
        units.len() == 2 && units.iter().all(|u| u["state"] == "started")
    })
    .await;
    let first = &started[0];
    let pid = first["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid: {first}")) as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the unit");
    wait_units(&ann, "web", |units| {
        units.len() == 2
            && units[0]["restarts"] == 1
            && units[0]["state"] == "started"
            && units[0]["pid"] != first["pid"]
    })
    .await;
    assert_eq!(events_of_type(admin, "UnitExited").await.len(), 1);
    delete(&ann, "/v1/apps/web")
        .await
        .expect(StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stopped: Vec<Value> = events_of_type(admin, "UnitStopped")
            .await
            .into_iter()
            .filter(|e| e["data"]["reason"] == "app_removed")
            .collect();
        if stopped.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web's units were not both stopped: {stopped:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_every_read_model_equal_row_for_row() {
    let app = spawn_app(CONFIG).await;
    let service_api = ServiceApi::start().await;
    history(&app).await;
    services_history(&app, &service_api).await;
    runnables_history(&app).await;
    let admin = &app.api;
    let head = admin.head().await;
    caught_up(admin, head).await;
    let store = app.store().await;
    let live = dump(&store).await;

    // The history reached the models it is about.
    let platforms = rows(&live, "apps.platforms");
    assert_eq!(platforms.len(), 3, "{platforms:?}");
    assert!(platforms
        .iter()
        .any(|p| p["name"] == "ruby" && p["disabled"] == true));
    assert!(platforms
        .iter()
        .any(|p| p["name"] == "go" && p["removed"] == true));
    let apps = rows(&live, "apps.apps");
    let names: BTreeSet<&str> = apps.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["blog", "cart", "shop", "web"]),
        "{apps:?}"
    );
    let units = rows(&live, "units.units");
    assert_eq!(units.len(), 2, "{units:?}");
    assert!(units.iter().all(|u| u["state"] == "stopped"), "{units:?}");
    assert_eq!(rows(&live, "keys.user_keys").len(), 1);
    assert!(!rows(&live, "apps.app_env").is_empty());
    assert!(!rows(&live, "apps.quotas").is_empty());
    assert!(!rows(&live, "jobs.job_output").is_empty());
    let services = rows(&live, "services.services");
    let services: BTreeSet<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(services, BTreeSet::from(["cache", "old", "pg"]));
    let instances = rows(&live, "services.service_instances");
    let states: BTreeMap<&str, (&str, &Value)> = instances
        .iter()
        .filter_map(|i| Some((i["name"].as_str()?, (i["state"].as_str()?, &i["apps"]))))
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([
            ("db", ("ready", &json!(["shop"]))),
            ("db2", ("ready", &json!([]))),
            ("sticky", ("ready", &json!([]))),
            ("stuck", ("creating", &json!([]))),
            ("again", ("creating", &json!([]))),
        ]),
        "{instances:?}"
    );
    let calls = rows(&live, "services.service_calls");
    let calls: BTreeMap<&str, (&Value, &Value, bool)> = calls
        .iter()
        .filter_map(|c| {
            Some((
                c["instance"].as_str()?,
                (&c["operation"], &c["attempts"], c["last_error"].is_string()),
            ))
        })
        .collect();
    assert_eq!(
        calls,
        BTreeMap::from([
            ("stuck", (&json!("create"), &json!(0), false)),
            ("again", (&json!("create"), &json!(1), true)),
        ]),
    );
    let env = rows(&live, "apps.app_env");
    let bound_env: BTreeSet<(&str, &str)> = env
        .iter()
        .filter(|v| v["bound_service"] == "pg")
        .filter_map(|v| Some((v["app"].as_str()?, v["name"].as_str()?)))
        .collect();
    assert_eq!(
        bound_env,
        BTreeSet::from([("shop", "PG_PASSWORD"), ("shop", "PG_URL")])
    );
    let runnables = rows(&live, "runnables.runnables");
    let runnables: BTreeMap<&str, (&str, bool)> = runnables
        .iter()
        .filter_map(|r| {
            Some((
                r["name"].as_str()?,
                (r["start_command"].as_str()?, r["image_digest"].is_string()),
            ))
        })
        .collect();
    assert_eq!(
        runnables,
        BTreeMap::from([
            ("hello world", ("sh main.sh", true)),
            ("ann's hello", ("sh main.sh --ann", true)),
            ("bob's", ("sh main.sh --ann", false)),
        ]),
        "the removed one is gone"
    );
    let files = |table: &str| -> BTreeSet<String> {
        rows(&live, table)
            .iter()
            .filter_map(|f| f["path"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(
        files("runnables.runnable_files"),
        BTreeSet::from(
            [
                "main.sh",
                "lib/util.sh",
                "lib/old/notes.txt",
                "data/blob.bin",
                "src/app.py",
                "notes/todo.txt"
            ]
            .map(String::from)
        )
    );
    assert_eq!(
        rows(&live, "runnables.runnable_image_files").len(),
        4 + 3,
        "hello's 4, ann's 3"
    );
    let text = serde_json::to_string(&live).unwrap();
    assert!(!text.contains(SECRET), "a private value is in a read model");
    for secret in [SERVICE_PASSWORD, BOUND_SECRET] {
        assert!(!text.contains(secret), "{secret} is in a read model");
    }

    let live_oids = oids(&store).await;

    // What `bosun replay` runs (api/src/cli/replay.rs), against the test app's database.
    let config = &app.database().0;
    let projections = Projections::new(bosun_projections::all());
    projections
        .prepare(config)
        .await
        .expect("prepare the read models");
    for projection in projections.list() {
        let report = rebuild(&store, config, &**projection, |_, _| {})
            .await
            .unwrap_or_else(|e| panic!("rebuild {}: {e}", projection.name()));
        assert_eq!(report.position, head, "{report:?}");
    }
    let rebuilt = dump(&store).await;
    let rebuilt_oids = oids(&store).await;
    for (table, oid) in &live_oids {
        assert_ne!(
            rebuilt_oids[table], *oid,
            "{table} was not swapped for a rebuilt table"
        );
    }
    // Nothing was written meanwhile: the live models were what the log said at `head`.
    assert_eq!(
        admin.head().await,
        head,
        "the log moved during the comparison"
    );

    assert_eq!(
        rebuilt.keys().collect::<Vec<_>>(),
        live.keys().collect::<Vec<_>>()
    );
    let mut differing = Vec::new();
    for (table, before) in &live {
        let after = &rebuilt[table];
        if before != after {
            let set = |rows: &Value| -> BTreeSet<String> {
                rows.as_array()
                    .into_iter()
                    .flatten()
                    .map(Value::to_string)
                    .collect()
            };
            let (before_rows, after_rows) = (set(before), set(after));
            differing.push(format!(
                "{table}:\n  live only:    {:?}\n  rebuilt only: {:?}",
                before_rows.difference(&after_rows).collect::<Vec<_>>(),
                after_rows.difference(&before_rows).collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        differing.is_empty(),
        "read models not rebuilt equal:\n{}",
        differing.join("\n")
    );
    // The hanging creation answered, so that stopping waits on no call.
    service_api.release();
    app.stop().await;
}
