//! Orchestrations over HTTP, with a real SMTP server and a real HTTP receiver: tasks run in
//! order by hand with and without `continue_on_failure`, each task's output, HTTP tasks with the
//! orchestration's token, failure notifications by email and signed webhook, `waiting` and
//! `processing` notifications, the cron scheduler firing on time. The server runs in the test's
//! process (`spawn_app`), except for a second server taking over the scheduler's lock from a
//! killed one without a doubled run. Secret URLs (a webhook's, a `component_url` with
//! credentials) are sealed in the log, shown redacted by every read, and still called; a user's
//! password hash is never shown by a read of the log.

use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, StreamId};
use bosun_tests::receivers::{signature, HttpReceiver, Received, SmtpSink};
use bosun_tests::{config_file, join, spawn_app, work_dir, Api, Server, TestApp};
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

/// A server in this process with `workers` workers, and the receivers of what it sends.
async fn start(workers: usize) -> (TestApp, SmtpSink, HttpReceiver) {
    let smtp = SmtpSink::start();
    let receiver = HttpReceiver::start().await;
    let app = spawn_app(&config(smtp.port, workers)).await;
    (app, smtp, receiver)
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

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_string()
}

async fn create(api: &Api, body: Value) -> Value {
    api.post("/v1/orchestrations", body)
        .await
        .expect(StatusCode::CREATED)
        .body
}

/// Runs orchestration `id` by hand (with `body`, if any).
async fn run(api: &Api, id: &str, body: Option<Value>) -> Value {
    api.call(Method::POST, &format!("/v1/orchestrations/{id}/jobs"), body)
        .await
        .expect(StatusCode::CREATED)
        .body
}

