//! Identity commands: users, teams, tokens, logins and the first admin.
//!
//! What spans users is decided in the log itself, with no lock and no read model: a name
//! without regard to case, and an email, belong to one user by a reservation stream each,
//! claimed before the user's own event (`reservations`); the last admin stays by the admin
//! roster, on which a step-down is claimed first (`admins`). Users registered before either
//! existed get theirs in one pass over the log, once (`backfill`). Anonymous users, and their
//! registration as named users who keep their runnables, are `anonymous`'s; both at once, in
//! one append (signing up with no credentials), `sign_up`'s.

mod admins;
mod anonymous;
mod app_tokens;
mod backfill;
mod bootstrap;
mod github;
mod keys;
mod own_account;
pub mod password_reset;
pub(crate) mod reservations;
pub mod secrets;
mod sign_up;
mod teams;
mod tokens;
mod users;

pub use anonymous::{require_anonymous, Registration, DEFAULT_ANONYMOUS_TOKEN_SECONDS};
pub use app_tokens::{app_token_scopes, IssuedAppToken, NewAppToken};
pub use bootstrap::Bootstrapped;
pub use password_reset::{OutgoingMail, ResetFailure, ResetRequested, DEFAULT_RESET_TTL_SECONDS};
pub use tokens::{IssuedToken, NewApiToken, DEFAULT_SESSION_SECONDS};
pub use users::{may_change_password, NewUser, UserChanges};
