//! Abuse: failed sign-ins limited per user name and per source address, on every way in that
//! takes a password; live sockets capped per token.

use bosun_tests::{spawn_app, Answer, TestApp};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const LIMITED: &str = "auth:\n  sign_in_limit: {failures_per_user: 3, failures_per_address: 1000, per_seconds: 300}\n";

async fn sign_in(app: &TestApp, username: &str, password: &str) -> Answer {
    app.api
        .anonymous()
        .post(
            "/v1/auth/tokens",
            json!({"username": username, "password": password}),
        )
        .await
}

/// The `Retry-After` of a 429, in seconds.
fn retry_after(answer: &Answer) -> u64 {
    answer
        .header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("a Retry-After in seconds: {:?}", answer.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_name_that_failed_its_count_is_refused_even_the_right_password_then_only_it() {
    let app = spawn_app(LIMITED).await;
    app.api.new_user("ann", "ann-password").await;
    app.api.new_user("bob", "bob-password").await;
    let log = app.api.log_head().await;
    for _ in 0..3 {
        sign_in(&app, "ann", "a-guess")
            .await
            .problem()
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // The right password now: refused as well, before it is looked at, with when to retry.
    let limited = sign_in(&app, "ann", "ann-password").await;
    let seconds = retry_after(&limited);
    assert!((1..=300).contains(&seconds), "{seconds}");
    let problem = limited
        .problem()
        .expect(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(problem.detail().contains("of this user"), "{problem}");
    // The name as sign-in matches it, in another case.
    sign_in(&app, "ANN", "ann-password")
        .await
        .problem()
        .expect(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    log.assert_unchanged("the failed and refused sign-ins")
        .await;
    // Others sign in as before, and ann's tokens still work.
    sign_in(&app, "bob", "bob-password")
        .await
        .expect(StatusCode::CREATED);
    // A name no one holds is counted as well: the 429 says nothing about who exists.
    for _ in 0..3 {
        sign_in(&app, "nobody", "x")
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    sign_in(&app, "nobody", "x")
        .await
        .problem()
        .expect(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_in_with_a_password_counts_and_refuses_in_its_own_shape() {
    let app = spawn_app(LIMITED).await;
    app.api
        .post(
            "/v1/users",
            json!({"username": "cat", "password": "cat-password", "email": "cat@example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let anonymous = app.api.anonymous();
    // One failure each through the console, tsuru and Runnable: three in all.
    app.api
        .anonymous()
        .request(Method::POST, "/console/session")
        .header("origin", app.url(""))
        .json(&json!({"username": "cat", "password": "guess-1"}))
        .send()
        .await
        .expect("the console's sign-in");
    let tsuru = anonymous
        .call(
            Method::POST,
            "/compat/tsuru/users/cat@example.org/tokens",
            Some(json!({"password": "guess-2"})),
        )
        .await;
    assert_eq!(tsuru.status, StatusCode::UNAUTHORIZED, "{:?}", tsuru.body);
    let runnable = anonymous
        .call(
            Method::POST,
            "/compat/runnable/token",
            Some(json!({"username": "cat", "password": "guess-3"})),
        )
        .await;
    assert_eq!(
        runnable.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        runnable.body
    );
    // Then each refuses the right password, in its own error shape, with Retry-After.
    let native = sign_in(&app, "cat", "cat-password").await;
    assert_eq!(
        native.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        native.body
    );
    retry_after(&native);
    let tsuru = anonymous
        .call(
            Method::POST,
            "/compat/tsuru/users/cat@example.org/tokens",
            Some(json!({"password": "cat-password"})),
        )
        .await;
    assert_eq!(
        tsuru.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        tsuru.body
    );
    retry_after(&tsuru);
    let openpai = anonymous
        .call(
            Method::POST,
            "/compat/openpai/api/v2/authn/basic/login",
            Some(json!({"username": "cat", "password": "cat-password"})),
        )
        .await;
    assert_eq!(
        openpai.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        openpai.body
    );
    retry_after(&openpai);
    // OpenPAI's shape: `{code, message}`.
    assert!(
        openpai.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("too many failed sign-ins")),
        "{:?}",
        openpai.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_failed_its_count_is_refused_whatever_the_name() {
    let app = spawn_app(
        "auth:\n  sign_in_limit: {failures_per_user: 1000, failures_per_address: 3, per_seconds: 300}\n",
    )
    .await;
    app.api.new_user("dan", "dan-password").await;
    for name in ["eve", "fay", "gus"] {
        sign_in(&app, name, "guess")
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    let limited = sign_in(&app, "dan", "dan-password").await;
    retry_after(&limited);
    let problem = limited
        .problem()
        .expect(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(problem.detail().contains("from this address"), "{problem}");
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/v1/events/live` with `token` in the header: the socket, or the refusal's status and
/// `Retry-After`.
async fn open_live(app: &TestApp, token: &str) -> Result<Socket, (u16, Option<String>)> {
    let mut request = format!("ws://{}/v1/events/live", app.address)
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        )),
        Err(e) => panic!("open the live feed: {e}"),
    }
}

/// Opens `/v1/events/live` with `token` once the server has given back a closed socket's
/// place (it does when it sees the socket close).
async fn open_live_soon(app: &TestApp, token: &str) -> Socket {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match open_live(app, token).await {
            Ok(socket) => return socket,
            Err((429, _)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(refused) => panic!("still refused after 10 s: {refused:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_holds_at_most_its_live_sockets_and_gets_one_back_when_one_closes() {
    let app = spawn_app("live:\n  max_sockets_per_token: 2\n").await;
    let token = app.api.token.clone();
    let mut first = open_live(&app, &token).await.expect("the first");
    let _second = open_live(&app, &token).await.expect("the second");
    // The third, with the token in the header: refused before the upgrade.
    let (status, retry) = open_live(&app, &token).await.expect_err("refused");
    assert_eq!(status, 429);
    assert_eq!(retry.as_deref(), Some("5"));
    // With the token as the first message: closed 4429.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/events/live", app.address))
            .await
            .expect("open without a header");
    futures::SinkExt::send(
        &mut socket,
        Message::Text(json!({"token": token}).to_string().into()),
    )
    .await
    .expect("send the token");
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.expect("a close frame"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(closed.code, CloseCode::from(4429), "{closed:?}");
    assert!(
        closed.reason.contains("max_sockets_per_token"),
        "{closed:?}"
    );
    // Another token of the same user has sockets of its own.
    let other = app
        .api
        .post("/v1/tokens", json!({"description": "another"}))
        .await
        .expect(StatusCode::CREATED);
    let other = other.body["token"].as_str().expect("a token");
    let _others = open_live(&app, other).await.expect("another token's");
    // One closed: one more opens.
    first.close(None).await.expect("close the first");
    open_live_soon(&app, &token).await;
}

/// Sends `head` (and whatever body it holds) on a new connection to `app` and reads until the
/// server closes it: its whole answer, within 10 s.
async fn raw_exchange(app: &TestApp, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut client = tokio::net::TcpStream::connect(app.address)
        .await
        .expect("connect");
    client.write_all(head.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer))
        .await
        .expect("answered and closed within 10 s")
        .expect("read the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_larger_than_the_limit_is_413_and_writes_nothing() {
    let app = spawn_app("").await;
    let log = app.api.log_head().await;
    // A client says it sends 3 MiB: answered at once, before any of it is read.
    let answer = raw_exchange(
        &app,
        &format!(
            "POST /v1/teams HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            app.address,
            app.api.token,
            3 * 1024 * 1024
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");
    log.assert_unchanged("bodies over 2 MiB").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trickles_its_body_is_answered_408_in_time() {
    let app = spawn_app("http:\n  body_read_timeout_seconds: 1\n").await;
    let log = app.api.log_head().await;
    let started = std::time::Instant::now();
    // The rest of the body never comes; the answer does, and then the connection closes.
    let answer = raw_exchange(
        &app,
        &format!(
            "POST /v1/teams HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
            app.address, app.api.token
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered before the timeout: {:?}",
        started.elapsed()
    );
    log.assert_unchanged("a body that never came").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_sent_all_at_once_are_counted_before_their_passwords_are_checked() {
    let app = spawn_app(LIMITED).await;
    app.api.new_user("hal", "hal-password").await;
    let guesses = (0..20).map(|i| {
        let app = &app;
        async move { sign_in(app, "hal", &format!("guess-{i}")).await.status }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, limited), (3, 17), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_emails_at_tsuru_are_counted_each_apart_so_a_429_tells_no_one_is_known() {
    let app = spawn_app(LIMITED).await;
    let anonymous = app.api.anonymous();
    for i in 0..6 {
        let answer = anonymous
            .call(
                Method::POST,
                &format!("/compat/tsuru/users/nobody{i}@example.org/tokens"),
                Some(json!({"password": "guess"})),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{i}: {:?}",
            answer.body
        );
    }
}
