//! Orchestrations over HTTP against the real binary, with real processes, a real SMTP server and
//! a real HTTP receiver: tasks run in order by hand with and without `continue_on_failure`,
//! each task's output, HTTP tasks with the orchestration's token, failure notifications by email
//! and signed webhook, `waiting` and `processing` notifications, the cron scheduler firing on time
//! and a second server taking over its lock without a doubled run.

use bosun_tests::receivers::{signature, HttpReceiver, SmtpSink};
use bosun_tests::{config_file, join, work_dir, Api, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SECRET: &str = "webhook-secret-for-tests";

fn config(smtp_port: u16, workers: usize) -> String {
    format!(
        r#"
runner:
  workers: {workers}
  kill_grace_seconds: 1
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
notifications:
  smtp: {{host: 127.0.0.1, port: {smtp_port}, from: bosun@example.com}}
  webhook_secret: {SECRET}
  backoff_ms: 100
catalog:
  shop:
    production:
      build:
        command: ["sh", "-c", "echo building"]
      migrate:
        command: ["sh", "-c", "echo migrating; echo 'migration failed' >&2; exit 3"]
      deploy:
        command: ["sh", "-c", "echo deploying with $BOSUN_TASK_PARAMETERS"]
      quick:
        command: ["true"]
      sleep:
        command: ["sleep", "600"]
"#
    )
}

fn start(dir: &std::path::Path, yaml: &str) -> Server {
    let config = config_file(dir, yaml);
    Server::start(
        dir,
        &["-c", config.to_str().unwrap()],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    )
}

/// The calls that change or run orchestration `id`.
fn writes(id: &str) -> [(Method, String, Value); 3] {
    [
        (
            Method::PATCH,
            format!("/v1/orchestrations/{id}"),
            json!({"name": "renamed"}),
        ),
        (
            Method::POST,
            format!("/v1/orchestrations/{id}/jobs"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/v1/orchestrations/{id}/token"),
            json!({}),
        ),
    ]
}

/// Each task's status, in order.
fn task_statuses(job: &Value) -> Vec<&str> {
    job["tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .map(|t| t["status"].as_str().unwrap_or("?"))
                .collect()
        })
        .unwrap_or_default()
}

fn finished(job: &Value) -> bool {
    !matches!(job["status"].as_str(), Some("waiting" | "processing"))
}

async fn create(api: &Api, body: Value) -> Value {
    let (status, orchestration) = api
        .json(Method::POST, "/v1/orchestrations", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{orchestration}");
    orchestration
}

async fn run(api: &Api, id: &str, body: Option<Value>) -> Value {
    let (status, job) = api
        .json(Method::POST, &format!("/v1/orchestrations/{id}/jobs"), body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job
}

async fn task_output(api: &Api, job: &str, task: u32) -> String {
    let (status, headers, text) = api
        .send(
            Method::GET,
            &format!("/v1/jobs/{job}/output?task={task}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["bosun-output-complete"], "true");
    text
}

async fn refused(api: &Api, method: Method, path: &str, body: Value, status: StatusCode) -> Value {
    let (got, problem) = api.json(method, path, Some(body)).await;
    assert_eq!(got, status, "{path}: {problem}");
    problem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_in_order_by_hand_and_failures_are_notified() {
    let smtp = SmtpSink::start();
    let receiver = HttpReceiver::start().await;
    let dir = work_dir();
    let server = start(dir.path(), &config(smtp.port, 2));
    let api = Api::new(&server, dir.path());

    // Refusals change nothing.
    for (body, field) in [
        (
            json!({"name": "x", "tasks": [{"component": "shop/production/build", "component_url": "https://x.io"}]}),
            "tasks",
        ),
        (
            json!({"name": "x", "tasks": [{"component": "shop/production/nope"}]}),
            "tasks",
        ),
        (
            json!({"name": "x", "tasks": [{"component_url": "http://example.com/run"}]}),
            "tasks",
        ),
        (json!({"name": "x", "crontab": "61 * * * *"}), "crontab"),
        (json!({"name": "x", "crontab": "* * * * * *"}), "crontab"),
        (json!({"name": "", "tasks": []}), "name"),
        (
            json!({"name": "x", "notifications": [{"email": "a@x.io", "channel": "never"}]}),
            "notifications",
        ),
    ] {
        let problem = refused(
            &api,
            Method::POST,
            "/v1/orchestrations",
            body,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(problem.to_string().contains(field), "{field}: {problem}");
    }
    let (_, headers, _) = api.send(Method::GET, "/v1/orchestrations", None).await;
    assert_eq!(headers["x-total-count"], "0");

    let hook = format!("{}/hooks/failed", receiver.base);
    let task_url = format!("{}/tasks/notify", receiver.base);
    let orchestration = create(
        &api,
        json!({
            "name": "release",
            "tasks": [
                {"component": "shop/production/build"},
                {"component": "shop/production/migrate"},
                {"component": "shop/production/deploy", "parameters": {"version": "1.2"}},
                {"component_url": task_url, "parameters": {"message": "released"}, "action": "announce"},
            ],
            "notifications": [
                {"email": "ops@example.com", "channel": "error"},
                {"webhook_url": hook, "channel": "error"},
            ],
        }),
    )
    .await;
    let id = orchestration["id"].as_str().unwrap().to_string();
    assert_eq!(orchestration["active"], true);
    assert_eq!(
        orchestration["next_scheduled_at"],
        Value::Null,
        "no crontab, no schedule"
    );

    // Without continue_on_failure: the failing task ends the job `error` and skips the rest.
    let job = run(&api, &id, None).await;
    assert_eq!(job["initialized_by"], "manual");
    assert_eq!(job["orchestration_id"], id.as_str());
    let job_id = job["id"].as_str().unwrap().to_string();
    let job = api
        .wait_for(&job_id, Duration::from_secs(30), finished)
        .await;
    assert_eq!(job["status"], "error", "{job}");
    assert_eq!(
        task_statuses(&job),
        ["success", "error", "skipped", "skipped"],
        "{job}"
    );
    assert_eq!(job["tasks"][1]["exit_code"], 3);
    assert!(
        job["diagnostics"]
            .as_str()
            .unwrap()
            .contains("task 1 (shop/production/migrate) failed"),
        "{job}"
    );
    assert_eq!(task_output(&api, &job_id, 0).await, "building\n");
    let migrate = task_output(&api, &job_id, 1).await;
    assert!(
        migrate.contains("migrating\n") && migrate.contains("migration failed\n"),
        "{migrate}"
    );
    assert_eq!(task_output(&api, &job_id, 2).await, "");
    assert!(
        receiver.received("/tasks/notify").is_empty(),
        "a skipped HTTP task is not called"
    );

    // Each task's start and end is on the job's stream.
    let (_, events) = api
        .json(Method::GET, &format!("/v1/streams/job-{job_id}"), None)
        .await;
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for wanted in [
        "JobSubmitted",
        "JobStarted",
        "JobTaskStarted",
        "JobTaskFinished",
        "JobFinished",
    ] {
        assert!(types.contains(&wanted), "{wanted} missing from {types:?}");
    }
    assert_eq!(types.iter().filter(|t| **t == "JobTaskStarted").count(), 2);
    assert_eq!(types.iter().filter(|t| **t == "JobTaskFinished").count(), 4);

    // The failure is told by email and by a signed webhook, and recorded.
    let mail = smtp.wait_for(Duration::from_secs(20), |m| m.data.contains(&job_id));
    assert_eq!(mail.to, ["ops@example.com"]);
    assert!(mail.data.contains("failed"), "{}", mail.data);
    let call = receiver
        .wait_for("/hooks/failed", Duration::from_secs(20), |_| true)
        .await;
    assert_eq!(
        call.headers["x-bosun-signature"].to_str().unwrap(),
        signature(SECRET.as_bytes(), &call.body),
        "the signature is HMAC-SHA256 of the body"
    );
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["channel"], "error");
    assert_eq!(body["job"]["id"], job_id.as_str());
    assert_eq!(body["job"]["status"], "error");
    let sent = wait_events(&api, "NotificationSent", 2).await;
    assert!(sent.iter().all(|e| e["data"]["job_id"] == job_id.as_str()));
    assert!(
        sent.iter().any(|e| e["data"]["via"] == "webhook"
            && e["data"]["target"].as_str().unwrap().ends_with("/…")),
        "a webhook's path is not in the log: {sent:?}"
    );
    assert!(!serde_json::to_string(&sent)
        .unwrap()
        .contains("hooks/failed"));

    // Another user reads it but may not change, run or delete it; bad notification addresses
    // on a plain job are refused too.
    let other = api.new_user("outsider", "outsider-pw").await;
    let (status, _) = other
        .json(Method::GET, &format!("/v1/orchestrations/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let delete = (
        Method::DELETE,
        format!("/v1/orchestrations/{id}"),
        json!({}),
    );
    for (method, path, body) in writes(&id).into_iter().chain([delete]) {
        let problem = refused(&other, method, &path, body, StatusCode::FORBIDDEN).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("creator"),
            "{problem}"
        );
    }
    let problem = refused(
        &api,
        Method::POST,
        "/v1/jobs",
        json!({"app": "shop", "env": "production", "task": "quick", "notification_emails": ["nope"]}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        problem.to_string().contains("notification_emails"),
        "{problem}"
    );

    // A manual run may change only which tasks are active.
    let (_, tasks) = api
        .json(Method::GET, &format!("/v1/orchestrations/{id}/tasks"), None)
        .await;
    let mut changed: Vec<Value> = tasks.as_array().unwrap().clone();
    changed[1]["continue_on_failure"] = json!(true);
    refused(
        &api,
        Method::POST,
        &format!("/v1/orchestrations/{id}/jobs"),
        json!({"tasks": changed}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    refused(
        &api,
        Method::POST,
        &format!("/v1/orchestrations/{id}/jobs"),
        json!({"tasks": [tasks[0]]}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let mut inactive: Vec<Value> = tasks.as_array().unwrap().clone();
    inactive[1]["active"] = json!(false);
    let job = run(&api, &id, Some(json!({"tasks": inactive}))).await;
    let job = api
        .wait_for(
            job["id"].as_str().unwrap(),
            Duration::from_secs(30),
            finished,
        )
        .await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["tasks"][1]["status"], "skipped");
    assert_eq!(job["tasks"][1]["diagnostics"], "skipped: inactive");

    // With continue_on_failure the job runs on and ends `warning`; the HTTP task gets its
    // parameters and the orchestration's token.
    let mut tolerant: Vec<Value> = tasks.as_array().unwrap().clone();
    tolerant[1]["continue_on_failure"] = json!(true);
    let (status, replaced) = api
        .json(
            Method::PUT,
            &format!("/v1/orchestrations/{id}/tasks"),
            Some(json!(tolerant)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced[1]["continue_on_failure"], true);
    let job = run(&api, &id, None).await;
    let warning_id = job["id"].as_str().unwrap().to_string();
    let job = api
        .wait_for(&warning_id, Duration::from_secs(30), finished)
        .await;
    assert_eq!(job["status"], "warning", "{job}");
    assert_eq!(
        task_statuses(&job),
        ["success", "error", "success", "success"],
        "{job}"
    );
    assert_eq!(
        task_output(&api, &warning_id, 2).await,
        "deploying with {\"version\":\"1.2\"}\n"
    );
    assert_eq!(
        task_output(&api, &warning_id, 3).await,
        "{\"received\": true}"
    );
    let call = receiver
        .wait_for("/tasks/notify", Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&call.body).unwrap(),
        json!({"message": "released"})
    );
    let token = call.headers["x-storageapi-token"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("bosun_orch_"), "{token}");
    assert_eq!(call.headers["x-bosun-action"], "announce");

    // A fresh token: the next run sends another one. An HTTP task answered with 500 fails.
    let (status, refreshed) = api
        .json(
            Method::POST,
            &format!("/v1/orchestrations/{id}/token"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(refreshed["token_id"], orchestration["token_id"]);
    receiver.answer_with(500);
    let job = run(&api, &id, None).await;
    let job = api
        .wait_for(
            job["id"].as_str().unwrap(),
            Duration::from_secs(30),
            finished,
        )
        .await;
    assert_eq!(job["status"], "error", "{job}");
    assert!(
        job["tasks"][3]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{job}"
    );
    // Called by the run with a task inactive, the `warning` run and this one.
    let calls = receiver.received("/tasks/notify");
    assert_eq!(calls.len(), 3);
    assert_eq!(
        calls[1].headers["x-storageapi-token"].to_str().unwrap(),
        token
    );
    assert_ne!(
        calls[2].headers["x-storageapi-token"].to_str().unwrap(),
        token
    );
    receiver.answer_with(200);

    // Job lists by orchestration.
    let (_, headers, _) = api
        .send(
            Method::GET,
            &format!("/v1/jobs?orchestration_id={id}"),
            None,
        )
        .await;
    assert_eq!(headers["x-total-count"], "4");
    let (status, headers, _) = api
        .send(
            Method::GET,
            &format!("/v1/orchestrations/{id}/jobs?limit=1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-total-count"], "4");

    // Kill a running orchestration job: the running task is killed, the rest skipped.
    let (status, _) = api
        .json(Method::PATCH, &format!("/v1/orchestrations/{id}"), Some(json!({"tasks": [{"component": "shop/production/sleep"}, {"component": "shop/production/build"}]})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let job = run(&api, &id, None).await;
    let kill_id = job["id"].as_str().unwrap().to_string();
    api.wait_for(&kill_id, Duration::from_secs(20), |j| {
        j["tasks"][0]["status"] == "processing"
    })
    .await;
    let (status, _) = api
        .json(Method::POST, &format!("/v1/jobs/{kill_id}/kill"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job = api
        .wait_for(&kill_id, Duration::from_secs(20), finished)
        .await;
    assert_eq!(job["status"], "killed", "{job}");
    assert_eq!(job["tasks"][0]["status"], "killed");
    assert_eq!(job["tasks"][1]["status"], "skipped");

    // Deleted: reads, but accepts nothing, and its jobs stay readable.
    let (status, _, _) = api
        .send(Method::DELETE, &format!("/v1/orchestrations/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = api
        .json(Method::GET, &format!("/v1/orchestrations/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gone["deleted"], true);
    for (method, path, body) in writes(&id) {
        let problem = refused(&api, method, &path, body, StatusCode::CONFLICT).await;
        assert_eq!(problem["code"], "orchestration_deleted", "{problem}");
    }
    let (status, _, _) = api
        .send(Method::GET, &format!("/v1/jobs/{warning_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api
        .send(Method::GET, "/v1/orchestrations/no-such-id", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.terminate();
}

/// Polls `/v1/events?type=` until `count` events of `event_type` are in the log.
async fn wait_events(api: &Api, event_type: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, events) = api
            .json(Method::GET, &format!("/v1/events?type={event_type}"), None)
            .await;
        let events = events.as_array().cloned().unwrap_or_default();
        if events.len() >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{count} {event_type} never came: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_waiting_or_running_too_long_are_notified() {
    let smtp = SmtpSink::start();
    let receiver = HttpReceiver::start().await;
    let dir = work_dir();
    // One worker: a second job waits while the first runs.
    let server = start(dir.path(), &config(smtp.port, 1));
    let api = Api::new(&server, dir.path());
    let orchestration = create(
        &api,
        json!({
            "name": "usually quick",
            "tasks": [{"component": "shop/production/quick"}],
            "notifications": [
                {"webhook_url": format!("{}/hooks/slow", receiver.base), "channel": "processing", "parameters": {"tolerance": 50}},
                {"webhook_url": format!("{}/hooks/stuck", receiver.base), "channel": "waiting", "parameters": {"timeout": 0.05}},
            ],
        }),
    )
    .await;
    let id = orchestration["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let job = run(&api, &id, None).await;
        let job = api
            .wait_for(
                job["id"].as_str().unwrap(),
                Duration::from_secs(20),
                finished,
            )
            .await;
        assert_eq!(job["status"], "success");
    }
    let (status, _) = api
        .json(
            Method::PUT,
            &format!("/v1/orchestrations/{id}/tasks"),
            Some(json!([{"component": "shop/production/sleep"}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let slow = run(&api, &id, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_for(&slow, Duration::from_secs(20), |j| {
        j["status"] == "processing"
    })
    .await;
    let stuck = run(&api, &id, None).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let call = receiver
        .wait_for("/hooks/slow", Duration::from_secs(20), |_| true)
        .await;
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        (body["channel"].as_str(), body["job"]["id"].as_str()),
        (Some("processing"), Some(slow.as_str()))
    );
    let call = receiver
        .wait_for("/hooks/stuck", Duration::from_secs(20), |_| true)
        .await;
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        (body["channel"].as_str(), body["job"]["id"].as_str()),
        (Some("waiting"), Some(stuck.as_str()))
    );
    assert_eq!(api.job(&stuck).await["status"], "waiting");
    // Once each, though the reactor keeps looking.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(receiver.received("/hooks/slow").len(), 1);
    assert_eq!(receiver.received("/hooks/stuck").len(), 1);
    assert!(smtp.mails().is_empty());
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_fires_on_time_and_another_server_takes_over_without_doubling() {
    let smtp = SmtpSink::start();
    let dir = work_dir();
    let first = start(dir.path(), &config(smtp.port, 1));
    let second = start(dir.path(), &config(smtp.port, 1));
    let (_postgres, store) = join(&dir.path().join("bosun-data")).await;
    let api = Api::new(&first, dir.path());
    let orchestration = create(
        &api,
        json!({"name": "every minute", "crontab": "* * * * *", "tasks": [{"component": "shop/production/quick"}]}),
    )
    .await;
    let id = orchestration["id"].as_str().unwrap().to_string();
    let next = at(&orchestration["next_scheduled_at"]);
    assert_eq!(next.timestamp() % 60, 0, "{orchestration}");

    let names = scheduler_holders(&store).await;
    assert_eq!(names.len(), 1, "one scheduler holds the lock: {names:?}");

    // The first slot fires on time, once.
    let jobs = scheduled_jobs(&api, &id, 1, Duration::from_secs(75)).await;
    let job = &jobs[0];
    assert_eq!(job["initialized_by"], "scheduler");
    let slot = at(&job["scheduled_for"]);
    let late = (at(&job["created_at"]) - slot).num_milliseconds();
    assert!(
        (0..2000).contains(&late),
        "submitted {late} ms after its slot: {job}"
    );
    let (_, after) = api
        .json(Method::GET, &format!("/v1/orchestrations/{id}"), None)
        .await;
    assert_eq!(after["last_scheduled_at"], job["scheduled_for"]);
    assert_eq!((at(&after["next_scheduled_at"]) - slot).num_seconds(), 60);

    // Kill the holder; the other takes over and fires the next slot, once.
    let holder_pid: u32 = names[0].rsplit(' ').next().unwrap().parse().unwrap();
    let (survivor, killed) = if holder_pid == first.pid() {
        (second, first)
    } else {
        (first, second)
    };
    killed.kill();
    let api = Api::new(&survivor, dir.path());
    let jobs = scheduled_jobs(&api, &id, 2, Duration::from_secs(75)).await;
    let slots: Vec<&str> = jobs
        .iter()
        .map(|j| j["scheduled_for"].as_str().unwrap())
        .collect();
    assert_ne!(slots[0], slots[1], "two slots, one job each: {slots:?}");
    let names = scheduler_holders(&store).await;
    assert_eq!(names, [format!("bosun scheduler {}", survivor.pid())]);
    // Nothing doubled in the log either: one claim per slot.
    let (_, claims) = api
        .json(
            Method::GET,
            &format!("/v1/streams/orchestration-{id}"),
            None,
        )
        .await;
    let claimed: Vec<&Value> = claims
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "OrchestrationRunScheduled")
        .collect();
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    survivor.terminate();
}

fn at(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{value} is not a time: {e}"))
        .to_utc()
}

/// The sessions holding the scheduler lock, by the name each gives itself.
async fn scheduler_holders(store: &bosun_eventstore::PgEventStore) -> Vec<String> {
    let client = store.pool().get().await.unwrap();
    let rows = client
        .query(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'bosun scheduler %'",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

/// Waits until the orchestration has `count` scheduled jobs (never more), oldest first.
async fn scheduled_jobs(api: &Api, id: &str, count: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let (_, jobs) = api
            .json(Method::GET, &format!("/v1/orchestrations/{id}/jobs"), None)
            .await;
        let mut jobs: Vec<Value> = jobs.as_array().cloned().unwrap_or_default();
        jobs.retain(|j| j["initialized_by"] == "scheduler");
        jobs.reverse();
        assert!(jobs.len() <= count, "more runs than slots: {jobs:?}");
        if jobs.len() == count {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "{count} scheduled runs never came: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
