//! A bounded cache of checks, by key (the SHA-256 of a GitHub token). Each entry holds its
//! last value until a deadline the check chose. One check of a key runs at a time: requests
//! arriving while it runs wait for it and share its outcome, its failure included (so a GitHub
//! that does not answer is asked once for them all, not once each in turn). Past its deadline
//! an entry is checked again, the check seeing the accepted value it had (to reuse what still
//! fits). A check that fails leaves nothing held: the next request, once the waiting ones have
//! their answer, checks again. A check whose caller goes away (a request dropped) hands the
//! check to one of those waiting.
//!
//! What a check accepted and what it refused are held apart, each bounded, the least recently
//! used pushed out past its capacity: refusals (which anyone can make with made-up tokens)
//! never push out an accepted entry. A key whose check is running is held outside both, so it
//! is never pushed out into a second check.
//!
//! Time is given by the caller (`now`), so a test moves it as it likes.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Which side of the cache a check's value is held on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    Accepted,
    Refused,
}

struct Held<V> {
    value: V,
    until: Instant,
}

/// At most `capacity` values by key, the least recently used pushed out first.
struct Lru<V> {
    capacity: usize,
    /// Each key's last use (a counter) and value.
    entries: HashMap<String, (u64, Held<V>)>,
    /// The keys by last use, oldest first.
    order: BTreeMap<u64, String>,
    clock: u64,
}

