//! A job's process: its own process group, variables as environment variables (never in a shell
//! string), stdout and stderr read as they come; or a command made elsewhere (a role job's
//! sandbox) run the same way ([`spawn_command_from_spawner`]).

use bosun_domain::jobs::{OutputStream, TaskSpec};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use secrecy::{ExposeSecret, SecretString};
use std::process::Stdio;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// What a job's process gets from the server's environment; nothing else.
const INHERITED: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER"];

pub struct Running {
    pub child: Child,
    pub pid: u32,
    /// Chunks of output as they are read; closed when both streams reach their end.
    pub output: mpsc::Receiver<(OutputStream, Vec<u8>)>,
}

/// A process's environment beyond the inherited names, in the order it is set: a later value of
/// a name replaces an earlier one. Values may be secrets (an app's private variables): each stays
/// wrapped until the process is spawned, and `Debug` shows the names only.
#[derive(Default)]
pub struct Environment(Vec<(String, SecretString)>);

impl Environment {
    /// Sets each of `variables` (over what is set already).
    pub fn set_all<'a>(&mut self, variables: impl IntoIterator<Item = (&'a String, &'a String)>) {
        for (name, value) in variables {
            self.0
                .push((name.clone(), SecretString::from(value.as_str())));
        }
    }

    /// Sets each of `variables`, secrets or not (over what is set already).
    pub fn set_secrets(&mut self, variables: impl IntoIterator<Item = (String, SecretString)>) {
        self.0.extend(variables);
    }

    /// The value the process gets for `name`, if any (the last one set).
    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.expose_secret())
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Spawns `spec` with exactly `environment` (and the inherited names): the catalog's `env` is
/// wherever the caller put it in. Its process dies with the server, even one SIGKILLed (the
/// parent-death signal, set from the spawner thread as a unit's is): another node's reaper ends
/// the job of a lost worker, and the process must not run on unseen after its job has ended.
/// As for a unit, processes it started itself may outlive a SIGKILLed server; every other end
/// of the job takes its whole group.
pub async fn spawn(spec: &TaskSpec, environment: &Environment) -> std::io::Result<Running> {
    let Some((program, args)) = spec.command.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the task has no command",
        ));
    };
    let mut command = Command::new(program);
    // A clean environment: the server's own (its database URL, its BOSUN_* settings) is not the
    // job's.
    command.env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in &environment.0 {
        command.env(name, value.expose_secret());
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a kill reaches everything it started.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    crate::units::process::dies_with_the_server(&mut command);
    spawn_command_from_spawner(command).await
}

/// Spawns `command` (its environment, process group and parent-death signal as the caller
/// made them: a job's, or a role job's sandbox) with its stdin closed and its stdout and stderr
/// read as they come, from the units' spawner thread: started from a thread of the runtime, it
/// would get SIGKILL when that thread ends, not when the server does.
pub async fn spawn_command_from_spawner(mut command: Command) -> std::io::Result<Running> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    running(crate::units::process::spawn_outside_units(command).await?)
}

/// A started child, its output read as it comes.
fn running(mut child: Child) -> std::io::Result<Running> {
    let pid = child.id().unwrap_or(0);
    let (sender, output) = mpsc::channel(64);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(read(stdout, OutputStream::Stdout, sender.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(read(stderr, OutputStream::Stderr, sender));
    }
    Ok(Running { child, pid, output })
}

impl Drop for Running {
    /// However the run ends (an error, the worker stopped), nothing of the job's group stays.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(self.pid, Signal::SIGKILL);
        }
    }
}

async fn read(
    mut from: impl AsyncReadExt + Unpin,
    stream: OutputStream,
    to: mpsc::Sender<(OutputStream, Vec<u8>)>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.send((stream, buffer[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sends `signal` to the job's whole process group.
pub fn signal_group(pid: u32, signal: Signal) {
    if pid == 0 {
        return;
    }
    if let Err(e) = killpg(Pid::from_raw(pid as i32), signal) {
        // ESRCH: the group is already gone.
        if e != nix::errno::Errno::ESRCH {
            tracing::warn!(pid, ?signal, error = %e, "signalling a job's process group failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec(script: &str) -> TaskSpec {
        serde_json::from_value(serde_json::json!({"command": ["sh", "-c", script]})).unwrap()
    }

    async fn stdout_of(mut running: Running) -> String {
        let mut text = Vec::new();
        while let Some((stream, chunk)) = running.output.recv().await {
            if stream == OutputStream::Stdout {
                text.extend(chunk);
            }
        }
        let _ = running.child.wait().await;
        String::from_utf8(text).unwrap()
    }

    #[tokio::test]
    async fn a_later_value_of_a_name_wins_and_secrets_reach_the_process_only() {
        let mut environment = Environment::default();
        let catalog = BTreeMap::from([("A".to_string(), "catalog".to_string())]);
        let job = BTreeMap::from([("A".to_string(), "job".to_string())]);
        environment.set_all(&catalog);
        environment.set_secrets([
            ("A".to_string(), SecretString::from("app")),
            ("S".to_string(), SecretString::from("hush")),
        ]);
        assert_eq!(environment.get("A"), Some("app"));
        environment.set_all(&job);
        assert_eq!(format!("{environment:?}"), r#"["A", "A", "S", "A"]"#);
        let running = spawn(&spec("echo $A $S"), &environment).await.unwrap();
        assert_eq!(stdout_of(running).await, "job hush\n");
    }
}
