//! The SockJS endpoints served for real (axum on 127.0.0.1:0) and spoken to over HTTP
//! (reqwest) and WebSocket (tokio-tungstenite), with an echo handler that reports to the test.

use super::*;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(5);

/// What the echo handler tells the test.
#[derive(Clone)]
struct Probe(UnboundedSender<String>);

/// Echoes every message; `close` closes with 3000 "Go away!" (`close CODE` with CODE "Access
/// denied"); `return` returns; `sleep MS` stops reading for MS; `flood N` sends N messages one
/// by one, `bulk N BYTES` N messages of BYTES bytes, yielding after each (reporting when one is
/// refused, or `bulk sent`); reports `ended, send …` once `recv` ends.
fn echo(probe: Probe, mut session: Session) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        while let Some(message) = session.recv().await {
            if message == "close" {
                session.close(3000, "Go away!").await;
                probe.0.send("closed".into()).ok();
                return;
            }
            if let Some(code) = message.strip_prefix("close ") {
                let code: u16 = code.parse().expect("close code");
                session.close(code, "Access denied").await;
                probe.0.send("closed".into()).ok();
                return;
            }
            if message == "return" {
                probe.0.send("returned".into()).ok();
                return;
            }
            if let Some(ms) = message.strip_prefix("sleep ") {
                let ms: u64 = ms.parse().expect("sleep milliseconds");
                tokio::time::sleep(Duration::from_millis(ms)).await;
                continue;
            }
            if let Some(count) = message.strip_prefix("flood ") {
                let count: usize = count.parse().expect("flood count");
                for i in 0..count {
                    if session.send(vec![i.to_string()]).await.is_err() {
                        probe.0.send(format!("flood refused at {i}")).ok();
                        break;
                    }
                }
                continue;
            }
            if let Some(bulk) = message.strip_prefix("bulk ") {
                let (count, bytes) = bulk.split_once(' ').expect("bulk N BYTES");
                let (count, bytes): (usize, usize) = (
                    count.parse().expect("bulk count"),
                    bytes.parse().expect("bulk bytes"),
                );
                let mut refused = false;
                for i in 0..count {
                    if session.send(vec!["x".repeat(bytes)]).await.is_err() {
                        probe.0.send(format!("bulk refused at {i}")).ok();
                        refused = true;
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                if !refused {
                    probe.0.send("bulk sent".into()).ok();
                }
                continue;
            }
            let _ = session.send(vec![message]).await;
        }
        let late = session.send(vec!["late".into()]).await;
        probe.0.send(format!("ended, send {late:?}")).ok();
    })
}

struct Server {
    addr: SocketAddr,
    events: UnboundedReceiver<String>,
    http: reqwest::Client,
}

async fn serve(options: Options) -> Server {
    serve_with(options, Caps::default()).await
}

/// Served without `ConnectInfo`, as `axum::serve` does: no per-address limit.
async fn serve_with(options: Options, caps: Caps) -> Server {
    serve_app(options, caps, false).await
}

/// Served with `ConnectInfo<SocketAddr>`, as Bosun's server does.
async fn serve_with_peers(options: Options, caps: Caps) -> Server {
    serve_app(options, caps, true).await
}

async fn serve_app(options: Options, caps: Caps, peers: bool) -> Server {
    let (probe, events) = unbounded_channel();
    let app = Router::new()
        .nest("/echo", router_with_caps(options, echo, caps))
        .with_state(Probe(probe));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    if peers {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    } else {
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    }
    Server {
        addr,
        events,
        http: reqwest::Client::new(),
    }
}

fn caps(f: impl FnOnce(&mut Caps)) -> Caps {
    let mut caps = Caps::default();
    f(&mut caps);
    caps
}

