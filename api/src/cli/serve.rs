//! `bosun serve`.

use crate::config::Settings;
use crate::startup::Application;
use std::io::Write;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let address = app.address();
    tracing::info!(%address, "listening");
    // On stdout, for people and for tests that started us on port 0.
    println!("bosun listening on http://{address}");
    let _ = std::io::stdout().flush();
    app.run_until_stopped(shutdown_signal()).await
}

/// SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}
