//! Jobs over HTTP and WebSocket: the catalog, a deploy with variables watched live, output,
//! kill, cancel and restart and their refusals, a job's timeout and output cap. The server runs in the
//! test's process (`spawn_app`), except where the test is about processes: worker processes
//! sharing the queue, and a server killed mid-job.

use bosun_tests::{
    bosun_binary, config_file, process_alive, spawn_app, work_dir, Answer, Api, Server, TestApp,
};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// `deploy` prints `$CARGO_MANIFEST_DIR` too: set in the test's process (cargo sets it), it must
/// not reach the job, whose environment is its variables and a few inherited names only.
const CATALOG: &str = r#"
catalog:
  example:
    production:
      deploy:
        command: ["sh", "-c", "echo deploying $VERSION${CARGO_MANIFEST_DIR}; echo warming up >&2; sleep 0.2; echo done"]
        description: Deploy the app
        timeout_seconds: 600
      restart:
        command: ["true"]
      sleep:
        command: ["sleep", "600"]
    staging:
      deploy:
        command: ["true"]
"#;

/// The server in this process, with the catalog and `extra` configuration.
async fn start(extra: &str) -> TestApp {
    spawn_app(&format!("{CATALOG}{extra}")).await
}

/// A server that runs no jobs itself: they wait.
async fn start_without_workers() -> TestApp {
    start("runner:\n  workers: 0\n").await
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |job| job["status"] == status
}

/// The deploy of version "1.2; echo pwned", waited for.
async fn deploy(api: &Api) -> Value {
    api.submit(
        "deploy",
        json!({"variables": {"VERSION": "1.2; echo pwned"}, "name": "release 1.2", "wait": true}),
    )
    .await
}

