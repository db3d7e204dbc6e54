//! Reading units: the units of an app, for the app's answer. No rule here: the caller (the
//! app's query) has decided that its actor may read the app.

use super::Queries;
use crate::error::CommandError;
use bosun_projections::read_models::units as model;
pub use bosun_projections::read_models::units::UnitView;

impl Queries {
    /// The units of `app`, by environment, process and index, stopped ones too. Authorizes
    /// nothing: only for a caller that has already authorized reading `app`.
    pub async fn units_of_app(&self, app: &str) -> Result<Vec<UnitView>, CommandError> {
        Ok(model::of_app(&**self.client().await?, app).await?)
    }
}
