//! Reading runnables, and the runnables the reaper is due to look at.
//!
//! A runnable is read by its owner, an admin, and anyone with the read scope once it has an
//! image (so it may be forked); one not read is a 404, as a missing one, and a list holds only
//! those read. Anyone but its owner or an admin reads its image's start command, not its
//! current one. Any reader needs the read scope; an app token reads none of it. Its files, a
//! file's content and a folder's listing, are commands' (`Commands::runnable_file`,
//! `Commands::runnable_files`: reading them is an access). Its output (`runnable_logs`) is
//! read by its owner or an admin (403 for anyone else who sees it), and is no access.
//!
//! Does not own: the writes (`commands/src/runnables`), the tables (`projections`).

use super::{Page, Queries};
use crate::actor::Actor;
use crate::error::CommandError;
use crate::runnables::{no_runnable, sees};
use bosun_domain::identity::Scope;
use bosun_domain::runnables::RunPhase;
use bosun_projections::read_models::runnables::{self as model, RunnableQuery, RunnableView};
use chrono::Utc;
use std::time::Duration;
use uuid::Uuid;

/// `GET /v1/runnables`' filters.
#[derive(Clone, Debug, Default)]
pub struct RunnableFilter {
    /// Runnables of this user.
    pub owner: Option<String>,
    /// Runnables forked from this one.
    pub parent: Option<Uuid>,
    /// Only those with an image (`true`), or without (`false`).
    pub has_image: Option<bool>,
}

/// A page of a runnable's output, as a job's output is answered: the text from the offset asked
/// for, where to read on, and whether nothing more can come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnableLogs {
    pub text: String,
    /// The byte offset after `text` (the one asked for when there is nothing past it).
    pub next: i64,
    /// Nothing runs nor is starting (stopped or in error, and no process of any generation
    /// alive), and the output holds nothing past `next`: reading on gives nothing until it is
    /// started again.
    pub complete: bool,
}

/// Whom a read is for: `None` for one who reads every runnable as it is (an admin, the server),
/// the user otherwise.
fn viewer(actor: &Actor) -> Option<String> {
    match actor.username() {
        Some(username) if !actor.is_admin() => Some(username.to_string()),
        _ => None,
    }
}

impl Queries {
    /// A page of the runnables the caller reads, the newest first, and how many there are: an
    /// admin every one, a user their own and those with an image.
    pub async fn runnables(
        &self,
        actor: &Actor,
        filter: RunnableFilter,
        page: Page,
    ) -> Result<(Vec<RunnableView>, i64), CommandError> {
        actor.require(Scope::Read)?;
        let query = RunnableQuery {
            viewer: viewer(actor),
            owner: filter.owner,
            parent: filter.parent,
            has_image: filter.has_image,
        };
        Ok(model::list(&**self.client().await?, &query, page).await?)
    }

    /// Runnable `id`; 404 if the caller may not read it.
    pub async fn runnable(&self, actor: &Actor, id: Uuid) -> Result<RunnableView, CommandError> {
        actor.require(Scope::Read)?;
        model::get(&**self.client().await?, id, viewer(actor).as_deref())
            .await?
            .filter(|r| sees(actor, &r.owner, r.image.is_some()))
            .ok_or_else(|| no_runnable(id))
    }

    /// Runnable `id`'s output from byte `offset` on (every run's, stdout and stderr as they
    /// came), at most `max` bytes but at least a whole chunk: its owner's or an admin's, with the
    /// read scope (404 for one the caller does not see, then 403).
    pub async fn runnable_logs(
        &self,
        actor: &Actor,
        id: Uuid,
        offset: i64,
        max: i64,
    ) -> Result<RunnableLogs, CommandError> {
        // The runnable first: if nothing ran then, its output was whole.
        let runnable = self.runnable(actor, id).await?;
        if !actor.is(&runnable.owner) && !actor.is_admin() {
            return Err(CommandError::Forbidden(format!(
                "only runnable {id}'s owner or an admin may read its output"
            )));
        }
        let (text, next, end) = model::output(&**self.client().await?, id, offset, max).await?;
        let next = next.max(offset);
        // The phase alone is not enough: a restarted run stopped before its new generation
        // started is `stopped` while the old process still runs (and writes) until its runner
        // stops it; the run on record has a pid until then.
        let idle = matches!(
            RunPhase::parse(&runnable.state),
            Some(RunPhase::Stopped | RunPhase::Error)
        ) && runnable.run.as_ref().is_none_or(|run| run.pid.is_none());
        Ok(RunnableLogs {
            text,
            next,
            complete: idle && next >= end,
        })
    }

    /// At most `limit` runnables without an image whose last access is `reap_after` old now,
    /// the longest idle first: what the runner's reaper looks at (`Commands::reap_runnable`
    /// decides on each one's stream). For the server itself, not a caller's read.
    pub async fn reapable_runnables(
        &self,
        reap_after: Duration,
        limit: i64,
    ) -> Result<Vec<Uuid>, CommandError> {
        let older_than = chrono::Duration::from_std(reap_after)
            .ok()
            .and_then(|after| Utc::now().checked_sub_signed(after));
        let Some(older_than) = older_than else {
            // Longer ago than time goes back: nothing is that idle.
            return Ok(vec![]);
        };
        Ok(model::reapable(&**self.client().await?, older_than, limit).await?)
    }
}
