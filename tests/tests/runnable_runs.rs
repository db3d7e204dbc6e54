//! Running runnables over real HTTP, the server in the test's process (`spawn_app`), with no node
//! running them (`runner.workers: 0`, `units: 0`): what a runner would say is appended to the log
//! by the test itself, through the commands, as `Actor::System("runner")` does. Start, stop and
//! restart answer 202 with the runnable as it is then and record only a change of what is
//! wanted (a start of one wanted already, a stop of one not wanted, are none), a restart is a new
//! generation; only the owner or an admin runs one (403 for another who sees it, 404 for one who
//! does not); the runner's word is taken only for the run on record (409 `run_not_wanted`,
//! `run_moved`) and the view follows it (`running`, its node and pid, `stopped`, `error` with
//! the diagnostics); the logs are read as a job's output (`Bosun-Output-Offset`,
//! `Bosun-Output-Complete`, from any byte, not complete while a process runs); and a save of a running runnable waits for its
//! node's sync (503 `sync_timeout` and no image when none comes, 503 `sync_lost` and no image
//! when the run ends without its files synced, the synced files in the image when one does).

use bosun_commands::{Actor, CommandError, Commands, Origin};
use bosun_domain::jobs::OutputStream;
use bosun_domain::runnables::{
    Digest, FileEntry, FileLimits, FilePath, RunStopReason, Runnable, RunnableCommand, RunnableLog,
    RunnableLogCommand,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::PgEventStore;
use bosun_projections::Freshness;
use bosun_tests::{spawn_app, Api, TestApp};
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// No node runs runnables here, and a save waits a second for a sync.
const CONFIG: &str = r#"
runner:
  workers: 0
  units: 0
runnables:
  sync_wait_seconds: 1
"#;

const RUNNER: Actor = Actor::System("runner");

/// The server, ann and bob, and commands over its log to speak as the runner.
struct World {
    app: TestApp,
    ann: Api,
    bob: Api,
    runner: Commands<PgEventStore>,
}

async fn world() -> World {
    let app = spawn_app(CONFIG).await;
    let ann = app.api.new_user("ann", "ann-password").await;
    let bob = app.api.new_user("bob", "bob-password").await;
    let runner = Commands::new(app.store().await, Freshness::none());
    World {
        app,
        ann,
        bob,
        runner,
    }
}

fn id_of(runnable: &Value) -> String {
    runnable["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {runnable}"))
        .to_string()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap_or_else(|e| panic!("not a time: {value}: {e}"))
}

/// The content of the root runnable's one file.
const MAIN: &[u8] = b"echo hello\n";

