//! A job as pulsar's clients know it: the 0.6.1 `getClientData` shape plus the seed's fields,
//! derived from the native job (COMPAT.md §1, Decisions).

use crate::problem::Problem;
use crate::startup::AppState;
use bosun_domain::jobs::JobStatus;
use bosun_projections::read_models::jobs::JobView;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PulsarJob {
    pub id: String,
    pub status: &'static str,
    /// When it was submitted, in milliseconds since the epoch.
    pub timestamp: i64,
    pub stdout: String,
    /// Standard output and error, interleaved as they came.
    pub output: String,
    /// `app env task` and the capistrano options, as pulsar printed it (the variables in name
    /// order, as in `args.capistranoOptions`); an orchestration job's, its name alone.
    pub command: String,
    pub args: Args,
    pub app: String,
    pub env: String,
    pub task: String,
    pub exit_code: Option<i32>,
    pub pid: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    pub app: String,
    pub env: String,
    pub task: String,
    /// The job's variables as capistrano options, one `-s NAME="value"` each, in name order
    /// (pulsar kept the order they were given in; a job's variables have none, so a client sees
    /// the same list every time).
    pub capistrano_options: Vec<String>,
    pub pulsar_options: Vec<String>,
}

/// pulsar's name for a native status: `waiting→CREATED, processing→RUNNING` (`KILLING` once a
/// kill is asked), `success→FINISHED`, `error|warning|cancelled→FAILED`, `killed→KILLED`.
pub fn status(status: JobStatus, kill_requested: bool) -> &'static str {
    match status {
        JobStatus::Waiting => "CREATED",
        JobStatus::Processing if kill_requested => "KILLING",
        JobStatus::Processing => "RUNNING",
        JobStatus::Success => "FINISHED",
        JobStatus::Error | JobStatus::Warning | JobStatus::Cancelled => "FAILED",
        JobStatus::Killed => "KILLED",
    }
}

/// The job's variables, sorted by name.
fn variables(variables: &Value) -> Vec<(&str, String)> {
    let Some(variables) = variables.as_object() else {
        return Vec::new();
    };
    let mut pairs: Vec<(&str, String)> = variables
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (name.as_str(), value)
        })
        .collect();
    pairs.sort();
    pairs
}

/// The variables as pulsar 0.6.1 kept them in `args.capistranoOptions`: one
/// `-s NAME="value"` per variable, name and value shell-escaped.
fn capistrano_options(variables: &[(&str, String)]) -> Vec<String> {
    variables
        .iter()
        .map(|(name, value)| format!("-s {}=\"{}\"", shell_escape(name), shell_escape(value)))
        .collect()
}

/// What the npm `shellwords` package's `escape` does: a backslash before every character but
/// `[A-Za-z0-9_\-.,:/@\n]`, and a newline quoted as `'\n'`.
fn shell_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("'\n'"),
            c if c.is_ascii_alphanumeric() || "_-.,:/@".contains(c) => escaped.push(c),
            c => {
                escaped.push('\\');
                escaped.push(c);
            }
        }
    }
    escaped
}

/// `view` in pulsar's shape, with its output so far. The caller has checked that its reader may
/// read it (`Queries::job`).
pub async fn render(state: &AppState, view: JobView) -> Result<PulsarJob, Problem> {
    let (stdout, output) = crate::routes::v1::jobs::whole_output(state, view.id).await?;
    Ok(shape(view, stdout, output))
}

/// `view` in pulsar's shape with only the last `max` bytes of its output so far (a partial
/// character at the cut shown replaced), for the feed's `job.change`: a job's output may be
/// many megabytes, and each change would otherwise read and send all of it again.
pub async fn render_tail(state: &AppState, view: JobView, max: i64) -> Result<PulsarJob, Problem> {
    let stdout_from = (view.stdout_bytes - max).max(0);
    let combined_from = (view.stdout_bytes + view.stderr_bytes - max).max(0);
    let (stdout, output) =
        crate::routes::v1::jobs::output_from(state, view.id, stdout_from, combined_from).await?;
    // More may have come since `view` was read.
    Ok(shape(view, tail(stdout, max), tail(output, max)))
}

