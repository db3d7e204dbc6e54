//! Anonymous users over real HTTP, the server in the test's process (`spawn_app`): the seed's
//! flow (`GET /v1/users/me` 401, make an anonymous user, go on with its token), its token
//! expiring, creation limited per source address (a test client connects from another
//! loopback address to be another address), held to a total or turned off, registration keeping
//! the runnables and ending the anonymous token, two registrations racing with one token making
//! one user, a retried registration continuing one cut short (and no other name), a claim of a
//! name someone took meanwhile given up, a taken or reserved name refused with nothing changed,
//! and what an anonymous user may not do or read (nor which apps exist).

use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, StreamId};
use bosun_tests::{spawn_app, Answer, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// `client` makes an anonymous user: the answer, as it came.
async fn make_anonymous(client: &Api) -> Answer {
    client
        .anonymous()
        .call(Method::POST, "/v1/users/anonymous", None)
        .await
}

/// A new anonymous user on `app`'s server: a client with its token, and its name.
async fn anonymous(app: &TestApp) -> (Api, String) {
    let answer = make_anonymous(&app.api).await.expect(StatusCode::CREATED);
    let token = answer.body["token"]["token"].as_str().expect("a token");
    let name = answer.body["user"]["username"].as_str().expect("a name");
    (app.api.with_token(token), name.to_string())
}

/// The same server as `client`, with no token, from the loopback address `127.0.0.<last>`.
fn from_address(client: &Api, last: u8) -> Api {
    Api {
        base: client.base.clone(),
        token: String::new(),
        http: reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
            .build()
            .expect("an HTTP client"),
    }
}

fn register_body(username: &str) -> Value {
    json!({"username": username, "password": "ann-password", "email": "ann@example.org"})
}

async fn register(client: &Api, username: &str) -> Answer {
    client
        .post("/v1/users/me/register", register_body(username))
        .await
}

/// A root runnable `hello` the admin made and saved: its id.
async fn saved_root(admin: &Api) -> String {
    let files = json!([{"path": "hello.sh", "content": "echo hello\n"}]);
    let root = admin
        .post(
            "/v1/runnables",
            json!({"name": "hello", "start_command": "sh hello.sh", "files": files}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = root["id"].as_str().expect("an id").to_string();
    admin
        .call(Method::POST, &format!("/v1/runnables/{id}/save"), None)
        .await
        .expect(StatusCode::OK);
    id
}

/// The events of stream `id`, as `/v1/streams` shows them to the admin.
async fn stream(admin: &Api, id: &str) -> Vec<Value> {
    let answer = admin.get(&format!("/v1/streams/{id}")).await;
    answer
        .expect(StatusCode::OK)
        .body
        .as_array()
        .expect("a list")
        .clone()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_asks_me_gets_401_makes_an_anonymous_user_and_goes_on() {
    let app = spawn_app("").await;
    let nobody = app.api.anonymous();
    nobody
        .refused(Method::GET, "/v1/users/me", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    let answer = make_anonymous(&app.api).await.expect(StatusCode::CREATED);
    let user = &answer.body["user"];
    let name = user["username"].as_str().expect("a name");
    assert!(
        name.len() == 21 && name.starts_with("anon-"),
        "{}",
        answer.body
    );
    assert_eq!(
        (user["anonymous"].clone(), user["email"].clone()),
        (json!(true), Value::Null)
    );
    let token = &answer.body["token"];
    assert_eq!(token["user"], name);
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(token["expires_at"].clone()).expect("an expiry");
    let week = chrono::Utc::now() + chrono::Duration::days(7);
    assert!((expires - week).num_seconds().abs() < 60, "{expires}");
    let me = nobody
        .with_token(token["token"].as_str().expect("a token"))
        .get("/v1/users/me")
        .await
        .expect(StatusCode::OK);
    assert_eq!(&me.body, user);
    // The log says who made it: nobody authenticated, from the test's address.
    let events = stream(&app.api, &format!("user-{name}")).await;
    assert_eq!(types(&events), ["AnonymousUserCreated"]);
    assert_eq!(events[0]["metadata"]["actor"], "anonymous");
    assert_eq!(events[0]["metadata"]["source"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_token_stops_working_after_its_ttl() {
    let app = spawn_app("runnables:\n  anonymous_token_ttl_seconds: 1\n").await;
    let (client, _) = anonymous(&app).await;
    client.get("/v1/users/me").await.expect(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client
        .refused(Method::GET, "/v1/users/me", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_makes_at_most_count_then_429_while_another_still_may() {
    let app =
        spawn_app("runnables:\n  anonymous_per_address: {count: 2, per_seconds: 3600}\n").await;
    let here = from_address(&app.api, 1);
    for _ in 0..2 {
        make_anonymous(&here).await.expect(StatusCode::CREATED);
    }
    let head = app.api.log_head().await;
    let refused = make_anonymous(&here).await;
    let retry_after: u64 = refused.header("retry-after").parse().expect("seconds");
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    let problem = refused
        .problem()
        .expect(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(problem.detail().contains("retry in"), "{problem}");
    head.assert_unchanged("a refused anonymous user").await;
    make_anonymous(&from_address(&app.api, 2))
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_addresses_together_make_at_most_the_total_then_429() {
    let app = spawn_app("runnables:\n  anonymous_total: {count: 2, per_seconds: 3600}\n").await;
    for last in [1, 2] {
        make_anonymous(&from_address(&app.api, last))
            .await
            .expect(StatusCode::CREATED);
    }
    let head = app.api.log_head().await;
    let refused = make_anonymous(&from_address(&app.api, 3)).await;
    let retry_after: u64 = refused.header("retry-after").parse().expect("seconds");
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    let problem = refused
        .problem()
        .expect(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(problem.detail().contains("made lately"), "{problem}");
    head.assert_unchanged("an anonymous user past the total")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_of_zero_turns_anonymous_users_off() {
    let app = spawn_app("runnables:\n  anonymous_per_address: {count: 0}\n").await;
    let head = app.api.log_head().await;
    make_anonymous(&app.api)
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "anonymous_users_disabled");
    head.assert_unchanged("anonymous users turned off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_keeps_the_runnables_the_anonymous_user_made() {
    let app = spawn_app("").await;
    let root = saved_root(&app.api).await;
    let (anon, name) = anonymous(&app).await;
    let fork = anon
        .post("/v1/runnables", json!({"from": root}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = fork["id"].as_str().expect("an id").to_string();
    assert_eq!(fork["owner"], name.as_str());
    let answer = register(&anon, "ann").await.expect(StatusCode::OK);
    assert_eq!(answer.body["user"]["username"], "ann");
    assert_eq!(answer.body["user"]["anonymous"], false);
    assert_eq!(answer.body["user"]["email"], "ann@example.org");
    let ann = app
        .api
        .with_token(answer.body["token"]["token"].as_str().expect("a token"));
    let mine = ann
        .get(&format!("/v1/runnables/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(mine.body["owner"], "ann");
    let listed = ann
        .get("/v1/runnables?owner=ann")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        listed.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.body
    );
    let written = ann
        .request(Method::PUT, &format!("/v1/runnables/{id}/files/notes.txt"))
        .body("mine now")
        .send()
        .await
        .expect("PUT a file");
    assert_eq!(written.status(), StatusCode::CREATED);
    // ann logs in with the password registered, and the log says where ann came from.
    app.api.login("ann", "ann-password").await;
    let registered = stream(&app.api, "user-ann").await;
    assert_eq!(registered[0]["event_type"], "UserRegistered");
    assert_eq!(registered[0]["data"]["registered_from"], name.as_str());
    assert_eq!(registered[0]["metadata"]["actor"], name.as_str());
    let became = stream(&app.api, &format!("user-{name}")).await;
    assert_eq!(
        types(&became),
        [
            "AnonymousUserCreated",
            "AnonymousUserRegistering",
            "AnonymousUserRegistered"
        ]
    );
    assert_eq!(became[1]["data"]["registering_as"], "ann");
    assert_eq!(became[2]["data"]["registered_as"], "ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anonymous_token_stops_working_once_registered() {
    let app = spawn_app("").await;
    let (anon, name) = anonymous(&app).await;
    register(&anon, "ann").await.expect(StatusCode::OK);
    anon.refused(Method::GET, "/v1/users/me", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    anon.refused(
        Method::POST,
        "/v1/users/me/register",
        Some(register_body("bob")),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    // The anonymous user is no more: not listed, not readable.
    app.api
        .refused(Method::GET, &format!("/v1/users/{name}"), None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_cut_short_after_the_named_user_continues_when_retried() {
    let app = spawn_app("").await;
    let root = saved_root(&app.api).await;
    let (anon, name) = anonymous(&app).await;
    let fork = anon
        .post("/v1/runnables", json!({"from": root}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    // A first try that claimed ann on the anonymous user's stream, then got as far as the
    // named user, and no further (its node died).
    let store = app.store().await;
    store
        .append(
            &StreamId::parse(format!("user-{name}")).unwrap(),
            ExpectedVersion::Exact(0),
            vec![NewEvent::new(
                "AnonymousUserRegistering",
                json!({"username": name, "registering_as": "ann"}),
            )],
        )
        .await
        .unwrap();
    store
        .append(
            &StreamId::parse("user-ann").unwrap(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "UserRegistered",
                json!({"username": "ann", "email": "ann@example.org", "admin": false,
                       "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
                       "registered_from": name}),
            )],
        )
        .await
        .unwrap();
    // Another name now is refused, naming the one to finish with: no second user.
    let head = app.api.log_head().await;
    let problem = head
        .refused(
            &anon,
            Method::POST,
            "/v1/users/me/register",
            Some(register_body("bob")),
        )
        .await
        .expect(StatusCode::CONFLICT, "registration_pending");
    assert!(problem.detail().contains("registering as ann"), "{problem}");
    let body = json!({"username": "ann", "password": "second-try", "email": "other@example.org"});
    let answer = anon
        .post("/v1/users/me/register", body)
        .await
        .expect(StatusCode::OK);
    // The first try's email stays; the password sent last is the one that works.
    assert_eq!(answer.body["user"]["email"], "ann@example.org");
    let ann = app.api.login("ann", "second-try").await;
    let id = fork["id"].as_str().expect("an id");
    let mine = ann
        .get(&format!("/v1/runnables/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(mine.body["owner"], "ann");
    anon.refused(Method::GET, "/v1/users/me", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_registrations_racing_with_one_token_and_two_names_make_one_user() {
    let app = spawn_app("").await;
    let body = |name: &str| {
        json!({"username": name, "password": "a-good-password",
               "email": format!("{name}@example.org")})
    };
    // A few rounds, so that the two overlap in at least one whatever the timing.
    for round in 0..3 {
        let (anon, name) = anonymous(&app).await;
        let names = [format!("ann{round}"), format!("bob{round}")];
        let (first, second) = tokio::join!(
            anon.post("/v1/users/me/register", body(&names[0])),
            anon.post("/v1/users/me/register", body(&names[1]))
        );
        let answers = [first, second];
        let won: Vec<usize> = (0..2)
            .filter(|i| answers[*i].status == StatusCode::OK)
            .collect();
        assert_eq!(won.len(), 1, "{answers:?}");
        let lost = &answers[1 - won[0]];
        // Refused the other name, or its token found spent once the first was done.
        match lost.status {
            StatusCode::CONFLICT => assert_eq!(lost.body["code"], "registration_pending"),
            status => assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", lost.body),
        }
        // Only the winner's user was made: the other name's stream holds nothing.
        let loser = &names[1 - won[0]];
        app.api
            .refused(Method::GET, &format!("/v1/streams/user-{loser}"), None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
        let winner = &names[won[0]];
        let became = stream(&app.api, &format!("user-{name}")).await;
        assert_eq!(
            types(&became),
            [
                "AnonymousUserCreated",
                "AnonymousUserRegistering",
                "AnonymousUserRegistered"
            ]
        );
        assert_eq!(became[2]["data"]["registered_as"], winner.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_name_someone_took_meanwhile_is_given_up_for_another() {
    let app = spawn_app("").await;
    let (anon, name) = anonymous(&app).await;
    // A first try claimed ann and stopped there; ann was then registered by someone else.
    app.store()
        .await
        .append(
            &StreamId::parse(format!("user-{name}")).unwrap(),
            ExpectedVersion::Exact(0),
            vec![NewEvent::new(
                "AnonymousUserRegistering",
                json!({"username": name, "registering_as": "ann"}),
            )],
        )
        .await
        .unwrap();
    app.api.new_user("ann", "ann-password").await;
    register(&anon, "ann")
        .await
        .problem()
        .expect(StatusCode::CONFLICT, "user_exists");
    let events = stream(&app.api, &format!("user-{name}")).await;
    assert_eq!(
        types(&events),
        [
            "AnonymousUserCreated",
            "AnonymousUserRegistering",
            "AnonymousUserRegistrationAbandoned"
        ]
    );
    let answer = register(&anon, "carl").await.expect(StatusCode::OK);
    assert_eq!(answer.body["user"]["username"], "carl");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_a_taken_name_is_409_and_changes_nothing() {
    let app = spawn_app("").await;
    app.api.new_user("bob", "bob-password").await;
    let (anon, _) = anonymous(&app).await;
    let head = app.api.log_head().await;
    for taken in ["bob", "BOB"] {
        head.refused(
            &anon,
            Method::POST,
            "/v1/users/me/register",
            Some(register_body(taken)),
        )
        .await
        .expect(StatusCode::CONFLICT, "user_exists");
    }
    let me = anon.get("/v1/users/me").await.expect(StatusCode::OK);
    assert_eq!(me.body["anonymous"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_and_reserved_names_are_refused_naming_username() {
    let app = spawn_app("").await;
    let (anon, _) = anonymous(&app).await;
    let head = app.api.log_head().await;
    for reserved in ["me", "Anonymous", "anon-0123456789abcdef", "anon-x"] {
        let problem = head
            .refused(
                &anon,
                Method::POST,
                "/v1/users/me/register",
                Some(register_body(reserved)),
            )
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), ["username"], "{reserved}: {problem}");
    }
    // Nor may an admin give those names to anyone.
    head.refused(
        &app.api,
        Method::POST,
        "/v1/users",
        Some(json!({"username": "me", "password": "me-password"})),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_user_may_not_make_a_team_an_app_or_a_token() {
    let app = spawn_app("").await;
    let (anon, _) = anonymous(&app).await;
    let head = app.api.log_head().await;
    for (path, body) in [
        ("/v1/teams", json!({"name": "ops"})),
        ("/v1/apps", json!({"name": "shop", "platform": "python"})),
        ("/v1/tokens", json!({"description": "ci"})),
    ] {
        let problem = head
            .refused(&anon, Method::POST, path, Some(body))
            .await
            .expect(StatusCode::FORBIDDEN, "registration_required");
        assert!(problem.detail().contains("register"), "{path}: {problem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_user_reads_only_itself_its_tokens_and_runnables() {
    let app = spawn_app("").await;
    let (anon, name) = anonymous(&app).await;
    let job = uuid::Uuid::new_v4();
    for path in [
        "/v1/orchestrations".to_string(),
        "/v1/orchestrations/nightly".into(),
        "/v1/teams".into(),
        "/v1/teams/ops".into(),
        "/v1/users".into(),
        "/v1/users/admin".into(),
        "/v1/platforms".into(),
        "/v1/catalog".into(),
        "/v1/apps".into(),
        "/v1/jobs".into(),
        format!("/v1/jobs/{job}"),
        "/v1/services".into(),
        "/v1/healers".into(),
        format!("/v1/streams/user-{name}"),
    ] {
        let problem = anon
            .refused(Method::GET, &path, None)
            .await
            .expect(StatusCode::FORBIDDEN, "registration_required");
        assert!(problem.detail().contains("register"), "{path}: {problem}");
    }
    for path in [
        "/v1/runnables".to_string(),
        "/v1/users/me".into(),
        format!("/v1/users/{name}"),
        "/v1/tokens".into(),
        "/v1/auth/whoami".into(),
    ] {
        anon.get(&path).await.expect(StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_user_cannot_register_again() {
    let app = spawn_app("").await;
    let ann = app.api.new_user("ann", "ann-password").await;
    let head = app.api.log_head().await;
    let problem = head
        .refused(
            &ann,
            Method::POST,
            "/v1/users/me/register",
            Some(register_body("anna")),
        )
        .await
        .expect(StatusCode::FORBIDDEN, "already_registered");
    assert_eq!(problem.detail(), "you are already registered");
    // Who may comes before the body: a body that is no registration is still a 403.
    for body in [json!({"username": 5}), json!([])] {
        head.refused(&ann, Method::POST, "/v1/users/me/register", Some(body))
            .await
            .expect(StatusCode::FORBIDDEN, "already_registered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_user_cannot_tell_which_apps_exist() {
    let app = spawn_app("").await;
    let admin = &app.api;
    admin.shop_of_team_ops().await;
    let (anon, _) = anonymous(&app).await;
    // The same 403 for an app there is and one there is not.
    for path in [
        "/v1/apps/shop",
        "/v1/apps/missing",
        "/v1/apps/shop/env",
        "/v1/apps/missing/env",
    ] {
        anon.refused(Method::GET, path, None)
            .await
            .expect(StatusCode::FORBIDDEN, "registration_required");
    }
}
