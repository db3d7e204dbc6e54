//! Signing in with a password, limited: every way in that takes a user name and a password
//! (`POST /v1/auth/tokens`, the console's `POST /console/session`, OpenPAI's, tsuru's and
//! Runnable's logins) goes through [`login`], so one limit holds for all of them.
//!
//! A failed sign-in (a wrong password, an unknown name) counts against its user name, from
//! wherever it came, and against its source address, whatever name it tried
//! (`auth.sign_in_limit`: 10 and 100 in any 5 minutes by default); an attempt counts from its
//! start and is taken back once it succeeds, so attempts sent at once cannot all pass while
//! their hashes are computed. Once either has made its count in the window, sign-in is refused
//! (429 `rate_limited` with `Retry-After`) before the password is looked at, until the oldest failure leaves the window: the right password too, or a
//! guesser would learn from a 401 turning into a 201. A success counts nothing. The name is
//! counted whether or not such a user exists, so the 429 says nothing about who exists. Counted
//! by each node in its memory ([`crate::rate_limit`]): it slows guessing down, it is no
//! accounting; a limited user name can still use their tokens, and an admin may set a new
//! password.
//!
//! Does not own: the password check itself ([`bosun_commands::Commands::login`]).

use crate::config::SignInLimitSettings;
use crate::problem::Problem;
use crate::rate_limit::{address_key, retry_after_seconds, RateLimit, Verdict};
use crate::startup::AppState;
use axum::http::StatusCode;
use bosun_commands::identity::IssuedToken;
use bosun_commands::{CommandError, Origin, Written};
use std::time::Duration;

/// The longest user name counted as given; a longer one is counted by its first this many
/// characters (no user name is that long, and the counter's memory stays bounded).
const MAX_KEY_CHARS: usize = 128;

/// The failed sign-ins counted, by user name and by address.
pub struct SignInLimit {
    by_user: RateLimit,
    by_address: RateLimit,
}

impl SignInLimit {
    pub fn new(settings: &SignInLimitSettings) -> Self {
        let per = Duration::from_secs(settings.per_seconds);
        SignInLimit {
            by_user: RateLimit::new(settings.failures_per_user, per),
            by_address: RateLimit::new(settings.failures_per_address, per),
        }
    }

    /// Counts an attempt of `user` from `address` as a failure until it is known not to be
    /// one ([`SignInLimit::forgive`]): counted before the password is checked, so attempts
    /// sent all at once (each waiting for its hash) cannot all pass before the first fails. The
    /// refusal if either has failed its count in the window, then counting nothing (or is no
    /// longer tracked: a full table refuses rather than lets attempts through uncounted).
    fn attempt(&self, user: &str, address: &str) -> Result<(), Problem> {
        let by_user = match self.by_user.check(user) {
            Verdict::Allowed => None,
            Verdict::Limited { retry_after, .. } => Some(retry_after),
        };
        let by_address = match self.by_address.check(address) {
            Verdict::Allowed => None,
            Verdict::Limited { retry_after, .. } => Some(retry_after),
        };
        let (wait, why) = match (by_user, by_address) {
            (None, None) => return Ok(()),
            (Some(user), Some(address)) => (
                user.max(address),
                "too many failed sign-ins of this user and from this address",
            ),
            (Some(wait), None) => {
                self.by_address.forgive(address);
                (wait, "too many failed sign-ins of this user")
            }
            (None, Some(wait)) => {
                self.by_user.forgive(user);
                (wait, "too many failed sign-ins from this address")
            }
        };
        let seconds = retry_after_seconds(wait);
        Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("{why}; retry in {seconds} s"),
        )
        .with_retry_after(seconds))
    }

    /// Takes back an attempt that was no failure.
    fn forgive(&self, user: &str, address: &str) {
        self.by_user.forgive(user);
        self.by_address.forgive(address);
    }
}

/// The key a user name is counted under: trimmed and lowercased (coarser than sign-in's exact
/// match, so it can only count more), at most [`MAX_KEY_CHARS`] long.
fn user_key(username: &str) -> String {
    username
        .trim()
        .chars()
        .take(MAX_KEY_CHARS)
        .flat_map(char::to_lowercase)
        .collect()
}

