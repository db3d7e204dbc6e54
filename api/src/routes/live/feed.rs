//! What one subscriber is sent, in order: the log from `from` through the shared catch-up pages
//! until caught up, then the hub's feed, filling from the pages any gap between the two. Never
//! an event the read models have not applied yet.
//!
//! A subscriber holds at most one page at a time (shared with the others) and what its socket
//! buffers: each page, and each batch of live events, is flushed before the next.
//!
//! It sees the events of the streams its caller may read ([`Reader`]): all of them for an admin.

use super::{Ending, Sink, PING_EVERY, WRITE_TIMEOUT};
use crate::live::pages::{Pages, Turn};
use crate::live::LiveEvent;
use crate::startup::AppState;
use axum::extract::ws::Message;
use bosun_commands::Actor;
use bosun_eventstore::Filter;
use futures::{FutureExt, SinkExt};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;

/// Most live events written to a socket with one flush: one write per batch instead of per
/// event is what lets hundreds of subscribers keep up (see `bosun bench live`).
const BATCH: usize = 256;
/// Catch-up events written between two yields to the runtime: measured with `bosun bench
/// catchup`, this is what keeps the API's requests from queueing behind the catch-up (writers'
/// p99 about 2× instead of 20× with 500 subscribers catching up).
const YIELD_EVERY: usize = 64;

/// Categories whose events can change who may read a stream (an app's teams, and with them who
/// reads its jobs and units; an instance's or a service's teams; a runnable's owner): what such
/// an event may have changed is forgotten ([`Reader::forget_what`]).
const CHANGES_READERS: [&str; 4] = ["app", "instance", "runnable", "service"];
/// The most streams a subscriber remembers whether it may read.
const REMEMBERED: usize = 10_000;

/// How long a subscriber waits, at an event about its caller (its user, its token, one of its
/// teams), for the check of the caller that event sets off, before it judges the next events.
const RECHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Who a subscriber's token speaks for, as a check found it, and the log position the read
/// models had reached when it looked.
#[derive(Clone, Debug)]
pub(super) struct Checked {
    pub actor: Actor,
    pub at: u64,
}

/// What one subscriber may see: every event for an admin; else those of the streams its caller
/// may read (`Queries::may_read_stream`, the rule of `/v1/events`), asked once per stream once
/// the read models hold the event. What it knows is forgotten once the caller changed (its
/// teams, say), and an event about the caller waits for the check of the caller it sets off, so
/// nothing after it is judged on who the caller was; an event that may change who reads what
/// (an app's, say) makes it forget too.
pub(super) struct Reader {
    caller: tokio::sync::watch::Receiver<Checked>,
    actor: Actor,
    checked_at: u64,
    readable: HashMap<String, bool>,
}

impl Reader {
    pub(super) fn new(mut caller: tokio::sync::watch::Receiver<Checked>) -> Self {
        let checked = caller.borrow_and_update().clone();
        Reader {
            caller,
            actor: checked.actor,
            checked_at: checked.at,
            readable: HashMap::new(),
        }
    }

    /// Whether `event` is about the caller: its user, its token, one of its teams, or a team it
    /// joins (whose events name it).
    fn about_caller(&self, event: &LiveEvent) -> bool {
        let id = event.stream_id.id();
        match (event.category.as_str(), &self.actor) {
            ("user", actor) => actor.is(id),
            ("team", actor) => actor.is_member(id) || names(event, actor),
            ("token", Actor::User { token_id, .. }) => token_id.to_string() == id,
            _ => false,
        }
    }

    /// Whether `event` is about the caller and newer than the last check of it: taking it in
    /// waits for the check it sets off.
    fn waits_for_check(&self, event: &LiveEvent) -> bool {
        event.position > self.checked_at && self.about_caller(event)
    }

    /// Takes in every event, passed by the filter or not, before any is judged.
    async fn notice(&mut self, event: &LiveEvent) {
        if self.waits_for_check(event) {
            let wanted = event.position;
            let checked = self.caller.wait_for(|checked| checked.at >= wanted);
            let _ = tokio::time::timeout(RECHECK_WAIT, checked).await;
        }
        // The latest check, whether a wait saw it already or not.
        let checked = self.caller.borrow_and_update().clone();
        if checked.at > self.checked_at || checked.actor != self.actor {
            self.checked_at = self.checked_at.max(checked.at);
            if checked.actor != self.actor {
                self.actor = checked.actor;
                self.readable.clear();
            }
        }
        if self.readable.len() >= REMEMBERED {
            self.readable.clear();
        }
        self.forget_what(event);
    }

