//! Users' SSH public keys over real HTTP: a user adds, lists and removes their own, an admin
//! anyone's; every refusal (a malformed key or name, a duplicate, someone else's keys, an
//! unknown user or key) is a problem with its status and writes nothing.

use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC9YH+6nluXqa51cc8NgxU28IuiBL9VSYuwofqcXWYpfHVovHOXe8Z9FiCoaHeevI5A0hXtmC70xqM4MycG9/glIzTX3rWFWMPDeyvmaIf6Q4vlXBnt4vsAwTiIs30GjsOkVRH8cFCvZ53S8RpuluLYfUW6GvPoTy4JH+Bu5KlKvw== ann@desk";
const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGaAgRdmwj35NhZCFeO6D11E7wxhyISa+Lz4fVqgNT47Q0PPiISu0A6GQUrF7sNAJQbCmEjyjB1SP+ow2thMaqI=";

const KEYS: &str = "/v1/users/ann/keys";

/// A server with user `ann`, and her client.
async fn start() -> (TestApp, Api) {
    let app = spawn_app("").await;
    let ann = app.api.new_user("ann", "ann-password").await;
    (app, ann)
}

fn key(name: &str, key: &str) -> Value {
    json!({"name": name, "key": key})
}

async fn names(client: &Api, path: &str) -> Vec<String> {
    let answer = client.get(path).await.expect(StatusCode::OK);
    answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_adds_lists_and_removes_their_keys() {
    let (_app, ann) = start().await;
    let added = ann
        .post(KEYS, key("laptop", ED25519))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        (added.body["name"].as_str(), added.body["key"].as_str()),
        (Some("laptop"), Some(ED25519))
    );
    assert!(added.body["added_at"].is_string(), "{}", added.body);
    added.header("bosun-position");
    ann.post(KEYS, key("desk", RSA))
        .await
        .expect(StatusCode::CREATED);
    ann.post(KEYS, key("ci.key-2", ECDSA))
        .await
        .expect(StatusCode::CREATED);

    let list = ann.get(KEYS).await.expect(StatusCode::OK);
    assert_eq!(list.total(), 3);
    assert_eq!(names(&ann, KEYS).await, ["ci.key-2", "desk", "laptop"]);
    assert_eq!(list.body[2]["key"], ED25519);
    // Paged by name.
    let page = ann
        .get(&format!("{KEYS}?limit=1&offset=1"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (page.total(), page.body[0]["name"].as_str()),
        (3, Some("desk"))
    );

    ann.call(Method::DELETE, &format!("{KEYS}/desk"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(names(&ann, KEYS).await, ["ci.key-2", "laptop"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_normalised_to_one_line_with_single_spaces() {
    let (_app, ann) = start().await;
    let sloppy = format!("  {}\n", ED25519.replace(' ', "  "));
    let added = ann
        .post(KEYS, key("laptop", &sloppy))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(added.body["key"], ED25519);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_anyones_keys() {
    let (app, ann) = start().await;
    app.api
        .post(KEYS, key("laptop", ED25519))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(names(&ann, KEYS).await, ["laptop"]);
    assert_eq!(names(&app.api, KEYS).await, ["laptop"]);
    app.api
        .call(Method::DELETE, &format!("{KEYS}/laptop"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(names(&ann, KEYS).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_neither_reads_nor_changes_someones_keys() {
    let (app, ann) = start().await;
    ann.post(KEYS, key("laptop", ED25519))
        .await
        .expect(StatusCode::CREATED);
    let bob = app.api.new_user("bob", "bob-password").await;
    let head = app.api.log_head().await;
    for (method, path, body) in [
        (Method::GET, KEYS.to_string(), None),
        (Method::POST, KEYS.to_string(), Some(key("bobs", RSA))),
        // Even a malformed body: who may comes before what is wrong with it.
        (
            Method::POST,
            KEYS.to_string(),
            Some(key("bad name", "nope")),
        ),
        (Method::DELETE, format!("{KEYS}/laptop"), None),
    ] {
        head.refused(&bob, method, &path, body)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    // With no token at all: 401.
    head.refused(&app.api.anonymous(), Method::GET, KEYS, None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(names(&ann, KEYS).await, ["laptop"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_lists_keys_but_cannot_add_or_remove_them() {
    let (app, ann) = start().await;
    ann.post(KEYS, key("laptop", ED25519))
        .await
        .expect(StatusCode::CREATED);
    let issued = ann
        .post(
            "/v1/tokens",
            json!({"description": "ro", "scopes": ["read"]}),
        )
        .await
        .expect(StatusCode::CREATED);
    let read_only = ann.with_token(issued.body["token"].as_str().unwrap());
    assert_eq!(names(&read_only, KEYS).await, ["laptop"]);
    let head = app.api.log_head().await;
    head.refused(&read_only, Method::POST, KEYS, Some(key("desk", RSA)))
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    head.refused(&read_only, Method::DELETE, &format!("{KEYS}/laptop"), None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_key_is_refused_naming_key() {
    let (app, ann) = start().await;
    let blob = ED25519.split(' ').nth(1).unwrap();
    let rsa_blob = RSA.split(' ').nth(1).unwrap();
    let head = app.api.log_head().await;
    for bad in [
        String::new(),
        "not a key".into(),
        "ssh-ed25519".into(),
        format!("ssh-dss {blob}"),
        "ssh-ed25519 %%%not-base64%%%".into(),
        "ssh-ed25519 aGVsbG8gd29ybGQ=".into(),
        format!("ssh-ed25519 {rsa_blob} the blob of another type"),
        format!("ssh-ed25519 {}", &blob[..40]),
        format!("{ED25519}\n{RSA}"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----".into(),
    ] {
        let problem = head
            .refused(&ann, Method::POST, KEYS, Some(key("laptop", &bad)))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), ["key"], "{bad:?}: {problem}");
    }
    // A field missing, or of another type: the body is refused as a whole.
    for body in [
        json!({"name": "laptop"}),
        json!({"name": "laptop", "key": 7}),
    ] {
        head.refused(&ann, Method::POST, KEYS, Some(body))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_name_is_refused_naming_name_and_both_fields_are_named_at_once() {
    let (app, ann) = start().await;
    let head = app.api.log_head().await;
    for bad in ["", "my laptop", "a/b", "é", &"k".repeat(65)] {
        let problem = head
            .refused(&ann, Method::POST, KEYS, Some(key(bad, ED25519)))
            .await
            .expect(StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(problem.fields(), ["name"], "{bad:?}: {problem}");
    }
    let problem = head
        .refused(&ann, Method::POST, KEYS, Some(key("my laptop", "nope")))
        .await
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(problem.fields(), ["name", "key"], "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_or_the_same_key_under_another_name_is_a_conflict() {
    let (app, ann) = start().await;
    ann.post(KEYS, key("laptop", ED25519))
        .await
        .expect(StatusCode::CREATED);
    let head = app.api.log_head().await;
    head.refused(&ann, Method::POST, KEYS, Some(key("laptop", RSA)))
        .await
        .expect(StatusCode::CONFLICT, "key_name_taken");
    // The same key, whatever its comment.
    let recommented = ED25519.replace("ann@laptop", "another comment");
    let problem = head
        .refused(&ann, Method::POST, KEYS, Some(key("other", &recommented)))
        .await
        .expect(StatusCode::CONFLICT, "key_exists");
    assert!(problem.detail().contains("laptop"), "{problem}");
    // Per user: bob may hold the same key.
    let bob = app.api.new_user("bob", "bob-password").await;
    bob.post("/v1/users/bob/keys", key("laptop", ED25519))
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_or_key_is_not_found() {
    let (app, ann) = start().await;
    let head = app.api.log_head().await;
    for (method, path, body) in [
        (Method::GET, "/v1/users/nobody/keys", None),
        (
            Method::POST,
            "/v1/users/nobody/keys",
            Some(key("laptop", ED25519)),
        ),
        (Method::DELETE, "/v1/users/nobody/keys/laptop", None),
        (Method::GET, "/v1/users/no%20such/keys", None),
    ] {
        head.refused(&app.api, method, path, body)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
    for path in ["/v1/users/ann/keys/laptop", "/v1/users/ann/keys/no%20such"] {
        head.refused(&ann, Method::DELETE, path, None)
            .await
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_events_of_the_user_stream_naming_who_added_them() {
    let (app, ann) = start().await;
    ann.post(KEYS, key("laptop", ED25519))
        .await
        .expect(StatusCode::CREATED);
    ann.call(Method::DELETE, &format!("{KEYS}/laptop"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let stream = app
        .api
        .get("/v1/streams/user-ann")
        .await
        .expect(StatusCode::OK)
        .body;
    let events: Vec<&Value> = stream.as_array().unwrap().iter().collect();
    let added = events
        .iter()
        .find(|e| e["event_type"] == "UserKeyAdded")
        .expect("UserKeyAdded");
    assert_eq!(
        added["data"],
        json!({"username": "ann", "name": "laptop", "key": ED25519})
    );
    assert_eq!(added["metadata"]["actor"], "ann");
    assert_eq!(added["metadata"]["user_agent"], bosun_tests::USER_AGENT);
    let removed = events
        .iter()
        .find(|e| e["event_type"] == "UserKeyRemoved")
        .expect("UserKeyRemoved");
    assert_eq!(
        removed["data"],
        json!({"username": "ann", "name": "laptop"})
    );
    // The audit shows each action with its target.
    let audit = app
        .api
        .get("/v1/audit?actor=ann")
        .await
        .expect(StatusCode::OK)
        .body;
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert!(
        actions.contains(&("UserKeyAdded", "user-ann")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("UserKeyRemoved", "user-ann")),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_users_keys_go_with_them() {
    let (app, ann) = start().await;
    ann.post(KEYS, key("laptop", ED25519))
        .await
        .expect(StatusCode::CREATED);
    app.api
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    app.api
        .refused(Method::GET, KEYS, None)
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");
    // A later user of the same name starts with none, and may add the same key again.
    let again = app.api.new_user("ann", "ann-password").await;
    assert!(names(&again, KEYS).await.is_empty());
    again
        .post(KEYS, key("laptop", ED25519))
        .await
        .expect(StatusCode::CREATED);
}
