//! Versions of `/v1` resources at the edge: which stream a route names ([`stream_of`]), a
//! write's `If-Match` handed to the commands (which check it against the version they decide
//! on, under the same append: see `bosun_commands::IfMatch`), and `ETag` on the answers.
//!
//! A resource's version is its stream's: the version of its last event. A GET reads it first
//! and then waits for the read models to reach that event, so the body it answers shows at least
//! that version; if it shows a later one, an `If-Match` with the older tag is refused, never
//! wrongly passed. A write's answer is tagged as of its own last event (`Bosun-Position`).
//!
//! Not here: the rules of each command, and the lists (they have no version).

use crate::auth::Caller;
use crate::freshness::MAX_WAIT;
use crate::problem::Problem;
use crate::routes::POSITION;
use crate::startup::AppState;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bosun_commands::IfMatch;
use bosun_eventstore::StreamId;

/// Each `/v1` resource's route and its stream, `{param}`s filled from the path. A route below
/// one (`/v1/apps/{app}/env`) names the same stream, the deepest entry winning; `None` marks a
/// route below a resource that is not part of it.
const RESOURCES: &[(&str, Option<&str>)] = &[
    ("/v1/apps/{app}", Some("app-{app}")),
    ("/v1/apps/{app}/tokens", None),
    ("/v1/apps/{app}/tokens/{token_id}", Some("token-{token_id}")),
    ("/v1/jobs/{id}", Some("job-{id}")),
    ("/v1/orchestrations/{id}", Some("orchestration-{id}")),
    ("/v1/orchestrations/{id}/jobs", None),
    ("/v1/platforms/{platform}", Some("platform-{platform}")),
    ("/v1/runnables/{id}", Some("runnable-{id}")),
    ("/v1/services/{service}", Some("service-{service}")),
    ("/v1/services/{service}/instances", None),
    (
        "/v1/services/{service}/instances/{instance}",
        Some("instance-{service}.{instance}"),
    ),
    ("/v1/teams/{team}", Some("team-{team}")),
    ("/v1/tokens/{token_id}", Some("token-{token_id}")),
    ("/v1/users/{username}", Some("user-{username}")),
    ("/v1/users/{username}/quota", Some("quota-{username}")),
    ("/v1/users/{username}/password-reset", None),
    ("/v1/users/{username}/password-reset/{token}", None),
];

/// GETs below a resource that show the resource's own stream, so answer with its `ETag` too
/// (the rest below one, such as a job's output or a runnable's files, are parts read apart).
const TAGGED_VIEWS: &[&str] = &[
    "/v1/apps/{app}/env",
    "/v1/orchestrations/{id}/notifications",
    "/v1/orchestrations/{id}/tasks",
    "/v1/services/{service}/doc",
    "/v1/users/{username}/keys",
];

/// Writes below a resource whose answer is another one (a restart's new job): not tagged with
/// the resource's version.
const ANSWERS_ANOTHER: &[&str] = &["/v1/jobs/{id}/restart"];

/// The path parameters that hold ids (UUIDs), which the handlers read in any of the forms
/// `uuid` parses and name their streams with in the hyphenated lower-case one.
const ID_PARAMS: &[&str] = &["id", "token_id"];

/// `value` as the stream names it: an id in its canonical form.
fn canonical(name: &str, value: &str) -> String {
    match uuid::Uuid::parse_str(value) {
        Ok(id) if ID_PARAMS.contains(&name) => id.to_string(),
        _ => value.to_string(),
    }
}

