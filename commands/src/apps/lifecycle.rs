//! Creating, changing and removing an app.
//!
//! - Create: the caller (a user) must be a member of the app's `team_owner` (default: their only
//!   team; 400 `team_owner` if they have none or several), unless an admin; the team must exist
//!   (400 `team_owner`) and the platform be enabled (read from its stream, 400 `platform`). The
//!   caller is the app's owner, an admin too: one atomic append of `AppCreated` and
//!   `QuotaAppTaken` on the owner's quota stream, at its exact version, so two creations racing
//!   for a user's last place cannot both have it (403 `quota_exceeded`).
//! - Update: a new `team_owner` must exist (400 `team_owner`) and the caller be a member of it
//!   unless an admin (403), and it is granted the app if it had no access yet; a new platform
//!   must be enabled (400 `platform`). Values equal to the current ones change nothing.
//! - Remove: one atomic append of `AppRemoved`, `QuotaAppReleased` on its owner's quota stream
//!   and `CnameReleased` for each of its cnames. A swapped app (its address serves another app's
//!   units, see `AppsSwapped`) is unswapped first, in the same append: the app whose address
//!   served the removed app's units (its partner `X`, found by following `units_of` from the
//!   removed app round the cycle swaps make) gets what the removed app's address served, so
//!   after a plain swap of two apps the partner serves its own units again, and after chained
//!   swaps every other app keeps serving the units it did. This is one more `AppsSwapped`
//!   (`app1` the partner, `app2` the removed app, not `cname_only`, each keeping its own
//!   cnames) on both streams, before the `AppRemoved`; as any swap of units it bumps both apps'
//!   restart generations. A partner that cannot be found (a broken chain: an app in it was
//!   removed without unswapping) leaves the others as they are: the app is removed without
//!   unswapping, rather than planned again until contended. The partner's `AppsSwapped` asks
//!   no right on the partner: this is intended, removing an app undoes its part in the swaps
//!   (authorized on both apps when they were made), and the partner's address serves what it
//!   would have served had the removed app never been swapped.

use super::{after, no_app, now, require_on, AppRules, AppView};
use crate::actor::{Actor, AppAction, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Held, Written, ATTEMPTS};
use bosun_domain::apps::{
    App, AppCommand, AppEvent, AppName, CnameClaim, CnameClaimCommand, Platform, PlatformChoice,
    PlatformName, Quota, QuotaCommand,
};
use bosun_domain::identity::{Team, TeamName, Username};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use std::collections::BTreeSet;

/// What `POST /v1/apps` asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateApp {
    pub name: String,
    pub platform: String,
    /// Default: the caller's only team.
    pub team_owner: Option<String>,
    pub description: Option<String>,
}

/// What `PATCH /v1/apps/{app}` asks for: each `Some` changes.
#[derive(Clone, Debug, Default)]
pub struct UpdateApp {
    pub description: Option<String>,
    pub platform: Option<String>,
    pub team_owner: Option<String>,
}

/// The longest chain of swapped apps followed to find a removed app's partner.
const MAX_SWAP_CHAIN: usize = 256;

fn team_owner_invalid(message: impl Into<String>) -> CommandError {
    DomainError::invalid("team_owner", message).into()
}

