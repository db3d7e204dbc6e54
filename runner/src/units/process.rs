//! A unit's process: its own process group, an environment built only from the app's
//! environment, the catalog's `env` and its port (never in a shell string), and no output kept.
//!
//! **Its whole group ends with it.** However its run ends (its main process exits on its own, a
//! stop after SIGTERM, its lease lost, its app removed), the group gets SIGKILL *before* its main
//! process is reaped, so what it left behind (`sh -c './a & ./b'`, `npm start`'s children) does
//! not outlive it. The end of the main process is noticed without reaping it (`waitid` with
//! `WNOWAIT`): until it is reaped, its pid, which is the group's id, cannot be given to another
//! process, so a group signal never reaches a stranger. A unit being stopped gets SIGTERM first,
//! and its group `kill_grace_seconds` to end, main process and children alike. A process started
//! for a unit whose run was cancelled meanwhile (its task dropped mid-start) is killed, group and
//! all.
//!
//! **It dies with the server**, even one killed with SIGKILL: the kernel sends the main process
//! SIGKILL when the thread that started it ends (`PR_SET_PDEATHSIG`), and every unit is started
//! from one thread that lives as long as the process (a parent-death signal follows the *thread*
//! that forked, and the runtime's threads may come and go). A child whose parent died before it
//! set the signal exits at once rather than run unwatched. **What remains:** the parent-death
//! signal reaches only the unit's main process; processes *it* started (its children,
//! grandchildren of the server) survive a SIGKILL of the server itself, as nothing is left to
//! signal their group. Every other end of a unit takes them along. (A PID namespace or a cgroup
//! per unit would take them too, but needs privileges a worker does not always have.)
//!
//! A runnable's sandbox is started the same way ([`spawn_command`]), so it is killed and dies
//! with the server as a unit does.
//!
//! Does not own: when to start or stop it (`unit`), its port (`ports`), a sandbox's command
//! (`crate::runnables::sandbox`).

use crate::process::signal_group;
use bosun_domain::jobs::ProcessSpec;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// What a unit's process gets from the server's environment; nothing else.
const INHERITED: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER"];
/// How often the end of a process is looked for when no SIGCHLD says so.
const POLL: Duration = Duration::from_millis(100);

/// The process groups of the units running here, by unit, while their main process is not
/// reaped (so signalling one never reaches a stranger).
#[derive(Default)]
pub(crate) struct Groups(Mutex<BTreeMap<String, u32>>);

impl Groups {
    fn insert(&self, key: &str, pgid: u32) {
        if let Ok(mut groups) = self.0.lock() {
            groups.insert(key.to_string(), pgid);
        }
    }

    fn remove(&self, key: &str) {
        if let Ok(mut groups) = self.0.lock() {
            groups.remove(key);
        }
    }

    /// Sends `signal` to the group of unit `key`, if one runs here.
    pub fn signal(&self, key: &str, signal: Signal) {
        if let Ok(groups) = self.0.lock() {
            if let Some(pgid) = groups.get(key) {
                signal_group(*pgid, signal);
            }
        }
    }

    /// Sends `signal` to every group whose key does not start with `except` (`""`: all).
    pub fn signal_all_but(&self, except: &str, signal: Signal) {
        if let Ok(groups) = self.0.lock() {
            for (key, pgid) in groups.iter() {
                if except.is_empty() || !key.starts_with(except) {
                    signal_group(*pgid, signal);
                }
            }
        }
    }
}

/// A unit's running process; its whole group is killed when this is dropped while it runs.
pub(crate) struct UnitProcess {
    child: Child,
    pub pid: u32,
    /// Reaped (by us, or by someone else behind our back): its group must not be signalled any
    /// more (its id may be reused).
    reaped: bool,
    groups: Arc<Groups>,
    key: String,
    /// SIGCHLD, to notice its end at once (else it is looked for every [`POLL`]).
    sigchld: Option<tokio::signal::unix::Signal>,
}

impl UnitProcess {
    /// Its output pipes, for a command started with them piped (a runnable's).
    pub fn take_output(
        &mut self,
    ) -> (
        Option<tokio::process::ChildStdout>,
        Option<tokio::process::ChildStderr>,
    ) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// Sends `signal` to its whole group, while it is not reaped.
    pub fn signal(&self, signal: Signal) {
        if !self.reaped {
            signal_group(self.pid, signal);
        }
    }

