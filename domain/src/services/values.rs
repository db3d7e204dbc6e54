//! Service values that parse instead of validate: past `parse`, a value is valid.
//!
//! Owns: service and instance names, a service's endpoint (with the https rule), the reference
//! of an instance from an app (`service/instance`), and the checks of plans, passwords and docs.
//! Does not own: sealing the password (`commands`), calling the endpoint (`runner`).

use crate::apps::resource_name;
use crate::error::DomainError;
use crate::insecure_hosts;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest service documentation, in bytes.
pub const MAX_DOC_BYTES: usize = 65536;
/// The longest plan name, in characters.
pub const MAX_PLAN_CHARS: usize = 100;
/// The longest service password, in characters.
pub const MAX_SERVICE_PASSWORD_CHARS: usize = 256;

resource_name!(
    /// A service's name (`^[a-z][a-z0-9-]{0,39}$`): the id of its stream `service-<name>`, and
    /// the user of the Basic auth Bosun calls it with.
    ServiceName,
    "name"
);

resource_name!(
    /// An instance's name (`^[a-z][a-z0-9-]{0,39}$`), one per service: the stream
    /// `instance-<service>.<instance>`.
    InstanceName,
    "name"
);

/// Where a service answers its API: an absolute https URL, or plain http to a host allowed
/// insecure (`http_tasks.allow_insecure_hosts`); no user info, query or fragment; held without
/// a trailing `/`, so `{endpoint}/resources` is the path to call.
///
/// Deserialized without the host check: the log is trusted, and a host no longer allowed is
/// refused at call time ([`Endpoint::is_allowed`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Endpoint {
    url: String,
    host: String,
    https: bool,
}

impl Endpoint {
    /// The endpoint, or why not, with the field `endpoint`. Messages never echo user info.
    pub fn parse(value: &str, allow_insecure_hosts: &[String]) -> Result<Endpoint, DomainError> {
        let endpoint = Endpoint::read(value)?;
        if !endpoint.is_allowed(allow_insecure_hosts) {
            return Err(DomainError::invalid(
                "endpoint",
                insecure_hosts::must_use_https("endpoint", &endpoint.url),
            ));
        }
        Ok(endpoint)
    }

    /// The URL's shape, without the host check.
    fn read(value: &str) -> Result<Endpoint, DomainError> {
        let bad = |why: String| DomainError::invalid("endpoint", why);
        let parsed =
            url::Url::parse(value).map_err(|e| bad(format!("the endpoint is not a URL: {e}")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "the endpoint may not hold a user name or password: Bosun authenticates with the \
                 service's name and password"
                    .into(),
            ));
        }
        if parsed.query().is_some() {
            return Err(bad("the endpoint may not have a query".into()));
        }
        if parsed.fragment().is_some() {
            return Err(bad("the endpoint may not have a fragment".into()));
        }
        let host = parsed.host_str().unwrap_or_default().to_string();
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(bad(format!(
                    "endpoint {:?}: scheme {other:?} is not https",
                    parsed.as_str()
                )))
            }
        };
        if host.is_empty() {
            return Err(bad("the endpoint has no host".into()));
        }
        Ok(Endpoint {
            url: parsed.as_str().trim_end_matches('/').to_string(),
            host,
            https,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Its host (without port), as the insecure hosts list names it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether it may be called: https, or http to a host in `allow_insecure_hosts`. Checked
    /// again at call time, as the list may have changed since it was registered.
    pub fn is_allowed(&self, allow_insecure_hosts: &[String]) -> bool {
        let scheme = if self.https { "https" } else { "http" };
        insecure_hosts::is_allowed(scheme, &self.host, allow_insecure_hosts)
    }
}

impl TryFrom<String> for Endpoint {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, DomainError> {
        Endpoint::read(&value)
    }
}

impl From<Endpoint> for String {
    fn from(value: Endpoint) -> String {
        value.url
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// An instance as an app names it: `service/instance`. Stored as `{service, instance}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceRef {
    pub service: ServiceName,
    pub instance: InstanceName,
}

impl fmt::Display for InstanceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.instance)
    }
}

/// An instance's plan: at most 100 characters, no control characters (empty: the service's
/// default). Refused with the field `plan`.
pub fn check_plan(plan: &str) -> Result<(), DomainError> {
    if plan.chars().count() > MAX_PLAN_CHARS {
        return Err(DomainError::invalid(
            "plan",
            format!("must be at most {MAX_PLAN_CHARS} characters"),
        ));
    }
    if plan.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "plan",
            "may not hold control characters",
        ));
    }
    Ok(())
}

/// A service's password (in clear, before sealing): 1 to 256 characters. Refused with the field
/// `password`; the message never holds it.
pub fn check_service_password(password: &str) -> Result<(), DomainError> {
    let chars = password.chars().count();
    if chars == 0 || chars > MAX_SERVICE_PASSWORD_CHARS {
        return Err(DomainError::invalid(
            "password",
            format!("must be 1 to {MAX_SERVICE_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// A service's documentation: at most 64 KiB. Refused with the field `doc`.
pub fn check_doc(doc: &str) -> Result<(), DomainError> {
    if doc.len() > MAX_DOC_BYTES {
        return Err(DomainError::invalid(
            "doc",
            format!("must be at most {MAX_DOC_BYTES} bytes"),
        ));
    }
    Ok(())
}
