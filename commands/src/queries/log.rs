//! Reading the log itself. The audit trail is an admin's (acting with the admin scope); the log
//! is everyone's with the read scope, each seeing the streams they may read
//! ([`Queries::may_read_stream`], the one rule for `/v1/events`, its live feed and
//! `/v1/streams/{id}`): an admin every stream; anyone else their own user and quota streams,
//! their teams', their tokens', the jobs they may read, their teams' apps with their units, the
//! instances and services of their teams, the runnables they see, and the orchestrations and
//! platforms any reader sees. Every event read comes out redacted
//! (`bosun_domain::identity::redact`: hashes, sealed values, the secrets of URLs stored in clear
//! before sealing); the log keeps them.

use super::Queries;
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::identity::redact;
use bosun_domain::DomainError;
use bosun_eventstore::{EventStore, Filter, Page, RecordedEvent, StreamId};
use bosun_projections::read_models::audit::{list as entries, AuditEntry, AuditQuery};
use bosun_projections::read_models::identity as identity_model;
use std::collections::HashMap;

/// The most events one read of `/v1/events` looks through for a caller who sees only some.
pub const SCAN_LIMIT: usize = 10_000;

/// A page of the log as one caller sees it.
pub struct SeenPage {
    /// The events the caller may read, in position order, redacted.
    pub events: Vec<RecordedEvent>,
    pub head: u64,
    /// Every position up to this one was looked at: the next read starts after it.
    pub scanned_to: u64,
}

/// Whether `actor` may read what is the whole log's alone (the audit trail).
pub fn may_read_log(actor: &Actor) -> Result<(), CommandError> {
    actor.require_reader()?;
    actor.require_admin().map_err(|_| {
        CommandError::Forbidden(
            "reading the whole log needs an admin token with the read and admin scopes; read a stream you may read at /v1/streams/{stream_id}".into(),
        )
    })
}

impl Queries {
    /// Whether `actor` may read what is the whole log's alone (the audit trail).
    pub fn may_read_log(&self, actor: &Actor) -> Result<(), CommandError> {
        may_read_log(actor)
    }

    /// Up to `max` events matching `filter` from `from` on that `actor` may read, with the head,
    /// redacted. An admin's page is the log's; anyone else's is looked for through at most
    /// [`SCAN_LIMIT`] events, and no further than `projected` (the position the read models
    /// have reached: who may read a stream is read there, so an event not yet projected is
    /// never judged), so a page may be short before the head: `scanned_to` says where to go on
    /// from.
    pub async fn events(
        &self,
        actor: &Actor,
        from: u64,
        max: usize,
        filter: &Filter,
        projected: u64,
    ) -> Result<SeenPage, CommandError> {
        actor.require_reader()?;
        if actor.is_admin() {
            let mut page = self.store.read_page(from, max, filter).await?;
            redacted(&mut page.events);
            let last = page.events.last().map(|e| e.position);
            // A short page read to the head; a full one up to its last event.
            let scanned_to = match last {
                Some(last) if page.events.len() >= max => last,
                _ => page.head.max(from.saturating_sub(1)),
            };
            return Ok(SeenPage {
                events: page.events,
                head: page.head,
                scanned_to,
            });
        }
        let mut readable: HashMap<String, bool> = HashMap::new();
        let mut seen = SeenPage {
            events: Vec::new(),
            head: 0,
            scanned_to: from.saturating_sub(1),
        };
        let mut scanned = 0;
        while seen.events.len() < max && scanned < SCAN_LIMIT {
            let want = (SCAN_LIMIT - scanned).min(1000);
            let page: Page = self
                .store
                .read_page(seen.scanned_to + 1, want, filter)
                .await?;
            seen.head = page.head;
            let end = page.head.min(projected);
            let Some(last) = page.events.last().map(|e| e.position) else {
                seen.scanned_to = seen.scanned_to.max(end);
                break;
            };
            let read = page.events.len();
            let mut unprojected = false;
            for event in page.events {
                if seen.events.len() == max {
                    break;
                }
                if event.position > projected {
                    unprojected = true;
                    break;
                }
                seen.scanned_to = event.position;
                let stream = event.stream_id.as_str().to_string();
                let may = match readable.get(&stream) {
                    Some(may) => *may,
                    None => {
                        let may = self.may_read_stream(actor, &event.stream_id).await?;
                        readable.insert(stream, may);
                        may
                    }
                };
                if may {
                    seen.events.push(event);
                }
            }
            scanned += read;
            if unprojected {
                break;
            }
            if read < want || seen.scanned_to < last {
                // The head, or a full page.
                if read < want && seen.events.len() < max {
                    seen.scanned_to = seen.scanned_to.max(end);
                }
                break;
            }
        }
        redacted(&mut seen.events);
        Ok(seen)
    }

