//! The live feed over a real WebSocket: catch-up then live in exactly the log's order, filters,
//! authentication by header or first message, and slow subscribers closed with their position.

use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, StreamId};
use bosun_tests::{config_file, join, work_dir, Server};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn admin_token(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("bosun-data/admin-token"))
        .expect("the bootstrap admin token")
        .trim()
        .to_string()
}

fn ws_url(server: &Server, query: &str) -> String {
    format!(
        "{}/v1/events/live?{query}",
        server.base.replacen("http://", "ws://", 1)
    )
}

async fn connect(server: &Server, query: &str, token: Option<&str>) -> Socket {
    let mut request = ws_url(server, query).into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("open the live feed");
    socket
}

/// Envelopes from `socket` until one at `last` or later has come.
async fn receive_until(socket: &mut Socket, last: u64) -> Vec<Value> {
    let mut got: Vec<Value> = Vec::new();
    while got.last().and_then(|e| e["position"].as_u64()).unwrap_or(0) < last {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no event within 30 s; got up to {:?}",
                    got.last().map(|e| &e["position"])
                )
            })
            .expect("the feed ended")
            .expect("a WebSocket error");
        match message {
            Message::Text(text) => got.push(serde_json::from_str(&text).expect("an envelope")),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
    got
}

async fn http_json(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("HTTP call");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        headers,
    )
}

