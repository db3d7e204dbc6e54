//! `Idempotency-Key` over real HTTP: every create of `/v1` sent again with its key and request
//! answers the first success again (`Idempotency-Replayed: true`) and writes nothing; the key
//! with another request is a 409 `idempotency_key_reused` that writes nothing. The walk covers
//! every `POST` of `/v1/openapi.json` that answers 201: one without a row in [`creates`] fails
//! the test. The server runs in the test's process (`spawn_app`).

use base64::Engine;
use bosun_tests::service_api::ServiceApi;
use bosun_tests::{spawn_app, Answer, Api};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const CONFIG: &str = r#"
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
catalog:
  ml:
    production:
      ok:
        command: ["true"]
      fail:
        command: ["false"]
"#;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";

/// Who sends a create of the walk.
#[derive(Clone, Copy)]
enum By {
    Admin,
    Ann,
}

/// One create of the walk: the operation as the document names it, the concrete call, its body
/// (`None`: no body) and who sends it.
struct Create {
    operation: &'static str,
    path: String,
    body: Option<Value>,
    by: By,
}

fn create(operation: &'static str, path: impl Into<String>, body: Value, by: By) -> Create {
    Create {
        operation,
        path: path.into(),
        body: Some(body),
        by,
    }
}

/// Creates not in the walk: those that key their jobs themselves (`isolation.rs` tests them),
/// and those sent without a credential, which have no keys
/// ([`a_caller_without_a_credential_has_no_keys`]).
const NOT_WALKED: [&str; 4] = [
    "POST /v1/jobs",
    "POST /v1/healers/{healer}",
    "POST /v1/users/anonymous",
    "POST /v1/auth/tokens",
];

/// Every create of `/v1`, each as it first succeeds on the world [`world`] makes.
fn creates(service: &ServiceApi, world: &World) -> Vec<Create> {
    vec![
        create(
            "POST /v1/platforms",
            "/v1/platforms",
            json!({"name": "rust"}),
            By::Admin,
        ),
        create(
            "POST /v1/teams",
            "/v1/teams",
            json!({"name": "web"}),
            By::Admin,
        ),
        create(
            "POST /v1/users",
            "/v1/users",
            json!({"username": "carl", "password": "carl-password"}),
            By::Admin,
        ),
        create(
            "POST /v1/tokens",
            "/v1/tokens",
            json!({"description": "ci"}),
            By::Ann,
        ),
        create(
            "POST /v1/users/{username}/keys",
            "/v1/users/ann/keys",
            json!({"name": "laptop", "key": ED25519}),
            By::Ann,
        ),
        create(
            "POST /v1/apps",
            "/v1/apps",
            json!({"name": "blog", "platform": "python", "team_owner": "ops"}),
            By::Admin,
        ),
        create(
            "POST /v1/apps/{app}/tokens",
            "/v1/apps/shop/tokens",
            json!({"description": "deploys"}),
            By::Admin,
        ),
        create(
            "POST /v1/orchestrations",
            "/v1/orchestrations",
            json!({"name": "weekly", "tasks": [{"component": "ml/production/ok"}]}),
            By::Admin,
        ),
        create(
            "POST /v1/orchestrations/{id}/jobs",
            format!("/v1/orchestrations/{}/jobs", world.orchestration),
            json!({}),
            By::Admin,
        ),
        create(
            "POST /v1/jobs/{id}/restart",
            format!("/v1/jobs/{}/restart", world.finished_job),
            json!({}),
            By::Admin,
        ),
        create(
            "POST /v1/runnables",
            "/v1/runnables",
            json!({"name": "hello", "start_command": "sh main.sh",
                   "files": [{"path": "main.sh", "content": "echo hello\n"}]}),
            By::Admin,
        ),
        create(
            "POST /v1/services",
            "/v1/services",
            json!({"name": "redis", "endpoint": service.base, "password": "svc-password-77aa01c3",
                   "teams": ["ops"]}),
            By::Admin,
        ),
        create(
            "POST /v1/services/{service}/instances",
            "/v1/services/mysql/instances",
            json!({"name": "db", "plan": "small", "team_owner": "ops"}),
            By::Admin,
        ),
    ]
}

struct World {
    ann: Api,
    orchestration: String,
    finished_job: String,
}

