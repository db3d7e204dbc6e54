//! Role jobs (OpenPAI's job model): a job with a name of its own, of one or more *roles*, each
//! run as `instances` instances at once, every instance one task of the job (its `index`, in
//! role order). A role runs a catalog task (`app/env/task`) or a shell command (in the sandbox,
//! where the server allows it).
//!
//! Owns: the value rules of a role job (its name and its roles' names, instances, what a role
//! runs, its image and retries), what its submission records ([`RoleJob`]) and the plan a worker
//! reads ([`RoleRun`], [`RoleTask`]).
//!
//! Does not own: the job's lifecycle and the rule that its tasks may run at once (`job`), the
//! uniqueness of its name (`name`), whether a role's catalog task exists or commands are allowed
//! (`commands`, which knows the catalog and the server's settings), running it (`runner`).

use super::variables::Variables;
use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The longest job or role name, in characters (OpenPAI's limit).
pub const MAX_NAME_CHARS: usize = 64;
/// Instances one role may have.
pub const MAX_INSTANCES: u32 = 100;
/// Roles one job may have.
pub const MAX_ROLES: usize = 32;
/// Instances of all roles of one job together: every one is a process on the same worker.
pub const MAX_TOTAL_INSTANCES: u32 = 256;
/// The longest shell command of a role, in bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// The longest image name, in characters.
pub const MAX_IMAGE_CHARS: usize = 1024;
/// The most retries a job may ask for.
pub const MAX_RETRY_COUNT: u32 = 100;

/// What a role's instances run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleTarget {
    /// A task of the catalog, `app/env/task`.
    Task(String),
    /// A shell command, run with `sh -c` in the sandbox.
    Command(String),
}

impl RoleTarget {
    /// The catalog task's `(app, env, task)`, for a role that runs one written as such (see
    /// [`task_parts`]).
    pub fn catalog_task(&self) -> Option<(&str, &str, &str)> {
        let RoleTarget::Task(component) = self else {
            return None;
        };
        task_parts(component)
    }

    /// What a role given as one text runs (OpenPAI's `command`): the catalog task it names if
    /// the text, trimmed, is written `app/env/task` ([`task_parts`]), else the text as a shell
    /// command. So `./run/train.sh` or `sh a/b/c` is a command, `ml/production/train` a task.
    pub fn of_text(text: &str) -> RoleTarget {
        let word = text.trim();
        if task_parts(word).is_some() {
            RoleTarget::Task(word.to_string())
        } else {
            RoleTarget::Command(text.to_string())
        }
    }
}

/// A role's catalog task as written, `app/env/task`: three parts, each of `[A-Za-z0-9_.-]`
/// beginning with a letter, a digit or `_` (so no part is `.` or `..`, and a relative path
/// such as `./a/b` is not a task).
pub fn task_parts(text: &str) -> Option<(&str, &str, &str)> {
    let is_part = |part: &str| {
        part.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let mut parts = text.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(app), Some(env), Some(task), None)
            if is_part(app) && is_part(env) && is_part(task) =>
        {
            Some((app, env, task))
        }
        _ => None,
    }
}

/// A role as submitted: its name, how many instances, and what they run (`task` or `command`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub instances: u32,
    #[serde(flatten)]
    pub target: RoleTarget,
}

