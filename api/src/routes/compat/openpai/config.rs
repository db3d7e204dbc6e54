//! OpenPAI job configs ↔ a native role job: the seed's and v1's JSON config (`{jobName, image,
//! taskRoles: [{name, taskNumber, command, …}], retryCount, jobEnvs, …}`, as JSON or a bracket
//! form) and v2's YAML protocol (`{protocolVersion: 2, name, prerequisites, taskRoles: {name:
//! {instances, dockerImage, commands: […]}}, jobRetryCount, …}`), read into one [`JobConfig`],
//! and rendered back from what the job recorded.
//!
//! Mapping decisions:
//! - A task role is a role; `taskNumber` (v1) or `instances` (v2) its instances (1 if absent).
//! - Its `command` (v1) or `commands` (v2, joined with ` && `, OpenPAI's `preCommands` and
//!   `postCommands` of the chosen deployment around them) runs a catalog task if it is one
//!   word `app/env/task`, else a shell command (the domain's rule, `RoleTarget::of_text`),
//!   which the server runs only with `compat.openpai.commands: sandbox` (natively refused
//!   otherwise). To run a script at such a path, write it as a command (`./a/b/c`, `sh a/b/c`).
//! - `image` (v1) or the `dockerimage` prerequisite the task roles name (v2) is the job's image:
//!   recorded, not used. Task roles naming different images are refused (a job has one).
//! - `retryCount` / `jobRetryCount` is the job's retries. v2's `<% $parameters.name %>` in a
//!   command is the parameter's value (as OpenPAI rendered it). Any other reference (an
//!   unknown parameter, `$secrets` — a command is recorded in the job's history, where no
//!   secret may be — `$data`, `$output`, `$script`) is refused naming the command, rather than
//!   reach the shell as written. v1's `jobEnvs` are the job's variables.
//! - Resources (`cpuNumber`, `memoryMB`, `gpuNumber`, `resourcePerInstance`, ports, `shmMB`),
//!   directories (`codeDir`, `dataDir`, `outputDir`, `authFile`), `virtualCluster`, `gpuType`,
//!   `extras` and v2's descriptive fields are taken and not used. A completion policy other than
//!   OpenPAI's default (the job fails when an instance fails, succeeds when all have) and
//!   per-task retries are refused: Bosun's role job has only the default. A field OpenPAI did
//!   not know is refused naming it, as its schemas did.
//! - Reading a config back renders the job as recorded: the same roles, image, retries and
//!   variables, normalized (one command per role, the image as the prerequisite `image`).
//!
//! Owns: reading and writing configs. Does not own: a role job's rules (names, instances, the
//! catalog, whether commands run), which the native submission checks.

use crate::problem::{FieldError, Problem};
use axum::http::StatusCode;
use bosun_domain::jobs::RoleTarget;
use serde_json::{Map, Value};
use serde_yaml::{Mapping, Value as Yaml};
use std::collections::BTreeMap;

/// What a role's instances run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Run {
    /// A catalog task, `app/env/task`.
    Task(String),
    /// A shell command.
    Command(String),
}

impl Run {
    /// A command as OpenPAI's config wrote it: a catalog task if it is one word `app/env/task`,
    /// else a shell command, by the domain's rule ([`RoleTarget::of_text`]).
    pub fn of(command: &str) -> Run {
        match RoleTarget::of_text(command) {
            RoleTarget::Task(task) => Run::Task(task),
            RoleTarget::Command(command) => Run::Command(command),
        }
    }

    /// The text a config shows for it.
    pub fn text(&self) -> &str {
        match self {
            Run::Task(task) | Run::Command(task) => task,
        }
    }
}

/// A task role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleConfig {
    pub name: String,
    pub instances: u32,
    pub run: Run,
}

/// A job config, of any generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobConfig {
    pub name: String,
    pub roles: Vec<RoleConfig>,
    pub image: Option<String>,
    pub retry_count: u32,
    pub variables: BTreeMap<String, String>,
}

/// A v1 refusal of `field`: `InvalidParametersError`.
fn invalid(field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem::invalid_field(field, message)
}

/// A v2 refusal of `field`: `InvalidProtocolError`.
fn invalid_protocol(field: impl Into<String>, message: impl Into<String>) -> Problem {
    let (field, message) = (field.into(), message.into());
    let mut problem = Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_protocol",
        format!("{field}: {message}"),
    );
    problem.errors = vec![FieldError { field, message }];
    problem
}

