//! OpenPAI's request bodies, as its REST server's parsers read them: JSON (`bodyParser.json`),
//! forms with `qs` bracket nesting (`urlencoded({extended: true})`, what the SDK's login and its
//! v1 job submission send: [`crate::routes::compat::form`]) and YAML (protocol v2 job configs,
//! `text/yaml`). [`Body::fields`] gives JSON and forms as one JSON object; [`Body::yaml`] gives
//! the text as a YAML document (JSON is YAML, so a JSON config is taken there too).
//!
//! One leniency, for the seed's own curl example (`-H "Content-Type: application/json" -d
//! "username=…" -d "password=…"`: a form labelled JSON): a body labelled JSON that is not JSON
//! and does not begin as JSON does (`{`, `[`, `"`) is read as a form.
//!
//! A YAML body is bounded before it is built: at most [`MAX_YAML_BYTES`] (413 past it), and at
//! most [`MAX_YAML_NODES`] values and [`MAX_YAML_TEXT_BYTES`] of text once its aliases are
//! expanded (400 past either, counted as the document is built, so an alias bomb stops
//! there). Aliases are taken: js-yaml's `safeDump`, which the SDK's users write configs with,
//! writes `&ref_0` for a value used twice.
//!
//! Owns: reading and decoding a body. Does not own: what its fields mean.

use crate::problem::Problem;
use crate::routes::compat::body::{self, refuse_nul, unsupported};
use crate::routes::compat::form;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Value as Yaml};
use std::cell::Cell;
use std::fmt;

/// The largest YAML body (a job config), in bytes.
pub const MAX_YAML_BYTES: usize = 256 * 1024;
/// The most values (scalars, lists, mappings, tagged values) a YAML body may hold, its aliases
/// expanded.
pub const MAX_YAML_NODES: usize = 100_000;
/// The most text (scalars and tags, in bytes) a YAML body may hold, its aliases expanded.
pub const MAX_YAML_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// The media types a body comes as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Media {
    Json,
    Form,
    Yaml,
    /// No `Content-Type` at all.
    Unlabelled,
    Other,
}

/// A request body, read whole (a body too large is a 413), with its media type.
pub struct Body {
    media: Media,
    bytes: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let media = media_type(&request);
        let bytes = crate::extract::read_body(request, state).await?;
        Ok(Body { media, bytes })
    }
}

/// [`body::media_type`]'s, and YAML; a body without a `Content-Type` is unlabelled (read by
/// its look).
fn media_type(request: &Request) -> Media {
    let Some(essence) = body::content_type(request) else {
        return Media::Unlabelled;
    };
    match essence.as_str() {
        "text/yaml" | "text/x-yaml" | "application/yaml" | "application/x-yaml" => Media::Yaml,
        other => match body::media_of(other) {
            body::Media::Json => Media::Json,
            body::Media::Form => Media::Form,
            body::Media::Other => Media::Other,
        },
    }
}

impl Body {
    /// Whether the body is empty (or only whitespace).
    pub fn is_empty(&self) -> bool {
        body::is_blank(&self.bytes)
    }

    /// The body's fields: a JSON object or a form (none for an empty body, whatever its type).
    /// A body without a `Content-Type` is read as JSON if it begins as an object, else as a form.
    /// Another media type is a 415.
    pub fn fields(&self) -> Result<Map<String, Value>, Problem> {
        if self.is_empty() {
            return Ok(Map::new());
        }
        let begins_as_json = self
            .bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| matches!(b, b'{' | b'[' | b'"'));
        let fields = match self.media {
            Media::Json if begins_as_json => body::json_object(&self.bytes)?,
            // The seed's curl example: a form sent as JSON.
            Media::Json => form::parse(&self.bytes).map_err(|_| {
                Problem::bad_request("the body is not valid JSON (nor a form)", vec![])
            })?,
            Media::Form => form::parse(&self.bytes)?,
            Media::Unlabelled if begins_as_json => body::json_object(&self.bytes)?,
            Media::Unlabelled => form::parse(&self.bytes)?,
            Media::Yaml | Media::Other => return Err(unsupported()),
        };
        refuse_nul(&Value::Object(fields.clone()))?;
        Ok(fields)
    }

    /// The body as a YAML document (a mapping), whatever its `Content-Type` (the SDK sends
    /// `text/yaml`; JSON is YAML too). An empty body or one that is not a mapping is a 400.
    /// Past [`MAX_YAML_BYTES`] it is a 413; past [`MAX_YAML_NODES`] values or
    /// [`MAX_YAML_TEXT_BYTES`] of text, aliases expanded, a 400.
    pub fn yaml(&self) -> Result<Mapping, Problem> {
        if self.is_empty() {
            return Err(Problem::invalid_field(
                "body",
                "is empty: send the job's config (YAML, protocol version 2)",
            ));
        }
        if self.bytes.len() > MAX_YAML_BYTES {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the job config is {} bytes: at most {MAX_YAML_BYTES}",
                    self.bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(&self.bytes)
            .map_err(|_| Problem::invalid_field("body", "must be UTF-8 text"))?;
        let document = bounded_yaml(text)?;
        let Yaml::Mapping(mapping) = document else {
            return Err(Problem::bad_request(
                "the body must be a YAML mapping (a job config: protocolVersion, name, taskRoles, …)",
                vec![],
            ));
        };
        if let Some(path) = mapping_nul_at(&mapping, "") {
            return Err(body::nul(if path.is_empty() { "body" } else { &path }));
        }
        Ok(mapping)
    }
}

