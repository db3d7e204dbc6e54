//! pulsar's real clients against `/compat/pulsar`: pulsar-rest-api-client-node 0.6.1 (its REST
//! calls and its SockJS feed together, as its users drove it) and sockjs-client alone over each
//! transport. The clients are the npm packages pinned in `tests/clients/pulsar` (installed here
//! with `npm ci` when needed); the scripts there drive them and print what they saw as JSON.
//! The server runs in the test's process.

use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, StreamId};
use bosun_tests::{spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Each task waits for its test's gate (a file) to open before it does anything: pulsar's
/// client listens to a job's events only once the reply to its submission has arrived, so a task
/// done sooner would close before the client could see it (the real pulsar's tasks took longer
/// anyway). `run_job.js` says when that reply has arrived; the test then opens the gate.
fn catalog(gate: &Path) -> String {
    let wait = format!("until [ -e '{}' ]; do sleep 0.02; done", gate.display());
    format!(
        r#"
catalog:
  example:
    production:
      deploy:
        command: ["sh", "-c", "{wait}; echo deploying; sleep 0.2; echo done"]
        description: Deploy the app
      broken:
        command: ["sh", "-c", "{wait}; echo failing >&2; exit 3"]
      sleep:
        command: ["sh", "-c", "{wait}; echo sleeping; exec sleep 600"]
"#
    )
}

/// A server with [`catalog`], and its tasks' gate: a file that is not there until opened.
struct Gated {
    app: TestApp,
    gate: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Gated {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Gated {
    /// Lets the tasks (those waiting and those to come) go on.
    fn open(&self) {
        std::fs::write(&self.gate, b"").expect("open the tasks' gate");
    }
}

/// The longest a script may take (its own limit is 30 s).
const SCRIPT_LIMIT: Duration = Duration::from_secs(45);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/pulsar")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The client packages, installed from the lock file unless `node_modules` is already as new as
/// it (npm writes `node_modules/.package-lock.json` at each install). Once per test binary.
fn installed() -> &'static Path {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = clients_dir();
        for tool in ["node", "npm"] {
            let found = std::process::Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .status();
            if !matches!(found, Ok(status) if status.success()) {
                panic!(
                    "`{tool}` is needed to run pulsar's Node client: install Node 20 and npm \
                     (the distribution's `nodejs` and `npm` packages, or nodejs.org)"
                );
            }
        }
        let lock =
            modified(&dir.join("package-lock.json")).expect("the client's package-lock.json");
        let current =
            modified(&dir.join("node_modules/.package-lock.json")).is_some_and(|m| m >= lock);
        if !current {
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .status()
                .expect("run npm ci");
            assert!(
                status.success(),
                "npm ci in {} failed: {status}",
                dir.display()
            );
        }
        dir
    })
}

/// A running script of `tests/clients/pulsar`, read line by line (one JSON value each).
struct Script {
    name: String,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Script {
    fn start(script: &str, args: &[&str]) -> Script {
        let dir = installed();
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start node {script}: {e}"));
        let stdout = child.stdout.take().expect("the script's stdout");
        Script {
            name: script.to_string(),
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next line it prints.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(SCRIPT_LIMIT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{} printed nothing within {SCRIPT_LIMIT:?}", self.name))
            .unwrap_or_else(|e| panic!("reading {}'s output: {e}", self.name))
            .unwrap_or_else(|| panic!("{} ended without printing its result", self.name));
        serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "{} printed a line that is not JSON ({e}): {line}",
                self.name
            )
        })
    }

