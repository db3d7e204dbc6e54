//! The instance aggregate, stream `instance-<service>.<instance>`: one instance of a service
//! (tsuru's service instance), the apps bound to it, and the one call to the service it waits
//! for.
//!
//! Every change goes through the service API, so each is an intent first
//! (`…Requested`, a [`PendingCall`]) and an outcome after (`…ed` / `…Failed`), recorded by
//! [`InstanceCommand::Record`] with what the call did. An outcome is recorded once: only the
//! pending call's `request_id` records one, and the next intent waits for it.
//!
//! Rules it keeps:
//! - A name is one instance at a time (409 `instance_exists`) while it is being created, is
//!   ready or is being removed; after its creation failed or its removal, it starts afresh.
//! - One call at a time: 409 `instance_pending` while it is being created, 409 `instance_busy`
//!   while another call waits for its outcome.
//! - An app is bound once (409 `already_bound`), unbound only if bound (409 `not_bound`); a
//!   bound instance is not removed (409 `instance_bound`).
//!
//! Not its: whether the service grants the team, who may act, the app's side of a binding
//! (the command handler appends `AppInstance…` events beside these), and making the call
//! (`runner`).

use super::values::{check_plan, InstanceName, ServiceName};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::apps::{check_description, AppName, EnvVar};
use crate::error::DomainError;
use crate::identity::TeamName;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The id of an instance's stream: `<service>.<instance>` (neither name holds a dot).
pub fn instance_stream_id(service: &ServiceName, instance: &InstanceName) -> String {
    format!("{service}.{instance}")
}

/// What a call to the service does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    Create,
    Bind { app: AppName },
    Unbind { app: AppName },
    Remove,
}

