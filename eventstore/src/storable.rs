//! What the log can hold, and what one append may ask. PostgreSQL's `jsonb` (and `text`) refuse
//! the NUL character, and one refused row would fail every append sharing its transaction; so
//! every store refuses such an append up front, by itself, with a typed error naming where the
//! NUL is. The same goes for an append that could never be written as asked: no events, a part
//! of no events, one stream in two parts, one event id twice.

use crate::error::AppendError;
use crate::event::{NewEvent, StreamAppend};
use serde_json::Value;
use std::collections::HashSet;

/// `Ok` if an append of `parts` (one part for a single append) may be written; else why not.
/// Every part is checked, and a refusal refuses the whole append. A NUL's place is named as
/// `events[i]…` in a single append and as `appends[p].events[i]…` in a multi-append.
pub(crate) fn check_appends(parts: &[StreamAppend]) -> Result<(), AppendError> {
    if parts.is_empty() || parts.iter().any(|p| p.events.is_empty()) {
        return Err(AppendError::NoEvents);
    }
    if let [part] = parts {
        if part.events.len() > 1 {
            distinct_event_ids(&part.events)?;
        }
        return check(&part.events, "");
    }
    let mut streams = HashSet::with_capacity(parts.len());
    for part in parts {
        if !streams.insert(&part.stream) {
            return Err(AppendError::DuplicateStream {
                stream: part.stream.clone(),
            });
        }
    }
    distinct_event_ids(parts.iter().flat_map(|p| &p.events))?;
    for (index, part) in parts.iter().enumerate() {
        check(&part.events, &format!("appends[{index}]."))?;
    }
    Ok(())
}

fn distinct_event_ids<'a>(
    events: impl IntoIterator<Item = &'a NewEvent>,
) -> Result<(), AppendError> {
    let mut seen = HashSet::new();
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(AppendError::DuplicateEventId {
                event_id: event.event_id,
            });
        }
    }
    Ok(())
}

/// `Ok` if every event of an append can be stored; else the first place that cannot, its field
/// prefixed by `prefix`.
pub(crate) fn check(events: &[NewEvent], prefix: &str) -> Result<(), AppendError> {
    for (index, event) in events.iter().enumerate() {
        let refuse = |field: String| AppendError::Unstorable {
            field: format!("{prefix}{field}"),
            reason: "contains the NUL character (U+0000), which the log cannot store".into(),
        };
        if event.event_type.contains('\0') {
            return Err(refuse(format!("events[{index}].event_type")));
        }
        if let Some(path) = nul_at(&event.data) {
            return Err(refuse(format!("events[{index}].data{path}")));
        }
        if let Some(path) = nul_at(&event.metadata) {
            return Err(refuse(format!("events[{index}].metadata{path}")));
        }
    }
    Ok(())
}

/// Where in `value` a string (a value or an object's key) holds a NUL, as a path such as
/// `.parameters.key` or `[2]`; `Some("")` for `value` itself.
pub fn nul_at(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item).map(|path| format!("[{i}]{path}"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(format!(".{}", key.replace('\0', "\\u0000")));
            }
            nul_at(item).map(|path| format!(".{key}{path}"))
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_a_nul_in_a_value_a_key_or_an_array() {
        assert_eq!(nul_at(&json!({"a": {"b": "ok"}})), None);
        assert_eq!(nul_at(&json!({"a": {"b": "x\u{0}"}})), Some(".a.b".into()));
        assert_eq!(nul_at(&json!({"a": ["ok", "\u{0}"]})), Some(".a[1]".into()));
        assert_eq!(nul_at(&json!({"k\u{0}": 1})), Some(".k\\u0000".into()));
        assert_eq!(nul_at(&json!("\u{0}")), Some(String::new()));
    }

    #[test]
    fn refuses_an_event_whose_data_holds_a_nul() {
        let good = NewEvent::new("E", json!({"name": "x"}));
        let bad = NewEvent::new("E", json!({"name": "x\u{0}"}));
        assert!(check(std::slice::from_ref(&good), "").is_ok());
        match check(&[good, bad], "") {
            Err(AppendError::Unstorable { field, .. }) => assert_eq!(field, "events[1].data.name"),
            other => panic!("expected Unstorable, got {other:?}"),
        }
    }

    fn part(stream: &str, events: Vec<NewEvent>) -> StreamAppend {
        StreamAppend::new(
            crate::StreamId::parse(stream).unwrap(),
            crate::ExpectedVersion::Any,
            events,
        )
    }

    #[test]
    fn checks_every_part_of_a_multi_append() {
        let good = || NewEvent::new("E", json!({}));
        let bad = NewEvent::new("E", json!({"name": "x\u{0}"}));
        match check_appends(&[part("a-1", vec![good()]), part("b-1", vec![good(), bad])]) {
            Err(AppendError::Unstorable { field, .. }) => {
                assert_eq!(field, "appends[1].events[1].data.name")
            }
            other => panic!("expected Unstorable, got {other:?}"),
        }
        assert!(matches!(check_appends(&[]), Err(AppendError::NoEvents)));
        assert!(matches!(
            check_appends(&[part("a-1", vec![good()]), part("b-1", vec![])]),
            Err(AppendError::NoEvents)
        ));
        match check_appends(&[part("a-1", vec![good()]), part("a-1", vec![good()])]) {
            Err(AppendError::DuplicateStream { stream }) => assert_eq!(stream.as_str(), "a-1"),
            other => panic!("expected DuplicateStream, got {other:?}"),
        }
        let twice = good();
        assert!(matches!(
            check_appends(&[part("a-1", vec![twice.clone()]), part("b-1", vec![twice])]),
            Err(AppendError::DuplicateEventId { .. })
        ));
        let twice = good();
        assert!(matches!(
            check_appends(&[part("a-1", vec![twice.clone(), twice])]),
            Err(AppendError::DuplicateEventId { .. })
        ));
        assert!(check_appends(&[part("a-1", vec![good()]), part("b-1", vec![good()])]).is_ok());
    }
}
