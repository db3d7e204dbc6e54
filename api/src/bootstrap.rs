//! First start: if no admin exists, create one and hand its credentials over once: on stdout,
//! and the token in `<data_dir>/admin-token` (mode 0600).

use bosun_commands::Commands;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const TOKEN_FILE: &str = "admin-token";

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
