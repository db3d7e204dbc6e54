//! Jobs know their app: a job of a registered app runs with the app's environment (the app's
//! variables, then the job's over them, then the catalog's `env` over both), its private values never in the
//! log or an answer; only a member of one of the app's teams, an admin or the app's token
//! submits it or reads it and its output; an orchestration runs a registered app's task only for
//! a member, and its job is read by members only. Catalog apps no one registered are as they
//! were (`tests/jobs.rs`).

use bosun_eventstore::{EventStore, ExpectedVersion, Filter, NewEvent, StreamId};
use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// `show` prints the public value, the layered one, the catalog's, and the private value's
/// SHA-256 (proof the process saw it, without the value itself entering the job's output).
const CONFIG: &str = r#"
catalog:
  shop:
    production:
      show:
        command: ["sh", "-c", "echo public=$PUBLIC_VAR layered=$LAYERED catalog=$FROM_CATALOG; printf %s \"$SECRET_VAR\" | sha256sum | cut -c1-64"]
        env:
          FROM_CATALOG: from-the-catalog
  blog:
    production:
      show:
        command: ["sh", "-c", "echo blog $SECRET_VAR"]
"#;

const SECRET: &str = "hush-7c41f09a2be8d356";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The server, a platform, and ann (team `ops`) with app `shop` whose env has a public and a
/// private value; bob is in team `web` only.
struct World {
    app: TestApp,
    ann: Api,
    bob: Api,
}

async fn world() -> World {
    let app = spawn_app(CONFIG).await;
    let admin = &app.api;
    admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let ann = admin.new_user("ann", "ann-password").await;
    let bob = admin.new_user("bob", "bob-password").await;
    bob.post("/v1/teams", json!({"name": "web"}))
        .await
        .expect(StatusCode::CREATED);
    ann.team_with_app("ops", "shop", "python").await;
    ann.call(
        Method::PUT,
        "/v1/apps/shop/env",
        Some(json!({"envs": [
            {"name": "PUBLIC_VAR", "value": "public-1", "public": true},
            {"name": "SECRET_VAR", "value": SECRET, "public": false},
            {"name": "LAYERED", "value": "app", "public": true},
            {"name": "FROM_CATALOG", "value": "app", "public": true},
        ], "restart": false})),
    )
    .await
    .expect(StatusCode::OK);
    World { app, ann, bob }
}

