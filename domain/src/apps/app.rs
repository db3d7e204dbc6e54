//! The app aggregate, stream `app-<name>`: an app owned by teams (`team_owner` first), its
//! cnames, its environment and its restarts.
//!
//! Rules it keeps:
//! - A name is one app at a time (409 `app_exists`); a removed app's name may be created again,
//!   as tsuru allows, and the new app starts afresh (no teams, cnames, env or restarts of the
//!   old one).
//! - A removed (or never created) app refuses every other command with 404.
//! - Its platform exists and is enabled when it is created or moved to it (400 `platform`).
//! - Its `team_owner` is always one of its teams, and its last team cannot go (409 `last_team`).
//!   The team owner cannot be revoked either (409 `team_owner`, as tsuru refuses it): set
//!   another `team_owner` first, which also grants that team.
//! - Its environment is layered: its own variables, overridden by those each bound service
//!   instance set, in bind order (the latest bind wins). `env` is that effective environment,
//!   `bound` which binding set each name it took. Names a binding sets are neither set nor unset
//!   through the app's own env while bound (409 `env_bound`). Unbinding an instance puts back,
//!   for each name it set and was effective for, the value of the most recent other binding
//!   that sets it, else the app's own value; a name with neither leaves the environment.
//! - All its effective variables together stay within [`MAX_ENV_BYTES`] (400 `envs`), its own
//!   set and a bind's alike.
//! - A service instance is bound once (409 `already_bound`, also while its bind is pending);
//!   an app with bindings, pending or made, is not removed (409 `app_has_bindings`, counting
//!   them: the instances may be ones its managers do not see). A bind's outcome is recorded
//!   only while it is pending (409 `bind_not_pending`).
//!
//! Membership of the acting user in `team_owner`, the existence of teams and whether a unit is
//! restarting are identity's and the units' facts: the command handler reads them and passes
//! them in. The instance's side of a binding (and the call to the service) is the instance's;
//! the command handler appends the `AppInstance…` events beside its events.

use super::cname::CnameClaimCommand;
use super::platform::PlatformChoice;
use super::values::{
    check_description, check_env_value, AppName, Cname, EnvName, EnvValue, EnvVar, PlatformName,
    MAX_ENV_BYTES,
};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::identity::{TeamName, Username};
use crate::services::{InstanceName, InstanceRef, ServiceName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum AppEvent {
    /// Its teams are `[team_owner]`; `owner` is the user who created it (whose quota counts it).
    AppCreated {
        name: AppName,
        platform: PlatformName,
        team_owner: TeamName,
        owner: Username,
        description: String,
        at: DateTime<Utc>,
    },
    /// Each `Some` changed. A new `team_owner` not yet among its teams comes after an
    /// `AppTeamGranted` of it, in the same append.
    AppUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        platform: Option<PlatformName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team_owner: Option<TeamName>,
        at: DateTime<Utc>,
    },
    AppTeamGranted {
        team: TeamName,
    },
    AppTeamRevoked {
        team: TeamName,
    },
    AppCnameAdded {
        cname: Cname,
    },
    AppCnameRemoved {
        cname: Cname,
    },
    /// Sets (or replaces) these variables; `restart`: its units restart with them.
    AppEnvSet {
        envs: Vec<EnvVar>,
        restart: bool,
    },
    /// Unsets these variables (each was set); `restart`: its units restart without them.
    AppEnvUnset {
        names: Vec<EnvName>,
        restart: bool,
    },
    /// One decision appended, as is, to both apps' streams in one atomic append. `cnames1` and
    /// `units_of1` are app1's cnames and `units_of` after the swap (app2's before), `cnames2`
    /// and `units_of2` app2's. With `cname_only` the `units_of` stay as they were.
    AppsSwapped {
        app1: AppName,
        app2: AppName,
        cname_only: bool,
        cnames1: Vec<Cname>,
        cnames2: Vec<Cname>,
        units_of1: AppName,
        units_of2: AppName,
    },
    /// Restart its units (all, or those of `process`); `generation` is the app's restart
    /// generation from then on.
    AppRestartRequested {
        #[serde(default)]
        process: Option<String>,
        generation: u64,
    },
    AppRemoved {
        at: DateTime<Utc>,
    },
    /// A bind of the instance was requested (beside its `InstanceBindRequested`).
    AppInstanceBindRequested {
        service: ServiceName,
        instance: InstanceName,
    },
    /// The instance is bound and set these variables (private, sealed), overriding the app's
    /// own and earlier bindings' values of those names (kept beneath, for its unbind);
    /// `restart`: its units restart with them.
    AppInstanceBound {
        service: ServiceName,
        instance: InstanceName,
        envs: Vec<EnvVar>,
        restart: bool,
    },
    /// The service refused the bind (or did not answer): nothing is bound.
    AppInstanceBindFailed {
        service: ServiceName,
        instance: InstanceName,
    },
    /// The instance is unbound. Of the names it set and was effective for, `names` leave the
    /// environment and `restored` take another value now (an earlier binding's, or the app's
    /// own); `restart`: its units restart with the environment so changed (false when nothing
    /// changed). Events from before layering have no `restored`.
    AppInstanceUnbound {
        service: ServiceName,
        instance: InstanceName,
        names: Vec<EnvName>,
        #[serde(default)]
        restored: Vec<RestoredEnv>,
        restart: bool,
    },
}

