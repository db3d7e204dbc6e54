//! The URLs of tasks and notifications, which may hold secrets: a webhook's path or query is
//! often its secret (Slack's is), and a `component_url` may carry credentials (`user:pass@`) or a
//! token in its query. Such a URL is sealed with the server's data key before it enters an
//! event (by `commands`, which holds the key), opened only by the runner to make the call, and
//! shown redacted wherever it is read.
//!
//! The rule, [`UrlField::is_secret`] and [`UrlField::shown`]:
//! - a `webhook_url` is always a secret;
//! - a `component_url` is one when it has a user name, a password, a query or a fragment; one
//!   of only scheme, host, port and path is kept in clear and shown as it is;
//! - a secret URL is shown as `scheme://host[:port]/…` (path, query, fragment and credentials
//!   hidden; `…` alone if it has no host), so a URL shown ending in `/…` is sealed.
//!
//! Sealed, a URL is stored as `{"sealed": "v1.…", "shown": "https://hooks.example.com/…"}`,
//! bound to the context `orchestration-<id>/<field>` ([`UrlField::context`]): to its
//! orchestration and field, not to its place in the list, so reordering or editing the list
//! leaves every value openable, while a value copied to another orchestration or field does not
//! open there. Events from before sealing hold the URL as a plain string: they still load (as
//! [`StoredUrl::Clear`]), are shown by the same rule, and `commands` seals such a URL whenever it
//! is stored again (a change of the list, or a job of the orchestration).

use crate::sealed::Sealed;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// Which field a URL is: each has its rule and its sealing context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlField {
    /// A task's HTTP endpoint.
    ComponentUrl,
    /// A notification's webhook.
    WebhookUrl,
}

impl UrlField {
    pub fn as_str(self) -> &'static str {
        match self {
            UrlField::ComponentUrl => "component_url",
            UrlField::WebhookUrl => "webhook_url",
        }
    }

    /// The sealing context of this field's URLs in orchestration `orchestration_id` (also in
    /// the jobs of that orchestration, which carry its tasks).
    pub fn context(self, orchestration_id: &str) -> String {
        format!("orchestration-{orchestration_id}/{}", self.as_str())
    }

    /// Whether `url` (in clear) is a secret in this field: sealed before it is stored.
    pub fn is_secret(self, url: &str) -> bool {
        match self {
            UrlField::WebhookUrl => true,
            UrlField::ComponentUrl => match url::Url::parse(url) {
                Ok(parsed) => {
                    !parsed.username().is_empty()
                        || parsed.password().is_some()
                        || parsed.query().is_some()
                        || parsed.fragment().is_some()
                }
                // Not a URL: nothing tells its parts apart, so none is shown.
                Err(_) => true,
            },
        }
    }

    /// How reads show `url` (in clear) of this field: as it is if it is no secret, else
    /// [`redacted`].
    pub fn shown(self, url: &str) -> Cow<'_, str> {
        if self.is_secret(url) {
            Cow::Owned(redacted(url))
        } else {
            Cow::Borrowed(url)
        }
    }
}

/// `scheme://host[:port]/…`: what is shown of a secret URL; `…` for one without a host.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.has_host() => format!(
            "{}://{}{}/…",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        _ => "…".to_string(),
    }
}

/// A URL of a task or notification as events store it. Its Debug shows what reads show of a
/// secret URL, never the URL.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredUrl {
    /// In clear: a `component_url` that is no secret, what a client just sent (before
    /// `commands` seals it), or any URL of an event stored before sealing (a plain string).
    Clear(String),
    /// Sealed for [`UrlField::context`], with what reads show of it.
    Sealed { sealed: Sealed, shown: String },
}

impl StoredUrl {
    /// How reads show it (see the module's rule): never a secret, sealed or clear.
    pub fn shown(&self, field: UrlField) -> Cow<'_, str> {
        match self {
            StoredUrl::Clear(url) => field.shown(url),
            StoredUrl::Sealed { shown, .. } => Cow::Borrowed(shown),
        }
    }

    /// Whether what reads show of it hides something (it is sealed, or a secret in clear).
    pub fn is_hidden(&self, field: UrlField) -> bool {
        match self {
            StoredUrl::Clear(url) => field.is_secret(url),
            StoredUrl::Sealed { .. } => true,
        }
    }

    /// A secret held in clear: what must be sealed before it enters an event.
    pub fn needs_sealing(&self, field: UrlField) -> bool {
        matches!(self, StoredUrl::Clear(url) if field.is_secret(url))
    }
}

