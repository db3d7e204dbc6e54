//! Support for the end-to-end tests in `tests/`: the server in the test's process
//! ([`spawn_app`]), or the real `bosun` binary in a directory of its own ([`Server`]: find the
//! port it listens on, stop it politely or kill it); and the one HTTP client of either
//! ([`Api`]), with its refusal check ([`Api::refused`]: a problem body, [`Problem`]) and its
//! check that nothing was written ([`LogHead`]). Real receivers of what Bosun sends out are in
//! [`receivers`]; a real service API (tsuru's protocol) in [`service_api`]; a stand-in GitHub
//! (OAuth and the API calls of GitHub sign-in) in [`github`]; the console's cookies in [`console`].

mod app;
pub mod console;
pub mod github;
pub mod receivers;
pub mod service_api;
pub mod tsuru;

pub use app::{spawn_app, TestApp};

use bosun_eventstore::managed::{ManagedPostgres, Options};
use bosun_eventstore::PgEventStore;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The binary under test: cargo builds `bosun-e2e` beside the `deps/` folder that holds the
/// test executables.
pub fn bosun_binary() -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test executable's path");
    let binary = test_exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("bosun-e2e"));
    match binary {
        Some(path) if path.exists() => path,
        _ => panic!(
            "the bosun-e2e binary was not built beside {}; run the tests with cargo test",
            test_exe.display()
        ),
    }
}

/// A temporary directory the unprivileged PostgreSQL user can reach (for a managed cluster).
pub fn work_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("bosun-e2e-")
        .tempdir()
        .expect("create a test directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("open the test directory");
    dir
}

/// A running `bosun serve`.
pub struct Server {
    child: Child,
    pub base: String,
    stderr_log: PathBuf,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `bosun serve` in `dir` with `args` and `env`, and waits for its listening line.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        static STARTS: AtomicU64 = AtomicU64::new(0);
        let stderr_log = dir.join(format!(
            "bosun-{}.log",
            STARTS.fetch_add(1, Ordering::Relaxed)
        ));
        let stderr = std::fs::File::create(&stderr_log).expect("create the server log");
        let mut command = Command::new(bosun_binary());
        command
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .stdin(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start bosun");
        let stdout = child.stdout.take().expect("bosun's stdout");
        let (found, lines) = std::sync::mpsc::channel();
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = printed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("bosun listening on ") {
                    let _ = found.send(address.to_string());
                }
                if let Ok(mut all) = keep.lock() {
                    all.push(line);
                }
            }
        });
        match lines.recv_timeout(Duration::from_secs(90)) {
            Ok(base) => Server {
                child,
                base,
                stderr_log,
                stdout: printed,
            },
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                panic!("bosun did not start listening within 90 s; its log:\n{log}");
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status (at most 60 s).
    pub fn terminate(mut self) -> ExitStatus {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "bosun did not exit within 60 s of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` connection settings of `config`, as `BOSUN_DATABASE__URL` takes them: for a
/// process of its own (a node, `bosun admin`) on a test's database.
pub fn connection_string(config: &tokio_postgres::Config) -> String {
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        tokio_postgres::config::Host::Tcp(name) => name.clone(),
    };
    format!(
        "host={host} port={} user={} dbname={}",
        config.get_ports()[0],
        config.get_user().expect("a user"),
        config.get_dbname().expect("a database"),
    )
}

/// Writes a configuration file into `dir` and returns its path.
pub fn config_file(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("bosun.yaml");
    std::fs::write(&path, yaml).expect("write the configuration");
    path
}

/// The pid in a managed cluster's `postmaster.pid`, if the file exists.
pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postgres/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

pub fn process_alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

/// GET `url` as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// Joins the managed PostgreSQL of `data_dir` as one more user, as a second bosun process would,
/// and opens the event store on it.
pub async fn join(data_dir: &Path) -> (ManagedPostgres, PgEventStore) {
    let pg = ManagedPostgres::start(data_dir, Options::default())
        .await
        .expect("join the managed PostgreSQL");
    let store = PgEventStore::open(&pg.config("bosun"))
        .await
        .expect("open the store");
    (pg, store)
}
/// The `User-Agent` every [`Api`] client sends (the log records it).
pub const USER_AGENT: &str = "bosun-tests/1";

/// An HTTP client of the API with one bearer token (none if `token` is empty): the tests' one
/// way to call the server, in their process or not.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

/// An answer: its status, headers and body (JSON; `Null` if empty, a JSON string if not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Asserts the status, and gives the answer on.
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Answer {
        assert_eq!(self.status, status, "{}", self.body);
        self
    }

    /// A header's value as text (it must be there).
    #[track_caller]
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
            .to_str()
            .expect("a text header")
    }

    /// `X-Total-Count`, the size of the whole list a page is of.
    #[track_caller]
    pub fn total(&self) -> u64 {
        self.header("x-total-count").parse().expect("a count")
    }

    /// The answer as a refusal: an error status, an `application/problem+json` body whose
    /// `status` is the answer's and whose `code` is a string.
    #[track_caller]
    pub fn problem(self) -> Problem {
        let body = &self.body;
        assert!(
            self.status.is_client_error() || self.status.is_server_error(),
            "not refused: {} {body}",
            self.status
        );
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{} {body}",
            self.status
        );
        assert_eq!(body["status"], self.status.as_u16(), "{body}");
        let code = body["code"]
            .as_str()
            .unwrap_or_else(|| panic!("a problem without a code: {body}"))
            .to_string();
        Problem {
            status: self.status,
            code,
            body: self.body,
        }
    }
}

