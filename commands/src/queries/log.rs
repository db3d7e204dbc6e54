//! Reading the log itself: the whole log and the audit trail are an admin's (acting with the
//! admin scope); one stream is readable by an admin, or by a holder of the read scope for their
//! own user stream, their teams', their tokens' and the jobs they may read. Every event read
//! comes out redacted (`bosun_domain::identity::redact`: hashes, sealed values, the secrets of
//! URLs stored in clear before sealing); the log keeps them.

use super::Queries;
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::identity::redact;
use bosun_domain::DomainError;
use bosun_eventstore::{EventStore, Filter, Page, RecordedEvent, StreamId};
use bosun_projections::read_models::audit::{list as entries, AuditEntry, AuditQuery};
use bosun_projections::read_models::identity as identity_model;

/// Whether `actor` may read the whole log (its events, the audit, the live feed).
pub fn may_read_log(actor: &Actor) -> Result<(), CommandError> {
    actor.require_reader()?;
    actor.require_admin().map_err(|_| {
        CommandError::Forbidden(
            "reading the whole log needs an admin token with the read and admin scopes; read a stream you may read at /v1/streams/{stream_id}".into(),
        )
    })
}

impl Queries {
    /// Whether `actor` may read the whole log (its events, the audit, the live feed).
    pub fn may_read_log(&self, actor: &Actor) -> Result<(), CommandError> {
        may_read_log(actor)
    }

    /// Up to `max` events matching `filter` from `from` on, with the head, redacted.
    pub async fn events(
        &self,
        actor: &Actor,
        from: u64,
        max: usize,
        filter: &Filter,
    ) -> Result<Page, CommandError> {
        self.may_read_log(actor)?;
        let mut page = self.store.read_page(from, max, filter).await?;
        redacted(&mut page.events);
        Ok(page)
    }

    pub async fn audit(
        &self,
        actor: &Actor,
        query: &AuditQuery,
    ) -> Result<(Vec<AuditEntry>, i64), CommandError> {
        self.may_read_log(actor)?;
        Ok(entries(&**self.client().await?, query).await?)
    }

    /// Up to `max` events of `stream` from version `from` on, redacted: 404 for a stream with
    /// none at all, 403 for one the actor may not read.
    pub async fn stream(
        &self,
        actor: &Actor,
        stream: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        actor.require_reader()?;
        let not_found = || DomainError::NotFound(format!("no events in stream {stream}"));
        let id = StreamId::parse(stream).map_err(|_| not_found())?;
        if !actor.is_admin() && !self.may_read_stream(actor, &id).await? {
            return Err(CommandError::Forbidden(format!(
                "you may not read stream {stream}"
            )));
        }
        let mut events = self.store.read_stream(&id, from, max).await?;
        if events.is_empty() && self.store.read_stream(&id, 0, 1).await?.is_empty() {
            return Err(not_found().into());
        }
        redacted(&mut events);
        Ok(events)
    }

    async fn may_read_stream(
        &self,
        actor: &Actor,
        stream: &StreamId,
    ) -> Result<bool, CommandError> {
        let id = stream.id();
        Ok(match stream.category() {
            "user" => actor.is(id),
            "team" => actor.is_member(id),
            "token" => match uuid::Uuid::parse_str(id) {
                Ok(token_id) => identity_model::token(&**self.client().await?, token_id)
                    .await?
                    .is_some_and(|t| actor.is(&t.username)),
                Err(_) => false,
            },
            "job" => match uuid::Uuid::parse_str(id) {
                Ok(job_id) => self.may_read_job(actor, job_id).await?,
                Err(_) => false,
            },
            _ => false,
        })
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
