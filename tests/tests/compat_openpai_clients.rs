//! OpenPAI's real client against `/compat/openpai`: npm `@microsoft/openpai-js-sdk` 0.1.5,
//! pinned in `tests/clients/openpai` (installed here with `npm ci` when needed), with
//! `rest_server_uri` the surface's base URL. `PAIV2.OpenPAIClient` logs in with a Bosun user's
//! password, submits YAML jobs whose task roles run catalog tasks, polls one to `SUCCEEDED`,
//! lists, reads its config, stops a running one, and meets the refusals as its own error
//! classes; the `PAIV1` namespace logs in, submits a form, reads, lists, stops and removes a
//! job. What the client did is then read natively (`/v1/jobs`, `/v1/audit`, same actor). The
//! scripts there drive the SDK and print what it answered as one JSON line. The server runs in
//! the test's process.

use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use tokio::process::Command;

const CATALOG: &str = r#"
catalog:
  example:
    production:
      deploy:
        command: ["sh", "-c", "echo deploying; sleep 0.2; echo done"]
      sleep:
        command: ["sleep", "600"]
"#;

const PASSWORD: &str = "s3cret-pw";

/// The longest a script may take (its own limit is 60 s).
const SCRIPT_LIMIT: Duration = Duration::from_secs(90);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/openpai")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The SDK, installed from the lock file unless `node_modules` is already as new as it (npm
/// writes `node_modules/.package-lock.json` at each install). Once per test binary.
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
                    "`{tool}` is needed to run OpenPAI's JS SDK: install Node 20 and npm \
                     (the distribution's `nodejs` and `npm` packages, or nodejs.org)"
                );
            }
        }
        let lock = modified(&dir.join("package-lock.json")).expect("the SDK's package-lock.json");
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