fn short(heartbeat_ms: u64, disconnect_ms: u64) -> Options {
    Options {
        heartbeat: Duration::from_millis(heartbeat_ms),
        disconnect_delay: Duration::from_millis(disconnect_ms),
        ..Options::default()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}/echo{path}", self.addr)
    }

    async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .body(body.to_owned())
            .send()
            .await
            .expect("request")
    }

    /// One poll's whole answer.
    async fn poll(&self, session: &str) -> String {
        let response = self.post(&format!("/000/{session}/xhr"), "").await;
        assert_eq!(response.status(), 200);
        tokio::time::timeout(WAIT, response.text())
            .await
            .expect("poll answered")
            .expect("body")
    }

    async fn send(&self, session: &str, body: &str) -> reqwest::Response {
        self.post(&format!("/000/{session}/xhr_send"), body).await
    }

    async fn socket(&self, path: &str) -> Socket {
        let url = format!("ws://{}/echo{path}", self.addr);
        tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket")
            .0
    }

    /// Polls a new session `id` until it is made (not 503), for at most `WAIT`.
    async fn until_a_session_can_be_made(&self, id: &str) {
        let made = tokio::time::timeout(WAIT, async {
            loop {
                let response = self.post(&format!("/000/{id}/xhr"), "").await;
                if response.status() == 200 {
                    assert_eq!(response.text().await.expect("body"), "o\n");
                    return;
                }
                assert_eq!(response.status(), 503);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        made.await
            .unwrap_or_else(|_| panic!("no session could be made in {WAIT:?}"));
    }

    async fn event(&mut self) -> String {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event from the handler")
            .expect("handler probe open")
    }
}

/// The next text frame (pings and pongs skipped); panics on a close or after `WAIT`.
async fn text(socket: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame");
        match message {
            WsMessage::Text(text) => return text.to_string(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// The close frame's code, skipping anything before it.
async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("close in time")
        {
            Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| f.code.into()),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// Reads a streamed response until `buffer` ends with `suffix`.
async fn read_until(response: &mut reqwest::Response, buffer: &mut String, suffix: &str) {
    tokio::time::timeout(WAIT, async {
        while !buffer.ends_with(suffix) {
            let chunk = response
                .chunk()
                .await
                .expect("chunk")
                .expect("response still open");
            buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{suffix:?} not received; got {buffer:?}"));
}

fn prelude() -> String {
    format!("{}\n", "h".repeat(2048))
}

#[tokio::test]
async fn info_is_json_with_cors_and_no_caching() {
    let server = serve(Options::default()).await;
    let response = server
        .http
        .get(server.url("/info"))
        .header("Origin", "http://example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json; charset=UTF-8");
    assert_eq!(
        headers["cache-control"],
        "no-store, no-cache, must-revalidate, max-age=0"
    );
    assert_eq!(headers["access-control-allow-origin"], "http://example.com");
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let info: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(info["websocket"], true);
    assert_eq!(info["origins"], serde_json::json!(["*:*"]));
    assert_eq!(info["cookie_needed"], false);
    assert!(info["entropy"].is_u64());

    let anonymous = server
        .http
        .get(server.url("/info"))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn preflights_are_204_with_the_allowed_methods() {
    let server = serve(Options::default()).await;
    for (path, methods) in [
        ("/info", "OPTIONS, GET"),
        ("/000/abc/xhr", "OPTIONS, POST"),
        ("/000/abc/xhr_send", "OPTIONS, POST"),
        ("/000/abc/xhr_streaming", "OPTIONS, POST"),
    ] {
        let response = server
            .http
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("Origin", "http://example.com")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 204, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-methods"], methods, "{path}");
        assert_eq!(headers["access-control-max-age"], "31536000", "{path}");
        assert_eq!(headers["access-control-allow-origin"], "http://example.com");
        assert_eq!(headers["access-control-allow-headers"], "content-type");
    }
}

#[tokio::test]
async fn the_prefix_itself_answers_the_welcome_page() {
    let server = serve(Options::default()).await;
    let response = server
        .http
        .get(server.url(""))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=UTF-8"
    );
    assert_eq!(response.text().await.expect("body"), "Welcome to SockJS!\n");
}

#[tokio::test]
async fn websocket_opens_echoes_and_ends_with_the_handlers_close_frame() {
    let server = serve(Options::default()).await;
    let mut socket = server.socket("/000/abc/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    socket
        .send(WsMessage::text(r#"["hi"]"#))
        .await
        .expect("send");
    assert_eq!(text(&mut socket).await, r#"a["hi"]"#);
    socket
        .send(WsMessage::text(r#""single""#))
        .await
        .expect("send");
    assert_eq!(text(&mut socket).await, r#"a["single"]"#);
    socket
        .send(WsMessage::text(r#"["close"]"#))
        .await
        .expect("send");
    assert_eq!(text(&mut socket).await, r#"c[3000,"Go away!"]"#);
    assert_eq!(close_code(&mut socket).await, Some(1000));
}

#[tokio::test]
async fn websocket_messages_are_escaped_as_the_protocol_asks() {
    let server = serve(Options::default()).await;
    let mut socket = server.socket("/000/abc/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    socket
        .send(WsMessage::text(r#"["a\u2028b\u200c😀"]"#))
        .await
        .expect("send");
    assert_eq!(
        text(&mut socket).await,
        r#"a["a\u2028b\u200c\ud83d\ude00"]"#
    );
}

#[tokio::test]
async fn websocket_broken_json_closes_the_socket_and_ends_the_session() {
    let mut server = serve(Options::default()).await;
    let mut socket = server.socket("/000/abc/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    socket
        .send(WsMessage::text(r#"["unterminated"#))
        .await
        .expect("send");
    assert_eq!(close_code(&mut socket).await, Some(1002));
    assert_eq!(server.event().await, "ended, send Err(Closed)");
}

#[tokio::test]
async fn websocket_closed_by_the_client_ends_the_session_at_once() {
    let mut server = serve(short(25_000, 60_000)).await;
    let mut socket = server.socket("/000/abc/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    socket.close(None).await.expect("close");
    assert_eq!(server.event().await, "ended, send Err(Closed)");
}

#[tokio::test]
async fn websocket_sends_heartbeats() {
    let server = serve(short(100, 5_000)).await;
    let mut socket = server.socket("/000/abc/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    assert_eq!(text(&mut socket).await, "h");
    assert_eq!(text(&mut socket).await, "h");
}

#[tokio::test]
async fn raw_websocket_echoes_plain_text_and_pings() {
    let server = serve(short(100, 5_000)).await;
    let mut socket = server.socket("/websocket").await;
    socket
        .send(WsMessage::text("hi [not framed]"))
        .await
        .expect("send");
    assert_eq!(text(&mut socket).await, "hi [not framed]");
    let ping = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Ok(WsMessage::Ping(_))) = socket.next().await {
                return;
            }
        }
    });
    ping.await.expect("a heartbeat ping");
    socket.send(WsMessage::text("close")).await.expect("send");
    assert_eq!(close_code(&mut socket).await, Some(3000));
}

#[tokio::test]
async fn websocket_ids_with_a_dot_are_not_found() {
    let server = serve(Options::default()).await;
    let url = format!("ws://{}/echo/000/a.b/websocket", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn xhr_streaming_sends_the_prelude_the_open_frame_and_messages() {
    let server = serve(Options::default()).await;
    let mut response = server.post("/000/abc/xhr_streaming", "").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/javascript; charset=UTF-8"
    );
    let mut received = String::new();
    read_until(&mut response, &mut received, "o\n").await;
    assert_eq!(received, format!("{}o\n", prelude()));

    let sent = server.send("abc", r#"["hi"]"#).await;
    assert_eq!(sent.status(), 204);
    read_until(&mut response, &mut received, "a[\"hi\"]\n").await;
    assert_eq!(received, format!("{}o\na[\"hi\"]\n", prelude()));
}

#[tokio::test]
async fn xhr_streaming_ends_after_the_response_limit_and_the_session_goes_on() {
    let server = serve(Options {
        response_limit: 1,
        ..Options::default()
    })
    .await;
    let first = server.post("/000/abc/xhr_streaming", "").await;
    let first = tokio::time::timeout(WAIT, first.text())
        .await
        .expect("ended")
        .expect("body");
    assert_eq!(first, format!("{}o\n", prelude()));

    assert_eq!(server.send("abc", r#"["hi"]"#).await.status(), 204);
    let second = server.post("/000/abc/xhr_streaming", "").await;
    let second = tokio::time::timeout(WAIT, second.text())
        .await
        .expect("ended")
        .expect("body");
    assert_eq!(second, format!("{}a[\"hi\"]\n", prelude()));
}

#[tokio::test]
async fn xhr_streaming_sends_heartbeats() {
    let server = serve(short(100, 5_000)).await;
    let mut response = server.post("/000/abc/xhr_streaming", "").await;
    let mut received = String::new();
    read_until(&mut response, &mut received, "o\n").await;
    read_until(&mut response, &mut received, "o\nh\n").await;
}

#[tokio::test]
async fn xhr_streaming_client_gone_ends_the_session() {
    let mut server = serve(short(25_000, 60_000)).await;
    let mut response = server.post("/000/abc/xhr_streaming", "").await;
    let mut received = String::new();
    read_until(&mut response, &mut received, "o\n").await;
    drop(response);
    // Noticed when the connection closes (or at the latest at the next write).
    assert_eq!(server.event().await, "ended, send Err(Closed)");
}

#[tokio::test]
async fn xhr_polling_and_xhr_send_round_trip() {
    let server = serve(Options::default()).await;
    assert_eq!(server.poll("abc").await, "o\n");
    let sent = server.send("abc", r#"["hi","there"]"#).await;
    assert_eq!(sent.status(), 204);
    assert_eq!(sent.headers()["content-type"], "text/plain; charset=UTF-8");
    let received = server.poll("abc").await;
    // Both may come in one frame or in two polls, as the handler echoes them one by one.
    let received = if received == "a[\"hi\"]\n" {
        received + &server.poll("abc").await
    } else {
        received
    };
    assert!(
        received == "a[\"hi\",\"there\"]\n" || received == "a[\"hi\"]\na[\"there\"]\n",
        "{received:?}"
    );
}

#[tokio::test]
async fn a_poll_with_nothing_to_say_answers_a_heartbeat() {
    let server = serve(short(100, 5_000)).await;
    assert_eq!(server.poll("abc").await, "o\n");
    assert_eq!(server.poll("abc").await, "h\n");
}

#[tokio::test]
async fn a_second_receiving_request_is_refused_with_2010() {
    let server = serve(Options::default()).await;
    let mut streaming = server.post("/000/abc/xhr_streaming", "").await;
    let mut received = String::new();
    read_until(&mut streaming, &mut received, "o\n").await;

    assert_eq!(
        server.poll("abc").await,
        "c[2010,\"Another connection still open\"]\n"
    );
    let second = server.post("/000/abc/xhr_streaming", "").await;
    let second = tokio::time::timeout(WAIT, second.text())
        .await
        .expect("ended")
        .expect("body");
    assert_eq!(
        second,
        format!("{}c[2010,\"Another connection still open\"]\n", prelude())
    );

    // The first one is still the session's.
    assert_eq!(server.send("abc", r#"["still"]"#).await.status(), 204);
    read_until(&mut streaming, &mut received, "a[\"still\"]\n").await;
}

#[tokio::test]
async fn a_closed_session_answers_its_close_frame_until_it_is_forgotten() {
    let mut server = serve(short(25_000, 1_500)).await;
    assert_eq!(server.poll("abc").await, "o\n");
    assert_eq!(server.send("abc", r#"["close"]"#).await.status(), 204);
    assert_eq!(server.event().await, "closed");
    assert_eq!(server.poll("abc").await, "c[3000,\"Go away!\"]\n");
    assert_eq!(server.poll("abc").await, "c[3000,\"Go away!\"]\n");
    let streamed = server
        .post("/000/abc/xhr_streaming", "")
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(streamed, format!("{}c[3000,\"Go away!\"]\n", prelude()));
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    // Forgotten: the same id makes a new session.
    assert_eq!(server.send("abc", r#"["x"]"#).await.status(), 404);
    assert_eq!(server.poll("abc").await, "o\n");
}

#[tokio::test]
async fn xhr_send_to_an_unknown_session_is_404() {
    let server = serve(Options::default()).await;
    let response = server.send("nobody", r#"["hi"]"#).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn xhr_send_with_a_bad_body_is_400_and_delivers_nothing() {
    let server = serve(short(200, 5_000)).await;
    assert_eq!(server.poll("abc").await, "o\n");
    for (body, message) in [
        ("", "Payload expected."),
        ("[\"unterminated", "Broken JSON encoding."),
        ("{\"a\":1}", "Payload expected."),
        ("[1,2]", "Payload expected."),
    ] {
        let response = server.send("abc", body).await;
        assert_eq!(response.status(), 400, "{body:?}");
        assert_eq!(response.text().await.expect("body"), message, "{body:?}");
    }
    // Nothing reached the handler: the next poll has only a heartbeat.
    assert_eq!(server.poll("abc").await, "h\n");
}

#[tokio::test]
async fn xhr_ids_with_a_dot_are_not_found() {
    let server = serve(Options::default()).await;
    assert_eq!(server.post("/000/a.b/xhr", "").await.status(), 404);
    assert_eq!(
        server.post("/0.0/abc/xhr_streaming", "").await.status(),
        404
    );
    assert_eq!(server.send("a.b", r#"["x"]"#).await.status(), 404);
}

#[tokio::test]
async fn a_session_without_a_receiving_request_ends_after_the_disconnect_delay() {
    let mut server = serve(short(25_000, 200)).await;
    // Before the poll: the delay runs from its end, so at least 200 ms pass from here.
    let started = std::time::Instant::now();
    assert_eq!(server.poll("abc").await, "o\n");
    assert_eq!(server.event().await, "ended, send Err(Closed)");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.send("abc", r#"["x"]"#).await.status(), 404);
}

#[tokio::test]
async fn a_session_kept_polling_outlives_the_disconnect_delay() {
    // 30 polls of a heartbeat (100 ms) each outlast the 1.5 s delay twice; the gaps between
    // them are far shorter.
    let server = serve(short(100, 1_500)).await;
    assert_eq!(server.poll("abc").await, "o\n");
    for _ in 0..30 {
        assert_eq!(server.poll("abc").await, "h\n");
    }
    assert_eq!(server.send("abc", r#"["alive"]"#).await.status(), 204);
    assert_eq!(server.poll("abc").await, "a[\"alive\"]\n");
}

#[tokio::test]
async fn a_client_that_does_not_keep_up_is_closed_past_the_queue_limit() {
    let mut server = serve(Options {
        queue_limit: 3,
        ..Options::default()
    })
    .await;
    assert_eq!(server.poll("abc").await, "o\n");
    assert_eq!(server.send("abc", r#"["flood 10"]"#).await.status(), 204);
    assert_eq!(server.event().await, "flood refused at 3");
    assert_eq!(server.event().await, "ended, send Err(Closed)");
    assert_eq!(server.poll("abc").await, "c[1013,\"Client too slow\"]\n");
}

#[tokio::test]
async fn new_sessions_past_the_limit_are_refused_with_503() {
    let server = serve_with(Options::default(), caps(|c| c.sessions = 1)).await;
    assert_eq!(server.poll("first").await, "o\n");
    assert_eq!(server.post("/000/second/xhr", "").await.status(), 503);
    let url = format!("ws://{}/echo/000/third/websocket", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected 503, got {other:?}"),
    }
    // The existing one still works.
    assert_eq!(server.send("first", r#"["x"]"#).await.status(), 204);
}

#[tokio::test]
async fn a_client_that_does_not_keep_up_is_closed_past_the_byte_budget() {
    let mut server = serve_with(Options::default(), caps(|c| c.queued_bytes = 10_000)).await;
    assert_eq!(server.poll("abc").await, "o\n");
    // No request open: 10 messages of 1000 bytes fit, the 11th does not.
    assert_eq!(
        server.send("abc", r#"["bulk 20 1000"]"#).await.status(),
        204
    );
    assert_eq!(server.event().await, "bulk refused at 10");
    assert_eq!(server.event().await, "ended, send Err(Closed)");
    assert_eq!(server.poll("abc").await, "c[1013,\"Client too slow\"]\n");
}

#[tokio::test]
async fn a_message_larger_than_the_byte_budget_still_goes_out_into_an_empty_queue() {
    let mut server = serve_with(Options::default(), caps(|c| c.queued_bytes = 1_000)).await;
    assert_eq!(server.poll("abc").await, "o\n");
    assert_eq!(server.send("abc", r#"["bulk 1 5000"]"#).await.status(), 204);
    assert_eq!(server.event().await, "bulk sent");
    assert_eq!(
        server.poll("abc").await,
        format!("a[\"{}\"]\n", "x".repeat(5000))
    );
}

/// A message far larger than what loopback sockets buffer, so a client that does not read
/// leaves the server's write of it waiting.
const UNREAD: usize = 48 * 1024 * 1024;

#[tokio::test]
async fn a_websocket_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    // The write timeout: the larger of 2 × 100 ms and 500 ms.
    let mut server = serve_with(short(100, 500), caps(|c| c.sessions = 1)).await;
    let mut socket = server.socket("/websocket").await;
    socket
        .send(WsMessage::text(format!("bulk 1 {UNREAD}")))
        .await
        .expect("send");
    assert_eq!(server.event().await, "bulk sent");
    // Not read: the one session ends, and with it its count.
    assert_eq!(server.event().await, "ended, send Err(Closed)");
    server.until_a_session_can_be_made("next").await;
    drop(socket);
}

#[tokio::test]
async fn a_websocket_client_closed_as_slow_frees_its_session_at_once() {
    // The write timeout (50 s) is far away: the session ends when its queue overflows.
    let mut server = serve_with(Options::default(), caps(|c| c.sessions = 1)).await;
    let mut socket = server.socket("/000/abc/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    socket
        .send(WsMessage::text(r#"["bulk 1000 1000000"]"#))
        .await
        .expect("send");
    let refused = server.event().await;
    assert!(refused.starts_with("bulk refused at "), "{refused}");
    assert_eq!(server.event().await, "ended, send Err(Closed)");
    server.until_a_session_can_be_made("next").await;
    drop(socket);
}

#[tokio::test]
async fn an_xhr_streaming_client_that_stops_reading_frees_its_session() {
    let mut server = serve_with(
        Options {
            response_limit: usize::MAX,
            ..short(100, 500)
        },
        caps(|c| c.sessions = 1),
    )
    .await;
    let mut streaming = server.post("/000/abc/xhr_streaming", "").await;
    let mut received = String::new();
    read_until(&mut streaming, &mut received, "o\n").await;
    let bulk = format!(r#"["bulk 1 {UNREAD}"]"#);
    assert_eq!(server.send("abc", &bulk).await.status(), 204);
    assert_eq!(server.event().await, "bulk sent");
    // The response is not read: the session ends.
    assert_eq!(server.event().await, "ended, send Err(Closed)");
    server.until_a_session_can_be_made("next").await;
    drop(streaming);
}

#[tokio::test]
async fn an_ended_session_stops_counting_while_its_handler_still_runs() {
    let server = serve_with(short(25_000, 60_000), caps(|c| c.sessions = 1)).await;
    let mut socket = server.socket("/000/abc/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    socket
        .send(WsMessage::text(r#"["sleep 60000"]"#))
        .await
        .expect("send");
    socket.close(None).await.expect("close");
    server.until_a_session_can_be_made("next").await;
}

#[tokio::test]
async fn a_disconnect_timer_holds_no_session_that_ended_otherwise() {
    let registry = Registry::new(Limits {
        heartbeat: Duration::from_secs(25),
        disconnect_delay: Duration::from_secs(60),
        write_timeout: Duration::from_secs(60),
        queue_limit: 8,
        max_queued_bytes: MAX_QUEUED_BYTES,
        max_sessions: 8,
        max_sessions_per_address: 8,
    });
    let (attachment, session) = registry.open("abc", None).expect("made");
    let shared = Arc::downgrade(attachment.shared());
    let session = session.expect("new");
    // Detached as meant: a 60 s timer starts.
    attachment.finish();
    // Attached again and cut off: the session ends now.
    let (attachment, _) = registry.open("abc", None).expect("attached");
    drop(attachment);
    assert_eq!(registry.live(), 0);
    assert!(registry.find("abc").is_none());
    drop(session);
    tokio::task::yield_now().await;
    assert!(shared.upgrade().is_none(), "still held by the timer");
}

#[tokio::test]
async fn sessions_past_the_limit_of_one_address_are_refused_with_503() {
    let server = serve_with_peers(Options::default(), caps(|c| c.sessions_per_address = 2)).await;
    let mut socket = server.socket("/000/ws/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    assert_eq!(server.poll("first").await, "o\n");
    let refused = server.post("/000/second/xhr", "").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.text().await.expect("body"),
        "Too many SockJS sessions from this address; try again later.\n"
    );
    let url = format!("ws://{}/echo/000/third/websocket", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(server.send("first", r#"["x"]"#).await.status(), 204);
    // An ended session no longer counts.
    socket.close(None).await.expect("close");
    server.until_a_session_can_be_made("second").await;
}

#[tokio::test]
async fn without_connect_info_there_is_no_limit_per_address() {
    let server = serve_with(Options::default(), caps(|c| c.sessions_per_address = 1)).await;
    assert_eq!(server.poll("first").await, "o\n");
    assert_eq!(server.poll("second").await, "o\n");
}

#[tokio::test]
async fn a_second_xhr_send_while_one_waits_is_refused_with_503() {
    let server = serve(Options {
        queue_limit: 1,
        ..Options::default()
    })
    .await;
    assert_eq!(server.poll("abc").await, "o\n");
    assert_eq!(server.send("abc", r#"["sleep 2000"]"#).await.status(), 204);
    // The handler does not read for 2 s and takes one message at a time: either send waits.
    let (first, second) = tokio::join!(
        server.send("abc", r#"["a","b"]"#),
        server.send("abc", r#"["c","d"]"#)
    );
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 503]);
}

#[tokio::test]
async fn an_xhr_send_body_not_sent_in_time_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = serve_with(
        Options::default(),
        caps(|c| c.send_body_wait = Duration::from_millis(300)),
    )
    .await;
    assert_eq!(server.poll("abc").await, "o\n");
    let mut tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    tcp.write_all(
        b"POST /echo/000/abc/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[\"a\"",
    )
    .await
    .expect("write");
    let mut answer = vec![0; 64];
    let read = tokio::time::timeout(WAIT, tcp.read(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
}

#[tokio::test]
async fn an_oversized_xhr_send_is_413() {
    let server = serve(Options::default()).await;
    assert_eq!(server.poll("abc").await, "o\n");
    let body = format!("[\"{}\"]", "x".repeat(MAX_MESSAGE_BYTES));
    assert_eq!(server.send("abc", &body).await.status(), 413);
}

#[tokio::test]
async fn an_oversized_websocket_message_closes_the_socket_with_1009() {
    let server = serve(Options::default()).await;
    for path in ["/websocket", "/000/abc/websocket"] {
        let mut socket = server.socket(path).await;
        socket
            .send(WsMessage::text("x".repeat(MAX_MESSAGE_BYTES + 1)))
            .await
            .expect("send");
        assert_eq!(close_code(&mut socket).await, Some(1009), "{path}");
    }
}

#[tokio::test]
async fn a_raw_websocket_close_code_below_1000_is_sent_as_4000_plus_it() {
    let server = serve(Options::default()).await;
    let mut socket = server.socket("/websocket").await;
    socket
        .send(WsMessage::text("close 403"))
        .await
        .expect("send");
    assert_eq!(close_code(&mut socket).await, Some(4403));
}

#[tokio::test]
async fn a_handler_that_returns_closes_with_1000_normal_closure() {
    let mut server = serve(Options::default()).await;
    let mut socket = server.socket("/000/abc/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    socket
        .send(WsMessage::text(r#"["return"]"#))
        .await
        .expect("send");
    assert_eq!(server.event().await, "returned");
    assert_eq!(text(&mut socket).await, r#"c[1000,"Normal closure"]"#);
    assert_eq!(close_code(&mut socket).await, Some(1000));
}

#[tokio::test]
async fn messages_queued_before_a_close_go_out_before_its_frame() {
    let server = serve(Options::default()).await;
    let mut socket = server.socket("/000/abc/websocket").await;
    assert_eq!(text(&mut socket).await, "o");
    socket
        .send(WsMessage::text(r#"["flood 3","close"]"#))
        .await
        .expect("send");
    let mut messages = Vec::new();
    loop {
        let frame = text(&mut socket).await;
        if let Some(batch) = frame.strip_prefix('a') {
            let batch: Vec<String> = serde_json::from_str(batch).expect("messages");
            messages.extend(batch);
            continue;
        }
        assert_eq!(frame, r#"c[3000,"Go away!"]"#);
        break;
    }
    assert_eq!(messages, ["0", "1", "2"]);
}
