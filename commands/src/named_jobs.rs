//! Role jobs (OpenPAI's job model, native at `/v1/jobs` with `roles`): submitting one under a
//! name unique among its submitter's role jobs, and releasing that name. Stopping any job is
//! `Commands::stop_job` (`jobs`); running a role job's instances is the runner's.
//!
//! A role job's name is its own stream (`jobname-…`, `bosun_domain::jobs::JobName`), claimed in
//! the same atomic append as the job's `JobSubmitted` ([`Commands::execute_batch`]): two
//! submissions of one name cannot both be recorded, and a refused one records nothing.
//!
//! A role may run a catalog task (`app/env/task`: whoever may submit that task's jobs may, see
//! `Commands::submit_job`) or, only where the server says so ([`RoleCommands::Sandbox`],
//! `compat.openpai.commands: sandbox`), a shell command, run in the runnables' sandbox: off by
//! default, since it lets any user with the write scope run any command there.
//!
//! Does not own: the rules of names and roles (`bosun_domain::jobs::roles`, `…::name`), reading
//! role jobs (`queries::jobs`: `Queries::named_job`, `JobFilter::kind`), running them (`runner`).

use crate::actor::{Actor, AppAction, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use crate::jobs::{keyed_id, may_stop, stop_command, Submitted, MAX_TIMEOUT_SECONDS};
use bosun_domain::identity::Scope;
use bosun_domain::jobs::{
    check_image, check_job_name, check_retry_count, check_roles, job_name_key, Catalog, Job,
    JobCommand, JobName, JobNameCommand, JobStatus, Plan, PlannedRole, RoleJob, Submission,
    Variables,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

pub use bosun_domain::jobs::{Role as RoleRequest, RoleTarget};

/// Whether a role may run a shell command (`compat.openpai.commands`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleCommands {
    /// Roles run catalog tasks only (the default).
    #[default]
    Catalog,
    /// A role may also run a shell command, in the runnables' sandbox.
    Sandbox,
}

impl RoleCommands {
    pub fn allowed(self) -> bool {
        self == RoleCommands::Sandbox
    }
}

/// The server's settings a role job's submission is checked against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoleSettings {
    pub commands: RoleCommands,
}

/// What a client asks to run as a role job.
#[derive(Clone, Debug)]
pub struct SubmitRoleJob {
    /// Unique among the submitter's role jobs holding their names.
    pub name: String,
    pub roles: Vec<RoleRequest>,
    /// Recorded and shown, not used.
    pub image: Option<String>,
    /// How many times a failed attempt runs again.
    pub retry_count: u32,
    /// Every instance's environment (under its `PAI_*` and `BOSUN_JOB_ID`).
    pub variables: BTreeMap<String, String>,
    /// Each instance's; none: a catalog task's own, if it has one.
    pub timeout_seconds: Option<u64>,
    /// As for [`crate::jobs::SubmitJob`]: the same key and request give the same job.
    pub idempotency_key: Option<String>,
}

/// The message of a shell command refused where commands are off.
const COMMANDS_OFF: &str = "a role's command runs only where the server allows it (compat.openpai.commands: sandbox in its configuration), since it lets any user with the write scope run any command in the sandbox: run a catalog task instead (task: app/env/task)";

