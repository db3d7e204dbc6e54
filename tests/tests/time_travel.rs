//! Time travel over real HTTP: `?as_of_version=N` on a resource's GET answers it as its
//! stream's first N events alone make it, folded from the log (not read from the read models),
//! and `GET /v1/streams/{id}?to_version=N` its events up to N. The long-stream tests record what
//! the read models answered after every write, then fold every version and compare. The server
//! runs in the test's process (`spawn_app`).

use bosun_tests::{spawn_app, Api};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";

const CATALOG: &str = r#"
catalog:
  ml:
    production:
      ok:
        command: ["true"]
"#;

/// `path`'s answer now, from the read models: its version (`ETag`) and body.
async fn seen(client: &Api, path: &str) -> (u64, Value) {
    let answer = client.get(path).await.expect(StatusCode::OK);
    let version = answer
        .header("etag")
        .trim_matches('"')
        .parse()
        .expect("a version");
    (version, answer.body)
}

/// `path` as of `version`: checks it is tagged with that version, and answers its body.
async fn folded(client: &Api, path: &str, version: u64) -> Value {
    let separator = if path.contains('?') { '&' } else { '?' };
    let answer = client
        .get(&format!("{path}{separator}as_of_version={version}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(answer.header("etag"), format!("\"{version}\""), "{path}");
    answer.body
}

