//! Identity values that parse instead of validate: past `parse`, a value is valid.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

const MAX_NAME: usize = 64;

fn parse_name(field: &'static str, value: &str) -> Result<String, DomainError> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DomainError::invalid(
            field,
            "may hold only letters, digits and underscores ([_A-Za-z0-9]+)",
        ));
    }
    Ok(value.to_string())
}

/// A user's name: `[_A-Za-z0-9]+`, at most 64 characters. It is also the id of the user's
/// stream, `user-<name>`.
///
/// A name keeps the case it was registered with (its stream, paths and tokens use it as is, so
/// users registered before names were compared without case keep working), but two users'
/// names may not differ only in case: see [`Username::same_name_as`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        parse_name("username", value).map(Username)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the two names are the same without regard to case: two users may not hold them
    /// both. Names are ASCII, so ASCII case folding is the whole of it.
    pub fn same_name_as(&self, other: &Username) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A team's name, with the same rule as a username.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TeamName(String);

impl TeamName {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        parse_name("name", value).map(TeamName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TeamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password in clear, 6 to 50 characters, none of them a control character. It never leaves
/// memory: not serializable, and its `Debug` does not show it.
///
/// Control characters (NUL, line breaks, escape…) are refused whatever the way in (a JSON body,
/// `bosun admin create-user --password-stdin`): they cannot be typed reliably at a login
/// prompt, a line break would be cut by a line-oriented reader, and a NUL ends the string for
/// C tools. Logins compare against the stored hash without parsing, so an older password that
/// holds one still works.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// `field` names the input in the refusal (`password`, or `new` for a change).
    pub fn parse(field: &'static str, value: &str) -> Result<Self, DomainError> {
        let length = value.chars().count();
        if !(6..=50).contains(&length) {
            return Err(DomainError::invalid(field, "must be 6 to 50 characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                field,
                "may not contain control characters (such as NUL, a tab or a line break)",
            ));
        }
        Ok(Password(value.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An email address, compared without regard to case. Only its shape is checked: something@host.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let value = value.trim();
        let valid = value.len() <= 254
            && value.split_once('@').is_some_and(|(local, host)| {
                !local.is_empty()
                    && !host.is_empty()
                    && !host.contains('@')
                    && host.contains('.')
                    && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            });
        if !valid {
            return Err(DomainError::invalid("email", "is not an email address"));
        }
        Ok(Email(value.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An argon2 hash in PHC string form: what the log keeps instead of a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// The SHA-256 digest of a token, in lowercase hex: what the log keeps instead of the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenDigest(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_refuses_other_characters_and_lengths() {
        for bad in ["", "a b", "ann-marie", "josé", "a/b", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "accepted {bad:?}");
        }
        for good in ["a", "Ann_Marie_2", &"x".repeat(64)] {
            assert_eq!(Username::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn usernames_are_the_same_name_without_regard_to_case() {
        let ann = Username::parse("ann").unwrap();
        assert!(ann.same_name_as(&Username::parse("ANN").unwrap()));
        assert!(ann.same_name_as(&Username::parse("aNn").unwrap()));
        assert!(!ann.same_name_as(&Username::parse("anna").unwrap()));
        assert_eq!(
            Username::parse("ANN").unwrap().as_str(),
            "ANN",
            "a name keeps its case"
        );
    }

    #[test]
    fn password_refuses_nul_and_other_control_characters() {
        for bad in [
            "secret\0pw",
            "\0\0\0\0\0\0",
            "secret\npw",
            "secret\tpw",
            "secret\u{7f}pw",
        ] {
            assert_eq!(
                Password::parse("password", bad).err(),
                Some(DomainError::invalid(
                    "password",
                    "may not contain control characters (such as NUL, a tab or a line break)"
                )),
                "accepted {bad:?}"
            );
        }
        assert!(matches!(
            Password::parse("new", "secret\0pw"),
            Err(DomainError::Invalid { field: "new", .. })
        ));
        assert!(Password::parse("password", "secret pw with spaces").is_ok());
    }

    #[test]
    fn password_must_be_6_to_50_characters() {
        assert!(Password::parse("password", "12345").is_err());
        assert!(Password::parse("password", &"p".repeat(51)).is_err());
        assert!(Password::parse("password", "123456").is_ok());
        assert!(Password::parse("password", &"é".repeat(50)).is_ok());
    }

    #[test]
    fn password_debug_hides_it() {
        let p = Password::parse("password", "secret-value").unwrap();
        assert!(!format!("{p:?}").contains("secret"));
    }

    #[test]
    fn email_needs_a_local_part_and_a_host() {
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b@c.d"] {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(
            Email::parse("Ann@Example.ORG").unwrap().as_str(),
            "ann@example.org"
        );
    }
}
