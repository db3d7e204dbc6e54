//! A limit on how often one source address (or another key: a user name) may do something (make
//! an anonymous user, fail to sign in): at most
//! `count` times in any `per`, a sliding window; and, optionally, on how often everyone together
//! may ([`RateLimit::with_total`]: at most `total` times in any `total_per`, whatever the
//! addresses). Counted in this process's memory only: each node counts on its own (N nodes let
//! an address through up to N × `count` times) and a restart forgets. That slows a script down,
//! which is what it is for; it is no accounting.
//!
//! The memory is bounded: at most [`MAX_ADDRESSES`] addresses are tracked at once (each with at
//! most `count` times), and the total at most `total` times. When that many addresses are
//! tracked, a new address is refused (429, as if limited) until one of them has no time left in
//! its window and is forgotten: so many addresses at once is an attack, and the addresses seen
//! already keep their counts rather than being forgotten early for it.
//!
//! An IPv6 address is counted by its /64, which one host usually holds whole.
//! Does not own: where the address comes from (`auth::RequestOrigin`, the peer's address).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most addresses tracked at once (see the [module](self)).
pub const MAX_ADDRESSES: usize = 100_000;

pub struct RateLimit {
    count: u32,
    per: Duration,
    /// Everyone's together: at most this many in any this long.
    total: Option<(u32, Duration)>,
    max_keys: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each key's times within the window, oldest first: at most `count` of them, and at most
    /// `max_keys` keys.
    hits: HashMap<String, VecDeque<Instant>>,
    /// Every time counted within the total's window, oldest first: at most its count.
    all: VecDeque<Instant>,
    /// When keys with no time left in the window were last forgotten.
    swept: Option<Instant>,
    /// While the keys are at the most: no new key before this (when the first tracked one may
    /// be forgotten), so a full table is swept once per key it could free, not per request.
    full_until: Option<Instant>,
}

/// Whether one more may go through now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Not before `retry_after` from now, because of `by`.
    Limited {
        retry_after: Duration,
        by: Limiter,
    },
}

/// What refused one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limiter {
    /// Its address made `count` in the window.
    Address,
    /// [`MAX_ADDRESSES`] other addresses are tracked.
    Addresses,
    /// Everyone together made `total` in its window.
    Total,
}

impl RateLimit {
    pub fn new(count: u32, per: Duration) -> Self {
        RateLimit {
            count,
            per,
            total: None,
            max_keys: MAX_ADDRESSES,
            state: Mutex::default(),
        }
    }

    /// Also at most `count` times in any `per` from all addresses together.
    pub fn with_total(mut self, count: u32, per: Duration) -> Self {
        self.total = Some((count, per));
        self
    }

    /// How many times an address may go through in the window (0: never).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Counts one for `key` if it may go through now.
    pub fn check(&self, key: &str) -> Verdict {
        self.check_at(key, Instant::now())
    }

    /// Takes back the newest time counted for `key` (one that turned out not to count: a
    /// sign-in counted before its password was checked, which was right).
    pub fn forgive(&self, key: &str) {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(times) = guard.hits.get_mut(key) {
            times.pop_back();
            if times.is_empty() {
                guard.hits.remove(key);
            }
        }
    }

    /// How long until `key` may go through again if it has made `count` in the window (by its
    /// own times: neither the total nor the table's size is looked at); counts nothing.
    pub fn wait(&self, key: &str) -> Option<Duration> {
        self.wait_at(key, Instant::now())
    }

    fn wait_at(&self, key: &str, now: Instant) -> Option<Duration> {
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let times = guard.hits.get(key)?;
        let in_window = times
            .iter()
            .filter(|at| now.saturating_duration_since(**at) < self.per);
        let oldest = in_window.clone().next()?;
        (in_window.count() >= self.count as usize).then(|| {
            self.per
                .saturating_sub(now.saturating_duration_since(*oldest))
        })
    }

