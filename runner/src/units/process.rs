//! A unit's process: its own process group, an environment built only from the catalog, the
//! app's environment and its port (never in a shell string), and no output kept. It dies with
//! the server, even one killed with SIGKILL: the kernel sends it SIGKILL when the thread that
//! started it ends (`PR_SET_PDEATHSIG`), and every unit is started from one thread that lives as
//! long as the process (a parent-death signal follows the *thread* that forked, and the
//! runtime's threads may come and go). A child whose parent died before it set the signal exits
//! at once rather than run unwatched.
//!
//! Does not own: when to start or stop it (`unit`), its port (`ports`).

use crate::process::signal_group;
use bosun_domain::jobs::ProcessSpec;
use nix::sys::signal::Signal;
use secrecy::{ExposeSecret, SecretString};
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::OnceLock;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// What a unit's process gets from the server's environment; nothing else.
const INHERITED: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER"];

/// A unit's running process; its whole group is killed when this is dropped while it runs.
pub(crate) struct UnitProcess {
    pub child: Child,
    pub pid: u32,
    /// Reaped: its group need not (and must not, its id may be reused) be signalled any more.
    reaped: bool,
}

impl UnitProcess {
    /// Waits for it to end.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait().await;
        if status.is_ok() {
            self.reaped = true;
        }
        status
    }

    /// Sends `signal` to its whole group, while it is not reaped.
    pub fn signal(&self, signal: Signal) {
        if !self.reaped {
            signal_group(self.pid, signal);
        }
    }
}

impl Drop for UnitProcess {
    fn drop(&mut self) {
        if !self.reaped {
            signal_group(self.pid, Signal::SIGKILL);
        }
    }
}

/// The environment of a unit: the catalog's `env` of its process, then its app's environment,
/// then its port in the process's `port_env` (each later one wins).
pub(crate) fn environment(
    spec: &ProcessSpec,
    app: &[(String, SecretString)],
    port: u16,
) -> Vec<(String, SecretString)> {
    let mut env: Vec<(String, SecretString)> = spec
        .env
        .iter()
        .map(|(name, value)| (name.clone(), SecretString::from(value.clone())))
        .collect();
    env.extend(app.iter().cloned());
    env.push((
        spec.port_variable().to_string(),
        SecretString::from(port.to_string()),
    ));
    env
}

/// Starts `spec`'s program with exactly `env` (and the few inherited variables).
pub(crate) async fn spawn(
    spec: &ProcessSpec,
    env: &[(String, SecretString)],
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
        // Its own group, so a stop reaches everything it started.
        .process_group(0);
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
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
    let child = spawn_from_the_spawner(command).await?;
    let pid = child.id().unwrap_or(0);
    Ok(UnitProcess {
        child,
        pid,
        reaped: false,
    })
}

type Request = (
    Command,
    tokio::runtime::Handle,
    oneshot::Sender<std::io::Result<Child>>,
);

/// Hands `command` to the spawner thread, which starts it inside the caller's runtime (whose
/// driver then reaps it).
async fn spawn_from_the_spawner(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Result<mpsc::Sender<Request>, String>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (sender, requests) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("bosun-unit-spawner".into())
            .spawn(move || {
                for (mut command, runtime, reply) in requests {
                    let _entered = runtime.enter();
                    let _ = reply.send(command.spawn());
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
