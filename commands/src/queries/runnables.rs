//! Reading runnables and listing their files, and the runnables the reaper is due to look at.
//!
//! A runnable is read by its owner, an admin, and anyone with the read scope once it has an
//! image (so it may be forked); one not read is a 404, as a missing one, and a list holds only
//! those read. Its files are listed by its owner or an admin (403 for anyone else who reads
//! it). Any reader needs the read scope; an app token reads none of it. A file's content is a
//! command's (`Commands::runnable_file`: reading it is an access).
//!
//! Does not own: the writes (`commands/src/runnables`), the tables (`projections`).

use super::{Page, Queries};
use crate::actor::Actor;
use crate::error::CommandError;
use crate::runnables::{no_runnable, sees};
use bosun_domain::identity::Scope;
use bosun_domain::runnables::FilePath;
use bosun_domain::DomainError;
use bosun_projections::read_models::runnables::{
    self as model, FileView, RunnableQuery, RunnableView,
};
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
        let viewer = match actor.username() {
            Some(username) if !actor.is_admin() => Some(username.to_string()),
            _ => None,
        };
        let query = RunnableQuery {
            viewer,
            owner: filter.owner,
            parent: filter.parent,
            has_image: filter.has_image,
        };
        Ok(model::list(&**self.client().await?, &query, page).await?)
    }

    /// Runnable `id`; 404 if the caller may not read it.
    pub async fn runnable(&self, actor: &Actor, id: Uuid) -> Result<RunnableView, CommandError> {
        actor.require(Scope::Read)?;
        model::get(&**self.client().await?, id)
            .await?
            .filter(|r| sees(actor, &r.owner, r.image.is_some()))
            .ok_or_else(|| no_runnable(id))
    }

    /// The files and folders right under `path` in runnable `id`'s tree (`None`, `""` or `/`:
    /// its top), by path; the file alone when `path` is one. 404 for a runnable the caller may
    /// not read, or a path that is neither a file nor a folder; 403 for one who reads it but is
    /// neither its owner nor an admin; 400 `path` for a path that leaves the tree.
    pub async fn runnable_files(
        &self,
        actor: &Actor,
        id: Uuid,
        path: Option<&str>,
    ) -> Result<Vec<FileView>, CommandError> {
        actor.require(Scope::Read)?;
        let client = self.client().await?;
        let runnable = model::get(&**client, id)
            .await?
            .filter(|r| sees(actor, &r.owner, r.image.is_some()))
            .ok_or_else(|| no_runnable(id))?;
        if !actor.is(&runnable.owner) && !actor.is_admin() {
            return Err(CommandError::Forbidden(format!(
                "only runnable {id}'s owner or an admin may list its files"
            )));
        }
        let under = match path {
            None | Some("") | Some("/") => None,
            Some(path) => Some(FilePath::parse(path)?),
        };
        let listed = model::files(&**client, id, under.as_ref().map(|p| p.as_str())).await?;
        match under {
            Some(under) if listed.is_empty() => Err(DomainError::NotFound(format!(
                "no file or folder {under} in runnable {id}"
            ))
            .into()),
            _ => Ok(listed),
        }
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