/// A variable an unbind gives back: its value now, and the binding that set it (`None`: the
/// app's own value).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestoredEnv {
    pub name: EnvName,
    #[serde(flatten)]
    pub value: EnvValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<InstanceRef>,
}

impl DomainEvent for AppEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AppEvent::AppCreated { .. } => "AppCreated",
            AppEvent::AppUpdated { .. } => "AppUpdated",
            AppEvent::AppTeamGranted { .. } => "AppTeamGranted",
            AppEvent::AppTeamRevoked { .. } => "AppTeamRevoked",
            AppEvent::AppCnameAdded { .. } => "AppCnameAdded",
            AppEvent::AppCnameRemoved { .. } => "AppCnameRemoved",
            AppEvent::AppEnvSet { .. } => "AppEnvSet",
            AppEvent::AppEnvUnset { .. } => "AppEnvUnset",
            AppEvent::AppsSwapped { .. } => "AppsSwapped",
            AppEvent::AppRestartRequested { .. } => "AppRestartRequested",
            AppEvent::AppRemoved { .. } => "AppRemoved",
            AppEvent::AppInstanceBindRequested { .. } => "AppInstanceBindRequested",
            AppEvent::AppInstanceBound { .. } => "AppInstanceBound",
            AppEvent::AppInstanceBindFailed { .. } => "AppInstanceBindFailed",
            AppEvent::AppInstanceUnbound { .. } => "AppInstanceUnbound",
        }
    }
}

