//! What the runner's service calls read and record: the pending call of an intent, with what
//! the call needs (the endpoint, the password opened), and its outcome, recorded as
//! `Actor::System("services")` in one atomic append with its pair on the other stream:
//!
//! | operation | done | refused, or given up |
//! | --- | --- | --- |
//! | create | `InstanceCreated` | `InstanceCreationFailed` + `ServiceInstanceDropped` |
//! | bind | `InstanceBound` + `AppInstanceBound` | `InstanceBindFailed` + `AppInstanceBindFailed` |
//! | unbind | `InstanceUnbound` + `AppInstanceUnbound` | `InstanceUnbindFailed` |
//! | remove | `InstanceRemoved` + `ServiceInstanceDropped` | `InstanceRemovalFailed` |
//!
//! No answer with a retry is `ServiceCallFailed` alone. An outcome is recorded once: the
//! instance records nothing for a call no longer pending, so a call finished twice (by the
//! handler that made it and by the reactor) writes one outcome. The pairs are decided from the
//! instance's events, so they follow what the instance decided.
//!
//! A bind's variables are checked as an app's private variables (name and value rules) and
//! sealed with the app's env context (`app-<app>/env/<NAME>`); variables Bosun cannot use (or
//! that the app refuses) make the bind a refusal saying why. Neither the password nor a value
//! is in an event in clear, a span field or a log line.
//!
//! Does not own: the HTTP calls and their retries (runner), who reads an instance's status
//! (the check is here, the call is the runner's).

use super::{instance_names, password_context, Secrets};
use crate::actor::{Actor, Origin};
use crate::apps::{now, seal_context};
use crate::error::CommandError;
use crate::execute::{Commands, Held, Written};
use bosun_domain::apps::{check_env_value, App, AppCommand, AppEvent, EnvName, EnvVar};
use bosun_domain::services::{
    instance_stream_id, CallOutcome, Endpoint, Instance, InstanceCommand, InstanceEvent,
    InstanceRef, Operation, Service, ServiceCommand, ServiceEvent, ServiceName,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Who records the outcomes of service calls.
const RECORDER: Actor = Actor::System("services");

fn origin() -> Origin {
    Origin {
        request_id: Some(Uuid::new_v4().to_string()),
        source: Some("services".into()),
        ..Origin::default()
    }
}

/// An intent just recorded: what the runner's `ServiceCalls` finishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub service: String,
    pub instance: String,
    pub request_id: Uuid,
}

/// A pending call, loaded from the instance's stream, with what the call needs. Its `Debug`
/// hides the password.
#[derive(Clone)]
pub struct ServiceCall {
    pub intent: Intent,
    pub operation: Operation,
    pub endpoint: Endpoint,
    pub password: SecretString,
    pub plan: String,
    pub team_owner: String,
    /// The host of the app a bind is for (empty for the other operations).
    pub app_host: String,
    /// The attempts that got no answer so far.
    pub attempts: u32,
    pub requested_at: DateTime<Utc>,
    /// When the stream says to try again after the last attempt that got no answer (`None`:
    /// no attempt got none yet).
    pub retry_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ServiceCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCall")
            .field("intent", &self.intent)
            .field("operation", &self.operation)
            .field("endpoint", &self.endpoint.as_str())
            .field("password", &"…")
            .field("plan", &self.plan)
            .field("team_owner", &self.team_owner)
            .field("app_host", &self.app_host)
            .field("attempts", &self.attempts)
            .field("requested_at", &self.requested_at)
            .field("retry_at", &self.retry_at)
            .finish()
    }
}