    fn check_at(&self, key: &str, now: Instant) -> Verdict {
        let per = self.per;
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        let in_window = |at: &Instant| now.saturating_duration_since(*at) < per;
        // Forget, once a window, the keys whose times are all past it.
        if state.swept.is_none_or(|swept| !in_window(&swept)) {
            state.sweep(now, per);
        }
        if !state.hits.contains_key(key) && state.hits.len() >= self.max_keys {
            if let Some(retry_after) = state.room_for_a_key(now, per, self.max_keys) {
                return Verdict::Limited {
                    retry_after,
                    by: Limiter::Addresses,
                };
            }
        }
        let times = state.hits.entry(key.to_string()).or_default();
        while times.front().is_some_and(|at| !in_window(at)) {
            times.pop_front();
        }
        if times.len() >= self.count as usize {
            let retry_after = match times.front() {
                Some(oldest) => per.saturating_sub(now.saturating_duration_since(*oldest)),
                None => per,
            };
            if times.is_empty() {
                // Tracked for nothing (a count of 0).
                state.hits.remove(key);
            }
            return Verdict::Limited {
                retry_after,
                by: Limiter::Address,
            };
        }
        if let Some((total, total_per)) = self.total {
            let all = &mut state.all;
            while all
                .front()
                .is_some_and(|at| now.saturating_duration_since(*at) >= total_per)
            {
                all.pop_front();
            }
            if all.len() >= total as usize {
                let retry_after = match all.front() {
                    Some(oldest) => {
                        total_per.saturating_sub(now.saturating_duration_since(*oldest))
                    }
                    None => total_per,
                };
                if state.hits.get(key).is_some_and(VecDeque::is_empty) {
                    state.hits.remove(key);
                }
                return Verdict::Limited {
                    retry_after,
                    by: Limiter::Total,
                };
            }
            all.push_back(now);
        }
        if let Some(times) = state.hits.get_mut(key) {
            times.push_back(now);
        }
        Verdict::Allowed
    }
}

impl State {
    /// Forgets the keys with no time left in the window.
    fn sweep(&mut self, now: Instant, per: Duration) {
        self.hits.retain(|_, times| {
            times
                .back()
                .is_some_and(|at| now.saturating_duration_since(*at) < per)
        });
        self.swept = Some(now);
        self.full_until = None;
    }

    /// With the keys at the most: `None` if sweeping made room for one more, else how long
    /// until the first tracked key may be forgotten.
    fn room_for_a_key(&mut self, now: Instant, per: Duration, max_keys: usize) -> Option<Duration> {
        if let Some(until) = self.full_until.filter(|until| now < *until) {
            return Some(until - now);
        }
        self.sweep(now, per);
        if self.hits.len() < max_keys {
            return None;
        }
        // Every key has a time in the window: the first to leave it frees its key. A window
        // too long for an `Instant` ends in the far future: wait a whole window, and look again
        // each time rather than remember a time that cannot be written down.
        let first_free = self
            .hits
            .values()
            .filter_map(|times| times.back())
            .min()
            .map_or(now.checked_add(per), |latest| latest.checked_add(per));
        self.full_until = first_free;
        Some(first_free.map_or(per, |at| at.saturating_duration_since(now)))
    }
}

