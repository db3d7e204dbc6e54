//! `/compat/pulsar/websocket`: pulsar's live feed of jobs over SockJS (COMPAT.md §1, WebSocket).
//!
//! A mapping of the live hub: each job event, once the read models have it, goes to a session as
//! one message, the JSON text `{"event": "job.create"|"job.change"|"job.close", "job": <Job>}`,
//! the job rendered as pulsar's REST routes render it ([`super::job::render`], so a `job.close`
//! carries the final status). A session is subscribed to the hub as soon as it starts (nothing
//! after the client connected is missed), authenticates with its first message `{"token": "…"}`
//! within 5 s (a Bosun token; anything else is closed `403 "Access denied"`, as pulsar did;
//! pulsar's `{"cookie"}` has no Bosun counterpart and is refused the same way), and then gets
//! the events of the jobs its caller may read (the `/v1` rule, [`Queries::job`]); what the client
//! sends after the token is ignored. The token is watched as `/v1/events/live`'s is
//! ([`access`]): revoked, expired or no longer allowed to read jobs → `403 "Access denied"`.
//!
//! A session more than the hub's buffer behind has missed events: it is closed with
//! [`CLOSE_SLOW`] (4408, the code of `/v1/events/live`'s slow consumer) rather than skipping them;
//! pulsar's client reconnects on any close. A client that does not take what it is sent is
//! closed by the SockJS layer itself with `c[1013,"Client too slow"]` (1013 on the raw
//! WebSocket) once its queue is over `queue_limit` messages or [`sockjs::MAX_QUEUED_BYTES`];
//! what was queued is dropped, and the feed's next send fails, so it just stops (as for a
//! client gone). 1011 means the server could not go on (the database failed, or it is
//! stopping): reconnect. A `job.change` carries the last [`CHANGE_OUTPUT_BYTES`] of the job's
//! `stdout` and `output` (pulsar sent all of it each time; a job's output may be many
//! megabytes), and `job.close` all of it, so what the client holds at the end is whole. A job's
//! `job.change`s go to a session at most one per
//! [`CHANGE_INTERVAL`], each rendering the job as it is when it goes (one held back goes when due,
//! and always before that job's `job.close`); creates and closes always go out, each job's in the
//! order they happened. One send holds at most [`SEND_BUDGET`] bytes of messages (a larger
//! message goes alone). Each session renders its own messages (a job's output is read once per
//! message, not shared between sessions). A job found not readable by the session is not asked
//! about again for [`UNREADABLE_FOR`]; its `job.close` is always asked afresh.
//!
//! [`Queries::job`]: bosun_commands::Queries::job

use super::job::{render, render_tail};
use crate::auth::Caller;
use crate::live::LiveEvent;
use crate::routes::live::access::{self, Granted};
use crate::routes::live::{AUTH_TIMEOUT, CLOSE_INTERNAL, CLOSE_SLOW};
use crate::sockjs::{self, Options, Session};
use crate::startup::AppState;
use axum::Router;
use bosun_commands::{Actor, CommandError};
use bosun_domain::DomainError;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// pulsar's one refusal, for a bad first message and for a token that stops being good.
const CLOSE_DENIED: u16 = 403;
const DENIED: &str = "Access denied";

/// Most hub events read at once (their messages then go in as few sends as [`SEND_BUDGET`]
/// allows), when a busy job's output comes in faster than the client takes it.
const BATCH: usize = 64;

/// The most of a job's `stdout` and `output` a `job.change` carries: their last bytes.
pub const CHANGE_OUTPUT_BYTES: i64 = 256 * 1024;

/// The shortest time between two `job.change`s of one job to one session: each carries the
/// job's output so far, so a busy job is told a few times a second, not once per chunk.
pub const CHANGE_INTERVAL: Duration = Duration::from_millis(250);

/// The most message bytes one [`Session::send`] carries (a message larger than this goes
/// alone), so that one busy moment is not one huge frame.
pub const SEND_BUDGET: usize = 1024 * 1024;