/// A count as JSON or a form's text: a whole number from 0 (absent or `null`: none).
fn count(value: Option<&Value>, field: &str) -> Result<Option<u32>, Problem> {
    let number = super::auth::whole_number(value, field)?;
    number
        .map(|n| u32::try_from(n).map_err(|_| invalid(field, "must be a whole number from 0")))
        .transpose()
}

const V1_FIELDS: &[&str] = &[
    "jobName",
    "image",
    "authFile",
    "dataDir",
    "outputDir",
    "codeDir",
    "taskRoles",
    "gpuType",
    "killAllOnCompletedTaskNumber",
    "virtualCluster",
    "retryCount",
    "jobEnvs",
    "extras",
];

const V1_ROLE_FIELDS: &[&str] = &[
    "name",
    "taskNumber",
    "cpuNumber",
    "memoryMB",
    "shmMB",
    "gpuNumber",
    "portList",
    "command",
    "minFailedTaskCount",
    "minSucceededTaskCount",
];

fn unknown_field(fields: &Map<String, Value>, known: &[&str], prefix: &str) -> Result<(), Problem> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(invalid(format!("{prefix}{key}"), "is not allowed")),
        None => Ok(()),
    }
}

/// The seed's and v1's config. `path_name` is the job name a `PUT …/{name}` gives: then
/// `jobName` may be left out, and must be the same if given.
pub fn parse_v1(
    fields: &Map<String, Value>,
    path_name: Option<&str>,
) -> Result<JobConfig, Problem> {
    unknown_field(fields, V1_FIELDS, "")?;
    let text = |name: &str| -> Result<Option<String>, Problem> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(name, "must be a string")),
        }
    };
    let name = match (text("jobName")?.filter(|n| !n.is_empty()), path_name) {
        (Some(name), Some(path)) if name != path => {
            return Err(invalid(
                "jobName",
                format!("is {name:?}, but the path names the job {path:?}"),
            ))
        }
        (Some(name), _) => name,
        (None, Some(path)) => path.to_string(),
        (None, None) => return Err(invalid("jobName", "is required")),
    };
    let roles = match fields.get("taskRoles") {
        Some(Value::Array(roles)) if !roles.is_empty() => roles,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(invalid("taskRoles", "is required: at least one task role"))
        }
        Some(_) => return Err(invalid("taskRoles", "must be a list of task roles")),
    };
    let roles = roles
        .iter()
        .enumerate()
        .map(|(at, role)| v1_role(role, at))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(n) = count(
        fields.get("killAllOnCompletedTaskNumber"),
        "killAllOnCompletedTaskNumber",
    )? {
        if n != 0 {
            return Err(invalid(
                "killAllOnCompletedTaskNumber",
                "is not supported: a job ends when all its instances have (0, the default)",
            ));
        }
    }
    let retry_count = match super::auth::whole_number(fields.get("retryCount"), "retryCount")? {
        None => 0,
        Some(n) => u32::try_from(n).map_err(|_| {
            invalid(
                "retryCount",
                "must be 0 or more: Bosun runs a job at most 1 + retryCount times",
            )
        })?,
    };
    let variables = match fields.get("jobEnvs") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(envs)) => envs
            .iter()
            .map(|(key, value)| match value {
                Value::String(s) => Ok((key.clone(), s.clone())),
                Value::Number(n) => Ok((key.clone(), n.to_string())),
                Value::Bool(b) => Ok((key.clone(), b.to_string())),
                _ => Err(invalid(
                    format!("jobEnvs.{key}"),
                    "must be a string, a number or a boolean",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("jobEnvs", "must be an object of names to values")),
    };
    Ok(JobConfig {
        name,
        roles,
        image: text("image")?.filter(|i| !i.is_empty()),
        retry_count,
        variables,
    })
}

fn v1_role(role: &Value, at: usize) -> Result<RoleConfig, Problem> {
    let prefix = format!("taskRoles[{at}]");
    let Value::Object(fields) = role else {
        return Err(invalid(prefix, "must be an object"));
    };
    unknown_field(fields, V1_ROLE_FIELDS, &format!("{prefix}."))?;
    let string = |name: &str| match fields.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(invalid(format!("{prefix}.{name}"), "is required"))
        }
        Some(_) => Err(invalid(format!("{prefix}.{name}"), "must be a string")),
    };
    let min_failed = count(
        fields.get("minFailedTaskCount"),
        &format!("{prefix}.minFailedTaskCount"),
    )?;
    if min_failed.is_some_and(|n| n != 1) {
        return Err(invalid(
            format!("{prefix}.minFailedTaskCount"),
            "is not supported: the job fails when one instance fails (1, the default)",
        ));
    }
    if !matches!(
        fields.get("minSucceededTaskCount"),
        None | Some(Value::Null)
    ) {
        return Err(invalid(
            format!("{prefix}.minSucceededTaskCount"),
            "is not supported: the job succeeds when every instance has (null, the default)",
        ));
    }
    Ok(RoleConfig {
        name: string("name")?,
        instances: count(fields.get("taskNumber"), &format!("{prefix}.taskNumber"))?.unwrap_or(1),
        run: Run::of(&string("command")?),
    })
}

