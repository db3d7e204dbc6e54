//! One bad request never hurts another (issue 10): a value the log cannot store is refused
//! alone; racing retries get the first job; a job is read by one rule; the server bounds what a
//! request may hold of it. Against the real binary, over HTTP, with real processes.

use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CATALOG: &str = r#"
catalog:
  example:
    production:
      restart:
        command: ["true"]
      nul:
        command: ["printf", "a\\000b"]
      sleep:
        command: ["sleep", "600"]
"#;

/// The server in this process, with the catalog and `extra` configuration.
async fn start(extra: &str) -> TestApp {
    spawn_app(&format!("{CATALOG}{extra}")).await
}

/// `errors[0].field` of a 400 problem body, after checking it is one.
fn refused_field(status: StatusCode, body: &Value) -> String {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_input", "{body}");
    body["errors"][0]["field"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn count_events(api: &Api, event_type: &str) -> usize {
    let (status, events) = api
        .json(
            Method::GET,
            &format!("/v1/events?type={event_type}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events.as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_one_request_fails_it_alone_and_names_the_field() {
    let app = start("").await;
    let api = std::sync::Arc::new(app.api.clone());
    // A job whose worker appends while the bad requests come: it must end for its own reason.
    let timed = api.submit("sleep", json!({"timeout_seconds": 2})).await;
    // 20 good submissions and one bad, at once: they share the committer's batches.
    let mut calls = Vec::new();
    for i in 0..21 {
        let api = api.clone();
        let name = if i == 7 {
            "x\u{0}".to_string()
        } else {
            format!("job {i}")
        };
        calls.push(tokio::spawn(async move {
            api.json(
                Method::POST,
                "/v1/jobs",
                Some(
                    json!({"app": "example", "env": "production", "task": "restart", "name": name}),
                ),
            )
            .await
        }));
    }
    for (i, call) in calls.into_iter().enumerate() {
        let (status, body) = call.await.unwrap();
        if i == 7 {
            assert_eq!(refused_field(status, &body), "name");
        } else {
            assert_eq!(status, StatusCode::CREATED, "submission {i}: {body}");
        }
    }
    assert_eq!(count_events(&api, "JobSubmitted").await, 21);
    let timed = api
        .wait_for(
            timed["id"].as_str().unwrap(),
            Duration::from_secs(20),
            |j| j["status"] == "error",
        )
        .await;
    let diagnostics = timed["diagnostics"].as_str().unwrap_or_default();
    assert!(diagnostics.starts_with("timed out after 2 s"), "{timed}");

    // Anywhere in a body, also inside free-form parameters; each changes nothing.
    let head = count_events(&api, "").await;
    let (status, body) = api
        .json(
            Method::POST,
            "/v1/tokens",
            Some(json!({"description": "ci\u{0}"})),
        )
        .await;
    assert_eq!(refused_field(status, &body), "description");
    let orchestration = json!({
        "name": "nightly",
        "tasks": [{"component": "example/production/restart", "parameters": {"k": ["v\u{0}"]}}],
    });
    let (status, body) = api
        .json(Method::POST, "/v1/orchestrations", Some(orchestration))
        .await;
    assert_eq!(refused_field(status, &body), "tasks[0].parameters.k[0]");
    let (status, body) = api
        .json(
            Method::POST,
            "/v1/users",
            Some(json!({"username": "ann", "password": "pass\u{0}word"})),
        )
        .await;
    assert_eq!(refused_field(status, &body), "password");
    assert_eq!(count_events(&api, "").await, head, "nothing was appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_path_or_a_query_is_a_400_naming_it() {
    let app = start("").await;
    let api = &app.api;
    for (path, field) in [
        ("/v1/jobs?app=%00", "app"),
        ("/v1/jobs?status=waiting&env=x%00y", "env"),
        ("/v1/events?actor=%00", "actor"),
        ("/v1/events/live?category=%00", "category"),
        ("/v1/orchestrations/%00", "path"),
        ("/v1/users/%00", "path"),
        ("/v1/jobs/%00/output", "path"),
    ] {
        let (status, body) = api.json(Method::GET, path, None).await;
        assert_eq!(refused_field(status, &body), field, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_printing_nul_bytes_ends_with_its_output() {
    let app = start("").await;
    let api = &app.api;
    let job = api.submit("nul", json!({})).await;
    let id = job["id"].as_str().unwrap();
    let done = api
        .wait_for(id, Duration::from_secs(30), |j| {
            j["status"] != "waiting" && j["status"] != "processing"
        })
        .await;
    assert_eq!(done["status"], "success", "{done}");
    let (status, _, output) = api
        .send(Method::GET, &format!("/v1/jobs/{id}/output"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(output, "a\u{FFFD}b", "a NUL byte is kept as U+FFFD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_retries_with_one_key_all_answer_with_the_first_job() {
    let app = start("").await;
    let api = std::sync::Arc::new(app.api.clone());
    for round in 0..3 {
        let key = format!("deploy-{round}");
        let mut calls = Vec::new();
        for _ in 0..10 {
            let (api, key) = (api.clone(), key.clone());
            calls.push(tokio::spawn(async move {
                let response = api
                    .http
                    .post(format!("{}/v1/jobs", api.base))
                    .bearer_auth(&api.token)
                    .header("idempotency-key", key)
                    .json(&json!({"app": "example", "env": "production", "task": "restart"}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                (status, response.json::<Value>().await.unwrap())
            }));
        }
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let created = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .count();
        assert_eq!(created, 1, "round {round}: {answers:?}");
        assert!(
            answers
                .iter()
                .all(|(s, _)| *s == StatusCode::CREATED || *s == StatusCode::OK),
            "round {round}: {answers:?}"
        );
        let first = &answers[0].1["id"];
        assert!(
            answers.iter().all(|(_, job)| &job["id"] == first),
            "round {round}: every answer is the one job: {answers:?}"
        );
    }
    assert_eq!(count_events(&api, "JobSubmitted").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_read_by_its_submitter_its_orchestrations_readers_and_admins() {
    let app = start("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-password").await;
    let bob = admin.new_user("bob", "bob-password").await;
    let job = ann
        .submit("restart", json!({"variables": {"NAME": "annsecret"}}))
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    ann.wait_for(&id, Duration::from_secs(30), |j| j["status"] == "success")
        .await;
    let (status, orchestration) = admin
        .json(
            Method::POST,
            "/v1/orchestrations",
            Some(json!({"name": "o", "tasks": [{"component": "example/production/restart"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{orchestration}");
    let (status, run) = admin
        .json(
            Method::POST,
            &format!(
                "/v1/orchestrations/{}/jobs",
                orchestration["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert!(status.is_success(), "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();

    let reads = |id: &str| {
        [
            format!("/v1/jobs/{id}"),
            format!("/v1/jobs/{id}/output"),
            format!("/v1/streams/job-{id}"),
        ]
    };
    for path in reads(&id) {
        let (status, _, body) = ann.send(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "the submitter reads {path}: {body}");
        let (status, _, body) = admin.send(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "an admin reads {path}: {body}");
        let (status, body) = bob.json(Method::GET, &path, None).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "another user may not read {path}: {body}"
        );
        assert_eq!(body["code"], "forbidden");
        assert!(!body.to_string().contains("annsecret"));
    }
    for path in reads(&run_id) {
        let (status, _, body) = bob.send(Method::GET, &path, None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "an orchestration's reader reads {path}: {body}"
        );
    }
    let mut everything = vec![id.clone(), run_id.clone()];
    everything.sort();
    assert_eq!(
        listed(admin).await.0,
        everything,
        "an admin lists every job"
    );
    assert_eq!(
        listed(&ann).await.0,
        everything,
        "ann lists her job and the orchestration's"
    );
    let (seen, body) = listed(&bob).await;
    assert_eq!(seen, vec![run_id], "bob lists only the orchestration's job");
    assert!(!body.contains("annsecret"));
}

/// The ids `GET /v1/jobs` lists to `api` (sorted), checked against `X-Total-Count`, and the body.
async fn listed(api: &Api) -> (Vec<String>, String) {
    let (status, headers, body) = api.send(Method::GET, "/v1/jobs", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jobs: Vec<Value> = serde_json::from_str(&body).unwrap();
    let mut ids: Vec<String> = jobs
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(headers["x-total-count"], ids.len().to_string().as_str());
    (ids, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_reads_and_submissions_refuse_what_cannot_be() {
    let app = start("").await;
    let api = &app.api;
    let job = api.submit("restart", json!({})).await;
    let id = job["id"].as_str().unwrap();
    let (status, body) = api
        .json(Method::GET, &format!("/v1/jobs/{id}/output?task=-1"), None)
        .await;
    assert_eq!(refused_field(status, &body), "task");
    let (status, body) = api
        .json(Method::GET, &format!("/v1/jobs/{id}/output?task=999"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "not_found");

    let long_name = "A".repeat(140 * 1024);
    let (status, body) = api
        .json(
            Method::POST,
            "/v1/jobs",
            Some(json!({"app": "example", "env": "production", "task": "restart", "variables": {long_name: "x"}})),
        )
        .await;
    assert_eq!(refused_field(status, &body), "variables");

    let ready = bosun_tests::get_json(&format!("{}/readyz", api.base)).await;
    let head = ready["head"].as_u64().expect("readyz gives the head");
    let asked = Instant::now();
    let response = api
        .http
        .get(format!("{}/v1/jobs", api.base))
        .bearer_auth(&api.token)
        .header("bosun-min-position", (head + 1_000_000).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(asked.elapsed() < Duration::from_secs(2), "refused at once");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "position_beyond_head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_is_bounded_by_the_server_then_answers_202_with_the_job() {
    let app = start("http:\n  wait_seconds: 1\n").await;
    let api = &app.api;
    let asked = Instant::now();
    let (status, job) = api
        .json(
            Method::POST,
            "/v1/jobs",
            Some(json!({"app": "example", "env": "production", "task": "sleep", "wait": true})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert!(
        matches!(job["status"].as_str(), Some("waiting" | "processing")),
        "{job}"
    );
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_finishes_its_request_head_is_closed() {
    let app = start("http:\n  header_read_timeout_seconds: 1\n").await;
    let address = app.address.to_string();
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(tcp);
    }
    let sent = Instant::now();
    for mut tcp in idle {
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the server kept a half-sent request open");
    }
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    // A whole request is still answered.
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}
