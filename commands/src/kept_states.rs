//! Aggregates' states as of a version, kept between loads: a load applies only the events after
//! the kept version, so what it costs does not grow with its stream (a year of a `* * * * *`
//! orchestration is 525,000 events that every claim would otherwise read and apply).
//!
//! A kept state is only behind, never ahead: the log is append-only (its table refuses updates
//! and deletes), and every load reads the stream's tail, so a writer on another node is seen.
//! Appends keep their exact expected versions; the cache decides nothing. A log that lost its
//! tail under a running process (a restore, a failover to a replica that lagged) is caught too:
//! the tail is read from the kept version itself, and a stream whose event there is not the one
//! the state applied is loaded again from its start.
//!
//! Bounded: past [`CAPACITY`] streams, the least recently used eighth is dropped. Lost on
//! restart: a process's first load of a stream reads all of it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// Streams kept at most.
pub(crate) const CAPACITY: usize = 4096;

struct Kept {
    state: Box<dyn Any + Send + Sync>,
    version: u64,
    /// The id of the event at `version`, the last the state applied.
    last_event: Uuid,
    used: u64,
}

/// A kept state, with the version and the id of the last event it applied.
pub(crate) struct KeptState<A> {
    pub state: A,
    pub version: u64,
    pub last_event: Uuid,
}

#[derive(Default)]
struct Inner {
    kept: HashMap<String, Kept>,
    clock: u64,
}

/// States by stream id, shared by the clones of one [`Commands`](crate::Commands).
#[derive(Default)]
pub(crate) struct KeptStates {
    inner: Mutex<Inner>,
}

impl KeptStates {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under the lock can leave the map half-changed: a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the state kept for `stream`.
    pub(crate) fn get<A: Clone + 'static>(&self, stream: &str) -> Option<KeptState<A>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let kept = inner.kept.get_mut(stream)?;
        kept.used = clock;
        let state = kept.state.downcast_ref::<A>()?;
        Some(KeptState {
            state: state.clone(),
            version: kept.version,
            last_event: kept.last_event,
        })
    }

    /// Keeps `state`, which has applied `stream`'s events up to `version`, the last being
    /// `last_event`, in place of what was kept for the stream.
    pub(crate) fn put<A: Clone + Send + Sync + 'static>(
        &self,
        stream: &str,
        state: &A,
        version: u64,
        last_event: Uuid,
    ) {
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        inner.kept.insert(
            stream.to_string(),
            Kept {
                state: Box::new(state.clone()),
                version,
                last_event,
                used,
            },
        );
        if inner.kept.len() > CAPACITY {
            let mut uses: Vec<u64> = inner.kept.values().map(|k| k.used).collect();
            let cut = uses.len() / 8;
            let (_, &mut oldest_kept, _) = uses.select_nth_unstable(cut);
            inner.kept.retain(|_, k| k.used >= oldest_kept);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn got(kept: &KeptStates, stream: &str) -> Option<(Vec<u8>, u64, Uuid)> {
        kept.get::<Vec<u8>>(stream)
            .map(|k| (k.state, k.version, k.last_event))
    }

    #[test]
    fn keeps_the_last_put_and_hands_out_copies() {
        let kept = KeptStates::default();
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        kept.put("team-a", &vec![1u8], 3, first);
        assert_eq!(got(&kept, "team-a"), Some((vec![1], 3, first)));
        kept.put("team-a", &vec![1u8, 2], 4, second);
        assert_eq!(got(&kept, "team-a"), Some((vec![1, 2], 4, second)));
        assert!(
            kept.get::<String>("team-a").is_none(),
            "another type is not this state"
        );
        assert_eq!(got(&kept, "team-b"), None);
    }

    #[test]
    fn past_capacity_the_least_recently_used_go() {
        let kept = KeptStates::default();
        for i in 0..CAPACITY {
            kept.put(&format!("s-{i}"), &i, 0, Uuid::nil());
        }
        // s-0 used again: the next eviction spares it.
        assert!(kept.get::<usize>("s-0").is_some());
        kept.put("s-new", &0usize, 0, Uuid::nil());
        assert!(kept.len() <= CAPACITY, "{} kept", kept.len());
        assert!(kept.len() >= CAPACITY - CAPACITY / 8, "{} kept", kept.len());
        assert!(kept.get::<usize>("s-0").is_some(), "used recently, kept");
        assert!(kept.get::<usize>("s-new").is_some(), "just put, kept");
        assert!(
            kept.get::<usize>("s-1").is_none(),
            "the least recently used went"
        );
    }
}
