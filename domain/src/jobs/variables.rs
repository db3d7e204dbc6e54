//! A job's variables: they become environment variables of its process, never text in a shell
//! string, so only their names and sizes are checked.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Names a job may not set: they change which program runs or make a shell run code from a
/// value (`BASH_ENV`, `ENV`), which would undo "never interpolated into a shell string".
const RESERVED: [&str; 8] = [
    "PATH",
    "BASH_ENV",
    "ENV",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
];
const RESERVED_PREFIXES: [&str; 3] = ["LD_", "BOSUN_", "BASH_FUNC_"];

/// The largest value a variable may have, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Variables(BTreeMap<String, String>);

impl Variables {
    /// Names `[A-Za-z_][A-Za-z0-9_]*`, values strings up to 64 KiB.
    pub fn parse(values: BTreeMap<String, String>) -> Result<Self, DomainError> {
        for (name, value) in &values {
            let mut chars = name.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(DomainError::invalid(
                    "variables",
                    format!("{name:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"),
                ));
            }
            if RESERVED.contains(&name.as_str())
                || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
            {
                return Err(DomainError::invalid(
                    "variables",
                    format!(
                        "{name} is reserved: it would change how the task's program or shell runs"
                    ),
                ));
            }
            if value.len() > MAX_VALUE_BYTES {
                return Err(DomainError::invalid(
                    "variables",
                    format!("the value of {name} is longer than 64 KiB"),
                ));
            }
        }
        Ok(Variables(values))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn refuses_names_a_shell_could_not_export() {
        for bad in ["", "1A", "A-B", "A B", "É", "A=B", "$A"] {
            assert!(
                Variables::parse(vars(&[(bad, "x")])).is_err(),
                "accepted {bad:?}"
            );
        }
        assert!(Variables::parse(vars(&[("_A1", "x"), ("VERSION", "1.2; rm -rf /")])).is_ok());
    }

    #[test]
    fn refuses_names_that_change_what_runs() {
        for reserved in [
            "PATH",
            "BASH_ENV",
            "ENV",
            "LD_PRELOAD",
            "BOSUN_DATABASE__URL",
        ] {
            assert!(
                Variables::parse(vars(&[(reserved, "x")])).is_err(),
                "accepted {reserved}"
            );
        }
        assert!(Variables::parse(vars(&[("MY_PATH", "x")])).is_ok());
    }

    #[test]
    fn refuses_values_over_64_kib() {
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(Variables::parse(vars(&[("A", &big)])).is_err());
        let max = "x".repeat(MAX_VALUE_BYTES);
        assert!(Variables::parse(vars(&[("A", &max)])).is_ok());
    }
}
