//! What the compat surfaces' request bodies have in common, so each surface's own `body.rs`
//! keeps only what its old system read its own way.
//!
//! Owns: the media type a request's `Content-Type` names ([`media_type`]: JSON, a form, or
//! another), a blank body ([`is_blank`]), a body that must be JSON ([`json_value`]) or a JSON
//! object ([`json_object`]), the 415 for a body that is neither JSON nor a form
//! ([`unsupported`]), and the 400 for a NUL, naming the field ([`refuse_nul`], [`nul`]: the log
//! cannot store one). Reading the bytes (a 413 past the limit, a 400 when they cannot be read)
//! is [`crate::extract::read_body`]'s, as for `/v1`.
//!
//! Does not own: how a surface reads a form (pulsar's `taskVariables[NAME]`, openpai's `qs`
//! nesting, tsuru's repeated names, runnable's flat pairs), the other media types one surface
//! takes (openpai's YAML and its unlabelled bodies, runnable's multipart), or what a field
//! means: those are each surface's.

use crate::problem::Problem;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use serde_json::{Map, Value};

/// What a body's `Content-Type` says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/json`, or `application/…+json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Anything else, or no `Content-Type` at all.
    Other,
}

/// The essence of the request's `Content-Type` (`application/json` of `application/json;
/// charset=utf-8`), in lower case: `None` without one, empty if it is not visible ASCII.
pub fn content_type(request: &Request) -> Option<String> {
    let value = request.headers().get(header::CONTENT_TYPE)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default(),
    )
}

/// What a `Content-Type` essence (as [`content_type`] gives it) says a body is.
pub fn media_of(essence: &str) -> Media {
    match essence {
        "application/json" => Media::Json,
        "application/x-www-form-urlencoded" => Media::Form,
        other if other.starts_with("application/") && other.ends_with("+json") => Media::Json,
        _ => Media::Other,
    }
}

/// What the request's `Content-Type` says its body is.
pub fn media_type(request: &Request) -> Media {
    media_of(content_type(request).as_deref().unwrap_or_default())
}

/// Whether a body is empty or only whitespace (a body not sent).
pub fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// The 415 for a body that is neither JSON nor a form.
pub fn unsupported() -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the body must be JSON (Content-Type: application/json) or a form (application/x-www-form-urlencoded)",
    )
}

/// The body as any JSON value: a 400 if it is not JSON.
pub fn json_value(body: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}"), vec![]))
}

/// The body as a JSON object's fields: a 400 if it is not JSON, or not an object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    match json_value(body)? {
        Value::Object(fields) => Ok(fields),
        _ => Err(Problem::bad_request(
            "the body must be a JSON object",
            vec![],
        )),
    }
}

/// The 400 for a NUL in `field`.
pub fn nul(field: &str) -> Problem {
    Problem::invalid_field(field, "must not contain the NUL character (U+0000)")
}

/// Where a NUL is in the keys or text of `value` (`a.b`, `tasks[0]`), if anywhere; empty for a
/// NUL in `value` itself (a JSON string).
pub fn nul_field(value: &Value) -> Option<String> {
    bosun_eventstore::nul_at(value).map(|path| path.trim_start_matches('.').to_string())
}

/// A NUL in any key or text of `value` is a 400 naming where ([`nul_field`]).
pub fn refuse_nul(value: &Value) -> Result<(), Problem> {
    match nul_field(value) {
        Some(field) => Err(nul(&field)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(content_type: Option<&str>) -> Request {
        let mut request = Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn the_media_type_is_the_content_types_essence() {
        for (content_type, media) in [
            (Some("application/json"), Media::Json),
            (Some("Application/JSON; charset=utf-8"), Media::Json),
            (Some("application/vnd.api+json"), Media::Json),
            (
                Some(" application/x-www-form-urlencoded ; a=b"),
                Media::Form,
            ),
            (Some("text/plain"), Media::Other),
            (Some("text/json"), Media::Other),
            (None, Media::Other),
        ] {
            assert_eq!(
                media_type(&request(content_type)),
                media,
                "{content_type:?}"
            );
        }
        assert_eq!(content_type(&request(None)), None);
        assert_eq!(
            content_type(&request(Some("Text/YAML; x"))).as_deref(),
            Some("text/yaml")
        );
    }

    #[test]
    fn a_json_body_must_be_an_object() {
        assert_eq!(json_object(b"[1]").unwrap_err().status, 400);
        assert_eq!(json_object(b"{").unwrap_err().status, 400);
        assert_eq!(json_object(br#"{"task": "x"}"#).unwrap()["task"], "x");
        assert_eq!(json_value(b"[1]").unwrap(), json!([1]));
        assert!(is_blank(b" \n\t") && is_blank(b"") && !is_blank(b" x"));
    }

    #[test]
    fn a_nul_is_refused_naming_the_field() {
        let problem = refuse_nul(&json!({"a": {"b": ["x\u{0}"]}})).unwrap_err();
        assert_eq!(
            (problem.status, problem.errors[0].field.as_str()),
            (400, "a.b[0]")
        );
        assert_eq!(nul_field(&json!("x\u{0}")).as_deref(), Some(""));
        assert!(refuse_nul(&json!({"a": "ok"})).is_ok());
    }
}
