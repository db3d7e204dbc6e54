//! Identity, access and the audit API, over real HTTP, as a new user would use them: the first
//! admin, users, teams, tokens, their refusals (each with its status, a problem body and nothing
//! written), and the log behind it all. The server runs in the test's process (`spawn_app`),
//! except where the test is about the process: what the first start prints, and `bosun admin`.

use bosun_eventstore::{EventStore, Filter};
use bosun_tests::{bosun_binary, join, spawn_app, work_dir, Api, Server, TestApp, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// A user's registration body.
fn user(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

/// Issues a token of `client`'s user with `body` (scopes, description…) and gives its id and
/// a client with it.
async fn issue(client: &Api, body: Value) -> (String, Api) {
    let issued = client
        .post("/v1/tokens", body)
        .await
        .expect(StatusCode::CREATED);
    (
        issued.body["token_id"].as_str().unwrap().to_string(),
        client.with_token(issued.body["token"].as_str().unwrap()),
    )
}

/// What the log keeps of a token: its SHA-256 digest in lowercase hex.
fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The whole log as the database holds it, read past the API (which redacts what it shows), as
/// one JSON text to search.
async fn stored_log(app: &TestApp) -> String {
    let store = app.store().await;
    let events = store
        .read_all(1, 1_000_000, &Filter::all())
        .await
        .expect("read the stored log");
    serde_json::to_string(&events).unwrap()
}

/// Asserts none of `secrets` is in the log in clear: neither in what the API shows of it (read
/// by `admin`) nor in the log as stored (`stored`).
async fn assert_not_in_the_log(admin: &Api, stored: &str, secrets: &[&str]) {
    let shown = serde_json::to_string(&admin.all_events().await).unwrap();
    for (i, secret) in secrets.iter().enumerate() {
        assert!(!secret.is_empty());
        assert!(
            !shown.contains(secret) && !stored.contains(secret),
            "secret {i} is in the log in clear"
        );
    }
}

// ---- The first start and the command line: processes of their own ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_makes_an_admin_whose_password_is_shown_once_and_never_logged() {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    // Its token on disk (0600), its password on stdout, once.
    let token_file = dir.path().join("bosun-data/admin-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let admin = Api::new(&server, dir.path());
    let printed = server.stdout();
    let passwords: Vec<String> = printed
        .iter()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("password:")
                .map(|p| p.trim().to_string())
        })
        .collect();
    assert_eq!(
        passwords.len(),
        1,
        "the password is shown once: {printed:?}"
    );
    let password = &passwords[0];
    let session = admin.login("admin", password).await;
    let me = session.get("/v1/auth/whoami").await.expect(StatusCode::OK);
    assert_eq!(
        (me.body["user"].as_str(), me.body["admin"].as_bool()),
        (Some("admin"), Some(true))
    );
    assert!(
        me.body["expires_at"].is_string(),
        "a login's token expires: {}",
        me.body
    );

    // Neither the password nor a token is in the log in clear; the password is an argon2 hash.
    let (_postgres, store) = join(&dir.path().join("bosun-data")).await;
    let stored = store
        .read_all(1, 1_000_000, &Filter::all())
        .await
        .expect("read the stored log");
    let stored = serde_json::to_string(&stored).unwrap();
    assert_not_in_the_log(&admin, &stored, &[password, &admin.token, &session.token]).await;
    assert!(
        stored.contains("$argon2id$"),
        "passwords are kept as argon2 hashes"
    );
}

