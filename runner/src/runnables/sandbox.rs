//! The sandbox a runnable's start command runs in: bubblewrap (`bwrap`), or none at all (a
//! development machine without it, when the operator says `sandbox: none`).
//!
//! **What a bwrap sandbox sees.** A root of its own (a tmpfs, read-only once set up) holding
//! read-only binds of the system's directories only (`/usr`, `/bin`, `/sbin`, `/lib*`) and of an
//! allow-list of `/etc` ([`ETC`]: users and groups, name resolution, the dynamic linker's cache,
//! the time zone, the CA certificates, the alternatives; those the host has); its tree read-write
//! at [`TREE`] (its working directory and `HOME`); a private `/tmp`, `/var/tmp` and `/dev/shm`,
//! each a tmpfs of at most [`Limits::tmp_size`] bytes; a `/proc` of its own PID namespace (it
//! sees its own processes only); a minimal `/dev`, read-only (its devices still usable). Nothing
//! else of the host: not the rest of `/etc` (`shadow`, `ssh`, the database's and the server's
//! configuration), `/root`, `/home`, `/srv`, `/var/lib` (the database's files), `/work`,
//! `/run`, the host's `/tmp`, nor the server's data directory, wherever it is. Its IPC, UTS
//! (hostname `runnable`), cgroup and user namespaces are its own, it cannot make another user
//! namespace (`--disable-userns`, bwrap 0.8 or later), and unless `network` its network namespace
//! is its own too (a loopback of its own, no route out, and no way to the host's `127.0.0.1`).
//! Its environment is only `PATH`, `HOME`, `LANG` (and what the caller adds to the returned
//! command), never the server's. It runs in a new session (no `TIOCSTI` on the server's
//! terminal).
//!
//! **Who it runs as.** Never as root: a server running as root starts bwrap (or, with
//! `Sandbox::None`, `sh` itself) as [`SANDBOX_UID`] (`nobody`) with no supplementary groups, so
//! it has no capabilities, and its tree must be its own ([`Sandbox::give_tree`]), and every
//! directory above it searchable by it (bwrap finds the tree as that user: trees kept under a
//! `0700` data directory cannot be bound; keep them under a `0711` one). A server running as
//! another user starts it as itself. Either way bwrap makes an unprivileged user namespace, which
//! the kernel must allow ([`Sandbox::check`] says so when it does not).
//!
//! **Limits** ([`Limits`], set with `setrlimit` before bwrap starts, inherited by all it runs):
//! open files, address space, processes, the size of a file it writes, no core files; and the
//! size of each of its tmpfs. The process limit counts every process of the sandbox's user: with
//! all sandboxes of a root server running as `nobody`, it caps them *together*, a fork bomb's
//! guard rather than a per-runnable share. Memory and CPU are not otherwise limited (that needs
//! cgroups), nor the number of files it writes in its tree, and there is no seccomp filter: the
//! kernel is shared.
//!
//! **Its end.** It runs in its own process group; bwrap's first process is the group's leader
//! and the sandbox's processes live in a PID namespace whose first process dies with it
//! (`--die-with-parent`), and with it, by the kernel's hand, every process of the namespace. So
//! SIGKILL to the group ends all of it, which [`Sandboxed`] does when dropped while it runs, as a
//! unit's process does. bwrap itself gets SIGKILL when the thread that started it ends
//! (`PR_SET_PDEATHSIG`, set after the change of user, which would clear it): to last as long as
//! the server, start it from a thread that does (as `units::process` does for units).
//!
//! Does not own: what goes in the tree (the runnable's files), when a runnable runs, its output.

use crate::process::signal_group;
use crate::units::process::{leader, Leader};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::Signal;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use tokio::process::{Child, Command};

