//! A node SIGKILLed in a three-node set: three `bosun serve` processes (servers and workers
//! alike) on one database. The first node starts alone and takes every leader role (scheduler,
//! notifier, service calls, runnable reaper), the units of app `shop` and two long jobs; then the
//! other two start, and it is killed with SIGKILL while jobs keep being submitted to them. Then:
//! its jobs' processes die with it and its jobs end (as errors, never run again), its units
//! start on the other nodes, its leader roles move to them, every other job runs exactly once
//! and ends well, and in the end the unit processes alive are exactly the units shown.
//!
//! The database is one of the test binary's PostgreSQL (not a node's managed one, which would
//! die with the node that runs it); the nodes share one data folder, so one data key.

use bosun_tests::{config_file, connection_string, process_alive, work_dir, Api, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The leader roles, as their lock connections name themselves (`bosun <role> <pid>`).
const ROLES: [&str; 4] = ["scheduler", "notifier", "service calls", "runnable reaper"];
const UNITS: usize = 3;
/// Jobs of `mark` submitted while the node is killed: each must run once.
const MARKS: usize = 24;

fn config(dir: &Path) -> String {
    let runs = dir.join("runs");
    let units = dir.join("units");
    format!(
        r#"
runner:
  workers: 2
  lease_seconds: 5
  kill_grace_seconds: 2
  unit_ports: "23100-23199"
catalog:
  shop:
    production:
      hold:
        command: ["sh", "-c", "echo \"$RUN $$\" >> {runs}; exec sleep 600"]
      mark:
        command: ["sh", "-c", "echo \"$RUN $$\" >> {runs}"]
      processes:
        web:
          command: ["sh", "-c", "echo \"$PORT $$\" >> {units}; exec sleep 600"]
          units: {UNITS}
"#,
        runs = runs.display(),
        units = units.display(),
    )
}

/// Which process holds each leader role now: from the lock connections' names in
/// `pg_stat_activity`, those holding an advisory lock.
async fn leaders(db: &tokio_postgres::Client) -> BTreeMap<String, u32> {
    let rows = db
        .query(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() \
             AND a.application_name LIKE 'bosun %'",
            &[],
        )
        .await
        .expect("read the locks");
    rows.iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let (role, pid) = name.strip_prefix("bosun ")?.rsplit_once(' ')?;
            Some((role.to_string(), pid.parse().ok()?))
        })
        .collect()
}

async fn until<T>(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = done().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn units(api: &Api) -> Vec<Value> {
    let answer = api.get("/v1/apps/shop").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["units"]
        .as_array()
        .unwrap_or_else(|| panic!("no units in {}", answer.body))
        .clone()
}

/// The pid at the end of a unit's `node` (`host:pid`).
fn node_pid(unit: &Value) -> u32 {
    unit["node"]
        .as_str()
        .and_then(|node| node.rsplit(':').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no node: {unit}"))
}

/// Each line of the file `name` written by the jobs or the units: `<what> <pid>`.
fn lines(dir: &Path, name: &str) -> Vec<(String, i32)> {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (what, pid) = line.rsplit_once(' ')?;
            Some((what.to_string(), pid.parse().ok()?))
        })
        .collect()
}

