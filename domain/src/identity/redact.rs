//! What a reader of the log may not see. The log keeps everything (the aggregates need the
//! hashes to check a password or a token, the runner the sealed values to make its calls);
//! every read of the log for a client (`/v1/events`, `/v1/streams/…`, the live feed) goes
//! through [`redact`], which hides, in every event's data:
//!
//! 1. **Hashes** of identity events (streams `user-…` and `token-…`): the top-level fields
//!    `password_hash` (argon2) and `digest` (SHA-256 of a token or a reset token) become
//!    [`REDACTED`]. A hash can be attacked offline, and a digest is all a token check needs.
//! 2. **Sealed values**, in events of every category, at any depth: the value of every field
//!    named `sealed` (how a sealed value is stored: `{"sealed": "v1.…", …}` for an
//!    orchestration's URL, `{"kind": "private", "sealed": "v1.…"}` for an app's private env
//!    value), and every string that has the shape of a sealed value (`v1.<nonce>.<body>`,
//!    base64url, see `commands::Sealer`) wherever it is, become [`REDACTED`]. A sealed value
//!    does not open without the data key, but none is any reader's business. A new kind of
//!    secret is covered by storing it as a [`crate::sealed::Sealed`] in a field named `sealed`.
//! 3. **URLs stored in clear before sealing**: the string value of every `webhook_url` and
//!    `component_url` field, at any depth, is replaced by what reads show of it
//!    (`orchestrations::UrlField::shown`: a secret URL as `scheme://host[:port]/…`), so events
//!    of orchestrations and jobs from before sealing show no credentials either.
//!
//! Null values stay null; nothing else changes.

use crate::orchestrations::UrlField;
use serde_json::Value;

/// Stands where a redacted value was.
pub const REDACTED: &str = "[redacted]";

/// The fields of each identity event's data that hold a hash: password hashes (argon2) and token
/// digests (SHA-256).
const SECRET_FIELDS: [&str; 2] = ["password_hash", "digest"];

/// The field a sealed value is stored in, whatever the event.
const SEALED_FIELD: &str = "sealed";

/// Bytes of a sealed value's nonce, base64url without padding: 12 bytes.
const NONCE_CHARS: usize = 16;
/// Shortest body: the 16-byte tag of an empty value.
const MIN_BODY_CHARS: usize = 22;

/// Hides, in the data of an event of stream category `category`, every hash of an identity
/// event, every sealed value and every secret of a URL stored in clear (the module's rules).
pub fn redact(category: &str, data: &mut Value) {
    if matches!(category, "user" | "token") {
        if let Value::Object(fields) = data {
            for field in SECRET_FIELDS {
                if let Some(value) = fields.get_mut(field) {
                    if !value.is_null() {
                        *value = Value::String(REDACTED.into());
                    }
                }
            }
        }
    }
    hide_secrets(data);
}

/// Rules 2 and 3, at every depth.
fn hide_secrets(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, value) in fields.iter_mut() {
                let url_field = match key.as_str() {
                    SEALED_FIELD => {
                        if !value.is_null() {
                            *value = Value::String(REDACTED.into());
                        }
                        continue;
                    }
                    "webhook_url" => Some(UrlField::WebhookUrl),
                    "component_url" => Some(UrlField::ComponentUrl),
                    _ => None,
                };
                match (url_field, &*value) {
                    (Some(field), Value::String(url)) => {
                        let shown = field.shown(url).into_owned();
                        *value = Value::String(shown);
                    }
                    _ => hide_secrets(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hide_secrets),
        Value::String(text) if looks_sealed(text) => *value = Value::String(REDACTED.into()),
        _ => {}
    }
}

