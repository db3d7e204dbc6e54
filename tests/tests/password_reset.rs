//! Password reset by email, over real HTTP and a real SMTP receiver, as a user who forgot their
//! password would go through it: ask for a reset (anyone may), get the token by mail, use it,
//! get the new password by mail, log in with it. Every refusal is a problem and writes nothing;
//! neither the token nor the new password is ever in the log, as the API shows it or as stored.

use bosun_tests::receivers::{Mail, SmtpSink};
use bosun_tests::{config_file, spawn_app, work_dir, Api, Server, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

const PASSWORD: &str = "old-password";
const EMAIL: &str = "ann@example.org";

fn config(smtp: &SmtpSink, ttl_seconds: u64) -> String {
    format!(
        "notifications:\n  smtp: {{host: 127.0.0.1, port: {}, from: bosun@example.com}}\nidentity:\n  password_reset_ttl_seconds: {ttl_seconds}\n",
        smtp.port
    )
}

/// A server mailing through `smtp`, with user `ann` (email [`EMAIL`], password [`PASSWORD`]).
async fn start(smtp: &SmtpSink, ttl_seconds: u64) -> TestApp {
    let app = spawn_app(&config(smtp, ttl_seconds)).await;
    app.api
        .post(
            "/v1/users",
            json!({"username": "ann", "password": PASSWORD, "email": EMAIL}),
        )
        .await
        .expect(StatusCode::CREATED);
    app
}

/// The value on the line `<label>: <value>` of `mail`'s text.
fn line_value(mail: &Mail, label: &str) -> String {
    let prefix = format!("{label}: ");
    mail.data
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {label:?} line in the mail:\n{}", mail.data))
}

/// Asks for a reset of ann's password as anyone would, and gives the token the mail brought.
async fn ask_for_a_token(app: &TestApp, smtp: &SmtpSink) -> String {
    let before = smtp.mails().len();
    app.api
        .anonymous()
        .call(Method::POST, "/v1/users/ann/password-reset", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let mails = smtp.mails();
    assert_eq!(mails.len(), before + 1, "one mail per request: {mails:#?}");
    let mail = mails.last().unwrap();
    assert_eq!(mail.to, [EMAIL]);
    assert!(
        mail.data.contains("password reset for ann"),
        "{}",
        mail.data
    );
    line_value(mail, "token")
}

/// Uses `token` as anyone would (204), and gives the new password the mail brought.
async fn use_token(app: &TestApp, smtp: &SmtpSink, token: &str) -> String {
    let before = smtp.mails().len();
    app.api
        .anonymous()
        .call(
            Method::POST,
            &format!("/v1/users/ann/password-reset/{token}"),
            None,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    let mails = smtp.mails();
    assert_eq!(mails.len(), before + 1, "{mails:#?}");
    let mail = mails.last().unwrap();
    assert_eq!(mail.to, [EMAIL]);
    assert!(mail.data.contains("new password for ann"), "{}", mail.data);
    line_value(mail, "password")
}

/// How many events of the stored log hold `text` anywhere (data or metadata), by SQL.
async fn stored_events_holding(app: &TestApp, text: &str) -> i64 {
    let store = app.store().await;
    let client = store.pool().get().await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM events
             WHERE strpos(data::text, $1) > 0 OR strpos(metadata::text, $1) > 0",
            &[&text],
        )
        .await
        .unwrap()
        .get(0)
}

/// Asserts `secret` is in neither `/v1/events` (read by an admin) nor the stored log.
async fn assert_not_in_the_log(app: &TestApp, secret: &str) {
    assert!(secret.len() >= 20, "a real secret: {secret:?}");
    let shown = serde_json::to_string(&app.api.all_events().await).unwrap();
    assert!(!shown.contains(secret), "a secret is in /v1/events");
    assert_eq!(
        stored_events_holding(app, secret).await,
        0,
        "a secret is stored"
    );
}

async fn login_status(api: &Api, password: &str) -> StatusCode {
    api.anonymous()
        .post(
            "/v1/auth/tokens",
            json!({"username": "ann", "password": password}),
        )
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_by_mail_and_the_new_one_logs_in() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    let session = app.api.login("ann", PASSWORD).await;

    let token = ask_for_a_token(&app, &smtp).await;
    let password = use_token(&app, &smtp, &token).await;

    // The new password logs in; the old one no longer does.
    let fresh = app.api.login("ann", &password).await;
    assert_eq!(
        fresh
            .get("/v1/auth/whoami")
            .await
            .expect(StatusCode::OK)
            .body["user"],
        "ann"
    );
    assert_eq!(
        login_status(&app.api, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    // The tokens ann held keep working, as in tsuru.
    session.get("/v1/auth/whoami").await.expect(StatusCode::OK);
    // ann may choose a password of her own with the one she got.
    fresh
        .call(
            Method::PUT,
            "/v1/users/ann/password",
            Some(json!({"old": password, "new": "mine-again"})),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    app.api.login("ann", "mine-again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_the_token_nor_the_new_password_is_ever_in_the_log() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    let token = ask_for_a_token(&app, &smtp).await;
    let password = use_token(&app, &smtp, &token).await;
    assert_not_in_the_log(&app, &token).await;
    assert_not_in_the_log(&app, &password).await;
    // What the log does keep: who asked (anyone), for which user, until when; and the reset,
    // with the token's digest redacted in what the API shows.
    let events = app
        .api
        .get("/v1/events?category=user&type=PasswordResetRequested")
        .await
        .expect(StatusCode::OK)
        .body;
    let requested = &events.as_array().unwrap()[0];
    assert_eq!(requested["stream_id"], "user-ann");
    assert_eq!(requested["metadata"]["actor"], "anonymous");
    assert_eq!(requested["data"]["digest"], "[redacted]");
    assert!(requested["data"]["expires_at"].is_string(), "{requested}");
    let used = app
        .api
        .get("/v1/events?category=user&type=PasswordResetUsed")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(used.as_array().unwrap().len(), 1, "{used}");
    let changed = app
        .api
        .get("/v1/events?category=user&type=PasswordChanged")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(changed.as_array().unwrap().len(), 1, "{changed}");
    assert_eq!(changed[0]["data"]["password_hash"], "[redacted]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_token_is_gone_and_writes_nothing() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    let token = ask_for_a_token(&app, &smtp).await;
    let password = use_token(&app, &smtp, &token).await;
    let head = app.api.log_head().await;
    let mails = smtp.mails().len();
    head.refused(
        &app.api.anonymous(),
        Method::POST,
        &format!("/v1/users/ann/password-reset/{token}"),
        None,
    )
    .await
    .expect(StatusCode::GONE, "reset_token_used");
    assert_eq!(smtp.mails().len(), mails, "no mail for a refusal");
    // The password set by the first use still stands.
    app.api.login("ann", &password).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_gone_and_writes_nothing() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 1).await;
    let token = ask_for_a_token(&app, &smtp).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let head = app.api.log_head().await;
    head.refused(
        &app.api.anonymous(),
        Method::POST,
        &format!("/v1/users/ann/password-reset/{token}"),
        None,
    )
    .await
    .expect(StatusCode::GONE, "reset_token_expired");
    assert_eq!(login_status(&app.api, PASSWORD).await, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_voids_a_token_asked_for_before() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    let token = ask_for_a_token(&app, &smtp).await;
    let ann = app.api.login("ann", PASSWORD).await;
    ann.call(
        Method::PUT,
        "/v1/users/ann/password",
        Some(json!({"old": PASSWORD, "new": "remembered"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let head = app.api.log_head().await;
    head.refused(
        &app.api.anonymous(),
        Method::POST,
        &format!("/v1/users/ann/password-reset/{token}"),
        None,
    )
    .await
    .expect(StatusCode::GONE, "reset_token_used");
    app.api.login("ann", "remembered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_or_a_token_never_issued_is_not_found_and_writes_nothing() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    let anyone = app.api.anonymous();
    let head = app.api.log_head().await;
    for path in [
        "/v1/users/nobody/password-reset",
        "/v1/users/nobody/password-reset/bosun_whatever",
        "/v1/users/no%20such/password-reset",
        "/v1/users/ann/password-reset/bosun_never-issued-token",
    ] {
        head.refused(&anyone, Method::POST, path, None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
    assert!(smtp.mails().is_empty(), "{:#?}", smtp.mails());
    // A removed user is unknown too.
    app.api
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let head = app.api.log_head().await;
    head.refused(&anyone, Method::POST, "/v1/users/ann/password-reset", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_an_email_cannot_reset_and_nothing_is_written() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    app.api
        .post(
            "/v1/users",
            json!({"username": "bob", "password": PASSWORD}),
        )
        .await
        .expect(StatusCode::CREATED);
    let head = app.api.log_head().await;
    let problem = head
        .refused(
            &app.api.anonymous(),
            Method::POST,
            "/v1/users/bob/password-reset",
            None,
        )
        .await
        .expect(StatusCode::CONFLICT, "no_email");
    assert!(problem.detail().contains("bob"), "{problem}");
    assert!(smtp.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_mail_server_a_reset_is_unavailable_and_records_nothing() {
    let app = spawn_app("").await;
    app.api
        .post(
            "/v1/users",
            json!({"username": "ann", "password": PASSWORD, "email": EMAIL}),
        )
        .await
        .expect(StatusCode::CREATED);
    let head = app.api.log_head().await;
    for path in [
        "/v1/users/ann/password-reset",
        "/v1/users/ann/password-reset/bosun_some-token",
    ] {
        let problem = head
            .refused(&app.api.anonymous(), Method::POST, path, None)
            .await
            .expect(StatusCode::SERVICE_UNAVAILABLE, "smtp_not_configured");
        assert!(problem.detail().contains("notifications.smtp"), "{problem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_that_is_down_is_a_503_and_the_password_stays() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app(&format!(
        "notifications:\n  smtp: {{host: 127.0.0.1, port: {port}, from: bosun@example.com}}\n"
    ))
    .await;
    app.api
        .post(
            "/v1/users",
            json!({"username": "ann", "password": PASSWORD, "email": EMAIL}),
        )
        .await
        .expect(StatusCode::CREATED);
    app.api
        .anonymous()
        .refused(Method::POST, "/v1/users/ann/password-reset", None)
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE, "mail_failed");
    assert_eq!(login_status(&app.api, PASSWORD).await, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_log_shows_neither_the_token_nor_the_new_password() {
    let smtp = SmtpSink::start();
    let dir = work_dir();
    let config = config_file(dir.path(), &config(&smtp, 3600));
    let server = Server::start(
        dir.path(),
        &["-c", config.to_str().unwrap()],
        &[
            ("BOSUN_LISTEN", "127.0.0.1:0"),
            ("RUST_LOG", "debug,tokio_postgres=warn"),
        ],
    );
    let admin = Api::new(&server, dir.path());
    admin
        .post(
            "/v1/users",
            json!({"username": "ann", "password": PASSWORD, "email": EMAIL}),
        )
        .await
        .expect(StatusCode::CREATED);
    let anyone = admin.anonymous();
    anyone
        .call(Method::POST, "/v1/users/ann/password-reset", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let token = line_value(&smtp.mails()[0], "token");
    anyone
        .call(
            Method::POST,
            &format!("/v1/users/ann/password-reset/{token}"),
            None,
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    let password = line_value(&smtp.mails()[1], "password");
    admin.login("ann", &password).await;
    let log = server.log();
    assert!(
        log.contains("/v1/users/ann/password-reset/[redacted]"),
        "the request is logged, without its token:\n{log}"
    );
    let printed = server.stdout().join("\n");
    for secret in [&token, &password] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret is in the server log"
        );
        assert!(!printed.contains(secret.as_str()), "a secret is on stdout");
    }
}
