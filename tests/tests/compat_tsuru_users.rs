//! tsuru's identity side under `/compat/tsuru`, spoken as its clients speak it (0.3.9's JSON
//! bodies on bare paths, 1.x's forms under `/1.0/…`, `Authorization: bearer <token>` or a bare
//! token): users known by email (registered, logging in at both login paths, changing their
//! password, logging out, removed), the user list and info, SSH keys (added with and without a
//! name, listed, removed by content and by name), teams (created both ways, listed, read with
//! their members by email, members added and removed by email) and `POST /tokens` (an app
//! token, exported into the app's environment). Each write is checked natively (`/v1`) and in
//! the audit under the caller's name; each refusal is tsuru's plain text with the right status
//! and leaves the log as it was. The server runs in the test's process.

use bosun_tests::tsuru::{Body, Tsuru};
use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// An ed25519 public key.
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";
/// An RSA one.
const OTHER_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC9YH+6nluXqa51cc8NgxU28IuiBL9VSYuwofqcXWYpfHVovHOXe8Z9FiCoaHeevI5A0hXtmC70xqM4MycG9/glIzTX3rWFWMPDeyvmaIf6Q4vlXBnt4vsAwTiIs30GjsOkVRH8cFCvZ53S8RpuluLYfUW6GvPoTy4JH+Bu5KlKvw== ann@desk";

/// The server; its admin as a tsuru client; and ann (`ann@example.com`, registered through
/// tsuru, logged in through tsuru). Bind `app` when destructuring it (`app: _app`): dropping it
/// stops the server.
struct World {
    app: TestApp,
    admin: Tsuru,
    ann: Tsuru,
}

