//! `bosun bench …`: each prints one JSON object per line with `name`, `value`, `unit`,
//! `baseline` and `ratio` (value / baseline), the baseline measured in the same run on the same
//! PostgreSQL. Progress goes to stderr.
//!
//! Benchmarks run in a scratch database of their own, dropped afterwards: on the server that
//! `-c FILE` configures, or with no file on a fresh managed PostgreSQL in a temporary directory.

mod append;
mod catchup;
mod compat;
mod http;
mod jobs;
mod jobs_model;
mod list;
mod live;
mod load;
mod output;
mod replay;
mod scheduler;
mod server;

use super::ConfigArg;
use crate::config::Settings;
use crate::database::Database;
use serde_json::{json, Value};
use tokio_postgres::NoTls;

#[derive(clap::Subcommand)]
pub enum Which {
    /// Single-event appends from concurrent clients, against single-row INSERTs.
    Append {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 20_000)]
        events: u64,
    },
    /// Rebuilding a jobs-like read model from the log, against reading the log alone.
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 100_000)]
        events: u64,
    },
    /// `GET /v1/jobs` and `GET /v1/audit` pages (the first, one from the middle by its cursor,
    /// one status's) as the tables grow to each size, against the same at the smallest.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Rows in each table, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1000, 100_000, 1_000_000])]
        rows: Vec<u64>,
    },
    /// Loading an aggregate whose stream holds each number of events, first and with its state
    /// kept, against the same for a stream of 10 events.
    Load {
        #[command(flatten)]
        config: ConfigArg,
        /// Stream lengths, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [10, 1000, 100_000])]
        events: Vec<u64>,
    },
    /// Jobs of the task `true` through the server and its workers, against spawning `true`
    /// directly.
    Jobs {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 2000)]
        jobs: usize,
        #[arg(long, default_value_t = 8)]
        workers: usize,
    },
    /// Jobs of the task `true` submitted through `/compat/pulsar`, against the same through
    /// `/v1`, in alternating rounds on the same server.
    Compat {
        #[command(flatten)]
        config: ConfigArg,
        /// Jobs per path in each round.
        #[arg(long, default_value_t = 500)]
        jobs: usize,
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// HTTP clients submitting at once.
        #[arg(long, default_value_t = compat::CLIENTS)]
        clients: usize,
        /// Rounds, each through both paths (AB, then BA).
        #[arg(long, default_value_t = 4)]
        rounds: usize,
    },
    /// Orchestrations on the cron `* * * * *`: from each slot to its job's `JobSubmitted`,
    /// against N jobs submitted at once; and runs lost or doubled.
    Scheduler {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 1000)]
        orchestrations: usize,
        /// Cron slots (minutes) to measure.
        #[arg(long, default_value_t = 2)]
        minutes: u32,
        /// Workers running the scheduled jobs meanwhile.
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
    /// A job printing `bytes` of output, submission to finish, against running its command
    /// directly.
    Output {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 30_000_000)]
        bytes: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Delivery latency of the live WebSocket feed to many subscribers, against the log's own
    /// subscription.
    Live {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 500)]
        subscribers: usize,
        /// Events appended per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Who subscribes: the admin (every event, unfiltered), or members, each a user of
        /// its own following the jobs of its team's app (each event filtered).
        #[arg(long, value_enum, default_value_t = live::Readers::Admin)]
        readers: live::Readers,
    },
    /// A mixed read/write load at a sustained rate (open loop, at most `clients` in flight,
    /// loopback only), against the same rate of `GET /healthz`: throughput, p50/p99, errors.
    Http {
        #[command(flatten)]
        config: ConfigArg,
        /// Requests due per second.
        #[arg(long, default_value_t = 500)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The most requests in flight; one due while that many are is shed.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Percent of the mix that writes (`POST /v1/teams`).
        #[arg(long, default_value_t = 20)]
        writes: u64,
    },
    /// Live subscribers catching up from position 1 of a long log all at once, against the
    /// API's writers' latency without them.
    Catchup {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 500)]
        subscribers: usize,
        /// Events in the log before the subscribers open the feed.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// HTTP clients writing (`POST /v1/tokens`) meanwhile.
        #[arg(long, default_value_t = 10)]
        writers: usize,
        /// How long the writers run alone, and at least as long with the subscribers.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

impl Which {
    pub fn config(&self) -> &ConfigArg {
        match self {
            Which::Append { config, .. }
            | Which::Replay { config, .. }
            | Which::Load { config, .. }
            | Which::List { config, .. }
            | Which::Live { config, .. }
            | Which::Catchup { config, .. }
            | Which::Http { config, .. }
            | Which::Output { config, .. }
            | Which::Jobs { config, .. }
            | Which::Compat { config, .. }
            | Which::Scheduler { config, .. } => config,
        }
    }
}

