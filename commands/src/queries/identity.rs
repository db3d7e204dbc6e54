//! Reading users, teams and tokens: an admin lists users and reads anyone; a user reads
//! themself; every reader lists and reads teams; a token list is its owner's (an admin's: all).
//! An anonymous user reads itself and its tokens only ([`Actor::require_reader`]).

use super::{Page, Queries};
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::identity::Scope;
use bosun_domain::DomainError;
use bosun_projections::read_models::identity::{self as model, TeamView, TokenView, UserView};

impl Queries {
    pub async fn users(
        &self,
        actor: &Actor,
        page: Page,
    ) -> Result<(Vec<UserView>, i64), CommandError> {
        actor.require_reader()?;
        actor.require_admin()?;
        Ok(model::users(&**self.client().await?, page).await?)
    }

    pub async fn user(&self, actor: &Actor, username: &str) -> Result<UserView, CommandError> {
        // An anonymous user reads itself, and no other.
        match actor.is(username) {
            true => actor.require(Scope::Read)?,
            false => actor.require_reader()?,
        }
        actor.require_self_or_admin(username)?;
        model::user(&**self.client().await?, username)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no user {username}")).into())
    }

    /// The caller (`GET /v1/users/me`): any user's token, anonymous or not; an app token is no
    /// user (403).
    pub async fn me(&self, actor: &Actor) -> Result<UserView, CommandError> {
        actor.require(Scope::Read)?;
        let Some(username) = actor.username() else {
            return Err(CommandError::Forbidden(
                "only a user's token has a user".into(),
            ));
        };
        self.user(actor, username).await
    }

    pub async fn teams(
        &self,
        actor: &Actor,
        page: Page,
    ) -> Result<(Vec<TeamView>, i64), CommandError> {
        actor.require_reader()?;
        Ok(model::teams(&**self.client().await?, page).await?)
    }

    pub async fn team(&self, actor: &Actor, name: &str) -> Result<TeamView, CommandError> {
        actor.require_reader()?;
        model::team(&**self.client().await?, name)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no team {name}")).into())
    }

    /// The caller's tokens, newest first; an admin's list holds everyone's.
    pub async fn tokens(
        &self,
        actor: &Actor,
        page: Page,
    ) -> Result<(Vec<TokenView>, i64), CommandError> {
        actor.require(Scope::Read)?;
        let owner = if actor.is_admin() {
            None
        } else {
            Some(actor.username().ok_or(CommandError::Unauthenticated)?)
        };
        Ok(model::tokens(&**self.client().await?, owner, page).await?)
    }
}