async fn world() -> World {
    let app = spawn_app("").await;
    let admin = Tsuru::of(&app.api);
    admin
        .send(
            Method::POST,
            "/users",
            Body::Json(json!({"email": "ann@example.com", "password": "ann-password"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let token = login(&admin, "ann@example.com", "ann-password").await;
    let ann = admin.with_token(&token);
    World { app, admin, ann }
}

/// Logs in through `POST /users/{email}/tokens` (0.3.9, JSON): the token.
async fn login(client: &Tsuru, email: &str, password: &str) -> String {
    let reply = client
        .with_token("")
        .send(
            Method::POST,
            &format!("/users/{email}/tokens"),
            Body::Json(json!({ "password": password })),
        )
        .await
        .expect(StatusCode::OK);
    reply.json()["token"].as_str().expect("a token").to_string()
}

/// The native client with `tsuru`'s token.
fn native(app: &TestApp, tsuru: &Tsuru) -> Api {
    app.api.with_token(&tsuru.token)
}

#[tokio::test]
async fn a_user_registered_by_email_is_the_bosun_user_with_that_email() {
    let World { app, ann, .. } = world().await;
    let user = app
        .api
        .get("/v1/users/ann_example_com")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["admin"], false);
    // Ann's tsuru token is a Bosun token of hers.
    let whoami = native(&app, &ann)
        .get("/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(whoami["user"], "ann_example_com");
}

#[tokio::test]
async fn a_login_answers_the_token_and_whether_its_holder_is_an_admin() {
    let World { app, admin, .. } = world().await;
    let reply = admin
        .with_token("")
        .send(
            Method::POST,
            "/users/ann@example.com/tokens",
            Body::Json(json!({"password": "ann-password"})),
        )
        .await
        .expect(StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["is_admin"], false, "{body}");
    let token = body["token"].as_str().unwrap();
    app.api
        .with_token(token)
        .get("/v1/auth/whoami")
        .await
        .expect(StatusCode::OK);
    // The admin (the bootstrap admin, who has no email) logs in by name: is_admin.
    let whoami = app.api.get("/v1/auth/whoami").await.body;
    let admin_name = whoami["user"].as_str().unwrap().to_string();
    app.api
        .call(
            Method::PATCH,
            &format!("/v1/users/{admin_name}"),
            Some(json!({"password": "admin-password"})),
        )
        .await
        .expect(StatusCode::OK);
    let reply = admin
        .with_token("")
        .send(
            Method::POST,
            &format!("/users/{admin_name}/tokens"),
            Body::Json(json!({"password": "admin-password"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(reply.json()["is_admin"], true);
}

#[tokio::test]
async fn a_1x_client_registers_with_a_form_and_logs_in_at_auth_login() {
    let World { app, admin, .. } = world().await;
    admin
        .send(
            Method::POST,
            "/1.0/users",
            Body::Form(&[("email", "bob@example.com"), ("password", "bob-password")]),
        )
        .await
        .expect(StatusCode::CREATED);
    let reply = admin
        .with_token("")
        .send(
            Method::POST,
            "/1.4/auth/login",
            Body::Form(&[("email", "bob@example.com"), ("password", "bob-password")]),
        )
        .await
        .expect(StatusCode::OK);
    let token = reply.json()["token"].as_str().unwrap().to_string();
    let whoami = app
        .api
        .with_token(&token)
        .get("/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(whoami["user"], "bob_example_com");
}

#[tokio::test]
async fn a_taken_email_is_a_409_and_changes_nothing() {
    let World { app, admin, .. } = world().await;
    let head = app.api.log_head().await;
    let text = admin
        .send(
            Method::POST,
            "/users",
            Body::Json(json!({"email": "ANN@example.com", "password": "another-one"})),
        )
        .await
        .refused(StatusCode::CONFLICT);
    assert!(!text.is_empty());
    head.assert_unchanged("a second registration of ann's email")
        .await;
}

#[tokio::test]
async fn registering_needs_an_admin_and_a_token() {
    let World { app, admin, ann } = world().await;
    let head = app.api.log_head().await;
    let body = json!({"email": "eve@example.com", "password": "eve-password"});
    ann.send(Method::POST, "/users", Body::Json(body.clone()))
        .await
        .refused(StatusCode::FORBIDDEN);
    let text = admin
        .with_token("")
        .send(Method::POST, "/users", Body::Json(body))
        .await
        .refused(StatusCode::UNAUTHORIZED);
    assert_eq!(text, "You must provide the Authorization header\n");
    admin
        .send(
            Method::POST,
            "/users",
            Body::Json(json!({"email": "not-an-address", "password": "eve-password"})),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    admin
        .send(
            Method::POST,
            "/users",
            Body::Json(json!({"email": "eve@example.com", "password": "short"})),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    head.assert_unchanged("the refused registrations").await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_401() {
    let World { app, admin, .. } = world().await;
    let head = app.api.log_head().await;
    let anyone = admin.with_token("");
    let wrong = anyone
        .send(
            Method::POST,
            "/users/ann@example.com/tokens",
            Body::Json(json!({"password": "not-her-password"})),
        )
        .await
        .refused(StatusCode::UNAUTHORIZED);
    let unknown = anyone
        .send(
            Method::POST,
            "/users/nobody@example.com/tokens",
            Body::Json(json!({"password": "not-her-password"})),
        )
        .await
        .refused(StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    anyone
        .send(
            Method::POST,
            "/users/ann@example.com/tokens",
            Body::Json(json!({})),
        )
        .await
        .refused(StatusCode::BAD_REQUEST);
    head.assert_unchanged("the refused logins").await;
}

#[tokio::test]
async fn a_bare_token_and_any_type_word_are_taken() {
    let World { app: _app, ann, .. } = world().await;
    for header in [ann.token.clone(), format!("token {}", ann.token)] {
        let reply = ann
            .http
            .get(format!("{}/users/info", ann.base))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
    }
    let text = ann
        .with_token("not-a-token")
        .get("/users/info")
        .await
        .refused(StatusCode::UNAUTHORIZED);
    assert!(!text.is_empty());
}

#[tokio::test]
async fn logging_out_ends_the_token() {
    let World { app: _app, ann, .. } = world().await;
    ann.send(Method::DELETE, "/users/tokens", Body::None)
        .await
        .expect(StatusCode::OK);
    ann.get("/users/info")
        .await
        .refused(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_changes_with_the_old_one_and_not_without() {
    let World { app, admin, ann } = world().await;
    let head = app.api.log_head().await;
    ann.send(
        Method::PUT,
        "/users/password",
        Body::Json(json!({"old": "wrong-password", "new": "ann-new-password"})),
    )
    .await
    .refused(StatusCode::FORBIDDEN);
    ann.send(
        Method::PUT,
        "/1.0/users/password",
        Body::Form(&[
            ("old", "ann-password"),
            ("new", "ann-new-password"),
            ("confirm", "something-else"),
        ]),
    )
    .await
    .refused(StatusCode::BAD_REQUEST);
    ann.send(
        Method::PUT,
        "/users/password",
        Body::Json(json!({"old": "ann-password"})),
    )
    .await
    .refused(StatusCode::BAD_REQUEST);
    head.assert_unchanged("the refused password changes").await;
    ann.send(
        Method::PUT,
        "/users/password",
        Body::Json(json!({"old": "ann-password", "new": "ann-new-password"})),
    )
    .await
    .expect(StatusCode::OK);
    login(&admin, "ann@example.com", "ann-new-password").await;
}

#[tokio::test]
async fn a_user_removes_themself() {
    let World { app, ann, .. } = world().await;
    ann.send(Method::DELETE, "/users", Body::None)
        .await
        .expect(StatusCode::OK);
    app.api
        .get("/v1/users/ann_example_com")
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_admin_lists_everyone_and_anyone_else_themself() {
    let World {
        app: _app,
        admin,
        ann,
    } = world().await;
    let everyone = admin.get("/users").await.expect(StatusCode::OK).json();
    let emails: Vec<&str> = everyone
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"ann@example.com"), "{everyone}");
    assert!(emails.len() >= 2, "{everyone}");
    let mine = ann.get("/users").await.expect(StatusCode::OK).json();
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["Email"], "ann@example.com");
}

#[tokio::test]
async fn user_info_shows_the_callers_roles_by_team() {
    let World { app: _app, ann, .. } = world().await;
    ann.send(Method::POST, "/teams", Body::Json(json!({"name": "ops"})))
        .await
        .expect(StatusCode::OK);
    let info = ann.get("/users/info").await.expect(StatusCode::OK).json();
    assert_eq!(info["Email"], "ann@example.com");
    assert_eq!(
        info["Roles"],
        json!([{"Name": "team-member", "ContextType": "team", "ContextValue": "ops"}])
    );
}

#[tokio::test]
async fn keys_are_added_listed_and_removed_by_content_or_name() {
    let World { app, ann, .. } = world().await;
    ann.send(
        Method::POST,
        "/users/keys",
        Body::Json(json!({ "key": KEY })),
    )
    .await
    .expect(StatusCode::OK);
    ann.send(
        Method::POST,
        "/1.0/users/keys",
        Body::Form(&[("key", OTHER_KEY), ("name", "desktop")]),
    )
    .await
    .expect(StatusCode::OK);
    let keys = ann
        .get("/users/ann@example.com/keys")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        keys,
        json!({"ann_example_com-1": KEY, "desktop": OTHER_KEY}),
        "{keys}"
    );
    assert_eq!(
        ann.get("/1.0/users/keys")
            .await
            .expect(StatusCode::OK)
            .json(),
        keys
    );
    // Natively, the same keys.
    let native_keys = native(&app, &ann)
        .get("/v1/users/ann_example_com/keys")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(native_keys.as_array().unwrap().len(), 2);
    // Removed by content (another comment: the same key), then by name.
    let key_without_comment = KEY.rsplit_once(' ').unwrap().0;
    ann.send(
        Method::DELETE,
        "/users/keys",
        Body::Json(json!({ "key": key_without_comment })),
    )
    .await
    .expect(StatusCode::OK);
    ann.send(Method::DELETE, "/1.0/users/keys/desktop", Body::None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        ann.get("/1.0/users/keys")
            .await
            .expect(StatusCode::OK)
            .json(),
        json!({})
    );
}

#[tokio::test]
async fn a_key_refused_changes_nothing() {
    let World { app, ann, .. } = world().await;
    ann.send(
        Method::POST,
        "/users/keys",
        Body::Json(json!({ "key": KEY })),
    )
    .await
    .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    ann.send(
        Method::POST,
        "/users/keys",
        Body::Json(json!({ "key": KEY })),
    )
    .await
    .refused(StatusCode::CONFLICT);
    ann.send(
        Method::POST,
        "/users/keys",
        Body::Json(json!({"key": "not a key"})),
    )
    .await
    .refused(StatusCode::BAD_REQUEST);
    ann.send(Method::POST, "/users/keys", Body::Json(json!({})))
        .await
        .refused(StatusCode::BAD_REQUEST);
    ann.send(
        Method::DELETE,
        "/users/keys",
        Body::Json(json!({ "key": OTHER_KEY })),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    head.assert_unchanged("the refused key calls").await;
}

#[tokio::test]
async fn a_forced_key_replaces_the_one_of_its_name() {
    let World { app: _app, ann, .. } = world().await;
    ann.send(
        Method::POST,
        "/1.0/users/keys",
        Body::Form(&[("key", KEY), ("name", "laptop")]),
    )
    .await
    .expect(StatusCode::OK);
    ann.send(
        Method::POST,
        "/1.0/users/keys",
        Body::Form(&[("key", OTHER_KEY), ("name", "laptop")]),
    )
    .await
    .refused(StatusCode::CONFLICT);
    ann.send(
        Method::POST,
        "/1.0/users/keys",
        Body::Form(&[("key", OTHER_KEY), ("name", "laptop"), ("force", "true")]),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        ann.get("/1.0/users/keys")
            .await
            .expect(StatusCode::OK)
            .json(),
        json!({ "laptop": OTHER_KEY })
    );
}

#[tokio::test]
async fn a_forced_key_refused_leaves_the_old_one() {
    let World { app, ann, .. } = world().await;
    for (key, name) in [(KEY, "laptop"), (OTHER_KEY, "desk")] {
        ann.send(
            Method::POST,
            "/1.0/users/keys",
            Body::Form(&[("key", key), ("name", name)]),
        )
        .await
        .expect(StatusCode::OK);
    }
    let head = app.api.log_head().await;
    // The desk's key under the laptop's name: a key she holds already, refused in one step.
    ann.send(
        Method::POST,
        "/1.0/users/keys",
        Body::Form(&[("key", OTHER_KEY), ("name", "laptop"), ("force", "true")]),
    )
    .await
    .refused(StatusCode::CONFLICT);
    head.assert_unchanged("the refused forced key").await;
    assert_eq!(
        ann.get("/1.0/users/keys")
            .await
            .expect(StatusCode::OK)
            .json(),
        json!({"desk": OTHER_KEY, "laptop": KEY})
    );
}

#[tokio::test]
async fn teams_are_created_both_ways_and_listed_for_their_members() {
    let World { app, admin, ann } = world().await;
    ann.send(Method::POST, "/teams", Body::Json(json!({"name": "ops"})))
        .await
        .expect(StatusCode::OK);
    ann.send(Method::POST, "/1.0/teams", Body::Form(&[("name", "web")]))
        .await
        .expect(StatusCode::CREATED);
    let teams = ann.get("/teams").await.expect(StatusCode::OK).json();
    assert_eq!(teams, json!([{"name": "ops"}, {"name": "web"}]));
    // Natively, ann's teams.
    let native_teams = native(&app, &ann)
        .get("/v1/teams/ops")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(native_teams["members"], json!(["ann_example_com"]));
    // A user in no team gets a 204.
    admin
        .send(
            Method::POST,
            "/users",
            Body::Json(json!({"email": "bob@example.com", "password": "bob-password"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let bob = admin.with_token(&login(&admin, "bob@example.com", "bob-password").await);
    let reply = bob.get("/teams").await.expect(StatusCode::NO_CONTENT);
    assert!(reply.text.is_empty());
}

#[tokio::test]
async fn members_are_added_and_removed_by_email() {
    let World { app, admin, ann } = world().await;
    admin
        .send(
            Method::POST,
            "/users",
            Body::Json(json!({"email": "bob@example.com", "password": "bob-password"})),
        )
        .await
        .expect(StatusCode::CREATED);
    ann.send(Method::POST, "/teams", Body::Json(json!({"name": "ops"})))
        .await
        .expect(StatusCode::OK);
    ann.send(Method::PUT, "/teams/ops/bob@example.com", Body::None)
        .await
        .expect(StatusCode::OK);
    let team = ann.get("/teams/ops").await.expect(StatusCode::OK).json();
    assert_eq!(team["name"], "ops");
    // Ann reads her own email; bob's is an admin's to read: he shows by name.
    assert_eq!(team["users"], json!(["ann@example.com", "bob_example_com"]));
    let as_admin = admin.get("/teams/ops").await.expect(StatusCode::OK).json();
    assert_eq!(
        as_admin["users"],
        json!(["ann@example.com", "bob@example.com"])
    );
    ann.send(Method::DELETE, "/teams/ops/bob@example.com", Body::None)
        .await
        .expect(StatusCode::OK);
    let members = app.api.get("/v1/teams/ops").await.body["members"].clone();
    assert_eq!(members, json!(["ann_example_com"]));
}

#[tokio::test]
async fn team_refusals_change_nothing() {
    let World { app, admin, ann } = world().await;
    admin
        .send(
            Method::POST,
            "/users",
            Body::Json(json!({"email": "bob@example.com", "password": "bob-password"})),
        )
        .await
        .expect(StatusCode::CREATED);
    let bob = admin.with_token(&login(&admin, "bob@example.com", "bob-password").await);
    ann.send(Method::POST, "/teams", Body::Json(json!({"name": "ops"})))
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    ann.send(Method::POST, "/teams", Body::Json(json!({"name": "ops"})))
        .await
        .refused(StatusCode::CONFLICT);
    ann.send(
        Method::POST,
        "/teams",
        Body::Json(json!({"name": "no spaces"})),
    )
    .await
    .refused(StatusCode::BAD_REQUEST);
    bob.send(Method::PUT, "/teams/ops/bob@example.com", Body::None)
        .await
        .refused(StatusCode::FORBIDDEN);
    ann.send(Method::PUT, "/teams/ops/nobody@example.com", Body::None)
        .await
        .refused(StatusCode::NOT_FOUND);
    bob.send(Method::DELETE, "/teams/ops", Body::None)
        .await
        .refused(StatusCode::FORBIDDEN);
    head.assert_unchanged("the refused team calls").await;
    ann.send(Method::DELETE, "/teams/ops", Body::None)
        .await
        .expect(StatusCode::OK);
    app.api
        .get("/v1/teams/ops")
        .await
        .expect(StatusCode::NOT_FOUND);
}

/// `admin` registers bob (`bob@example.com`) through tsuru: bob's tsuru client.
async fn with_bob(admin: &Tsuru) -> Tsuru {
    admin
        .send(
            Method::POST,
            "/users",
            Body::Json(json!({"email": "bob@example.com", "password": "bob-password"})),
        )
        .await
        .expect(StatusCode::CREATED);
    admin.with_token(&login(admin, "bob@example.com", "bob-password").await)
}

#[tokio::test]
async fn an_outsider_gets_the_same_answer_for_a_known_and_an_unknown_address() {
    let World { app, admin, ann } = world().await;
    let bob = with_bob(&admin).await;
    ann.send(Method::POST, "/teams", Body::Json(json!({"name": "ops"})))
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    for (method, path) in [
        (Method::GET, "/users/{email}/quota"),
        (Method::GET, "/quota/{email}"),
        (Method::GET, "/users/{email}/keys"),
        (Method::DELETE, "/users?user={email}"),
        (Method::PUT, "/teams/ops/{email}"),
        (Method::DELETE, "/teams/ops/{email}"),
    ] {
        let answer = |email: &'static str| {
            let bob = bob.clone();
            let method = method.clone();
            let path = path.replace("{email}", email);
            async move {
                bob.send(method, &path, Body::None)
                    .await
                    .refused(StatusCode::FORBIDDEN)
                    .replace(email, "<email>")
            }
        };
        let known = answer("ann@example.com").await;
        let unknown = answer("nobody@example.com").await;
        assert_eq!(known, unknown, "{method} {path}");
    }
    head.assert_unchanged("the outsider's probes").await;
    // An admin learns which addresses are held; a user their own.
    admin
        .get("/users/nobody@example.com/keys")
        .await
        .refused(StatusCode::NOT_FOUND);
    admin
        .get("/users/ann@example.com/keys")
        .await
        .expect(StatusCode::OK);
    ann.get("/users/ann@example.com/keys")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn a_team_member_adds_by_address_and_an_unknown_one_is_a_404() {
    let World { app, admin, ann } = world().await;
    with_bob(&admin).await;
    ann.send(Method::POST, "/teams", Body::Json(json!({"name": "ops"})))
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    ann.send(Method::PUT, "/teams/ops/nobody@example.com", Body::None)
        .await
        .refused(StatusCode::NOT_FOUND);
    ann.send(Method::DELETE, "/teams/ops/nobody@example.com", Body::None)
        .await
        .refused(StatusCode::NOT_FOUND);
    head.assert_unchanged("the unknown addresses").await;
    ann.send(Method::PUT, "/teams/ops/BOB@example.com", Body::None)
        .await
        .expect(StatusCode::OK);
    let members = app.api.get("/v1/teams/ops").await.body["members"].clone();
    assert_eq!(members, json!(["ann_example_com", "bob_example_com"]));
    assert_eq!(
        app.api
            .get("/v1/audit?actor=ann_example_com&limit=1000")
            .await
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "TeamMemberAdded")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_tsuru_write_is_audited_under_its_caller() {
    let World { app, ann, .. } = world().await;
    ann.send(Method::POST, "/teams", Body::Json(json!({"name": "ops"})))
        .await
        .expect(StatusCode::OK);
    let audit = app
        .api
        .get("/v1/audit?actor=ann_example_com")
        .await
        .expect(StatusCode::OK)
        .body;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"TeamCreated"),
        "ann's team creation is not in her audit: {audit}"
    );
}

#[tokio::test]
async fn an_app_token_is_generated_and_exported_into_the_apps_environment() {
    let World { app, ann, .. } = world().await;
    app.api
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    ann.send(Method::POST, "/teams", Body::Json(json!({"name": "ops"})))
        .await
        .expect(StatusCode::OK);
    let ann_native = native(&app, &ann);
    ann_native
        .post(
            "/v1/apps",
            json!({"name": "shop", "platform": "python", "team_owner": "ops"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let reply = ann
        .send(
            Method::POST,
            "/tokens",
            Body::Json(json!({"client": "shop", "export": true})),
        )
        .await
        .expect(StatusCode::OK);
    let token = reply.json();
    assert_eq!(token["app"], "shop");
    assert_eq!(token["expires"], 0);
    assert!(token["creation"].is_string(), "{token}");
    let whoami = app
        .api
        .with_token(token["token"].as_str().unwrap())
        .get("/v1/auth/whoami")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(whoami["app"], "shop");
    let env = ann_native
        .get("/v1/apps/shop/env")
        .await
        .expect(StatusCode::OK)
        .body;
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "TSURU_APP_TOKEN"
                && v["public"] == false
                && v["value"].is_null()),
        "{env}"
    );
}

#[tokio::test]
async fn a_token_for_no_app_changes_nothing() {
    let World { app, ann, .. } = world().await;
    let head = app.api.log_head().await;
    ann.send(
        Method::POST,
        "/tokens",
        Body::Json(json!({"client": "nope"})),
    )
    .await
    .refused(StatusCode::NOT_FOUND);
    ann.send(Method::POST, "/tokens", Body::Json(json!({})))
        .await
        .refused(StatusCode::BAD_REQUEST);
    head.assert_unchanged("the refused token requests").await;
}
