//! Reading runnables, and the runnables the reaper is due to look at.
//!
//! A runnable is read by its owner, an admin, and anyone with the read scope once it has an
//! image (so it may be forked); one not read is a 404, as a missing one, and a list holds only
//! those read. Anyone but its owner or an admin reads its image's start command, not its
//! current one. Any reader needs the read scope; an app token reads none of it. Its files, a
//! file's content and a folder's listing, are commands' (`Commands::runnable_file`,
//! `Commands::runnable_files`: reading them is an access).
//!
//! Does not own: the writes (`commands/src/runnables`), the tables (`projections`).

use super::{Page, Queries};
use crate::actor::Actor;
use crate::error::CommandError;
use crate::runnables::{no_runnable, sees};
use bosun_domain::identity::Scope;
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