/// The one YAML document `text` holds, built within the bounds of [`Budget`].
fn bounded_yaml(text: &str) -> Result<Yaml, Problem> {
    let budget = Budget::default();
    let built = BoundedYaml(&budget).deserialize(serde_yaml::Deserializer::from_str(text));
    if let Some(bound) = budget.exceeded.get() {
        return Err(Problem::bad_request(
            format!("the job config is too large once its aliases are expanded: {bound}"),
            vec![],
        ));
    }
    built.map_err(|e| Problem::bad_request(format!("the body is not valid YAML: {e}"), vec![]))
}

/// What a YAML document has used of its bounds as it is built.
#[derive(Default)]
struct Budget {
    nodes: Cell<usize>,
    text: Cell<usize>,
    /// Which bound was passed, once one was.
    exceeded: Cell<Option<&'static str>>,
}

impl Budget {
    /// One more value, with `text` bytes of text: an error once a bound is passed.
    fn take<E: de::Error>(&self, text: usize) -> Result<(), E> {
        self.nodes.set(self.nodes.get() + 1);
        self.text.set(self.text.get().saturating_add(text));
        let exceeded = if self.nodes.get() > MAX_YAML_NODES {
            "more than 100000 values"
        } else if self.text.get() > MAX_YAML_TEXT_BYTES {
            "more than 4 MiB of text"
        } else {
            return Ok(());
        };
        self.exceeded.set(Some(exceeded));
        Err(E::custom(exceeded))
    }
}