    /// Waits for its main process to end, without reaping it. Cancel-safe.
    pub async fn ended(&mut self) {
        while !self.reaped {
            match leader(self.pid) {
                Leader::Ended => return,
                Leader::Gone => {
                    // Reaped by someone else: its group's id is no longer its own.
                    tracing::warn!(pid = self.pid, "a unit's process was reaped elsewhere");
                    self.reaped = true;
                    self.groups.remove(&self.key);
                    return;
                }
                Leader::Running => {}
            }
            match self.sigchld.as_mut() {
                Some(sigchld) => {
                    let _ = tokio::time::timeout(POLL * 10, sigchld.recv()).await;
                }
                None => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Its main process ended: kills what is left of its group, then reaps it.
    pub async fn finish(&mut self) -> std::io::Result<ExitStatus> {
        // Not reaped yet: the group's id is still this unit's.
        self.signal(Signal::SIGKILL);
        self.groups.remove(&self.key);
        let status = self.child.wait().await;
        if status.is_ok() {
            self.reaped = true;
        }
        status
    }

    /// Waits for it to end on its own; then whatever is left of its group is killed.
    #[cfg(test)]
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.ended().await;
        self.finish().await
    }

    /// Waits (at most `grace`) for its main process and every other process of its group to
    /// end; then kills what is left and reaps it.
    pub async fn settle(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        let pgid = self.pid;
        let _ = tokio::time::timeout(grace, async {
            self.ended().await;
            while group_lives(pgid) {
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        self.finish().await
    }

    /// SIGTERM to its group; SIGKILL to what is left once its group ended or after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        self.signal(Signal::SIGTERM);
        self.settle(grace).await
    }

    /// SIGKILL to its group, now.
    pub async fn kill(&mut self) -> std::io::Result<ExitStatus> {
        self.signal(Signal::SIGKILL);
        self.finish().await
    }
}

impl Drop for UnitProcess {
    fn drop(&mut self) {
        if !self.reaped {
            signal_group(self.pid, Signal::SIGKILL);
            self.groups.remove(&self.key);
        }
    }
}

/// How a unit's main process (or a sandbox's first one) is.
pub(crate) enum Leader {
    Running,
    /// Ended, not reaped: its pid (its group's id) is still reserved.
    Ended,
    /// No such child any more (reaped elsewhere).
    Gone,
}

/// How process `pid` (a child of this process) is; an ended one stays unreaped.
pub(crate) fn leader(pid: u32) -> Leader {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid as i32)), flags) {
        Ok(WaitStatus::StillAlive) => Leader::Running,
        Ok(_) => Leader::Ended,
        Err(nix::errno::Errno::EINTR) => Leader::Running,
        Err(_) => Leader::Gone,
    }
}

/// Whether a process of group `pgid` still runs (zombies do not count): read from `/proc`.
pub(crate) fn group_lives(pgid: u32) -> bool {
    !group_members(pgid).is_empty()
}

/// The processes of group `pgid` still running (not zombies), as `/proc` lists them.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp …`: comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let _ppid = fields.next()?;
            let pgrp: u32 = fields.next()?.parse().ok()?;
            (pgrp == pgid && state != "Z" && state != "X").then_some(pid)
        })
        .collect()
}

/// The environment of a unit, each layer over the one before: its app's environment, the
/// catalog's `env` of its process (the operator's value wins over what the app's owners set, as
/// for jobs), then its port in the process's `port_env`.
pub(crate) fn environment(
    spec: &ProcessSpec,
    app: &[(String, SecretString)],
    port: u16,
) -> Vec<(String, SecretString)> {
    let mut env: BTreeMap<String, SecretString> = app.iter().cloned().collect();
    for (name, value) in &spec.env {
        env.insert(name.clone(), SecretString::from(value.clone()));
    }
    env.insert(
        spec.port_variable().to_string(),
        SecretString::from(port.to_string()),
    );
    env.into_iter().collect()
}

/// Starts `spec`'s program with exactly `env` (and the few inherited variables), its group
/// registered in `groups` as unit `key`'s.
pub(crate) async fn spawn(
    spec: &ProcessSpec,
    env: &[(String, SecretString)],
    groups: &Arc<Groups>,
    key: &str,
) -> std::io::Result<UnitProcess> {
    let Some((program, args)) = spec.command.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the process has no command",
        ));
    };
    let mut command = Command::new(program);
    command.env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in env {
        command.env(name, value.expose_secret());
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        // Its own group, so a stop reaches everything it started.
        .process_group(0);
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    dies_with_the_server(&mut command);
    spawn_command(command, groups, key).await
}