impl Operation {
    /// `create`, `bind`, `unbind` or `remove`, as reads show it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Bind { .. } => "bind",
            Operation::Unbind { .. } => "unbind",
            Operation::Remove => "remove",
        }
    }

    /// The app a bind or unbind is about.
    pub fn app(&self) -> Option<&AppName> {
        match self {
            Operation::Bind { app } | Operation::Unbind { app } => Some(app),
            Operation::Create | Operation::Remove => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum InstanceEvent {
    /// Its teams are `[team_owner]`.
    InstanceCreationRequested {
        request_id: Uuid,
        service: ServiceName,
        name: InstanceName,
        plan: String,
        team_owner: TeamName,
        description: String,
        at: DateTime<Utc>,
    },
    InstanceCreated {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The service refused it (`status`) or did not answer (`status` None); the instance is
    /// gone.
    InstanceCreationFailed {
        request_id: Uuid,
        status: Option<u16>,
        message: String,
        at: DateTime<Utc>,
    },
    /// `app_host`: the address the service is told the app answers at.
    InstanceBindRequested {
        request_id: Uuid,
        app: AppName,
        app_host: String,
        restart: bool,
        at: DateTime<Utc>,
    },
    /// `envs`: the variables the service gave, private and sealed for the app.
    InstanceBound {
        request_id: Uuid,
        app: AppName,
        envs: Vec<EnvVar>,
        at: DateTime<Utc>,
    },
    InstanceBindFailed {
        request_id: Uuid,
        app: AppName,
        status: Option<u16>,
        message: String,
        at: DateTime<Utc>,
    },
    InstanceUnbindRequested {
        request_id: Uuid,
        app: AppName,
        restart: bool,
        at: DateTime<Utc>,
    },
    InstanceUnbound {
        request_id: Uuid,
        app: AppName,
        at: DateTime<Utc>,
    },
    /// The app stays bound.
    InstanceUnbindFailed {
        request_id: Uuid,
        app: AppName,
        status: Option<u16>,
        message: String,
        at: DateTime<Utc>,
    },
    InstanceRemovalRequested {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    InstanceRemoved {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The instance stays, ready.
    InstanceRemovalFailed {
        request_id: Uuid,
        status: Option<u16>,
        message: String,
        at: DateTime<Utc>,
    },
    /// No answer (connection, timeout): tried again at `retry_at`. `attempt`: the attempts
    /// made so far, this one included.
    ServiceCallFailed {
        request_id: Uuid,
        attempt: u32,
        reason: String,
        retry_at: DateTime<Utc>,
    },
}

impl DomainEvent for InstanceEvent {
    fn event_type(&self) -> &'static str {
        match self {
            InstanceEvent::InstanceCreationRequested { .. } => "InstanceCreationRequested",
            InstanceEvent::InstanceCreated { .. } => "InstanceCreated",
            InstanceEvent::InstanceCreationFailed { .. } => "InstanceCreationFailed",
            InstanceEvent::InstanceBindRequested { .. } => "InstanceBindRequested",
            InstanceEvent::InstanceBound { .. } => "InstanceBound",
            InstanceEvent::InstanceBindFailed { .. } => "InstanceBindFailed",
            InstanceEvent::InstanceUnbindRequested { .. } => "InstanceUnbindRequested",
            InstanceEvent::InstanceUnbound { .. } => "InstanceUnbound",
            InstanceEvent::InstanceUnbindFailed { .. } => "InstanceUnbindFailed",
            InstanceEvent::InstanceRemovalRequested { .. } => "InstanceRemovalRequested",
            InstanceEvent::InstanceRemoved { .. } => "InstanceRemoved",
            InstanceEvent::InstanceRemovalFailed { .. } => "InstanceRemovalFailed",
            InstanceEvent::ServiceCallFailed { .. } => "ServiceCallFailed",
        }
    }
}

/// The call an instance waits for the outcome of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCall {
    pub request_id: Uuid,
    pub operation: Operation,
    pub requested_at: DateTime<Utc>,
    /// Attempts that got no answer so far.
    pub attempts: u32,
    /// A bind's or unbind's: whether the app's units restart with the change.
    pub restart: bool,
    /// A bind's: the address the service is told the app answers at; empty otherwise.
    pub app_host: String,
    /// Why the last attempt got no answer.
    pub last_error: Option<String>,
    /// When to try again after an attempt that got no answer.
    pub retry_at: Option<DateTime<Utc>>,
}

/// What a call to the service did.
#[derive(Clone, Debug, PartialEq)]
pub enum CallOutcome {
    /// The service did it. `envs`: a bind's variables (private, sealed); empty otherwise.
    Done { envs: Vec<EnvVar> },
    /// The service answered and refused (status) or answered what Bosun cannot use (status
    /// None is allowed).
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// No answer. `retry_at: None`: give up (recorded as the operation's failure, status None,
    /// message "the service did not answer: {reason} (after {n} attempts)").
    NoAnswer {
        reason: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

#[derive(Clone, Debug)]
pub enum InstanceCommand {
    /// The service counts it and grants `team_owner` (the command handler checked both).
    Create {
        request_id: Uuid,
        service: ServiceName,
        name: InstanceName,
        plan: String,
        team_owner: TeamName,
        description: String,
        at: DateTime<Utc>,
    },
    RequestBind {
        request_id: Uuid,
        app: AppName,
        app_host: String,
        restart: bool,
        at: DateTime<Utc>,
    },
    RequestUnbind {
        request_id: Uuid,
        app: AppName,
        restart: bool,
        at: DateTime<Utc>,
    },
    RequestRemoval {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    /// What the call of `request_id` did; no event unless it is the pending call.
    Record {
        request_id: Uuid,
        outcome: CallOutcome,
        at: DateTime<Utc>,
    },
}

/// Where an existing instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    Creating,
    Ready,
    Removing,
}

impl InstanceState {
    /// `creating`, `ready` or `removing`, as reads show it.
    pub fn as_str(&self) -> &'static str {
        match self {
            InstanceState::Creating => "creating",
            InstanceState::Ready => "ready",
            InstanceState::Removing => "removing",
        }
    }
}

/// An instance's state, folded from its stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instance {
    service: Option<ServiceName>,
    name: Option<InstanceName>,
    plan: String,
    team_owner: Option<TeamName>,
    teams: BTreeSet<TeamName>,
    description: String,
    apps: BTreeSet<AppName>,
    pending: Option<PendingCall>,
    state: Option<InstanceState>,
    created_at: Option<DateTime<Utc>>,
}

fn no_such_instance() -> DomainError {
    DomainError::NotFound("no such instance".into())
}

impl Instance {
    pub fn service(&self) -> Option<&ServiceName> {
        self.service.as_ref()
    }

    pub fn name(&self) -> Option<&InstanceName> {
        self.name.as_ref()
    }

    pub fn plan(&self) -> &str {
        &self.plan
    }

    pub fn team_owner(&self) -> Option<&TeamName> {
        self.team_owner.as_ref()
    }

    /// The teams whose members see and use it: `[team_owner]`.
    pub fn teams(&self) -> &BTreeSet<TeamName> {
        &self.teams
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// The apps bound to it.
    pub fn apps(&self) -> &BTreeSet<AppName> {
        &self.apps
    }

    /// The call it waits for the outcome of.
    pub fn pending(&self) -> Option<&PendingCall> {
        self.pending.as_ref()
    }

    /// Where it is in its life; None if it does not exist.
    pub fn state(&self) -> Option<InstanceState> {
        self.state
    }

    /// Being created, ready or being removed (not before, nor after a failed creation or its
    /// removal).
    pub fn exists(&self) -> bool {
        self.state.is_some()
    }

    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }

    /// 409 unless it waits for no call: `instance_pending` while being created,
    /// `instance_busy` otherwise.
    fn refuse_pending(&self) -> Result<(), DomainError> {
        match &self.pending {
            None => Ok(()),
            Some(_) if self.state == Some(InstanceState::Creating) => Err(DomainError::conflict(
                "instance_pending",
                "the instance is being created: try again once the service has created it",
            )),
            Some(call) => Err(DomainError::conflict(
                "instance_busy",
                format!(
                    "the instance waits for the outcome of a {} call to the service: try again \
                     once it is in",
                    call.operation.as_str()
                ),
            )),
        }
    }

    fn record(&self, call: &PendingCall, outcome: CallOutcome, at: DateTime<Utc>) -> InstanceEvent {
        let request_id = call.request_id;
        let (status, message) = match outcome {
            CallOutcome::Done { envs } => {
                return match &call.operation {
                    Operation::Create => InstanceEvent::InstanceCreated { request_id, at },
                    Operation::Bind { app } => InstanceEvent::InstanceBound {
                        request_id,
                        app: app.clone(),
                        envs,
                        at,
                    },
                    Operation::Unbind { app } => InstanceEvent::InstanceUnbound {
                        request_id,
                        app: app.clone(),
                        at,
                    },
                    Operation::Remove => InstanceEvent::InstanceRemoved { request_id, at },
                }
            }
            CallOutcome::NoAnswer {
                reason,
                retry_at: Some(retry_at),
            } => {
                return InstanceEvent::ServiceCallFailed {
                    request_id,
                    attempt: call.attempts + 1,
                    reason,
                    retry_at,
                }
            }
            CallOutcome::Refused { status, message } => (status, message),
            CallOutcome::NoAnswer {
                reason,
                retry_at: None,
            } => (
                None,
                format!(
                    "the service did not answer: {reason} (after {} attempts)",
                    call.attempts + 1
                ),
            ),
        };
        match &call.operation {
            Operation::Create => InstanceEvent::InstanceCreationFailed {
                request_id,
                status,
                message,
                at,
            },
            Operation::Bind { app } => InstanceEvent::InstanceBindFailed {
                request_id,
                app: app.clone(),
                status,
                message,
                at,
            },
            Operation::Unbind { app } => InstanceEvent::InstanceUnbindFailed {
                request_id,
                app: app.clone(),
                status,
                message,
                at,
            },
            Operation::Remove => InstanceEvent::InstanceRemovalFailed {
                request_id,
                status,
                message,
                at,
            },
        }
    }

    fn call(
        request_id: Uuid,
        operation: Operation,
        requested_at: DateTime<Utc>,
        restart: bool,
        app_host: String,
    ) -> PendingCall {
        PendingCall {
            request_id,
            operation,
            requested_at,
            attempts: 0,
            restart,
            app_host,
            last_error: None,
            retry_at: None,
        }
    }
}

impl Aggregate for Instance {
    type Command = InstanceCommand;
    type Event = InstanceEvent;
    const CATEGORY: &'static str = "instance";

    fn handle(&self, command: InstanceCommand) -> Result<Vec<InstanceEvent>, DomainError> {
        match command {
            InstanceCommand::Create {
                request_id,
                service,
                name,
                plan,
                team_owner,
                description,
                at,
            } => {
                if self.exists() {
                    return Err(DomainError::conflict(
                        "instance_exists",
                        format!("instance {name} already exists"),
                    ));
                }
                check_plan(&plan)?;
                check_description(&description)?;
                Ok(vec![InstanceEvent::InstanceCreationRequested {
                    request_id,
                    service,
                    name,
                    plan,
                    team_owner,
                    description,
                    at,
                }])
            }
            InstanceCommand::Record {
                request_id,
                outcome,
                at,
            } => match &self.pending {
                Some(call) if call.request_id == request_id => {
                    Ok(vec![self.record(call, outcome, at)])
                }
                _ => Ok(vec![]),
            },
            _ if !self.exists() => Err(no_such_instance()),
            InstanceCommand::RequestBind {
                request_id,
                app,
                app_host,
                restart,
                at,
            } => {
                self.refuse_pending()?;
                if self.apps.contains(&app) {
                    return Err(DomainError::conflict(
                        "already_bound",
                        format!("app {app} is already bound to this instance"),
                    ));
                }
                Ok(vec![InstanceEvent::InstanceBindRequested {
                    request_id,
                    app,
                    app_host,
                    restart,
                    at,
                }])
            }
            InstanceCommand::RequestUnbind {
                request_id,
                app,
                restart,
                at,
            } => {
                self.refuse_pending()?;
                if !self.apps.contains(&app) {
                    return Err(DomainError::conflict(
                        "not_bound",
                        format!("app {app} is not bound to this instance"),
                    ));
                }
                Ok(vec![InstanceEvent::InstanceUnbindRequested {
                    request_id,
                    app,
                    restart,
                    at,
                }])
            }
            InstanceCommand::RequestRemoval { request_id, at } => {
                self.refuse_pending()?;
                // Counted, not named: its teams may not see the apps.
                match self.apps.len() {
                    0 => {}
                    1 => {
                        return Err(DomainError::conflict(
                            "instance_bound",
                            "the instance is bound to 1 app: unbind it first",
                        ))
                    }
                    n => {
                        return Err(DomainError::conflict(
                            "instance_bound",
                            format!("the instance is bound to {n} apps: unbind them first"),
                        ))
                    }
                }
                Ok(vec![InstanceEvent::InstanceRemovalRequested {
                    request_id,
                    at,
                }])
            }
        }
    }

    fn apply(&mut self, event: &InstanceEvent) {
        match event {
            InstanceEvent::InstanceCreationRequested {
                request_id,
                service,
                name,
                plan,
                team_owner,
                description,
                at,
            } => {
                *self = Instance {
                    service: Some(service.clone()),
                    name: Some(name.clone()),
                    plan: plan.clone(),
                    team_owner: Some(team_owner.clone()),
                    teams: [team_owner.clone()].into(),
                    description: description.clone(),
                    pending: Some(Instance::call(
                        *request_id,
                        Operation::Create,
                        *at,
                        false,
                        String::new(),
                    )),
                    state: Some(InstanceState::Creating),
                    created_at: Some(*at),
                    ..Instance::default()
                };
            }
            InstanceEvent::InstanceCreated { .. } => {
                self.state = Some(InstanceState::Ready);
                self.pending = None;
            }
            InstanceEvent::InstanceCreationFailed { .. }
            | InstanceEvent::InstanceRemoved { .. } => {
                *self = Instance::default();
            }
            InstanceEvent::InstanceBindRequested {
                request_id,
                app,
                app_host,
                restart,
                at,
            } => {
                self.pending = Some(Instance::call(
                    *request_id,
                    Operation::Bind { app: app.clone() },
                    *at,
                    *restart,
                    app_host.clone(),
                ));
            }
            InstanceEvent::InstanceBound { app, .. } => {
                self.apps.insert(app.clone());
                self.pending = None;
            }
            InstanceEvent::InstanceUnbindRequested {
                request_id,
                app,
                restart,
                at,
            } => {
                self.pending = Some(Instance::call(
                    *request_id,
                    Operation::Unbind { app: app.clone() },
                    *at,
                    *restart,
                    String::new(),
                ));
            }
            InstanceEvent::InstanceUnbound { app, .. } => {
                self.apps.remove(app);
                self.pending = None;
            }
            InstanceEvent::InstanceBindFailed { .. }
            | InstanceEvent::InstanceUnbindFailed { .. } => {
                self.pending = None;
            }
            InstanceEvent::InstanceRemovalRequested { request_id, at } => {
                self.state = Some(InstanceState::Removing);
                self.pending = Some(Instance::call(
                    *request_id,
                    Operation::Remove,
                    *at,
                    false,
                    String::new(),
                ));
            }
            InstanceEvent::InstanceRemovalFailed { .. } => {
                self.state = Some(InstanceState::Ready);
                self.pending = None;
            }
            InstanceEvent::ServiceCallFailed {
                request_id,
                attempt,
                reason,
                retry_at,
            } => {
                if let Some(call) = self
                    .pending
                    .as_mut()
                    .filter(|call| call.request_id == *request_id)
                {
                    call.attempts = (*attempt).max(call.attempts + 1);
                    call.last_error = Some(reason.clone());
                    call.retry_at = Some(*retry_at);
                }
            }
        }
    }

    /// Being created, ready or being removed (as [`Instance::exists`]): a stream whose instance
    /// failed to be created or was removed holds none.
    fn exists(&self) -> bool {
        self.state.is_some()
    }
}
