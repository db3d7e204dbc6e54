//! Form bodies with `qs` bracket nesting, as Express's `urlencoded({extended: true})` read them
//! and as the `request` library's `form:` option writes them (`qs.stringify`): `a[b]=1` is the
//! object `{a: {b: "1"}}`, `a[0][b]=1` the list `{a: [{b: "1"}]}`, `a[]=1&a[]=2` the list
//! `["1", "2"]`. Every value is text (a form has no numbers); the reader of the fields converts.
//! Used by the compat surfaces whose old servers read such forms (`/compat/openpai`).
//!
//! Owns: parsing a form into one JSON object. Does not own: what the fields mean.
//!
//! Where `qs` guesses, this refuses with a 400 naming the field, so nothing is silently lost or
//! reshaped: a name given twice (`a=1&a=2`, which `qs` makes a list), a name that is both a
//! value and an object or a list (`a=1&a[b]=2`), a malformed name (`a[b`, `a[b]c`, `[a]`),
//! more than [`MAX_DEPTH`] levels, an index above [`MAX_INDEX`]. Unlike `qs`, an index above 20
//! is still a list position (`request` writes `taskRoles[21]` for a 22nd task role).
//!
//! Bounded work: more than [`MAX_PAIRS`] pairs is a 400 (counted before any is decoded; `qs`
//! too stops at 1,000 by default), and each name is found in its object by an index, so a
//! form costs time in proportion to its size.

use crate::problem::{FieldError, Problem};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// The most bracket levels of one name (`a[b][c]` has two).
pub const MAX_DEPTH: usize = 8;
/// The largest list index a name may hold.
pub const MAX_INDEX: usize = 1000;
/// The most `name=value` pairs one form may have.
pub const MAX_PAIRS: usize = 10_000;

/// One bracket level of a name.
#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
    /// `[]`: the next position of a list.
    Push,
}

/// What a name leads to, as the form is read.
enum Node {
    Text(String),
    Object(Object),
    Array(BTreeMap<usize, Node>),
}

/// An object's fields in the order they first came, with where each name is.
#[derive(Default)]
struct Object {
    fields: Vec<(String, Node)>,
    at: HashMap<String, usize>,
}

impl Object {
    /// The field `name`, and whether it was there before: made with `make` if it was not.
    fn field(&mut self, name: &str, make: impl FnOnce() -> Node) -> (&mut Node, bool) {
        match self.at.get(name) {
            Some(&at) => (&mut self.fields[at].1, true),
            None => {
                self.at.insert(name.to_string(), self.fields.len());
                self.fields.push((name.to_string(), make()));
                let last = self.fields.len() - 1;
                (&mut self.fields[last].1, false)
            }
        }
    }
}

