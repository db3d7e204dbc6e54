//! Units over HTTP: an app's catalog processes run by the workers as supervised units. Two
//! units start with the app's environment (the catalog's `env` over the app's) and ports of
//! their own; one killed by hand is restarted; an apps read model that loses the app stops
//! nothing; a rolling restart keeps N − 1 of N up, even with a second restart asked for while
//! the first rolls; removing the app stops them; an app removed and created again restarts the
//! units of its former life; what a unit's process leaves behind in its group dies with it; a
//! unit that cannot start shows `error`; the unit settings are checked. The server runs in the
//! test's process (`spawn_app`), except where the test is about processes: a worker killed with
//! SIGKILL while its units run, whose units another worker takes over after the lease; two
//! workers of one host, which never give one port to two units.

use bosun_eventstore::{EventStore, StreamId};
use bosun_tests::{
    bosun_binary, config_file, join, process_alive, spawn_app, work_dir, Api, Server,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A private value of the app: it must reach the units' processes and nothing else.
const SECRET: &str = "s3cr3t-unit-value-7f3a";

/// App `web` with `units` units of process `http` (a shell that sleeps: it does not listen,
/// so it counts as started after a short while up), ports from `ports`.
fn config(ports: &str, units: u32) -> String {
    config_with(ports, units, "")
}

/// [`config`] with more `runner:` settings (`runner` lines, each indented by two spaces).
fn config_with(ports: &str, units: u32, runner: &str) -> String {
    format!(
        r#"
runner:
  kill_grace_seconds: 2
  unit_ports: "{ports}"
{runner}
catalog:
  web:
    production:
      migrate:
        command: ["true"]
      processes:
        http:
          command: ["sh", "-c", "exec sleep 600"]
          units: {units}
          env:
            MODE: catalog
            GREETING: from-the-catalog
  forking:
    production:
      processes:
        http:
          command: ["sh", "-c", "sleep 600 & exec sleep 600"]
  broken:
    production:
      processes:
        http:
          command: ["/nonexistent/bosun-unit-program"]
"#
    )
}

/// Registers app `name`: a platform, a team of the admin's, the app.
async fn register(api: &Api, name: &str) {
    let platform = api.post("/v1/platforms", json!({"name": "shell"})).await;
    assert!(
        platform.status == StatusCode::CREATED || platform.status == StatusCode::CONFLICT,
        "{} {}",
        platform.status,
        platform.body
    );
    let team = api.post("/v1/teams", json!({"name": "ops"})).await;
    assert!(
        team.status == StatusCode::CREATED || team.status == StatusCode::CONFLICT,
        "{} {}",
        team.status,
        team.body
    );
    api.post(
        "/v1/apps",
        json!({"name": name, "platform": "shell", "team_owner": "ops"}),
    )
    .await
    .expect(StatusCode::CREATED);
}

/// Sets the app's public `GREETING` and private `API_KEY` (restarting its units).
async fn set_env(api: &Api, app: &str) {
    api.call(
        Method::PUT,
        &format!("/v1/apps/{app}/env"),
        Some(json!({"envs": [
            {"name": "GREETING", "value": "hello"},
            {"name": "API_KEY", "value": SECRET, "public": false}
        ]})),
    )
    .await
    .expect(StatusCode::OK);
}

async fn units(api: &Api, app: &str) -> Vec<Value> {
    let answer = api
        .get(&format!("/v1/apps/{app}"))
        .await
        .expect(StatusCode::OK);
    answer.body["units"]
        .as_array()
        .unwrap_or_else(|| panic!("no units in {}", answer.body))
        .clone()
}

/// Polls the app's units until `done` holds for them (at most `limit`).
async fn wait_units(
    api: &Api,
    app: &str,
    limit: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let now = units(api, app).await;
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the units never got there: {}",
            Value::Array(now)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `count` units, every one `started` at `generation` or later.
fn all_started(count: usize, generation: u64) -> impl Fn(&[Value]) -> bool {
    move |units| {
        units.len() == count
            && units.iter().all(|u| {
                u["state"] == "started" && u["generation"].as_u64().unwrap_or(0) >= generation
            })
    }
}

fn pid(unit: &Value) -> i32 {
    unit["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid: {unit}")) as i32
}

fn port(unit: &Value) -> u16 {
    let address = unit["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address: {unit}"));
    let port = address
        .strip_prefix("127.0.0.1:")
        .unwrap_or_else(|| panic!("not a local address: {address}"));
    port.parse().expect("a port")
}