/// The platform `python`, team `ops` with app `shop`, user `ann`, service `mysql`, an
/// orchestration and a job that failed (to run again).
async fn world(admin: &Api, service: &ServiceApi) -> World {
    admin.shop_of_team_ops().await;
    let ann = admin.new_user("ann", "ann-password").await;
    admin
        .post(
            "/v1/services",
            json!({"name": "mysql", "endpoint": service.base, "password": "svc-password-5b7d2c90",
                   "teams": ["ops"]}),
        )
        .await
        .expect(StatusCode::CREATED);
    let orchestration = admin
        .post(
            "/v1/orchestrations",
            json!({"name": "nightly", "tasks": [{"component": "ml/production/ok"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job = admin
        .submit("fail", json!({"app": "ml", "wait": true}))
        .await;
    assert_eq!(job["status"], "error", "{job}");
    let job = job["id"].as_str().expect("a job id").to_string();
    World {
        ann,
        orchestration: orchestration["id"]
            .as_str()
            .expect("an orchestration id")
            .to_string(),
        finished_job: job,
    }
}

async fn post_keyed(client: &Api, path: &str, key: &str, body: Option<&Value>) -> Answer {
    let headers = [("Idempotency-Key", key)];
    client
        .call_with(Method::POST, path, &headers, body.cloned())
        .await
}

fn replayed(answer: &Answer) -> bool {
    answer
        .headers
        .get("idempotency-replayed")
        .is_some_and(|v| v == "true")
}

/// The `POST`s of `/v1/openapi.json` that answer 201, and whether every `POST` documents the
/// `Idempotency-Key` header.
async fn documented_creates(admin: &Api) -> (BTreeSet<String>, Vec<String>) {
    let document = admin
        .get("/v1/openapi.json")
        .await
        .expect(StatusCode::OK)
        .body;
    let mut creates = BTreeSet::new();
    let mut unkeyed = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        let Some(post) = item.get("post") else {
            continue;
        };
        let keyed = post["parameters"].as_array().is_some_and(|parameters| {
            parameters
                .iter()
                .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key")
        });
        if !keyed {
            unkeyed.push(path.clone());
        }
        if post["responses"].get("201").is_some() {
            creates.insert(format!("POST {path}"));
        }
    }
    (creates, unkeyed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_sent_again_with_its_key_answers_the_first_and_writes_nothing() {
    let app = spawn_app(CONFIG).await;
    let service = ServiceApi::start().await;
    let admin = app.api.clone();
    let world = world(&admin, &service).await;
    let ann = world.ann.clone();
    let creates = creates(&service, &world);

    let (documented, unkeyed) = documented_creates(&admin).await;
    assert!(
        unkeyed.is_empty(),
        "POSTs without Idempotency-Key documented: {unkeyed:?}"
    );
    let walked: BTreeSet<String> = creates.iter().map(|c| c.operation.to_string()).collect();
    let missing: Vec<_> = documented
        .difference(&walked)
        .filter(|op| !NOT_WALKED.contains(&op.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "creates with no row in the walk: {missing:?}"
    );

    for (index, create) in creates.iter().enumerate() {
        let client = match create.by {
            By::Admin => admin.clone(),
            By::Ann => ann.clone(),
        };
        let key = format!("create-{index}");
        let first = post_keyed(&client, &create.path, &key, create.body.as_ref()).await;
        assert!(
            first.status.is_success(),
            "{}: {} {}",
            create.operation,
            first.status,
            first.body
        );
        assert!(!replayed(&first), "{}", create.operation);
        // What the create set off (a job's run, a provisioning) done first.
        admin.still().await;
        let head = admin.log_head().await;

        let again = post_keyed(&client, &create.path, &key, create.body.as_ref()).await;
        assert_eq!(
            again.status, first.status,
            "{}: {}",
            create.operation, again.body
        );
        assert_eq!(again.body, first.body, "{}", create.operation);
        assert!(replayed(&again), "{}", create.operation);
        for header in ["location", "etag", "bosun-position", "content-type"] {
            assert_eq!(
                again.headers.get(header),
                first.headers.get(header),
                "{}: {header}",
                create.operation
            );
        }
        head.assert_unchanged(format!("{} sent again", create.operation))
            .await;

        let other = json!({"another": "request"});
        let refused = post_keyed(&client, &create.path, &key, Some(&other)).await;
        refused
            .problem()
            .expect(StatusCode::CONFLICT, "idempotency_key_reused");
        head.assert_unchanged(format!("{} with another body", create.operation))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_racing_the_first_request_all_answer_with_its_answer() {
    let app = spawn_app(CONFIG).await;
    let admin = app.api.clone();
    let body = json!({"name": "race"});
    let answers = futures::future::join_all(
        (0..8).map(|_| post_keyed(&admin, "/v1/teams", "race-key", Some(&body))),
    )
    .await;
    let first = &answers[0];
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(answer.body, first.body);
    }
    let replayed = answers.iter().filter(|a| replayed(a)).count();
    assert_eq!(replayed, 7, "one ran, seven were answered with its answer");
    let created = admin
        .all_events()
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "TeamCreated" && e["stream_id"] == "team-race")
        .count();
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_leaves_its_key_for_the_corrected_one() {
    let app = spawn_app(CONFIG).await;
    let admin = app.api.clone();
    let refused = post_keyed(
        &admin,
        "/v1/teams",
        "k",
        Some(&json!({"name": "Not A Name"})),
    )
    .await;
    assert!(refused.status.is_client_error(), "{}", refused.status);
    let corrected = post_keyed(&admin, "/v1/teams", "k", Some(&json!({"name": "ops"}))).await;
    assert_eq!(corrected.status, StatusCode::CREATED, "{}", corrected.body);
    assert!(!replayed(&corrected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_its_callers_own_and_a_kept_token_is_sealed() {
    let app = spawn_app(CONFIG).await;
    let admin = app.api.clone();
    let ann = admin.new_user("ann", "ann-password").await;
    let body = json!({"description": "ci"});
    let admins = post_keyed(&admin, "/v1/tokens", "same", Some(&body))
        .await
        .expect(StatusCode::CREATED);
    let anns = post_keyed(&ann, "/v1/tokens", "same", Some(&body))
        .await
        .expect(StatusCode::CREATED);
    assert!(!replayed(&anns));
    assert_ne!(admins.body["token_id"], anns.body["token_id"]);

    let store = app.store().await;
    let client = store.pool().get().await.expect("a connection");
    let kept: Vec<String> = client
        .query(
            "SELECT body || ' ' || headers::text FROM idempotent_answers",
            &[],
        )
        .await
        .expect("the kept answers")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(kept.len(), 2);
    for token in [&admins.body["token"], &anns.body["token"]] {
        let token = token.as_str().expect("a token shown once");
        for kept in &kept {
            // Neither in clear nor merely encoded.
            let (body, _) = kept.split_once(' ').expect("a body and headers");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(body)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default();
            assert!(
                !kept.contains(token) && !decoded.contains(token),
                "a token readable among the kept answers"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_a_credential_has_no_keys() {
    let app = spawn_app(CONFIG).await;
    let nobody = app.api.anonymous();
    let headers = [("Idempotency-Key", "mine")];
    let first = nobody
        .call_with(Method::POST, "/v1/users/anonymous", &headers, None)
        .await
        .expect(StatusCode::CREATED);
    let second = nobody
        .call_with(Method::POST, "/v1/users/anonymous", &headers, None)
        .await
        .expect(StatusCode::CREATED);
    assert!(!replayed(&second), "another caller's answer given");
    assert_ne!(first.body["token"], second.body["token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_gets_no_replay() {
    let app = spawn_app(CONFIG).await;
    let ann = app.api.new_user("ann", "ann-password").await;
    let body = json!({"description": "ci"});
    post_keyed(&ann, "/v1/tokens", "k", Some(&body))
        .await
        .expect(StatusCode::CREATED);
    ann.call(Method::DELETE, "/v1/auth/tokens/current", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    post_keyed(&ann, "/v1/tokens", "k", Some(&body))
        .await
        .problem()
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_visible_ascii_is_refused_writing_nothing() {
    let app = spawn_app(CONFIG).await;
    let admin = app.api.clone();
    let head = admin.log_head().await;
    for key in ["", "two words", &"x".repeat(256)] {
        post_keyed(&admin, "/v1/teams", key, Some(&json!({"name": "ops"})))
            .await
            .problem()
            .expect(StatusCode::BAD_REQUEST, "invalid_header");
    }
    head.assert_unchanged("bad keys").await;
}
