//! pulsar-rest-api's REST surface at `/compat/pulsar` over HTTP, as its clients call it: create
//! (JSON as the node client sends it, a form as curl users do, waiting or not), read, kill,
//! restart and list jobs, a task list; the job in pulsar's shape field by field and its status
//! through its life; every refusal in pulsar's `{error}` shape with its status, changing nothing;
//! and the same job seen through `/v1`. Also the feed's pace, read as a SockJS client does over
//! its WebSocket transport (pulsar's real clients are `compat_pulsar_clients.rs`'s). The server
//! runs in the test's process (`spawn_app`).

use base64::Engine;
use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamId};
use bosun_tests::{spawn_app, Answer, TestApp};
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// `deploy` prints its `VERSION` and a line on stderr; `fail` fails with 3; `stubborn` ignores
/// SIGTERM, so it stays killing for the kill grace.
const CATALOG: &str = r#"
catalog:
  example:
    production:
      deploy:
        command: ["sh", "-c", "echo deploying $VERSION; echo warming up >&2; sleep 0.1; echo done"]
        description: Deploy the app
      fail:
        command: ["sh", "-c", "echo trying; echo broken >&2; exit 3"]
        description: Always fails
      quick:
        command: ["true"]
      sleep:
        command: ["sleep", "600"]
      stubborn:
        command: ["sh", "-c", "trap '' TERM; echo started; sleep 600"]
    staging:
      deploy:
        command: ["true"]
"#;

async fn start(extra: &str) -> TestApp {
    spawn_app(&format!("{CATALOG}{extra}")).await
}

/// A server whose jobs wait: nothing runs them.
async fn start_without_workers() -> TestApp {
    start("runner:\n  workers: 0\n").await
}

/// pulsar's client: the base URL with `/compat/pulsar`, its token sent as the node client sends
/// it (Basic, the token as user name and `x-oauth-basic` as password), redirects not followed.
struct Pulsar {
    base: String,
    authorization: Option<String>,
    http: reqwest::Client,
}

impl Pulsar {
    fn of(app: &TestApp) -> Pulsar {
        Pulsar::with_token(app, &app.api.token)
    }