#[derive(Clone, Debug)]
pub enum AppCommand {
    /// The caller is a member of `team_owner` (the command handler checked it); `platform` as
    /// read from its stream.
    Create {
        name: AppName,
        platform: PlatformChoice,
        team_owner: TeamName,
        owner: Username,
        description: String,
        at: DateTime<Utc>,
    },
    /// Values equal to the current ones are no change; no change at all is no event.
    Update {
        description: Option<String>,
        platform: Option<PlatformChoice>,
        /// A registered team the caller may give the app to (checked by the command handler).
        team_owner: Option<TeamName>,
        at: DateTime<Utc>,
    },
    /// `team_exists`: whether the team is registered, read by the command handler.
    GrantTeam {
        team: TeamName,
        team_exists: bool,
    },
    RevokeTeam {
        team: TeamName,
    },
    /// Its own cname again changes nothing. Uniqueness across apps is the `CnameClaim`'s.
    AddCname {
        cname: Cname,
    },
    RemoveCname {
        cname: Cname,
    },
    /// Private values come sealed, public ones in clear. Public values equal to the current
    /// ones are left out of the event; nothing left is no event.
    SetEnv {
        envs: Vec<EnvVar>,
        restart: bool,
    },
    /// Names not set are left out of the event; nothing left is no event.
    UnsetEnv {
        names: Vec<EnvName>,
        restart: bool,
    },
    RequestRestart {
        process: Option<String>,
    },
    /// Refused while the app has any binding (409 `app_has_bindings`).
    Remove {
        at: DateTime<Utc>,
    },
    /// Beside the instance's `RequestBind`: refused if it is bound or its bind is pending.
    RequestBind {
        instance: InstanceRef,
    },
    /// The bind is done: `envs` (private, sealed for this app) override the environment.
    /// Refused unless the bind is pending (409 `bind_not_pending`), for a name given twice or
    /// past [`MAX_ENV_BYTES`] for the effective environment (400 `envs`).
    RecordBound {
        instance: InstanceRef,
        envs: Vec<EnvVar>,
        restart: bool,
    },
    /// The bind failed: its pending binding goes (no binding pending is no event).
    RecordBindFailed {
        instance: InstanceRef,
    },
    /// The unbind is done: the names the instance set and was effective for fall back to the
    /// most recent other binding's value, else the app's own, else leave the environment (no
    /// binding is no event). `restart` is kept only if the effective environment changes.
    RecordUnbound {
        instance: InstanceRef,
        restart: bool,
    },
}

/// Where a binding of a service instance to the app is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Requested, the service's answer not yet in.
    Pending,
    Bound,
}

/// An app's state, folded from its stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct App {
    name: Option<AppName>,
    platform: Option<PlatformName>,
    team_owner: Option<TeamName>,
    owner: Option<Username>,
    description: String,
    teams: BTreeSet<TeamName>,
    cnames: BTreeSet<Cname>,
    /// The effective environment: `own`, overridden by `layers` in order.
    env: BTreeMap<EnvName, EnvValue>,
    /// The app's own variables, also those a binding overrides now.
    own: BTreeMap<EnvName, EnvValue>,
    /// The variables each bound instance set, in bind order.
    layers: Vec<(InstanceRef, BTreeMap<EnvName, EnvValue>)>,
    /// The effective names a binding set, with that binding.
    bound: BTreeMap<EnvName, InstanceRef>,
    bindings: BTreeMap<InstanceRef, Binding>,
    restart_generation: u64,
    units_of: Option<AppName>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    removed: bool,
}

fn no_such_app() -> DomainError {
    DomainError::NotFound("no such app".into())
}

impl App {
    /// Its name once created (also after its removal).
    pub fn name(&self) -> Option<&AppName> {
        self.name.as_ref()
    }

    pub fn platform(&self) -> Option<&PlatformName> {
        self.platform.as_ref()
    }

    pub fn team_owner(&self) -> Option<&TeamName> {
        self.team_owner.as_ref()
    }

    /// The user who created it, whose quota counts it.
    pub fn owner(&self) -> Option<&Username> {
        self.owner.as_ref()
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// The teams whose members act on it; `team_owner` is one of them.
    pub fn teams(&self) -> &BTreeSet<TeamName> {
        &self.teams
    }

    pub fn has_team(&self, team: &TeamName) -> bool {
        self.teams.contains(team)
    }

    pub fn cnames(&self) -> &BTreeSet<Cname> {
        &self.cnames
    }

    /// Its effective variables: its own, overridden by those bound instances set in bind
    /// order (`bound` says which binding set a name), private ones sealed.
    pub fn env(&self) -> &BTreeMap<EnvName, EnvValue> {
        &self.env
    }

    /// Its own variables, those a binding overrides now included: what its env falls back to.
    pub fn own_env(&self) -> &BTreeMap<EnvName, EnvValue> {
        &self.own
    }

    /// The effective names a bound service instance set, with the instance that set each:
    /// neither set nor unset through the app's env.
    pub fn bound(&self) -> &BTreeMap<EnvName, InstanceRef> {
        &self.bound
    }

    /// The service instances bound to it, or whose bind is pending.
    pub fn bindings(&self) -> &BTreeMap<InstanceRef, Binding> {
        &self.bindings
    }

    /// +1 for each `AppRestartRequested` (which carries it), `AppEnvSet`/`AppEnvUnset` and
    /// `AppInstanceBound`/`AppInstanceUnbound` with `restart`, and `AppsSwapped` without `cname_only`. A unit started at a lower generation
    /// is due for a restart.
    pub fn restart_generation(&self) -> u64 {
        self.restart_generation
    }

    /// The app whose units its address serves: itself, until a swap without `cname_only`
    /// exchanges it with the other app's.
    pub fn units_of(&self) -> Option<&AppName> {
        self.units_of.as_ref()
    }

    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }

