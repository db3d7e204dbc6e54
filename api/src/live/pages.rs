//! The log as catching-up subscribers read it: fixed pages of already-serialized events, shared by
//! every subscriber of the process, so that hundreds of them opening the feed at once cost the
//! database about one read of the log, not one each.
//!
//! Page `k` holds positions `k·PAGE+1 ..= (k+1)·PAGE`. Positions are dense and gap-free, and
//! nothing can appear below a position once it has been seen, so a page read unfiltered that came
//! back with `PAGE` events is complete and never changes: it stays in a small least-recently-used
//! cache. The page holding the head comes back shorter; it is shared too, and read again (once,
//! for everyone waiting at that moment) when a subscriber has sent all of it.
//!
//! Concurrent requests for one page wait on a single read of it. Reads of the log on behalf of
//! subscribers are limited to [`READS_AT_ONCE`] at a time, well under the store's pool of 16: the
//! commands, projections and leaders sharing that pool always find a connection.
//!
//! Sending is bounded too: a subscriber sends a page only in its turn, and at most
//! [`TURNS_AT_ONCE`] subscribers have one at a time, handed out first come, first served. Catch-up
//! is bulk work; hundreds of subscribers doing it at once would keep as many tasks runnable and
//! every request of the API would queue behind them for the CPU. A subscriber whose client does
//! not take the page as fast as it is written gives its turn up while it waits, so slow clients
//! hold up nobody's catch-up but their own. Taking turns also keeps the subscribers close
//! together in the log, so the pages they need are the cached ones.
//!
//! Reads of the log happen in turns as well; [`READS_AT_ONCE`] still bounds them on its own, so
//! that the pool stays safe whatever the number of turns.

use super::event::LiveEvent;
use bosun_eventstore::{EventStore, Filter, PgEventStore, RecordedEvent, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

/// Positions per page.
pub const PAGE: u64 = 500;
/// Catch-up reads of the log in flight at once, over all subscribers.
pub const READS_AT_ONCE: usize = 4;
/// Subscribers sending a catch-up page at once. Measured with `bosun bench catchup` (500
/// subscribers, 100,000 events, 2 cores): with 4 or 8 the catch-up took about as long (40–46 s),
/// and 4 held the API writers' p99 at 1.6–2× its value without subscribers (8: 1.7–2.8×).
pub const TURNS_AT_ONCE: usize = 4;
/// Pages kept after their subscribers have moved on, for the ones behind them.
const CACHED_PAGES: usize = 32;
/// Pages kept stop at this many bytes of events (a log of large events holds fewer pages).
const CACHED_BYTES: usize = 32 << 20;
/// How many times a request re-reads the head's page that holds nothing new for it before it
/// takes what there is (see [`Pages::after`]).
const REREADS: usize = 3;

/// Catch-up reads of the log since the process started, over every hub: the figure that shows
/// the sharing (`bosun bench catchup` reports it).
static READS: AtomicU64 = AtomicU64::new(0);

pub fn reads_total() -> u64 {
    READS.load(Ordering::Relaxed)
}

/// A failed read, shared by everyone who waited for it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReadFailed(Arc<StoreError>);

/// The events of one page as far as one read of it got.
#[derive(Debug)]
pub struct Chunk {
    events: Vec<LiveEvent>,
    complete: bool,
    bytes: usize,
}

impl Chunk {
    fn new(first: u64, events: Vec<RecordedEvent>) -> Chunk {
        let events: Vec<LiveEvent> = events.into_iter().map(LiveEvent::new).collect();
        let last = first + PAGE - 1;
        let complete =
            events.len() as u64 == PAGE && events.last().map(|e| e.position) == Some(last);
        let bytes = events.iter().map(LiveEvent::size).sum();
        Chunk {
            events,
            complete,
            bytes,
        }
    }

    /// Its events after position `cursor`, in position order.
    pub fn after(&self, cursor: u64) -> &[LiveEvent] {
        let start = self.events.partition_point(|e| e.position <= cursor);
        &self.events[start..]
    }

    fn last(&self) -> u64 {
        self.events.last().map_or(0, |e| e.position)
    }
}

type Read = Result<Arc<Chunk>, ReadFailed>;

/// One page's read: done, or in flight with its readers waiting on it.
type Cell = Arc<OnceCell<Read>>;

struct Slot {
    cell: Cell,
    /// When it was last asked for, in ticks of [`Slots::tick`].
    used: u64,
}

#[derive(Default)]
struct Slots {
    pages: HashMap<u64, Slot>,
    tick: u64,
}

impl Slots {
    /// The cell of `page`, made if there is none, marked as just used.
    fn cell(&mut self, page: u64) -> Cell {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.pages.entry(page).or_insert_with(|| Slot {
            cell: Arc::default(),
            used: tick,
        });
        slot.used = tick;
        slot.cell.clone()
    }

    /// Drops the least recently used pages (never `keep`) until within both budgets. Readers
    /// holding a dropped page keep it until they have sent it.
    fn evict(&mut self, keep: u64) {
        while self.pages.len() > CACHED_PAGES || self.bytes() > CACHED_BYTES {
            let oldest = self
                .pages
                .iter()
                .filter(|(page, _)| **page != keep)
                .min_by_key(|(_, slot)| slot.used)
                .map(|(page, _)| *page);
            match oldest {
                Some(page) => self.pages.remove(&page),
                None => return,
            };
        }
    }

    fn bytes(&self) -> usize {
        self.pages
            .values()
            .filter_map(|slot| slot.cell.get())
            .filter_map(|read| read.as_ref().ok())
            .map(|chunk| chunk.bytes)
            .sum()
    }

    /// Forgets `cell` as the read of `page` (if it still is), so the next request reads again.
    fn retire(&mut self, page: u64, cell: &Cell) {
        if self
            .pages
            .get(&page)
            .is_some_and(|slot| Arc::ptr_eq(&slot.cell, cell))
        {
            self.pages.remove(&page);
        }
    }
}

pub struct Pages {
    store: PgEventStore,
    reads: Semaphore,
    turns: Semaphore,
    slots: Mutex<Slots>,
}

/// A subscriber's turn to send one page; the next one waiting gets it when dropped.
pub struct Turn<'a> {
    _permit: Option<SemaphorePermit<'a>>,
}

