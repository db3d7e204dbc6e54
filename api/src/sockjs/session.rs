//! Session state shared by the handler's [`Session`] and the transports, and the registry of
//! sessions that have an id (the xhr transports; a WebSocket's session lives as long as its
//! socket and is only counted).
//!
//! A session is Open until the handler closes it (or drops its `Session`, or lets its queue
//! overflow): it is then Closing and answers its close frame to every receiving request until
//! it is forgotten. It Ends (and is forgotten, and stops being counted) when no receiving
//! request has been open for `disconnect_delay`, when the client goes away while one is open, or
//! at once when its queue overflows while a request is open (that request is not taking what
//! it is given: it still writes `c[1013,…]` if it can, and is then done). Every ending is one
//! critical section that checks and ends together, so a request attaching meanwhile is never
//! cut off by a stale decision. Locks: the registry's and a session's are never held together,
//! nor across an `.await`; the counters' lock is taken last and held only to count.

use super::{Closed, Session};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore, SemaphorePermit};

/// How a session whose client does not keep up is closed.
pub(super) const SLOW_CLIENT: (u16, &str) = (1013, "Client too slow");
/// How a session is closed when its handler returns without closing it.
pub(super) const HANDLER_DONE: (u16, &str) = (1000, "Normal closure");
/// How a session is closed when its handler panicked.
pub(super) const HANDLER_PANICKED: (u16, &str) = (1011, "Internal error");

#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub heartbeat: Duration,
    pub disconnect_delay: Duration,
    /// How long one write to the client may wait before the client counts as gone.
    pub write_timeout: Duration,
    pub queue_limit: usize,
    pub max_queued_bytes: usize,
    pub max_sessions: usize,
    pub max_sessions_per_address: usize,
}

/// What a receiving request writes next.
#[derive(Debug)]
pub(super) enum Outgoing {
    Open,
    Messages(Vec<String>),
    Heartbeat,
    /// The last frame: the request ends after it.
    Close(u16, String),
    /// The session is gone; the request ends without a frame.
    Ended,
}

pub(super) struct Registry {
    sessions: Mutex<HashMap<String, Arc<Shared>>>,
    /// Every live session, with an id or not; see [`Slot`].
    counts: Arc<Counts>,
    limits: Limits,
}

/// Why a session cannot be made, or a receiving request cannot attach to one.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Another receiving request is open for the session.
    Busy,
    /// `max_sessions` are live; no new one is made.
    Full,
    /// `max_sessions_per_address` of the client's address are live.
    TooManyFromAddress,
}

