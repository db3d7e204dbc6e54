//! Calling service APIs (tsuru's service protocol) to carry out the instance intents the API
//! records: create, bind, unbind, remove; asking a service for an instance's status; and
//! removing an app, which unbinds its instances first.
//!
//! Owns: [`ServiceCalls`], which makes an intent's first call in a task of its own (so a handler
//! that stops waiting, or a client that hangs up, does not abandon it), records its outcome
//! through `Commands::record_service_call` and waits for it at most `services.wait`; the
//! in-flight set that keeps one process from making the same intent's call twice at once; and
//! the reactor (`reactor`, one active node at a time) that makes the calls nobody finished:
//! those that got no answer (at their `retry_at`) and those whose first attempt was lost with
//! its handler or its process.
//!
//! Who makes a call, as the instance's stream says just before it is made: the request that
//! recorded the intent makes the first attempt, if it gets to it within [`GRACE`] of the intent;
//! the reactor makes every later one, and the first once that request must be done with it
//! (its `requested_at` plus one call's timeout plus [`GRACE`]). A call is made at least once: a
//! call answered but not recorded (a crash between the two) is made again, which the protocol's
//! retried-call rules make harmless (`client`).
//!
//! Does not own: the HTTP exchange and what each answer means (`client`), the instance rules
//! and the recorded events (`domain`, `commands`), the routes (`api`).

mod client;
mod reactor;

pub(crate) use reactor::run;
pub use reactor::LOCK_KEY;

use crate::workers::StartError;
use bosun_commands::services::{CallResult, Intent, ServiceCall};
use bosun_commands::{Actor, CommandError, Commands, Origin, Queries, Written};
use bosun_domain::services::{instance_stream_id, InstanceEvent, InstanceName, ServiceName};
use bosun_domain::DomainError;
use bosun_eventstore::{EventStore, StreamId};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;
use uuid::Uuid;

/// How long after its intent the request that recorded it may still start the first attempt;
/// beyond one call's timeout and this, the reactor takes the call over.
pub(crate) const GRACE: Duration = Duration::from_secs(5);
/// How often [`ServiceCalls::finish`] reads the recorded outcome while the call is retried.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Status calls this process makes at once, at most; others wait for their turn.
const STATUS_CALLS: usize = 16;

/// `services:` in the configuration, with the insecure hosts of `http_tasks:`.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    /// How long one call to a service may take, answer read included.
    pub timeout: Duration,
    /// How long a request that recorded an intent waits for its outcome before answering 202.
    pub wait: Duration,
    /// Calls without an answer before the intent is recorded as failed.
    pub max_attempts: u32,
    /// Hosts a service may be called at over plain http.
    pub allow_insecure_hosts: Vec<String>,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            timeout: Duration::from_secs(10),
            wait: Duration::from_secs(20),
            max_attempts: 10,
            allow_insecure_hosts: Vec::new(),
        }
    }
}

/// How an intent stood when [`ServiceCalls::finish`] stopped waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finished {
    /// The service did it, and it is recorded. `env`: the names of the variables the recorded
    /// outcome set (a bind's); empty for the other operations.
    Done { env: Vec<String> },
    /// The service refused, answered what Bosun cannot use, or never answered: recorded as the
    /// operation's failure. `status`: the service's HTTP status, if it answered with one.
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// No outcome recorded yet (or it could not be read): the call is still being made, or is
    /// tried again later.
    Pending,
}

/// How [`ServiceCalls::remove_app`] ended.
#[derive(Debug)]
pub enum AppRemoval {
    /// Every instance unbound, and the app removed.
    Removed(Written),
    /// The service of `instance` (`service/instance`) refused to unbind the app, or never
    /// answered: the app stays, bound to it.
    Refused {
        instance: String,
        status: Option<u16>,
        message: String,
    },
    /// The unbinding from `instance` (`service/instance`) has no outcome yet: the app stays
    /// until it has one.
    Pending { instance: String },
}

