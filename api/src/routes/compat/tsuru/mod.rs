//! `/compat/tsuru`: tsuru's wire format (COMPAT.md §4): the seed's 0.3.9 API (JSON bodies) and
//! the 1.x paths and form-encoded bodies `tsuruclient` 0.4 sends, each path served bare and under
//! a version prefix (`/1.0/apps`, `/1.4/apps`…: [`versioned`] strips it, once, for every route
//! here). Every route is the `/v1` command or query with the same actor. A caller is a Bosun
//! token sent as `Authorization: bearer X`, `type X` or a bare `X` ([`TsuruCaller`]); a refusal
//! is tsuru's plain-text `message\n` with the status ([`error`]); every answer carries tsuru's
//! `Supported-Tsuru` headers.
//!
//! Apps' side: [`apps`], [`env`], [`swap`], [`quota`], [`platforms`], [`healers`]; services'
//! side: [`services`] (with [`instances`]); identity: [`users`] (with [`teams`], [`keys`],
//! [`tokens`]). A request body is read by [`body`] (JSON, a form or a route's own text, one
//! way). This file owns the routing, the caller, the error shape and the answers every route
//! shares ([`json`], [`text`], [`messages`], [`json_list`], [`written`], [`then`],
//! [`every_page`]).
//!
//! Which tsuru answers, where the two differ: one rule, for every route.
//! 1. A route only one of them has answers as that one: 0.3.9's `GET /apps/{app}/restart`
//!    (text), `/services/instances/{instance}…` and `POST /services/instances` (200, text, a
//!    bind's JSON list), 1.x's `POST /apps/{app}/restart`, `PUT /apps/{app}`,
//!    `/services/{service}/instances…`, `PUT /services/{service}` and a `DELETE`'s `?env=`
//!    query (201, 200, `application/x-json-stream` messages).
//! 2. Else a call with a body answers as its body was sent ([`Generation::answering`]): a form
//!    is 1.x's (`POST /apps`: 201 `{status, repository_url, ip}`), JSON or other text (a YAML
//!    manifest) 0.3.9's (`POST /apps`: 200 `{status, repository_url}`).
//! 3. Else (no body) the path decides ([`Generation`]): under a version prefix (tsuru 1.x's CLI
//!    always sends one) 1.x, bare 0.3.9: `DELETE /apps/{app}` is the text `success` bare and
//!    1.x's messages under `/1.x`; an empty list is 1.x's 204 under a prefix, 0.3.9's `[]`
//!    bare where 0.3.9 answered one.
//!
//! A read answers both versions' fields at once where they do not clash; an app's `cname` is
//! 0.3.9's one host name bare, 1.x's list under a prefix (rule 3).
//!
//! Users are known by email here, as in tsuru: a path's `{email}` is the Bosun user with that
//! email (or, with no `@` in it, that username), resolved natively under the user's rule
//! ([`users::username_of`]).

pub mod apps;
pub mod body;
pub mod env;
pub mod healers;
pub mod instances;
pub mod keys;
pub mod platforms;
pub mod quota;
pub mod services;
pub mod swap;
pub mod teams;
pub mod tokens;
pub mod users;