impl Registry {
    pub(super) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            sessions: Mutex::new(HashMap::new()),
            counts: Arc::new(Counts::default()),
            limits,
        })
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Shared>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session with this id, if it is still known.
    pub(super) fn find(&self, id: &str) -> Option<Arc<Shared>> {
        self.sessions().get(id).cloned()
    }

    /// Attaches a receiving request to the session `id`, making the session (and returning
    /// its handler's half) if it is not known; a new one counts against `address`.
    pub(super) fn open(
        self: &Arc<Self>,
        id: &str,
        address: Option<IpAddr>,
    ) -> Result<(Attachment, Option<Session>), Refusal> {
        loop {
            let existing = {
                let mut sessions = self.sessions();
                match sessions.get(id) {
                    Some(shared) => Arc::clone(shared),
                    None => {
                        let slot = self.reserve(address)?;
                        let (shared, attachment, session) = Shared::create(
                            Some(id.to_owned()),
                            Arc::downgrade(self),
                            self.limits,
                            slot,
                        );
                        sessions.insert(id.to_owned(), shared);
                        return Ok((attachment, Some(session)));
                    }
                }
            };
            match existing.attach() {
                Ok(attachment) => return Ok((attachment, None)),
                Err(AttachError::Busy) => return Err(Refusal::Busy),
                // It ended between the lookup and now: forget it and make a new one.
                Err(AttachError::Ended) => self.forget(&existing),
            }
        }
    }

    /// Counts a session about to be made (a WebSocket's, before its upgrade) against the
    /// limits: all sessions, and those of the client's `address` (when the server knows it).
    pub(super) fn reserve(&self, address: Option<IpAddr>) -> Result<Slot, Refusal> {
        let address = address.map(source);
        let mut counts = self.counts.lock();
        if counts.live >= self.limits.max_sessions {
            return Err(Refusal::Full);
        }
        if let Some(address) = address {
            let of_address = counts.by_address.entry(address).or_default();
            if *of_address >= self.limits.max_sessions_per_address {
                if *of_address == 0 {
                    counts.by_address.remove(&address);
                }
                return Err(Refusal::TooManyFromAddress);
            }
            *of_address += 1;
        }
        counts.live += 1;
        Ok(Slot {
            counts: Arc::clone(&self.counts),
            address,
        })
    }

    /// A session without an id, attached for good to one WebSocket.
    pub(super) fn anonymous(&self, slot: Slot) -> (Attachment, Session) {
        let (_, attachment, session) = Shared::create(None, Weak::new(), self.limits, slot);
        (attachment, session)
    }

    fn forget(&self, shared: &Shared) {
        if let Some(id) = &shared.id {
            let mut sessions = self.sessions();
            if sessions
                .get(id)
                .is_some_and(|known| std::ptr::eq(Arc::as_ptr(known), shared))
            {
                sessions.remove(id);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.counts.lock().live
    }
}

/// Where a session comes from, as the per-address limit counts it: an IPv4 address, or an
/// IPv6 address's /64 (what one client is usually given).
fn source(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
    }
}

#[derive(Default)]
struct Counts(Mutex<Counted>);

