//! Started with no configuration file, bosun has the built-in example catalog: the README's
//! first steps (run a job, watch its output, kill it) work right after `cargo run`.

use bosun_tests::{work_dir, Api, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_the_example_tasks_run_are_watched_and_killed() {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &[],
        &[
            ("BOSUN_LISTEN", "127.0.0.1:0"),
            ("BOSUN_RUNNER__KILL_GRACE_SECONDS", "1"),
        ],
    );
    let api = Api::new(&server, dir.path());

    let (status, catalog) = api.json(Method::GET, "/v1/catalog", None).await;
    assert_eq!(status, StatusCode::OK, "{catalog}");
    let entries = catalog.as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{catalog}");
    assert_eq!(
        (&entries[0]["app"], &entries[0]["env"]),
        (&json!("example"), &json!("production"))
    );
    let names: Vec<&str> = entries[0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fail", "hello", "sleep"], "{catalog}");
    assert!(entries[0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| !t["description"].as_str().unwrap().is_empty()));

    // hello: greets $NAME and prints exactly the variables it was given.
    let hello = api
        .submit(
            "hello",
            json!({"variables": {"NAME": "ann", "COLOR": "blue"}, "wait": true}),
        )
        .await;
    assert_eq!(hello["status"], "success", "{hello}");
    assert_eq!(
        hello["stdout"], "hello ann\nCOLOR=blue\nNAME=ann\n",
        "{hello}"
    );

    // fail: a message on stderr and exit status 3.
    let fail = api.submit("fail", json!({"wait": true})).await;
    assert_eq!(fail["status"], "error", "{fail}");
    assert_eq!(fail["exit_code"], 3, "{fail}");
    let id = fail["id"].as_str().unwrap();
    let (status, _, stderr) = api
        .send(
            Method::GET,
            &format!("/v1/jobs/{id}/output?stream=stderr"),
            None,
        )
        .await;
    assert_eq!((status, stderr.as_str()), (StatusCode::OK, "failing\n"));

    // sleep: runs until killed; its output is watched while it runs.
    let sleep = api.submit("sleep", json!({})).await;
    let id = sleep["id"].as_str().unwrap().to_string();
    api.wait_for(&id, Duration::from_secs(30), |job: &Value| {
        job["status"] == "processing"
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, headers, output) = api
            .send(Method::GET, &format!("/v1/jobs/{id}/output"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["bosun-output-complete"], "false", "it still runs");
        if !output.is_empty() {
            assert_eq!(output, "sleeping for ten minutes\n");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no output from the sleeping job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, killing) = api
        .json(
            Method::POST,
            &format!("/v1/jobs/{id}/kill"),
            Some(json!({"reason": "first steps"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{killing}");
    let killed = api
        .wait_for(&id, Duration::from_secs(30), |job: &Value| {
            job["status"] == "killed"
        })
        .await;
    assert_eq!(killed["status"], "killed", "{killed}");
    let (_, headers, _) = api
        .send(Method::GET, &format!("/v1/jobs/{id}/output"), None)
        .await;
    assert_eq!(headers["bosun-output-complete"], "true");

    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
}
