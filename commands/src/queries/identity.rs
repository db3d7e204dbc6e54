//! Reading users, teams and tokens: an admin lists users and reads anyone; a user reads
//! themself; every reader lists and reads teams; a token list is its owner's (an admin's: all).

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
        actor.require(Scope::Read)?;
        actor.require_admin()?;
        Ok(model::users(&**self.client().await?, page).await?)
    }

    pub async fn user(&self, actor: &Actor, username: &str) -> Result<UserView, CommandError> {
        actor.require(Scope::Read)?;
        actor.require_self_or_admin(username)?;
        model::user(&**self.client().await?, username)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no user {username}")).into())
    }

    pub async fn teams(
        &self,
        actor: &Actor,
        page: Page,
    ) -> Result<(Vec<TeamView>, i64), CommandError> {
        actor.require(Scope::Read)?;
        Ok(model::teams(&**self.client().await?, page).await?)
    }

    pub async fn team(&self, actor: &Actor, name: &str) -> Result<TeamView, CommandError> {
        actor.require(Scope::Read)?;
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
