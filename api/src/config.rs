//! Configuration, in one typed place: a YAML file (`-c FILE`) and `BOSUN_*` environment overrides
//! (`BOSUN_LISTEN`, `BOSUN_DATA_DIR`, `BOSUN_DATABASE__URL`, `BOSUN_LOG__FORMAT`: `__` separates
//! levels). Everything is checked before anything starts; an unknown key or a bad value is an
//! error that names it. With no file at all, the task catalog is the built-in example
//! ([`EXAMPLE_CATALOG`]); a file's catalog (or its lack of one) replaces it.
//!
//! Secrets held here (`notifications.webhook_secret`) are [`secrecy::SecretString`]s: their
//! Debug shows nothing of them. The database URL's password stays inside its
//! `tokio_postgres::Config`, whose Debug [`DatabaseUrl`] does not print.

use bosun_domain::jobs::Catalog;
use bosun_runner::{NotificationSettings, RunnerSettings};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const ENV_PREFIX: &str = "BOSUN_";

/// The catalog used when bosun starts without a configuration file: harmless tasks under
/// `example/production` (`hello`, `sleep`, `fail`), so a first start can run, watch and kill a
/// job.
pub const EXAMPLE_CATALOG: &str = include_str!("example_catalog.yaml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server listens on.
    #[serde(default = "default_listen", deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Where the managed PostgreSQL and other local state live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub live: LiveSettings,
    #[serde(default)]
    pub http: HttpSettings,
    /// The tasks jobs may run: app → environment → task.
    #[serde(default)]
    pub catalog: Catalog,
    #[serde(default)]
    pub runner: RunnerSettings,
    #[serde(default)]
    pub http_tasks: HttpTaskSettings,
    #[serde(default)]
    pub notifications: NotificationSettings,
    /// A file holding the server's secret key (orchestration tokens are derived from it); made
    /// with 32 random bytes, mode 0600, if missing. Every node must read the same key.
    /// Default: `<data_dir>/data-key`.
    pub data_key_file: Option<PathBuf>,
    /// Named catalog tasks an admin runs by name (`POST /v1/healers/{name}`): name →
    /// `app/env/task`, each checked against the catalog at start.
    #[serde(default)]
    pub healers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub identity: IdentitySettings,
    #[serde(default)]
    pub quota: QuotaSettings,
    #[serde(default)]
    pub services: ServicesSettings,
    #[serde(default)]
    pub runnables: RunnablesSettings,
    /// The compat surfaces' settings (`compat.openpai.commands`).
    #[serde(default)]
    pub compat: CompatSettings,
    /// HTTPS (and WSS) on `listen` instead of plain HTTP: PEM files or a PKCS#12 bundle,
    /// loaded and checked at start ([`crate::tls`]).
    pub tls: Option<TlsSettings>,
    /// Other ways to sign in than a Bosun password (`auth.github`).
    #[serde(default)]
    pub auth: AuthSettings,
}

/// `auth:`: sign-in through another system.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Sign-in with GitHub (the OAuth web flow at `/auth/github/login`, and GitHub tokens as
    /// API tokens) for the members of one organization ([`crate::github`]).
    pub github: Option<GithubSettings>,
    /// How many failed password sign-ins one user name, and one source address, may have in a
    /// window before sign-in is refused for a while ([`crate::sign_in`]).
    #[serde(default)]
    pub sign_in_limit: SignInLimitSettings,
}

/// `auth.sign_in_limit:` at most `failures_per_user` failed password sign-ins of one user name
/// (from anywhere) and `failures_per_address` from one address (any names) in any
/// `per_seconds`; then 429 `rate_limited` with `Retry-After` until the oldest leaves the window.
/// Counted by each node in its memory.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInLimitSettings {
    #[serde(default = "default_failures_per_user")]
    pub failures_per_user: u32,
    #[serde(default = "default_failures_per_address")]
    pub failures_per_address: u32,
    #[serde(default = "default_sign_in_per_seconds")]
    pub per_seconds: u64,
}

impl Default for SignInLimitSettings {
    fn default() -> Self {
        SignInLimitSettings {
            failures_per_user: default_failures_per_user(),
            failures_per_address: default_failures_per_address(),
            per_seconds: default_sign_in_per_seconds(),
        }
    }
}

fn default_failures_per_user() -> u32 {
    10
}

fn default_failures_per_address() -> u32 {
    100
}

fn default_sign_in_per_seconds() -> u64 {
    300
}

/// `auth.github:`. Its keys are checked together once every source is in
/// ([`GithubSettings::check`]), so each may come from the environment on its own
/// (`BOSUN_AUTH__GITHUB__CLIENT_SECRET`). The client secret is a [`secrecy::SecretString`]:
/// its Debug shows nothing of it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    /// The OAuth app's client id (required).
    #[serde(default)]
    pub client_id: String,
    /// The OAuth app's client secret, or `client_secret_file`: exactly one of the two.
    pub client_secret: Option<secrecy::SecretString>,
    /// A file holding the client secret (one trailing newline is not part of it), read at start.
    pub client_secret_file: Option<PathBuf>,
    /// The GitHub organization whose members may sign in (required).
    #[serde(default)]
    pub org: String,
    /// GitHub's web address (the OAuth pages): `https://github.com` unless GitHub Enterprise.
    #[serde(default = "default_github_base_url")]
    pub base_url: String,
    /// GitHub's API: `https://api.github.com` unless GitHub Enterprise (`https://host/api/v3`).
    #[serde(default = "default_github_api_url")]
    pub api_url: String,
    /// Who gets which scope; absent: every member of `org` gets `read` and `write`.
    pub authorization: Option<GithubAuthorization>,
    /// A Bosun team every GitHub user is put in when they sign in (made if missing).
    pub team: Option<String>,
    /// How long a GitHub token's check (and a refusal, at most 30 s of it) is trusted before
    /// GitHub is asked again: default 60 s, 1 to 600.
    #[serde(default = "default_github_cache_seconds")]
    pub cache_seconds: u64,
    /// How long a sign-in through the web flow lasts (its session token and cookie): default
    /// 3600 s, 60 to 86400. A GitHub user is checked with GitHub again only when they sign in
    /// again.
    #[serde(default = "default_github_session_seconds")]
    pub session_seconds: i64,
    /// The OAuth callback URL, as registered with the OAuth app: an absolute http(s) URL ending
    /// in `/auth/github/callback`, sent as given in the authorize redirect and the code
    /// exchange. Absent: made from the request's `Host` (and the server's scheme) at the login.
    pub redirect_uri: Option<String>,
}

/// `auth.github.authorization:`: GitHub logins of users or organizations. A member of `org`
/// gets `read` if their login or one of their organizations is in `read`, `write` likewise;
/// neither is had through the other.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubAuthorization {
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub write: Vec<String>,
}

fn default_github_base_url() -> String {
    "https://github.com".into()
}

fn default_github_api_url() -> String {
    "https://api.github.com".into()
}

fn default_github_cache_seconds() -> u64 {
    60
}

fn default_github_session_seconds() -> i64 {
    3600
}

/// Where GitHub sends a browser back to: the path every OAuth callback URL ends in.
pub const GITHUB_CALLBACK_PATH: &str = "/auth/github/callback";

/// Whether `value` is an OAuth callback URL Bosun serves: absolute http(s), with a host, ending
/// in [`GITHUB_CALLBACK_PATH`], no query, fragment or credentials.
pub fn check_github_redirect_uri(value: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(value).map_err(|e| format!("{value:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return Err(format!("{value:?} must be an http:// or https:// URL"));
    }
    if parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(format!(
            "{value:?} may have no query, fragment or credentials"
        ));
    }
    if !parsed.path().ends_with(GITHUB_CALLBACK_PATH) {
        return Err(format!("{value:?} must end in {GITHUB_CALLBACK_PATH}"));
    }
    Ok(())
}

/// Whether `value` is a GitHub login (of a user or an organization): 1 to 39 letters, digits,
/// dashes and underscores (Enterprise Managed Users'), neither first nor last a dash.
fn is_github_login(value: &str) -> bool {
    bosun_domain::identity::Username::github(value).is_ok()
}