/// Where its tree is, inside a bwrap sandbox.
pub const TREE: &str = "/runnable";
/// Who a root server's sandboxes run as (`nobody`/`nogroup`).
pub const SANDBOX_UID: u32 = 65534;
/// The sandbox's `PATH`.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The system's directories a bwrap sandbox sees, read-only (those a system has).
const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];
/// What of `/etc` a bwrap sandbox sees, read-only (those the host has): nothing secret. Of
/// `/etc/ssl`, the certificates and OpenSSL's configuration, not `private`.
pub const ETC: [&str; 14] = [
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/alternatives",
];
/// Its own tmpfs, each of [`Limits::tmp_size`] bytes at most.
const TMPFS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];
/// How often a running sandbox's end is looked for.
const POLL: std::time::Duration = std::time::Duration::from_millis(50);
const NOT_INSTALLED: &str = "bubblewrap (bwrap) is not installed: apt-get install bubblewrap";

/// How a runnable's command is confined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sandbox {
    /// bubblewrap; `network`: it shares the host's network (and so reaches its `127.0.0.1`).
    Bwrap { network: bool },
    /// No confinement at all: `sh -c` in the tree (development only), as the server's user, or
    /// as [`SANDBOX_UID`] when that is root.
    None,
}

/// Per-process limits of everything a sandbox runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `RLIMIT_NOFILE`.
    pub open_files: u64,
    /// `RLIMIT_AS`, in bytes: virtual memory, so generous (runtimes reserve far more than they
    /// use).
    pub address_space: u64,
    /// `RLIMIT_NPROC`: the processes of the sandbox's *user*, all its sandboxes together (see the
    /// module's doc).
    pub processes: u64,
    /// `RLIMIT_FSIZE`, in bytes: the largest file it may write (past it, `SIGXFSZ`).
    pub file_size: u64,
    /// The size in bytes of each of its tmpfs (`/tmp`, `/var/tmp`, `/dev/shm`; bwrap only).
    pub tmp_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            open_files: 1024,
            address_space: 8 << 30,
            processes: 4096,
            file_size: 256 << 20,
            tmp_size: 64 << 20,
        }
    }
}

/// Why a sandbox cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{NOT_INSTALLED}")]
    NotInstalled,
    #[error("bubblewrap (bwrap) is too old ({0}); the sandbox needs 0.8 or later (--disable-userns, --size)")]
    TooOld(String),
    #[error("bubblewrap (bwrap) does not work here ({0}); it needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or kernel.apparmor_restrict_unprivileged_userns=0)")]
    NotWorking(String),
    #[error("the sandbox's tree {0} is not an absolute path to a directory")]
    Tree(PathBuf),
    #[error("the start command holds a NUL byte")]
    Command,
    #[error("cannot start the sandbox: {0}")]
    Io(#[from] std::io::Error),
}

impl Sandbox {
    /// Whether it can run here: for bwrap, that it is installed, recent enough, and a sandbox
    /// starts. Errors say what to do.
    pub async fn check(&self) -> Result<(), SandboxError> {
        if *self == Sandbox::None {
            return Ok(());
        }
        if locate("bwrap", std::env::var_os("PATH").as_deref()).is_none() {
            return Err(SandboxError::NotInstalled);
        }
        let tree =
            std::env::temp_dir().join(format!("bosun-sandbox-check-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&tree)?;
        let ran = async {
            self.give_tree(&tree)?;
            let output = self
                .command(&tree, "true")?
                .stderr(Stdio::piped())
                .output()
                .await
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => SandboxError::NotInstalled,
                    _ => SandboxError::Io(e),
                })?;
            if output.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr = stderr.trim();
            if stderr.contains("Unknown option") {
                Err(SandboxError::TooOld(stderr.to_string()))
            } else {
                Err(SandboxError::NotWorking(format!(
                    "{}: {stderr}",
                    output.status
                )))
            }
        }
        .await;
        let _ = std::fs::remove_dir_all(&tree);
        ran
    }

    /// The user its processes run as, when it is not the server's own (a root server's).
    pub fn user(&self) -> Option<u32> {
        nix::unistd::geteuid().is_root().then_some(SANDBOX_UID)
    }

