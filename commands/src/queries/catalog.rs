//! The catalog as its readers see it: what jobs may run, by app and environment.

use super::Queries;
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::jobs::{Catalog, CatalogEntry};

impl Queries {
    /// Each app and environment of `catalog` with its tasks (not its processes): any reader's.
    pub fn catalog(
        &self,
        actor: &Actor,
        catalog: &Catalog,
    ) -> Result<Vec<CatalogEntry>, CommandError> {
        actor.require_reader()?;
        Ok(catalog.entries())
    }
}
