//! The log, its projectors and the command handler over one database: what every process that
//! writes starts with (the server, `bosun worker`, `bosun admin`, the benchmarks' servers).

use bosun_commands::{Commands, Queries};
use bosun_eventstore::PgEventStore;
use bosun_projections::{Projections, Running};

pub struct Core {
    pub store: PgEventStore,
    /// Projectors at work; dropping it stops them.
    pub projections: Running,
    pub commands: Commands,
    pub queries: Queries,
}

impl Core {
    /// Opens the store (migrating it), prepares every read model and starts projecting. This
    /// process projects too: if no other runs, nobody else would, and commands read the models.
    pub async fn open(config: &tokio_postgres::Config) -> anyhow::Result<Core> {
        let store = PgEventStore::open(config).await?;
        Core::on(store, config).await
    }

    /// The same over a store already open.
    pub async fn on(store: PgEventStore, config: &tokio_postgres::Config) -> anyhow::Result<Core> {
        let projections = Projections::new(bosun_projections::all());
        projections.prepare(config).await?;
        let projections = projections.start(store.clone(), config).await?;
        let commands = Commands::new(store.clone(), projections.freshness());
        let queries = Queries::new(store.clone());
        Ok(Core {
            store,
            projections,
            commands,
            queries,
        })
    }
}
