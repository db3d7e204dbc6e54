//! Calling service APIs (tsuru's service protocol) to carry out the instance intents the API
//! records: create, bind, unbind, remove; and asking a service for an instance's status.
//!
//! Owns: [`ServiceCalls`], which makes an intent's call in a task of its own (so a handler that
//! stops waiting, or a client that hangs up, does not abandon it) and records its outcome through
//! `Commands::record_service_call`; the in-flight set that keeps one process from making the same
//! intent's call twice at once; and the reactor (`reactor`, one active node at a time) that tries
//! again the calls nobody finished: those that got no answer (at their `retry_at`) and those whose
//! first attempt was lost with its handler or its process.
//!
//! A call is made at least once: a call answered but not recorded (a crash between the two) is
//! made again, which the protocol's retried-call rules make harmless (`client`).
//!
//! Does not own: the HTTP exchange and what each answer means (`client`), the instance rules
//! and the recorded events (`domain`, `commands`), the routes (`api`).

mod client;
mod reactor;

pub(crate) use reactor::run;
pub use reactor::LOCK_KEY;

use crate::workers::StartError;
use bosun_commands::services::{CallResult, Intent};
use bosun_commands::{Actor, CommandError, Commands, Queries};
use bosun_domain::services::{instance_stream_id, InstanceEvent, InstanceName, ServiceName};
use bosun_eventstore::{EventStore, StreamId};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;
use uuid::Uuid;

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
    /// The service did it, and it is recorded.
    Done,
    /// The service refused, answered what Bosun cannot use, or never answered: recorded as the
    /// operation's failure. `status`: the service's HTTP status, if it answered with one.
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// No outcome recorded yet: the call is still being made, or is tried again later.
    Pending,
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
            }),
        })
    }

    pub fn settings(&self) -> &ServiceSettings {
        &self.inner.settings
    }

    pub(crate) fn queries(&self) -> &Queries {
        &self.inner.queries
    }

    /// Makes the intent's call in a task of its own and waits for its outcome at most
    /// `settings.wait`. The call goes on after that; its outcome is recorded when it comes.
    pub async fn finish(&self, intent: Intent) -> Finished {
        let calls = self.clone();
        let task = tokio::spawn(async move { calls.attempt(intent, false).await });
        match tokio::time::timeout(self.inner.settings.wait, task).await {
            Ok(Ok(finished)) => finished,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a service call's task ended without an outcome");
                Finished::Pending
            }
            Err(_) => Finished::Pending,
        }
    }

    /// `GET {endpoint}/resources/{instance}/status`, for a caller who may read the instance.
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
        Ok(client::status(&self.inner.http, &self.inner.settings, &target).await)
    }

    /// How many intents' calls this process is making now.
    pub(crate) fn in_flight_count(&self) -> usize {
        self.inner.in_flight().len()
    }

    /// One attempt at the intent's call: load it (nothing if its outcome is recorded), call,
    /// record. `picked_up`: by the reactor, so an earlier attempt may have reached the service.
    /// Returns how the intent stands after it.
    pub(crate) async fn attempt(&self, intent: Intent, picked_up: bool) -> Finished {
        match self.mark_in_flight(intent.request_id) {
            Some(in_flight) => self.attempt_marked(intent, picked_up, in_flight).await,
            // Being made by another task of this process, which records it.
            None => Finished::Pending,
        }
    }

    /// [`Self::attempt`] for an intent already marked in flight (unmarked when this ends).
    pub(crate) async fn attempt_marked(
        &self,
        intent: Intent,
        picked_up: bool,
        in_flight: InFlight,
    ) -> Finished {
        let span = tracing::info_span!(
            "service_call",
            service = %intent.service,
            instance = %intent.instance,
            request_id = %intent.request_id,
        );
        let finished = self
            .call_and_record(&intent, picked_up)
            .instrument(span)
            .await;
        drop(in_flight);
        finished
    }

    async fn call_and_record(&self, intent: &Intent, picked_up: bool) -> Finished {
        let commands = &self.inner.commands;
        let call = match commands.service_call(intent).await {
            Ok(Some(call)) => call,
            // Recorded already, by another attempt (another node's, or an earlier one).
            Ok(None) => return self.recorded(intent).await.unwrap_or(Finished::Pending),
            Err(e) => {
                tracing::warn!(error = %e, "loading a service call failed; it is tried again later");
                return Finished::Pending;
            }
        };
        let retried = picked_up || call.attempts > 0;
        let result = client::call(&self.inner.http, &self.inner.settings, &call, retried).await;
        let fallback = finished_of(&result);
        match commands.record_service_call(&call, result).await {
            Ok(_) => self.recorded(intent).await.unwrap_or(fallback),
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

    /// The intent's recorded outcome, from the instance's stream: `Pending` if none is recorded
    /// yet; `None` if the stream cannot be read.
    async fn recorded(&self, intent: &Intent) -> Option<Finished> {
        let service = ServiceName::parse(&intent.service).ok()?;
        let instance = InstanceName::parse(&intent.instance).ok()?;
        let stream = StreamId::new("instance", instance_stream_id(&service, &instance)).ok()?;
        let store = &self.inner.commands.store;
        let mut outcome = Finished::Pending;
        let mut from = 0;
        loop {
            let events = match store.read_stream(&stream, from, PAGE).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "reading an instance's stream failed");
                    return None;
                }
            };
            for recorded in &events {
                from = recorded.version + 1;
                if let Ok(event) =
                    bosun_domain::decode::<InstanceEvent>(&recorded.event_type, &recorded.data)
                {
                    if let Some(finished) = outcome_of(&event, intent.request_id) {
                        outcome = finished;
                    }
                }
            }
            if events.len() < PAGE {
                return Some(outcome);
            }
        }
    }
}

