//! Registering, changing and removing users.

use super::secrets::{hash_password, verify_password};
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{
    Email, EmailChange, Password, Scope, Team, TeamCommand, User, UserCommand, Username,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_projections::read_models::identity as model;

pub struct NewUser {
    pub username: Username,
    pub password: Password,
    pub email: Option<Email>,
    pub admin: bool,
}

/// A partial update; absent fields stay as they are.
#[derive(Default)]
pub struct UserChanges {
    pub password: Option<Password>,
    pub admin: Option<bool>,
    /// Kept, cleared or set.
    pub email: EmailChange,
}

impl Commands {
    /// An admin registers a user.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = user.username.as_str()))]
    pub async fn register_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        user: NewUser,
    ) -> Result<(model::UserView, Written), CommandError> {
        actor.require(Scope::Write)?;
        actor.require_admin()?;
        let written = self
            .with_identity_lock(self.register_locked(actor, origin, &user))
            .await?;
        Ok((self.user_view(user.username.as_str()).await?, written))
    }

    /// Registration under the identity lock, which the caller holds: the lock and the caught-up
    /// read model make the checks of names (without regard to case) and emails across users
    /// race-free, as `ann` and `ANN` are different streams.
    pub(crate) async fn register_locked(
        &self,
        actor: &Actor,
        origin: &Origin,
        user: &NewUser,
    ) -> Result<Written, CommandError> {
        let password_hash = hash_password(&user.password).await?;
        self.catch_up().await?;
        let email_owner = match &user.email {
            Some(email) => self.email_owner(email).await?,
            None => None,
        };
        let name_holder = self.name_holder(&user.username).await?;
        let (_, written) = self
            .execute::<User>(user.username.as_str(), actor, origin, |state| {
                state.handle(UserCommand::Register {
                    username: user.username.clone(),
                    email: user.email.clone(),
                    admin: user.admin,
                    password_hash: password_hash.clone(),
                    email_owner: email_owner.clone(),
                    name_holder: name_holder.clone(),
                })
            })
            .await?;
        Ok(written)
    }

    /// An admin changes a user's password, admin flag or email.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username))]
    pub async fn update_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        changes: UserChanges,
    ) -> Result<(model::UserView, Written), CommandError> {
        actor.require(Scope::Write)?;
        actor.require_admin()?;
        let password_hash = match &changes.password {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let written = self
            .with_identity_lock(async {
                self.catch_up().await?;
                let email_owner = match &changes.email {
                    EmailChange::Set(email) => self.email_owner(email).await?,
                    EmailChange::Keep | EmailChange::Clear => None,
                };
                let admin_count = self.admin_count().await?;
                let (_, written) = self
                    .execute::<User>(username, actor, origin, |state| {
                        state.handle(UserCommand::Update {
                            email: changes.email.clone(),
                            admin: changes.admin,
                            password_hash: password_hash.clone(),
                            email_owner: email_owner.clone(),
                            admin_count,
                        })
                    })
                    .await?;
                Ok(written)
            })
            .await?;
        Ok((self.user_view(username).await?, written))
    }

    /// A user changes their own password, proving they know the old one (403 if not).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username))]
    pub async fn change_password(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        old: &str,
        new: Password,
    ) -> Result<Written, CommandError> {
        actor.require(Scope::Write)?;
        if !actor.is(username) {
            return Err(CommandError::Forbidden(
                "only the user themself may change their password this way".into(),
            ));
        }
        let (state, _) = self.load::<User>(username).await?;
        let current = state.password_hash.filter(|_| state.active).map(|h| h.0);
        if !verify_password(old, current).await {
            return Err(CommandError::Forbidden("the old password is wrong".into()));
        }
        let password_hash = hash_password(&new).await?;
        let (_, written) = self
            .execute::<User>(username, actor, origin, |state| {
                state.handle(UserCommand::ChangePassword {
                    password_hash: password_hash.clone(),
                })
            })
            .await?;
        Ok(written)
    }

    /// A user removes themself, or an admin removes them; their tokens stop working.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username))]
    pub async fn remove_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
    ) -> Result<Written, CommandError> {
        actor.require(Scope::Write)?;
        actor.require_self_or_admin(username)?;
        self.with_identity_lock(async {
            self.catch_up().await?;
            let admin_count = self.admin_count().await?;
            let teams = match self.user_view(username).await {
                Ok(user) => user.teams,
                Err(_) => vec![],
            };
            let (_, mut written) = self
                .execute::<User>(username, actor, origin, |state| {
                    state.handle(UserCommand::Remove { admin_count })
                })
                .await?;
            // The user leaves their teams too, so a later user of the same name starts in none
            // and can be added again.
            let member = Username::parse(username)?;
            for team in teams {
                let left = self
                    .execute::<Team>(&team, actor, origin, |state| {
                        state.handle(TeamCommand::RemoveMember {
                            username: member.clone(),
                        })
                    })
                    .await;
                match left {
                    Ok((_, w)) => written.position = w.position.or(written.position),
                    Err(CommandError::Domain(DomainError::NotFound(_))) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(written)
        })
        .await
    }

    pub(crate) async fn user_view(&self, username: &str) -> Result<model::UserView, CommandError> {
        let client = self.store.pool().get().await?;
        model::user(&**client, username).await?.ok_or_else(|| {
            CommandError::Domain(DomainError::NotFound(format!("no user {username}")))
        })
    }

    async fn email_owner(&self, email: &Email) -> Result<Option<Username>, CommandError> {
        let client = self.store.pool().get().await?;
        let owner = model::email_owner(&**client, email.as_str()).await?;
        Ok(owner.and_then(|o| Username::parse(&o).ok()))
    }

    /// The user whose name equals `username` without regard to case, if any.
    async fn name_holder(&self, username: &Username) -> Result<Option<Username>, CommandError> {
        let client = self.store.pool().get().await?;
        let holder = model::name_holder(&**client, username.as_str()).await?;
        Ok(holder.and_then(|h| Username::parse(&h).ok()))
    }

    pub(crate) async fn admin_count(&self) -> Result<usize, CommandError> {
        let client = self.store.pool().get().await?;
        Ok(model::admins(&**client).await?.len())
    }
}