    /// Forgets what `event` may have changed: who reads its stream, and the streams read
    /// through it (an app's jobs and units, a service's instances).
    fn forget_what(&mut self, event: &LiveEvent) {
        if !CHANGES_READERS.contains(&event.category.as_str()) || self.readable.is_empty() {
            return;
        }
        let (stream, id) = (event.stream_id.as_str(), event.stream_id.id());
        match event.category.as_str() {
            "app" => {
                let units = format!("unit-{id}.");
                self.readable
                    .retain(|s, _| s != stream && !s.starts_with("job-") && !s.starts_with(&units));
            }
            "service" => {
                let instances = format!("instance-{id}.");
                self.readable
                    .retain(|s, _| s != stream && !s.starts_with(&instances));
            }
            "runnable" => {
                self.readable.remove(stream);
                self.readable.remove(&format!("runnable_log-{id}"));
            }
            _ => {
                self.readable.remove(stream);
            }
        }
    }

    async fn sees(&mut self, state: &AppState, event: &LiveEvent) -> Result<bool, Ending> {
        if self.actor.is_admin() {
            return Ok(true);
        }
        if let Some(may) = self.readable.get(event.stream_id.as_str()) {
            return Ok(*may);
        }
        let may = state
            .queries
            .may_read_stream(&self.actor, &event.stream_id)
            .await
            .map_err(Ending::Unchecked)?;
        self.readable
            .insert(event.stream_id.as_str().to_string(), may);
        Ok(may)
    }
}

/// Whether a team's `event` names `actor`'s user (as the member it adds, or its creator).
fn names(event: &LiveEvent, actor: &Actor) -> bool {
    let Some(username) = actor.username() else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(event.json.as_str()).is_ok_and(|envelope| {
        ["username", "creator"]
            .iter()
            .any(|field| envelope["data"][field] == username)
    })
}

/// Where a subscriber is.
struct Progress {
    /// Every position up to it has been sent or skipped by the filter.
    cursor: u64,
    /// The last position sent, for a slow subscriber's close.
    last_sent: u64,
}

/// Sends events from `from` on until the subscriber leaves or must be closed.
pub(super) async fn stream_events(
    state: &AppState,
    sink: &mut Sink,
    filter: &Filter,
    reader: &mut Reader,
    from: u64,
) -> Result<(), Ending> {
    let mut at = Progress {
        cursor: from - 1,
        last_sent: from - 1,
    };
    catch_up(state, sink, filter, reader, &mut at, u64::MAX).await?;
    let mut feed = state.live.subscribe();
    // Anything published between the last page and subscribing comes from the log.
    catch_up(state, sink, filter, reader, &mut at, u64::MAX).await?;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            received = feed.recv() => match received {
                Ok(event) => send_live(state, sink, filter, reader, &mut at, &mut feed, event).await?,
                Err(RecvError::Lagged(_)) => return Err(slow(&at)),
                Err(RecvError::Closed) => return Err(Ending::Gone),
            },
            _ = ping.tick() => {
                write(sink, Message::Ping(Default::default()), &at).await?;
                flush(sink, &at).await?;
            }
        }
    }
}

/// Sends `event` and what else the hub already holds for this subscriber, with one flush.
async fn send_live(
    state: &AppState,
    sink: &mut Sink,
    filter: &Filter,
    reader: &mut Reader,
    at: &mut Progress,
    feed: &mut Receiver<Arc<LiveEvent>>,
    event: Arc<LiveEvent>,
) -> Result<(), Ending> {
    let mut next = Some(event);
    let mut queued = 0;
    while let Some(event) = next.take() {
        if event.position > at.cursor {
            if event.position > at.cursor + 1 {
                catch_up(state, sink, filter, reader, at, event.position - 1).await?;
            }
            queue(state, sink, &event, filter, reader, at).await?;
        }
        queued += 1;
        if queued < BATCH {
            next = match feed.try_recv() {
                Ok(event) => Some(event),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Lagged(_)) => return Err(slow(at)),
                Err(TryRecvError::Closed) => return Err(Ending::Gone),
            };
        }
    }
    flush(sink, at).await
}

