//! Password reset by email, over real HTTP and a real SMTP receiver, as a user who forgot their
//! password would go through it: ask for a reset (anyone may), get the token by mail, use it,
//! get the new password by mail, log in with it. Every refusal is a problem and writes nothing;
//! neither the token nor the new password is ever in the log, as the API shows it or as stored.
//! Nothing is recorded before the mail server took the mail: a mail refused leaves the old
//! password and the token working. A user is sent a token at most once a minute, and a new
//! token supersedes the earlier ones.

use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, StreamId};
use bosun_tests::receivers::{Mail, SmtpSink};
use bosun_tests::{config_file, spawn_app, work_dir, Api, Server, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PASSWORD: &str = "old-password";
const EMAIL: &str = "ann@example.org";

fn config(smtp: &SmtpSink, ttl_seconds: u64) -> String {
    config_on(smtp.port, ttl_seconds)
}

/// The configuration of a server mailing through the SMTP server on `port`.
fn config_on(port: u16, ttl_seconds: u64) -> String {
    format!(
        "notifications:\n  smtp: {{host: 127.0.0.1, port: {port}, from: bosun@example.com}}\nidentity:\n  password_reset_ttl_seconds: {ttl_seconds}\n"
    )
}

/// A server mailing through `smtp`, with user `ann` (email [`EMAIL`], password [`PASSWORD`]).
async fn start(smtp: &SmtpSink, ttl_seconds: u64) -> TestApp {
    start_on(smtp.port, ttl_seconds).await
}

/// [`start`], mailing through the SMTP server on `port`.
async fn start_on(port: u16, ttl_seconds: u64) -> TestApp {
    let app = spawn_app(&config_on(port, ttl_seconds)).await;
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

/// An SMTP relay to an [`SmtpSink`] that can be told to refuse: while it refuses, every
/// connection is greeted with `554` (the server will take no mail) and closed.
struct Relay {
    port: u16,
    refusing: Arc<AtomicBool>,
}

impl Relay {
    async fn start(sink: &SmtpSink) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let refusing = Arc::new(AtomicBool::new(false));
        let (flag, target) = (refusing.clone(), sink.port);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let refuse = flag.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if refuse {
                        let _ = client
                            .write_all(b"554 5.3.2 not accepting mail now\r\n")
                            .await;
                        return;
                    }
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Relay { port, refusing }
    }

    fn refuse(&self, refuse: bool) {
        self.refusing.store(refuse, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_the_mail_server_refuses_is_not_set_and_the_token_still_works() {
    let smtp = SmtpSink::start();
    let relay = Relay::start(&smtp).await;
    let app = start_on(relay.port, 3600).await;
    let token = ask_for_a_token(&app, &smtp).await;
    // The mail with the new password is refused: 503, and nothing is recorded.
    relay.refuse(true);
    let head = app.api.log_head().await;
    let mails = smtp.mails().len();
    let problem = head
        .refused(
            &app.api.anonymous(),
            Method::POST,
            &format!("/v1/users/ann/password-reset/{token}"),
            None,
        )
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE, "mail_failed");
    assert!(problem.detail().contains("not changed"), "{problem}");
    assert_eq!(smtp.mails().len(), mails);
    // Ann is not locked out: her old password still logs in.
    assert_eq!(login_status(&app.api, PASSWORD).await, StatusCode::CREATED);
    // And once mail goes through again, the same token still works.
    relay.refuse(false);
    let password = use_token(&app, &smtp, &token).await;
    app.api.login("ann", &password).await;
    assert_eq!(
        login_status(&app.api, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_mail_is_refused_records_nothing_and_may_be_asked_again_at_once() {
    let smtp = SmtpSink::start();
    let relay = Relay::start(&smtp).await;
    let app = start_on(relay.port, 3600).await;
    relay.refuse(true);
    let head = app.api.log_head().await;
    head.refused(
        &app.api.anonymous(),
        Method::POST,
        "/v1/users/ann/password-reset",
        None,
    )
    .await
    .expect(StatusCode::SERVICE_UNAVAILABLE, "mail_failed");
    // Not counted as a request: asked again at once, it is mailed.
    relay.refuse(false);
    let token = ask_for_a_token(&app, &smtp).await;
    use_token(&app, &smtp, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_within_a_minute_is_429_with_retry_after_and_sends_nothing() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    let token = ask_for_a_token(&app, &smtp).await;
    let head = app.api.log_head().await;
    let mails = smtp.mails().len();
    let answer = app
        .api
        .anonymous()
        .call(Method::POST, "/v1/users/ann/password-reset", None)
        .await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    let retry_after: u64 = answer
        .header("retry-after")
        .parse()
        .expect("Retry-After: seconds");
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let problem = answer.problem();
    assert_eq!(problem.code, "too_many_requests", "{problem}");
    head.assert_unchanged("a request too soon").await;
    assert_eq!(smtp.mails().len(), mails, "no mail for a request too soon");
    // The token sent stays good.
    let password = use_token(&app, &smtp, &token).await;
    app.api.login("ann", &password).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_token_supersedes_the_ones_sent_before() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    // A token sent before requests were limited, unexpired, as its event was stored then.
    let earlier = "bosun_an-earlier-token-still-unexpired";
    let digest: String = Sha256::digest(earlier.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    app.store()
        .await
        .append(
            &StreamId::parse("user-ann").unwrap(),
            ExpectedVersion::StreamExists,
            vec![NewEvent::new(
                "PasswordResetRequested",
                json!({"username": "ann", "digest": digest,
                       "expires_at": chrono::Utc::now() + chrono::Duration::hours(1)}),
            )],
        )
        .await
        .unwrap();
    // A new request (not too soon: the earlier one says nothing of when it was made).
    let token = ask_for_a_token(&app, &smtp).await;
    // The earlier token no longer works.
    let head = app.api.log_head().await;
    let mails = smtp.mails().len();
    head.refused(
        &app.api.anonymous(),
        Method::POST,
        &format!("/v1/users/ann/password-reset/{earlier}"),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(smtp.mails().len(), mails);
    assert_eq!(login_status(&app.api, PASSWORD).await, StatusCode::CREATED);
    // The new one does.
    let password = use_token(&app, &smtp, &token).await;
    app.api.login("ann", &password).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_send_one_token_and_the_others_are_429() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    let anyone = app.api.anonymous();
    let answers = futures::future::join_all(
        (0..5).map(|_| anyone.call(Method::POST, "/v1/users/ann/password-reset", None)),
    )
    .await;
    let mut statuses: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::NO_CONTENT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ],
        "{:#?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    for answer in answers
        .into_iter()
        .filter(|a| a.status != StatusCode::NO_CONTENT)
    {
        assert!(answer.header("retry-after").parse::<u64>().is_ok());
        assert_eq!(answer.problem().code, "too_many_requests");
    }
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "one mail for five requests: {mails:#?}");
    // The token it holds works.
    let token = line_value(&mails[0], "token");
    let password = use_token(&app, &smtp, &token).await;
    app.api.login("ann", &password).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_uses_of_one_token_mail_one_password_and_it_logs_in() {
    let smtp = SmtpSink::start();
    let app = start(&smtp, 3600).await;
    let token = ask_for_a_token(&app, &smtp).await;
    let before = smtp.mails().len();
    let anyone = app.api.anonymous();
    let path = format!("/v1/users/ann/password-reset/{token}");
    let (first, second) = tokio::join!(
        anyone.call(Method::POST, &path, None),
        anyone.call(Method::POST, &path, None)
    );
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::NO_CONTENT, StatusCode::GONE],
        "{} / {}",
        first.body,
        second.body
    );
    let gone = if first.status == StatusCode::GONE {
        first
    } else {
        second
    };
    assert_eq!(gone.problem().code, "reset_token_used");
    let mails = smtp.mails();
    assert_eq!(mails.len(), before + 1, "one password mailed: {mails:#?}");
    let mail = mails.last().unwrap();
    assert!(mail.data.contains("new password for ann"), "{}", mail.data);
    let password = line_value(mail, "password");
    app.api.login("ann", &password).await;
    assert_eq!(
        login_status(&app.api, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
}
