//! tsuru's request bodies, read one way whatever the version sent: 0.3.9's clients send JSON
//! (often without a `Content-Type`), 1.x's (`tsuruclient` 0.4, the Go CLI) a form
//! (`application/x-www-form-urlencoded`), and both read `r.FormValue`, which also sees the query
//! string. [`Fields`] is that: one JSON object of the body's fields (a JSON object as sent, or a
//! form's pairs), and then the query string's pairs for names the body does not have (Go's
//! `r.Form` puts the body's values first). A form or query name given once is a JSON string, one
//! given several times a JSON array of its strings, in order. [`Fields`]' accessors read a field
//! as text, a list or a flag, each refusal a 400 naming the field.
//!
//! A body that is JSON but not an object (0.3.9's `["VAR"]` of env routes) is for the route to
//! read with [`read`] ([`Body::Json`]); a body of a route's own format (a YAML manifest, a
//! service's documentation) or a form, with [`read_form_or_text`]. Every way refuses a NUL the
//! same (a 400 naming the field). Owns only parsing: which fields a route takes and what they
//! mean is the route's.

use crate::problem::Problem;
use crate::routes::compat::body::{self, nul};
use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

/// A request body as sent.
pub enum Body {
    /// Empty, or only whitespace.
    Empty,
    /// Any JSON value (a body that is neither a form nor empty is read as JSON whatever its
    /// `Content-Type`, as tsuru's Go handlers decoded it).
    Json(Value),
    /// A form's pairs, in order.
    Form(Vec<(String, String)>),
}

/// Reads the body of `request` as [`Body`]: a form when its `Content-Type` is
/// `application/x-www-form-urlencoded`, else JSON; a body too large is a 413, bad JSON or a bad
/// form a 400, a NUL anywhere a 400 naming the field.
pub async fn read<S: Send + Sync>(request: Request, state: &S) -> Result<Body, Problem> {
    let bytes = match read_form_or_bytes(request, state).await? {
        Raw::Empty => return Ok(Body::Empty),
        Raw::Form(pairs) => return Ok(Body::Form(pairs)),
        Raw::Bytes(bytes) => bytes,
    };
    let value = body::json_value(&bytes)?;
    if let Some(field) = body::nul_field(&value) {
        return Err(nul(if field.is_empty() { "body" } else { &field }));
    }
    Ok(Body::Json(value))
}

/// A body that is a form or else text of the route's own format (a YAML manifest, a service's
/// documentation), read by [`read_form_or_text`].
pub enum FormOrText {
    /// Empty, or only whitespace.
    Empty,
    /// A form's pairs, in order.
    Form(Vec<(String, String)>),
    /// The body as sent, UTF-8.
    Text(String),
}

/// Reads the body of `request` as [`FormOrText`]: a form as [`read`] reads one, else its text;
/// a body too large is a 413, a bad form or text that is not UTF-8 a 400, a NUL anywhere a 400
/// naming the field (`body` for text).
pub async fn read_form_or_text<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<FormOrText, Problem> {
    match read_form_or_bytes(request, state).await? {
        Raw::Empty => Ok(FormOrText::Empty),
        Raw::Form(pairs) => Ok(FormOrText::Form(pairs)),
        Raw::Bytes(bytes) => {
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| Problem::invalid_field("body", "must be UTF-8 text"))?;
            if text.contains('\0') {
                return Err(nul("body"));
            }
            Ok(FormOrText::Text(text))
        }
    }
}

/// A body read once: a form's pairs (NULs refused), or its bytes for the caller to parse.
enum Raw {
    Empty,
    Form(Vec<(String, String)>),
    Bytes(axum::body::Bytes),
}

async fn read_form_or_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Raw, Problem> {
    let form = body::media_type(&request) == body::Media::Form;
    let bytes = crate::extract::read_body(request, state).await?;
    if body::is_blank(&bytes) {
        return Ok(Raw::Empty);
    }
    if !form {
        return Ok(Raw::Bytes(bytes));
    }
    let pairs = form_pairs(&bytes)?;
    if let Some((key, _)) = pairs
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(nul(key));
    }
    Ok(Raw::Form(pairs))
}

/// A form's (or a query string's) pairs, in order.
pub fn form_pairs(text: &[u8]) -> Result<Vec<(String, String)>, Problem> {
    serde_urlencoded::from_bytes(text)
        .map_err(|e| Problem::bad_request(format!("the form is not valid: {e}"), vec![]))
}

/// What a body was: a form (tsuru 1.x's), or JSON or other text (0.3.9's); a call without a
/// body has none (`Option<Sent>`). Which tsuru it answers is [`super::Generation::answering`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Json,
    Form,
    /// Text of a route's own format (a YAML manifest, a documentation).
    Text,
}