fn slow(at: &Progress) -> Ending {
    Ending::Slow {
        last_position: at.last_sent,
    }
}

/// Sends what the log holds after the cursor, up to `until`, its head, or what the read models
/// have applied, whichever is lowest: events go out after projection, so a client reacting to
/// one reads state that includes it. Each page comes from the shared pages, is sent in a turn
/// (see [`crate::live::pages`]) and flushed before the next is asked for.
async fn catch_up(
    state: &AppState,
    sink: &mut Sink,
    filter: &Filter,
    reader: &mut Reader,
    at: &mut Progress,
    until: u64,
) -> Result<(), Ending> {
    let until = until.min(state.freshness.position());
    let pages = state.live.pages();
    while at.cursor < until {
        let mut turn = Some(pages.turn().await);
        let page = pages.after(at.cursor).await.map_err(Ending::Store)?;
        let (before, sent) = (at.cursor, at.last_sent);
        let events = page
            .after(at.cursor)
            .iter()
            .take_while(|e| e.position <= until);
        for (n, event) in events.enumerate() {
            if reader.waits_for_check(event) {
                // A wait for the caller's check holds up no other subscriber's catch-up.
                drop(turn.take());
                reader.notice(event).await;
                turn = Some(pages.turn().await);
            } else {
                reader.notice(event).await;
            }
            if event.matches(filter) && reader.sees(state, event).await? {
                let message = Message::Text(event.json.clone());
                write_in_turn(sink, message, at, pages, &mut turn).await?;
                at.last_sent = event.position;
            }
            at.cursor = event.position;
            if n % YIELD_EVERY == YIELD_EVERY - 1 {
                // Writing into the socket's buffer seldom waits, so without this a page would
                // go out in one poll and the requests' tasks would wait behind it.
                tokio::task::yield_now().await;
            }
        }
        // Waiting for the client to take it all is no work: the next subscriber may go on.
        drop(turn);
        if at.last_sent != sent {
            flush(sink, at).await?;
        }
        if at.cursor == before {
            // The log had nothing more for us yet; the live feed brings the rest.
            break;
        }
    }
    Ok(())
}

/// Queues `message` during a catch-up turn. A socket that cannot take it at once means a client
/// slower than the feed: the turn goes to the next subscriber while this one waits (at most
/// `WRITE_TIMEOUT`, as for any write), so a slow client holds up no catch-up but its own.
async fn write_in_turn<'a>(
    sink: &mut Sink,
    message: Message,
    at: &Progress,
    pages: &'a Pages,
    turn: &mut Option<Turn<'a>>,
) -> Result<(), Ending> {
    // A feed that has to wait has not taken the message yet: dropping it sends nothing.
    if let Some(written) = sink.feed(message.clone()).now_or_never() {
        return written.map_err(|_| Ending::Gone);
    }
    *turn = None;
    write(sink, message, at).await?;
    *turn = Some(pages.turn().await);
    Ok(())
}

/// Queues a live `event` on the socket if the filter wants it; the caller flushes.
async fn queue(
    state: &AppState,
    sink: &mut Sink,
    event: &LiveEvent,
    filter: &Filter,
    reader: &mut Reader,
    at: &mut Progress,
) -> Result<(), Ending> {
    reader.notice(event).await;
    if event.matches(filter) && reader.sees(state, event).await? {
        write(sink, Message::Text(event.json.clone()), at).await?;
        at.last_sent = event.position;
    }
    at.cursor = event.position;
    Ok(())
}

/// Queues `message` on the socket; a client that has stopped reading is slow.
async fn write(sink: &mut Sink, message: Message, at: &Progress) -> Result<(), Ending> {
    match tokio::time::timeout(WRITE_TIMEOUT, sink.feed(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ending::Gone),
        Err(_) => Err(slow(at)),
    }
}

async fn flush(sink: &mut Sink, at: &Progress) -> Result<(), Ending> {
    match tokio::time::timeout(WRITE_TIMEOUT, sink.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ending::Gone),
        Err(_) => Err(slow(at)),
    }
}