/// A YAML value built as `serde_yaml::Value` deserializes one (duplicate keys refused), each
/// value counted against the [`Budget`] before it is made.
#[derive(Clone, Copy)]
struct BoundedYaml<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for BoundedYaml<'_> {
    type Value = Yaml;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Yaml, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BoundedYaml<'_> {
    type Value = Yaml;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Number(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Number(f.into()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Yaml, E> {
        self.0.take(s.len())?;
        Ok(Yaml::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Yaml, E> {
        self.0.take(s.len())?;
        Ok(Yaml::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Yaml, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Yaml, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Yaml, A::Error> {
        self.0.take(0)?;
        let mut sequence = Vec::new();
        while let Some(item) = items.next_element_seed(self)? {
            sequence.push(item);
        }
        Ok(Yaml::Sequence(sequence))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Yaml, A::Error> {
        self.0.take(0)?;
        let mut mapping = Mapping::new();
        while let Some(key) = entries.next_key_seed(self)? {
            if mapping.contains_key(&key) {
                let key = serde_yaml::to_string(&key).unwrap_or_default();
                return Err(de::Error::custom(format!(
                    "duplicate entry with key {}",
                    key.trim()
                )));
            }
            let value = entries.next_value_seed(self)?;
            mapping.insert(key, value);
        }
        Ok(Yaml::Mapping(mapping))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Yaml, A::Error> {
        use serde::de::VariantAccess;
        let (tag, contents) = data.variant::<String>()?;
        if tag.is_empty() {
            return Err(de::Error::custom("empty YAML tag is not allowed"));
        }
        self.0.take(tag.len())?;
        let value = contents.newtype_variant_seed(self)?;
        Ok(Yaml::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })))
    }
}

/// Where a NUL is in the keys or text of a YAML value (`taskRoles.main.commands[0]`).
fn yaml_nul_at(value: &Yaml, at: &str) -> Option<String> {
    match value {
        Yaml::String(s) if s.contains('\0') => Some(at.to_string()),
        Yaml::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| yaml_nul_at(item, &format!("{at}[{i}]"))),
        Yaml::Mapping(mapping) => mapping_nul_at(mapping, at),
        Yaml::Tagged(tagged) => yaml_nul_at(&tagged.value, at),
        _ => None,
    }
}

/// Where a NUL is in the keys or text of a YAML mapping at `at`.
fn mapping_nul_at(mapping: &Mapping, at: &str) -> Option<String> {
    mapping.iter().find_map(|(key, item)| {
        let name = match key {
            Yaml::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        let path = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        if name.contains('\0') {
            return Some(path);
        }
        yaml_nul_at(item, &path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(media: Media, text: &str) -> Body {
        Body {
            media,
            bytes: Bytes::from(text.to_string()),
        }
    }

    #[test]
    fn json_and_forms_become_fields() {
        let from_json = body(Media::Json, r#"{"username": "a", "expiration": 60}"#);
        assert_eq!(
            Value::Object(from_json.fields().unwrap()),
            json!({"username": "a", "expiration": 60})
        );
        let from_form = body(Media::Form, "username=a&expiration=60");
        assert_eq!(
            Value::Object(from_form.fields().unwrap()),
            json!({"username": "a", "expiration": "60"})
        );
        assert!(body(Media::Json, "  ").fields().unwrap().is_empty());
        assert!(body(Media::Other, "").fields().unwrap().is_empty());
    }

    #[test]
    fn the_seeds_form_labelled_json_is_read_as_a_form() {
        let seed = body(Media::Json, "username=YOUR_USERNAME&password=YOUR_PASSWORD");
        assert_eq!(
            Value::Object(seed.fields().unwrap()),
            json!({"username": "YOUR_USERNAME", "password": "YOUR_PASSWORD"})
        );
        // Broken JSON stays a JSON error.
        assert_eq!(
            body(Media::Json, "{\"a\": ").fields().unwrap_err().status,
            400
        );
        assert_eq!(body(Media::Json, "[1]").fields().unwrap_err().status, 400);
    }

    #[test]
    fn an_unlabelled_body_is_json_or_a_form_by_its_look() {
        assert_eq!(
            Value::Object(body(Media::Unlabelled, r#"{"a": 1}"#).fields().unwrap()),
            json!({"a": 1})
        );
        assert_eq!(
            Value::Object(body(Media::Unlabelled, "a=1").fields().unwrap()),
            json!({"a": "1"})
        );
    }

    #[test]
    fn other_media_types_are_a_415_for_fields() {
        assert_eq!(body(Media::Other, "a=1").fields().unwrap_err().status, 415);
        assert_eq!(body(Media::Yaml, "a: 1").fields().unwrap_err().status, 415);
    }

    #[test]
    fn a_nul_is_refused_naming_the_field() {
        let problem = body(Media::Json, r#"{"a": {"b": "x\u0000"}}"#)
            .fields()
            .unwrap_err();
        assert_eq!(problem.errors[0].field, "a.b");
        let problem = body(
            Media::Yaml,
            "taskRoles:\n  main:\n    commands: [\"x\\0\"]\n",
        )
        .yaml()
        .unwrap_err();
        assert_eq!(problem.errors[0].field, "taskRoles.main.commands[0]");
    }

    #[test]
    fn yaml_aliases_are_taken_as_js_yamls_safe_dump_writes_them() {
        let mapping = body(
            Media::Yaml,
            "defaults: &ref_0\n  cpu: 1\ntaskRoles:\n  a:\n    resourcePerInstance: *ref_0\n",
        )
        .yaml()
        .unwrap();
        assert_eq!(
            mapping["taskRoles"]["a"]["resourcePerInstance"]["cpu"],
            Yaml::from(1)
        );
        let tagged = body(Media::Yaml, "a: !custom 1\n").yaml().unwrap();
        assert!(matches!(tagged["a"], Yaml::Tagged(_)));
        let duplicate = body(Media::Yaml, "a: 1\na: 2\n").yaml().unwrap_err();
        assert_eq!(duplicate.status, 400);
    }

    /// Nine levels of nine aliases each: 9^9 values once expanded, from a few hundred bytes.
    fn alias_bomb() -> String {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for level in 1..=9 {
            let previous = format!("*a{}", level - 1);
            let items = [previous.as_str(); 9].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        text
    }

    #[test]
    fn an_alias_bomb_stops_at_the_bounds() {
        let started = std::time::Instant::now();
        let problem = body(Media::Yaml, &alias_bomb()).yaml().unwrap_err();
        assert_eq!(problem.status, 400);
        assert!(
            problem.detail.as_deref().unwrap().contains("aliases"),
            "{problem:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // A long text used many times is bounded too.
        let long = format!(
            "a: &a {}\nb: [{}]\n",
            "x".repeat(100_000),
            vec!["*a"; 100].join(", ")
        );
        let problem = body(Media::Yaml, &long).yaml().unwrap_err();
        assert!(
            problem.detail.as_deref().unwrap().contains("text"),
            "{problem:?}"
        );
    }

    #[test]
    fn a_yaml_body_past_its_size_is_a_413() {
        let big = format!("a: '{}'\n", "x".repeat(MAX_YAML_BYTES));
        assert_eq!(body(Media::Yaml, &big).yaml().unwrap_err().status, 413);
    }

    #[test]
    fn yaml_keeps_the_order_of_its_mappings() {
        let mapping = body(Media::Yaml, "taskRoles:\n  zeta: {}\n  alpha: {}\n")
            .yaml()
            .unwrap();
        let roles = mapping["taskRoles"].as_mapping().unwrap();
        let names: Vec<_> = roles.keys().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
        assert_eq!(body(Media::Yaml, "- a").yaml().unwrap_err().status, 400);
        assert_eq!(body(Media::Yaml, "a: [").yaml().unwrap_err().status, 400);
        assert_eq!(body(Media::Yaml, "").yaml().unwrap_err().status, 400);
    }
}