/// Why a sign-in gave no token.
#[derive(Debug)]
pub enum SignInError {
    /// Too many failures of the name or from the address lately (429, said as it is).
    Limited(Problem),
    /// The login's own refusal: [`CommandError::Unauthenticated`] for a wrong name or
    /// password, or a failure to try.
    Command(CommandError),
}

impl SignInError {
    /// The answer, with `wrong` for a wrong name or password (each surface says it its way).
    pub fn answer(self, wrong: impl FnOnce() -> Problem) -> Problem {
        match self {
            SignInError::Limited(problem) => problem,
            SignInError::Command(CommandError::Unauthenticated) => wrong(),
            SignInError::Command(other) => other.into(),
        }
    }
}

/// [`bosun_commands::Commands::login`] unless the name or the address is limited; a wrong name
/// or password counts against both.
pub async fn login(
    state: &AppState,
    origin: &Origin,
    username: &str,
    password: &str,
    expires_in: Option<i64>,
) -> Result<(IssuedToken, Written), SignInError> {
    let user = user_key(username);
    let address = address_key(origin.source.as_deref());
    if let Err(refusal) = state.sign_in_limit.attempt(&user, &address) {
        tracing::info!(%address, "sign-in refused: too many failures lately");
        return Err(SignInError::Limited(refusal));
    }
    let result = state
        .commands
        .login(origin, username, password, expires_in)
        .await;
    // Only a wrong name or password stays counted (a database failure is no guess).
    if !matches!(result, Err(CommandError::Unauthenticated)) {
        state.sign_in_limit.forgive(&user, &address);
    }
    result.map_err(SignInError::Command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_user: u32, per_address: u32) -> SignInLimit {
        SignInLimit::new(&SignInLimitSettings {
            failures_per_user: per_user,
            failures_per_address: per_address,
            per_seconds: 300,
        })
    }

    #[test]
    fn a_name_is_refused_once_it_failed_its_count_from_anywhere() {
        let limit = limit(2, 100);
        assert!(limit.attempt("ann", "10.0.0.1").is_ok());
        assert!(limit.attempt("ann", "10.0.0.2").is_ok());
        let refusal = limit.attempt("ann", "10.0.0.3").expect_err("refused");
        assert_eq!((refusal.status, refusal.code), (429, "rate_limited"));
        assert!(refusal
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("of this user")));
        let seconds = refusal.retry_after.expect("a Retry-After").get();
        assert!((299..=300).contains(&seconds), "{seconds}");
        // The refused attempt counted nothing against its address: another name from the
        // same addresses goes on.
        assert!(limit.attempt("bob", "10.0.0.3").is_ok());
        assert_eq!(limit.by_address.wait("10.0.0.3"), None);
    }

    #[test]
    fn attempts_at_once_count_before_they_end_and_a_success_is_taken_back() {
        let limit = limit(3, 100);
        // Three under way at once: the fourth is refused before any has ended.
        for _ in 0..3 {
            assert!(limit.attempt("ann", "10.0.0.1").is_ok());
        }
        assert!(limit.attempt("ann", "10.0.0.1").is_err());
        // One of them was the right password: taken back, one more may try.
        limit.forgive("ann", "10.0.0.1");
        assert!(limit.attempt("ann", "10.0.0.1").is_ok());
        assert!(limit.attempt("ann", "10.0.0.1").is_err());
    }

    #[test]
    fn an_address_is_refused_once_it_failed_its_count_whatever_the_names() {
        let limit = limit(100, 3);
        for name in ["a", "b", "c"] {
            assert!(limit.attempt(name, "10.0.0.9").is_ok());
        }
        let refusal = limit.attempt("d", "10.0.0.9").expect_err("refused");
        assert!(refusal
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("from this address")));
        assert!(limit.attempt("d", "10.0.0.10").is_ok());
    }

    #[test]
    fn names_are_counted_as_sign_in_matches_them_and_bounded() {
        assert_eq!(user_key("  Ann "), "ann");
        assert_eq!(user_key(&"x".repeat(1000)).len(), MAX_KEY_CHARS);
        let limit = limit(1, 100);
        assert!(limit.attempt(&user_key("ANN"), "10.0.0.1").is_ok());
        assert!(limit.attempt(&user_key("ann"), "10.0.0.2").is_err());
    }
}
