//! Owners' registries of runnables over real HTTP, the server in the test's process
//! (`spawn_app`): a user at `runnables.quota` forks nothing more (403 `runnable_quota_exceeded`,
//! nothing written) while an admin has no limit, removing a runnable or the reaper's reap gives
//! its place back, forks racing at the quota's edge land only as many as it allows, an anonymous
//! user who registers keeps every runnable (handed over in one append), and removing a user
//! removes exactly the runnables their registry holds, those from before registries existed
//! (which only the read model lists), and closes the registry, which a later user of the name
//! (registered by an admin, or an anonymous user registering) reopens. Each test checks the
//! answers and what the log recorded (`runnable_owner-<username>` streams).

use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, StreamId};
use bosun_tests::{spawn_app, Answer, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The admin's saved root runnable, to fork: its id.
async fn saved_root(admin: &Api) -> String {
    let root = admin
        .post(
            "/v1/runnables",
            json!({"name": "hello", "start_command": "sh main.sh",
                   "files": [{"path": "main.sh", "content": "echo hello\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = id_of(&root);
    admin
        .call(Method::POST, &format!("/v1/runnables/{id}/save"), None)
        .await
        .expect(StatusCode::OK);
    id
}

fn id_of(runnable: &Value) -> String {
    runnable["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {runnable}"))
        .to_string()
}

async fn fork(client: &Api, from: &str) -> Answer {
    client.post("/v1/runnables", json!({"from": from})).await
}

/// `client` forks `from`, which must be accepted: the fork's id.
async fn forked(client: &Api, from: &str) -> String {
    id_of(&fork(client, from).await.expect(StatusCode::CREATED).body)
}

/// The events of `stream` (read by the admin), empty for none.
async fn stream_events(admin: &Api, stream: &str) -> Vec<Value> {
    let answer = admin.get(&format!("/v1/streams/{stream}")).await;
    if answer.status == StatusCode::NOT_FOUND {
        return vec![];
    }
    answer
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap()
        .clone()
}

/// `username`'s registry's events: type and the runnable(s) they name.
async fn registry(admin: &Api, username: &str) -> Vec<Value> {
    stream_events(admin, &format!("runnable_owner-{username}")).await
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect()
}

/// The ids of the runnables `username` owns, as the read model lists them to `admin`.
async fn owned(admin: &Api, username: &str) -> BTreeSet<String> {
    admin
        .get(&format!("/v1/runnables?owner={username}"))
        .await
        .expect(StatusCode::OK)
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect()
}

/// The server with `runnables.quota.user: {limit}`, and ann.
async fn with_quota(limit: i64, more: &str) -> (TestApp, Api) {
    let app = spawn_app(&format!("runnables:\n  quota:\n    user: {limit}\n{more}")).await;
    let ann = app.api.new_user("ann", "ann-password").await;
    (app, ann)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_the_quota_forks_nothing_more_and_an_admin_has_no_limit() {
    let (app, ann) = with_quota(2, "").await;
    let admin = &app.api;
    let root = saved_root(admin).await;
    let mine = [forked(&ann, &root).await, forked(&ann, &root).await];
    let log = admin.log_head().await;
    let refused = log
        .refused(
            &ann,
            Method::POST,
            "/v1/runnables",
            Some(json!({"from": root})),
        )
        .await
        .expect(StatusCode::FORBIDDEN, "runnable_quota_exceeded");
    assert!(refused.detail().contains("2 of 2"), "{refused}");
    assert_eq!(owned(admin, "ann").await, BTreeSet::from(mine.clone()));
    let events = registry(admin, "ann").await;
    assert_eq!(types(&events), ["RunnableOwnerTook", "RunnableOwnerTook"]);
    for (event, id) in events.iter().zip(&mine) {
        assert_eq!(event["data"], json!({"runnable": id}));
        assert_eq!(event["metadata"]["actor"], "ann");
    }
    // The admin is limited by nothing (and its root runnable is in its registry too).
    for _ in 0..3 {
        forked(admin, &root).await;
    }
    assert_eq!(registry(admin, "admin").await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_runnable_gives_its_place_back() {
    let (app, ann) = with_quota(1, "").await;
    let admin = &app.api;
    let root = saved_root(admin).await;
    let first = forked(&ann, &root).await;
    fork(&ann, &root)
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "runnable_quota_exceeded");
    let removed = ann
        .call(Method::DELETE, &format!("/v1/runnables/{first}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let second = forked(&ann, &root).await;
    let events = registry(admin, "ann").await;
    assert_eq!(
        types(&events),
        [
            "RunnableOwnerTook",
            "RunnableOwnerReleased",
            "RunnableOwnerTook"
        ]
    );
    assert_eq!(events[1]["data"], json!({"runnable": first}));
    assert_eq!(events[2]["data"], json!({"runnable": second}));
    // The release is the removal's own write: its position is the removal's last.
    assert_eq!(
        removed.header("bosun-position"),
        events[1]["position"].to_string(),
        "{events:?}"
    );
    assert_eq!(owned(admin, "ann").await, BTreeSet::from([second]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reapers_reap_gives_its_place_back() {
    let (app, ann) = with_quota(1, "  reap_after_seconds: 2\n  reap_interval_seconds: 1\n").await;
    let admin = &app.api;
    let root = saved_root(admin).await;
    let idle = forked(&ann, &root).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = registry(admin, "ann").await;
        if events.len() >= 2 {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "not released within 30 s: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        types(&events),
        ["RunnableOwnerTook", "RunnableOwnerReleased"]
    );
    assert_eq!(events[1]["data"], json!({"runnable": idle}));
    assert_eq!(events[1]["metadata"]["actor"], "reaper");
    let reaped = stream_events(admin, &format!("runnable-{idle}")).await;
    assert_eq!(types(&reaped).last(), Some(&"RunnableReaped"));
    // Its place is free again.
    let next = forked(&ann, &root).await;
    assert_eq!(owned(admin, "ann").await, BTreeSet::from([next]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forks_racing_at_the_quotas_edge_land_only_as_many_as_it_allows() {
    let (app, ann) = with_quota(3, "").await;
    let admin = &app.api;
    let root = saved_root(admin).await;
    forked(&ann, &root).await;
    // Eight at once for the last two places.
    let racing: Vec<_> = (0..8)
        .map(|_| {
            let (ann, root) = (ann.clone(), root.clone());
            tokio::spawn(async move { fork(&ann, &root).await })
        })
        .collect();
    let mut landed = Vec::new();
    for race in racing {
        let answer = race.await.unwrap();
        match answer.status {
            StatusCode::CREATED => landed.push(id_of(&answer.body)),
            _ => {
                answer
                    .problem()
                    .expect(StatusCode::FORBIDDEN, "runnable_quota_exceeded");
            }
        }
    }
    assert_eq!(landed.len(), 2, "{landed:?}");
    let events = registry(admin, "ann").await;
    assert_eq!(types(&events), ["RunnableOwnerTook"; 3]);
    assert_eq!(owned(admin, "ann").await.len(), 3);
    // Nothing else was created: every runnable created is in a registry.
    let created = admin
        .get("/v1/events?type=RunnableCreated&limit=1000")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(created.as_array().unwrap().len(), 1 + 3, "{created}");
}

/// An anonymous user, made with no credentials: its client and name.
async fn anonymous_user(app: &TestApp) -> (Api, String) {
    let made = app
        .api
        .anonymous()
        .post("/v1/users/anonymous", json!({}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let token = made["token"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {made}"));
    let name = made["user"]["username"]
        .as_str()
        .unwrap_or_else(|| panic!("no name: {made}"));
    (app.api.with_token(token), name.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_hands_every_runnable_over_in_one_append() {
    let app = spawn_app("runnables:\n  quota:\n    anonymous: 2\n").await;
    let admin = &app.api;
    let root = saved_root(admin).await;
    let (anon, name) = anonymous_user(&app).await;
    let mut mine = vec![forked(&anon, &root).await, forked(&anon, &root).await];
    mine.sort();
    fork(&anon, &root)
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "runnable_quota_exceeded");
    let registered = anon
        .post(
            "/v1/users/me/register",
            json!({"username": "carol", "password": "carol-password", "email": "carol@example.com"}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    let carol = app
        .api
        .with_token(registered["token"]["token"].as_str().unwrap());
    assert_eq!(owned(admin, "carol").await, mine.iter().cloned().collect());
    assert!(owned(admin, &name).await.is_empty());
    // One append: the anonymous registry's hand-over, carol's receipt, each owner change.
    let handed = registry(admin, &name).await;
    assert_eq!(
        types(&handed),
        [
            "RunnableOwnerTook",
            "RunnableOwnerTook",
            "RunnableOwnerHandedOver"
        ]
    );
    let handed_over = handed.last().unwrap();
    assert_eq!(
        handed_over["data"],
        json!({"to": "carol", "runnables": mine})
    );
    let received = registry(admin, "carol").await;
    assert_eq!(types(&received), ["RunnableOwnerReceived"]);
    assert_eq!(
        received[0]["data"],
        json!({"from": name, "runnables": mine})
    );
    let mut positions = vec![
        handed_over["position"].as_u64().unwrap(),
        received[0]["position"].as_u64().unwrap(),
    ];
    for id in &mine {
        let events = stream_events(admin, &format!("runnable-{id}")).await;
        let changed: Vec<&Value> = events
            .iter()
            .filter(|e| e["event_type"] == "RunnableOwnerChanged")
            .collect();
        assert_eq!(changed.len(), 1, "{events:?}");
        assert_eq!(changed[0]["data"]["from"], name.as_str());
        assert_eq!(changed[0]["data"]["to"], "carol");
        positions.push(changed[0]["position"].as_u64().unwrap());
    }
    for event in [handed_over, &received[0]] {
        assert_eq!(event["metadata"]["actor"], "identity", "{event}");
    }
    positions.sort();
    assert!(
        positions.windows(2).all(|w| w[1] == w[0] + 1),
        "one append, contiguous: {positions:?}"
    );
    // They are carol's: she changes them, and she is a registered user, without the anonymous
    // quota (unlimited by default).
    let written = carol
        .request(
            Method::PUT,
            &format!("/v1/runnables/{}/files/notes.txt", mine[0]),
        )
        .header("content-type", "application/octet-stream")
        .body(b"mine now".to_vec())
        .send()
        .await
        .expect("PUT a file");
    Answer::read(written).await.expect(StatusCode::CREATED);
    forked(&carol, &root).await;
    assert_eq!(owned(admin, "carol").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_user_removes_exactly_their_runnables() {
    let (app, ann) = with_quota(-1, "").await;
    let admin = &app.api;
    let bob = admin.new_user("bob", "bob-password").await;
    let root = saved_root(admin).await;
    let draft = forked(&ann, &root).await;
    let published = forked(&ann, &root).await;
    admin
        .call(
            Method::POST,
            &format!("/v1/runnables/{published}/save"),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let bobs = forked(&bob, &published).await;
    let gone = forked(&ann, &root).await;
    ann.call(Method::DELETE, &format!("/v1/runnables/{gone}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    for id in [&draft, &published] {
        let events = stream_events(admin, &format!("runnable-{id}")).await;
        assert_eq!(types(&events).last(), Some(&"RunnableRemoved"), "{id}");
        let removed: Vec<&Value> = events
            .iter()
            .filter(|e| e["event_type"] == "RunnableRemoved")
            .collect();
        assert_eq!(removed.len(), 1, "{events:?}");
        assert_eq!(removed[0]["metadata"]["actor"], "admin");
    }
    // The one removed before is not removed again; bob's and the root are left alone.
    let events = stream_events(admin, &format!("runnable-{gone}")).await;
    assert_eq!(
        types(&events)
            .iter()
            .filter(|t| **t == "RunnableRemoved")
            .count(),
        1
    );
    for id in [&bobs, &root] {
        let events = stream_events(admin, &format!("runnable-{id}")).await;
        assert!(!types(&events).contains(&"RunnableRemoved"), "{id}");
    }
    assert!(owned(admin, "ann").await.is_empty());
    assert_eq!(owned(admin, "bob").await, BTreeSet::from([bobs]));
    let events = registry(admin, "ann").await;
    let held: BTreeSet<&str> = events.iter().fold(BTreeSet::new(), |mut held, e| {
        match (
            e["event_type"].as_str().unwrap(),
            e["data"]["runnable"].as_str(),
        ) {
            ("RunnableOwnerTook", Some(id)) => held.insert(id),
            ("RunnableOwnerReleased", Some(id)) => held.remove(id),
            _ => false,
        };
        held
    });
    assert!(held.is_empty(), "{events:?}");
    // Then closed, at the version of ann's stream her removal is at.
    let closed = events.last().unwrap();
    assert_eq!(closed["event_type"], "RunnableOwnerClosed", "{events:?}");
    let removal = stream_events(admin, "user-ann").await;
    assert_eq!(types(&removal).last(), Some(&"UserRemoved"));
    assert_eq!(
        closed["data"],
        json!({"removed_at": removal.last().unwrap()["version"]})
    );
}

/// A runnable of `owner`'s as the first slice created it, before registries existed: its
/// `RunnableCreated` and nothing on any registry. Its id.
async fn created_before_registries(app: &TestApp, owner: &str) -> String {
    let id = uuid::Uuid::new_v4();
    let created = bosun_domain::runnables::RunnableEvent::RunnableCreated {
        id: bosun_domain::runnables::RunnableId::new(id),
        name: bosun_domain::runnables::RunnableName::parse("old").unwrap(),
        owner: bosun_domain::identity::Username::parse(owner).unwrap(),
        parent: None,
        start_command: bosun_domain::runnables::StartCommand::parse("sh main.sh").unwrap(),
        files: vec![],
        at: chrono::Utc::now(),
    };
    let (event_type, data) = bosun_domain::encode(&created).unwrap();
    app.store()
        .await
        .append(
            &StreamId::parse(format!("runnable-{id}")).unwrap(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(event_type, data)],
        )
        .await
        .unwrap();
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_user_removes_their_runnables_from_before_registries_too() {
    let (app, ann) = with_quota(-1, "").await;
    let admin = &app.api;
    let root = saved_root(admin).await;
    let old = created_before_registries(&app, "ann").await;
    let new = forked(&ann, &root).await;
    // The read model lists it as hers; her registry does not hold it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while owned(admin, "ann").await.len() < 2 {
        assert!(Instant::now() < deadline, "never listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    for id in [&old, &new] {
        let events = stream_events(admin, &format!("runnable-{id}")).await;
        assert_eq!(types(&events).last(), Some(&"RunnableRemoved"), "{id}");
    }
    assert!(owned(admin, "ann").await.is_empty());
    // Released: only the one it held.
    let events = registry(admin, "ann").await;
    assert_eq!(
        types(&events),
        [
            "RunnableOwnerTook",
            "RunnableOwnerReleased",
            "RunnableOwnerClosed"
        ]
    );
    assert_eq!(events[1]["data"], json!({"runnable": new}));
    // A later user of the name owns none of them.
    let again = admin.new_user("ann", "ann-password-2").await;
    assert!(owned(admin, "ann").await.is_empty());
    forked(&again, &root).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_users_registry_is_closed_and_a_later_user_of_the_name_reopens_it() {
    let (app, ann) = with_quota(1, "").await;
    let admin = &app.api;
    let root = saved_root(admin).await;
    forked(&ann, &root).await;
    admin
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        types(&registry(admin, "ann").await),
        [
            "RunnableOwnerTook",
            "RunnableOwnerReleased",
            "RunnableOwnerClosed"
        ]
    );
    // Removed again: nothing was left, the 404 it always was, nothing written.
    let log = admin.log_head().await;
    log.refused(admin, Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    // Registered again by an admin: reopened before the user exists, and the quota is whole.
    let again = admin.new_user("ann", "ann-password-2").await;
    let events = registry(admin, "ann").await;
    let reopened = events.last().unwrap();
    assert_eq!(
        reopened["event_type"], "RunnableOwnerReopened",
        "{events:?}"
    );
    let user = stream_events(admin, "user-ann").await;
    let registered = user
        .iter()
        .rfind(|e| e["event_type"] == "UserRegistered")
        .unwrap();
    assert_eq!(
        reopened["data"],
        json!({"registered_at": registered["version"]})
    );
    assert!(reopened["position"].as_u64() < registered["position"].as_u64());
    forked(&again, &root).await;
    fork(&again, &root)
        .await
        .problem()
        .expect(StatusCode::FORBIDDEN, "runnable_quota_exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_user_registering_a_removed_users_name_reopens_it_and_keeps_their_runnables() {
    let app = spawn_app("runnables:\n  quota:\n    anonymous: 2\n").await;
    let admin = &app.api;
    let root = saved_root(admin).await;
    let dora = admin.new_user("dora", "dora-password").await;
    forked(&dora, &root).await;
    admin
        .call(Method::DELETE, "/v1/users/dora", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let (anon, _) = anonymous_user(&app).await;
    let mine = forked(&anon, &root).await;
    let registered = anon
        .post(
            "/v1/users/me/register",
            json!({"username": "dora", "password": "dora-password-2", "email": "dora@example.com"}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    let dora = app
        .api
        .with_token(registered["token"]["token"].as_str().unwrap());
    assert_eq!(
        types(&registry(admin, "dora").await),
        [
            "RunnableOwnerTook",
            "RunnableOwnerReleased",
            "RunnableOwnerClosed",
            "RunnableOwnerReopened",
            "RunnableOwnerReceived"
        ]
    );
    assert_eq!(owned(admin, "dora").await, BTreeSet::from([mine]));
    forked(&dora, &root).await;
}
