//! Whether a live subscriber's token may still watch: checked when it connects, then again as
//! soon as an identity event about the token, its user or its teams has been applied (the hub
//! wakes the watcher), every [`RECHECK_EVERY`] (changes the hub cannot see as such) and just after
//! the token expires.
//!
//! The rule a token must keep meeting is the feed's: [`may_watch`] for `/v1/events/live`; another
//! feed of the hub (pulsar's) grants with its own [`Rule`].
//!
//! A grant also takes one of the token's sockets ([`SocketCounts`]): at most
//! `live.max_sockets_per_token` open at once on this node, on every feed together, so a flood
//! of connections with one token is refused ([`CLOSE_TOO_MANY`], or 429 before an upgrade)
//! instead of holding a task and its buffers each.

use super::{CLOSE_FORBIDDEN, CLOSE_INTERNAL, CLOSE_UNAUTHORIZED};
use crate::auth::{authenticate, Caller};
use crate::live::identity::Watch;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// The close code of a socket refused because its token holds as many open as it may.
pub const CLOSE_TOO_MANY: u16 = 4429;

/// How often a connected subscriber's token is checked again (and at its expiry).
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// What a token must be allowed to keep a feed open: the close code and reason if not.
pub type Rule = fn(&Caller) -> Result<(), (u16, String)>;

pub fn may_watch(caller: &Caller) -> Result<(), (u16, String)> {
    // As every read of the log: the read scope (what it shows is filtered to the streams the
    // caller may read). The reason kept short (a close frame's reason holds at most 123 bytes).
    caller.actor.require_reader().map_err(|_| {
        (
            CLOSE_FORBIDDEN,
            "the live feed needs a token with the read scope".into(),
        )
    })
}

/// A token that may watch, who it speaks for, and the watch on the streams that could change
/// that, registered as soon as the token was found good so that no change after it goes unseen.
pub struct Granted {
    token: String,
    caller: Caller,
    /// The log position the read models had reached before the token was checked: the check
    /// saw at least that much.
    checked_at: u64,
    watch: Watch,
    rule: Rule,
    /// Given back when the feed ends (the grant dropped).
    _socket: SocketSlot,
}

/// How many live sockets each token holds open on this node.
pub struct SocketCounts {
    max: u32,
    open: Mutex<HashMap<Uuid, u32>>,
}

/// One open socket of a token, counted until dropped.
pub struct SocketSlot {
    counts: Arc<SocketCounts>,
    token_id: Uuid,
}

impl SocketCounts {
    /// At most `max` sockets per token.
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(SocketCounts {
            max,
            open: Mutex::default(),
        })
    }

    /// One more socket for `token_id`, if it holds fewer than the most.
    pub fn take(self: &Arc<Self>, token_id: Uuid) -> Option<SocketSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(token_id).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            counts: Arc::clone(self),
            token_id,
        })
    }

    /// How many sockets `token_id` holds open.
    pub fn open(&self, token_id: Uuid) -> u32 {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&token_id).copied().unwrap_or(0)
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.token_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.token_id);
            }
        }
    }
}

/// The refusal of one socket too many: its close code and reason.
fn too_many(max: u32) -> (u16, String) {
    (
        CLOSE_TOO_MANY,
        format!("this token holds {max} live sockets already (live.max_sockets_per_token)"),
    )
}

/// [`too_many`] as the answer to an upgrade not made: 429 `too_many_sockets`.
pub fn too_many_problem(state: &AppState) -> Problem {
    let (_, reason) = too_many(state.live_sockets.max);
    Problem::new(StatusCode::TOO_MANY_REQUESTS, "too_many_sockets", reason).with_retry_after(5)
}

impl Granted {
    /// Who the token spoke for when it was granted.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The position the read models had reached before the token was checked.
    pub fn checked_at(&self) -> u64 {
        self.checked_at
    }
}

/// Starts watching the token `caller` was found to hold (and to be allowed to watch with), in
/// one of its sockets; [`CLOSE_TOO_MANY`] if it holds as many as it may.
/// `checked_at`: the read models' position read before `caller` was authenticated.
pub fn grant(
    state: &AppState,
    token: String,
    caller: Caller,
    checked_at: u64,
) -> Result<Granted, (u16, String)> {
    grant_by(state, token, caller, may_watch, checked_at)
}

/// [`grant`], for a feed whose tokens must meet `rule`.
pub fn grant_by(
    state: &AppState,
    token: String,
    caller: Caller,
    rule: Rule,
    checked_at: u64,
) -> Result<Granted, (u16, String)> {
    let socket = state
        .live_sockets
        .take(caller.holder.token_id)
        .ok_or_else(|| too_many(state.live_sockets.max))?;
    let watch = state.live.watch_identity(watched_streams(&caller));
    Ok(Granted {
        token,
        caller,
        checked_at,
        watch,
        rule,
        _socket: socket,
    })
}

