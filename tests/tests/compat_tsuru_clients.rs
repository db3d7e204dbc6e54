//! tsuru's real Python client against `/compat/tsuru`: PyPI `tsuruclient` 0.4.1 (with its
//! dependencies pinned in `tests/clients/tsuru/requirements.txt`), installed here into a venv
//! under `target/` when it is missing or its requirements changed (one test process at a time,
//! under a lock file), and driven by `tests/clients/tsuru/drive.py`, which prints what each
//! call returned as JSON. The app made and set up through it is read natively (`/v1`: the app,
//! its environment with the private value hidden, the audit under the same actor) before the
//! client removes it. The server runs in the test's process.
//!
//! Needs `python3` with its `venv` module and PyPI: a missing one fails the test saying how to
//! install it.

use bosun_tests::{spawn_app, Api, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// A value tsuruclient sets as a private variable: no answer may show it.
const SECRET: &str = "s3cr3t-from-tsuruclient-4e1b";

/// The longest a script may take.
const SCRIPT_LIMIT: Duration = Duration::from_secs(60);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/tsuru")
}

/// Where the venv lives: the workspace's `target/` (or `CARGO_TARGET_DIR`).
fn venv_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("tsuru-client-venv")
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The venv's python, with the pinned requirements installed: made (again) unless it holds a
/// copy of the current `requirements.txt` from its last install. Once per test binary, and
/// under an exclusive lock on `tsuru-client-venv.lock` beside it, so that test processes run
/// at once (several `cargo test`s) neither build it together nor use it half built.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let found = Command::new("python3")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(found, Ok(status) if status.success()) {
            panic!(
                "`python3` is needed to run tsuru's Python client (tsuruclient 0.4.1): install \
                 Python 3 with its venv module (`apt-get install python3 python3-venv`)"
            );
        }
        let requirements = clients_dir().join("requirements.txt");
        let constraints = clients_dir().join("build-constraints.txt");
        // Both files: a change to either makes the venv again.
        let mut wanted =
            std::fs::read(&requirements).expect("tests/clients/tsuru/requirements.txt");
        wanted.extend(
            std::fs::read(&constraints).expect("tests/clients/tsuru/build-constraints.txt"),
        );
        let venv = venv_dir();
        let python = venv.join("bin/python");
        let installed = venv.join("installed-requirements.txt");
        let lock_path = venv.with_extension("lock");
        if let Some(parent) = lock_path.parent() {
            std::fs::create_dir_all(parent).expect("create the venv's parent directory");
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", lock_path.display()));
        // Released when `lock` drops, at the end of this closure (or if it panics).
        lock.lock()
            .unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));
        let current = python.exists() && std::fs::read(&installed).is_ok_and(|had| had == wanted);
        if !current {
            let _ = std::fs::remove_dir_all(&venv);
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .stdin(Stdio::null())
                .output()
                .expect("run python3 -m venv");
            assert!(
                made.status.success(),
                "python3 -m venv {} failed: install Python 3's venv module \
                 (`apt-get install python3-venv`):\n{}",
                venv.display(),
                String::from_utf8_lossy(&made.stderr)
            );
            run(
                Command::new(&python)
                    // pip applies it in the isolated environment tsuruclient's build runs in
                    // (`-c` would not reach there).
                    .env("PIP_CONSTRAINT", &constraints)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-input",
                        "-r",
                    ])
                    .arg(&requirements),
                "pip install -r tests/clients/tsuru/requirements.txt (from PyPI)",
            );
            std::fs::write(&installed, &wanted).expect("record the installed requirements");
        }
        python
    })
}

/// Runs `drive.py <target> <token> <args…>`: the JSON object it printed.
async fn drive(app: &TestApp, token: &str, args: &[&str]) -> Value {
    let python = python().to_path_buf();
    let target = app.url("/compat/tsuru");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(clients_dir().join("drive.py"))
        .arg(&target)
        .arg(token)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCRIPT_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("drive.py {args:?} did not end within {SCRIPT_LIMIT:?}"))
        .expect("run drive.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "drive.py {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("drive.py printed no JSON ({e}): {stdout}"))
}

