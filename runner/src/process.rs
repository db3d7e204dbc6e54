//! A job's process: its own process group, variables as environment variables (never in a shell
//! string), stdout and stderr read as they come.

use bosun_domain::jobs::{OutputStream, TaskSpec};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
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

pub fn spawn(spec: &TaskSpec, variables: &BTreeMap<String, String>) -> std::io::Result<Running> {
    let Some((program, args)) = spec.command.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the task has no command",
        ));
    };
    let mut command = Command::new(program);
    // A clean environment: the server's own (its database URL, its BOSUN_* settings) is not the
    // job's. The catalog's env is set after the job's variables, so an operator's value wins.
    command.env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .args(args)
        .envs(variables)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a kill reaches everything it started.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn()?;
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