impl<S: EventStore> Commands<S> {
    /// Creates an app (201): see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = request.name.as_str()))]
    pub async fn create_app(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &AppRules,
        request: CreateApp,
    ) -> Result<(AppView, Written), CommandError> {
        actor.require_writer()?;
        let Some(owner) = actor.username() else {
            return Err(CommandError::Forbidden(
                "only a user can create an app".into(),
            ));
        };
        let owner = Username::parse(owner)?;
        let name = AppName::parse(&request.name)?;
        let team_owner = match &request.team_owner {
            Some(team) => team.clone(),
            None => only_team(actor)?,
        };
        let team_owner = self.team_to_own(actor, &team_owner).await?;
        let platform = self.platform_choice(&request.platform).await?;
        let description = request.description.unwrap_or_default();
        let at = now();
        let held = (
            self.hold::<App>(name.as_str()).await?,
            self.hold::<Quota>(owner.as_str()).await?,
        );
        let ((state, version), written) = self
            .execute_batch(held, actor, origin, |(app, quota), batch| {
                let created = app.state.handle(AppCommand::Create {
                    name: name.clone(),
                    platform: platform.clone(),
                    team_owner: team_owner.clone(),
                    owner: owner.clone(),
                    description: description.clone(),
                    at,
                })?;
                let taken = quota.state.handle(QuotaCommand::Take {
                    app: name.clone(),
                    default_limit: rules.default_quota,
                })?;
                let answer = after(app, &created);
                batch.add(app, created)?;
                batch.add(quota, taken)?;
                Ok(answer)
            })
            .await?;
        // A new app has no units yet: no need to ask the units read model.
        let view = AppView::of_state(&state, version)
            .ok_or_else(|| CommandError::Internal("an app without its creation".into()))?;
        Ok((view, written))
    }

    /// Changes an app's description, platform or team owner (200 with the app).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app))]
    pub async fn update_app(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        request: UpdateApp,
    ) -> Result<(AppView, Written), CommandError> {
        self.authorized_app(actor, app, AppAction::Manage).await?;
        let platform = match &request.platform {
            Some(platform) => Some(self.platform_choice(platform).await?),
            None => None,
        };
        let at = now();
        for _ in 0..ATTEMPTS {
            let (current, _) = self.load::<App>(app).await?;
            require_on(actor, app, &current, AppAction::Manage)?;
            // Its own team owner again changes nothing: no membership asked. Whether it is its
            // own is decided again on the state held: if the team owner changed meanwhile, the
            // update is planned again (and the team checked).
            let (team_owner, unchecked) = match &request.team_owner {
                Some(team) if current.team_owner().is_some_and(|t| t.as_str() == team) => {
                    (current.team_owner().cloned(), true)
                }
                Some(team) => (Some(self.team_to_own(actor, team).await?), false),
                None => (None, false),
            };
            let (done, written) = self
                .execute_batch(
                    self.hold::<App>(app).await?,
                    actor,
                    origin,
                    |held, batch| {
                        require_on(actor, app, &held.state, AppAction::Manage)?;
                        if unchecked && held.state.team_owner() != team_owner.as_ref() {
                            return Ok(None);
                        }
                        let events = held.state.handle(AppCommand::Update {
                            description: request.description.clone(),
                            platform: platform.clone(),
                            team_owner: team_owner.clone(),
                            at,
                        })?;
                        let answer = after(held, &events);
                        batch.add(held, events)?;
                        Ok(Some(answer))
                    },
                )
                .await?;
            if let Some((state, version)) = done {
                return Ok((self.app_answer(&state, version).await?, written));
            }
        }
        Err(CommandError::Contended(format!("app-{app}")))
    }

    /// The `If-Match` of `origin` on app `app` checked now: for a removal that writes to the
    /// app's stream (its unbinds) before the removal itself, which then goes without it.
    pub async fn check_app_version(&self, origin: &Origin, app: &str) -> Result<(), CommandError> {
        if origin.if_match.is_none() {
            return Ok(());
        }
        self.hold::<App>(app).await?.check_version(origin)
    }