#[derive(Default)]
struct Counted {
    live: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Counts {
    fn lock(&self) -> MutexGuard<'_, Counted> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One counted live session; released when the session ends (or, if it never does, when its
/// last holder lets go).
pub(super) struct Slot {
    counts: Arc<Counts>,
    address: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        counts.live = counts.live.saturating_sub(1);
        if let Some(address) = self.address {
            if let Some(n) = counts.by_address.get_mut(&address) {
                *n -= 1;
                if *n == 0 {
                    counts.by_address.remove(&address);
                }
            }
        }
    }
}

pub(super) struct Shared {
    id: Option<String>,
    registry: Weak<Registry>,
    limits: Limits,
    state: Mutex<State>,
    /// Signalled on every change a waiter cares about: messages queued, closed, ended.
    changed: Notify,
    /// Held by the one `xhr_send` that may wait for the handler at a time.
    sending: Semaphore,
}

struct State {
    phase: Phase,
    /// Messages for the client not yet written.
    pending: VecDeque<String>,
    /// The bytes of `pending`'s messages.
    pending_bytes: usize,
    /// A receiving request is open.
    attached: bool,
    /// Bumped on every detach, so a stale disconnect timer (or write watchdog) does nothing.
    epoch: u64,
    /// Where client messages go; dropped once the session is no longer open, so the handler's
    /// `recv` ends after the messages already queued.
    inbound: Option<mpsc::Sender<String>>,
    /// Taken (and so released) when the session ends.
    slot: Option<Slot>,
}

#[derive(Clone, Debug)]
enum Phase {
    Open,
    Closing(u16, String),
    /// Over; the close frame the request open at the end still writes, if any.
    Ended(Option<(u16, String)>),
}

enum AttachError {
    Busy,
    Ended,
}

impl Shared {
    /// A new open session with a receiving request attached (the one that made it).
    fn create(
        id: Option<String>,
        registry: Weak<Registry>,
        limits: Limits,
        slot: Slot,
    ) -> (Arc<Self>, Attachment, Session) {
        let (inbound, received) = mpsc::channel(limits.queue_limit.max(1));
        let shared = Arc::new(Self {
            id,
            registry,
            limits,
            state: Mutex::new(State {
                phase: Phase::Open,
                pending: VecDeque::new(),
                pending_bytes: 0,
                attached: true,
                epoch: 0,
                inbound: Some(inbound),
                slot: Some(slot),
            }),
            changed: Notify::new(),
            sending: Semaphore::new(1),
        });
        let attachment = Attachment {
            shared: Arc::clone(&shared),
            epoch: 0,
            opening: true,
            finished: false,
        };
        let session = Session {
            shared: Arc::clone(&shared),
            inbound: received,
        };
        (shared, attachment, session)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn attach(self: &Arc<Self>) -> Result<Attachment, AttachError> {
        let mut state = self.state();
        if matches!(state.phase, Phase::Ended(_)) {
            return Err(AttachError::Ended);
        }
        if state.attached {
            return Err(AttachError::Busy);
        }
        state.attached = true;
        Ok(Attachment {
            shared: Arc::clone(self),
            epoch: state.epoch,
            opening: false,
            finished: false,
        })
    }

    /// Queues messages for the client; closes the session if that makes the queue too long
    /// (over `queue_limit` messages, or over `max_queued_bytes` bytes; one push into an empty
    /// queue is taken whatever its bytes, so a message larger than the budget still goes out).
    pub(super) fn push(&self, messages: Vec<String>) -> Result<(), Closed> {
        let mut state = self.state();
        if !matches!(state.phase, Phase::Open) {
            return Err(Closed);
        }
        if messages.is_empty() {
            return Ok(());
        }
        let was_empty = state.pending.is_empty();
        let bytes: usize = messages.iter().map(String::len).sum();
        state.pending.extend(messages);
        state.pending_bytes = state.pending_bytes.saturating_add(bytes);
        let slow = state.pending.len() > self.limits.queue_limit
            || (!was_empty && state.pending_bytes > self.limits.max_queued_bytes);
        let mut ended = None;
        if slow {
            // What a client that did not keep up missed is not kept: that is the bound.
            state.pending.clear();
            state.pending_bytes = 0;
            let (code, reason) = SLOW_CLIENT;
            if state.attached {
                // The open request is not taking what it is given (its client does not read):
                // the session is over now, not once that request gives up.
                ended = Some(Self::ending(&mut state, Some((code, reason.to_owned()))));
            } else {
                Self::closing(&mut state, code, reason);
            }
        }
        drop(state);
        self.changed.notify_waiters();
        if let Some(slot) = ended {
            self.forget();
            drop(slot);
        }
        if slow {
            // No session id in the log: it speaks for its authenticated client.
            tracing::debug!("sockjs session closed: client too slow");
            Err(Closed)
        } else {
            Ok(())
        }
    }

    /// Closes an open session with `c[code,"reason"]` (messages already queued go first).
    pub(super) fn close(&self, code: u16, reason: &str) {
        let mut state = self.state();
        if !matches!(state.phase, Phase::Open) {
            return;
        }
        Self::closing(&mut state, code, reason);
        drop(state);
        self.changed.notify_waiters();
    }

    fn closing(state: &mut State, code: u16, reason: &str) {
        state.phase = Phase::Closing(code, reason.to_owned());
        state.inbound = None;
    }

    /// The one `xhr_send` that may wait for the handler, or None while another one does.
    pub(super) fn try_sending(&self) -> Option<SemaphorePermit<'_>> {
        self.sending.try_acquire().ok()
    }

    /// Hands client messages to the handler, waiting while its queue is full (the client is
    /// slowed down, nothing is dropped); messages for a session no longer open are dropped.
    pub(super) async fn deliver(&self, messages: Vec<String>) {
        for message in messages {
            let Some(inbound) = self.state().inbound.clone() else {
                return;
            };
            tokio::select! {
                sent = inbound.send(message) => if sent.is_err() { return },
                () = self.until_not_open() => return,
            }
        }
    }

    async fn until_not_open(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !matches!(self.state().phase, Phase::Open) {
                return;
            }
            changed.await;
        }
    }

