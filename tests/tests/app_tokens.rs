//! App tokens over HTTP: a member of the app's teams issues one (its secret shown once), lists
//! them (no secrets) and revokes them; the token submits, reads, cancels and kills its app's
//! jobs, reads and sets its env, restarts it and reads it, and nothing else (not changing the
//! app itself: its teams, cnames, swaps, tokens, removal); `whoami` says it is the app's; a
//! revoked token, or one of a removed app, gets 401 at once, and an app of the same name made
//! later does not revive it; the token outlives the user who issued it.

use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const CONFIG: &str = r#"
runner:
  kill_grace_seconds: 2
catalog:
  shop:
    production:
      show:
        command: ["sh", "-c", "echo shop $GREETING"]
      slow:
        command: ["sleep", "600"]
  blog:
    production:
      show:
        command: ["sh", "-c", "echo blog"]
      slow:
        command: ["sleep", "600"]
"#;

/// The server; ann (team `ops`) with app `shop`, bob (team `web`) with app `blog`.
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
    for (user, team, name) in [(&ann, "ops", "shop"), (&bob, "web", "blog")] {
        user.post("/v1/teams", json!({"name": team}))
            .await
            .expect(StatusCode::CREATED);
        user.post(
            "/v1/apps",
            json!({"name": name, "platform": "python", "team_owner": team}),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    ann.call(
        Method::PUT,
        "/v1/apps/shop/env",
        Some(json!({"envs": [{"name": "GREETING", "value": "hello", "public": true}], "restart": false})),
    )
    .await
    .expect(StatusCode::OK);
    World { app, ann, bob }
}

/// Issues a token of `app` as `api` (201): its answer.
async fn issue(api: &Api, app: &str, body: Value) -> Value {
    api.post(&format!("/v1/apps/{app}/tokens"), body)
        .await
        .expect(StatusCode::CREATED)
        .body
}

fn job(app: &str) -> Value {
    json!({"app": app, "env": "production", "task": "show"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_token_submits_and_reads_its_apps_jobs_and_nothing_else() {
    let World { app, ann, bob } = world().await;
    let admin = &app.api;
    let issued = issue(
        &ann,
        "shop",
        json!({"description": "deploys", "expires_in": 3600}),
    )
    .await;
    assert_eq!(issued["app"], "shop");
    assert_eq!(issued["description"], "deploys");
    assert!(
        issued["expires_at"].is_string() && issued["created_at"].is_string(),
        "{issued}"
    );
    let secret = issued["token"].as_str().unwrap().to_string();
    let token_id = issued["token_id"].as_str().unwrap().to_string();
    let token = ann.with_token(&secret);

    // Its app's job: submitted (201), recorded as the app's with who issued the token.
    let submitted = token
        .post("/v1/jobs", job("shop"))
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(submitted["created_by"], "app:shop");
    let id = submitted["id"].as_str().unwrap().to_string();
    let finished = token
        .wait_for(&id, std::time::Duration::from_secs(30), |j| {
            j["status"] == "success"
        })
        .await;
    assert_eq!(finished["app"], "shop");
    let (status, _, output) = token
        .send(Method::GET, &format!("/v1/jobs/{id}/output"), None)
        .await;
    assert_eq!((status, output.as_str()), (StatusCode::OK, "shop hello\n"));
    let listed = token.get("/v1/jobs").await.expect(StatusCode::OK);
    assert_eq!(listed.total(), 1, "{}", listed.body);
    let events = admin
        .get("/v1/events?type=JobSubmitted")
        .await
        .expect(StatusCode::OK)
        .body;
    let metadata = &events.as_array().unwrap().last().unwrap()["metadata"];
    assert_eq!(
        (metadata["actor"].as_str(), metadata["issued_by"].as_str()),
        (Some("app:shop"), Some("ann"))
    );
    // Ann's own job of shop is the app's job: the token reads it too.
    let anns = ann
        .post("/v1/jobs", job("shop"))
        .await
        .expect(StatusCode::CREATED)
        .body;
    // (Once it has finished, so that the log stands still for the refusals below.)
    token
        .wait_for(
            anns["id"].as_str().unwrap(),
            std::time::Duration::from_secs(30),
            |j| j["status"] == "success",
        )
        .await;

    // Anything else: 403, nothing written.
    let head = admin.log_head().await;
    for (method, path, body) in [
        (Method::POST, "/v1/jobs", Some(job("blog"))),
        (Method::POST, "/v1/teams", Some(json!({"name": "mine"}))),
        (Method::GET, "/v1/users", None),
        (Method::GET, "/v1/teams", None),
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"description": "more"})),
        ),
        (Method::POST, "/v1/apps/shop/tokens", Some(json!({}))),
        (Method::GET, "/v1/apps/shop/tokens", None),
        (
            Method::POST,
            "/v1/orchestrations",
            Some(json!({"name": "o"})),
        ),
        (Method::GET, "/v1/events", None),
    ] {
        let problem = head.refused(&token, method.clone(), path, body).await;
        assert_eq!(
            problem.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {problem}"
        );
    }
    // Bob's job of blog: not the token's to read.
    let mut finished = job("blog");
    finished["wait"] = json!(true);
    let blogs = bob
        .post("/v1/jobs", finished)
        .await
        .expect(StatusCode::OK)
        .body;
    token
        .refused(
            Method::GET,
            &format!("/v1/jobs/{}", blogs["id"].as_str().unwrap()),
            None,
        )
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");

    // Listed for ann, without a secret or a digest; not for bob.
    let list = ann.get("/v1/apps/shop/tokens").await.expect(StatusCode::OK);
    assert_eq!(list.total(), 1);
    let listed = &list.body[0];
    assert_eq!(
        (listed["token_id"].as_str(), listed["app"].as_str()),
        (Some(token_id.as_str()), Some("shop"))
    );
    assert!(
        listed.get("token").is_none() && listed.get("digest").is_none(),
        "{listed}"
    );
    assert!(!list.body.to_string().contains(&secret));
    let head = admin.log_head().await;
    head.refused(&bob, Method::GET, "/v1/apps/shop/tokens", None)
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    head.refused(&bob, Method::POST, "/v1/apps/shop/tokens", Some(json!({})))
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    head.refused(
        &bob,
        Method::DELETE,
        &format!("/v1/apps/shop/tokens/{token_id}"),
        None,
    )
    .await
    .expect(StatusCode::FORBIDDEN, "forbidden");
    // Through another app's path: no such token there.
    head.refused(
        &bob,
        Method::DELETE,
        &format!("/v1/apps/blog/tokens/{token_id}"),
        None,
    )
    .await
    .expect(StatusCode::NOT_FOUND, "not_found");
    head.refused(
        &ann,
        Method::POST,
        "/v1/apps/shop/tokens",
        Some(json!({"expires_in": 0})),
    )
    .await
    .expect(StatusCode::BAD_REQUEST, "invalid_input");
    head.refused(&ann, Method::POST, "/v1/apps/nope/tokens", Some(json!({})))
        .await
        .expect(StatusCode::NOT_FOUND, "not_found");

    // Deleted: 401 at once.
    ann.call(
        Method::DELETE,
        &format!("/v1/apps/shop/tokens/{token_id}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    token
        .refused(Method::POST, "/v1/jobs", Some(job("shop")))
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    let list = ann.get("/v1/apps/shop/tokens").await.expect(StatusCode::OK);
    assert!(list.body[0]["revoked_at"].is_string(), "{}", list.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_app_stops_its_tokens_for_good_and_they_outlive_their_issuer() {
    let World { app, ann, .. } = world().await;
    let admin = &app.api;
    let token = ann.with_token(
        issue(&ann, "shop", json!({})).await["token"]
            .as_str()
            .unwrap(),
    );
    assert!(issue(&ann, "shop", json!({})).await["expires_at"].is_null());
    // Ann leaves: the token is the app's, not hers, and still works.
    admin
        .call(Method::DELETE, "/v1/users/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    token
        .post("/v1/jobs", job("shop"))
        .await
        .expect(StatusCode::CREATED);
    // The app goes: so does the token, and a new app of the same name does not revive it.
    admin
        .call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    token
        .refused(Method::GET, "/v1/jobs", None)
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
    let cy = admin.new_user("cy", "cy-password").await;
    cy.team_with_app("cyteam", "shop", "python").await;
    token
        .refused(Method::POST, "/v1/jobs", Some(job("shop")))
        .await
        .expect(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_token_operates_its_app_and_changes_nothing_of_the_app_itself() {
    let World { app, ann, .. } = world().await;
    let admin = &app.api;
    let issued = issue(&ann, "shop", json!({"expires_in": 3600})).await;
    let token = ann.with_token(issued["token"].as_str().unwrap());
    let token_id = issued["token_id"].as_str().unwrap();

    // Who am I: the app, with none of its issuer's rights.
    let me = token
        .get("/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(me["user"], "app:shop", "{me}");
    assert_eq!(me["app"], "shop");
    assert_eq!(me["token_id"], token_id);
    assert_eq!(me["admin"], false);
    assert_eq!(me["teams"], json!([]));
    assert!(me["expires_at"].is_string(), "{me}");
    let mut scopes: Vec<&str> = me["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    scopes.sort();
    assert_eq!(scopes, ["read", "write"]);
    let anns = ann.get("/v1/auth/whoami").await.expect(StatusCode::OK).body;
    assert_eq!(
        (anns["user"].as_str(), &anns["app"]),
        (Some("ann"), &Value::Null)
    );

    // What it may: read the app and its env, set its env, restart it.
    token.get("/v1/apps/shop").await.expect(StatusCode::OK);
    token.get("/v1/apps/shop/env").await.expect(StatusCode::OK);
    token
        .call(
            Method::PUT,
            "/v1/apps/shop/env",
            Some(json!({"envs": [{"name": "MODE", "value": "live"}], "restart": false})),
        )
        .await
        .expect(StatusCode::OK);
    token
        .post("/v1/apps/shop/restart", json!({}))
        .await
        .expect(StatusCode::ACCEPTED);

    // Changing the app itself, or who acts on it: 403 saying so, nothing written.
    ann.post("/v1/apps/shop/cnames", json!({"cname": "shop.example.com"}))
        .await
        .expect(StatusCode::OK);
    ann.post("/v1/teams", json!({"name": "extra"}))
        .await
        .expect(StatusCode::CREATED);
    let head = admin.log_head().await;
    for (method, path, body) in [
        (
            Method::PATCH,
            "/v1/apps/shop",
            Some(json!({"description": "mine"})),
        ),
        (Method::DELETE, "/v1/apps/shop", None),
        (Method::PUT, "/v1/apps/shop/teams/extra", None),
        (Method::DELETE, "/v1/apps/shop/teams/ops", None),
        (
            Method::POST,
            "/v1/apps/shop/cnames",
            Some(json!({"cname": "mine.example.com"})),
        ),
        (
            Method::DELETE,
            "/v1/apps/shop/cnames",
            Some(json!({"cname": "shop.example.com"})),
        ),
        (
            Method::POST,
            "/v1/swap",
            Some(json!({"app1": "shop", "app2": "blog"})),
        ),
        (Method::POST, "/v1/apps/shop/tokens", Some(json!({}))),
        (Method::GET, "/v1/apps/shop/tokens", None),
        (
            Method::DELETE,
            &format!("/v1/apps/shop/tokens/{token_id}"),
            None,
        ),
    ] {
        let problem = head
            .refused(&token, method.clone(), path, body)
            .await
            .expect(StatusCode::FORBIDDEN, "forbidden");
        assert!(
            problem.detail().contains("app token"),
            "{method} {path}: {problem}"
        );
    }
    // The app is as it was, and the token still works.
    let shop = token.get("/v1/apps/shop").await.expect(StatusCode::OK).body;
    assert_eq!(shop["cnames"], json!(["shop.example.com"]));
    assert_eq!(shop["teams"], json!(["ops"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_token_cancels_and_kills_its_apps_jobs_and_no_other() {
    let World { app, ann, bob } = world().await;
    let token = ann.with_token(
        issue(&ann, "shop", json!({})).await["token"]
            .as_str()
            .unwrap(),
    );
    let slow = |app: &str| json!({"app": app, "env": "production", "task": "slow"});
    let processing = |j: &Value| j["status"] == "processing";
    let limit = std::time::Duration::from_secs(30);

    // Ann's job of shop: the app's job, the token kills it.
    let anns = ann
        .post("/v1/jobs", slow("shop"))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let anns = anns["id"].as_str().unwrap().to_string();
    token.wait_for(&anns, limit, processing).await;
    token
        .post(
            &format!("/v1/jobs/{anns}/kill"),
            json!({"reason": "redeploy"}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    let killed = token
        .wait_for(&anns, limit, |j| j["status"] == "killed")
        .await;
    assert_eq!(killed["status"], "killed");
    // Past the authorization: a finished job cannot be cancelled (409, not 403).
    token
        .refused(
            Method::POST,
            &format!("/v1/jobs/{anns}/cancel"),
            Some(json!({})),
        )
        .await
        .expect(StatusCode::CONFLICT, "job_finished");

    // Bob's job of blog: not the token's to stop.
    let bobs = bob
        .post("/v1/jobs", slow("blog"))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let bobs = bobs["id"].as_str().unwrap().to_string();
    bob.wait_for(&bobs, limit, processing).await;
    let head = app.api.log_head().await;
    for action in ["kill", "cancel"] {
        head.refused(
            &token,
            Method::POST,
            &format!("/v1/jobs/{bobs}/{action}"),
            Some(json!({})),
        )
        .await
        .expect(StatusCode::FORBIDDEN, "forbidden");
    }
    bob.post(&format!("/v1/jobs/{bobs}/kill"), json!({}))
        .await
        .expect(StatusCode::ACCEPTED);
}