/// Runs orchestration `id` by hand and waits for the job to finish.
async fn run_to_end(api: &Api, id: &str, body: Option<Value>) -> Value {
    let job = run(api, id, body).await;
    api.wait_for(&id_of(&job), Duration::from_secs(30), finished)
        .await
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

/// Polls `/v1/events?type=` until `count` events of `event_type` are in the log.
async fn wait_events(api: &Api, event_type: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = api.get(&format!("/v1/events?type={event_type}")).await.body;
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

/// Orchestration "release": build, migrate (which fails), deploy with parameters, and an HTTP
/// task to the receiver; failures told to ops@example.com and to the receiver's webhook.
async fn release(api: &Api, receiver: &HttpReceiver) -> Value {
    create(
        api,
        json!({
            "name": "release",
            "tasks": [
                {"component": "shop/production/build"},
                {"component": "shop/production/migrate"},
                {"component": "shop/production/deploy", "parameters": {"version": "1.2"}},
                {"component_url": format!("{}/tasks/notify", receiver.base), "parameters": {"message": "released"}, "action": "announce"},
            ],
            "notifications": [
                {"email": "ops@example.com", "channel": "error"},
                {"webhook_url": format!("{}/hooks/failed", receiver.base), "channel": "error"},
            ],
        }),
    )
    .await
}

/// Orchestration "announce": only the HTTP task of "release".
async fn announce(api: &Api, receiver: &HttpReceiver) -> Value {
    create(
        api,
        json!({
            "name": "announce",
            "tasks": [
                {"component_url": format!("{}/tasks/notify", receiver.base), "parameters": {"message": "released"}, "action": "announce"},
            ],
        }),
    )
    .await
}

/// Orchestration "quick": one task that succeeds at once.
async fn quick(api: &Api) -> String {
    id_of(
        &create(
            api,
            json!({"name": "quick", "tasks": [{"component": "shop/production/quick"}]}),
        )
        .await,
    )
}

/// The orchestration's token an HTTP task call carried.
fn token_of(call: &Received) -> String {
    call.headers["x-storageapi-token"]
        .to_str()
        .unwrap()
        .to_string()
}

// ---- Creating one ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_that_cannot_be_is_refused_naming_why_and_none_is_made() {
    let (app, _smtp, _receiver) = start(2).await;
    let api = &app.api;
    let log = api.log_head().await;
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
        let problem = log
            .refused(api, Method::POST, "/v1/orchestrations", Some(body))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert!(
            problem.body.to_string().contains(field),
            "{field}: {problem}"
        );
    }
    let listed = api.get("/v1/orchestrations").await.expect(StatusCode::OK);
    assert_eq!(listed.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_without_a_crontab_is_active_and_not_scheduled() {
    let (app, _smtp, receiver) = start(2).await;
    let orchestration = release(&app.api, &receiver).await;
    assert_eq!(orchestration["active"], true);
    assert_eq!(
        orchestration["next_scheduled_at"],
        Value::Null,
        "no crontab, no schedule"
    );
}

// ---- Running it by hand ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_ends_the_run_as_an_error_and_skips_the_rest() {
    // Without continue_on_failure.
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&release(api, &receiver).await);
    let job = run(api, &id, None).await;
    assert_eq!(job["initialized_by"], "manual");
    assert_eq!(job["orchestration_id"], id.as_str());
    let job_id = id_of(&job);
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
    assert_eq!(task_output(api, &job_id, 0).await, "building\n");
    let migrate = task_output(api, &job_id, 1).await;
    assert!(
        migrate.contains("migrating\n") && migrate.contains("migration failed\n"),
        "{migrate}"
    );
    assert_eq!(task_output(api, &job_id, 2).await, "");
    assert!(
        receiver.received("/tasks/notify").is_empty(),
        "a skipped HTTP task is not called"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tasks_start_and_end_is_on_the_jobs_stream() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&release(api, &receiver).await);
    let job_id = id_of(&run_to_end(api, &id, None).await);
    let events = api.get(&format!("/v1/streams/job-{job_id}")).await.body;
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
    // Two tasks ran (the second failed); the two skipped ones finished without starting.
    assert_eq!(types.iter().filter(|t| **t == "JobTaskStarted").count(), 2);
    assert_eq!(types.iter().filter(|t| **t == "JobTaskFinished").count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_told_by_email_and_by_a_signed_webhook_and_recorded() {
    let (app, smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&release(api, &receiver).await);
    let job_id = id_of(&run_to_end(api, &id, None).await);
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
    let sent = wait_events(api, "NotificationSent", 2).await;
    assert!(sent.iter().all(|e| e["data"]["job_id"] == job_id.as_str()));
    assert!(
        sent.iter().any(|e| e["data"]["via"] == "webhook"
            && e["data"]["target"].as_str().unwrap().ends_with("/…")),
        "a webhook's path is not in the log: {sent:?}"
    );
    assert!(!serde_json::to_string(&sent)
        .unwrap()
        .contains("hooks/failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_that_changes_more_than_which_tasks_are_active_is_refused() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&release(api, &receiver).await);
    let tasks = api
        .get(&format!("/v1/orchestrations/{id}/tasks"))
        .await
        .body;
    let mut changed: Vec<Value> = tasks.as_array().unwrap().clone();
    changed[1]["continue_on_failure"] = json!(true);
    let log = api.log_head().await;
    for body in [json!({"tasks": changed}), json!({"tasks": [tasks[0]]})] {
        log.refused(
            api,
            Method::POST,
            &format!("/v1/orchestrations/{id}/jobs"),
            Some(body),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_made_inactive_for_a_run_is_skipped() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&release(api, &receiver).await);
    let tasks = api
        .get(&format!("/v1/orchestrations/{id}/tasks"))
        .await
        .body;
    let mut inactive: Vec<Value> = tasks.as_array().unwrap().clone();
    inactive[1]["active"] = json!(false);
    let job = run_to_end(api, &id, Some(json!({"tasks": inactive}))).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["tasks"][1]["status"], "skipped");
    assert_eq!(job["tasks"][1]["diagnostics"], "skipped: inactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_continue_on_failure_a_run_goes_on_past_a_failure_and_ends_as_a_warning() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&release(api, &receiver).await);
    let tasks = api
        .get(&format!("/v1/orchestrations/{id}/tasks"))
        .await
        .body;
    let mut tolerant: Vec<Value> = tasks.as_array().unwrap().clone();
    tolerant[1]["continue_on_failure"] = json!(true);
    let replaced = api
        .call(
            Method::PUT,
            &format!("/v1/orchestrations/{id}/tasks"),
            Some(json!(tolerant)),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(replaced.body[1]["continue_on_failure"], true);
    let job = run_to_end(api, &id, None).await;
    let job_id = id_of(&job);
    assert_eq!(job["status"], "warning", "{job}");
    assert_eq!(
        task_statuses(&job),
        ["success", "error", "success", "success"],
        "{job}"
    );
    assert_eq!(
        task_output(api, &job_id, 2).await,
        "deploying with {\"version\":\"1.2\"}\n"
    );
    assert_eq!(task_output(api, &job_id, 3).await, "{\"received\": true}");
}

// ---- HTTP tasks ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_task_posts_its_parameters_with_its_action_and_the_orchestrations_token() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&announce(api, &receiver).await);
    let job = run_to_end(api, &id, None).await;
    assert_eq!(job["status"], "success", "{job}");
    let call = receiver
        .wait_for("/tasks/notify", Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&call.body).unwrap(),
        json!({"message": "released"})
    );
    let token = token_of(&call);
    assert!(token.starts_with("bosun_orch_"), "{token}");
    assert_eq!(call.headers["x-bosun-action"], "announce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_sends_the_orchestrations_token_until_a_fresh_one_is_made() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let orchestration = announce(api, &receiver).await;
    let id = id_of(&orchestration);
    run_to_end(api, &id, None).await;
    run_to_end(api, &id, None).await;
    let refreshed = api
        .call(
            Method::POST,
            &format!("/v1/orchestrations/{id}/token"),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_ne!(refreshed.body["token_id"], orchestration["token_id"]);
    run_to_end(api, &id, None).await;
    let calls = receiver.received("/tasks/notify");
    assert_eq!(calls.len(), 3);
    assert_eq!(token_of(&calls[1]), token_of(&calls[0]));
    assert_ne!(token_of(&calls[2]), token_of(&calls[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_task_answered_with_500_fails() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&announce(api, &receiver).await);
    receiver.answer_with(500);
    let job = run_to_end(api, &id, None).await;
    assert_eq!(job["status"], "error", "{job}");
    assert!(
        job["tasks"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{job}"
    );
}

// ---- Secret URLs and hashes ----

/// Parts of the secret URLs below that may appear nowhere but in the calls made.
const URL_SECRETS: [&str; 4] = ["s3cret-path", "qs-s3cret", "pa55-w0rd", "qk3y-s3cret"];
/// `Basic` of `bot:pa55-w0rd`.
const BASIC: &str = "Basic Ym90OnBhNTUtdzByZA==";

/// An HTTP task whose URL carries credentials and a query, then a failing task; failures told
/// to a webhook whose path and query are its secret.
fn secret_tasks(receiver: &HttpReceiver) -> (Value, Value) {
    let base = receiver.base.trim_start_matches("http://");
    (
        json!([
            {"component_url": format!("http://bot:pa55-w0rd@{base}/tasks/creds?key=qk3y-s3cret"), "parameters": {"n": 1}},
            {"component": "shop/production/migrate"},
        ]),
        json!([
            {"webhook_url": format!("{}/hooks/s3cret-path?token=qs-s3cret", receiver.base), "channel": "error"},
        ]),
    )
}

/// How reads show the receiver's secret URLs.
fn shown(receiver: &HttpReceiver) -> String {
    format!("{}/…", receiver.base)
}

/// How many events of the log as stored (the `events` table, read past the API) have `text` in
/// their data.
async fn stored_with(app: &TestApp, text: &str) -> i64 {
    let store = app.store().await;
    let client = store.pool().get().await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM events WHERE strpos(data::text, $1) > 0",
            &[&text],
        )
        .await
        .unwrap()
        .get(0)
}

/// Asserts no secret of [`URL_SECRETS`] is in what `paths` answer.
async fn assert_not_answered(api: &Api, paths: &[String]) {
    for path in paths {
        let answer = api.get(path).await.expect(StatusCode::OK);
        let text = answer.body.to_string();
        for secret in URL_SECRETS {
            assert!(!text.contains(secret), "{secret} is in {path}: {text}");
        }
    }
    let events = serde_json::to_string(&api.all_events().await).unwrap();
    for secret in URL_SECRETS {
        assert!(!events.contains(secret), "{secret} is in /v1/events");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_urls_are_sealed_in_the_log_and_shown_redacted_yet_still_called() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let (tasks, notifications) = secret_tasks(&receiver);
    let created = create(
        api,
        json!({"name": "secret", "tasks": tasks, "notifications": notifications}),
    )
    .await;
    let id = id_of(&created);
    assert_eq!(created["tasks"][0]["component_url"], shown(&receiver));
    assert_eq!(created["tasks"][1]["component"], "shop/production/migrate");
    assert_eq!(created["notifications"][0]["webhook_url"], shown(&receiver));

    let job = run_to_end(api, &id, None).await;
    let job_id = id_of(&job);
    assert_eq!(task_statuses(&job), ["success", "error"], "{job}");
    assert_eq!(job["tasks"][0]["component_url"], shown(&receiver), "{job}");
    // The task's call authenticated with the URL's credentials, the webhook got its path.
    let call = receiver
        .wait_for("/tasks/creds", Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(call.headers["authorization"], BASIC);
    assert_eq!(
        serde_json::from_slice::<Value>(&call.body).unwrap(),
        json!({"n": 1})
    );
    receiver
        .wait_for("/hooks/s3cret-path", Duration::from_secs(20), |_| true)
        .await;
    let sent = wait_events(api, "NotificationSent", 1).await;
    assert_eq!(sent[0]["data"]["target"], shown(&receiver));

    // No secret in any answer or event read, nor in the log as stored.
    assert_not_answered(
        api,
        &[
            format!("/v1/orchestrations/{id}"),
            format!("/v1/orchestrations/{id}/tasks"),
            format!("/v1/orchestrations/{id}/notifications"),
            "/v1/orchestrations".to_string(),
            format!("/v1/streams/orchestration-{id}"),
            format!("/v1/streams/job-{job_id}"),
            format!("/v1/jobs/{job_id}"),
        ],
    )
    .await;
    for secret in URL_SECRETS {
        assert_eq!(stored_with(&app, secret).await, 0, "{secret} is in the log");
    }
    // They are there sealed (in the creation and in the job's submission), redacted when read.
    assert_eq!(stored_with(&app, "\"sealed\": \"v1.").await, 2);
    let stream = api
        .get(&format!("/v1/streams/orchestration-{id}"))
        .await
        .body;
    assert_eq!(
        stream[0]["data"]["notifications"][0]["webhook_url"],
        json!({"sealed": "[redacted]", "shown": shown(&receiver)})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_url_given_again_in_clear_or_as_shown_is_no_change() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let (tasks, notifications) = secret_tasks(&receiver);
    let id = id_of(
        &create(
            api,
            json!({"name": "secret", "tasks": tasks, "notifications": notifications}),
        )
        .await,
    );
    let path = format!("/v1/orchestrations/{id}");
    // The same URLs in clear: nothing is written.
    let log = api.log_head().await;
    api.call(
        Method::PATCH,
        &path,
        Some(json!({"tasks": tasks, "notifications": notifications})),
    )
    .await
    .expect(StatusCode::OK);
    log.assert_unchanged("the same URLs in clear").await;
    // What reads show of them, given back: nothing is written either.
    let shown_tasks = api.get(&format!("{path}/tasks")).await.body;
    let shown_notifications = api.get(&format!("{path}/notifications")).await.body;
    api.call(
        Method::PUT,
        &format!("{path}/tasks"),
        Some(shown_tasks.clone()),
    )
    .await
    .expect(StatusCode::OK);
    api.call(
        Method::PUT,
        &format!("{path}/notifications"),
        Some(shown_notifications),
    )
    .await
    .expect(StatusCode::OK);
    log.assert_unchanged("the URLs as shown").await;
    // A run of the shown tasks, the failing one made inactive, still calls the stored URL.
    let mut run_tasks = shown_tasks.as_array().unwrap().clone();
    run_tasks[1]["active"] = json!(false);
    let job = run_to_end(api, &id, Some(json!({"tasks": run_tasks}))).await;
    assert_eq!(job["status"], "success", "{job}");
    let call = receiver
        .wait_for("/tasks/creds", Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(call.headers["authorization"], BASIC);
    // Another URL is a change, sealed too.
    let other = format!("{}/hooks/s3cret-path-2", receiver.base);
    let changed = api
        .call(
            Method::PUT,
            &format!("{path}/notifications"),
            Some(json!([{"webhook_url": other, "channel": "error"}])),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed.body[0]["webhook_url"], shown(&receiver));
    let replaced = wait_events(api, "OrchestrationNotificationsReplaced", 1).await;
    assert_eq!(
        replaced[0]["data"]["notifications"][0]["webhook_url"]["sealed"],
        "[redacted]"
    );
    assert_not_answered(api, std::slice::from_ref(&path)).await;
    for secret in URL_SECRETS {
        assert_eq!(stored_with(&app, secret).await, 0, "{secret} is in the log");
    }
}

/// Orchestration [`secret_tasks`] as its `OrchestrationCreated` was stored before URLs were
/// sealed (in clear), appended past the API; its id once the read model has it.
async fn store_before_sealing(app: &TestApp, receiver: &HttpReceiver) -> String {
    let (tasks, notifications) = secret_tasks(receiver);
    let id = uuid::Uuid::new_v4().to_string();
    let stored_task = |t: &Value| {
        json!({"component": t.get("component"), "component_url": t.get("component_url"),
               "action": null, "parameters": t.get("parameters").cloned().unwrap_or(json!({})),
               "continue_on_failure": false, "timeout_minutes": null, "active": true})
    };
    let data = json!({
        "id": id, "name": "from before", "crontab": null, "active": true,
        "tasks": tasks.as_array().unwrap().iter().map(stored_task).collect::<Vec<_>>(),
        "notifications": [{"email": null, "webhook_url": notifications[0]["webhook_url"],
                           "channel": "error", "parameters": {}}],
        "token_id": uuid::Uuid::new_v4(), "created_by": "admin",
        "at": chrono::Utc::now(), "next_scheduled_at": null
    });
    let store = app.store().await;
    store
        .append(
            &StreamId::parse(format!("orchestration-{id}")).unwrap(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("OrchestrationCreated", data)],
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .api
        .get(&format!("/v1/orchestrations/{id}"))
        .await
        .status
        != StatusCode::OK
    {
        assert!(Instant::now() < deadline, "the orchestration never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_stored_before_sealing_still_runs_and_its_jobs_carry_its_urls_sealed() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = store_before_sealing(&app, &receiver).await;
    // It loads, and reads show its URLs redacted.
    let orchestration = api.get(&format!("/v1/orchestrations/{id}")).await.body;
    assert_eq!(orchestration["tasks"][0]["component_url"], shown(&receiver));
    assert_eq!(
        orchestration["notifications"][0]["webhook_url"],
        shown(&receiver)
    );
    // It runs: the call authenticates, the failure is told.
    let job = run_to_end(api, &id, None).await;
    assert_eq!(task_statuses(&job), ["success", "error"], "{job}");
    let call = receiver
        .wait_for("/tasks/creds", Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(call.headers["authorization"], BASIC);
    receiver
        .wait_for("/hooks/s3cret-path", Duration::from_secs(20), |_| true)
        .await;
    wait_events(api, "NotificationSent", 1).await;
    // A run of its tasks as reads show them, the failing one made inactive, is a run of its
    // tasks.
    let mut run_tasks = orchestration["tasks"].as_array().unwrap().clone();
    run_tasks[1]["active"] = json!(false);
    let second = run_to_end(api, &id, Some(json!({"tasks": run_tasks}))).await;
    assert_eq!(second["status"], "success", "{second}");
    let calls = receiver.received("/tasks/creds");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].headers["authorization"], BASIC);
    // Reads show none of it, and the only event holding it is the one from before: the jobs
    // carry its task sealed.
    assert_not_answered(
        api,
        &[
            format!("/v1/orchestrations/{id}"),
            format!("/v1/streams/orchestration-{id}"),
            format!("/v1/streams/job-{}", id_of(&job)),
            format!("/v1/jobs/{}", id_of(&job)),
            format!("/v1/streams/job-{}", id_of(&second)),
        ],
    )
    .await;
    for secret in URL_SECRETS {
        assert_eq!(stored_with(&app, secret).await, 1, "{secret}");
    }
    assert_eq!(stored_with(&app, "\"sealed\": \"v1.").await, 2);
}

/// The notifications the orchestrations read model stores for `id` (for the notifier), as text.
async fn stored_notifications(app: &TestApp, id: &str) -> String {
    let store = app.store().await;
    let client = store.pool().get().await.unwrap();
    client
        .query_one(
            "SELECT stored_notifications::text FROM orchestrations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// Another node starting over `app`'s log with configuration `yaml` (whose data key is
/// `app`'s): built, which runs its start's bootstrap, and kept until dropped.
async fn another_node(
    app: &TestApp,
    yaml: &str,
) -> (bosun_api::startup::Application, tempfile::TempDir) {
    let dir = work_dir();
    let file = config_file(dir.path(), yaml);
    let mut settings =
        bosun_api::config::Settings::from_sources(Some(&file), std::iter::empty()).unwrap();
    settings.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.data_dir = dir.path().join("bosun-data");
    settings.database.url = Some(app.database().clone());
    let node = bosun_api::startup::Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("the other node did not start: {e:#}"));
    (node, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_seals_the_urls_an_orchestration_stored_before_sealing_holds_in_clear() {
    let smtp = SmtpSink::start();
    let receiver = HttpReceiver::start().await;
    // The key in a file of the test's, so that another node reads the same one.
    let keys = work_dir();
    let yaml = format!(
        "{}data_key_file: {}\n",
        config(smtp.port, 2),
        keys.path().join("data-key").display()
    );
    let app = spawn_app(&yaml).await;
    let api = &app.api;
    let id = store_before_sealing(&app, &receiver).await;
    let before = stored_notifications(&app, &id).await;
    assert!(before.contains("s3cret-path"), "in clear so far: {before}");
    // A start (another node's, over the same log) seals them: the sealed replacements appended.
    let _node = another_node(&app, &yaml).await;
    let stream_path = format!("/v1/streams/orchestration-{id}");
    let types = |stream: &Value| -> Vec<String> {
        stream
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect()
    };
    let stream = api.get(&stream_path).await.expect(StatusCode::OK).body;
    assert_eq!(
        types(&stream),
        [
            "OrchestrationCreated",
            "OrchestrationTasksReplaced",
            "OrchestrationNotificationsReplaced"
        ],
        "{stream}"
    );
    assert_eq!(
        stream[2]["data"]["notifications"][0]["webhook_url"],
        json!({"sealed": "[redacted]", "shown": shown(&receiver)})
    );
    // The read model's stored notifications hold it sealed now, never in clear.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = stored_notifications(&app, &id).await;
        if !after.contains("s3cret-path") || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for secret in URL_SECRETS {
        assert!(!after.contains(secret), "{secret} still in clear: {after}");
    }
    assert!(after.contains("\"sealed\": \"v1."), "{after}");
    // Only the event from before holds them in clear: the log is append-only.
    for secret in URL_SECRETS {
        assert_eq!(stored_with(&app, secret).await, 1, "{secret}");
    }
    // Another start finds nothing left to seal, and writes nothing to it.
    drop(another_node(&app, &yaml).await);
    let stream = api.get(&stream_path).await.expect(StatusCode::OK).body;
    assert_eq!(types(&stream).len(), 3, "{stream}");
    // It still runs and notifies, from the sealed values.
    let job = run_to_end(api, &id, None).await;
    assert_eq!(task_statuses(&job), ["success", "error"], "{job}");
    let call = receiver
        .wait_for("/tasks/creds", Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(call.headers["authorization"], BASIC);
    receiver
        .wait_for("/hooks/s3cret-path", Duration::from_secs(20), |_| true)
        .await;
    let sent = wait_events(api, "NotificationSent", 1).await;
    assert_eq!(sent[0]["data"]["target"], shown(&receiver));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_read_shows_no_password_hash_yet_keeps_it() {
    let (app, _smtp, _receiver) = start(1).await;
    let api = &app.api;
    api.new_user("bob", "correct horse battery").await;
    let events = api.all_events().await;
    let registered: Vec<&Value> = events
        .iter()
        .filter(|e| e["event_type"] == "UserRegistered")
        .collect();
    assert!(!registered.is_empty());
    for event in &registered {
        assert_eq!(event["data"]["password_hash"], "[redacted]", "{event}");
    }
    let shown = serde_json::to_string(&events).unwrap();
    assert!(!shown.contains("$argon2"), "a hash is in /v1/events");
    let stream = api.get("/v1/streams/user-bob").await.expect(StatusCode::OK);
    assert!(!stream.body.to_string().contains("$argon2"));
    assert!(
        stored_with(&app, "$argon2").await >= 1,
        "the log keeps them"
    );
}

// ---- Its jobs ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrations_jobs_are_listed_with_their_total() {
    let (app, _smtp, _receiver) = start(2).await;
    let api = &app.api;
    let id = quick(api).await;
    let other = quick(api).await;
    for _ in 0..4 {
        run_to_end(api, &id, None).await;
    }
    run_to_end(api, &other, None).await;
    let listed = api
        .get(&format!("/v1/jobs?orchestration_id={id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.total(), 4);
    let page = api
        .get(&format!("/v1/orchestrations/{id}/jobs?limit=1"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(page.total(), 4);
    assert_eq!(page.body.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_running_orchestration_job_kills_its_task_and_skips_the_rest() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&release(api, &receiver).await);
    api.call(
        Method::PATCH,
        &format!("/v1/orchestrations/{id}"),
        Some(json!({"tasks": [{"component": "shop/production/sleep"}, {"component": "shop/production/build"}]})),
    )
    .await
    .expect(StatusCode::OK);
    let kill_id = id_of(&run(api, &id, None).await);
    api.wait_for(&kill_id, Duration::from_secs(20), |j| {
        j["tasks"][0]["status"] == "processing"
    })
    .await;
    api.call(Method::POST, &format!("/v1/jobs/{kill_id}/kill"), None)
        .await
        .expect(StatusCode::ACCEPTED);
    let job = api
        .wait_for(&kill_id, Duration::from_secs(20), finished)
        .await;
    assert_eq!(job["status"], "killed", "{job}");
    assert_eq!(job["tasks"][0]["status"], "killed");
    assert_eq!(job["tasks"][1]["status"], "skipped");
}

// ---- Who may change it; deleting it ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_reads_an_orchestration_but_may_not_change_run_or_delete_it() {
    let (app, _smtp, receiver) = start(2).await;
    let api = &app.api;
    let id = id_of(&release(api, &receiver).await);
    let other = api.new_user("outsider", "outsider-pw").await;
    other
        .get(&format!("/v1/orchestrations/{id}"))
        .await
        .expect(StatusCode::OK);
    let delete = (
        Method::DELETE,
        format!("/v1/orchestrations/{id}"),
        json!({}),
    );
    let log = api.log_head().await;
    for (method, path, body) in writes(&id).into_iter().chain([delete]) {
        let problem = log
            .refused(&other, method, &path, Some(body))
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
        assert!(problem.detail().contains("creator"), "{problem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_orchestration_reads_but_accepts_nothing_and_its_jobs_stay_readable() {
    let (app, _smtp, _receiver) = start(2).await;
    let api = &app.api;
    let id = quick(api).await;
    let job_id = id_of(&run_to_end(api, &id, None).await);
    api.call(Method::DELETE, &format!("/v1/orchestrations/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let gone = api
        .get(&format!("/v1/orchestrations/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(gone.body["deleted"], true);
    let log = api.log_head().await;
    for (method, path, body) in writes(&id) {
        log.refused(api, method, &path, Some(body))
            .await
            .expect(StatusCode::CONFLICT, "orchestration_deleted");
    }
    api.get(&format!("/v1/jobs/{job_id}"))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_that_does_not_exist_is_not_found() {
    let (app, _smtp, _receiver) = start(2).await;
    app.api
        .refused(Method::GET, "/v1/orchestrations/no-such-id", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_jobs_bad_notification_address_is_refused() {
    let (app, _smtp, _receiver) = start(2).await;
    let api = &app.api;
    let log = api.log_head().await;
    let problem = log
        .refused(
            api,
            Method::POST,
            "/v1/jobs",
            Some(json!({"app": "shop", "env": "production", "task": "quick", "notification_emails": ["nope"]})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        problem.body.to_string().contains("notification_emails"),
        "{problem}"
    );
}

// ---- Jobs taking too long ----

/// Runs `orchestration` (of one quick task) twice to the end, then makes its task `sleep` and
/// runs it until it is processing: that job's id.
async fn run_slow_after_two_quick_runs(api: &Api, id: &str) -> String {
    for _ in 0..2 {
        let job = run_to_end(api, id, None).await;
        assert_eq!(job["status"], "success");
    }
    api.call(
        Method::PUT,
        &format!("/v1/orchestrations/{id}/tasks"),
        Some(json!([{"component": "shop/production/sleep"}])),
    )
    .await
    .expect(StatusCode::OK);
    let slow = id_of(&run(api, id, None).await);
    api.wait_for(&slow, Duration::from_secs(20), |j| {
        j["status"] == "processing"
    })
    .await;
    slow
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_past_its_tolerance_is_notified_once() {
    let (app, smtp, receiver) = start(1).await;
    let api = &app.api;
    let orchestration = create(
        api,
        json!({
            "name": "usually quick",
            "tasks": [{"component": "shop/production/quick"}],
            "notifications": [
                {"webhook_url": format!("{}/hooks/slow", receiver.base), "channel": "processing", "parameters": {"tolerance": 50}},
            ],
        }),
    )
    .await;
    let slow = run_slow_after_two_quick_runs(api, &id_of(&orchestration)).await;
    let call = receiver
        .wait_for("/hooks/slow", Duration::from_secs(20), |_| true)
        .await;
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        (body["channel"].as_str(), body["job"]["id"].as_str()),
        (Some("processing"), Some(slow.as_str()))
    );
    // Once, though the reactor keeps looking.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(receiver.received("/hooks/slow").len(), 1);
    assert!(smtp.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_past_its_timeout_is_notified_once() {
    // One worker: a second job waits while the first runs.
    let (app, smtp, receiver) = start(1).await;
    let api = &app.api;
    let orchestration = create(
        api,
        json!({
            "name": "usually quick",
            "tasks": [{"component": "shop/production/quick"}],
            "notifications": [
                {"webhook_url": format!("{}/hooks/stuck", receiver.base), "channel": "waiting", "parameters": {"timeout": 0.05}},
            ],
        }),
    )
    .await;
    let id = id_of(&orchestration);
    run_slow_after_two_quick_runs(api, &id).await;
    let stuck = id_of(&run(api, &id, None).await);
    let call = receiver
        .wait_for("/hooks/stuck", Duration::from_secs(20), |_| true)
        .await;
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        (body["channel"].as_str(), body["job"]["id"].as_str()),
        (Some("waiting"), Some(stuck.as_str()))
    );
    assert_eq!(api.job(&stuck).await["status"], "waiting");
    // Once, though the reactor keeps looking.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(receiver.received("/hooks/stuck").len(), 1);
    assert!(smtp.mails().is_empty());
}

// ---- The scheduler ----

fn at(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{value} is not a time: {e}"))
        .to_utc()
}

/// Waits until the orchestration has `count` scheduled jobs (never more), oldest first.
async fn scheduled_jobs(api: &Api, id: &str, count: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let jobs = api.get(&format!("/v1/orchestrations/{id}/jobs")).await.body;
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

const EVERY_MINUTE: &str = r#"{"name": "every minute", "crontab": "* * * * *", "tasks": [{"component": "shop/production/quick"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_fires_a_slot_on_time_and_once() {
    let (app, _smtp, _receiver) = start(1).await;
    let api = &app.api;
    let orchestration = create(api, serde_json::from_str(EVERY_MINUTE).unwrap()).await;
    let id = id_of(&orchestration);
    let next = at(&orchestration["next_scheduled_at"]);
    assert_eq!(next.timestamp() % 60, 0, "{orchestration}");

    let jobs = scheduled_jobs(api, &id, 1, Duration::from_secs(75)).await;
    let job = &jobs[0];
    assert_eq!(job["initialized_by"], "scheduler");
    let slot = at(&job["scheduled_for"]);
    let late = (at(&job["created_at"]) - slot).num_milliseconds();
    assert!(
        (0..2000).contains(&late),
        "submitted {late} ms after its slot: {job}"
    );
    let after = api.get(&format!("/v1/orchestrations/{id}")).await.body;
    assert_eq!(after["last_scheduled_at"], job["scheduled_for"]);
    assert_eq!((at(&after["next_scheduled_at"]) - slot).num_seconds(), 60);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_server_takes_over_the_scheduler_from_a_killed_one_without_doubling_a_run() {
    let smtp = SmtpSink::start();
    let dir = work_dir();
    let config = config_file(dir.path(), &config(smtp.port, 1));
    let args = ["-c", config.to_str().unwrap()];
    let env = [("BOSUN_LISTEN", "127.0.0.1:0")];
    let first = Server::start(dir.path(), &args, &env);
    let second = Server::start(dir.path(), &args, &env);
    let (_postgres, store) = join(&dir.path().join("bosun-data")).await;
    let api = Api::new(&first, dir.path());
    let id = id_of(&create(&api, serde_json::from_str(EVERY_MINUTE).unwrap()).await);
    let names = scheduler_holders(&store).await;
    assert_eq!(names.len(), 1, "one scheduler holds the lock: {names:?}");
    scheduled_jobs(&api, &id, 1, Duration::from_secs(75)).await;

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
    let claims = api
        .get(&format!("/v1/streams/orchestration-{id}"))
        .await
        .body;
    let claimed: Vec<&Value> = claims
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "OrchestrationRunScheduled")
        .collect();
    assert_eq!(claimed.len(), 2, "{claimed:?}");
}