impl Pages {
    pub fn new(store: PgEventStore) -> Self {
        Pages {
            store,
            reads: Semaphore::new(READS_AT_ONCE),
            turns: Semaphore::new(TURNS_AT_ONCE),
            slots: Mutex::default(),
        }
    }

    /// Waits for a turn to send a page (see the module's documentation).
    pub async fn turn(&self) -> Turn<'_> {
        // Never closed: a permit always comes.
        Turn {
            _permit: self.turns.acquire().await.ok(),
        }
    }

    /// The page holding position `cursor + 1`, with at least that event if the log has it.
    ///
    /// A caller asks only for positions the read models have applied, hence committed: a read
    /// begun after it asked has them. A shared read begun earlier may not; the caller then reads
    /// the page again (still shared), at most [`REREADS`] times, and otherwise gets the page
    /// without it and stops there (its live feed fills the rest).
    pub async fn after(&self, cursor: u64) -> Result<Arc<Chunk>, ReadFailed> {
        let page = cursor / PAGE;
        let mut rereads = 0;
        loop {
            let cell = self.cell(page);
            match cell.get_or_init(|| self.read(page)).await.clone() {
                Ok(chunk) if chunk.complete || chunk.last() > cursor || rereads == REREADS => {
                    return Ok(chunk)
                }
                Ok(_) => rereads += 1,
                Err(e) => {
                    // The next request tries again rather than getting this failure.
                    self.slots().retire(page, &cell);
                    return Err(e);
                }
            }
            self.slots().retire(page, &cell);
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        // Nothing panics while holding it; were it poisoned, the map is still consistent.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cell(&self, page: u64) -> Cell {
        let mut slots = self.slots();
        let cell = slots.cell(page);
        slots.evict(page);
        cell
    }

    /// One read of `page` from the log, its events redacted and serialized.
    async fn read(&self, page: u64) -> Read {
        let first = page * PAGE + 1;
        let events = {
            // Never closed; held only for the query, not for the serializing.
            let _permit = self
                .reads
                .acquire()
                .await
                .map_err(|_| ReadFailed(Arc::new(StoreError::Closed)))?;
            READS.fetch_add(1, Ordering::Relaxed);
            self.store
                .read_page(first, PAGE as usize, &Filter::all())
                .await
                .map_err(|e| ReadFailed(Arc::new(e)))?
                .events
        };
        Ok(Arc::new(Chunk::new(first, events)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_eventstore::StreamId;

    fn events(positions: std::ops::RangeInclusive<u64>) -> Vec<RecordedEvent> {
        positions
            .map(|position| RecordedEvent {
                position,
                stream_id: StreamId::parse("test-1").unwrap(),
                version: position - 1,
                event_id: uuid::Uuid::new_v4(),
                event_type: "Tested".into(),
                schema_version: 1,
                data: serde_json::json!({}),
                metadata: serde_json::json!({}),
                recorded_at: chrono::Utc::now(),
            })
            .collect()
    }

    #[test]
    fn a_page_is_complete_only_with_all_its_positions() {
        assert!(Chunk::new(1, events(1..=PAGE)).complete);
        assert!(!Chunk::new(1, events(1..=PAGE - 1)).complete);
        assert!(Chunk::new(PAGE + 1, events(PAGE + 1..=2 * PAGE)).complete);
    }

    #[test]
    fn after_gives_the_events_past_the_cursor() {
        let chunk = Chunk::new(1, events(1..=10));
        assert_eq!(chunk.after(0).len(), 10);
        assert_eq!(chunk.after(4)[0].position, 5);
        assert!(chunk.after(10).is_empty());
    }

    #[test]
    fn the_least_recently_used_pages_go_first_and_never_the_one_asked_for() {
        let mut slots = Slots::default();
        for page in 0..CACHED_PAGES as u64 + 5 {
            slots.cell(page);
            slots.evict(page);
        }
        assert_eq!(slots.pages.len(), CACHED_PAGES);
        assert!(!slots.pages.contains_key(&0));
        assert!(slots.pages.contains_key(&(CACHED_PAGES as u64 + 4)));
        // Page 5 used again: it outlives the ones after it.
        slots.cell(5);
        slots.cell(100);
        slots.evict(100);
        assert!(slots.pages.contains_key(&5));
        assert!(!slots.pages.contains_key(&6));
    }

    #[test]
    fn a_retired_read_is_replaced_and_a_newer_one_is_kept() {
        let mut slots = Slots::default();
        let first = slots.cell(3);
        slots.retire(3, &first);
        let second = slots.cell(3);
        assert!(!Arc::ptr_eq(&first, &second));
        slots.retire(3, &first);
        assert!(Arc::ptr_eq(&second, &slots.cell(3)));
    }
}
