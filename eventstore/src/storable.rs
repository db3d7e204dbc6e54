//! What the log can hold. PostgreSQL's `jsonb` (and `text`) refuse the NUL character, and one
//! refused row would fail every append sharing its transaction; so every store refuses such an
//! append up front, by itself, with a typed error naming where the NUL is.

use crate::error::AppendError;
use crate::event::NewEvent;
use serde_json::Value;

/// `Ok` if every event of an append can be stored; else the first place that cannot.
pub(crate) fn check(events: &[NewEvent]) -> Result<(), AppendError> {
    for (index, event) in events.iter().enumerate() {
        let refuse = |field: String| AppendError::Unstorable {
            field,
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
        assert!(check(std::slice::from_ref(&good)).is_ok());
        match check(&[good, bad]) {
            Err(AppendError::Unstorable { field, .. }) => assert_eq!(field, "events[1].data.name"),
            other => panic!("expected Unstorable, got {other:?}"),
        }
    }
}
