//! Users, teams and tokens: who may act, and the invariants about them.

mod redact;
mod scope;
mod team;
mod token;
mod user;
mod values;

pub use redact::{redact, REDACTED};
pub use scope::{Scope, Scopes};
pub use team::{Team, TeamCommand, TeamEvent};
pub use token::{Token, TokenCommand, TokenEvent, TokenKind, MAX_EXPIRES_IN};
pub use user::{EmailChange, User, UserCommand, UserEvent};
pub use values::{Email, Password, PasswordHash, TeamName, TokenDigest, Username};
