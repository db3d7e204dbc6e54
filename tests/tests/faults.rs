//! Faults under load, with real processes: `bosun serve` on its managed PostgreSQL, the
//! PostgreSQL SIGKILLed while 16 clients write (and read what they wrote) and a subscriber
//! follows the live feed. Bosun
//! starts it again: `/readyz` is 503, then 200 within 10 s; every answer meanwhile is a success
//! or a 503 with `Retry-After` (never a 500, never a hang); every write answered 2xx is in the
//! log exactly once; the subscriber, resuming from its last position, misses nothing.

use bosun_tests::{postmaster_pid, process_alive, work_dir, Api, Server};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const PORT_ONLY: [(&str, &str); 1] = [("BOSUN_LISTEN", "127.0.0.1:0")];
const WRITERS: usize = 16;
/// The longest a request may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(20);

/// What one writer was answered.
#[derive(Default)]
struct Answers {
    created: Vec<String>,
    unavailable: usize,
    reads: usize,
    /// Anything else: status and body.
    wrong: Vec<String>,
}

async fn write_until(base: String, token: String, writer: usize, stop: Arc<AtomicBool>) -> Answers {
    let http = reqwest::Client::builder()
        .timeout(HANG)
        .build()
        .expect("an HTTP client");
    let mut answers = Answers::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("w{writer}_{n}");
        let read = n % 2 == 0 && !answers.created.is_empty();
        let sent = if read {
            // Every other request a read of a team made before, through the read models.
            let made = &answers.created[answers.created.len() - 1];
            http.get(format!("{base}/v1/teams/{made}"))
                .bearer_auth(&token)
                .send()
                .await
        } else {
            http.post(format!("{base}/v1/teams"))
                .bearer_auth(&token)
                .json(&json!({"name": name}))
                .send()
                .await
        };
        match sent {
            Ok(response) if read && response.status() == StatusCode::OK => answers.reads += 1,
            Ok(response) if response.status() == StatusCode::CREATED => answers.created.push(name),
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                if response.headers().get("retry-after").is_none() {
                    answers
                        .wrong
                        .push(format!("{name}: a 503 without Retry-After"));
                }
                answers.unavailable += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                answers.wrong.push(format!("{name}: {status} {body}"));
            }
            Err(e) => answers.wrong.push(format!("{name}: {e}")),
        }
    }
    answers
}

/// Follows the live feed from position 1, opening it again after the last position it got
/// whenever it ends, until `stop` and it has reached the head `until` holds.
async fn follow(
    base: String,
    token: String,
    stop: Arc<AtomicBool>,
    until: Arc<Mutex<Option<u64>>>,
) -> Vec<u64> {
    let mut positions: Vec<u64> = Vec::new();
    let deadline = || until.lock().map(|u| *u).unwrap_or(None);
    loop {
        let from = positions.last().map_or(1, |p| p + 1);
        if let Some(head) = deadline() {
            if from > head {
                return positions;
            }
        }
        let url = format!(
            "{}/v1/events/live?from={from}",
            base.replacen("http://", "ws://", 1)
        );
        let mut request = url.into_client_request().expect("a WebSocket request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("a header"),
        );
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            let next = tokio::time::timeout(Duration::from_secs(1), socket.next()).await;
            match next {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let envelope: Value = serde_json::from_str(&text).expect("an envelope");
                    positions.push(envelope["position"].as_u64().expect("a position"));
                }
                Ok(Some(Ok(_))) => {}
                // Closed or broken: open it again from the last position.
                Ok(_) => break,
                Err(_) => {
                    let done = stop.load(Ordering::Relaxed)
                        && deadline().is_some_and(|head| positions.last() >= Some(&head));
                    if done {
                        return positions;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn readyz(http: &reqwest::Client, base: &str) -> Option<StatusCode> {
    http.get(format!("{base}/readyz"))
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_killed_under_writes_comes_back_and_keeps_every_answered_write_once() {
    let dir = work_dir();
    let data_dir = dir.path().join("bosun-data");
    let server = Server::start(dir.path(), &[], &PORT_ONLY);
    let admin = Api::new(&server, dir.path());
    let token = std::fs::read_to_string(data_dir.join("admin-token"))
        .expect("the admin token")
        .trim()
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let until = Arc::new(Mutex::new(None));
    let follower = tokio::spawn(follow(
        server.base.clone(),
        token.clone(),
        stop.clone(),
        until.clone(),
    ));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(write_until(
                server.base.clone(),
                token.clone(),
                w,
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let postgres = postmaster_pid(&data_dir).expect("a running cluster");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(postgres),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the postmaster");
    let killed = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let mut saw_unready = false;
    let back = loop {
        match readyz(&http, &server.base).await {
            Some(StatusCode::OK) if saw_unready => break killed.elapsed(),
            Some(StatusCode::OK) => {}
            Some(StatusCode::SERVICE_UNAVAILABLE) => saw_unready = true,
            other => panic!("/readyz answered {other:?}"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "/readyz not back to 200 {:?} after the kill (503 seen: {saw_unready})",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(back < Duration::from_secs(10), "ready again after {back:?}");
    assert!(process_alive(
        postmaster_pid(&data_dir).expect("a cluster running again")
    ));
    // Writes go on against the new server for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut created = Vec::new();
    let (mut unavailable, mut reads) = (0, 0);
    for writer in writers {
        let answers = writer.await.expect("a writer");
        assert!(
            answers.wrong.is_empty(),
            "wrong answers: {:?}",
            answers.wrong
        );
        created.extend(answers.created);
        unavailable += answers.unavailable;
        reads += answers.reads;
    }
    eprintln!(
        "{} writes answered 201, {reads} reads 200, {unavailable} answered 503; ready again {back:?} after the kill",
        created.len()
    );

    let events = admin.all_events().await;
    let mut made: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        if event["event_type"] == "TeamCreated" {
            let stream = event["stream_id"].as_str().expect("a stream id");
            *made.entry(stream.to_string()).or_default() += 1;
        }
    }
    for name in &created {
        assert_eq!(
            made.get(&format!("team-{name}")),
            Some(&1),
            "team {name}, answered 201, is in the log once"
        );
    }
    let head = events
        .last()
        .and_then(|e| e["position"].as_u64())
        .expect("a head");
    *until.lock().expect("the head") = Some(head);
    let seen = tokio::time::timeout(Duration::from_secs(60), follower)
        .await
        .expect("the subscriber caught up")
        .expect("the subscriber");
    let expected: Vec<u64> = (1..=head).collect();
    let got: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(got.len(), seen.len(), "no event twice");
    assert_eq!(seen, expected, "every event once, in order");
}
