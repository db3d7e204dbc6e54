//! Schema-driven bad input: schemathesis (PyPI, pinned in [`PINNED`]) runs every operation of
//! `/v1/openapi.json` against a real server, with its examples, coverage, fuzzing and stateful
//! phases and positive and negative data, and all of its checks: no server error, every answer
//! as the document says, data the document allows accepted and data it forbids refused. Then
//! the test checks what schemathesis cannot: no event of the log came from a refused request
//! (the hooks in `tests/schemathesis/hooks.py` write down each answer's `Request-Id`, and every
//! event carries the request id of the command that wrote it), nor from a probe some checks send
//! beside the test cases, which no hook sees (known by schemathesis's user agent).
//!
//! The server runs in the test's process (`spawn_app`), mailing through a real SMTP receiver so
//! the password reset routes do their work.

use bosun_eventstore::{EventStore, Filter};
use bosun_tests::receivers::SmtpSink;
use bosun_tests::{bosun_binary, connection_string, spawn_app};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

const PINNED: &str = "schemathesis==4.32.5";

fn config(smtp: &SmtpSink) -> String {
    format!(
        r#"
notifications:
  smtp: {{host: 127.0.0.1, port: {port}, from: bosun@example.com}}
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
catalog:
  shop:
    production:
      ok:
        command: ["true"]
"#,
        port = smtp.port
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_operation_holds_to_its_schema_and_a_refused_request_changes_nothing() {
    let smtp = SmtpSink::start();
    let app = spawn_app(&config(&smtp)).await;
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis");
    let work = tempfile::tempdir().expect("a temporary folder");
    let calls_file = work.path().join("calls");
    let report = work.path().join("report");
    let mut run = Command::new("python3");
    run.args(["-m", "schemathesis.cli"])
        .current_dir(&suite)
        .env("PYTHONPATH", &suite)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("BOSUN_CALLS_FILE", &calls_file)
        .env("NO_COLOR", "1")
        // The run's admin, and how to make another if a step of the run ends it. The run
        // starts with a token that never worked, so that way is taken every run (a step of the
        // run revokes its token only on some runs).
        .env("BOSUN_TOKEN", "bosun_revoked")
        .env("BOSUN_BASE_URL", app.url(""))
        .env("BOSUN_BINARY", bosun_binary())
        .env("BOSUN_DATABASE__URL", connection_string(&app.database().0))
        .env("BOSUN_DATA_DIR", work.path().join("bosun-admin"))
        .args(["run", &app.url("/v1/openapi.json")])
        .args(["--include-path-regex", "^/v1/"])
        // Logging out would end the run's own token; the live feed is a WebSocket.
        .args(["--exclude-path", "/v1/auth/tokens/current"])
        .args(["--exclude-path", "/v1/events/live"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--mode", "all", "--checks", "all"])
        .args(["--generation-allow-x00", "false"])
        .args(["--max-examples", "20", "--seed", "42", "--workers", "2"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&report);
    // A run takes about a minute here; one that hangs is killed (kill_on_drop) and fails.
    run.kill_on_drop(true);
    let done = tokio::time::timeout(Duration::from_secs(15 * 60), run.output())
        .await
        .expect("schemathesis still running after 15 minutes");
    let done = done.unwrap_or_else(|e| {
        panic!("cannot run python3 -m schemathesis.cli ({e}): install Python 3 and `pip install {PINNED}`")
    });
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        done.status.success(),
        "schemathesis found failures (or could not run: `pip install {PINNED}`):\n{said}"
    );

    let calls = std::fs::read_to_string(&calls_file).unwrap_or_else(|e| {
        panic!("the hooks wrote down no answer ({e}): were they loaded?\n{said}")
    });
    // `<request id> <status> <method> <path>`, by request id.
    let calls: BTreeMap<&str, (u16, &str)> = calls
        .lines()
        .filter_map(|line| {
            let (id, rest) = line.split_once(' ')?;
            let status = rest.split(' ').next()?.parse().ok()?;
            Some((id, (status, rest)))
        })
        .filter(|(id, _)| *id != "-")
        .collect();
    let refused = calls.values().filter(|(status, _)| *status >= 400).count();
    // The negative phases send thousands of requests the server must refuse.
    assert!(refused > 1000, "only {refused} refused requests:\n{said}");
    // Read from the store: a step of the run may have revoked every token the test knows.
    let store = app.store().await;
    let mut events = Vec::new();
    let mut from = 1;
    loop {
        let page = store
            .read_page(from, 1000, &Filter::default())
            .await
            .expect("read the log");
        let Some(last) = page.events.last() else {
            break;
        };
        from = last.position + 1;
        events.extend(
            page.events
                .into_iter()
                .map(|e| serde_json::json!({"event_type": e.event_type, "metadata": e.metadata})),
        );
    }
    let mut written_by_refused = Vec::new();
    let mut unexplained = Vec::new();
    let mut written_by_run = 0;
    for event in &events {
        let metadata = &event["metadata"];
        let recorded = metadata["request_id"].as_str().and_then(|id| calls.get(id));
        match recorded {
            Some((status, request)) if *status >= 400 => {
                written_by_refused.push(format!("{request}: {}", event["event_type"]))
            }
            Some(_) => written_by_run += 1,
            // A request of the run the hooks did not see (a probe some checks send beside
            // the test cases): it may not write either.
            None if metadata["user_agent"]
                .as_str()
                .is_some_and(|agent| agent.starts_with("schemathesis")) =>
            {
                unexplained.push(format!("{metadata}: {}", event["event_type"]))
            }
            None => {}
        }
    }
    assert!(
        events.iter().any(|e| e["event_type"] == "TokenIssued"
            && e["metadata"]["user_agent"]
                .as_str()
                .is_some_and(|agent| agent.starts_with("bosun admin"))),
        "the hooks made no admin with `bosun admin`:\n{said}"
    );
    // The events of the run's accepted writes carry their requests' ids: the check can see.
    assert!(
        written_by_run > 100,
        "only {written_by_run} events carry a request id of the run"
    );
    for summary in said.lines().filter(|line| line.contains(" generated, ")) {
        println!("schemathesis: {}", summary.trim());
    }
    println!("{refused} refused requests wrote nothing; {written_by_run} events came from the run's accepted ones");
    assert!(
        written_by_refused.is_empty(),
        "refused requests wrote events: {written_by_refused:#?}"
    );
    assert!(
        unexplained.is_empty(),
        "requests of the run the hooks did not see wrote events: {unexplained:#?}"
    );
}