/// How long a job found not readable by a session stays so without asking again (its reader may
/// since have been let in; a busy job's chunks still cost one query per this, not each).
pub const UNREADABLE_FOR: Duration = Duration::from_secs(5);

const CREATE: &str = "job.create";
const CHANGE: &str = "job.change";
const CLOSE: &str = "job.close";

/// The SockJS endpoints of the feed, nested at `/compat/pulsar/websocket`.
pub fn router() -> Router<AppState> {
    sockjs::router(Options::default(), serve)
}

/// Subscribes before the session's future first runs (so before its client can act on the
/// session being open), then serves it.
fn serve(state: AppState, session: Session) -> BoxFuture<'static, ()> {
    let feed = state.live.subscribe();
    Box::pin(run(state, session, feed))
}

/// Why a session ended, when not because its client left.
enum Ending {
    Gone,
    Denied,
    Lagged(u64),
    Stopping,
    Failed(String),
    /// Its token holds as many live sockets as it may: the close code and reason.
    TooMany(u16, String),
}

async fn run(state: AppState, mut session: Session, mut feed: Receiver<Arc<LiveEvent>>) {
    let ending = match authenticate(&state, &mut session).await {
        Ok(granted) => follow(&state, &mut session, &mut feed, granted).await,
        Err(ending) => ending,
    };
    // Not reading the hub any more: let it forget this subscriber at once.
    drop(feed);
    let (code, reason) = match ending {
        Ending::Gone => return,
        Ending::Denied => (CLOSE_DENIED, DENIED.to_string()),
        Ending::Lagged(missed) => {
            tracing::info!(
                missed,
                "pulsar feed: a session fell behind the hub; closing it"
            );
            (CLOSE_SLOW, "too slow: events were missed; reconnect".into())
        }
        Ending::Stopping => (CLOSE_INTERNAL, "the server is stopping; reconnect".into()),
        Ending::Failed(error) => {
            tracing::error!(%error, "pulsar feed: cannot go on with a session");
            (CLOSE_INTERNAL, "internal error; reconnect".into())
        }
        Ending::TooMany(code, reason) => (code, reason),
    };
    session.close(code, &reason).await;
}

#[derive(Deserialize)]
struct TokenMessage {
    token: String,
}

/// The token of the session's first message, granted if it may read jobs.
async fn authenticate(state: &AppState, session: &mut Session) -> Result<Granted, Ending> {
    let token = match tokio::time::timeout(AUTH_TIMEOUT, session.recv()).await {
        Ok(Some(message)) => {
            serde_json::from_str::<TokenMessage>(&message)
                .map_err(|_| Ending::Denied)?
                .token
        }
        Ok(None) => return Err(Ending::Gone),
        Err(_) => return Err(Ending::Denied),
    };
    access::check_by(state, token, may_read_jobs)
        .await
        .map_err(|(code, reason)| match code {
            CLOSE_INTERNAL => Ending::Failed("checking its token failed".into()),
            access::CLOSE_TOO_MANY => Ending::TooMany(code, reason),
            _ => Ending::Denied,
        })
}

/// The rule of the feed's tokens: the one of every job read (the jobs it then gets are narrowed
/// to those its caller may read).
fn may_read_jobs(caller: &Caller) -> Result<(), (u16, String)> {
    bosun_commands::queries::job_readers(&caller.actor)
        .map(drop)
        .map_err(|_| (CLOSE_DENIED, DENIED.to_string()))
}