/// A refusal's problem body (RFC 9457), checked to be one by [`Answer::problem`].
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: String,
    pub body: Value,
}

impl Problem {
    /// Asserts the status and the code, and gives the problem on.
    #[track_caller]
    pub fn expect(self, status: StatusCode, code: &str) -> Problem {
        assert_eq!(
            (self.status, self.code.as_str()),
            (status, code),
            "{}",
            self.body
        );
        self
    }

    /// The fields its `errors` name, in order.
    pub fn fields(&self) -> Vec<&str> {
        self.body["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default()
    }

    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

/// The log's head as it was, to check later that nothing was written since (what every
/// refusal must leave). Taken with [`Api::log_head`] by a client that may read the log.
pub struct LogHead {
    reader: Api,
    pub position: u64,
}

impl LogHead {
    /// Asserts the log's head has not moved: nothing was written since. `what` says after what.
    pub async fn assert_unchanged(&self, what: impl std::fmt::Display) {
        let now = self.reader.head().await;
        assert_eq!(
            now, self.position,
            "the log moved from {} to {now} after {what}",
            self.position
        );
    }

    /// `client`'s call, refused ([`Api::refused`]) and leaving the log as it was.
    pub async fn refused(
        &self,
        client: &Api,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Problem {
        let problem = client.refused(method.clone(), path, body).await;
        self.assert_unchanged(format_args!("{method} {path}: {problem}"))
            .await;
        problem
    }
}

impl Api {
    pub fn at(base: &str, token: &str) -> Api {
        Api {
            base: base.to_string(),
            token: token.to_string(),
            http: reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .build()
                .expect("an HTTP client"),
        }
    }

    /// The bootstrap admin of `server` (its token from `<dir>/bosun-data/admin-token`).
    pub fn new(server: &Server, dir: &Path) -> Api {
        let token = std::fs::read_to_string(dir.join("bosun-data/admin-token"))
            .expect("the first start writes the admin's token");
        Api::at(&server.base, token.trim())
    }

    /// The same server with another token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            base: self.base.clone(),
            token: token.to_string(),
            http: self.http.clone(),
        }
    }

    /// The same server with no token.
    pub fn anonymous(&self) -> Api {
        self.with_token("")
    }

    /// Logs `username` in (`POST /v1/auth/tokens`, which must answer 201): a client with its token.
    pub async fn login(&self, username: &str, password: &str) -> Api {
        let answer = self
            .anonymous()
            .post(
                "/v1/auth/tokens",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "login {username}: {}",
            answer.body
        );
        self.with_token(answer.body["token"].as_str().expect("a token"))
    }

    /// A client for a new non-admin user `username`, created by this (admin) client and logged in.
    pub async fn new_user(&self, username: &str, password: &str) -> Api {
        self.post(
            "/v1/users",
            json!({"username": username, "password": password}),
        )
        .await
        .expect(StatusCode::CREATED);
        self.login(username, password).await
    }

    /// As this (admin) client: the platform `python`, the team `ops` and its app `shop`.
    pub async fn shop_of_team_ops(&self) {
        self.post("/v1/platforms", json!({"name": "python"}))
            .await
            .expect(StatusCode::CREATED);
        self.team_with_app("ops", "shop", "python").await;
    }

    /// As this client: a new team `team` (this client's user a member) and its app `app` on
    /// `platform`, owned by this client's user.
    pub async fn team_with_app(&self, team: &str, app: &str, platform: &str) {
        self.post("/v1/teams", json!({"name": team}))
            .await
            .expect(StatusCode::CREATED);
        self.post(
            "/v1/apps",
            json!({"name": app, "platform": platform, "team_owner": team}),
        )
        .await
        .expect(StatusCode::CREATED);
    }

    /// A request to `path` with this client's token, to add headers to.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        if self.token.is_empty() {
            request
        } else {
            request.bearer_auth(&self.token)
        }
    }

    /// `method path` with `headers` and a JSON body if any.
    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.request(method.clone(), path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        Answer::read(response).await
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, &[], body).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A call that must be refused: its problem, checked to be one ([`Answer::problem`]).
    pub async fn refused(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Problem {
        let answer = self.call(method.clone(), path, body).await;
        assert!(
            !answer.status.is_success(),
            "{method} {path} was not refused: {} {}",
            answer.status,
            answer.body
        );
        answer.problem()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("HTTP call");
        let status = response.status();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap_or_default())
    }

    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, text) = self.send(method, path, body).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Every item of the list `first` begins, page after page, following each answer's
    /// `Link: <…>; rel="next"` until one has none; with how many pages it took.
    pub async fn pages(&self, first: &str) -> (Vec<Value>, usize) {
        let (mut items, mut pages) = (Vec::new(), 0);
        let mut next = Some(first.to_string());
        while let Some(path) = next.take() {
            let answer = self.get(&path).await;
            assert_eq!(answer.status, StatusCode::OK, "GET {path}: {}", answer.body);
            let page = answer.body.as_array().expect("a list").clone();
            assert!(!page.is_empty(), "GET {path}: a linked page is empty");
            items.extend(page);
            pages += 1;
            assert!(pages <= 10_000, "the links go round: {path}");
            next = answer
                .headers
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix('<')?.split_once(">; rel=\"next\""))
                .map(|(path, _)| path.to_string());
        }
        (items, pages)
    }

    /// The head of the log (`Bosun-Head` of `/v1/events`: needs a client that may read it).
    pub async fn head(&self) -> u64 {
        let answer = self.get("/v1/events?limit=1").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.header("bosun-head").parse().expect("a position")
    }

    /// The log's head now, to check later that nothing was written ([`LogHead::assert_unchanged`]).
    /// Waits until the log holds still (its head unchanged for a second; at most 30 s): the
    /// work a write set off (a job run, a provisioning) is done.
    pub async fn still(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut head = self.head().await;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.head().await;
            if now == head {
                return;
            }
            assert!(Instant::now() < deadline, "the log kept moving: {now}");
            head = now;
        }
    }

    pub async fn log_head(&self) -> LogHead {
        LogHead {
            reader: self.clone(),
            position: self.head().await,
        }
    }

    /// Every event of the log, in position order, as `/v1/events` shows them.
    pub async fn all_events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut from = 1;
        loop {
            let answer = self
                .get(&format!("/v1/events?from={from}&limit=1000"))
                .await
                .expect(StatusCode::OK);
            let page = answer.body.as_array().expect("a list").clone();
            let Some(last) = page.last() else { break };
            from = last["position"].as_u64().expect("a position") + 1;
            let full = page.len() == 1000;
            events.extend(page);
            if !full {
                break;
            }
        }
        events
    }

    /// Submits a job of app `example`, env `production` (with `extra` fields); it must be accepted.
    pub async fn submit(&self, task: &str, extra: Value) -> Value {
        let mut body = json!({"app": "example", "env": "production", "task": task});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, job) = self
            .json(reqwest::Method::POST, "/v1/jobs", Some(body))
            .await;
        assert!(status.is_success(), "{status}: {job}");
        job
    }

    pub async fn job(&self, id: &str) -> Value {
        self.json(reqwest::Method::GET, &format!("/v1/jobs/{id}"), None)
            .await
            .1
    }

    /// Polls the job until `done` holds for it (at most `limit`).
    pub async fn wait_for(
        &self,
        id: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job never got there: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `path` until it answers 200 with a body `done` holds for (at most 30 s).
    pub async fn until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let read = self.get(path).await;
            if read.status == StatusCode::OK && done(&read.body) {
                return read.body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never got there: {} {}",
                read.status,
                read.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
