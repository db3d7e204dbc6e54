//! `bosun serve`.

use crate::config::Settings;
use crate::startup::Application;
use std::io::Write;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let shutdown = ShutdownSignal::watch();
    let app = Application::build(settings).await?;
    let address = app.address();
    let scheme = if app.https() { "https" } else { "http" };
    tracing::info!(%address, scheme, "listening");
    // On stdout, for people and for tests that started us on port 0.
    println!("bosun listening on {scheme}://{address}");
    let _ = std::io::stdout().flush();
    app.run_until_stopped(shutdown.received()).await
}

/// SIGINT or SIGTERM, watched from the moment it is made: a signal that arrives while the
/// server is still starting (its managed PostgreSQL, its projections) is kept and ends the
/// server as soon as it is up, instead of killing it with the default action halfway.
pub(crate) struct ShutdownSignal {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    pub(crate) fn watch() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, signal = name, "cannot watch this signal");
                None
            }
        };
        Self {
            interrupt: watch(SignalKind::interrupt(), "SIGINT"),
            terminate: watch(SignalKind::terminate(), "SIGTERM"),
        }
    }

    pub(crate) async fn received(mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.interrupt) => tracing::info!("SIGINT received"),
            _ = next(&mut self.terminate) => tracing::info!("SIGTERM received"),
        }
    }
}
