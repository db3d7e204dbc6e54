//! Stream ids: `<category>-<id>`, parsed once at the edge so an invalid one cannot exist.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest stream id accepted, in bytes.
const MAX_LEN: usize = 256;

/// A stream id of the form `<category>-<id>`, e.g. `job-4f1c…` or `app-web`.
///
/// The category is `[a-z][a-z0-9_]*`; the id is one or more of `[A-Za-z0-9_.:@-]`, so a stream id
/// can stand in a URL path unescaped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream id {value:?}: {reason}")]
pub struct InvalidStreamId {
    pub value: String,
    pub reason: &'static str,
}

impl StreamId {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidStreamId> {
        let value = value.into();
        let fail = |reason| {
            Err(InvalidStreamId {
                value: value.clone(),
                reason,
            })
        };
        if value.len() > MAX_LEN {
            return fail("longer than 256 bytes");
        }
        let Some((category, id)) = value.split_once('-') else {
            return fail("expected <category>-<id>");
        };
        let mut chars = category.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_lowercase())
            || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return fail("the category must match [a-z][a-z0-9_]*");
        }
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:@-".contains(c))
        {
            return fail("the id must be one or more of [A-Za-z0-9_.:@-]");
        }
        Ok(StreamId(value))
    }

    /// `StreamId::new("job", uuid)` → `job-<uuid>`.
    pub fn new(category: &str, id: impl fmt::Display) -> Result<Self, InvalidStreamId> {
        Self::parse(format!("{category}-{id}"))
    }

    pub fn category(&self) -> &str {
        self.0.split_once('-').map(|(c, _)| c).unwrap_or(&self.0)
    }

    pub fn id(&self) -> &str {
        self.0.split_once('-').map(|(_, id)| id).unwrap_or("")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StreamId {
    type Error = InvalidStreamId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_category_and_id() {
        let id = StreamId::parse("job-4f1c2b7e-0000-4000-8000-000000000001").unwrap();
        assert_eq!(id.category(), "job");
        assert_eq!(id.id(), "4f1c2b7e-0000-4000-8000-000000000001");
        assert_eq!(
            StreamId::new("app", "web.front").unwrap().as_str(),
            "app-web.front"
        );
    }

    #[test]
    fn refuses_malformed_ids() {
        for bad in [
            "", "job", "job-", "-x", "Job-1", "1job-x", "job-a b", "job-a/b", "jo b-x",
        ] {
            assert!(StreamId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(StreamId::parse(format!("job-{}", "x".repeat(300))).is_err());
    }
}