impl GithubSettings {
    /// The keys together: a client id, exactly one of `client_secret` and `client_secret_file`,
    /// an organization, http(s) URLs, logins in `authorization`, a team name. An error names the
    /// key.
    pub fn check(&self) -> Result<(), String> {
        if self.client_id.trim().is_empty() {
            return Err("auth.github.client_id: is required".into());
        }
        match (&self.client_secret, &self.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(
                    "auth.github.client_secret: give client_secret or client_secret_file, not both"
                        .into(),
                )
            }
            (None, None) => {
                return Err("auth.github.client_secret: is required (or client_secret_file)".into())
            }
            (Some(secret), None) if secrecy::ExposeSecret::expose_secret(secret).is_empty() => {
                return Err("auth.github.client_secret: is empty".into())
            }
            _ => {}
        }
        if self.org.is_empty() {
            return Err(
                "auth.github.org: is required (the organization whose members may sign in)".into(),
            );
        }
        if !is_github_login(&self.org) {
            return Err(format!(
                "auth.github.org: {:?} is not a GitHub organization's login",
                self.org
            ));
        }
        for (key, url) in [("base_url", &self.base_url), ("api_url", &self.api_url)] {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| format!("auth.github.{key}: {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
                return Err(format!(
                    "auth.github.{key}: {url:?} must be an http:// or https:// URL"
                ));
            }
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(format!(
                    "auth.github.{key}: {url:?} may have no query or fragment"
                ));
            }
        }
        if let Some(authorization) = &self.authorization {
            for (key, logins) in [
                ("read", &authorization.read),
                ("write", &authorization.write),
            ] {
                if let Some(bad) = logins.iter().find(|login| !is_github_login(login)) {
                    return Err(format!(
                        "auth.github.authorization.{key}: {bad:?} is not a GitHub login (of a user or an organization)"
                    ));
                }
            }
        }
        if let Some(team) = &self.team {
            bosun_domain::identity::TeamName::parse(team)
                .map_err(|e| format!("auth.github.team: {team:?}: {e}"))?;
        }
        if !(1..=600).contains(&self.cache_seconds) {
            return Err("auth.github.cache_seconds: must be 1 to 600".into());
        }
        if !(60..=86_400).contains(&self.session_seconds) {
            return Err("auth.github.session_seconds: must be 60 to 86400".into());
        }
        if let Some(uri) = &self.redirect_uri {
            check_github_redirect_uri(uri).map_err(|e| format!("auth.github.redirect_uri: {e}"))?;
        }
        Ok(())
    }
}

/// `tls:` either `{cert, key}` (PEM files: the chain in `cert`, leaf first; the key PKCS#8,
/// PKCS#1 or SEC1) or `{pfx, passphrase_file?}` (a PKCS#12 bundle). Which of the two it is, is
/// checked once every source is in ([`TlsSettings::form`]), so `BOSUN_TLS__CERT` and
/// `BOSUN_TLS__KEY` may each be set on their own. Paths are as given (relative ones to the
/// working directory, like `data_dir`'s).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub pfx: Option<PathBuf>,
    /// A file holding the bundle's passphrase (one trailing newline is not part of it); none:
    /// the bundle has an empty passphrase.
    pub passphrase_file: Option<PathBuf>,
}

/// The one form a [`TlsSettings`] is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsForm<'a> {
    Pem {
        cert: &'a Path,
        key: &'a Path,
    },
    Pkcs12 {
        pfx: &'a Path,
        passphrase_file: Option<&'a Path>,
    },
}

impl TlsSettings {
    /// Its form; an error (naming the keys) unless it is exactly one of the two.
    pub fn form(&self) -> Result<TlsForm<'_>, String> {
        const EITHER: &str = "give either cert and key (PEM files) or pfx (a PKCS#12 bundle, with passphrase_file if it has a passphrase)";
        match (
            self.cert.as_deref(),
            self.key.as_deref(),
            self.pfx.as_deref(),
            self.passphrase_file.as_deref(),
        ) {
            (Some(cert), Some(key), None, None) => Ok(TlsForm::Pem { cert, key }),
            (None, None, Some(pfx), passphrase_file) => Ok(TlsForm::Pkcs12 {
                pfx,
                passphrase_file,
            }),
            (_, _, Some(_), _) => Err(format!("tls: cert and key, or pfx, not both: {EITHER}")),
            (Some(_), Some(_), None, Some(_)) => Err(
                "tls.passphrase_file: goes with tls.pfx only (a PEM key is not encrypted)".into(),
            ),
            (Some(_), None, None, _) => Err("tls.key: is required with tls.cert".into()),
            (None, Some(_), None, _) => Err("tls.cert: is required with tls.key".into()),
            (None, None, None, Some(_)) => {
                Err("tls.pfx: is required with tls.passphrase_file".into())
            }
            (None, None, None, None) => Err(format!("tls: {EITHER}")),
        }
    }
}

/// `compat:`: what the compatibility surfaces (and the native capabilities they map onto) allow.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatSettings {
    #[serde(default)]
    pub openpai: OpenPaiSettings,
}

/// `compat.openpai:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenPaiSettings {
    /// What a role job's role may run (`/v1/jobs` with `roles`, and OpenPAI's task roles):
    /// `catalog` (the default: catalog tasks, `app/env/task`, only) or `sandbox` (also a shell
    /// command, run in the runnables' sandbox, `runnables.sandbox`). Off by default: with it,
    /// any user with the write scope may run any command in the sandbox.
    #[serde(default)]
    pub commands: OpenPaiCommands,
}

/// `compat.openpai.commands`: the native setting of role jobs' commands.
pub use bosun_commands::RoleCommands as OpenPaiCommands;

impl CompatSettings {
    /// What role jobs' submissions are checked against.
    pub fn role_settings(&self) -> bosun_commands::RoleSettings {
        bosun_commands::RoleSettings {
            commands: self.openpai.commands,
        }
    }
}

/// Runnables (`/v1/runnables`): how big their files may be, when an idle one without an image
/// is reaped, and the sandbox their processes will run in.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnablesSettings {
    /// The largest one file may be (a `PUT` past it is 413 `file_too_large`, refused before its
    /// body is read whole).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// How many files one runnable may hold.
    #[serde(default = "default_max_files")]
    pub max_files: usize,
    /// The most all of one runnable's files may hold together.
    #[serde(default = "default_max_total_bytes")]
    pub max_total_bytes: u64,
    /// A runnable without an image whose last access is older than this is reaped.
    #[serde(default = "default_reap_after_seconds")]
    pub reap_after_seconds: u64,
    /// How often the reaper (one node at a time) looks.
    #[serde(default = "default_reap_interval_seconds")]
    pub reap_interval_seconds: u64,
    /// How long a save of a running runnable waits for its node to sync the process's files
    /// (503 `sync_timeout` after, and no image).
    #[serde(default = "default_sync_wait_seconds")]
    pub sync_wait_seconds: u64,
    /// What runnables' processes run in: `bwrap` (bubblewrap, the default) or `none`, which
    /// must be chosen explicitly.
    #[serde(default)]
    pub sandbox: SandboxKind,
    /// Whether a sandboxed process may reach the network (default: no network namespace of the
    /// host's, so none).
    #[serde(default)]
    pub network: bool,
    /// Where the worker nodes make each run's working folder (default: `bosun-runnables` in
    /// the system's temporary folder; made `0711`, this server's own).
    #[serde(default = "bosun_runner::runnables::default_work_dir")]
    pub work_dir: PathBuf,
    /// The output kept of one run (`GET /v1/runnables/{id}/logs`); past it, a line says where
    /// it was cut.
    #[serde(default = "default_max_log_bytes")]
    pub max_log_bytes: u64,
    /// How many runnables a user may own (`anonymous`, `user`; admins are never limited).
    #[serde(default)]
    pub quota: RunnableQuotaSettings,
    /// How long an anonymous user's token works (`POST /v1/users/anonymous`); also read as
    /// `anonymous_token_ttl`, the name API.md gives it.
    #[serde(
        default = "default_anonymous_token_ttl_seconds",
        alias = "anonymous_token_ttl"
    )]
    pub anonymous_token_ttl_seconds: i64,
    /// How many anonymous users one source address may make, per node.
    #[serde(default)]
    pub anonymous_per_address: AnonymousRateSettings,
    /// How many anonymous users all addresses together may make, per node.
    #[serde(default)]
    pub anonymous_total: AnonymousTotalSettings,
}