    /// When it was created or last changed by an event that carries a time.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at
    }

    pub fn removed(&self) -> bool {
        self.removed
    }

    /// Created and not removed: it takes commands.
    pub fn is_active(&self) -> bool {
        self.name.is_some() && !self.removed
    }

    /// Its name, if it takes commands; 404 otherwise.
    pub fn active_name(&self) -> Result<&AppName, DomainError> {
        match &self.name {
            Some(name) if !self.removed => Ok(name),
            _ => Err(no_such_app()),
        }
    }

    fn refuse_bound(&self, name: &EnvName) -> Result<(), DomainError> {
        if self.bound.contains_key(name) {
            return Err(DomainError::conflict(
                "env_bound",
                format!("{name} is set by a bound service instance"),
            ));
        }
        Ok(())
    }

    fn set_env(&self, envs: Vec<EnvVar>, restart: bool) -> Result<Vec<AppEvent>, DomainError> {
        if envs.is_empty() {
            return Err(DomainError::invalid("envs", "give at least one variable"));
        }
        let mut seen = BTreeSet::new();
        for var in &envs {
            if !seen.insert(&var.name) {
                return Err(DomainError::invalid(
                    "envs",
                    format!("{} is given twice", var.name),
                ));
            }
            if let EnvValue::Public { value } = &var.value {
                check_env_value(&var.name, value)?;
            }
        }
        for var in &envs {
            self.refuse_bound(&var.name)?;
        }
        let mut after = self.env.clone();
        for var in &envs {
            after.insert(var.name.clone(), var.value.clone());
        }
        let total: usize = after.iter().map(|(n, v)| EnvVar::stored_len(n, v)).sum();
        if total > MAX_ENV_BYTES {
            return Err(DomainError::invalid(
                "envs",
                "all the app's variables together would be longer than 1 MiB",
            ));
        }
        let changed: Vec<EnvVar> = envs
            .into_iter()
            .filter(|var| {
                var.value.is_public().then(|| self.env.get(&var.name)) != Some(Some(&var.value))
            })
            .collect();
        if changed.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![AppEvent::AppEnvSet {
            envs: changed,
            restart,
        }])
    }

    fn unset_env(&self, names: Vec<EnvName>, restart: bool) -> Result<Vec<AppEvent>, DomainError> {
        if names.is_empty() {
            return Err(DomainError::invalid(
                "name",
                "give at least one variable name",
            ));
        }
        for name in &names {
            self.refuse_bound(name)?;
        }
        let mut set = BTreeSet::new();
        let names: Vec<EnvName> = names
            .into_iter()
            .filter(|name| self.env.contains_key(name) && set.insert(name.clone()))
            .collect();
        if names.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![AppEvent::AppEnvUnset { names, restart }])
    }

    fn record_bound(
        &self,
        instance: InstanceRef,
        envs: Vec<EnvVar>,
        restart: bool,
    ) -> Result<Vec<AppEvent>, DomainError> {
        if self.bindings.get(&instance) != Some(&Binding::Pending) {
            return Err(DomainError::conflict(
                "bind_not_pending",
                format!("{instance} has no bind pending on this app"),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut after = self.env.clone();
        for var in &envs {
            if !seen.insert(&var.name) {
                return Err(DomainError::invalid(
                    "envs",
                    format!("{} is given twice", var.name),
                ));
            }
            after.insert(var.name.clone(), var.value.clone());
        }
        let total: usize = after.iter().map(|(n, v)| EnvVar::stored_len(n, v)).sum();
        if total > MAX_ENV_BYTES {
            return Err(DomainError::invalid(
                "envs",
                "all the app's variables together would be longer than 1 MiB",
            ));
        }
        Ok(vec![AppEvent::AppInstanceBound {
            service: instance.service,
            instance: instance.instance,
            envs,
            restart,
        }])
    }

    /// What unbinding `instance` does to the effective environment (see [`App::env`]).
    fn record_unbound(&self, instance: InstanceRef, restart: bool) -> Vec<AppEvent> {
        if !self.bindings.contains_key(&instance) {
            return vec![];
        }
        let mut names = Vec::new();
        let mut restored = Vec::new();
        for (name, _) in self.bound.iter().filter(|(_, by)| **by == instance) {
            let earlier = self
                .layers
                .iter()
                .rev()
                .filter(|(by, _)| *by != instance)
                .find_map(|(by, vars)| vars.get(name).map(|value| (by, value)));
            match (earlier, self.own.get(name)) {
                (Some((by, value)), _) => restored.push(RestoredEnv {
                    name: name.clone(),
                    value: value.clone(),
                    bound: Some(by.clone()),
                }),
                (None, Some(value)) => restored.push(RestoredEnv {
                    name: name.clone(),
                    value: value.clone(),
                    bound: None,
                }),
                (None, None) => names.push(name.clone()),
            }
        }
        let changed = !names.is_empty()
            || restored
                .iter()
                .any(|r| self.env.get(&r.name) != Some(&r.value));
        vec![AppEvent::AppInstanceUnbound {
            service: instance.service,
            instance: instance.instance,
            names,
            restored,
            restart: restart && changed,
        }]
    }

    fn update(
        &self,
        description: Option<String>,
        platform: Option<PlatformChoice>,
        team_owner: Option<TeamName>,
        at: DateTime<Utc>,
    ) -> Result<Vec<AppEvent>, DomainError> {
        if let Some(description) = &description {
            check_description(description)?;
        }
        let platform = match platform {
            Some(choice) if self.platform.as_ref() != Some(&choice.name) => {
                choice.status.check(&choice.name)?;
                Some(choice.name)
            }
            _ => None,
        };
        let description = description.filter(|d| *d != self.description);
        let team_owner = team_owner.filter(|t| self.team_owner.as_ref() != Some(t));
        if description.is_none() && platform.is_none() && team_owner.is_none() {
            return Ok(vec![]);
        }
        let mut events = vec![];
        if let Some(team) = team_owner.as_ref().filter(|t| !self.teams.contains(*t)) {
            events.push(AppEvent::AppTeamGranted { team: team.clone() });
        }
        events.push(AppEvent::AppUpdated {
            description,
            platform,
            team_owner,
            at,
        });
        Ok(events)
    }
}

impl Aggregate for App {
    type Command = AppCommand;
    type Event = AppEvent;
    const CATEGORY: &'static str = "app";

    fn handle(&self, command: AppCommand) -> Result<Vec<AppEvent>, DomainError> {
        match command {
            AppCommand::Create {
                name,
                platform,
                team_owner,
                owner,
                description,
                at,
            } => {
                if self.is_active() {
                    return Err(DomainError::conflict(
                        "app_exists",
                        format!("app {name} already exists"),
                    ));
                }
                check_description(&description)?;
                platform.status.check(&platform.name)?;
                Ok(vec![AppEvent::AppCreated {
                    name,
                    platform: platform.name,
                    team_owner,
                    owner,
                    description,
                    at,
                }])
            }
            _ if !self.is_active() => Err(no_such_app()),
            AppCommand::Update {
                description,
                platform,
                team_owner,
                at,
            } => self.update(description, platform, team_owner, at),
            AppCommand::GrantTeam { team, team_exists } => {
                if !team_exists {
                    return Err(DomainError::NotFound(format!("no team {team}")));
                }
                if self.teams.contains(&team) {
                    return Ok(vec![]);
                }
                Ok(vec![AppEvent::AppTeamGranted { team }])
            }
            AppCommand::RevokeTeam { team } => {
                if !self.teams.contains(&team) {
                    return Err(DomainError::NotFound(format!(
                        "team {team} has no access to this app"
                    )));
                }
                if self.teams.len() == 1 {
                    return Err(DomainError::conflict(
                        "last_team",
                        format!("team {team} is the app's last team: grant another one first"),
                    ));
                }
                if self.team_owner.as_ref() == Some(&team) {
                    return Err(DomainError::conflict(
                        "team_owner",
                        format!("team {team} owns the app: set another team_owner first"),
                    ));
                }
                Ok(vec![AppEvent::AppTeamRevoked { team }])
            }
            AppCommand::AddCname { cname } => {
                if self.cnames.contains(&cname) {
                    return Ok(vec![]);
                }
                Ok(vec![AppEvent::AppCnameAdded { cname }])
            }
            AppCommand::RemoveCname { cname } => {
                if !self.cnames.contains(&cname) {
                    return Err(DomainError::NotFound(format!(
                        "{cname} is not a cname of this app"
                    )));
                }
                Ok(vec![AppEvent::AppCnameRemoved { cname }])
            }
            AppCommand::SetEnv { envs, restart } => self.set_env(envs, restart),
            AppCommand::UnsetEnv { names, restart } => self.unset_env(names, restart),
            AppCommand::RequestRestart { process } => {
                if process.as_ref().is_some_and(|p| p.trim().is_empty()) {
                    return Err(DomainError::invalid("process", "may not be blank"));
                }
                Ok(vec![AppEvent::AppRestartRequested {
                    process,
                    generation: self.restart_generation + 1,
                }])
            }
            AppCommand::Remove { at } => {
                // Counted, not named: its managers may not see the instances.
                match self.bindings.len() {
                    0 => {}
                    1 => {
                        return Err(DomainError::conflict(
                            "app_has_bindings",
                            "the app has 1 service instance bound or being bound: unbind it first",
                        ))
                    }
                    n => {
                        return Err(DomainError::conflict(
                            "app_has_bindings",
                            format!(
                                "the app has {n} service instances bound or being bound: unbind \
                                 them first"
                            ),
                        ))
                    }
                }
                Ok(vec![AppEvent::AppRemoved { at }])
            }
            AppCommand::RequestBind { instance } => match self.bindings.get(&instance) {
                Some(Binding::Bound) => Err(DomainError::conflict(
                    "already_bound",
                    format!("{instance} is already bound to this app"),
                )),
                Some(Binding::Pending) => Err(DomainError::conflict(
                    "already_bound",
                    format!("{instance} is already being bound to this app"),
                )),
                None => Ok(vec![AppEvent::AppInstanceBindRequested {
                    service: instance.service,
                    instance: instance.instance,
                }]),
            },
            AppCommand::RecordBound {
                instance,
                envs,
                restart,
            } => self.record_bound(instance, envs, restart),
            AppCommand::RecordBindFailed { instance } => {
                if self.bindings.get(&instance) != Some(&Binding::Pending) {
                    return Ok(vec![]);
                }
                Ok(vec![AppEvent::AppInstanceBindFailed {
                    service: instance.service,
                    instance: instance.instance,
                }])
            }
            AppCommand::RecordUnbound { instance, restart } => {
                Ok(self.record_unbound(instance, restart))
            }
        }
    }

    fn apply(&mut self, event: &AppEvent) {
        match event {
            AppEvent::AppCreated {
                name,
                platform,
                team_owner,
                owner,
                description,
                at,
            } => {
                *self = App {
                    name: Some(name.clone()),
                    platform: Some(platform.clone()),
                    team_owner: Some(team_owner.clone()),
                    owner: Some(owner.clone()),
                    description: description.clone(),
                    teams: [team_owner.clone()].into(),
                    units_of: Some(name.clone()),
                    created_at: Some(*at),
                    updated_at: Some(*at),
                    ..App::default()
                };
            }
            AppEvent::AppUpdated {
                description,
                platform,
                team_owner,
                at,
            } => {
                if let Some(description) = description {
                    self.description = description.clone();
                }
                if let Some(platform) = platform {
                    self.platform = Some(platform.clone());
                }
                if let Some(team_owner) = team_owner {
                    self.teams.insert(team_owner.clone());
                    self.team_owner = Some(team_owner.clone());
                }
                self.updated_at = Some(*at);
            }
            AppEvent::AppTeamGranted { team } => {
                self.teams.insert(team.clone());
            }
            AppEvent::AppTeamRevoked { team } => {
                self.teams.remove(team);
            }
            AppEvent::AppCnameAdded { cname } => {
                self.cnames.insert(cname.clone());
            }
            AppEvent::AppCnameRemoved { cname } => {
                self.cnames.remove(cname);
            }
            AppEvent::AppEnvSet { envs, restart } => {
                for var in envs {
                    self.own.insert(var.name.clone(), var.value.clone());
                    if !self.bound.contains_key(&var.name) {
                        self.env.insert(var.name.clone(), var.value.clone());
                    }
                }
                if *restart {
                    self.restart_generation += 1;
                }
            }
            AppEvent::AppEnvUnset { names, restart } => {
                for name in names {
                    self.own.remove(name);
                    if !self.bound.contains_key(name) {
                        self.env.remove(name);
                    }
                }
                if *restart {
                    self.restart_generation += 1;
                }
            }
            AppEvent::AppsSwapped {
                app1,
                app2,
                cname_only,
                cnames1,
                cnames2,
                units_of1,
                units_of2,
            } => {
                let (cnames, units_of) = if self.name.as_ref() == Some(app1) {
                    (cnames1, units_of1)
                } else if self.name.as_ref() == Some(app2) {
                    (cnames2, units_of2)
                } else {
                    return;
                };
                self.cnames = cnames.iter().cloned().collect();
                if !cname_only {
                    self.units_of = Some(units_of.clone());
                    self.restart_generation += 1;
                }
            }
            AppEvent::AppRestartRequested { generation, .. } => {
                self.restart_generation = (*generation).max(self.restart_generation + 1);
            }
            AppEvent::AppRemoved { at } => {
                self.removed = true;
                self.updated_at = Some(*at);
            }
            AppEvent::AppInstanceBindRequested { service, instance } => {
                self.bindings
                    .insert(instance_ref(service, instance), Binding::Pending);
            }
            AppEvent::AppInstanceBound {
                service,
                instance,
                envs,
                restart,
            } => {
                let by = instance_ref(service, instance);
                for var in envs {
                    self.env.insert(var.name.clone(), var.value.clone());
                    self.bound.insert(var.name.clone(), by.clone());
                }
                self.layers.retain(|(layer, _)| *layer != by);
                let vars = envs
                    .iter()
                    .map(|var| (var.name.clone(), var.value.clone()))
                    .collect();
                self.layers.push((by.clone(), vars));
                self.bindings.insert(by, Binding::Bound);
                if *restart {
                    self.restart_generation += 1;
                }
            }
            AppEvent::AppInstanceBindFailed { service, instance } => {
                let by = instance_ref(service, instance);
                if self.bindings.get(&by) == Some(&Binding::Pending) {
                    self.bindings.remove(&by);
                }
            }
            AppEvent::AppInstanceUnbound {
                service,
                instance,
                names,
                restored,
                restart,
            } => {
                let by = instance_ref(service, instance);
                self.layers.retain(|(layer, _)| *layer != by);
                // A name that leaves is nowhere any more: neither the app's own nor another
                // binding's (as before layering, when a bind replaced them). Only a name this
                // binding sets now leaves, as the read model has it (an older event may name
                // more).
                for name in names {
                    if self.bound.get(name) != Some(&by) {
                        continue;
                    }
                    self.env.remove(name);
                    self.bound.remove(name);
                    self.own.remove(name);
                    for (_, vars) in &mut self.layers {
                        vars.remove(name);
                    }
                }
                for back in restored {
                    self.env.insert(back.name.clone(), back.value.clone());
                    match &back.bound {
                        Some(other) => self.bound.insert(back.name.clone(), other.clone()),
                        None => self.bound.remove(&back.name),
                    };
                }
                // Names it set that another binding overrode stay as they are.
                self.bound.retain(|_, other| *other != by);
                self.bindings.remove(&by);
                if *restart {
                    self.restart_generation += 1;
                }
            }
        }
    }

    fn exists(&self) -> bool {
        self.name.is_some()
    }
}

fn instance_ref(service: &ServiceName, instance: &InstanceName) -> InstanceRef {
    InstanceRef {
        service: service.clone(),
        instance: instance.clone(),
    }
}

/// A swap of two apps, decided on both their states: the one `AppsSwapped` to append to both
/// streams (with a `CnameTransferred` for each cname that changes app, on its claim's stream).
/// `restarting1`/`restarting2`: whether a restart of that app's units is still running, as the
/// command handler computed it from its units.
#[derive(Clone, Copy, Debug)]
pub struct Swap<'a> {
    pub app1: &'a App,
    pub app2: &'a App,
    pub cname_only: bool,
    pub restarting1: bool,
    pub restarting2: bool,
}

impl Swap<'_> {
    /// What the swap does to the cname claims, to append beside its `AppsSwapped`: each cname
    /// of app1 goes to app2 and each of app2 to app1 (nothing for unknown apps).
    pub fn cname_transfers(&self) -> Vec<CnameClaimCommand> {
        let (Some(name1), Some(name2)) = (self.app1.name(), self.app2.name()) else {
            return vec![];
        };
        let moves = |app: &App, from: &AppName, to: &AppName| {
            app.cnames
                .iter()
                .map(|cname| CnameClaimCommand::Transfer {
                    cname: cname.clone(),
                    from: from.clone(),
                    to: to.clone(),
                })
                .collect::<Vec<_>>()
        };
        let mut transfers = moves(self.app1, name1, name2);
        transfers.extend(moves(self.app2, name2, name1));
        transfers
    }

    /// Refused: 404 if either app is unknown or removed, 400 (`app2`) for an app with itself,
    /// 409 `platform_mismatch` if their platforms differ, 409 `restart_running` if either has a
    /// restart running.
    pub fn decide(&self) -> Result<AppEvent, DomainError> {
        let name1 = self.app1.active_name()?;
        let name2 = self.app2.active_name()?;
        if name1 == name2 {
            return Err(DomainError::invalid(
                "app2",
                "an app cannot be swapped with itself",
            ));
        }
        if self.app1.platform != self.app2.platform {
            return Err(DomainError::conflict(
                "platform_mismatch",
                format!("{name1} and {name2} run on different platforms"),
            ));
        }
        for (name, restarting) in [(name1, self.restarting1), (name2, self.restarting2)] {
            if restarting {
                return Err(DomainError::conflict(
                    "restart_running",
                    format!("{name} has a restart running: swap once it is done"),
                ));
            }
        }
        let units =
            |app: &App, name: &AppName| app.units_of.clone().unwrap_or_else(|| name.clone());
        let (units1, units2) = (units(self.app1, name1), units(self.app2, name2));
        let (units_of1, units_of2) = if self.cname_only {
            (units1, units2)
        } else {
            (units2, units1)
        };
        Ok(AppEvent::AppsSwapped {
            app1: name1.clone(),
            app2: name2.clone(),
            cname_only: self.cname_only,
            cnames1: self.app2.cnames.iter().cloned().collect(),
            cnames2: self.app1.cnames.iter().cloned().collect(),
            units_of1,
            units_of2,
        })
    }
}