async fn log_from(server: &Server, token: &str, from: u64) -> (Vec<Value>, u64) {
    let mut events = Vec::new();
    let mut from = from;
    let mut head = 0;
    loop {
        let (status, page, headers) = http_json(
            reqwest::Method::GET,
            server.url(&format!("/v1/events?from={from}&limit=1000")),
            token,
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        head = head.max(headers["bosun-head"].to_str().unwrap().parse().unwrap());
        let page = page.as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        from = last["position"].as_u64().unwrap() + 1;
        events.extend(page);
    }
    (events, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_exactly_what_the_log_holds_while_ten_clients_write() {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = admin_token(dir.path());

    // From the start of the log, by header; and a filtered one.
    let mut everything = connect(&server, "from=0", Some(&admin)).await;
    let mut teams_created = connect(&server, "category=team&type=TeamCreated", Some(&admin)).await;

    let writers: Vec<_> = (0..10)
        .map(|w| {
            let url = server.url("/v1/teams");
            let admin = admin.clone();
            tokio::spawn(async move {
                for n in 0..10 {
                    let (status, body, _) = http_json(
                        reqwest::Method::POST,
                        url.clone(),
                        &admin,
                        Some(json!({"name": format!("team_{w}_{n}")})),
                    )
                    .await;
                    assert_eq!(status, 201, "{body}");
                }
            })
        })
        .collect();
    // A third subscriber joins mid-way, authenticating by its first message.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut browser, _) = tokio_tungstenite::connect_async(ws_url(&server, "from=5"))
        .await
        .unwrap();
    browser
        .send(Message::Text(json!({"token": admin}).to_string().into()))
        .await
        .unwrap();
    for writer in writers {
        writer.await.unwrap();
    }

    let (log, head) = log_from(&server, &admin, 1).await;
    assert!(
        head >= 101,
        "the bootstrap events and 100 teams: head {head}"
    );
    let got = receive_until(&mut everything, head).await;
    assert_eq!(got, log, "the live feed differs from GET /v1/events");
    let got = receive_until(&mut browser, head).await;
    assert_eq!(
        got,
        log[4..].to_vec(),
        "a subscriber from 5 gets exactly the log from 5"
    );

    let created: Vec<Value> = log
        .iter()
        .filter(|e| e["event_type"] == "TeamCreated")
        .cloned()
        .collect();
    assert_eq!(created.len(), 100);
    let last = created.last().unwrap()["position"].as_u64().unwrap();
    assert_eq!(receive_until(&mut teams_created, last).await, created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_refuses_whoever_may_not_read_the_log() {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = admin_token(dir.path());

    // A bad token in the header: refused before the upgrade.
    let mut request = ws_url(&server, "").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer bosun_forged".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("a forged token was not refused: {:?}", other.map(|_| ())),
    }

    // A plain GET of the WebSocket endpoint: a problem saying so.
    let plain = reqwest::Client::new()
        .get(server.url("/v1/events/live"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(plain.status().is_client_error(), "{}", plain.status());
    assert_eq!(plain.headers()["content-type"], "application/problem+json");
    let problem: Value = plain.json().await.unwrap();
    assert_eq!(problem["code"], "websocket_required");

    // Nothing sent within 5 s: closed with 4401.
    let (mut silent, _) = tokio_tungstenite::connect_async(ws_url(&server, ""))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let code = close_code(&mut silent).await;
    assert_eq!(code, CloseCode::from(4401));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "closed after {:?}",
        started.elapsed()
    );

    // A token without the read scope: closed with 4403.
    let (status, write_only, _) = http_json(
        reqwest::Method::POST,
        server.url("/v1/tokens"),
        &admin,
        Some(json!({"description": "writer", "scopes": ["write"]})),
    )
    .await;
    assert_eq!(status, 201, "{write_only}");
    let (mut viewer, _) = tokio_tungstenite::connect_async(ws_url(&server, ""))
        .await
        .unwrap();
    viewer
        .send(Message::Text(
            json!({"token": write_only["token"]}).to_string().into(),
        ))
        .await
        .unwrap();
    assert_eq!(close_code(&mut viewer).await, CloseCode::from(4403));

    // A subscriber whose token is revoked while it watches is closed with 4401.
    let (status, issued, _) = http_json(
        reqwest::Method::POST,
        server.url("/v1/tokens"),
        &admin,
        Some(json!({"description": "watcher"})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let watcher_token = issued["token"].as_str().unwrap().to_string();
    let mut watcher = connect(&server, "", Some(&watcher_token)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, _) = http_json(
        reqwest::Method::DELETE,
        server.url(&format!(
            "/v1/tokens/{}",
            issued["token_id"].as_str().unwrap()
        )),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(close_code(&mut watcher).await, CloseCode::from(4401));
}

/// A subscriber whose socket holds little, so not reading backs up to the server soon.
async fn connect_with_small_buffer(server: &Server, query: &str, token: &str) -> Socket {
    let mut request = ws_url(server, query).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let address: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("open the live feed");
    socket
}

async fn close_code(socket: &mut Socket) -> CloseCode {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no close within 10 s")
            .expect("the socket ended without a close frame");
        match message {
            Ok(Message::Close(Some(frame))) => return frame.code,
            Ok(Message::Close(None)) => panic!("closed without a code"),
            Ok(_) => continue,
            Err(e) => panic!("WebSocket error before the close frame: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_falls_behind_is_closed_with_its_last_position_and_others_go_on() {
    let dir = work_dir();
    // Big enough for the hub's bursts (it publishes a page of the log at once), small enough to
    // overflow quickly.
    let config = config_file(dir.path(), "live:\n  buffer: 128\n");
    let server = Server::start(
        dir.path(),
        &["-c", config.to_str().unwrap()],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = admin_token(dir.path());
    let start = http_json(
        reqwest::Method::GET,
        server.url("/v1/events?limit=1"),
        &admin,
        None,
    )
    .await
    .2["bosun-head"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();

    // One subscriber reads nothing for now; another keeps up.
    let mut stalled = connect_with_small_buffer(&server, "category=big", &admin).await;
    let mut reader = connect(&server, "category=big", Some(&admin)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_pg, store) = join(&dir.path().join("bosun-data")).await;
    let padding = "x".repeat(64 * 1024);
    let total = 600u64;
    let keep_up = tokio::spawn(async move {
        let got = receive_until(&mut reader, start + total).await;
        got.len()
    });
    for n in 0..total {
        store
            .append(
                &StreamId::parse(format!("big-{n}")).unwrap(),
                ExpectedVersion::Any,
                vec![NewEvent::new("Padded", json!({"n": n, "padding": padding}))],
            )
            .await
            .unwrap();
    }
    assert_eq!(
        keep_up.await.unwrap(),
        total as usize,
        "the subscriber that kept up got everything"
    );

    // The stalled one gets what was buffered for it, then a close carrying its last position.
    let mut last_received = 0;
    let frame = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), stalled.next())
            .await
            .expect("no close within 30 s")
            .expect("the socket ended without a close frame")
            .expect("a WebSocket error");
        match message {
            Message::Text(text) => {
                let event: Value = serde_json::from_str(&text).unwrap();
                last_received = event["position"].as_u64().unwrap();
            }
            Message::Close(Some(frame)) => break frame,
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(frame.code, CloseCode::from(4408));
    let reason: Value = serde_json::from_str(&frame.reason).unwrap();
    assert_eq!(reason["code"], "slow_consumer");
    assert_eq!(
        reason["last_position"], last_received,
        "the close names the last event it got"
    );
    assert!(last_received < start + total, "it did fall behind");

    // It resumes from there and misses nothing.
    let mut resumed = connect(
        &server,
        &format!("category=big&from={}", last_received + 1),
        Some(&admin),
    )
    .await;
    let rest = receive_until(&mut resumed, start + total).await;
    let positions: Vec<u64> = rest
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        (last_received + 1..=start + total).collect::<Vec<_>>()
    );
}

/// Waits until the read models have applied `position` (so the live feed may send it).
async fn wait_for_read_models(server: &Server, token: &str, position: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = reqwest::Client::new()
            .get(server.url("/v1/jobs?limit=1"))
            .bearer_auth(token)
            .header("bosun-min-position", position.to_string())
            .send()
            .await
            .expect("GET /v1/jobs");
        if answer.status().is_success() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the read models did not reach {position} within 60 s"
        );
    }
}

/// Sessions report their statistics at the end of a transaction at most once a second, and an
/// idle one within 10 s (PostgreSQL 15 and later): after this long, every count is in.
const STATS_SETTLE: Duration = Duration::from_secs(11);

/// Rows PostgreSQL has read from the `events` table, by any session, as its statistics show them.
async fn events_rows_read(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT (COALESCE(idx_tup_fetch, 0) + COALESCE(seq_tup_read, 0))::bigint
             FROM pg_stat_user_tables WHERE relname = 'events'",
            &[],
        )
        .await
        .expect("read pg_stat_user_tables")
        .get(0)
}

/// Reads `socket` until it got `last`; fails unless it got exactly `from..=last`, once each and
/// in order, with no close in between.
async fn positions_until(mut socket: Socket, from: u64, last: u64) -> Result<(), String> {
    let mut expected = from;
    while expected <= last {
        let message = match tokio::time::timeout(Duration::from_secs(60), socket.next()).await {
            Err(_) => return Err(format!("nothing within 60 s; waiting for {expected}")),
            Ok(None) => return Err(format!("the feed ended; waiting for {expected}")),
            Ok(Some(Err(e))) => return Err(format!("WebSocket error at {expected}: {e}")),
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => {
                let got = serde_json::from_str::<Value>(&text)
                    .map_err(|e| format!("not JSON ({e}): {text}"))?["position"]
                    .as_u64()
                    .ok_or_else(|| format!("not an envelope: {text}"))?;
                if got != expected {
                    return Err(format!("got position {got}, expected {expected}"));
                }
                expected += 1;
            }
            Message::Close(frame) => return Err(format!("closed at {expected}: {frame:?}")),
            _ => {}
        }
    }
    let _ = socket.close(None).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_subscribers_catching_up_at_once_share_the_log_reads_while_writes_go_on() {
    const SUBSCRIBERS: usize = 60;
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = admin_token(dir.path());
    let (pg, store) = join(&dir.path().join("bosun-data")).await;
    let padding = "x".repeat(200);
    for batch in 0..8 {
        let events = (0..500)
            .map(|n| NewEvent::new("Filled", json!({"n": n, "padding": padding})))
            .collect();
        store
            .append(
                &StreamId::parse(format!("fill-{batch}")).unwrap(),
                ExpectedVersion::Any,
                events,
            )
            .await
            .unwrap();
    }
    let filled = store.head().await.unwrap();
    assert!(filled >= 4000, "head {filled}");
    wait_for_read_models(&server, &admin, filled).await;
    let (stats, connection) = pg
        .config("bosun")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect for statistics");
    tokio::spawn(connection);
    // What the projectors read of the filling is counted before, not during, the catch-up.
    tokio::time::sleep(STATS_SETTLE).await;
    let rows_before = events_rows_read(&stats).await;

    // All of them at once, from the start of the log.
    let sockets = futures::future::join_all(
        (0..SUBSCRIBERS).map(|_| connect(&server, "from=1", Some(&admin))),
    )
    .await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, admin, done) = (server.url("/v1/tokens"), admin.clone(), done.clone());
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut writes = 0;
            // Bounded: at most 2,000 writes, and it stops once the subscribers are through.
            while writes < 2000 && !done.load(std::sync::atomic::Ordering::Acquire) {
                let started = std::time::Instant::now();
                let (status, body, _) = http_json(
                    reqwest::Method::POST,
                    url.clone(),
                    &admin,
                    Some(json!({"description": format!("writer {writes}")})),
                )
                .await;
                assert!(
                    (200..300).contains(&status),
                    "a write during the catch-up failed: {status} {body}"
                );
                worst = worst.max(started.elapsed());
                writes += 1;
            }
            (writes, worst)
        })
    };
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|socket| tokio::spawn(positions_until(socket, 1, filled)))
        .collect();
    let mut failures = Vec::new();
    for reader in readers {
        if let Err(e) = reader.await.unwrap() {
            failures.push(e);
        }
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let (writes, worst) = writer.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {SUBSCRIBERS} subscribers did not get 1..={filled} in order: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(writes > 0, "the writer never wrote");
    assert!(
        worst < Duration::from_secs(5),
        "a write took {worst:?} while the subscribers caught up"
    );

    // Each subscriber reading the log itself reads SUBSCRIBERS × filled rows; shared pages read
    // it about once (measured: about 4,000 rows here; over 200,000 when each subscriber read the
    // log on its own).
    let bound = 4 * filled as i64;
    let deadline = std::time::Instant::now() + STATS_SETTLE;
    let mut read = 0;
    while std::time::Instant::now() < deadline && read <= bound {
        tokio::time::sleep(Duration::from_millis(500)).await;
        read = events_rows_read(&stats).await - rows_before;
    }
    eprintln!("{read} rows of the log read for {SUBSCRIBERS} subscribers on {filled} events; {writes} writes, the slowest {worst:?}");
    assert!(
        read <= bound,
        "{read} rows of the log were read for {SUBSCRIBERS} subscribers catching up on {filled} events (at most {bound} expected: the subscribers must share the reads)"
    );
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every envelope the feed sent: no hash, only their stand-ins.
fn assert_redacted(events: &[Value], secrets: &[String]) -> (usize, usize) {
    let (mut hashes, mut digests) = (0, 0);
    for event in events {
        let text = event.to_string();
        assert!(
            !text.contains("$argon2"),
            "a password hash went out: {text}"
        );
        for secret in secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a token digest went out: {text}"
            );
        }
        if let Some(hash) = event["data"].get("password_hash") {
            assert_eq!(hash, "[redacted]", "{text}");
            hashes += 1;
        }
        if let Some(digest) = event["data"].get("digest") {
            assert_eq!(digest, "[redacted]", "{text}");
            digests += 1;
        }
    }
    (hashes, digests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_never_shows_a_password_hash_or_a_token_digest() {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = admin_token(dir.path());
    // Watching before: the bootstrap's events come from the log, the new ones from the hub.
    let mut early = connect(&server, "from=1", Some(&admin)).await;

    let credentials = json!({"username": "ann", "password": "ann-password-1"});
    let (status, body, _) = http_json(
        reqwest::Method::POST,
        server.url("/v1/users"),
        &admin,
        Some(credentials.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, login, _) = http_json(
        reqwest::Method::POST,
        server.url("/v1/auth/tokens"),
        "",
        Some(credentials),
    )
    .await;
    assert_eq!(status, 201, "{login}");
    let (status, issued, _) = http_json(
        reqwest::Method::POST,
        server.url("/v1/tokens"),
        &admin,
        Some(json!({"description": "api"})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let secrets: Vec<String> = [
        admin.as_str(),
        login["token"].as_str().unwrap(),
        issued["token"].as_str().unwrap(),
    ]
    .iter()
    .map(|token| sha256_hex(token))
    .collect();

    let (_, head) = log_from(&server, &admin, 1).await;
    let live = receive_until(&mut early, head).await;
    // Watching after: everything comes from the log.
    let mut late = connect(&server, "from=1", Some(&admin)).await;
    let caught_up = receive_until(&mut late, head).await;
    assert_eq!(live, caught_up, "the hub and the catch-up differ");
    let (hashes, digests) = assert_redacted(&live, &secrets);
    assert!(hashes >= 1, "no user registration seen: {live:?}");
    assert!(digests >= 3, "not every token issue seen: {live:?}");
    // A filtered subscriber reads the same pages.
    let mut tokens = connect(&server, "from=1&category=token", Some(&admin)).await;
    let last_token = live
        .iter()
        .rfind(|e| e["stream_id"].as_str().unwrap().starts_with("token-"))
        .unwrap()["position"]
        .as_u64()
        .unwrap();
    let filtered = receive_until(&mut tokens, last_token).await;
    assert_eq!(assert_redacted(&filtered, &secrets).1, digests);
}

/// Opens the feed with `token`, waits until it is live at `head`, has `revoke` revoke the token,
/// and answers how long the close (which must be 4401) took from the revocation's request.
async fn closed_after_revocation(
    server: &Server,
    token: &str,
    head: u64,
    revoke: impl std::future::Future<Output = u16>,
) -> Duration {
    let mut socket = connect(server, "from=1", Some(token)).await;
    receive_until(&mut socket, head).await;
    // Long enough for a first periodic re-check to pass, were there one due.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revoked = std::time::Instant::now();
    assert_eq!(revoke.await, 204, "the revocation failed");
    assert_eq!(close_code(&mut socket).await, CloseCode::from(4401));
    let took = revoked.elapsed();
    eprintln!("closed {took:?} after the revocation");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_is_closed_as_soon_as_its_token_is_revoked() {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = admin_token(dir.path());
    let issue = |description: &'static str| {
        let (url, admin) = (server.url("/v1/tokens"), admin.clone());
        async move {
            let (status, issued, _) = http_json(
                reqwest::Method::POST,
                url,
                &admin,
                Some(json!({"description": description})),
            )
            .await;
            assert_eq!(status, 201, "{issued}");
            issued
        }
    };

    // Revoked by an admin.
    let watcher = issue("watcher").await;
    let (_, head) = log_from(&server, &admin, 1).await;
    let url = server.url(&format!(
        "/v1/tokens/{}",
        watcher["token_id"].as_str().unwrap()
    ));
    let took = closed_after_revocation(&server, watcher["token"].as_str().unwrap(), head, async {
        http_json(reqwest::Method::DELETE, url, &admin, None)
            .await
            .0
    })
    .await;
    assert!(
        took < Duration::from_millis(1500),
        "closed {took:?} after the revocation"
    );

    // Logged out by its own holder, while another token's events keep coming.
    let session = issue("session").await;
    let (_, head) = log_from(&server, &admin, 1).await;
    let token = session["token"].as_str().unwrap().to_string();
    let url = server.url("/v1/auth/tokens/current");
    let took = closed_after_revocation(&server, &token, head, async {
        http_json(reqwest::Method::DELETE, url, &token, None)
            .await
            .0
    })
    .await;
    assert!(
        took < Duration::from_millis(1500),
        "closed {took:?} after the logout"
    );
}
