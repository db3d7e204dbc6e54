//! Support for the end-to-end tests in `tests/`: start the real `bosun` binary in a directory of
//! its own, find the port it listens on, stop it politely or kill it.

mod app;
pub mod receivers;

pub use app::{spawn_app, TestApp};

use bosun_eventstore::managed::{ManagedPostgres, Options};
use bosun_eventstore::PgEventStore;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
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
/// An HTTP client of the API, as the bootstrap admin (its token from `<dir>/bosun-data/admin-token`).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    /// A client for a new non-admin user `username`, created by this (admin) client and logged in.
    pub async fn new_user(&self, username: &str, password: &str) -> Api {
        let credentials = json!({"username": username, "password": password});
        let (status, user) = self
            .json(
                reqwest::Method::POST,
                "/v1/users",
                Some(credentials.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let (status, login) = self
            .json(reqwest::Method::POST, "/v1/auth/tokens", Some(credentials))
            .await;
        assert!(status.is_success(), "{login}");
        Api {
            base: self.base.clone(),
            token: login["token"].as_str().unwrap_or_default().to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn new(server: &Server, dir: &Path) -> Api {
        let token = std::fs::read_to_string(dir.join("bosun-data/admin-token")).unwrap();
        Api {
            base: server.base.clone(),
            token: token.trim().to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
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
}