fn show(extra: Value) -> Value {
    let mut body = json!({"app": "shop", "env": "production", "task": "show"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

/// Submits `body` as `api` with `wait: true`; the finished job with its output.
async fn run(api: &Api, body: Value) -> Value {
    let mut body = body;
    body["wait"] = json!(true);
    api.post("/v1/jobs", body).await.expect(StatusCode::OK).body
}

fn expected_output(layered: &str) -> String {
    format!(
        "public=public-1 layered={layered} catalog=from-the-catalog\n{}\n",
        sha256_hex(SECRET)
    )
}

/// The whole log as stored (past the API, which redacts), as one text.
async fn stored_log(app: &TestApp) -> String {
    let events = app
        .store()
        .await
        .read_all(1, 1_000_000, &Filter::all())
        .await
        .expect("read the stored log");
    serde_json::to_string(&events).unwrap()
}

fn finished(job: &Value) -> bool {
    !matches!(job["status"].as_str(), Some("waiting" | "processing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_an_app_runs_with_its_env_under_the_jobs_variables_and_the_secret_stays_out() {
    let World { app, ann, .. } = world().await;
    let job = run(&ann, show(json!({}))).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["stdout"], expected_output("app"), "{job}");
    // The job's variables over the app's; the operator's catalog value over both.
    let job = run(&ann, show(json!({"variables": {"LAYERED": "job"}}))).await;
    assert_eq!(job["stdout"], expected_output("job"), "{job}");
    let id = job["id"].as_str().unwrap();
    // The private value is nowhere: not in the job, its output, the log as read or as stored.
    let answers = [
        job.to_string(),
        ann.get(&format!("/v1/jobs/{id}")).await.body.to_string(),
        ann.get(&format!("/v1/jobs/{id}/output"))
            .await
            .body
            .to_string(),
        ann.get("/v1/jobs").await.body.to_string(),
        serde_json::to_string(&app.api.all_events().await).unwrap(),
        stored_log(&app).await,
    ];
    for (i, text) in answers.iter().enumerate() {
        assert!(!text.contains(SECRET), "answer {i} holds the private value");
        assert!(
            !text.contains("hush-"),
            "answer {i} holds part of the private value"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_neither_submits_nor_reads_an_apps_job_and_a_member_of_its_teams_does() {
    let World { app, ann, bob } = world().await;
    let admin = &app.api;
    // Bob is in none of shop's teams: refused, nothing written.
    let head = admin.log_head().await;
    let refused = head
        .refused(&bob, Method::POST, "/v1/jobs", Some(show(json!({}))))
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    assert!(refused.detail().contains("ops"), "{}", refused.body);
    // Ann's job: bob may not read it, nor its output, nor see it listed.
    let job = run(&ann, show(json!({}))).await;
    let id = job["id"].as_str().unwrap();
    for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}/output")] {
        bob.refused(Method::GET, &path, None)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    bob.refused(Method::GET, &format!("/v1/streams/job-{id}"), None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    let listed = bob.get("/v1/jobs?app=shop").await.expect(StatusCode::OK);
    assert_eq!(listed.total(), 0, "{}", listed.body);
    // Cy, once in team ops, reads it and its output, though someone else submitted it.
    let cy = admin.new_user("cy", "cy-password").await;
    cy.refused(Method::GET, &format!("/v1/jobs/{id}"), None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    ann.call(Method::PUT, "/v1/teams/ops/members/cy", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let cy = admin.login("cy", "cy-password").await;
    assert_eq!(
        cy.get(&format!("/v1/jobs/{id}"))
            .await
            .expect(StatusCode::OK)
            .body["id"],
        id
    );
    let (status, _, output) = cy
        .send(
            Method::GET,
            &format!("/v1/jobs/{id}/output?stream=stdout"),
            None,
        )
        .await;
    assert_eq!((status, output), (StatusCode::OK, expected_output("app")));
    assert_eq!(cy.get("/v1/jobs?app=shop").await.total(), 1);
    // And so does an admin.
    admin
        .get(&format!("/v1/jobs/{id}"))
        .await
        .expect(StatusCode::OK);
    // A catalog app no one registered is as it was: bob runs blog's task and reads it.
    let blog = run(
        &bob,
        json!({"app": "blog", "env": "production", "task": "show"}),
    )
    .await;
    assert_eq!(blog["stdout"], "blog\n", "{blog}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_runs_an_apps_task_only_for_a_member_and_only_members_read_its_job() {
    let World { app, ann, bob } = world().await;
    let admin = &app.api;
    let tasks = json!([{"component": "shop/production/show"}]);
    // Bob's orchestration: the task cannot start for him, and gets none of the app's env.
    let mine = bob
        .post(
            "/v1/orchestrations",
            json!({"name": "bobs", "tasks": tasks}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job = bob
        .post(
            &format!("/v1/orchestrations/{}/jobs", mine["id"].as_str().unwrap()),
            json!({}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = job["id"].as_str().unwrap().to_string();
    let job = admin.wait_for(&id, Duration::from_secs(30), finished).await;
    assert_eq!(job["status"], "error", "{job}");
    let diagnostics = job["tasks"][0]["diagnostics"].as_str().unwrap_or_default();
    assert!(
        diagnostics.contains("shop is a registered app") && diagnostics.contains("bob"),
        "{job}"
    );
    let (_, _, output) = admin
        .send(Method::GET, &format!("/v1/jobs/{id}/output"), None)
        .await;
    assert!(!output.contains(&sha256_hex(SECRET)), "{output}");
    // It touches shop: bob, in none of its teams, may not read even his own orchestration's job.
    bob.refused(Method::GET, &format!("/v1/jobs/{id}"), None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    // Ann's orchestration runs it with the app's env; its job is hers and her teams' to read.
    let hers = ann
        .post(
            "/v1/orchestrations",
            json!({"name": "anns", "tasks": tasks}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job = ann
        .post(
            &format!("/v1/orchestrations/{}/jobs", hers["id"].as_str().unwrap()),
            json!({}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = job["id"].as_str().unwrap().to_string();
    let job = ann.wait_for(&id, Duration::from_secs(30), finished).await;
    assert_eq!(job["status"], "success", "{job}");
    let (status, _, output) = ann
        .send(Method::GET, &format!("/v1/jobs/{id}/output?task=0"), None)
        .await;
    assert_eq!((status, output), (StatusCode::OK, expected_output("app")));
    for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}/output")] {
        bob.refused(Method::GET, &path, None)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    let listed = bob.get("/v1/jobs").await.expect(StatusCode::OK);
    assert_eq!(listed.total(), 0, "{}", listed.body);
    assert!(!stored_log(&app).await.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_a_catalog_apps_name_takes_over_none_of_its_earlier_jobs() {
    let app = spawn_app(CONFIG).await;
    let admin = &app.api;
    admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let ann = admin.new_user("ann", "ann-password").await;
    let bob = admin.new_user("bob", "bob-password").await;
    ann.post("/v1/teams", json!({"name": "ops"}))
        .await
        .expect(StatusCode::CREATED);
    // Bob runs catalog app shop's task while no one has registered shop.
    let before = run(&bob, show(json!({"variables": {"LAYERED": "bobs"}}))).await;
    assert_eq!(before["status"], "success", "{before}");
    let before = before["id"].as_str().unwrap().to_string();
    // Then ann registers shop (team ops) and runs its task.
    ann.post(
        "/v1/apps",
        json!({"name": "shop", "platform": "python", "team_owner": "ops"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let after = run(&ann, show(json!({}))).await;
    assert_eq!(after["status"], "success", "{after}");
    let after = after["id"].as_str().unwrap().to_string();
    admin.new_user("cy", "cy-password").await;
    ann.call(Method::PUT, "/v1/teams/ops/members/cy", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let cy = admin.login("cy", "cy-password").await;
    // Bob's earlier job is still his, and his alone (with admins): not shop's team's.
    let job = bob
        .get(&format!("/v1/jobs/{before}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(job.body["variables"]["LAYERED"], "bobs", "{}", job.body);
    bob.get(&format!("/v1/jobs/{before}/output"))
        .await
        .expect(StatusCode::OK);
    let listed = bob.get("/v1/jobs?app=shop").await.expect(StatusCode::OK);
    let ids: Vec<&str> = listed
        .body
        .as_array()
        .map(|items| items.iter().filter_map(|j| j["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!((listed.total(), ids), (1, vec![before.as_str()]));
    for reader in [&ann, &cy] {
        for path in [
            format!("/v1/jobs/{before}"),
            format!("/v1/jobs/{before}/output"),
        ] {
            reader
                .refused(Method::GET, &path, None)
                .await
                .expect(StatusCode::FORBIDDEN, "forbidden");
        }
        // The job since registration is the team's: ann's and cy's, listed without bob's.
        reader
            .get(&format!("/v1/jobs/{after}"))
            .await
            .expect(StatusCode::OK);
        let listed = reader.get("/v1/jobs?app=shop").await.expect(StatusCode::OK);
        let ids: Vec<&str> = listed
            .body
            .as_array()
            .map(|items| items.iter().filter_map(|j| j["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!((listed.total(), ids), (1, vec![after.as_str()]));
    }
    for path in [
        format!("/v1/jobs/{after}"),
        format!("/v1/jobs/{after}/output"),
    ] {
        bob.refused(Method::GET, &path, None)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    // An admin reads both.
    assert_eq!(admin.get("/v1/jobs?app=shop").await.total(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_created_by_a_node_whose_clock_runs_ahead_still_has_the_jobs_submitted_after() {
    let World { app, ann, bob } = world().await;
    let admin = &app.api;
    // App blog, created through a node whose clock is an hour ahead of the database's: its
    // event's `at` is after the time the log records the job below at.
    let ahead = chrono::Utc::now() + chrono::Duration::hours(1);
    app.store()
        .await
        .append(
            &StreamId::parse("app-blog").unwrap(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "AppCreated",
                json!({"name": "blog", "platform": "python", "team_owner": "ops",
                       "owner": "ann", "description": "", "at": ahead}),
            )],
        )
        .await
        .unwrap();
    admin.new_user("cy", "cy-password").await;
    ann.call(Method::PUT, "/v1/teams/ops/members/cy", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let cy = admin.login("cy", "cy-password").await;
    let job = run(
        &ann,
        json!({"app": "blog", "env": "production", "task": "show"}),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    // The job was submitted after blog was registered: it is blog's, so its team's.
    cy.get(&format!("/v1/jobs/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(cy.get("/v1/jobs?app=blog").await.total(), 1);
    bob.refused(Method::GET, &format!("/v1/jobs/{id}"), None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    // An app token of blog reads it too, and may stop it (`submitted_since_app`).
    let token = ann
        .post("/v1/apps/blog/tokens", json!({}))
        .await
        .expect(StatusCode::CREATED)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let blog = admin.with_token(&token);
    blog.get(&format!("/v1/jobs/{id}"))
        .await
        .expect(StatusCode::OK);
    // Past the authorization: the finished job cannot be cancelled (409, not 403).
    blog.refused(
        Method::POST,
        &format!("/v1/jobs/{id}/cancel"),
        Some(json!({})),
    )
    .await
    .expect(StatusCode::CONFLICT, "job_finished");
}
