//! The `bosun` command line. With no subcommand it serves, so `cargo run` starts the server
//! (and `bosun -c FILE` is `bosun serve -c FILE`).

mod admin;
mod bench;
mod replay;
mod serve;
mod worker;

use crate::config::Settings;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bosun",
    version,
    about = "Bosun: an event-sourced control plane for jobs and apps",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// With no subcommand: the server's configuration, as `bosun serve -c FILE`.
    #[command(flatten)]
    serve: ConfigArg,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args, Clone, Default)]
struct ConfigArg {
    /// YAML configuration file; BOSUN_* environment variables override it.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve(ConfigArg),
    /// Rebuild read models from the start of the log and swap them in while the server runs.
    Replay {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this projection (default: all).
        #[arg(long)]
        projection: Option<String>,
    },
    /// Run jobs without the HTTP server, against the same database.
    Worker(ConfigArg),
    /// Manage users and tokens from the command line.
    Admin {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Measure throughput or latency against a baseline taken in the same run.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

/// Exit status for a configuration or usage error: nothing was started.
const USAGE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    let config_file = match &command {
        Command::Serve(c)
        | Command::Worker(c)
        | Command::Replay { config: c, .. }
        | Command::Admin { config: c, .. } => c.config.clone(),
        Command::Bench { which } => which.config().config.clone(),
    };
    let settings = match Settings::load(config_file.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("bosun: {e}");
            return ExitCode::from(USAGE);
        }
    };
    crate::telemetry::init(settings.log.format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bosun: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(_) => serve::run(settings).await,
            Command::Worker(_) => worker::run(settings).await,
            Command::Replay { projection, .. } => replay::run(settings, projection).await,
            Command::Admin { command, .. } => admin::run(settings, command).await,
            Command::Bench { which } => bench::run(which, config_file.is_some(), settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let usage = e.downcast_ref::<UsageError>().is_some();
            eprintln!("bosun: {e:#}");
            ExitCode::from(if usage { USAGE } else { 1 })
        }
    }
}

/// A mistake in how bosun was called, found after parsing (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn config_of(args: &[&str]) -> Option<PathBuf> {
        match Cli::try_parse_from(args).expect("parses") {
            Cli {
                command: None,
                serve,
            } => serve.config,
            Cli {
                command: Some(Command::Serve(serve)),
                ..
            } => serve.config,
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn plain_bosun_with_a_config_file_serves_with_it() {
        assert_eq!(config_of(&["bosun"]), None);
        assert_eq!(config_of(&["bosun", "-c", "a.yaml"]), Some("a.yaml".into()));
        assert_eq!(
            config_of(&["bosun", "--config", "a.yaml"]),
            Some("a.yaml".into())
        );
        assert_eq!(
            config_of(&["bosun", "serve", "-c", "b.yaml"]),
            Some("b.yaml".into())
        );
        // Not both: a subcommand takes its own.
        assert!(Cli::try_parse_from(["bosun", "-c", "a.yaml", "worker"]).is_err());
    }
}
