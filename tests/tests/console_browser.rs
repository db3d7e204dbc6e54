//! The web console in a real headless Chromium, driven over WebDriver (chromedriver, fantoccini):
//! signing in with a password, submitting a catalog task and watching its output arrive and its
//! status become `success`, killing a running job, a job submitted by another client appearing
//! in the list without a reload, and every page rendered (under the page's CSP: no violation in
//! the browser's log) with a screenshot of each under `target/console-screenshots/`, the job
//! list also at a phone's width. That folder is emptied when a run of these tests first uses it
//! (at the start of the screenshot test), so what it holds is this run's; a screenshot that
//! cannot be taken, or is no PNG of a rendered page, fails the test taking it, and the screenshot
//! test ends checking that there is one of each page.
//!
//! Needs `chromium` and `chromedriver` on `PATH` (or in `/usr/bin`: Debian's `chromium` and
//! `chromium-driver`): without them the tests fail, saying so. The tests of this file take the
//! browser one at a time (a lock): each starts its own chromedriver and browser session, and
//! ends both (and any browser left behind) when it ends, passed or not.

use bosun_tests::console::admin_with_password;
use bosun_tests::{spawn_app, Api, TestApp};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the tools are looked for after `PATH`.
const TOOL_DIR: &str = "/usr/bin";
/// The longest anything the page shows may take to show.
const PATIENCE: Duration = Duration::from_secs(20);
const PASSWORD: &str = "console-password";

/// `print` prints five lines a second apart (its output arrives while it runs: the page must
/// show the first line while the job is still `processing`); `sleep` runs until killed.
const CATALOG: &str = r#"
catalog:
  example:
    production:
      print:
        command: ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i for $GREETING; sleep 1; done"]
        description: Prints five lines
      sleep:
        command: ["sleep", "600"]
        description: Sleeps until killed
"#;

/// What every PNG file starts with.
const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// A screenshot of a rendered page is larger than this: a blank window's is a few KB, every
/// page of the console's tens of KB.
const MIN_SCREENSHOT_BYTES: usize = 8 * 1024;
/// The screenshots the screenshot test saves: one of each page it visits, and the job list at a
/// phone's width.
const PAGE_SCREENSHOTS: [&str; 13] = [
    "signed-in",
    "jobs",
    "submit",
    "job",
    "orchestrations",
    "orchestration",
    "apps",
    "app",
    "runnables",
    "runnable",
    "audit",
    "events",
    "jobs-phone",
];

/// One browser at a time: this machine has two cores.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A chromedriver of this test, on its own port; killed (with any browser it left) on drop.
struct Driver {
    child: Child,
    url: String,
    /// The browser it starts.
    chromium: PathBuf,
    /// The browser's profile folder: its processes are found by it.
    profile: tempfile::TempDir,
}

/// The executable `name`: the first on `PATH`, else in [`TOOL_DIR`]. Fails saying what to
/// install.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from(TOOL_DIR)])
        .map(|dir| dir.join(name))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing (not on PATH, not in {TOOL_DIR}): install them: apt-get install chromium chromium-driver"
            )
        })
}

