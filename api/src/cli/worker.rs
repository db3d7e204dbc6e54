//! `bosun worker [-c FILE]`: runs jobs without the HTTP server, against the same database, so
//! work spreads over several processes or machines. It projects too (one process leads each
//! projection; the others stand by), since workers claim jobs from the jobs read model.

use crate::config::Settings;
use crate::core::Core;
use crate::database::Database;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    if settings.runner.workers == 0 {
        return Err(
            super::UsageError("runner.workers is 0: this worker would run no jobs".into()).into(),
        );
    }
    let shutdown = super::serve::ShutdownSignal::watch();
    let database = Database::open(&settings).await?;
    let result = async {
        let core = Core::open(&database.config).await?;
        let setup = crate::data_key::runner_setup(&settings)?;
        let commands = core
            .commands
            .clone()
            .with_sealer(bosun_commands::Sealer::new(&setup.data_key));
        let workers = bosun_runner::start(commands, setup, &database.config).await?;
        tracing::info!(workers = settings.runner.workers, "worker running");
        println!("bosun worker running {} workers", settings.runner.workers);
        shutdown.received().await;
        workers.stop().await;
        drop(core);
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}