    /// Removes an app (204): see the [module](self). Only the right to change the removed app
    /// is asked: the unswap written to its swap partner's stream needs none on the partner, on
    /// purpose (the removal undoes the swap, which was authorized on both apps when made). A
    /// partner that cannot be found (a broken chain of swaps) is no obstacle: the app is
    /// removed without unswapping.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app))]
    pub async fn remove_app(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
    ) -> Result<Written, CommandError> {
        self.authorized_app(actor, app, AppAction::Manage).await?;
        let at = now();
        for _ in 0..ATTEMPTS {
            // The streams the removal writes, as the app's stream says now; checked again on
            // the held states, and planned again if they changed meanwhile.
            let (state, _) = self.load::<App>(app).await?;
            require_on(actor, app, &state, AppAction::Manage)?;
            let owner = state
                .owner()
                .ok_or_else(|| CommandError::Internal(format!("app {app} has no owner")))?
                .clone();
            let partner = self.swap_partner(&state).await?;
            let units_of = state.units_of().cloned();
            let mut claims = Vec::new();
            for cname in state.cnames() {
                claims.push(self.hold::<CnameClaim>(cname.as_str()).await?);
            }
            let mut partners = Vec::new();
            if let Partner::Found(partner) = &partner {
                partners.push(self.hold::<App>(partner.as_str()).await?);
            }
            let held = (
                self.hold::<App>(app).await?,
                self.hold::<Quota>(owner.as_str()).await?,
                claims,
                partners,
            );
            let (done, written) = self
                .execute_batch(
                    held,
                    actor,
                    origin,
                    |(held, quota, claims, partners), batch| {
                        let state = &held.state;
                        require_on(actor, app, state, AppAction::Manage)?;
                        let held_cnames: BTreeSet<&str> = claims.iter().map(Held::id).collect();
                        let cnames: BTreeSet<&str> =
                            state.cnames().iter().map(|c| c.as_str()).collect();
                        let partner_now = partners.first().map(|p| &p.state);
                        if state.owner() != Some(&owner)
                            || held_cnames != cnames
                            || state.units_of() != units_of.as_ref()
                            || !partner.holds(state, partner_now)
                        {
                            return Ok(false);
                        }
                        let mut events = Vec::new();
                        if let (Some(partner), Some(partner_state)) =
                            (partners.first(), partner_now)
                        {
                            let unswap = unswap(partner_state, state)?;
                            batch.add(partner, vec![unswap.clone()])?;
                            events.push(unswap);
                        }
                        events.extend(held.state.handle(AppCommand::Remove { at })?);
                        let name = state.active_name()?.clone();
                        batch.add(held, events)?;
                        batch.add(
                            quota,
                            quota
                                .state
                                .handle(QuotaCommand::Release { app: name.clone() })?,
                        )?;
                        for claim in claims {
                            let cname = state
                                .cnames()
                                .iter()
                                .find(|c| c.as_str() == claim.id())
                                .ok_or_else(|| {
                                    CommandError::Internal("a cname held twice".into())
                                })?;
                            let released = claim.state.handle(CnameClaimCommand::Release {
                                cname: cname.clone(),
                                app: name.clone(),
                            })?;
                            batch.add(claim, released)?;
                        }
                        Ok(true)
                    },
                )
                .await?;
            if done {
                return Ok(written);
            }
        }
        Err(CommandError::Contended(format!("app-{app}")))
    }

    /// The app whose address serves `state`'s units, if another one does (`state` was swapped):
    /// found by following `units_of` from `state` round the cycle swaps make. [`Partner::Own`]
    /// when the app serves its own units, [`Partner::Broken`] when the chain does not come back
    /// to it.
    async fn swap_partner(&self, state: &App) -> Result<Partner, CommandError> {
        let Some(name) = state.name() else {
            return Ok(Partner::Own);
        };
        let mut next = match state.units_of() {
            Some(units_of) if units_of != name => units_of.clone(),
            _ => return Ok(Partner::Own),
        };
        for _ in 0..MAX_SWAP_CHAIN {
            let (other, _) = self.load::<App>(next.as_str()).await?;
            if !other.is_active() {
                break;
            }
            match other.units_of() {
                Some(units_of) if units_of == name => return Ok(Partner::Found(next)),
                Some(units_of) if units_of != &next => next = units_of.clone(),
                _ => break,
            }
        }
        tracing::warn!(app = %name, "a swapped app's partner was not found: removed without unswapping");
        Ok(Partner::Broken)
    }