/// A server with the platform `python`, and ann (`ann@example.org`), admin of nothing, member
/// of team `blue`: ann's native client.
async fn world() -> (TestApp, Api) {
    let app = spawn_app("runner:\n  workers: 0\n").await;
    app.api
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    app.api
        .post(
            "/v1/users",
            json!({"username": "ann", "password": "ann-secret-1", "email": "ann@example.org"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let ann = app.api.login("ann", "ann-secret-1").await;
    ann.post("/v1/teams", json!({"name": "blue"}))
        .await
        .expect(StatusCode::CREATED);
    (app, ann)
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap_or("?"))
        .collect()
}

/// The actions of the audit's entries by `actor` on `target`.
async fn audited(app: &TestApp, actor: &str, target: &str) -> Vec<String> {
    let audit = app
        .api
        .get(&format!("/v1/audit?actor={actor}&limit=1000"))
        .await
        .expect(StatusCode::OK)
        .body;
    audit
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["target"] == target)
        .filter_map(|e| e["action"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsuruclient_creates_an_app_sets_it_up_and_removes_it() {
    let (app, ann) = world().await;
    let out = drive(&app, &ann.token, &["setup", "shop", SECRET]).await;
    assert!(
        !out.to_string().contains(SECRET),
        "an answer showed the private value: {out}"
    );
    assert_eq!(
        out["create"],
        json!({"status": "success", "repository_url": "", "ip": ""})
    );
    let again = out["create_again"]["refused"].as_str().unwrap_or_default();
    assert!(again.starts_with("409"), "{out}");
    assert_eq!(names(&out["list"]), ["shop"]);
    assert_eq!(names(&out["list_by_name"]), ["shop"]);
    assert_eq!(names(&out["list_versioned"]), ["shop"]);
    let shown = &out["get"];
    assert_eq!(shown["name"], "shop");
    assert_eq!(shown["platform"], "python");
    assert_eq!(shown["teamowner"], "blue");
    assert_eq!(shown["description"], "made by tsuruclient");
    assert_eq!(
        out["env_set"],
        json!([{"Message": "---- Setting 1 new environment variables ----\n"}])
    );
    let env = json!([
        {"name": "API_KEY", "value": null, "public": false},
        {"name": "GREETING", "value": "hello", "public": true},
    ]);
    assert_eq!(out["env"], env);
    assert_eq!(
        out["restart"],
        json!([{"Message": "---- Restarting the app \"shop\" ----\n"}])
    );
    assert_eq!(
        out["get_after_update"]["description"],
        "changed by tsuruclient"
    );

    // Set up as the client said: natively the same app, its private value hidden, each call
    // ann's.
    let native = ann.get("/v1/apps/shop").await.expect(StatusCode::OK).body;
    assert_eq!(
        (
            &native["platform"],
            &native["team_owner"],
            &native["owner"],
            &native["description"]
        ),
        (
            &json!("python"),
            &json!("blue"),
            &json!("ann"),
            &json!("changed by tsuruclient")
        )
    );
    let native_env = ann.get("/v1/apps/shop/env").await.expect(StatusCode::OK);
    assert!(
        !format!("{:?}", native_env.body).contains(SECRET),
        "{:?}",
        native_env.body
    );
    let by_name = |list: &Value, name: &str| {
        list.as_array()
            .and_then(|l| l.iter().find(|v| v["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no {name} in {list}"))
    };
    let api_key = by_name(&native_env.body, "API_KEY");
    assert_eq!(
        (&api_key["value"], &api_key["public"]),
        (&Value::Null, &json!(false))
    );
    let greeting = by_name(&native_env.body, "GREETING");
    assert_eq!(
        (&greeting["value"], &greeting["public"]),
        (&json!("hello"), &json!(true))
    );
    let actions = audited(&app, "ann", "app-shop").await;
    for action in [
        "AppCreated",
        "AppEnvSet",
        "AppRestartRequested",
        "AppUpdated",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "no {action} in {actions:?}"
        );
    }
    assert!(!actions.iter().any(|a| a == "AppRemoved"), "{actions:?}");

    let out = drive(&app, &ann.token, &["remove", "shop"]).await;
    // tsuruclient reads a removal's text answer as `{}`.
    assert_eq!(out["remove"], json!({}));
    let gone = out["get_removed"]["refused"].as_str().unwrap_or_default();
    assert!(gone.starts_with("404"), "{out}");
    assert_eq!(out["list_after"], json!([]));
    let actions = audited(&app, "ann", "app-shop").await;
    assert!(actions.iter().any(|a| a == "AppRemoved"), "{actions:?}");
    ann.get("/v1/apps/shop").await.expect(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsuruclient_reads_the_users_and_the_callers_info() {
    let (app, ann) = world().await;
    let admin = drive(&app, &app.api.token, &["users"]).await;
    let emails: Vec<&str> = admin["list"]
        .as_array()
        .unwrap_or_else(|| panic!("no user list: {admin}"))
        .iter()
        .filter_map(|u| u["Email"].as_str())
        .collect();
    assert!(emails.contains(&"ann@example.org"), "{admin}");
    let mine = drive(&app, &ann.token, &["users"]).await;
    assert_eq!(mine["info"]["Email"], "ann@example.org", "{mine}");
    // A user who is no admin lists themself only.
    let listed: Vec<&str> = mine["list"]
        .as_array()
        .unwrap_or_else(|| panic!("no user list: {mine}"))
        .iter()
        .filter_map(|u| u["Email"].as_str())
        .collect();
    assert_eq!(listed, ["ann@example.org"], "{mine}");
}