/// `runnables.anonymous_total`: at most `count` anonymous users from all addresses together in
/// any `per_seconds` (`count` 1 to 1 000 000), counted by each node in its memory (then 429
/// `rate_limited`).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousTotalSettings {
    #[serde(default = "default_anonymous_total_count")]
    pub count: u32,
    #[serde(default = "default_anonymous_per_seconds")]
    pub per_seconds: u64,
}

impl Default for AnonymousTotalSettings {
    fn default() -> Self {
        AnonymousTotalSettings {
            count: default_anonymous_total_count(),
            per_seconds: default_anonymous_per_seconds(),
        }
    }
}

fn default_anonymous_total_count() -> u32 {
    1000
}

/// `runnables.anonymous_per_address`: at most `count` anonymous users per address in any
/// `per_seconds` (`count` at most 10 000), counted by each node in its memory; `count: 0` turns
/// anonymous users off.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousRateSettings {
    #[serde(default = "default_anonymous_count")]
    pub count: u32,
    #[serde(default = "default_anonymous_per_seconds")]
    pub per_seconds: u64,
}

impl Default for AnonymousRateSettings {
    fn default() -> Self {
        AnonymousRateSettings {
            count: default_anonymous_count(),
            per_seconds: default_anonymous_per_seconds(),
        }
    }
}

fn default_anonymous_token_ttl_seconds() -> i64 {
    bosun_commands::identity::DEFAULT_ANONYMOUS_TOKEN_SECONDS
}

fn default_anonymous_count() -> u32 {
    20
}

fn default_anonymous_per_seconds() -> u64 {
    3600
}

/// `runnables.quota`: how many runnables one user may own at once; `-1` is unlimited. A fork
/// past it is 403 `runnable_quota_exceeded`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnableQuotaSettings {
    /// An anonymous user's (default 5).
    #[serde(default = "default_anonymous_runnables")]
    pub anonymous: i64,
    /// A registered user's (default -1: unlimited).
    #[serde(default = "default_user_runnables")]
    pub user: i64,
}

impl Default for RunnableQuotaSettings {
    fn default() -> Self {
        RunnableQuotaSettings {
            anonymous: default_anonymous_runnables(),
            user: default_user_runnables(),
        }
    }
}

fn default_anonymous_runnables() -> i64 {
    5
}

fn default_user_runnables() -> i64 {
    -1
}

/// A quota as the commands take it: `None` for `-1` (unlimited).
fn runnable_limit(limit: i64) -> Option<u32> {
    u32::try_from(limit).ok()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    #[default]
    Bwrap,
    None,
}

impl Default for RunnablesSettings {
    fn default() -> Self {
        RunnablesSettings {
            max_file_bytes: default_max_file_bytes(),
            max_files: default_max_files(),
            max_total_bytes: default_max_total_bytes(),
            reap_after_seconds: default_reap_after_seconds(),
            reap_interval_seconds: default_reap_interval_seconds(),
            sync_wait_seconds: default_sync_wait_seconds(),
            sandbox: SandboxKind::default(),
            network: false,
            work_dir: bosun_runner::runnables::default_work_dir(),
            max_log_bytes: default_max_log_bytes(),
            quota: RunnableQuotaSettings::default(),
            anonymous_token_ttl_seconds: default_anonymous_token_ttl_seconds(),
            anonymous_per_address: AnonymousRateSettings::default(),
            anonymous_total: AnonymousTotalSettings::default(),
        }
    }
}

impl RunnablesSettings {
    /// What the commands check runnables' files and reaping against.
    pub fn rules(&self) -> bosun_commands::runnables::RunnableRules {
        bosun_commands::runnables::RunnableRules {
            limits: bosun_domain::runnables::FileLimits {
                max_file_bytes: self.max_file_bytes,
                max_files: self.max_files,
                max_total_bytes: self.max_total_bytes,
            },
            reap_after: std::time::Duration::from_secs(self.reap_after_seconds),
            sync_wait: std::time::Duration::from_secs(self.sync_wait_seconds),
            quota_anonymous: runnable_limit(self.quota.anonymous),
            quota_user: runnable_limit(self.quota.user),
        }
    }

    /// What the runner's reaper and sandbox run with.
    pub fn runner(&self) -> bosun_runner::RunnableSettings {
        bosun_runner::RunnableSettings {
            reap_after: std::time::Duration::from_secs(self.reap_after_seconds),
            reap_interval: std::time::Duration::from_secs(self.reap_interval_seconds),
            sandbox: match self.sandbox {
                SandboxKind::Bwrap => bosun_runner::Sandbox::Bwrap {
                    network: self.network,
                },
                SandboxKind::None => bosun_runner::Sandbox::None,
            },
            work_dir: self.work_dir.clone(),
            max_log_bytes: self.max_log_bytes,
            limits: self.rules().limits,
        }
    }
}

fn default_max_log_bytes() -> u64 {
    bosun_runner::runnables::DEFAULT_MAX_LOG_BYTES
}

fn default_max_file_bytes() -> u64 {
    1024 * 1024
}

fn default_max_files() -> usize {
    1000
}

fn default_max_total_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_reap_after_seconds() -> u64 {
    7 * 24 * 3600
}

fn default_reap_interval_seconds() -> u64 {
    60
}

fn default_sync_wait_seconds() -> u64 {
    10
}

/// How Bosun calls services' APIs (`/v1/services`): the hosts it may reach over plain http are
/// `http_tasks.allow_insecure_hosts`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSettings {
    /// The longest one call to a service may take (connecting, sending, reading the answer).
    #[serde(default = "default_service_timeout_seconds")]
    pub timeout_seconds: u64,
    /// The longest a request (create, bind, unbind, remove an instance) waits for the service's
    /// outcome before answering 202 with the instance pending; the call goes on without it.
    #[serde(default = "default_service_wait_seconds")]
    pub wait_seconds: u64,
    /// Calls a service that does not answer gets before the operation is recorded as failed.
    #[serde(default = "default_service_max_attempts")]
    pub max_attempts: u32,
}

impl Default for ServicesSettings {
    fn default() -> Self {
        ServicesSettings {
            timeout_seconds: default_service_timeout_seconds(),
            wait_seconds: default_service_wait_seconds(),
            max_attempts: default_service_max_attempts(),
        }
    }
}

impl ServicesSettings {
    /// What the runner's service calls run with; `allow_insecure_hosts` from `http_tasks`.
    pub fn runner(&self, allow_insecure_hosts: &[String]) -> bosun_runner::ServiceSettings {
        bosun_runner::ServiceSettings {
            timeout: std::time::Duration::from_secs(self.timeout_seconds),
            wait: std::time::Duration::from_secs(self.wait_seconds),
            max_attempts: self.max_attempts,
            allow_insecure_hosts: allow_insecure_hosts.to_vec(),
        }
    }
}

fn default_service_timeout_seconds() -> u64 {
    10
}

fn default_service_wait_seconds() -> u64 {
    20
}

fn default_service_max_attempts() -> u32 {
    10
}

/// Limits on what a user may own.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    /// How many apps a user may own unless an admin set a limit of their own
    /// (`PUT /v1/users/{username}/quota`); `-1` (the default, as in tsuru) is unlimited.
    #[serde(default = "default_apps_per_user")]
    pub apps_per_user: i64,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings {
            apps_per_user: default_apps_per_user(),
        }
    }
}

fn default_apps_per_user() -> i64 {
    bosun_domain::apps::UNLIMITED
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// How long a password reset token works, in seconds (default an hour, at most a week).
    #[serde(default = "default_password_reset_ttl_seconds")]
    pub password_reset_ttl_seconds: i64,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            password_reset_ttl_seconds: default_password_reset_ttl_seconds(),
        }
    }
}

