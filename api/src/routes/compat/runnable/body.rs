//! Runnable's request bodies: JSON (what its clients send) or a form (Express's `urlencoded`
//! parser took one too), read as one object of fields whatever they came as. Fields nobody
//! asks for are ignored, as Runnable ignored them (its clients send a whole model back on a
//! `PUT`). An empty body has no fields. Does not decide what a field means (the routes do).

use crate::problem::{FieldError, Problem};
use crate::routes::compat::body;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// What the body came as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    Json,
    Form,
    Multipart,
    /// No body, or one of another type (its bytes are not read as fields).
    Other,
}

/// A request's body fields, and what it came as.
pub struct Fields {
    pub media: Media,
    fields: Map<String, Value>,
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let media = media_type(&request);
        let bytes = crate::extract::read_body(request, state).await?;
        if body::is_blank(&bytes) {
            return Ok(Fields {
                media,
                fields: Map::new(),
            });
        }
        let fields =
            match media {
                Media::Json => body::json_object(&bytes)?,
                Media::Form => form(&bytes)?,
                Media::Multipart => Map::new(),
                // Runnable's own words, not the shared `body::unsupported`.
                Media::Other => return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "content type must be application/json or application/x-www-form-urlencoded",
                )),
            };
        // The log cannot store a NUL: refused here, naming the field, as /v1 does.
        body::refuse_nul(&Value::Object(fields.clone()))?;
        Ok(Fields { media, fields })
    }
}

impl Fields {
    /// No fields at all.
    pub fn empty() -> Fields {
        Fields {
            media: Media::Other,
            fields: Map::new(),
        }
    }

    /// Whether `name` is there (and not `null`).
    pub fn has(&self, name: &str) -> bool {
        self.fields.get(name).is_some_and(|v| !v.is_null())
    }

    /// Field `name` as text: absent or `null` is `None`; a number is its decimal text (Express
    /// took either); anything else is a 400 naming it.
    pub fn text(&self, name: &str) -> Result<Option<String>, Problem> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(Problem::invalid_field(name, "must be text")),
        }
    }

    /// Field `name` as a flag: JSON `true`/`false`, or the text `true`/`false` (a form's);
    /// absent or `null` is `None`; anything else is a 400 naming it.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, Problem> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::String(text)) if text == "true" => Ok(Some(true)),
            Some(Value::String(text)) if text == "false" => Ok(Some(false)),
            Some(_) => Err(Problem::invalid_field(name, "must be true or false")),
        }
    }
}

/// [`body::media_type`]'s, and `multipart/form-data` (Runnable's file uploads).
fn media_type(request: &Request) -> Media {
    let essence = body::content_type(request).unwrap_or_default();
    if essence == "multipart/form-data" {
        return Media::Multipart;
    }
    match body::media_of(&essence) {
        body::Media::Json => Media::Json,
        body::Media::Form => Media::Form,
        body::Media::Other => Media::Other,
    }
}

/// A form's `name=value` pairs; a name given twice is a 400 (no field here takes a list).
fn form(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| Problem::bad_request(format!("the body is not a valid form: {e}"), vec![]))?;
    let mut fields = Map::new();
    for (key, value) in pairs {
        if fields.insert(key.clone(), Value::String(value)).is_some() {
            return Err(Problem::bad_request(
                format!("{key} is given twice"),
                vec![FieldError {
                    field: key,
                    message: "is given twice".into(),
                }],
            ));
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Fields {
        let Value::Object(fields) = value else {
            panic!("an object")
        };
        Fields {
            media: Media::Json,
            fields,
        }
    }

    #[test]
    fn a_form_is_flat_fields_and_a_name_twice_is_refused() {
        let parsed = form(b"email=a%40b.c&running=false&name=a+b").unwrap();
        assert_eq!(
            Value::Object(parsed),
            json!({"email": "a@b.c", "running": "false", "name": "a b"})
        );
        assert_eq!(form(b"a=1&a=2").unwrap_err().status, 400);
    }

    #[test]
    fn a_flag_is_a_json_bool_or_its_text() {
        let body = fields(json!({"a": true, "b": "false", "c": 1, "d": null}));
        assert_eq!(body.flag("a").unwrap(), Some(true));
        assert_eq!(body.flag("b").unwrap(), Some(false));
        assert_eq!(body.flag("d").unwrap(), None);
        assert_eq!(body.flag("e").unwrap(), None);
        let problem = body.flag("c").unwrap_err();
        assert_eq!(
            (problem.status, problem.errors[0].field.as_str()),
            (400, "c")
        );
    }

    #[test]
    fn text_is_a_string_or_a_number() {
        let body = fields(json!({"a": "x", "b": 3, "c": [1]}));
        assert_eq!(body.text("a").unwrap().as_deref(), Some("x"));
        assert_eq!(body.text("b").unwrap().as_deref(), Some("3"));
        assert_eq!(body.text("c").unwrap_err().errors[0].field, "c");
        assert!(!body.has("z"));
    }
}
