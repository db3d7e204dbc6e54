//! A native role job (`JobView`) in OpenPAI's shapes: the seed's list item and job, v1's and
//! v2's list items (`name, username, state, subState, executionType, retries, …`) and job
//! (`{name, jobStatus, taskRoles}`), and its config ([`config_of`]).
//!
//! Every OpenPAI field is derived from a native one: `state` from the status (COMPAT
//! "Decisions": `waiting→WAITING, processing→RUNNING, success→SUCCEEDED, error|warning→FAILED,
//! killed|cancelled→STOPPED`), `subState` from it in each generation's launcher's words (v1 YARN's
//! `FRAMEWORK_WAITING`…, v2 Kubernetes' `AttemptCreationPending`…), `executionType` `STOP` once
//! a stop or kill was asked, times as epoch milliseconds, `appId` the job's id, a task role's
//! `taskStatuses` its instances (the job's tasks of that role, `taskIndex` the instance's
//! index in its role), `containerLog` where `/v1` serves the job's output. OpenPAI's fields of
//! what Bosun has not (GPUs, ports, virtual clusters, YARN's tracking URL) are the values an
//! idle cluster shows: `0`, `{}`, `"default"`, `""`.
//!
//! Owns: these shapes. Does not own: any state (all is the native job's).

use super::config::{JobConfig, RoleConfig, Run};
use bosun_commands::RoleRequest;
use bosun_domain::jobs::{JobStatus, RoleTarget};
use bosun_projections::read_models::jobs::JobView;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Which launcher's words a job's `subState` is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    /// v0.x's YARN framework launcher (the seed and v1).
    V1,
    /// v1.x's Kubernetes framework controller (v2).
    V2,
}

/// OpenPAI's job state of a native status.
pub fn state(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Waiting => "WAITING",
        JobStatus::Processing => "RUNNING",
        JobStatus::Success => "SUCCEEDED",
        JobStatus::Error | JobStatus::Warning => "FAILED",
        JobStatus::Killed | JobStatus::Cancelled => "STOPPED",
    }
}

/// The native statuses an OpenPAI state filter means (none for a state Bosun never shows).
pub fn statuses_of(state: &str) -> &'static [&'static str] {
    match state {
        "WAITING" => &["waiting"],
        "RUNNING" => &["processing"],
        "SUCCEEDED" => &["success"],
        "FAILED" => &["error", "warning"],
        "STOPPED" => &["killed", "cancelled"],
        _ => &[],
    }
}

/// A task's OpenPAI state, from the status text a role job's task shows.
fn task_state(status: &str) -> &'static str {
    match status {
        "waiting" => "WAITING",
        "processing" | "running" => "RUNNING",
        "success" | "succeeded" => "SUCCEEDED",
        "error" | "warning" | "failed" => "FAILED",
        // A skipped instance never ran: stopped by a kill or by another instance's failure.
        "killed" | "cancelled" | "stopped" | "skipped" => "STOPPED",
        _ => "UNKNOWN",
    }
}

fn sub_state(status: JobStatus, generation: Generation) -> &'static str {
    match (generation, status) {
        (Generation::V1, JobStatus::Waiting) => "FRAMEWORK_WAITING",
        (Generation::V1, JobStatus::Processing) => "APPLICATION_RUNNING",
        (Generation::V1, _) => "FRAMEWORK_COMPLETED",
        (Generation::V2, JobStatus::Waiting) => "AttemptCreationPending",
        (Generation::V2, JobStatus::Processing) => "AttemptRunning",
        (Generation::V2, _) => "Completed",
    }
}

/// Epoch milliseconds, or `null`.
fn ms(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |t| json!(t.timestamp_millis()))
}

/// `STOP` once a stop or kill was asked (or the job ended stopped), else `START`.
fn execution_type(job: &JobView) -> &'static str {
    if job.kill_requested || matches!(job.status, JobStatus::Killed | JobStatus::Cancelled) {
        "STOP"
    } else {
        "START"
    }
}

