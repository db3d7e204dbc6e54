//! What a reader of the log may not see: the secrets' stand-ins that identity events carry. The
//! log keeps them (the aggregates need them to check a password or a token); every read of the
//! log for a client (`/v1/events`, `/v1/streams/…`, the live feed) shows them redacted.

use serde_json::Value;

/// Stands where a redacted value was.
pub const REDACTED: &str = "[redacted]";

/// The fields of each identity event's data that hold a hash: password hashes (argon2) and token
/// digests (SHA-256).
const SECRET_FIELDS: [&str; 2] = ["password_hash", "digest"];

/// Replaces, in the data of an event of stream category `category`, every hash with
/// [`REDACTED`]. Events of other categories are left as they are.
pub fn redact(category: &str, data: &mut Value) {
    if !matches!(category, "user" | "token") {
        return;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    }

    #[test]
    fn leaves_other_categories_alone() {
        let mut job = json!({"digest": "not a secret here"});
        redact("job", &mut job);
        assert_eq!(job, json!({"digest": "not a secret here"}));
    }
}