/// ann's fork of a saved root runnable of the admin's (one file, `main.sh`): its id.
async fn anns_runnable(world: &World) -> String {
    let admin = &world.app.api;
    let root = admin
        .post(
            "/v1/runnables",
            json!({"name": "hello", "start_command": "sh main.sh",
                   "files": [{"path": "main.sh", "content": "echo hello\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    admin
        .call(
            Method::POST,
            &format!("/v1/runnables/{}/save", id_of(&root)),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let fork = world
        .ann
        .post("/v1/runnables", json!({"from": id_of(&root)}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    id_of(&fork)
}

/// `client` posts `action` (`start`, `stop`, `restart`, `save`) on runnable `id`.
async fn act(client: &Api, id: &str, action: &str) -> bosun_tests::Answer {
    client
        .call(Method::POST, &format!("/v1/runnables/{id}/{action}"), None)
        .await
}

/// The events of runnable `id`'s stream as `/v1/streams` lists them.
async fn stream_events(admin: &Api, id: &str) -> Vec<Value> {
    admin
        .get(&format!("/v1/streams/runnable-{id}"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap()
        .clone()
}

async fn stream_types(admin: &Api, id: &str) -> Vec<String> {
    stream_events(admin, id)
        .await
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect()
}

/// Runnable `id` as `client` reads it, once `done` holds for it (the read models catch up with
/// what the runner appended; at most 10 s).
async fn view_until(client: &Api, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = client
            .get(&format!("/v1/runnables/{id}"))
            .await
            .expect(StatusCode::OK)
            .body;
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "never got there: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn origin() -> Origin {
    Origin {
        source: Some("runnable_runs test".into()),
        ..Origin::default()
    }
}

/// The runner says `command` on runnable `id`, as a node would.
async fn runner_says(
    runner: &Commands<PgEventStore>,
    id: &str,
    command: impl Fn() -> RunnableCommand,
) -> Result<(), CommandError> {
    runner
        .execute::<Runnable>(id, &RUNNER, &origin(), |state| state.handle(command()))
        .await
        .map(|_| ())
}

fn started(generation: u64, node: &str, pid: u32) -> impl Fn() -> RunnableCommand {
    let node = node.to_string();
    move || RunnableCommand::RunStarted {
        generation,
        node: node.clone(),
        pid,
        at: Utc::now(),
    }
}

/// The runner's stop of a run, its files not synced back (a sync that failed, a lost run).
fn stopped(generation: u64, node: &str, reason: RunStopReason) -> impl Fn() -> RunnableCommand {
    stopped_synced(generation, node, reason, false)
}

/// The runner's stop of a run, saying whether its files were synced back as it stopped.
fn stopped_synced(
    generation: u64,
    node: &str,
    reason: RunStopReason,
    synced: bool,
) -> impl Fn() -> RunnableCommand {
    let node = node.to_string();
    move || RunnableCommand::RunStopped {
        generation,
        node: node.clone(),
        reason,
        synced,
        at: Utc::now(),
    }
}

/// The refusal's code, for a conflict.
fn conflict_code(error: CommandError) -> &'static str {
    match error {
        CommandError::Domain(DomainError::Conflict { code, .. }) => code,
        other => panic!("not a conflict: {other:?}"),
    }
}

// ---- Start, stop, restart ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_and_restart_record_what_is_wanted() {
    let world = world().await;
    let (admin, ann) = (&world.app.api, &world.ann);
    let id = anns_runnable(&world).await;
    let created = view_until(ann, &id, |_| true).await;
    assert_eq!(
        (created["state"].as_str(), &created["run"]),
        (Some("stopped"), &Value::Null)
    );

    let answer = act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);
    let view = &answer.body;
    assert_eq!(view["state"], "starting", "{view}");
    assert_eq!(view["run"]["generation"], 1, "{view}");
    assert_eq!(view["run"]["node"], Value::Null, "{view}");
    assert_eq!(view["run"]["pid"], Value::Null, "{view}");
    assert_eq!(answer.header("etag"), format!("\"{}\"", view["version"]));
    assert!(time(&view["last_access"]) >= time(&created["last_access"]));
    assert_eq!(
        time(&view["run"]["since"]),
        time(&view["last_access"]),
        "{view}"
    );
    // The read models answer alike.
    let read = view_until(ann, &id, |_| true).await;
    assert_eq!(&read, view);

    // Wanted already: no change, the same generation.
    let again = act(ann, &id, "start")
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(
        (again["state"].as_str(), &again["run"]["generation"]),
        (Some("starting"), &json!(1))
    );
    assert_eq!(again["version"], view["version"]);

    // Nothing started it yet: it is stopped at once.
    let stopped = act(ann, &id, "stop")
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert_eq!(stopped["run"]["generation"], 1);
    let still = act(ann, &id, "stop")
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(
        still["version"], stopped["version"],
        "a stop of a stopped one is no change"
    );

    // A restart is a new generation each time, and starts a stopped one.
    let restarted = act(ann, &id, "restart")
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(
        (restarted["state"].as_str(), &restarted["run"]["generation"]),
        (Some("starting"), &json!(2))
    );
    let again = act(ann, &id, "restart")
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(again["run"]["generation"], 3);
    // An admin may too.
    let by_admin = act(admin, &id, "stop")
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(by_admin["state"], "stopped");

    assert_eq!(
        stream_types(admin, &id).await,
        [
            "RunnableCreated",
            "RunnableStartRequested",
            "RunnableStopRequested",
            "RunnableRestartRequested",
            "RunnableRestartRequested",
            "RunnableStopRequested",
        ]
    );
    let events = stream_events(admin, &id).await;
    assert_eq!(events[1]["data"]["generation"], 1);
    assert_eq!(events[1]["metadata"]["actor"], "ann", "{}", events[1]);
    assert_eq!(events[5]["metadata"]["actor"], "admin", "{}", events[5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_owner_or_an_admin_runs_a_runnable() {
    let world = world().await;
    let (admin, ann, bob) = (&world.app.api, &world.ann, &world.bob);
    let id = anns_runnable(&world).await;
    let head = admin.log_head().await;
    // bob does not see it (no image): 404, as for no runnable at all.
    for action in ["start", "stop", "restart"] {
        for path in [
            format!("/v1/runnables/{id}/{action}"),
            format!("/v1/runnables/{}/{action}", Uuid::new_v4()),
            format!("/v1/runnables/not-a-uuid/{action}"),
        ] {
            head.refused(bob, Method::POST, &path, None)
                .await
                .expect(StatusCode::NOT_FOUND, "not_found");
        }
    }
    head.refused(bob, Method::GET, &format!("/v1/runnables/{id}/logs"), None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    // Saved, bob sees it, and may still neither run it nor read its output.
    act(ann, &id, "save").await.expect(StatusCode::OK);
    let head = admin.log_head().await;
    for action in ["start", "stop", "restart"] {
        head.refused(
            bob,
            Method::POST,
            &format!("/v1/runnables/{id}/{action}"),
            None,
        )
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    head.refused(bob, Method::GET, &format!("/v1/runnables/{id}/logs"), None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    // A removed one is gone.
    ann.call(Method::DELETE, &format!("/v1/runnables/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    for action in ["start", "stop", "restart"] {
        ann.refused(Method::POST, &format!("/v1/runnables/{id}/{action}"), None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}

// ---- The runner's word ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_follows_the_run_on_record() {
    let world = world().await;
    let (ann, runner) = (&world.ann, &world.runner);
    let id = anns_runnable(&world).await;
    act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);

    // Another generation than the one wanted is not started.
    let refused = runner_says(runner, &id, started(2, "node-a", 4242))
        .await
        .unwrap_err();
    assert_eq!(conflict_code(refused), "run_not_wanted");
    runner_says(runner, &id, started(1, "node-a", 4242))
        .await
        .unwrap();
    let running = view_until(ann, &id, |v| v["state"] == "running").await;
    assert_eq!(running["run"]["node"], "node-a");
    assert_eq!(running["run"]["pid"], 4242);
    assert_eq!(running["run"]["generation"], 1);

    // A stop asked for: it runs until its runner stops it, which only its node may say.
    let stopping = act(ann, &id, "stop")
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(stopping["state"], "running", "{stopping}");
    let refused = runner_says(runner, &id, stopped(1, "node-b", RunStopReason::Stop))
        .await
        .unwrap_err();
    assert_eq!(conflict_code(refused), "run_moved");
    runner_says(runner, &id, stopped(1, "node-a", RunStopReason::Stop))
        .await
        .unwrap();
    let stopped_view = view_until(ann, &id, |v| v["state"] == "stopped").await;
    assert_eq!(stopped_view["run"]["pid"], Value::Null);
    assert_eq!(stopped_view["run"]["node"], "node-a");
    // Told again: no event.
    let events = stream_types(&world.app.api, &id).await.len();
    runner_says(runner, &id, stopped(1, "node-a", RunStopReason::Stop))
        .await
        .unwrap();
    assert_eq!(stream_types(&world.app.api, &id).await.len(), events);

    // Started again, it cannot start: an error, with why, not tried again.
    act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);
    runner_says(runner, &id, || RunnableCommand::RunFailed {
        generation: 2,
        node: "node-a".into(),
        diagnostics: "bwrap: not found on this node".into(),
        at: Utc::now(),
    })
    .await
    .unwrap();
    let failed = view_until(ann, &id, |v| v["state"] == "error").await;
    assert_eq!(
        failed["run"]["diagnostics"],
        "bwrap: not found on this node"
    );
    assert_eq!(failed["run"]["generation"], 2);

    // Started again, it ends on its own with a code: an error too, with the code.
    act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);
    runner_says(runner, &id, started(3, "node-b", 7))
        .await
        .unwrap();
    view_until(ann, &id, |v| v["state"] == "running").await;
    runner_says(runner, &id, || RunnableCommand::RunEnded {
        generation: 3,
        node: "node-b".into(),
        code: Some(2),
        signal: None,
        synced: true,
        at: Utc::now(),
    })
    .await
    .unwrap();
    let ended = view_until(ann, &id, |v| v["state"] == "error").await;
    assert_eq!(ended["run"]["exit_code"], 2);
    assert_eq!(ended["run"]["diagnostics"], Value::Null);
    assert_eq!(ended["run"]["node"], "node-b");

    // Runner events are no accesses.
    let before = view_until(ann, &id, |_| true).await["last_access"].clone();
    act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);
    let after_start = view_until(ann, &id, |_| true).await["last_access"].clone();
    assert!(time(&after_start) >= time(&before));
    runner_says(runner, &id, started(4, "node-b", 8))
        .await
        .unwrap();
    let running = view_until(ann, &id, |v| v["state"] == "running").await;
    assert_eq!(
        running["last_access"], after_start,
        "a run started is no access"
    );
}

// ---- Logs ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_read_as_a_jobs_output() {
    let world = world().await;
    let (ann, admin, runner) = (&world.ann, &world.app.api, &world.runner);
    let id = anns_runnable(&world).await;
    let logs = |client: &Api, query: &str| {
        let client = client.clone();
        let path = format!("/v1/runnables/{id}/logs{query}");
        async move {
            let response = client.request(Method::GET, &path).send().await.unwrap();
            let status = response.status();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let (offset, complete, kind) = (
                header("bosun-output-offset"),
                header("bosun-output-complete"),
                header("content-type"),
            );
            let text = response.text().await.unwrap();
            (status, text, offset, complete, kind)
        }
    };
    // Nothing yet, nothing running: complete.
    let (status, text, offset, complete, kind) = logs(ann, "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        (text.as_str(), offset.as_deref(), complete.as_deref()),
        ("", Some("0"), Some("true"))
    );
    assert_eq!(kind.as_deref(), Some("text/plain; charset=utf-8"));

    act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);
    runner_says(runner, &id, started(1, "node-a", 11))
        .await
        .unwrap();
    let append = |generation: u64, stream: OutputStream, text: &'static str| {
        let id = id.clone();
        async move {
            runner
                .execute::<RunnableLog>(&id, &RUNNER, &origin(), |log| {
                    log.handle(RunnableLogCommand::Append {
                        generation,
                        stream,
                        text: text.into(),
                        at: Utc::now(),
                    })
                })
                .await
                .unwrap();
        }
    };
    append(1, OutputStream::Stdout, "héllo\n").await;
    append(1, OutputStream::Stderr, "oops\n").await;
    append(1, OutputStream::Stdout, "").await;
    // The read model catches up: 12 bytes in all ("héllo\n" is 7).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text, ..) = logs(ann, "").await;
        if text.len() == 12 {
            break;
        }
        assert!(Instant::now() < deadline, "the output never came: {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, text, offset, complete, _) = logs(ann, "").await;
    assert_eq!(
        (text.as_str(), offset.as_deref(), complete.as_deref()),
        ("héllo\noops\n", Some("12"), Some("false")),
        "running: more may come"
    );
    let (_, text, offset, _, _) = logs(ann, "?offset=7").await;
    assert_eq!((text.as_str(), offset.as_deref()), ("oops\n", Some("12")));
    let (_, text, offset, _, _) = logs(admin, "?offset=12").await;
    assert_eq!((text.as_str(), offset.as_deref()), ("", Some("12")));
    let (_, text, offset, _, _) = logs(ann, "?offset=100").await;
    assert_eq!((text.as_str(), offset.as_deref()), ("", Some("100")));

    // It ended: what is there is all there is.
    runner_says(runner, &id, || RunnableCommand::RunEnded {
        generation: 1,
        node: "node-a".into(),
        code: Some(0),
        signal: None,
        synced: true,
        at: Utc::now(),
    })
    .await
    .unwrap();
    view_until(ann, &id, |v| v["state"] == "stopped").await;
    let (_, _, offset, complete, _) = logs(ann, "?offset=12").await;
    assert_eq!(
        (offset.as_deref(), complete.as_deref()),
        (Some("12"), Some("true"))
    );
    let (_, _, _, complete, _) = logs(ann, "?offset=7").await;
    assert_eq!(
        complete.as_deref(),
        Some("true"),
        "the whole page is returned"
    );

    for bad in ["?offset=-1", "?offset=x", "?stream=stdout"] {
        let problem = ann
            .refused(Method::GET, &format!("/v1/runnables/{id}/logs{bad}"), None)
            .await;
        assert_eq!(problem.status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
    }

    // Removed, its output goes with it.
    ann.call(Method::DELETE, &format!("/v1/runnables/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    ann.refused(Method::GET, &format!("/v1/runnables/{id}/logs"), None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    let store = world.app.store().await;
    let client = store.pool().get().await.unwrap();
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM runnable_output WHERE runnable_id = $1",
            &[&Uuid::parse_str(&id).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_not_complete_while_an_older_run_still_runs() {
    let world = world().await;
    let (ann, runner) = (&world.ann, &world.runner);
    let id = anns_runnable(&world).await;
    let complete = || async {
        let response = ann
            .request(Method::GET, &format!("/v1/runnables/{id}/logs"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.headers()["bosun-output-complete"]
            .to_str()
            .unwrap()
            .to_string()
    };
    act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);
    runner_says(runner, &id, started(1, "node-a", 11))
        .await
        .unwrap();
    // Restarted, then stopped before the new generation started: `stopped`, though the first
    // run's process still runs until its runner stops it.
    act(ann, &id, "restart").await.expect(StatusCode::ACCEPTED);
    act(ann, &id, "stop").await.expect(StatusCode::ACCEPTED);
    let view = view_until(ann, &id, |v| v["state"] == "stopped").await;
    assert_eq!(view["run"]["pid"], 11, "{view}");
    assert_eq!(complete().await, "false", "its process may write more");
    runner_says(runner, &id, stopped(1, "node-a", RunStopReason::Stop))
        .await
        .unwrap();
    view_until(ann, &id, |v| v["run"]["pid"].is_null()).await;
    assert_eq!(complete().await, "true");
}

// ---- The save syncs first ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_of_a_running_runnable_waits_for_its_nodes_sync() {
    let world = world().await;
    let (ann, admin, runner) = (&world.ann, &world.app.api, &world.runner);
    let id = anns_runnable(&world).await;

    // Stopped, a save syncs nothing and saves at once.
    act(ann, &id, "save").await.expect(StatusCode::OK);
    assert!(!stream_types(admin, &id)
        .await
        .contains(&"RunnableSyncRequested".to_string()));

    // Changed and running on a node that answers nothing: 503 `sync_timeout`, and no image.
    let written = ann
        .request(Method::PUT, &format!("/v1/runnables/{id}/files/new.sh"))
        .header("content-type", "application/octet-stream")
        .body("echo new\n")
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), StatusCode::CREATED);
    act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);
    runner_says(runner, &id, started(1, "ghost", 99))
        .await
        .unwrap();
    let before = stream_types(admin, &id).await;
    let asked = Instant::now();
    let answer = act(ann, &id, "save").await;
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "it waited runnables.sync_wait_seconds"
    );
    assert_eq!(answer.header("retry-after"), "1");
    let problem = answer
        .problem()
        .expect(StatusCode::SERVICE_UNAVAILABLE, "sync_timeout");
    assert!(problem.detail().contains("sync"), "{problem}");
    let after = stream_types(admin, &id).await;
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after[before.len()..], ["RunnableSyncRequested"], "no image");

    // The node answers this time: the save keeps what it synced.
    let save = {
        let ann = ann.clone();
        let id = id.clone();
        tokio::spawn(async move { act(&ann, &id, "save").await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let sync = loop {
        let requests: Vec<Value> = stream_events(admin, &id)
            .await
            .into_iter()
            .filter(|e| e["event_type"] == "RunnableSyncRequested")
            .collect();
        if requests.len() == 2 {
            break Uuid::parse_str(requests[1]["data"]["sync"].as_str().unwrap()).unwrap();
        }
        assert!(Instant::now() < deadline, "the save never asked for a sync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The process wrote out.txt (its content a blob the store holds: main.sh's).
    let out = FileEntry {
        path: FilePath::parse("out.txt").unwrap(),
        digest: Digest::of(MAIN),
        size: MAIN.len() as u64,
    };
    runner_says(runner, &id, || RunnableCommand::SyncFiles {
        node: "ghost".into(),
        sync: Some(sync),
        written: vec![out.clone()],
        deleted: vec![],
        skipped: vec![],
        limits: FileLimits::default(),
        at: Utc::now(),
    })
    .await
    .unwrap();
    let saved = save.await.unwrap().expect(StatusCode::OK).body;
    assert!(saved["image"]["digest"].is_string(), "{saved}");
    let events = stream_events(admin, &id).await;
    let image = events
        .iter()
        .rev()
        .find(|e| e["event_type"] == "RunnableImageSaved")
        .unwrap();
    let paths: Vec<&str> = image["data"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"out.txt"), "{paths:?}");
    let synced = events
        .iter()
        .find(|e| e["event_type"] == "RunnableFilesSynced")
        .unwrap();
    assert_eq!(synced["metadata"]["actor"], "runner", "{synced}");

    // A stop while a save waits: the runner syncs the run back, then says it stopped; the save
    // keeps what it synced.
    act(ann, &id, "stop").await.expect(StatusCode::ACCEPTED);
    let (save, _) = saving(&world, &id).await;
    let out2 = FileEntry {
        path: FilePath::parse("out2.txt").unwrap(),
        ..out.clone()
    };
    runner_says(runner, &id, synced_by("ghost", None, out2))
        .await
        .unwrap();
    runner_says(runner, &id, stopped(1, "ghost", RunStopReason::Stop))
        .await
        .unwrap();
    save.await.unwrap().expect(StatusCode::OK);
    assert!(
        image_paths(admin, &id)
            .await
            .contains(&"out2.txt".to_string()),
        "the files synced at its end are in the image"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_ends_without_its_files_synced_fails_the_save() {
    let world = world().await;
    let (ann, admin, runner) = (&world.ann, &world.app.api, &world.runner);
    let id = anns_runnable(&world).await;
    act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);
    runner_says(runner, &id, started(1, "ghost", 99))
        .await
        .unwrap();

    // Its lease lost while a save waits: nothing is synced from there, so nothing is saved.
    let (save, _) = saving(&world, &id).await;
    runner_says(runner, &id, stopped(1, "ghost", RunStopReason::LeaseLost))
        .await
        .unwrap();
    let problem = save
        .await
        .unwrap()
        .problem()
        .expect(StatusCode::SERVICE_UNAVAILABLE, "sync_lost");
    assert!(problem.detail().contains("lease_lost"), "{problem}");
    let types = stream_types(admin, &id).await;
    assert!(
        !types.contains(&"RunnableImageSaved".to_string()),
        "no image: {types:?}"
    );

    // Stopped with its node, but no sync seen since the request (a sync back that failed):
    // nothing saved either, though a sync from before the request was recorded.
    act(ann, &id, "restart").await.expect(StatusCode::ACCEPTED);
    runner_says(runner, &id, started(2, "ghost", 100))
        .await
        .unwrap();
    let early = FileEntry {
        path: FilePath::parse("early.txt").unwrap(),
        digest: Digest::of(MAIN),
        size: MAIN.len() as u64,
    };
    runner_says(runner, &id, synced_by("ghost", None, early))
        .await
        .unwrap();
    let (save, _) = saving(&world, &id).await;
    runner_says(runner, &id, stopped(2, "ghost", RunStopReason::NodeStopped))
        .await
        .unwrap();
    save.await
        .unwrap()
        .problem()
        .expect(StatusCode::SERVICE_UNAVAILABLE, "sync_lost");
    let types = stream_types(admin, &id).await;
    assert!(
        !types.contains(&"RunnableImageSaved".to_string()),
        "no image: {types:?}"
    );

    // Nothing runs now: a save saves at once.
    act(ann, &id, "save").await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_synced_with_nothing_changed_lets_the_waiting_save_go_on() {
    let world = world().await;
    let (ann, admin, runner) = (&world.ann, &world.app.api, &world.runner);
    let id = anns_runnable(&world).await;
    act(ann, &id, "start").await.expect(StatusCode::ACCEPTED);
    runner_says(runner, &id, started(1, "ghost", 99))
        .await
        .unwrap();
    // The stop's sync back found nothing new (no FilesSynced event), and the stop says so.
    act(ann, &id, "stop").await.expect(StatusCode::ACCEPTED);
    let (save, _) = saving(&world, &id).await;
    runner_says(
        runner,
        &id,
        stopped_synced(1, "ghost", RunStopReason::Stop, true),
    )
    .await
    .unwrap();
    save.await.unwrap().expect(StatusCode::OK);
    let types = stream_types(admin, &id).await;
    assert!(
        types.contains(&"RunnableImageSaved".to_string()),
        "saved: {types:?}"
    );
}

/// The runner's sync of `written` from `node`, answering `sync` if some.
fn synced_by(node: &str, sync: Option<Uuid>, written: FileEntry) -> impl Fn() -> RunnableCommand {
    let node = node.to_string();
    move || RunnableCommand::SyncFiles {
        node: node.clone(),
        sync,
        written: vec![written.clone()],
        deleted: vec![],
        skipped: vec![],
        limits: FileLimits::default(),
        at: Utc::now(),
    }
}

/// A save of runnable `id` by ann, going on, once it asked for a sync: the save, and the
/// request's id.
async fn saving(world: &World, id: &str) -> (tokio::task::JoinHandle<bosun_tests::Answer>, Uuid) {
    let admin = &world.app.api;
    let requests = |events: Vec<Value>| -> Vec<Uuid> {
        events
            .iter()
            .filter(|e| e["event_type"] == "RunnableSyncRequested")
            .map(|e| Uuid::parse_str(e["data"]["sync"].as_str().unwrap()).unwrap())
            .collect()
    };
    let before = requests(stream_events(admin, id).await).len();
    let save = {
        let ann = world.ann.clone();
        let id = id.to_string();
        tokio::spawn(async move { act(&ann, &id, "save").await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let asked = requests(stream_events(admin, id).await);
        if asked.len() > before {
            return (save, asked[before]);
        }
        assert!(Instant::now() < deadline, "the save never asked for a sync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The paths of runnable `id`'s latest image, from its stream.
async fn image_paths(admin: &Api, id: &str) -> Vec<String> {
    let events = stream_events(admin, id).await;
    let image = events
        .iter()
        .rev()
        .find(|e| e["event_type"] == "RunnableImageSaved")
        .unwrap_or_else(|| panic!("no image"));
    image["data"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}