const PAGE: usize = 1000;

/// How the intent `request_id` stands after `event`, if `event` is its outcome.
fn outcome_of(event: &InstanceEvent, request_id: Uuid) -> Option<Finished> {
    use InstanceEvent::*;
    let (id, finished) = match event {
        InstanceCreated { request_id, .. }
        | InstanceBound { request_id, .. }
        | InstanceUnbound { request_id, .. }
        | InstanceRemoved { request_id, .. } => (request_id, Finished::Done),
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

/// What `result` records, as [`Finished`] says it (when the recorded outcome cannot be read).
fn finished_of(result: &CallResult) -> Finished {
    match result {
        CallResult::Done { .. } => Finished::Done,
        CallResult::Refused { status, message } => Finished::Refused {
            status: *status,
            message: message.clone(),
        },
        CallResult::NoAnswer {
            retry_at: Some(_), ..
        } => Finished::Pending,
        CallResult::NoAnswer {
            reason,
            retry_at: None,
        } => Finished::Refused {
            status: None,
            message: format!("the service did not answer: {reason}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(outcome_of(&created, id), Some(Finished::Done));
        let unanswered = InstanceEvent::ServiceCallFailed {
            request_id: id,
            attempt: 1,
            reason: "timeout".into(),
            retry_at: at,
        };
        assert_eq!(outcome_of(&unanswered, id), None, "not an outcome");
    }

    #[test]
    fn a_result_stands_as_recorded() {
        assert_eq!(
            finished_of(&CallResult::Done { vars: vec![] }),
            Finished::Done
        );
        assert_eq!(
            finished_of(&CallResult::NoAnswer {
                reason: "timeout".into(),
                retry_at: Some(Utc::now())
            }),
            Finished::Pending
        );
        assert!(matches!(
            finished_of(&CallResult::NoAnswer {
                reason: "timeout".into(),
                retry_at: None
            }),
            Finished::Refused { status: None, .. }
        ));
    }
}