/// The last `max` bytes of `text`, or a little fewer, to start on a character.
fn tail(mut text: String, max: i64) -> String {
    let max = usize::try_from(max).unwrap_or(0);
    if text.len() > max {
        let mut cut = text.len() - max;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text.drain(..cut);
    }
    text
}

/// `view` in pulsar's shape with the output given.
pub fn shape(view: JobView, stdout: String, output: String) -> PulsarJob {
    let app = view.app.unwrap_or_default();
    let env = view.env.unwrap_or_default();
    let task = view
        .task
        .filter(|task| !task.is_empty())
        .or(view.name)
        .unwrap_or_default();
    let variables = variables(&view.variables);
    let capistrano_options = capistrano_options(&variables);
    let command = command_line(&[&app, &env, &task], &variables);
    PulsarJob {
        id: view.id.to_string(),
        status: status(view.status, view.kill_requested),
        timestamp: view.created_at.timestamp_millis(),
        stdout,
        output,
        command,
        args: Args {
            app: app.clone(),
            env: env.clone(),
            task: task.clone(),
            capistrano_options,
            pulsar_options: Vec::new(),
        },
        app,
        env,
        task,
        exit_code: view.exit_code,
        pid: view.pid,
    }
}

/// `command` as pulsar printed it: the capistrano arguments as they were split for its process,
/// the options' quoting and escapes gone. Empty words are left out: an orchestration job has no
/// app or environment, and its command is its name alone.
fn command_line(words: &[&str], variables: &[(&str, String)]) -> String {
    words
        .iter()
        .filter(|word| !word.is_empty())
        .map(|word| word.to_string())
        .chain(
            variables
                .iter()
                .flat_map(|(name, value)| ["-s".to_string(), format!("{name}={value}")]),
        )
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tail_is_the_last_bytes_starting_on_a_character() {
        assert_eq!(tail("abcdef".into(), 3), "def");
        assert_eq!(tail("abc".into(), 3), "abc");
        assert_eq!(tail("aé".into(), 1), "");
        assert_eq!(tail("aé".into(), 2), "é");
    }

    #[test]
    fn each_native_status_has_its_pulsar_name() {
        let cases = [
            (JobStatus::Waiting, false, "CREATED"),
            (JobStatus::Processing, false, "RUNNING"),
            (JobStatus::Processing, true, "KILLING"),
            (JobStatus::Success, false, "FINISHED"),
            (JobStatus::Error, false, "FAILED"),
            (JobStatus::Warning, false, "FAILED"),
            (JobStatus::Cancelled, false, "FAILED"),
            (JobStatus::Killed, true, "KILLED"),
        ];
        for (native, kill, pulsar) in cases {
            assert_eq!(status(native, kill), pulsar, "{native:?} kill={kill}");
        }
    }

    #[test]
    fn variables_become_capistrano_options_in_name_order() {
        let given = json!({"VERSION": "1.2", "BRANCH": "main"});
        let pairs = variables(&given);
        assert_eq!(
            capistrano_options(&pairs),
            ["-s BRANCH=\"main\"", "-s VERSION=\"1.2\""]
        );
        assert!(capistrano_options(&variables(&json!({}))).is_empty());
    }

    #[test]
    fn the_command_is_the_task_and_its_variables_in_name_order() {
        let given = json!({"VERSION": "1.2 beta", "BRANCH": "main"});
        let pairs = variables(&given);
        assert_eq!(
            command_line(&["shop", "production", "deploy"], &pairs),
            "shop production deploy -s BRANCH=main -s VERSION=1.2 beta"
        );
        // An orchestration job: no app, environment or variables, only its name.
        assert_eq!(command_line(&["", "", "nightly"], &[]), "nightly");
        assert_eq!(command_line(&["", "", ""], &[]), "");
    }

    #[test]
    fn a_value_is_shell_escaped_as_pulsar_did() {
        assert_eq!(shell_escape("a b\"c'$"), "a\\ b\\\"c\\'\\$");
        assert_eq!(shell_escape("x\ny"), "x'\n'y");
        assert_eq!(shell_escape("v1.2-rc_3/x@h:p,"), "v1.2-rc_3/x@h:p,");
    }
}
