//! Users, teams and tokens: who may act, and the invariants about them; and what spans users:
//! reservations of names and emails, and the admin roster.

mod admins;
mod redact;
mod reservation;
mod scope;
mod team;
mod token;
mod user;
mod values;

pub use admins::{AdminRoster, AdminRosterCommand, AdminRosterEvent};
pub use redact::{redact, REDACTED};
pub use reservation::{
    Claim, Reservation, ReservationCommand, ReservationEvent, ReservationKind, Standing,
};
pub use scope::{Scope, Scopes};
pub use team::{Team, TeamCommand, TeamEvent};
pub use token::{Token, TokenCommand, TokenEvent, TokenKind, MAX_EXPIRES_IN};
pub use user::{
    EmailChange, ResetToken, User, UserCommand, UserEvent, UserStream, ALREADY_REGISTERED,
    REGISTRATION_PENDING, REGISTRATION_REQUIRED, RESET_REQUEST_INTERVAL_SECONDS,
    RESET_TOKEN_EXPIRED, RESET_TOKEN_USED, RESET_TOO_SOON,
};
pub use values::{
    Email, KeyName, Password, PasswordHash, PublicKey, TeamName, TokenDigest, Username,
    KEY_ALGORITHMS,
};