impl<V> Lru<V> {
    fn new(capacity: usize) -> Self {
        Lru {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// `key`'s value, marked used now.
    fn get(&mut self, key: &str) -> Option<&Held<V>> {
        let tick = self.tick();
        let (used, _) = self.entries.get_mut(key)?;
        let before = std::mem::replace(used, tick);
        self.order.remove(&before);
        self.order.insert(tick, key.to_string());
        self.entries.get(key).map(|(_, held)| held)
    }

    fn peek(&self, key: &str) -> Option<&Held<V>> {
        self.entries.get(key).map(|(_, held)| held)
    }

    fn insert(&mut self, key: &str, held: Held<V>) {
        self.remove(key);
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let tick = self.tick();
        self.order.insert(tick, key.to_string());
        self.entries.insert(key.to_string(), (tick, held));
    }

    fn remove(&mut self, key: &str) -> Option<Held<V>> {
        let (used, held) = self.entries.remove(key)?;
        self.order.remove(&used);
        Some(held)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A running check's outcome, once it has one, for those waiting on it.
type Outcome<V, E> = Option<Result<V, E>>;

struct Entries<V, E> {
    accepted: Lru<V>,
    refused: Lru<V>,
    /// The keys whose check is running: which check (its number) and its outcome to come.
    running: HashMap<String, (u64, watch::Receiver<Outcome<V, E>>)>,
    checks: u64,
}

pub struct Cache<V, E> {
    entries: Mutex<Entries<V, E>>,
}

/// What a caller of [`Cache::get_or_check`] does: answer, wait on a running check, or run it.
enum Turn<V, E> {
    Answer(V),
    Wait(watch::Receiver<Outcome<V, E>>),
    Check {
        id: u64,
        previous: Option<V>,
        outcome: watch::Sender<Outcome<V, E>>,
    },
}

/// Takes a key out of the running ones when its check ends, or is dropped midway.
struct Running<'a, V, E> {
    cache: &'a Cache<V, E>,
    key: &'a str,
    id: u64,
}

impl<V, E> Drop for Running<'_, V, E> {
    fn drop(&mut self) {
        let mut entries = self.cache.lock();
        if entries
            .running
            .get(self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            entries.running.remove(self.key);
        }
    }
}

impl<V: Clone, E: Clone> Cache<V, E> {
    /// At most `accepted` accepted values and `refused` refusals.
    pub fn new(accepted: usize, refused: usize) -> Self {
        Cache {
            entries: Mutex::new(Entries {
                accepted: Lru::new(accepted),
                refused: Lru::new(refused),
                running: HashMap::new(),
                checks: 0,
            }),
        }
    }

    /// The value of `key`: the one held if its deadline is not past at `now()`, else what
    /// `check` (given the accepted value held, if any) gives, held on the side and for the
    /// duration it gives with it. Concurrent calls for one key run one check and share its
    /// outcome, a failure too.
    pub async fn get_or_check<F, Fut>(
        &self,
        key: &str,
        now: impl Fn() -> Instant,
        check: F,
    ) -> Result<V, E>
    where
        F: FnOnce(Option<V>) -> Fut,
        Fut: Future<Output = Result<(V, Duration, Kept), E>>,
    {
        let (id, previous, outcome) = loop {
            match self.turn(key, now()) {
                Turn::Answer(value) => return Ok(value),
                Turn::Wait(mut waiting) => {
                    let shared = match waiting.wait_for(Option::is_some).await {
                        Ok(outcome) => outcome.clone(),
                        // Its caller went away midway: the next turn checks (or waits on
                        // whoever checks first).
                        Err(_) => None,
                    };
                    if let Some(shared) = shared {
                        return shared;
                    }
                }
                Turn::Check {
                    id,
                    previous,
                    outcome,
                } => break (id, previous, outcome),
            }
        };
        let running = Running {
            cache: self,
            key,
            id,
        };
        let result = check(previous).await;
        if let Ok((value, lasts, kept)) = &result {
            let held = Held {
                value: value.clone(),
                until: now() + *lasts,
            };
            let mut guard = self.lock();
            let entries = &mut *guard;
            let (to, other) = match kept {
                Kept::Accepted => (&mut entries.accepted, &mut entries.refused),
                Kept::Refused => (&mut entries.refused, &mut entries.accepted),
            };
            to.insert(key, held);
            other.remove(key);
        }
        drop(running);
        let result = result.map(|(value, _, _)| value);
        outcome.send_replace(Some(result.clone()));
        result
    }

    /// What a caller of `key` does at `now`.
    fn turn(&self, key: &str, now: Instant) -> Turn<V, E> {
        let mut guard = self.lock();
        let entries = &mut *guard;
        for side in [&mut entries.accepted, &mut entries.refused] {
            if let Some(held) = side.get(key).filter(|h| h.until > now) {
                return Turn::Answer(held.value.clone());
            }
        }
        if let Some((_, waiting)) = entries.running.get(key) {
            return Turn::Wait(waiting.clone());
        }
        entries.checks += 1;
        let id = entries.checks;
        let (outcome, waiting) = watch::channel(None);
        entries.running.insert(key.to_string(), (id, waiting));
        let previous = entries.accepted.peek(key).map(|h| h.value.clone());
        Turn::Check {
            id,
            previous,
            outcome,
        }
    }

    /// Drops the accepted value held for `key` if `stale` says it is (the next call checks
    /// again, with no value to reuse).
    pub fn forget_if(&self, key: &str, stale: impl Fn(&V) -> bool) {
        let mut entries = self.lock();
        if entries.accepted.peek(key).is_some_and(|h| stale(&h.value)) {
            entries.accepted.remove(key);
        }
    }

    /// How many accepted values and refusals are held.
    pub fn len(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.accepted.len(), entries.refused.len())
    }
}

impl<V, E> Cache<V, E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<V, E>> {
        // A panic while holding it leaves the maps whole enough: at worst a key's use order.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A clock the test moves.
    struct Clock {
        start: Instant,
        offset: Mutex<Duration>,
    }

    impl Clock {
        fn new() -> Self {
            Clock {
                start: Instant::now(),
                offset: Mutex::new(Duration::ZERO),
            }
        }
        fn now(&self) -> Instant {
            self.start + *self.offset.lock().unwrap()
        }
        fn advance(&self, by: Duration) {
            *self.offset.lock().unwrap() += by;
        }
    }

    type TestCache = Cache<u32, &'static str>;

    async fn get(
        cache: &TestCache,
        clock: &Clock,
        key: &str,
        checks: &AtomicUsize,
        answer: Result<u32, &'static str>,
        lasts: Duration,
    ) -> Result<u32, &'static str> {
        get_kept(cache, clock, key, checks, answer, lasts, Kept::Accepted).await
    }