pub async fn run(which: Which, configured: bool, settings: Settings) -> anyhow::Result<()> {
    // The live and jobs benchmarks run a server, configured like this process (its database aside).
    let server_settings = settings.clone();
    let scratch = Scratch::open(configured, settings).await?;
    let result = match which {
        Which::Append {
            clients, events, ..
        } => append::run(&scratch.config, clients.max(1), events.max(1)).await,
        Which::Replay { events, .. } => replay::run(&scratch.config, events.max(1)).await,
        Which::Load { events, .. } => load::run(&scratch.config, &events).await,
        Which::List { rows, .. } => list::run(&scratch.config, server_settings, &rows).await,
        Which::Jobs { jobs, workers, .. } => {
            let options = jobs::Options {
                jobs: jobs.max(1),
                workers: workers.max(1),
            };
            jobs::run(&scratch.config, server_settings, options).await
        }
        Which::Compat {
            jobs,
            workers,
            clients,
            rounds,
            ..
        } => {
            let options = compat::Options {
                jobs: jobs.max(1),
                workers: workers.max(1),
                clients: clients.max(1),
                rounds: rounds.max(1),
            };
            compat::run(&scratch.config, server_settings, options).await
        }
        Which::Scheduler {
            orchestrations,
            minutes,
            workers,
            ..
        } => {
            let options = scheduler::Options {
                orchestrations: orchestrations.max(1),
                minutes: minutes.max(1),
                workers,
            };
            scheduler::run(&scratch.config, server_settings, options).await
        }
        Which::Output { bytes, runs, .. } => {
            let options = output::Options {
                bytes: bytes.max(1),
                runs: runs.max(1),
            };
            output::run(&scratch.config, server_settings, options).await
        }
        Which::Live {
            subscribers,
            rate,
            seconds,
            readers,
            ..
        } => {
            let options = live::Options {
                subscribers: subscribers.max(1),
                rate: rate.max(1),
                seconds: seconds.max(1),
                readers,
            };
            live::run(&scratch.config, server_settings, options).await
        }
        Which::Http {
            rate,
            seconds,
            clients,
            writes,
            ..
        } => {
            let options = http::Options {
                rate: rate.max(1),
                seconds: seconds.max(1),
                clients: clients.max(1),
                writes,
            };
            http::run(&scratch.config, server_settings, options).await
        }
        Which::Catchup {
            subscribers,
            events,
            writers,
            seconds,
            ..
        } => {
            let options = catchup::Options {
                subscribers: subscribers.max(1),
                events: events.max(1),
                writers: writers.max(1),
                seconds: seconds.max(1),
            };
            catchup::run(&scratch.config, server_settings, options).await
        }
    };
    scratch.close().await;
    result
}

/// The `p` quantile (0 to 1) of `sorted`, by nearest rank; 0 for no samples.
pub fn percentile<T: Copy + Into<f64>>(sorted: &[T], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].into()
}

/// One result line.
pub fn report(name: &str, value: f64, unit: &str, baseline: f64, extra: Value) {
    let mut line = json!({
        "name": name,
        "value": round(value),
        "unit": unit,
        "baseline": round(baseline),
        "ratio": if baseline > 0.0 { round(value / baseline) } else { 0.0 },
    });
    if let (Some(line), Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    println!("{line}");
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn progress(message: impl std::fmt::Display) {
    eprintln!("bench: {message}");
}

/// A database made for one benchmark run, and the server it lives on.
struct Scratch {
    server: Database,
    server_config: tokio_postgres::Config,
    name: String,
    config: tokio_postgres::Config,
    _temp: Option<tempfile::TempDir>,
}

impl Scratch {
    async fn open(configured: bool, mut settings: Settings) -> anyhow::Result<Self> {
        let temp = if configured {
            None
        } else {
            let dir = tempfile::Builder::new().prefix("bosun-bench-").tempdir()?;
            // The unprivileged user PostgreSQL runs as must reach the cluster inside.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
            settings.data_dir = dir.path().to_path_buf();
            settings.database.url = None;
            Some(dir)
        };
        progress("starting PostgreSQL");
        let server = Database::open(&settings).await?;
        let server_config = server.config.clone();
        let name = format!("bosun_bench_{}", uuid::Uuid::new_v4().simple());
        let (client, connection) = server_config.connect(NoTls).await?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        drop(client);
        let _ = driver.await;
        let mut config = server_config.clone();
        config.dbname(&name);
        Ok(Scratch {
            server,
            server_config,
            name,
            config,
            _temp: temp,
        })
    }

    async fn close(self) {
        match self.server_config.connect(NoTls).await {
            Ok((client, connection)) => {
                let driver = tokio::spawn(connection);
                if let Err(e) = client
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                    .await
                {
                    eprintln!(
                        "bench: could not drop the scratch database {}: {e}",
                        self.name
                    );
                }
                drop(client);
                let _ = driver.await;
            }
            Err(e) => eprintln!(
                "bench: could not drop the scratch database {}: {e}",
                self.name
            ),
        }
        self.server.close().await;
    }
}