use crate::auth::{authenticate, Caller};
use crate::problem::Problem;
use crate::routes::{method_not_allowed, not_found};
use crate::startup::AppState;
use axum::extract::{FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use body::Sent;
use bosun_commands::queries::Page;
use bosun_commands::{CommandError, Written};
use std::future::Future;
use std::sync::{Arc, OnceLock};

/// tsuru's routes, nested at `/compat/tsuru`: each at its bare path, and under a version prefix
/// (`/1.0/apps`) by [`versioned`], which routes the path without it through the same routes.
pub fn router() -> Router<AppState> {
    let bare = bare();
    let kept = Arc::new(KeptRoutes::default());
    bare.clone()
        .fallback(move |State(state): State<AppState>, request: Request| {
            versioned(kept.routes(&bare, state), request)
        })
        .layer(axum::middleware::map_response(supported_versions))
}

/// The bare routes with the server's state, for [`versioned`]: made at the first versioned
/// call and kept, as a server has one state (`startup` builds its routes once, for it). The
/// state is told by its `metrics` (one `Arc` per server): routes given another state would
/// get routes of their own for it, unkept.
#[derive(Default)]
struct KeptRoutes(OnceLock<(Arc<crate::metrics::Metrics>, Router)>);

impl KeptRoutes {
    fn routes(&self, bare: &Router<AppState>, state: AppState) -> Router {
        let (metrics, routes) = self.0.get_or_init(|| {
            (
                state.metrics.clone(),
                bare.clone().with_state(state.clone()),
            )
        });
        if Arc::ptr_eq(metrics, &state.metrics) {
            routes.clone()
        } else {
            bare.clone().with_state(state)
        }
    }
}

/// Every route at its bare path; no route is a 404 here.
fn bare() -> Router<AppState> {
    Router::new()
        .merge(apps::router())
        .merge(env::router())
        .merge(swap::router())
        .merge(quota::router())
        .merge(platforms::router())
        .merge(healers::router())
        .merge(services::router())
        .merge(users::router())
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
}

/// A path no bare route has: if it starts with a version (`/1.4/apps`, as tsuru 1.x serves
/// every route at `/{version:[0-9.]+}{path}` too), the bare routes answer the rest (`/apps`),
/// once (`/1.0/1.0/apps` is a 404, as in tsuru); else a 404 naming the whole path.
async fn versioned(routes: Router, mut request: Request) -> Response {
    let Some(uri) = without_version(request.uri()) else {
        return fallback(OriginalUri(original_uri(&request)))
            .await
            .into_response();
    };
    *request.uri_mut() = uri;
    request.extensions_mut().insert(Generation::OneX);
    match tower::ServiceExt::oneshot(routes, request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The request's whole URI as the client sent it (the nest stripped `/compat/tsuru`).
fn original_uri(request: &Request) -> Uri {
    request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().clone(), |o| o.0.clone())
}

/// `uri` without its first segment if that is a version (digits and dots, from a digit, and
/// something after it); `None` otherwise.
fn without_version(uri: &Uri) -> Option<Uri> {
    let rest = uri.path().strip_prefix('/')?;
    let (version, path) = rest.split_once('/')?;
    let is_version = version.starts_with(|c: char| c.is_ascii_digit())
        && version.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !is_version || path.is_empty() {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("/{path}?{query}"),
        None => format!("/{path}"),
    };
    path_and_query.parse().ok()
}

/// No route: a 404 naming the whole path.
async fn fallback(OriginalUri(uri): OriginalUri) -> Problem {
    not_found(uri).await
}

/// The client versions tsuru 0.3.9 said it supported, on each of its answers
/// (`api/handler.go`: `setVersionHeaders`); its CLIs warn the user of an older one.
const SUPPORTED: [(&str, &str); 3] = [
    ("supported-tsuru", "0.8.10"),
    ("supported-crane", "0.5.1"),
    ("supported-tsuru-admin", "0.2.1"),
];

fn add_supported_versions(headers: &mut HeaderMap) {
    for (name, value) in SUPPORTED {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}

/// [`SUPPORTED`] on an answer.
async fn supported_versions(mut response: Response) -> Response {
    add_supported_versions(response.headers_mut());
    response
}

/// tsuru's error shape: `http.Error`'s plain text, the message and a newline, with the status.
pub fn error(problem: &Problem, _request_id: Option<&str>) -> Response {
    let mut text = super::message(problem);
    text.push('\n');
    let mut response = (
        super::status(problem),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text,
    )
        .into_response();
    add_supported_versions(response.headers_mut());
    response
}

/// The caller, by `Authorization: <type> <token>` (0.3.9 took any first word, `bearer` as its
/// clients send) or a bare `<token>` (1.x): 401 without one, or with one that is unknown,
/// expired or revoked.
pub struct TsuruCaller(pub Caller);

impl FromRequestParts<AppState> for TsuruCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(Problem::unauthorized(
                "You must provide the Authorization header",
            ));
        };
        let value = value
            .to_str()
            .map_err(|_| Problem::unauthorized("Invalid token"))?
            .trim();
        let token = match value.split_once(' ') {
            Some((_, token)) => token.trim(),
            None => value,
        };
        if token.is_empty() || token.contains(' ') {
            return Err(Problem::unauthorized("Invalid token"));
        }
        authenticate(state, token).await.map(TsuruCaller)
    }
}

/// Which tsuru a call is answered as. As extracted, what its path says (rule 3 of the
/// [module](self)): 1.x under a version prefix (`/1.0/…`), else 0.3.9 (the seed's bare paths);
/// [`Generation::answering`] lets a body decide first (rule 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// tsuru 0.3.9: bare paths, JSON or text bodies.
    Old,
    /// tsuru 1.x: a version prefix, form bodies.
    OneX,
}

impl Generation {
    /// Which tsuru a call of a route both have is answered as: as its body was sent if it has
    /// one (a form: 1.x; JSON or other text: 0.3.9), else as its path says (`self`).
    pub fn answering(self, sent: Option<Sent>) -> Generation {
        match sent {
            Some(Sent::Form) => Generation::OneX,
            Some(Sent::Json | Sent::Text) => Generation::Old,
            None => self,
        }
    }

    pub fn is_1x(self) -> bool {
        self == Generation::OneX
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Generation {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Generation>()
            .copied()
            .unwrap_or(Generation::Old))
    }
}