    async fn get_kept(
        cache: &TestCache,
        clock: &Clock,
        key: &str,
        checks: &AtomicUsize,
        answer: Result<u32, &'static str>,
        lasts: Duration,
        kept: Kept,
    ) -> Result<u32, &'static str> {
        cache
            .get_or_check(
                key,
                || clock.now(),
                |_| async move {
                    checks.fetch_add(1, Ordering::SeqCst);
                    answer.map(|value| (value, lasts, kept))
                },
            )
            .await
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn a_value_holds_until_its_deadline_then_is_checked_again() {
        let (cache, clock, checks) = (Cache::new(10, 10), Clock::new(), AtomicUsize::new(0));
        let minute = Duration::from_secs(60);
        assert_eq!(
            get(&cache, &clock, "a", &checks, Ok(1), minute).await,
            Ok(1)
        );
        clock.advance(Duration::from_secs(59));
        assert_eq!(
            get(&cache, &clock, "a", &checks, Ok(2), minute).await,
            Ok(1)
        );
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            get(&cache, &clock, "a", &checks, Ok(2), minute).await,
            Ok(2)
        );
        assert_eq!(checks.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_check_holds_nothing_and_the_check_sees_the_value_it_had() {
        let (cache, clock) = (TestCache::new(10, 10), Clock::new());
        let checks = AtomicUsize::new(0);
        let second = Duration::from_secs(1);
        get(&cache, &clock, "a", &checks, Ok(7), second)
            .await
            .unwrap();
        clock.advance(second);
        assert_eq!(
            get(&cache, &clock, "a", &checks, Err("down"), second).await,
            Err("down")
        );
        assert_eq!(
            get(&cache, &clock, "a", &checks, Err("down"), second).await,
            Err("down")
        );
        assert_eq!(checks.load(Ordering::SeqCst), 3, "a failure is not held");
        let seen = cache
            .get_or_check(
                "a",
                || clock.now(),
                |previous| async move {
                    Ok::<_, &str>((previous.unwrap_or(0) + 1, second, Kept::Accepted))
                },
            )
            .await;
        assert_eq!(seen, Ok(8), "the check is given the value it had");
        cache.forget_if("a", |value| *value == 8);
        let seen = cache
            .get_or_check(
                "a",
                || clock.now(),
                |previous| async move {
                    Ok::<_, &str>((previous.unwrap_or(100), second, Kept::Accepted))
                },
            )
            .await;
        assert_eq!(
            seen,
            Ok(100),
            "forgotten: checked again with nothing to reuse"
        );
    }

    #[tokio::test]
    async fn at_most_capacity_keys_are_held_the_least_recently_used_pushed_out() {
        let (cache, clock, checks) = (TestCache::new(3, 3), Clock::new(), AtomicUsize::new(0));
        for key in ["a", "b", "c"] {
            get(&cache, &clock, key, &checks, Ok(1), HOUR)
                .await
                .unwrap();
        }
        // `a` is used again, so `b` is the least recently used when `d` comes.
        get(&cache, &clock, "a", &checks, Ok(1), HOUR)
            .await
            .unwrap();
        get(&cache, &clock, "d", &checks, Ok(1), HOUR)
            .await
            .unwrap();
        assert_eq!(cache.len(), (3, 0));
        assert_eq!(checks.load(Ordering::SeqCst), 4);
        for held in ["a", "c", "d"] {
            get(&cache, &clock, held, &checks, Ok(1), HOUR)
                .await
                .unwrap();
        }
        assert_eq!(checks.load(Ordering::SeqCst), 4, "a, c and d are held");
        get(&cache, &clock, "b", &checks, Ok(1), HOUR)
            .await
            .unwrap();
        assert_eq!(checks.load(Ordering::SeqCst), 5, "b was pushed out");
    }

    #[tokio::test]
    async fn refusals_never_push_out_what_was_accepted() {
        let (cache, clock, checks) = (TestCache::new(3, 2), Clock::new(), AtomicUsize::new(0));
        for key in ["a", "b", "c"] {
            get(&cache, &clock, key, &checks, Ok(1), HOUR)
                .await
                .unwrap();
        }
        for n in 0..20 {
            let key = format!("junk-{n}");
            get_kept(&cache, &clock, &key, &checks, Ok(0), HOUR, Kept::Refused)
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), (3, 2));
        let before = checks.load(Ordering::SeqCst);
        for key in ["a", "b", "c"] {
            get(&cache, &clock, key, &checks, Ok(1), HOUR)
                .await
                .unwrap();
        }
        assert_eq!(checks.load(Ordering::SeqCst), before, "all still held");
        // Once it expires, a refusal replaces what was accepted for its key, and the other way
        // round.
        clock.advance(HOUR);
        get_kept(
            &cache,
            &clock,
            "a",
            &checks,
            Ok(0),
            Duration::ZERO,
            Kept::Refused,
        )
        .await
        .unwrap();
        assert_eq!(cache.len(), (2, 2));
        get(&cache, &clock, "a", &checks, Ok(1), HOUR)
            .await
            .unwrap();
        assert_eq!(cache.len(), (3, 1));
    }