impl<S: EventStore> Commands<S> {
    /// Submits a role job: its roles' instances run at once as the tasks of one job, under
    /// `name`, which no other role job of the submitter holds (409 `job_name_taken`; nothing is
    /// written). 400 for a bad name, role, image, retry count, variable or timeout, a role's task
    /// not in the catalog, and a command where commands are off (`commands_not_allowed`). The
    /// submitter must be a registered user with the write scope, and for a registered app's task,
    /// one who may submit its jobs (as for [`Commands::submit_job`]); an app's token may not (a
    /// job name is a user's). With an `Idempotency-Key`, a retry of the same request answers
    /// [`Submitted::Existing`] (another request with the key is a 409).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), name = request.name.as_str()))]
    pub async fn submit_role_job(
        &self,
        actor: &Actor,
        origin: &Origin,
        catalog: &Catalog,
        settings: RoleSettings,
        request: SubmitRoleJob,
    ) -> Result<Submitted, CommandError> {
        actor.require_registered()?;
        if let Some(token) = actor.app_token() {
            return Err(CommandError::Forbidden(format!(
                "a role job's name is its submitter's: submit it as a user, not with app {}'s token",
                token.app()
            )));
        }
        actor.require(Scope::Write)?;
        let owner = actor
            .username()
            .ok_or(CommandError::Unauthenticated)?
            .to_string();
        check_job_name(&request.name)?;
        check_roles(&request.roles)?;
        if let Some(image) = &request.image {
            check_image(image)?;
        }
        check_retry_count(request.retry_count)?;
        let variables = Variables::parse(request.variables.clone())?;
        if request
            .timeout_seconds
            .is_some_and(|t| !(1..=MAX_TIMEOUT_SECONDS).contains(&t))
        {
            return Err(DomainError::invalid(
                "timeout_seconds",
                format!("must be 1 to {MAX_TIMEOUT_SECONDS} (a year)"),
            )
            .into());
        }
        let mut roles = Vec::with_capacity(request.roles.len());
        let mut apps = BTreeSet::new();
        for role in &request.roles {
            let catalog_command = match &role.target {
                RoleTarget::Command(_) if !settings.commands.allowed() => {
                    return Err(DomainError::refused(
                        "commands_not_allowed",
                        format!("role {}: {COMMANDS_OFF}", role.name),
                    )
                    .into());
                }
                RoleTarget::Command(_) => vec![],
                RoleTarget::Task(_) => {
                    // Checked to be `app/env/task` by `check_roles`.
                    let (app, env, task) = role.target.catalog_task().ok_or_else(|| {
                        DomainError::invalid(
                            "roles",
                            format!("role {}: not app/env/task", role.name),
                        )
                    })?;
                    let spec = catalog.task(app, env, task).map_err(|e| {
                        DomainError::invalid("roles", format!("role {}: {e}", role.name))
                    })?;
                    apps.insert(app.to_string());
                    spec.command.clone()
                }
            };
            roles.push(PlannedRole {
                role: role.clone(),
                catalog_command,
            });
        }
        for app in &apps {
            if let Some(teams) = self.registered_app_teams(app).await? {
                actor.require_on_app(app, &teams, AppAction::Jobs)?;
            }
        }
        let (job_id, request_digest) = match &request.idempotency_key {
            None => (Uuid::new_v4(), None),
            Some(key) => {
                if key.is_empty() || key.len() > 256 {
                    return Err(DomainError::invalid(
                        "Idempotency-Key",
                        "must be 1 to 256 characters",
                    )
                    .into());
                }
                let digest = hex::encode(Sha256::digest(
                    serde_json::json!([
                        "role job",
                        request.name,
                        request.roles,
                        request.image,
                        request.retry_count,
                        variables,
                        request.timeout_seconds,
                    ])
                    .to_string(),
                ));
                (keyed_id(actor.name(), key), Some(digest))
            }
        };
        if request_digest.is_some() {
            if let Some(existing) = self.earlier_submission(job_id, &request_digest).await? {
                return Ok(existing);
            }
        }
        let submission = Submission {
            job_id,
            name: Some(request.name.clone()),
            app: String::new(),
            env: String::new(),
            task: String::new(),
            variables,
            command: vec![],
            timeout_seconds: request.timeout_seconds,
            notification_emails: vec![],
            orchestration_id: None,
            initialized_by: "manual".into(),
            created_by: owner.clone(),
            request_digest,
            tasks: vec![],
            scheduled_for: None,
            restarted_from: None,
            role_job: Some(Box::new(RoleJob {
                roles,
                image: request.image.clone(),
                retry_count: request.retry_count,
            })),
        };
        let claim = JobNameCommand::Claim {
            owner: owner.clone(),
            name: request.name.clone(),
            job_id,
        };
        let held = (
            self.hold::<Job>(&job_id.to_string()).await?,
            self.hold::<JobName>(&job_name_key(&owner, &request.name))
                .await?,
        );
        let result = self
            .execute_batch(held, actor, origin, |(job, name), batch| {
                // The job first: a racing retry of the same request finds its job, not its name.
                let submitted = job
                    .state
                    .handle(JobCommand::Submit(Box::new(submission.clone())))?;
                batch.add(job, submitted)?;
                batch.add(name, name.state.handle(claim.clone())?)?;
                Ok(())
            })
            .await;
        match result {
            Ok(((), written)) => Ok(Submitted::Created(self.job_view(job_id).await?, written)),
            Err(CommandError::Domain(DomainError::Conflict {
                code: "job_exists", ..
            })) => self
                .earlier_submission(job_id, &submission.request_digest)
                .await?
                .ok_or_else(|| CommandError::Contended(format!("job-{job_id}"))),
            Err(e) => Err(e),
        }
    }