/// The stream of the resource that route `template` names, with its path `params`; `None` for
/// a route that names none (a list, a create, a route outside `/v1`).
pub fn stream_of(template: &str, params: &[(String, String)]) -> Option<String> {
    let (_, stream) = RESOURCES
        .iter()
        .filter(|(route, _)| {
            template == *route
                || template
                    .strip_prefix(route)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(route, _)| route.len())?;
    let mut stream = stream.map(str::to_string)?;
    for (name, value) in params {
        stream = stream.replace(&format!("{{{name}}}"), value);
    }
    (!stream.contains('{')).then_some(stream)
}

/// A GET of `template` answers one resource's own stream: it gets an `ETag`.
pub fn tagged_on_read(template: &str) -> bool {
    RESOURCES
        .iter()
        .any(|(route, stream)| stream.is_some() && *route == template)
        || TAGGED_VIEWS.contains(&template)
}

/// `"N"`, the form of every `ETag` Bosun sends.
pub fn etag(version: u64) -> HeaderValue {
    // Digits between quotes: always a valid header value.
    HeaderValue::try_from(format!("\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// An `If-Match` value: `Some(version)` for `"N"`, `None` for `*` (any version: the resource
/// exists, which the command checks anyway); 400 for anything else, such as a weak tag, which
/// never matches a strong one.
fn parse_if_match(value: &HeaderValue) -> Result<Option<u64>, Problem> {
    let invalid = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_header",
            "If-Match must be one ETag as the resource's answer gave it (\"N\"), or *",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text == "*" {
        return Ok(None);
    }
    text.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(invalid)
}

/// The middleware of every `/v1` route (a route layer: it needs the matched route).
pub async fn versions(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(template) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .filter(|t| t.starts_with("/v1/"))
    else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let params: Vec<(String, String)> =
        match RawPathParams::from_request_parts(&mut parts, &state).await {
            Ok(params) => params
                .iter()
                .map(|(name, value)| (name.to_string(), canonical(name, value)))
                .collect(),
            Err(_) => Vec::new(),
        };
    // A path no stream can have names nothing: the handler answers its 404.
    let stream = stream_of(&template, &params).and_then(|s| StreamId::parse(s).ok());
    let reading = parts.method == Method::GET || parts.method == Method::HEAD;
    if reading {
        match as_of_version(parts.uri.query()) {
            Ok(Some(version)) => {
                return as_of(&state, parts, body, &template, stream, version, next).await
            }
            Ok(None) => {}
            Err(problem) => return problem.into_response(),
        }
    }
    if !reading {
        if let Some(value) = parts.headers.get(header::IF_MATCH) {
            let version = match parse_if_match(value) {
                Ok(version) => version,
                Err(problem) => return problem.into_response(),
            };
            let Some(stream) = &stream else {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_header",
                    format!("If-Match: {template} names no single resource to have a version"),
                )
                .into_response();
            };
            match version {
                Some(version) => {
                    parts.extensions.insert(IfMatch {
                        stream: stream.to_string(),
                        version,
                    });
                }
                // `*` holds for a resource that has a version, whatever it is (RFC 9110 13.1.1):
                // a PUT making the first version (a quota) is refused.
                None => match state.store.version_at(stream, None).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Problem::new(
                            StatusCode::PRECONDITION_FAILED,
                            "version_mismatch",
                            format!("If-Match: * but {stream} has no version yet"),
                        )
                        .into_response()
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading a stream's version failed");
                        return Problem::unavailable("the database is unavailable; retry later")
                            .into_response();
                    }
                },
            }
        }
    }
    let request = Request::from_parts(parts, body);
    let Some(stream) = stream else {
        return next.run(request).await;
    };
    if reading {
        if !tagged_on_read(&template) {
            return next.run(request).await;
        }
        let seen = match state.store.version_at(&stream, None).await {
            Ok(seen) => seen,
            Err(e) => {
                tracing::error!(error = %e, "reading a stream's version failed");
                return Problem::unavailable("the database is unavailable; retry later")
                    .into_response();
            }
        };
        if let Some((_, position)) = seen {
            if let Err(e) = state.freshness.wait_for(position, MAX_WAIT).await {
                return Problem::unavailable(format!("{e}; retry later")).into_response();
            }
        }
        let mut response = next.run(request).await;
        if let (StatusCode::OK, Some((version, _))) = (response.status(), seen) {
            response.headers_mut().insert(header::ETAG, etag(version));
        }
        return response;
    }
    let mut response = next.run(request).await;
    if matches!(response.status(), StatusCode::OK | StatusCode::CREATED)
        && !ANSWERS_ANOTHER.contains(&template.as_str())
    {
        let position = response
            .headers()
            .get(POSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match state.store.version_at(&stream, position).await {
            Ok(Some((version, _))) => {
                response.headers_mut().insert(header::ETAG, etag(version));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "answering a write without its ETag"),
        }
    }
    response
}

/// The query parameter of time travel.
pub const AS_OF_VERSION: &str = "as_of_version";

/// `as_of_version`'s value in `query`, if it is there (its name decoded, as the handlers decode
/// theirs): a version (0, 1, …), given once.
fn as_of_version(query: Option<&str>) -> Result<Option<u64>, Problem> {
    let mut values = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == AS_OF_VERSION)
        .map(|(_, value)| value);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::invalid_field(
            AS_OF_VERSION,
            "given more than once",
        ));
    }
    Some(value.as_ref())
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<i64>().ok())
        .map(|v| Some(v as u64))
        .ok_or_else(|| {
            Problem::invalid_field(
                AS_OF_VERSION,
                format!("must be a version: 0, 1, …, at most {}", i64::MAX),
            )
        })
}

/// `uri` without its `as_of_version`, which the handlers do not take; the rest of the query
/// as it was.
fn without_as_of(uri: &Uri) -> Uri {
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            !pair.is_empty()
                && !form_urlencoded::parse(pair.as_bytes()).any(|(name, _)| name == AS_OF_VERSION)
        })
        .collect();
    let path_and_query = if rest.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), rest.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// A GET with `?as_of_version=N`: the handler's own answer, with the read models folded from
