//! Names and emails claimed in the log: stream `reservation-username-<name, lowercased>` and
//! `reservation-email-<SHA-256 of the address, in hex>` (an address may hold characters a
//! stream id may not, and be longer than one may be).
//!
//! A registration (or a new email) is checked against every reservation it needs before
//! anything is written, so a refusal writes nothing; then its claims are appended, each with
//! its reservation's exact version (of two racing claims, one wins and the other is checked
//! again), and then the user's own event, with the exact version the claims name as their slot
//! (see `bosun_domain::identity::Reservation`). A crash between the appends leaves a claim
//! whose slot is never reached: it holds the name off from other users until the user's stream
//! moves (a registration of the same name in the same case claims it again and goes through).

use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Appended, Commands, Held, Written};
use bosun_domain::identity::{
    Reservation, ReservationCommand, ReservationEvent, ReservationKind, User, UserStream, Username,
};
use bosun_domain::Aggregate;
use bosun_eventstore::EventStore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Who the bookkeeping of a command is recorded as: the command's own events carry its actor;
/// the claims and releases it needs are the server's, under the same request.
pub(crate) const BOOKKEEPER: Actor = Actor::System("system");

/// The id (after `reservation-`) of the reservation of `value`: a lowercased username, or an
/// email address as [`Email`](bosun_domain::identity::Email) keeps it.
pub(crate) fn reservation_id(kind: ReservationKind, value: &str) -> String {
    match kind {
        ReservationKind::Username => format!("username-{}", value.to_ascii_lowercase()),
        ReservationKind::Email => format!("email-{}", hex::encode(Sha256::digest(value))),
    }
}

/// What a reservation holds for `username`: the name, lowercased.
pub(crate) fn name_key(username: &Username) -> String {
    username.as_str().to_ascii_lowercase()
}

/// A claim checked and not yet appended, or appended by this command.
pub(crate) struct Claiming {
    held: Held<Reservation>,
    events: Vec<ReservationEvent>,
    claim: Uuid,
    appended: bool,
}

impl<S: EventStore> Commands<S> {
    /// The user stream of `username` as it is now.
    pub(crate) async fn user_stream(&self, username: &str) -> Result<UserStream, CommandError> {
        let held = self.hold::<User>(username).await?;
        Ok(UserStream {
            version: held.version(),
            user: held.state,
        })
    }

    /// Checks that `holder` may claim `value` for its event at version `slot` of its stream: a
    /// 409 (`user_exists`, `email_taken`) if another user holds it or may be about to. Writes
    /// nothing.
    pub(crate) async fn check_claim(
        &self,
        kind: ReservationKind,
        value: &str,
        holder: &Username,
        slot: u64,
    ) -> Result<Claiming, CommandError> {
        let held = self
            .hold::<Reservation>(&reservation_id(kind, value))
            .await?;
        let current = match &held.state.claim {
            Some(claim) => self.user_stream(claim.holder.as_str()).await?,
            None => UserStream::default(),
        };
        let claim = Uuid::new_v4();
        let events = held.state.handle(ReservationCommand::Claim {
            kind,
            value: value.to_string(),
            holder: holder.clone(),
            claim,
            slot,
            current,
        })?;
        Ok(Claiming {
            held,
            events,
            claim,
            appended: false,
        })
    }

    /// Appends a checked claim (nothing if the reservation was the holder's already). `None`
    /// if the reservation moved since its check: nothing written, check it again.
    pub(crate) async fn append_claim(
        &self,
        claiming: &mut Claiming,
        origin: &Origin,
    ) -> Result<Option<Written>, CommandError> {
        let events = std::mem::take(&mut claiming.events);
        if events.is_empty() {
            return Ok(Some(Written::default()));
        }
        let appended = self
            .append_held(
                &mut claiming.held,
                &BOOKKEEPER,
                origin,
                Uuid::new_v4(),
                events,
            )
            .await?;
        match appended {
            Appended::Written(written) => {
                claiming.appended = true;
                Ok(Some(written))
            }
            Appended::Conflict => Ok(None),
        }
    }

    /// Gives up the claims this command appended and does not need any more (its own event was
    /// refused); a claim appended after one of them, or one whose event is in, stays. A failure
    /// here is only logged: a claim left behind holds its reservation off until its holder's
    /// stream passes the slot.
    pub(crate) async fn withdraw(&self, claims: Vec<Claiming>, origin: &Origin) {
        for claiming in claims.into_iter().filter(|c| c.appended) {
            let Some(holder) = claiming.held.state.claim.as_ref().map(|c| c.holder.clone()) else {
                continue;
            };
            let id = claiming.held.id().to_string();
            let withdrawn = async {
                let current = self.user_stream(holder.as_str()).await?;
                self.execute_unsettled::<Reservation>(&id, &BOOKKEEPER, origin, |r| {
                    r.handle(ReservationCommand::Withdraw {
                        claim: claiming.claim,
                        current: current.clone(),
                    })
                })
                .await
            };
            if let Err(e) = withdrawn.await {
                tracing::warn!(reservation = id, error = %e, "withdrawing a claim failed; its slot will release it");
            }
        }
    }

    /// Frees the reservation of `value` once `holder` no longer holds it (removed, or another
    /// email): a release appended with the reservation's exact version, so one taken over
    /// meanwhile stays with its new holder. Not needed for correctness (a reservation whose
    /// holder no longer holds it is free anyway), so a failure is only logged.
    pub(crate) async fn release(
        &self,
        kind: ReservationKind,
        value: &str,
        holder: &Username,
        origin: &Origin,
    ) -> Written {
        let id = reservation_id(kind, value);
        let released = async {
            let current = self.user_stream(holder.as_str()).await?;
            self.execute_unsettled::<Reservation>(&id, &BOOKKEEPER, origin, |r| {
                r.handle(ReservationCommand::Release {
                    holder: holder.clone(),
                    current: current.clone(),
                })
            })
            .await
        };
        match released.await {
            Ok((_, written)) => written,
            Err(e) => {
                tracing::warn!(reservation = id, error = %e, "releasing a reservation failed; it is free anyway");
                Written::default()
            }
        }
    }
}