/// The form `body` as one JSON object (an empty body is an empty object).
pub fn parse(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    // As `serde_urlencoded` splits it: empty pairs are skipped.
    let pairs = body.split(|b| *b == b'&').filter(|p| !p.is_empty()).count();
    if pairs > MAX_PAIRS {
        return Err(Problem::bad_request(
            format!("the form has {pairs} fields: at most {MAX_PAIRS}"),
            vec![],
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| Problem::bad_request(format!("the body is not a valid form: {e}"), vec![]))?;
    let mut root = Object::default();
    for (key, value) in pairs {
        let path = segments(&key)?;
        insert_field(&mut root, &path, value, &key)?;
    }
    Ok(object(root))
}

fn refusal(key: &str, message: &str) -> Problem {
    Problem::bad_request(
        format!("the form field {key:?} {message}"),
        vec![FieldError {
            field: key.to_string(),
            message: message.to_string(),
        }],
    )
}

/// `a[b][0][]` → `[Key(a), Key(b), Index(0), Push]`.
fn segments(key: &str) -> Result<Vec<Segment>, Problem> {
    let malformed = || {
        refusal(
            key,
            "is not a name with bracketed parts (name, name[key], name[0] or name[])",
        )
    };
    let (root, mut rest) = match key.find('[') {
        Some(at) => (&key[..at], &key[at..]),
        None => (key, ""),
    };
    if root.is_empty() || root.contains(']') {
        return Err(malformed());
    }
    let mut path = vec![Segment::Key(root.to_string())];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(malformed)?;
        let close = inner.find(']').ok_or_else(malformed)?;
        let part = &inner[..close];
        if part.contains('[') {
            return Err(malformed());
        }
        path.push(segment(part));
        rest = &inner[close + 1..];
        if path.len() > MAX_DEPTH + 1 {
            return Err(refusal(
                key,
                &format!("has more than {MAX_DEPTH} bracketed parts"),
            ));
        }
    }
    if let Some(Segment::Index(index)) = path
        .iter()
        .find(|s| matches!(s, Segment::Index(i) if *i > MAX_INDEX))
    {
        return Err(refusal(
            key,
            &format!("has the index {index}: at most {MAX_INDEX}"),
        ));
    }
    Ok(path)
}

/// One bracketed part: `` (push), a list index (digits, no leading zero), or a key.
fn segment(part: &str) -> Segment {
    if part.is_empty() {
        return Segment::Push;
    }
    let digits = part.bytes().all(|b| b.is_ascii_digit());
    let canonical = part == "0" || !part.starts_with('0');
    match part.parse::<usize>() {
        Ok(index) if digits && canonical => Segment::Index(index),
        _ => Segment::Key(part.to_string()),
    }
}

/// A new node for what `next` (the segment after this one) needs, or the value at the end.
fn node_for(next: Option<&Segment>, value: &mut Option<String>) -> Node {
    match next {
        None => Node::Text(value.take().unwrap_or_default()),
        Some(Segment::Key(_)) => Node::Object(Object::default()),
        Some(Segment::Index(_) | Segment::Push) => Node::Array(BTreeMap::new()),
    }
}

fn insert_field(
    root: &mut Object,
    path: &[Segment],
    value: String,
    key: &str,
) -> Result<(), Problem> {
    let mut value = Some(value);
    let Some((Segment::Key(name), rest)) = path.split_first() else {
        return Err(refusal(key, "has no name"));
    };
    let (node, existed) = root.field(name, || node_for(rest.first(), &mut value));
    match (existed, rest.is_empty()) {
        (true, true) => Err(refusal(key, "is given twice")),
        (false, true) => Ok(()),
        (_, false) => insert(node, rest, &mut value, key),
    }
}

/// Puts `value` at `path` under `node` (`path` is not empty).
fn insert(
    mut node: &mut Node,
    path: &[Segment],
    value: &mut Option<String>,
    key: &str,
) -> Result<(), Problem> {
    let conflict = || {
        refusal(
            key,
            "does not fit the other fields of its name (a value, an object and a list cannot share a name)",
        )
    };
    for (at, segment) in path.iter().enumerate() {
        let next = path.get(at + 1);
        let last = next.is_none();
        node = match (node, segment) {
            (Node::Object(fields), Segment::Key(name)) => {
                let (node, existed) = fields.field(name, || node_for(next, value));
                if existed && last {
                    return Err(refusal(key, "is given twice"));
                }
                node
            }
            (Node::Array(items), Segment::Index(_) | Segment::Push) => {
                let index = match segment {
                    Segment::Index(index) => *index,
                    _ => items.keys().next_back().map_or(0, |i| i + 1),
                };
                if index > MAX_INDEX {
                    return Err(refusal(
                        key,
                        &format!("makes a list of more than {MAX_INDEX} items"),
                    ));
                }
                if items.contains_key(&index) && last {
                    return Err(refusal(key, "is given twice"));
                }
                items.entry(index).or_insert_with(|| node_for(next, value))
            }
            _ => return Err(conflict()),
        };
    }
    Ok(())
}

fn object(fields: Object) -> Map<String, Value> {
    fields
        .fields
        .into_iter()
        .map(|(key, node)| (key, value(node)))
        .collect()
}

fn value(node: Node) -> Value {
    match node {
        Node::Text(text) => Value::String(text),
        Node::Object(fields) => Value::Object(object(fields)),
        // Positions compacted, in order, as `qs` does (`a[1]=x` alone is `["x"]`).
        Node::Array(items) => Value::Array(items.into_values().map(value).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(body: &str) -> Value {
        Value::Object(parse(body.as_bytes()).unwrap())
    }

    fn refused(body: &str) -> Problem {
        parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn flat_names_are_fields() {
        assert_eq!(
            form("username=alice&password=p%40ss+word&expiration=4000"),
            json!({"username": "alice", "password": "p@ss word", "expiration": "4000"})
        );
        assert_eq!(form(""), json!({}));
    }

    #[test]
    fn brackets_nest_objects_and_lists_as_qs_stringify_writes_them() {
        // What `request`'s `form:` sends for a v1 job config.
        let body = "jobName=j&taskRoles%5B0%5D%5Bname%5D=main&taskRoles%5B0%5D%5BtaskNumber%5D=2\
                    &taskRoles%5B1%5D%5Bname%5D=ps&jobEnvs%5BA%5D=1&taskRoles[1][portList][0][label]=http";
        assert_eq!(
            form(body),
            json!({
                "jobName": "j",
                "taskRoles": [
                    {"name": "main", "taskNumber": "2"},
                    {"name": "ps", "portList": [{"label": "http"}]}
                ],
                "jobEnvs": {"A": "1"}
            })
        );
    }

    #[test]
    fn empty_brackets_append_and_indices_are_compacted_in_order() {
        assert_eq!(form("a[]=x&a[]=y"), json!({"a": ["x", "y"]}));
        assert_eq!(form("a[3]=c&a[1]=b"), json!({"a": ["b", "c"]}));
        // Above qs's 20, still a list position.
        assert_eq!(form("a[21]=v"), json!({"a": ["v"]}));
        // A leading zero is a key, as qs reads it.
        assert_eq!(form("a[01]=v"), json!({"a": {"01": "v"}}));
    }

    #[test]
    fn a_name_given_twice_is_refused_naming_it() {
        for (body, key) in [
            ("a=1&a=2", "a"),
            ("a[b]=1&a[b]=2", "a[b]"),
            ("a[0]=1&a[0]=2", "a[0]"),
        ] {
            let problem = refused(body);
            assert_eq!(problem.status, 400, "{body}");
            assert_eq!(problem.errors[0].field, key, "{body}");
        }
    }

    #[test]
    fn a_name_both_a_value_and_a_container_is_refused() {
        for body in [
            "a=1&a[b]=2",
            "a[b]=2&a=1",
            "a[0]=1&a[b]=2",
            "a[b]=1&a[0]=2",
            "a[b]=1&a[b][c]=2",
            "a[0]=1&a[0][c]=2",
        ] {
            assert_eq!(refused(body).status, 400, "{body}");
        }
    }

    #[test]
    fn a_malformed_name_is_refused_naming_it() {
        for (body, key) in [
            ("a[b=1", "a[b"),
            ("a[b]c=1", "a[b]c"),
            ("[a]=1", "[a]"),
            ("a]=1", "a]"),
            ("a[[b]]=1", "a[[b]]"),
        ] {
            let problem = refused(body);
            assert_eq!(problem.errors[0].field, key, "{body}");
            assert!(problem.detail.unwrap().contains(key));
        }
    }

    #[test]
    fn more_than_max_pairs_is_refused_before_decoding() {
        let many = vec!["a[]=1"; MAX_PAIRS + 1].join("&");
        let problem = refused(&many);
        assert_eq!(problem.status, 400);
        assert!(problem.detail.unwrap().contains("at most"));
        let enough: Vec<String> = (0..MAX_PAIRS).map(|i| format!("k{i}=v")).collect();
        let fields = parse(enough.join("&").as_bytes()).unwrap();
        assert_eq!(fields.len(), MAX_PAIRS);
        // Empty pairs are not pairs.
        assert_eq!(form("&&a=1&&"), json!({"a": "1"}));
    }

    #[test]
    fn depth_and_index_are_bounded() {
        let deep = format!("a{}=1", "[x]".repeat(MAX_DEPTH + 1));
        assert_eq!(refused(&deep).status, 400);
        let ok = format!("a{}=1", "[x]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        assert_eq!(refused(&format!("a[{}]=1", MAX_INDEX + 1)).status, 400);
        assert!(parse(format!("a[{MAX_INDEX}]=1").as_bytes()).is_ok());
    }
}

#[cfg(test)]
mod properties {
    use super::parse;
    use proptest::prelude::*;
    use serde_json::Value;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Plain `name=value` pairs, as a browser or curl encodes them, are those fields.
        #[test]
        fn an_encoded_form_of_plain_fields_is_those_fields(
            fields in prop::collection::btree_map("[a-z_][a-z0-9_]{0,12}", any::<String>(), 0..8),
        ) {
            let body = serde_urlencoded::to_string(&fields).expect("encoded");
            let parsed = parse(body.as_bytes()).expect("a valid form");
            prop_assert_eq!(parsed.len(), fields.len());
            for (name, value) in &fields {
                prop_assert_eq!(&parsed[name], &Value::String(value.clone()));
            }
        }

        /// `name[]` fields in order are a list of their values, in that order.
        #[test]
        fn pushed_fields_are_a_list_in_order(values in prop::collection::vec("[^&=]{0,10}", 1..6)) {
            let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("items[]", v.as_str())).collect();
            let body = serde_urlencoded::to_string(&pairs).expect("encoded");
            let parsed = parse(body.as_bytes()).expect("a valid form");
            let expected: Vec<Value> = values.iter().cloned().map(Value::String).collect();
            prop_assert_eq!(&parsed["items"], &Value::Array(expected));
        }

        /// Any bytes get an answer: fields or a 400.
        #[test]
        fn any_body_is_fields_or_a_400(body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80),
            "[a-z\\[\\]=&%0-9]{0,60}".prop_map(String::into_bytes),
        ]) {
            if let Err(problem) = parse(&body) {
                prop_assert_eq!(problem.status, 400);
            }
        }
    }
}