    /// Frees role job `job_id`'s name (`JobNameReleased`), so a new role job may take it; stops
    /// the job first if it has not finished (a cancel if it waits, a kill if it runs), in the
    /// same append. The job itself stays, as history. Who may: whoever may stop it (its
    /// submitter or an admin). 404 for no job, 409 `job_not_named` for a job that is not a role
    /// job, 409 `job_name_released` if it was released already.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), job_id = %job_id))]
    pub async fn release_job_name(
        &self,
        actor: &Actor,
        origin: &Origin,
        job_id: Uuid,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        let job = self.hold::<Job>(&job_id.to_string()).await?;
        may_stop(actor, job_id, &job.state, false)?;
        let (Some(owner), Some(Plan::Roles(run))) = (&job.state.created_by, &job.state.plan) else {
            return Err(DomainError::conflict(
                "job_not_named",
                format!("job {job_id} is not a role job: it holds no name to release"),
            )
            .into());
        };
        let name = self
            .hold::<JobName>(&job_name_key(owner, &run.name))
            .await?;
        let reason = Some("its name was released".to_string());
        let ((), written) = self
            .execute_batch((job, name), actor, origin, |(job, name), batch| {
                may_stop(actor, job_id, &job.state, false)?;
                let released = name.state.handle(JobNameCommand::Release { job_id })?;
                let stopped = match job.state.status {
                    Some(JobStatus::Waiting | JobStatus::Processing) => {
                        job.state.handle(stop_command(&job.state, &reason))?
                    }
                    _ => vec![],
                };
                batch.add(job, stopped)?;
                batch.add(name, released)?;
                Ok(())
            })
            .await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::AppActor;
    use crate::tests::{append, commands, head, log_summary, new_event, origin, user};
    use bosun_domain::jobs::{JobEvent, JobNameEvent, Role};

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!({
            "ml": {"production": {"train": {"command": ["true"]}}},
        }))
        .unwrap()
    }

    fn request(name: &str, target: RoleTarget) -> SubmitRoleJob {
        SubmitRoleJob {
            name: name.into(),
            roles: vec![Role {
                name: "w".into(),
                instances: 2,
                target,
            }],
            image: None,
            retry_count: 0,
            variables: BTreeMap::new(),
            timeout_seconds: None,
            idempotency_key: Some("k1".into()),
        }
    }

    fn train() -> RoleTarget {
        RoleTarget::Task("ml/production/train".into())
    }

    fn refusal<T>(result: Result<T, CommandError>) -> CommandError {
        match result {
            Err(e) => e,
            Ok(_) => panic!("expected a refusal"),
        }
    }

    #[tokio::test]
    async fn a_name_claimed_meanwhile_refuses_the_submission_and_writes_nothing_of_it() {
        let (commands, log) = commands();
        let other = Uuid::new_v4();
        log.before_append_to(
            "jobname-ann@train.1",
            "jobname-ann@train.1",
            vec![new_event(&JobNameEvent::JobNameClaimed {
                owner: "ann".into(),
                name: "train.1".into(),
                job_id: other,
            })],
        );
        let e = refusal(
            commands
                .submit_role_job(
                    &user("ann"),
                    &origin(),
                    &catalog(),
                    RoleSettings::default(),
                    request("train.1", train()),
                )
                .await,
        );
        assert!(
            matches!(
                &e,
                CommandError::Domain(DomainError::Conflict {
                    code: "job_name_taken",
                    ..
                })
            ),
            "{e:?}"
        );
        // Only the other writer's claim: the job's submission went with the name, or not at all.
        let summary = log_summary(&log).await;
        assert_eq!(summary.len(), 1, "{summary:?}");
        assert_eq!(summary[0].0, "jobname-ann@train.1");
        let job_id = keyed_id("ann", "k1");
        let (job, _) = commands.load::<Job>(&job_id.to_string()).await.unwrap();
        assert!(!job.exists());
    }

    #[tokio::test]
    async fn commands_app_tokens_and_unknown_tasks_are_refused_before_anything_is_written() {
        let (commands, log) = commands();
        let submit = |actor: Actor, settings: RoleSettings, request: SubmitRoleJob| {
            let commands = commands.clone();
            async move {
                commands
                    .submit_role_job(&actor, &origin(), &catalog(), settings, request)
                    .await
            }
        };
        let command = RoleTarget::Command("echo hi".into());
        let e = refusal(
            submit(
                user("ann"),
                RoleSettings::default(),
                request("j", command.clone()),
            )
            .await,
        );
        assert!(
            matches!(
                e,
                CommandError::Domain(DomainError::Refused {
                    code: "commands_not_allowed",
                    ..
                })
            ),
            "{e:?}"
        );
        let token = Actor::App(AppActor::new("ml", Uuid::new_v4(), "ann"));
        let e = refusal(submit(token, RoleSettings::default(), request("j", train())).await);
        assert!(matches!(e, CommandError::Forbidden(_)), "{e:?}");
        let unknown = RoleTarget::Task("ml/production/nothing".into());
        let e = refusal(submit(user("ann"), RoleSettings::default(), request("j", unknown)).await);
        assert!(
            matches!(
                e,
                CommandError::Domain(DomainError::Invalid { field: "roles", .. })
            ),
            "{e:?}"
        );
        assert_eq!(head(&log).await, 0, "nothing written");
        // Allowed, a command is recorded (the view after it needs read models, which this has not).
        let allowed = RoleSettings {
            commands: RoleCommands::Sandbox,
        };
        let _ = submit(user("ann"), allowed, request("j", command)).await;
        let summary: Vec<_> = log_summary(&log)
            .await
            .into_iter()
            .map(|(stream, event_type, _)| {
                (stream.split('-').next().unwrap().to_string(), event_type)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("job".to_string(), "JobSubmitted".to_string()),
                ("jobname".to_string(), "JobNameClaimed".to_string())
            ]
        );
    }

    /// Ann's role job `train`, holding its name, as the log has it.
    async fn anns_role_job(log: &crate::tests::Racing) -> Uuid {
        let job_id = Uuid::new_v4();
        let submission = Submission {
            job_id,
            name: Some("train".into()),
            app: String::new(),
            env: String::new(),
            task: String::new(),
            variables: Variables::default(),
            command: vec![],
            timeout_seconds: None,
            notification_emails: vec![],
            orchestration_id: None,
            initialized_by: "manual".into(),
            created_by: "ann".into(),
            request_digest: None,
            tasks: vec![],
            scheduled_for: None,
            restarted_from: None,
            role_job: Some(Box::new(RoleJob {
                roles: vec![PlannedRole {
                    role: request("train", train()).roles.remove(0),
                    catalog_command: vec!["true".into()],
                }],
                image: None,
                retry_count: 0,
            })),
        };
        append(
            log,
            &format!("job-{job_id}"),
            &[JobEvent::JobSubmitted(Box::new(submission))],
        )
        .await;
        append(
            log,
            "jobname-ann@train",
            &[JobNameEvent::JobNameClaimed {
                owner: "ann".into(),
                name: "train".into(),
                job_id,
            }],
        )
        .await;
        job_id
    }

    #[tokio::test]
    async fn releasing_a_name_stops_its_waiting_job_in_the_same_append() {
        let (commands, log) = commands();
        let job_id = anns_role_job(&log).await;
        let before = head(&log).await;
        // Bob may not.
        let e = refusal(
            commands
                .release_job_name(&user("bob"), &origin(), job_id)
                .await,
        );
        assert!(matches!(e, CommandError::Forbidden(_)), "{e:?}");
        assert_eq!(head(&log).await, before);
        let written = commands
            .release_job_name(&user("ann"), &origin(), job_id)
            .await
            .unwrap();
        assert_eq!(written.position, Some(before + 2));
        let summary = log_summary(&log).await;
        let last: Vec<_> = summary[summary.len() - 2..]
            .iter()
            .map(|(stream, event_type, actor)| {
                (stream.as_str(), event_type.as_str(), actor.as_str())
            })
            .collect();
        assert_eq!(
            last,
            [
                (format!("job-{job_id}").as_str(), "JobCancelled", "ann"),
                ("jobname-ann@train", "JobNameReleased", "ann"),
            ]
        );
        let (name, _) = commands.load::<JobName>("ann@train").await.unwrap();
        assert_eq!(name.holder, None);
    }
}
