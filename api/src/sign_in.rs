//! Signing in with a password, limited: every way in that takes a user name and a password
//! (`POST /v1/auth/tokens`, the console's `POST /console/session`, OpenPAI's, tsuru's and
//! Runnable's logins) goes through [`login`], so one limit holds for all of them.
//!
//! A failed sign-in (a wrong password, an unknown name) counts against its user name, from
//! wherever it came, and against its source address, whatever name it tried
//! (`auth.sign_in_limit`: 10 and 100 in any 5 minutes by default). Once either has made its count
//! in the window, sign-in is refused (429 `rate_limited` with `Retry-After`) before the password
//! is looked at, until the oldest failure leaves the window: the right password too, or a
//! guesser would learn from a 401 turning into a 201. A success counts nothing. The name is
//! counted whether or not such a user exists, so the 429 says nothing about who exists. Counted
//! by each node in its memory ([`crate::rate_limit`]): it slows guessing down, it is no
//! accounting; a limited user name can still use their tokens, and an admin may set a new
//! password.
//!
//! Does not own: the password check itself ([`bosun_commands::Commands::login`]).

use crate::config::SignInLimitSettings;
use crate::problem::Problem;
use crate::rate_limit::{address_key, retry_after_seconds, RateLimit};
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

    /// The refusal of a sign-in of `user` from `address` now, if either has failed its count
    /// in the window.
    fn refusal(&self, user: &str, address: &str) -> Option<Problem> {
        let (wait, why) = match (self.by_user.wait(user), self.by_address.wait(address)) {
            (None, None) => return None,
            (Some(user), Some(address)) => (
                user.max(address),
                "too many failed sign-ins of this user and from this address",
            ),
            (Some(wait), None) => (wait, "too many failed sign-ins of this user"),
            (None, Some(wait)) => (wait, "too many failed sign-ins from this address"),
        };
        let seconds = retry_after_seconds(wait);
        Some(
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("{why}; retry in {seconds} s"),
            )
            .with_retry_after(seconds),
        )
    }

    fn failed(&self, user: &str, address: &str) {
        // Counted if there is room; past the count the next attempt is refused anyway.
        self.by_user.check(user);
        self.by_address.check(address);
    }
}

/// The key a user name is counted under: as sign-in matches it, trimmed and lowercased, and
/// at most [`MAX_KEY_CHARS`] long.
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
    if let Some(refusal) = state.sign_in_limit.refusal(&user, &address) {
        tracing::info!(%address, "sign-in refused: too many failures lately");
        return Err(SignInError::Limited(refusal));
    }
    let result = state
        .commands
        .login(origin, username, password, expires_in)
        .await;
    if matches!(result, Err(CommandError::Unauthenticated)) {
        state.sign_in_limit.failed(&user, &address);
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
        limit.failed("ann", "10.0.0.1");
        assert!(limit.refusal("ann", "10.0.0.2").is_none());
        limit.failed("ann", "10.0.0.2");
        let refusal = limit.refusal("ann", "10.0.0.3").expect("refused");
        assert_eq!((refusal.status, refusal.code), (429, "rate_limited"));
        assert!(refusal
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("of this user")));
        let seconds = refusal.retry_after.expect("a Retry-After").get();
        assert!((299..=300).contains(&seconds), "{seconds}");
        // Another name from the same addresses is not.
        assert!(limit.refusal("bob", "10.0.0.1").is_none());
    }

    #[test]
    fn an_address_is_refused_once_it_failed_its_count_whatever_the_names() {
        let limit = limit(100, 3);
        for name in ["a", "b", "c"] {
            assert!(limit.refusal(name, "10.0.0.9").is_none());
            limit.failed(name, "10.0.0.9");
        }
        let refusal = limit.refusal("d", "10.0.0.9").expect("refused");
        assert!(refusal
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("from this address")));
        assert!(limit.refusal("d", "10.0.0.10").is_none());
    }

    #[test]
    fn names_are_counted_as_sign_in_matches_them_and_bounded() {
        assert_eq!(user_key("  Ann "), "ann");
        assert_eq!(user_key(&"x".repeat(1000)).len(), MAX_KEY_CHARS);
        let limit = limit(1, 100);
        limit.failed(&user_key("ANN"), "10.0.0.1");
        assert!(limit.refusal(&user_key("ann"), "10.0.0.2").is_some());
    }
}