/// The fields of the body (a JSON object, or a form), then the query string's for names the
/// body has not; no body and no query: none. A JSON body that is not an object is a 400.
#[derive(Clone, Debug, Default)]
pub struct Fields {
    pub fields: Map<String, Value>,
    /// What the body was, if there was one.
    pub sent: Option<Sent>,
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let query = request.uri().query().unwrap_or("").to_string();
        let mut fields = match read(request, state).await? {
            Body::Empty => Fields::default(),
            Body::Json(Value::Object(fields)) => Fields {
                fields,
                sent: Some(Sent::Json),
            },
            Body::Json(_) => {
                return Err(Problem::bad_request(
                    "the body must be a JSON object (or a form)",
                    vec![],
                ))
            }
            Body::Form(pairs) => Fields::form(pairs),
        };
        // The query's NULs are refused by the server's own layer before any handler.
        fields.fill_from(Fields::query(form_pairs(query.as_bytes())?));
        Ok(fields)
    }
}

/// Pairs into fields: a name once is a string, several times an array of its strings.
pub fn gather(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut fields = Map::new();
    for (key, value) in pairs {
        match fields.get_mut(&key) {
            None => {
                fields.insert(key, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                fields.insert(key, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    fields
}

impl Fields {
    /// Fields of a JSON object, as if sent as JSON (for tests and for routes that build them).
    pub fn of(fields: Map<String, Value>) -> Fields {
        Fields {
            fields,
            sent: Some(Sent::Json),
        }
    }

    /// The fields of a form's pairs ([`gather`]ed), sent as a form.
    pub fn form(pairs: Vec<(String, String)>) -> Fields {
        Fields {
            fields: gather(pairs),
            sent: Some(Sent::Form),
        }
    }

    /// The fields of a query string's pairs ([`gather`]ed): no body was sent.
    pub fn query(pairs: Vec<(String, String)>) -> Fields {
        Fields {
            fields: gather(pairs),
            sent: None,
        }
    }

    /// `other`'s fields for the names these have not (a body's, then its query's).
    pub fn fill_from(&mut self, other: Fields) {
        for (key, value) in other.fields {
            self.fields.entry(key).or_insert(value);
        }
    }

    /// The same fields with their names in lower case, as tsuru's form decoder (and Go's JSON
    /// decoder) matched them; of names equal but for case, the first is kept.
    pub fn folding_case(self) -> Fields {
        let mut fields = Map::new();
        for (key, value) in self.fields {
            fields.entry(key.to_ascii_lowercase()).or_insert(value);
        }
        Fields {
            fields,
            sent: self.sent,
        }
    }

    /// Field `name` as text: a string (a JSON number or boolean as its JSON text); absent or
    /// `null`: `None`; a list or an object is a 400 naming it.
    pub fn text(&self, name: &str) -> Result<Option<String>, Problem> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(Value::Array(_)) => Err(Problem::invalid_field(name, "is given more than once")),
            Some(Value::Object(_)) => Err(Problem::invalid_field(name, "must be text")),
        }
    }

    /// Field `name` as non-empty text: absent or empty is a 400 naming it.
    pub fn required(&self, name: &str) -> Result<String, Problem> {
        match self.text(name)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(Problem::invalid_field(name, "is required")),
        }
    }

    /// Field `name` as text, empty text as `None`.
    pub fn non_empty(&self, name: &str) -> Result<Option<String>, Problem> {
        Ok(self.text(name)?.filter(|t| !t.is_empty()))
    }

    /// Field `name` as a list of texts: a list (a repeated form name, a JSON array of strings),
    /// or one value as a list of one; absent: empty.
    pub fn texts(&self, name: &str) -> Result<Vec<String>, Problem> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(Problem::invalid_field(name, "must be a list of texts")),
                })
                .collect(),
            Some(_) => Ok(self.text(name)?.into_iter().collect()),
        }
    }

    /// Field `name` as a flag, read as Go's `strconv.ParseBool` (`1 t T TRUE true True`, `0 f F
    /// FALSE false False`) or a JSON boolean; absent or empty: `default`; anything else is a 400
    /// naming it.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, Problem> {
        if let Some(Value::Bool(b)) = self.fields.get(name) {
            return Ok(*b);
        }
        match self.text(name)?.as_deref() {
            None | Some("") => Ok(default),
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
            Some(_) => Err(Problem::invalid_field(name, "must be true or false")),
        }
    }

    /// Field `name` as an integer (a JSON number or its text); absent or empty: `None`.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, Problem> {
        if let Some(Value::Number(n)) = self.fields.get(name) {
            return n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Problem::invalid_field(name, "must be an integer"));
        }
        match self.text(name)?.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Problem::invalid_field(name, "must be an integer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as HttpBody;
    use axum::http::header;
    use serde_json::json;

    async fn fields(content_type: Option<&str>, uri: &str, body: &str) -> Result<Fields, Problem> {
        let mut request = Request::builder().method("POST").uri(uri);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(HttpBody::from(body.to_string())).unwrap();
        Fields::from_request(request, &()).await
    }

    #[tokio::test]
    async fn a_form_and_a_json_object_give_the_same_fields() {
        let form = fields(
            Some("application/x-www-form-urlencoded"),
            "/apps",
            "name=shop&platform=python&teamOwner=a+b",
        )
        .await
        .unwrap();
        let json_body = fields(
            Some("application/json"),
            "/apps",
            r#"{"name":"shop","platform":"python","teamOwner":"a b"}"#,
        )
        .await
        .unwrap();
        assert_eq!(form.fields, json_body.fields);
        assert_eq!(
            (form.sent, json_body.sent),
            (Some(Sent::Form), Some(Sent::Json))
        );
        assert_eq!(form.required("teamOwner").unwrap(), "a b");
    }

    #[tokio::test]
    async fn json_without_a_content_type_is_read_as_json() {
        let f = fields(None, "/apps", r#"{"name":"shop"}"#).await.unwrap();
        assert_eq!(f.sent, Some(Sent::Json));
        assert_eq!(f.text("name").unwrap().as_deref(), Some("shop"));
        assert!(fields(None, "/apps", "name=shop").await.is_err());
    }

    #[tokio::test]
    async fn the_query_fills_names_the_body_has_not() {
        let f = fields(
            Some("application/x-www-form-urlencoded"),
            "/swap?app1=q&force=true",
            "app1=b&app2=c",
        )
        .await
        .unwrap();
        assert_eq!(
            Value::Object(f.fields.clone()),
            json!({"app1": "b", "app2": "c", "force": "true"})
        );
        let f = fields(None, "/x?env=A&env=B", "").await.unwrap();
        assert_eq!(f.sent, None);
        assert_eq!(f.texts("env").unwrap(), ["A", "B"]);
    }

    #[test]
    fn a_name_given_twice_is_a_list_and_not_text() {
        let f = Fields::form(vec![
            ("env".into(), "A".into()),
            ("env".into(), "B".into()),
            ("env".into(), "C".into()),
            ("one".into(), "x".into()),
        ]);
        assert_eq!(f.texts("env").unwrap(), ["A", "B", "C"]);
        assert_eq!(f.texts("one").unwrap(), ["x"]);
        assert!(f.texts("none").unwrap().is_empty());
        assert_eq!(f.text("env").unwrap_err().errors[0].field, "env");
    }

    #[test]
    fn flags_read_as_go_parses_them() {
        let f = Fields::of(
            json!({"a": "1", "b": "False", "c": true, "d": "", "e": "maybe"})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(f.flag("a", false).unwrap());
        assert!(!f.flag("b", true).unwrap());
        assert!(f.flag("c", false).unwrap());
        assert!(f.flag("d", true).unwrap());
        assert!(!f.flag("absent", false).unwrap());
        assert_eq!(f.flag("e", false).unwrap_err().errors[0].field, "e");
    }

    #[tokio::test]
    async fn bad_bodies_are_400s() {
        for (content_type, body) in [
            (Some("application/json"), "[1]"),
            (Some("application/json"), "{"),
            (None, "\"text\""),
        ] {
            assert_eq!(
                fields(content_type, "/x", body).await.unwrap_err().status,
                400
            );
        }
        let problem = fields(
            Some("application/x-www-form-urlencoded"),
            "/x",
            "name=a%00b",
        )
        .await
        .unwrap_err();
        assert_eq!(problem.errors[0].field, "name");
        let problem = fields(None, "/x", r#"{"a":{"b":"\u0000"}}"#)
            .await
            .unwrap_err();
        assert_eq!(problem.errors[0].field, "a.b");
    }

    async fn form_or_text(content_type: Option<&str>, body: &str) -> Result<FormOrText, Problem> {
        let mut request = Request::builder().method("POST").uri("/services");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(HttpBody::from(body.to_string())).unwrap();
        read_form_or_text(request, &()).await
    }

    #[tokio::test]
    async fn a_form_or_text_refuses_a_nul_either_way() {
        let form = Some("application/x-www-form-urlencoded");
        let Ok(FormOrText::Form(pairs)) = form_or_text(form, "id=mysql&password=x").await else {
            panic!("not a form");
        };
        assert_eq!(pairs[0], ("id".to_string(), "mysql".to_string()));
        let Ok(FormOrText::Text(text)) = form_or_text(None, "id: mysql\n").await else {
            panic!("not text");
        };
        assert_eq!(text, "id: mysql\n");
        assert!(matches!(
            form_or_text(None, " \n").await,
            Ok(FormOrText::Empty)
        ));
        let problem = form_or_text(form, "id=my%00sql").await.err().unwrap();
        assert_eq!(problem.errors[0].field, "id");
        let problem = form_or_text(None, "id: my\u{0}sql").await.err().unwrap();
        assert_eq!(problem.errors[0].field, "body");
        assert_eq!(form_or_text(None, "\u{0}").await.err().unwrap().status, 400);
    }

    #[test]
    fn integers_from_text_or_numbers() {
        let f = Fields::of(
            json!({"a": "3", "b": 4, "c": "x", "d": ""})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(f.integer("a").unwrap(), Some(3));
        assert_eq!(f.integer("b").unwrap(), Some(4));
        assert_eq!(f.integer("d").unwrap(), None);
        assert!(f.integer("c").is_err());
    }
}