const DEPLOYED: &str = "deploying 1.2; echo pwned\ndone\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_lists_each_task_with_its_description() {
    let app = start("").await;
    let catalog = app.api.get("/v1/catalog").await.expect(StatusCode::OK).body;
    assert_eq!(
        catalog[0]["tasks"][0],
        json!({"name": "deploy", "description": "Deploy the app"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_gets_its_variables_as_plain_text_and_none_of_the_servers_environment() {
    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "the test's process has a variable the job must not get"
    );
    let app = start("").await;
    // A value a shell would act on arrives as plain text in the environment.
    let finished = deploy(&app.api).await;
    assert_eq!(finished["status"], "success", "{finished}");
    assert_eq!(finished["exit_code"], 0);
    assert_eq!(finished["stdout"], DEPLOYED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_shows_its_whole_output_its_pid_and_its_worker() {
    let app = start("").await;
    let finished = deploy(&app.api).await;
    let output = finished["output"].as_str().unwrap();
    assert!(
        output.contains("warming up\n") && output.ends_with("done\n"),
        "{output}"
    );
    assert!(finished["pid"].as_i64().unwrap() > 0 && finished["worker"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_output_is_read_by_byte_offset() {
    let app = start("").await;
    let api = &app.api;
    let id = deploy(api).await["id"].as_str().unwrap().to_string();
    let (status, headers, all) = api
        .send(
            Method::GET,
            &format!("/v1/jobs/{id}/output?stream=stdout"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all, DEPLOYED);
    assert_eq!(
        headers["bosun-output-offset"],
        all.len().to_string().as_str()
    );
    assert_eq!(headers["bosun-output-complete"], "true");
    let (_, headers, rest) = api
        .send(
            Method::GET,
            &format!("/v1/jobs/{id}/output?stream=stdout&offset=10"),
            None,
        )
        .await;
    assert_eq!(rest, &all[10..]);
    assert_eq!(
        headers["bosun-output-offset"],
        all.len().to_string().as_str()
    );
    api.refused(
        Method::GET,
        &format!("/v1/jobs/{id}/output?stream=both"),
        None,
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_shows_a_job_from_submission_to_finish_with_its_output() {
    let app = start("").await;
    let api = &app.api;
    let mut request = format!(
        "{}/v1/events/live?category=job",
        api.base.replacen("http", "ws", 1)
    )
    .into_client_request()
    .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", api.token).parse().unwrap(),
    );
    let (mut live, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let id = deploy(api).await["id"].as_str().unwrap().to_string();

    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|(t, _): &(String, Value)| t == "JobFinished")
    {
        let message = tokio::time::timeout(Duration::from_secs(10), live.next())
            .await
            .expect("live events")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            let event: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(event["stream_id"], format!("job-{id}"));
            seen.push((event["event_type"].as_str().unwrap().to_string(), event));
        }
    }
    let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types.first(), Some(&"JobSubmitted"));
    assert_eq!(types[1], "JobStarted");
    assert!(types.contains(&"JobOutputAppended"));
    let streamed: String = seen
        .iter()
        .filter(|(t, e)| t == "JobOutputAppended" && e["data"]["stream"] == "stdout")
        .map(|(_, e)| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, DEPLOYED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_job_is_on_its_stream_with_its_actor() {
    let app = start("").await;
    let api = &app.api;
    let id = deploy(api).await["id"].as_str().unwrap().to_string();
    let events = api.get(&format!("/v1/streams/job-{id}")).await.body;
    let actors: Vec<(&str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["metadata"]["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(actors[0], ("JobSubmitted", "admin"));
    assert_eq!(actors[1], ("JobStarted", "worker"));
    assert_eq!(actors.last(), Some(&("JobFinished", "worker")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_that_cannot_run_is_refused_naming_the_field() {
    let app = start("").await;
    let api = &app.api;
    let log = api.log_head().await;
    for (body, field) in [
        (
            json!({"app": "nope", "env": "production", "task": "deploy"}),
            "app",
        ),
        (
            json!({"app": "example", "env": "qa", "task": "deploy"}),
            "env",
        ),
        (
            json!({"app": "example", "env": "production", "task": "nope"}),
            "task",
        ),
        (
            json!({"app": "example", "env": "production", "task": "deploy", "variables": {"A-B": "x"}}),
            "variables",
        ),
        (
            json!({"app": "example", "env": "production", "task": "deploy", "variables": {"BASH_ENV": "/tmp/x"}}),
            "variables",
        ),
        (
            json!({"app": "example", "env": "production", "task": "deploy", "timeout_seconds": 99_999_999_999u64}),
            "timeout_seconds",
        ),
    ] {
        let problem = log
            .refused(api, Method::POST, "/v1/jobs", Some(body))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.body["errors"][0]["field"], field, "{problem}");
    }
}

const RESTART: &str = r#"{"app": "example", "env": "production", "task": "restart"}"#;

/// `POST /v1/jobs` of `body` with `Idempotency-Key: key`.
async fn keyed(api: &Api, key: &str, body: Value) -> Answer {
    api.call_with(
        Method::POST,
        "/v1/jobs",
        &[("idempotency-key", key)],
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_idempotency_key_and_body_gets_the_first_job_with_200() {
    let app = start("").await;
    let api = &app.api;
    let restart: Value = serde_json::from_str(RESTART).unwrap();
    let first = keyed(api, "deploy-42", restart.clone())
        .await
        .expect(StatusCode::CREATED);
    let again = keyed(api, "deploy-42", restart).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "a retry gets the first job, with 200: it created nothing"
    );
    assert_eq!(again.body["id"], first.body["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_body_with_a_used_idempotency_key_is_a_409() {
    // No workers: the first job waits, and nothing else writes while the log is watched.
    let app = start_without_workers().await;
    let api = &app.api;
    keyed(api, "deploy-42", serde_json::from_str(RESTART).unwrap())
        .await
        .expect(StatusCode::CREATED);
    let log = api.log_head().await;
    keyed(
        api,
        "deploy-42",
        json!({"app": "example", "env": "staging", "task": "deploy"}),
    )
    .await
    .problem()
    .expect(StatusCode::CONFLICT, "idempotency_key_reused");
    log.assert_unchanged("a reused key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_by_app_and_status_with_their_total() {
    let app = start("").await;
    let api = &app.api;
    let sleeper = api.submit("sleep", json!({})).await;
    deploy(api).await;
    let restart = api.submit("restart", json!({})).await;
    api.wait_for(
        restart["id"].as_str().unwrap(),
        Duration::from_secs(30),
        status_is("success"),
    )
    .await;
    api.wait_for(
        sleeper["id"].as_str().unwrap(),
        Duration::from_secs(30),
        status_is("processing"),
    )
    .await;
    let (status, headers, list) = api
        .send(Method::GET, "/v1/jobs?app=example&status=success", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-total-count"], "2",
        "the deploy and the restart, not the sleeper: {list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_is_paged_by_its_next_links_each_job_once_newest_first() {
    let app = start_without_workers().await;
    let api = &app.api;
    for _ in 0..5 {
        api.submit("restart", json!({})).await;
    }
    // Jobs the filters below leave out: a link that dropped a filter would list them.
    let cancelled = api.submit("restart", json!({})).await;
    api.post(
        &format!("/v1/jobs/{}/cancel", cancelled["id"].as_str().unwrap()),
        json!({"reason": "left out"}),
    )
    .await
    .expect(StatusCode::OK);
    let staging = api
        .call(
            Method::POST,
            "/v1/jobs",
            Some(json!({"app": "example", "env": "staging", "task": "deploy"})),
        )
        .await;
    assert!(staging.status.is_success(), "{}", staging.body);
    let ids = |jobs: &[Value]| -> Vec<String> {
        jobs.iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    let whole = api
        .get("/v1/jobs?env=production&status=waiting")
        .await
        .expect(StatusCode::OK);
    let whole = ids(whole.body.as_array().unwrap());
    assert_eq!(whole.len(), 5);
    let all = api.get("/v1/jobs").await.expect(StatusCode::OK);
    assert_eq!(all.body.as_array().unwrap().len(), 7, "{}", all.body);

    let (paged, pages) = api
        .pages("/v1/jobs?env=production&status=waiting&limit=2")
        .await;
    assert_eq!(
        ids(&paged),
        whole,
        "the pages hold the list, in its order, once: the links keep the filters"
    );
    assert_eq!(pages, 3, "2 + 2 + 1, and no link after the last page");
    let (paged, pages) = api.pages("/v1/jobs?limit=1").await;
    assert_eq!((paged.len(), pages), (7, 7));

    let problem = api
        .refused(Method::GET, "/v1/jobs?after=yesterday", None)
        .await;
    assert_eq!(problem.status, StatusCode::BAD_REQUEST);
    assert!(
        problem.body.to_string().contains("after"),
        "{}",
        problem.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_past_ten_thousand_is_ten_thousand_and_says_it_stopped_there() {
    let app = start_without_workers().await;
    let api = &app.api;
    api.submit("restart", json!({})).await;
    let one = api.get("/v1/jobs").await.expect(StatusCode::OK);
    assert_eq!(one.header("x-total-count"), "1");
    assert!(one.headers.get("x-total-count-capped").is_none());

    // 10,000 more rows, straight into the read model: a count reads the table, not the log.
    let (db, connection) = app
        .database()
        .0
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the test's database");
    let driver = tokio::spawn(connection);
    db.execute(
        "INSERT INTO jobs (job_id, app, env, task, variables, status, created_at, command,
                           initialized_by, created_by, version)
         SELECT gen_random_uuid(), 'example', 'production', 'restart', '{}', 'success',
                now() - i * interval '1 second', '[\"true\"]', 'manual', 'admin', 0
         FROM generate_series(1, 10000) AS i",
        &[],
    )
    .await
    .expect("insert jobs rows");
    drop(db);
    let _ = driver.await;

    let many = api.get("/v1/jobs?limit=1").await.expect(StatusCode::OK);
    assert_eq!(many.header("x-total-count"), "10000");
    assert_eq!(many.header("x-total-count-capped"), "true");
    let fewer = api
        .get("/v1/jobs?limit=1&status=waiting")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        fewer.header("x-total-count"),
        "1",
        "a count under the cap is exact"
    );
    assert!(fewer.headers.get("x-total-count-capped").is_none());
}

// ---- Cancel and kill ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_may_be_cancelled_not_killed() {
    let app = start_without_workers().await;
    let api = &app.api;
    let waiting = api.submit("restart", json!({})).await;
    let id = waiting["id"].as_str().unwrap();
    assert_eq!(waiting["status"], "waiting");
    let log = api.log_head().await;
    log.refused(api, Method::POST, &format!("/v1/jobs/{id}/kill"), None)
        .await
        .expect(StatusCode::CONFLICT, "job_not_processing");
    let cancelled = api
        .call(
            Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            Some(json!({"reason": "not today"})),
        )
        .await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let log = api.log_head().await;
    log.refused(api, Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
        .await
        .expect(StatusCode::CONFLICT, "job_finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_submitter_or_an_admin_stops_a_job() {
    let app = start_without_workers().await;
    let admin = &app.api;
    let viewer = admin.new_user("viewer", "viewer-pw").await;
    let mine = admin.submit("restart", json!({})).await;
    let mine = mine["id"].as_str().unwrap();
    let log = admin.log_head().await;
    log.refused(
        &viewer,
        Method::POST,
        &format!("/v1/jobs/{mine}/cancel"),
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(admin.job(mine).await["status"], "waiting");
    let theirs = viewer.submit("restart", json!({})).await;
    let theirs = theirs["id"].as_str().unwrap();
    admin
        .call(Method::POST, &format!("/v1/jobs/{theirs}/cancel"), None)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_job_query_or_request_is_refused_and_changes_nothing() {
    let app = start_without_workers().await;
    let api = &app.api;
    let mine = api.submit("restart", json!({})).await;
    let mine = mine["id"].as_str().unwrap();
    let log = api.log_head().await;
    let refusals = [
        (Method::GET, "/v1/jobs?status=bogus".to_string(), None),
        (Method::GET, "/v1/jobs?limit=5000".to_string(), None),
        (
            Method::GET,
            format!("/v1/jobs/{mine}/output?offset=-1"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/jobs/{mine}/cancel"),
            Some(json!({"why": "x"})),
        ),
    ];
    for (method, path, body) in refusals {
        log.refused(api, method, &path, body)
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
    log.refused(api, Method::GET, "/v1/jobs/not-a-job", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        api.job(mine).await["status"],
        "waiting",
        "refusals changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_long_idempotency_key_is_refused_and_makes_no_job() {
    let app = start_without_workers().await;
    let api = &app.api;
    let log = api.log_head().await;
    keyed(
        api,
        &"k".repeat(300),
        serde_json::from_str(RESTART).unwrap(),
    )
    .await
    .problem()
    .expect(StatusCode::BAD_REQUEST, "invalid_input");
    log.assert_unchanged("a key of 300 characters").await;
    let listed = api
        .get("/v1/jobs?status=waiting")
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed.body, json!([]), "the key refused made no job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_job_may_be_killed_not_cancelled() {
    let app = start("runner:\n  kill_grace_seconds: 1\n").await;
    let api = &app.api;
    let sleeper = api.submit("sleep", json!({})).await;
    let id = sleeper["id"].as_str().unwrap();
    let running = api
        .wait_for(id, Duration::from_secs(60), status_is("processing"))
        .await;
    let pid = running["pid"].as_i64().unwrap() as i32;
    api.refused(Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
        .await
        .expect(StatusCode::CONFLICT, "job_not_waiting");
    // SIGTERM, then SIGKILL.
    api.call(
        Method::POST,
        &format!("/v1/jobs/{id}/kill"),
        Some(json!({"reason": "enough"})),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    let killed = api
        .wait_for(id, Duration::from_secs(20), status_is("killed"))
        .await;
    assert!(killed["diagnostics"]
        .as_str()
        .unwrap()
        .contains("killed on request"));
    assert!(!process_alive(pid), "the job's process is gone");
}

// ---- Restart ----

/// Cancels waiting job `id` (it must be waiting).
async fn cancel(api: &Api, id: &str) {
    api.call(Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_did_not_succeed_restarts_as_a_new_job_of_the_same_request() {
    let app = start_without_workers().await;
    let api = &app.api;
    let old = api
        .submit(
            "deploy",
            json!({"variables": {"VERSION": "1.2"}, "name": "release 1.2", "timeout_seconds": 60, "notification_emails": ["ops@example.com"]}),
        )
        .await;
    let old_id = old["id"].as_str().unwrap();
    cancel(api, old_id).await;
    let answer = api
        .call(Method::POST, &format!("/v1/jobs/{old_id}/restart"), None)
        .await
        .expect(StatusCode::CREATED);
    assert!(answer.headers.contains_key("bosun-position"));
    let new = answer.body;
    assert_ne!(new["id"], old["id"], "a new job");
    assert_eq!(new["status"], "waiting");
    for field in [
        "app",
        "env",
        "task",
        "variables",
        "name",
        "timeout_seconds",
        "notification_emails",
        "command",
    ] {
        assert_eq!(new[field], old[field], "{field}");
    }
    assert_eq!(
        api.job(old_id).await["status"],
        "cancelled",
        "the old job stays"
    );
    let events = api
        .get(&format!("/v1/streams/job-{}", new["id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(events[0]["event_type"], "JobSubmitted");
    assert_eq!(events[0]["data"]["restarted_from"], old_id);
}

/// The ids of the jobs `api` lists.
async fn listed_ids(api: &Api) -> Vec<String> {
    let listed = api.get("/v1/jobs").await.expect(StatusCode::OK).body;
    listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|job| job["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_restarts_once_however_often_and_at_once_it_is_asked() {
    let app = start_without_workers().await;
    let api = &app.api;
    let old = api.submit("restart", json!({})).await;
    let old_id = old["id"].as_str().unwrap();
    cancel(api, old_id).await;
    let path = format!("/v1/jobs/{old_id}/restart");
    // Two at once: one makes the new job, the other finds it.
    let (a, b) = tokio::join!(
        api.call(Method::POST, &path, None),
        api.call(Method::POST, &path, None)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CREATED],
        "{} / {}",
        a.body,
        b.body
    );
    assert_eq!(a.body["id"], b.body["id"], "the same new job");
    let new_id = a.body["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    // Asked again: that job again, as it is now, and nothing written.
    let log = api.log_head().await;
    let again = api
        .call(Method::POST, &path, None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(again.body["id"], new_id.as_str());
    assert_eq!(again.body["status"], "waiting");
    log.assert_unchanged("a repeated restart").await;
    assert_eq!(listed_ids(api).await, [new_id.clone(), old_id.to_string()]);
    // To run it once more, restart the newest job.
    cancel(api, &new_id).await;
    let third = api
        .call(Method::POST, &format!("/v1/jobs/{new_id}/restart"), None)
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert!(third["id"] != new_id.as_str() && third["id"] != old_id);
    assert_eq!(listed_ids(api).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_restarted_by_someone_else_as_a_job_you_may_not_read_is_a_409() {
    let app = start_without_workers().await;
    let admin = &app.api;
    let viewer = admin.new_user("viewer", "viewer-pw").await;
    let theirs = viewer.submit("restart", json!({})).await;
    let theirs = theirs["id"].as_str().unwrap();
    cancel(&viewer, theirs).await;
    let path = format!("/v1/jobs/{theirs}/restart");
    // The admin restarts it first: the new job is the admin's.
    admin
        .call(Method::POST, &path, None)
        .await
        .expect(StatusCode::CREATED);
    let log = admin.log_head().await;
    let problem = log
        .refused(&viewer, Method::POST, &path, None)
        .await
        .expect(StatusCode::CONFLICT, "job_already_restarted");
    assert!(
        problem.detail().contains("submit its task anew"),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_restarted_runs_again() {
    let app = spawn_app(LIMITED).await;
    let api = &app.api;
    let slow = api.submit("slow", json!({"wait": true})).await;
    assert_eq!(slow["status"], "error", "{slow}");
    let again = api
        .call(
            Method::POST,
            &format!("/v1/jobs/{}/restart", slow["id"].as_str().unwrap()),
            None,
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let ended = api
        .wait_for(
            again["id"].as_str().unwrap(),
            Duration::from_secs(30),
            |job| job["status"] == "error",
        )
        .await;
    let diagnostics = ended["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("timed out after 1 s"), "{diagnostics}");
    assert_eq!(ended["stdout_bytes"], "started\n".len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_job_that_ended_killed_error_warning_or_cancelled_restarts() {
    let app = start("").await;
    let api = &app.api;
    let succeeded = api.submit("restart", json!({"wait": true})).await;
    assert_eq!(succeeded["status"], "success");
    let sleeper = api.submit("sleep", json!({})).await;
    let sleeper = sleeper["id"].as_str().unwrap();
    api.wait_for(sleeper, Duration::from_secs(30), status_is("processing"))
        .await;
    let log = api.log_head().await;
    for id in [succeeded["id"].as_str().unwrap(), sleeper] {
        let problem = log
            .refused(api, Method::POST, &format!("/v1/jobs/{id}/restart"), None)
            .await
            .expect(StatusCode::CONFLICT, "job_not_restartable");
        assert!(
            problem
                .detail()
                .contains("killed, error, warning or cancelled"),
            "{problem}"
        );
    }
    api.call(Method::POST, &format!("/v1/jobs/{sleeper}/kill"), None)
        .await
        .expect(StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_unknown_or_malformed_job_is_not_restarted() {
    let app = start_without_workers().await;
    let api = &app.api;
    let waiting = api.submit("restart", json!({})).await;
    let waiting = waiting["id"].as_str().unwrap();
    let log = api.log_head().await;
    log.refused(
        api,
        Method::POST,
        &format!("/v1/jobs/{waiting}/restart"),
        None,
    )
    .await
    .expect(StatusCode::CONFLICT, "job_not_restartable");
    for id in ["00000000-0000-4000-8000-000000000000", "not-a-job"] {
        log.refused(api, Method::POST, &format!("/v1/jobs/{id}/restart"), None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrations_job_is_run_again_by_its_orchestration_not_restarted() {
    let app = start_without_workers().await;
    let api = &app.api;
    let orchestration = api
        .post(
            "/v1/orchestrations",
            json!({"name": "nightly", "tasks": [{"component": "example/production/restart"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job = api
        .call(
            Method::POST,
            &format!(
                "/v1/orchestrations/{}/jobs",
                orchestration["id"].as_str().unwrap()
            ),
            None,
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = job["id"].as_str().unwrap();
    cancel(api, id).await;
    let log = api.log_head().await;
    let problem = log
        .refused(api, Method::POST, &format!("/v1/jobs/{id}/restart"), None)
        .await
        .expect(StatusCode::CONFLICT, "job_not_restartable");
    assert!(problem.detail().contains("orchestration"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_restarts_only_for_who_may_read_it_and_submit_its_task() {
    let app = start_without_workers().await;
    let admin = &app.api;
    let viewer = admin.new_user("viewer", "viewer-pw").await;
    let admins = admin.submit("restart", json!({})).await;
    let admins = admins["id"].as_str().unwrap();
    cancel(admin, admins).await;
    let log = admin.log_head().await;
    log.refused(
        &viewer,
        Method::POST,
        &format!("/v1/jobs/{admins}/restart"),
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    log.refused(
        &admin.anonymous(),
        Method::POST,
        &format!("/v1/jobs/{admins}/restart"),
        None,
    )
    .await
    .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    // Their own job, yes.
    let theirs = viewer.submit("restart", json!({})).await;
    let theirs = theirs["id"].as_str().unwrap();
    cancel(&viewer, theirs).await;
    viewer
        .call(Method::POST, &format!("/v1/jobs/{theirs}/restart"), None)
        .await
        .expect(StatusCode::CREATED);
}

// ---- Limits ----

const LIMITED: &str = r#"
catalog:
  example:
    production:
      noisy:
        command: ["sh", "-c", "yes hello | head -c 100000; echo; echo tail >&2"]
      slow:
        command: ["sh", "-c", "echo started; sleep 30"]
        timeout_seconds: 1
runner:
  kill_grace_seconds: 1
  output_limit_bytes: 1000
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_timeout_ends_as_an_error_keeping_what_it_printed() {
    let app = spawn_app(LIMITED).await;
    let slow = app.api.submit("slow", json!({"wait": true})).await;
    assert_eq!(slow["status"], "error", "{slow}");
    let diagnostics = slow["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("timed out after 1 s"), "{diagnostics}");
    assert_eq!(slow["stdout"], "started\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_past_the_cap_is_cut_with_a_note() {
    let app = spawn_app(LIMITED).await;
    let noisy = app.api.submit("noisy", json!({"wait": true})).await;
    assert_eq!(noisy["status"], "success", "{noisy}");
    let output = noisy["output"].as_str().unwrap();
    assert!(output.starts_with("hello\nhello\n"));
    assert!(
        output.ends_with("[bosun: output cut here: more than 1000 bytes]\n"),
        "{}",
        &output[output.len().saturating_sub(200)..]
    );
    assert!(output.len() < 1100, "{} bytes kept", output.len());
}

// ---- Processes ----

#[test]
fn a_worker_process_with_no_workers_configured_is_a_usage_error() {
    let dir = work_dir();
    let config = config_file(dir.path(), &format!("{CATALOG}\nrunner:\n  workers: 0\n"));
    let idle = std::process::Command::new(bosun_binary())
        .args(["worker", "-c", config.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&idle.stderr);
    assert_eq!(idle.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("runner.workers"), "{stderr}");
    assert!(
        !dir.path().join("bosun-data").exists(),
        "nothing was started"
    );
}

struct KillOnDrop(Vec<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_share_the_queue_and_run_each_job_once() {
    let dir = work_dir();
    // This server runs no jobs itself: jobs wait until worker processes come.
    let config = config_file(dir.path(), &format!("{CATALOG}\nrunner:\n  workers: 0\n"));
    let config = config.to_str().unwrap().to_string();
    let server = Server::start(
        dir.path(),
        &["-c", &config],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let api = Api::new(&server, dir.path());
    let batch: Vec<String> =
        futures::future::join_all((0..20).map(|_| api.submit("restart", json!({}))))
            .await
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect();
    let workers: Vec<std::process::Child> = (0..2)
        .map(|n| {
            std::process::Command::new(bosun_binary())
                .args(["worker", "-c", &config])
                // The file says 0 for the API server; each worker process runs two.
                .env("BOSUN_RUNNER__WORKERS", "2")
                .current_dir(dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.path().join(format!("worker-{n}.log"))).unwrap())
                .spawn()
                .expect("start a worker")
        })
        .collect();
    let _stop = KillOnDrop(workers);

    let mut workers_seen = std::collections::BTreeSet::new();
    for id in &batch {
        let job = api
            .wait_for(id, Duration::from_secs(60), status_is("success"))
            .await;
        workers_seen.insert(
            job["worker"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string(),
        );
        let events = api.get(&format!("/v1/streams/job-{id}")).await.body;
        let starts = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == "JobStarted")
            .count();
        assert_eq!(starts, 1, "job {id} started {starts} times");
    }
    assert_eq!(
        workers_seen.len(),
        2,
        "both worker processes took jobs: {workers_seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_server_was_killed_ends_as_an_error_and_waiting_jobs_still_run() {
    let dir = work_dir();
    let config = config_file(
        dir.path(),
        &format!("{CATALOG}\nrunner:\n  workers: 1\n  lease_seconds: 2\n"),
    );
    let config = config.to_str().unwrap().to_string();
    let env = [("BOSUN_LISTEN", "127.0.0.1:0")];
    let server = Server::start(dir.path(), &["-c", &config], &env);
    let api = Api::new(&server, dir.path());
    let sleeper = api.submit("sleep", json!({})).await;
    let id = sleeper["id"].as_str().unwrap().to_string();
    let running = api
        .wait_for(&id, Duration::from_secs(30), status_is("processing"))
        .await;
    let pid = running["pid"].as_i64().unwrap() as i32;
    // The only worker is busy: this one waits.
    let queued = api.submit("restart", json!({})).await;
    let queued_id = queued["id"].as_str().unwrap().to_string();

    server.kill();
    // SIGKILL runs no cleanup: the job's process outlives the server; this test removes it.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );

    let server = Server::start(dir.path(), &["-c", &config], &env);
    let api = Api::new(&server, dir.path());
    let lost = api
        .wait_for(&id, Duration::from_secs(30), |j| {
            j["status"] != "processing"
        })
        .await;
    assert_eq!(lost["status"], "error", "{lost}");
    let diagnostics = lost["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("was lost")
            && diagnostics.contains(running["worker"].as_str().unwrap()),
        "{diagnostics}"
    );
    let ran = api
        .wait_for(&queued_id, Duration::from_secs(30), |j| {
            j["status"] != "waiting" && j["status"] != "processing"
        })
        .await;
    assert_eq!(ran["status"], "success", "{ran}");
}