impl Role {
    /// Its name (see [`check_role_name`]), 1 to [`MAX_INSTANCES`] instances, a task written
    /// `app/env/task` or a command of 1 to [`MAX_COMMAND_BYTES`] bytes without NUL.
    pub fn check(&self) -> Result<(), DomainError> {
        check_role_name(&self.name)?;
        let name = &self.name;
        if !(1..=MAX_INSTANCES).contains(&self.instances) {
            return Err(DomainError::invalid(
                "roles",
                format!("role {name}: instances must be 1 to {MAX_INSTANCES}"),
            ));
        }
        match &self.target {
            RoleTarget::Task(component) => {
                if self.target.catalog_task().is_none() {
                    return Err(DomainError::invalid(
                        "roles",
                        format!(
                            "role {name}: task {component:?} is not app/env/task (three parts of [A-Za-z0-9_.-], each beginning with a letter, a digit or _)"
                        ),
                    ));
                }
            }
            RoleTarget::Command(command) => {
                if command.trim().is_empty() {
                    return Err(DomainError::invalid(
                        "roles",
                        format!("role {name}: the command is empty"),
                    ));
                }
                if command.len() > MAX_COMMAND_BYTES || command.contains('\0') {
                    return Err(DomainError::invalid(
                        "roles",
                        format!(
                            "role {name}: the command must be at most {MAX_COMMAND_BYTES} bytes, without NUL"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A role job's name: `^[A-Za-z0-9._-]+$`, at most [`MAX_NAME_CHARS`] characters. OpenPAI's v1
/// also allowed `~`, its v2 protocol does not; Bosun does not, since `user~name` is how
/// OpenPAI names a user's job (a bare `a~b` would read as user `a`'s job `b`).
pub fn check_job_name(name: &str) -> Result<(), DomainError> {
    check_name(name, "._-", "[A-Za-z0-9._-]+").map_err(|e| DomainError::invalid("name", e))
}

/// A role's name: OpenPAI's `^[A-Za-z0-9_-]+$`, at most [`MAX_NAME_CHARS`] characters.
pub fn check_role_name(name: &str) -> Result<(), DomainError> {
    check_name(name, "_-", "[A-Za-z0-9_-]+")
        .map_err(|e| DomainError::invalid("roles", format!("role name {name:?} {e}")))
}

/// Why `name` is not 1 to [`MAX_NAME_CHARS`] of letters, digits and `punctuation`.
fn check_name(name: &str, punctuation: &str, pattern: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || punctuation.contains(c))
    {
        return Err(format!(
            "may hold only letters, digits and {punctuation} ({pattern})"
        ));
    }
    Ok(())
}

/// A job's roles: 1 to [`MAX_ROLES`], each valid ([`Role::check`]), with distinct names, at most
/// [`MAX_TOTAL_INSTANCES`] instances in all.
pub fn check_roles(roles: &[Role]) -> Result<(), DomainError> {
    if roles.is_empty() || roles.len() > MAX_ROLES {
        return Err(DomainError::invalid(
            "roles",
            format!("a job has 1 to {MAX_ROLES} roles"),
        ));
    }
    let mut names = BTreeSet::new();
    for role in roles {
        role.check()?;
        if !names.insert(role.name.as_str()) {
            return Err(DomainError::invalid(
                "roles",
                format!("two roles are named {}", role.name),
            ));
        }
    }
    let total: u32 = roles.iter().map(|r| r.instances).sum();
    if total > MAX_TOTAL_INSTANCES {
        return Err(DomainError::invalid(
            "roles",
            format!(
                "at most {MAX_TOTAL_INSTANCES} instances in all roles together ({total} asked)"
            ),
        ));
    }
    Ok(())
}

/// `image`: recorded and shown, not used; at most [`MAX_IMAGE_CHARS`] characters.
pub fn check_image(image: &str) -> Result<(), DomainError> {
    if image.is_empty() || image.chars().count() > MAX_IMAGE_CHARS || image.contains('\0') {
        return Err(DomainError::invalid(
            "image",
            format!("must be 1 to {MAX_IMAGE_CHARS} characters"),
        ));
    }
    Ok(())
}

/// `retry_count`: 0 to [`MAX_RETRY_COUNT`].
pub fn check_retry_count(retry_count: u32) -> Result<(), DomainError> {
    if retry_count > MAX_RETRY_COUNT {
        return Err(DomainError::invalid(
            "retry_count",
            format!("must be 0 to {MAX_RETRY_COUNT}"),
        ));
    }
    Ok(())
}

/// A role as the submission records it: as submitted, with the catalog's argv for a catalog
/// task when the job was submitted (so the log says what was meant to run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRole {
    #[serde(flatten)]
    pub role: Role,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog_command: Vec<String>,
}

/// What a role job's submission records beyond any job's: its roles, image and retries. Its
/// name is the submission's `name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleJob {
    pub roles: Vec<PlannedRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How many times a failed attempt runs again (every instance).
    #[serde(default)]
    pub retry_count: u32,
}

impl RoleJob {
    /// Its tasks: every instance of every role, in role order, numbered from 0.
    pub fn tasks(&self) -> Vec<RoleTask> {
        let mut tasks = Vec::new();
        for planned in &self.roles {
            for role_index in 0..planned.role.instances {
                tasks.push(RoleTask {
                    index: tasks.len() as u32,
                    role: planned.role.name.clone(),
                    role_index,
                    role_count: planned.role.instances,
                    target: planned.role.target.clone(),
                    command: planned.catalog_command.clone(),
                });
            }
        }
        tasks
    }
}

/// A role job as a worker runs it: every instance at once, each with the job's variables and
/// timeout; a failed attempt runs again up to `retry_count` times.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleRun {
    pub name: String,
    pub tasks: Vec<RoleTask>,
    pub variables: Variables,
    pub timeout_seconds: Option<u64>,
    pub retry_count: u32,
}

/// One instance of a role: task `index` of its job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleTask {
    pub index: u32,
    pub role: String,
    /// Its number among its role's instances, from 0.
    pub role_index: u32,
    /// How many instances its role has.
    pub role_count: u32,
    pub target: RoleTarget,
    /// The catalog's argv for a catalog task when the job was submitted.
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, instances: u32, target: RoleTarget) -> Role {
        Role {
            name: name.into(),
            instances,
            target,
        }
    }

    fn task(component: &str) -> RoleTarget {
        RoleTarget::Task(component.into())
    }

    #[test]
    fn job_and_role_names_follow_openpai() {
        assert!(check_job_name("my-job_1.2").is_ok());
        assert!(
            check_job_name("alice~job").is_err(),
            "~ is OpenPAI's user~job"
        );
        assert!(check_job_name("").is_err());
        assert!(check_job_name(&"a".repeat(64)).is_ok());
        assert!(check_job_name(&"a".repeat(65)).is_err());
        assert!(check_job_name("a b").is_err());
        assert!(check_job_name("a/b").is_err());
        assert!(check_role_name("worker-1_a").is_ok());
        assert!(check_role_name("worker.1").is_err());
        assert!(check_role_name("w~1").is_err());
    }

    #[test]
    fn a_text_is_a_catalog_task_only_as_one_word_app_env_task() {
        assert_eq!(
            RoleTarget::of_text(" ml/production/train "),
            task("ml/production/train")
        );
        assert_eq!(
            RoleTarget::of_text("my_app/env-2/task.v1"),
            task("my_app/env-2/task.v1")
        );
        for command in [
            "python train.py",
            "ml/production",
            "a/b/c/d",
            "./a/b",
            "../b/c",
            "sh a/b/c",
            "a//c",
            "a/b/c && echo",
        ] {
            assert_eq!(
                RoleTarget::of_text(command),
                RoleTarget::Command(command.into()),
                "{command}"
            );
        }
    }

    #[test]
    fn roles_are_checked_one_by_one_and_together() {
        let ok = role("worker", 2, task("a/b/c"));
        assert!(check_roles(std::slice::from_ref(&ok)).is_ok());
        assert!(check_roles(&[]).is_err());
        assert!(
            check_roles(&[ok.clone(), ok.clone()]).is_err(),
            "names repeat"
        );
        for bad in [
            role("worker", 0, task("a/b/c")),
            role("worker", 101, task("a/b/c")),
            role("worker", 1, task("a/b")),
            role("worker", 1, task("a//c")),
            role("worker", 1, task("a/b/c/d")),
            role("worker", 1, task("./b/c")),
            role("worker", 1, task("a b/c/d")),
            role("worker", 1, RoleTarget::Command(" ".into())),
            role("worker", 1, RoleTarget::Command("a\0b".into())),
            role("wor ker", 1, task("a/b/c")),
        ] {
            assert!(check_roles(std::slice::from_ref(&bad)).is_err(), "{bad:?}");
        }
        let many: Vec<Role> = (0..3)
            .map(|i| role(&format!("r{i}"), 100, task("a/b/c")))
            .collect();
        assert!(check_roles(&many).is_err(), "300 instances in all");
    }

    #[test]
    fn a_role_is_written_with_task_or_command_beside_its_name() {
        let roles = [
            role("w", 2, task("a/b/c")),
            role("ps", 1, RoleTarget::Command("echo hi".into())),
        ];
        let json = serde_json::to_value(&roles).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "w", "instances": 2, "task": "a/b/c"},
                {"name": "ps", "instances": 1, "command": "echo hi"}
            ])
        );
        let back: Vec<Role> = serde_json::from_value(json).unwrap();
        assert_eq!(back, roles);
    }

    #[test]
    fn a_role_jobs_tasks_are_its_instances_in_role_order() {
        let job = RoleJob {
            roles: vec![
                PlannedRole {
                    role: role("w", 2, task("a/b/c")),
                    catalog_command: vec!["true".into()],
                },
                PlannedRole {
                    role: role("ps", 1, RoleTarget::Command("echo".into())),
                    catalog_command: vec![],
                },
            ],
            image: None,
            retry_count: 0,
        };
        let tasks = job.tasks();
        let summary: Vec<_> = tasks
            .iter()
            .map(|t| (t.index, t.role.as_str(), t.role_index, t.role_count))
            .collect();
        assert_eq!(summary, [(0, "w", 0, 2), (1, "w", 1, 2), (2, "ps", 0, 1)]);
        assert_eq!(tasks[1].command, ["true"]);
        assert_eq!(tasks[2].target, RoleTarget::Command("echo".into()));
    }
}
