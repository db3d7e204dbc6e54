//! Reading orchestrations: every holder of the read scope but an anonymous user reads every
//! orchestration (deleted ones too, marked so) and lists those not deleted; its jobs are read by
//! the job rule.

use super::{JobFilter, Page, Queries};
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::DomainError;
use bosun_projections::read_models::jobs::JobView;
use bosun_projections::read_models::orchestrations::{self as model, OrchestrationView};

impl Queries {
    pub async fn orchestrations(
        &self,
        actor: &Actor,
        page: Page,
    ) -> Result<(Vec<OrchestrationView>, i64), CommandError> {
        actor.require_reader()?;
        Ok(model::list(&**self.client().await?, page.limit, page.offset).await?)
    }

    pub async fn orchestration(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<OrchestrationView, CommandError> {
        actor.require_reader()?;
        model::get(&**self.client().await?, id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no orchestration {id}")).into())
    }

    /// The orchestration's jobs, newest first (404 for an unknown orchestration).
    pub async fn orchestration_jobs(
        &self,
        actor: &Actor,
        id: &str,
        page: Page,
    ) -> Result<(Vec<JobView>, i64), CommandError> {
        self.orchestration(actor, id).await?;
        let filter = JobFilter {
            orchestration_id: Some(id.to_string()),
            ..JobFilter::default()
        };
        self.jobs(actor, filter, page).await
    }
}
