//! Catch-up-then-live, written once for every store: page through the log, and when caught up
//! wait for the head to move (or a poll interval to pass) and page again.
//!
//! Correct because of the ordering guarantee: a page read at a snapshot whose head is H holds
//! every matching event up to H, and nothing at or below H can commit later.

use crate::event::{Filter, RecordedEvent};
use crate::store::{EventStore, Subscription};
use std::collections::VecDeque;
use std::time::Duration;

const PAGE: usize = 1000;
/// Re-read even without a wake-up, in case a notification was lost.
const POLL: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(500);

pub(crate) fn catch_up_then_live<S: EventStore + Clone>(
    store: S,
    from_position: u64,
    filter: Filter,
) -> Subscription {
    struct State<S> {
        store: S,
        filter: Filter,
        next: u64,
        buffer: VecDeque<RecordedEvent>,
        head: tokio::sync::watch::Receiver<u64>,
        caught_up: bool,
    }
    let head = store.head_changes();
    let state = State {
        store,
        filter,
        next: from_position.max(1),
        buffer: VecDeque::new(),
        head,
        caught_up: false,
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.buffer.pop_front() {
                return Some((Ok(event), s));
            }
            if s.caught_up {
                // Wait for a wake-up, or poll anyway after a while.
                let _ = tokio::time::timeout(POLL, s.head.changed()).await;
            }
            s.head.borrow_and_update();
            match s.store.read_page(s.next, PAGE, &s.filter).await {
                Ok(page) => {
                    let full = page.events.len() == PAGE;
                    if let Some(last) = page.events.last() {
                        s.next = last.position + 1;
                    }
                    if !full {
                        // Nothing else matching exists up to the snapshot's head.
                        s.next = s.next.max(page.head + 1);
                    }
                    s.caught_up = !full;
                    s.buffer.extend(page.events);
                }
                Err(e) => {
                    tokio::time::sleep(RETRY).await;
                    return Some((Err(e), s));
                }
            }
        }
    }))
}