fn tasks(job: &JobView) -> &[Value] {
    job.tasks.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The job's exit code: its own, or for a finished one without, 0 for a success and else the
/// first failed instance's.
fn exit_code(job: &JobView) -> Value {
    if let Some(code) = job.exit_code {
        return json!(code);
    }
    if !job.status.is_finished() {
        return Value::Null;
    }
    if job.status == JobStatus::Success {
        return json!(0);
    }
    tasks(job)
        .iter()
        .find_map(|t| t["exit_code"].as_i64().filter(|c| *c != 0))
        .map_or(Value::Null, |c| json!(c))
}

/// The first instance that failed: its role and index in its role.
fn failed_instance(job: &JobView) -> Option<&Value> {
    tasks(job)
        .iter()
        .find(|t| task_state(t["status"].as_str().unwrap_or_default()) == "FAILED")
}

fn exit_type(job: &JobView) -> Value {
    match job.status {
        JobStatus::Waiting | JobStatus::Processing => Value::Null,
        JobStatus::Success => json!("SUCCEEDED"),
        JobStatus::Error | JobStatus::Warning => json!("FAILED"),
        JobStatus::Killed | JobStatus::Cancelled => json!("STOPPED"),
    }
}

fn roles(job: &JobView) -> usize {
    job.roles.as_array().map_or(0, Vec::len)
}

/// The job's framework name, `user~job`.
pub fn framework(job: &JobView) -> String {
    format!("{}~{}", job.created_by, job_name(job))
}

fn job_name(job: &JobView) -> &str {
    job.name.as_deref().unwrap_or_default()
}

/// A job of the seed's list: `{name, username, state, retries, createdTime, completedTime,
/// appTrackingUrl, appExitType}`.
pub fn seed_item(job: &JobView) -> Value {
    json!({
        "name": job_name(job),
        "username": job.created_by,
        "state": state(job.status),
        "retries": job.retries,
        "createdTime": ms(Some(job.created_at)),
        "completedTime": ms(job.finished_at),
        "appTrackingUrl": "",
        "appExitType": exit_type(job),
    })
}

/// The seed's job: `{name, state, createdTime, completedTime, appId, appProgress, …}`.
pub fn seed_detail(job: &JobView) -> Value {
    json!({
        "name": job_name(job),
        "state": state(job.status),
        "createdTime": ms(Some(job.created_at)),
        "completedTime": ms(job.finished_at),
        "appId": job.id.to_string(),
        "appProgress": if job.status.is_finished() { 1 } else { 0 },
        "appTrackingUrl": "",
        "appLaunchedTime": ms(job.started_at),
        "appCompletedTime": ms(job.finished_at),
        "appExitCode": exit_code(job),
        "appExitDiagnostics": job.diagnostics,
        "appExitType": exit_type(job),
        "retries": job.retries,
        "username": job.created_by,
    })
}

/// A job of v1's and v2's lists.
pub fn list_item(job: &JobView, generation: Generation) -> Value {
    let mut item = json!({
        "name": job_name(job),
        "username": job.created_by,
        "state": state(job.status),
        "subState": sub_state(job.status, generation),
        "executionType": execution_type(job),
        "retries": job.retries,
        "retryDetails": {"user": job.retries, "platform": 0, "resource": 0},
        "createdTime": ms(Some(job.created_at)),
        "completedTime": ms(job.finished_at),
        "appExitCode": exit_code(job),
        "virtualCluster": "default",
        "totalGpuNumber": 0,
        "totalTaskNumber": tasks(job).len(),
        "totalTaskRoleNumber": roles(job),
    });
    if generation == Generation::V2 {
        let extra = json!({
            "debugId": job.id.to_string(),
            "tags": [],
            "retryDelayTime": 0,
            "submissionTime": ms(Some(job.created_at)),
            "launchedTime": ms(job.started_at),
            "jobPriority": "default",
        });
        if let (Value::Object(item), Value::Object(extra)) = (&mut item, extra) {
            item.extend(extra);
        }
    }
    item
}

/// v1's and v2's job: `{name, jobStatus, taskRoles}`.
pub fn detail(job: &JobView, generation: Generation) -> Value {
    let failed = failed_instance(job);
    let job_state = state(job.status);
    let mut status = json!({
        "username": job.created_by,
        "state": job_state,
        "subState": sub_state(job.status, generation),
        "executionType": execution_type(job),
        "retries": job.retries,
        "retryDetails": {"user": job.retries, "platform": 0, "resource": 0},
        "createdTime": ms(Some(job.created_at)),
        "completedTime": ms(job.finished_at),
        "appId": job.id.to_string(),
        "appProgress": if job.status.is_finished() { 1 } else { 0 },
        "appTrackingUrl": "",
        "appLaunchedTime": ms(job.started_at),
        "appCompletedTime": ms(job.finished_at),
        "appExitCode": exit_code(job),
        "appExitSpec": null,
        "appExitDiagnostics": job.diagnostics,
        "appExitMessages": null,
        "appExitTriggerMessage": failed.map_or(Value::Null, |t| t["diagnostics"].clone()),
        "appExitTriggerTaskRoleName": failed.map_or(Value::Null, |t| t["role"].clone()),
        "appExitTriggerTaskIndex": failed.map_or(Value::Null, |t| t["role_index"].clone()),
        "appExitType": exit_type(job),
        "virtualCluster": "default",
    });
    if let Value::Object(fields) = &mut status {
        match generation {
            // v1 named the framework inside its status.
            Generation::V1 => {
                fields.insert("name".into(), json!(job_name(job)));
            }
            Generation::V2 => {
                for (key, value) in [
                    ("submissionTime", ms(Some(job.created_at))),
                    ("launchedTime", ms(job.started_at)),
                    ("appCreatedTime", ms(job.started_at)),
                    ("attemptId", json!(job.retries)),
                    ("attemptState", json!(job_state)),
                    ("retryDelayTime", json!(0)),
                ] {
                    fields.insert(key.into(), value);
                }
            }
        }
    }
    json!({
        "name": job_name(job),
        "jobStatus": status,
        "taskRoles": task_roles(job),
    })
}

/// `{role: {taskRoleStatus: {name}, taskStatuses: [...]}}`, the roles in their order.
fn task_roles(job: &JobView) -> Value {
    let mut by_role: Vec<(String, Vec<Value>)> = job
        .roles
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .map(|name| (name.to_string(), Vec::new()))
        .collect();
    for task in tasks(job) {
        let role = task["role"].as_str().unwrap_or_default();
        let index = task["index"].as_u64().unwrap_or_default();
        let task_state = task_state(task["status"].as_str().unwrap_or_default());
        let at = |name: &str| {
            task[name]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let shown = json!({
            "taskIndex": task["role_index"],
            "taskUid": format!("{}-{index}", job.id),
            "taskState": task_state,
            "retries": 0,
            "accountableRetries": 0,
            "createdTime": ms(at("started_at")),
            "launchedTime": ms(at("started_at")),
            "completedTime": ms(at("finished_at")),
            "attemptId": job.retries,
            "attemptState": task_state,
            "containerId": format!("{}-{index}", job.id),
            "containerIp": "",
            "containerPorts": {},
            "containerGpus": null,
            "containerLog": format!("/v1/jobs/{}/output", job.id),
            "containerExitCode": task["exit_code"],
            "containerExitDiagnostics": task["diagnostics"],
        });
        match by_role.iter_mut().find(|(name, _)| name == role) {
            Some((_, statuses)) => statuses.push(shown),
            None => by_role.push((role.to_string(), vec![shown])),
        }
    }
    let mut roles = Map::new();
    for (name, statuses) in by_role {
        roles.insert(
            name.clone(),
            json!({"taskRoleStatus": {"name": name}, "taskStatuses": statuses}),
        );
    }
    Value::Object(roles)
}

/// The config a job was submitted with, as it recorded it: its roles, image, retries and
/// variables.
pub fn config_of(job: &JobView) -> JobConfig {
    let roles: Vec<RoleRequest> = serde_json::from_value(job.roles.clone()).unwrap_or_else(|e| {
        tracing::error!(job_id = %job.id, error = %e, "a role job's recorded roles do not read back");
        Vec::new()
    });
    let variables: BTreeMap<String, String> = job
        .variables
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect();
    JobConfig {
        name: job_name(job).to_string(),
        roles: roles
            .into_iter()
            .map(|role| RoleConfig {
                name: role.name,
                instances: role.instances,
                run: match role.target {
                    RoleTarget::Task(task) => Run::Task(task),
                    RoleTarget::Command(command) => Run::Command(command),
                },
            })
            .collect(),
        image: job.image.clone(),
        retry_count: u32::try_from(job.retry_count).unwrap_or_default(),
        variables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_the_decisions_mapping() {
        assert_eq!(state(JobStatus::Waiting), "WAITING");
        assert_eq!(state(JobStatus::Processing), "RUNNING");
        assert_eq!(state(JobStatus::Success), "SUCCEEDED");
        assert_eq!(state(JobStatus::Error), "FAILED");
        assert_eq!(state(JobStatus::Warning), "FAILED");
        assert_eq!(state(JobStatus::Killed), "STOPPED");
        assert_eq!(state(JobStatus::Cancelled), "STOPPED");
        for status in [
            JobStatus::Waiting,
            JobStatus::Processing,
            JobStatus::Success,
            JobStatus::Error,
            JobStatus::Warning,
            JobStatus::Killed,
            JobStatus::Cancelled,
        ] {
            assert!(statuses_of(state(status)).contains(&status.as_str()));
        }
        assert!(statuses_of("UNKNOWN").is_empty());
    }
}