fn default_password_reset_ttl_seconds() -> i64 {
    bosun_commands::identity::DEFAULT_RESET_TTL_SECONDS
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTaskSettings {
    /// Hosts that `component_url` tasks and webhooks may reach over plain http (https is
    /// required for any other host).
    #[serde(default)]
    pub allow_insecure_hosts: Vec<String>,
}

/// Bounds on what one client's request may hold of the server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// The longest a `wait: true` submission waits for its job to end before answering 202 with
    /// the job as it is then.
    #[serde(default = "default_wait_seconds")]
    pub wait_seconds: u64,
    /// A connection that has not sent a whole request head in this long is closed; so is a
    /// kept-alive connection idle this long (hyper times both from the same point).
    #[serde(default = "default_header_read_timeout_seconds")]
    pub header_read_timeout_seconds: u64,
    /// A request whose whole body has not arrived this long after the route began reading it
    /// is answered 408 `body_timeout` (and its connection closed).
    #[serde(default = "default_body_read_timeout_seconds")]
    pub body_read_timeout_seconds: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            wait_seconds: default_wait_seconds(),
            header_read_timeout_seconds: default_header_read_timeout_seconds(),
            body_read_timeout_seconds: default_body_read_timeout_seconds(),
        }
    }
}

fn default_body_read_timeout_seconds() -> u64 {
    60
}

fn default_wait_seconds() -> u64 {
    300
}

fn default_header_read_timeout_seconds() -> u64 {
    30
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSettings {
    /// How many events a live subscriber may fall behind before it is closed (with the last
    /// position it got, so it can resume).
    #[serde(default = "default_live_buffer")]
    pub buffer: usize,
    /// How many live sockets (`/v1/events/live` and pulsar's feed together) one token may hold
    /// open at once on a node; one more is refused (429 `too_many_sockets`).
    #[serde(default = "default_max_sockets_per_token")]
    pub max_sockets_per_token: u32,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings {
            buffer: default_live_buffer(),
            max_sockets_per_token: default_max_sockets_per_token(),
        }
    }
}

fn default_max_sockets_per_token() -> u32 {
    64
}

fn default_live_buffer() -> usize {
    4096
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// An existing PostgreSQL server (URL or `key=value` form). Unset: the managed one is used.
    #[serde(default, deserialize_with = "database_url")]
    pub url: Option<DatabaseUrl>,
}

/// A parsed connection string; its text is kept only to say where we connect without the password.
#[derive(Clone)]
pub struct DatabaseUrl(pub tokio_postgres::Config);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        write!(
            f,
            "DatabaseUrl({:?}/{:?})",
            self.0.get_hosts(),
            self.0.get_dbname()
        )
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./bosun-data")
}

fn socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!("{text:?} is not an address like 127.0.0.1:8080"))
    })
}