    /// Makes `tree` (and all under it) the sandbox's user's, so it can write there. Before it
    /// runs there: symbolic links are changed themselves, never followed, but a process running
    /// in the tree meanwhile could swap a directory for one.
    pub fn give_tree(&self, tree: &Path) -> std::io::Result<()> {
        let Some(uid) = self.user() else {
            return Ok(());
        };
        chown_all(tree, uid)
    }

    /// The command that runs `sh -c <start_command>` in the sandbox, its tree `tree`: its own
    /// process group, killed on drop, stdio to /dev/null (the caller may change that, and add to
    /// its environment).
    pub fn command(&self, tree: &Path, start_command: &str) -> Result<Command, SandboxError> {
        self.command_with(tree, start_command, Limits::default())
    }

    /// [`Sandbox::command`] with other limits.
    pub fn command_with(
        &self,
        tree: &Path,
        start_command: &str,
        limits: Limits,
    ) -> Result<Command, SandboxError> {
        if !tree.is_absolute() || !tree.is_dir() {
            return Err(SandboxError::Tree(tree.to_path_buf()));
        }
        if start_command.as_bytes().contains(&0) {
            return Err(SandboxError::Command);
        }
        let (mut command, home) = match self {
            Sandbox::Bwrap { network } => {
                let mut command = Command::new("bwrap");
                command.args(bwrap_args(tree, *network, limits.tmp_size));
                command.args(["--", "sh", "-c", start_command]);
                (command, Path::new(TREE))
            }
            Sandbox::None => {
                let mut command = Command::new("sh");
                command.args(["-c", start_command]).current_dir(tree);
                (command, tree)
            }
        };
        command
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", home)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(uid) = self.user() {
            // Supplementary groups dropped by std when root changes its uid.
            command.uid(uid).gid(uid);
        }
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls: getrlimit, setrlimit,
        // prctl and getppid. After the uid change (std makes it before these run), which would
        // have cleared the parent-death signal.
        unsafe {
            command.pre_exec(move || {
                lower(Resource::RLIMIT_NOFILE, limits.open_files)?;
                lower(Resource::RLIMIT_AS, limits.address_space)?;
                lower(Resource::RLIMIT_NPROC, limits.processes)?;
                lower(Resource::RLIMIT_FSIZE, limits.file_size)?;
                lower(Resource::RLIMIT_CORE, 0)?;
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    // The server died before the signal was set: nothing would ever stop it.
                    return Err(std::io::Error::other("the server is gone"));
                }
                Ok(())
            });
        }
        Ok(command)
    }

    /// Starts `sh -c <start_command>` in the sandbox (see [`Sandbox::command`]).
    pub fn spawn(&self, tree: &Path, start_command: &str) -> Result<Sandboxed, SandboxError> {
        let command = self.command(tree, start_command)?;
        Sandboxed::spawn(command)
    }
}

/// bwrap's options for a sandbox with tree `tree`, tmpfs of `tmp_size` bytes each.
fn bwrap_args(tree: &Path, network: bool, tmp_size: u64) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let push =
        |args: &mut Vec<OsString>, items: &[&str]| args.extend(items.iter().map(OsString::from));
    for path in SYSTEM_DIRS.iter().chain(ETC.iter()) {
        push(&mut args, &["--ro-bind-try", path, path]);
    }
    if network {
        // Where /etc/resolv.conf points on systemd-resolved hosts.
        push(
            &mut args,
            &[
                "--ro-bind-try",
                "/run/systemd/resolve",
                "/run/systemd/resolve",
            ],
        );
    }
    push(&mut args, &["--proc", "/proc", "--dev", "/dev"]);
    let size = tmp_size.to_string();
    for dir in TMPFS {
        push(&mut args, &["--size", &size, "--tmpfs", dir]);
    }
    push(&mut args, &["--bind"]);
    args.push(tree.as_os_str().to_os_string());
    push(&mut args, &[TREE, "--chdir", TREE]);
    // Not recursive: /dev/shm, /tmp, /var/tmp and the tree stay writable.
    push(&mut args, &["--remount-ro", "/dev", "--remount-ro", "/"]);
    push(
        &mut args,
        &[
            "--unshare-user",
            "--disable-userns",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "runnable",
        ],
    );
    if !network {
        push(&mut args, &["--unshare-net"]);
    }
    push(
        &mut args,
        &["--cap-drop", "ALL", "--die-with-parent", "--new-session"],
    );
    args
}