const V2_FIELDS: &[&str] = &[
    "protocolVersion",
    "name",
    "type",
    "version",
    "contributor",
    "description",
    "prerequisites",
    "parameters",
    "secrets",
    "jobRetryCount",
    "taskRoles",
    "deployments",
    "defaults",
    "extras",
];

const V2_ROLE_FIELDS: &[&str] = &[
    "protocolVersion",
    "instances",
    "completion",
    "taskRetryCount",
    "prerequisites",
    "dockerImage",
    "data",
    "output",
    "script",
    "extraContainerOptions",
    "resourcePerInstance",
    "commands",
];

/// A YAML key as text (a number key `1:` is `"1"`).
fn key_text(key: &Yaml) -> String {
    match key {
        Yaml::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn yaml_unknown(mapping: &Mapping, known: &[&str], prefix: &str) -> Result<(), Problem> {
    for key in mapping.keys() {
        let name = key_text(key);
        if !known.contains(&name.as_str()) {
            return Err(invalid_protocol(
                format!("{prefix}{name}"),
                "is not allowed",
            ));
        }
    }
    Ok(())
}

fn yaml_text(value: Option<&Yaml>, field: &str) -> Result<Option<String>, Problem> {
    match value {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid_protocol(field, "must be a string")),
    }
}

fn yaml_count(value: Option<&Yaml>, field: &str) -> Result<Option<u32>, Problem> {
    match value {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid_protocol(field, "must be a whole number from 0")),
        Some(Yaml::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| invalid_protocol(field, "must be a whole number from 0")),
        Some(_) => Err(invalid_protocol(field, "must be a whole number from 0")),
    }
}

fn yaml_strings(value: Option<&Yaml>, field: &str) -> Result<Vec<String>, Problem> {
    match value {
        None | Some(Yaml::Null) => Ok(vec![]),
        Some(Yaml::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Yaml::String(s) => Ok(s.clone()),
                Yaml::Number(n) => Ok(n.to_string()),
                _ => Err(invalid_protocol(
                    format!("{field}[{i}]"),
                    "must be a string",
                )),
            })
            .collect(),
        Some(_) => Err(invalid_protocol(field, "must be a list of strings")),
    }
}

fn yaml_mapping<'a>(value: Option<&'a Yaml>, field: &str) -> Result<Option<&'a Mapping>, Problem> {
    match value {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::Mapping(m)) => Ok(Some(m)),
        Some(_) => Err(invalid_protocol(field, "must be a mapping")),
    }
}

