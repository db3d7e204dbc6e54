//! A user's SSH public keys: the user themself or an admin adds and removes them. The rules
//! (a name names one key, a key is under one name) are the user aggregate's.

use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{KeyName, PublicKey, User, UserCommand};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use bosun_projections::read_models::keys::{self as model, KeyView};

impl<S: EventStore> Commands<S> {
    /// Adds `key` under `name` to `username`'s keys: 409 `key_name_taken` for a name they use,
    /// 409 `key_exists` for a key they hold under another name.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username, key = name.as_str()))]
    pub async fn add_key(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        name: KeyName,
        key: PublicKey,
    ) -> Result<(KeyView, Written), CommandError> {
        actor.require_writer()?;
        actor.require_self_or_admin(username)?;
        let (_, written) = self
            .execute::<User>(username, actor, origin, |user| {
                user.handle(UserCommand::AddKey {
                    name: name.clone(),
                    key: key.clone(),
                })
            })
            .await?;
        let client = self.read_models().await?;
        let view = model::get(&**client, username, name.as_str())
            .await?
            .ok_or_else(|| {
                CommandError::Store(format!(
                    "the key {name} of {username} is not in the read models yet"
                ))
            })?;
        Ok((view, written))
    }

    /// Puts `key` under `name` among `username`'s keys in one write: the key they have under
    /// that name is replaced, or, with none of that name, `key` is added. Refused as
    /// [`Commands::add_key`] refuses (409 `key_exists` for a key they hold under another name)
    /// with nothing written: the old key stays (tsuru 1.x's `key-add --force`).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username, key = name.as_str()))]
    pub async fn replace_key(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        name: KeyName,
        key: PublicKey,
    ) -> Result<(KeyView, Written), CommandError> {
        actor.require_writer()?;
        actor.require_self_or_admin(username)?;
        let (_, written) = self
            .execute::<User>(username, actor, origin, |user| {
                let removed = match user.handle(UserCommand::RemoveKey { name: name.clone() }) {
                    Ok(events) => events,
                    // None of that name: an addition.
                    Err(DomainError::NotFound(_)) if user.exists() => vec![],
                    Err(refused) => return Err(refused),
                };
                let mut after = user.clone();
                removed.iter().for_each(|event| after.apply(event));
                let added = after.handle(UserCommand::AddKey {
                    name: name.clone(),
                    key: key.clone(),
                })?;
                Ok(removed.into_iter().chain(added).collect())
            })
            .await?;
        let client = self.read_models().await?;
        let view = model::get(&**client, username, name.as_str())
            .await?
            .ok_or_else(|| {
                CommandError::Store(format!(
                    "the key {name} of {username} is not in the read models yet"
                ))
            })?;
        Ok((view, written))
    }

    /// Removes `username`'s key `name` (404 if they have none of that name).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username, key = name))]
    pub async fn remove_key(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        name: &str,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        actor.require_self_or_admin(username)?;
        // A name no key can have names no key.
        let name = KeyName::parse(name).map_err(|_| {
            DomainError::NotFound(format!("user {username} has no key named {name}"))
        })?;
        let (_, written) = self
            .execute::<User>(username, actor, origin, |user| {
                user.handle(UserCommand::RemoveKey { name: name.clone() })
            })
            .await?;
        Ok(written)
    }
}
