//! Checkpoints: how far each projection has applied the log. Moved only in the transaction that
//! applied the events, so a model and its checkpoint never disagree.

use bosun_eventstore::migrate::{migrate as run_migrations, Migration, MigrationError};
use tokio_postgres::GenericClient;

/// Announced on every checkpoint move, with payload `<name>:<position>`.
pub const CHANNEL: &str = "bosun_checkpoints";

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "projection checkpoints",
    sql: "CREATE TABLE projection_checkpoints (
              name       TEXT PRIMARY KEY,
              position   BIGINT NOT NULL,
              version    INT NOT NULL,
              updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
}];

pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, MigrationError> {
    run_migrations(client, "projections", MIGRATIONS).await
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub name: String,
    pub position: u64,
    pub version: i32,
}

pub async fn checkpoints(
    client: &impl GenericClient,
) -> Result<Vec<Checkpoint>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT name, position, version FROM projection_checkpoints ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Checkpoint {
            name: r.get(0),
            position: r.get::<_, i64>(1) as u64,
            version: r.get(2),
        })
        .collect())
}

const LOCK: &str = "SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE";
const SAVE: &str =
    "INSERT INTO projection_checkpoints (name, position, version) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET position = $2, version = $3, updated_at = now()";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// [`lock`] and [`save`] prepared once on a projector's own connection: its every cycle then
/// sends them with its writes in one round trip instead of preparing each anew.
pub(crate) struct Prepared {
    lock: tokio_postgres::Statement,
    save: tokio_postgres::Statement,
    notify: tokio_postgres::Statement,
}

impl Prepared {
    pub(crate) async fn on(client: &tokio_postgres::Client) -> Result<Self, tokio_postgres::Error> {
        let (lock, save, notify) = futures::try_join!(
            client.prepare(LOCK),
            client.prepare(SAVE),
            client.prepare(NOTIFY)
        )?;
        Ok(Prepared { lock, save, notify })
    }

    /// [`lock`].
    pub(crate) async fn lock(
        &self,
        client: &impl GenericClient,
        name: &str,
    ) -> Result<Option<u64>, tokio_postgres::Error> {
        let row = client.query_opt(&self.lock, &[&name]).await?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    /// [`save`], its two statements sent at once.
    pub(crate) async fn save(
        &self,
        client: &impl GenericClient,
        name: &str,
        position: u64,
        version: i32,
    ) -> Result<(), tokio_postgres::Error> {
        let (position_sql, payload) = (position as i64, format!("{name}:{position}"));
        let save: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&name, &position_sql, &version];
        let notify: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&CHANNEL, &payload];
        futures::try_join!(
            client.execute(&self.save, &save),
            client.execute(&self.notify, &notify),
        )?;
        Ok(())
    }
}

/// Locks `name`'s checkpoint row until the transaction ends, and returns its position.
pub(crate) async fn lock(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<u64>, tokio_postgres::Error> {
    let row = client.query_opt(LOCK, &[&name]).await?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64))
}

pub(crate) async fn save(
    client: &impl GenericClient,
    name: &str,
    position: u64,
    version: i32,
) -> Result<(), tokio_postgres::Error> {
    let position = position as i64;
    client.execute(SAVE, &[&name, &position, &version]).await?;
    client
        .execute(NOTIFY, &[&CHANNEL, &format!("{name}:{position}")])
        .await?;
    Ok(())
}