/// `token` granted if it may watch; else the close code and reason.
pub async fn check(state: &AppState, token: String) -> Result<Granted, (u16, String)> {
    check_by(state, token, may_watch).await
}

/// [`check`], for a feed whose tokens must meet `rule`.
pub async fn check_by(
    state: &AppState,
    token: String,
    rule: Rule,
) -> Result<Granted, (u16, String)> {
    let checked_at = state.freshness.position();
    let caller = caller(state, &token, rule).await?;
    grant_by(state, token, caller, rule, checked_at)
}

/// The caller `token` speaks for if it meets `rule`; else the close code and reason.
async fn caller(state: &AppState, token: &str, rule: Rule) -> Result<Caller, (u16, String)> {
    let caller = authenticate(state, token).await.map_err(refusal)?;
    rule(&caller)?;
    Ok(caller)
}

/// A refused token is a 4401; a check that could not be made (no database connection) is not
/// the client's fault and says to reconnect.
fn refusal(problem: Problem) -> (u16, String) {
    if problem.status == StatusCode::UNAUTHORIZED.as_u16() {
        (
            CLOSE_UNAUTHORIZED,
            "the token is unknown, expired or revoked".into(),
        )
    } else {
        (
            CLOSE_INTERNAL,
            "the token cannot be checked now; reconnect".into(),
        )
    }
}

/// Watches a granted token; answers with the close code and reason once it no longer may watch
/// (expired, revoked, its user removed or without the read scope), telling `rechecked` who the token speaks for, and the log position its read models had reached, after each check that found it
/// still good (its user's teams or rights may have changed: a feed that filters by them follows).
pub async fn lose_access_telling(
    state: &AppState,
    granted: Granted,
    mut rechecked: impl FnMut(&Caller, u64),
) -> (u16, String) {
    let Granted {
        token,
        caller,
        checked_at: _,
        mut watch,
        rule,
        _socket,
    } = granted;
    let mut wait = next_check(&caller);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = watch.changed() => {}
        }
        // The read models had applied at least this much when the check read them.
        let at = state.freshness.position();
        match self::caller(state, &token, rule).await {
            Ok(caller) => {
                watch.set_streams(watched_streams(&caller));
                wait = next_check(&caller);
                rechecked(&caller, at);
            }
            Err((CLOSE_INTERNAL, _)) => {
                // Access is neither confirmed nor lost: try again at the next check rather than
                // closing every subscriber during a database hiccup.
                tracing::warn!("live subscriber: the token could not be checked; retrying");
                wait = RECHECK_EVERY;
            }
            Err(refused) => return refused,
        }
    }
}

/// The streams whose events can change what `caller`'s token may do.
fn watched_streams(caller: &Caller) -> Vec<String> {
    let holder = &caller.holder;
    let mut streams = vec![
        format!("token-{}", holder.token_id),
        format!("user-{}", holder.username),
    ];
    streams.extend(holder.teams.iter().map(|team| format!("team-{team}")));
    streams
}

/// The next periodic check: in about `RECHECK_EVERY`, or just after the token expires if that
/// is sooner.
fn next_check(caller: &Caller) -> Duration {
    let until_expiry = caller
        .holder
        .expires_at
        .map(|at| (at - chrono::Utc::now()).to_std().unwrap_or_default());
    let period = spread(RECHECK_EVERY);
    until_expiry.map_or(period, |d| d.min(period) + Duration::from_millis(5))
}

/// `period` give or take a tenth, at random: subscribers that connected together (hundreds, after
/// a restart) would otherwise all query the database at the same instant, every period.
fn spread(period: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // Each `RandomState` is keyed afresh: random enough here, without a crate for it.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = (random % 1024) as f64 / 1024.0;
    period.mul_f64(0.9 + 0.2 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_at_most_its_sockets_and_gets_each_back_when_it_closes() {
        let counts = SocketCounts::new(2);
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let first = counts.take(ann).expect("one");
        let second = counts.take(ann).expect("two");
        assert!(counts.take(ann).is_none(), "a third");
        // Another token's are its own.
        let bobs = counts.take(bob).expect("bob's");
        assert_eq!((counts.open(ann), counts.open(bob)), (2, 1));
        drop(first);
        assert_eq!(counts.open(ann), 1);
        let again = counts.take(ann).expect("one closed, one more");
        drop((second, again, bobs));
        assert_eq!((counts.open(ann), counts.open(bob)), (0, 0));
        assert!(counts.open.lock().unwrap().is_empty(), "nothing kept");
    }

    #[test]
    fn the_period_is_spread_within_a_tenth() {
        let periods: Vec<Duration> = (0..200).map(|_| spread(RECHECK_EVERY)).collect();
        let (low, high) = (RECHECK_EVERY.mul_f64(0.9), RECHECK_EVERY.mul_f64(1.1));
        assert!(periods.iter().all(|p| *p >= low && *p <= high));
        let distinct: std::collections::BTreeSet<_> = periods.iter().collect();
        assert!(distinct.len() > 50, "hardly spread: {distinct:?}");
    }
}
