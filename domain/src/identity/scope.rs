//! Token scopes: `read` (every GET), `write` (every other call), `admin` (what only an admin may
//! do). A token has its owner's rights cut down to its scopes.

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        match value {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(DomainError::invalid(
                "scopes",
                format!("unknown scope {other:?}; expected read, write or admin"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// A non-empty set of scopes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn all() -> Self {
        Scopes([Scope::Read, Scope::Write, Scope::Admin].into())
    }

    pub fn parse(values: &[String]) -> Result<Self, DomainError> {
        let set = values
            .iter()
            .map(|v| Scope::parse(v))
            .collect::<Result<BTreeSet<_>, _>>()?;
        if set.is_empty() {
            return Err(DomainError::invalid(
                "scopes",
                "must name at least one scope",
            ));
        }
        Ok(Scopes(set))
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_and_empty_scope_lists() {
        assert!(Scopes::parse(&["root".into()]).is_err());
        assert!(Scopes::parse(&[]).is_err());
        let s = Scopes::parse(&["read".into(), "read".into()]).unwrap();
        assert!(s.contains(Scope::Read) && !s.contains(Scope::Write));
        assert!(s.is_subset(&Scopes::all()));
    }
}
