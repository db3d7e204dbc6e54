//! Where the reactor is in the log: the position after the last failed job it has finished
//! notifying about.

use bosun_commands::CommandError;
use bosun_eventstore::migrate::{migrate, Migration, MigrationError};
use deadpool_postgres::Pool;

const NAME: &str = "notifications";

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "reactor checkpoints",
    sql: "CREATE TABLE reactor_checkpoints (
              name       TEXT PRIMARY KEY,
              position   BIGINT NOT NULL,
              updated_at TIMESTAMPTZ NOT NULL DEFAULT now());",
}];

pub async fn prepare(client: &mut tokio_postgres::Client) -> Result<(), MigrationError> {
    migrate(client, "reactors", MIGRATIONS).await.map(|_| ())
}

/// The first position not yet handled; `None` before the reactor's first run.
pub async fn load(pool: &Pool) -> Result<Option<u64>, CommandError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT position FROM reactor_checkpoints WHERE name = $1",
            &[&NAME],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64))
}

pub async fn save(pool: &Pool, position: u64) -> Result<(), CommandError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO reactor_checkpoints (name, position) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET position = $2, updated_at = now()",
            &[&NAME, &(position as i64)],
        )
        .await?;
    Ok(())
}