/// Sends the session its jobs' events until it ends or must be closed.
async fn follow(
    state: &AppState,
    session: &mut Session,
    feed: &mut Receiver<Arc<LiveEvent>>,
    granted: Granted,
) -> Ending {
    let mut reader = Reader::new(granted.caller().actor.clone());
    // The watcher's rechecks tell the feed who the token speaks for now (a team left, an admin
    // demoted): what it may read follows.
    let (actor_changed, mut actor) = watch::channel(reader.actor.clone());
    let mut holder = granted.caller().holder.clone();
    let lost = access::lose_access_telling(state, granted, move |caller, _| {
        if caller.holder != holder {
            holder = caller.holder.clone();
            actor_changed.send_replace(caller.actor.clone());
        }
    });
    tokio::pin!(lost);
    loop {
        let held = reader.throttle.next_due();
        tokio::select! {
            // A job's change held back is due.
            () = tokio::time::sleep_until(held.unwrap_or_else(Instant::now)), if held.is_some() => {
                if let Err(ending) = reader.send_due(state, session).await {
                    return ending;
                }
            }
            received = feed.recv() => match received {
                Ok(event) => {
                    if let Err(ending) = reader.send(state, session, feed, event).await {
                        return ending;
                    }
                }
                Err(RecvError::Lagged(missed)) => return Ending::Lagged(missed),
                Err(RecvError::Closed) => return Ending::Stopping,
            },
            // Incoming messages after the token mean nothing; reading them notices the end.
            message = session.recv() => {
                if message.is_none() {
                    return Ending::Gone;
                }
            }
            _ = &mut lost => return Ending::Denied,
            Ok(()) = actor.changed() => {
                let now = actor.borrow_and_update().clone();
                reader.speaks_for(now);
            }
        }
    }
}

/// Who a session reads jobs as, what it holds back ([`Throttle`]) and the jobs it was found not
/// to be allowed to read.
struct Reader {
    actor: Actor,
    throttle: Throttle,
    unreadable: Unreadable,
}

impl Reader {
    fn new(actor: Actor) -> Self {
        Reader {
            actor,
            throttle: Throttle::default(),
            unreadable: Unreadable::default(),
        }
    }

    fn speaks_for(&mut self, actor: Actor) {
        self.actor = actor;
        self.unreadable.clear();
    }