/// Whether `text` has the shape of a sealed value: `v1.`, 16 base64url characters, `.`, and at
/// least 22 more.
fn looks_sealed(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("v1.") else {
        return false;
    };
    let Some((nonce, body)) = rest.split_once('.') else {
        return false;
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    nonce.len() == NONCE_CHARS
        && body.len() >= MIN_BODY_CHARS
        && base64url(nonce)
        && base64url(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SEALED: &str = "v1.AAECAwQFBgcICQoL.qrvM3e7_ABEiM0RVZneImaq7zN3u_w";

    #[test]
    fn hides_password_hashes_and_token_digests() {
        let mut registered =
            json!({"username": "ann", "password_hash": "$argon2id$…", "admin": false});
        redact("user", &mut registered);
        assert_eq!(
            registered,
            json!({"username": "ann", "password_hash": REDACTED, "admin": false})
        );
        let mut issued = json!({"token_id": "t", "digest": "ab12"});
        redact("token", &mut issued);
        assert_eq!(issued, json!({"token_id": "t", "digest": REDACTED}));
        let mut reset = json!({"digest": "cd34", "expires_at": "2026-01-01T00:00:00Z"});
        redact("user", &mut reset);
        assert_eq!(reset["digest"], REDACTED);
    }

    #[test]
    fn leaves_other_categories_hashes_alone() {
        let mut job = json!({"digest": "not a secret here"});
        redact("job", &mut job);
        assert_eq!(job, json!({"digest": "not a secret here"}));
    }

    #[test]
    fn hides_sealed_values_at_any_depth_in_any_category() {
        // An app's private env value, beside a public one.
        let mut env_set = json!({"envs": [
            {"name": "DB_PASSWORD", "kind": "private", "sealed": SEALED},
            {"name": "MODE", "kind": "public", "value": "fast"},
        ], "restart": true});
        redact("app", &mut env_set);
        assert_eq!(
            env_set,
            json!({"envs": [
                {"name": "DB_PASSWORD", "kind": "private", "sealed": REDACTED},
                {"name": "MODE", "kind": "public", "value": "fast"},
            ], "restart": true})
        );
        // Another shape of it (`{"Private": {"sealed": …}}`).
        let mut tagged = json!({"value": {"Private": {"sealed": "anything"}}});
        redact("app", &mut tagged);
        assert_eq!(tagged, json!({"value": {"Private": {"sealed": REDACTED}}}));
        // An orchestration's sealed webhook: what is shown of it stays.
        let mut replaced = json!({"notifications": [{"email": null, "channel": "error", "parameters": {},
            "webhook_url": {"sealed": SEALED, "shown": "https://hooks.example.com/…"}}]});
        redact("orchestration", &mut replaced);
        assert_eq!(
            replaced["notifications"][0]["webhook_url"],
            json!({"sealed": REDACTED, "shown": "https://hooks.example.com/…"})
        );
        // A sealed value in a field of any other name.
        let mut elsewhere = json!({"token": SEALED, "list": [SEALED], "sealed": null});
        redact("anything", &mut elsewhere);
        assert_eq!(
            elsewhere,
            json!({"token": REDACTED, "list": [REDACTED], "sealed": null})
        );
    }

    #[test]
    fn text_that_only_starts_like_a_sealed_value_stays() {
        for text in [
            "v1.2.3",
            "v1.AAECAwQFBgcICQoL.short",
            "v1.AAECAwQFBgcICQoL.has spaces in it, quite a few",
            "v2.AAECAwQFBgcICQoL.qrvM3e7_ABEiM0RVZneImaq7zN3u_w",
        ] {
            let mut output = json!({"text": text});
            redact("job", &mut output);
            assert_eq!(output["text"], text);
        }
    }

    #[test]
    fn urls_stored_in_clear_before_sealing_show_no_secret() {
        let mut created = json!({"id": "o1", "tasks": [
            {"component": "a/b/c", "component_url": null},
            {"component": null, "component_url": "https://bot:pa55@api.example.com/run?key=k3y"},
            {"component": null, "component_url": "https://api.example.com/plain"},
        ], "notifications": [
            {"email": null, "webhook_url": "https://hooks.example.com/T0/B0/s3cret", "channel": "error"},
            {"email": "ops@example.com", "webhook_url": null, "channel": "error"},
        ]});
        redact("orchestration", &mut created);
        assert_eq!(created["tasks"][0]["component_url"], Value::Null);
        assert_eq!(
            created["tasks"][1]["component_url"],
            "https://api.example.com/…"
        );
        assert_eq!(
            created["tasks"][2]["component_url"],
            "https://api.example.com/plain"
        );
        assert_eq!(
            created["notifications"][0]["webhook_url"],
            "https://hooks.example.com/…"
        );
        assert_eq!(created["notifications"][1]["email"], "ops@example.com");
        // A job's planned tasks too.
        let mut submitted =
            json!({"tasks": [{"component_url": "https://bot:pa55@api.example.com/run"}]});
        redact("job", &mut submitted);
        assert_eq!(
            submitted["tasks"][0]["component_url"],
            "https://api.example.com/…"
        );
    }
}