/// the resource's stream up to its version N (`Queries::as_of`), tagged `"N"`. The caller is
/// authenticated first, outside the fold, which does not hold the tokens as they are now.
async fn as_of(
    state: &AppState,
    mut parts: axum::http::request::Parts,
    body: axum::body::Body,
    template: &str,
    stream: Option<StreamId>,
    version: u64,
    next: Next,
) -> Response {
    if !tagged_on_read(template) {
        return Problem::invalid_field(
            AS_OF_VERSION,
            format!("{template} is not one resource's answer; only those have versions"),
        )
        .into_response();
    }
    let Some(stream) = stream else {
        return Problem::not_found(format!("{} names no resource", parts.uri.path()))
            .into_response();
    };
    let caller = match Caller::from_request_parts(&mut parts, state).await {
        Ok(caller) => caller,
        Err(problem) => return problem.into_response(),
    };
    parts.extensions.insert(caller.clone());
    parts.uri = without_as_of(&parts.uri);
    let request = Request::from_parts(parts, body);
    let read = next.run(request);
    match state
        .queries
        .as_of(&caller.actor, &stream, version, read)
        .await
    {
        Ok(mut response) => {
            if response.status() == StatusCode::OK {
                response.headers_mut().insert(header::ETAG, etag(version));
            }
            response
        }
        Err(e) => Problem::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_route_below_a_resource_names_its_stream_and_the_deepest_wins() {
        let app = params(&[("app", "shop"), ("team", "ops")]);
        assert_eq!(
            stream_of("/v1/apps/{app}", &app).as_deref(),
            Some("app-shop")
        );
        assert_eq!(
            stream_of("/v1/apps/{app}/teams/{team}", &app).as_deref(),
            Some("app-shop")
        );
        let token = params(&[("app", "shop"), ("token_id", "t1")]);
        assert_eq!(
            stream_of("/v1/apps/{app}/tokens/{token_id}", &token).as_deref(),
            Some("token-t1")
        );
        let instance = params(&[("service", "pg"), ("instance", "db"), ("app", "shop")]);
        assert_eq!(
            stream_of(
                "/v1/services/{service}/instances/{instance}/apps/{app}",
                &instance
            )
            .as_deref(),
            Some("instance-pg.db")
        );
    }

    #[test]
    fn an_id_in_any_form_names_the_stream_its_handler_writes() {
        let canonical_form = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        for form in [
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "67e5504410b1426f9247bb680e5fe0c8",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
        ] {
            assert_eq!(canonical("id", form), canonical_form, "{form}");
            assert_eq!(canonical("token_id", form), canonical_form, "{form}");
        }
        assert_eq!(canonical("app", "ABC"), "ABC");
        assert_eq!(canonical("id", "not-an-id"), "not-an-id");
    }

    #[test]
    fn lists_creates_and_parts_apart_name_no_stream() {
        let app = params(&[("app", "shop")]);
        assert_eq!(stream_of("/v1/apps", &[]), None);
        assert_eq!(stream_of("/v1/apps/{app}/tokens", &app), None);
        assert_eq!(stream_of("/v1/appsx/{app}", &app), None);
        let user = params(&[("username", "ann"), ("token", "secret")]);
        assert_eq!(
            stream_of("/v1/users/{username}/password-reset/{token}", &user),
            None
        );
    }

    #[test]
    fn if_match_is_one_strong_tag_or_a_star() {
        let parse = |v: &str| parse_if_match(&HeaderValue::from_str(v).expect("a header"));
        assert_eq!(parse("\"3\"").ok(), Some(Some(3)));
        assert_eq!(parse(" \"0\" ").ok(), Some(Some(0)));
        assert_eq!(parse("*").ok(), Some(None));
        for bad in ["3", "W/\"3\"", "\"3\", \"4\"", "\"\"", "\"-1\"", "\"x\""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn as_of_version_is_a_number_given_once_and_leaves_the_rest_of_the_query() {
        assert_eq!(as_of_version(None).ok(), Some(None));
        assert_eq!(as_of_version(Some("limit=3")).ok(), Some(None));
        assert_eq!(
            as_of_version(Some("a=1&as_of_version=7")).ok(),
            Some(Some(7))
        );
        assert_eq!(as_of_version(Some("as_of_version=0")).ok(), Some(Some(0)));
        assert!(as_of_version(Some("as_of_version=9223372036854775808")).is_err());
        for bad in [
            "as_of_version=",
            "as_of_version",
            "as_of_version=-1",
            "as_of_version=x",
            "as_of_version=1&as_of_version=1",
            "as_of_version=+3",
            "as_of_version=99999999999999999999",
        ] {
            assert!(as_of_version(Some(bad)).is_err(), "{bad}");
        }
        let strip = |uri: &str| without_as_of(&uri.parse().expect("a URI")).to_string();
        assert_eq!(strip("/v1/apps/a?as_of_version=3"), "/v1/apps/a");
        assert_eq!(
            strip("/v1/users/a/keys?limit=2&as_of_version=3&offset=1"),
            "/v1/users/a/keys?limit=2&offset=1"
        );
        assert_eq!(
            strip("/v1/apps/a?as_of_versions=3"),
            "/v1/apps/a?as_of_versions=3"
        );
    }
}
