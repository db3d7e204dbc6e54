//! App values that parse instead of validate: past `parse`, a value is valid.
//!
//! Names deserialize through `parse` too, so a request body cannot smuggle an invalid one past
//! it; every stored event holds names that went through `parse`. If a rule is ever tightened,
//! relax the deserialization (or upcast), so that events already stored keep loading.

use crate::error::DomainError;
use crate::jobs::Variables;
use crate::sealed::Sealed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The longest app description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// All an app's variables together (names, public values, sealed private values), in bytes: the
/// same bound as a job's variables, so an app's environment always fits a process's.
pub const MAX_ENV_BYTES: usize = 1024 * 1024;
/// The longest host name.
pub const MAX_CNAME_BYTES: usize = 253;

/// `^[a-z][a-z0-9-]{0,39}$`: the rule of app, platform, service and instance names.
pub(crate) fn check_resource_name(field: &'static str, value: &str) -> Result<(), DomainError> {
    let mut chars = value.chars();
    let valid = value.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!(
                "{value:?} is not a valid name: 1 to 40 lowercase letters, digits and dashes, \
                 starting with a letter (^[a-z][a-z0-9-]{{0,39}}$)"
            ),
        ))
    }
}

macro_rules! resource_name {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The name, or why not, with the field
            #[doc = concat!("`", $field, "`.")]
            pub fn parse(value: &str) -> Result<Self, $crate::DomainError> {
                Self::parse_field($field, value)
            }

            /// The name, or why not, naming `field` in the refusal.
            pub fn parse_field(
                field: &'static str,
                value: &str,
            ) -> Result<Self, $crate::DomainError> {
                $crate::apps::check_resource_name(field, value)?;
                Ok($name(value.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::DomainError;
            fn try_from(value: String) -> Result<Self, $crate::DomainError> {
                $crate::apps::check_resource_name($field, &value)?;
                Ok($name(value))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
/// For the other resources named by the same rule (services and their instances).
pub(crate) use resource_name;

resource_name!(
    /// An app's name (`^[a-z][a-z0-9-]{0,39}$`): the id of its stream `app-<name>`, and the
    /// catalog app whose tasks its jobs run.
    AppName,
    "name"
);

resource_name!(
    /// A platform's name (`^[a-z][a-z0-9-]{0,39}$`), the id of its stream `platform-<name>`.
    PlatformName,
    "name"
);

/// A host name an app answers to: labels of 1 to 63 lowercase letters, digits and dashes (not
/// at either end of a label), joined by dots, at most 253 bytes, not an IPv4 address. Upper
/// case is folded to lower case (host names are compared without case). The id of its stream
/// `cname-<host>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cname(String);

impl Cname {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let host = value.to_ascii_lowercase();
        let bad = |why: &str| {
            Err(DomainError::invalid(
                "cname",
                format!("{value:?} is not a host name: {why}"),
            ))
        };
        if host.is_empty() || host.len() > MAX_CNAME_BYTES {
            return bad("it must be 1 to 253 characters");
        }
        for label in host.split('.') {
            if label.is_empty() || label.len() > 63 {
                return bad("each dot-separated label must be 1 to 63 characters");
            }
            if !label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return bad("it may hold only letters, digits, dashes and dots");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return bad("a label may not start or end with a dash");
            }
        }
        if host
            .rsplit('.')
            .next()
            .is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()))
        {
            return bad("its last label may not be all digits (an IP address is not a cname)");
        }
        Ok(Cname(host))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Cname {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, DomainError> {
        Cname::parse(&value)
    }
}

impl From<Cname> for String {
    fn from(value: Cname) -> String {
        value.0
    }
}

impl fmt::Display for Cname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks `name=value` with the rule of job variables ([`Variables::parse`]): names
/// `[A-Za-z_][A-Za-z0-9_]*` up to 256 bytes and not reserved (`PATH`, `LD_*`, `BOSUN_*`…),
/// values up to 64 KiB without NUL. The refusal names `field`.
fn check_variable(field: &'static str, name: &str, value: &str) -> Result<(), DomainError> {
    Variables::parse(BTreeMap::from([(name.to_string(), value.to_string())]))
        .map(|_| ())
        .map_err(|error| match error {
            DomainError::Invalid { message, .. } => DomainError::invalid(field, message),
            other => other,
        })
}

/// The name of an app's environment variable: the rule of a job variable's name
/// (`[A-Za-z_][A-Za-z0-9_]*`, up to 256 bytes, not one of the reserved names).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvName(String);

impl EnvName {
    /// The name, or why not, with the field `envs`.
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        Self::parse_field("envs", value)
    }

    /// The name, or why not, naming `field` in the refusal (`name` for a query parameter).
    pub fn parse_field(field: &'static str, value: &str) -> Result<Self, DomainError> {
        check_variable(field, value, "")?;
        Ok(EnvName(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvName {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, DomainError> {
        EnvName::parse(&value)
    }
}

impl From<EnvName> for String {
    fn from(value: EnvName) -> String {
        value.0
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A variable's value as events store it: public ones in clear, private ones sealed with the
/// data key (`Sealer::seal` with the context `app-<app>/env/<NAME>`), whose Debug shows nothing.
///
/// Stored as `{"kind": "public", "value": …}` or `{"kind": "private", "sealed": …}` beside the
/// variable's `name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EnvValue {
    Public { value: String },
    Private { sealed: Sealed },
}

impl EnvValue {
    pub fn is_public(&self) -> bool {
        matches!(self, EnvValue::Public { .. })
    }

    /// The value in clear if it is public; `None` for a private one (what reads show).
    pub fn public_value(&self) -> Option<&str> {
        match self {
            EnvValue::Public { value } => Some(value),
            EnvValue::Private { .. } => None,
        }
    }

    /// The bytes it takes in the app's environment bound ([`MAX_ENV_BYTES`]).
    fn stored_len(&self) -> usize {
        match self {
            EnvValue::Public { value } => value.len(),
            EnvValue::Private { sealed } => sealed.as_str().len(),
        }
    }
}

/// One variable to set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: EnvName,
    #[serde(flatten)]
    pub value: EnvValue,
}

impl EnvVar {
    /// A public variable: its value is checked with the rule of job variables (64 KiB, no NUL).
    pub fn public(name: EnvName, value: String) -> Result<Self, DomainError> {
        check_env_value(&name, &value)?;
        Ok(EnvVar {
            name,
            value: EnvValue::Public { value },
        })
    }

    /// A private variable, already sealed. Check its clear value with [`check_env_value`]
    /// before sealing it.
    pub fn private(name: EnvName, sealed: Sealed) -> Self {
        EnvVar {
            name,
            value: EnvValue::Private { sealed },
        }
    }

    /// The bytes it takes in the app's environment bound.
    pub(super) fn stored_len(name: &EnvName, value: &EnvValue) -> usize {
        name.as_str().len() + value.stored_len() + 2
    }
}

/// Whether `value` (in clear) may be the value of `name`: at most 64 KiB, no NUL, as for a job
/// variable. The command handler calls it on a private value before sealing it; the domain
/// checks public values itself. Refused with the field `envs`.
pub fn check_env_value(name: &EnvName, value: &str) -> Result<(), DomainError> {
    check_variable("envs", name.as_str(), value)
}

/// An app's description: at most 1024 characters.
pub fn check_description(description: &str) -> Result<(), DomainError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(DomainError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(())
}
