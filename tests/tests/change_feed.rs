//! One change feed for everyone, over real HTTP and WebSocket: `GET /v1/events` and
//! `/v1/events/live` for a token with the read scope show the events of the streams its caller
//! may read, in position order, resumable (`Bosun-Next-From`, `from`), and an admin's show all.
//! The server runs in the test's process (`spawn_app`).

use bosun_tests::{spawn_app, Api};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const CONFIG: &str = r#"
catalog:
  shop:
    production:
      ok:
        command: ["true"]
"#;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";

/// Every event `client` reads through `GET /v1/events`, page after page of `limit`, following
/// `Bosun-Next-From`.
async fn feed_of(client: &Api, limit: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut from = 0;
    loop {
        let answer = client
            .get(&format!("/v1/events?from={from}&limit={limit}"))
            .await
            .expect(StatusCode::OK);
        let next: u64 = answer
            .header("bosun-next-from")
            .parse()
            .expect("a position");
        let head: u64 = answer.header("bosun-head").parse().expect("a head");
        events.extend(answer.body.as_array().expect("a page").iter().cloned());
        if next > head {
            return events;
        }
        assert!(next > from, "Bosun-Next-From moves on: {next} after {from}");
        from = next;
    }
}

fn positions(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["position"].as_u64().expect("a position"))
        .collect()
}

/// The streams ann may read in the world [`world`] makes.
fn anns(event: &Value, ann_jobs: &[String]) -> bool {
    let stream = event["stream_id"].as_str().expect("a stream id");
    let own_token = stream.starts_with("token-")
        && (event["data"]["username"] == "ann" || event["metadata"]["actor"] == "ann");
    ["user-ann", "team-ops", "app-shop", "platform-python"].contains(&stream)
        || own_token
        || ann_jobs.iter().any(|job| stream == format!("job-{job}"))
}