async fn submit(api: &Api, task: &str, run: &str) -> String {
    let answer = api
        .post(
            "/v1/jobs",
            json!({"app": "shop", "env": "production", "task": task, "variables": {"RUN": run}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    answer.body["id"].as_str().expect("an id").to_string()
}

async fn job(api: &Api, id: &str) -> Value {
    api.get(&format!("/v1/jobs/{id}"))
        .await
        .expect(StatusCode::OK)
        .body
}

/// Job `id` once it has ended (at most 60 s).
async fn ended(api: &Api, id: &str) -> Value {
    until("a job ends", Duration::from_secs(60), async || {
        let job = job(api, id).await;
        (job["status"] != "processing" && job["status"] != "waiting").then_some(job)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_in_three_hands_its_jobs_units_and_leader_roles_to_the_others() {
    let dir = work_dir();
    let database = bosun_eventstore::testing::fresh_database().await;
    let (db, connection) = database
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    let url = connection_string(&database);
    let config = config_file(dir.path(), &config(dir.path()));
    let config = config.to_str().expect("a UTF-8 path").to_string();
    let env = [
        ("BOSUN_LISTEN", "127.0.0.1:0"),
        ("BOSUN_DATABASE__URL", url.as_str()),
    ];
    let start = || Server::start(dir.path(), &["-c", &config], &env);

    // The first node alone: every leader role, the app's units, two long jobs.
    let first = start();
    let first_pid = first.pid();
    let api = Api::new(&first, dir.path());
    until(
        "the first node leads",
        Duration::from_secs(20),
        async || {
            let held = leaders(&db).await;
            ROLES
                .iter()
                .all(|role| held.get(*role) == Some(&first_pid))
                .then_some(())
        },
    )
    .await;
    api.post("/v1/platforms", json!({"name": "shell"}))
        .await
        .expect(StatusCode::CREATED);
    api.post("/v1/teams", json!({"name": "ops"}))
        .await
        .expect(StatusCode::CREATED);
    api.post(
        "/v1/apps",
        json!({"name": "shop", "platform": "shell", "team_owner": "ops"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let holds = [
        submit(&api, "hold", "hold-1").await,
        submit(&api, "hold", "hold-2").await,
    ];
    let on_first = until(
        "units and jobs on the first node",
        Duration::from_secs(60),
        async || {
            let units = units(&api).await;
            let started = units.len() == UNITS
                && units
                    .iter()
                    .all(|u| u["state"] == "started" && node_pid(u) == first_pid);
            let mut running = 0;
            for id in &holds {
                running += usize::from(job(&api, id).await["status"] == "processing");
            }
            (started && running == holds.len() && lines(dir.path(), "runs").len() == holds.len())
                .then_some(units)
        },
    )
    .await;

    // Two more nodes, then the first killed while jobs keep coming to them.
    let second = start();
    let third = start();
    let others = BTreeSet::from([second.pid(), third.pid()]);
    let via: Vec<Api> = [&second, &third]
        .iter()
        .map(|node| Api::new(node, dir.path()))
        .collect();
    let mut marks = Vec::new();
    for n in 0..MARKS / 2 {
        marks.push(submit(&via[n % 2], "mark", &format!("mark-{n}")).await);
    }
    let hold_pids: Vec<i32> = lines(dir.path(), "runs")
        .iter()
        .filter(|(run, _)| run.starts_with("hold-"))
        .map(|(_, pid)| *pid)
        .collect();
    let unit_pids: Vec<i32> = on_first
        .iter()
        .map(|u| u["pid"].as_i64().expect("a unit's pid") as i32)
        .collect();
    first.kill();
    for n in MARKS / 2..MARKS {
        marks.push(submit(&via[n % 2], "mark", &format!("mark-{n}")).await);
    }
    let api = &via[0];

    // Its processes die with it: the jobs' (their parent-death signal) and the units'.
    until(
        "the killed node's processes end",
        Duration::from_secs(10),
        async || {
            (!hold_pids
                .iter()
                .chain(&unit_pids)
                .any(|pid| process_alive(*pid)))
            .then_some(())
        },
    )
    .await;
    // Its leader roles move to the others.
    let moved = until(
        "the leader roles move",
        Duration::from_secs(20),
        async || {
            let held = leaders(&db).await;
            ROLES
                .iter()
                .all(|role| held.get(*role).is_some_and(|pid| others.contains(pid)))
                .then_some(held)
        },
    )
    .await;
    // Its jobs end, as errors, once their leases run out; its units start on the others.
    for id in &holds {
        let ended = ended(api, id).await;
        assert_eq!(ended["status"], "error", "{ended}");
    }
    let moved_units = until("the units move", Duration::from_secs(60), async || {
        let units = units(api).await;
        (units.len() == UNITS
            && units
                .iter()
                .all(|u| u["state"] == "started" && others.contains(&node_pid(u))))
        .then_some(units)
    })
    .await;
    // Every other job ran once and ended well.
    for id in &marks {
        let ended = ended(api, id).await;
        assert_eq!(ended["status"], "success", "{ended}");
        assert!(
            others.contains(&node_of(&ended)),
            "ran on the killed node: {ended}"
        );
    }
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for (run, _) in lines(dir.path(), "runs") {
        *runs.entry(run).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..MARKS)
        .map(|n| format!("mark-{n}"))
        .chain(["hold-1".to_string(), "hold-2".to_string()])
        .map(|run| (run, 1))
        .collect();
    assert_eq!(runs, expected, "each job's process ran once");
    // No unit runs twice: of every unit process ever started, those alive in the end are the
    // three the read model shows.
    let alive: BTreeSet<i32> = lines(dir.path(), "units")
        .into_iter()
        .map(|(_, pid)| pid)
        .filter(|pid| process_alive(*pid))
        .collect();
    let shown: BTreeSet<i32> = moved_units
        .iter()
        .map(|u| u["pid"].as_i64().expect("a unit's pid") as i32)
        .collect();
    assert_eq!(
        alive, shown,
        "the live unit processes are the units shown: {moved:?}"
    );
}

/// The pid at the end of a job's `worker` (`host:pid/n`).
fn node_of(job: &Value) -> u32 {
    job["worker"]
        .as_str()
        .and_then(|worker| worker.split(['/', ':']).nth(1))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no worker: {job}"))
}