    pub async fn audit(
        &self,
        actor: &Actor,
        query: &AuditQuery,
    ) -> Result<(Vec<AuditEntry>, i64), CommandError> {
        self.may_read_log(actor)?;
        Ok(entries(&**self.client().await?, query).await?)
    }

    /// Up to `max` events of `stream` from version `from` on (its first is 0), and up to
    /// version `to` if given, redacted: 404 for a stream with none at all or without version
    /// `to`, 403 for one the actor may not read.
    pub async fn stream(
        &self,
        actor: &Actor,
        stream: &str,
        from: u64,
        to: Option<u64>,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        actor.require_reader()?;
        let not_found = || DomainError::NotFound(format!("no events in stream {stream}"));
        let id = StreamId::parse(stream).map_err(|_| not_found())?;
        if !self.may_read_stream(actor, &id).await? {
            return Err(CommandError::Forbidden(format!(
                "you may not read stream {stream}"
            )));
        }
        if let Some(to) = to {
            if self.store.read_stream(&id, to, 1).await?.is_empty() {
                return Err(
                    DomainError::NotFound(format!("stream {stream} has no version {to}")).into(),
                );
            }
        }
        let max = match to {
            Some(to) => {
                max.min(usize::try_from((to + 1).saturating_sub(from)).unwrap_or(usize::MAX))
            }
            None => max,
        };
        let mut events = self.store.read_stream(&id, from, max).await?;
        if events.is_empty() && self.store.read_stream(&id, 0, 1).await?.is_empty() {
            return Err(not_found().into());
        }
        redacted(&mut events);
        Ok(events)
    }

    /// Whether `actor` may read stream `stream`: the rule of the module's doc. An id that names
    /// nothing (yet, or any more) is not readable, except where any reader may read the kind.
    pub async fn may_read_stream(
        &self,
        actor: &Actor,
        stream: &StreamId,
    ) -> Result<bool, CommandError> {
        if actor.require_reader().is_err() {
            return Ok(false);
        }
        if actor.is_admin() {
            return Ok(true);
        }
        let id = stream.id();
        let uuid = || uuid::Uuid::parse_str(id).ok();
        Ok(match stream.category() {
            "user" | "quota" => actor.is(id),
            "team" => actor.is_member(id),
            "orchestration" | "platform" => true,
            "token" => match uuid() {
                Some(token_id) => identity_model::token(&**self.client().await?, token_id)
                    .await?
                    .is_some_and(|t| actor.is(&t.username)),
                None => false,
            },
            "job" => match uuid() {
                Some(job_id) => self.may_read_job(actor, job_id).await?,
                None => false,
            },
            "app" => readable(self.app(actor, id).await)?,
            // `<app>.<env>.<process>.<index>`: an app's name holds no dot.
            "unit" => match id.split_once('.') {
                Some((app, _)) => readable(self.app(actor, app).await)?,
                None => false,
            },
            "service" => readable(self.service(actor, id).await)?,
            "instance" => match id.split_once('.') {
                Some((service, instance)) => {
                    readable(self.instance(actor, service, instance).await)?
                }
                None => false,
            },
            // Its owner's: its events hold what only the owner sees of it (its start command,
            // its output), even once its image is everyone's.
            "runnable" | "runnable_log" => match uuid() {
                Some(runnable) => match self.runnable(actor, runnable).await {
                    Ok(view) => actor.is(&view.owner),
                    Err(e) => readable::<()>(Err(e))?,
                },
                None => false,
            },
            _ => false,
        })
    }
}

/// A read's outcome as whether it may be read: refused or not there is `false`; an outage is
/// an error.
fn readable<T>(read: Result<T, CommandError>) -> Result<bool, CommandError> {
    match read {
        Ok(_) => Ok(true),
        Err(CommandError::Forbidden(_) | CommandError::Unauthenticated) => Ok(false),
        Err(CommandError::Domain(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hides the password hashes and token digests of identity events, every sealed value (an
/// app's private env value, an orchestration's URL) and the secret parts of URLs stored in clear
/// before sealing: the log keeps them for the aggregates and the runner, but no reader of it may
/// see them (an admin included: a hash can be attacked offline, a digest is all a token check
/// needs). The rules: `bosun_domain::identity::redact`.
pub fn redacted(events: &mut [RecordedEvent]) {
    for event in events {
        redact(event.stream_id.category(), &mut event.data);
    }
}
