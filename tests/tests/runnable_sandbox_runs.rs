//! Runnables run by the worker nodes, over real HTTP, the server in the test's process
//! (`spawn_app`): a fork of an admin's saved root runnable is started by its owner and runs in
//! the bwrap sandbox (its own hostname) with its output as its logs; stopped, what its process
//! wrote is in its files; a restart runs a new generation; one that ends on its own is stopped
//! (code 0) or in error (another code) with its code; a save while it runs keeps what it wrote
//! so far; what a sync cannot keep (a link) is said in its log; a stop gives it SIGTERM and
//! time to finish; a removed one's process is stopped, and a reaped one's; a lost lease kills it at once; a start
//! that cannot be made is `error` saying why (nothing of the server's said); a node that stops
//! stops its runs and leaves them wanted; an end the log refuses is left for the next node to
//! record lost (the lease runs out, not given up); a lost run a node claimed but could not
//! record lost is handed back to its node, run out, and recorded by the next; a run-out lease
//! whose loss cannot be recorded is put back; the trees a crash left are removed when a node
//! starts (those whose lock is free); a node with no processes in its catalog takes no unit's run-out lease; with
//! `sandbox: none` it runs in its tree on the host. Each test checks the answers and what the
//! log recorded (as the runner, the node as its source).

use bosun_api::config::{DatabaseUrl, Settings};
use bosun_api::startup::Application;
use bosun_eventstore::{EventStore, StreamId};
use bosun_tests::{process_alive, spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Prints a line and its hostname, writes `out.txt`, then sleeps (until stopped).
const SLEEPER: &str = "echo hello-from-the-runnable; hostname; echo written-by-the-process > out.txt; echo wrote; exec sleep 600";

/// How long a run may take to get anywhere (a claim is at most a supervisor's tick away).
const WAIT: Duration = Duration::from_secs(20);

/// The server (its runs' trees under a folder of the test's), and ann, who forked a saved root
/// runnable of the admin's.
struct World {
    app: TestApp,
    ann: Api,
    _work: tempfile::TempDir,
}

/// A world whose root runnable starts with `start_command`; `yaml`: more `runnables:` settings
/// (each line indented by two spaces).
async fn world(start_command: &str, yaml: &str) -> (World, String) {
    world_in(start_command, yaml, None).await
}

/// [`world`] with its runs' trees under `work_dir` (else a folder of the test's).
async fn world_in(start_command: &str, yaml: &str, work_dir: Option<&Path>) -> (World, String) {
    let work = tempfile::tempdir().expect("a work dir");
    // The sandbox's user must find its tree under it.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let runs = work.path().join("runs");
    let config = format!(
        "runner:\n  kill_grace_seconds: 2\n  lease_seconds: 3\nrunnables:\n  work_dir: {}\n{yaml}",
        work_dir.unwrap_or(&runs).display()
    );
    let app = spawn_app(&config).await;
    let admin = &app.api;
    let root = admin
        .post(
            "/v1/runnables",
            json!({"name": "root", "start_command": start_command,
                   "files": [{"path": "README.md", "content": "# hello\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let root_id = root["id"].as_str().unwrap().to_string();
    admin
        .call(Method::POST, &format!("/v1/runnables/{root_id}/save"), None)
        .await
        .expect(StatusCode::OK);
    let ann = admin.new_user("ann", "ann-password").await;
    let fork = ann
        .post("/v1/runnables", json!({"from": root_id}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = fork["id"].as_str().unwrap().to_string();
    (
        World {
            app,
            ann,
            _work: work,
        },
        id,
    )
}

async fn act(client: &Api, id: &str, action: &str) -> Value {
    client
        .call(Method::POST, &format!("/v1/runnables/{id}/{action}"), None)
        .await
        .expect(StatusCode::ACCEPTED)
        .body
}

async fn runnable(client: &Api, id: &str) -> Value {
    client
        .get(&format!("/v1/runnables/{id}"))
        .await
        .expect(StatusCode::OK)
        .body
}

/// Polls runnable `id` (as ann) until `done` holds for it.
async fn wait_for(w: &World, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let client = &w.ann;
    let deadline = Instant::now() + WAIT;
    loop {
        let r = runnable(client, id).await;
        if done(&r) {
            return r;
        }
        if Instant::now() >= deadline {
            let recorded: Vec<Value> = events(&w.app.api, id)
                .await
                .into_iter()
                .map(|e| json!([e["event_type"], e["data"]]))
                .collect();
            panic!("never {what}: {r}\nits events: {recorded:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls runnable `id` until it is `state` (at `generation`, if given).
async fn wait_state(w: &World, id: &str, state: &str, generation: Option<u64>) -> Value {
    wait_for(w, id, state, |r| {
        r["state"] == state && generation.is_none_or(|g| r["run"]["generation"] == g)
    })
    .await
}

/// Runnable `id`'s whole log, as text.
async fn logs(client: &Api, id: &str) -> String {
    let response = client
        .request(Method::GET, &format!("/v1/runnables/{id}/logs"))
        .send()
        .await
        .expect("GET the logs");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("the logs' text")
}

/// Polls runnable `id`'s log until it holds `text` `times` times.
async fn wait_logged(client: &Api, id: &str, text: &str, times: usize) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = logs(client, id).await;
        if log.matches(text).count() >= times {
            return log;
        }
        assert!(Instant::now() < deadline, "never logged {text:?}: {log:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events of runnable `id`'s stream.
async fn events(admin: &Api, id: &str) -> Vec<Value> {
    admin
        .get(&format!("/v1/streams/runnable-{id}"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap()
        .clone()
}

async fn events_of(admin: &Api, id: &str, kind: &str) -> Vec<Value> {
    events(admin, id)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == kind)
        .collect()
}

/// The content of file `path` of runnable `id`.
async fn file(client: &Api, id: &str, path: &str) -> (StatusCode, String) {
    let response = client
        .request(Method::GET, &format!("/v1/runnables/{id}/files/{path}"))
        .send()
        .await
        .expect("GET a file");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Asserts the runner recorded `event`, the node as its source.
#[track_caller]
fn by_the_runner(event: &Value) {
    assert_eq!(event["metadata"]["actor"], "runner", "{event}");
    let node = event["data"]["node"].as_str().unwrap_or_default();
    assert!(!node.is_empty(), "{event}");
    assert_eq!(event["metadata"]["source"], node, "{event}");
}

fn pid_of(r: &Value) -> i32 {
    r["run"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid: {r}")) as i32
}

async fn gone(pid: i32) {
    let deadline = Instant::now() + WAIT;
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_runnable_runs_in_the_sandbox_with_its_output_as_its_logs() {
    let (w, id) = world(SLEEPER, "").await;
    let answer = act(&w.ann, &id, "start").await;
    assert_eq!(answer["state"], "starting", "{answer}");
    assert_eq!(answer["run"]["generation"], 1, "{answer}");
    let running = wait_state(&w, &id, "running", Some(1)).await;
    assert!(process_alive(pid_of(&running)), "{running}");
    let log = wait_logged(&w.ann, &id, "wrote", 1).await;
    // bwrap's own hostname: it runs in the sandbox.
    assert_eq!(
        log, "hello-from-the-runnable\nrunnable\nwrote\n",
        "its output, in order"
    );
    let started = events_of(&w.app.api, &id, "RunnableRunStarted").await;
    assert_eq!(started.len(), 1, "{started:?}");
    by_the_runner(&started[0]);
    assert_eq!(started[0]["data"]["generation"], 1);
    assert_eq!(started[0]["data"]["pid"], running["run"]["pid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_runnable_keeps_the_files_its_process_wrote() {
    let (w, id) = world(SLEEPER, "").await;
    act(&w.ann, &id, "start").await;
    let running = wait_state(&w, &id, "running", Some(1)).await;
    wait_logged(&w.ann, &id, "wrote", 1).await;
    assert_eq!(file(&w.ann, &id, "out.txt").await.0, StatusCode::NOT_FOUND);
    act(&w.ann, &id, "stop").await;
    let stopped = wait_state(&w, &id, "stopped", None).await;
    assert!(stopped["run"]["pid"].is_null(), "{stopped}");
    gone(pid_of(&running)).await;
    assert_eq!(
        file(&w.ann, &id, "out.txt").await,
        (StatusCode::OK, "written-by-the-process\n".to_string())
    );
    assert_eq!(file(&w.ann, &id, "README.md").await.1, "# hello\n");
    let synced = events_of(&w.app.api, &id, "RunnableFilesSynced").await;
    assert_eq!(synced.len(), 1, "{synced:?}");
    by_the_runner(&synced[0]);
    let written = synced[0]["data"]["written"].as_array().unwrap();
    assert_eq!(written.len(), 1, "{synced:?}");
    assert_eq!(written[0]["path"], "out.txt");
    let stops = events_of(&w.app.api, &id, "RunnableRunStopped").await;
    assert_eq!(stops.len(), 1, "{stops:?}");
    by_the_runner(&stops[0]);
    assert_eq!(stops[0]["data"]["reason"], "stop");
    // Synced before the stop was recorded; its working folder is gone.
    assert!(synced[0]["version"].as_u64() < stops[0]["version"].as_u64());
    assert_eq!(
        trees_left(&w._work.path().join("runs")),
        Vec::<String>::new()
    );
}

/// The trees left in the node folders of `work_dir`.
fn trees_left(work_dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for node in std::fs::read_dir(work_dir).unwrap() {
        let node = node.unwrap();
        // Role jobs' command folders (`<work_dir>/jobs/<node>`), not a runnables node folder.
        if node.file_name() == "jobs" {
            continue;
        }
        let node = node.path();
        for tree in std::fs::read_dir(&node).unwrap() {
            let tree = tree.unwrap();
            // Its lock is no tree.
            if tree.file_name() != ".lock" {
                left.push(tree.path().display().to_string());
            }
        }
    }
    left
}

/// This process's node folder name's host part (its in-process servers' nodes are
/// `<host>:<pid>`).
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_sync_cannot_keep_is_said_in_the_log() {
    let script = "ln -s /etc/passwd link && echo x > kept.txt && echo linked";
    let (w, id) = world(script, "").await;
    act(&w.ann, &id, "start").await;
    wait_for(&w, &id, "ended", |r| {
        r["state"] == "stopped" && !r["run"]["exit_code"].is_null()
    })
    .await;
    assert_eq!(
        wait_logged(&w.ann, &id, "not synced", 1).await,
        "linked\n[bosun: not synced: link: a symbolic link (not followed)]\n"
    );
    assert_eq!(file(&w.ann, &id, "kept.txt").await.1, "x\n");
    assert_eq!(file(&w.ann, &id, "link").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_gives_the_sandboxed_process_sigterm_and_time_to_finish() {
    let script = "trap 'echo got-term; echo last-words > last.txt; exit 0' TERM; echo ready; \
                  while true; do sleep 0.1; done";
    let (w, id) = world(script, "").await;
    act(&w.ann, &id, "start").await;
    wait_state(&w, &id, "running", Some(1)).await;
    wait_logged(&w.ann, &id, "ready", 1).await;
    act(&w.ann, &id, "stop").await;
    wait_state(&w, &id, "stopped", None).await;
    // Its whole session got it (`sleep` too, which sh reports).
    let log = logs(&w.ann, &id).await;
    assert!(
        log.starts_with("ready\n") && log.contains("got-term\n"),
        "{log:?}"
    );
    assert_eq!(file(&w.ann, &id, "last.txt").await.1, "last-words\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_start_is_in_error_saying_why() {
    // Its work dir cannot be made: a file is where a folder should be.
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let (w, id) = world_in(SLEEPER, "", Some(&blocker.path().join("runs"))).await;
    act(&w.ann, &id, "start").await;
    let error = wait_state(&w, &id, "error", None).await;
    // Nothing of the server's (its folders, its errors) to its owner.
    assert_eq!(
        error["run"]["diagnostics"], "cannot make its working folder",
        "{error}"
    );
    let failed = events_of(&w.app.api, &id, "RunnableRunFailed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    by_the_runner(&failed[0]);
    assert!(events_of(&w.app.api, &id, "RunnableRunStarted")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopping_stops_its_runs_and_leaves_them_wanted() {
    let (w, id) = world(SLEEPER, "").await;
    act(&w.ann, &id, "start").await;
    let running = wait_state(&w, &id, "running", Some(1)).await;
    wait_logged(&w.ann, &id, "wrote", 1).await;
    let store = w.app.store().await;
    w.app.stop().await;
    gone(pid_of(&running)).await;
    let stream = StreamId::parse(format!("runnable-{id}")).unwrap();
    let recorded = store.read_stream(&stream, 0, 100).await.unwrap();
    let kinds: Vec<&str> = recorded.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["RunnableFilesSynced", "RunnableRunStopped"],
        "{kinds:?}"
    );
    let stop = recorded.last().unwrap();
    assert_eq!(stop.data["reason"], "node_stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_runs_a_new_generation() {
    let (w, id) = world(SLEEPER, "").await;
    act(&w.ann, &id, "start").await;
    let first = wait_state(&w, &id, "running", Some(1)).await;
    wait_logged(&w.ann, &id, "wrote", 1).await;
    let answer = act(&w.ann, &id, "restart").await;
    assert_eq!(answer["run"]["generation"], 2, "{answer}");
    let second = wait_state(&w, &id, "running", Some(2)).await;
    assert_ne!(second["run"]["pid"], first["run"]["pid"]);
    gone(pid_of(&first)).await;
    wait_logged(&w.ann, &id, "wrote", 2).await;
    let stops = events_of(&w.app.api, &id, "RunnableRunStopped").await;
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0]["data"]["reason"], "restart");
    assert_eq!(stops[0]["data"]["generation"], 1);
    let started = events_of(&w.app.api, &id, "RunnableRunStarted").await;
    let generations: Vec<&Value> = started.iter().map(|e| &e["data"]["generation"]).collect();
    assert_eq!(generations, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runnable_that_ends_with_code_0_is_stopped_with_its_code() {
    let (w, id) = world("echo done > result.txt; echo bye", "").await;
    act(&w.ann, &id, "start").await;
    let stopped = wait_for(&w, &id, "ended", |r| {
        r["state"] == "stopped" && !r["run"]["exit_code"].is_null()
    })
    .await;
    assert_eq!(stopped["run"]["exit_code"], 0, "{stopped}");
    assert_eq!(wait_logged(&w.ann, &id, "bye", 1).await, "bye\n");
    assert_eq!(file(&w.ann, &id, "result.txt").await.1, "done\n");
    let ended = events_of(&w.app.api, &id, "RunnableRunEnded").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    by_the_runner(&ended[0]);
    assert_eq!(ended[0]["data"]["code"], 0);
    // Not started again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        events_of(&w.app.api, &id, "RunnableRunStarted").await.len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runnable_that_ends_with_another_code_is_in_error_with_it() {
    let (w, id) = world("echo failing >&2; exit 3", "").await;
    act(&w.ann, &id, "start").await;
    let error = wait_state(&w, &id, "error", None).await;
    assert_eq!(error["run"]["exit_code"], 3, "{error}");
    assert_eq!(wait_logged(&w.ann, &id, "failing", 1).await, "failing\n");
    let ended = events_of(&w.app.api, &id, "RunnableRunEnded").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["data"]["code"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_while_it_runs_keeps_what_it_wrote_so_far() {
    let (w, id) = world(SLEEPER, "").await;
    act(&w.ann, &id, "start").await;
    wait_state(&w, &id, "running", Some(1)).await;
    wait_logged(&w.ann, &id, "wrote", 1).await;
    w.ann
        .call(Method::POST, &format!("/v1/runnables/{id}/save"), None)
        .await
        .expect(StatusCode::OK);
    let synced = events_of(&w.app.api, &id, "RunnableFilesSynced").await;
    assert_eq!(synced.len(), 1, "{synced:?}");
    let requested = events_of(&w.app.api, &id, "RunnableSyncRequested").await;
    assert_eq!(requested.len(), 1, "{requested:?}");
    assert_eq!(synced[0]["data"]["sync"], requested[0]["data"]["sync"]);
    let saved = events_of(&w.app.api, &id, "RunnableImageSaved").await;
    let paths: Vec<&Value> = saved[0]["data"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["path"])
        .collect();
    assert_eq!(paths, vec!["README.md", "out.txt"], "{saved:?}");
    // It runs on.
    assert_eq!(runnable(&w.ann, &id).await["state"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_runnables_process_is_stopped() {
    let (w, id) = world(SLEEPER, "").await;
    act(&w.ann, &id, "start").await;
    let running = wait_state(&w, &id, "running", Some(1)).await;
    w.ann
        .call(Method::DELETE, &format!("/v1/runnables/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    gone(pid_of(&running)).await;
    let deadline = Instant::now() + WAIT;
    let stops = loop {
        let stops = events_of(&w.app.api, &id, "RunnableRunStopped").await;
        if !stops.is_empty() || Instant::now() > deadline {
            break stops;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0]["data"]["reason"], "removed");
    // Nothing synced back.
    assert!(events_of(&w.app.api, &id, "RunnableFilesSynced")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_runnable_reaped_while_it_runs_has_its_process_stopped() {
    // Its run's own events are no accesses: left alone for 4 s, it is reaped though it runs.
    let (w, id) = world(
        SLEEPER,
        "  reap_after_seconds: 4\n  reap_interval_seconds: 1\n",
    )
    .await;
    act(&w.ann, &id, "start").await;
    let running = wait_state(&w, &id, "running", Some(1)).await;
    gone(pid_of(&running)).await;
    let deadline = Instant::now() + WAIT;
    let stops = loop {
        let stops = events_of(&w.app.api, &id, "RunnableRunStopped").await;
        if !stops.is_empty() || Instant::now() > deadline {
            break stops;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0]["data"]["reason"], "removed");
    let reaped = events_of(&w.app.api, &id, "RunnableReaped").await;
    assert_eq!(reaped.len(), 1, "{reaped:?}");
    assert_eq!(reaped[0]["metadata"]["actor"], "reaper");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_lost_is_killed_at_once() {
    let (w, id) = world(SLEEPER, "").await;
    act(&w.ann, &id, "start").await;
    let running = wait_state(&w, &id, "running", Some(1)).await;
    // Another node took the lease (as after this one's ran out).
    let store = w.app.store().await;
    let client = store.pool().get().await.expect("a connection");
    let taken = client
        .execute(
            "UPDATE unit_leases SET node = 'elsewhere:1', expires_at = now() + interval '1 hour'
             WHERE unit_id = $1",
            &[&format!("runnable:{id}")],
        )
        .await
        .expect("take the lease");
    assert_eq!(taken, 1);
    // Within a renewal or two (a sixth of the 3 s lease each).
    let began = Instant::now();
    gone(pid_of(&running)).await;
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    let deadline = Instant::now() + WAIT;
    let stops = loop {
        let stops = events_of(&w.app.api, &id, "RunnableRunStopped").await;
        if !stops.is_empty() || Instant::now() > deadline {
            break stops;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0]["data"]["reason"], "lease_lost");
    // Its kill is the lease's end, not an end of its own.
    assert!(events_of(&w.app.api, &id, "RunnableRunEnded")
        .await
        .is_empty());
    // Still wanted: it waits for a node to take it (the lease is another's).
    assert_eq!(runnable(&w.ann, &id).await["state"], "starting");
    assert!(events_of(&w.app.api, &id, "RunnableFilesSynced")
        .await
        .is_empty());
}

/// A server over `database` (of a server stopped), its runs' trees under `work_dir`; stopped
/// when the sender is dropped or sent to.
async fn spawn_app_on(
    database: &DatabaseUrl,
    work_dir: &Path,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    tempfile::TempDir,
) {
    let dir = bosun_tests::work_dir();
    let yaml = format!(
        "runner:\n  kill_grace_seconds: 2\n  lease_seconds: 3\nrunnables:\n  work_dir: {}\n",
        work_dir.display()
    );
    let file = bosun_tests::config_file(dir.path(), &yaml);
    let mut settings = Settings::from_sources(Some(&file), std::iter::empty()).unwrap();
    settings.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.data_dir = dir.path().join("bosun-data");
    settings.database.url = Some(database.clone());
    let app = Application::build(settings).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (stop, task, dir)
}

/// The lease row of runnable `id`'s run: its node and how many seconds it has left, if any.
async fn lease_row(client: &tokio_postgres::Client, id: &str) -> Option<(String, f64)> {
    client
        .query_opt(
            "SELECT node, extract(epoch FROM expires_at - now())::float8
             FROM unit_leases WHERE unit_id = $1",
            &[&format!("runnable:{id}")],
        )
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_end_the_log_refuses_is_left_for_the_next_node_to_record_lost() {
    let (w, id) = world(SLEEPER, "").await;
    act(&w.ann, &id, "start").await;
    let running = wait_state(&w, &id, "running", Some(1)).await;
    wait_logged(&w.ann, &id, "wrote", 1).await;
    let store = w.app.store().await;
    let database = w.app.database().clone();
    let client = store.pool().get().await.expect("a connection");
    // The log refuses every run's stop from now on.
    client
        .batch_execute(
            "CREATE FUNCTION test_refuse_stops() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.event_type = 'RunnableRunStopped' THEN
                 RAISE EXCEPTION 'refused by the test';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER test_refuse_stops BEFORE INSERT ON events
               FOR EACH ROW EXECUTE FUNCTION test_refuse_stops();",
        )
        .await
        .expect("the trigger");
    act(&w.ann, &id, "stop").await;
    gone(pid_of(&running)).await;
    // Its stop is tried again while its lease is good, and the lease kept meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runnable(&w.ann, &id).await["state"], "running");
    let (node, _) = lease_row(&client, &id).await.expect("the lease is kept");
    // The node stops with it unrecorded: the lease is left to run out, not given up.
    w.app.stop().await;
    let (after, left) = lease_row(&client, &id).await.expect("the lease is left");
    assert_eq!(after, node);
    assert!(left <= 3.0, "{left} s left");
    client
        .batch_execute("DROP TRIGGER test_refuse_stops ON events")
        .await
        .expect("no more trigger");
    // The next node takes the run-out lease of a run nobody wants: it records it lost.
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (_stop, _task, _dir) = spawn_app_on(&database, &work.path().join("runs")).await;
    let stream = StreamId::parse(format!("runnable-{id}")).unwrap();
    let deadline = Instant::now() + WAIT;
    let stop = loop {
        let recorded = store.read_stream(&stream, 0, 1000).await.unwrap();
        let stop = recorded
            .iter()
            .find(|e| e.event_type == "RunnableRunStopped")
            .cloned();
        if let Some(stop) = stop {
            break stop;
        }
        let kinds: Vec<&str> = recorded.iter().map(|e| e.event_type.as_str()).collect();
        assert!(Instant::now() < deadline, "never recorded lost: {kinds:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stop.data["reason"], "lost", "{:?}", stop.data);
    assert_eq!(stop.data["node"], node.as_str());
    assert!(lease_row(&client, &id).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trees_a_crash_left_are_removed_when_a_node_starts() {
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let runs = work.path().join("runs");
    // A pid nobody has now: a child that ended.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let host = host();
    let crashed = runs.join(format!("node-{host}-{dead}"));
    let own = runs.join(format!("node-{host}-{}", std::process::id()));
    let live = runs.join(format!("node-{host}-1"));
    let elsewhere = runs.join(format!("node-another-host-{dead}"));
    for folder in [&crashed, &own, &live, &elsewhere] {
        std::fs::create_dir_all(folder.join("tree-1/a")).unwrap();
        std::fs::write(folder.join("tree-1/a/file"), b"x").unwrap();
        std::os::unix::fs::symlink("/", folder.join("tree-1/root")).unwrap();
    }
    // An earlier node of this process's name: its lock free (a live pid, but no live node).
    std::fs::write(own.join(".lock"), b"").unwrap();
    // Locked up by its process.
    std::fs::set_permissions(
        crashed.join("tree-1/a"),
        std::fs::Permissions::from_mode(0o500),
    )
    .unwrap();
    let (_w, _id) = world_in(SLEEPER, "", Some(&runs)).await;
    let deadline = Instant::now() + WAIT;
    while crashed.exists() || own.exists() {
        assert!(
            Instant::now() < deadline,
            "the crash's trees are still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        live.join("tree-1/a/file").exists(),
        "a live pid's, with no lock"
    );
    assert!(elsewhere.join("tree-1/a/file").exists(), "another host's");
    assert!(Path::new("/etc").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_no_processes_takes_only_runs_run_out_leases() {
    let (w, _id) = world(SLEEPER, "").await;
    let store = w.app.store().await;
    let client = store.pool().get().await.expect("a connection");
    let unit = "web.prod.http.0".to_string();
    let run = format!("runnable:{}", uuid::Uuid::new_v4());
    for key in [&unit, &run] {
        client
            .execute(
                "INSERT INTO unit_leases (unit_id, node, expires_at)
                 VALUES ($1, 'lost-host:1', now() - interval '1 hour')",
                &[key],
            )
            .await
            .expect("a run-out lease");
    }
    let count = |key: String| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT count(*) FROM unit_leases WHERE unit_id = $1",
                    &[&key],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let deadline = Instant::now() + WAIT;
    while count(run.clone()).await > 0 {
        assert!(Instant::now() < deadline, "the run's lease was never taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few ticks more: a unit's is another's (a node with processes in its catalog) to take.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(unit).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sandbox_it_runs_in_its_tree_on_the_host() {
    let (w, id) = world(
        "pwd; hostname; cat README.md; exec sleep 600",
        "  sandbox: none\n",
    )
    .await;
    act(&w.ann, &id, "start").await;
    wait_state(&w, &id, "running", Some(1)).await;
    let log = wait_logged(&w.ann, &id, "# hello", 1).await;
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[0].starts_with(&w._work.path().join("runs").display().to_string()),
        "{log}"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(lines[1], host.trim(), "{log}");
    act(&w.ann, &id, "stop").await;
    wait_state(&w, &id, "stopped", None).await;
}

/// Makes the log refuse every run's stop (a `RunLost` too) until `allow_stops`.
async fn refuse_stops(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE OR REPLACE FUNCTION test_refuse_stops() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.event_type = 'RunnableRunStopped' THEN
                 RAISE EXCEPTION 'refused by the test';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER test_refuse_stops BEFORE INSERT ON events
               FOR EACH ROW EXECUTE FUNCTION test_refuse_stops();",
        )
        .await
        .expect("the trigger");
}

async fn allow_stops(client: &tokio_postgres::Client) {
    client
        .batch_execute("DROP TRIGGER test_refuse_stops ON events")
        .await
        .expect("no more trigger");
}

/// Waits for the run's `RunnableRunStopped` and returns its data.
async fn stopped_event(store: &impl EventStore, id: &str) -> Value {
    let stream = StreamId::parse(format!("runnable-{id}")).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let recorded = store.read_stream(&stream, 0, 1000).await.unwrap();
        if let Some(stop) = recorded
            .iter()
            .find(|e| e.event_type == "RunnableRunStopped")
        {
            return stop.data.clone();
        }
        let kinds: Vec<&str> = recorded.iter().map(|e| e.event_type.as_str()).collect();
        assert!(
            Instant::now() < deadline,
            "never recorded stopped: {kinds:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_lost_run_let_go_unrecorded_is_handed_back_to_its_node_run_out() {
    let (w, id) = world(SLEEPER, "").await;
    act(&w.ann, &id, "start").await;
    wait_state(&w, &id, "running", Some(1)).await;
    wait_logged(&w.ann, &id, "wrote", 1).await;
    let store = w.app.store().await;
    let database = w.app.database().clone();
    let client = store.pool().get().await.expect("a connection");
    refuse_stops(&client).await;
    // Its node stops with the run's stop unrecorded: live on record, its lease left to run out.
    w.app.stop().await;
    let (node, _) = lease_row(&client, &id).await.expect("the lease is left");
    // The next node claims it once it ran out, but cannot record the lost run: it starts
    // nothing, and stops (its loop's top gives the lease up) with the loss still unrecorded.
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (stop, task, _dir) = spawn_app_on(&database, &work.path().join("runs")).await;
    let deadline = Instant::now() + WAIT;
    // Run out first, then claimed.
    while lease_row(&client, &id)
        .await
        .is_some_and(|(_, left)| left >= 0.0)
    {
        assert!(Instant::now() < deadline, "never ran out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while lease_row(&client, &id)
        .await
        .is_none_or(|(_, left)| left < 0.0)
    {
        assert!(Instant::now() < deadline, "never claimed again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(());
    let _ = task.await;
    // Not given up: handed back, run out, under the node of the run on record.
    let (after, left) = lease_row(&client, &id).await.expect("the lease is kept");
    assert_eq!(after, node);
    assert!(left < 0.0, "{left} s left");
    let stream = StreamId::parse(format!("runnable-{id}")).unwrap();
    let recorded = store.read_stream(&stream, 0, 1000).await.unwrap();
    let starts = recorded
        .iter()
        .filter(|e| e.event_type == "RunnableRunStarted")
        .count();
    assert_eq!(starts, 1, "nothing started while the lost run was live");
    // The node after takes it over: the lost run recorded stopped, then run anew.
    allow_stops(&client).await;
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (_stop, _task, _dir) = spawn_app_on(&database, &work.path().join("runs")).await;
    let stop = stopped_event(&store, &id).await;
    assert_eq!(stop["reason"], "lost", "{stop:?}");
    assert_eq!(stop["node"], node.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_out_lease_whose_loss_cannot_be_recorded_is_put_back() {
    let (w, id) = world(SLEEPER, "").await;
    act(&w.ann, &id, "start").await;
    let running = wait_state(&w, &id, "running", Some(1)).await;
    wait_logged(&w.ann, &id, "wrote", 1).await;
    let store = w.app.store().await;
    let database = w.app.database().clone();
    let client = store.pool().get().await.expect("a connection");
    refuse_stops(&client).await;
    // Its stop cannot be recorded, and its node stops: its lease is left to run out.
    act(&w.ann, &id, "stop").await;
    gone(pid_of(&running)).await;
    w.app.stop().await;
    let (node, _) = lease_row(&client, &id).await.expect("the lease is left");
    // The next node takes it (nobody wants the run), and cannot record its loss either.
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (_stop, _task, _dir) = spawn_app_on(&database, &work.path().join("runs")).await;
    // A lease and several ticks later: still there, run out, under the lost node's name.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let deadline = Instant::now() + WAIT;
    let (after, left) = loop {
        // Taken and put back over and over: seen between two.
        if let Some(row) = lease_row(&client, &id).await {
            break row;
        }
        assert!(Instant::now() < deadline, "the lease was not put back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(after, node);
    assert!(left < 0.0, "{left} s left");
    // Once the log takes it, the run is recorded lost and its lease goes.
    allow_stops(&client).await;
    let stop = stopped_event(&store, &id).await;
    assert_eq!(stop["reason"], "lost", "{stop:?}");
    assert_eq!(stop["node"], node.as_str());
    let deadline = Instant::now() + WAIT;
    while lease_row(&client, &id).await.is_some() {
        assert!(Instant::now() < deadline, "the lease stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
