//! Teams and their members. Any user may create a team (write scope) and becomes its member;
//! members and admins manage it.

use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{Team, TeamCommand, TeamName, User, Username, REGISTRATION_REQUIRED};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use bosun_projections::read_models::apps as apps_model;
use bosun_projections::read_models::identity as model;
use bosun_projections::read_models::services as services_model;

/// How many names a refusal lists before `…`.
const LISTED: usize = 5;

/// `names` for a refusal, the first [`LISTED`] of them: `a, b, …`.
fn listed(names: &[String]) -> String {
    let mut shown = names
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED {
        shown.push_str(", …");
    }
    shown
}

impl<S: EventStore> Commands<S> {
    #[tracing::instrument(skip_all, fields(actor = actor.name(), team = name.as_str()))]
    pub async fn create_team(
        &self,
        actor: &Actor,
        origin: &Origin,
        name: TeamName,
    ) -> Result<(model::TeamView, Written), CommandError> {
        actor.require_writer()?;
        let Some(creator) = actor.username() else {
            return Err(CommandError::Forbidden(
                "only a user can create a team".into(),
            ));
        };
        let creator = Username::parse(creator)?;
        let (_, written) = self
            .execute::<Team>(name.as_str(), actor, origin, |state| {
                state.handle(TeamCommand::Create {
                    name: name.clone(),
                    creator: creator.clone(),
                })
            })
            .await?;
        Ok((self.team_view(name.as_str()).await?, written))
    }

    #[tracing::instrument(skip_all, fields(actor = actor.name(), team = team, username = username.as_str()))]
    pub async fn add_team_member(
        &self,
        actor: &Actor,
        origin: &Origin,
        team: &str,
        username: Username,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        self.require_member_or_admin(actor, team)?;
        if username.is_anonymous() {
            return Err(DomainError::forbidden(
                REGISTRATION_REQUIRED,
                format!("user {username} is anonymous: it joins no team until it registers"),
            )
            .into());
        }
        let (user, _) = self.load::<User>(username.as_str()).await?;
        let user_exists = user.active;
        let (_, written) = self
            .execute::<Team>(team, actor, origin, |state| {
                state.handle(TeamCommand::AddMember {
                    username: username.clone(),
                    user_exists,
                })
            })
            .await?;
        Ok(written)
    }

    #[tracing::instrument(skip_all, fields(actor = actor.name(), team = team, username = username.as_str()))]
    pub async fn remove_team_member(
        &self,
        actor: &Actor,
        origin: &Origin,
        team: &str,
        username: Username,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        self.require_member_or_admin(actor, team)?;
        let (_, written) = self
            .execute::<Team>(team, actor, origin, |state| {
                state.handle(TeamCommand::RemoveMember {
                    username: username.clone(),
                })
            })
            .await?;
        Ok(written)
    }

    /// [`Commands::add_team_member`] for the user holding `email` (compared without case), for
    /// the surfaces that know users by email (tsuru's `PUT /teams/{team}/{email}`). The team's
    /// rule comes first: only its members and admins learn whether the address is anyone's
    /// (404 for none), as only they may add anyone by name.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), team = team))]
    pub async fn add_team_member_by_email(
        &self,
        actor: &Actor,
        origin: &Origin,
        team: &str,
        email: &str,
    ) -> Result<Written, CommandError> {
        let username = self.member_by_email(actor, team, email).await?;
        self.add_team_member(actor, origin, team, username).await
    }

    /// [`Commands::remove_team_member`] for the user holding `email`, under the team's rule
    /// first, as [`Commands::add_team_member_by_email`].
    #[tracing::instrument(skip_all, fields(actor = actor.name(), team = team))]
    pub async fn remove_team_member_by_email(
        &self,
        actor: &Actor,
        origin: &Origin,
        team: &str,
        email: &str,
    ) -> Result<Written, CommandError> {
        let username = self.member_by_email(actor, team, email).await?;
        self.remove_team_member(actor, origin, team, username).await
    }