/// Lowers limit `resource` to `value` (never above its hard limit, which cannot be raised).
fn lower(resource: Resource, value: u64) -> std::io::Result<()> {
    let (_, hard) = getrlimit(resource)?;
    let value = value.min(hard);
    setrlimit(resource, value, value)?;
    Ok(())
}

/// The first `name` on `path` (a `PATH` value) that is an executable file.
fn locate(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = path?;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|file| {
            std::fs::metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `chown -R uid:uid path`, symbolic links themselves (not what they point to).
fn chown_all(path: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_all(&entry?.path(), uid)?;
        }
    }
    Ok(())
}

/// A sandbox running; dropped while it runs, its whole group is killed, and with it every
/// process of the sandbox.
pub struct Sandboxed {
    child: Child,
    pid: u32,
}

impl Sandboxed {
    /// Starts `command` (one of [`Sandbox::command`]'s).
    pub fn spawn(mut command: Command) -> Result<Sandboxed, SandboxError> {
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SandboxError::NotInstalled,
            _ => SandboxError::Io(e),
        })?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("the sandbox ended before it started"))?;
        Ok(Sandboxed { child, pid })
    }

    /// The id of its process group (bwrap's first process).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its first process, to take its output pipes from.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `signal` to its group, while its leader is not reaped (its id is still its own).
    pub fn signal(&self, signal: Signal) {
        if self.unreaped() {
            signal_group(self.pid, signal);
        }
    }

    /// Whether its first process is still there, running or ended but not reaped.
    fn unreaped(&self) -> bool {
        !matches!(leader(self.pid), Leader::Gone)
    }

    /// Waits for its first process to end; then kills what is left of its group (with bwrap,
    /// nothing: its PID namespace ended with it; with no sandbox, what `sh` left running), and
    /// reaps it. Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        // Its end noticed without reaping it, so the group's id stays its own meanwhile.
        loop {
            match leader(self.pid) {
                Leader::Running => tokio::time::sleep(POLL).await,
                Leader::Ended => {
                    signal_group(self.pid, Signal::SIGKILL);
                    break;
                }
                // Reaped already (a wait cancelled after it reaped): nothing to signal.
                Leader::Gone => break,
            }
        }
        self.child.wait().await
    }

    /// SIGKILL to all of it, then reaps it.
    pub async fn kill(&mut self) -> std::io::Result<ExitStatus> {
        self.signal(Signal::SIGKILL);
        self.child.wait().await
    }
}