impl From<&str> for StoredUrl {
    fn from(url: &str) -> Self {
        StoredUrl::Clear(url.to_string())
    }
}

impl From<String> for StoredUrl {
    fn from(url: String) -> Self {
        StoredUrl::Clear(url)
    }
}

impl fmt::Debug for StoredUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredUrl::Clear(url) => f.debug_tuple("Clear").field(&redacted(url)).finish(),
            StoredUrl::Sealed { shown, .. } => f.debug_tuple("Sealed").field(shown).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_webhook_url_is_always_a_secret_shown_by_its_host() {
        let field = UrlField::WebhookUrl;
        assert_eq!(
            field.shown("https://hooks.example.com/services/T000/B000/XXXX?token=s"),
            "https://hooks.example.com/…"
        );
        assert_eq!(
            field.shown("http://127.0.0.1:8080/hook"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(field.shown("https://x.io"), "https://x.io/…");
        assert_eq!(field.shown("not a url"), "…");
    }

    #[test]
    fn a_component_url_is_a_secret_with_credentials_a_query_or_a_fragment() {
        let field = UrlField::ComponentUrl;
        for plain in ["https://example.com/run", "http://127.0.0.1:9000/a/b"] {
            assert!(!field.is_secret(plain), "{plain}");
            assert_eq!(field.shown(plain), plain);
        }
        for secret in [
            "https://user:pa55@example.com/run",
            "https://user@example.com/run",
            "https://:pa55@example.com/run",
            "https://example.com/run?key=k3y",
            "https://example.com/run?",
            "https://example.com/run#t0ken",
        ] {
            assert!(field.is_secret(secret), "{secret}");
            assert_eq!(field.shown(secret), "https://example.com/…", "{secret}");
        }
        assert_eq!(
            field.shown("http://u:p@127.0.0.1:9000/run"),
            "http://127.0.0.1:9000/…"
        );
    }

    #[test]
    fn contexts_name_the_orchestration_and_the_field_only() {
        assert_eq!(
            UrlField::WebhookUrl.context("o1"),
            "orchestration-o1/webhook_url"
        );
        assert_eq!(
            UrlField::ComponentUrl.context("o1"),
            "orchestration-o1/component_url"
        );
    }

    #[test]
    fn a_stored_url_is_a_string_in_clear_or_an_object_sealed() {
        // Events from before sealing: a plain string.
        let old: StoredUrl =
            serde_json::from_value(json!("https://hooks.example.com/s3cret")).unwrap();
        assert_eq!(
            old,
            StoredUrl::Clear("https://hooks.example.com/s3cret".into())
        );
        assert!(old.needs_sealing(UrlField::WebhookUrl));
        assert_eq!(
            old.shown(UrlField::WebhookUrl),
            "https://hooks.example.com/…"
        );
        assert_eq!(
            serde_json::to_value(&old).unwrap(),
            json!("https://hooks.example.com/s3cret")
        );
        // Sealed.
        let sealed = json!({"sealed": "v1.AAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB", "shown": "https://hooks.example.com/…"});
        let new: StoredUrl = serde_json::from_value(sealed.clone()).unwrap();
        assert!(matches!(new, StoredUrl::Sealed { .. }));
        assert!(!new.needs_sealing(UrlField::WebhookUrl));
        assert!(new.is_hidden(UrlField::ComponentUrl));
        assert_eq!(
            new.shown(UrlField::WebhookUrl),
            "https://hooks.example.com/…"
        );
        assert_eq!(serde_json::to_value(&new).unwrap(), sealed);
    }

    #[test]
    fn its_debug_shows_no_secret() {
        let clear = StoredUrl::Clear("https://u:pa55@example.com/s3cret?k=t0ken".into());
        let sealed = StoredUrl::Sealed {
            sealed: Sealed::from_stored("v1.nonce.body".into()),
            shown: "https://example.com/…".into(),
        };
        for url in [clear, sealed] {
            let debug = format!("{url:?}");
            for secret in ["pa55", "s3cret", "t0ken", "v1.", "nonce"] {
                assert!(!debug.contains(secret), "{debug}");
            }
            assert!(debug.contains("https://example.com/…"), "{debug}");
        }
    }
}