    /// The holder of `email`, for a change of team `team`'s members: refused as the change
    /// would refuse the caller (403) before the address is looked up, then 404 for an address
    /// no user holds.
    async fn member_by_email(
        &self,
        actor: &Actor,
        team: &str,
        email: &str,
    ) -> Result<Username, CommandError> {
        actor.require_writer()?;
        self.require_member_or_admin(actor, team)?;
        let client = self.read_models().await?;
        let holder = model::email_owner(&**client, email).await?;
        drop(client);
        let Some(username) = holder else {
            return Err(DomainError::NotFound(format!("no user with email {email}")).into());
        };
        Ok(Username::parse(&username)?)
    }

    /// Removes team `team` (204), refused, in this order: 409 `team_has_instances` while a
    /// service instance has it as its team owner, 409 `team_has_services` while a service (not
    /// removed) has it among its teams (its owner teams are among them), 409 `team_has_apps`
    /// while an app (not removed) has it among its teams. Apps, services and instances are
    /// authorized by team name, so a team of that name created later would otherwise inherit
    /// them. Which have it is read from the apps and services read models once caught up with
    /// the log, as `remove_platform` does. The race this leaves is narrow: a grant of the team
    /// (or an app or instance created for it) appended between that read and the removal is not
    /// seen, and keeps the removed team's name, which a team created later under that name
    /// would inherit until it is revoked. The refusals name what they count: the caller is a
    /// member of the team (or an admin), who sees all of it.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), team = team))]
    pub async fn remove_team(
        &self,
        actor: &Actor,
        origin: &Origin,
        team: &str,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        self.require_member_or_admin(actor, team)?;
        let (state, _) = self.load::<Team>(team).await?;
        if state.active {
            self.catch_up().await?;
            let client = self.read_models().await?;
            let query = apps_model::AppQuery {
                team: Some(team.to_string()),
                ..apps_model::AppQuery::default()
            };
            let (apps, total) = apps_model::list(
                &**client,
                &query,
                model::Page {
                    limit: 5,
                    offset: 0,
                },
            )
            .await?;
            let services = services_model::services(&**client, Some(&[team.to_string()])).await?;
            let mut instances = Vec::new();
            for service in services_model::services(&**client, None).await? {
                for instance in
                    services_model::instances(&**client, &service.name, Some(&[team.to_string()]))
                        .await?
                {
                    instances.push(format!("{}/{}", instance.service, instance.name));
                }
            }
            drop(client);
            if !instances.is_empty() {
                return Err(DomainError::conflict(
                    "team_has_instances",
                    format!(
                        "team {team} owns {} service instance(s) ({}): remove them first",
                        instances.len(),
                        listed(&instances)
                    ),
                )
                .into());
            }
            if !services.is_empty() {
                let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
                return Err(DomainError::conflict(
                    "team_has_services",
                    format!(
                        "team {team} has {} service(s) ({}): revoke it from them, or remove them, \
                         first",
                        names.len(),
                        listed(&names)
                    ),
                )
                .into());
            }
            if total > 0 {
                let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
                let more = if total > names.len() as i64 {
                    ", …"
                } else {
                    ""
                };
                return Err(DomainError::conflict(
                    "team_has_apps",
                    format!(
                        "team {team} has {total} app(s) ({}{more}): revoke it from them, or remove them, first",
                        names.join(", ")
                    ),
                )
                .into());
            }
        }
        let (_, written) = self
            .execute::<Team>(team, actor, origin, |state| {
                state.handle(TeamCommand::Remove)
            })
            .await?;
        Ok(written)
    }

    fn require_member_or_admin(&self, actor: &Actor, team: &str) -> Result<(), CommandError> {
        if actor.is_member(team) || actor.is_admin() {
            Ok(())
        } else {
            Err(CommandError::Forbidden(format!(
                "only members of team {team} or an admin may change it"
            )))
        }
    }

    pub(crate) async fn team_view(&self, name: &str) -> Result<model::TeamView, CommandError> {
        let client = self.read_models().await?;
        model::team(&**client, name).await?.ok_or_else(|| {
            CommandError::Domain(bosun_domain::DomainError::NotFound(format!(
                "no team {name}"
            )))
        })
    }
}