/// What a call did, as the runner saw it.
pub enum CallResult {
    /// The service did it; `vars`: a bind's variables, in clear (sealed before they are
    /// recorded); empty otherwise.
    Done { vars: Vec<(String, SecretString)> },
    /// The service answered and refused (`status`), or answered what Bosun cannot use.
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// No answer. `retry_at: None`: give up.
    NoAnswer {
        reason: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

impl std::fmt::Debug for CallResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallResult::Done { vars } => f
                .debug_struct("Done")
                .field("vars", &vars.iter().map(|(n, _)| n).collect::<Vec<_>>())
                .finish(),
            CallResult::Refused { status, message } => f
                .debug_struct("Refused")
                .field("status", status)
                .field("message", message)
                .finish(),
            CallResult::NoAnswer { reason, retry_at } => f
                .debug_struct("NoAnswer")
                .field("reason", reason)
                .field("retry_at", retry_at)
                .finish(),
        }
    }
}

/// What `GET …/instances/{instance}/status` asks: the service's endpoint and password, and the
/// instance. Its `Debug` hides the password.
#[derive(Clone)]
pub struct StatusTarget {
    pub endpoint: Endpoint,
    pub service: String,
    pub instance: String,
    pub password: SecretString,
}

impl std::fmt::Debug for StatusTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusTarget")
            .field("endpoint", &self.endpoint.as_str())
            .field("service", &self.service)
            .field("instance", &self.instance)
            .field("password", &"…")
            .finish()
    }
}

/// The longest variable name a refusal quotes, in characters.
const MAX_QUOTED_NAME_CHARS: usize = 64;

/// A name the service answered, as a refusal quotes it: at most [`MAX_QUOTED_NAME_CHARS`]
/// characters, then `…`.
pub fn quoted(name: &str) -> String {
    match name.char_indices().nth(MAX_QUOTED_NAME_CHARS) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_string(),
    }
}

/// A refusal's message about variable `name`, the name in it shortened (as [`quoted`]).
fn about(name: &str, message: &str) -> String {
    if name.chars().count() <= MAX_QUOTED_NAME_CHARS {
        return message.to_string();
    }
    let short = quoted(name);
    message
        .replace(&format!("{name:?}"), &format!("{short:?}"))
        .replace(name, &short)
}