    /// Ends the session within the caller's critical section: the handler's `recv` ends,
    /// `send` fails. The caller then notifies, forgets the id and drops the returned slot
    /// (outside the lock).
    fn ending(state: &mut State, farewell: Option<(u16, String)>) -> Option<Slot> {
        state.phase = Phase::Ended(farewell);
        state.pending.clear();
        state.pending_bytes = 0;
        state.inbound = None;
        state.slot.take()
    }

    /// Ends the session if it has not ended and `condition` holds, checked and done under one
    /// lock; true if it ended it.
    fn end_if(&self, condition: impl FnOnce(&State) -> bool) -> bool {
        let slot = {
            let mut state = self.state();
            if matches!(state.phase, Phase::Ended(_)) || !condition(&state) {
                return false;
            }
            Self::ending(&mut state, None)
        };
        self.ended(slot);
        true
    }

    /// After [`Self::ending`], outside the lock.
    fn ended(&self, slot: Option<Slot>) {
        self.changed.notify_waiters();
        self.forget();
        drop(slot);
    }

    fn forget(&self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.forget(self);
        }
    }

    /// The receiving request is done. A session without an id, or whose client went away
    /// mid-request, ends now; otherwise it ends if no request comes for `disconnect_delay`.
    fn detach(self: &Arc<Self>, aborted: bool) {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let epoch = {
            let mut state = self.state();
            state.attached = false;
            state.epoch += 1;
            if matches!(state.phase, Phase::Ended(_)) {
                return;
            }
            if aborted || self.id.is_none() || runtime.is_none() {
                let slot = Self::ending(&mut state, None);
                drop(state);
                self.ended(slot);
                return;
            }
            state.epoch
        };
        let Some(runtime) = runtime else { return };
        // Weak: the timer keeps no session alive (nor its memory) that ended otherwise.
        let shared = Arc::downgrade(self);
        let delay = self.limits.disconnect_delay;
        runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(shared) = shared.upgrade() {
                shared.end_if(|state| !state.attached && state.epoch == epoch);
            }
        });
    }
}

/// One receiving request's hold on its session (at most one per session at a time). Dropped
/// without [`Attachment::finish`], it means the client went away mid-request.
pub(super) struct Attachment {
    shared: Arc<Shared>,
    /// The session's epoch while this request is attached.
    epoch: u64,
    /// The session was made by this request: its first frame is `o`.
    opening: bool,
    finished: bool,
}

impl Attachment {
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// How long one write of this request may wait for the client.
    pub(super) fn write_timeout(&self) -> Duration {
        self.shared.limits.write_timeout
    }

    /// Something that ends the session if this request is still the session's then: for a
    /// watchdog over a write the request cannot time out itself. Holds no session alive.
    pub(super) fn abandon_later(&self) -> impl FnOnce() + Send + 'static {
        let shared = Arc::downgrade(&self.shared);
        let epoch = self.epoch;
        move || {
            if let Some(shared) = shared.upgrade() {
                if shared.end_if(|state| state.attached && state.epoch == epoch) {
                    tracing::debug!("sockjs session ended: client not reading");
                }
            }
        }
    }

    /// What to write next: queued messages, the close frame, or a heartbeat after
    /// `heartbeat` of nothing. Cancel-safe: nothing is taken from the queue until it returns.
    pub(super) async fn next(&mut self) -> Outgoing {
        if std::mem::take(&mut self.opening) {
            return Outgoing::Open;
        }
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.shared.state();
                if !state.pending.is_empty() {
                    state.pending_bytes = 0;
                    return Outgoing::Messages(state.pending.drain(..).collect());
                }
                match &state.phase {
                    Phase::Open => {}
                    Phase::Closing(code, reason) | Phase::Ended(Some((code, reason))) => {
                        return Outgoing::Close(*code, reason.clone())
                    }
                    Phase::Ended(None) => return Outgoing::Ended,
                }
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep(self.shared.limits.heartbeat) => return Outgoing::Heartbeat,
            }
        }
    }

    /// The request ended as the protocol meant it to (a frame written, the response limit
    /// reached, the close frame sent).
    pub(super) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.shared.detach(!self.finished);
    }
}