fn database_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DatabaseUrl>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let config: tokio_postgres::Config = text.parse().map_err(|e| {
        serde::de::Error::custom(format!("not a PostgreSQL connection string: {e}"))
    })?;
    Ok(Some(DatabaseUrl(config)))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {variable}: {message}")]
    Env { variable: String, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Reads `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_sources(file, std::env::vars())
    }

    pub fn from_sources(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                let value: Value = serde_yaml::from_str(&text).map_err(|e| ConfigError::File {
                    path: path.into(),
                    message: e.to_string(),
                })?;
                // Check the file on its own first, so its errors name the file.
                if !value.is_null() {
                    parse(value.clone()).map_err(|e| ConfigError::File {
                        path: path.into(),
                        message: e.to_string(),
                    })?;
                }
                match value {
                    Value::Null => Mapping::new(),
                    Value::Mapping(m) => m,
                    _ => {
                        return Err(ConfigError::File {
                            path: path.into(),
                            message: "expected a mapping of keys".into(),
                        })
                    }
                }
            }
            None => example_catalog()?,
        };
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        for (variable, raw) in overrides {
            let path: Vec<String> = variable[ENV_PREFIX.len()..]
                .to_lowercase()
                .split("__")
                .map(str::to_string)
                .collect();
            // Each override is checked on its own, so an error names its variable.
            let mut alone = Mapping::new();
            set(&mut alone, &path, scalar(&raw));
            parse(Value::Mapping(alone)).map_err(|e| ConfigError::Env {
                variable: variable.clone(),
                message: e.to_string(),
            })?;
            set(&mut tree, &path, scalar(&raw));
        }
        let settings = parse(Value::Mapping(tree)).map_err(ConfigError::Invalid)?;
        // What one key says of another, once every source is in.
        bosun_commands::healers::Healers::parse(&settings.healers, &settings.catalog)
            .map_err(ConfigError::Invalid)?;
        if let Some(tls) = &settings.tls {
            tls.form().map_err(ConfigError::Invalid)?;
        }
        if let Some(github) = &settings.auth.github {
            github.check().map_err(ConfigError::Invalid)?;
        }
        Ok(settings)
    }
}

/// A tree holding only `catalog:`, the built-in example.
fn example_catalog() -> Result<Mapping, ConfigError> {
    let catalog: Value = serde_yaml::from_str(EXAMPLE_CATALOG)
        .map_err(|e| ConfigError::Invalid(format!("the built-in example catalog: {e}")))?;
    let mut tree = Mapping::new();
    tree.insert(Value::String("catalog".into()), catalog);
    Ok(tree)
}

/// Settings from a YAML tree; an error names the key it is about (`log.format: unknown variant …`).
fn parse(tree: Value) -> Result<Settings, String> {
    let mut settings: Settings = serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    settings.catalog.validate()?;
    if settings.quota.apps_per_user < -1 {
        return Err("quota.apps_per_user: must be -1 (unlimited) or more".into());
    }
    if !(1..=604_800).contains(&settings.identity.password_reset_ttl_seconds) {
        return Err("identity.password_reset_ttl_seconds: must be 1 to 604800 (a week)".into());
    }
    if !(1..=86_400).contains(&settings.http.wait_seconds) {
        return Err("http.wait_seconds: must be 1 to 86400 (a day)".into());
    }
    if !(1..=3_600).contains(&settings.http.header_read_timeout_seconds) {
        return Err("http.header_read_timeout_seconds: must be 1 to 3600".into());
    }
    if !(1..=3_600).contains(&settings.http.body_read_timeout_seconds) {
        return Err("http.body_read_timeout_seconds: must be 1 to 3600".into());
    }
    if !(1..=300).contains(&settings.services.timeout_seconds) {
        return Err("services.timeout_seconds: must be 1 to 300".into());
    }
    if settings.services.wait_seconds > 300 {
        return Err("services.wait_seconds: must be 0 to 300".into());
    }
    if !(1..=100).contains(&settings.services.max_attempts) {
        return Err("services.max_attempts: must be 1 to 100".into());
    }
    check_runnables(&settings.runnables)?;
    let limit = &settings.auth.sign_in_limit;
    // Each counted failure is held in memory until it leaves the window: bounded.
    for (key, count) in [
        ("failures_per_user", limit.failures_per_user),
        ("failures_per_address", limit.failures_per_address),
    ] {
        if !(1..=10_000).contains(&count) {
            return Err(format!("auth.sign_in_limit.{key}: must be 1 to 10000"));
        }
    }
    // Retry-After is sent in at most 16 bits of seconds.
    if !(1..=43_200).contains(&limit.per_seconds) {
        return Err("auth.sign_in_limit.per_seconds: must be 1 to 43200 (12 hours)".into());
    }
    if !(1..=100_000).contains(&settings.live.max_sockets_per_token) {
        return Err("live.max_sockets_per_token: must be 1 to 100000".into());
    }
    if settings.compat.openpai.commands.allowed()
        && matches!(settings.runnables.sandbox, SandboxKind::None)
    {
        return Err("compat.openpai.commands: sandbox runs role jobs' commands in the runnables' sandbox, and runnables.sandbox is none (they would run on the host, unsandboxed): set runnables.sandbox: bwrap, or compat.openpai.commands: catalog".into());
    }
    // The runner refuses a role job's command too, where commands are off.
    settings.runner.role_commands = settings.compat.openpai.commands;
    Ok(settings)
}

/// The largest file a runnable may hold: a file is read into memory whole (its body, then its
/// blob), and PostgreSQL holds at most 1 GiB in one value.
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

fn check_runnables(r: &RunnablesSettings) -> Result<(), String> {
    if !(1..=MAX_FILE_BYTES).contains(&r.max_file_bytes) {
        return Err(format!(
            "runnables.max_file_bytes: must be 1 to {MAX_FILE_BYTES} (256 MiB)"
        ));
    }
    if !(1..=1_000_000).contains(&r.max_files) {
        return Err("runnables.max_files: must be 1 to 1000000".into());
    }
    if r.max_total_bytes < r.max_file_bytes {
        return Err(format!(
            "runnables.max_total_bytes: must be at least runnables.max_file_bytes ({})",
            r.max_file_bytes
        ));
    }
    // Far past any real use, and within what a duration since 1970 can add.
    if !(1..=100 * 365 * 86_400).contains(&r.reap_after_seconds) {
        return Err("runnables.reap_after_seconds: must be 1 to 3153600000 (100 years)".into());
    }
    if !(1..=86_400).contains(&r.reap_interval_seconds) {
        return Err("runnables.reap_interval_seconds: must be 1 to 86400 (a day)".into());
    }
    if !r.work_dir.is_absolute() {
        return Err("runnables.work_dir: must be an absolute path".into());
    }
    if !(1..=1 << 30).contains(&r.max_log_bytes) {
        return Err("runnables.max_log_bytes: must be 1 to 1073741824 (1 GiB)".into());
    }
    if !(1..=600).contains(&r.sync_wait_seconds) {
        return Err("runnables.sync_wait_seconds: must be 1 to 600".into());
    }
    if !(1..=bosun_domain::identity::MAX_EXPIRES_IN).contains(&r.anonymous_token_ttl_seconds) {
        return Err(format!(
            "runnables.anonymous_token_ttl_seconds: must be 1 to {} (10 years)",
            bosun_domain::identity::MAX_EXPIRES_IN
        ));
    }
    if !(1..=31_536_000).contains(&r.anonymous_per_address.per_seconds) {
        return Err(
            "runnables.anonymous_per_address.per_seconds: must be 1 to 31536000 (a year)".into(),
        );
    }
    if !(1..=31_536_000).contains(&r.anonymous_total.per_seconds) {
        return Err("runnables.anonymous_total.per_seconds: must be 1 to 31536000 (a year)".into());
    }
    if r.anonymous_total.count == 0 {
        return Err(
            "runnables.anonymous_total.count: must be at least 1 (anonymous_per_address.count: 0 turns anonymous users off)".into(),
        );
    }
    // Each counted time is held in memory until it leaves the window: bounded, so a typo
    // cannot make the limiter hold an address's (or everyone's) times without end.
    if r.anonymous_per_address.count > 10_000 {
        return Err("runnables.anonymous_per_address.count: must be 0 to 10000".into());
    }
    if r.anonymous_total.count > 1_000_000 {
        return Err("runnables.anonymous_total.count: must be 1 to 1000000".into());
    }
    for (key, limit) in [("anonymous", r.quota.anonymous), ("user", r.quota.user)] {
        if limit != -1 && runnable_limit(limit).is_none() {
            return Err(format!(
                "runnables.quota.{key}: must be -1 (unlimited) or 0 to {}",
                u32::MAX
            ));
        }
    }
    Ok(())
}

/// An environment value as YAML would read it, so numbers and booleans keep their types; but a
/// value meant as a string (an address, a path) stays a string.
fn scalar(raw: &str) -> Value {
    match serde_yaml::from_str::<Value>(raw) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(raw.to_string()),
    }
}

fn set(tree: &mut Mapping, path: &[String], value: Value) {
    let key = Value::String(path[0].clone());
    if path.len() == 1 {
        tree.insert(key, value);
        return;
    }
    let child = tree
        .entry(key)
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if !child.is_mapping() {
        *child = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(m) = child {
        set(m, &path[1..], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_without_any_configuration() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("./bosun-data"));
        assert!(s.database.url.is_none());
        assert_eq!(s.log.format, LogFormat::Text);
    }

    #[test]
    fn role_commands_need_a_sandbox_to_run_in() {
        let f = file("compat:\n  openpai:\n    commands: sandbox\nrunnables:\n  sandbox: none\n");
        let refused = Settings::from_sources(Some(f.path()), env(&[])).unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains("compat.openpai.commands: sandbox")
                && message.contains("runnables.sandbox is none"),
            "{message}"
        );
        let f = file("compat:\n  openpai:\n    commands: sandbox\n");
        let s = Settings::from_sources(Some(f.path()), env(&[])).unwrap();
        assert!(s.runner.role_commands.allowed(), "with bwrap, the default");
        let f = file("runnables:\n  sandbox: none\n");
        assert!(
            Settings::from_sources(Some(f.path()), env(&[])).is_ok(),
            "commands off: no sandbox is fine"
        );
    }

    #[test]
    fn file_then_environment() {
        let f = file("listen: 0.0.0.0:9000\ndata_dir: /srv/bosun\nlog:\n  format: json\n");
        let s = Settings::from_sources(
            Some(f.path()),
            env(&[("BOSUN_LISTEN", "127.0.0.1:7000"), ("PATH", "/bin")]),
        )
        .unwrap();
        assert_eq!(s.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("/srv/bosun"));
        assert_eq!(s.log.format, LogFormat::Json);
        let s = Settings::from_sources(
            None,
            env(&[("BOSUN_DATABASE__URL", "postgres://u:p@db.example/bosun")]),
        )
        .unwrap();
        assert_eq!(s.database.url.unwrap().0.get_dbname(), Some("bosun"));
    }

    #[test]
    fn the_catalog_is_read_and_checked() {
        let f = file(
            "catalog:\n  example:\n    production:\n      deploy:\n        command: [sh, -c, 'echo deploying $VERSION']\n        description: Deploy the app\n        timeout_seconds: 600\n        env: {RAILS_ENV: production}\n",
        );
        let s = Settings::from_sources(Some(f.path()), env(&[])).unwrap();
        let deploy = s.catalog.task("example", "production", "deploy").unwrap();
        assert_eq!(deploy.command, ["sh", "-c", "echo deploying $VERSION"]);
        let f = file("catalog:\n  example:\n    production:\n      deploy:\n        command: []\n");
        let err = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("catalog.example.production.deploy.command"),
            "{err}"
        );
        let f = file("catalog:\n  example:\n    production:\n      deploy:\n        cmd: [x]\n");
        let err = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cmd"), "{err}");
    }

    #[test]
    fn the_app_quota_is_unlimited_unless_configured_and_checked() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.quota.apps_per_user, -1);
        let f = file("quota:\n  apps_per_user: 3\n");
        let s = Settings::from_sources(Some(f.path()), env(&[])).unwrap();
        assert_eq!(s.quota.apps_per_user, 3);
        let s = Settings::from_sources(None, env(&[("BOSUN_QUOTA__APPS_PER_USER", "0")])).unwrap();
        assert_eq!(s.quota.apps_per_user, 0);
        for text in [
            "quota:\n  apps_per_user: -2\n",
            "quota:\n  apps_per_user: many\n",
        ] {
            let err = Settings::from_sources(Some(file(text).path()), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("quota.apps_per_user"), "{err}");
        }
        let err = Settings::from_sources(Some(file("quota:\n  apps: 1\n").path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("apps"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let f = file("listen: 127.0.0.1:1\nlisten_port: 3\n");
        let err = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_port"), "{err}");
        let f = file("database:\n  uri: x\n");
        let err = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("uri"), "{err}");
        let err = Settings::from_sources(None, env(&[("BOSUN_LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BOSUN_LISTN") && err.contains("listn"),
            "{err}"
        );
    }

    #[test]
    fn http_bounds_are_checked() {
        for (key, value) in [
            ("BOSUN_HTTP__WAIT_SECONDS", "0"),
            ("BOSUN_HTTP__WAIT_SECONDS", "86401"),
            ("BOSUN_HTTP__HEADER_READ_TIMEOUT_SECONDS", "0"),
            ("BOSUN_HTTP__HEADER_READ_TIMEOUT_SECONDS", "3601"),
            ("BOSUN_HTTP__BODY_READ_TIMEOUT_SECONDS", "0"),
            ("BOSUN_HTTP__BODY_READ_TIMEOUT_SECONDS", "3601"),
        ] {
            let err = Settings::from_sources(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            let field = key.trim_start_matches("BOSUN_HTTP__").to_lowercase();
            assert!(
                err.contains(&format!("http.{field}")),
                "{key}={value}: {err}"
            );
        }
        let settings =
            Settings::from_sources(None, env(&[("BOSUN_HTTP__WAIT_SECONDS", "86400")])).unwrap();
        assert_eq!(settings.http.wait_seconds, 86_400);
        assert_eq!(settings.http.header_read_timeout_seconds, 30);
        assert_eq!(settings.http.body_read_timeout_seconds, 60);
    }

    #[test]
    fn sign_in_and_socket_limits_default_override_and_are_bounded() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        let limit = s.auth.sign_in_limit;
        assert_eq!(
            (
                limit.failures_per_user,
                limit.failures_per_address,
                limit.per_seconds
            ),
            (10, 100, 300)
        );
        assert_eq!(s.live.max_sockets_per_token, 64);
        let s = Settings::from_sources(
            None,
            env(&[
                ("BOSUN_AUTH__SIGN_IN_LIMIT__FAILURES_PER_USER", "3"),
                ("BOSUN_LIVE__MAX_SOCKETS_PER_TOKEN", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(s.auth.sign_in_limit.failures_per_user, 3);
        assert_eq!(s.live.max_sockets_per_token, 2);
        for (key, value, named) in [
            (
                "BOSUN_AUTH__SIGN_IN_LIMIT__FAILURES_PER_USER",
                "0",
                "auth.sign_in_limit.failures_per_user",
            ),
            (
                "BOSUN_AUTH__SIGN_IN_LIMIT__FAILURES_PER_ADDRESS",
                "10001",
                "auth.sign_in_limit.failures_per_address",
            ),
            (
                "BOSUN_AUTH__SIGN_IN_LIMIT__PER_SECONDS",
                "0",
                "auth.sign_in_limit.per_seconds",
            ),
            (
                "BOSUN_LIVE__MAX_SOCKETS_PER_TOKEN",
                "0",
                "live.max_sockets_per_token",
            ),
        ] {
            let err = Settings::from_sources(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn services_defaults_overrides_and_bounds() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(
            (
                s.services.timeout_seconds,
                s.services.wait_seconds,
                s.services.max_attempts
            ),
            (10, 20, 10)
        );
        let f = file("services:\n  timeout_seconds: 2\n  wait_seconds: 0\nhttp_tasks:\n  allow_insecure_hosts: [127.0.0.1]\n");
        let s = Settings::from_sources(
            Some(f.path()),
            env(&[("BOSUN_SERVICES__MAX_ATTEMPTS", "3")]),
        )
        .unwrap();
        let runner = s.services.runner(&s.http_tasks.allow_insecure_hosts);
        assert_eq!(runner.timeout, std::time::Duration::from_secs(2));
        assert_eq!(runner.wait, std::time::Duration::ZERO);
        assert_eq!(runner.max_attempts, 3);
        assert_eq!(runner.allow_insecure_hosts, ["127.0.0.1"]);
        for (key, value) in [
            ("BOSUN_SERVICES__TIMEOUT_SECONDS", "0"),
            ("BOSUN_SERVICES__TIMEOUT_SECONDS", "301"),
            ("BOSUN_SERVICES__WAIT_SECONDS", "301"),
            ("BOSUN_SERVICES__WAIT_SECONDS", "-1"),
            ("BOSUN_SERVICES__MAX_ATTEMPTS", "0"),
            ("BOSUN_SERVICES__MAX_ATTEMPTS", "101"),
        ] {
            let err = Settings::from_sources(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            let field = key.trim_start_matches("BOSUN_SERVICES__").to_lowercase();
            assert!(
                err.contains(key) && err.contains(&format!("services.{field}")),
                "{key}={value}: {err}"
            );
        }
        let err = Settings::from_sources(Some(file("services:\n  retries: 1\n").path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("retries"), "{err}");
    }

    #[test]
    fn runnables_defaults_overrides_and_bounds() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        let r = &s.runnables;
        assert_eq!(
            (
                r.max_file_bytes,
                r.max_files,
                r.max_total_bytes,
                r.reap_after_seconds,
                r.reap_interval_seconds
            ),
            (1_048_576, 1000, 67_108_864, 604_800, 60)
        );
        assert_eq!((r.sandbox, r.network), (SandboxKind::Bwrap, false));
        assert_eq!(
            r.rules().sync_wait,
            std::time::Duration::from_secs(10),
            "runnables.sync_wait_seconds"
        );
        let s = Settings::from_sources(None, env(&[("BOSUN_RUNNABLES__SYNC_WAIT_SECONDS", "3")]));
        assert_eq!(
            s.unwrap().runnables.rules().sync_wait,
            std::time::Duration::from_secs(3)
        );
        let f = file("runnables:\n  max_file_bytes: 10\n  max_files: 3\n  max_total_bytes: 25\n  reap_after_seconds: 1\n  network: true\n");
        let s = Settings::from_sources(
            Some(f.path()),
            env(&[
                ("BOSUN_RUNNABLES__REAP_INTERVAL_SECONDS", "2"),
                ("BOSUN_RUNNABLES__SANDBOX", "none"),
            ]),
        )
        .unwrap();
        let rules = s.runnables.rules();
        assert_eq!(
            (
                rules.limits.max_file_bytes,
                rules.limits.max_files,
                rules.limits.max_total_bytes
            ),
            (10, 3, 25)
        );
        assert_eq!(rules.reap_after, std::time::Duration::from_secs(1));
        let runner = s.runnables.runner();
        assert_eq!(runner.reap_after, std::time::Duration::from_secs(1));
        assert_eq!(runner.reap_interval, std::time::Duration::from_secs(2));
        assert!(matches!(runner.sandbox, bosun_runner::Sandbox::None));
        let s = Settings::from_sources(Some(f.path()), env(&[])).unwrap();
        assert!(matches!(
            s.runnables.runner().sandbox,
            bosun_runner::Sandbox::Bwrap { network: true }
        ));
        for (key, value) in [
            ("BOSUN_RUNNABLES__MAX_FILE_BYTES", "0"),
            ("BOSUN_RUNNABLES__MAX_FILE_BYTES", "268435457"),
            ("BOSUN_RUNNABLES__MAX_FILES", "0"),
            ("BOSUN_RUNNABLES__MAX_TOTAL_BYTES", "1048575"),
            ("BOSUN_RUNNABLES__REAP_AFTER_SECONDS", "0"),
            ("BOSUN_RUNNABLES__REAP_AFTER_SECONDS", "-1"),
            ("BOSUN_RUNNABLES__REAP_INTERVAL_SECONDS", "0"),
            ("BOSUN_RUNNABLES__REAP_INTERVAL_SECONDS", "86401"),
            ("BOSUN_RUNNABLES__SYNC_WAIT_SECONDS", "0"),
            ("BOSUN_RUNNABLES__SYNC_WAIT_SECONDS", "601"),
            ("BOSUN_RUNNABLES__SANDBOX", "docker"),
            ("BOSUN_RUNNABLES__NETWORK", "maybe"),
        ] {
            let err = Settings::from_sources(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            let field = key.trim_start_matches("BOSUN_RUNNABLES__").to_lowercase();
            assert!(
                err.contains(key) && err.contains(&format!("runnables.{field}")),
                "{key}={value}: {err}"
            );
        }
        // Checked once every source is in: the file's total under the environment's file size.
        let f = file("runnables:\n  max_total_bytes: 100\n  max_file_bytes: 100\n");
        let err = Settings::from_sources(
            Some(f.path()),
            env(&[("BOSUN_RUNNABLES__MAX_FILE_BYTES", "101")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("runnables.max_total_bytes"), "{err}");
        let err = Settings::from_sources(Some(file("runnables:\n  reap: 1\n").path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reap"), "{err}");
    }

    #[test]
    fn anonymous_users_defaults_overrides_and_bounds() {
        let r = Settings::from_sources(None, env(&[])).unwrap().runnables;
        assert_eq!(r.anonymous_token_ttl_seconds, 604_800);
        let rate = r.anonymous_per_address;
        assert_eq!((rate.count, rate.per_seconds), (20, 3600));
        let total = r.anonymous_total;
        assert_eq!((total.count, total.per_seconds), (1000, 3600));
        // API.md's name for the token's lifetime is read too.
        let f = file("runnables:\n  anonymous_token_ttl: 60\n  anonymous_total: {count: 7, per_seconds: 10}\n");
        let r = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap()
            .runnables;
        assert_eq!(r.anonymous_token_ttl_seconds, 60);
        let total = r.anonymous_total;
        assert_eq!((total.count, total.per_seconds), (7, 10));
        let f = file("runnables:\n  anonymous_token_ttl_seconds: 1\n  anonymous_per_address: {count: 0, per_seconds: 60}\n");
        let r = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap()
            .runnables;
        assert_eq!(r.anonymous_token_ttl_seconds, 1);
        let rate = r.anonymous_per_address;
        assert_eq!((rate.count, rate.per_seconds), (0, 60));
        let most = env(&[
            ("BOSUN_RUNNABLES__ANONYMOUS_PER_ADDRESS__COUNT", "10000"),
            ("BOSUN_RUNNABLES__ANONYMOUS_TOTAL__COUNT", "1000000"),
        ]);
        let r = Settings::from_sources(None, most).unwrap().runnables;
        assert_eq!(
            (r.anonymous_per_address.count, r.anonymous_total.count),
            (10_000, 1_000_000)
        );
        let over = env(&[("BOSUN_RUNNABLES__ANONYMOUS_PER_ADDRESS__COUNT", "3")]);
        let r = Settings::from_sources(None, over).unwrap().runnables;
        assert_eq!(r.anonymous_per_address.count, 3);
        for (key, value, named) in [
            (
                "BOSUN_RUNNABLES__ANONYMOUS_TOKEN_TTL_SECONDS",
                "0",
                "anonymous_token_ttl_seconds",
            ),
            (
                "BOSUN_RUNNABLES__ANONYMOUS_PER_ADDRESS__PER_SECONDS",
                "0",
                "per_seconds",
            ),
            (
                "BOSUN_RUNNABLES__ANONYMOUS_TOTAL__COUNT",
                "0",
                "runnables.anonymous_total.count",
            ),
            (
                "BOSUN_RUNNABLES__ANONYMOUS_TOTAL__PER_SECONDS",
                "31536001",
                "runnables.anonymous_total.per_seconds",
            ),
            (
                "BOSUN_RUNNABLES__ANONYMOUS_PER_ADDRESS__COUNT",
                "10001",
                "runnables.anonymous_per_address.count",
            ),
            (
                "BOSUN_RUNNABLES__ANONYMOUS_TOTAL__COUNT",
                "1000001",
                "runnables.anonymous_total.count",
            ),
        ] {
            let err = Settings::from_sources(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn runnables_quota_defaults_overrides_and_bounds() {
        let rules = Settings::from_sources(None, env(&[]))
            .unwrap()
            .runnables
            .rules();
        assert_eq!((rules.quota_anonymous, rules.quota_user), (Some(5), None));
        let f = file("runnables:\n  quota:\n    anonymous: -1\n    user: 3\n");
        let rules = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap()
            .runnables
            .rules();
        assert_eq!((rules.quota_anonymous, rules.quota_user), (None, Some(3)));
        let s = Settings::from_sources(None, env(&[("BOSUN_RUNNABLES__QUOTA__ANONYMOUS", "0")]));
        assert_eq!(s.unwrap().runnables.rules().quota_anonymous, Some(0));
        for (key, value) in [
            ("BOSUN_RUNNABLES__QUOTA__ANONYMOUS", "-2"),
            ("BOSUN_RUNNABLES__QUOTA__USER", "4294967296"),
        ] {
            let err = Settings::from_sources(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            let field = key
                .trim_start_matches("BOSUN_RUNNABLES__QUOTA__")
                .to_lowercase();
            assert!(
                err.contains(&format!("runnables.quota.{field}")),
                "{key}={value}: {err}"
            );
        }
        let f = file("runnables:\n  quota:\n    anonymus: 1\n");
        let err = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("anonymus"), "{err}");
    }

    #[test]
    fn runnables_work_dir_and_log_limit_defaults_overrides_and_bounds() {
        let r = Settings::from_sources(None, env(&[])).unwrap().runnables;
        assert_eq!(r.work_dir, std::env::temp_dir().join("bosun-runnables"));
        assert_eq!(r.max_log_bytes, 1024 * 1024);
        let f =
            file("runnables:\n  work_dir: /srv/runs\n  max_log_bytes: 10\n  max_file_bytes: 7\n");
        let runner = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap()
            .runnables
            .runner();
        assert_eq!(runner.work_dir, PathBuf::from("/srv/runs"));
        assert_eq!(runner.max_log_bytes, 10);
        assert_eq!(
            runner.limits.max_file_bytes, 7,
            "a sync keeps the file limits"
        );
        for (key, value) in [
            ("BOSUN_RUNNABLES__WORK_DIR", "relative/runs"),
            ("BOSUN_RUNNABLES__MAX_LOG_BYTES", "0"),
        ] {
            let err = Settings::from_sources(None, env(&[(key, value)]))
                .unwrap_err()
                .to_string();
            let field = key.trim_start_matches("BOSUN_RUNNABLES__").to_lowercase();
            assert!(
                err.contains(&format!("runnables.{field}")),
                "{key}={value}: {err}"
            );
        }
    }

    #[test]
    fn bad_values_are_named() {
        let err = Settings::from_sources(None, env(&[("BOSUN_LISTEN", "localhost")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BOSUN_LISTEN") && err.contains("localhost"),
            "{err}"
        );
        let f = file("log:\n  format: xml\n");
        let err = Settings::from_sources(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("xml") && err.contains("format"), "{err}");
        let err = Settings::from_sources(None, env(&[("BOSUN_DATABASE__URL", "postgres://[::1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("BOSUN_DATABASE__URL"), "{err}");
        let err = Settings::from_sources(Some(Path::new("/nonexistent/bosun.yaml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/bosun.yaml"), "{err}");
    }

    #[test]
    fn without_a_file_the_example_catalog_is_used_and_a_file_replaces_it() {
        let s = Settings::from_sources(None, env(&[("BOSUN_LISTEN", "127.0.0.1:0")])).unwrap();
        let names: Vec<String> = s
            .catalog
            .entries()
            .into_iter()
            .flat_map(|e| {
                e.tasks
                    .into_iter()
                    .map(move |t| format!("{}/{}/{}", e.app, e.env, t.name))
            })
            .collect();
        assert_eq!(
            names,
            [
                "example/production/fail",
                "example/production/hello",
                "example/production/sleep"
            ]
        );
        assert_eq!(
            s.catalog
                .task("example", "production", "sleep")
                .unwrap()
                .command,
            ["sh", "-c", "echo sleeping for ten minutes; exec sleep 600"]
        );
        // A file without a catalog: no tasks at all, not the example.
        let f = file("listen: 127.0.0.1:0\n");
        let s = Settings::from_sources(Some(f.path()), env(&[])).unwrap();
        assert!(s.catalog.entries().is_empty());
        let f = file("");
        let s = Settings::from_sources(Some(f.path()), env(&[])).unwrap();
        assert!(s.catalog.entries().is_empty());
        // A file's catalog is the only one.
        let f = file("catalog:\n  mine:\n    prod:\n      x:\n        command: [\"true\"]\n");
        let s = Settings::from_sources(Some(f.path()), env(&[])).unwrap();
        assert!(s.catalog.task("mine", "prod", "x").is_ok());
        assert!(s.catalog.task("example", "production", "hello").is_err());
    }

    #[test]
    fn a_webhook_secret_is_not_printed() {
        let f = file("notifications:\n  webhook_secret: s3cr3t-from-the-file\n");
        let s =
            Settings::from_sources(Some(f.path()), env(&[("BOSUN_LOG__FORMAT", "json")])).unwrap();
        let secret = s.notifications.webhook_secret.as_ref().expect("set");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(secret),
            "s3cr3t-from-the-file"
        );
        let shown = format!("{s:?}");
        assert!(shown.contains("webhook_secret"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let s = Settings::from_sources(
            None,
            env(&[(
                "BOSUN_NOTIFICATIONS__WEBHOOK_SECRET",
                "from-the-environment",
            )]),
        )
        .unwrap();
        assert!(s.notifications.webhook_secret.is_some());
        let shown = format!("{s:?}");
        assert!(!shown.contains("from-the-environment"), "{shown}");
    }

    #[test]
    fn a_database_password_is_not_printed() {
        let s = Settings::from_sources(
            None,
            env(&[("BOSUN_DATABASE__URL", "postgres://u:hunter22@db/x")]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter22"));
    }

    #[test]
    fn healers_are_checked_against_the_catalog_naming_the_key() {
        let s = Settings::from_sources(
            None,
            env(&[("BOSUN_HEALERS__RESTART", "example/production/hello")]),
        )
        .unwrap();
        assert_eq!(s.healers["restart"], "example/production/hello");
        let err = Settings::from_sources(
            None,
            env(&[("BOSUN_HEALERS__RESTART", "example/production/nope")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("healers.restart") && err.contains("example/production/nope"),
            "{err}"
        );
        let err = Settings::from_sources(
            None,
            env(&[("BOSUN_IDENTITY__PASSWORD_RESET_TTL_SECONDS", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("identity.password_reset_ttl_seconds"), "{err}");
    }

    #[test]
    fn github_sign_in_is_checked_whole_naming_the_key() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert!(s.auth.github.is_none());
        let base = "auth:\n  github:\n    client_id: abc\n    org: My-Org\n";
        let f = file(&format!("{base}    client_secret: sekrit-123\n"));
        let s = Settings::from_sources(Some(f.path()), env(&[])).unwrap();
        let github = s.auth.github.as_ref().expect("configured");
        assert_eq!(github.base_url, "https://github.com");
        assert_eq!(github.api_url, "https://api.github.com");
        assert_eq!(github.cache_seconds, 60);
        assert_eq!(github.session_seconds, 3600);
        assert!(github.authorization.is_none() && github.team.is_none());
        assert!(github.redirect_uri.is_none());
        assert!(
            !format!("{s:?}").contains("sekrit-123"),
            "the secret is not printed"
        );
        // The secret may come from the environment on its own.
        let f = file(base);
        let s = Settings::from_sources(
            Some(f.path()),
            env(&[("BOSUN_AUTH__GITHUB__CLIENT_SECRET", "from-env")]),
        )
        .unwrap();
        assert!(s.auth.github.unwrap().client_secret.is_some());
        let full = format!(
            "{base}    client_secret_file: /run/secret\n    base_url: http://127.0.0.1:9/\n    api_url: https://ghe.example/api/v3\n    authorization:\n      read: [alice, some-org, ann_acme]\n      write: [Bob]\n    team: github\n    cache_seconds: 5\n    session_seconds: 600\n    redirect_uri: https://bosun.example/prefix/auth/github/callback\n"
        );
        let s = Settings::from_sources(Some(file(&full).path()), env(&[])).unwrap();
        let github = s.auth.github.unwrap();
        assert_eq!(github.authorization.unwrap().write, ["Bob"]);
        assert_eq!(github.team.as_deref(), Some("github"));
        assert_eq!(github.session_seconds, 600);
        assert_eq!(
            github.redirect_uri.as_deref(),
            Some("https://bosun.example/prefix/auth/github/callback")
        );
        for (yaml, named) in [
            (base.to_string(), "auth.github.client_secret"),
            (
                format!("{base}    client_secret: a\n    client_secret_file: b\n"),
                "not both",
            ),
            (
                "auth:\n  github:\n    org: o\n    client_secret: s\n".to_string(),
                "auth.github.client_id",
            ),
            (
                "auth:\n  github:\n    client_id: c\n    client_secret: s\n".to_string(),
                "auth.github.org",
            ),
            (
                format!("{base}    client_secret: s\n    base_url: ftp://github.com\n"),
                "auth.github.base_url",
            ),
            (
                format!("{base}    client_secret: s\n    api_url: not a url\n"),
                "auth.github.api_url",
            ),
            (
                format!("{base}    client_secret: s\n    authorization:\n      read: [\"-bad\"]\n"),
                "auth.github.authorization.read",
            ),
            (
                format!("{base}    client_secret: s\n    team: \"two words\"\n"),
                "auth.github.team",
            ),
            (
                format!("{base}    client_secret: s\n    cache_seconds: 0\n"),
                "auth.github.cache_seconds",
            ),
            (
                format!("{base}    client_secret: s\n    session_seconds: 59\n"),
                "auth.github.session_seconds",
            ),
            (
                format!("{base}    client_secret: s\n    session_seconds: 86401\n"),
                "auth.github.session_seconds",
            ),
            (
                format!("{base}    client_secret: s\n    redirect_uri: https://b.example/callback\n"),
                "auth.github.redirect_uri",
            ),
            (
                format!("{base}    client_secret: s\n    redirect_uri: /auth/github/callback\n"),
                "auth.github.redirect_uri",
            ),
            (
                format!(
                    "{base}    client_secret: s\n    redirect_uri: ftp://b.example/auth/github/callback\n"
                ),
                "auth.github.redirect_uri",
            ),
            (
                format!("{base}    client_secret: s\n    scopes: [read]\n"),
                "scopes",
            ),
        ] {
            let err = Settings::from_sources(Some(file(&yaml).path()), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{yaml}: {err}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    /// Keys of every section, at their place, with values of any type.
    fn yaml() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "listen",
            "data_dir",
            "http:\n  wait_seconds",
            "http:\n  body_read_timeout_seconds",
            "live:\n  max_sockets_per_token",
            "auth:\n  sign_in_limit:\n    failures_per_user",
            "auth:\n  github:\n    org",
            "runnables:\n  max_file_bytes",
            "quota:\n  apps_per_user",
            "tls:\n  cert",
            "catalog:\n  a:\n    b:\n      c",
            "unknown_key",
        ]);
        // Around every bound the loader checks, and far off it.
        let bound = prop::sample::select(vec![
            -2i64, -1, 0, 1, 2, 3_600, 3_601, 10_000, 10_001, 86_400, 86_401, 100_000, 100_001,
        ]);
        let value = prop_oneof![
            Just("~".to_string()),
            bound.prop_map(|n| n.to_string()),
            (-2i64..200_000).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-z0-9:./ -]{0,20}".prop_map(|s| format!("{s:?}")),
            Just("[1, 2]".to_string()),
            Just("{x: 1}".to_string()),
        ];
        prop_oneof![
            (key, value).prop_map(|(key, value)| format!("{key}: {value}\n")),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any file gets settings or an error naming what is wrong; never a panic. What loads
        /// keeps the bounds the checks promise.
        #[test]
        fn any_configuration_file_loads_or_is_refused_with_a_message(text in yaml()) {
            let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
            file.write_all(text.as_bytes()).expect("write it");
            match Settings::from_sources(Some(file.path()), std::iter::empty()) {
                Ok(settings) => {
                    prop_assert!((1..=86_400).contains(&settings.http.wait_seconds));
                    prop_assert!((1..=3_600).contains(&settings.http.body_read_timeout_seconds));
                    prop_assert!((1..=100_000).contains(&settings.live.max_sockets_per_token));
                    prop_assert!(
                        (1..=10_000).contains(&settings.auth.sign_in_limit.failures_per_user)
                    );
                    prop_assert!(settings.quota.apps_per_user >= -1);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