    #[tokio::test]
    async fn requests_together_with_one_new_key_make_one_check() {
        let cache = Arc::new(Cache::new(10, 10));
        let checks = Arc::new(AtomicUsize::new(0));
        let mut waiting = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (cache, checks) = (cache.clone(), checks.clone());
            waiting.spawn(async move {
                cache
                    .get_or_check("a", Instant::now, |_| async move {
                        checks.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, ()>((5u32, Duration::from_secs(60), Kept::Accepted))
                    })
                    .await
            });
        }
        for value in waiting.join_all().await {
            assert_eq!(value, Ok(5));
        }
        assert_eq!(checks.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn requests_waiting_on_a_check_that_fails_share_its_failure() {
        let cache = Arc::new(Cache::<u32, String>::new(10, 10));
        let checks = Arc::new(AtomicUsize::new(0));
        let mut waiting = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (cache, checks) = (cache.clone(), checks.clone());
            waiting.spawn(async move {
                cache
                    .get_or_check("a", Instant::now, |_| async move {
                        checks.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err::<(u32, Duration, Kept), _>("GitHub is down".to_string())
                    })
                    .await
            });
        }
        for value in waiting.join_all().await {
            assert_eq!(value, Err("GitHub is down".to_string()));
        }
        assert_eq!(checks.load(Ordering::SeqCst), 1, "GitHub asked once");
        assert_eq!(cache.len(), (0, 0));
    }

    #[tokio::test]
    async fn a_key_being_checked_is_not_pushed_out_into_a_second_check() {
        let cache = Arc::new(Cache::<u32, ()>::new(1, 1));
        let checks = Arc::new(AtomicUsize::new(0));
        let slow = |cache: Arc<Cache<u32, ()>>, checks: Arc<AtomicUsize>| async move {
            cache
                .get_or_check("a", Instant::now, |_| async move {
                    checks.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok((1, HOUR, Kept::Accepted))
                })
                .await
        };
        let first = tokio::spawn(slow(cache.clone(), checks.clone()));
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Other keys fill the cache meanwhile, both sides.
        for (key, kept) in [
            ("b", Kept::Accepted),
            ("c", Kept::Refused),
            ("d", Kept::Accepted),
        ] {
            cache
                .get_or_check(key, Instant::now, |_| async move {
                    Ok::<_, ()>((2, HOUR, kept))
                })
                .await
                .unwrap();
        }
        let second = tokio::spawn(slow(cache.clone(), checks.clone()));
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(second.await.unwrap(), Ok(1));
        assert_eq!(checks.load(Ordering::SeqCst), 1, "one check of a");
    }

    #[tokio::test]
    async fn when_the_checking_caller_goes_away_one_waiting_checks() {
        let cache = Arc::new(Cache::<u32, ()>::new(10, 10));
        let checks = Arc::new(AtomicUsize::new(0));
        let call = |cache: Arc<Cache<u32, ()>>, checks: Arc<AtomicUsize>, value: u32| async move {
            cache
                .get_or_check("a", Instant::now, |_| async move {
                    checks.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok((value, HOUR, Kept::Accepted))
                })
                .await
        };
        let first = tokio::spawn(call(cache.clone(), checks.clone(), 1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = tokio::spawn(call(cache.clone(), checks.clone(), 2));
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        let answer = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the waiting caller is not stuck");
        assert_eq!(answer.unwrap(), Ok(2), "it ran the check itself");
        assert_eq!(checks.load(Ordering::SeqCst), 2);
    }
}
