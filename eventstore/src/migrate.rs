//! Versioned schema migrations, per component (`eventstore`, `projections`, …).
//!
//! All pending migrations of a component run in one transaction under an advisory lock, so
//! processes starting together apply each exactly once. A database whose schema is newer than
//! the running code knows is refused: old code must not write into a shape it does not know.

use tokio_postgres::GenericClient;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the database's {component} schema is at version {found}, newer than this bosun knows \
         (version {known}); run a newer bosun against this database"
    )]
    SchemaTooNew {
        component: String,
        found: i32,
        known: i32,
    },
    #[error("migration {component} {version} ({name}) failed: {source}")]
    Failed {
        component: String,
        version: i32,
        name: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("database error while migrating: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// Brings `component` up to the last of `migrations` (which are sorted by version).
/// Returns the versions applied.
pub async fn migrate(
    client: &mut tokio_postgres::Client,
    component: &str,
    migrations: &[Migration],
) -> Result<Vec<i32>, MigrationError> {
    let known = migrations.last().map_or(0, |m| m.version);
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('bosun.schema_migrations'))",
        &[],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            component  TEXT NOT NULL,
            version    INT NOT NULL,
            name       TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (component, version))",
    )
    .await?;
    let found = current_version(&tx, component).await?;
    if found > known {
        return Err(MigrationError::SchemaTooNew {
            component: component.to_string(),
            found,
            known,
        });
    }
    let mut applied = Vec::new();
    for m in migrations.iter().filter(|m| m.version > found) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|source| MigrationError::Failed {
                component: component.to_string(),
                version: m.version,
                name: m.name,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
            &[&component, &m.version, &m.name],
        )
        .await?;
        applied.push(m.version);
    }
    tx.commit().await?;
    Ok(applied)
}

pub async fn current_version(
    client: &impl GenericClient,
    component: &str,
) -> Result<i32, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations WHERE component = $1",
            &[&component],
        )
        .await?;
    Ok(row.get(0))
}
