//! Role jobs over `/v1/jobs` (OpenPAI's job model, native), the server in the test's process
//! (`spawn_app`): every instance of every role runs at once as a task of the one job, with its
//! `PAI_*` variables; a name is unique among a user's role jobs (409, nothing written) until it
//! is released; a role's command is refused unless the server allows commands, and then runs in
//! the bwrap sandbox; kill and stop reach every instance; a failed attempt runs again while its
//! `retry_count` lasts; a failed instance is named in the job's diagnostics; a retry with the
//! same `Idempotency-Key` gets the first job; the list narrows by kind, submitter and name.

use bosun_tests::{spawn_app, Api, TestApp};
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

/// `meet` waits (at most 20 s) until `$COUNT` instances have left their marker in `$DIR`, so it
/// succeeds only if they run at once; `sleep` runs until stopped; `once` fails the first time
/// in `$DIR` and succeeds after; `fail` fails.
const CATALOG: &str = r#"
catalog:
  ml:
    production:
      meet:
        command: ["sh", "-c", "touch \"$DIR/$PAI_TASK_ROLE_NAME-$PAI_TASK_INDEX\"; i=0; while [ \"$(ls \"$DIR\" | wc -l)\" -lt \"$COUNT\" ]; do i=$((i+1)); if [ $i -gt 200 ]; then echo alone >&2; exit 3; fi; sleep 0.1; done; echo \"$PAI_JOB_NAME $PAI_TASK_ROLE_NAME $PAI_TASK_INDEX/$PAI_TASK_ROLE_COUNT\""]
      sleep:
        command: ["sleep", "600"]
      once:
        command: ["sh", "-c", "if [ -e \"$DIR/ran\" ]; then echo second; else touch \"$DIR/ran\"; echo first; exit 1; fi"]
      fail:
        command: ["sh", "-c", "echo broken >&2; exit 7"]
      ok:
        command: ["true"]
      short:
        command: ["sh", "-c", "sleep 0.8; exit 1"]
      loud:
        command: ["sh", "-c", "yes | head -c 20000000; sleep 600"]
runner:
  kill_grace_seconds: 2
"#;

const WAIT: Duration = Duration::from_secs(30);

async fn start(extra: &str) -> TestApp {
    spawn_app(&format!("{CATALOG}{extra}")).await
}

/// A server that runs no jobs: they wait.
async fn start_without_workers() -> TestApp {
    start("  workers: 0\n").await
}

/// A folder the jobs' processes share (they run as this process's user).
fn shared_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a folder for the instances")
}

/// Submits role job `body` as `api`: 201, the job.
async fn submit(api: &Api, body: Value) -> Value {
    api.post("/v1/jobs", body)
        .await
        .expect(StatusCode::CREATED)
        .body
}

fn id(job: &Value) -> String {
    job["id"].as_str().expect("a job id").to_string()
}

fn finished(job: &Value) -> bool {
    !matches!(job["status"].as_str(), Some("waiting" | "processing"))
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .with_timezone(&Utc)
}