    /// Sends what `first` and the events the hub already holds after it tell, each job's
    /// changes throttled.
    async fn send(
        &mut self,
        state: &AppState,
        session: &Session,
        feed: &mut Receiver<Arc<LiveEvent>>,
        first: Arc<LiveEvent>,
    ) -> Result<(), Ending> {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match feed.try_recv() {
                Ok(event) => batch.push(event),
                Err(TryRecvError::Lagged(missed)) => return Err(Ending::Lagged(missed)),
                // Closed: the next `recv` says so.
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let now = Instant::now();
        let mut told = Vec::new();
        for (job_id, event) in batch.iter().filter_map(|e| notice(e)) {
            told.extend(
                self.throttle
                    .tell(job_id, event, now)
                    .into_iter()
                    .map(|event| (job_id, event)),
            );
        }
        self.deliver(state, session, told).await
    }

    /// Sends the changes held back that are due now.
    async fn send_due(&mut self, state: &AppState, session: &Session) -> Result<(), Ending> {
        let due = self.throttle.due(Instant::now());
        let told = due.into_iter().map(|job_id| (job_id, CHANGE)).collect();
        self.deliver(state, session, told).await
    }

    /// Renders and sends `told`, in order, in sends of at most [`SEND_BUDGET`] bytes.
    async fn deliver(
        &mut self,
        state: &AppState,
        session: &Session,
        told: Vec<(Uuid, &'static str)>,
    ) -> Result<(), Ending> {
        let mut frames = Frames::new(SEND_BUDGET);
        for (job_id, event) in told {
            if event == CLOSE {
                // Nothing more comes for it, and its close is asked afresh: who may read it may
                // have changed since it was found unreadable.
                self.unreadable.forget(job_id);
            }
            if let Some(message) = self.message(state, job_id, event).await? {
                if let Some(full) = frames.push(message) {
                    session.send(full).await.map_err(|_| Ending::Gone)?;
                }
            }
        }
        match frames.finish() {
            Some(last) => session.send(last).await.map_err(|_| Ending::Gone),
            None => Ok(()),
        }
    }

    /// The message of `event` about job `job_id`, if the session may read the job.
    async fn message(
        &mut self,
        state: &AppState,
        job_id: Uuid,
        event: &'static str,
    ) -> Result<Option<String>, Ending> {
        if self.unreadable.holds(job_id, Instant::now()) {
            return Ok(None);
        }
        // `Queries::job` is `may_read_job`'s rule and the read in one query.
        let view = match state.queries.job(&self.actor, job_id).await {
            Ok(view) => view,
            Err(CommandError::Forbidden(_) | CommandError::Domain(DomainError::NotFound(_))) => {
                if event != CLOSE {
                    self.unreadable.insert(job_id, Instant::now());
                }
                return Ok(None);
            }
            Err(e) => return Err(Ending::Failed(format!("reading job {job_id}: {e}"))),
        };
        let rendered = if event == CLOSE {
            render(state, view).await
        } else {
            render_tail(state, view, CHANGE_OUTPUT_BYTES).await
        };
        let job = rendered.map_err(|problem| {
            let why = crate::routes::compat::message(&problem);
            Ending::Failed(format!("reading the output of job {job_id}: {why}"))
        })?;
        let message = serde_json::json!({ "event": event, "job": job });
        Ok(Some(message.to_string()))
    }
}

/// Which of a session's job events go out now: a job's `job.change` at most once per
/// [`CHANGE_INTERVAL`], one that comes sooner held back until then (however many come meanwhile:
/// each renders the job as it is when it goes), and a held one always just before the job's
/// `job.close`. Creates and closes go at once.
#[derive(Default)]
struct Throttle {
    /// When each job's latest change went, for the jobs whose went within the interval.
    sent: HashMap<Uuid, Instant>,
    /// The jobs with a change held back, and when it is due.
    held: HashMap<Uuid, Instant>,
}

impl Throttle {
    /// What to tell now, in order, of `event` about job `job_id` happening at `now`.
    fn tell(&mut self, job_id: Uuid, event: &'static str, now: Instant) -> Vec<&'static str> {
        match event {
            CHANGE if self.held.contains_key(&job_id) => vec![],
            CHANGE => match self.sent.get(&job_id) {
                Some(&at) if now < at + CHANGE_INTERVAL => {
                    self.held.insert(job_id, at + CHANGE_INTERVAL);
                    vec![]
                }
                _ => {
                    self.forget_past(now);
                    self.sent.insert(job_id, now);
                    vec![CHANGE]
                }
            },
            CLOSE => {
                self.sent.remove(&job_id);
                match self.held.remove(&job_id) {
                    Some(_) => vec![CHANGE, CLOSE],
                    None => vec![CLOSE],
                }
            }
            other => vec![other],
        }
    }

    /// When the next held change is due, if one is held.
    fn next_due(&self) -> Option<Instant> {
        self.held.values().min().copied()
    }

    /// The jobs whose held change is due at `now`, the earliest due first: they go now.
    fn due(&mut self, now: Instant) -> Vec<Uuid> {
        let mut due: Vec<(Instant, Uuid)> = self
            .held
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(&job_id, &at)| (at, job_id))
            .collect();
        due.sort();
        for (_, job_id) in &due {
            self.held.remove(job_id);
            self.sent.insert(*job_id, now);
        }
        self.forget_past(now);
        due.into_iter().map(|(_, job_id)| job_id).collect()
    }

    /// Drops the sends older than the interval (they hold nothing back any more), so that jobs
    /// that never close here (another's, or a server that stopped mid-job) are not kept.
    fn forget_past(&mut self, now: Instant) {
        self.sent.retain(|_, at| now < *at + CHANGE_INTERVAL);
    }
}

/// The jobs a session was found not to be allowed to read, each for [`UNREADABLE_FOR`].
#[derive(Default)]
struct Unreadable(HashMap<Uuid, Instant>);

impl Unreadable {
    /// Whether job `job_id` was found unreadable less than [`UNREADABLE_FOR`] before `now`.
    fn holds(&mut self, job_id: Uuid, now: Instant) -> bool {
        match self.0.get(&job_id) {
            Some(&at) if now < at + UNREADABLE_FOR => true,
            Some(_) => {
                self.0.remove(&job_id);
                false
            }
            None => false,
        }
    }

    fn insert(&mut self, job_id: Uuid, now: Instant) {
        // Those past their lifetime go, so a session that sees many others' jobs keeps few.
        self.0.retain(|_, at| now < *at + UNREADABLE_FOR);
        self.0.insert(job_id, now);
    }

    fn forget(&mut self, job_id: Uuid) {
        self.0.remove(&job_id);
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Messages gathered into sends of at most `budget` bytes each; a message larger than that goes
/// in a send of its own.
struct Frames {
    budget: usize,
    messages: Vec<String>,
    bytes: usize,
}

impl Frames {
    fn new(budget: usize) -> Self {
        Frames {
            budget,
            messages: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds `message`; a send that is full without it, to go first.
    fn push(&mut self, message: String) -> Option<Vec<String>> {
        let full =
            (!self.messages.is_empty() && self.bytes + message.len() > self.budget).then(|| {
                self.bytes = 0;
                std::mem::take(&mut self.messages)
            });
        self.bytes += message.len();
        self.messages.push(message);
        full
    }

    /// The last send, if anything is left.
    fn finish(self) -> Option<Vec<String>> {
        (!self.messages.is_empty()).then_some(self.messages)
    }
}

/// The job and pulsar's name of a hub event that pulsar's feed tells, if it is one.
fn notice(event: &LiveEvent) -> Option<(Uuid, &'static str)> {
    if event.category != "job" {
        return None;
    }
    let name = pulsar_event(&event.event_type)?;
    #[derive(Deserialize)]
    struct Envelope {
        stream_id: String,
    }
    let envelope: Envelope = serde_json::from_str(&event.json).ok()?;
    let job_id = envelope.stream_id.strip_prefix("job-")?.parse().ok()?;
    Some((job_id, name))
}

/// pulsar's event for a native job event: created, changed (started, output, a kill asked),
/// closed (finished, or cancelled before it ran).
fn pulsar_event(event_type: &str) -> Option<&'static str> {
    match event_type {
        "JobSubmitted" => Some(CREATE),
        "JobStarted" | "JobOutputAppended" | "JobKillRequested" => Some(CHANGE),
        "JobFinished" | "JobCancelled" => Some(CLOSE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_eventstore::{RecordedEvent, StreamId};
    use serde_json::json;

    fn hub_event(stream: &str, event_type: &str) -> LiveEvent {
        LiveEvent::new(RecordedEvent {
            position: 3,
            stream_id: StreamId::parse(stream).unwrap(),
            version: 0,
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            schema_version: 1,
            data: json!({}),
            metadata: json!({}),
            recorded_at: chrono::Utc::now(),
        })
    }

    #[test]
    fn each_job_event_pulsar_told_has_its_name() {
        let id = Uuid::new_v4();
        let stream = format!("job-{id}");
        let cases = [
            ("JobSubmitted", Some(CREATE)),
            ("JobStarted", Some(CHANGE)),
            ("JobOutputAppended", Some(CHANGE)),
            ("JobKillRequested", Some(CHANGE)),
            ("JobFinished", Some(CLOSE)),
            ("JobCancelled", Some(CLOSE)),
            ("JobTaskStarted", None),
        ];
        for (event_type, name) in cases {
            let told = notice(&hub_event(&stream, event_type));
            assert_eq!(told, name.map(|name| (id, name)), "{event_type}");
        }
    }

    #[test]
    fn other_streams_are_not_told() {
        assert_eq!(notice(&hub_event("app-example", "JobSubmitted")), None);
    }

    #[test]
    fn a_jobs_changes_go_at_most_once_an_interval_and_the_last_is_held_until_due() {
        let (job, other) = (Uuid::new_v4(), Uuid::new_v4());
        let start = Instant::now();
        let mut throttle = Throttle::default();
        assert_eq!(throttle.tell(job, CREATE, start), [CREATE]);
        assert_eq!(throttle.tell(job, CHANGE, start), [CHANGE]);
        // Sooner than the interval: held, however many come.
        let soon = start + CHANGE_INTERVAL / 5;
        assert!(throttle.tell(job, CHANGE, soon).is_empty());
        assert!(throttle.tell(job, CHANGE, soon).is_empty());
        // Another job's are its own.
        assert_eq!(throttle.tell(other, CHANGE, soon), [CHANGE]);
        assert_eq!(throttle.next_due(), Some(start + CHANGE_INTERVAL));
        assert!(throttle.due(soon).is_empty());
        assert_eq!(throttle.due(start + CHANGE_INTERVAL), [job]);
        assert_eq!(throttle.next_due(), None);
        // It went then: the next is held until an interval after that.
        let later = start + CHANGE_INTERVAL + CHANGE_INTERVAL / 2;
        assert!(throttle.tell(job, CHANGE, later).is_empty());
        assert_eq!(throttle.next_due(), Some(start + CHANGE_INTERVAL * 2));
        // Long after, one goes at once.
        let mut fresh = Throttle::default();
        fresh.tell(job, CHANGE, start);
        assert_eq!(fresh.tell(job, CHANGE, start + CHANGE_INTERVAL), [CHANGE]);
    }

    #[test]
    fn a_held_change_goes_just_before_its_jobs_close() {
        let job = Uuid::new_v4();
        let start = Instant::now();
        let mut throttle = Throttle::default();
        throttle.tell(job, CHANGE, start);
        assert!(throttle.tell(job, CHANGE, start).is_empty());
        assert_eq!(throttle.tell(job, CLOSE, start), [CHANGE, CLOSE]);
        assert_eq!(throttle.next_due(), None, "nothing is left held");
        // Without one held, the close alone.
        assert_eq!(throttle.tell(job, CLOSE, start), [CLOSE]);
    }

    #[test]
    fn sends_long_past_are_forgotten() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        for _ in 0..10 {
            throttle.tell(Uuid::new_v4(), CHANGE, start);
        }
        throttle.due(start + CHANGE_INTERVAL);
        assert!(throttle.sent.is_empty());
    }

    #[test]
    fn a_job_found_unreadable_is_asked_again_after_a_while() {
        let job = Uuid::new_v4();
        let start = Instant::now();
        let mut unreadable = Unreadable::default();
        assert!(!unreadable.holds(job, start));
        unreadable.insert(job, start);
        assert!(unreadable.holds(job, start + UNREADABLE_FOR / 2));
        assert!(!unreadable.holds(job, start + UNREADABLE_FOR));
        assert!(unreadable.0.is_empty(), "the expired entry is gone");
        unreadable.insert(job, start);
        unreadable.forget(job);
        assert!(!unreadable.holds(job, start));
    }

    #[test]
    fn sends_hold_at_most_the_budget_and_a_larger_message_alone() {
        let message = |n: usize| "x".repeat(n);
        let mut frames = Frames::new(10);
        assert_eq!(frames.push(message(4)), None);
        assert_eq!(frames.push(message(6)), None, "exactly the budget");
        assert_eq!(frames.push(message(1)), Some(vec![message(4), message(6)]));
        assert_eq!(frames.push(message(30)), Some(vec![message(1)]));
        assert_eq!(frames.push(message(2)), Some(vec![message(30)]));
        assert_eq!(frames.finish(), Some(vec![message(2)]));
        assert_eq!(Frames::new(10).finish(), None);
    }
}