/// Team `ops` with app `shop` and ann in it, team `secret` without her, bob outside; a job of
/// ann's on `shop` and one of bob's. Returns ann's and bob's clients and ann's job.
async fn world(admin: &Api) -> (Api, Api, String) {
    admin.shop_of_team_ops().await;
    let ann = admin.new_user("ann", "ann-password").await;
    let bob = admin.new_user("bob", "bob-password").await;
    admin
        .call(Method::PUT, "/v1/teams/ops/members/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .post("/v1/teams", json!({"name": "secret"}))
        .await
        .expect(StatusCode::CREATED);
    let job = ann
        .post(
            "/v1/jobs",
            json!({"app": "shop", "env": "production", "task": "ok", "wait": true}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    // The admin's runnable, saved as an image everyone may see and fork: its stream stays its
    // owner's (its events hold its start command).
    let runnable = admin
        .post(
            "/v1/runnables",
            json!({"name": "hello", "start_command": "sh main.sh",
                   "files": [{"path": "main.sh", "content": "echo hello\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let runnable = runnable["id"].as_str().expect("a runnable id");
    admin
        .post(&format!("/v1/runnables/{runnable}/save"), json!({}))
        .await
        .expect(StatusCode::OK);
    bob.post(
        "/v1/users/bob/keys",
        json!({"name": "laptop", "key": ED25519}),
    )
    .await
    .expect(StatusCode::CREATED);
    admin.still().await;
    let id = job["id"].as_str().expect("a job id").to_string();
    (ann, bob, id)
}

async fn connect(app_base: &str, token: &str, query: &str) -> Socket {
    let url = format!(
        "{}/v1/events/live?{query}",
        app_base.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .expect("open the live feed")
        .0
}

/// What `socket` sends until nothing more comes for `quiet`.
async fn received(socket: &mut Socket, quiet: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(quiet, socket.next()).await {
        if let Message::Text(text) = message.expect("a message") {
            got.push(serde_json::from_str(&text).expect("an envelope"));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_reads_the_streams_it_may_read_and_an_admin_all_of_them() {
    let app = spawn_app(CONFIG).await;
    let admin = app.api.clone();
    let (ann, bob, job) = world(&admin).await;

    let all = feed_of(&admin, 1000).await;
    let head = admin.head().await;
    assert_eq!(
        positions(&all),
        (1..=head).collect::<Vec<_>>(),
        "the admin's is the log"
    );
    let expected: Vec<Value> = all
        .iter()
        .filter(|e| anns(e, std::slice::from_ref(&job)))
        .cloned()
        .collect();
    assert!(
        expected
            .iter()
            .any(|e| e["stream_id"] == format!("job-{job}"))
            && expected.iter().any(|e| e["stream_id"] == "app-shop"),
        "the world gives ann something to read"
    );
    // Pages of 3: short pages and Bosun-Next-From both exercised.
    assert_eq!(feed_of(&ann, 3).await, expected, "ann's feed");
    assert_eq!(feed_of(&ann, 1000).await, expected, "ann's feed, one page");
    let bobs = feed_of(&bob, 1000).await;
    assert!(bobs.iter().any(|e| e["stream_id"] == "user-bob"));
    assert!(
        bobs.iter()
            .all(|e| !["team-ops", "app-shop", "team-secret", "user-ann"]
                .contains(&e["stream_id"].as_str().unwrap_or_default())),
        "bob reads none of ops' or ann's streams"
    );

    assert!(all.iter().any(|e| e["stream_id"]
        .as_str()
        .unwrap_or_default()
        .starts_with("runnable-")));
    // A stream read alone answers to the same rule.
    ann.get("/v1/streams/app-shop").await.expect(StatusCode::OK);
    bob.get("/v1/streams/app-shop")
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readers_live_feed_shows_what_it_may_read_and_follows_its_teams() {
    let app = spawn_app(CONFIG).await;
    let admin = app.api.clone();
    let (ann, bob, job) = world(&admin).await;
    let expected: Vec<Value> = feed_of(&admin, 1000)
        .await
        .into_iter()
        .filter(|e| anns(e, std::slice::from_ref(&job)))
        .collect();

    // Catch-up from the start (`from=0` is the start, as everywhere): what the pages show.
    let mut live = connect(&admin.base, &ann.token, "from=0").await;
    let caught_up = received(&mut live, Duration::from_secs(2)).await;
    assert_eq!(caught_up, expected, "the catch-up is ann's feed");
    // A second socket of hers, for job events only: an app's jobs are hers while the app is.
    let from = admin.head().await + 1;
    let mut jobs = connect(
        &admin.base,
        &ann.token,
        &format!("category=job&from={from}"),
    )
    .await;
    let submit = || async {
        admin
            .post(
                "/v1/jobs",
                json!({"app": "shop", "env": "production", "task": "ok", "wait": true}),
            )
            .await
            .expect(StatusCode::OK)
            .body["id"]
            .as_str()
            .expect("a job id")
            .to_string()
    };
    let admins_job = submit().await;
    let seen = received(&mut jobs, Duration::from_secs(2)).await;
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|e| e["stream_id"] == format!("job-{admins_job}")),
        "{seen:?}"
    );
    received(&mut live, Duration::from_secs(1)).await;

    // Live: ann's app changes, bob's key, then ann's own.
    admin
        .call(
            Method::PATCH,
            "/v1/apps/shop",
            Some(json!({"description": "the shop"})),
        )
        .await
        .expect(StatusCode::OK);
    bob.call(Method::DELETE, "/v1/users/bob/keys/laptop", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let streams = |events: &[Value]| -> BTreeSet<String> {
        events
            .iter()
            .map(|e| e["stream_id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let got = received(&mut live, Duration::from_secs(2)).await;
    assert_eq!(
        streams(&got),
        BTreeSet::from(["app-shop".to_string()]),
        "{got:?}"
    );

    // Out of ops: its app is no longer hers; her own stream still is.
    admin
        .call(Method::DELETE, "/v1/teams/ops/members/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let left = received(&mut live, Duration::from_secs(2)).await;
    assert!(
        streams(&left).is_subset(&BTreeSet::from(["team-ops".to_string()])),
        "{left:?}"
    );
    admin
        .call(
            Method::PATCH,
            "/v1/apps/shop",
            Some(json!({"description": "not ann's"})),
        )
        .await
        .expect(StatusCode::OK);
    ann.post(
        "/v1/users/ann/keys",
        json!({"name": "laptop", "key": ED25519}),
    )
    .await
    .expect(StatusCode::CREATED);
    let after = received(&mut live, Duration::from_secs(2)).await;
    assert_eq!(
        streams(&after),
        BTreeSet::from(["user-ann".to_string()]),
        "{after:?}"
    );
    // The job socket, which no app event passes, follows her teams all the same.
    received(&mut jobs, Duration::from_secs(1)).await;
    let not_hers = submit().await;
    let seen = received(&mut jobs, Duration::from_secs(2)).await;
    assert!(
        seen.is_empty(),
        "job {not_hers} of an app no longer hers: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_demoted_while_watching_sees_only_what_it_may_read_from_then_on() {
    let app = spawn_app(CONFIG).await;
    let admin = app.api.clone();
    admin
        .post(
            "/v1/users",
            json!({"username": "root2", "password": "root2-password", "admin": true}),
        )
        .await
        .expect(StatusCode::CREATED);
    let root2 = admin.login("root2", "root2-password").await;
    let from = admin.head().await + 1;
    let mut live = connect(&admin.base, &root2.token, &format!("from={from}")).await;
    admin
        .post("/v1/teams", json!({"name": "before"}))
        .await
        .expect(StatusCode::CREATED);
    let seen = received(&mut live, Duration::from_secs(2)).await;
    assert!(
        seen.iter().any(|e| e["stream_id"] == "team-before"),
        "an admin sees every stream: {seen:?}"
    );
    admin
        .call(
            Method::PATCH,
            "/v1/users/root2",
            Some(json!({"admin": false})),
        )
        .await
        .expect(StatusCode::OK);
    // At once, before any periodic check of the token.
    admin
        .post("/v1/teams", json!({"name": "after"}))
        .await
        .expect(StatusCode::CREATED);
    let seen = received(&mut live, Duration::from_secs(3)).await;
    let streams: BTreeSet<&str> = seen
        .iter()
        .map(|e| e["stream_id"].as_str().unwrap_or_default())
        .collect();
    assert!(!streams.contains("team-after"), "{streams:?}");
    assert!(
        streams.contains("user-root2"),
        "its own demotion: {streams:?}"
    );
}
