//! A user changing their own password and email in one command (OpenPAI's `PUT
//! /api/v2/users/me` with both: `/compat/openpai`), so that a refused email (taken, not the
//! caller's to change) leaves the password as it was, and the other way round.
//!
//! The rules are those of the two commands it joins: the new password needs the old one and
//! only the user themself may give it (`change_password`); an email is an admin's to change
//! (`update_user`). Every check is made before the first write; the writes are one update of
//! the user (`users.rs`'s `update`: the new email claimed first, then the user's events in one
//! append).
//!
//! Does not own: changing one of the two alone (`change_password`, `update_user`).

use super::secrets::verify_password;
use super::users::UserChanges;
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{EmailChange, Password, User};
use bosun_domain::DomainError;
use bosun_eventstore::EventStore;

impl<S: EventStore> Commands<S> {
    /// The user `username` (the caller) sets a new password, proving they know the old one
    /// (403 if not), and changes their email (403 unless an admin), in one update.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username))]
    pub async fn change_own_password_and_email(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        old: &str,
        new: Password,
        email: EmailChange,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        if !actor.is(username) {
            return Err(CommandError::Forbidden(
                "only the user themself may change their password this way".into(),
            ));
        }
        if !matches!(email, EmailChange::Keep) {
            actor.require_admin()?;
        }
        let (state, _) = self.load::<User>(username).await?;
        if !state.active {
            return Err(DomainError::NotFound(format!("no user {username}")).into());
        }
        let current = state.password_hash.map(|h| h.0);
        if !verify_password(old, current).await {
            return Err(CommandError::Forbidden("the old password is wrong".into()));
        }
        let changes = UserChanges {
            password: Some(new),
            admin: None,
            email,
        };
        let written = self.update(actor, origin, username, &changes).await?;
        self.settle(written).await;
        Ok(written)
    }
}