/// `<% $parameters.name %>` (and `$parameters[name]`) in `command`, as OpenPAI rendered them:
/// the parameter's value. A reference to anything else (an unknown parameter, `$secrets`,
/// `$data`, …) is refused naming `field`: it would reach the shell as written. A `<%` with no
/// `%>` after it is no reference, and stays as written.
fn render_parameters(
    command: &str,
    parameters: &BTreeMap<String, String>,
    field: &str,
) -> Result<String, Problem> {
    let mut out = String::with_capacity(command.len());
    let mut rest = command;
    while let Some(start) = rest.find("<%") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("%>") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let reference = after[..end].trim();
        let name = reference
            .strip_prefix("$parameters.")
            .or_else(|| {
                reference
                    .strip_prefix("$parameters[")
                    .and_then(|r| r.strip_suffix(']'))
            })
            .map(|n| n.trim_matches(|c| c == '"' || c == '\''));
        match name.and_then(|n| parameters.get(n)) {
            Some(value) => out.push_str(value),
            None => {
                let why = if reference.starts_with("$secrets") {
                    "secrets are not supported: a job's commands are kept in its history, where no secret may be".to_string()
                } else if name.is_some() {
                    "names no parameter of the config's parameters".to_string()
                } else {
                    "is not a parameter ($parameters.name): the only reference Bosun renders"
                        .to_string()
                };
                return Err(invalid_protocol(
                    field,
                    format!("refers to <% {reference} %>, which {why}"),
                ));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// v2's protocol config (YAML).
pub fn parse_v2(config: &Mapping) -> Result<JobConfig, Problem> {
    yaml_unknown(config, V2_FIELDS, "")?;
    match config.get("protocolVersion") {
        None => {}
        Some(Yaml::Number(n)) if n.as_u64() == Some(2) => {}
        Some(Yaml::String(s)) if s == "2" => {}
        Some(_) => return Err(invalid_protocol("protocolVersion", "must be 2")),
    }
    match yaml_text(config.get("type"), "type")? {
        None => {}
        Some(t) if t == "job" => {}
        Some(_) => return Err(invalid_protocol("type", "must be job")),
    }
    let name = yaml_text(config.get("name"), "name")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid_protocol("name", "is required"))?;
    if yaml_mapping(config.get("secrets"), "secrets")?.is_some_and(|s| !s.is_empty()) {
        return Err(invalid_protocol(
            "secrets",
            "are not supported: a job's commands are kept in its history, where no secret may be",
        ));
    }
    let parameters: BTreeMap<String, String> =
        match yaml_mapping(config.get("parameters"), "parameters")? {
            None => BTreeMap::new(),
            Some(parameters) => parameters
                .iter()
                .filter_map(|(key, value)| {
                    let text = match value {
                        Yaml::String(s) => s.clone(),
                        Yaml::Number(n) => n.to_string(),
                        Yaml::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((key_text(key), text))
                })
                .collect(),
        };
    let images = dockerimages(config.get("prerequisites"))?;
    let (pre, post) = deployment(config)?;
    let roles = yaml_mapping(config.get("taskRoles"), "taskRoles")?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid_protocol("taskRoles", "is required: at least one task role"))?;
    let mut image: Option<(String, String)> = None;
    let mut parsed = Vec::with_capacity(roles.len());
    for (key, role) in roles {
        let role_name = key_text(key);
        let prefix = format!("taskRoles.{role_name}");
        let Yaml::Mapping(role) = role else {
            return Err(invalid_protocol(prefix, "must be a mapping"));
        };
        yaml_unknown(role, V2_ROLE_FIELDS, &format!("{prefix}."))?;
        let instances =
            yaml_count(role.get("instances"), &format!("{prefix}.instances"))?.unwrap_or(1);
        if yaml_count(
            role.get("taskRetryCount"),
            &format!("{prefix}.taskRetryCount"),
        )?
        .is_some_and(|n| n != 0)
        {
            return Err(invalid_protocol(
                format!("{prefix}.taskRetryCount"),
                "is not supported: a job is retried whole (jobRetryCount)",
            ));
        }
        if let Some(completion) =
            yaml_mapping(role.get("completion"), &format!("{prefix}.completion"))?
        {
            let default_failed = matches!(
                completion.get("minFailedInstances"),
                None | Some(Yaml::Null)
            ) || yaml_count(
                completion.get("minFailedInstances"),
                &format!("{prefix}.completion.minFailedInstances"),
            )? == Some(1);
            let default_succeeded = matches!(
                completion.get("minSucceededInstances"),
                None | Some(Yaml::Null)
            );
            if !default_failed || !default_succeeded {
                return Err(invalid_protocol(
                    format!("{prefix}.completion"),
                    "is not supported: the job fails when one instance fails and succeeds when all have (the default)",
                ));
            }
        }
        if let Some(reference) =
            yaml_text(role.get("dockerImage"), &format!("{prefix}.dockerImage"))?
        {
            let uri = images.get(&reference).ok_or_else(|| {
                invalid_protocol(
                    format!("{prefix}.dockerImage"),
                    format!(
                        "Prerequisite {reference} does not exist (a dockerimage in prerequisites)."
                    ),
                )
            })?;
            match &image {
                Some((first, other)) if other != uri => {
                    return Err(invalid_protocol(
                        format!("{prefix}.dockerImage"),
                        format!("is {reference}, but task role {first}'s image is another: a job has one image"),
                    ))
                }
                Some(_) => {}
                None => image = Some((role_name.clone(), uri.clone())),
            }
        }
        let commands = yaml_strings(role.get("commands"), &format!("{prefix}.commands"))?;
        if commands.is_empty() {
            return Err(invalid_protocol(
                format!("{prefix}.commands"),
                "is required: at least one command",
            ));
        }
        let field = format!("{prefix}.commands");
        let commands: Vec<(String, String)> = commands
            .into_iter()
            .enumerate()
            .map(|(i, command)| (format!("{field}[{i}]"), command))
            .collect();
        let all: Vec<String> = pre
            .get(&role_name)
            .into_iter()
            .flatten()
            .chain(commands.iter())
            .chain(post.get(&role_name).into_iter().flatten())
            .map(|(field, command)| render_parameters(command, &parameters, field))
            .collect::<Result<_, _>>()?;
        let run = match all.as_slice() {
            [one] => Run::of(one),
            many => Run::Command(many.join(" && ")),
        };
        parsed.push(RoleConfig {
            name: role_name,
            instances,
            run,
        });
    }
    let retry_count = yaml_count(config.get("jobRetryCount"), "jobRetryCount")?.unwrap_or(0);
    Ok(JobConfig {
        name,
        roles: parsed,
        image: image.map(|(_, uri)| uri),
        retry_count,
        variables: BTreeMap::new(),
    })
}

/// The `dockerimage` prerequisites, by name: their `uri`.
fn dockerimages(prerequisites: Option<&Yaml>) -> Result<BTreeMap<String, String>, Problem> {
    let items = match prerequisites {
        None | Some(Yaml::Null) => return Ok(BTreeMap::new()),
        Some(Yaml::Sequence(items)) => items,
        Some(_) => return Err(invalid_protocol("prerequisites", "must be a list")),
    };
    let mut images = BTreeMap::new();
    for (at, item) in items.iter().enumerate() {
        let field = format!("prerequisites[{at}]");
        let Yaml::Mapping(item) = item else {
            return Err(invalid_protocol(field, "must be a mapping"));
        };
        let name = yaml_text(item.get("name"), &format!("{field}.name"))?
            .ok_or_else(|| invalid_protocol(format!("{field}.name"), "is required"))?;
        let kind = yaml_text(item.get("type"), &format!("{field}.type"))?
            .ok_or_else(|| invalid_protocol(format!("{field}.type"), "is required"))?;
        if kind != "dockerimage" {
            continue;
        }
        let uri = yaml_text(item.get("uri"), &format!("{field}.uri"))?
            .ok_or_else(|| invalid_protocol(format!("{field}.uri"), "is required"))?;
        if images.insert(name.clone(), uri).is_some() {
            return Err(invalid_protocol(
                format!("{field}.name"),
                format!("Duplicate dockerimage prerequisites {name}."),
            ));
        }
    }
    Ok(images)
}

/// The `preCommands` and `postCommands` per task role of the deployment `defaults.deployment`
/// names (none if it names none), each with where it is (`deployments[0].taskRoles.main.preCommands[1]`).
type Around = BTreeMap<String, Vec<(String, String)>>;

fn deployment(config: &Mapping) -> Result<(Around, Around), Problem> {
    let chosen = match yaml_mapping(config.get("defaults"), "defaults")? {
        Some(defaults) => yaml_text(defaults.get("deployment"), "defaults.deployment")?,
        None => None,
    };
    let deployments = match config.get("deployments") {
        None | Some(Yaml::Null) => &Vec::new(),
        Some(Yaml::Sequence(items)) => items,
        Some(_) => return Err(invalid_protocol("deployments", "must be a list")),
    };
    let Some(chosen) = chosen else {
        return Ok((Around::new(), Around::new()));
    };
    for (at, item) in deployments.iter().enumerate() {
        let field = format!("deployments[{at}]");
        let Yaml::Mapping(item) = item else {
            return Err(invalid_protocol(field, "must be a mapping"));
        };
        if yaml_text(item.get("name"), &format!("{field}.name"))?.as_deref() != Some(&chosen) {
            continue;
        }
        let (mut pre, mut post) = (Around::new(), Around::new());
        if let Some(roles) = yaml_mapping(item.get("taskRoles"), &format!("{field}.taskRoles"))? {
            for (key, role) in roles {
                let name = key_text(key);
                let prefix = format!("{field}.taskRoles.{name}");
                let Yaml::Mapping(role) = role else {
                    return Err(invalid_protocol(prefix, "must be a mapping"));
                };
                yaml_unknown(
                    role,
                    &["preCommands", "postCommands"],
                    &format!("{prefix}."),
                )?;
                let placed = |list: &str| -> Result<Vec<(String, String)>, Problem> {
                    let field = format!("{prefix}.{list}");
                    Ok(yaml_strings(role.get(list), &field)?
                        .into_iter()
                        .enumerate()
                        .map(|(i, command)| (format!("{field}[{i}]"), command))
                        .collect())
                };
                pre.insert(name.clone(), placed("preCommands")?);
                post.insert(name, placed("postCommands")?);
            }
        }
        return Ok((pre, post));
    }
    Err(invalid_protocol(
        "defaults.deployment",
        format!("Default deployment {chosen} does not exist."),
    ))
}

/// v1's config of a recorded job (JSON), as `GET …/config` shows it.
pub fn render_v1(config: &JobConfig) -> Value {
    let roles: Vec<Value> = config
        .roles
        .iter()
        .map(|role| {
            serde_json::json!({
                "name": role.name,
                "taskNumber": role.instances,
                "command": role.run.text(),
            })
        })
        .collect();
    let mut rendered = serde_json::json!({
        "jobName": config.name,
        "taskRoles": roles,
        "retryCount": config.retry_count,
    });
    if let Some(image) = &config.image {
        rendered["image"] = Value::String(image.clone());
    }
    if !config.variables.is_empty() {
        rendered["jobEnvs"] = serde_json::json!(config.variables);
    }
    rendered
}

/// v2's config of a recorded job (YAML, protocol version 2).
pub fn render_v2(config: &JobConfig) -> String {
    let mut root = Mapping::new();
    root.insert("protocolVersion".into(), 2.into());
    root.insert("name".into(), config.name.clone().into());
    root.insert("type".into(), "job".into());
    if let Some(image) = &config.image {
        let mut prerequisite = Mapping::new();
        prerequisite.insert("name".into(), "image".into());
        prerequisite.insert("type".into(), "dockerimage".into());
        prerequisite.insert("uri".into(), image.clone().into());
        root.insert(
            "prerequisites".into(),
            Yaml::Sequence(vec![Yaml::Mapping(prerequisite)]),
        );
    }
    root.insert("jobRetryCount".into(), config.retry_count.into());
    let mut roles = Mapping::new();
    for role in &config.roles {
        let mut spec = Mapping::new();
        spec.insert("instances".into(), role.instances.into());
        if config.image.is_some() {
            spec.insert("dockerImage".into(), "image".into());
        }
        spec.insert(
            "commands".into(),
            Yaml::Sequence(vec![role.run.text().to_string().into()]),
        );
        roles.insert(role.name.clone().into(), Yaml::Mapping(spec));
    }
    root.insert("taskRoles".into(), Yaml::Mapping(roles));
    serde_yaml::to_string(&Yaml::Mapping(root)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn yaml(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn a_command_is_a_catalog_task_only_as_one_word_app_env_task() {
        assert_eq!(
            Run::of(" example/production/deploy "),
            Run::Task("example/production/deploy".into())
        );
        assert_eq!(
            Run::of("my_app/env-2/task.v1"),
            Run::Task("my_app/env-2/task.v1".into())
        );
        for command in [
            "python train.py",
            "example/production",
            "a/b/c/d",
            "./a/b",
            "sh a/b/c",
            "a//c",
            "../b/c",
            "a/b/c && echo",
        ] {
            assert_eq!(Run::of(command), Run::Command(command.into()), "{command}");
        }
    }

    #[test]
    fn a_v1_config_from_a_form_reads_its_numbers_from_text() {
        let config = parse_v1(
            &fields(json!({
                "jobName": "train",
                "image": "aiplatform/pai.build.base",
                "codeDir": "$PAI_DEFAULT_FS_URI/code",
                "taskRoles": [
                    {"name": "main", "taskNumber": "2", "cpuNumber": "1", "command": "example/production/deploy"},
                    {"name": "ps", "command": "echo hi"}
                ],
                "retryCount": "1",
                "jobEnvs": {"A": "1", "B": 2}
            })),
            None,
        )
        .unwrap();
        assert_eq!(
            config,
            JobConfig {
                name: "train".into(),
                roles: vec![
                    RoleConfig {
                        name: "main".into(),
                        instances: 2,
                        run: Run::Task("example/production/deploy".into())
                    },
                    RoleConfig {
                        name: "ps".into(),
                        instances: 1,
                        run: Run::Command("echo hi".into())
                    },
                ],
                image: Some("aiplatform/pai.build.base".into()),
                retry_count: 1,
                variables: BTreeMap::from([("A".into(), "1".into()), ("B".into(), "2".into())]),
            }
        );
    }

    #[test]
    fn a_v1_put_takes_its_name_from_the_path() {
        let body = json!({"taskRoles": [{"name": "m", "command": "a/b/c"}]});
        assert_eq!(
            parse_v1(&fields(body.clone()), Some("x")).unwrap().name,
            "x"
        );
        let mut named = body.clone();
        named["jobName"] = json!("y");
        assert_eq!(
            parse_v1(&fields(named), Some("x")).unwrap_err().errors[0].field,
            "jobName"
        );
        assert_eq!(
            parse_v1(&fields(body), None).unwrap_err().errors[0].field,
            "jobName"
        );
    }

    #[test]
    fn a_bad_v1_config_is_refused_naming_the_field() {
        let role = json!({"name": "m", "command": "a/b/c"});
        for (body, field) in [
            (json!({"jobName": "j"}), "taskRoles"),
            (json!({"jobName": "j", "taskRoles": []}), "taskRoles"),
            (json!({"jobName": "j", "taskRoles": {"m": 1}}), "taskRoles"),
            (
                json!({"jobName": "j", "taskRoles": [{"name": "m"}]}),
                "taskRoles[0].command",
            ),
            (
                json!({"jobName": "j", "taskRoles": [{"command": "x"}]}),
                "taskRoles[0].name",
            ),
            (
                json!({"jobName": "j", "taskRoles": [{"name": "m", "command": "x", "taskNumber": "two"}]}),
                "taskRoles[0].taskNumber",
            ),
            (
                json!({"jobName": "j", "taskRoles": [{"name": "m", "command": "x", "taskNumber": -1}]}),
                "taskRoles[0].taskNumber",
            ),
            (
                json!({"jobName": "j", "taskRoles": [{"name": "m", "command": "x", "colour": 1}]}),
                "taskRoles[0].colour",
            ),
            (
                json!({"jobName": "j", "taskRoles": [{"name": "m", "command": "x", "minFailedTaskCount": 2}]}),
                "taskRoles[0].minFailedTaskCount",
            ),
            (
                json!({"jobName": "j", "taskRoles": [role.clone()], "retryCount": -1}),
                "retryCount",
            ),
            (
                json!({"jobName": "j", "taskRoles": [role.clone()], "jobEnvs": {"A": [1]}}),
                "jobEnvs.A",
            ),
            (
                json!({"jobName": "j", "taskRoles": [role.clone()], "killAllOnCompletedTaskNumber": 1}),
                "killAllOnCompletedTaskNumber",
            ),
            (
                json!({"jobName": "j", "taskRoles": [role.clone()], "priority": 1}),
                "priority",
            ),
            (json!({"jobName": 7, "taskRoles": [role]}), "jobName"),
        ] {
            let problem = parse_v1(&fields(body.clone()), None).unwrap_err();
            assert_eq!(problem.status, 400, "{body}");
            assert_eq!(problem.errors[0].field, field, "{body}");
        }
    }

    const SDK_CONFIG: &str = r#"
protocolVersion: 2
name: sdk_test_job
type: job
version: '1.0'
contributor: OpenPAI
description: an example
parameters:
  modelPath: /tmp/mnist_model
prerequisites:
  - name: tf_serving_example
    protocolVersion: 2
    type: dockerimage
    uri: openpai/pai.example.tensorflow-serving
    version: 1.0-r1.4
taskRoles:
  worker:
    commands:
      - 'bazel-bin/mnist_saved_model <% $parameters.modelPath %>'
      - 'serve --path=<% $parameters.modelPath %> --port=8080 <%= not a reference'
    dockerImage: tf_serving_example
    instances: 2
    resourcePerInstance:
      cpu: 4
      gpu: 1
      memoryMB: 8192
      ports:
        model_server: 1
  checker:
    commands: [example/production/deploy]
    dockerImage: tf_serving_example
jobRetryCount: 2
"#;

    #[test]
    fn a_v2_config_keeps_its_task_roles_in_order_and_renders_parameters() {
        let config = parse_v2(&yaml(SDK_CONFIG)).unwrap();
        assert_eq!(config.name, "sdk_test_job");
        assert_eq!(
            config.image.as_deref(),
            Some("openpai/pai.example.tensorflow-serving")
        );
        assert_eq!(config.retry_count, 2);
        assert_eq!(
            config.roles,
            vec![
                RoleConfig {
                    name: "worker".into(),
                    instances: 2,
                    run: Run::Command(
                        "bazel-bin/mnist_saved_model /tmp/mnist_model && serve --path=/tmp/mnist_model --port=8080 <%= not a reference".into()
                    ),
                },
                RoleConfig {
                    name: "checker".into(),
                    instances: 1,
                    run: Run::Task("example/production/deploy".into()),
                },
            ]
        );
    }

    #[test]
    fn an_unresolved_reference_is_refused_naming_its_command() {
        for (text, field, says) in [
            (
                "name: j\ntaskRoles:\n  m:\n    commands: [a, 'echo <% $secrets.key %>']\n",
                "taskRoles.m.commands[1]",
                "secrets",
            ),
            (
                "name: j\nparameters: {a: 1}\ntaskRoles:\n  m:\n    commands: ['echo <% $parameters.b %>']\n",
                "taskRoles.m.commands[0]",
                "no parameter",
            ),
            (
                "name: j\ntaskRoles:\n  m:\n    commands: ['cp <% $data.x.uri %> .']\n",
                "taskRoles.m.commands[0]",
                "$parameters",
            ),
            (
                "name: j\ntaskRoles:\n  m:\n    commands: [b]\ndeployments:\n  - name: d\n    taskRoles:\n      m:\n        preCommands: [a, '<% $script.x %>']\ndefaults:\n  deployment: d\n",
                "deployments[0].taskRoles.m.preCommands[1]",
                "$parameters",
            ),
        ] {
            let problem = parse_v2(&yaml(text)).unwrap_err();
            assert_eq!((problem.status, problem.code), (400, "invalid_protocol"), "{text}");
            assert_eq!(problem.errors[0].field, field, "{text}");
            assert!(problem.detail.unwrap().contains(says), "{text}");
        }
    }

    #[test]
    fn a_v2_deployment_wraps_the_commands() {
        let config = parse_v2(&yaml(
            "name: j\ntaskRoles:\n  main:\n    commands: [b]\ndeployments:\n  - name: d\n    taskRoles:\n      main:\n        preCommands: [a]\n        postCommands: [c]\ndefaults:\n  deployment: d\n",
        ))
        .unwrap();
        assert_eq!(config.roles[0].run, Run::Command("a && b && c".into()));
        let problem = parse_v2(&yaml(
            "name: j\ntaskRoles:\n  main:\n    commands: [b]\ndefaults:\n  deployment: d\n",
        ))
        .unwrap_err();
        assert_eq!(problem.errors[0].field, "defaults.deployment");
    }

    #[test]
    fn a_bad_v2_config_is_refused_naming_the_field() {
        for (text, field) in [
            ("taskRoles: {m: {commands: [a]}}", "name"),
            ("name: j", "taskRoles"),
            ("name: j\ntaskRoles: {}", "taskRoles"),
            ("name: j\nprotocolVersion: 1\ntaskRoles: {m: {commands: [a]}}", "protocolVersion"),
            ("name: j\ntype: data\ntaskRoles: {m: {commands: [a]}}", "type"),
            ("name: j\ntaskRoles: {m: {}}", "taskRoles.m.commands"),
            ("name: j\ntaskRoles: {m: {commands: []}}", "taskRoles.m.commands"),
            ("name: j\ntaskRoles: {m: {commands: [{a: 1}]}}", "taskRoles.m.commands[0]"),
            ("name: j\ntaskRoles: {m: {commands: [a], instances: -1}}", "taskRoles.m.instances"),
            ("name: j\ntaskRoles: {m: {commands: [a], dockerImage: nope}}", "taskRoles.m.dockerImage"),
            ("name: j\ntaskRoles: {m: {commands: [a], taskRetryCount: 1}}", "taskRoles.m.taskRetryCount"),
            ("name: j\ntaskRoles: {m: {commands: [a], completion: {minSucceededInstances: 1}}}", "taskRoles.m.completion"),
            ("name: j\ntaskRoles: {m: {commands: [a], gpu: 1}}", "taskRoles.m.gpu"),
            ("name: j\nsecrets: {k: v}\ntaskRoles: {m: {commands: [a]}}", "secrets"),
            ("name: j\nflavour: x\ntaskRoles: {m: {commands: [a]}}", "flavour"),
            ("name: j\njobRetryCount: many\ntaskRoles: {m: {commands: [a]}}", "jobRetryCount"),
            (
                "name: j\nprerequisites: [{name: a, type: dockerimage, uri: x}, {name: b, type: dockerimage, uri: y}]\ntaskRoles: {m: {commands: [a], dockerImage: a}, n: {commands: [a], dockerImage: b}}",
                "taskRoles.n.dockerImage",
            ),
        ] {
            let problem = parse_v2(&yaml(text)).unwrap_err();
            assert_eq!((problem.status, problem.code), (400, "invalid_protocol"), "{text}");
            assert_eq!(problem.errors[0].field, field, "{text}");
        }
    }

    #[test]
    fn a_rendered_config_reads_back_the_same() {
        let config = JobConfig {
            name: "j".into(),
            roles: vec![
                RoleConfig {
                    name: "b".into(),
                    instances: 3,
                    run: Run::Task("example/production/deploy".into()),
                },
                RoleConfig {
                    name: "a".into(),
                    instances: 1,
                    run: Run::Command("echo 'hi' && sleep 1".into()),
                },
            ],
            image: Some("ubuntu:22.04".into()),
            retry_count: 1,
            variables: BTreeMap::new(),
        };
        assert_eq!(parse_v2(&yaml(&render_v2(&config))).unwrap(), config);
        let v1 = render_v1(&config);
        assert_eq!(parse_v1(v1.as_object().unwrap(), None).unwrap(), config);
    }
}