/// Runs `script` of `tests/clients/openpai` to its end: the JSON line it printed and its exit
/// code.
async fn run(script: &str, args: &[&str]) -> (Value, i32) {
    let dir = installed();
    let child = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start node {script}: {e}"));
    let output = tokio::time::timeout(SCRIPT_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not end within {SCRIPT_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("wait for {script}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{script} printed no result: {text}"));
    let result = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{script} printed a line that is not JSON ({e}): {line}"));
    (result, output.status.code().unwrap_or(-1))
}

/// A server, a user `alice` of it (their native client), and the SDK's `rest_server_uri`.
async fn start() -> (TestApp, Api, String) {
    let app = spawn_app(CATALOG).await;
    let alice = app.api.new_user("alice", PASSWORD).await;
    let uri = app.url("/compat/openpai");
    (app, alice, uri)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v2_sdk_runs_a_catalog_task_job_to_succeeded_lists_it_and_reads_its_config() {
    let (app, alice, uri) = start().await;
    let (result, code) = run(
        "v2_run_job.js",
        &[
            &uri,
            "alice",
            PASSWORD,
            "train",
            "example/production/deploy",
            "2",
        ],
    )
    .await;
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["login"]["user"], "alice", "{result}");
    assert_eq!(result["login"]["admin"], false, "{result}");
    let status = &result["final"]["jobStatus"];
    assert_eq!(status["state"], "SUCCEEDED", "{result}");
    assert_eq!(status["username"], "alice", "{result}");
    let tasks = result["final"]["taskRoles"]["train"]["taskStatuses"]
        .as_array()
        .unwrap_or_else(|| panic!("no task statuses: {result}"));
    assert_eq!(tasks.len(), 2, "{result}");
    assert!(
        tasks.iter().all(|t| t["taskState"] == "SUCCEEDED"),
        "{result}"
    );
    assert_eq!(
        result["listed"],
        serde_json::json!([{"name": "train", "username": "alice", "state": "SUCCEEDED"}]),
        "{result}"
    );
    // js-yaml parsed the config the surface rendered.
    let config = &result["config"];
    assert_eq!(config["name"], "train", "{result}");
    assert_eq!(config["protocolVersion"], 2, "{result}");
    assert_eq!(config["taskRoles"]["train"]["instances"], 2, "{result}");
    assert_eq!(
        config["taskRoles"]["train"]["commands"][0], "example/production/deploy",
        "{result}"
    );
    // The same job natively, submitted by alice; her actions audited as hers.
    let id = status["appId"].as_str().expect("an appId");
    let job = alice
        .get(&format!("/v1/jobs/{id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(job["kind"], "roles", "{job}");
    assert_eq!(job["created_by"], "alice", "{job}");
    assert_eq!(job["status"], "success", "{job}");
    let audit = app
        .api
        .get("/v1/audit?actor=alice&limit=1000")
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"].as_str().is_some_and(|t| t.contains(id))),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v2_sdk_stops_a_running_job() {
    let (_app, alice, uri) = start().await;
    let (result, code) = run(
        "v2_stop_job.js",
        &[&uri, "alice", PASSWORD, "long", "example/production/sleep"],
    )
    .await;
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["submitted"]["status"], 202, "{result}");
    assert_eq!(result["running"], "RUNNING", "{result}");
    assert_eq!(result["stop"]["status"], 202, "{result}");
    assert_eq!(result["stopped"]["state"], "STOPPED", "{result}");
    assert_eq!(result["stopped"]["executionType"], "STOP", "{result}");
    let tasks = result["stopped"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{result}");
    assert!(tasks.iter().all(|t| t != "RUNNING"), "{result}");
    let jobs = alice
        .get("/v1/jobs?kind=roles&name=long")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(jobs[0]["status"], "killed", "{jobs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v2_sdk_meets_refusals_as_its_own_error_classes() {
    let (_app, alice, uri) = start().await;
    alice
        .post(
            "/v1/jobs",
            serde_json::json!({"name": "taken", "roles": [{"name": "main", "task": "example/production/deploy"}]}),
        )
        .await
        .expect(StatusCode::CREATED);
    let (result, code) = run("v2_refusals.js", &[&uri, "alice", PASSWORD, "taken"]).await;
    assert_eq!(code, 0, "{result}");
    let error = |step: &str| result[step]["error"].clone();
    assert_eq!(
        error("wrongPassword")["code"],
        "IncorrectPasswordError",
        "{result}"
    );
    assert_eq!(error("wrongPassword")["status"], 400, "{result}");
    assert_eq!(error("missingJob")["class"], "NoJobError", "{result}");
    assert_eq!(error("missingJob")["status"], 404, "{result}");
    assert_eq!(error("taken")["code"], "ConflictJobError", "{result}");
    assert_eq!(error("taken")["status"], 409, "{result}");
    assert_eq!(result["me"]["ok"]["username"], "alice", "{result}");
    assert_eq!(result["info"]["ok"]["authnMethod"], "basic", "{result}");
    assert_eq!(
        result["logout"]["ok"]["message"], "Logout successfully",
        "{result}"
    );
    assert_eq!(
        error("afterLogout")["class"],
        "UnauthorizedUserError",
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v1_sdk_submits_reads_lists_stops_and_removes_a_job() {
    let (_app, alice, uri) = start().await;
    let (result, code) = run(
        "v1_jobs.js",
        &[&uri, "alice", PASSWORD, "v1job", "example/production/sleep"],
    )
    .await;
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["token"], "string", "{result}");
    assert_eq!(result["clusterInfo"]["name"], "PAI RESTful API", "{result}");
    assert_eq!(
        result["submitted"]["message"], "update job v1job successfully",
        "{result}"
    );
    let running = &result["running"];
    assert_eq!(running["jobStatus"]["username"], "alice", "{result}");
    assert_eq!(
        running["taskRoles"]["main"]["taskStatuses"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{result}"
    );
    assert!(
        result["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"] == "v1job" && j["username"] == "alice"),
        "{result}"
    );
    assert_eq!(
        result["frameworkInfo"]["jobStatus"]["appId"], running["jobStatus"]["appId"],
        "{result}"
    );
    assert_eq!(result["config"]["jobName"], "v1job", "{result}");
    assert_eq!(
        result["config"]["taskRoles"][0]["taskNumber"], 2,
        "{result}"
    );
    assert_eq!(result["config"]["jobEnvs"]["MODE"], "fast", "{result}");
    assert_eq!(
        result["execute"]["message"], "execute job v1job successfully",
        "{result}"
    );
    assert_eq!(result["stopped"], "STOPPED", "{result}");
    assert_eq!(
        result["deleted"]["message"], "deleted job v1job successfully",
        "{result}"
    );
    assert_eq!(result["afterDelete"]["error"]["status"], 404, "{result}");
    // Natively the job stays, as history, its name free.
    let jobs = alice
        .get("/v1/jobs?kind=roles&name=v1job")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(jobs[0]["status"], "killed", "{jobs}");
    assert_eq!(jobs[0]["name_held"], false, "{jobs}");
    assert_eq!(jobs[0]["variables"]["MODE"], "fast", "{jobs}");
}