/// The environment of process `pid`, as the kernel has it.
fn environ(pid: i32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("the process's environment");
    raw.split(|b| *b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            entry
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The processes of group `pgid` still running (zombies are dead), as `/proc` lists them.
fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 1..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let (state, pgrp) = (*fields.first()?, fields.get(2)?.parse::<i32>().ok()?);
            (pgrp == pgid && state != "Z" && state != "X").then_some(pid)
        })
        .collect()
}

/// Waits (a little) until group `pgid` has `count` processes running.
async fn wait_group(pgid: i32, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let members = group_members(pgid);
        if members.len() == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {pgid} has {members:?}, not {count} processes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The unit events of the log from `from` on, in order.
async fn unit_events(api: &Api, from: u64) -> Vec<Value> {
    api.get(&format!("/v1/events?category=unit&from={from}&limit=1000"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .expect("a list")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_units_start_with_the_apps_environment_and_one_killed_is_restarted() {
    let app = spawn_app(&config("21000-21099", 2)).await;
    let api = &app.api;
    register(api, "web").await;
    set_env(api, "web").await;
    // The environment was set with a restart: generation 1.
    let started = wait_units(api, "web", Duration::from_secs(30), all_started(2, 1)).await;
    let ids: Vec<&str> = started.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["web.production.http.0", "web.production.http.1"]);
    let ports: BTreeSet<u16> = started.iter().map(port).collect();
    assert_eq!(
        ports.len(),
        2,
        "each unit has a port of its own: {started:?}"
    );
    for unit in &started {
        assert_eq!(unit["process"], "http");
        assert_eq!(unit["env"], "production");
        assert_eq!(unit["restarts"], 0);
        assert!(!unit["node"].as_str().unwrap().is_empty());
        assert!((21000..=21099).contains(&port(unit)), "{unit}");
        let pid = pid(unit);
        // Its own process group.
        assert_eq!(
            nix::unistd::getpgid(Some(Pid::from_raw(pid)))
                .unwrap()
                .as_raw(),
            pid
        );
        let env = environ(pid);
        assert_eq!(env.get("PORT"), Some(&port(unit).to_string()), "{env:?}");
        assert_eq!(
            env.get("GREETING").map(String::as_str),
            Some("from-the-catalog"),
            "the operator's catalog env wins over the app's"
        );
        assert_eq!(env.get("API_KEY").map(String::as_str), Some(SECRET));
        assert_eq!(env.get("MODE").map(String::as_str), Some("catalog"));
        // Nothing of the server's own environment beyond the few inherited names.
        assert!(!env.contains_key("CARGO_MANIFEST_DIR"), "{env:?}");
    }
    // The private value is in no answer and no unit event.
    let shown = api.get("/v1/apps/web").await.body.to_string();
    assert!(!shown.contains(SECRET));
    assert!(!Value::Array(unit_events(api, 1).await)
        .to_string()
        .contains(SECRET));

    // Killed by hand: restarted, counted, with a new process; the other one untouched.
    let head = api.head().await;
    let (first, second) = (&started[0], &started[1]);
    kill(Pid::from_raw(pid(first)), Signal::SIGKILL).unwrap();
    let after = wait_units(api, "web", Duration::from_secs(30), |units| {
        units.len() == 2
            && units[0]["restarts"] == 1
            && units[0]["state"] == "started"
            && units[0]["pid"] != first["pid"]
    })
    .await;
    assert!(!process_alive(pid(first)));
    assert!(process_alive(pid(&after[0])));
    assert_eq!(after[1]["pid"], second["pid"], "{after:?}");
    assert_eq!(after[1]["restarts"], 0);
    assert_eq!(
        environ(pid(&after[0])).get("API_KEY").map(String::as_str),
        Some(SECRET)
    );
    let exited: Vec<Value> = unit_events(api, head + 1)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "UnitExited")
        .collect();
    assert_eq!(exited.len(), 1, "{exited:?}");
    assert_eq!(exited[0]["stream_id"], "unit-web.production.http.0");
    assert_eq!(exited[0]["data"]["signal"], 9);
    assert_eq!(exited[0]["data"]["restarts"], 1);

    // The apps read model loses the app (a rebuild, a lag): its stream still has it, so its
    // units keep running.
    let store = app.store().await;
    let head = api.head().await;
    store
        .pool()
        .get()
        .await
        .unwrap()
        .execute("UPDATE apps SET removed = true WHERE name = 'web'", &[])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for unit in &after {
        assert!(process_alive(pid(unit)), "{unit}");
    }
    let stopped: Vec<Value> = unit_events(api, head + 1)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "UnitStopped")
        .collect();
    assert!(stopped.is_empty(), "{stopped:?}");

    // The server stopping stops its units too: recorded so, leases given up.
    app.stop().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    for unit in &after {
        let stream = StreamId::parse(format!("unit-{}", unit["id"].as_str().unwrap())).unwrap();
        loop {
            let events = store.read_stream(&stream, 0, 1000).await.unwrap();
            let last = events.last().unwrap();
            if last.event_type == "UnitStopped" {
                assert_eq!(last.data["reason"], "node_stopped", "{:?}", last.data);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{stream} was not stopped: {}",
                last.event_type
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!process_alive(pid(unit)), "{unit}");
    }
    let client = store.pool().get().await.unwrap();
    loop {
        let leases: i64 = client
            .query_one("SELECT count(*) FROM unit_leases", &[])
            .await
            .unwrap()
            .get(0);
        if leases == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{leases} unit leases left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_keeps_all_units_but_one_up_and_removing_the_app_stops_them() {
    const N: usize = 3;
    let app = spawn_app(&config("21100-21199", N as u32)).await;
    let api = &app.api;
    register(api, "web").await;
    let before = wait_units(api, "web", Duration::from_secs(30), all_started(N, 0)).await;
    let generation = before[0]["generation"].as_u64().unwrap();
    let head = api.head().await;

    api.post("/v1/apps/web/restart", json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
    // Watched while it restarts: never more than one unit down. A second restart is asked for
    // while the first rolls, once unit 0 is done with it and unit 1 is down for it: unit 0's
    // turn for the second must wait until unit 1 is up again (or the first is over, if that
    // moment was missed).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut second = false;
    let restarted = loop {
        let now = units(api, "web").await;
        let up = now.iter().filter(|u| u["state"] == "started").count();
        assert!(
            up >= N - 1,
            "more than one unit down: {}",
            Value::Array(now)
        );
        let first_done = now.len() == N
            && now[0]["state"] == "started"
            && now[0]["generation"] == generation + 1;
        let mid_roll = first_done && now[1]["state"] != "started";
        if !second && (mid_roll || all_started(N, generation + 1)(&now)) {
            api.post("/v1/apps/web/restart", json!({}))
                .await
                .expect(StatusCode::ACCEPTED);
            second = true;
        }
        if second && all_started(N, generation + 2)(&now) {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the restart never ended: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (old, new) in before.iter().zip(&restarted) {
        assert_ne!(old["pid"], new["pid"], "{new}");
        assert!(!process_alive(pid(old)));
        assert_eq!(
            new["restarts"], 0,
            "a restart asked for is no failure: {new}"
        );
    }
    // The log says the same, event by event: at most one unit not up at any point, and the
    // units restarted one at a time in index order.
    let events = unit_events(api, head + 1).await;
    let mut up: BTreeSet<String> = before
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    let mut stopped_in_turn = Vec::new();
    for event in &events {
        let unit = event["stream_id"]
            .as_str()
            .unwrap()
            .trim_start_matches("unit-")
            .to_string();
        match event["event_type"].as_str().unwrap() {
            "UnitReady" => {
                up.insert(unit);
            }
            "UnitStopped" => {
                assert_eq!(event["data"]["reason"], "restart", "{event}");
                stopped_in_turn.push(unit.clone());
                up.remove(&unit);
            }
            _ => {
                up.remove(&unit);
            }
        }
        assert!(up.len() >= N - 1, "more than one unit down after {event}");
    }
    // Each unit restarted (once, or twice when the second restart found it done with the
    // first), the first restart of each in index order.
    let order: Vec<String> = (0..N).map(|i| format!("web.production.http.{i}")).collect();
    let mut firsts = stopped_in_turn.clone();
    let mut seen = BTreeSet::new();
    firsts.retain(|unit| seen.insert(unit.clone()));
    assert_eq!(firsts, order, "{stopped_in_turn:?}");
    assert!(stopped_in_turn.len() <= 2 * N, "{stopped_in_turn:?}");

    // Removed: every unit stops (the log says so: the app and its units are no longer shown),
    // its process with it.
    api.call(Method::DELETE, "/v1/apps/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(30);
    let removed = loop {
        let removed: Vec<Value> = unit_events(api, head + 1)
            .await
            .into_iter()
            .filter(|e| e["event_type"] == "UnitStopped" && e["data"]["reason"] == "app_removed")
            .collect();
        if removed.len() == N {
            break removed;
        }
        assert!(
            Instant::now() < deadline,
            "the units were not all stopped: {removed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        removed.iter().all(|e| e["metadata"]["actor"] == "runner"),
        "{removed:?}"
    );
    for ran in &restarted {
        assert!(!process_alive(pid(ran)), "{ran}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_unit_leaves_behind_in_its_group_dies_with_it() {
    let app = spawn_app(&config("21500-21599", 1)).await;
    let api = &app.api;
    register(api, "forking").await;
    let before = wait_units(api, "forking", Duration::from_secs(30), all_started(1, 0)).await;
    // `sh -c 'sleep 600 & exec sleep 600'`: the unit's process, and its child in its group.
    let pgid = pid(&before[0]);
    wait_group(pgid, 2).await;

    // Its main process killed by hand: the child it left goes too, and it is restarted.
    kill(Pid::from_raw(pgid), Signal::SIGKILL).unwrap();
    let after = wait_units(api, "forking", Duration::from_secs(30), |units| {
        units.len() == 1
            && units[0]["state"] == "started"
            && units[0]["restarts"] == 1
            && units[0]["pid"] != before[0]["pid"]
    })
    .await;
    assert_eq!(group_members(pgid), Vec::<i32>::new(), "left behind");
    let pgid = pid(&after[0]);
    wait_group(pgid, 2).await;

    // Removed: the whole group stops.
    let head = api.head().await;
    api.call(Method::DELETE, "/v1/apps/forking", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stopped = unit_events(api, head + 1)
            .await
            .into_iter()
            .any(|e| e["event_type"] == "UnitStopped" && e["data"]["reason"] == "app_removed");
        if stopped {
            break;
        }
        assert!(Instant::now() < deadline, "the unit was not stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_group(pgid, 0).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_removed_and_created_again_restarts_the_units_of_its_former_life() {
    let app = spawn_app(&config("21600-21699", 2)).await;
    let api = &app.api;
    register(api, "web").await;
    // Generation 1 (the environment set with a restart).
    set_env(api, "web").await;
    let before = wait_units(api, "web", Duration::from_secs(30), all_started(2, 1)).await;
    // Removed and created again at once: generation 0 again, with no environment.
    api.call(Method::DELETE, "/v1/apps/web", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    api.post(
        "/v1/apps",
        json!({"name": "web", "platform": "shell", "team_owner": "ops"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let after = wait_units(api, "web", Duration::from_secs(60), |units| {
        units.len() == 2
            && units.iter().zip(&before).all(|(now, then)| {
                now["state"] == "started" && now["generation"] == 0 && now["pid"] != then["pid"]
            })
    })
    .await;
    for (old, new) in before.iter().zip(&after) {
        assert!(!process_alive(pid(old)), "{old}");
        let env = environ(pid(new));
        assert_eq!(
            env.get("API_KEY"),
            None,
            "the former app's environment: {env:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_whose_program_cannot_start_shows_error_and_is_tried_again() {
    let app = spawn_app(&config("21200-21299", 1)).await;
    let api = &app.api;
    register(api, "broken").await;
    let failing = wait_units(api, "broken", Duration::from_secs(30), |units| {
        units.len() == 1 && units[0]["state"] == "error" && units[0]["restarts"].as_u64() >= Some(2)
    })
    .await;
    assert!(failing[0]["pid"].is_null(), "{failing:?}");
    let failed: Vec<Value> = unit_events(api, 1)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "UnitStartFailed")
        .collect();
    let diagnostics = failed[0]["data"]["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("/nonexistent/bosun-unit-program"),
        "{diagnostics}"
    );
    app.stop().await;
}

#[test]
fn unit_settings_and_processes_are_checked_naming_the_key() {
    let dir = work_dir();
    let refused = |yaml: &str| {
        let file = config_file(dir.path(), yaml);
        bosun_api::config::Settings::from_sources(Some(&file), std::iter::empty())
            .err()
            .unwrap_or_else(|| panic!("accepted: {yaml}"))
            .to_string()
    };
    let e = refused("runner:\n  unit_ports: \"30000-20000\"\n");
    assert!(e.contains("runner.unit_ports"), "{e}");
    let e = refused("runner:\n  unit_ports: \"80-90\"\n");
    assert!(e.contains("runner.unit_ports"), "{e}");
    let e = refused(
        "catalog:\n  web:\n    prod:\n      processes:\n        http:\n          command: [x]\n          units: 0\n",
    );
    assert!(e.contains("catalog.web.prod.processes.http.units"), "{e}");
    let e = refused(
        "catalog:\n  web:\n    prod:\n      processes:\n        http:\n          command: [x]\n          replicas: 2\n",
    );
    assert!(
        e.contains("catalog.web.prod.processes.http") && e.contains("replicas"),
        "{e}"
    );
    // The override of one key is checked on its own too.
    let file = config_file(dir.path(), "{}");
    let e = bosun_api::config::Settings::from_sources(
        Some(&file),
        [("BOSUN_RUNNER__UNIT_PORTS".to_string(), "nope".to_string())],
    )
    .expect_err("refused")
    .to_string();
    assert!(e.contains("BOSUN_RUNNER__UNIT_PORTS"), "{e}");
    let ok = config_file(dir.path(), "runner:\n  unit_ports: \"20000-20009\"\n");
    let settings =
        bosun_api::config::Settings::from_sources(Some(&ok), std::iter::empty()).unwrap();
    assert_eq!(settings.runner.unit_ports.to_string(), "20000-20009");
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

fn worker(dir: &std::path::Path, config: &str, name: &str) -> std::process::Child {
    worker_with(dir, config, name, &[])
}

fn worker_with(
    dir: &std::path::Path,
    config: &str,
    name: &str,
    env: &[(&str, &str)],
) -> std::process::Child {
    std::process::Command::new(bosun_binary())
        .args(["worker", "-c", config])
        .env("BOSUN_RUNNER__WORKERS", "1")
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .spawn()
        .expect("start a worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_takes_its_units_along_and_another_runs_them_after_the_lease()
{
    let dir = work_dir();
    // The API server runs no jobs and no units; the worker processes do.
    let config = config_file(
        dir.path(),
        &config_with("21300-21399", 2, "  workers: 0\n  lease_seconds: 2"),
    );
    let config = config.to_str().unwrap().to_string();
    let server = Server::start(
        dir.path(),
        &["-c", &config],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let api = Api::new(&server, dir.path());
    let first = worker(dir.path(), &config, "worker-1");
    let first_pid = first.id();
    let mut workers = KillOnDrop(vec![first]);
    register(&api, "web").await;
    let on_first = wait_units(&api, "web", Duration::from_secs(60), all_started(2, 0)).await;
    for unit in &on_first {
        assert!(
            unit["node"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{first_pid}")),
            "{unit}"
        );
    }
    workers.0.push(worker(dir.path(), &config, "worker-2"));
    let second_pid = workers.0[1].id();

    // SIGKILL: no cleanup runs, yet its units die with it (their parent-death signal).
    let mut killed = workers.0.remove(0);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while on_first.iter().any(|u| process_alive(pid(u))) {
        assert!(
            Instant::now() < deadline,
            "a unit outlived its killed worker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // After the lease, the other worker takes them over.
    let moved = wait_units(&api, "web", Duration::from_secs(60), |units| {
        all_started(2, 0)(units)
            && units.iter().all(|u| {
                u["node"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(&format!(":{second_pid}")))
            })
    })
    .await;
    for unit in &moved {
        assert!(process_alive(pid(unit)), "{unit}");
    }
    // Each unit's last run on the first worker was recorded stopped there exactly once before
    // the second started it: `node_lost` (the second, taking it over) or `lease_lost` (the
    // first, had it seen its lease go before it was killed), whichever came first; and nothing
    // more was said of the first worker's run after that.
    let events = unit_events(&api, 1).await;
    for unit in &moved {
        let stream = format!("unit-{}", unit["id"].as_str().unwrap());
        let first = on_first
            .iter()
            .find(|u| u["id"] == unit["id"])
            .map(|u| u["node"].clone())
            .unwrap();
        let events: Vec<&Value> = events.iter().filter(|e| e["stream_id"] == stream).collect();
        let taken = events
            .iter()
            .position(|e| e["event_type"] == "UnitStarted" && e["data"]["node"] == unit["node"])
            .unwrap_or_else(|| panic!("{stream} never started on the second worker: {events:?}"));
        let last_run = events[..taken]
            .iter()
            .rposition(|e| e["event_type"] == "UnitStarted" && e["data"]["node"] == first)
            .unwrap_or_else(|| panic!("{stream} never ran on the first worker: {events:?}"));
        let stops: Vec<&&Value> = events[last_run..taken]
            .iter()
            .filter(|e| e["event_type"] == "UnitStopped")
            .collect();
        assert_eq!(stops.len(), 1, "{stream}: {events:?}");
        assert_eq!(stops[0]["data"]["node"], first, "{stream}: {events:?}");
        let reason = stops[0]["data"]["reason"].as_str().unwrap();
        assert!(
            ["node_lost", "lease_lost"].contains(&reason),
            "{stream}: {reason}"
        );
        assert!(
            events[taken..].iter().all(|e| e["data"]["node"] != first),
            "{stream}: {events:?}"
        );
    }

    // `bosun replay` rebuilds the units read model equal to the live one, row for row.
    let (pg, store) = join(&dir.path().join("bosun-data")).await;
    let client = store.pool().get().await.unwrap();
    let model = "SELECT coalesce(jsonb_agg(u ORDER BY id), '[]') FROM units u";
    let live: Value = client.query_one(model, &[]).await.unwrap().get(0);
    let replay = std::process::Command::new(bosun_binary())
        .args(["replay", "--projection", "units", "-c", &config])
        .current_dir(dir.path())
        .output()
        .expect("run bosun replay");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let rebuilt: Value = client.query_one(model, &[]).await.unwrap().get(0);
    assert_eq!(rebuilt, live);
    assert_eq!(rebuilt.as_array().map(Vec::len), Some(2), "{rebuilt}");
    drop(client);
    drop(store);
    drop(workers);
    assert!(server.terminate().success());
    pg.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_of_one_host_never_give_one_port_to_two_units() {
    let dir = work_dir();
    // One unit per worker; the same two ports for both, and a process that does not bind its
    // port (so only the leases can tell the ports apart).
    let config = config_file(
        dir.path(),
        &config_with("21700-21701", 2, "  workers: 0\n  lease_seconds: 3"),
    );
    let config = config.to_str().unwrap().to_string();
    let server = Server::start(
        dir.path(),
        &["-c", &config],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let api = Api::new(&server, dir.path());
    let one = [("BOSUN_RUNNER__UNITS", "1")];
    let workers = KillOnDrop(vec![
        worker_with(dir.path(), &config, "worker-1", &one),
        worker_with(dir.path(), &config, "worker-2", &one),
    ]);
    register(&api, "web").await;
    let running = wait_units(&api, "web", Duration::from_secs(60), all_started(2, 0)).await;
    let nodes: BTreeSet<&str> = running
        .iter()
        .map(|u| u["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 2, "one unit on each worker: {running:?}");
    let ports: BTreeSet<u16> = running.iter().map(port).collect();
    assert_eq!(ports, [21700, 21701].into(), "{running:?}");
    for unit in &running {
        assert_eq!(
            environ(pid(unit)).get("PORT"),
            Some(&port(unit).to_string())
        );
    }
    // The leases hold them.
    let (pg, store) = join(&dir.path().join("bosun-data")).await;
    let client = store.pool().get().await.unwrap();
    let held: BTreeSet<i32> = client
        .query("SELECT port FROM unit_leases WHERE port IS NOT NULL", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(held, [21700, 21701].into());
    drop(client);
    drop(store);
    drop(workers);
    assert!(server.terminate().success());
    pg.stop().await.unwrap();
}
