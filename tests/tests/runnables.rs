//! Runnables over real HTTP, the server in the test's process (`spawn_app`): an admin creates a
//! root runnable with files (a user may not), a fork needs a parent with an image and starts
//! with that image's files and start command (the same blobs, no bytes copied), files round-trip
//! byte for byte, paths that leave the tree, are not UTF-8 or NFC, hold control characters or
//! are over 1024 bytes are refused, the size and count limits refuse with nothing recorded (a
//! runnable over a lowered total may still shrink), a file is not a folder, a folder is deleted
//! only when asked recursively, folders are listed as derived from the files, another user sees
//! only runnables with an image and changes none nor reads their files, a write (and a read or
//! a listing past the access throttle) moves `last_access`, the reaper removes an idle imageless
//! runnable (`RunnableReaped`, actor `reaper`) and keeps a saved one, a PATCH renames and
//! changes the start command, a removed runnable is gone, and a removed user's runnables go with
//! them. Each test checks the answers and what the log recorded. Running them (start, stop,
//! logs, the sync before a save) is `runnable_runs.rs`'s and `runnable_sandbox_runs.rs`'s;
//! anonymous users are `anonymous.rs`'s.

use base64::Engine;
use bosun_tests::{spawn_app, Answer, Api, TestApp};
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Small limits, so the tests reach them: a file of at most 1 KiB, five files, 2 KiB in all.
const LIMITS: &str = r#"
runnables:
  max_file_bytes: 1024
  max_files: 5
  max_total_bytes: 2048
"#;

/// The reaper looks every second and reaps what has been idle eight seconds (so an access is
/// recorded at most every two seconds: a quarter of that).
const REAPING: &str = r#"
runnables:
  reap_after_seconds: 8
  reap_interval_seconds: 1
"#;

/// The access throttle under [`REAPING`]: `reap_after / 4`.
const THROTTLE: Duration = Duration::from_secs(2);

/// Bytes that are not UTF-8 (and hold a NUL and a CR LF).
const BINARY: &[u8] = &[0x00, 0xff, 0xfe, 0x80, 0x0d, 0x0a, 0x7f, 0xc3, 0x28, 0x00];

/// The server, and two users: ann and bob.
struct World {
    app: TestApp,
    ann: Api,
    bob: Api,
}

/// [`World`] with the default limits.
async fn world() -> World {
    world_with("").await
}

/// [`World`] with [`LIMITS`].
async fn limited() -> World {
    world_with(LIMITS).await
}

async fn world_with(yaml: &str) -> World {
    let app = spawn_app(yaml).await;
    let ann = app.api.new_user("ann", "ann-password").await;
    let bob = app.api.new_user("bob", "bob-password").await;
    World { app, ann, bob }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn stream(id: &str) -> String {
    format!("runnable-{id}")
}

fn id_of(runnable: &Value) -> String {
    runnable["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {runnable}"))
        .to_string()
}

/// The root runnable `hello` the admin creates in most tests: its files by path.
fn root_files() -> BTreeMap<&'static str, Vec<u8>> {
    BTreeMap::from([
        ("README.md", b"# hello\n".to_vec()),
        ("src/main.sh", b"echo hello\n".to_vec()),
        ("src/lib/util.sh", b"greet() { echo hi; }\n".to_vec()),
        ("data.bin", BINARY.to_vec()),
    ])
}

/// `client` asks for the root runnable `name` with [`root_files`] (data.bin as base64).
async fn create_root(client: &Api, name: &str) -> Answer {
    let files: Vec<Value> = root_files()
        .into_iter()
        .map(|(path, content)| match std::str::from_utf8(&content) {
            Ok(text) if path != "data.bin" => json!({"path": path, "content": text}),
            _ => json!({"path": path,
                        "content_base64": base64::engine::general_purpose::STANDARD.encode(&content)}),
        })
        .collect();
    client
        .post(
            "/v1/runnables",
            json!({"name": name, "start_command": "sh src/main.sh", "files": files}),
        )
        .await
}

/// The admin's root runnable `hello`, created: its answer.
async fn root(admin: &Api) -> Value {
    create_root(admin, "hello")
        .await
        .expect(StatusCode::CREATED)
        .body
}

/// The admin's root runnable `hello`, created and saved: its answer after the save.
async fn saved_root(admin: &Api) -> Value {
    let id = id_of(&root(admin).await);
    save(admin, &id).await.expect(StatusCode::OK).body
}

async fn save(client: &Api, id: &str) -> Answer {
    client
        .call(Method::POST, &format!("/v1/runnables/{id}/save"), None)
        .await
}

async fn fork(client: &Api, from: &str) -> Answer {
    client.post("/v1/runnables", json!({"from": from})).await
}

/// `client` forks `from` (which must have an image) and gets the fork.
async fn forked(client: &Api, from: &str) -> Value {
    fork(client, from).await.expect(StatusCode::CREATED).body
}

fn file_url(id: &str, path: &str) -> String {
    format!("/v1/runnables/{id}/files/{path}")
}

/// `client` PUTs `content` as the file `path` of runnable `id` (raw bytes).
async fn put_file(client: &Api, id: &str, path: &str, content: &[u8]) -> Answer {
    let response = client
        .request(Method::PUT, &file_url(id, path))
        .header("content-type", "application/octet-stream")
        .body(content.to_vec())
        .send()
        .await
        .expect("PUT a file");
    Answer::read(response).await
}

/// A `PUT` to `path` as `client` declaring a body of `length` bytes, of which none is sent: the
/// head of the answer, as text (what came within 10 s).
async fn declared_put(app: &TestApp, client: &Api, path: &str, length: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect to the server");
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n",
        app.address, client.token
    );
    socket
        .write_all(request.as_bytes())
        .await
        .expect("send the request's head");
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") || !got.ends_with(b"}") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// `client` GETs the file `path` of runnable `id`: the status and the raw bytes.
async fn get_file(client: &Api, id: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let response = client
        .request(Method::GET, &file_url(id, path))
        .send()
        .await
        .expect("GET a file");
    let status = response.status();
    let bytes = response.bytes().await.expect("a file's bytes").to_vec();
    (status, bytes)
}

/// The listing of folder `path` (the root if `None`) of runnable `id`, as `client` sees it.
async fn list_files(client: &Api, id: &str, path: Option<&str>) -> Vec<Value> {
    let url = match path {
        Some(path) => format!("/v1/runnables/{id}/files?path={path}"),
        None => format!("/v1/runnables/{id}/files"),
    };
    client
        .get(&url)
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap_or_else(|| panic!("not a list"))
        .clone()
}