    fn with_token(app: &TestApp, token: &str) -> Pulsar {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{token}:x-oauth-basic"));
        Pulsar {
            base: app.url("/compat/pulsar"),
            authorization: Some(format!("Basic {basic}")),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn anonymous(app: &TestApp) -> Pulsar {
        Pulsar {
            authorization: None,
            ..Pulsar::of(app)
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::read(request.send().await.expect("an HTTP answer")).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.request(Method::GET, path)).await
    }

    /// A POST with a JSON body, as the node client sends it.
    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    /// A POST with a form body, as `curl -d` sends it.
    async fn post_form(&self, path: &str, form: &str) -> Answer {
        let request = self
            .request(Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string());
        self.send(request).await
    }

    /// `POST /example/production` of `body`: it must be accepted; the new job's id.
    async fn create(&self, body: Value) -> String {
        let answer = self.post("/example/production", body).await;
        let answer = answer.expect(StatusCode::OK);
        answer.body["id"].as_str().expect("an id").to_string()
    }

    async fn job(&self, id: &str) -> Value {
        let answer = self.get(&format!("/job/{id}")).await;
        json_answer(&answer);
        answer.expect(StatusCode::OK).body
    }

    /// Reads job `id` until `done` holds for it (at most 60 s).
    async fn until(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "the job never got there: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |job| job["status"] == status
}

/// The answer's `Content-Type` is exactly `application/json`.
#[track_caller]
fn json_answer(answer: &Answer) {
    assert_eq!(
        answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{} {}",
        answer.status,
        answer.body
    );
}

/// The answer is a pulsar refusal with `status`: `{error: "<message>"}` and nothing else, as
/// `application/json`; its message.
#[track_caller]
fn pulsar_error(answer: &Answer, status: StatusCode) -> String {
    assert_eq!(answer.status, status, "{}", answer.body);
    json_answer(answer);
    let fields = answer.body.as_object().expect("an object");
    assert_eq!(fields.len(), 1, "only `error`: {}", answer.body);
    answer.body["error"]
        .as_str()
        .expect("a message")
        .to_string()
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}

/// A job's JSON has exactly pulsar's fields (0.6.1's `getClientData` and the seed's).
#[track_caller]
fn has_pulsar_fields(job: &Value) {
    assert_eq!(
        keys(job),
        [
            "app",
            "args",
            "command",
            "env",
            "exitCode",
            "id",
            "output",
            "pid",
            "status",
            "stdout",
            "task",
            "timestamp"
        ],
        "{job}"
    );
    assert_eq!(
        keys(&job["args"]),
        ["app", "capistranoOptions", "env", "pulsarOptions", "task"],
        "{job}"
    );
}

// ---- Create and read ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answers_the_id_and_the_web_url_at_once_and_the_job_is_created() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    let answer = pulsar
        .post("/example/production", json!({"task": "deploy"}))
        .await;
    json_answer(&answer);
    let answer = answer.expect(StatusCode::OK);
    assert_eq!(keys(&answer.body), ["id", "url"], "{}", answer.body);
    let id = answer.body["id"].as_str().unwrap();
    assert_eq!(
        answer.body["url"],
        format!("http://{}/web#job/{id}", app.address)
    );
    let job = pulsar.job(id).await;
    has_pulsar_fields(&job);
    assert_eq!(job["status"], "CREATED", "{job}");
    assert_eq!(
        (job["exitCode"].clone(), job["pid"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(
        (job["stdout"].as_str(), job["output"].as_str()),
        (Some(""), Some(""))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_made_here_is_the_same_job_in_v1() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    let id = pulsar
        .create(json!({"task": " deploy\n", "taskVariables": {"VERSION": "1.2", "BUILD": 7}}))
        .await;
    let native = app.api.job(&id).await;
    assert_eq!(
        (
            &native["app"],
            &native["env"],
            &native["task"],
            &native["status"],
            &native["created_by"]
        ),
        (
            &json!("example"),
            &json!("production"),
            &json!("deploy"),
            &json!("waiting"),
            &json!("admin")
        )
    );
    assert_eq!(native["variables"], json!({"VERSION": "1.2", "BUILD": "7"}));
    let listed = app.api.get("/v1/jobs").await.expect(StatusCode::OK).body;
    assert_eq!(listed[0]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_answers_the_finished_job_in_pulsars_shape_field_by_field() {
    let app = start("").await;
    let pulsar = Pulsar::of(&app);
    let before = chrono::Utc::now().timestamp_millis();
    let answer = pulsar
        .post(
            "/example/production",
            json!({"task": "deploy", "wait": true, "taskVariables": {"VERSION": "1.2 beta"}}),
        )
        .await;
    json_answer(&answer);
    let answer = answer.expect(StatusCode::OK);
    assert_eq!(keys(&answer.body), ["data", "id", "url"]);
    let job = &answer.body["data"];
    has_pulsar_fields(job);
    assert_eq!(job["id"], answer.body["id"]);
    assert_eq!(job["status"], "FINISHED");
    let timestamp = job["timestamp"].as_i64().expect("milliseconds");
    assert!(
        (before - 1000..=chrono::Utc::now().timestamp_millis()).contains(&timestamp),
        "{timestamp} is when it was created, in milliseconds"
    );
    assert_eq!(job["stdout"], "deploying 1.2 beta\ndone\n");
    let output = job["output"].as_str().unwrap();
    assert!(
        output.contains("deploying 1.2 beta\n") && output.contains("warming up\n"),
        "{output}"
    );
    assert_eq!(
        job["command"],
        "example production deploy -s VERSION=1.2 beta"
    );
    assert_eq!(
        job["args"],
        json!({
            "app": "example",
            "env": "production",
            "task": "deploy",
            "capistranoOptions": ["-s VERSION=\"1.2\\ beta\""],
            "pulsarOptions": [],
        })
    );
    assert_eq!(
        (&job["app"], &job["env"], &job["task"]),
        (&json!("example"), &json!("production"), &json!("deploy"))
    );
    assert_eq!(job["exitCode"], 0);
    assert!(job["pid"].as_i64().unwrap() > 0, "{job}");
    let id = answer.body["id"].as_str().unwrap();
    assert_eq!(&pulsar.job(id).await, job, "a read gives the same job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_is_failed_with_its_exit_code() {
    let app = start("").await;
    let pulsar = Pulsar::of(&app);
    let answer = pulsar
        .post(
            "/example/production",
            json!({"task": "fail", "wait": "true"}),
        )
        .await
        .expect(StatusCode::OK);
    let job = &answer.body["data"];
    assert_eq!(
        (job["status"].as_str(), job["exitCode"].as_i64()),
        (Some("FAILED"), Some(3))
    );
    assert_eq!(job["stdout"], "trying\n");
    assert!(
        job["output"].as_str().unwrap().contains("broken\n"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_body_with_bracketed_task_variables_creates_the_job() {
    let app = start("").await;
    let pulsar = Pulsar::of(&app);
    let answer = pulsar
        .post_form(
            "/example/production",
            "task=deploy&wait=1&taskVariables%5BVERSION%5D=2.0&taskVariables[NOTE]=a+b",
        )
        .await;
    json_answer(&answer);
    let job = &answer.expect(StatusCode::OK).body["data"];
    assert_eq!(job["status"], "FINISHED", "{job}");
    assert_eq!(job["stdout"], "deploying 2.0\ndone\n");
    let native = app.api.job(job["id"].as_str().unwrap()).await;
    assert_eq!(
        native["variables"],
        json!({"VERSION": "2.0", "NOTE": "a b"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_is_a_flag_in_any_of_its_spellings() {
    let app = start("").await;
    let pulsar = Pulsar::of(&app);
    // Refused first: the jobs below go on writing to the log after they answer.
    let message = refused(
        &app,
        &pulsar,
        Method::POST,
        "/example/production",
        Some(json!({"task": "quick", "wait": "sometimes"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(message.contains("yes/no"), "{message}");
    for yes in ["YES", "On", "True", "1"] {
        let answer = pulsar
            .post_form("/example/production", &format!("task=quick&wait={yes}"))
            .await
            .expect(StatusCode::OK);
        assert_eq!(answer.body["data"]["status"], "FINISHED", "{yes}");
    }
    for no in ["no", "OFF", "false", "0", ""] {
        let answer = pulsar
            .post_form("/example/production", &format!("task=quick&wait={no}"))
            .await
            .expect(StatusCode::OK);
        assert_eq!(keys(&answer.body), ["id", "url"], "{no:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_body_without_wait_answers_at_once() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    let answer = pulsar
        .post_form("/example/production", "task=quick")
        .await
        .expect(StatusCode::OK);
    assert_eq!(keys(&answer.body), ["id", "url"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_past_the_servers_bound_answers_202_with_the_job_as_it_is() {
    let app = start("http:\n  wait_seconds: 1\n").await;
    let pulsar = Pulsar::of(&app);
    let answer = pulsar
        .post("/example/production", json!({"task": "sleep", "wait": 1}))
        .await;
    json_answer(&answer);
    let answer = answer.expect(StatusCode::ACCEPTED);
    let status = answer.body["data"]["status"].as_str().unwrap();
    assert!(["CREATED", "RUNNING"].contains(&status), "{}", answer.body);
    let id = answer.body["id"].as_str().unwrap();
    app.api
        .call(Method::POST, &format!("/v1/jobs/{id}/kill"), None)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_is_taken_as_well_as_basic() {
    let app = start_without_workers().await;
    let pulsar = Pulsar {
        authorization: Some(format!("Bearer {}", app.api.token)),
        ..Pulsar::of(&app)
    };
    let answer = pulsar.get("/jobs").await;
    assert_eq!(answer.expect(StatusCode::OK).body, json!([]));
}

// ---- A job's life ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_killing_then_killed_and_kill_answers_text_ok() {
    let app = start("runner:\n  kill_grace_seconds: 2\n").await;
    let pulsar = Pulsar::of(&app);
    let id = pulsar.create(json!({"task": "stubborn"})).await;
    let running = pulsar
        .until(&id, |job| {
            job["status"] == "RUNNING" && job["stdout"] == "started\n"
        })
        .await;
    assert!(running["pid"].as_i64().unwrap() > 0);
    let answer = pulsar
        .send(pulsar.request(Method::POST, &format!("/job/{id}/kill")))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, json!("OK"));
    assert_eq!(
        answer.headers["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    // It ignores SIGTERM: until the grace passes and SIGKILL ends it, a kill is asked, not done.
    assert_eq!(pulsar.job(&id).await["status"], "KILLING");
    let killed = pulsar.until(&id, status_is("KILLED")).await;
    assert_eq!(killed["stdout"], "started\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_get_kill_kills_too() {
    let app = start("runner:\n  kill_grace_seconds: 1\n").await;
    let pulsar = Pulsar::of(&app);
    let id = pulsar.create(json!({"task": "sleep"})).await;
    pulsar.until(&id, status_is("RUNNING")).await;
    let answer = pulsar.get(&format!("/job/{id}/kill")).await;
    assert_eq!((answer.status, answer.body), (StatusCode::OK, json!("OK")));
    pulsar.until(&id, status_is("KILLED")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_of_kill_is_a_405_and_kills_nothing() {
    let app = start("runner:\n  kill_grace_seconds: 1\n").await;
    let pulsar = Pulsar::of(&app);
    let id = pulsar.create(json!({"task": "sleep"})).await;
    pulsar.until(&id, status_is("RUNNING")).await;
    let log = app.api.log_head().await;
    let answer = pulsar
        .send(pulsar.request(Method::HEAD, &format!("/job/{id}/kill")))
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    log.assert_unchanged("HEAD /job/{id}/kill").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pulsar.job(&id).await["status"], "RUNNING");
    app.api
        .call(Method::POST, &format!("/v1/jobs/{id}/kill"), None)
        .await
        .expect(StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_is_failed_and_restarts_as_a_new_created_job() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    let id = pulsar
        .create(json!({"task": "deploy", "taskVariables": {"VERSION": "3"}}))
        .await;
    app.api
        .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(pulsar.job(&id).await["status"], "FAILED");
    let answer = pulsar
        .send(pulsar.request(Method::POST, &format!("/job/{id}/restart")))
        .await;
    json_answer(&answer);
    let answer = answer.expect(StatusCode::OK);
    assert_eq!(keys(&answer.body), ["id", "url"]);
    let again = answer.body["id"].as_str().unwrap();
    assert_ne!(again, id, "a new job");
    assert_eq!(
        answer.body["url"],
        format!("http://{}/web#job/{again}", app.address)
    );
    // Asked again: the same new job (it restarts once; to run it again, restart that one).
    let repeated = pulsar
        .send(pulsar.request(Method::POST, &format!("/job/{id}/restart")))
        .await
        .expect(StatusCode::OK);
    assert_eq!(repeated.body, answer.body);
    let job = pulsar.job(again).await;
    assert_eq!(
        (
            &job["status"],
            &job["task"],
            &job["args"]["capistranoOptions"]
        ),
        (
            &json!("CREATED"),
            &json!("deploy"),
            &json!(["-s VERSION=\"3\""])
        )
    );
    assert_eq!(
        pulsar.job(&id).await["status"],
        "FAILED",
        "the old job stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_restarts_and_runs_again() {
    let app = start("").await;
    let pulsar = Pulsar::of(&app);
    let failed = pulsar
        .post("/example/production", json!({"task": "fail", "wait": true}))
        .await
        .expect(StatusCode::OK)
        .body;
    let id = failed["id"].as_str().unwrap();
    let again = pulsar
        .send(pulsar.request(Method::POST, &format!("/job/{id}/restart")))
        .await
        .expect(StatusCode::OK)
        .body;
    let again = again["id"].as_str().unwrap();
    let ended = pulsar.until(again, status_is("FAILED")).await;
    assert_eq!(ended["exitCode"], 3);
    let events = app.api.get(&format!("/v1/streams/job-{again}")).await.body;
    assert_eq!(events[0]["data"]["restarted_from"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestration_jobs_command_has_no_empty_words() {
    let app = start_without_workers().await;
    let orchestration = app
        .api
        .post(
            "/v1/orchestrations",
            json!({"name": "nightly", "tasks": [{"component": "example/production/quick"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let run = app
        .api
        .call(
            Method::POST,
            &format!(
                "/v1/orchestrations/{}/jobs",
                orchestration["id"].as_str().unwrap()
            ),
            None,
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let native = app.api.job(run["id"].as_str().unwrap()).await;
    assert_eq!(
        (&native["app"], &native["name"]),
        (&Value::Null, &Value::Null),
        "{native}"
    );
    // No app, environment, task or name: nothing (not the spaces between them).
    let job = Pulsar::of(&app).job(run["id"].as_str().unwrap()).await;
    assert_eq!(job["command"], "", "{job}");
    assert_eq!(job["args"]["capistranoOptions"], json!([]));
}

// ---- Lists ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_newest_first_by_page_from_the_query_or_the_body() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(pulsar.create(json!({"task": "quick"})).await);
    }
    ids.reverse();
    let listed = |answer: Answer| -> Vec<String> {
        json_answer(&answer);
        let answer = answer.expect(StatusCode::OK);
        let jobs = answer.body.as_array().expect("a list");
        jobs.iter().for_each(has_pulsar_fields);
        jobs.iter()
            .map(|job| job["id"].as_str().unwrap().to_string())
            .collect()
    };
    // The node client's `jobs()`: a GET with no body.
    assert_eq!(listed(pulsar.get("/jobs").await), ids);
    assert_eq!(listed(pulsar.get("/jobs?pageSize=2").await), ids[..2]);
    assert_eq!(
        listed(pulsar.get("/jobs?pageSize=2&currentPage=1").await),
        ids[2..]
    );
    let with_body = pulsar
        .request(Method::GET, "/jobs")
        .json(&json!({"currentPage": 1, "pageSize": "1"}));
    assert_eq!(listed(pulsar.send(with_body).await), ids[1..2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_holds_ten_jobs_unless_asked_otherwise() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    for _ in 0..11 {
        pulsar.create(json!({"task": "quick"})).await;
    }
    let page = pulsar.get("/jobs").await.expect(StatusCode::OK).body;
    assert_eq!(page.as_array().unwrap().len(), 10);
    let all = pulsar
        .get("/jobs?pageSize=20")
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(all.as_array().unwrap().len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tasks_of_an_app_and_env_are_listed_with_their_descriptions() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    let answer = pulsar.get("/example/production/tasks").await;
    json_answer(&answer);
    assert_eq!(
        answer.expect(StatusCode::OK).body,
        json!({
            "deploy": "Deploy the app",
            "fail": "Always fails",
            "quick": "",
            "sleep": "",
            "stubborn": "",
        })
    );
    let answer = pulsar.get("/example/qa/tasks").await;
    assert!(pulsar_error(&answer, StatusCode::NOT_FOUND).contains("example/qa"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_sends_its_users_to_the_console() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::anonymous(&app);
    for path in ["", "/"] {
        let answer = pulsar.get(path).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{path:?}");
        assert_eq!(answer.header("location"), "/compat/pulsar/web", "{path:?}");
    }
    let console = pulsar.get("/web").await;
    assert_eq!(console.status, StatusCode::OK);
    assert!(console.header("content-type").starts_with("text/html"));
}

// ---- Refusals ----

/// `pulsar`'s call of `method path` (with a JSON body, if any) is refused with `status`, as
/// pulsar's `{error}`, and the log is as it was. The refusal's message.
async fn refused(
    app: &TestApp,
    pulsar: &Pulsar,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
) -> String {
    let log = app.api.log_head().await;
    let mut request = pulsar.request(method.clone(), path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = pulsar.send(request).await;
    let message = pulsar_error(&answer, status);
    log.assert_unchanged(format_args!("{method} {path}: {message}"))
        .await;
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_good_token_is_a_401_error() {
    let app = start_without_workers().await;
    let id = Pulsar::of(&app).create(json!({"task": "quick"})).await;
    for pulsar in [
        Pulsar::anonymous(&app),
        Pulsar::with_token(&app, "not-a-token"),
    ] {
        for (method, path, body) in [
            (
                Method::POST,
                "/example/production".to_string(),
                Some(json!({"task": "quick"})),
            ),
            (Method::GET, format!("/job/{id}"), None),
            (Method::POST, format!("/job/{id}/kill"), None),
            (Method::POST, format!("/job/{id}/restart"), None),
            (Method::GET, "/jobs".to_string(), None),
            (Method::GET, "/example/production/tasks".to_string(), None),
        ] {
            refused(&app, &pulsar, method, &path, body, StatusCode::UNAUTHORIZED).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_cannot_run_is_a_400_error_and_makes_no_job() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    for (path, body, said) in [
        ("/example/production", json!({}), "task"),
        ("/example/production", json!({"task": "   "}), "task"),
        ("/example/production", json!({"task": ["deploy"]}), "task"),
        ("/example/production", json!({"task": "nope"}), "nope"),
        ("/nope/production", json!({"task": "deploy"}), "nope"),
        ("/example/qa", json!({"task": "deploy"}), "qa"),
        (
            "/example/production",
            json!({"task": "deploy", "taskVariables": {"A-B": "x"}}),
            "A-B",
        ),
        (
            "/example/production",
            json!({"task": "deploy", "taskVariables": {"A": true}}),
            "taskVariables.A",
        ),
        (
            "/example/production",
            json!({"task": "deploy", "taskVariables": "A=1"}),
            "taskVariables",
        ),
        (
            "/example/production",
            json!({"task": "deploy", "wait": "maybe"}),
            "wait",
        ),
        (
            "/example/production",
            json!({"task": "dep\u{0}loy"}),
            "task",
        ),
        ("/example/production", json!(["deploy"]), "object"),
    ] {
        let message = refused(
            &app,
            &pulsar,
            Method::POST,
            path,
            Some(body.clone()),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(message.contains(said), "{body}: {message}");
    }
    let answer = pulsar.get("/jobs").await.expect(StatusCode::OK);
    assert_eq!(answer.body, json!([]), "no job was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_body_is_a_4xx_error_and_makes_no_job() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    for (content_type, body, status) in [
        ("application/json", "{\"task\": ", StatusCode::BAD_REQUEST),
        (
            "application/x-www-form-urlencoded",
            "task=a&task=b",
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/x-www-form-urlencoded",
            "task=deploy&taskVariables[A]=%00",
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/x-www-form-urlencoded",
            "task=deploy&taskVariables[A=1",
            StatusCode::BAD_REQUEST,
        ),
        (
            "text/plain",
            "task=deploy",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ] {
        let log = app.api.log_head().await;
        let request = pulsar
            .request(Method::POST, "/example/production")
            .header("content-type", content_type)
            .body(body);
        let answer = pulsar.send(request).await;
        let message = pulsar_error(&answer, status);
        if body.contains("taskVariables[A=") {
            assert!(message.contains("taskVariables[A\""), "{message}");
        }
        log.assert_unchanged(format_args!("{content_type} {body}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_malformed_job_is_a_404_or_a_400_error() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    let unknown = "0b0e7e1c-0000-4000-8000-000000000000";
    for (method, path) in [
        (Method::GET, format!("/job/{unknown}")),
        (Method::POST, format!("/job/{unknown}/kill")),
        (Method::GET, format!("/job/{unknown}/kill")),
        (Method::POST, format!("/job/{unknown}/restart")),
    ] {
        let message = refused(&app, &pulsar, method, &path, None, StatusCode::NOT_FOUND).await;
        assert!(message.contains(unknown), "{message}");
    }
    for (method, path) in [
        (Method::GET, "/job/532c3240f8214f0000177376"),
        (Method::POST, "/job/not-a-job/kill"),
        (Method::POST, "/job/not-a-job/restart"),
    ] {
        let message = refused(&app, &pulsar, method, path, None, StatusCode::BAD_REQUEST).await;
        assert_eq!(message, "Invalid job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_restart_or_be_killed_now_is_a_409_error() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    let waiting = pulsar.create(json!({"task": "quick"})).await;
    let message = refused(
        &app,
        &pulsar,
        Method::POST,
        &format!("/job/{waiting}/restart"),
        None,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(message.contains("waiting"), "{message}");
    refused(
        &app,
        &pulsar,
        Method::POST,
        &format!("/job/{waiting}/kill"),
        None,
        StatusCode::CONFLICT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_does_not_restart() {
    let app = start("").await;
    let pulsar = Pulsar::of(&app);
    let done = pulsar
        .post(
            "/example/production",
            json!({"task": "quick", "wait": true}),
        )
        .await
        .expect(StatusCode::OK)
        .body;
    assert_eq!(done["data"]["status"], "FINISHED");
    let id = done["id"].as_str().unwrap();
    let message = refused(
        &app,
        &pulsar,
        Method::POST,
        &format!("/job/{id}/restart"),
        None,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(message.contains("success"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_page_is_a_400_error() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    for (path, body, said) in [
        ("/jobs?pageSize=0", None, "pageSize"),
        ("/jobs?pageSize=101", None, "at most 100"),
        ("/jobs?pageSize=ten", None, "pageSize"),
        ("/jobs?currentPage=-1", None, "currentPage"),
        ("/jobs", Some(json!({"pageSize": [1]})), "pageSize"),
        (
            "/jobs",
            Some(json!({"currentPage": "first"})),
            "currentPage",
        ),
    ] {
        let message = refused(
            &app,
            &pulsar,
            Method::GET,
            path,
            body,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(message.contains(said), "{path}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_or_method_is_a_pulsar_error() {
    let app = start_without_workers().await;
    let pulsar = Pulsar::of(&app);
    refused(
        &app,
        &pulsar,
        Method::GET,
        "/no/such/path/here",
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let message = refused(
        &app,
        &pulsar,
        Method::DELETE,
        "/jobs",
        None,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    assert_eq!(message, "/compat/pulsar/jobs does not answer DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_not_yours_is_neither_read_nor_restarted() {
    let app = start_without_workers().await;
    let admins = Pulsar::of(&app);
    let id = admins.create(json!({"task": "quick"})).await;
    app.api
        .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
        .await
        .expect(StatusCode::OK);
    let viewer = app.api.new_user("viewer", "viewer-password").await;
    let theirs = Pulsar::with_token(&app, &viewer.token);
    refused(
        &app,
        &theirs,
        Method::GET,
        &format!("/job/{id}"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &app,
        &theirs,
        Method::POST,
        &format!("/job/{id}/restart"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        theirs.get("/jobs").await.expect(StatusCode::OK).body,
        json!([])
    );
}

// ---- The feed ----

/// A SockJS session of pulsar's feed over its WebSocket transport, as sockjs-client opens it.
struct Feed {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Feed {
    /// Opens a session and authenticates it with `token`.
    async fn open(app: &TestApp, token: &str) -> Feed {
        let url = format!(
            "ws://{}/compat/pulsar/websocket/000/{}/websocket",
            app.address,
            uuid::Uuid::new_v4().simple()
        );
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("open the feed");
        let mut feed = Feed { socket };
        assert_eq!(feed.text().await, "o");
        let token = json!([json!({ "token": token }).to_string()]).to_string();
        feed.socket
            .send(Message::text(token))
            .await
            .expect("send the token");
        feed
    }

    /// The next text frame (at most 30 s away).
    async fn text(&mut self) -> String {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("a frame within 30 s")
                .expect("the feed goes on")
                .expect("a readable frame");
            if let Message::Text(text) = message {
                return text.to_string();
            }
        }
    }

    /// The messages of the next `a[…]` frame, each parsed (heartbeats skipped; a close fails).
    async fn frame(&mut self) -> Vec<Value> {
        loop {
            let text = self.text().await;
            if text == "h" {
                continue;
            }
            let Some(array) = text.strip_prefix('a') else {
                panic!("not a message frame: {text}");
            };
            let messages: Vec<String> = serde_json::from_str(array).expect("a[...] of strings");
            return messages
                .iter()
                .map(|m| serde_json::from_str(m).expect("a JSON message"))
                .collect();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_jobs_changes_reach_the_feed_a_few_times_a_second_the_last_before_its_close() {
    let app = start_without_workers().await;
    let mut feed = Feed::open(&app, &app.api.token).await;
    let job = app.api.submit("quick", json!({})).await;
    let id = job["id"].as_str().unwrap();
    let created = feed.frame().await;
    assert_eq!(
        (&created[0]["event"], &created[0]["job"]["id"]),
        (&json!("job.create"), &job["id"])
    );
    // Forty chunks of output over a second, each appended alone (as a worker does), then the
    // job's end: pulsar's client would get the whole output with every change.
    let store = app.store().await;
    let mut expected = String::new();
    for n in 0..40u64 {
        let text = format!("{n:05}\n");
        append_output(&store, id, n * 6, &text).await;
        expected.push_str(&text);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.api
        .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
        .await
        .expect(StatusCode::OK);
    let mut told = Vec::new();
    while !told
        .last()
        .is_some_and(|m: &Value| m["event"] == "job.close")
    {
        told.extend(feed.frame().await);
    }
    let changes: Vec<&Value> = told.iter().filter(|m| m["event"] == "job.change").collect();
    // At most one per 250 ms over the second, and the one held at the end.
    assert!(
        (1..=7).contains(&changes.len()),
        "{} changes: {told:?}",
        changes.len()
    );
    let events: Vec<&str> = told.iter().map(|m| m["event"].as_str().unwrap()).collect();
    assert_eq!(events.iter().filter(|&&e| e == "job.close").count(), 1);
    // Each renders the job as it was when it went: the last one has all of it.
    let last_change = changes.last().unwrap();
    assert_eq!(last_change["job"]["stdout"], expected.as_str());
    let close = told.last().unwrap();
    assert_eq!(
        (
            close["job"]["status"].as_str(),
            close["job"]["stdout"].as_str()
        ),
        (Some("FAILED"), Some(expected.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_carries_the_tail_of_a_large_output_and_the_close_all_of_it() {
    let app = start_without_workers().await;
    let mut feed = Feed::open(&app, &app.api.token).await;
    let job = app.api.submit("quick", json!({})).await;
    let id = job["id"].as_str().unwrap();
    feed.frame().await;
    // 400 KB of output in two chunks: more than a change carries (256 KiB).
    let store = app.store().await;
    let mut expected = String::new();
    for (n, fill) in ['a', 'b'].into_iter().enumerate() {
        let text = format!("{}\n", fill.to_string().repeat(199_999));
        append_output(&store, id, n as u64 * 200_000, &text).await;
        expected.push_str(&text);
    }
    app.api
        .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
        .await
        .expect(StatusCode::OK);
    let mut told = Vec::new();
    while !told
        .last()
        .is_some_and(|m: &Value| m["event"] == "job.close")
    {
        told.extend(feed.frame().await);
    }
    let changes: Vec<&str> = told
        .iter()
        .filter(|m| m["event"] == "job.change")
        .map(|m| m["job"]["stdout"].as_str().unwrap())
        .collect();
    assert!(!changes.is_empty(), "{told:?}");
    // Each is the tail of the output as it was then; the last went after both chunks.
    for stdout in &changes {
        assert!(
            stdout.len() <= 256 * 1024,
            "a change of {} bytes",
            stdout.len()
        );
        assert!(expected.contains(stdout), "not a tail of the output");
    }
    assert_eq!(
        changes.last().copied(),
        Some(&expected[expected.len() - 256 * 1024..])
    );
    let close = told.last().unwrap();
    assert_eq!(close["job"]["stdout"].as_str(), Some(expected.as_str()));
    assert_eq!(close["job"]["output"].as_str(), Some(expected.as_str()));
}

/// Job `id`'s stdout `text` at byte `offset`, appended as a worker appends it.
async fn append_output(store: &PgEventStore, id: &str, offset: u64, text: &str) {
    let stream = StreamId::parse(format!("job-{id}")).unwrap();
    let data = json!({"job_id": id, "stream": "stdout", "offset": offset, "text": text});
    store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::new("JobOutputAppended", data)],
        )
        .await
        .expect("append the output");
}
