//! The secrets a service call carries, to take out of any text taken from the service's answer.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

/// What a secret found in a text is replaced with.
const HIDDEN: &str = "***";

/// The secrets a request carries (the service's password, and the Basic credential made of
/// it), to take out of any text taken from its answer: a service echoing its request must not
/// put them in a message.
pub struct Secrets {
    /// The longest first, so that none is cut by taking out another.
    needles: Vec<SecretString>,
}

impl Secrets {
    pub fn new(service: &str, password: &SecretString) -> Secrets {
        let password = password.expose_secret();
        let credential = SecretString::from(
            base64::engine::general_purpose::STANDARD.encode(format!("{service}:{password}")),
        );
        let mut needles = vec![credential, SecretString::from(password.to_string())];
        needles.retain(|n| !n.expose_secret().is_empty());
        needles.sort_by_key(|n| std::cmp::Reverse(n.expose_secret().len()));
        Secrets { needles }
    }

    /// `text` with every secret replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for needle in &self.needles {
            let needle = needle.expose_secret();
            if text.contains(needle) {
                text = text.replace(needle, HIDDEN);
            }
        }
        text
    }
}