/// The digests of runnable `id`'s files, by path (the whole tree, folders walked).
async fn tree(client: &Api, id: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut folders = vec![None::<String>];
    while let Some(folder) = folders.pop() {
        for entry in list_files(client, id, folder.as_deref()).await {
            let path = entry["path"].as_str().expect("a path").to_string();
            if entry["dir"] == true {
                assert!(entry["digest"].is_null(), "a folder with a digest: {entry}");
                folders.push(Some(path));
            } else {
                found.insert(
                    path,
                    entry["digest"].as_str().expect("a digest").to_string(),
                );
            }
        }
    }
    found
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

async fn stream_types(admin: &Api, stream: &str) -> Vec<String> {
    stream_events(admin, stream)
        .await
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect()
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

/// The events of type `kind` in runnable `id`'s stream.
async fn events_in(admin: &Api, id: &str, kind: &str) -> Vec<Value> {
    events_of(admin, kind)
        .await
        .into_iter()
        .filter(|e| e["stream_id"] == stream(id).as_str())
        .collect()
}

/// How many blobs the store holds, read past the API.
async fn blob_count(app: &TestApp) -> i64 {
    let store = app.store().await;
    let client = store.pool().get().await.expect("a connection");
    client
        .query_one("SELECT count(*) FROM blobs", &[])
        .await
        .expect("count the blobs")
        .get(0)
}

/// The digests of the blobs the store holds.
async fn blob_digests(app: &TestApp) -> Vec<String> {
    let store = app.store().await;
    let client = store.pool().get().await.expect("a connection");
    client
        .query("SELECT digest FROM blobs ORDER BY digest", &[])
        .await
        .expect("read the blobs")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap_or_else(|e| panic!("not a time: {value}: {e}"))
}

/// The ids in a list of runnables.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(id_of)
        .collect()
}

// ---- Root runnables ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_a_root_runnable_with_files() {
    let World { app, .. } = world().await;
    let admin = &app.api;
    let answer = create_root(admin, "hello")
        .await
        .expect(StatusCode::CREATED);
    assert!(answer.header("bosun-position").parse::<u64>().is_ok());
    let created = answer.body;
    let id = id_of(&created);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{created}");
    assert_eq!(created["name"], "hello");
    assert_eq!(created["owner"], "admin");
    assert_eq!(created["parent"], Value::Null);
    assert_eq!(created["image"], Value::Null);
    assert_eq!(created["start_command"], "sh src/main.sh");
    assert_eq!(created["state"], "stopped");
    assert!(created["version"].is_u64(), "{created}");
    time(&created["created_at"]);
    time(&created["last_access"]);
    // Read back as it was answered, its version as its ETag.
    let read = admin
        .get(&format!("/v1/runnables/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(read.header("etag"), format!("\"{}\"", created["version"]));
    assert_eq!(read.body, created);
    assert_eq!(ids(&admin.get("/v1/runnables").await.body), [id.as_str()]);
    // Its files are there, each with its content's digest, byte for byte.
    let expected: BTreeMap<String, String> = root_files()
        .iter()
        .map(|(path, content)| (path.to_string(), sha256(content)))
        .collect();
    assert_eq!(tree(admin, &id).await, expected);
    for (path, content) in root_files() {
        assert_eq!(
            get_file(admin, &id, path).await,
            (StatusCode::OK, content),
            "{path}"
        );
    }
    // One event recorded it, by the admin, with the files' digests and sizes; the blobs hold
    // the contents.
    let events = stream_events(admin, &stream(&id)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "RunnableCreated");
    let data = &events[0]["data"];
    assert_eq!(data["name"], "hello");
    assert_eq!(data["owner"], "admin");
    assert_eq!(data["parent"], Value::Null);
    assert_eq!(data["start_command"], "sh src/main.sh");
    let recorded: BTreeMap<String, (String, u64)> = data["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files: {data}"))
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                (
                    f["digest"].as_str().unwrap().to_string(),
                    f["size"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    let sizes: BTreeMap<String, (String, u64)> = root_files()
        .iter()
        .map(|(p, c)| (p.to_string(), (sha256(c), c.len() as u64)))
        .collect();
    assert_eq!(recorded, sizes);
    let created_events = events_of(admin, "RunnableCreated").await;
    assert_eq!(created_events[0]["metadata"]["actor"], "admin");
    let mut digests: Vec<String> = expected.into_values().collect();
    digests.sort();
    assert_eq!(blob_digests(&app).await, digests);
    // The file contents are blobs, not in the log.
    let all = serde_json::to_string(&admin.all_events().await).unwrap();
    assert!(!all.contains("greet()"), "a file's content is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_may_not_create_a_root_runnable() {
    let World { app, ann, .. } = world().await;
    let head = app.api.log_head().await;
    let files = json!([{"path": "a.sh", "content": "echo a"}]);
    head.refused(
        &ann,
        Method::POST,
        "/v1/runnables",
        Some(json!({"name": "mine", "start_command": "sh a.sh", "files": files})),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(blob_count(&app).await, 0, "a refused create stored a blob");
    assert_eq!(ann.get("/v1/runnables").await.body, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_root_runnable_is_refused_naming_the_field() {
    let World { app, .. } = world().await;
    let admin = &app.api;
    let head = admin.log_head().await;
    let file = json!([{"path": "a.sh", "content": "echo a"}]);
    let cases = [
        (
            json!({"name": "", "start_command": "sh a.sh", "files": file}),
            "name",
        ),
        (
            json!({"name": "x".repeat(101), "start_command": "sh a.sh", "files": file}),
            "name",
        ),
        (
            json!({"name": "a\u{7}b", "start_command": "sh a.sh", "files": file}),
            "name",
        ),
        (
            json!({"name": "ok", "start_command": "", "files": file}),
            "start_command",
        ),
        (
            json!({"name": "ok", "start_command": "a\u{0}b", "files": file}),
            "start_command",
        ),
    ];
    for (body, field) in cases {
        let problem = head
            .refused(admin, Method::POST, "/v1/runnables", Some(body.clone()))
            .await;
        assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert!(
            problem.fields().iter().any(|f| f.ends_with(field)),
            "{body}: {problem}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_missing_or_mixing_fields_is_refused_naming_the_field() {
    let World { app, .. } = world().await;
    let admin = &app.api;
    let head = admin.log_head().await;
    let file = json!([{"path": "a.sh", "content": "echo a"}]);
    let from = uuid::Uuid::new_v4().to_string();
    let cases = [
        // A fork takes its parent's start command.
        (
            json!({"from": from, "start_command": "sh a.sh"}),
            "start_command",
        ),
        // A root runnable needs a name and a start command.
        (json!({"start_command": "sh a.sh", "files": file}), "name"),
        (json!({"name": "ok", "files": file}), "start_command"),
    ];
    for (body, field) in cases {
        let problem = head
            .refused(admin, Method::POST, "/v1/runnables", Some(body.clone()))
            .await;
        assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(problem.fields(), [field], "{body}: {problem}");
    }
    assert_eq!(blob_count(&app).await, 0, "a refused create stored a blob");
    assert_eq!(admin.get("/v1/runnables").await.body, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_filter_that_is_not_one_is_refused_naming_it() {
    let World { app, ann, .. } = world().await;
    let head = app.api.log_head().await;
    for (url, field) in [
        ("/v1/runnables?has_image=maybe", "has_image"),
        ("/v1/runnables?parent=x", "parent"),
    ] {
        let problem = head.refused(&ann, Method::GET, url, None).await;
        assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{url}: {problem}");
        assert_eq!(problem.fields(), [field], "{url}: {problem}");
    }
}

// ---- Forks and images ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runnable_without_an_image_cannot_be_forked() {
    let World { app, .. } = world().await;
    let admin = &app.api;
    let id = id_of(&root(admin).await);
    let head = admin.log_head().await;
    head.refused(
        admin,
        Method::POST,
        "/v1/runnables",
        Some(json!({"from": id})),
    )
    .await
    .expect(StatusCode::CONFLICT, "parent_has_no_image");
    assert_eq!(ids(&admin.get("/v1/runnables").await.body), [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_needs_a_parent_that_exists() {
    let World { app, ann, .. } = world().await;
    let head = app.api.log_head().await;
    // No `from` at all, or one that is not an id: 400 naming it.
    for body in [
        json!({}),
        json!({"name": "x"}),
        json!({"from": "not-a-uuid"}),
    ] {
        let problem = head
            .refused(&ann, Method::POST, "/v1/runnables", Some(body.clone()))
            .await;
        assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(problem.fields(), ["from"], "{body}: {problem}");
    }
    // An id no runnable has: 404.
    head.refused(
        &ann,
        Method::POST,
        "/v1/runnables",
        Some(json!({"from": uuid::Uuid::new_v4().to_string()})),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_makes_an_image_of_the_files_and_start_command() {
    let World { app, .. } = world().await;
    let admin = &app.api;
    let id = id_of(&root(admin).await);
    let saved = save(admin, &id).await.expect(StatusCode::OK).body;
    let digest = saved["image"]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no image: {saved}"))
        .to_string();
    assert_eq!(digest.len(), 64, "{saved}");
    time(&saved["image"]["saved_at"]);
    assert_eq!(admin.get(&format!("/v1/runnables/{id}")).await.body, saved);
    let events = events_in(admin, &id, "RunnableImageSaved").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["digest"], digest.as_str());
    assert_eq!(events[0]["data"]["start_command"], "sh src/main.sh");
    assert_eq!(
        events[0]["data"]["files"].as_array().map(Vec::len),
        Some(root_files().len())
    );
    assert_eq!(events[0]["metadata"]["actor"], "admin");
    // Saving again, nothing changed: the same image, nothing recorded.
    let head = admin.log_head().await;
    let again = save(admin, &id).await.expect(StatusCode::OK).body;
    assert_eq!(again["image"]["digest"], digest.as_str());
    head.assert_unchanged("a save with nothing changed").await;
    // A change, then a save: the image is overwritten with another digest.
    put_file(admin, &id, "NEW.txt", b"new")
        .await
        .expect(StatusCode::CREATED);
    let overwritten = save(admin, &id).await.expect(StatusCode::OK).body;
    assert_ne!(overwritten["image"]["digest"], digest.as_str());
    assert_eq!(events_in(admin, &id, "RunnableImageSaved").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_starts_with_the_parents_image_and_copies_no_bytes() {
    let World { app, ann, .. } = world().await;
    let admin = &app.api;
    let parent = saved_root(admin).await;
    let parent_id = id_of(&parent);
    let image_tree = tree(admin, &parent_id).await;
    // After the save the parent changes: the fork gets the image, not the parent's files now.
    put_file(admin, &parent_id, "after-save.txt", b"not in the image")
        .await
        .expect(StatusCode::CREATED);
    admin
        .call(
            Method::PATCH,
            &format!("/v1/runnables/{parent_id}"),
            Some(json!({"start_command": "sh other.sh"})),
        )
        .await
        .expect(StatusCode::OK);
    let blobs = blob_count(&app).await;
    let answer = fork(&ann, &parent_id).await.expect(StatusCode::CREATED);
    let child = answer.body;
    let child_id = id_of(&child);
    assert_ne!(child_id, parent_id);
    assert_eq!(child["owner"], "ann");
    assert_eq!(child["parent"], parent_id.as_str());
    assert_eq!(child["image"], Value::Null);
    assert_eq!(child["start_command"], "sh src/main.sh");
    assert_eq!(child["state"], "stopped");
    assert!(
        child["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{child}"
    );
    // The same files, the same digests: no bytes copied.
    assert_eq!(tree(&ann, &child_id).await, image_tree);
    assert_eq!(blob_count(&app).await, blobs, "a fork stored blobs");
    assert_eq!(
        get_file(&ann, &child_id, "data.bin").await,
        (StatusCode::OK, BINARY.to_vec())
    );
    // Recorded in the fork's own stream, by ann, naming its parent and the image's files.
    let events = stream_events(admin, &stream(&child_id)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_type"], "RunnableCreated");
    assert_eq!(events[0]["data"]["parent"], parent_id.as_str());
    assert_eq!(events[0]["data"]["owner"], "ann");
    let recorded: BTreeMap<String, String> = events[0]["data"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(recorded, image_tree);
    let created = events_in(admin, &child_id, "RunnableCreated").await;
    assert_eq!(created[0]["metadata"]["actor"], "ann");
    // A fork may be named, and listed by its parent.
    let named = ann
        .post("/v1/runnables", json!({"from": parent_id, "name": "mine"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(named["name"], "mine");
    let mut children = ids(&ann
        .get(&format!("/v1/runnables?parent={parent_id}"))
        .await
        .expect(StatusCode::OK)
        .body);
    children.sort();
    let mut expected = vec![child_id, id_of(&named)];
    expected.sort();
    assert_eq!(children, expected);
}

// ---- Files ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_round_trips_byte_for_byte() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    // A new file: 201 and its view.
    let answer = put_file(&ann, &id, "bin/blob", BINARY)
        .await
        .expect(StatusCode::CREATED);
    assert!(answer.header("bosun-position").parse::<u64>().is_ok());
    assert_eq!(
        answer.body,
        json!({"path": "bin/blob", "dir": false, "size": BINARY.len(), "digest": sha256(BINARY)})
    );
    assert_eq!(
        get_file(&ann, &id, "bin/blob").await,
        (StatusCode::OK, BINARY.to_vec())
    );
    // Replaced: 200, the new bytes.
    let text = "héllo\r\nwörld\n".as_bytes();
    let answer = put_file(&ann, &id, "bin/blob", text)
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.body["digest"], sha256(text));
    assert_eq!(answer.body["size"], text.len());
    assert_eq!(
        get_file(&ann, &id, "bin/blob").await,
        (StatusCode::OK, text.to_vec())
    );
    // An empty file is a file.
    put_file(&ann, &id, "empty", b"")
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(get_file(&ann, &id, "empty").await, (StatusCode::OK, vec![]));
    // Each write recorded, by ann, with its digest and size.
    let written = events_in(&app.api, &id, "RunnableFileWritten").await;
    let recorded: Vec<(Value, Value, Value)> = written
        .iter()
        .map(|e| {
            (
                e["data"]["path"].clone(),
                e["data"]["digest"].clone(),
                e["data"]["size"].clone(),
            )
        })
        .collect();
    assert_eq!(
        recorded,
        [
            (
                json!("bin/blob"),
                json!(sha256(BINARY)),
                json!(BINARY.len())
            ),
            (json!("bin/blob"), json!(sha256(text)), json!(text.len())),
            (json!("empty"), json!(sha256(b"")), json!(0)),
        ]
    );
    assert!(written.iter().all(|e| e["metadata"]["actor"] == "ann"));
    // The same bytes again, within a minute of the last access: 200, nothing recorded.
    let head = app.api.log_head().await;
    put_file(&ann, &id, "empty", b"")
        .await
        .expect(StatusCode::OK);
    head.assert_unchanged("a write of the same bytes").await;
    // A file not there: 404.
    let (status, _) = get_file(&ann, &id, "nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_leaves_the_tree_is_refused() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let head = app.api.log_head().await;
    let blobs = blob_count(&app).await;
    // Percent-encoded so that no client folds the dots away before the server sees them.
    for path in [
        "..%2Fescape",
        "a%2F..%2F..%2Fescape",
        "%2E%2E%2Fescape",
        "%2Fetc%2Fpasswd",
        "a%00b",
    ] {
        let answer = put_file(&ann, &id, path, b"x").await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "PUT {path}: {}",
            answer.body
        );
        let problem = answer.problem();
        assert_eq!(problem.fields(), ["path"], "PUT {path}: {problem}");
        let (status, body) = get_file(&ann, &id, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "GET {path}: {body:?}");
        let deleted = ann.call(Method::DELETE, &file_url(&id, path), None).await;
        assert_eq!(
            deleted.status,
            StatusCode::BAD_REQUEST,
            "DELETE {path}: {}",
            deleted.body
        );
    }
    // In a root runnable's files too.
    for path in ["../escape", "/etc/passwd", "a/../../b", ""] {
        let body = json!({"name": "bad", "start_command": "true",
                          "files": [{"path": path, "content": "x"}]});
        let problem = head
            .refused(&app.api, Method::POST, "/v1/runnables", Some(body))
            .await;
        assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{path}: {problem}");
        assert_eq!(problem.fields(), ["files"], "{path}: {problem}");
        assert!(problem.detail().contains(&format!("{path:?}")), "{problem}");
    }
    // And a listing's folder.
    let listed = ann
        .get(&format!("/v1/runnables/{id}/files?path=..%2F"))
        .await;
    assert_eq!(listed.status, StatusCode::BAD_REQUEST, "{}", listed.body);
    head.assert_unchanged("paths that leave the tree").await;
    assert_eq!(blob_count(&app).await, blobs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_is_normalized() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let answer = put_file(&ann, &id, "a%2F%2Fb%2F.%2Fc.txt", b"c")
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(answer.body["path"], "a/b/c.txt");
    assert_eq!(
        get_file(&ann, &id, "a/b/c.txt").await,
        (StatusCode::OK, b"c".to_vec())
    );
    let written = events_in(&app.api, &id, "RunnableFileWritten").await;
    assert_eq!(written[0]["data"]["path"], "a/b/c.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_segment_that_is_not_utf8_is_refused_naming_the_path() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let head = app.api.log_head().await;
    let blobs = blob_count(&app).await;
    for path in ["%FF", "src/%FF%FE", "a%C3%28"] {
        let problem = put_file(&ann, &id, path, b"x").await.problem();
        assert_eq!(
            problem.status,
            StatusCode::BAD_REQUEST,
            "PUT {path}: {problem}"
        );
        assert_eq!(problem.fields(), ["path"], "PUT {path}: {problem}");
        let problem = head
            .refused(&ann, Method::GET, &file_url(&id, path), None)
            .await;
        assert_eq!(
            problem.status,
            StatusCode::BAD_REQUEST,
            "GET {path}: {problem}"
        );
        assert_eq!(problem.fields(), ["path"], "GET {path}: {problem}");
        let problem = head
            .refused(&ann, Method::DELETE, &file_url(&id, path), None)
            .await;
        assert_eq!(
            problem.status,
            StatusCode::BAD_REQUEST,
            "DELETE {path}: {problem}"
        );
        assert_eq!(problem.fields(), ["path"], "DELETE {path}: {problem}");
    }
    head.assert_unchanged("paths that are not UTF-8").await;
    assert_eq!(blob_count(&app).await, blobs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_over_1024_bytes_is_refused() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    // Five components, none over 255 bytes: 4 × 200 + 4 slashes + the last.
    let path = |last: usize| {
        let mut parts = vec!["d".repeat(200); 4];
        parts.push("f".repeat(last));
        parts.join("/")
    };
    let (at_limit, over) = (path(220), path(221));
    assert_eq!((at_limit.len(), over.len()), (1024, 1025));
    let head = app.api.log_head().await;
    let blobs = blob_count(&app).await;
    let problem = put_file(&ann, &id, &over, b"x")
        .await
        .problem()
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(problem.fields(), ["path"], "{problem}");
    // A component over 255 bytes, the whole short.
    let problem = put_file(&ann, &id, &"c".repeat(256), b"x")
        .await
        .problem()
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(problem.fields(), ["path"], "{problem}");
    head.assert_unchanged("paths too long").await;
    assert_eq!(blob_count(&app).await, blobs);
    // At the limit is fine.
    let written = put_file(&ann, &id, &at_limit, b"x")
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(written.body["path"], at_limit.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_with_a_control_character_is_refused() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let head = app.api.log_head().await;
    let blobs = blob_count(&app).await;
    for path in [
        "a%01b",
        "line%0Abreak",
        "esc%1B%5B31m",
        "del%7F",
        "c1%C2%85",
    ] {
        let problem = put_file(&ann, &id, path, b"x").await.problem();
        assert_eq!(
            problem.status,
            StatusCode::BAD_REQUEST,
            "PUT {path}: {problem}"
        );
        assert_eq!(problem.fields(), ["path"], "PUT {path}: {problem}");
    }
    // In a root runnable's files too.
    let body = json!({"name": "bad", "start_command": "true",
                      "files": [{"path": "a\u{1}b", "content": "x"}]});
    let problem = head
        .refused(&app.api, Method::POST, "/v1/runnables", Some(body))
        .await;
    assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem.fields(), ["files"], "{problem}");
    head.assert_unchanged("paths with control characters").await;
    assert_eq!(blob_count(&app).await, blobs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_not_in_unicode_nfc_is_refused() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let head = app.api.log_head().await;
    // "é" as e and a combining acute accent (NFD).
    let problem = put_file(&ann, &id, "caf%65%CC%81", b"x")
        .await
        .problem()
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(problem.fields(), ["path"], "{problem}");
    assert!(problem.detail().contains("NFC"), "{problem}");
    head.assert_unchanged("a path not in NFC").await;
    // "é" as one code point (NFC) is fine, and read back under that name.
    put_file(&ann, &id, "caf%C3%A9", b"x")
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        tree(&ann, &id).await.get("café"),
        Some(&sha256(b"x")),
        "café is not listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_size_limit_is_refused_with_nothing_recorded() {
    let World { app, ann, .. } = limited().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let head = app.api.log_head().await;
    let blobs = blob_count(&app).await;
    put_file(&ann, &id, "big", &[b'x'; 1025])
        .await
        .problem()
        .expect(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    // A body declared far too large is refused before the server has read it: the answer comes
    // while not one byte of it was sent.
    let answer = declared_put(&app, &ann, &file_url(&id, "big"), 5 * 1024 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("file_too_large"), "{answer}");
    head.assert_unchanged("a file over max_file_bytes").await;
    assert_eq!(blob_count(&app).await, blobs, "a refused file was stored");
    let (status, _) = get_file(&ann, &id, "big").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // At the limit is fine.
    put_file(&ann, &id, "big", &[b'x'; 1024])
        .await
        .expect(StatusCode::CREATED);
    // A root runnable's file too.
    let body = json!({"name": "big", "start_command": "true",
                      "files": [{"path": "big", "content": "x".repeat(1025)}]});
    let head = app.api.log_head().await;
    let problem = head
        .refused(&app.api, Method::POST, "/v1/runnables", Some(body))
        .await;
    assert_eq!(problem.status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runnable_may_hold_only_so_many_files() {
    let World { app, .. } = limited().await;
    let admin = &app.api;
    // Four files; max_files is five.
    let id = id_of(&root(admin).await);
    put_file(admin, &id, "five", b"5")
        .await
        .expect(StatusCode::CREATED);
    let head = admin.log_head().await;
    let answer = put_file(admin, &id, "six", b"6").await;
    let problem = answer
        .problem()
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(problem.fields(), ["files"], "{problem}");
    head.assert_unchanged("a sixth file").await;
    // Replacing one is not one more.
    put_file(admin, &id, "five", b"five")
        .await
        .expect(StatusCode::OK);
    assert_eq!(tree(admin, &id).await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runnable_may_hold_only_so_many_bytes() {
    let World { app, .. } = limited().await;
    let admin = &app.api;
    let id = id_of(
        &admin
            .post(
                "/v1/runnables",
                json!({"name": "big", "start_command": "true", "files": []}),
            )
            .await
            .expect(StatusCode::CREATED)
            .body,
    );
    put_file(admin, &id, "a", &[b'a'; 1000])
        .await
        .expect(StatusCode::CREATED);
    put_file(admin, &id, "b", &[b'b'; 1000])
        .await
        .expect(StatusCode::CREATED);
    // 3000 bytes in all is past max_total_bytes (2048).
    let head = admin.log_head().await;
    put_file(admin, &id, "c", &[b'c'; 1000])
        .await
        .problem()
        .expect(StatusCode::PAYLOAD_TOO_LARGE, "runnable_too_large");
    head.assert_unchanged("a file past max_total_bytes").await;
    // Replacing a file counts its new size, not both.
    put_file(admin, &id, "b", &[b'B'; 1024])
        .await
        .expect(StatusCode::OK);
}

/// A client of another node over `app`'s log, configured by `yaml` (its admin token `app`'s),
/// running until the sender is dropped.
async fn another_node(
    app: &TestApp,
    yaml: &str,
) -> (Api, tokio::sync::oneshot::Sender<()>, tempfile::TempDir) {
    let dir = bosun_tests::work_dir();
    let file = bosun_tests::config_file(dir.path(), yaml);
    let mut settings =
        bosun_api::config::Settings::from_sources(Some(&file), std::iter::empty()).unwrap();
    settings.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.data_dir = dir.path().join("bosun-data");
    settings.database.url = Some(app.database().clone());
    let node = bosun_api::startup::Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("the other node did not start: {e:#}"));
    let api = Api::at(&format!("http://{}", node.address()), &app.api.token);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(node.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (api, stop, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runnable_over_a_lowered_total_may_still_shrink_a_file() {
    let World { app, .. } = limited().await;
    let id = id_of(
        &app.api
            .post(
                "/v1/runnables",
                json!({"name": "big", "start_command": "true", "files": []}),
            )
            .await
            .expect(StatusCode::CREATED)
            .body,
    );
    for path in ["a", "b"] {
        put_file(&app.api, &id, path, &[b'x'; 1000])
            .await
            .expect(StatusCode::CREATED);
    }
    // A node whose limit is lower than the 2000 bytes it holds.
    let lowered = r#"
runnables:
  max_file_bytes: 1024
  max_files: 5
  max_total_bytes: 1500
"#;
    let (admin, _stop, _dir) = another_node(&app, lowered).await;
    // Growing it is refused, nothing recorded.
    let head = admin.log_head().await;
    put_file(&admin, &id, "a", &[b'x'; 1001])
        .await
        .problem()
        .expect(StatusCode::PAYLOAD_TOO_LARGE, "runnable_too_large");
    put_file(&admin, &id, "c", b"c")
        .await
        .problem()
        .expect(StatusCode::PAYLOAD_TOO_LARGE, "runnable_too_large");
    head.assert_unchanged("growing a runnable past its total")
        .await;
    // Shrinking a file is not, though 1800 bytes are still over 1500; nor is a change of the
    // same size.
    put_file(&admin, &id, "b", &[b'y'; 800])
        .await
        .expect(StatusCode::OK);
    put_file(&admin, &id, "a", &[b'z'; 1000])
        .await
        .expect(StatusCode::OK);
    let written = events_in(&admin, &id, "RunnableFileWritten").await;
    let sizes: Vec<&Value> = written.iter().map(|e| &e["data"]["size"]).collect();
    assert_eq!(
        sizes,
        [&json!(1000), &json!(1000), &json!(800), &json!(1000)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_cannot_be_a_folder() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let head = app.api.log_head().await;
    // README.md is a file: nothing goes under it.
    put_file(&ann, &id, "README.md/inner", b"x")
        .await
        .problem()
        .expect(StatusCode::CONFLICT, "path_conflict");
    // src is a folder: it cannot become a file.
    put_file(&ann, &id, "src", b"x")
        .await
        .problem()
        .expect(StatusCode::CONFLICT, "path_conflict");
    put_file(&ann, &id, "src/lib", b"x")
        .await
        .problem()
        .expect(StatusCode::CONFLICT, "path_conflict");
    head.assert_unchanged("writes over a file's folder").await;
    assert_eq!(
        get_file(&ann, &id, "README.md").await,
        (StatusCode::OK, b"# hello\n".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_deleted_only_when_asked_recursively() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let head = app.api.log_head().await;
    let problem = head
        .refused(&ann, Method::DELETE, &file_url(&id, "src"), None)
        .await;
    assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem.fields(), ["recursive"], "{problem}");
    // Nothing there: 404.
    head.refused(&ann, Method::DELETE, &file_url(&id, "nothing"), None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    head.refused(
        &ann,
        Method::DELETE,
        &format!("{}?recursive=true", file_url(&id, "nothing")),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not_found");
    // Recursively: every file under it goes, in one event.
    ann.call(
        Method::DELETE,
        &format!("{}?recursive=true", file_url(&id, "src")),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let left: Vec<String> = tree(&ann, &id).await.into_keys().collect();
    assert_eq!(left, ["README.md", "data.bin"]);
    let deleted = events_in(&app.api, &id, "RunnableFilesDeleted").await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    let mut paths: Vec<&str> = deleted[0]["data"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["src/lib/util.sh", "src/main.sh"]);
    assert_eq!(deleted[0]["metadata"]["actor"], "ann");
    // A file is deleted without asking.
    ann.call(Method::DELETE, &file_url(&id, "README.md"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let (status, _) = get_file(&ann, &id, "README.md").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let deleted = events_in(&app.api, &id, "RunnableFilesDeleted").await;
    assert_eq!(deleted[1]["data"]["paths"], json!(["README.md"]));
    // The parent's image still has them all.
    assert_eq!(tree(&app.api, &parent).await.len(), root_files().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_must_be_true_or_false() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let head = app.api.log_head().await;
    for value in ["maybe", "1", "yes", ""] {
        let url = format!("{}?recursive={value}", file_url(&id, "src"));
        let problem = head.refused(&ann, Method::DELETE, &url, None).await;
        assert_eq!(
            problem.status,
            StatusCode::BAD_REQUEST,
            "{value:?}: {problem}"
        );
        assert_eq!(problem.fields(), ["recursive"], "{value:?}: {problem}");
    }
    assert_eq!(tree(&ann, &id).await.len(), root_files().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_shows_a_folders_files_and_folders() {
    let World { app, .. } = world().await;
    let admin = &app.api;
    let id = id_of(&root(admin).await);
    let by_path = |list: Vec<Value>| -> BTreeMap<String, Value> {
        list.into_iter()
            .map(|e| (e["path"].as_str().unwrap().to_string(), e))
            .collect()
    };
    let top = by_path(list_files(admin, &id, None).await);
    assert_eq!(
        top.keys().collect::<Vec<_>>(),
        ["README.md", "data.bin", "src"]
    );
    assert_eq!(
        top["README.md"],
        json!({"path": "README.md", "dir": false, "size": 8, "digest": sha256(b"# hello\n")})
    );
    assert_eq!(top["src"]["dir"], true);
    assert_eq!(top["src"]["digest"], Value::Null);
    let src = by_path(list_files(admin, &id, Some("src")).await);
    assert_eq!(src.keys().collect::<Vec<_>>(), ["src/lib", "src/main.sh"]);
    assert_eq!(src["src/lib"]["dir"], true);
    assert_eq!(src["src/main.sh"]["dir"], false);
    assert_eq!(src["src/main.sh"]["size"], 11);
    let lib = by_path(list_files(admin, &id, Some("src/lib")).await);
    assert_eq!(lib.keys().collect::<Vec<_>>(), ["src/lib/util.sh"]);
    // A trailing slash is the same folder.
    assert_eq!(
        by_path(list_files(admin, &id, Some("src/")).await)
            .keys()
            .collect::<Vec<_>>(),
        ["src/lib", "src/main.sh"]
    );
    // A folder that is not there: 404.
    admin
        .get(&format!("/v1/runnables/{id}/files?path=nothing"))
        .await
        .problem()
        .expect(StatusCode::NOT_FOUND, "not_found");
}

// ---- Who sees what ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_sees_only_runnables_with_an_image() {
    let World { app, ann, bob } = world().await;
    let admin = &app.api;
    let root_id = id_of(&saved_root(admin).await);
    let unsaved_root = id_of(
        &create_root(admin, "draft")
            .await
            .expect(StatusCode::CREATED)
            .body,
    );
    let draft = id_of(&forked(&ann, &root_id).await);
    let published = id_of(&forked(&ann, &root_id).await);
    save(&ann, &published).await.expect(StatusCode::OK);
    // bob lists the runnables with an image; ann hers and those with an image.
    let mut seen = ids(&bob.get("/v1/runnables").await.expect(StatusCode::OK).body);
    seen.sort();
    let mut expected = vec![root_id.clone(), published.clone()];
    expected.sort();
    assert_eq!(seen, expected);
    let mut anns = ids(&ann.get("/v1/runnables").await.body);
    anns.sort();
    let mut expected = vec![root_id.clone(), published.clone(), draft.clone()];
    expected.sort();
    assert_eq!(anns, expected);
    assert_eq!(
        ids(&bob.get("/v1/runnables?owner=ann").await.body),
        [published.as_str()]
    );
    assert_eq!(
        ids(&ann
            .get("/v1/runnables?owner=ann&has_image=false")
            .await
            .body),
        [draft.as_str()]
    );
    // The admin sees everything.
    assert_eq!(
        admin
            .get("/v1/runnables")
            .await
            .expect(StatusCode::OK)
            .total(),
        4
    );
    let head = admin.log_head().await;
    // An imageless runnable of another is not there for bob, whatever he asks.
    for id in [&draft, &unsaved_root] {
        for (method, path, body) in [
            (Method::GET, format!("/v1/runnables/{id}"), None),
            (Method::GET, format!("/v1/runnables/{id}/files"), None),
            (Method::GET, file_url(id, "README.md"), None),
            (
                Method::PATCH,
                format!("/v1/runnables/{id}"),
                Some(json!({"name": "mine"})),
            ),
            (Method::POST, format!("/v1/runnables/{id}/save"), None),
            (Method::DELETE, format!("/v1/runnables/{id}"), None),
            (Method::DELETE, file_url(id, "README.md"), None),
        ] {
            head.refused(&bob, method.clone(), &path, body)
                .await
                .expect(StatusCode::NOT_FOUND, "not_found");
        }
        let answer = put_file(&bob, id, "README.md", b"bob was here").await;
        answer.problem().expect(StatusCode::NOT_FOUND, "not_found");
        head.refused(
            &bob,
            Method::POST,
            "/v1/runnables",
            Some(json!({"from": id})),
        )
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    }
    // One with an image he reads, and may fork, but changes in no way.
    let read = bob
        .get(&format!("/v1/runnables/{published}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(read["owner"], "ann");
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/v1/runnables/{published}"),
            Some(json!({"name": "mine"})),
        ),
        (
            Method::POST,
            format!("/v1/runnables/{published}/save"),
            None,
        ),
        (Method::DELETE, format!("/v1/runnables/{published}"), None),
        (Method::DELETE, file_url(&published, "README.md"), None),
    ] {
        head.refused(&bob, method.clone(), &path, body)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    put_file(&bob, &published, "README.md", b"bob was here")
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "forbidden");
    head.assert_unchanged("bob's refused calls").await;
    assert_eq!(
        get_file(&ann, &published, "README.md").await,
        (StatusCode::OK, b"# hello\n".to_vec())
    );
    let fork = forked(&bob, &published).await;
    assert_eq!(fork["owner"], "bob");
    assert_eq!(fork["parent"], published.as_str());
    // The admin changes anyone's.
    put_file(admin, &draft, "ADMIN", b"a")
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_may_not_read_the_files_of_a_runnable_with_an_image() {
    let World { app, ann, bob } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    save(&ann, &id).await.expect(StatusCode::OK);
    let head = app.api.log_head().await;
    for path in [
        format!("/v1/runnables/{id}/files"),
        format!("/v1/runnables/{id}/files?path=src"),
        file_url(&id, "README.md"),
        file_url(&id, "nothing"),
    ] {
        head.refused(&bob, Method::GET, &path, None)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    // Not even the root runnable's, the admin's: he forks it to read it.
    head.refused(&bob, Method::GET, &file_url(&parent, "README.md"), None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    head.assert_unchanged("bob's refused reads").await;
}

// ---- Access and the reaper ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_moves_last_access() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let created = forked(&ann, &parent).await;
    let id = id_of(&created);
    let before = time(&created["last_access"]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    put_file(&ann, &id, "note", b"n")
        .await
        .expect(StatusCode::CREATED);
    let after = ann.get(&format!("/v1/runnables/{id}")).await.body;
    let moved = time(&after["last_access"]);
    assert!(moved > before, "{before} then {moved}");
    let written = events_in(&app.api, &id, "RunnableFileWritten").await;
    let at = time(&written[0]["data"]["at"]);
    assert!(
        (moved - at).num_milliseconds().abs() < 1,
        "last_access {moved}, written at {at}"
    );
    // Reads within a minute of an access record nothing and leave it where it was.
    let head = app.api.log_head().await;
    get_file(&ann, &id, "note").await;
    list_files(&ann, &id, None).await;
    head.assert_unchanged("reads within a minute of a write")
        .await;
    assert_eq!(
        ann.get(&format!("/v1/runnables/{id}")).await.body["last_access"],
        after["last_access"]
    );
}

/// Runnable `id`'s `last_access` as `client` reads it.
async fn last_access(client: &Api, id: &str) -> DateTime<Utc> {
    time(
        &client
            .get(&format!("/v1/runnables/{id}"))
            .await
            .expect(StatusCode::OK)
            .body["last_access"],
    )
}

/// ann's fork of a saved root runnable, itself saved (so that the reaper of [`REAPING`] keeps
/// it): the world and its id.
async fn anns_saved_fork(yaml: &str) -> (World, String) {
    let world = world_with(yaml).await;
    let parent = id_of(&saved_root(&world.app.api).await);
    let id = id_of(&forked(&world.ann, &parent).await);
    save(&world.ann, &id).await.expect(StatusCode::OK);
    (world, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_files_past_the_throttle_moves_last_access() {
    let (World { app, ann, .. }, id) = anns_saved_fork(REAPING).await;
    let before = last_access(&ann, &id).await;
    tokio::time::sleep(THROTTLE + Duration::from_millis(300)).await;
    list_files(&ann, &id, None).await;
    let moved = last_access(&ann, &id).await;
    assert!(moved > before, "{before} then {moved}");
    let accessed = events_in(&app.api, &id, "RunnableAccessed").await;
    assert_eq!(accessed.len(), 1, "{accessed:?}");
    assert_eq!(time(&accessed[0]["data"]["at"]), moved);
    assert_eq!(accessed[0]["metadata"]["actor"], "ann");
    assert_eq!(
        accessed[0]["metadata"]["user_agent"],
        bosun_tests::USER_AGENT
    );
    // Another listing right after: within the throttle, nothing.
    let head = app.api.log_head().await;
    list_files(&ann, &id, Some("src")).await;
    head.assert_unchanged("a listing within the throttle").await;
    assert_eq!(last_access(&ann, &id).await, moved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_file_past_the_throttle_moves_last_access() {
    let (World { app, ann, .. }, id) = anns_saved_fork(REAPING).await;
    let before = last_access(&ann, &id).await;
    tokio::time::sleep(THROTTLE + Duration::from_millis(300)).await;
    assert_eq!(
        get_file(&ann, &id, "README.md").await,
        (StatusCode::OK, b"# hello\n".to_vec())
    );
    let moved = last_access(&ann, &id).await;
    assert!(moved > before, "{before} then {moved}");
    let accessed = events_in(&app.api, &id, "RunnableAccessed").await;
    assert_eq!(accessed.len(), 1, "{accessed:?}");
    assert_eq!(accessed[0]["metadata"]["actor"], "ann");
    assert_eq!(
        accessed[0]["metadata"]["user_agent"],
        bosun_tests::USER_AGENT
    );
}

/// Polls until runnable `id`'s stream has a `RunnableReaped` (at most 40 s).
async fn wait_reaped(admin: &Api, id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let reaped = events_in(admin, id, "RunnableReaped").await;
        if !reaped.is_empty() {
            return reaped;
        }
        assert!(Instant::now() < deadline, "{id} was not reaped within 40 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_removes_an_idle_runnable_without_an_image_and_keeps_a_saved_one() {
    let World { app, ann, .. } = world_with(REAPING).await;
    let admin = &app.api;
    let root_id = id_of(&saved_root(admin).await);
    let idle = forked(&ann, &root_id).await;
    let idle_id = id_of(&idle);
    let kept = id_of(&forked(&ann, &root_id).await);
    save(&ann, &kept).await.expect(StatusCode::OK);
    let reaped = wait_reaped(admin, &idle_id).await;
    assert_eq!(reaped.len(), 1, "{reaped:?}");
    assert_eq!(reaped[0]["metadata"]["actor"], "reaper");
    let last_access = time(&reaped[0]["data"]["last_access"]);
    assert!(
        (last_access - time(&idle["last_access"]))
            .num_milliseconds()
            .abs()
            < 1,
        "{reaped:?}"
    );
    assert!(
        time(&reaped[0]["data"]["at"]) - last_access >= chrono::Duration::seconds(8),
        "reaped too soon: {reaped:?}"
    );
    assert_eq!(
        stream_types(admin, &stream(&idle_id))
            .await
            .last()
            .map(String::as_str),
        Some("RunnableReaped")
    );
    ann.get(&format!("/v1/runnables/{idle_id}"))
        .await
        .problem()
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert!(!ids(&ann.get("/v1/runnables").await.body).contains(&idle_id));
    // The audit shows the reaper did it.
    let audit = admin
        .get("/v1/audit?actor=reaper&limit=1000")
        .await
        .expect(StatusCode::OK)
        .body;
    let entries = audit.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "RunnableReaped" && e["target"] == stream(&idle_id).as_str()),
        "{audit}"
    );
    // Both saved ones have been idle past reap_after as long: still there, never reaped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [&kept, &root_id] {
        ann.get(&format!("/v1/runnables/{id}"))
            .await
            .expect(StatusCode::OK);
        assert!(
            events_in(admin, id, "RunnableReaped").await.is_empty(),
            "{id} was reaped"
        );
    }
    let audit = admin
        .get("/v1/audit?actor=reaper&limit=1000")
        .await
        .expect(StatusCode::OK)
        .body;
    // The one reap, and its release from ann's registry of runnables.
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["RunnableReaped", "RunnableOwnerReleased"],
        "{audit}"
    );
}

// ---- Changing and removing ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_renames_and_changes_the_start_command() {
    let World { app, ann, .. } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    let path = format!("/v1/runnables/{id}");
    let changed = ann
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "renamed", "start_command": "sh other.sh"})),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(changed["name"], "renamed");
    assert_eq!(changed["start_command"], "sh other.sh");
    assert_eq!(ann.get(&path).await.body, changed);
    let updated = events_in(&app.api, &id, "RunnableUpdated").await;
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(updated[0]["data"]["name"], "renamed");
    assert_eq!(updated[0]["data"]["start_command"], "sh other.sh");
    assert_eq!(updated[0]["metadata"]["actor"], "ann");
    // Only the name: the start command stays.
    let renamed = ann
        .call(Method::PATCH, &path, Some(json!({"name": "again"})))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(renamed["start_command"], "sh other.sh");
    // Nothing changed: nothing recorded.
    let head = app.api.log_head().await;
    ann.call(Method::PATCH, &path, Some(json!({"name": "again"})))
        .await
        .expect(StatusCode::OK);
    head.assert_unchanged("a PATCH that changes nothing").await;
    // Malformed: 400 naming the field, nothing recorded.
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"start_command": ""}), "start_command"),
    ] {
        let problem = head
            .refused(&ann, Method::PATCH, &path, Some(body.clone()))
            .await;
        assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(problem.fields(), [field], "{body}: {problem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_runnable_is_gone() {
    let World { app, ann, bob } = world().await;
    let parent = id_of(&saved_root(&app.api).await);
    let id = id_of(&forked(&ann, &parent).await);
    save(&ann, &id).await.expect(StatusCode::OK);
    let path = format!("/v1/runnables/{id}");
    ann.call(Method::DELETE, &path, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let head = app.api.log_head().await;
    for client in [&ann, &bob, &app.api] {
        head.refused(client, Method::GET, &path, None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
        head.refused(client, Method::GET, &format!("{path}/files"), None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
        assert!(!ids(&client.get("/v1/runnables").await.body).contains(&id));
    }
    head.refused(&ann, Method::DELETE, &path, None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    put_file(&ann, &id, "x", b"x")
        .await
        .problem()
        .expect(StatusCode::NOT_FOUND, "not_found");
    // Its image went with it: it cannot be forked.
    head.refused(
        &bob,
        Method::POST,
        "/v1/runnables",
        Some(json!({"from": id})),
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not_found");
    let types = stream_types(&app.api, &stream(&id)).await;
    assert_eq!(types.last().map(String::as_str), Some("RunnableRemoved"));
    let removed = events_in(&app.api, &id, "RunnableRemoved").await;
    assert_eq!(removed[0]["metadata"]["actor"], "ann");
    // Its parent is untouched.
    app.api
        .get(&format!("/v1/runnables/{parent}"))
        .await
        .expect(StatusCode::OK);
}

// ---- Removed users ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_users_runnables_go_with_them_and_not_to_the_next_holder_of_the_name() {
    let World { app, ann, bob } = world().await;
    let admin = &app.api;
    let root_id = id_of(&saved_root(admin).await);
    let draft = id_of(&forked(&ann, &root_id).await);
    let published = id_of(&forked(&ann, &root_id).await);
    save(&ann, &published).await.expect(StatusCode::OK);
    let bobs = id_of(&forked(&bob, &published).await);
    admin
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    // Removed, each in its stream, by the admin who removed her.
    for id in [&draft, &published] {
        let types = stream_types(admin, &stream(id)).await;
        assert_eq!(
            types.last().map(String::as_str),
            Some("RunnableRemoved"),
            "{id}"
        );
        let removed = events_in(admin, id, "RunnableRemoved").await;
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert_eq!(removed[0]["metadata"]["actor"], "admin");
    }
    // A new ann has none of them.
    let ann = admin.new_user("ann", "another-ann-password").await;
    assert_eq!(
        ids(&ann.get("/v1/runnables").await.expect(StatusCode::OK).body),
        [root_id.as_str()],
        "bob's fork has no image: only the root is hers to see"
    );
    assert_eq!(ann.get("/v1/runnables?owner=ann").await.body, json!([]));
    for id in [&draft, &published] {
        ann.get(&format!("/v1/runnables/{id}"))
            .await
            .problem()
            .expect(StatusCode::NOT_FOUND, "not_found");
        put_file(&ann, id, "mine", b"m")
            .await
            .problem()
            .expect(StatusCode::NOT_FOUND, "not_found");
        admin
            .get(&format!("/v1/runnables/{id}"))
            .await
            .problem()
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
    // bob's fork of one of hers is his, and stays.
    assert_eq!(
        bob.get(&format!("/v1/runnables/{bobs}"))
            .await
            .expect(StatusCode::OK)
            .body["owner"],
        "bob"
    );
}