    /// Its exit code, once it has exited.
    async fn exit_code(mut self) -> i32 {
        let status = tokio::time::timeout(SCRIPT_LIMIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit", self.name))
            .expect("wait for the script");
        status.code().unwrap_or(-1)
    }

    /// Runs it to its end: its one result and its exit code.
    async fn run(script: &str, args: &[&str]) -> (Value, i32) {
        let mut script = Script::start(script, args);
        let result = script.next().await;
        (result, script.exit_code().await)
    }
}

async fn start_with(extra: &str) -> Gated {
    let dir = tempfile::tempdir().expect("a directory for the gate");
    let gate = dir.path().join("open");
    let app = spawn_app(&format!("{}{extra}", catalog(&gate))).await;
    Gated {
        app,
        gate,
        _dir: dir,
    }
}

async fn start() -> Gated {
    start_with("").await
}

/// pulsar's base URL for its clients (no trailing slash: the client appends paths as they are).
fn pulsar_url(app: &TestApp) -> String {
    app.url("/compat/pulsar")
}

/// Runs `task` through the client's `runJob` (and `killJob` once it runs, with `kill`): the
/// task goes on once the client has its submission's reply.
async fn run_job(app: &Gated, task: &str, kill: bool) -> (Value, i32) {
    let url = pulsar_url(app);
    let mut args = vec![url.as_str(), &app.api.token, "example", "production", task];
    if kill {
        args.push("kill");
    }
    let mut script = Script::start("run_job.js", &args);
    let posted = script.next().await;
    if posted.get("posted").is_none() {
        // The submission failed: that is the script's result.
        return (posted, script.exit_code().await);
    }
    app.open();
    let result = script.next().await;
    assert_eq!(result["id"], posted["posted"], "{result}");
    (result, script.exit_code().await)
}

/// The feed's events the client received about its job, by name.
fn received(result: &Value) -> Vec<&str> {
    result["received"]
        .as_array()
        .unwrap_or_else(|| panic!("no received events: {result}"))
        .iter()
        .map(|m| m["event"].as_str().unwrap_or_default())
        .collect()
}

/// The last event received about the job: its name and the job's status in it.
fn last_received(result: &Value) -> (&str, &str) {
    let last = result["received"]
        .as_array()
        .and_then(|all| all.last())
        .unwrap_or_else(|| panic!("no event received: {result}"));
    (
        last["event"].as_str().unwrap_or_default(),
        last["status"].as_str().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_job_of_a_task_that_succeeds_is_created_changed_and_closed_finished() {
    let app = start().await;
    let (result, code) = run_job(&app, "deploy", false).await;
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["outcome"], "success", "{result}");
    assert_eq!(result["status"], "FINISHED", "{result}");
    let events = received(&result);
    assert_eq!(events.first(), Some(&"job.create"), "{result}");
    assert!(events.contains(&"job.change"), "{result}");
    assert_eq!(
        last_received(&result),
        ("job.close", "FINISHED"),
        "{result}"
    );
    // The client's own view: created, changed, then a success.
    let emitted = result["emitted"].as_array().unwrap();
    assert_eq!(emitted.first(), Some(&json!("create")), "{result}");
    assert!(emitted.contains(&json!("change")), "{result}");
    assert_eq!(emitted.last(), Some(&json!("success")), "{result}");
    // The job as the last event left it with the client: done, with its whole output.
    assert_eq!(result["stdout"], "deploying\ndone\n", "{result}");
    let job = app.api.job(result["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_job_of_a_failing_task_ends_in_an_error_with_its_status() {
    let app = start().await;
    let (result, code) = run_job(&app, "broken", false).await;
    assert_eq!(code, 1, "{result}");
    assert_eq!(result["outcome"], "error", "{result}");
    assert_eq!(
        result["error"], "Job finished with status `FAILED`.",
        "{result}"
    );
    assert_eq!(last_received(&result), ("job.close", "FAILED"), "{result}");
    let job = app.api.job(result["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "error", "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_lists_the_jobs_newest_first_in_pulsars_shape() {
    let app = start().await;
    app.open();
    let first = app.api.submit("deploy", json!({"wait": true})).await;
    let second = app.api.submit("broken", json!({"wait": true})).await;
    let url = pulsar_url(&app);
    let (result, code) = Script::run("jobs.js", &[&url, &app.api.token]).await;
    assert_eq!(code, 0, "{result}");
    // One list per pulsar instance configured: here the one.
    let jobs = result["jobs"][0]
        .as_array()
        .unwrap_or_else(|| panic!("{result}"));
    let listed: Vec<(&str, &str)> = jobs
        .iter()
        .map(|job| (job["id"].as_str().unwrap(), job["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            (second["id"].as_str().unwrap(), "FAILED"),
            (first["id"].as_str().unwrap(), "FINISHED"),
        ],
        "{result}"
    );
    assert_eq!(jobs[1]["command"], "example production deploy", "{result}");
    assert_eq!(jobs[1]["stdout"], "deploying\ndone\n", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_job_of_a_running_job_ends_it_killed() {
    let app = start().await;
    let (result, code) = run_job(&app, "sleep", true).await;
    assert_eq!(code, 1, "{result}");
    assert_eq!(result["kill"], "OK", "{result}");
    assert_eq!(result["status"], "KILLED", "{result}");
    assert_eq!(
        result["error"], "Job finished with status `KILLED`.",
        "{result}"
    );
    assert_eq!(last_received(&result), ("job.close", "KILLED"), "{result}");
    let job = app.api.job(result["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "killed", "{job}");
}

/// sockjs-client over `transport` alone, authenticated with `token`, once its session is open.
async fn open_feed(app: &TestApp, token: &str, transport: &str) -> Script {
    let url = pulsar_url(app);
    let mut script = Script::start("sockjs_transports.js", &[&url, token, transport]);
    let opened = script.next().await;
    assert_eq!(opened, json!({"open": true, "transport": transport}));
    script
}

/// A job submitted over `/v1` by the admin (another client than the feed's) reaches a
/// sockjs-client session over `transport` as a `job.create` in pulsar's shape.
async fn a_job_created_elsewhere_reaches_the_feed_over(transport: &str) {
    let app = start().await;
    let mut feed = open_feed(&app, &app.api.token, transport).await;
    let job = app.api.submit("deploy", json!({})).await;
    let created = feed.next().await;
    assert_eq!(created["event"], "job.create", "{created}");
    assert_eq!(created["transport"], transport, "{created}");
    assert_eq!(created["job"]["id"], job["id"], "{created}");
    assert_eq!(created["job"]["task"], "deploy", "{created}");
    assert_eq!(
        created["job"]["command"], "example production deploy",
        "{created}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_client_over_websocket_gets_a_job_created_by_another_client() {
    a_job_created_elsewhere_reaches_the_feed_over("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_client_over_xhr_streaming_gets_a_job_created_by_another_client() {
    a_job_created_elsewhere_reaches_the_feed_over("xhr-streaming").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockjs_client_over_xhr_polling_gets_a_job_created_by_another_client() {
    a_job_created_elsewhere_reaches_the_feed_over("xhr-polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_closed_403_access_denied() {
    let app = start().await;
    let mut feed = open_feed(&app, "not-a-bosun-token", "websocket").await;
    let closed = feed.next().await;
    assert_eq!(
        closed,
        json!({"closed": {"code": 403, "reason": "Access denied"}})
    );
    assert_eq!(feed.exit_code().await, 0);
}

/// Lines of the feed until the one `done` holds for.
async fn until(feed: &mut Script, done: impl Fn(&Value) -> bool) -> Value {
    loop {
        let line = feed.next().await;
        if done(&line) {
            return line;
        }
        assert!(line.get("closed").is_none(), "closed early: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_token_is_revoked_is_closed_403_access_denied() {
    let app = start().await;
    let issued = app
        .api
        .post("/v1/tokens", json!({"description": "pulsar feed"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let mut feed = open_feed(&app, issued["token"].as_str().unwrap(), "websocket").await;
    // A job's creation arriving shows the token was taken.
    app.api.submit("sleep", json!({})).await;
    let created = feed.next().await;
    assert_eq!(created["event"], "job.create", "{created}");
    let token_id = issued["token_id"].as_str().unwrap();
    app.api
        .call(Method::DELETE, &format!("/v1/tokens/{token_id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let closed = until(&mut feed, |line| line.get("closed").is_some()).await;
    assert_eq!(
        closed,
        json!({"closed": {"code": 403, "reason": "Access denied"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_gets_only_the_jobs_its_caller_may_read() {
    let app = start().await;
    app.open();
    let viewer = app.api.new_user("viewer", "viewer-pw").await;
    let mut feed = open_feed(&app, &viewer.token, "websocket").await;
    // The admin's job, whole, before the viewer's: none of it may reach the viewer.
    let theirs = app.api.submit("deploy", json!({"wait": true})).await;
    let mine = viewer.submit("deploy", json!({})).await;
    let first = feed.next().await;
    assert_eq!(
        (&first["event"], &first["job"]["id"]),
        (&json!("job.create"), &mine["id"]),
        "{first} (the admin's job was {})",
        theirs["id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_falls_behind_the_hub_is_closed_not_skipped() {
    // A hub that holds one event, and no worker: the job waits, and its output comes from here.
    let app = start_with("runner:\n  workers: 0\nlive:\n  buffer: 1\n").await;
    let mut feed = open_feed(&app, &app.api.token, "websocket").await;
    let job = app.api.submit("deploy", json!({})).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(feed.next().await["event"], "job.create");
    // A hundred chunks of output in one append: the hub publishes them while the session is
    // still rendering the first, and it has missed the rest.
    let chunks = (0..100u64)
        .map(|n| {
            let data = json!({"job_id": id, "stream": "stdout", "offset": n * 6, "text": format!("{n:05}\n")});
            NewEvent::new("JobOutputAppended", data)
        })
        .collect();
    app.store()
        .await
        .append(
            &StreamId::parse(format!("job-{id}")).unwrap(),
            ExpectedVersion::Any,
            chunks,
        )
        .await
        .expect("append the output");
    let closed = until(&mut feed, |line| line.get("closed").is_some()).await;
    assert_eq!(
        closed,
        json!({"closed": {"code": 4408, "reason": "too slow: events were missed; reconnect"}})
    );
}