/// A write's answer: the response with `Bosun-Position` as `/v1` gives it (the position of its
/// last event, or the head of the log if it changed nothing).
pub fn written(state: &AppState, mut response: Response, written: Written) -> Response {
    let position = written
        .position
        .unwrap_or_else(|| *bosun_eventstore::EventStore::head_changes(&state.store).borrow());
    response
        .headers_mut()
        .insert(crate::routes::POSITION, HeaderValue::from(position));
    response
}

/// tsuru 1.x's streamed answer (`application/x-json-stream`): one `{"Message": …}` line per
/// message, as its `SimpleJsonMessageEncoderWriter` writes them.
pub fn messages<I: IntoIterator<Item = String>>(status: StatusCode, lines: I) -> Response {
    let mut body = String::new();
    for line in lines {
        let message = serde_json::json!({ "Message": line });
        body.push_str(&message.to_string());
        body.push('\n');
    }
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-json-stream"),
        )],
        body,
    )
        .into_response()
}

/// A plain-text answer (0.3.9's `text` ones: `success`, a restart's lines).
pub fn text(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text.into(),
    )
        .into_response()
}

/// A JSON answer with `Content-Type: application/json` exactly.
pub fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    super::json(status, body)
}

/// A JSON list, or a 204 for an empty one when `no_content_if_empty` (tsuru 1.x's lists).
pub fn json_list<T: serde::Serialize>(items: &[T], no_content_if_empty: bool) -> Response {
    if items.is_empty() && no_content_if_empty {
        return StatusCode::NO_CONTENT.into_response();
    }
    json(StatusCode::OK, &items)
}

/// What two writes made one after the other wrote: the later one's position (the earlier's if
/// the later changed nothing).
pub fn then(earlier: Written, later: Written) -> Written {
    Written {
        position: later.position.or(earlier.position),
    }
}

/// Every item of a paged native list (`Queries::apps`, `users`, `teams`, `keys`,
/// `platforms`: `page_of` asks one page), a page of 1000 at a time, until its total is in or a
/// page comes back empty.
pub async fn every_page<T, F, Fut>(mut page_of: F) -> Result<Vec<T>, Problem>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, i64), CommandError>>,
{
    let mut items = Vec::new();
    loop {
        let offset = i64::try_from(items.len()).unwrap_or(i64::MAX);
        let (page, total) = page_of(Page {
            limit: 1000,
            offset,
        })
        .await?;
        let done = page.is_empty();
        items.extend(page);
        if done || i64::try_from(items.len()).unwrap_or(i64::MAX) >= total {
            return Ok(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_decides_before_the_path() {
        for path in [Generation::Old, Generation::OneX] {
            assert_eq!(path.answering(Some(Sent::Form)), Generation::OneX);
            assert_eq!(path.answering(Some(Sent::Json)), Generation::Old);
            assert_eq!(path.answering(Some(Sent::Text)), Generation::Old);
            assert_eq!(path.answering(None), path);
        }
    }

    #[tokio::test]
    async fn a_stream_is_one_json_message_a_line() {
        let response = messages(StatusCode::OK, ["a\n".to_string(), "b \"c\"".to_string()]);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/x-json-stream"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "{\"Message\":\"a\\n\"}\n{\"Message\":\"b \\\"c\\\"\"}\n"
        );
    }

    #[tokio::test]
    async fn every_page_reads_until_the_total() {
        let all: Vec<i64> = (0..2500).collect();
        let mut asked = Vec::new();
        let items = every_page(|page: Page| {
            asked.push(page.offset);
            let slice: Vec<i64> = all
                .iter()
                .copied()
                .skip(page.offset as usize)
                .take(page.limit as usize)
                .collect();
            async move { Ok::<_, CommandError>((slice, 2500)) }
        })
        .await
        .unwrap();
        assert_eq!(items, all);
        assert_eq!(asked, [0, 1000, 2000]);
    }

    fn stripped(uri: &str) -> Option<String> {
        without_version(&uri.parse().unwrap()).map(|u| u.to_string())
    }

    #[test]
    fn a_version_prefix_is_stripped_once_keeping_the_query() {
        assert_eq!(stripped("/1.0/apps").as_deref(), Some("/apps"));
        assert_eq!(
            stripped("/1.4/apps/shop/env?env=A&env=B").as_deref(),
            Some("/apps/shop/env?env=A&env=B")
        );
        assert_eq!(stripped("/1.0/1.0/apps").as_deref(), Some("/1.0/apps"));
        assert_eq!(stripped("/1/apps").as_deref(), Some("/apps"));
        for uri in [
            "/apps",
            "/apps/1.0",
            "/1.0",
            "/1.0/",
            "/.1/apps",
            "/1a/apps",
            "/",
        ] {
            assert_eq!(stripped(uri), None, "{uri}");
        }
    }
}