    /// Team `team` for an app to be owned by, given by `actor`: a member of it unless an admin
    /// (403), and a registered team (400 `team_owner`).
    async fn team_to_own(&self, actor: &Actor, team: &str) -> Result<TeamName, CommandError> {
        let name = TeamName::parse(team).map_err(|e| match e {
            DomainError::Invalid { message, .. } => team_owner_invalid(message),
            other => other.into(),
        })?;
        if !actor.is_member(name.as_str()) && !actor.is_admin() {
            return Err(CommandError::Forbidden(format!(
                "only a member of team {name} (or an admin) may give it an app"
            )));
        }
        let (state, _) = self.load::<Team>(name.as_str()).await?;
        if !state.active {
            return Err(team_owner_invalid(format!("no team {name}")));
        }
        Ok(name)
    }

    /// Platform `platform` with its status as its stream has it now (400 `platform` for a bad
    /// name; the domain refuses an unknown or disabled one).
    pub(crate) async fn platform_choice(
        &self,
        platform: &str,
    ) -> Result<PlatformChoice, CommandError> {
        let name = PlatformName::parse_field("platform", platform)?;
        let (state, _) = self.load::<Platform>(name.as_str()).await?;
        Ok(PlatformChoice {
            name,
            status: state.status(),
        })
    }
}

/// The caller's only team: the default `team_owner` (400 if they have none or several).
fn only_team(actor: &Actor) -> Result<String, CommandError> {
    let teams = match actor {
        Actor::User { teams, .. } => teams.as_slice(),
        _ => &[],
    };
    match teams {
        [team] => Ok(team.clone()),
        [] => Err(team_owner_invalid(
            "you are a member of no team: create one, or name the team_owner",
        )),
        _ => Err(team_owner_invalid(format!(
            "you are a member of several teams ({}): name the team_owner",
            teams.join(", ")
        ))),
    }
}

/// The app a removal unswaps, as planned from the removed app's stream and the chain of swaps.
enum Partner {
    /// The removed app serves its own units: nothing to unswap.
    Own,
    /// This app's address serves the removed app's units: it gets what the removed app's
    /// address served.
    Found(AppName),
    /// The removed app was swapped, but the chain of swaps does not come back to it (an app in
    /// it is gone): it is removed without unswapping, the others left as they are.
    Broken,
}

impl Partner {
    /// Whether this plan still holds for `state` (the removed app, held) and `partner` (the
    /// partner held, if one was planned).
    fn holds(&self, state: &App, partner: Option<&App>) -> bool {
        let swapped = state.units_of().is_some() && state.units_of() != state.name();
        match (self, partner) {
            (Partner::Own, None) => !swapped,
            (Partner::Broken, None) => swapped,
            (Partner::Found(name), Some(partner)) => {
                swapped
                    && partner.name() == Some(name)
                    && partner.is_active()
                    && partner.units_of() == state.name()
            }
            _ => false,
        }
    }
}

/// The swap that undoes `removed`'s part in the swaps before its removal: `partner`, whose
/// address serves `removed`'s units, gets what `removed`'s address serves; cnames stay.
fn unswap(partner: &App, removed: &App) -> Result<AppEvent, CommandError> {
    let (Some(app1), Some(app2)) = (partner.name(), removed.name()) else {
        return Err(no_app("partner"));
    };
    Ok(AppEvent::AppsSwapped {
        app1: app1.clone(),
        app2: app2.clone(),
        cname_only: false,
        cnames1: partner.cnames().iter().cloned().collect(),
        cnames2: removed.cnames().iter().cloned().collect(),
        units_of1: removed.units_of().unwrap_or(app2).clone(),
        units_of2: partner.units_of().unwrap_or(app1).clone(),
    })
}
