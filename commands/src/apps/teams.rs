//! Granting and revoking an app's teams: whoever may write on the app. The team granted must
//! exist (404); the last team and the team owner cannot be revoked (409, the domain's rules).

use crate::actor::{Actor, AppAction, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::apps::AppCommand;
use bosun_domain::identity::{Team, TeamName};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;

/// A team named in a path: a name no team can have is no team (404).
fn team_in_path(team: &str) -> Result<TeamName, CommandError> {
    TeamName::parse(team).map_err(|_| DomainError::NotFound(format!("no team {team}")).into())
}

impl<S: EventStore> Commands<S> {
    /// Gives team `team` access to app `app` (204); granting it again changes nothing.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, team = team))]
    pub async fn grant_app_team(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        team: &str,
    ) -> Result<Written, CommandError> {
        self.authorized_app(actor, app, AppAction::Manage).await?;
        let team = team_in_path(team)?;
        let (registered, _) = self.load::<Team>(team.as_str()).await?;
        let team_exists = registered.active;
        let (_, written) = self
            .execute_on_app(actor, origin, app, AppAction::Manage, |state| {
                Ok(state.handle(AppCommand::GrantTeam {
                    team: team.clone(),
                    team_exists,
                })?)
            })
            .await?;
        Ok(written)
    }

    /// Takes team `team`'s access to app `app` away (204).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, team = team))]
    pub async fn revoke_app_team(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        team: &str,
    ) -> Result<Written, CommandError> {
        self.authorized_app(actor, app, AppAction::Manage).await?;
        let team = team_in_path(team)?;
        let (_, written) = self
            .execute_on_app(actor, origin, app, AppAction::Manage, |state| {
                Ok(state.handle(AppCommand::RevokeTeam { team: team.clone() })?)
            })
            .await?;
        Ok(written)
    }
}
