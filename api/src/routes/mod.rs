//! The HTTP layer: `/v1` (the native API, a module per resource), `/compat/<system>` (the old
//! systems' wire formats), and the operational endpoints (`/healthz`, `/readyz`, `/metrics`),
//! merged in [`router`]; plus the answers every route shares (lists, writes, bounds).

pub mod compat;
pub mod health;
pub mod live;
pub mod metrics;
pub mod v1;

use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::OriginalUri;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bosun_commands::Written;
use serde::{Deserialize, Serialize};

pub const POSITION: HeaderName = HeaderName::from_static("bosun-position");
pub const TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

/// Every route of the server, without its middleware (see `startup`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .merge(v1::router())
        .merge(compat::router())
        .merge(crate::console::router())
        .merge(crate::github::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Every operation [`router`] serves, as `"METHOD /path"` (`ANY` for a route that takes every
/// method), sorted: what the authorization matrix walks, so that a new route without a row
/// fails it. axum has no way to list a router's routes but its `Debug`, which this reads (its
/// path table, then each route's methods); a test here fails if that stops finding them.
/// `HEAD`, `OPTIONS`, `TRACE` and `CONNECT` are left out: here they only ever refuse. What a
/// fallback serves is not a route and not listed: tsuru's versioned paths (`/compat/tsuru/1.0/…`)
/// are its bare routes again, through its fallback.
pub fn operations() -> Vec<String> {
    operations_of(&format!("{:?}", router()))
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn operations_of(debug: &str) -> Vec<String> {
    // The router's own routes, not its fallback router's.
    let own = debug.split(", fallback_router: ").next().unwrap_or("");
    let (routes, paths) = own.split_once("node: Node { paths: {").unwrap_or((own, ""));
    let mut path_of = std::collections::HashMap::new();
    for entry in paths.split("RouteId(").skip(1) {
        let Some((id, rest)) = entry.split_once("): \"") else {
            continue;
        };
        if let Some((path, _)) = rest.split_once('"') {
            path_of.insert(id.to_string(), path.to_string());
        }
    }
    let mut operations = Vec::new();
    for entry in routes.split("RouteId(").skip(1) {
        let Some((id, endpoint)) = entry.split_once("): ") else {
            continue;
        };
        let Some(path) = path_of.get(id) else {
            continue;
        };
        // The tail axum adds under a nested service (`nest_service`); the service's own path is
        // listed (as `ANY`).
        if path.contains("__private__axum") {
            continue;
        }
        let methods: Vec<&str> = match endpoint.strip_prefix("MethodRouter(MethodRouter { ") {
            Some(fields) => METHODS
                .into_iter()
                .filter(|m| {
                    fields.split(", ").any(|f| {
                        f.starts_with(&format!("{m}: ")) && !f.starts_with(&format!("{m}: None"))
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        if methods.is_empty() {
            operations.push(format!("ANY {path}"));
        }
        for method in methods {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    operations.dedup();
    operations
}

/// A path that exists, asked with a method it does not answer. It names the path as the client
/// asked it (`OriginalUri`): a nested router's (`/compat/…`) own `Uri` has lost its prefix.
pub async fn method_not_allowed(
    method: axum::http::Method,
    OriginalUri(uri): OriginalUri,
) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not answer {method}", uri.path()),
    )
}

/// Any path no route matches.
pub async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("no resource at {}", uri.path()))
}

/// A write's answer: `status`, the body if any, and `Bosun-Position` (the position of its last
/// event, or the head of the log if it changed nothing), which a client can hand to another
/// node as `Bosun-Min-Position`.
pub fn written<T: Serialize>(
    state: &AppState,
    status: StatusCode,
    body: Option<&T>,
    written: Written,
) -> Response {
    let position = written
        .position
        .unwrap_or_else(|| *bosun_eventstore::EventStore::head_changes(&state.store).borrow());
    let mut response = match body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    response
        .headers_mut()
        .insert(POSITION, HeaderValue::from(position));
    response
}

/// A list's answer with `X-Total-Count`.
pub fn listed<T: Serialize>(items: &[T], total: i64) -> Response {
    let mut response = axum::Json(items).into_response();
    response
        .headers_mut()
        .insert(TOTAL_COUNT, HeaderValue::from(total));
    response
}

/// Sent with `X-Total-Count` when the count stopped at the cap: more match than it says.
pub const TOTAL_COUNT_CAPPED: HeaderName = HeaderName::from_static("x-total-count-capped");

/// A page of a list whose count is capped (see [`COUNT_CAP`]): `X-Total-Count` (the cap, and
/// `X-Total-Count-Capped: true`, when more match), and `Link: <next>; rel="next"` when there is
/// a page after this one to ask for.
///
/// [`COUNT_CAP`]: bosun_projections::read_models::COUNT_CAP
pub fn listed_page<T: Serialize>(items: &[T], total: i64, next: Option<String>) -> Response {
    use bosun_projections::read_models::COUNT_CAP;
    let mut response = listed(items, total.min(COUNT_CAP));
    let headers = response.headers_mut();
    if total > COUNT_CAP {
        headers.insert(TOTAL_COUNT_CAPPED, HeaderValue::from_static("true"));
    }
    if let Some(link) =
        next.and_then(|n| HeaderValue::try_from(format!("<{n}>; rel=\"next\"")).ok())
    {
        headers.insert(axum::http::header::LINK, link);
    }
    response
}

/// `?limit=&offset=` of a list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(minimum = 0)]
    offset: Option<i64>,
}

impl PageQuery {
    /// The page asked for, its bounds checked (400 naming `limit` or `offset`).
    pub fn page(&self) -> Result<bosun_commands::queries::Page, Problem> {
        Ok(bosun_commands::queries::Page {
            limit: limit(self.limit)?,
            offset: offset(self.offset)?,
        })
    }
}

/// A position or version from a query (`name`), which the log counts in `i64`: 400 past it.
pub fn counted(name: &'static str, value: Option<u64>) -> Result<Option<u64>, Problem> {
    match value {
        Some(v) if i64::try_from(v).is_err() => Err(Problem::invalid_field(
            name,
            format!("must be at most {}", i64::MAX),
        )),
        other => Ok(other),
    }
}

/// `limit`, bounded: default 100, at most 1000.
pub fn limit(value: Option<i64>) -> Result<i64, Problem> {
    match value {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(Problem::invalid_field("limit", "must be 1 to 1000")),
    }
}

pub fn offset(value: Option<i64>) -> Result<i64, Problem> {
    match value {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n),
        Some(_) => Err(Problem::invalid_field("offset", "must be 0 or more")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// If axum's `Debug` changes, [`operations`] finds nothing or misses routes: this fails.
    #[test]
    fn operations_lists_each_routes_methods() {
        let operations = operations();
        for expected in [
            "GET /healthz",
            "GET /v1/jobs",
            "POST /v1/jobs",
            "PATCH /v1/apps/{app}",
            "DELETE /v1/apps/{app}",
            "PUT /compat/tsuru/apps/{app}",
            "ANY /compat/openpai/api/job",
            "GET /compat/runnable/users/{user}/runnables/{id}/files/{file}",
            "GET /console/assets/{file}",
        ] {
            assert!(
                operations.iter().any(|o| o == expected),
                "{expected} not in {operations:#?}"
            );
        }
        assert!(!operations.iter().any(|o| o.contains("__private__")));
        assert!(!operations.iter().any(|o| o == "PUT /v1/jobs"));
    }
}