/// What a service says of one of its instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// 204.
    Up,
    /// 202.
    Pending,
    /// Any other answer, or none.
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Pending => "pending",
            Health::Down => "down",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET …/instances/{instance}/status`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InstanceStatus {
    pub status: Health,
    /// The service's answer (trimmed, at most 1 KiB), or why it gave none.
    pub message: String,
}

/// Who makes an attempt, which decides whether it may be made (see the [module](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum By {
    /// The request that recorded the intent: the first attempt only.
    Request,
    /// The reactor: every later attempt, and a first one nobody made.
    Reactor,
}

/// Makes services' calls for the instance intents; cheap to clone.
#[derive(Clone)]
pub struct ServiceCalls {
    inner: Arc<Inner>,
}

struct Inner {
    commands: Commands,
    queries: Queries,
    /// No redirects (a redirect would carry the service's password elsewhere, and past the
    /// https rule); `settings.timeout` per call.
    http: reqwest::Client,
    settings: ServiceSettings,
    /// Intents whose call this process is making now.
    in_flight: Mutex<HashSet<Uuid>>,
    /// Turns for status calls ([`STATUS_CALLS`]).
    status_calls: tokio::sync::Semaphore,
}

/// An intent marked in flight; unmarked when dropped.
pub(crate) struct InFlight {
    inner: Arc<Inner>,
    request_id: Uuid,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner.in_flight().remove(&self.request_id);
    }
}

impl Inner {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        // The set stays consistent whatever panicked while holding it.
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ServiceCalls {
    pub fn new(commands: Commands, settings: ServiceSettings) -> Result<Self, StartError> {
        let http = reqwest::Client::builder()
            .user_agent(format!("bosun/{}", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;
        let queries = Queries::new(commands.store.clone());
        Ok(ServiceCalls {
            inner: Arc::new(Inner {
                commands,
                queries,
                http,
                settings,
                in_flight: Mutex::new(HashSet::new()),
                status_calls: tokio::sync::Semaphore::new(STATUS_CALLS),
            }),
        })
    }

    pub fn settings(&self) -> &ServiceSettings {
        &self.inner.settings
    }

    pub(crate) fn queries(&self) -> &Queries {
        &self.inner.queries
    }

    /// Makes the intent's first call in a task of its own (unless it is too late for it, or it
    /// has been made: the reactor's then) and waits for its outcome at most `settings.wait`,
    /// reading it from the instance's stream while the call is tried again. The call goes on
    /// after that; its outcome is recorded when it comes. An intent whose outcome is recorded
    /// answers at once.
    pub async fn finish(&self, intent: Intent) -> Finished {
        let deadline = tokio::time::Instant::now() + self.inner.settings.wait;
        let calls = self.clone();
        let first = intent.clone();
        let task = tokio::spawn(async move { calls.attempt(first, By::Request).await });
        let finished = match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(finished)) => finished,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a service call's task ended without an outcome");
                Finished::Pending
            }
            Err(_) => return Finished::Pending,
        };
        if finished != Finished::Pending {
            return finished;
        }
        self.wait_for_outcome(&intent, deadline).await
    }

    /// How the intent stands in the log now, without making a call or waiting (`Pending` also
    /// when the log cannot be read).
    pub async fn recorded_outcome(&self, intent: &Intent) -> Finished {
        self.recorded(intent, &mut Cursor::default())
            .await
            .unwrap_or(Finished::Pending)
    }

    /// The intent's outcome once it is recorded, read every [`POLL_EVERY`] until `deadline`;
    /// `Pending` if none is by then. Each poll reads only what the stream gained since the last.
    async fn wait_for_outcome(&self, intent: &Intent, deadline: tokio::time::Instant) -> Finished {
        let mut cursor = Cursor::default();
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Finished::Pending;
            }
            tokio::time::sleep_until((now + POLL_EVERY).min(deadline)).await;
            match self.recorded(intent, &mut cursor).await {
                Some(Finished::Pending) | None => {}
                Some(finished) => return finished,
            }
        }
    }

    /// Removes app `app`, for `actor`: unbinds each instance bound to it first (each unbinding
    /// made and waited for as [`Self::finish`] does, without a restart), then removes it. Stops
    /// at the first unbinding refused or not finished within the wait: the app stays.
    pub async fn remove_app(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
    ) -> Result<AppRemoval, CommandError> {
        let commands = &self.inner.commands;
        let bound = commands.app_bound_instances(actor, app).await?;
        // The unbinds write to the app's stream: an If-Match on it is checked once, before
        // them, and not again on the removal they lead to.
        let mut origin = origin.clone();
        if !bound.is_empty() {
            commands.check_app_version(&origin, app).await?;
            origin.if_match = None;
        }
        let origin = &origin;
        for (service, instance) in bound {
            let shown = format!("{service}/{instance}");
            let intent = match commands
                .request_unbind(actor, origin, &service, &instance, app, false)
                .await
            {
                Ok((intent, _)) => intent,
                // Unbound meanwhile.
                Err(CommandError::Domain(DomainError::Conflict {
                    code: "not_bound", ..
                })) => continue,
                Err(e) => return Err(e),
            };
            match self.finish(intent).await {
                Finished::Done { .. } => {}
                Finished::Refused { status, message } => {
                    return Ok(AppRemoval::Refused {
                        instance: shown,
                        status,
                        message,
                    })
                }
                Finished::Pending => return Ok(AppRemoval::Pending { instance: shown }),
            }
        }
        Ok(AppRemoval::Removed(
            commands.remove_app(actor, origin, app).await?,
        ))
    }

    /// `GET {endpoint}/resources/{instance}/status`, for a caller who may read the instance; at
    /// most [`STATUS_CALLS`] at once.
    pub async fn status(
        &self,
        actor: &Actor,
        service: &str,
        instance: &str,
    ) -> Result<InstanceStatus, CommandError> {
        let target = self
            .inner
            .commands
            .instance_status_target(actor, service, instance)
            .await?;
        let _turn = self
            .inner
            .status_calls
            .acquire()
            .await
            .map_err(|_| CommandError::Internal("the status calls' turns are closed".into()))?;
        Ok(client::status(&self.inner.http, &self.inner.settings, &target).await)
    }

    /// One attempt at the intent's call: load it (nothing if its outcome is recorded), call if
    /// `by` may now, record. Returns how the intent stands after it.
    pub(crate) async fn attempt(&self, intent: Intent, by: By) -> Finished {
        match self.mark_in_flight(intent.request_id) {
            Some(in_flight) => self.attempt_marked(intent, by, in_flight).await,
            // Being made by another task of this process, which records it.
            None => Finished::Pending,
        }
    }

    /// [`Self::attempt`] for an intent already marked in flight (unmarked when this ends).
    pub(crate) async fn attempt_marked(
        &self,
        intent: Intent,
        by: By,
        in_flight: InFlight,
    ) -> Finished {
        let span = tracing::info_span!(
            "service_call",
            service = %intent.service,
            instance = %intent.instance,
            request_id = %intent.request_id,
        );
        let finished = self.call_and_record(&intent, by).instrument(span).await;
        drop(in_flight);
        finished
    }

    async fn call_and_record(&self, intent: &Intent, by: By) -> Finished {
        let commands = &self.inner.commands;
        let settings = &self.inner.settings;
        let http = &self.inner.http;
        let call = match commands.service_call(intent).await {
            Ok(Some(call)) => call,
            // Recorded already, by another attempt (another node's, or an earlier one).
            Ok(None) => return self.recorded_outcome(intent).await,
            Err(e) => {
                tracing::warn!(error = %e, "loading a service call failed; it is tried again later");
                return Finished::Pending;
            }
        };
        if !may_call(by, &call, Utc::now(), settings.timeout) {
            // Not this attempt's to make (yet): the reactor makes it when due.
            return Finished::Pending;
        }
        let retried = by == By::Reactor || call.attempts > 0;
        let called = client::call(http, settings, &call, retried).await;
        if called.undo {
            client::undo(http, settings, &call).await;
        }
        let done = matches!(called.result, CallResult::Done { .. });
        match commands.record_service_call(&call, called.result).await {
            Ok(written) => {
                let finished = self.recorded_outcome(intent).await;
                if written.is_some() && done && matches!(finished, Finished::Refused { .. }) {
                    // A bind answered with variables the app cannot take (checked as they are
                    // recorded): undone as one whose answer is unusable.
                    client::undo(http, settings, &call).await;
                }
                finished
            }
            Err(e) => {
                // The reactor makes the call again: at least once.
                tracing::warn!(error = %e, "recording a service call's outcome failed; it is made again later");
                Finished::Pending
            }
        }
    }

    /// Marks `request_id` in flight; `None` if it already is.
    pub(crate) fn mark_in_flight(&self, request_id: Uuid) -> Option<InFlight> {
        if !self.inner.in_flight().insert(request_id) {
            return None;
        }
        Some(InFlight {
            inner: self.inner.clone(),
            request_id,
        })
    }

    /// The intent's recorded outcome, from the instance's stream read on from `cursor` (which
    /// it moves on): `Pending` if none is recorded yet; `None` if the stream cannot be read.
    async fn recorded(&self, intent: &Intent, cursor: &mut Cursor) -> Option<Finished> {
        let service = ServiceName::parse(&intent.service).ok()?;
        let instance = InstanceName::parse(&intent.instance).ok()?;
        let stream = StreamId::new("instance", instance_stream_id(&service, &instance)).ok()?;
        let store = &self.inner.commands.store;
        loop {
            let events = match store.read_stream(&stream, cursor.from, PAGE).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "reading an instance's stream failed");
                    return None;
                }
            };
            for recorded in &events {
                cursor.from = recorded.version + 1;
                if let Ok(event) =
                    bosun_domain::decode::<InstanceEvent>(&recorded.event_type, &recorded.data)
                {
                    if let Some(finished) = outcome_of(&event, intent.request_id) {
                        cursor.outcome = finished;
                    }
                }
            }
            if events.len() < PAGE {
                return Some(cursor.outcome.clone());
            }
        }
    }
}

/// How far [`ServiceCalls::recorded`] read an instance's stream (the version to read from
/// next) and the outcome folded from what it read, kept across the polls of one wait.
struct Cursor {
    from: u64,
    outcome: Finished,
}

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor {
            from: 0,
            outcome: Finished::Pending,
        }
    }
}

const PAGE: usize = 1000;

/// Whether an attempt `by` makes `call` now, as the instance's stream has it: the request the
/// first attempt only, and only within [`GRACE`] of the intent (the reactor takes it over at
/// [`handover`]); the reactor once the call is due.
pub(crate) fn may_call(by: By, call: &ServiceCall, now: DateTime<Utc>, timeout: Duration) -> bool {
    match by {
        By::Request => {
            call.attempts == 0
                && call.retry_at.is_none()
                && now <= call.requested_at + chrono_duration(GRACE)
        }
        By::Reactor => reactor::is_due(call.retry_at, call.requested_at, now, timeout),
    }
}

/// How long after an intent the reactor takes over a first attempt nobody recorded: the request
/// may start it up to [`GRACE`] late, its call and an undoing call take a timeout each, and
/// recording takes up to another [`GRACE`]. Shorter, and both could be calling at once.
pub(crate) fn handover(timeout: Duration) -> Duration {
    timeout * 2 + GRACE * 2
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or_else(|_| chrono::Duration::days(1))
}

/// How the intent `request_id` stands after `event`, if `event` is its outcome.
fn outcome_of(event: &InstanceEvent, request_id: Uuid) -> Option<Finished> {
    use InstanceEvent::*;
    let (id, finished) = match event {
        InstanceBound {
            request_id, envs, ..
        } => (
            request_id,
            Finished::Done {
                env: envs.iter().map(|e| e.name.as_str().to_string()).collect(),
            },
        ),
        InstanceCreated { request_id, .. }
        | InstanceUnbound { request_id, .. }
        | InstanceRemoved { request_id, .. } => (request_id, Finished::Done { env: Vec::new() }),
        InstanceCreationFailed {
            request_id,
            status,
            message,
            ..
        }
        | InstanceBindFailed {
            request_id,
            status,
            message,
            ..
        }
        | InstanceUnbindFailed {
            request_id,
            status,
            message,
            ..
        }
        | InstanceRemovalFailed {
            request_id,
            status,
            message,
            ..
        } => (
            request_id,
            Finished::Refused {
                status: *status,
                message: message.clone(),
            },
        ),
        _ => return None,
    };
    (*id == request_id).then_some(finished)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_domain::apps::{AppName, EnvName, EnvVar};
    use bosun_domain::services::{Endpoint, Operation};
    use chrono::Utc;

    #[test]
    fn an_intent_stands_as_its_outcome_event_says() {
        let id = Uuid::new_v4();
        let at = Utc::now();
        let failed = InstanceEvent::InstanceCreationFailed {
            request_id: id,
            status: Some(500),
            message: "disk full".into(),
            at,
        };
        assert_eq!(
            outcome_of(&failed, id),
            Some(Finished::Refused {
                status: Some(500),
                message: "disk full".into()
            })
        );
        assert_eq!(
            outcome_of(&failed, Uuid::new_v4()),
            None,
            "another intent's"
        );
        let created = InstanceEvent::InstanceCreated { request_id: id, at };
        assert_eq!(
            outcome_of(&created, id),
            Some(Finished::Done { env: vec![] })
        );
        let unanswered = InstanceEvent::ServiceCallFailed {
            request_id: id,
            attempt: 1,
            reason: "timeout".into(),
            retry_at: at,
        };
        assert_eq!(outcome_of(&unanswered, id), None, "not an outcome");
    }

    #[test]
    fn a_bind_done_names_the_variables_it_set() {
        let id = Uuid::new_v4();
        let var = |name: &str| EnvVar::public(EnvName::parse(name).unwrap(), "v".into()).unwrap();
        let bound = InstanceEvent::InstanceBound {
            request_id: id,
            app: AppName::parse("web").unwrap(),
            envs: vec![var("DATABASE_URL"), var("DB_USER")],
            at: Utc::now(),
        };
        assert_eq!(
            outcome_of(&bound, id),
            Some(Finished::Done {
                env: vec!["DATABASE_URL".into(), "DB_USER".into()]
            })
        );
    }

    fn call(
        attempts: u32,
        requested_ago: i64,
        retry_in: Option<i64>,
        now: DateTime<Utc>,
    ) -> ServiceCall {
        ServiceCall {
            intent: Intent {
                service: "db".into(),
                instance: "main".into(),
                request_id: Uuid::new_v4(),
            },
            operation: Operation::Create,
            endpoint: Endpoint::parse("https://db.example.com", &[]).unwrap(),
            password: "pw".into(),
            plan: String::new(),
            team_owner: "ops".into(),
            app_host: String::new(),
            attempts,
            requested_at: now - chrono::Duration::seconds(requested_ago),
            retry_at: retry_in.map(|s| now + chrono::Duration::seconds(s)),
        }
    }

    #[test]
    fn the_request_makes_the_first_attempt_only_and_only_at_once() {
        let now = Utc::now();
        let timeout = Duration::from_secs(10);
        assert!(may_call(By::Request, &call(0, 0, None, now), now, timeout));
        assert!(may_call(By::Request, &call(0, 5, None, now), now, timeout));
        assert!(
            !may_call(By::Request, &call(0, 6, None, now), now, timeout),
            "too late: the reactor may take it over while it is being made"
        );
        assert!(
            !may_call(By::Request, &call(1, 0, Some(-1), now), now, timeout),
            "a retry is the reactor's"
        );
    }

    #[test]
    fn the_reactor_makes_a_call_when_the_stream_says_it_is_due() {
        let now = Utc::now();
        let timeout = Duration::from_secs(10);
        assert!(may_call(
            By::Reactor,
            &call(1, 100, Some(0), now),
            now,
            timeout
        ));
        assert!(
            !may_call(By::Reactor, &call(1, 100, Some(1), now), now, timeout),
            "the read model said due; the stream has a later retry"
        );
        assert!(
            !may_call(By::Reactor, &call(0, 29, None, now), now, timeout),
            "the request may still be making it"
        );
        assert!(may_call(By::Reactor, &call(0, 30, None, now), now, timeout));
    }
}
