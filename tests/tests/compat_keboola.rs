//! Keboola Orchestrator's wire format under `/compat/keboola`, spoken as its clients speak it
//! (`X-StorageApi-Token`, the blueprint's bodies, the PHP client's raw task arrays and `POST
//! /run`): a conversation in the blueprint's order, each answer checked field by field against
//! the blueprint's models (every field there, with its JSON type, and the real server's
//! `isFinished`); cancelling a waiting job; a killed job read as Syrup's `terminated`; who made
//! a job (`initiatorToken`) as the log recorded it; an orchestration put back as read; pages of
//! orchestrations; secret URLs never shown in clear; and the refusals (another user's writes, a
//! deleted orchestration's, the server's own layers'), each in Syrup's error shape with the
//! right status, leaving the log as it was. The server runs in the test's process, with a
//! catalog whose tasks end at once (and one that sleeps) and an HTTP receiver for
//! `componentUrl`.

use bosun_tests::receivers::HttpReceiver;
use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The user agent the Keboola client sends (the job's `initiatorToken.userAgent`).
const USER_AGENT: &str = "Keboola Orchestrator API PHP Client";

fn config(workers: usize) -> String {
    format!(
        r#"
runner:
  workers: {workers}
  kill_grace_seconds: 1
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
catalog:
  shop:
    production:
      build:
        command: ["sh", "-c", "echo building"]
      migrate:
        command: ["true"]
      sleep:
        command: ["sleep", "600"]
"#
    )
}

/// A Keboola client: every call carries `X-StorageApi-Token` (none if `token` is empty).
#[derive(Clone)]
struct Keboola {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An answer: status, headers, and the body as JSON (`Null` if empty; a JSON string if not JSON).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn expect(self, status: StatusCode) -> Reply {
        assert_eq!(self.status, status, "{}", self.body);
        if self.body.is_null() {
            assert!(
                self.headers.get("content-type").is_none(),
                "{:?}",
                self.headers
            );
        } else {
            assert_json(&self);
        }
        self
    }

    #[track_caller]
    fn total(&self) -> u64 {
        self.headers["x-total-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The answer as Syrup's refusal: `{status: "error", error, code, message, exceptionId,
    /// runId}`, with `code` the HTTP status; its message.
    #[track_caller]
    fn refusal(self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        assert_json(&self);
        let body = &self.body;
        assert_fields(
            body,
            &["status", "error", "code", "message", "exceptionId", "runId"],
        );
        assert_eq!(body["status"], "error", "{body}");
        let kind = if status.is_server_error() {
            "Application error"
        } else {
            "User error"
        };
        assert_eq!(body["error"], kind, "{body}");
        assert_eq!(body["code"], status.as_u16(), "{body}");
        assert!(
            body["exceptionId"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        assert!(body["runId"].is_null(), "{body}");
        let message = body["message"].as_str().unwrap_or_default().to_string();
        assert!(!message.is_empty(), "{body}");
        message
    }
}

/// `Content-Type` exactly `application/json`.
#[track_caller]
fn assert_json(reply: &Reply) {
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{reply:?}"
    );
}

impl Keboola {
    fn of(app: &TestApp, token: &str) -> Keboola {
        Keboola {
            base: app.url("/compat/keboola"),
            token: token.to_string(),
            http: reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .build()
                .unwrap(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        if self.token.is_empty() {
            request
        } else {
            request.header("X-StorageApi-Token", &self.token)
        }
    }

    async fn reply(request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("an HTTP answer");
        let answer = bosun_tests::Answer::read(response).await;
        Reply {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Keboola::reply(request).await
    }

    /// `body` as it is, with no `Content-Type` (as the old PHP client sent raw bodies).
    async fn raw(&self, method: Method, path: &str, body: &str) -> Reply {
        Keboola::reply(self.request(method, path).body(body.to_string())).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// Polls job `id` until it has ended (at most 30 s), as the PHP client's tests do: `while
    /// (!$job['isFinished'])`.
    async fn job_ended(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = self
                .get(&format!("/jobs/{id}"))
                .await
                .expect(StatusCode::OK)
                .body;
            if job["isFinished"] == true {
                return job;
            }
            assert!(Instant::now() < deadline, "the job never ended: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The object has exactly these fields.
#[track_caller]
fn assert_fields(value: &Value, fields: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"));
    let mut have: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut want = fields.to_vec();
    have.sort_unstable();
    want.sort_unstable();
    assert_eq!(have, want, "{value}");
}

/// A time as Keboola writes it: `2013-03-02T11:11:24+00:00`.
#[track_caller]
fn assert_time(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(text).is_ok() && text.len() == 25,
        "not a time with whole seconds and an offset: {text}"
    );
    assert!(text.ends_with("+00:00"), "{text}");
}

#[track_caller]
fn assert_time_or_null(value: &Value) {
    if !value.is_null() {
        assert_time(value);
    }
}

#[track_caller]
fn assert_string_or_null(value: &Value) {
    assert!(value.is_string() || value.is_null(), "{value}");
}

/// `{id, description}`, both strings.
#[track_caller]
fn assert_token(token: &Value) {
    assert_fields(token, &["id", "description"]);
    assert!(
        token["id"].is_string() && token["description"].is_string(),
        "{token}"
    );
}

/// The blueprint's task model.
#[track_caller]
fn assert_task(task: &Value) {
    assert_fields(
        task,
        &[
            "component",
            "componentUrl",
            "action",
            "actionParameters",
            "continueOnFailure",
            "timeoutMinutes",
            "active",
        ],
    );
    assert_string_or_null(&task["component"]);
    assert_string_or_null(&task["componentUrl"]);
    assert!(
        task["component"].is_string() != task["componentUrl"].is_string(),
        "exactly one of component and componentUrl: {task}"
    );
    assert_string_or_null(&task["action"]);
    assert!(task["actionParameters"].is_object(), "{task}");
    assert!(task["continueOnFailure"].is_boolean(), "{task}");
    assert!(
        task["timeoutMinutes"].is_u64() || task["timeoutMinutes"].is_null(),
        "{task}"
    );
    assert!(task["active"].is_boolean(), "{task}");
}

/// The blueprint's notification model.
#[track_caller]
fn assert_notification(notification: &Value) {
    assert_fields(notification, &["email", "channel", "parameters"]);
    assert!(notification["email"].is_string(), "{notification}");
    assert!(
        ["error", "waiting", "processing"].contains(&notification["channel"].as_str().unwrap()),
        "{notification}"
    );
    assert!(notification["parameters"].is_object(), "{notification}");
}

/// The blueprint's orchestration model (`full`: the one orchestration; else a list's item,
/// without its tasks and notifications).
#[track_caller]
fn assert_orchestration(o: &Value, host: &str, full: bool) {
    let mut fields = vec![
        "id",
        "name",
        "crontabRecord",
        "createdTime",
        "lastScheduledTime",
        "nextScheduledTime",
        "active",
        "token",
        "uri",
    ];
    if full {
        fields.extend(["notifications", "tasks"]);
    }
    assert_fields(o, &fields);
    let id = o["id"].as_str().expect("a string id");
    assert!(o["name"].is_string(), "{o}");
    assert_string_or_null(&o["crontabRecord"]);
    assert_time(&o["createdTime"]);
    assert_time_or_null(&o["lastScheduledTime"]);
    assert_time_or_null(&o["nextScheduledTime"]);
    assert!(o["active"].is_boolean(), "{o}");
    assert_token(&o["token"]);
    assert_eq!(
        o["uri"],
        format!("http://{host}/compat/keboola/orchestrations/{id}")
    );
    if full {
        o["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .for_each(assert_task);
        o["notifications"]
            .as_array()
            .expect("notifications")
            .iter()
            .for_each(assert_notification);
    }
}

/// The blueprint's statuses, and Syrup's `terminated` (a killed job).
const STATUSES: [&str; 7] = [
    "waiting",
    "processing",
    "success",
    "error",
    "warning",
    "cancelled",
    "terminated",
];

/// The blueprint's job model (`full`: the one job, with its tasks; else a list's item).
#[track_caller]
fn assert_job(job: &Value, host: &str, full: bool) {
    let mut fields = vec![
        "id",
        "orchestrationId",
        "createdTime",
        "startTime",
        "endTime",
        "status",
        "isFinished",
        "initializedBy",
        "token",
        "initiatorToken",
        "results",
        "notificationsEmails",
        "runId",
        "uri",
    ];
    if full {
        fields.push("tasks");
    }
    assert_fields(job, &fields);
    let id = job["id"].as_str().expect("a string id");
    assert!(job["orchestrationId"].is_string(), "{job}");
    assert_time(&job["createdTime"]);
    assert_time_or_null(&job["startTime"]);
    assert_time_or_null(&job["endTime"]);
    let status = job["status"].as_str().expect("a status");
    assert!(STATUSES.contains(&status), "{job}");
    assert!(
        ["manually", "scheduler"].contains(&job["initializedBy"].as_str().unwrap()),
        "{job}"
    );
    assert_token(&job["token"]);
    let initiator = &job["initiatorToken"];
    assert_fields(initiator, &["id", "description", "userAgent"]);
    for field in ["id", "description", "userAgent"] {
        assert_string_or_null(&initiator[field]);
    }
    let finished = !matches!(status, "waiting" | "processing");
    assert_eq!(job["isFinished"], finished, "{job}");
    if status == "cancelled" {
        // As the blueprint's example: it ran nothing.
        assert_time(&job["endTime"]);
        assert!(job["results"].is_null(), "{job}");
    } else if finished {
        assert_time(&job["endTime"]);
        assert_fields(&job["results"], &["tasks"]);
        for task in job["results"]["tasks"].as_array().expect("results.tasks") {
            assert!(task["status"].is_string(), "{task}");
            assert_ne!(task["status"], "killed", "{task}");
            assert_time_or_null(&task["startTime"]);
            assert_time_or_null(&task["endTime"]);
        }
    } else {
        assert!(job["results"].is_null(), "{job}");
        assert!(job["endTime"].is_null(), "{job}");
    }
    assert!(
        job["notificationsEmails"]
            .as_array()
            .expect("notificationsEmails")
            .iter()
            .all(Value::is_string),
        "{job}"
    );
    assert_eq!(job["runId"], id);
    assert_eq!(
        job["uri"],
        format!("http://{host}/compat/keboola/jobs/{id}")
    );
    if full {
        job["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .for_each(assert_task);
    }
}

/// The blueprint's notifications, as its example writes them.
fn blueprint_notifications() -> Value {
    json!([
        {"email": "someone@somewhere.com", "channel": "error", "parameters": {}},
        {"email": "someone@somewhere.com", "channel": "waiting", "parameters": {"timeout": 10}},
        {"email": "someone@somewhere.com", "channel": "processing", "parameters": {"tolerance": 20}},
    ])
}

/// The blueprint's tasks, with catalog tasks for its components and the receiver for its URL;
/// `active` each as given.
fn blueprint_tasks(receiver: &HttpReceiver, active: [bool; 3]) -> Value {
    json!([
        {"component": "shop/production/build", "action": "run", "actionParameters": {},
         "continueOnFailure": false, "timeoutMinutes": null, "active": active[0]},
        {"component": "shop/production/migrate", "action": "run", "actionParameters": {},
         "continueOnFailure": false, "timeoutMinutes": null, "active": active[1]},
        {"componentUrl": format!("{}/gooddata-writer/execute-reports", receiver.base),
         "actionParameters": {}, "continueOnFailure": true, "timeoutMinutes": 10, "active": active[2]},
    ])
}

/// The tasks as answers show them: every field, `null` where not given.
fn shown_tasks(tasks: &Value) -> Value {
    Value::Array(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let mut all = json!({"component": null, "componentUrl": null, "action": null,
                    "actionParameters": {}, "continueOnFailure": false, "timeoutMinutes": null,
                    "active": true});
                all.as_object_mut()
                    .unwrap()
                    .extend(t.as_object().unwrap().clone());
                all
            })
            .collect(),
    )
}

/// The admin's name and token id (its only token when the server has just started).
async fn admin_identity(api: &Api) -> (String, String) {
    let me = api.get("/v1/users/me").await.expect(StatusCode::OK).body;
    let tokens = api.get("/v1/tokens").await.expect(StatusCode::OK).body;
    (
        me["username"].as_str().unwrap().to_string(),
        tokens[0]["token_id"].as_str().unwrap().to_string(),
    )
}

/// Creates an orchestration of one quick task; its id.
async fn quick_orchestration(kb: &Keboola) -> String {
    let created = kb
        .call(
            Method::POST,
            "/orchestrations",
            Some(json!({"name": "quick", "tasks": [{"component": "shop/production/migrate"}]})),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    created["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_in_the_blueprints_order_answers_the_blueprints_models() {
    let receiver = HttpReceiver::start().await;
    let app = spawn_app(&config(2)).await;
    let host = app.address.to_string();
    let kb = Keboola::of(&app, &app.api.token);
    let (admin, admin_token) = admin_identity(&app.api).await;

    // Create an orchestration: the blueprint's example body (its `tokenId` is taken and not
    // used; a yearly schedule, so no scheduled run lands in the middle of the test).
    let tasks = blueprint_tasks(&receiver, [true, true, true]);
    let created = kb
        .call(
            Method::POST,
            "/orchestrations",
            Some(json!({
                "name": "Main orchestrator",
                "crontabRecord": "0 0 1 1 *",
                "tokenId": 1661,
                "notifications": blueprint_notifications(),
                "tasks": tasks,
            })),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_orchestration(&created, &host, true);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "Main orchestrator");
    assert_eq!(created["crontabRecord"], "0 0 1 1 *");
    assert_eq!(created["active"], true);
    assert!(created["lastScheduledTime"].is_null());
    assert_time(&created["nextScheduledTime"]);
    assert_eq!(created["tasks"], shown_tasks(&tasks));
    assert_eq!(created["notifications"], blueprint_notifications());

    // Read it, and find it in the list (without its tasks and notifications).
    let read = kb
        .get(&format!("/orchestrations/{id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(read, created);
    let list = kb.get("/orchestrations").await.expect(StatusCode::OK);
    assert_eq!(list.total(), 1);
    let items = list.body.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_orchestration(&items[0], &host, false);
    assert_eq!(items[0]["id"], id.as_str());

    // Update it: the blueprint's `{"active": false}`, and back.
    let inactive = kb
        .call(
            Method::PUT,
            &format!("/orchestrations/{id}"),
            Some(json!({"active": false})),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_orchestration(&inactive, &host, true);
    assert_eq!(inactive["active"], false);
    assert!(inactive["nextScheduledTime"].is_null());
    let active = kb
        .call(
            Method::PUT,
            &format!("/orchestrations/{id}"),
            Some(json!({"active": true, "name": "Main", "tokenId": "1661"})),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(
        (&active["active"], &active["name"]),
        (&json!(true), &json!("Main"))
    );
    assert_time(&active["nextScheduledTime"]);

    // Its tasks: read, replaced by a raw array (no Content-Type, as the PHP client sent it),
    // answered 202 with the list.
    let read_tasks = kb
        .get(&format!("/orchestrations/{id}/tasks"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(read_tasks, shown_tasks(&tasks));
    let mut changed = blueprint_tasks(&receiver, [true, false, true]);
    changed[0]["actionParameters"] = json!({"version": "1.2"});
    let replaced = kb
        .raw(
            Method::PUT,
            &format!("/orchestrations/{id}/tasks"),
            &changed.to_string(),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    replaced.as_array().unwrap().iter().for_each(assert_task);
    assert_eq!(replaced, shown_tasks(&changed));
    let read_tasks = kb
        .get(&format!("/orchestrations/{id}/tasks"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(read_tasks, replaced);

    // Its notifications, at both spellings: read, replaced (202 with the list).
    for path in ["notifications", "nofitications"] {
        let read = kb
            .get(&format!("/orchestrations/{id}/{path}"))
            .await
            .expect(StatusCode::OK)
            .body;
        read.as_array()
            .unwrap()
            .iter()
            .for_each(assert_notification);
        assert_eq!(read, blueprint_notifications(), "{path}");
    }
    let one = json!([{"email": "ops@example.com", "channel": "error", "parameters": {}}]);
    let replaced = kb
        .call(
            Method::PUT,
            &format!("/orchestrations/{id}/notifications"),
            Some(one.clone()),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(replaced, one);
    let two = json!([
        {"email": "ops@example.com", "channel": "error", "parameters": {}},
        {"email": "ops@example.com", "channel": "waiting", "parameters": {"timeout": 30}},
    ]);
    let replaced = kb
        .call(
            Method::PUT,
            &format!("/orchestrations/{id}/nofitications"),
            Some(two.clone()),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(replaced, two);
    for path in ["notifications", "nofitications"] {
        let read = kb
            .get(&format!("/orchestrations/{id}/{path}"))
            .await
            .expect(StatusCode::OK)
            .body;
        assert_eq!(read, two, "{path}");
    }

    // Refresh its token: 200 with the orchestration, a new token id.
    let refreshed = kb
        .call(
            Method::POST,
            &format!("/orchestrations/{id}/create-token"),
            Some(json!({})),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_orchestration(&refreshed, &host, true);
    assert_ne!(refreshed["token"]["id"], created["token"]["id"]);
    let token = refreshed["token"].clone();

    // Run it: the blueprint's job body at `…/jobs`, nothing at `…/trigger`, the PHP client's
    // `POST /run`; each 201 with the job, waiting.
    // (`tasks` may only change which of the orchestration's tasks are active.)
    let mut run_tasks = changed.clone();
    for (task, active) in run_tasks
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip([false, false, true])
    {
        task["active"] = json!(active);
    }
    let first = kb
        .call(
            Method::POST,
            &format!("/orchestrations/{id}/jobs"),
            Some(json!({"notificationsEmails": ["notify@me.com"], "tasks": run_tasks})),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let second = kb
        .raw(Method::POST, &format!("/orchestrations/{id}/trigger"), "")
        .await
        .expect(StatusCode::CREATED)
        .body;
    let third = kb
        .call(Method::POST, "/run", Some(json!({"config": id})))
        .await
        .expect(StatusCode::CREATED)
        .body;
    for job in [&first, &second, &third] {
        assert_job(job, &host, true);
        assert_eq!(job["orchestrationId"], id.as_str());
        assert_eq!(job["initializedBy"], "manually");
        assert_eq!(job["token"], token);
        assert_eq!(
            job["initiatorToken"],
            json!({"id": admin_token, "description": admin, "userAgent": USER_AGENT})
        );
    }
    assert_eq!(first["notificationsEmails"], json!(["notify@me.com"]));
    assert_eq!(first["tasks"], shown_tasks(&run_tasks));
    assert_eq!(second["notificationsEmails"], json!([]));
    assert_eq!(second["tasks"], replaced_tasks(&receiver));

    // Read each job until it ends: success, with each task's result.
    let ids: Vec<String> = [&first, &second, &third]
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    let mut ended = Vec::new();
    for job_id in &ids {
        let job = kb.job_ended(job_id).await;
        assert_job(&job, &host, true);
        assert_eq!(job["status"], "success", "{job}");
        assert_time(&job["startTime"]);
        assert_eq!(job["initiatorToken"]["userAgent"], USER_AGENT);
        ended.push(job);
    }
    let statuses = |job: &Value| -> Vec<Value> {
        job["results"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["status"].clone())
            .collect()
    };
    assert_eq!(
        statuses(&ended[0]),
        [json!("skipped"), json!("skipped"), json!("success")]
    );
    assert_eq!(
        statuses(&ended[1]),
        [json!("success"), json!("skipped"), json!("success")]
    );
    assert_eq!(
        receiver.received("/gooddata-writer/execute-reports").len(),
        3
    );

    // Its jobs: newest first, with X-Total-Count; paged by limit and offset.
    let jobs = kb
        .get(&format!("/orchestrations/{id}/jobs"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(jobs.total(), 3);
    let listed: Vec<&Value> = jobs.body.as_array().unwrap().iter().collect();
    listed.iter().for_each(|job| assert_job(job, &host, false));
    let listed_ids: Vec<&str> = listed.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(listed_ids, [&ids[2], &ids[1], &ids[0]]);
    let mut item = ended[1].clone();
    item.as_object_mut().unwrap().remove("tasks");
    assert_eq!(*listed[1], item);
    let page = kb
        .get(&format!("/orchestrations/{id}/jobs?limit=1&offset=1"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(page.total(), 3);
    assert_eq!(page.body.as_array().unwrap().len(), 1);
    assert_eq!(page.body[0]["id"], ids[1].as_str());

    // A finished job cannot be cancelled: 409, nothing written.
    let head = app.api.log_head().await;
    kb.call(Method::DELETE, &format!("/jobs/{}", ids[0]), None)
        .await
        .refusal(StatusCode::CONFLICT);
    head.assert_unchanged("cancelling a finished job").await;
    assert_eq!(kb.job_ended(&ids[0]).await["status"], "success");

    // Delete the orchestration: 204; it is gone, its jobs stay readable.
    kb.call(Method::DELETE, &format!("/orchestrations/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    kb.get(&format!("/orchestrations/{id}"))
        .await
        .refusal(StatusCode::NOT_FOUND);
    assert_eq!(
        kb.get("/orchestrations")
            .await
            .expect(StatusCode::OK)
            .total(),
        0
    );
    let kept = kb
        .get(&format!("/jobs/{}", ids[0]))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(kept, ended[0]);
}

/// The tasks after the conversation's `PUT …/tasks`, as answers show them.
fn replaced_tasks(receiver: &HttpReceiver) -> Value {
    let mut changed = blueprint_tasks(receiver, [true, false, true]);
    changed[0]["actionParameters"] = json!({"version": "1.2"});
    shown_tasks(&changed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_is_cancelled_and_a_cancelled_one_is_not_again() {
    let app = spawn_app(&config(0)).await;
    let host = app.address.to_string();
    let kb = Keboola::of(&app, &app.api.token);
    let id = quick_orchestration(&kb).await;
    let job = kb
        .call(Method::POST, &format!("/orchestrations/{id}/jobs"), None)
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(job["status"], "waiting");
    let job_id = job["id"].as_str().unwrap();

    let cancelled = kb
        .call(Method::DELETE, &format!("/jobs/{job_id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert!(cancelled.body.is_null());
    let read = kb
        .get(&format!("/jobs/{job_id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_job(&read, &host, true);
    assert_eq!(read["status"], "cancelled");
    assert_eq!(read["isFinished"], true);
    assert!(read["startTime"].is_null());
    assert!(read["results"].is_null(), "{read}");

    let head = app.api.log_head().await;
    kb.call(Method::DELETE, &format!("/jobs/{job_id}"), None)
        .await
        .refusal(StatusCode::CONFLICT);
    head.assert_unchanged("cancelling a cancelled job").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_initiator_is_who_submitted_it_as_the_log_recorded() {
    let app = spawn_app(&config(0)).await;
    let ann = app.api.new_user("ann", "correct horse battery").await;
    let ann_token = ann.get("/v1/tokens").await.expect(StatusCode::OK).body[0]["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let kb = Keboola::of(&app, &ann.token);
    let id = quick_orchestration(&kb).await;
    let job = kb
        .call(Method::POST, &format!("/orchestrations/{id}/trigger"), None)
        .await
        .expect(StatusCode::CREATED)
        .body;
    let expected = json!({"id": ann_token, "description": "ann", "userAgent": USER_AGENT});
    assert_eq!(job["initiatorToken"], expected);

    // Read by the admin, with another user agent: still ann's call.
    let admin = Keboola {
        http: reqwest::Client::builder()
            .user_agent("someone else")
            .build()
            .unwrap(),
        ..Keboola::of(&app, &app.api.token)
    };
    let path = format!("/jobs/{}", job["id"].as_str().unwrap());
    let read = admin.get(&path).await.expect(StatusCode::OK).body;
    assert_eq!(read["initiatorToken"], expected);
    let listed = admin
        .get(&format!("/orchestrations/{id}/jobs"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(listed[0]["initiatorToken"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_php_clients_task_arrays_with_nulls_and_empty_arrays_are_taken() {
    let receiver = HttpReceiver::start().await;
    let app = spawn_app(&config(0)).await;
    let kb = Keboola::of(&app, &app.api.token);
    let id = quick_orchestration(&kb).await;
    // `OrchestrationTask::toArray`: every field, null when unset, `array()` as `[]`; `phase`
    // (an integer to its service description) is taken and not used.
    let tasks = json!([
        {"component": null, "componentUrl": format!("{}/timer", receiver.base), "action": null,
         "actionParameters": [], "continueOnFailure": false, "active": true,
         "timeoutMinutes": null, "phase": null},
        {"component": "shop/production/build", "componentUrl": null, "action": "run",
         "actionParameters": {"sleep": 60}, "continueOnFailure": true, "active": false,
         "timeoutMinutes": 5, "phase": 2},
    ]);
    let replaced = kb
        .call(
            Method::PUT,
            &format!("/orchestrations/{id}/tasks"),
            Some(tasks),
        )
        .await
        .expect(StatusCode::ACCEPTED)
        .body;
    assert_eq!(
        replaced,
        json!([
            {"component": null, "componentUrl": format!("{}/timer", receiver.base),
             "action": null, "actionParameters": {}, "continueOnFailure": false,
             "timeoutMinutes": null, "active": true},
            {"component": "shop/production/build", "componentUrl": null, "action": "run",
             "actionParameters": {"sleep": 60}, "continueOnFailure": true,
             "timeoutMinutes": 5, "active": false},
        ])
    );
    // The native Authorization header works too.
    let native = app
        .api
        .get(&format!("/compat/keboola/orchestrations/{id}/tasks"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(native, replaced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_in_syrups_shape_with_their_status_and_change_nothing() {
    let app = spawn_app(&config(0)).await;
    let kb = Keboola::of(&app, &app.api.token);
    let id = quick_orchestration(&kb).await;
    let tasks_before = kb
        .get(&format!("/orchestrations/{id}/tasks"))
        .await
        .expect(StatusCode::OK)
        .body;
    let notifications_before = kb
        .get(&format!("/orchestrations/{id}/notifications"))
        .await
        .expect(StatusCode::OK)
        .body;
    let job = Keboola::reply(kb.request(Method::POST, &format!("/orchestrations/{id}/jobs")))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job_id = job["id"].as_str().unwrap().to_string();
    let native_job = app
        .api
        .post(
            "/v1/jobs",
            json!({"app": "shop", "env": "production", "task": "build"}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let native_job = native_job["id"].as_str().unwrap().to_string();
    let head = app.api.log_head().await;

    let anonymous = Keboola::of(&app, "");
    let stranger = Keboola::of(&app, "not-a-token");
    let tasks = format!("/orchestrations/{id}/tasks");
    let notifications = format!("/orchestrations/{id}/notifications");
    let misspelled = format!("/orchestrations/{id}/nofitications");
    let no_such = "/orchestrations/00000000-0000-0000-0000-000000000000";
    struct Case<'a> {
        client: &'a Keboola,
        method: Method,
        path: String,
        /// A JSON body (sent as JSON), or raw text (sent as it is).
        body: Option<Result<Value, &'a str>>,
        status: StatusCode,
        /// Words the message must hold.
        says: &'a str,
    }
    let case = |client, method, path: &str, body, status, says| Case {
        client,
        method,
        path: path.to_string(),
        body,
        status,
        says,
    };
    // One refusal a line: a table reads better than rustfmt's layout of it.
    #[rustfmt::skip]
    let cases = [
        case(&anonymous, Method::GET, "/orchestrations", None, StatusCode::UNAUTHORIZED, "X-StorageApi-Token"),
        case(&anonymous, Method::POST, "/orchestrations", Some(Ok(json!({"name": "x"}))), StatusCode::UNAUTHORIZED, "token"),
        case(&stranger, Method::GET, &tasks, None, StatusCode::UNAUTHORIZED, "unknown"),
        case(&stranger, Method::DELETE, &format!("/jobs/{job_id}"), None, StatusCode::UNAUTHORIZED, "unknown"),
        case(&kb, Method::GET, no_such, None, StatusCode::NOT_FOUND, "no orchestration"),
        case(&kb, Method::PUT, &format!("{no_such}/tasks"), Some(Ok(json!([]))), StatusCode::NOT_FOUND, "no orchestration"),
        case(&kb, Method::POST, &format!("{no_such}/jobs"), None, StatusCode::NOT_FOUND, "no orchestration"),
        case(&kb, Method::POST, "/run", Some(Ok(json!({"config": "nope"}))), StatusCode::NOT_FOUND, "no orchestration"),
        case(&kb, Method::GET, "/jobs/not-a-job", None, StatusCode::NOT_FOUND, "no job"),
        case(&kb, Method::DELETE, "/jobs/00000000-0000-0000-0000-000000000000", None, StatusCode::NOT_FOUND, "no job"),
        case(&kb, Method::GET, &format!("/jobs/{native_job}"), None, StatusCode::NOT_FOUND, "not an orchestration job"),
        case(&kb, Method::DELETE, &format!("/jobs/{native_job}"), None, StatusCode::NOT_FOUND, "not an orchestration job"),
        case(&kb, Method::POST, "/orchestrations", Some(Ok(json!({"name": "x", "phase": 1}))), StatusCode::BAD_REQUEST, "phase"),
        case(&kb, Method::POST, "/orchestrations", Some(Ok(json!({"crontabRecord": "0 * * * *"}))), StatusCode::BAD_REQUEST, "name"),
        case(&kb, Method::POST, "/orchestrations", Some(Ok(json!({"name": "x", "tasks": [{"component": "shop/production/build", "stage": 1}]}))), StatusCode::BAD_REQUEST, "tasks[0].stage"),
        case(&kb, Method::POST, "/orchestrations", Some(Ok(json!({"name": "x", "tasks": [{"component": "shop/production/build", "phase": {"n": 1}}]}))), StatusCode::BAD_REQUEST, "tasks[0].phase"),
        case(&kb, Method::PUT, &format!("/orchestrations/{id}"), Some(Err("{\"active\": true} {}")), StatusCode::BAD_REQUEST, "JSON"),
        case(&kb, Method::POST, "/orchestrations", Some(Ok(json!({"name": "x", "tasks": [{"component": "ex-facebook"}]}))), StatusCode::BAD_REQUEST, "ex-facebook"),
        case(&kb, Method::POST, "/orchestrations", Some(Ok(json!({"name": "x", "crontabRecord": "every hour"}))), StatusCode::BAD_REQUEST, "crontab"),
        case(&kb, Method::POST, "/orchestrations", Some(Err("{\"name\": ")), StatusCode::BAD_REQUEST, "JSON"),
        case(&kb, Method::PUT, &format!("/orchestrations/{id}"), Some(Err("")), StatusCode::BAD_REQUEST, "empty"),
        case(&kb, Method::PUT, &tasks, Some(Err("")), StatusCode::BAD_REQUEST, "empty"),
        case(&kb, Method::PUT, &tasks, Some(Err("  \n")), StatusCode::BAD_REQUEST, "array of tasks"),
        case(&kb, Method::PUT, &tasks, Some(Ok(json!({"component": "shop/production/build"}))), StatusCode::BAD_REQUEST, "tasks"),
        case(&kb, Method::PUT, &tasks, Some(Ok(json!([{"componentUrl": "http://example.com/run"}]))), StatusCode::BAD_REQUEST, "https"),
        case(&kb, Method::PUT, &notifications, Some(Err("")), StatusCode::BAD_REQUEST, "empty"),
        case(&kb, Method::PUT, &misspelled, Some(Err("")), StatusCode::BAD_REQUEST, "empty"),
        case(&kb, Method::PUT, &misspelled, Some(Ok(json!("error"))), StatusCode::BAD_REQUEST, "notifications"),
        case(&kb, Method::PUT, &notifications, Some(Ok(json!([{"email": "ops@example.com", "channel": "sometimes"}]))), StatusCode::BAD_REQUEST, "channel"),
        case(&kb, Method::POST, &format!("/orchestrations/{id}/jobs"), Some(Ok(json!({"notificationEmails": []}))), StatusCode::BAD_REQUEST, "notificationEmails"),
        case(&kb, Method::POST, "/run", Some(Ok(json!({"tasks": []}))), StatusCode::BAD_REQUEST, "config"),
        case(&kb, Method::POST, "/run", Some(Ok(json!({"config": ["x"]}))), StatusCode::BAD_REQUEST, "config"),
        case(&kb, Method::GET, &format!("/orchestrations/{id}/jobs?limit=0"), None, StatusCode::BAD_REQUEST, "limit"),
        case(&kb, Method::GET, &format!("/orchestrations/{id}/jobs?limit=1001"), None, StatusCode::BAD_REQUEST, "limit"),
        case(&kb, Method::GET, &format!("/orchestrations/{id}/jobs?offset=-1"), None, StatusCode::BAD_REQUEST, "offset"),
        case(&kb, Method::GET, "/orchestrations?limit=0", None, StatusCode::BAD_REQUEST, "limit"),
        case(&kb, Method::GET, "/orchestrations?limit=1001", None, StatusCode::BAD_REQUEST, "limit"),
        case(&kb, Method::GET, "/orchestrations?offset=-1", None, StatusCode::BAD_REQUEST, "offset"),
        case(&kb, Method::GET, "/orchestrations?page=2", None, StatusCode::BAD_REQUEST, "page"),
        case(&kb, Method::GET, "/no-such-resource", None, StatusCode::NOT_FOUND, "/compat/keboola/no-such-resource"),
        case(&kb, Method::PATCH, &format!("/orchestrations/{id}"), Some(Ok(json!({}))), StatusCode::METHOD_NOT_ALLOWED, "/compat/keboola/orchestrations/"),
    ];
    for case in cases {
        let mut request = case.client.request(case.method.clone(), &case.path);
        request = match case.body {
            Some(Ok(json)) => request.json(&json),
            Some(Err(raw)) => request.body(raw.to_string()),
            None => request,
        };
        let message = Keboola::reply(request).await.refusal(case.status);
        assert!(
            message.contains(case.says),
            "{} {}: {message:?} does not say {:?}",
            case.method,
            case.path,
            case.says
        );
        head.assert_unchanged(format_args!("{} {}", case.method, case.path))
            .await;
    }

    // Nothing was changed.
    let tasks_now = kb.get(&tasks).await.expect(StatusCode::OK).body;
    assert_eq!(tasks_now, tasks_before);
    let notifications_now = kb.get(&notifications).await.expect(StatusCode::OK).body;
    assert_eq!(notifications_now, notifications_before);
    assert_eq!(
        kb.get(&format!("/jobs/{job_id}"))
            .await
            .expect(StatusCode::OK)
            .body["status"],
        "waiting"
    );
}

/// Every write to orchestration `id` a Keboola client makes, with a body each takes (`None`:
/// none), and job `job_id`'s cancel.
fn writes(id: &str, job_id: &str) -> Vec<(Method, String, Option<Value>)> {
    let o = format!("/orchestrations/{id}");
    vec![
        (Method::PUT, o.clone(), Some(json!({"active": false}))),
        (
            Method::PUT,
            format!("{o}/tasks"),
            Some(json!([{"component": "shop/production/build"}])),
        ),
        (Method::PUT, format!("{o}/notifications"), Some(json!([]))),
        (Method::PUT, format!("{o}/nofitications"), Some(json!([]))),
        (Method::POST, format!("{o}/create-token"), None),
        (Method::POST, format!("{o}/jobs"), None),
        (Method::POST, format!("{o}/trigger"), None),
        (
            Method::POST,
            "/run".to_string(),
            Some(json!({"config": id})),
        ),
        (Method::DELETE, o, None),
        (Method::DELETE, format!("/jobs/{job_id}"), None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_may_not_change_run_or_delete_an_orchestration_nor_cancel_its_job() {
    let app = spawn_app(&config(0)).await;
    let ann = app.api.new_user("ann", "correct horse battery").await;
    let bob = app.api.new_user("bob", "battery staple horse").await;
    let ann_kb = Keboola::of(&app, &ann.token);
    let bob_kb = Keboola::of(&app, &bob.token);
    let id = quick_orchestration(&ann_kb).await;
    let job = ann_kb
        .call(Method::POST, &format!("/orchestrations/{id}/jobs"), None)
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job_id = job["id"].as_str().unwrap().to_string();
    // Bob reads them (every reader may), but changes nothing: only the creator or an admin may.
    bob_kb
        .get(&format!("/orchestrations/{id}"))
        .await
        .expect(StatusCode::OK);
    bob_kb
        .get(&format!("/jobs/{job_id}"))
        .await
        .expect(StatusCode::OK);
    let head = app.api.log_head().await;
    for (method, path, body) in writes(&id, &job_id) {
        let message = bob_kb
            .call(method.clone(), &path, body)
            .await
            .refusal(StatusCode::FORBIDDEN);
        assert!(
            message.contains("creator") || message.contains("submitter"),
            "{method} {path}: {message}"
        );
        head.assert_unchanged(format_args!("bob's {method} {path}"))
            .await;
    }
    let read = ann_kb.get(&format!("/jobs/{job_id}")).await;
    assert_eq!(read.expect(StatusCode::OK).body["status"], "waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_orchestration_is_not_found_for_writes_as_for_reads() {
    let app = spawn_app(&config(0)).await;
    let kb = Keboola::of(&app, &app.api.token);
    let id = quick_orchestration(&kb).await;
    let job = kb
        .call(Method::POST, &format!("/orchestrations/{id}/jobs"), None)
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job_id = job["id"].as_str().unwrap().to_string();
    kb.call(Method::DELETE, &format!("/orchestrations/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    kb.get(&format!("/orchestrations/{id}"))
        .await
        .refusal(StatusCode::NOT_FOUND);
    let head = app.api.log_head().await;
    let mut orchestration_writes = writes(&id, &job_id);
    let (cancel, cancel_path, _) = orchestration_writes.pop().unwrap();
    for (method, path, body) in orchestration_writes {
        let message = kb
            .call(method.clone(), &path, body)
            .await
            .refusal(StatusCode::NOT_FOUND);
        assert!(message.contains("deleted"), "{method} {path}: {message}");
        head.assert_unchanged(format_args!("{method} {path} of a deleted orchestration"))
            .await;
    }
    // Its waiting job is still a job: cancelled as any.
    kb.call(cancel, &cancel_path, None)
        .await
        .expect(StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_orchestration_job_reads_as_syrups_terminated() {
    let app = spawn_app(&config(1)).await;
    let host = app.address.to_string();
    let kb = Keboola::of(&app, &app.api.token);
    let created = kb
        .call(
            Method::POST,
            "/orchestrations",
            Some(json!({"name": "slow", "tasks": [{"component": "shop/production/sleep"}]})),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = created["id"].as_str().unwrap();
    let job = kb
        .call(Method::POST, &format!("/orchestrations/{id}/jobs"), None)
        .await
        .expect(StatusCode::CREATED)
        .body;
    let job_id = job["id"].as_str().unwrap();
    app.api
        .wait_for(job_id, Duration::from_secs(20), |j| {
            j["tasks"][0]["status"] == "processing"
        })
        .await;
    let running = kb
        .get(&format!("/jobs/{job_id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_job(&running, &host, true);
    assert_eq!(
        (&running["status"], &running["isFinished"]),
        (&json!("processing"), &json!(false))
    );
    app.api
        .call(Method::POST, &format!("/v1/jobs/{job_id}/kill"), None)
        .await
        .expect(StatusCode::ACCEPTED);
    let ended = kb.job_ended(job_id).await;
    assert_job(&ended, &host, true);
    assert_eq!(ended["status"], "terminated", "{ended}");
    assert_eq!(ended["results"]["tasks"][0]["status"], "terminated");
    assert_eq!(app.api.job(job_id).await["status"], "killed");
    let listed = kb
        .get(&format!("/orchestrations/{id}/jobs"))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(listed[0]["status"], "terminated");
    assert_eq!(listed[0]["isFinished"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_put_back_as_read_is_taken() {
    let receiver = HttpReceiver::start().await;
    let app = spawn_app(&config(0)).await;
    let host = app.address.to_string();
    let kb = Keboola::of(&app, &app.api.token);
    let created = kb
        .call(
            Method::POST,
            "/orchestrations",
            Some(json!({
                "name": "Main orchestrator",
                "crontabRecord": "0 0 1 1 *",
                "notifications": blueprint_notifications(),
                "tasks": blueprint_tasks(&receiver, [true, false, true]),
            })),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let id = created["id"].as_str().unwrap();
    let read = kb
        .get(&format!("/orchestrations/{id}"))
        .await
        .expect(StatusCode::OK)
        .body;
    let put = kb
        .call(
            Method::PUT,
            &format!("/orchestrations/{id}"),
            Some(read.clone()),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_orchestration(&put, &host, true);
    assert_eq!(put, read);
    // Its read-only fields are not used: another id or token changes nothing.
    let mut changed = read.clone();
    changed["id"] = json!("another");
    changed["token"] = json!({"id": "1661", "description": "Orchestrator token"});
    changed["uri"] = json!("http://elsewhere/orchestrations/another");
    changed["name"] = json!("Renamed");
    let put = kb
        .call(Method::PUT, &format!("/orchestrations/{id}"), Some(changed))
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(put["id"], id);
    assert_eq!(put["token"]["id"], read["token"]["id"]);
    assert_eq!(put["uri"], read["uri"]);
    assert_eq!(put["name"], "Renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrations_are_listed_a_page_at_a_time_with_the_total() {
    let app = spawn_app(&config(0)).await;
    let kb = Keboola::of(&app, &app.api.token);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(quick_orchestration(&kb).await);
    }
    ids.reverse(); // newest first
    let all = kb.get("/orchestrations").await.expect(StatusCode::OK);
    assert_eq!(all.total(), 3);
    let listed: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    let first = kb
        .get("/orchestrations?limit=2")
        .await
        .expect(StatusCode::OK);
    assert_eq!(first.total(), 3);
    assert_eq!(first.body.as_array().unwrap().len(), 2);
    assert_eq!(first.body[0]["id"], ids[0].as_str());
    let rest = kb
        .get("/orchestrations?limit=2&offset=2")
        .await
        .expect(StatusCode::OK);
    assert_eq!(rest.total(), 3);
    assert_eq!(rest.body.as_array().unwrap().len(), 1);
    assert_eq!(rest.body[0]["id"], ids[2].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_refusals_are_in_syrups_shape() {
    let app = spawn_app(&config(0)).await;
    let kb = Keboola::of(&app, &app.api.token);
    let id = quick_orchestration(&kb).await;
    let head = app.api.log_head().await;
    // A NUL in the path, refused before any handler.
    let message = kb
        .get(&format!("/orchestrations/{id}%00"))
        .await
        .refusal(StatusCode::BAD_REQUEST);
    assert!(message.contains("NUL"), "{message}");
    let message = kb
        .call(Method::PUT, "/orchestrations/a%00b/tasks", Some(json!([])))
        .await
        .refusal(StatusCode::BAD_REQUEST);
    assert!(message.contains("NUL"), "{message}");
    // A position no write has reached.
    let request = kb
        .request(Method::GET, "/orchestrations")
        .header("Bosun-Min-Position", "999999999");
    let message = Keboola::reply(request)
        .await
        .refusal(StatusCode::BAD_REQUEST);
    assert!(message.contains("Bosun-Min-Position"), "{message}");
    head.assert_unchanged("the server's refusals").await;
}

/// Parts of the secret URLs below that no answer may show.
const URL_SECRETS: [&str; 4] = ["s3cret-path", "qs-s3cret", "pa55-w0rd", "qk3y-s3cret"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentialed_component_url_and_a_webhook_url_are_never_shown_in_clear() {
    let receiver = HttpReceiver::start().await;
    let app = spawn_app(&config(1)).await;
    let kb = Keboola::of(&app, &app.api.token);
    let base = receiver.base.trim_start_matches("http://");
    let component_url = format!("http://bot:pa55-w0rd@{base}/tasks/creds?key=qk3y-s3cret");
    let webhook_url = format!("{}/hooks/s3cret-path?token=qs-s3cret", receiver.base);
    let shown = format!("{}/…", receiver.base);
    let created = kb
        .call(
            Method::POST,
            "/orchestrations",
            Some(json!({
                "name": "secret",
                "tasks": [{"componentUrl": component_url, "actionParameters": {"n": 1}}],
                "notifications": [{"webhookUrl": webhook_url, "channel": "error"}],
            })),
        )
        .await
        .expect(StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["tasks"][0]["componentUrl"], shown.as_str());
    assert_eq!(
        created.body["notifications"][0]["webhookUrl"],
        shown.as_str()
    );
    let job = kb
        .call(Method::POST, &format!("/orchestrations/{id}/jobs"), None)
        .await
        .expect(StatusCode::CREATED);
    let job_id = job.body["id"].as_str().unwrap().to_string();
    let ended = kb.job_ended(&job_id).await;
    assert_eq!(ended["status"], "success", "{ended}");
    // The call was made with the URL's credentials.
    let call = receiver
        .wait_for("/tasks/creds", Duration::from_secs(5), |_| true)
        .await;
    assert!(call.headers.contains_key("authorization"));
    let o = format!("/orchestrations/{id}");
    let mut answers = vec![created.body, job.body, ended];
    for path in [
        o.clone(),
        format!("{o}/tasks"),
        format!("{o}/notifications"),
        format!("{o}/jobs"),
        "/orchestrations".to_string(),
        format!("/jobs/{job_id}"),
    ] {
        answers.push(kb.get(&path).await.expect(StatusCode::OK).body);
    }
    // Written back as read: the URLs held stay, still never shown.
    let read = answers[3].clone();
    answers.push(
        kb.call(Method::PUT, &o, Some(read))
            .await
            .expect(StatusCode::OK)
            .body,
    );
    for answer in &answers {
        let text = answer.to_string();
        for secret in URL_SECRETS {
            assert!(!text.contains(secret), "{secret} is shown: {text}");
        }
    }
    let rerun = kb
        .call(Method::POST, &format!("/orchestrations/{id}/jobs"), None)
        .await
        .expect(StatusCode::CREATED)
        .body;
    assert_eq!(
        kb.job_ended(rerun["id"].as_str().unwrap()).await["status"],
        "success"
    );
    assert_eq!(receiver.received("/tasks/creds").len(), 2);
}