/// Task `index`'s output.
async fn task_output(api: &Api, job: &str, index: usize) -> String {
    let answer = api
        .get(&format!("/v1/jobs/{job}/output?task={index}"))
        .await
        .expect(StatusCode::OK);
    answer.body.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_instance_of_every_role_runs_at_once_and_the_job_succeeds() {
    let app = start("").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let dir = shared_dir();
    let job = submit(
        &ann,
        json!({
            "name": "train.1",
            "image": "ubuntu:22.04",
            "variables": {"DIR": dir.path().display().to_string(), "COUNT": "4"},
            "roles": [
                {"name": "worker", "instances": 2, "task": "ml/production/meet"},
                {"name": "ps", "instances": 2, "task": "ml/production/meet"}
            ]
        }),
    )
    .await;
    assert_eq!(job["kind"], "roles", "{job}");
    assert_eq!(job["name"], "train.1");
    assert_eq!(job["image"], "ubuntu:22.04");
    assert_eq!(job["name_held"], true);
    assert_eq!(
        job["roles"],
        json!([
            {"name": "worker", "instances": 2, "task": "ml/production/meet"},
            {"name": "ps", "instances": 2, "task": "ml/production/meet"}
        ])
    );
    assert_eq!(job["app"], Value::Null);
    let done = ann.wait_for(&id(&job), WAIT, finished).await;
    assert_eq!(done["status"], "success", "{done}");
    let tasks = done["tasks"].as_array().expect("its tasks").clone();
    let summary: Vec<_> = tasks
        .iter()
        .map(|t| {
            (
                t["index"].as_u64().unwrap(),
                t["role"].as_str().unwrap().to_string(),
                t["role_index"].as_u64().unwrap(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "worker".to_string(), 0, "success".to_string()),
            (1, "worker".to_string(), 1, "success".to_string()),
            (2, "ps".to_string(), 0, "success".to_string()),
            (3, "ps".to_string(), 1, "success".to_string()),
        ]
    );
    // Every instance started before any ended.
    let last_start = tasks.iter().map(|t| time(&t["started_at"])).max().unwrap();
    let first_end = tasks.iter().map(|t| time(&t["finished_at"])).min().unwrap();
    assert!(last_start <= first_end, "{tasks:?}");
    assert!(
        tasks.iter().all(|t| t["pid"].as_i64().is_some()),
        "{tasks:?}"
    );
    // Each with its own variables, its output tagged with its index.
    assert_eq!(
        task_output(&ann, &id(&job), 1).await,
        "train.1 worker 1/2\n"
    );
    assert_eq!(task_output(&ann, &id(&job), 2).await, "train.1 ps 0/2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_by_the_users_role_job_is_a_409_and_nothing_is_written() {
    let app = start_without_workers().await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let body = json!({"name": "train", "roles": [{"name": "w", "task": "ml/production/ok"}]});
    let first = submit(&ann, body.clone()).await;
    let head = app.api.log_head().await;
    let problem = head
        .refused(&ann, Method::POST, "/v1/jobs", Some(body.clone()))
        .await
        .expect(StatusCode::CONFLICT, "job_name_taken");
    assert!(problem.detail().contains(&id(&first)), "{problem}");
    // Another user's role job may have the name: it is unique per user.
    let bob = app.api.new_user("bob", "bob-password-1").await;
    let bobs = submit(&bob, body).await;
    assert_eq!(bobs["name"], "train");
    assert_ne!(id(&bobs), id(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roles_command_is_refused_where_commands_are_off_and_nothing_changes() {
    let app = start_without_workers().await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let head = app.api.log_head().await;
    let problem = head
        .refused(
            &ann,
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "cmd", "roles": [{"name": "w", "command": "echo hi"}]})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "commands_not_allowed");
    assert!(
        problem
            .detail()
            .contains("compat.openpai.commands: sandbox"),
        "says how to enable it: {problem}"
    );
    assert!(
        problem.detail().contains("any user with the write scope"),
        "says why it is off: {problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_role_job_is_a_400_naming_its_field_and_nothing_changes() {
    let app = start_without_workers().await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let head = app.api.log_head().await;
    let role = json!({"name": "w", "task": "ml/production/ok"});
    for (body, field) in [
        (json!({"roles": [role]}), "name"),
        (json!({"name": "a b", "roles": [role]}), "name"),
        (json!({"name": "x".repeat(65), "roles": [role]}), "name"),
        (
            json!({"name": "j", "app": "ml", "env": "production", "task": "ok", "roles": [role]}),
            "app",
        ),
        (json!({"name": "j", "roles": []}), "roles"),
        (
            json!({"name": "j", "roles": [{"name": "w", "instances": 0, "task": "ml/production/ok"}]}),
            "roles",
        ),
        (
            json!({"name": "j", "roles": [{"name": "w", "instances": 101, "task": "ml/production/ok"}]}),
            "roles",
        ),
        (
            json!({"name": "j", "roles": [{"name": "w.1", "task": "ml/production/ok"}]}),
            "roles",
        ),
        (
            json!({"name": "j", "roles": [{"name": "w", "task": "ml/production/nothing"}]}),
            "roles",
        ),
        (json!({"name": "j", "roles": [role, role]}), "roles"),
        (json!({"name": "j", "roles": [{"name": "w"}]}), "roles[0]"),
        (
            json!({"name": "j", "roles": [{"name": "w", "task": "ml/production/ok", "command": "x"}]}),
            "roles[0]",
        ),
        (
            json!({"name": "j", "retry_count": 101, "roles": [role]}),
            "retry_count",
        ),
        (
            json!({"app": "ml", "env": "production", "task": "ok", "image": "x"}),
            "image",
        ),
    ] {
        let problem = head
            .refused(&ann, Method::POST, "/v1/jobs", Some(body.clone()))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), [field], "{body}: {problem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roles_command_runs_in_the_sandbox_where_commands_are_allowed() {
    assert!(
        std::process::Command::new("bwrap")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "bubblewrap (bwrap) is needed to run a role's command: apt-get install bubblewrap"
    );
    let work_dir = tempfile::tempdir().expect("a work dir");
    let app = start(&format!(
        "compat:\n  openpai:\n    commands: sandbox\nrunnables:\n  work_dir: {}\n",
        work_dir.path().display()
    ))
    .await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let job = submit(
        &ann,
        json!({
            "name": "cmd",
            "variables": {"GREETING": "hello"},
            "roles": [{"name": "w", "instances": 2,
                       "command": "echo \"$GREETING $PAI_TASK_ROLE_NAME $PAI_TASK_INDEX in $(pwd) on $(hostname)\""}]
        }),
    )
    .await;
    let done = ann.wait_for(&id(&job), WAIT, finished).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["tasks"][0]["command"], job["roles"][0]["command"]);
    // In bwrap's tree and with its hostname: the sandbox's.
    assert_eq!(
        task_output(&ann, &id(&job), 1).await,
        "hello w 1 in /runnable on runnable\n"
    );
    // Each instance's work folder is gone with it: the node's folder holds only its lock.
    let jobs = work_dir.path().join("jobs");
    let nodes: Vec<_> = std::fs::read_dir(&jobs)
        .unwrap_or_else(|e| panic!("{}: {e}", jobs.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let left: Vec<_> = std::fs::read_dir(&nodes[0])
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [".lock"], "left in {}", nodes[0].display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_runner_does_not_allow_fails_without_a_retry() {
    // Submitted while commands were on, run by a node where they are off.
    let app = start("  workers: 0\ncompat:\n  openpai:\n    commands: sandbox\n").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let job = submit(
        &ann,
        json!({"name": "cmd", "retry_count": 3, "roles": [{"name": "w", "command": "true"}]}),
    )
    .await;
    let app = app.restart(CATALOG).await;
    let ann = ann.at_address(&app);
    let done = ann.wait_for(&id(&job), WAIT, finished).await;
    assert_eq!(done["status"], "error", "{done}");
    assert_eq!(done["retries"], 0, "a refusal no retry mends: {done}");
    let diagnostics = done["tasks"][0]["diagnostics"].as_str().unwrap_or_default();
    assert!(
        diagnostics.contains("compat.openpai.commands: sandbox"),
        "{diagnostics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_failing_attempts_keep_the_lease_through_all_their_retries() {
    // Each attempt far shorter than a third of the lease: the job's one heartbeat renews it.
    let app = start("  lease_seconds: 3\n").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let job = submit(
        &ann,
        json!({"name": "short", "retry_count": 6, "roles": [{"name": "w", "task": "ml/production/short"}]}),
    )
    .await;
    let done = ann
        .wait_for(&id(&job), Duration::from_secs(60), finished)
        .await;
    assert_eq!(done["status"], "error", "{done}");
    assert_eq!(done["retries"], 6, "{done}");
    let diagnostics = done["diagnostics"].as_str().unwrap_or_default();
    assert!(
        diagnostics.starts_with("1 of 1 instances failed (after 6 retries)"),
        "not its worker lost: {diagnostics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_workers_role_job_ends_an_error_with_its_running_tasks() {
    let app = start("  lease_seconds: 2\n").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let job = submit(
        &ann,
        json!({"name": "lost", "roles": [{"name": "w", "instances": 2, "task": "ml/production/sleep"}]}),
    )
    .await;
    all_running(&ann, &id(&job)).await;
    // Its node stops (its processes with it) without finishing it; the next node's reaper does.
    let app = app.restart(&format!("{CATALOG}  lease_seconds: 2\n")).await;
    let ann = ann.at_address(&app);
    let done = ann
        .wait_for(&id(&job), Duration::from_secs(30), finished)
        .await;
    assert_eq!(done["status"], "error", "{done}");
    assert!(
        done["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("was lost")),
        "{done}"
    );
    for task in done["tasks"].as_array().expect("its tasks") {
        assert_eq!(task["status"], "error", "{done}");
        assert!(
            task["diagnostics"]
                .as_str()
                .is_some_and(|d| d.starts_with("worker lost")),
            "{done}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn releasing_a_processing_jobs_name_stops_it_and_frees_the_name() {
    let app = start("").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let body = json!({"name": "busy", "roles": [{"name": "w", "instances": 2, "task": "ml/production/sleep"}]});
    let job = submit(&ann, body.clone()).await;
    all_running(&ann, &id(&job)).await;
    ann.call(Method::DELETE, &format!("/v1/jobs/{}/name", id(&job)), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let done = ann
        .wait_for(&id(&job), Duration::from_secs(20), finished)
        .await;
    assert_eq!(done["status"], "killed", "{done}");
    assert_eq!(done["name_held"], false, "{done}");
    let again = submit(&ann, body).await;
    assert_ne!(id(&again), id(&job));
    assert_eq!(again["name"], "busy");
}

/// Waits until every task of `job` is processing.
async fn all_running(api: &Api, job: &str) -> Value {
    api.wait_for(job, WAIT, |j| {
        j["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["status"] == "processing"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_stops_every_instance() {
    let app = start("").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let job = submit(
        &ann,
        json!({"name": "long", "roles": [
            {"name": "a", "instances": 2, "task": "ml/production/sleep"},
            {"name": "b", "task": "ml/production/sleep"}
        ]}),
    )
    .await;
    let running = all_running(&ann, &id(&job)).await;
    let pids: Vec<i64> = running["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pid"].as_i64().expect("a pid"))
        .collect();
    ann.post(&format!("/v1/jobs/{}/kill", id(&job)), json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
    let done = ann
        .wait_for(&id(&job), Duration::from_secs(20), finished)
        .await;
    assert_eq!(done["status"], "killed", "{done}");
    assert!(
        done["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "killed"),
        "{done}"
    );
    for pid in pids {
        assert!(!bosun_tests::process_alive(pid as i32), "{pid} still runs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_a_waiting_job_and_then_is_a_409() {
    let app = start_without_workers().await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let job = submit(
        &ann,
        json!({"name": "j", "roles": [{"name": "w", "task": "ml/production/ok"}]}),
    )
    .await;
    let path = format!("/v1/jobs/{}/stop", id(&job));
    let stopped = ann.post(&path, json!({})).await.expect(StatusCode::OK).body;
    assert_eq!(stopped["status"], "cancelled", "{stopped}");
    let head = app.api.log_head().await;
    head.refused(&ann, Method::POST, &path, Some(json!({})))
        .await
        .expect(StatusCode::CONFLICT, "job_finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_kills_a_processing_job() {
    let app = start("").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let job = submit(
        &ann,
        json!({"name": "j", "roles": [{"name": "w", "instances": 2, "task": "ml/production/sleep"}]}),
    )
    .await;
    all_running(&ann, &id(&job)).await;
    let stopped = ann
        .post(
            &format!("/v1/jobs/{}/stop", id(&job)),
            json!({"reason": "enough"}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(stopped["kill_requested"], true, "{stopped}");
    let done = ann
        .wait_for(&id(&job), Duration::from_secs(20), finished)
        .await;
    assert_eq!(done["status"], "killed", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_name_is_free_again_and_its_job_stays() {
    let app = start_without_workers().await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let body = json!({"name": "train", "roles": [{"name": "w", "task": "ml/production/ok"}]});
    let old = submit(&ann, body.clone()).await;
    let path = format!("/v1/jobs/{}/name", id(&old));
    ann.call(Method::DELETE, &path, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    // Stopped (it was waiting: cancelled), and still there, no longer holding its name.
    let old_now = ann.job(&id(&old)).await;
    assert_eq!(old_now["status"], "cancelled", "{old_now}");
    assert_eq!(old_now["name_held"], false);
    let new = submit(&ann, body).await;
    assert_ne!(id(&new), id(&old));
    let listed = ann
        .get("/v1/jobs?kind=roles&name=train&created_by=ann")
        .await
        .expect(StatusCode::OK);
    let ids: Vec<String> = listed.body.as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, [id(&new), id(&old)], "newest first");
    // Released once.
    let head = app.api.log_head().await;
    head.refused(&ann, Method::DELETE, &path, None)
        .await
        .expect(StatusCode::CONFLICT, "job_name_released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_narrows_to_role_jobs_a_user_and_a_name() {
    let app = start_without_workers().await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let role_job = submit(
        &ann,
        json!({"name": "a", "roles": [{"name": "w", "task": "ml/production/ok"}]}),
    )
    .await;
    let plain = submit(
        &ann,
        json!({"app": "ml", "env": "production", "task": "ok", "name": "a"}),
    )
    .await;
    assert_eq!(plain["kind"], "task");
    let ids = |answer: bosun_tests::Answer| -> Vec<String> {
        answer
            .expect(StatusCode::OK)
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .collect()
    };
    assert_eq!(ids(ann.get("/v1/jobs?kind=roles").await), [id(&role_job)]);
    assert_eq!(ids(ann.get("/v1/jobs?kind=task").await), [id(&plain)]);
    assert_eq!(ids(ann.get("/v1/jobs?name=a").await).len(), 2);
    assert!(ids(app.api.get("/v1/jobs?created_by=bob").await).is_empty());
    let problem = ann.refused(Method::GET, "/v1/jobs?kind=nope", None).await;
    assert_eq!(problem.fields(), ["kind"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_attempt_runs_again_while_its_retry_count_lasts() {
    let app = start("").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let dir = shared_dir();
    let job = submit(
        &ann,
        json!({
            "name": "flaky",
            "retry_count": 2,
            "variables": {"DIR": dir.path().display().to_string()},
            "roles": [{"name": "w", "task": "ml/production/once"}]
        }),
    )
    .await;
    assert_eq!(job["retry_count"], 2);
    let done = ann.wait_for(&id(&job), WAIT, finished).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["retries"], 1, "{done}");
    assert_eq!(task_output(&ann, &id(&job), 0).await, "first\nsecond\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_instance_fails_the_job_naming_it_once_its_retries_are_spent() {
    let app = start("").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let job = submit(
        &ann,
        json!({"name": "broken", "retry_count": 1, "roles": [
            {"name": "good", "task": "ml/production/ok"},
            {"name": "bad", "task": "ml/production/fail"}
        ]}),
    )
    .await;
    let done = ann.wait_for(&id(&job), WAIT, finished).await;
    assert_eq!(done["status"], "error", "{done}");
    assert_eq!(done["retries"], 1);
    let diagnostics = done["diagnostics"].as_str().unwrap_or_default();
    assert!(
        diagnostics.starts_with(
            "1 of 2 instances failed (after 1 retries): task 1 (bad[0]): exited with status 7"
        ),
        "{diagnostics}"
    );
    assert_eq!(done["tasks"][0]["status"], "success");
    assert_eq!(done["tasks"][1]["exit_code"], 7);
    // Both attempts' output.
    assert_eq!(task_output(&ann, &id(&job), 1).await, "broken\nbroken\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_idempotency_key_gets_the_first_role_job() {
    let app = start_without_workers().await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let body = json!({"name": "train", "roles": [{"name": "w", "task": "ml/production/ok"}]});
    let key = [("idempotency-key", "k-1")];
    let first = ann
        .call_with(Method::POST, "/v1/jobs", &key, Some(body.clone()))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let head = app.api.log_head().await;
    let again = ann
        .call_with(Method::POST, "/v1/jobs", &key, Some(body))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(id(&again), id(&first));
    head.assert_unchanged("a retry").await;
    let other = json!({"name": "other", "roles": [{"name": "w", "task": "ml/production/ok"}]});
    let problem = ann
        .call_with(Method::POST, "/v1/jobs", &key, Some(other))
        .await
        .problem()
        .expect(StatusCode::CONFLICT, "idempotency_key_reused");
    head.assert_unchanged(&problem).await;
}

/// The instances' output appends are paced (one event each per tick while they run), so the
/// kill's append often gets in between them; not always yet (409 `contended` about one run in
/// two): that needs one output flusher per job. Run it with `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "known: a kill during heavy output of several instances can still be 409 contended"]
async fn a_kill_gets_through_while_every_instance_writes_heavily() {
    let app = start("").await;
    let ann = app.api.new_user("ann", "ann-password-1").await;
    let job = submit(
        &ann,
        json!({"name": "loud", "roles": [{"name": "w", "instances": 4, "task": "ml/production/loud"}]}),
    )
    .await;
    all_running(&ann, &id(&job)).await;
    ann.post(&format!("/v1/jobs/{}/kill", id(&job)), json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
    let done = ann
        .wait_for(&id(&job), Duration::from_secs(30), finished)
        .await;
    assert_eq!(done["status"], "killed", "{done}");
}
