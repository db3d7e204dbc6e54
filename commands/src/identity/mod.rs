//! Identity commands: users, teams, tokens, logins and the first admin.
//!
//! Checks that span users (an email, and a name without regard to case, belongs to one user; the
//! last admin stays) read the `identity` read model, caught up to the head of the log, while
//! holding one cross-node lock (a PostgreSQL advisory lock), so two such commands never decide
//! on the same stale picture.

mod bootstrap;
mod lock;
pub mod secrets;
mod teams;
mod tokens;
mod users;

pub use bootstrap::Bootstrapped;
pub use tokens::{IssuedToken, NewApiToken, DEFAULT_SESSION_SECONDS};
pub use users::{NewUser, UserChanges};
