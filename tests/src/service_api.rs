//! A real service API for the tests: an HTTP server (axum) on 127.0.0.1 speaking the protocol
//! Bosun calls a service with (tsuru's: `POST /resources`, `DELETE /resources/{name}`,
//! `GET /resources/{name}/status`, `POST` · `DELETE /resources/{name}/bind-app`), keeping its
//! resources and the apps bound to each, and recording every request it gets (method, path,
//! form fields, Basic auth user and password). Each operation can be told how to answer
//! ([`Mode`]): as a working service would, with a refusal, not at all, with garbage, or with a
//! redirect, standing ([`ServiceApi::set`]) or for the next few requests only
//! ([`ServiceApi::next`]). A bind answers the same fixed variables every time (a repeated bind
//! too).
//!
//! It checks nothing of what it gets (not even the credentials): the tests do, on what it
//! recorded. It runs until the test process ends.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One operation of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Call {
    /// `POST /resources` (form `name`, `plan`, `team`).
    Create,
    /// `DELETE /resources/{name}`.
    Remove,
    /// `GET /resources/{name}/status`.
    Status,
    /// `POST /resources/{name}/bind-app` (form `app-name`, `app-host`).
    Bind,
    /// `DELETE /resources/{name}/bind-app` (form `app-name`).
    Unbind,
}

/// How the service answers an operation.
#[derive(Clone, Debug)]
pub enum Mode {
    /// As a working service: it does it (201 to a create or a bind, the bind with the
    /// variables; 200 to a remove or an unbind; 204 to a status), 409 to the create of a
    /// resource it has, 404 for a resource (or a binding) it does not have.
    Ok,
    /// Answers `status` with the text `body`, and does nothing.
    Fail { status: u16, body: String },
    /// Does it (as [`Mode::Ok`] would) and never answers: the caller's timeout ends the call.
    Hang,
    /// Answers 201 with `body` as `application/json` (a body Bosun cannot use), and does nothing.
    Garbage(String),
    /// Answers 307 to `location` (a path of this service), and does nothing.
    Redirect(String),
}

impl Mode {
    pub fn fail(status: u16, body: &str) -> Mode {
        Mode::Fail {
            status,
            body: body.to_string(),
        }
    }
}

/// A request as the service got it.
#[derive(Clone, Debug)]
pub struct ServiceRequest {
    /// The operation it was, `None` for a path the protocol does not have.
    pub call: Option<Call>,
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    /// The form body's fields, in order.
    pub form: Vec<(String, String)>,
    /// Basic auth's user and password, if the request carried Basic auth.
    pub user: Option<String>,
    pub password: Option<String>,
}

impl ServiceRequest {
    /// The form field `name`'s (first) value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Basic auth as a pair, to compare at once.
    pub fn basic_auth(&self) -> (Option<&str>, Option<&str>) {
        (self.user.as_deref(), self.password.as_deref())
    }
}

#[derive(Default)]
struct State {
    requests: Vec<ServiceRequest>,
    modes: BTreeMap<Call, Mode>,
    /// Modes for the next requests of a call, one each, before its standing mode.
    queued: BTreeMap<Call, VecDeque<Mode>>,
    /// Each resource with the apps bound to it.
    resources: BTreeMap<String, BTreeSet<String>>,
    variables: BTreeMap<String, String>,
}

/// The variables a bind answers unless the service was started with others.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "DATABASE_URL",
        "postgres://shop:bound-secret-4e1f9a@db.internal:5432/shop",
    ),
    ("DATABASE_USER", "shop"),
];

