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

    /// The name of the user holding `email` (compared without case), for the surfaces that
    /// know users by email (tsuru names the user whose quota or keys are read, or who is
    /// removed, by their address). An address says no more than a name would to whoever may
    /// not read that user ([`Queries::user`]'s rule): an admin learns its holder (404 for none);
    /// anyone else learns only their own address's, and for any other address, registered or
    /// not, gets the 403 `Queries::user` gives for another user, before anything of the
    /// address is told. An anonymous user (or a token without the read scope) asks nothing.
    /// A team's member is named by email through
    /// [`Commands::add_team_member_by_email`](crate::Commands::add_team_member_by_email)
    /// instead, under the team's rule.
    pub async fn username_by_email(
        &self,
        actor: &Actor,
        email: &str,
    ) -> Result<String, CommandError> {
        actor.require_reader()?;
        let holder = model::email_owner(&**self.client().await?, email).await?;
        match holder {
            Some(username) if actor.is(&username) || actor.is_admin() => Ok(username),
            None if actor.is_admin() => {
                Err(DomainError::NotFound(format!("no user with email {email}")).into())
            }
            // Refused as `user` refuses another user, naming only what the caller gave.
            _ => match actor.require_self_or_admin(email) {
                Err(refused) => Err(refused),
                Ok(()) => Err(CommandError::Forbidden(format!(
                    "only {email} or an admin may do this"
                ))),
            },
        }
    }

    /// For a login by email only (tsuru's `POST /users/{email}/tokens`): the name of the user
    /// holding `email`, to hand to [`Commands::login`](crate::Commands::login), or `None`. It
    /// asks for no caller (a login has none), so its answer must reach none: a caller told
    /// which addresses are registered could list them. `login` answers a name that is no
    /// user's as it answers a wrong password, after the same work, so a login by email says
    /// no more than one by name.
    pub async fn login_username(&self, email: &str) -> Result<Option<String>, CommandError> {
        Ok(model::email_owner(&**self.client().await?, email).await?)
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