/// A bind's variables checked (names and values as an app's private variables) and sealed for
/// app `app`; why not, as the refusal's message, if the service answered ones Bosun cannot use.
/// The message quotes names (shortened), never values.
fn sealed_vars(
    sealer: &crate::seal::Sealer,
    app: &str,
    vars: &[(String, SecretString)],
) -> Result<Result<Vec<EnvVar>, String>, CommandError> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut checked = Vec::with_capacity(vars.len());
    for (name, value) in vars {
        let parsed = match EnvName::parse(name) {
            Ok(parsed) => parsed,
            Err(DomainError::Invalid { message, .. }) => {
                problems.push(about(name, &message));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if !seen.insert(parsed.clone()) {
            problems.push(format!("{} is given twice", quoted(name)));
            continue;
        }
        // The refusal names the variable, never its value.
        match check_env_value(&parsed, value.expose_secret()) {
            Ok(()) => checked.push((parsed, value)),
            Err(DomainError::Invalid { message, .. }) => problems.push(about(name, &message)),
            Err(e) => return Err(e.into()),
        }
    }
    if !problems.is_empty() {
        return Ok(Err(unusable(&problems.join("; "))));
    }
    let mut envs = Vec::with_capacity(checked.len());
    for (name, value) in checked {
        let sealed = sealer.seal(&seal_context(app, name.as_str()), value.expose_secret())?;
        envs.push(EnvVar::private(name, sealed));
    }
    Ok(Ok(envs))
}

fn unusable(why: &str) -> String {
    format!("the service answered variables Bosun cannot use: {why}")
}

/// The app a bind or unbind is for.
fn app_of(operation: &Operation) -> Option<&bosun_domain::apps::AppName> {
    match operation {
        Operation::Bind { app } | Operation::Unbind { app } => Some(app),
        Operation::Create | Operation::Remove => None,
    }
}

/// The events of the other streams that go with `events` of the instance.
#[derive(Default)]
struct Pairs {
    service: Vec<ServiceEvent>,
    app: Vec<AppEvent>,
}

/// What the other streams record with `events` of instance `instance` (`restart` as its
/// pending call had it). `Ok(Err(refusal))`: the app refuses its part (the variables, say), for
/// the outcome to be recorded as a refusal instead.
fn paired_events(
    events: &[InstanceEvent],
    instance: &InstanceRef,
    restart: bool,
    services: &[Held<Service>],
    apps: &[Held<App>],
) -> Result<Result<Pairs, DomainError>, CommandError> {
    let service = || {
        services
            .first()
            .map(|held| &held.state)
            .ok_or_else(|| CommandError::Internal("the instance's service is not held".into()))
    };
    let app = || {
        apps.first()
            .map(|held| &held.state)
            .ok_or_else(|| CommandError::Internal("the call's app is not held".into()))
    };
    let mut pairs = Pairs::default();
    for event in events {
        match event {
            InstanceEvent::InstanceCreationFailed { .. }
            | InstanceEvent::InstanceRemoved { .. } => {
                pairs
                    .service
                    .extend(service()?.handle(ServiceCommand::DropInstance {
                        instance: instance.instance.clone(),
                    })?);
            }
            InstanceEvent::InstanceBound { envs, .. } => {
                match app()?.handle(AppCommand::RecordBound {
                    instance: instance.clone(),
                    envs: envs.clone(),
                    restart,
                }) {
                    Ok(bound) => pairs.app.extend(bound),
                    Err(refused) => return Ok(Err(refused)),
                }
            }
            InstanceEvent::InstanceBindFailed { .. } => {
                pairs
                    .app
                    .extend(app()?.handle(AppCommand::RecordBindFailed {
                        instance: instance.clone(),
                    })?);
            }
            InstanceEvent::InstanceUnbound { .. } => {
                pairs.app.extend(app()?.handle(AppCommand::RecordUnbound {
                    instance: instance.clone(),
                    restart,
                })?);
            }
            _ => {}
        }
    }
    Ok(Ok(pairs))
}

impl<S: EventStore> Commands<S> {
    /// For the runner: the pending call of `intent`, with what the call needs, or `None` if its
    /// outcome is recorded (or the instance is gone).
    pub async fn service_call(&self, intent: &Intent) -> Result<Option<ServiceCall>, CommandError> {
        let Ok((service_name, instance_name)) = instance_names(&intent.service, &intent.instance)
        else {
            return Ok(None);
        };
        let (instance, _) = self
            .load::<Instance>(&instance_stream_id(&service_name, &instance_name))
            .await?;
        let Some(pending) = instance
            .pending()
            .filter(|p| p.request_id == intent.request_id)
        else {
            return Ok(None);
        };
        let (endpoint, password) = self
            .endpoint_and_password(&service_name)
            .await?
            .ok_or_else(|| {
                CommandError::Internal(format!(
                    "instance {instance_name} has a pending call but service {service_name} is gone"
                ))
            })?;
        Ok(Some(ServiceCall {
            intent: intent.clone(),
            operation: pending.operation.clone(),
            endpoint,
            password,
            plan: instance.plan().to_string(),
            team_owner: instance
                .team_owner()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            app_host: pending.app_host.clone(),
            attempts: pending.attempts,
            requested_at: pending.requested_at,
            retry_at: pending.retry_at,
        }))
    }

    /// Records what `call` did, with its pair on the other stream, in one atomic append (see
    /// the [module](self)). `Ok(None)` if its outcome was already recorded.
    #[tracing::instrument(skip_all, fields(service = call.intent.service.as_str(), instance = call.intent.instance.as_str(), request_id = %call.intent.request_id))]
    pub async fn record_service_call(
        &self,
        call: &ServiceCall,
        result: CallResult,
    ) -> Result<Option<Written>, CommandError> {
        let (service_name, instance_name) =
            instance_names(&call.intent.service, &call.intent.instance)?;
        let instance = InstanceRef {
            service: service_name.clone(),
            instance: instance_name.clone(),
        };
        let app = app_of(&call.operation);
        let outcome = match result {
            CallResult::Done { vars } => match app {
                Some(app) if matches!(call.operation, Operation::Bind { .. }) => {
                    match sealed_vars(self.sealer()?, app.as_str(), &vars)? {
                        Ok(envs) => CallOutcome::Done { envs },
                        Err(message) => CallOutcome::Refused {
                            status: None,
                            message: Secrets::new(&call.intent.service, &call.password)
                                .scrub(&message),
                        },
                    }
                }
                _ => CallOutcome::Done { envs: vec![] },
            },
            CallResult::Refused { status, message } => CallOutcome::Refused { status, message },
            CallResult::NoAnswer { reason, retry_at } => CallOutcome::NoAnswer { reason, retry_at },
        };
        let mut services = Vec::new();
        let mut apps = Vec::new();
        match app {
            Some(app) => apps.push(self.hold::<App>(app.as_str()).await?),
            None => services.push(self.hold::<Service>(service_name.as_str()).await?),
        }
        let held = (
            self.hold::<Instance>(&instance_stream_id(&service_name, &instance_name))
                .await?,
            services,
            apps,
        );
        let request_id = call.intent.request_id;
        let at = now();
        let (recorded, written) = self
            .execute_batch(
                held,
                &RECORDER,
                &origin(),
                |(held, services, apps), batch| {
                    let Some(pending) = held.state.pending().filter(|p| p.request_id == request_id)
                    else {
                        return Ok(false);
                    };
                    let restart = pending.restart;
                    let events = held.state.handle(InstanceCommand::Record {
                        request_id,
                        outcome: outcome.clone(),
                        at,
                    })?;
                    let (events, pairs) =
                        match paired_events(&events, &instance, restart, services, apps)? {
                            Ok(pairs) => (events, pairs),
                            // The app refused the variables (too long together with the
                            // rest of its env, say) or the bind (no longer pending): the bind
                            // is refused, saying why.
                            Err(refused) => {
                                let message = match &refused {
                                    DomainError::Invalid { message, .. } => unusable(message),
                                    other => format!("the app refused the bind: {other}"),
                                };
                                let events = held.state.handle(InstanceCommand::Record {
                                    request_id,
                                    outcome: CallOutcome::Refused {
                                        status: None,
                                        message,
                                    },
                                    at,
                                })?;
                                let pairs =
                                    paired_events(&events, &instance, restart, services, apps)?
                                        .map_err(CommandError::from)?;
                                (events, pairs)
                            }
                        };
                    batch.add(held, events)?;
                    if let Some(service) = services.first() {
                        batch.add(service, pairs.service)?;
                    }
                    if let Some(app) = apps.first() {
                        batch.add(app, pairs.app)?;
                    }
                    Ok(!batch.is_empty())
                },
            )
            .await?;
        Ok(recorded.then_some(written))
    }

    /// For `GET …/instances/{instance}/status`: the service to ask about instance `instance`,
    /// if `actor` sees it (404 otherwise).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service, instance = instance))]
    pub async fn instance_status_target(
        &self,
        actor: &Actor,
        service: &str,
        instance: &str,
    ) -> Result<StatusTarget, CommandError> {
        actor.require_reader()?;
        self.visible_instance(actor, service, instance).await?;
        let (service_name, instance_name) = instance_names(service, instance)?;
        let (endpoint, password) = self
            .endpoint_and_password(&service_name)
            .await?
            .ok_or_else(|| super::no_service(service))?;
        Ok(StatusTarget {
            endpoint,
            service: service_name.as_str().to_string(),
            instance: instance_name.as_str().to_string(),
            password,
        })
    }

    /// Service `service`'s endpoint and its password opened, or `None` if it has none (it is
    /// gone).
    async fn endpoint_and_password(
        &self,
        service: &ServiceName,
    ) -> Result<Option<(Endpoint, SecretString)>, CommandError> {
        let (state, _) = self.load::<Service>(service.as_str()).await?;
        let (Some(endpoint), Some(sealed)) = (state.endpoint(), state.password()) else {
            return Ok(None);
        };
        let password = self
            .sealer()?
            .open(&password_context(service.as_str()), sealed)?;
        Ok(Some((endpoint.clone(), password)))
    }
}