impl Drop for Sandboxed {
    fn drop(&mut self) {
        // Not reaped (it runs, or ended unreaped): the group's id is still its own.
        self.signal(Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A directory of this test's, removed with it; `tree` in it is a sandbox's tree.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Dir {
            let dir =
                std::env::temp_dir().join(format!("bosun-sandbox-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(dir.join("tree")).unwrap();
            Dir(dir)
        }

        fn tree(&self) -> PathBuf {
            self.0.join("tree")
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A bwrap sandbox, which must work here (else the test fails saying how to install it).
    async fn bwrap(network: bool) -> Sandbox {
        let sandbox = Sandbox::Bwrap { network };
        if let Err(e) = sandbox.check().await {
            panic!("{e}");
        }
        sandbox
    }

    /// Runs `script` in `sandbox` on `dir`'s tree: its status and output.
    async fn run(sandbox: &Sandbox, dir: &Dir, script: &str) -> (ExitStatus, String) {
        run_with(sandbox, dir, script, Limits::default()).await
    }

    /// [`run`] with `limits`.
    async fn run_with(
        sandbox: &Sandbox,
        dir: &Dir,
        script: &str,
        limits: Limits,
    ) -> (ExitStatus, String) {
        sandbox.give_tree(&dir.tree()).unwrap();
        let mut command = sandbox.command_with(&dir.tree(), script, limits).unwrap();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = tokio::time::timeout(Duration::from_secs(30), command.output())
            .await
            .expect("the sandbox did not end within 30 s")
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status, text)
    }

    /// A directory outside `/tmp` (next to the test's binary, under the target directory),
    /// removed with it.
    struct Outside(PathBuf);

    impl Drop for Outside {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn a_sandbox_cannot_see_any_path_of_the_host_outside_its_tree() {
        use std::os::unix::fs::PermissionsExt;
        let sandbox = bwrap(false).await;
        let dir = Dir::new();
        // Next to the test's binary, or (a checkout under /tmp) in $HOME or /var/lib: somewhere
        // the sandbox's private /tmp does not hide already.
        let exe = std::env::current_exe().unwrap();
        let name = format!("bosun-sandbox-secret-{}", uuid::Uuid::new_v4());
        let candidates = [
            exe.parent().map(Path::to_path_buf),
            std::env::var_os("HOME").map(PathBuf::from),
            Some(PathBuf::from("/var/lib")),
        ];
        let outside = candidates
            .into_iter()
            .flatten()
            .filter(|dir| !dir.starts_with(std::env::temp_dir()))
            .map(|dir| dir.join(&name))
            .find(|dir| std::fs::create_dir_all(dir).is_ok())
            .map(Outside)
            .expect(
                "a writable directory outside /tmp (next to the test binary, $HOME or /var/lib)",
            );
        let secret = outside.0.join("secret");
        std::fs::write(&secret, "the server's secret\n").unwrap();
        // Readable by anyone: only what the sandbox sees keeps it out.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&secret).unwrap(),
            "the server's secret\n"
        );
        let host_tmp = dir.0.join("beside-the-tree");
        std::fs::write(&host_tmp, "x").unwrap();
        let mut hidden: Vec<PathBuf> =
            vec![secret.clone(), outside.0.clone(), host_tmp, dir.tree()];
        for path in [
            "/work",
            "/root",
            "/home",
            "/srv",
            "/var/lib",
            "/var/lib/postgresql",
            "/run",
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/ssh",
            "/etc/postgresql",
            "/etc/ssl/private",
            "/etc/machine-id",
            "/etc/sudoers",
        ] {
            // Those the host has: that it sees them not is what is checked.
            if Path::new(path).exists() {
                hidden.push(PathBuf::from(path));
            }
        }
        // Each on its own: gone (not merely refused) and unread.
        let script: String = hidden
            .iter()
            .map(|p| {
                format!(
                    "if stat -- '{p}' >/dev/null 2>/tmp/e; then echo 'SEEN {p}'; cat -- '{p}'; \
                     elif grep -q 'No such file' /tmp/e; then echo 'GONE {p}'; \
                     else echo \"ODD {p}: $(cat /tmp/e)\"; fi\n",
                    p = p.display()
                )
            })
            .collect();
        let (status, output) = run(&sandbox, &dir, &script).await;
        assert!(status.success(), "{output}");
        assert!(!output.contains("the server's secret"), "{output}");
        for path in &hidden {
            assert!(
                output
                    .lines()
                    .any(|l| l == format!("GONE {}", path.display())),
                "{} is not hidden: {output}",
                path.display()
            );
        }
        // What it does see of /etc, it may read (the check above proves something).
        let (status, output) = run(&sandbox, &dir, "ls /etc; grep -c . /etc/passwd").await;
        assert!(status.success() && output.contains("passwd"), "{output}");
        assert!(
            !output.contains("shadow") && !output.contains("postgresql"),
            "{output}"
        );
    }

    #[tokio::test]
    async fn a_sandbox_cannot_write_past_its_tmpfs_nor_file_size_limits_nor_in_dev() {
        let sandbox = bwrap(false).await;
        let dir = Dir::new();
        let small = Limits {
            tmp_size: 1 << 20,
            file_size: 16 << 20,
            ..Limits::default()
        };
        for tmpfs in TMPFS {
            let script = format!(
                "head -c 1000000 /dev/zero > {tmpfs}/a && echo fits; \
                 head -c 2000000 /dev/zero > {tmpfs}/b && echo overflowed; echo done"
            );
            let (_, output) = run_with(&sandbox, &dir, &script, small).await;
            assert!(
                output.contains("fits") && output.contains("done"),
                "{tmpfs}: {output}"
            );
            assert!(
                output.contains("No space left on device"),
                "{tmpfs}: {output}"
            );
            assert!(!output.contains("overflowed"), "{tmpfs}: {output}");
        }
        // The defaults: 64 MiB each.
        let (_, output) = run(&sandbox, &dir, "stat -f -c '%b %S' /tmp /var/tmp /dev/shm").await;
        for line in output.lines() {
            let sizes: Vec<u64> = line.split(' ').map(|n| n.parse().unwrap()).collect();
            assert_eq!(sizes[0] * sizes[1], Limits::default().tmp_size, "{output}");
        }
        // A file in its tree past RLIMIT_FSIZE.
        let script = "head -c 1048576 /dev/zero > fits && echo fits; \
                      head -c 2097152 /dev/zero > big && echo overflowed; echo done";
        let limited = Limits {
            file_size: 1 << 20,
            ..Limits::default()
        };
        let (_, output) = run_with(&sandbox, &dir, script, limited).await;
        assert!(
            output.contains("fits") && output.contains("done"),
            "{output}"
        );
        assert!(!output.contains("overflowed"), "{output}");
        assert_eq!(
            std::fs::metadata(dir.tree().join("fits")).unwrap().len(),
            1 << 20
        );
        assert_eq!(
            std::fs::metadata(dir.tree().join("big")).unwrap().len(),
            1 << 20
        );
        // /dev is read-only, its devices still usable; its root too.
        let script = "touch /dev/bosun-x || echo dev-refused; echo x > /dev/null && echo null-ok; \
                      touch /bosun-x || echo root-refused";
        let (_, output) = run(&sandbox, &dir, script).await;
        assert!(
            output.contains("dev-refused") && output.contains("null-ok"),
            "{output}"
        );
        assert!(output.contains("root-refused"), "{output}");
    }

    #[tokio::test]
    async fn a_sandbox_cannot_make_a_user_namespace() {
        let sandbox = bwrap(false).await;
        let dir = Dir::new();
        let script = "unshare -U true && echo nested || echo refused";
        let (_, output) = run(&sandbox, &dir, script).await;
        assert!(
            output.contains("refused") && !output.contains("nested"),
            "{output}"
        );
        // Outside one, this process may: the check above proves something.
        let here = std::process::Command::new("unshare")
            .args(["-U", "true"])
            .status()
            .unwrap();
        assert!(here.success());
    }

    #[tokio::test]
    async fn no_sandbox_on_a_root_server_runs_as_nobody() {
        let dir = Dir::new();
        let (status, output) = run(
            &Sandbox::None,
            &dir,
            "id -u; id -G; echo x > mine && echo wrote",
        )
        .await;
        assert!(status.success(), "{output}");
        assert!(output.contains("wrote"), "{output}");
        let mut lines = output.lines();
        let (uid, groups) = (lines.next().unwrap(), lines.next().unwrap());
        if nix::unistd::geteuid().is_root() {
            assert_eq!((uid, groups), ("65534", "65534"), "{output}");
        } else {
            assert_eq!(uid, nix::unistd::geteuid().to_string());
        }
    }

    #[tokio::test]
    async fn a_sandbox_cannot_reach_a_tcp_listener_of_the_host() {
        let sandbox = bwrap(false).await;
        let dir = Dir::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = format!(
            "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo connected || echo refused"
        );
        let (_, output) = run(&sandbox, &dir, &script).await;
        assert!(
            output.contains("refused") && !output.contains("connected"),
            "{output}"
        );
        assert_eq!(
            listener.accept().map(|_| ()).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "the listener was reached"
        );
        // With the network, it is: the check above proves something.
        let (_, output) = run(&bwrap(true).await, &dir, &script).await;
        assert!(output.contains("connected"), "{output}");
        assert!(listener.accept().is_ok());
    }

    #[tokio::test]
    async fn a_sandbox_sees_only_its_own_processes() {
        let sandbox = bwrap(false).await;
        let dir = Dir::new();
        let marker = (9_000_000 + std::process::id() % 1_000_000).to_string();
        let mut host = std::process::Command::new("sleep")
            .arg(&marker)
            .spawn()
            .unwrap();
        assert!(std::fs::read(format!("/proc/{}/cmdline", host.id())).is_ok());
        let script = format!(
            "echo pid=$$; echo count=$(ls /proc | grep -c '^[0-9]'); cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; kill -0 {} && echo sig\"\"nalled",
            host.id()
        );
        let (_, output) = run(&sandbox, &dir, &script).await;
        let _ = host.kill();
        let _ = host.wait();
        let field = |name: &str| -> u32 {
            output
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {output}"))
        };
        assert!(field("pid=") <= 3, "{output}");
        // bwrap, sh, and the few commands of the pipeline.
        assert!(field("count=") <= 6, "{output}");
        assert!(
            !output.contains(&marker),
            "a host process is seen: {output}"
        );
        assert!(!output.contains("signalled"), "{output}");
    }

    #[tokio::test]
    async fn a_sandbox_writes_its_tree_and_nothing_else() {
        let sandbox = bwrap(false).await;
        let dir = Dir::new();
        let host_tmp =
            std::env::temp_dir().join(format!("bosun-sandbox-tmp-{}", uuid::Uuid::new_v4()));
        let script = format!(
            "echo hello > out.txt && mkdir -p d/e && echo x > d/e/f && echo home=$HOME pwd=$(pwd); \
             touch /usr/bosun-x /etc/bosun-x || echo refused; echo t > '{}' && echo tmp-ok",
            host_tmp.display()
        );
        let (status, output) = run(&sandbox, &dir, &script).await;
        assert!(status.success(), "{output}");
        assert!(output.contains("home=/runnable pwd=/runnable"), "{output}");
        assert_eq!(
            std::fs::read_to_string(dir.tree().join("out.txt")).unwrap(),
            "hello\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.tree().join("d/e/f")).unwrap(),
            "x\n"
        );
        assert!(output.contains("refused"), "{output}");
        assert!(!Path::new("/usr/bosun-x").exists() && !Path::new("/etc/bosun-x").exists());
        // Its /tmp is its own.
        assert!(output.contains("tmp-ok"), "{output}");
        assert!(!host_tmp.exists(), "the sandbox wrote the host's /tmp");
    }

    #[tokio::test]
    async fn a_sandbox_has_no_privilege_nor_the_servers_environment_and_has_limits() {
        let sandbox = bwrap(false).await;
        let dir = Dir::new();
        let script = "id -u; grep CapEff /proc/self/status; env; cat /proc/self/limits; hostname";
        let (status, output) = run(&sandbox, &dir, script).await;
        assert!(status.success(), "{output}");
        if nix::unistd::geteuid().is_root() {
            assert!(output.starts_with("65534\n"), "{output}");
        }
        assert!(output.contains("CapEff:\t0000000000000000"), "{output}");
        assert!(
            !output.contains("CARGO") && !output.contains("RUST"),
            "{output}"
        );
        assert!(output.contains("HOME=/runnable") && output.contains("PATH=/usr/local/sbin:"));
        let limit = |name: &str| -> String {
            let line = output
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{output}"));
            line[name.len()..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let hard = |resource| getrlimit(resource).unwrap().1;
        let defaults = Limits::default();
        assert_eq!(
            limit("Max open files"),
            defaults
                .open_files
                .min(hard(Resource::RLIMIT_NOFILE))
                .to_string()
        );
        assert_eq!(
            limit("Max processes"),
            defaults
                .processes
                .min(hard(Resource::RLIMIT_NPROC))
                .to_string()
        );
        assert_eq!(
            limit("Max address space"),
            defaults
                .address_space
                .min(hard(Resource::RLIMIT_AS))
                .to_string()
        );
        assert_eq!(
            limit("Max file size"),
            defaults
                .file_size
                .min(hard(Resource::RLIMIT_FSIZE))
                .to_string()
        );
        assert_eq!(limit("Max core file size"), "0");
        assert!(output.trim_end().ends_with("runnable"), "{output}");
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

    /// Starts `script` in `sandbox`, marked; waits until `at_least` of its processes run.
    async fn started(
        sandbox: &Sandbox,
        dir: &Dir,
        script: &str,
        at_least: usize,
    ) -> (Sandboxed, String) {
        let marker = format!("BOSUN_TEST_MARKER={}", uuid::Uuid::new_v4());
        let (name, value) = marker.split_once('=').unwrap();
        sandbox.give_tree(&dir.tree()).unwrap();
        let mut command = sandbox.command(&dir.tree(), script).unwrap();
        command.env(name, value);
        let process = Sandboxed::spawn(command).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while with_env(&marker).len() < at_least {
            assert!(
                Instant::now() < deadline,
                "the sandbox's processes never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (process, marker)
    }

    async fn all_gone(marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !with_env(marker).is_empty() {
            assert!(
                Instant::now() < deadline,
                "processes outlived their sandbox: {:?}",
                with_env(marker)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_sandbox_dropped_killed_or_ended_takes_all_its_processes_along() {
        let sandbox = bwrap(false).await;
        let dir = Dir::new();
        // bwrap twice, sh, two sleeps.
        let forking = "sleep 600 & sleep 600 & wait";
        let (process, marker) = started(&sandbox, &dir, forking, 5).await;
        drop(process);
        all_gone(&marker).await;

        let (mut process, marker) = started(&sandbox, &dir, forking, 5).await;
        process.kill().await.unwrap();
        all_gone(&marker).await;

        // Its command ends, leaving a child behind.
        let (mut process, marker) = started(&sandbox, &dir, "sleep 600 & sleep 0.5", 5).await;
        let status = tokio::time::timeout(Duration::from_secs(10), process.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
        all_gone(&marker).await;

        // No sandbox: its group still goes.
        let (mut process, marker) = started(&Sandbox::None, &dir, "sleep 600 & sleep 0.5", 2).await;
        tokio::time::timeout(Duration::from_secs(10), process.wait())
            .await
            .unwrap()
            .unwrap();
        all_gone(&marker).await;
        let (process, marker) = started(&Sandbox::None, &dir, forking, 3).await;
        drop(process);
        all_gone(&marker).await;
    }

    #[test]
    fn a_missing_bwrap_says_how_to_install_it() {
        assert_eq!(
            locate("bwrap", Some(OsStr::new("/nonexistent:/also-not"))),
            None
        );
        assert_eq!(
            locate("sh", Some(OsStr::new("/nonexistent:/bin"))),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            SandboxError::NotInstalled.to_string(),
            "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
        );
    }

    #[test]
    fn a_sandbox_refuses_a_tree_that_is_not_an_absolute_directory_and_a_nul() {
        let sandbox = Sandbox::Bwrap { network: false };
        assert!(matches!(
            sandbox.command(Path::new("tree"), "true"),
            Err(SandboxError::Tree(_))
        ));
        assert!(matches!(
            sandbox.command(Path::new("/nonexistent-bosun-tree"), "true"),
            Err(SandboxError::Tree(_))
        ));
        assert!(matches!(
            sandbox.command(Path::new("/"), "a\0b"),
            Err(SandboxError::Command)
        ));
    }
}
