//! The last admin stays: a demotion or a removal of an admin first claims its step-down on the
//! admin roster (stream `identity-admins`), with the roster's exact version and counting on an
//! admin who cannot be stepping down at the same time, then appends the user's event at the
//! exact version the claim names (see `bosun_domain::identity::AdminRoster`). A new admin joins
//! the roster after their stream says admin; until then (or if the join is lost) they are not
//! counted on, which can refuse a step-down that would have been safe, never allow one that is
//! not.

use super::reservations::BOOKKEEPER;
use crate::actor::Origin;
use crate::error::CommandError;
use crate::execute::{Appended, Commands, Held, Written};
use bosun_domain::identity::{
    AdminRoster, AdminRosterCommand, AdminRosterEvent, UserStream, Username,
};
use bosun_domain::Aggregate;
use bosun_eventstore::EventStore;
use uuid::Uuid;

/// The roster's id: stream `identity-admins`.
pub(crate) const ROSTER: &str = "admins";

/// A step-down checked and not yet appended.
pub(crate) struct SteppingDown {
    held: Held<AdminRoster>,
    events: Vec<AdminRosterEvent>,
    /// The admins that can be counted on, the one stepping down included.
    pub admin_count: usize,
}

impl<S: EventStore> Commands<S> {
    /// Checks that admin `username` may step down with its event at version `slot` of its
    /// stream: a 409 (`last_admin`) unless another admin can be counted on. Writes nothing.
    pub(crate) async fn check_step_down(
        &self,
        username: &Username,
        slot: u64,
    ) -> Result<SteppingDown, CommandError> {
        let held = self.hold::<AdminRoster>(ROSTER).await?;
        let mut others = Vec::new();
        for candidate in held.state.candidates.keys().filter(|c| *c != username) {
            others.push((
                candidate.clone(),
                self.user_stream(candidate.as_str()).await?,
            ));
        }
        let counted = held.state.others_counted(username, &others);
        let events = held.state.handle(AdminRosterCommand::StepDown {
            username: username.clone(),
            slot,
            others,
        })?;
        Ok(SteppingDown {
            held,
            events,
            admin_count: counted + 1,
        })
    }

    /// Appends a checked step-down. `None` if the roster moved since its check: nothing
    /// written, check it again.
    pub(crate) async fn append_step_down(
        &self,
        step: &mut SteppingDown,
        origin: &Origin,
    ) -> Result<Option<Written>, CommandError> {
        let events = std::mem::take(&mut step.events);
        let appended = self
            .append_held(&mut step.held, &BOOKKEEPER, origin, Uuid::new_v4(), events)
            .await?;
        Ok(match appended {
            Appended::Written(written) => Some(written),
            Appended::Conflict => None,
        })
    }

    /// `username`, whose stream says admin now, joins the roster (if not on it yet). A failure
    /// is only logged: an admin missing from the roster is not counted on, which is safe.
    pub(crate) async fn join_roster(&self, username: &Username, origin: &Origin) -> Written {
        let joined = async {
            let stream: UserStream = self.user_stream(username.as_str()).await?;
            if !stream.user.is_admin() {
                return Ok(Written::default());
            }
            let (_, written) = self
                .execute_unsettled::<AdminRoster>(ROSTER, &BOOKKEEPER, origin, |roster| {
                    roster.handle(AdminRosterCommand::Join {
                        username: username.clone(),
                    })
                })
                .await?;
            Ok::<_, CommandError>(written)
        };
        match joined.await {
            Ok(written) => written,
            Err(e) => {
                tracing::warn!(username = username.as_str(), error = %e, "joining the admin roster failed; not counted on until they join");
                Written::default()
            }
        }
    }
}
