//! Jobs over HTTP and WebSocket against the real binary, with real processes: the catalog, a
//! deploy with variables watched live, kill and cancel and their refusals, several worker
//! processes sharing the queue, and a server killed mid-job.

use bosun_tests::{bosun_binary, config_file, work_dir, Api as Client, Server};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const CATALOG: &str = r#"
catalog:
  example:
    production:
      deploy:
        command: ["sh", "-c", "echo deploying $VERSION${BOSUN_LISTEN}; echo warming up >&2; sleep 0.2; echo done"]
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

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |job| job["status"] == status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_runs_with_its_variables_and_is_watched_live() {
    let dir = work_dir();
    let config = config_file(dir.path(), CATALOG);
    let server = Server::start(
        dir.path(),
        &["-c", config.to_str().unwrap()],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let api = Client::new(&server, dir.path());

    let (status, catalog) = api.json(reqwest::Method::GET, "/v1/catalog", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        catalog[0]["tasks"][0],
        json!({"name": "deploy", "description": "Deploy the app"})
    );

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

    // A value a shell would act on arrives as plain text in the environment.
    let finished = api
        .submit("deploy", json!({"variables": {"VERSION": "1.2; echo pwned"}, "name": "release 1.2", "wait": true}))
        .await;
    assert_eq!(finished["status"], "success", "{finished}");
    assert_eq!(finished["exit_code"], 0);
    assert_eq!(finished["stdout"], "deploying 1.2; echo pwned\ndone\n");
    let output = finished["output"].as_str().unwrap();
    assert!(
        output.contains("warming up\n") && output.ends_with("done\n"),
        "{output}"
    );
    assert!(finished["pid"].as_i64().unwrap() > 0 && finished["worker"].is_string());
    let id = finished["id"].as_str().unwrap().to_string();

    // Output by byte offset.
    let (status, headers, all) = api
        .send(
            reqwest::Method::GET,
            &format!("/v1/jobs/{id}/output?stream=stdout"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all, "deploying 1.2; echo pwned\ndone\n");
    assert_eq!(
        headers["bosun-output-offset"],
        all.len().to_string().as_str()
    );
    assert_eq!(headers["bosun-output-complete"], "true");
    let (_, headers, rest) = api
        .send(
            reqwest::Method::GET,
            &format!("/v1/jobs/{id}/output?stream=stdout&offset=10"),
            None,
        )
        .await;
    assert_eq!(rest, &all[10..]);
    assert_eq!(
        headers["bosun-output-offset"],
        all.len().to_string().as_str()
    );
    let (status, _, _) = api
        .send(
            reqwest::Method::GET,
            &format!("/v1/jobs/{id}/output?stream=both"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The WebSocket saw it from submission to finish, output included.
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
    assert_eq!(streamed, "deploying 1.2; echo pwned\ndone\n");

    // Every step is on the job's stream with its actor.
    let (_, events) = api
        .json(reqwest::Method::GET, &format!("/v1/streams/job-{id}"), None)
        .await;
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

    // Bad submissions change nothing.
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
        let (status, problem) = api
            .json(reqwest::Method::POST, "/v1/jobs", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field);
    }
    // Idempotency-Key: the same key and body give the same job; another body with it is a 409.
    let keyed = |body: Value| {
        api.http
            .post(format!("{}/v1/jobs", api.base))
            .bearer_auth(&api.token)
            .header("idempotency-key", "deploy-42")
            .json(&body)
            .send()
    };
    let restart = json!({"app": "example", "env": "production", "task": "restart"});
    let first = keyed(restart.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = keyed(restart.clone()).await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a retry gets the first job, with 200: it created nothing"
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let other = keyed(json!({"app": "example", "env": "staging", "task": "deploy"}))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::CONFLICT);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["code"], "idempotency_key_reused");
    api.wait_for(
        first["id"].as_str().unwrap(),
        Duration::from_secs(30),
        status_is("success"),
    )
    .await;

    let (status, headers, list) = api
        .send(
            reqwest::Method::GET,
            "/v1/jobs?app=example&status=success",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-total-count"], "2",
        "the deploy and the keyed restart: {list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_cancel_and_their_refusals_and_two_worker_processes_share_the_queue() {
    let dir = work_dir();
    // This server runs no jobs itself: jobs wait until worker processes come.
    let config = config_file(
        dir.path(),
        &format!("{CATALOG}\nrunner:\n  workers: 0\n  kill_grace_seconds: 1\n"),
    );
    let config = config.to_str().unwrap().to_string();
    let server = Server::start(
        dir.path(),
        &["-c", &config],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let api = Client::new(&server, dir.path());

    // Waiting: may be cancelled, not killed.
    let waiting = api.submit("restart", json!({})).await;
    let id = waiting["id"].as_str().unwrap();
    assert_eq!(waiting["status"], "waiting");
    let (status, problem) = api
        .json(reqwest::Method::POST, &format!("/v1/jobs/{id}/kill"), None)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("job_not_processing"))
    );
    let (status, cancelled) = api
        .json(
            reqwest::Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            Some(json!({"reason": "not today"})),
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (status, problem) = api
        .json(
            reqwest::Method::POST,
            &format!("/v1/jobs/{id}/cancel"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("job_finished"))
    );

    // Only the submitter or an admin stops a job; bad queries and keys are 400s; each refusal
    // with a problem body.
    let viewer = api.new_user("viewer", "viewer-pw").await;
    let mine = api.submit("restart", json!({})).await;
    let mine = mine["id"].as_str().unwrap();
    let keyed = api
        .http
        .post(format!("{}/v1/jobs", api.base))
        .bearer_auth(&api.token)
        .header("idempotency-key", "k".repeat(300))
        .json(&json!({"app": "example", "env": "production", "task": "restart"}))
        .send()
        .await
        .unwrap();
    let keyed = (
        keyed.status(),
        keyed.headers().clone(),
        keyed.text().await.unwrap(),
    );
    let refusals = [
        (
            viewer
                .send(
                    reqwest::Method::POST,
                    &format!("/v1/jobs/{mine}/cancel"),
                    None,
                )
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            api.send(reqwest::Method::GET, "/v1/jobs?status=bogus", None)
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            api.send(reqwest::Method::GET, "/v1/jobs?limit=5000", None)
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            api.send(
                reqwest::Method::GET,
                &format!("/v1/jobs/{mine}/output?offset=-1"),
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            api.send(reqwest::Method::GET, "/v1/jobs/not-a-job", None)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            api.send(
                reqwest::Method::POST,
                &format!("/v1/jobs/{mine}/cancel"),
                Some(json!({"why": "x"})),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (keyed, StatusCode::BAD_REQUEST, "invalid_input"),
    ];
    for ((status, headers, body), expected, code) in refusals {
        assert_eq!(status, expected, "{body}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{body}"
        );
        if !code.is_empty() {
            let problem: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(problem["code"], code, "{body}");
        }
    }
    assert_eq!(
        api.job(mine).await["status"],
        "waiting",
        "refusals changed nothing"
    );
    let (status, listed) = api
        .json(reqwest::Method::GET, "/v1/jobs?status=waiting", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "the key refused made no job: {listed}"
    );

    // A worker process with no workers configured is a usage error.
    let idle = std::process::Command::new(bosun_binary())
        .args(["worker", "-c", &config])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        idle.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&idle.stderr)
    );
    assert!(String::from_utf8_lossy(&idle.stderr).contains("runner.workers"));

    // Two worker processes on the same database.
    let sleeper = api.submit("sleep", json!({})).await;
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

    // Processing: may be killed (SIGTERM, then SIGKILL), not cancelled.
    let sleeper_id = sleeper["id"].as_str().unwrap();
    let running = api
        .wait_for(sleeper_id, Duration::from_secs(60), status_is("processing"))
        .await;
    let pid = running["pid"].as_i64().unwrap() as i32;
    let (status, problem) = api
        .json(
            reqwest::Method::POST,
            &format!("/v1/jobs/{sleeper_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("job_not_waiting"))
    );
    let (status, _) = api
        .json(
            reqwest::Method::POST,
            &format!("/v1/jobs/{sleeper_id}/kill"),
            Some(json!({"reason": "enough"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let killed = api
        .wait_for(sleeper_id, Duration::from_secs(20), status_is("killed"))
        .await;
    assert!(killed["diagnostics"]
        .as_str()
        .unwrap()
        .contains("killed on request"));
    assert!(
        !bosun_tests::process_alive(pid),
        "the job's process is gone"
    );

    // Every job ran exactly once, across the two workers.
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
        let (_, events) = api
            .json(reqwest::Method::GET, &format!("/v1/streams/job-{id}"), None)
            .await;
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
async fn a_job_whose_server_was_killed_ends_as_an_error_and_waiting_jobs_still_run() {
    let dir = work_dir();
    let config = config_file(
        dir.path(),
        &format!("{CATALOG}\nrunner:\n  workers: 1\n  lease_seconds: 2\n"),
    );
    let config = config.to_str().unwrap().to_string();
    let env = [("BOSUN_LISTEN", "127.0.0.1:0")];
    let server = Server::start(dir.path(), &["-c", &config], &env);
    let api = Client::new(&server, dir.path());
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
    let api = Client::new(&server, dir.path());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_timeout_ends_error_and_output_past_the_cap_is_cut() {
    let dir = work_dir();
    let config = config_file(
        dir.path(),
        r#"
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
"#,
    );
    let server = Server::start(
        dir.path(),
        &["-c", config.to_str().unwrap()],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let api = Client::new(&server, dir.path());

    let slow = api.submit("slow", json!({"wait": true})).await;
    assert_eq!(slow["status"], "error", "{slow}");
    let diagnostics = slow["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("timed out after 1 s"), "{diagnostics}");
    assert_eq!(slow["stdout"], "started\n");

    let noisy = api.submit("noisy", json!({"wait": true})).await;
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
