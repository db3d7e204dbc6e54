//! PostgreSQL killed, every process of it at once, while appends from many clients are in
//! flight: after it comes back, every acknowledged append is in the log where its answer said, no
//! event is visible that was not acknowledged or still in flight, and each client's in-flight
//! append, retried with the same event id, is written exactly once. Its own cluster with
//! `fsync=on`: the crash is real only if the commit's flush is.

use bosun_eventstore::managed::{ManagedPostgres, Options};
use bosun_eventstore::{
    AppendResult, EventStore, ExpectedVersion, Filter, NewEvent, PgEventStore, StreamId,
};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const CLIENTS: usize = 16;

/// What the clients saw: each acknowledged event with its answer, and the events whose append
/// failed (the outcome unknown to the client) before a retry got an answer.
#[derive(Default)]
struct Seen {
    acknowledged: HashMap<Uuid, AppendResult>,
    failed: HashSet<Uuid>,
}

/// Kills the server's process group when the test ends, passed or not: its postmaster leads a
/// group of its own and would outlive the test.
struct KillOnDrop(std::path::PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = postmaster(&self.0) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn postmaster(cluster: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(cluster.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Appends to its own stream until `stop`, exact expected versions; a failed append is retried,
/// once `retry` is set, with the same event id and expectation until it is answered.
async fn client(
    store: PgEventStore,
    index: usize,
    [stop, retry]: [Arc<AtomicBool>; 2],
    seen: Arc<Mutex<Seen>>,
    recovered: Arc<AtomicUsize>,
) {
    let mut failed_once = false;
    let stream = StreamId::new("crash", index).expect("a stream id");
    let mut expected = ExpectedVersion::NoStream;
    while !stop.load(Ordering::Relaxed) {
        let event = NewEvent::new("Appended", serde_json::json!({ "client": index }));
        let id = event.event_id;
        let result = loop {
            match store.append(&stream, expected, vec![event.clone()]).await {
                Ok(result) => break result,
                Err(e) => {
                    failed_once = true;
                    seen.lock().unwrap().failed.insert(id);
                    assert!(
                        !stop.load(Ordering::Relaxed),
                        "client {index}: append still failing at the end: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    while !retry.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        };
        expected = ExpectedVersion::Exact(result.last_version);
        seen.lock().unwrap().acknowledged.insert(id, result);
        if std::mem::take(&mut failed_once) {
            recovered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_killed_mid_batch_loses_no_acknowledged_append_and_shows_no_other() {
    let dir = tempfile::Builder::new()
        .prefix("bosun-crash-")
        .tempdir()
        .expect("a temporary folder");
    // The unprivileged postgres user must be able to reach the cluster inside.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("open the folder to the postgres user");
    let mut pg = ManagedPostgres::start(dir.path(), Options { fsync: true })
        .await
        .unwrap_or_else(|e| panic!("tests need a PostgreSQL server and could not start one: {e}"));
    let _kill = KillOnDrop(pg.cluster_dir().to_path_buf());
    let store = PgEventStore::open(&pg.config("bosun"))
        .await
        .expect("open the store");

    let stop = Arc::new(AtomicBool::new(false));
    let retry = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recovered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let flags = [stop.clone(), retry.clone()];
            let (seen, recovered) = (seen.clone(), recovered.clone());
            tokio::spawn(client(store.clone(), i, flags, seen, recovered))
        })
        .collect();
    // Wait until appends flow, then kill every process of the server at once.
    let started = Instant::now();
    while store.appended() < 2_000 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {} appends in 30 s before the kill",
            store.appended()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The postmaster leads its own process group, its backends in it: one signal kills all.
    let pid = postmaster(pg.cluster_dir()).expect("a pid in postmaster.pid");
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the server's process group");
    let appended_at_kill = store.appended();
    // Every client's append in flight fails; then each waits for `retry`.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let revived = tokio::task::spawn_blocking(move || {
        let revived = pg.revive_blocking();
        (pg, revived)
    })
    .await
    .expect("the revive thread");
    let (pg, revived) = revived;
    assert!(
        matches!(revived, Ok(true)),
        "the server did not start again: {revived:?}"
    );

    // Right after the crash, before any client retries: what the log shows.
    let reader = PgEventStore::open(&pg.config("bosun"))
        .await
        .expect("open the store after the crash");
    let after_crash = reader
        .read_page(1, 1_000_000, &Filter::default())
        .await
        .expect("read the log after the crash");
    let (acknowledged_before, failed_before) = {
        let seen = seen.lock().unwrap();
        (seen.acknowledged.clone(), seen.failed.clone())
    };
    assert!(
        !failed_before.is_empty(),
        "no append failed with the server killed under {CLIENTS} clients: the kill missed"
    );
    let visible: HashSet<Uuid> = after_crash.events.iter().map(|e| e.event_id).collect();
    for (id, answer) in &acknowledged_before {
        assert!(
            visible.contains(id),
            "the event acknowledged at {} is gone after the crash",
            answer.first_position
        );
    }
    for event in &after_crash.events {
        assert!(
            acknowledged_before.contains_key(&event.event_id)
                || failed_before.contains(&event.event_id),
            "event at {} visible after the crash, neither acknowledged nor in flight",
            event.position
        );
    }

    // Let the clients retry until each has been answered again, append a while longer, stop.
    retry.store(true, Ordering::Relaxed);
    let retrying = Instant::now();
    while recovered.load(Ordering::Relaxed) < CLIENTS {
        assert!(
            retrying.elapsed() < Duration::from_secs(60),
            "{} of {CLIENTS} clients answered again within 60 s of the restart",
            recovered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client task");
    }
    let acknowledged = std::mem::take(&mut seen.lock().unwrap().acknowledged);
    assert!(
        store.appended() > appended_at_kill,
        "no append written after the server came back"
    );
    let log = reader
        .read_page(1, 1_000_000, &Filter::default())
        .await
        .expect("read the whole log");
    let head = reader.head().await.expect("the head");
    assert_eq!(
        log.events.len() as u64,
        head,
        "the log is dense up to its head"
    );
    let mut versions: HashMap<String, u64> = HashMap::new();
    for (index, event) in log.events.iter().enumerate() {
        assert_eq!(event.position, index as u64 + 1, "positions are dense");
        let next = versions.entry(event.stream_id.to_string()).or_default();
        assert_eq!(
            event.version, *next,
            "{}: versions are dense",
            event.stream_id
        );
        *next += 1;
        let answer = acknowledged.get(&event.event_id).unwrap_or_else(|| {
            panic!(
                "event at {} in the log but never acknowledged, even on retry",
                event.position
            )
        });
        assert_eq!(
            (answer.first_position, answer.first_version),
            (event.position, event.version),
            "the answer said where the event is"
        );
    }
    assert_eq!(
        log.events.len(),
        acknowledged.len(),
        "every acknowledged event is in the log once"
    );
    let landed_unanswered = after_crash
        .events
        .iter()
        .filter(|e| failed_before.contains(&e.event_id))
        .count();
    eprintln!(
        "{} events acknowledged; {} in flight at the kill, of which {landed_unanswered} had committed; head {head}",
        acknowledged.len(),
        failed_before.len(),
    );
    drop((store, reader));
    let _ = pg.stop().await;
}
