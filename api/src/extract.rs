//! Request extractors whose failures are problem details: a malformed body, query or path
//! segment is a 400 that says what is wrong, never axum's plain-text rejection.
//!
//! Text the log cannot store (the NUL character) is refused here, at the edge, with a 400 naming
//! the field, wherever it is in a body (also inside free-form `parameters`), a query or a path:
//! [`refuse_nul_in_uri`] covers every route's path and query at once.

use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON body.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let body = read_body(request, state).await?;
        parse_body(&body).map(Json)
    }
}

/// A JSON body read but not yet looked at: [`LaterJson::parse`] checks its media type and
/// parses it when the handler asks, for a route that decides who may call it first (so a caller
/// who may not learns nothing from a 400). A body too large or unreadable is refused at once.
pub struct LaterJson {
    json: bool,
    body: Bytes,
}

impl LaterJson {
    /// The body as `T`, refused as [`Json`] refuses it.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        if !self.json {
            return Err(unsupported_media_type());
        }
        parse_body(&self.body)
    }
}

impl<S: Send + Sync> FromRequest<S> for LaterJson {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(&request);
        let body = read_body(request, state).await?;
        Ok(LaterJson { json, body })
    }
}

fn unsupported_media_type() -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the body must be JSON, sent with Content-Type: application/json",
    )
}

/// A JSON body that may be left out (empty or only whitespace, or JSON's `null`): then
/// `T::default()`. For actions such as cancel or run whose every field is optional.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = read_body(request, state).await?;
        let text = body.trim_ascii();
        if text.is_empty() || text == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        parse_body(&body).map(OptionalJson)
    }
}

/// A `text/plain` body in UTF-8 (the only charset taken); a NUL in it is a 400 naming `body`.
pub struct Text(pub String);

impl<S: Send + Sync> FromRequest<S> for Text {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_plain_text(&request) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be text, sent with Content-Type: text/plain (UTF-8)",
            ));
        }
        let body = read_body(request, state).await?;
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| Problem::invalid_field("body", "must be UTF-8 text"))?;
        if text.contains('\0') {
            return Err(Problem::invalid_field(
                "body",
                "must not contain the NUL character (U+0000)",
            ));
        }
        Ok(Text(text))
    }
}

/// `text/plain`, with no charset or `charset=utf-8`.
fn is_plain_text(request: &Request) -> bool {
    let Some(content_type) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = content_type.split(';').map(str::trim);
    let essence = parts.next().unwrap_or("");
    essence.eq_ignore_ascii_case("text/plain")
        && parts.all(|parameter| match parameter.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                let value = value.trim().trim_matches('"');
                ["utf-8", "utf8", "us-ascii"]
                    .iter()
                    .any(|charset| value.eq_ignore_ascii_case(charset))
            }
            _ => true,
        })
}

/// `application/json` or `application/<something>+json`.
fn is_json(request: &Request) -> bool {
    let Some(content_type) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// How long a route waits for a request's whole body (`http.body_read_timeout_seconds`), put
/// in every request's extensions by the router.
#[derive(Clone, Copy, Debug)]
pub struct BodyReadTimeout(pub std::time::Duration);

/// The largest request body a route reads (the router's `DefaultBodyLimit`): more is a 413.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The wait when no [`BodyReadTimeout`] was given (a router built without one).
const DEFAULT_BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The body, read whole: a body too large is a 413, one that cannot be read a 400, one that has
/// not all arrived within the [`BodyReadTimeout`] a 408 (a client trickling its body holds a
/// request, and its task, no longer than that).
pub(crate) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, Problem> {
    // A body said to be too large is refused before any of it is read.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let wait = request
        .extensions()
        .get::<BodyReadTimeout>()
        .map_or(DEFAULT_BODY_READ_TIMEOUT, |t| t.0);
    let read = tokio::time::timeout(wait, Bytes::from_request(request, state))
        .await
        .map_err(|_| {
            body_timeout(format!(
                "the body did not all arrive within {} s (http.body_read_timeout_seconds)",
                wait.as_secs()
            ))
        })?;
    read.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            Problem::bad_request(
                format!("the body cannot be read: {}", e.body_text()),
                vec![],
            )
        }
    })
}

/// 408 `body_timeout`: `detail` says how long it waited, for what.
pub(crate) fn body_timeout(detail: String) -> Problem {
    Problem::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", detail)
}

pub(crate) fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body is too large: at most {MAX_BODY_BYTES} bytes"),
    )
}

/// JSON text → `T`: a syntax error (text after the value included), a NUL anywhere, or a
/// value of the wrong shape is a 400; the last two name the field.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    parse_body_under(body, "")
}

