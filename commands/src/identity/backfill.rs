//! Users registered before reservations and the admin roster existed: one pass over the log,
//! once per database, before any identity command relies on either.
//!
//! If the roster has not begun, every user stream is read back from the log and each user
//! registered now gets a claim of its name and of its email (only where nothing was ever
//! claimed: a registration since has its own), without a slot, so it holds them for as long as
//! it is registered; then the roster begins with the admins. The roster's start marks the pass
//! done; until it is there, every process that needs reservations makes the pass itself (two at
//! once claim nothing twice), so no registration trusts a missing reservation too early.
//!
//! Safe while other commands run: a demotion or removal of an admin needs the roster to have
//! begun, so one that follows the pass's read of the log makes the pass's start fail and be
//! read again; a new admin the read missed joins after it (or is not counted on, which is
//! safe); a user removed after the read leaves a claim its stream no longer holds (free).

use super::admins::ROSTER;
use super::reservations::{name_key, reservation_id, BOOKKEEPER};
use crate::actor::Origin;
use crate::error::CommandError;
use crate::execute::Commands;
use bosun_domain::identity::{
    AdminRoster, AdminRosterCommand, Reservation, ReservationCommand, ReservationKind, User,
    UserEvent,
};
use bosun_domain::{decode, Aggregate};
use bosun_eventstore::{EventStore, Filter};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use uuid::Uuid;

const PAGE: usize = 1000;

impl<S: EventStore> Commands<S> {
    /// Makes sure the log holds the reservations and the roster of every user registered before
    /// they existed. Cheap once done: then remembered by this process.
    pub(crate) async fn identity_backfill(&self, origin: &Origin) -> Result<(), CommandError> {
        if self.identity_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let (roster, _) = self.load::<AdminRoster>(ROSTER).await?;
        if !roster.started {
            let users = self.users_in_log().await?;
            let registered = users.values().filter(|u| u.active);
            for user in registered.clone() {
                let Some(username) = &user.username else {
                    continue;
                };
                let mut keys = vec![(ReservationKind::Username, name_key(username))];
                if let Some(email) = &user.email {
                    keys.push((ReservationKind::Email, email.as_str().to_string()));
                }
                for (kind, value) in keys {
                    self.execute_unsettled::<Reservation>(
                        &reservation_id(kind, &value),
                        &BOOKKEEPER,
                        origin,
                        |r| {
                            r.handle(ReservationCommand::Backfill {
                                kind,
                                value: value.clone(),
                                holder: username.clone(),
                                claim: Uuid::new_v4(),
                            })
                        },
                    )
                    .await?;
                }
            }
            let admins: Vec<_> = registered
                .filter(|u| u.is_admin())
                .filter_map(|u| u.username.clone())
                .collect();
            tracing::info!(
                users = users.len(),
                admins = admins.len(),
                "reserved the names and emails of the users registered before reservations"
            );
            self.execute_unsettled::<AdminRoster>(ROSTER, &BOOKKEEPER, origin, |r| {
                r.handle(AdminRosterCommand::Start {
                    admins: admins.clone(),
                })
            })
            .await?;
        }
        self.identity_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Every user stream in the log, folded.
    async fn users_in_log(&self) -> Result<BTreeMap<String, User>, CommandError> {
        let filter = Filter::category(User::CATEGORY);
        let mut users: BTreeMap<String, User> = BTreeMap::new();
        let mut from = 1;
        loop {
            let events = self.store.read_all(from, PAGE, &filter).await?;
            for recorded in &events {
                let event: UserEvent =
                    decode(&recorded.event_type, &recorded.data).map_err(|e| {
                        CommandError::Internal(format!(
                            "{} holds an event this version cannot read at version {}: {e}",
                            recorded.stream_id, recorded.version
                        ))
                    })?;
                users
                    .entry(recorded.stream_id.to_string())
                    .or_default()
                    .apply(&event);
                from = recorded.position + 1;
            }
            if events.len() < PAGE {
                return Ok(users);
            }
        }
    }
}