/// What the read models showed of each of `paths` at each version seen, after every write.
type Record = BTreeMap<(&'static str, u64), Value>;

async fn record(client: &Api, paths: &[&'static str], into: &mut Record) -> u64 {
    let mut last = 0;
    for path in paths {
        let (version, body) = seen(client, path).await;
        into.insert((path, version), body);
        last = version;
    }
    last
}

/// Folds each of `paths` as of every version from 0 to `last`, checks each against what the
/// read models showed at that version where [`record`] saw it, and answers the folds.
async fn every_fold_matches(
    client: &Api,
    paths: &[&'static str],
    last: u64,
    record_of: &Record,
) -> Vec<Value> {
    let mut folds = Vec::new();
    for version in 0..=last {
        for path in paths {
            let body = folded(client, path, version).await;
            if let Some(expected) = record_of.get(&(*path, version)) {
                assert_eq!(&body, expected, "{path} as of version {version}");
            }
            folds.push(body);
        }
    }
    folds
}

#[tokio::test]
async fn folding_every_version_of_a_long_app_stream_matches_what_the_read_models_showed() {
    let app = spawn_app("").await;
    let admin = app.api.clone();
    for platform in ["python", "go"] {
        admin
            .post("/v1/platforms", json!({"name": platform}))
            .await
            .expect(StatusCode::CREATED);
    }
    admin.team_with_app("ops", "shop", "python").await;
    admin
        .post("/v1/teams", json!({"name": "web"}))
        .await
        .expect(StatusCode::CREATED);
    let paths = ["/v1/apps/shop", "/v1/apps/shop/env"];
    let mut record_of = Record::new();
    let mut last = record(&admin, &paths, &mut record_of).await;
    for round in 0..12 {
        let writes = [
            (
                Method::PUT,
                "/v1/apps/shop/env".to_string(),
                Some(
                    json!({"envs": [{"name": format!("V{}", round % 4), "value": format!("{round}")},
                                     {"name": "SECRET", "value": format!("s-{round}"), "public": false}],
                            "restart": false}),
                ),
            ),
            (
                Method::PATCH,
                "/v1/apps/shop".to_string(),
                Some(json!({"description": format!("round {round}")})),
            ),
            (
                Method::POST,
                "/v1/apps/shop/cnames".to_string(),
                Some(json!({"cname": format!("r{round}.example.com")})),
            ),
            (
                if round % 2 == 0 {
                    Method::PUT
                } else {
                    Method::DELETE
                },
                "/v1/apps/shop/teams/web".to_string(),
                None,
            ),
            (
                Method::PATCH,
                "/v1/apps/shop".to_string(),
                Some(json!({"platform": if round % 2 == 0 { "go" } else { "python" }})),
            ),
        ];
        for (method, path, body) in writes {
            let answer = admin.call(method.clone(), &path, body).await;
            assert!(
                answer.status.is_success(),
                "{method} {path}: {} {}",
                answer.status,
                answer.body
            );
            last = record(&admin, &paths, &mut record_of).await;
        }
        if round % 3 == 2 {
            admin
                .call(
                    Method::DELETE,
                    &format!("/v1/apps/shop/env?name=V{}", round % 4),
                    None,
                )
                .await
                .expect(StatusCode::OK);
            admin
                .call(
                    Method::DELETE,
                    "/v1/apps/shop/cnames",
                    Some(json!({"cname": format!("r{}.example.com", round - 1)})),
                )
                .await
                .expect(StatusCode::OK);
            last = record(&admin, &paths, &mut record_of).await;
        }
    }
    assert!(last >= 60, "a long stream: {last} versions");

    every_fold_matches(&admin, &paths, last, &record_of).await;
    let distinct: std::collections::BTreeSet<String> = record_of
        .iter()
        .filter(|((path, _), _)| *path == "/v1/apps/shop")
        .map(|(_, body)| body.to_string())
        .collect();
    assert!(
        distinct.len() > 50,
        "the versions differ: {} distinct answers",
        distinct.len()
    );
    // The folds left the live read models alone.
    assert_eq!(
        seen(&admin, "/v1/apps/shop").await,
        (last, record_of[&("/v1/apps/shop", last)].clone())
    );

    // From the log, not the read models: a removed app is still there as it was.
    admin
        .call(Method::DELETE, "/v1/apps/shop", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    admin
        .get("/v1/apps/shop")
        .await
        .problem()
        .expect(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        folded(&admin, "/v1/apps/shop", last).await,
        record_of[&("/v1/apps/shop", last)]
    );
}

#[tokio::test]
async fn folding_every_version_of_an_orchestration_matches_what_the_read_models_showed() {
    let app = spawn_app(CATALOG).await;
    let admin = app.api.clone();
    let id = admin
        .post(
            "/v1/orchestrations",
            json!({"name": "nightly", "tasks": [{"component": "ml/production/ok"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let path: &'static str = Box::leak(format!("/v1/orchestrations/{id}").into_boxed_str());
    let tasks: &'static str = Box::leak(format!("{path}/tasks").into_boxed_str());
    let paths = [path, tasks];
    let mut record_of = Record::new();
    let mut last = record(&admin, &paths, &mut record_of).await;
    for round in 0..8 {
        let writes = [
            (
                Method::PATCH,
                path.to_string(),
                json!({"name": format!("nightly-{round}")}),
            ),
            (
                Method::PATCH,
                path.to_string(),
                json!({"active": round % 2 == 1}),
            ),
            (
                Method::PUT,
                tasks.to_string(),
                json!((0..=round % 3)
                    .map(
                        |i| json!({"component": "ml/production/ok", "active": i != 1,
                                    "continue_on_failure": round % 2 == 0})
                    )
                    .collect::<Vec<_>>()),
            ),
            (
                Method::PUT,
                format!("{path}/notifications"),
                json!([{"email": format!("r{round}@example.com"), "channel": "error"}]),
            ),
        ];
        for (method, path, body) in writes {
            let answer = admin.call(method.clone(), &path, Some(body)).await;
            assert!(
                answer.status.is_success(),
                "{method} {path}: {} {}",
                answer.status,
                answer.body
            );
            last = record(&admin, &paths, &mut record_of).await;
        }
    }
    assert!(last >= 30, "a long stream: {last} versions");
    every_fold_matches(&admin, &paths, last, &record_of).await;
}

#[tokio::test]
async fn folding_every_version_of_a_team_matches_what_the_read_models_showed_to_a_member() {
    let app = spawn_app("").await;
    let admin = app.api.clone();
    let names = ["ann", "bob", "cid", "dee"];
    for name in names {
        admin.new_user(name, &format!("{name}-password")).await;
    }
    admin
        .post("/v1/teams", json!({"name": "ops"}))
        .await
        .expect(StatusCode::CREATED);
    admin
        .call(Method::PUT, "/v1/teams/ops/members/ann", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    let ann = admin.login("ann", "ann-password").await;
    let path = "/v1/teams/ops";
    let mut record_of = Record::new();
    let mut last = record(&ann, &[path], &mut record_of).await;
    for round in 0..8 {
        for (i, name) in names.iter().enumerate().skip(1) {
            let method = if (round + i) % 2 == 0 {
                Method::PUT
            } else {
                Method::DELETE
            };
            let answer = admin
                .call(method, &format!("/v1/teams/ops/members/{name}"), None)
                .await;
            if answer.status.is_success() {
                last = record(&ann, &[path], &mut record_of).await;
            }
        }
    }
    assert!(last >= 20, "a long stream: {last} versions");
    let mut sizes = std::collections::BTreeSet::new();
    for body in every_fold_matches(&ann, &[path], last, &record_of).await {
        sizes.insert(body["members"].as_array().map_or(0, Vec::len));
    }
    assert!(sizes.len() >= 3, "the members changed: {sizes:?}");
}

#[tokio::test]
async fn a_version_never_had_a_bad_one_and_a_list_are_refused_and_write_nothing() {
    let app = spawn_app("").await;
    let admin = app.api.clone();
    admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    admin.team_with_app("ops", "shop", "python").await;
    let ann = admin.new_user("ann", "ann-password").await;
    let (version, _) = seen(&admin, "/v1/apps/shop").await;
    let anonymous = admin.anonymous();
    let head = admin.log_head().await;
    for (client, path, status, code) in [
        (
            &admin,
            "/v1/apps/shop?as_of_version=9223372036854775807".to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &admin,
            "/v1/apps/shop?as_of_version=9223372036854775808".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            &admin,
            "/v1/apps/shop?as_of_version=%2B1".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            &admin,
            "/v1/apps/shop?as%5Fof%5Fversion=999".to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &admin,
            format!("/v1/apps/shop?as_of_version={}", version + 1),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &admin,
            "/v1/apps/nope?as_of_version=1".to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &admin,
            "/v1/apps/shop?as_of_version=one".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            &admin,
            "/v1/apps/shop?as_of_version=1&as_of_version=1".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            &admin,
            "/v1/apps?as_of_version=1".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        // Ann is in no team of the app: its past is not hers to read either.
        (
            &ann,
            "/v1/apps/shop?as_of_version=0".to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &anonymous,
            "/v1/apps/shop?as_of_version=1".to_string(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ] {
        let answer = client.get(&path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        answer.problem().expect(status, code);
    }
    head.assert_unchanged("the refused reads").await;
    // The rest of the query still reaches the handler.
    ann.post(
        "/v1/users/ann/keys",
        json!({"name": "laptop", "key": ED25519}),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(folded(&ann, "/v1/users/ann/keys", 0).await, json!([]));
    assert_eq!(
        folded(&ann, "/v1/users/ann/keys", 1).await[0]["name"],
        "laptop"
    );
    assert_eq!(
        folded(&ann, "/v1/users/ann/keys?offset=1", 1).await,
        json!([])
    );
    ann.get("/v1/users/ann/keys?limit=many&as_of_version=1")
        .await
        .problem()
        .expect(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn a_stream_reads_up_to_a_version() {
    let app = spawn_app("").await;
    let admin = app.api.clone();
    admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    admin.team_with_app("ops", "shop", "python").await;
    for n in 0..4 {
        admin
            .call(
                Method::PATCH,
                "/v1/apps/shop",
                Some(json!({"description": format!("d{n}")})),
            )
            .await
            .expect(StatusCode::OK);
    }
    let versions = |body: &Value| -> Vec<u64> {
        body.as_array()
            .expect("events")
            .iter()
            .map(|e| e["version"].as_u64().expect("a version"))
            .collect()
    };
    let all = admin
        .get("/v1/streams/app-shop")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        versions(&all),
        (0..all.as_array().map_or(0, Vec::len) as u64).collect::<Vec<_>>()
    );
    assert!(versions(&all).len() >= 5);
    let to_3 = admin
        .get("/v1/streams/app-shop?to_version=3")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(versions(&to_3), vec![0, 1, 2, 3]);
    assert_eq!(
        to_3.as_array(),
        all.as_array().map(|a| a[..4].to_vec()).as_ref()
    );
    let between = admin
        .get("/v1/streams/app-shop?from_version=1&to_version=3&limit=1")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(versions(&between), vec![1]);
    let last = versions(&all).len() as u64 - 1;
    assert_eq!(
        versions(
            &admin
                .get(&format!(
                    "/v1/streams/app-shop?from_version=2&to_version={last}"
                ))
                .await
                .expect(StatusCode::OK)
                .body
        ),
        (2..=last).collect::<Vec<_>>()
    );
    for to in [last + 1, last + 100] {
        admin
            .get(&format!("/v1/streams/app-shop?to_version={to}"))
            .await
            .problem()
            .expect(StatusCode::NOT_FOUND, "not_found");
    }
}