/// As [`parse_body`], for a body that is one field of a resource (a compat surface's raw array
/// of tasks): the fields are named under `prefix` (`tasks[0].action`), and a value of the
/// wrong shape at the top is named `prefix` itself.
pub(crate) fn parse_body_under<T: DeserializeOwned>(
    body: &[u8],
    prefix: &str,
) -> Result<T, Problem> {
    // JSON can only spell a NUL as the escape `\u0000`: a body without one is parsed straight
    // into `T` (keeping serde's own checks, such as duplicate fields).
    if contains(body, br"\u0000") {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            if let Some(path) = bosun_eventstore::nul_at(&value) {
                return Err(Problem::invalid_field(
                    field_name(prefix, &path),
                    "must not contain the NUL character (U+0000)",
                ));
            }
        }
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let read = <T as serde::Deserialize>::deserialize(ObjectsOnly(
        serde_path_to_error::Deserializer::new(&mut json, &mut track),
    ))
    .map_err(|e| serde_path_to_error::Error::new(track.path(), e));
    let value = read.map_err(|e| {
        let path = e.path().to_string();
        let error = e.into_inner();
        match error.classify() {
            serde_json::error::Category::Data if path != "." || !prefix.is_empty() => {
                Problem::invalid_field(field_name(prefix, &path), error.to_string())
            }
            serde_json::error::Category::Data => {
                Problem::bad_request(format!("the body is not valid: {error}"), vec![])
            }
            _ => Problem::bad_request(format!("the body is not valid JSON: {error}"), vec![]),
        }
    })?;
    json.end()
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}"), vec![]))?;
    Ok(value)
}

/// A body's top level read as serde would, except that a struct is read only from a JSON object:
/// serde's derived structs also take an array of their fields in order (`[null, null]`), which
/// no client means and the document does not allow.
struct ObjectsOnly<D>(D);

macro_rules! forward {
    ($($method:ident($($arg:ident: $type:ty),*)),* $(,)?) => {$(
        fn $method<V: serde::de::Visitor<'de>>(self, $($arg: $type,)* visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for ObjectsOnly<D> {
    type Error = D::Error;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    forward!(
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
        deserialize_i32(), deserialize_i64(), deserialize_i128(), deserialize_u8(),
        deserialize_u16(), deserialize_u32(), deserialize_u64(), deserialize_u128(),
        deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(),
        deserialize_string(), deserialize_bytes(), deserialize_byte_buf(), deserialize_option(),
        deserialize_unit(), deserialize_seq(), deserialize_map(), deserialize_identifier(),
        deserialize_ignored_any(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    );

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// `.parameters.key` → `parameters.key`, under `prefix` if any (`[0].action` under `tasks` →
/// `tasks[0].action`); the body itself is `body` (or `prefix`).
fn field_name(prefix: &str, path: &str) -> String {
    let path = path.strip_prefix('.').unwrap_or(path);
    match (prefix, path) {
        ("", "") => "body".to_string(),
        (prefix, "") => prefix.to_string(),
        ("", path) => path.to_string(),
        (prefix, path) if path.starts_with('[') => format!("{prefix}{path}"),
        (prefix, path) => format!("{prefix}.{path}"),
    }
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e: QueryRejection| {
                Problem::bad_request(
                    format!("the query string is not valid: {}", e.body_text()),
                    vec![],
                )
            })
    }
}

/// Path parameters. A segment that is not UTF-8 once percent-decoded (`/files/%FF`), or one that
/// does not parse as `T`, is a 400 naming `path` (as [`refuse_nul_in_uri`] does); a route whose
/// parameters do not fit `T` (a programming error) is a 500.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(path_problem)
    }
}

fn path_problem(rejection: PathRejection) -> Problem {
    use axum::extract::path::ErrorKind;
    if let PathRejection::FailedToDeserializePathParams(e) = &rejection {
        if let ErrorKind::InvalidUtf8InPathParam { key } = e.kind() {
            return Problem::invalid_field(
                "path",
                format!("{key}: must be UTF-8 once percent-decoded"),
            );
        }
    }
    if rejection.status() == StatusCode::BAD_REQUEST {
        return Problem::invalid_field("path", rejection.body_text());
    }
    tracing::error!(error = %rejection.body_text(), "path parameters do not fit the route");
    Problem::internal()
}

