//! Reading apps, their environment, platforms and quotas.
//!
//! An app is read by whoever may act on it ([`Actor::may_act_on_app`]): a member of one of its
//! teams, an admin, that app's token; a list holds only those. A private variable's value is
//! never read here (the read model holds none): it shows as `null`. Platforms are read by any
//! holder of the read scope; a quota by its user or an admin. An anonymous user reads none of
//! it ([`Actor::require_reader`]).

use super::{Page, Queries};
use crate::actor::{Actor, AppAction};
use crate::apps::AppRules;
use crate::error::CommandError;
use bosun_domain::DomainError;
use bosun_projections::read_models::apps::{
    self as model, AppQuery, AppView, EnvView, PlatformView, QuotaView,
};
use bosun_projections::read_models::identity as users;
use bosun_projections::read_models::units as units_model;

/// `GET /v1/apps`' filters.
#[derive(Clone, Debug, Default)]
pub struct AppFilter {
    /// Apps this team has access to.
    pub team: Option<String>,
    /// Apps on this platform.
    pub platform: Option<String>,
    /// Apps whose name holds this text.
    pub name_contains: Option<String>,
    /// Apps whose team owner is this team.
    pub team_owner: Option<String>,
    /// Apps this user owns (created).
    pub owner: Option<String>,
}

fn no_app(name: &str) -> CommandError {
    DomainError::NotFound(format!("no app {name}")).into()
}

impl Queries {
    /// A page of the apps the caller may see, by name, with their units, and how many there are:
    /// an admin sees every app, a user those of their teams, an app token its app.
    pub async fn apps(
        &self,
        actor: &Actor,
        filter: AppFilter,
        page: Page,
    ) -> Result<(Vec<AppView>, i64), CommandError> {
        let mut query = AppQuery {
            team: filter.team,
            platform: filter.platform,
            name_contains: filter.name_contains,
            team_owner: filter.team_owner,
            owner: filter.owner,
            ..AppQuery::default()
        };
        match actor {
            Actor::App(token) => query.only = Some(token.app().to_string()),
            Actor::User { teams, .. } => {
                actor.require_reader()?;
                if !actor.is_admin() {
                    query.of_teams = Some(teams.clone());
                }
            }
            Actor::Anonymous => return Err(CommandError::Unauthenticated),
            Actor::System(_) => {}
        }
        let client = self.client().await?;
        let (mut apps, total) = model::list(&**client, &query, page).await?;
        for app in &mut apps {
            app.units = units_model::of_app(&**client, &app.name).await?;
        }
        Ok((apps, total))
    }

    /// App `name` with its units: 403 for an anonymous user (or a user's token without the read
    /// scope), then 404 for no such app (or a removed one), then 403 for a caller who may not
    /// act on it.
    pub async fn app(&self, actor: &Actor, name: &str) -> Result<AppView, CommandError> {
        refuse_unregistered(actor)?;
        let client = self.client().await?;
        let mut app = model::get(&**client, name)
            .await?
            .ok_or_else(|| no_app(name))?;
        actor.require_on_app(name, &app.teams, AppAction::Read)?;
        app.units = units_model::of_app(&**client, name).await?;
        Ok(app)
    }

    /// App `name`'s variables, by name; a private one's value is `null`. 403, 404, then 403,
    /// as [`Queries::app`].
    pub async fn app_env(&self, actor: &Actor, name: &str) -> Result<Vec<EnvView>, CommandError> {
        refuse_unregistered(actor)?;
        let client = self.client().await?;
        let app = model::get(&**client, name)
            .await?
            .ok_or_else(|| no_app(name))?;
        actor.require_on_app(name, &app.teams, AppAction::Read)?;
        Ok(model::env(&**client, name).await?)
    }

    /// A page of the platforms, by name, and how many there are: any holder of the read scope.
    pub async fn platforms(
        &self,
        actor: &Actor,
        page: Page,
    ) -> Result<(Vec<PlatformView>, i64), CommandError> {
        actor.require_reader()?;
        Ok(model::platforms(&**self.client().await?, page).await?)
    }

    /// Platform `name` (404 for none): any holder of the read scope.
    pub async fn platform(&self, actor: &Actor, name: &str) -> Result<PlatformView, CommandError> {
        actor.require_reader()?;
        model::platform(&**self.client().await?, name)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no platform {name}")).into())
    }

    /// `username`'s app quota: the limit that applies (theirs, else the configured default;
    /// `-1` unlimited) and how many apps they own. The user themself or an admin; 404 for an
    /// unknown user.
    pub async fn quota(
        &self,
        actor: &Actor,
        username: &str,
        rules: &AppRules,
    ) -> Result<QuotaView, CommandError> {
        actor.require_reader()?;
        actor.require_self_or_admin(username)?;
        let client = self.client().await?;
        if users::user(&**client, username).await?.is_none() {
            return Err(DomainError::NotFound(format!("no user {username}")).into());
        }
        Ok(model::quota(&**client, username, rules.default_quota).await?)
    }
}

/// A user's token is refused before the app is looked up, so an anonymous user cannot tell
/// which app names exist by their 404s. An app token is left to `require_on_app`.
fn refuse_unregistered(actor: &Actor) -> Result<(), CommandError> {
    match actor {
        Actor::User { .. } => actor.require_reader(),
        _ => Ok(()),
    }
}
