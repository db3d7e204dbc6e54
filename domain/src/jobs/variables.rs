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
/// The longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// All names and values together, in bytes: well inside what the kernel lets a process's
/// environment hold (`ARG_MAX`, 2 MiB on Linux, shared with the arguments), so a job that was
/// accepted can always start.
pub const MAX_TOTAL_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Variables(BTreeMap<String, String>);

impl Variables {
    /// Names `[A-Za-z_][A-Za-z0-9_]*` up to 256 bytes, values strings up to 64 KiB without NUL,
    /// all of them up to 1 MiB.
    pub fn parse(values: BTreeMap<String, String>) -> Result<Self, DomainError> {
        let total: usize = values.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
        if total > MAX_TOTAL_BYTES {
            return Err(DomainError::invalid(
                "variables",
                "all names and values together are longer than 1 MiB",
            ));
        }
        for (name, value) in &values {
            if name.len() > MAX_NAME_BYTES {
                return Err(DomainError::invalid(
                    "variables",
                    format!("a variable name is longer than {MAX_NAME_BYTES} bytes"),
                ));
            }
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
            if value.contains('\0') {
                return Err(DomainError::invalid(
                    "variables",
                    format!("the value of {name} contains the NUL character"),
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

    #[test]
    fn refuses_long_names_nul_values_and_too_much_in_all() {
        let long = "A".repeat(MAX_NAME_BYTES + 1);
        assert!(Variables::parse(vars(&[(&long, "x")])).is_err());
        let longest = "A".repeat(MAX_NAME_BYTES);
        assert!(Variables::parse(vars(&[(&longest, "x")])).is_ok());
        assert!(Variables::parse(vars(&[("A", "x\0y")])).is_err());
        let value = "x".repeat(MAX_VALUE_BYTES);
        let many: BTreeMap<String, String> =
            (0..20).map(|i| (format!("V{i}"), value.clone())).collect();
        let error = Variables::parse(many).unwrap_err();
        assert!(error.to_string().contains("1 MiB"), "{error}");
    }
}
