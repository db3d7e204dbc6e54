//! First start: if no admin exists, create one and hand its credentials over once: on stdout,
//! and the token in `<data_dir>/admin-token` (mode 0600). Every start, once the read models
//! hold the log: the secret URLs orchestrations stored before sealing existed still hold in
//! clear are sealed ([`seal_clear_urls`]).

use bosun_commands::Commands;
use bosun_projections::Freshness;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const TOKEN_FILE: &str = "admin-token";
/// How long a start waits for the read models before it serves and bootstraps later.
const WAIT: Duration = Duration::from_secs(5);

/// Whether an admin exists is read from the read models, so it is decided once they hold the
/// log up to `head`. On a new (or small) log that is at once, and the credentials are printed
/// before the server listens; on a long log still being projected, the server serves meanwhile
/// and the check runs when the projections have caught up.
pub async fn when_caught_up(
    commands: Commands,
    freshness: Freshness,
    head: u64,
    data_dir: PathBuf,
) -> anyhow::Result<()> {
    if freshness.wait_for(head, WAIT).await.is_ok() {
        first_admin(&commands, &data_dir).await?;
        seal_clear_urls(&commands).await;
        return Ok(());
    }
    tracing::info!(
        head,
        "read models are catching up; the first-admin check runs once they have"
    );
    tokio::spawn(async move {
        // Projections catch up at thousands of events a second: a day is "never" here.
        if let Err(e) = freshness.wait_for(head, Duration::from_secs(86_400)).await {
            tracing::error!(error = %e, "read models did not catch up; no first-admin check");
            return;
        }
        if let Err(e) = first_admin(&commands, &data_dir).await {
            tracing::error!(error = %e, "creating the first admin failed");
        }
        seal_clear_urls(&commands).await;
    });
    Ok(())
}

/// Seals the secret URLs (webhooks, `component_url`s with credentials or a query) that
/// orchestrations stored before sealing existed still hold in clear, by appending their sealed
/// replacement (`Commands::seal_clear_orchestration_urls`): idempotent, and safe with several
/// nodes starting at once (each appends against the stream's exact version). A failure is
/// logged, not fatal: the next start tries again.
pub async fn seal_clear_urls(commands: &Commands) {
    match commands.seal_clear_orchestration_urls().await {
        Ok(0) => {}
        Ok(sealed) => {
            tracing::info!(
                orchestrations = sealed,
                "sealed the secret URLs orchestrations held in clear from before sealing"
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "sealing the URLs orchestrations hold in clear failed; the next start tries again")
        }
    }
}

pub async fn first_admin(commands: &Commands, data_dir: &Path) -> anyhow::Result<()> {
    let Some(admin) = commands
        .bootstrap_admin()
        .await
        .map_err(|e| anyhow::anyhow!("creating the first admin failed: {e}"))?
    else {
        return Ok(());
    };
    let path = write_token(data_dir, &admin.token)?;
    tracing::info!(user = %admin.username, token_file = %path.display(), "created the first admin");
    // Shown once, on stdout only: the log never holds them.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "bosun: created the first admin (shown once)\n  user:     {}\n  password: {}\n  token:    {}\n  (the token is also in {})",
        admin.username,
        admin.password,
        admin.token,
        path.display()
    )?;
    out.flush()?;
    Ok(())
}

fn write_token(data_dir: &Path, token: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create {} (data_dir): {e}", data_dir.display()))?;
    let path = data_dir.join(TOKEN_FILE);
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    writeln!(file, "{token}")?;
    Ok(path)
}