/// Sets `command`'s parent-death signal: its process gets SIGKILL when the thread that starts it
/// ends, which for the spawner thread ([`spawn_command`], [`spawn_outside_units`]) is when the
/// server does, even a SIGKILLed one. A child whose parent died before the signal was set fails
/// to start rather than run unwatched.
pub(crate) fn dies_with_the_server(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: between fork and exec only async-signal-safe calls: prctl and getppid.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid().as_raw() as u32 != parent {
                // The server died before the signal was set: nothing would ever stop this one.
                return Err(std::io::Error::other("the server is gone"));
            }
            Ok(())
        });
    }
}

/// Starts `command` (already its own process group, with its parent-death signal set, as
/// [`spawn`]'s and the runnables' sandbox's are) from the spawner thread, its group registered
/// in `groups` under `key`.
pub(crate) async fn spawn_command(
    command: Command,
    groups: &Arc<Groups>,
    key: &str,
) -> std::io::Result<UnitProcess> {
    // Listening before it can end, so its SIGCHLD is not missed.
    let sigchld = signal(SignalKind::child()).ok();
    let mut spawned = spawn_from_the_spawner(command).await?;
    let child = spawned
        .0
        .take()
        .ok_or_else(|| std::io::Error::other("the unit's process was not started"))?;
    let pid = child.id().unwrap_or(0);
    groups.insert(key, pid);
    Ok(UnitProcess {
        child,
        pid,
        reaped: false,
        groups: groups.clone(),
        key: key.to_string(),
        sigchld,
    })
}

/// Starts `command` (already its own process group, with its parent-death signal set, as the
/// runnables' sandbox's is) from the spawner thread, so its parent-death signal comes only when
/// the server ends; for a process that is not a unit's (a role job's command).
pub(crate) async fn spawn_outside_units(command: Command) -> std::io::Result<Child> {
    let mut spawned = spawn_from_the_spawner(command).await?;
    spawned
        .0
        .take()
        .ok_or_else(|| std::io::Error::other("the process was not started"))
}

/// A process just started, on its way to the unit that asked for it: if it never gets there
/// (the unit's task was cancelled meanwhile), its group is killed.
struct Spawned(Option<Child>);

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            if let Some(pid) = child.id() {
                // Not reaped (nobody waited for it): its group's id is still its own.
                signal_group(pid, Signal::SIGKILL);
            }
            // Dropped, the runtime reaps it (and kill_on_drop kills it, in case).
        }
    }
}

type Request = (
    Command,
    tokio::runtime::Handle,
    oneshot::Sender<std::io::Result<Spawned>>,
);

