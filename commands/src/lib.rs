//! Command handling: load a stream, decide with the domain, append with the exact expected
//! version, retry a bounded number of times on a version conflict.
//!
//! Will own: authorization (decided from the actor: user, teams, admin, token scopes, so every
//! surface enforces the same rules) and `Idempotency-Key` handling.
//!
//! Does not own: the rules themselves (`domain`), the log (`eventstore`), HTTP (`api`).