/// A running service API.
#[derive(Clone)]
pub struct ServiceApi {
    /// `http://127.0.0.1:<port>`: the endpoint to register.
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl ServiceApi {
    /// A service answering binds with [`VARIABLES`], every operation in [`Mode::Ok`].
    pub async fn start() -> ServiceApi {
        ServiceApi::with_variables(VARIABLES).await
    }

    /// A service answering binds with `variables`.
    pub async fn with_variables(variables: &[(&str, &str)]) -> ServiceApi {
        let state = Arc::new(Mutex::new(State {
            variables: variables
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..State::default()
        }));
        let shared = state.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { handle(state, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the service API");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ServiceApi { base, state }
    }

    /// Answer `call` as `mode` from now on.
    pub fn set(&self, call: Call, mode: Mode) {
        self.lock().modes.insert(call, mode);
    }

    /// Answer the next `call` as `mode` (after any already queued), then as [`ServiceApi::set`]
    /// says.
    pub fn next(&self, call: Call, mode: Mode) {
        self.lock().queued.entry(call).or_default().push_back(mode);
    }

    /// Every request so far, in the order they came.
    pub fn requests(&self) -> Vec<ServiceRequest> {
        self.lock().requests.clone()
    }

    /// The requests of `call` so far.
    pub fn requests_of(&self, call: Call) -> Vec<ServiceRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.call == Some(call))
            .cloned()
            .collect()
    }

    /// Waits (at most `limit`) until the service got `count` requests of `call`: those.
    pub async fn wait_for(&self, call: Call, count: usize, limit: Duration) -> Vec<ServiceRequest> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.requests_of(call);
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the service got {} {call:?} requests within {limit:?}, not {count}: {:#?}",
                got.len(),
                self.requests()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its resources, each with the apps bound to it.
    pub fn resources(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.lock().resources.clone()
    }

    /// The variables a bind answers.
    pub fn variables(&self) -> BTreeMap<String, String> {
        self.lock().variables.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `http://127.0.0.1:<port>` where nothing listens (a port just given back).
pub fn unreachable_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The operation `method path` is, and the resource it names.
fn route(method: &Method, path: &str) -> Option<(Call, Option<String>)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["resources"]) => Some((Call::Create, None)),
        ("DELETE", ["resources", name]) => Some((Call::Remove, Some(name.to_string()))),
        ("GET", ["resources", name, "status"]) => Some((Call::Status, Some(name.to_string()))),
        ("POST", ["resources", name, "bind-app"]) => Some((Call::Bind, Some(name.to_string()))),
        ("DELETE", ["resources", name, "bind-app"]) => Some((Call::Unbind, Some(name.to_string()))),
        _ => None,
    }
}

fn basic_auth(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let decoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    match decoded.as_deref().and_then(|d| d.split_once(':')) {
        Some((user, password)) => (Some(user.to_string()), Some(password.to_string())),
        None => (None, None),
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let routed = route(&method, &path);
    let (user, password) = basic_auth(&headers);
    let request = ServiceRequest {
        call: routed.as_ref().map(|(call, _)| *call),
        method: method.to_string(),
        path: path.clone(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        form: serde_urlencoded::from_bytes(&body).unwrap_or_default(),
        user,
        password,
    };
    let (answer, hang) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests.push(request.clone());
        let Some((call, name)) = routed else {
            return (StatusCode::NOT_FOUND, "no such path").into_response();
        };
        let name = name.or_else(|| request.field("name").map(str::to_string));
        let mode = state
            .queued
            .get_mut(&call)
            .and_then(VecDeque::pop_front)
            .or_else(|| state.modes.get(&call).cloned())
            .unwrap_or(Mode::Ok);
        match mode {
            Mode::Ok => (serve(&mut state, call, name, &request), false),
            Mode::Hang => (serve(&mut state, call, name, &request), true),
            Mode::Fail { status, body } => (
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body,
                )
                    .into_response(),
                false,
            ),
            Mode::Garbage(body) => (
                (
                    StatusCode::CREATED,
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response(),
                false,
            ),
            Mode::Redirect(location) => (
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, location)],
                    "",
                )
                    .into_response(),
                false,
            ),
        }
    };
    if hang {
        std::future::pending::<()>().await;
    }
    answer
}

/// What a working service does and answers.
fn serve(
    state: &mut State,
    call: Call,
    name: Option<String>,
    request: &ServiceRequest,
) -> Response {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "name is required").into_response();
    };
    let app = request.field("app-name").map(str::to_string);
    match call {
        Call::Create => {
            if state.resources.contains_key(&name) {
                return (StatusCode::CONFLICT, format!("{name} already exists")).into_response();
            }
            state.resources.insert(name, BTreeSet::new());
            StatusCode::CREATED.into_response()
        }
        Call::Remove => match state.resources.remove(&name) {
            Some(_) => StatusCode::OK.into_response(),
            None => (StatusCode::NOT_FOUND, format!("no resource {name}")).into_response(),
        },
        Call::Status => match state.resources.contains_key(&name) {
            true => StatusCode::NO_CONTENT.into_response(),
            false => (StatusCode::NOT_FOUND, format!("no resource {name}")).into_response(),
        },
        Call::Bind => {
            let Some(app) = app else {
                return (StatusCode::BAD_REQUEST, "app-name is required").into_response();
            };
            let variables = serde_json::to_string(&state.variables).unwrap_or_default();
            match state.resources.get_mut(&name) {
                Some(apps) => {
                    apps.insert(app);
                    (
                        StatusCode::CREATED,
                        [(header::CONTENT_TYPE, "application/json")],
                        variables,
                    )
                        .into_response()
                }
                None => (StatusCode::NOT_FOUND, format!("no resource {name}")).into_response(),
            }
        }
        Call::Unbind => {
            let Some(app) = app else {
                return (StatusCode::BAD_REQUEST, "app-name is required").into_response();
            };
            let unbound = state
                .resources
                .get_mut(&name)
                .is_some_and(|apps| apps.remove(&app));
            match unbound {
                true => StatusCode::OK.into_response(),
                false => (
                    StatusCode::NOT_FOUND,
                    format!("{app} is not bound to {name}"),
                )
                    .into_response(),
            }
        }
    }
}