/// Middleware: a request whose path or query holds an encoded NUL (`%00`; a raw one cannot be
/// in a URI) is a 400 naming the query parameter or `path`, before any handler sees it.
pub async fn refuse_nul_in_uri(request: Request, next: Next) -> Response {
    let uri = request.uri();
    if uri.path().contains("%00") {
        return Problem::invalid_field("path", "must not contain the NUL character (%00)")
            .into_response();
    }
    if let Some(query) = uri.query() {
        if let Some(pair) = query.split('&').find(|pair| pair.contains("%00")) {
            let name = pair.split('=').next().unwrap_or_default();
            let name = if name.contains("%00") { "query" } else { name };
            return Problem::invalid_field(name, "must not contain the NUL character (%00)")
                .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        #[serde(default)]
        #[allow(dead_code)]
        parameters: serde_json::Map<String, Value>,
    }

    fn field_of(problem: Problem) -> String {
        problem.errors[0].field.clone()
    }

    #[test]
    fn a_nul_anywhere_in_a_body_names_its_field() {
        let nul = |body: &str| field_of(parse_body::<Body>(body.as_bytes()).unwrap_err());
        assert_eq!(nul(r#"{"name": "x\u0000"}"#), "name");
        assert_eq!(
            nul(r#"{"name": "x", "parameters": {"a": ["\u0000"]}}"#),
            "parameters.a[0]"
        );
        assert_eq!(
            nul(r#"{"name": "x", "parameters": {"k\u0000": 1}}"#),
            "parameters.k\\u0000"
        );
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_no_nul() {
        let body: Body = parse_body(br#"{"name": "C:\\u0000"}"#).unwrap();
        assert_eq!(body.name, r"C:\u0000");
    }

    #[test]
    fn text_after_the_value_is_refused() {
        let problem = parse_body::<Body>(br#"{"name": "a"} {"name": "b"}"#).unwrap_err();
        assert_eq!(problem.status, 400);
        assert!(parse_body::<Body>(b"{\"name\": \"a\"}\n ").is_ok());
    }

    #[test]
    fn a_body_under_a_prefix_names_its_fields_under_it() {
        let under = |body: &str| {
            field_of(parse_body_under::<Vec<Body>>(body.as_bytes(), "tasks").unwrap_err())
        };
        assert_eq!(under(r#"[{"name": 3}]"#), "tasks[0].name");
        assert_eq!(under(r#"[{"name": "x\u0000"}]"#), "tasks[0].name");
        assert_eq!(under(r#"{"name": "x"}"#), "tasks");
    }

    #[test]
    fn a_body_is_an_object_not_an_array_of_the_fields() {
        let problem = parse_body::<Body>(br#"["a", {}]"#).unwrap_err();
        assert_eq!(problem.status, 400);
        let detail = problem.detail.unwrap_or_default();
        assert!(detail.contains("expected struct Body"), "{detail}");
        let tasks: Vec<Body> = parse_body(br#"[{"name": "a"}]"#).unwrap();
        assert_eq!(tasks[0].name, "a");
    }

    #[test]
    fn a_duplicate_field_is_refused() {
        assert!(parse_body::<Body>(br#"{"name": "a", "name": "b"}"#).is_err());
    }

    async fn text(content_type: Option<&str>, body: &'static [u8]) -> Result<String, Problem> {
        let mut request = Request::builder().method("PUT").uri("/doc");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(axum::body::Body::from(body)).unwrap();
        Text::from_request(request, &())
            .await
            .map(|Text(text)| text)
    }

    #[tokio::test]
    async fn a_text_body_is_plain_utf8_text_without_nul() {
        assert_eq!(text(Some("text/plain"), b"use it").await.unwrap(), "use it");
        assert_eq!(
            text(
                Some("Text/Plain; charset=UTF-8"),
                "d\u{e9}j\u{e0}".as_bytes()
            )
            .await
            .unwrap(),
            "d\u{e9}j\u{e0}"
        );
        for content_type in [
            None,
            Some("application/json"),
            Some("text/plain; charset=latin1"),
        ] {
            assert_eq!(text(content_type, b"x").await.unwrap_err().status, 415);
        }
        for body in [&b"a\0b"[..], &b"\xff"[..]] {
            let problem = text(Some("text/plain"), body).await.unwrap_err();
            assert_eq!(problem.status, 400);
            assert_eq!(field_of(problem), "body");
        }
    }

    /// What a route taking `{id}/files/{*path}` answers for `uri`: its status, and the
    /// parameters (when 200) or the problem's first field.
    async fn path_of(uri: &str) -> (u16, Value) {
        let router = axum::Router::new().route(
            "/r/{id}/files/{*path}",
            axum::routing::get(|Path(p): Path<(String, String)>| async move {
                axum::Json(p).into_response()
            }),
        );
        let request = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        if status == 200 {
            (status, value)
        } else {
            (status, value["errors"][0]["field"].clone())
        }
    }

    #[tokio::test]
    async fn a_path_segment_not_utf8_is_a_400_naming_path() {
        assert_eq!(
            path_of("/r/1/files/a/%C3%A9").await,
            (200, serde_json::json!(["1", "a/\u{e9}"]))
        );
        for uri in ["/r/1/files/%FF", "/r/%FF/files/a", "/r/1/files/a/%C3"] {
            assert_eq!(
                path_of(uri).await,
                (400, serde_json::json!("path")),
                "{uri}"
            );
        }
    }

    #[test]
    fn a_wrong_shape_names_its_field() {
        let problem = parse_body::<Body>(br#"{"name": 3}"#).unwrap_err();
        assert_eq!(problem.status, 400);
        assert_eq!(field_of(problem), "name");
        assert!(parse_body::<Body>(b"{").unwrap_err().errors.is_empty());
        assert!(parse_body::<Body>(br#"{"name": "x"}"#).is_ok());
    }
}