/// Hands `command` to the spawner thread, which starts it inside the caller's runtime (whose
/// driver then reaps it).
async fn spawn_from_the_spawner(command: Command) -> std::io::Result<Spawned> {
    static SPAWNER: OnceLock<Result<mpsc::Sender<Request>, String>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (sender, requests) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("bosun-unit-spawner".into())
            .spawn(move || {
                for (mut command, runtime, reply) in requests {
                    let _entered = runtime.enter();
                    // The asker gone, the process comes back here and is killed (`Spawned`).
                    let _ = reply.send(command.spawn().map(|child| Spawned(Some(child))));
                }
            })
            .map(|_| sender)
            .map_err(|e| e.to_string())
    });
    let spawner = spawner
        .as_ref()
        .map_err(|e| std::io::Error::other(format!("no thread to start units from: {e}")))?;
    let (reply, answer) = oneshot::channel();
    spawner
        .send((command, tokio::runtime::Handle::current(), reply))
        .map_err(|_| std::io::Error::other("the unit spawner thread is gone"))?;
    answer
        .await
        .map_err(|_| std::io::Error::other("the unit spawner thread is gone"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn spec(command: &[&str]) -> ProcessSpec {
        serde_json::from_value(serde_json::json!({
            "command": command,
            "env": {"A": "catalog", "PORT": "catalog"},
        }))
        .unwrap()
    }

    /// `sh` that leaves a child behind in its group, then becomes a long sleep.
    fn forking() -> ProcessSpec {
        spec(&["sh", "-c", "sleep 600 & exec sleep 600"])
    }

    async fn started(spec: &ProcessSpec, groups: &Arc<Groups>, key: &str) -> UnitProcess {
        let process = spawn(spec, &[], groups, key).await.unwrap();
        // Its child forked.
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_members(process.pid).len() < 2 {
            assert!(Instant::now() < deadline, "the unit's child never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process
    }

    async fn group_gone(pgid: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_lives(pgid) {
            assert!(
                Instant::now() < deadline,
                "group {pgid} outlived its unit: {:?}",
                group_members(pgid)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn the_operators_env_wins_over_the_apps_and_the_port_over_both() {
        let app = [
            ("A".to_string(), SecretString::from("app")),
            ("B".to_string(), SecretString::from("app")),
            ("PORT".to_string(), SecretString::from("1")),
        ];
        let env: BTreeMap<String, String> = environment(&spec(&["x"]), &app, 20001)
            .into_iter()
            .map(|(name, value)| (name, value.expose_secret().to_string()))
            .collect();
        assert_eq!(env["A"], "catalog", "the catalog's env over the app's");
        assert_eq!(env["B"], "app");
        assert_eq!(env["PORT"], "20001", "the port over everything");
        assert_eq!(env.len(), 3, "{env:?}");
    }

    #[tokio::test]
    async fn a_unit_that_ends_on_its_own_takes_its_group_along() {
        let groups = Arc::new(Groups::default());
        let mut process = started(&forking(), &groups, "u").await;
        let pgid = process.pid;
        // Its main process killed by hand: what it started is killed before it is reaped.
        nix::sys::signal::kill(Pid::from_raw(pgid as i32), Signal::SIGKILL).unwrap();
        let status = process.wait().await.unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        group_gone(pgid).await;
        assert!(groups.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stopped_or_killed_unit_takes_its_group_along() {
        let groups = Arc::new(Groups::default());
        let mut process = started(&forking(), &groups, "u").await;
        let pgid = process.pid;
        process.stop(Duration::from_secs(5)).await.unwrap();
        group_gone(pgid).await;

        // A group that ignores SIGTERM is killed after the grace period.
        let stubborn = spec(&["sh", "-c", "trap '' TERM; sleep 600 & exec sleep 600"]);
        let mut process = started(&stubborn, &groups, "u").await;
        let pgid = process.pid;
        let began = Instant::now();
        process.stop(Duration::from_millis(300)).await.unwrap();
        assert!(began.elapsed() >= Duration::from_millis(300));
        group_gone(pgid).await;

        let mut process = started(&forking(), &groups, "u").await;
        let pgid = process.pid;
        process.kill().await.unwrap();
        group_gone(pgid).await;

        // Dropped while it runs.
        let process = started(&forking(), &groups, "u").await;
        let pgid = process.pid;
        drop(process);
        group_gone(pgid).await;
        assert!(groups.0.lock().unwrap().is_empty());
    }

    /// The processes still running (not zombies) whose environment holds `entry`.
    fn with_env(entry: &str) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let zombie = stat
                    .rfind(')')
                    .is_some_and(|end| stat[end + 1..].trim_start().starts_with('Z'));
                !zombie && environ.split(|b| *b == 0).any(|e| e == entry.as_bytes())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_process_started_for_a_cancelled_unit_is_killed() {
        let marker = format!("BOSUN_TEST_MARKER={}", uuid::Uuid::new_v4());
        let (name, value) = marker.split_once('=').unwrap();
        let env = [(name.to_string(), SecretString::from(value.to_string()))];
        let groups = Arc::new(Groups::default());
        // Cancelled as soon as the start was asked for.
        let cancelled =
            tokio::time::timeout(Duration::ZERO, spawn(&forking(), &env, &groups, "u")).await;
        drop(cancelled);
        // The spawner answers in turn: once a later start is done, the first one was made.
        let mut later = spawn(&spec(&["true"]), &[], &groups, "v").await.unwrap();
        later.wait().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !with_env(&marker).is_empty() {
            assert!(
                Instant::now() < deadline,
                "a process of a cancelled start survived: {:?}",
                with_env(&marker)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(groups.0.lock().unwrap().is_empty());
    }
}