/// Runs `bosun` with `args` in `dir`, `stdin` on its standard input.
fn bosun(dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(bosun_binary())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bosun");
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_command_line_writes_to_the_servers_database_as_cli() {
    let dir = work_dir();
    let server = Server::start(
        dir.path(),
        &["-c", "/dev/null"],
        &[("BOSUN_LISTEN", "127.0.0.1:0")],
    );
    let admin = Api::new(&server, dir.path());
    let created = bosun(
        dir.path(),
        &["admin", "create-user", "ops_lead", "--admin"],
        "",
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8_lossy(&created.stdout);
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password printed: {stdout}"));
    let session = admin.login("ops_lead", password).await;
    assert_eq!(session.get("/v1/auth/whoami").await.body["admin"], true);

    let issued = bosun(dir.path(), &["admin", "issue-token", "ops_lead"], "");
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let token = admin.with_token(String::from_utf8_lossy(&issued.stdout).trim());
    let me = token.get("/v1/auth/whoami").await;
    assert_eq!(
        (me.status, &me.body["user"]),
        (StatusCode::OK, &json!("ops_lead"))
    );

    // A token for a user that does not exist: a failure, and nothing written.
    let unknown = bosun(dir.path(), &["admin", "issue-token", "ghost"], "");
    assert!(!unknown.status.success());
    let events = token.all_events().await;
    let cli = events
        .iter()
        .filter(|e| e["metadata"]["actor"] == "cli")
        .count();
    assert_eq!(
        cli, 2,
        "the user and the token, recorded as done by the command line"
    );
}

#[test]
fn the_admin_command_line_refuses_a_bad_name_or_password_before_it_starts() {
    let dir = work_dir();
    let bad = bosun(dir.path(), &["admin", "create-user", "no way"], "");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a bad name is a usage error: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // A password read from stdin meets the same rule as one in a body: no NUL (nor any other
    // control character), whatever the HTTP layer refuses on its own.
    for password in ["secret\0pw\n", "secret\u{1b}pw\n"] {
        let refused = bosun(
            dir.path(),
            &["admin", "create-user", "stdin_user", "--password-stdin"],
            password,
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("password"), "{stderr}");
    }
    assert!(
        !dir.path().join("bosun-data").exists(),
        "nothing was started"
    );
}

// ---- Logging in ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_gives_a_token_that_expires() {
    let app = spawn_app("").await;
    let ann = app.api.new_user("ann", "ann-secret-1").await;
    let me = ann.get("/v1/auth/whoami").await.expect(StatusCode::OK);
    assert_eq!(
        (me.body["user"].as_str(), me.body["admin"].as_bool()),
        (Some("ann"), Some(false))
    );
    assert!(
        me.body["expires_at"].is_string(),
        "a login's token expires: {}",
        me.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    let anonymous = admin.anonymous();
    let wrong = log
        .refused(
            &anonymous,
            Method::POST,
            "/v1/auth/tokens",
            Some(user("admin", "not-it-at-all")),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    let unknown = log
        .refused(
            &anonymous,
            Method::POST,
            "/v1/auth/tokens",
            Some(user("nobody", "not-it-at-all")),
        )
        .await;
    assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_past_its_expiry_is_refused_at_once() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin.new_user("bob", "bob-secret-1").await;
    let short = admin
        .anonymous()
        .post(
            "/v1/auth/tokens",
            json!({"username": "bob", "password": "bob-secret-1", "expires_in": 1}),
        )
        .await
        .expect(StatusCode::CREATED);
    let short = admin.with_token(short.body["token"].as_str().unwrap());
    short.get("/v1/auth/whoami").await.expect(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = admin.log_head().await;
    log.refused(&short, Method::GET, "/v1/auth/whoami", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_ends_the_token_at_once() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let bob = admin.new_user("bob", "bob-secret-1").await;
    bob.call(Method::DELETE, "/v1/auth/tokens/current", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    bob.refused(Method::GET, "/v1/auth/whoami", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_needs_no_write_scope() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let (_, viewer) = issue(admin, json!({"scopes": ["read"]})).await;
    viewer
        .call(Method::DELETE, "/v1/auth/tokens/current", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    viewer
        .refused(Method::GET, "/v1/auth/whoami", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

// ---- Authentication ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_forged_or_malformed_token_is_refused() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for client in [
        admin.anonymous(),
        admin.with_token("bosun_not-a-real-token"),
    ] {
        log.refused(&client, Method::GET, "/v1/auth/whoami", None)
            .await
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    admin
        .anonymous()
        .call_with(
            Method::GET,
            "/v1/auth/whoami",
            &[("authorization", "Token abc")],
            None,
        )
        .await
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    log.assert_unchanged("a malformed Authorization").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_may_come_as_a_basic_user_name_with_x_oauth_basic() {
    // pulsar's form: the token as a Basic user name with x-oauth-basic as the password.
    let app = spawn_app("").await;
    let admin = &app.api;
    let basic = admin
        .anonymous()
        .request(Method::GET, "/v1/auth/whoami")
        .basic_auth(&admin.token, Some("x-oauth-basic"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
}

// ---- Users ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_a_user_whose_password_hash_is_not_shown() {
    let app = spawn_app("").await;
    let created = app
        .api
        .post(
            "/v1/users",
            json!({"username": "ann", "password": "ann-secret-1", "email": "ann@example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert!(created.headers.contains_key("bosun-position"));
    assert_eq!(created.body["username"], "ann");
    assert!(created.body.get("password_hash").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_that_cannot_be_is_refused_saying_why_and_nothing_is_written() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin
        .post(
            "/v1/users",
            json!({"username": "ann", "password": "ann-secret-1", "email": "ann@example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let log = admin.log_head().await;
    for (body, status, code) in [
        (
            user("b b", "secret1"),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            user(&"x".repeat(65), "secret1"),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            user("bob", "12345"),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            user("bob", &"p".repeat(51)),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"username": "bob", "pasword": "secret1"}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (user("ann", "secret1"), StatusCode::CONFLICT, "user_exists"),
        (
            json!({"username": "bob", "password": "secret1", "email": "ANN@example.org"}),
            StatusCode::CONFLICT,
            "email_taken",
        ),
    ] {
        log.refused(admin, Method::POST, "/v1/users", Some(body))
            .await
            .expect(status, code);
    }
    // Each field at fault is named, in order.
    let both = log
        .refused(admin, Method::POST, "/v1/users", Some(user("b b", "1")))
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(both.fields(), ["username", "password"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_admin_may_not_manage_users_nor_read_others_nor_the_audit() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    let log = admin.log_head().await;
    log.refused(
        &ann,
        Method::POST,
        "/v1/users",
        Some(user("eve", "secret1")),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    for path in [
        "/v1/users",
        "/v1/users/admin",
        "/v1/audit",
        "/v1/streams/user-admin",
    ] {
        log.refused(&ann, Method::GET, path, None)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    // The log is hers to read, only what she may read of it (`change_feed.rs`): not the admin's.
    let events = ann.get("/v1/events").await.expect(StatusCode::OK).body;
    let events = events.as_array().expect("a page");
    assert!(events.iter().any(|e| e["stream_id"] == "user-ann"));
    assert!(events.iter().all(|e| e["stream_id"] != "user-admin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_reads_their_own_user_and_stream() {
    let app = spawn_app("").await;
    let ann = app.api.new_user("ann", "ann-secret-1").await;
    ann.get("/v1/users/ann").await.expect(StatusCode::OK);
    ann.get("/v1/streams/user-ann").await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_by_a_non_admin_or_to_an_unknown_user_is_refused() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin.new_user("ann", "ann-secret-1").await;
    let bob = admin.new_user("bob", "bob-secret-1").await;
    let log = admin.log_head().await;
    let promote = json!({"admin": true});
    log.refused(&bob, Method::PATCH, "/v1/users/ann", Some(promote.clone()))
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    log.refused(admin, Method::PATCH, "/v1/users/nobody", Some(promote))
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_a_405_problem() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    log.refused(admin, Method::PUT, "/v1/users", None)
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

// ---- Passwords ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_changed_only_by_its_user_knowing_the_old_one() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    let bob = admin.new_user("bob", "bob-secret-1").await;
    let log = admin.log_head().await;
    let change = |old: &str, new: &str| Some(json!({"old": old, "new": new}));
    let path = "/v1/users/ann/password";
    log.refused(&ann, Method::PUT, path, change("wrong-old", "ann-secret-2"))
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    log.refused(
        &bob,
        Method::PUT,
        path,
        change("ann-secret-1", "ann-secret-2"),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    log.refused(&ann, Method::PUT, path, change("ann-secret-1", "short"))
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    // Who may not change it is told so whatever the new password is, an admin too.
    for other in [&bob, admin] {
        for body in [change("ann-secret-1", "short"), Some(json!({}))] {
            log.refused(other, Method::PUT, path, body)
                .await
                .expect(StatusCode::FORBIDDEN, "forbidden");
        }
    }
    ann.call(Method::PUT, path, change("ann-secret-1", "ann-secret-2"))
        .await
        .expect(StatusCode::NO_CONTENT);
    admin.login("ann", "ann-secret-2").await;
    admin
        .anonymous()
        .refused(
            Method::POST,
            "/v1/auth/tokens",
            Some(user("ann", "ann-secret-1")),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_password_is_refused() {
    // By the body's reader or by the password's own rule, whichever is first.
    let app = spawn_app("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    log.refused(
        admin,
        Method::POST,
        "/v1/users",
        Some(user("eve", "secret\u{0}pw")),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_control_characters_in_a_password_are_refused_naming_the_field() {
    // Which only the password's rule refuses.
    let app = spawn_app("").await;
    let admin = &app.api;
    let dan = admin.new_user("dan", "dan-secret-1").await;
    let log = admin.log_head().await;
    let refusals = [
        (
            Method::POST,
            "/v1/users",
            admin,
            user("eve", "secret\u{1b}pw"),
            "password",
        ),
        (
            Method::PATCH,
            "/v1/users/dan",
            admin,
            json!({"password": "new\tsecret"}),
            "password",
        ),
        (
            Method::PUT,
            "/v1/users/dan/password",
            &dan,
            json!({"old": "dan-secret-1", "new": "new\nsecret"}),
            "new",
        ),
    ];
    for (method, path, client, body, field) in refusals {
        let problem = log
            .refused(client, method, path, Some(body))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), [field], "{path}: {problem}");
    }
    admin.login("dan", "dan-secret-1").await;
}

// ---- Emails ----

/// A server with erin (erin@example.org) and fay (no email).
async fn erin_and_fay() -> TestApp {
    let app = spawn_app("").await;
    for body in [
        json!({"username": "erin", "password": "erin-secret", "email": "erin@example.org"}),
        user("fay", "fay-secret-1"),
    ] {
        app.api
            .post("/v1/users", body)
            .await
            .expect(StatusCode::CREATED);
    }
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_email_is_left_as_it_is_and_nothing_is_written() {
    let app = erin_and_fay().await;
    let admin = &app.api;
    let log = admin.log_head().await;
    let kept = admin
        .call(Method::PATCH, "/v1/users/erin", Some(json!({})))
        .await;
    assert_eq!(
        (kept.status, &kept.body["email"]),
        (StatusCode::OK, &json!("erin@example.org"))
    );
    log.assert_unchanged("a change of nothing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_email_clears_it_in_the_answer_the_read_model_and_the_log() {
    let app = erin_and_fay().await;
    let admin = &app.api;
    let cleared = admin
        .call(
            Method::PATCH,
            "/v1/users/erin",
            Some(json!({"email": null})),
        )
        .await;
    assert_eq!(
        (cleared.status, &cleared.body["email"]),
        (StatusCode::OK, &Value::Null),
        "{}",
        cleared.body
    );
    assert_eq!(admin.get("/v1/users/erin").await.body["email"], Value::Null);
    let stream = admin.get("/v1/streams/user-erin").await;
    let last = stream.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event_type"], "UserUpdated");
    assert_eq!(
        last["data"],
        json!({"username": "erin", "email_cleared": true})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_a_cleared_email_changes_nothing_and_writes_nothing() {
    let app = erin_and_fay().await;
    let admin = &app.api;
    let clear = || {
        admin.call(
            Method::PATCH,
            "/v1/users/erin",
            Some(json!({"email": null})),
        )
    };
    clear().await.expect(StatusCode::OK);
    let log = admin.log_head().await;
    let again = clear().await.expect(StatusCode::OK);
    assert_eq!(again.body["email"], Value::Null);
    log.assert_unchanged("clearing it again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleared_address_is_free_for_another_user_and_then_taken() {
    let app = erin_and_fay().await;
    let admin = &app.api;
    admin
        .call(
            Method::PATCH,
            "/v1/users/erin",
            Some(json!({"email": null})),
        )
        .await
        .expect(StatusCode::OK);
    let moved = admin
        .call(
            Method::PATCH,
            "/v1/users/fay",
            Some(json!({"email": "ERIN@example.org"})),
        )
        .await;
    assert_eq!(
        (moved.status, &moved.body["email"]),
        (StatusCode::OK, &json!("erin@example.org")),
        "{}",
        moved.body
    );
    let log = admin.log_head().await;
    log.refused(
        admin,
        Method::PATCH,
        "/v1/users/erin",
        Some(json!({"email": "erin@example.org"})),
    )
    .await
    .expect(StatusCode::CONFLICT, "email_taken");
}

// ---- Usernames ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_differs_only_in_case_is_taken_as_the_same_name_is() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin
        .post("/v1/users", user("ann", "secret-pw-1"))
        .await
        .expect(StatusCode::CREATED);
    let log = admin.log_head().await;
    for name in ["ann", "ANN", "Ann", "aNN"] {
        log.refused(
            admin,
            Method::POST,
            "/v1/users",
            Some(user(name, "secret-pw-1")),
        )
        .await
        .expect(StatusCode::CONFLICT, "user_exists");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_keeps_the_case_it_was_registered_with() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let mixed = admin
        .post("/v1/users", user("Bo_Lee", "secret-pw-1"))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(mixed.body["username"], "Bo_Lee");
    let bo = admin.login("Bo_Lee", "secret-pw-1").await;
    assert_eq!(bo.get("/v1/auth/whoami").await.body["user"], "Bo_Lee");
    admin.get("/v1/users/Bo_Lee").await.expect(StatusCode::OK);
    let log = admin.log_head().await;
    log.refused(
        admin,
        Method::POST,
        "/v1/users",
        Some(user("bo_lee", "secret-pw-1")),
    )
    .await
    .expect(StatusCode::CONFLICT, "user_exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_registrations_of_one_name_in_two_cases_at_once_one_wins() {
    let app = spawn_app("").await;
    let admin = &app.api;
    for (lower, upper) in [("carl", "CARL"), ("dana", "Dana"), ("eli", "ELI")] {
        let (a, b) = tokio::join!(
            admin.post("/v1/users", user(lower, "secret-pw-1")),
            admin.post("/v1/users", user(upper, "secret-pw-1")),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "{lower}: {} / {upper}: {}",
            a.body,
            b.body
        );
        let loser = if a.status == StatusCode::CONFLICT {
            a
        } else {
            b
        };
        loser.problem().expect(StatusCode::CONFLICT, "user_exists");
        let users = admin.get("/v1/users?limit=1000").await;
        let holders = users
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["username"].as_str().unwrap().eq_ignore_ascii_case(lower))
            .count();
        assert_eq!(holders, 1, "{}", users.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_users_name_is_free_again_in_any_case() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin
        .post("/v1/users", user("ann", "secret-pw-1"))
        .await
        .expect(StatusCode::CREATED);
    admin
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .post("/v1/users", user("ANN", "secret-pw-1"))
        .await
        .expect(StatusCode::CREATED);
}

// ---- The last admin ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_can_be_neither_removed_nor_demoted() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    log.refused(admin, Method::DELETE, "/v1/users/admin", None)
        .await
        .expect(StatusCode::CONFLICT, "last_admin");
    log.refused(
        admin,
        Method::PATCH,
        "/v1/users/admin",
        Some(json!({"admin": false})),
    )
    .await
    .expect(StatusCode::CONFLICT, "last_admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_promotes_a_user_and_demotes_them_again() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin.new_user("bob", "bob-secret-1").await;
    let promote = |to: bool| admin.call(Method::PATCH, "/v1/users/bob", Some(json!({"admin": to})));
    let promoted = promote(true).await;
    assert_eq!(
        (promoted.status, &promoted.body["admin"]),
        (StatusCode::OK, &json!(true))
    );
    let demoted = promote(false).await;
    assert_eq!(
        (demoted.status, &demoted.body["admin"]),
        (StatusCode::OK, &json!(false))
    );
}

// ---- Removing a user ----

/// ann, who made team `ops` with bob in it and issued an API token, removed by an admin: her
/// session and her API token.
async fn ann_in_ops_then_removed(admin: &Api) -> (Api, Api) {
    let ann = admin.new_user("ann", "ann-secret-1").await;
    ann.post("/v1/teams", json!({"name": "ops"}))
        .await
        .expect(StatusCode::CREATED);
    admin.new_user("bob", "bob-secret-1").await;
    ann.call(Method::PUT, "/v1/teams/ops/members/bob", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let (_, ann_api_token) = issue(&ann, json!({"description": "ci"})).await;
    admin
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    (ann, ann_api_token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_users_tokens_stop_working_and_they_leave_their_teams() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let (ann, ann_api_token) = ann_in_ops_then_removed(admin).await;
    for token in [&ann, &ann_api_token] {
        token
            .refused(Method::GET, "/v1/auth/whoami", None)
            .await
            .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_eq!(
        admin.get("/v1/teams/ops").await.body["members"],
        json!(["bob"])
    );
    admin
        .refused(Method::GET, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_of_a_removed_name_starts_with_no_team_nor_the_old_tokens() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let (_, ann_api_token) = ann_in_ops_then_removed(admin).await;

    let again = admin
        .post("/v1/users", user("ann", "new-ann-pw"))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(again.body["teams"], json!([]));
    assert_eq!(
        ann_api_token.get("/v1/auth/whoami").await.status,
        StatusCode::UNAUTHORIZED,
        "the old user's token stays dead"
    );
    // And can be added to the team again.
    admin
        .call(Method::PUT, "/v1/teams/ops/members/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        admin.get("/v1/teams/ops").await.body["members"],
        json!(["ann", "bob"])
    );
}

// ---- Teams ----

/// A server with ann, bob and carl, and team ops of ann and bob (created by ann).
async fn team_ops() -> (TestApp, Api, Api, Api) {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    let bob = admin.new_user("bob", "bob-secret-1").await;
    let carl = admin.new_user("carl", "carl-pw-1").await;
    ann.post("/v1/teams", json!({"name": "ops"}))
        .await
        .expect(StatusCode::CREATED);
    ann.call(Method::PUT, "/v1/teams/ops/members/bob", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    (app, ann, bob, carl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creator_of_a_team_is_its_member_and_adds_others() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    let bob = admin.new_user("bob", "bob-secret-1").await;
    let team = ann
        .post("/v1/teams", json!({"name": "ops"}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(team.body["members"], json!(["ann"]));
    ann.call(Method::PUT, "/v1/teams/ops/members/bob", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        bob.get("/v1/teams/ops").await.body["members"],
        json!(["ann", "bob"])
    );
    assert_eq!(
        bob.get("/v1/auth/whoami").await.body["teams"],
        json!(["ops"])
    );
    bob.get("/v1/streams/team-ops").await.expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_members_and_admins_change_a_team() {
    let (app, _ann, _bob, carl) = team_ops().await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for (method, path) in [
        (Method::PUT, "/v1/teams/ops/members/carl"),
        (Method::DELETE, "/v1/teams/ops/members/bob"),
        (Method::DELETE, "/v1/teams/ops"),
    ] {
        log.refused(&carl, method, path, None)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    admin
        .call(Method::PUT, "/v1/teams/ops/members/carl", None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_name_is_taken_once() {
    let (app, _ann, _bob, carl) = team_ops().await;
    let log = app.api.log_head().await;
    log.refused(
        &carl,
        Method::POST,
        "/v1/teams",
        Some(json!({"name": "ops"})),
    )
    .await
    .expect(StatusCode::CONFLICT, "team_exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_is_no_user_or_not_in_the_team_is_not_found() {
    let (app, ann, _bob, _carl) = team_ops().await;
    let log = app.api.log_head().await;
    for (method, path) in [
        (Method::PUT, "/v1/teams/ops/members/nobody"),
        (Method::DELETE, "/v1/teams/ops/members/carl"),
    ] {
        log.refused(&ann, method, path, None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removes_another_then_the_team_which_is_then_gone() {
    let (app, ann, _bob, _carl) = team_ops().await;
    let admin = &app.api;
    ann.call(Method::DELETE, "/v1/teams/ops/members/bob", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        ann.get("/v1/teams/ops").await.body["members"],
        json!(["ann"])
    );
    ann.call(Method::DELETE, "/v1/teams/ops", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    ann.refused(Method::GET, "/v1/teams/ops", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    let log = admin.log_head().await;
    log.refused(admin, Method::DELETE, "/v1/teams/ops", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

// ---- Tokens and scopes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_reads_but_may_not_write_nor_give_itself_more_rights() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    let (_, read_only) = issue(
        &ann,
        json!({"description": "dashboard", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(
        read_only.get("/v1/auth/whoami").await.body["scopes"],
        json!(["read"])
    );
    let log = admin.log_head().await;
    log.refused(
        &read_only,
        Method::POST,
        "/v1/teams",
        Some(json!({"name": "dev"})),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    log.refused(
        &read_only,
        Method::POST,
        "/v1/tokens",
        Some(json!({"scopes": ["read", "write"]})),
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_an_unknown_scope_is_refused() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    let log = admin.log_head().await;
    log.refused(
        &ann,
        Method::POST,
        "/v1/tokens",
        Some(json!({"scopes": ["root"]})),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rights_need_the_admin_scope() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let (_, admin_read_only) = issue(admin, json!({"scopes": ["read"]})).await;
    let problem = admin_read_only
        .refused(Method::GET, "/v1/users", None)
        .await;
    assert_eq!(
        (problem.status, problem.code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "admin rights need the admin scope: {problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_read_scope_may_not_read() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let (_, write_only) = issue(admin, json!({"scopes": ["write"]})).await;
    let log = admin.log_head().await;
    log.refused(&write_only, Method::GET, "/v1/auth/whoami", None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_tokens_shows_no_secret() {
    let app = spawn_app("").await;
    let ann = app.api.new_user("ann", "ann-secret-1").await;
    let (_, read_only) = issue(
        &ann,
        json!({"description": "dashboard", "scopes": ["read"]}),
    )
    .await;
    let listed = ann.get("/v1/tokens").await.expect(StatusCode::OK);
    assert_eq!(listed.total(), 2, "her login's and the one issued");
    let text = listed.body.to_string();
    assert!(!text.contains(&read_only.token) && !text.contains(&ann.token));
    assert!(!text.contains("digest"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_revoked_by_its_user_not_another_and_stops_at_once() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    let bob = admin.new_user("bob", "bob-secret-1").await;
    let (id, read_only) = issue(&ann, json!({"scopes": ["read"]})).await;
    let path = format!("/v1/tokens/{id}");
    let log = admin.log_head().await;
    log.refused(&bob, Method::DELETE, &path, None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    ann.call(Method::DELETE, &path, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    read_only
        .refused(Method::GET, "/v1/auth/whoami", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_that_does_not_exist_is_not_found() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for path in [
        "/v1/tokens/00000000-0000-0000-0000-000000000000",
        "/v1/tokens/not-a-uuid",
    ] {
        log.refused(admin, Method::DELETE, path, None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}

// ---- Lists ----

/// A server with users u1…u4, two tokens issued (their ids, oldest first) and teams t1…t3.
async fn lists() -> (TestApp, Vec<String>) {
    let app = spawn_app("").await;
    let admin = &app.api;
    for name in ["u1", "u2", "u3", "u4"] {
        admin
            .post("/v1/users", user(name, "secret-pw-1"))
            .await
            .expect(StatusCode::CREATED);
    }
    let mut issued = Vec::new();
    for description in ["first", "second"] {
        issued.push(issue(admin, json!({"description": description})).await.0);
    }
    for name in ["t1", "t2", "t3"] {
        admin
            .post("/v1/teams", json!({"name": name}))
            .await
            .expect(StatusCode::CREATED);
    }
    (app, issued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_token_and_team_lists_are_paged_with_the_whole_lists_total() {
    let (app, issued) = lists().await;
    // A page: at most `limit` after `offset`, and the total of the whole list.
    let page = |path: &'static str, key: &'static str| {
        let admin = app.api.clone();
        async move {
            let answer = admin.get(path).await.expect(StatusCode::OK);
            let items: Vec<String> = answer
                .body
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item[key].as_str().unwrap().to_string())
                .collect();
            (items, answer.total())
        }
    };
    // Users by name: admin, u1, u2, u3, u4.
    assert_eq!(
        page("/v1/users?limit=2&offset=1", "username").await,
        (vec!["u1".to_string(), "u2".into()], 5)
    );
    assert_eq!(
        page("/v1/users?offset=4", "username").await,
        (vec!["u4".to_string()], 5)
    );
    assert_eq!(page("/v1/users?offset=10", "username").await, (vec![], 5));
    // Tokens newest first: the bootstrap token and the two issued.
    assert_eq!(
        page("/v1/tokens?limit=1", "token_id").await,
        (vec![issued[1].clone()], 3)
    );
    assert_eq!(
        page("/v1/tokens?limit=1&offset=1", "token_id").await,
        (vec![issued[0].clone()], 3)
    );
    assert_eq!(page("/v1/tokens?offset=2", "token_id").await.0.len(), 1);
    // Teams by name.
    assert_eq!(
        page("/v1/teams?limit=1&offset=1", "name").await,
        (vec!["t2".to_string()], 3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_bound_out_of_range_is_a_400_naming_it() {
    let (app, _) = lists().await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for list in ["/v1/users", "/v1/tokens", "/v1/teams"] {
        for (query, field) in [
            ("limit=-1", Some("limit")),
            ("limit=0", Some("limit")),
            ("limit=1001", Some("limit")),
            ("offset=-1", Some("offset")),
            ("limit=ten", None),
        ] {
            let path = format!("{list}?{query}");
            let problem = log
                .refused(admin, Method::GET, &path, None)
                .await
                .expect(StatusCode::BAD_REQUEST, "invalid_input");
            if let Some(field) = field {
                assert_eq!(problem.fields(), [field], "{path}: {problem}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_path_or_a_query_is_a_bad_request() {
    // The NUL character cannot be stored: in a path or a query it is a 400, never a 500. The
    // refusal itself is the extractors' (api/src/extract.rs); this checks the identity and log
    // routes get it.
    let app = spawn_app("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for (method, path) in [
        (Method::GET, "/v1/users/%00"),
        (Method::PATCH, "/v1/users/%00"),
        (Method::DELETE, "/v1/users/%00"),
        (Method::GET, "/v1/teams/%00"),
        (Method::DELETE, "/v1/teams/%00"),
        (Method::DELETE, "/v1/tokens/%00"),
        (Method::GET, "/v1/streams/user-%00"),
        (Method::GET, "/v1/audit?actor=%00"),
        (Method::GET, "/v1/events?actor=%00"),
        (Method::GET, "/v1/events?category=%00"),
        (Method::GET, "/v1/events?type=%00"),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"admin": true}));
        log.refused(admin, method, path, body)
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
}

// ---- The log and the audit ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_in_the_log_with_who_from_where_and_under_which_request() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    admin.new_user("bob", "bob-secret-1").await;
    ann.post("/v1/teams", json!({"name": "ops"}))
        .await
        .expect(StatusCode::CREATED);
    ann.call(Method::PUT, "/v1/teams/ops/members/bob", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let (id, _) = issue(&ann, json!({"scopes": ["read"]})).await;
    ann.call(Method::DELETE, &format!("/v1/tokens/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    ann.call(
        Method::PUT,
        "/v1/users/ann/password",
        Some(json!({"old": "ann-secret-1", "new": "ann-secret-2"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    admin
        .call(Method::PATCH, "/v1/users/bob", Some(json!({"admin": true})))
        .await
        .expect(StatusCode::OK);
    admin
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);

    let events = admin.all_events().await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for expected in [
        "UserRegistered",
        "TokenIssued",
        "TeamCreated",
        "TeamMemberAdded",
        "TokenRevoked",
        "PasswordChanged",
        "UserUpdated",
        "UserRemoved",
    ] {
        assert!(types.contains(&expected), "no {expected} in {types:?}");
    }
    let removal = events
        .iter()
        .find(|e| e["event_type"] == "UserRemoved")
        .unwrap();
    assert_eq!(removal["stream_id"], "user-ann");
    assert_eq!(removal["metadata"]["actor"], "admin");
    assert_eq!(removal["metadata"]["user_agent"], USER_AGENT);
    assert_eq!(removal["metadata"]["source"], "127.0.0.1");
    assert!(removal["metadata"]["request_id"].is_string());
    for key in ["correlation_id", "causation_id"] {
        assert!(removal["metadata"].get(key).is_some(), "no {key}");
    }
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>());
    let by_ann = admin.get("/v1/events?actor=ann&limit=1000").await;
    let by_ann = by_ann.body.as_array().unwrap();
    assert!(by_ann.iter().all(|e| e["metadata"]["actor"] == "ann"));
    assert!(by_ann.iter().any(|e| e["event_type"] == "TeamCreated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_tells_who_did_what_to_what_from_where_and_when() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    ann.post("/v1/teams", json!({"name": "ops"}))
        .await
        .expect(StatusCode::CREATED);
    let audit = admin
        .get("/v1/audit?actor=ann&limit=1000")
        .await
        .expect(StatusCode::OK);
    let entries = audit.body.as_array().unwrap();
    assert_eq!(audit.total(), entries.len() as u64);
    let created_team = entries
        .iter()
        .find(|e| e["action"] == "TeamCreated")
        .unwrap();
    assert_eq!(created_team["target"], "team-ops");
    assert_eq!(created_team["source"], "127.0.0.1");
    assert!(created_team["at"].is_string() && created_team["request_id"].is_string());
    let since = admin.get("/v1/audit?since=2999-01-01T00:00:00Z").await;
    assert_eq!(since.body, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_is_paged_by_its_next_links_each_entry_once_oldest_first() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    for team in ["ops", "web", "db"] {
        ann.post("/v1/teams", json!({"name": team}))
            .await
            .expect(StatusCode::CREATED);
    }
    let positions = |entries: &[Value]| -> Vec<u64> {
        entries
            .iter()
            .map(|e| e["position"].as_u64().unwrap())
            .collect()
    };
    let whole = admin
        .get("/v1/audit?limit=1000")
        .await
        .expect(StatusCode::OK);
    let whole = positions(whole.body.as_array().unwrap());
    assert!(whole.len() >= 4, "{whole:?}");
    assert!(whole.windows(2).all(|w| w[0] < w[1]), "oldest first");

    let (paged, pages) = admin.pages("/v1/audit?limit=2").await;
    assert_eq!(
        positions(&paged),
        whole,
        "the pages hold the audit, in order, once"
    );
    assert_eq!(pages, whole.len().div_ceil(2));
    let (by_ann, _) = admin.pages("/v1/audit?actor=ann&limit=1").await;
    assert!(
        by_ann.len() >= 3 && by_ann.iter().all(|e| e["actor"] == "ann"),
        "the link keeps the filter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_audit_query_is_refused() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let log = admin.log_head().await;
    for path in [
        "/v1/audit?limit=0",
        "/v1/audit?since=yesterday",
        "/v1/audit?after=-1",
    ] {
        log.refused(admin, Method::GET, path, None)
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_does_not_exist_is_not_found() {
    let app = spawn_app("").await;
    app.api
        .refused(Method::GET, "/v1/streams/user-nobody", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_nor_token_is_in_the_log_in_clear() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let ann = admin.new_user("ann", "ann-secret-1").await;
    let bob = admin.new_user("bob", "bob-secret-1").await;
    let carl = admin.new_user("carl", "carl-pw-1").await;
    let (_, read_only) = issue(&ann, json!({"scopes": ["read"]})).await;
    let (_, ann_api_token) = issue(&ann, json!({"description": "ci"})).await;
    let (_, write_only) = issue(admin, json!({"scopes": ["write"]})).await;
    let short = admin
        .anonymous()
        .post(
            "/v1/auth/tokens",
            json!({"username": "bob", "password": "bob-secret-1", "expires_in": 1}),
        )
        .await
        .expect(StatusCode::CREATED);
    let short = short.body["token"].as_str().unwrap().to_string();
    ann.call(
        Method::PUT,
        "/v1/users/ann/password",
        Some(json!({"old": "ann-secret-1", "new": "ann-secret-2"})),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    admin
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .post("/v1/users", user("ann", "new-ann-pw"))
        .await
        .expect(StatusCode::CREATED);
    let ann_again = admin.login("ann", "new-ann-pw").await;
    let bob_again = admin.login("bob", "bob-secret-1").await;
    bob_again
        .call(Method::DELETE, "/v1/auth/tokens/current", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let (_, viewer) = issue(admin, json!({"scopes": ["read"]})).await;
    viewer
        .call(Method::DELETE, "/v1/auth/tokens/current", None)
        .await
        .expect(StatusCode::NO_CONTENT);

    let stored = stored_log(&app).await;
    let secrets = [
        "ann-secret-1",
        "ann-secret-2",
        "bob-secret-1",
        "new-ann-pw",
        "carl-pw-1",
        &admin.token,
        &ann.token,
        &bob.token,
        &carl.token,
        &read_only.token,
        &ann_api_token.token,
        &write_only.token,
        &short,
        &ann_again.token,
        &bob_again.token,
        &viewer.token,
    ];
    assert_not_in_the_log(admin, &stored, &secrets).await;
    assert!(
        stored.contains("$argon2id$"),
        "passwords are kept as argon2 hashes"
    );
}

/// hal, logged in, with a token issued and his password changed: the session, the token's id
/// and the token.
async fn hal(admin: &Api) -> (Api, String, Api) {
    let session = admin.new_user("hal", "hal-secret-1").await;
    let (token_id, token) = issue(&session, json!({"description": "ci"})).await;
    session
        .call(
            Method::PUT,
            "/v1/users/hal/password",
            Some(json!({"old": "hal-secret-1", "new": "hal-secret-2"})),
        )
        .await
        .expect(StatusCode::NO_CONTENT);
    (session, token_id, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_log_shows_no_password_hash_nor_token_digest() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let (session, token_id, token) = hal(admin).await;
    let digests = [
        digest(&admin.token),
        digest(&session.token),
        digest(&token.token),
    ];
    let hides_secrets = |what: &str, body: &Value| {
        let text = body.to_string();
        assert!(!text.contains("$argon2"), "{what} shows a password hash");
        for d in &digests {
            assert!(!text.contains(d.as_str()), "{what} shows a token digest");
        }
    };
    // Each event is there, its secret's field redacted.
    let redacted = |events: &Value, event_type: &str, field: &str| {
        let found: Vec<&Value> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == event_type)
            .collect();
        assert!(!found.is_empty(), "no {event_type} in {events}");
        for event in found {
            assert_eq!(event["data"][field], "[redacted]", "{event}");
        }
    };

    // The user's own stream, as the user and as an admin.
    for reader in [&session, admin] {
        let stream = reader
            .get("/v1/streams/user-hal")
            .await
            .expect(StatusCode::OK);
        hides_secrets("/v1/streams/user-hal", &stream.body);
        redacted(&stream.body, "UserRegistered", "password_hash");
        redacted(&stream.body, "PasswordChanged", "password_hash");
        assert_eq!(stream.body[0]["data"]["username"], "hal");
    }

    // The token's stream.
    let stream = session
        .get(&format!("/v1/streams/token-{token_id}"))
        .await
        .expect(StatusCode::OK);
    hides_secrets("/v1/streams/token-…", &stream.body);
    redacted(&stream.body, "TokenIssued", "digest");
    assert_eq!(stream.body[0]["data"]["token_id"], token_id.as_str());

    // The whole log, for an admin, filtered or not.
    let events = Value::Array(admin.all_events().await);
    hides_secrets("/v1/events", &events);
    redacted(&events, "UserRegistered", "password_hash");
    redacted(&events, "PasswordChanged", "password_hash");
    redacted(&events, "TokenIssued", "digest");
    let users = admin.get("/v1/events?category=user,token").await;
    hides_secrets("/v1/events?category=user,token", &users.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_log_keeps_the_hashes_and_digests_it_checks_against() {
    let app = spawn_app("").await;
    let admin = &app.api;
    let (session, _, token) = hal(admin).await;
    let stored = stored_log(&app).await;
    assert!(stored.contains("$argon2id$"));
    for t in [&admin.token, &session.token, &token.token] {
        assert!(
            stored.contains(digest(t).as_str()),
            "the log lost a token's digest"
        );
    }
    admin.login("hal", "hal-secret-2").await;
    token.get("/v1/auth/whoami").await.expect(StatusCode::OK);
}
