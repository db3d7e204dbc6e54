//! The `bosun` binary as a user runs it, as processes: no configuration, SIGKILL and restart,
//! SIGTERM, the managed PostgreSQL, bad configuration, JSON logs, replay while serving,
//! benchmarks. And what any server answers (health, metrics, request ids, problems,
//! `Bosun-Min-Position`), checked on the server in the test's process (`spawn_app`).

use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamId};
use bosun_tests::{
    bosun_binary, config_file, get_json, join, postmaster_pid, process_alive, spawn_app, work_dir,
    Api, Server,
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Appends `events` events over `streams` streams, 100 per append, from 8 tasks.
async fn fill(store: &PgEventStore, streams: u64, events: u64) {
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut k = t;
                let mut written = 0;
                while written < events / 8 {
                    let n = 100.min(events / 8 - written);
                    let stream = StreamId::new("job", k % streams).unwrap();
                    let batch = (0..n)
                        .map(|i| NewEvent::new("Stepped", json!({ "i": i })))
                        .collect();
                    store
                        .append(&stream, ExpectedVersion::Any, batch)
                        .await
                        .unwrap();
                    written += n;
                    k += 8;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// The events a first start writes itself (the first admin's), by stream category and type.
const FIRST_ADMIN: &[(&str, &str)] = &[
    ("identity", "AdminRosterStarted"),
    ("reservation", "ReservationClaimed"),
    ("user", "UserRegistered"),
    ("identity", "AdminJoined"),
    ("token", "TokenIssued"),
];

/// How many: what a first start leaves at the head of the log.
const FIRST_HEAD: u64 = FIRST_ADMIN.len() as u64;

/// In how many streams: the admin roster, the name's reservation, the user, the token.
const FIRST_STREAMS: i64 = 4;

/// Waits until the server at `base` has the log's head at `head` and its `streams` projection
/// caught up.
async fn wait_for_head(base: &str, head: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = get_json(&format!("{base}/readyz")).await;
        if ready["head"] == head && ready["projection_lag"]["streams"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "projections did not reach {head}: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn managed_config(dir: &Path, extra: &str) -> String {
    let path = config_file(
        dir,
        &format!(
            "listen: 127.0.0.1:0\ndata_dir: {}\n{extra}",
            dir.join("data").display()
        ),
    );
    path.to_string_lossy().into_owned()
}

// ---- Without configuration, SIGKILL, SIGTERM: the process and its managed PostgreSQL ----

/// Only the port is set (tests run side by side); the data directory is the default
/// ./bosun-data.
const PORT_ONLY: [(&str, &str); 1] = [("BOSUN_LISTEN", "127.0.0.1:0")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_without_configuration_keeping_its_data_in_bosun_data() {
    let dir = work_dir();
    let data_dir = dir.path().join("bosun-data");
    let server = Server::start(dir.path(), &[], &PORT_ONLY);
    assert_eq!(get_json(&server.url("/healthz")).await["status"], "ok");
    assert!(
        postmaster_pid(&data_dir).is_some_and(process_alive),
        "its PostgreSQL runs from ./bosun-data"
    );
    assert!(data_dir.join("admin-token").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_postgresql_running_and_the_next_start_reuses_it() {
    let dir = work_dir();
    let data_dir = dir.path().join("bosun-data");
    let server = Server::start(dir.path(), &[], &PORT_ONLY);
    let (pg, store) = join(&data_dir).await;
    fill(&store, 2, 16).await;
    drop(store);
    assert!(
        !pg.stop().await.unwrap(),
        "the server still uses PostgreSQL, so it stays up"
    );
    wait_for_head(&server.base, 16 + FIRST_HEAD).await;

    // SIGKILL leaves PostgreSQL running; the next start uses it.
    let postgres = postmaster_pid(&data_dir).expect("a running cluster");
    server.kill();
    assert!(
        process_alive(postgres),
        "PostgreSQL outlives a killed server"
    );
    let server = Server::start(dir.path(), &[], &PORT_ONLY);
    assert_eq!(
        postmaster_pid(&data_dir),
        Some(postgres),
        "the running PostgreSQL was reused"
    );
    wait_for_head(&server.base, 16 + FIRST_HEAD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_server_and_postgresql_were_both_killed_the_next_start_recovers_the_data() {
    let dir = work_dir();
    let data_dir = dir.path().join("bosun-data");
    let server = Server::start(dir.path(), &[], &PORT_ONLY);
    let (pg, store) = join(&data_dir).await;
    fill(&store, 2, 16).await;
    drop(store);
    pg.stop().await.unwrap();
    wait_for_head(&server.base, 16 + FIRST_HEAD).await;

    // Both killed: a stale pid file is left; the next start recovers, data intact.
    let postgres = postmaster_pid(&data_dir).expect("a running cluster");
    server.kill();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(postgres),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    while process_alive(postgres) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        data_dir.join("postgres/postmaster.pid").exists(),
        "the pid file is stale"
    );
    let server = Server::start(dir.path(), &[], &PORT_ONLY);
    let restarted = postmaster_pid(&data_dir).unwrap();
    assert_ne!(restarted, postgres);
    wait_for_head(&server.base, 16 + FIRST_HEAD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_and_stops_the_managed_postgresql_with_it() {
    let dir = work_dir();
    let data_dir = dir.path().join("bosun-data");
    let server = Server::start(dir.path(), &[], &PORT_ONLY);
    let postgres = postmaster_pid(&data_dir).expect("a running cluster");
    let log = server.log();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(!process_alive(postgres), "PostgreSQL was stopped");
    assert!(!data_dir.join("postgres/postmaster.pid").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_it_is_still_starting_ends_it_with_0_once_it_is_up() {
    let dir = work_dir();
    let data_dir = dir.path().join("bosun-data");
    let log_path = dir.path().join("starting.log");
    let mut child = Command::new(bosun_binary())
        .arg("serve")
        .current_dir(dir.path())
        .env("BOSUN_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The cluster's initdb takes most of a first start: the signal lands in the middle of it.
    while !log().contains("creating the managed PostgreSQL cluster") {
        assert!(
            Instant::now() < deadline,
            "never began initdb; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within 90 s of SIGTERM; log:\n{}", log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}; log:\n{}", log());
    assert!(log().contains("SIGTERM received"), "log:\n{}", log());
    assert!(
        !data_dir.join("postgres/postmaster.pid").exists(),
        "the managed PostgreSQL was stopped; log:\n{}",
        log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_projection_it_neither_loses_nor_doubles_an_event() {
    const EVENTS: u64 = 200_000;
    let dir = work_dir();
    let config = managed_config(dir.path(), "");
    let data_dir = dir.path().join("data");
    let (pg, store) = join(&data_dir).await;
    fill(&store, 400, EVENTS).await;
    let client = store.pool().get().await.unwrap();
    let checkpoint = || async {
        client
            .query_opt(
                "SELECT position FROM projection_checkpoints WHERE name = 'streams'",
                &[],
            )
            .await
            .unwrap()
            .map_or(0, |r| r.get::<_, i64>(0) as u64)
    };

    let server = Server::start(dir.path(), &["-c", &config], &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoint().await == 0 {
        assert!(Instant::now() < deadline, "the projection never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Hold the projector at its next page (its writes wait for this lock; the lock waits for
    // the page in flight), so the kill lands mid-projection however fast it runs or however
    // late this test gets the cores back.
    let blocker = store.pool().get().await.unwrap();
    blocker
        .batch_execute("BEGIN; LOCK TABLE stream_index IN SHARE MODE")
        .await
        .unwrap();
    server.kill();
    let at_kill = checkpoint().await;
    blocker.batch_execute("ROLLBACK").await.unwrap();
    drop(blocker);
    assert!(
        at_kill < EVENTS,
        "the server projected all {EVENTS} events before the test held it; the test needs more"
    );

    let server = Server::start(dir.path(), &["-c", &config], &[]);
    wait_for_head(&server.base, EVENTS + FIRST_HEAD).await;
    let row = client
        .query_one(
            "SELECT count(*), sum(event_count)::bigint, count(*) FILTER (WHERE event_count <> version + 1) FROM stream_index",
            &[],
        )
        .await
        .unwrap();
    let (streams, applied, wrong): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (streams, applied as u64, wrong),
        (400 + FIRST_STREAMS, EVENTS + FIRST_HEAD, 0),
        "killed at {at_kill}"
    );
    assert!(server.terminate().success());
    drop(client);
    drop(store);
    assert!(pg.stop().await.unwrap(), "the test was the last user");
}

// ---- What a server answers (in the test's process) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_writes_the_first_admin_and_nothing_else() {
    let app = spawn_app("").await;
    let events = app.api.all_events().await;
    let written: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            let stream = e["stream_id"].as_str().unwrap();
            (
                stream
                    .split_once('-')
                    .map_or(stream, |(category, _)| category),
                e["event_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(written, FIRST_ADMIN, "{events:#?}");
    let streams: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(streams.len() as i64, FIRST_STREAMS, "{streams:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_sent_is_answered_back() {
    let app = spawn_app("").await;
    let answer = app
        .api
        .anonymous()
        .call_with(
            Method::GET,
            "/healthz",
            &[("Request-Id", "trace-me-42")],
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.header("request-id"), "trace-me-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_an_id_is_given_one() {
    let app = spawn_app("").await;
    let response = app.api.anonymous().get("/readyz").await;
    assert_eq!(response.status, 200);
    assert!(
        !response.header("request-id").is_empty(),
        "a request id is made when none is sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_is_no_route_is_a_404_problem() {
    let app = spawn_app("").await;
    app.api
        .anonymous()
        .refused(Method::GET, "/v1/nothing-here", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_events_appended_here_the_head_and_projection_lag() {
    let app = spawn_app("").await;
    let anonymous = app.api.anonymous();
    anonymous.get("/healthz").await.expect(StatusCode::OK);
    anonymous
        .get("/v1/nothing-here")
        .await
        .expect(StatusCode::NOT_FOUND);
    // 8 more events, from outside this server.
    fill(&app.store().await, 1, 8).await;
    wait_for_head(&app.api.base, 8 + FIRST_HEAD).await;
    let metrics = anonymous.get("/metrics").await.expect(StatusCode::OK).body;
    let metrics = metrics.as_str().unwrap();
    for expected in [
        r#"bosun_http_requests_total{method="GET",route="/healthz",status="200"} 1"#.to_string(),
        r#"bosun_http_requests_total{method="GET",route="unmatched",status="404"} 1"#.to_string(),
        // The server appended only the first admin's events; the other 8 came from outside.
        format!("bosun_events_appended_total {FIRST_HEAD}\n"),
        format!("bosun_events_head_position {}\n", 8 + FIRST_HEAD),
        r#"bosun_projection_lag_events{projection="streams"} 0"#.to_string(),
    ] {
        assert!(
            metrics.contains(&expected),
            "missing {expected:?} in:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_min_position_up_to_the_head_is_served_and_one_past_it_refused_at_once() {
    // Read-your-writes across nodes: a GET may ask for a position the read models must reach.
    let app = spawn_app("").await;
    let anonymous = app.api.anonymous();
    let head = app.api.head().await;
    anonymous
        .call_with(
            Method::GET,
            "/readyz",
            &[("Bosun-Min-Position", &head.to_string())],
            None,
        )
        .await
        .expect(StatusCode::OK);
    // No write can have handed out a position past the log's end: refused at once, not waited
    // for (a committed position the read models have not reached is waited for, up to 5 s).
    let started = Instant::now();
    let ahead = anonymous
        .call_with(
            Method::GET,
            "/readyz",
            &[("Bosun-Min-Position", &(head + 1).to_string())],
            None,
        )
        .await;
    assert_eq!(
        ahead.status,
        StatusCode::BAD_REQUEST,
        "position {} does not exist yet",
        head + 1
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    assert_eq!(ahead.problem().code, "position_beyond_head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_min_position_that_is_no_number_is_a_400_problem() {
    let app = spawn_app("").await;
    let bad = app
        .api
        .anonymous()
        .call_with(
            Method::GET,
            "/readyz",
            &[("Bosun-Min-Position", "soon")],
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    bad.problem();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_logs_a_requests_line_carries_its_request_id() {
    // The process's own log on stderr, as configured.
    let dir = work_dir();
    let config = managed_config(dir.path(), "log:\n  format: json\n");
    let server = Server::start(dir.path(), &["-c", &config], &[]);
    Api::at(&server.base, "")
        .call_with(
            Method::GET,
            "/healthz",
            &[("Request-Id", "trace-me-42")],
            None,
        )
        .await
        .expect(StatusCode::OK);
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("trace-me-42"))
        .unwrap_or_else(|| panic!("no log line with the request id:\n{log}"));
    let line: serde_json::Value = serde_json::from_str(line).expect("JSON log lines");
    assert_eq!(line["span"]["request_id"], "trace-me-42", "{line}");
    assert!(server.terminate().success());
}

// ---- The command line ----

fn bosun(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(bosun_binary());
    command.args(args).current_dir(dir);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run bosun")
}

#[test]
fn refuses_bad_configuration_with_status_2_and_starts_nothing() {
    let dir = work_dir();
    /// Arguments, environment, and what the error message must name.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["serve", "-c", "unknown.yaml"], vec![], "listen_port"),
        (vec!["serve", "-c", "format.yaml"], vec![], "xml"),
        (
            vec!["serve"],
            vec![("BOSUN_LISTN", "127.0.0.1:0")],
            "BOSUN_LISTN",
        ),
        (
            vec!["serve"],
            vec![("BOSUN_LISTEN", "not-an-address")],
            "BOSUN_LISTEN",
        ),
        (vec!["serve", "-c", "missing.yaml"], vec![], "missing.yaml"),
        (
            vec!["replay", "--projection", "nope"],
            vec![("BOSUN_DATABASE__URL", "host=/nonexistent")],
            "unknown projection",
        ),
    ];
    std::fs::write(
        dir.path().join("unknown.yaml"),
        "listen: 127.0.0.1:0\nlisten_port: 9\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("format.yaml"), "log:\n  format: xml\n").unwrap();
    for (args, env, named) in cases {
        let out = bosun(dir.path(), &args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "{args:?}: the message names {named:?}: {stderr}"
        );
    }
    assert!(
        !dir.path().join("bosun-data").exists(),
        "nothing was started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_while_the_server_serves() {
    let dir = work_dir();
    let config = managed_config(dir.path(), "");
    let server = Server::start(dir.path(), &["-c", &config], &[]);
    let (pg, store) = join(&dir.path().join("data")).await;
    fill(&store, 50, 5_000).await;
    wait_for_head(&server.base, 5_000 + FIRST_HEAD).await;
    let client = store.pool().get().await.unwrap();
    let model = "SELECT coalesce(jsonb_agg(s ORDER BY stream_id), '[]') FROM stream_index s";
    let before: serde_json::Value = client.query_one(model, &[]).await.unwrap().get(0);

    let out = bosun(dir.path(), &["replay", "-c", &config], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "replay streams: rebuilt from {} events",
            5_000 + FIRST_HEAD
        )),
        "{stdout}"
    );
    let after: serde_json::Value = client.query_one(model, &[]).await.unwrap().get(0);
    assert_eq!(
        after, before,
        "the rebuilt model equals the live one row for row"
    );

    // The server kept serving, and its projector carries on in the swapped-in table.
    fill(&store, 50, 800).await;
    wait_for_head(&server.base, 5_800 + FIRST_HEAD).await;
    let total: i64 = client
        .query_one("SELECT sum(event_count)::bigint FROM stream_index", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 5_800 + FIRST_HEAD as i64);
    assert!(server.terminate().success());
    drop(client);
    drop(store);
    pg.stop().await.unwrap();
}

/// Runs `bosun` with `args` (a benchmark), which must succeed, and parses its JSON lines.
fn bench_lines(dir: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = bosun(dir, args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A benchmark that prints one line, `name` in events/s, with a baseline and their ratio.
fn assert_one_events_per_second_line(args: &[&str]) {
    let dir = work_dir();
    let lines = bench_lines(dir.path(), args);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["name"], args[1]);
    assert_eq!(line["unit"], "events/s");
    let (value, baseline, ratio) = (
        line["value"].as_f64().unwrap(),
        line["baseline"].as_f64().unwrap(),
        line["ratio"].as_f64().unwrap(),
    );
    assert!(value > 0.0 && baseline > 0.0, "{line}");
    assert!((ratio - value / baseline).abs() < 0.02, "{line}");
}

#[test]
fn bench_append_prints_one_json_line_with_a_baseline_and_a_ratio() {
    assert_one_events_per_second_line(&["bench", "append", "--clients", "4", "--events", "400"]);
}

#[test]
fn bench_replay_prints_one_json_line_with_a_baseline_and_a_ratio() {
    assert_one_events_per_second_line(&["bench", "replay", "--events", "500"]);
}

#[test]
fn bench_live_prints_latency_lines_against_the_logs_own_subscription_and_loses_nothing() {
    assert_live_lines("admin");
}

/// Each subscriber a user who is no admin: every event passes its filter (and none is lost).
#[test]
fn bench_live_with_members_delivers_every_line_to_every_member() {
    assert_live_lines("members");
}

fn assert_live_lines(readers: &str) {
    let dir = work_dir();
    let args = [
        "bench",
        "live",
        "--subscribers",
        "20",
        "--rate",
        "200",
        "--seconds",
        "2",
        "--readers",
        readers,
    ];
    let lines = bench_lines(dir.path(), &args);
    let names: Vec<&str> = lines.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(
        names,
        ["live_p50", "live_p99", "live_delivered", "live_memory_mb"],
        "{lines:?}"
    );
    for line in &lines {
        for field in [
            "value",
            "baseline",
            "ratio",
            "appended",
            "subscribers",
            "closed_clients",
        ] {
            assert!(line[field].is_number(), "{field} in {line}");
        }
        assert_eq!(line["appended"], 400, "{line}");
        assert_eq!(line["subscribers"], 20, "{line}");
        assert_eq!(line["readers"], readers, "{line}");
        assert_eq!(line["closed_clients"], 0, "{line}");
        let unit = match line["name"].as_str() {
            Some("live_delivered") => "events",
            Some("live_memory_mb") => "MB resident",
            _ => "ms",
        };
        assert_eq!(line["unit"], unit, "{line}");
        assert!(line["value"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["baseline"].as_f64().unwrap() > 0.0, "{line}");
    }
    let delivered = &lines[2];
    assert_eq!(delivered["baseline"], 8000.0, "{delivered}");
    assert_eq!(delivered["value"], 8000.0, "{delivered}");
    assert_eq!(delivered["ratio"], 1.0, "{delivered}");
}

#[test]
fn bench_load_prints_a_kept_load_per_stream_length_against_the_ten_event_one() {
    let dir = work_dir();
    let lines = bench_lines(dir.path(), &["bench", "load", "--events", "10,2500"]);
    let sizes: Vec<u64> = lines
        .iter()
        .map(|l| l["events"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [10, 2500], "{lines:?}");
    for line in &lines {
        assert_eq!(line["name"], "load", "{line}");
        assert!(line["value"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["first_load_ms"].as_f64().unwrap() > 0.0, "{line}");
        assert_eq!(line["baseline"], lines[0]["value"], "{line}");
    }
}

#[test]
fn bench_list_prints_each_page_kind_at_each_size_against_the_smallest() {
    let dir = work_dir();
    let lines = bench_lines(dir.path(), &["bench", "list", "--rows", "200,500"]);
    let kinds = [
        "list_jobs_first_page_p99_ms",
        "list_jobs_middle_page_p99_ms",
        "list_jobs_status_page_p99_ms",
        "list_audit_first_page_p99_ms",
        "list_audit_middle_page_p99_ms",
    ];
    let names: Vec<(&str, u64)> = lines
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["rows"].as_u64().unwrap()))
        .collect();
    let expected: Vec<(&str, u64)> = kinds.iter().flat_map(|k| [(*k, 200), (*k, 500)]).collect();
    assert_eq!(names, expected, "{lines:?}");
    for line in &lines {
        assert!(line["value"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["p50_ms"].as_f64().unwrap() > 0.0, "{line}");
        assert_eq!(line["baseline_rows"], 200, "{line}");
    }
}

#[test]
fn bench_jobs_prints_throughput_and_latency_lines_every_job_finished_against_direct_spawns() {
    let dir = work_dir();
    let args = ["bench", "jobs", "--jobs", "20", "--workers", "2"];
    let lines = bench_lines(dir.path(), &args);
    let names: Vec<&str> = lines.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "jobs_per_second",
            "submit_to_start_p50",
            "submit_to_start_p99",
            "submit_to_finish_p50",
            "submit_to_finish_p99"
        ],
        "{lines:?}"
    );
    assert_eq!(lines[0]["finished"], 20, "{}", lines[0]);
    for line in &lines {
        let (value, baseline, ratio) = (
            line["value"].as_f64().unwrap(),
            line["baseline"].as_f64().unwrap(),
            line["ratio"].as_f64().unwrap(),
        );
        assert!(value > 0.0 && baseline > 0.0, "{line}");
        assert!(
            (ratio - value / baseline).abs() < 0.02 * ratio.max(1.0),
            "{line}"
        );
    }
}

#[test]
fn bench_compat_prints_pulsar_jobs_per_second_against_v1_every_job_finished() {
    let dir = work_dir();
    let args = [
        "bench",
        "compat",
        "--jobs",
        "10",
        "--workers",
        "2",
        "--clients",
        "4",
        "--rounds",
        "2",
    ];
    let lines = bench_lines(dir.path(), &args);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["name"], "compat_jobs_per_second", "{line}");
    assert_eq!(line["unit"], "jobs/s", "{line}");
    assert_eq!(line["surface"], "pulsar", "{line}");
    assert_eq!(line["finished"], 20, "{line}");
    assert_eq!(line["native_finished"], 20, "{line}");
    for rounds in ["rounds_jobs_per_second", "native_rounds_jobs_per_second"] {
        assert_eq!(line[rounds].as_array().map(Vec::len), Some(2), "{line}");
    }
    let (value, baseline, ratio) = (
        line["value"].as_f64().unwrap(),
        line["baseline"].as_f64().unwrap(),
        line["ratio"].as_f64().unwrap(),
    );
    assert!(value > 0.0 && baseline > 0.0, "{line}");
    assert!((ratio - value / baseline).abs() < 0.02, "{line}");
}

#[test]
fn a_port_in_use_stops_the_start_before_postgresql_or_any_data() {
    let dir = work_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let address = taken.local_addr().expect("its address").to_string();
    let out = bosun(dir.path(), &["serve"], &[("BOSUN_LISTEN", &address)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    // A managed PostgreSQL started before the bind would have made its data folder.
    assert!(
        !dir.path().join("bosun-data").exists(),
        "nothing was started: {stderr}"
    );
}

#[test]
fn bench_http_prints_the_mixes_p99_and_throughput_against_healthz_every_request_answered() {
    let dir = work_dir();
    let args = [
        "bench",
        "http",
        "--rate",
        "100",
        "--seconds",
        "2",
        "--clients",
        "16",
        "--writes",
        "20",
    ];
    let lines = bench_lines(dir.path(), &args);
    let names: Vec<&str> = lines.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(
        names,
        ["http_mixed_p99_ms", "http_mixed_requests_per_second"],
        "{lines:?}"
    );
    for line in &lines {
        // Every request due was sent and answered 2xx, in both runs (200 each, none shed on an
        // idle loopback at this rate).
        for (answered, errors, shed) in [
            ("answered", "errors", "shed"),
            ("baseline_answered", "baseline_errors", "baseline_shed"),
        ] {
            assert_eq!(line[answered], 200, "{answered} in {line}");
            assert_eq!(line[errors], 0, "{errors} in {line}");
            assert_eq!(line[shed], 0, "{shed} in {line}");
        }
        assert_eq!(line["writes_percent"], 20, "{line}");
        let (value, baseline, ratio) = (
            line["value"].as_f64().unwrap(),
            line["baseline"].as_f64().unwrap(),
            line["ratio"].as_f64().unwrap(),
        );
        assert!(value > 0.0 && baseline > 0.0, "{line}");
        assert!(
            (ratio - value / baseline).abs() < 0.02 * ratio.max(1.0),
            "{line}"
        );
        let (p50, p99) = (
            line["p50_ms"].as_f64().unwrap(),
            line["p99_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99, "{line}");
    }
    // The throughput is the requests answered over the run: about the rate.
    let throughput = lines[1]["value"].as_f64().unwrap();
    assert!((50.0..=101.0).contains(&throughput), "{}", lines[1]);
}