impl Driver {
    /// A chromedriver on a free port, answering that it is ready. The port is picked free, but
    /// another process may take it before chromedriver does: then it starts again on another.
    async fn start() -> Driver {
        let chromium = tool("chromium");
        let chromedriver = tool("chromedriver");
        const ATTEMPTS: usize = 3;
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let profile = tempfile::Builder::new()
                .prefix("bosun-console-chromium-")
                .tempdir()
                .expect("a profile folder");
            let child = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    profile.path().join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {} ({e}): install them: apt-get install chromium chromium-driver",
                        chromedriver.display()
                    )
                });
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                chromium: chromium.clone(),
                profile,
            };
            match driver.ready().await {
                Ok(()) => return driver,
                // Dropped: killed, with its folder.
                Err(why) => failures.push(format!("port {port}: {why}")),
            }
        }
        panic!(
            "chromedriver did not start in {ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// Waits until this chromedriver (still running: not another process on its port) answers
    /// `/status` with `ready: true`. Why not, with its log, if it exits or takes too long.
    async fn ready(&mut self) -> Result<(), String> {
        let log = |driver: &Driver| {
            std::fs::read_to_string(driver.profile.path().join("chromedriver.log"))
                .unwrap_or_default()
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited ({status}); its log: {}", log(self)));
            }
            if let Ok(response) = reqwest::get(format!("{}/status", self.url)).await {
                if let Ok(status) = response.json::<Value>().await {
                    if status["value"]["ready"] == json!(true) {
                        // Still ours: a driver that lost the port has exited by now.
                        if let Ok(None) = self.child.try_wait() {
                            return Ok(());
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready within {PATIENCE:?}; its log: {}",
                    log(self)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless browser session.
    async fn browser(&self) -> Client {
        let user_data = self.profile.path().join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "unhandledPromptBehavior": "accept",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": self.chromium.to_string_lossy(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", user_data.display()),
                    "--window-size=1280,900",
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session: {e}"))
    }

    /// The browser's log since it was last read (console messages, CSP violations).
    async fn browser_log(&self, client: &Client) -> Vec<Value> {
        let session = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a session id");
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("chromedriver's log")
            .json()
            .await
            .expect("chromedriver's log as JSON");
        answer["value"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("chromedriver gave no browser log: {answer}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A browser chromedriver left behind (a test that failed before closing its session):
        // the processes started with this test's profile folder.
        let marker = self.profile.path().to_string_lossy().to_string();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&marker) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}

/// Where the screenshots go: `$CARGO_TARGET_DIR/console-screenshots` (a relative one is the
/// workspace's, as cargo takes it), else the `target/` this test runs from. Emptied (removed
/// and made again: that one folder only) the first time a run asks for it, so no file of an
/// earlier run is taken for one of this run's.
fn screenshot_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .filter(|dir| !dir.is_empty())
            .map(|dir| workspace.join(dir))
            .or_else(|| {
                // target/<profile>/deps/<this test>
                let exe = std::env::current_exe().ok()?;
                Some(exe.parent()?.parent()?.parent()?.to_path_buf())
            })
            .unwrap_or_else(|| workspace.join("target"));
        let dir = target.join("console-screenshots");
        // A symbolic link there is removed, not followed.
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("empty the screenshot folder {}: {e}", dir.display()),
        }
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create the screenshot folder {}: {e}", dir.display()));
        dir
    })
}

/// That the file at `path` is a PNG (its signature, then an `IHDR` chunk of a picture at least
/// a pixel wide and high) of more than [`MIN_SCREENSHOT_BYTES`]: a rendered page's screenshot.
fn check_screenshot(path: &Path) -> Result<(), String> {
    let png = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    if !png.starts_with(PNG_SIGNATURE) {
        return Err(format!(
            "{} is no PNG: it starts {:02x?}",
            path.display(),
            &png[..png.len().min(8)]
        ));
    }
    // The IHDR chunk: length (4 bytes), type, width and height (4 bytes each, big-endian).
    let dimension = |at: usize| {
        png.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (width, height) = match (png.get(12..16), dimension(16), dimension(20)) {
        (Some(b"IHDR"), Some(width), Some(height)) => (width, height),
        _ => return Err(format!("{} has no IHDR chunk first", path.display())),
    };
    if width == 0 || height == 0 {
        return Err(format!("{} is {width}x{height} pixels", path.display()));
    }
    if png.len() <= MIN_SCREENSHOT_BYTES {
        return Err(format!(
            "{} is only {} bytes ({width}x{height} pixels): no rendered page is that small",
            path.display(),
            png.len()
        ));
    }
    Ok(())
}

/// A test's server, its browser and the driver under it.
/// Dropped in this order: the session, the driver (and its browser), the server, the lock.
struct Console {
    client: Client,
    driver: Driver,
    app: TestApp,
    admin: String,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

impl Console {
    /// The server with [`CATALOG`] (the admin's password set to [`PASSWORD`]), and a browser.
    async fn start() -> Console {
        let one_at_a_time = BROWSER.lock().await;
        let app = spawn_app(CATALOG).await;
        let admin = admin_with_password(&app.api, PASSWORD).await;
        let driver = Driver::start().await;
        let client = driver.browser().await;
        Console {
            app,
            admin,
            driver,
            client,
            _one_at_a_time: one_at_a_time,
        }
    }

    fn api(&self) -> &Api {
        &self.app.api
    }

    /// Opens `path` (with its `#…`) of the server.
    async fn open(&self, path: &str) {
        self.client
            .goto(&self.app.url(path))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Evaluates `expression` in the page until it is truthy (at most [`PATIENCE`]): its value.
    /// On timeout: fails naming `what`, with the page's `#flash` and a screenshot.
    async fn until(&self, what: &str, expression: &str) -> Value {
        let script =
            format!("try {{ return ({expression}) || null; }} catch (e) {{ return null; }}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.client.execute(&script, vec![]).await {
                Ok(Value::Null) | Ok(Value::Bool(false)) => {}
                Ok(value) => return value,
                Err(e) => eprintln!("{what}: {e}"),
            }
            if Instant::now() >= deadline {
                let flash = self.text("#flash").await.unwrap_or_else(|| "(none)".into());
                let shot = self.failure_screenshot(what).await;
                let log = self.driver.browser_log(&self.client).await;
                panic!(
                    "not within {PATIENCE:?}: {what}\n  #flash: {flash}\n  screenshot: {shot}\n  browser log: {log:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element matching `css`, waited for (at most [`PATIENCE`]).
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let shot = self.failure_screenshot(css).await;
                panic!("no {css} within {PATIENCE:?}: {e}; screenshot {shot}")
            }
        }
    }

    /// Waits until `css` is shown (present, not hidden), then clicks it.
    async fn click(&self, css: &str) {
        self.until(&format!("{css} is shown"), &visible(css)).await;
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The text of the first element matching `css`, if there is one.
    async fn text(&self, css: &str) -> Option<String> {
        self.client
            .execute(
                "const el = document.querySelector(arguments[0]); return el ? el.textContent : null;",
                vec![json!(css)],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// Saves a screenshot of the window as `<name>.png` and checks it ([`check_screenshot`]):
    /// its path. Fails the test if it cannot be taken or saved, or is no rendered page's.
    async fn screenshot(&self, name: &str) -> PathBuf {
        self.try_screenshot(name)
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"))
    }

    /// [`Console::screenshot`], saying what went wrong rather than failing.
    async fn try_screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let path = screenshot_dir().join(format!("{name}.png"));
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| format!("the browser took none: {e}"))?;
        std::fs::write(&path, png).map_err(|e| format!("write {}: {e}", path.display()))?;
        check_screenshot(&path)?;
        Ok(path)
    }

    /// A screenshot as `failed-<what>.png`, for the message of a test failing for `what`: its
    /// path, or why there is none (which does not hide that failure behind another).
    async fn failure_screenshot(&self, what: &str) -> String {
        match self.try_screenshot(&format!("failed-{}", slug(what))).await {
            Ok(path) => path.display().to_string(),
            Err(e) => format!("(none: {e})"),
        }
    }

    /// Signs in through the page's form as the admin.
    async fn sign_in(&self) {
        self.open("/").await;
        self.until("the sign-in form is shown", &visible("form#signin"))
            .await;
        let username = self.element("form#signin input[name=username]").await;
        username
            .send_keys(&self.admin)
            .await
            .expect("type the name");
        let password = self.element("form#signin input[name=password]").await;
        password
            .send_keys(PASSWORD)
            .await
            .expect("type the password");
        self.click("form#signin button[type=submit]").await;
        self.until("the navigation is shown", &visible("nav#nav"))
            .await;
        let whoami = self
            .until(
                "#whoami names the user",
                "document.querySelector('#whoami').textContent.trim()",
            )
            .await;
        assert_eq!(whoami, json!(self.admin));
    }

    /// Submits `task` of example/production from `#submit` with `variables` (`NAME=value`
    /// lines): the new job's id, from the page it lands on.
    async fn submit(&self, task: &str, variables: &str) -> String {
        self.click("nav#nav a[href=\"#submit\"]").await;
        let select = self.element("form#submit-job select[name=task]").await;
        let value = format!("example/production/{task}");
        self.until(
            &format!("the task list holds {value}"),
            &format!(
                "[...document.querySelectorAll('form#submit-job select[name=task] option')].some(o => o.value === {})",
                json!(value)
            ),
        )
        .await;
        select
            .select_by_value(&value)
            .await
            .unwrap_or_else(|e| panic!("choose {value}: {e}"));
        if !variables.is_empty() {
            self.element("form#submit-job textarea[name=variables]")
                .await
                .send_keys(variables)
                .await
                .expect("type the variables");
        }
        self.click("form#submit-job button[type=submit]").await;
        let id = self
            .until(
                "the job's page is opened",
                "location.hash.startsWith('#job/') && location.hash.slice('#job/'.length)",
            )
            .await;
        id.as_str().expect("an id").to_string()
    }

    /// Checks the browser logged no CSP violation and no uncaught error since last asked.
    async fn assert_clean_log(&self, when: &str) {
        let log = self.driver.browser_log(&self.client).await;
        let bad: Vec<&Value> = log
            .iter()
            .filter(|entry| {
                let message = entry["message"].as_str().unwrap_or_default();
                message.contains("Content Security Policy")
                    || message.contains("Content-Security-Policy")
                    || message.contains("Uncaught")
            })
            .collect();
        assert!(bad.is_empty(), "{when}: the browser logged {bad:#?}");
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// JavaScript: whether the first element matching `css` exists and is shown.
fn visible(css: &str) -> String {
    format!(
        "(() => {{ const el = document.querySelector({}); return !!el && !el.hidden && el.checkVisibility(); }})()",
        json!(css)
    )
}

/// JavaScript: the trimmed text of the first element matching `css` equals `text`.
fn text_is(css: &str, text: &str) -> String {
    format!(
        "(() => {{ const el = document.querySelector({}); return !!el && el.textContent.trim() === {}; }})()",
        json!(css),
        json!(text)
    )
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .chars()
        .take(60)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_submits_a_job_watches_its_output_and_kills_another() {
    let console = Console::start().await;
    console.sign_in().await;
    console.assert_clean_log("after signing in").await;

    let printing = console.submit("print", "GREETING=the console").await;
    // Live: the first line is shown while the job still runs (it prints a line a second).
    console
        .until(
            "the job's first line is shown while it is processing",
            &format!(
                "{} && document.querySelector('pre#job-output').textContent.includes('line 1 for the console')",
                text_is("#job-status", "processing")
            ),
        )
        .await;
    console
        .until(
            "the job ends a success with all its lines",
            &format!(
                "{} && [1, 2, 3, 4, 5].every(i => document.querySelector('pre#job-output').textContent.includes(`line ${{i}} for the console\n`))",
                text_is("#job-status", "success")
            ),
        )
        .await;
    let job = console.api().job(&printing).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["variables"]["GREETING"], "the console", "{job}");

    let sleeping = console.submit("sleep", "").await;
    console
        .until("the job runs", &text_is("#job-status", "processing"))
        .await;
    console.click("button#kill").await;
    console
        .until("the job is killed", &text_is("#job-status", "killed"))
        .await;
    assert_eq!(console.api().job(&sleeping).await["status"], "killed");
    console.assert_clean_log("after the jobs").await;
    console.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_by_another_client_appears_in_the_list_without_a_reload() {
    let console = Console::start().await;
    console.sign_in().await;
    console.click("nav#nav a[href=\"#jobs\"]").await;
    console.element("table#job-list").await;
    // Gone if the page were loaded again.
    console
        .client
        .execute(
            "window.bosunTestMarker = 'still the same page'; return null;",
            vec![],
        )
        .await
        .expect("mark the page");

    let job = console
        .api()
        .submit(
            "print",
            json!({"variables": {"GREETING": "another client"}}),
        )
        .await;
    let id = job["id"].as_str().expect("an id");
    let row = format!("table#job-list tr[data-job-id=\"{id}\"]");
    console
        .until("the other client's job is listed", &visible(&row))
        .await;
    console
        .until(
            "its status changes to success in the list",
            &text_is(&format!("{row} td.status"), "success"),
        )
        .await;
    let marker = console
        .client
        .execute("return window.bosunTestMarker || null;", vec![])
        .await
        .expect("read the mark");
    assert_eq!(
        marker,
        json!("still the same page"),
        "the page was reloaded"
    );
    // The row opens the job.
    console.click(&row).await;
    console
        .until(
            "the row opens its job",
            &format!("location.hash === {}", json!(format!("#job/{id}"))),
        )
        .await;
    console.assert_clean_log("the job list").await;
    console.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_under_the_csp_and_is_saved_as_a_screenshot() {
    // Emptied now, before any screenshot of this run: none of an earlier run's files is left
    // to pass for one of the pages below.
    let screenshots = screenshot_dir();
    let console = Console::start().await;
    let api = console.api().clone();
    // Something on every page.
    let job = api
        .submit(
            "print",
            json!({"variables": {"GREETING": "screenshots"}, "wait": true}),
        )
        .await;
    let job_id = job["id"].as_str().expect("an id").to_string();
    let orchestration = api
        .post(
            "/v1/orchestrations",
            json!({"name": "nightly-print", "crontab": "0 3 * * *",
                   "tasks": [{"component": "example/production/print"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let orchestration_id = orchestration["id"].as_str().expect("an id").to_string();
    api.shop_of_team_ops().await;
    const PRIVATE: &str = "private-value-never-shown-7d3f";
    api.call(
        Method::PUT,
        "/v1/apps/shop/env",
        Some(json!({"envs": [
            {"name": "GREETING", "value": "hello-public", "public": true},
            {"name": "API_SECRET", "value": PRIVATE, "public": false},
        ]})),
    )
    .await
    .expect(StatusCode::OK);
    let runnable = api
        .post(
            "/v1/runnables",
            json!({"name": "hello-runnable", "start_command": "sh main.sh",
                   "files": [{"path": "main.sh", "content": "echo hello\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let runnable_id = runnable["id"].as_str().expect("an id").to_string();

    console.sign_in().await;
    console.screenshot("signed-in").await;

    console.click("nav#nav a[href=\"#jobs\"]").await;
    console
        .until(
            "the job list holds the job",
            &visible(&format!("table#job-list tr[data-job-id=\"{job_id}\"]")),
        )
        .await;
    console.screenshot("jobs").await;

    console.click("nav#nav a[href=\"#submit\"]").await;
    console.element("form#submit-job select[name=task]").await;
    console.screenshot("submit").await;

    console.open(&format!("/#job/{job_id}")).await;
    console
        .until(
            "the job's page shows success",
            &text_is("#job-status", "success"),
        )
        .await;
    console
        .until(
            "the job's page shows its output",
            "document.querySelector('pre#job-output').textContent.includes('line 5 for screenshots')",
        )
        .await;
    console
        .until(
            "the job's page lists its events",
            "document.querySelectorAll('table#job-events tbody tr').length > 1",
        )
        .await;
    console.screenshot("job").await;

    console.click("nav#nav a[href=\"#orchestrations\"]").await;
    let detail = format!("a[href=\"#orchestration/{orchestration_id}\"]");
    console
        .until("the orchestration is listed", &visible(&detail))
        .await;
    console.screenshot("orchestrations").await;
    console.click(&detail).await;
    console
        .until("its page is shown", &visible("button#run-now"))
        .await;
    console
        .until(
            "its page names it",
            "document.querySelector('#app').textContent.includes('nightly-print')",
        )
        .await;
    console.screenshot("orchestration").await;

    console.click("nav#nav a[href=\"#apps\"]").await;
    console
        .until("the app is listed", &visible("a[href=\"#app/shop\"]"))
        .await;
    console.screenshot("apps").await;
    console.click("a[href=\"#app/shop\"]").await;
    console
        .until(
            "its public variable is shown",
            "document.querySelector('#app').textContent.includes('hello-public')",
        )
        .await;
    console
        .until(
            "its private variable is named",
            "document.querySelector('#app').textContent.includes('API_SECRET')",
        )
        .await;
    let source = console.client.source().await.expect("the page's source");
    assert!(
        !source.contains(PRIVATE),
        "the private value is in the page"
    );
    console.screenshot("app").await;

    console.click("nav#nav a[href=\"#runnables\"]").await;
    let detail = format!("a[href=\"#runnable/{runnable_id}\"]");
    console
        .until("the runnable is listed", &visible(&detail))
        .await;
    console.screenshot("runnables").await;
    console.click(&detail).await;
    console
        .until(
            "its page lists its file",
            "document.querySelector('#app').textContent.includes('main.sh')",
        )
        .await;
    console.screenshot("runnable").await;

    console.click("nav#nav a[href=\"#audit\"]").await;
    console
        .until(
            "the audit log is listed",
            "document.querySelectorAll('#app form').length > 0 && document.querySelectorAll('#app table tbody tr').length > 0",
        )
        .await;
    console.screenshot("audit").await;

    console.click("nav#nav a[href=\"#events\"]").await;
    // Live over the WebSocket: `connect-src 'self'` lets the page reach it.
    console
        .until(
            "live events are listed",
            "document.querySelectorAll('ul#live-events li').length > 0",
        )
        .await;
    console.screenshot("events").await;
    console.assert_clean_log("every page").await;

    // A phone's width: the layout does not scroll sideways.
    console
        .client
        .set_window_size(375, 800)
        .await
        .expect("a phone-sized window");
    console.click("nav#nav a[href=\"#jobs\"]").await;
    console.element("table#job-list").await;
    console
        .until(
            "the page fits a phone's width",
            "document.documentElement.scrollWidth <= window.innerWidth + 1",
        )
        .await;
    console.screenshot("jobs-phone").await;
    console.assert_clean_log("at a phone's width").await;

    // The policy is enforced, and a violation does reach the log the checks above read.
    console
        .client
        .execute(
            "const s = document.createElement('script'); s.textContent = 'window.inlineRan = true;'; document.head.append(s); return null;",
            vec![],
        )
        .await
        .expect("add an inline script");
    let ran = console
        .client
        .execute("return window.inlineRan === true;", vec![])
        .await
        .expect("ask whether it ran");
    assert_eq!(
        ran,
        json!(false),
        "an inline script ran under the console's CSP"
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let log = console.driver.browser_log(&console.client).await;
        if log.iter().any(|entry| {
            entry["message"]
                .as_str()
                .is_some_and(|m| m.contains("Content Security Policy"))
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refused inline script is not in the browser's log: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One screenshot of each page, every one this run's (the folder was emptied first): each
    // was checked as it was taken, so this catches the list and the pages above drifting apart.
    let wrong: Vec<String> = PAGE_SCREENSHOTS
        .iter()
        .filter_map(|page| check_screenshot(&screenshots.join(format!("{page}.png"))).err())
        .collect();
    assert!(
        wrong.is_empty(),
        "the page screenshots are not all there:\n  {}",
        wrong.join("\n  ")
    );
    console.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_said_in_the_flash_and_signing_out_shows_the_sign_in_again() {
    let console = Console::start().await;
    console.open("/").await;
    console
        .until("the sign-in form is shown", &visible("form#signin"))
        .await;
    console
        .element("form#signin input[name=username]")
        .await
        .send_keys(&console.admin)
        .await
        .expect("type the name");
    console
        .element("form#signin input[name=password]")
        .await
        .send_keys("not-the-password")
        .await
        .expect("type the password");
    console.click("form#signin button[type=submit]").await;
    console
        .until(
            "the refusal is said",
            "(() => { const f = document.querySelector('#flash'); return !f.hidden && f.textContent.trim().length > 0; })()",
        )
        .await;
    assert!(
        !console
            .client
            .execute(&format!("return {};", visible("nav#nav")), vec![])
            .await
            .expect("check the navigation")
            .as_bool()
            .unwrap_or(true),
        "signed in with a wrong password"
    );
    console.screenshot("signin-refused").await;

    console.sign_in().await;
    console.click("button#signout").await;
    console
        .until("the sign-in form is shown again", &visible("form#signin"))
        .await;
    // The session is gone from the server too: the page's session route says 401.
    let status = console
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; fetch('/console/session', {credentials: 'same-origin'}).then(r => done(r.status), () => done(0));",
            vec![],
        )
        .await
        .expect("ask the session");
    assert_eq!(status, json!(401));
    console.close().await;
}