/// The key an address is counted under: itself, or an IPv6 address's /64 (`2001:db8::/64`);
/// anything that is no address (none known) under one key of its own.
pub fn address_key(source: Option<&str>) -> String {
    match source.and_then(|s| s.parse::<IpAddr>().ok()) {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
        Some(IpAddr::V6(v6)) => v6.to_canonical().to_string(),
        Some(v4) => v4.to_string(),
        None => "unknown".into(),
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0)))
    .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn limited(seconds: u64, by: Limiter) -> Verdict {
        Verdict::Limited {
            retry_after: Duration::from_secs(seconds),
            by,
        }
    }

    #[test]
    fn wait_says_when_a_full_key_is_free_and_counts_nothing() {
        let limit = RateLimit::new(2, HOUR);
        let start = Instant::now();
        assert_eq!(limit.wait_at("a", start), None);
        assert_eq!(limit.check_at("a", start), Verdict::Allowed);
        // Asking counts nothing: still one free.
        for _ in 0..5 {
            assert_eq!(limit.wait_at("a", start), None);
        }
        let later = start + Duration::from_secs(600);
        assert_eq!(limit.check_at("a", later), Verdict::Allowed);
        assert_eq!(
            limit.wait_at("a", later + Duration::from_secs(60)),
            Some(Duration::from_secs(3600 - 660))
        );
        assert_eq!(limit.wait_at("b", later), None);
        // The first time left the window: one free again.
        assert_eq!(limit.wait_at("a", start + HOUR), None);
    }

    #[test]
    fn lets_count_through_in_a_window_then_says_when_the_oldest_leaves_it() {
        let limit = RateLimit::new(2, HOUR);
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        assert_eq!(limit.check_at("a", at(0)), Verdict::Allowed);
        assert_eq!(limit.check_at("a", at(600)), Verdict::Allowed);
        assert_eq!(
            limit.check_at("a", at(1200)),
            limited(2400, Limiter::Address)
        );
        // A refusal counts nothing: the first leaves the window at 3600, the second at 4200.
        assert_eq!(limit.check_at("a", at(3600)), Verdict::Allowed);
        assert_eq!(
            limit.check_at("a", at(3601)),
            limited(599, Limiter::Address)
        );
        assert_eq!(limit.check_at("a", at(4200)), Verdict::Allowed);
    }

    #[test]
    fn each_key_counts_on_its_own() {
        let limit = RateLimit::new(1, HOUR);
        let now = Instant::now();
        assert_eq!(limit.check_at("a", now), Verdict::Allowed);
        assert!(matches!(limit.check_at("a", now), Verdict::Limited { .. }));
        assert_eq!(limit.check_at("b", now), Verdict::Allowed);
    }

    #[test]
    fn a_count_of_zero_lets_nothing_through_and_tracks_nothing() {
        let limit = RateLimit::new(0, HOUR);
        assert_eq!(
            limit.check_at("a", Instant::now()),
            limited(3600, Limiter::Address)
        );
        assert!(limit.state.lock().unwrap().hits.is_empty());
    }

    #[test]
    fn keys_past_the_window_are_forgotten() {
        let limit = RateLimit::new(1, HOUR);
        let start = Instant::now();
        for key in ["a", "b", "c"] {
            limit.check_at(key, start);
        }
        limit.check_at("d", start + HOUR);
        let state = limit.state.lock().unwrap();
        assert_eq!(state.hits.keys().collect::<Vec<_>>(), vec!["d"]);
    }

    #[test]
    fn at_the_most_addresses_a_new_one_waits_until_a_tracked_one_is_forgotten() {
        let mut limit = RateLimit::new(5, HOUR);
        limit.max_keys = 2;
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        assert_eq!(limit.check_at("a", at(0)), Verdict::Allowed);
        assert_eq!(limit.check_at("b", at(600)), Verdict::Allowed);
        // Full: a new address waits for a's last time to leave the window (at 3600)...
        assert_eq!(
            limit.check_at("c", at(1200)),
            limited(2400, Limiter::Addresses)
        );
        assert_eq!(
            limit.check_at("d", at(1800)),
            limited(1800, Limiter::Addresses)
        );
        // ...while the addresses tracked go on counting.
        assert_eq!(limit.check_at("b", at(1800)), Verdict::Allowed);
        assert_eq!(limit.check_at("a", at(1800)), Verdict::Allowed);
        // Both counted again at 1800: the first key to be free is at 5400, not 3600.
        assert_eq!(
            limit.check_at("c", at(3600)),
            limited(1800, Limiter::Addresses)
        );
        assert_eq!(limit.check_at("c", at(5400)), Verdict::Allowed);
        assert!(limit.state.lock().unwrap().hits.len() <= 2);
    }

    #[test]
    fn a_window_too_long_for_an_instant_waits_a_whole_window_and_does_not_panic() {
        let mut limit = RateLimit::new(5, Duration::MAX);
        limit.max_keys = 1;
        let now = Instant::now();
        assert_eq!(limit.check_at("a", now), Verdict::Allowed);
        let full = Verdict::Limited {
            retry_after: Duration::MAX,
            by: Limiter::Addresses,
        };
        assert_eq!(limit.check_at("b", now), full);
        assert_eq!(limit.check_at("b", now + HOUR), full);
        assert_eq!(retry_after_seconds(Duration::MAX), u64::MAX);
    }

    #[test]
    fn all_addresses_together_are_held_to_the_total() {
        let limit = RateLimit::new(2, HOUR).with_total(3, Duration::from_secs(600));
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        assert_eq!(limit.check_at("a", at(0)), Verdict::Allowed);
        assert_eq!(limit.check_at("a", at(50)), Verdict::Allowed);
        assert_eq!(limit.check_at("b", at(100)), Verdict::Allowed);
        // Another address, under its own count, waits for the oldest to leave the total's
        // window; one at its own count hears of its own limit.
        assert_eq!(limit.check_at("d", at(300)), limited(300, Limiter::Total));
        assert_eq!(
            limit.check_at("a", at(300)),
            limited(3300, Limiter::Address)
        );
        // The refusal counted nowhere: d goes through at 600, and once more later.
        assert_eq!(limit.check_at("d", at(600)), Verdict::Allowed);
        assert_eq!(limit.check_at("d", at(1400)), Verdict::Allowed);
        assert_eq!(
            limit.check_at("d", at(1400)),
            limited(2800, Limiter::Address)
        );
        assert!(limit.state.lock().unwrap().all.len() <= 3);
    }

    #[test]
    fn an_ipv6_address_counts_by_its_64_and_others_as_they_are() {
        assert_eq!(
            address_key(Some("2001:db8:1:2:aaaa::1")),
            address_key(Some("2001:db8:1:2:bbbb::2"))
        );
        assert_eq!(address_key(Some("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_ne!(
            address_key(Some("2001:db8:1:2::1")),
            address_key(Some("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(Some("10.0.0.1")), "10.0.0.1");
        assert_eq!(address_key(Some("::ffff:10.0.0.1")), "10.0.0.1");
        assert_eq!(address_key(None), "unknown");
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_seconds(Duration::from_secs(5)), 5);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}
