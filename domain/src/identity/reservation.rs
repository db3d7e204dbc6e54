//! Reservations, stream `reservation-<kind>-<key>`: a username without regard to case, or an
//! email address, claimed in the log for the one user who may hold it. `ann` and `ANN` are two
//! user streams but one reservation, so two users can never hold one name or one address,
//! whichever nodes register them, with no lock and no read model.
//!
//! A user's stream and a reservation are two streams, appended one after the other (the log has
//! no atomic append across streams). So a claim names its *slot*: the version of the holder's
//! user stream at which the event it is for (the registration, the new email) will be
//! appended, with that exact expected version. Until that stream reaches the slot, the claim is
//! pending: its command may still land, so nobody else may take the reservation (the holder
//! itself may claim it again, for a retry). Once the stream has passed the slot, the claim
//! either took effect or never can (its slot is taken), and the stream says the rest: the
//! reservation is held while the holder is registered (and, for an email, still has it), and
//! free otherwise, even if its release was never appended (a crash after the removal).

use super::user::UserStream;
use super::values::Username;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a reservation is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReservationKind {
    /// A username, lowercased: `ann` for `ANN` and `Ann` alike.
    Username,
    /// An email address (lowercased, as [`Email`](super::Email) keeps it).
    Email,
}

impl ReservationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationKind::Username => "username",
            ReservationKind::Email => "email",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum ReservationEvent {
    /// `holder` claimed `value`, for the event at version `slot` of its user stream; no slot for
    /// a user registered before reservations existed, whose stream already held it.
    ReservationClaimed {
        kind: ReservationKind,
        value: String,
        holder: Username,
        /// The command's claim, so it can withdraw it and nothing claimed after it.
        claim: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot: Option<u64>,
        /// The holder's own pending claim this one took over (a retry). That earlier command
        /// may still land, so from then on no withdrawal may free the reservation: only the
        /// holder's stream passing the slot settles it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        supersedes: Option<Uuid>,
    },
    /// The holder gave it up: removed, another email, or its command did not go through.
    ReservationReleased {
        kind: ReservationKind,
        value: String,
        holder: Username,
    },
}

impl DomainEvent for ReservationEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ReservationEvent::ReservationClaimed { .. } => "ReservationClaimed",
            ReservationEvent::ReservationReleased { .. } => "ReservationReleased",
        }
    }
}

#[derive(Clone, Debug)]
pub enum ReservationCommand {
    /// `holder` claims `value` for its event at version `slot` of its user stream. `current`:
    /// the user stream of whoever holds the reservation now (any, when nobody does).
    Claim {
        kind: ReservationKind,
        value: String,
        holder: Username,
        claim: Uuid,
        slot: u64,
        current: UserStream,
    },
    /// For a user registered before reservations existed: claimed only where nothing ever was.
    Backfill {
        kind: ReservationKind,
        value: String,
        holder: Username,
        claim: Uuid,
    },
    /// `holder` no longer holds it (removed, or another email); `current`: its stream now.
    Release {
        holder: Username,
        current: UserStream,
    },
    /// The claim `claim` is given up: its command stopped before its event. A later claim
    /// stays, and so does one its holder holds after all (`current`: the holder's stream now).
    Withdraw { claim: Uuid, current: UserStream },
}

/// The latest claim, unless it was released.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub holder: Username,
    pub claim: Uuid,
    pub slot: Option<u64>,
    /// It took over an earlier pending claim, which may still land: never withdrawn.
    pub took_over: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reservation {
    pub kind: Option<ReservationKind>,
    pub value: Option<String>,
    pub claim: Option<Claim>,
}

/// Where a reservation stands, given its holder's stream now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Free,
    /// Claimed for an event its holder's stream has not reached yet.
    Pending,
    /// Its holder holds it.
    Held,
}

impl Reservation {
    /// Where it stands if its holder's stream is `current`.
    pub fn standing(&self, current: &UserStream) -> Standing {
        let (Some(claim), Some(kind)) = (&self.claim, self.kind) else {
            return Standing::Free;
        };
        let passed = claim
            .slot
            .is_none_or(|slot| current.version.is_some_and(|v| v >= slot));
        if !passed {
            return Standing::Pending;
        }
        let user = &current.user;
        let holds = user.active
            && match kind {
                ReservationKind::Username => true,
                ReservationKind::Email => {
                    user.email.as_ref().map(|e| e.as_str()) == self.value.as_deref()
                }
            };
        if holds {
            Standing::Held
        } else {
            Standing::Free
        }
    }

    fn claimed(
        kind: ReservationKind,
        value: String,
        holder: Username,
        claim: Uuid,
        slot: Option<u64>,
        supersedes: Option<Uuid>,
    ) -> Vec<ReservationEvent> {
        vec![ReservationEvent::ReservationClaimed {
            kind,
            value,
            holder,
            claim,
            slot,
            supersedes,
        }]
    }

    fn released(&self, holder: Username) -> Vec<ReservationEvent> {
        match (self.kind, &self.value) {
            (Some(kind), Some(value)) => vec![ReservationEvent::ReservationReleased {
                kind,
                value: value.clone(),
                holder,
            }],
            _ => vec![],
        }
    }
}

fn taken(kind: ReservationKind, value: &str, holder: &Username, standing: Standing) -> DomainError {
    match (kind, standing) {
        (ReservationKind::Username, Standing::Pending) => DomainError::conflict(
            "user_exists",
            format!(
                "user {holder} is being registered (names are compared without regard to case)"
            ),
        ),
        (ReservationKind::Username, _) => DomainError::conflict(
            "user_exists",
            format!("user {holder} already exists (names are compared without regard to case)"),
        ),
        (ReservationKind::Email, Standing::Pending) => DomainError::conflict(
            "email_taken",
            format!("the email {value} is being given to another user"),
        ),
        (ReservationKind::Email, _) => DomainError::conflict(
            "email_taken",
            format!("the email {value} belongs to another user"),
        ),
    }
}

impl Aggregate for Reservation {
    type Command = ReservationCommand;
    type Event = ReservationEvent;
    const CATEGORY: &'static str = "reservation";

    fn handle(&self, command: ReservationCommand) -> Result<Vec<ReservationEvent>, DomainError> {
        match command {
            ReservationCommand::Claim {
                kind,
                value,
                holder,
                claim,
                slot,
                current,
            } => {
                let standing = self.standing(&current);
                match &self.claim {
                    Some(c) if standing != Standing::Free => {
                        if c.holder != holder {
                            return Err(taken(kind, &value, &c.holder, standing));
                        }
                        if standing == Standing::Held {
                            // Its own already: the holder's stream decides the rest.
                            return Ok(vec![]);
                        }
                        // Its own claim of an earlier try, still pending: this one takes over
                        // (the earlier try, if it lands, lands for the same user).
                        Ok(Self::claimed(
                            kind,
                            value,
                            holder,
                            claim,
                            Some(slot),
                            Some(c.claim),
                        ))
                    }
                    _ => Ok(Self::claimed(kind, value, holder, claim, Some(slot), None)),
                }
            }
            ReservationCommand::Backfill {
                kind,
                value,
                holder,
                claim,
            } => {
                if self.exists() {
                    return Ok(vec![]);
                }
                Ok(Self::claimed(kind, value, holder, claim, None, None))
            }
            ReservationCommand::Release { holder, current } => match &self.claim {
                Some(c) if c.holder == holder && self.standing(&current) == Standing::Free => {
                    Ok(self.released(holder))
                }
                _ => Ok(vec![]),
            },
            ReservationCommand::Withdraw { claim, current } => match &self.claim {
                Some(c)
                    if c.claim == claim
                        && !c.took_over
                        && self.standing(&current) != Standing::Held =>
                {
                    Ok(self.released(c.holder.clone()))
                }
                _ => Ok(vec![]),
            },
        }
    }

    fn apply(&mut self, event: &ReservationEvent) {
        match event {
            ReservationEvent::ReservationClaimed {
                kind,
                value,
                holder,
                claim,
                slot,
                supersedes,
            } => {
                self.kind = Some(*kind);
                self.value = Some(value.clone());
                self.claim = Some(Claim {
                    holder: holder.clone(),
                    claim: *claim,
                    slot: *slot,
                    took_over: supersedes.is_some(),
                });
            }
            ReservationEvent::ReservationReleased { .. } => self.claim = None,
        }
    }

    fn exists(&self) -> bool {
        self.kind.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Email, PasswordHash, User, UserEvent};
    use crate::testing::given;
    use crate::Aggregate;

    fn name(n: &str) -> Username {
        Username::parse(n).unwrap()
    }

    fn claim(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// The user stream of these events.
    fn stream(events: &[UserEvent]) -> UserStream {
        let mut user = User::default();
        events.iter().for_each(|e| user.apply(e));
        UserStream {
            user,
            version: events.len().checked_sub(1).map(|v| v as u64),
        }
    }

    fn registered(username: &str, email: Option<&str>) -> UserEvent {
        UserEvent::UserRegistered {
            username: name(username),
            email: email.map(|e| Email::parse(e).unwrap()),
            admin: false,
            password_hash: PasswordHash("$argon2id$…".into()),
            registered_from: None,
        }
    }

    fn new_email(username: &str, email: &str) -> UserEvent {
        UserEvent::UserUpdated {
            username: name(username),
            email: Some(Email::parse(email).unwrap()),
            email_cleared: false,
            admin: None,
        }
    }

    fn removed(username: &str) -> UserEvent {
        UserEvent::UserRemoved {
            username: name(username),
        }
    }

    fn claimed(
        kind: ReservationKind,
        value: &str,
        holder: &str,
        id: u128,
        slot: Option<u64>,
    ) -> ReservationEvent {
        ReservationEvent::ReservationClaimed {
            kind,
            value: value.into(),
            holder: name(holder),
            claim: claim(id),
            slot,
            supersedes: None,
        }
    }

    fn released(kind: ReservationKind, value: &str, holder: &str) -> ReservationEvent {
        ReservationEvent::ReservationReleased {
            kind,
            value: value.into(),
            holder: name(holder),
        }
    }

    fn claim_name(holder: &str, id: u128, slot: u64, current: UserStream) -> ReservationCommand {
        ReservationCommand::Claim {
            kind: ReservationKind::Username,
            value: holder.to_ascii_lowercase(),
            holder: name(holder),
            claim: claim(id),
            slot,
            current,
        }
    }

    fn claim_email(
        email: &str,
        holder: &str,
        id: u128,
        slot: u64,
        current: UserStream,
    ) -> ReservationCommand {
        ReservationCommand::Claim {
            kind: ReservationKind::Email,
            value: email.into(),
            holder: name(holder),
            claim: claim(id),
            slot,
            current,
        }
    }

    use ReservationKind::{Email as EMAIL, Username as NAME};

    #[test]
    fn a_free_name_is_claimed_for_the_slot_of_its_registration() {
        given::<Reservation>(&[])
            .when(claim_name("Ann", 1, 0, UserStream::default()))
            .then(vec![claimed(NAME, "ann", "Ann", 1, Some(0))]);
        // The slot is the version the registration will have: a removed user's stream goes on.
        given::<Reservation>(&[])
            .when(claim_name("ann", 1, 2, UserStream::default()))
            .then(vec![claimed(NAME, "ann", "ann", 1, Some(2))]);
    }

    #[test]
    fn refuses_a_name_that_differs_only_in_case_from_a_users() {
        let past = [claimed(NAME, "ann", "ann", 1, Some(0))];
        let ann = stream(&[registered("ann", None)]);
        for other in ["ANN", "Ann", "aNn"] {
            given::<Reservation>(&past)
                .when(claim_name(other, 2, 0, ann.clone()))
                .refused(DomainError::conflict(
                    "user_exists",
                    "user ann already exists (names are compared without regard to case)",
                ));
        }
        // The same name in the same case is its own: the user's stream refuses it.
        given::<Reservation>(&past)
            .when(claim_name("ann", 2, 1, ann))
            .then_nothing();
    }

    #[test]
    fn a_pending_claim_holds_off_everyone_but_a_retry_for_its_holder() {
        // Claimed for user-ann's first event, which is not there yet: in flight, or its node
        // died between the two appends.
        let past = [claimed(NAME, "ann", "ann", 1, Some(0))];
        given::<Reservation>(&past)
            .when(claim_name("ANN", 2, 0, UserStream::default()))
            .refused(DomainError::conflict(
                "user_exists",
                "user ann is being registered (names are compared without regard to case)",
            ));
        let retry = ReservationEvent::ReservationClaimed {
            kind: NAME,
            value: "ann".into(),
            holder: name("ann"),
            claim: claim(2),
            slot: Some(0),
            supersedes: Some(claim(1)),
        };
        given::<Reservation>(&past)
            .when(claim_name("ann", 2, 0, UserStream::default()))
            .then(vec![retry]);
    }

    #[test]
    fn a_removed_users_name_is_free_whether_or_not_its_release_was_written() {
        let removed_ann = stream(&[registered("ann", None), removed("ann")]);
        let past = [claimed(NAME, "ann", "ann", 1, Some(0))];
        given::<Reservation>(&past)
            .when(claim_name("ANN", 2, 0, removed_ann.clone()))
            .then(vec![claimed(NAME, "ann", "ANN", 2, Some(0))]);
        let released_too = [past[0].clone(), released(NAME, "ann", "ann")];
        given::<Reservation>(&released_too)
            .when(claim_name("ANN", 2, 0, UserStream::default()))
            .then(vec![claimed(NAME, "ann", "ANN", 2, Some(0))]);
        // And the same user again, at the next version of its stream.
        given::<Reservation>(&past)
            .when(claim_name("ann", 2, 2, removed_ann))
            .then(vec![claimed(NAME, "ann", "ann", 2, Some(2))]);
    }

    #[test]
    fn refuses_an_email_another_user_holds() {
        let past = [claimed(EMAIL, "x@example.org", "bob", 1, Some(0))];
        let bob = stream(&[registered("bob", Some("x@example.org"))]);
        given::<Reservation>(&past)
            .when(claim_email("x@example.org", "ann", 2, 3, bob.clone()))
            .refused(DomainError::conflict(
                "email_taken",
                "the email x@example.org belongs to another user",
            ));
        given::<Reservation>(&past)
            .when(claim_email(
                "x@example.org",
                "ann",
                2,
                3,
                UserStream::default(),
            ))
            .refused(DomainError::conflict(
                "email_taken",
                "the email x@example.org is being given to another user",
            ));
        // Once bob has another address, x is free.
        let moved = stream(&[
            registered("bob", Some("x@example.org")),
            new_email("bob", "y@example.org"),
        ]);
        given::<Reservation>(&past)
            .when(claim_email("x@example.org", "ann", 2, 3, moved))
            .then(vec![claimed(EMAIL, "x@example.org", "ann", 2, Some(3))]);
    }

    #[test]
    fn a_claim_whose_slot_another_event_took_never_takes_effect() {
        // Claimed for bob's event 1, but event 1 is a password change: the email update it was
        // for cannot land any more, so x is free.
        let past = [claimed(EMAIL, "x@example.org", "bob", 1, Some(1))];
        let bob = stream(&[
            registered("bob", None),
            UserEvent::PasswordChanged {
                username: name("bob"),
                password_hash: PasswordHash("$argon2id$…".into()),
            },
        ]);
        given::<Reservation>(&past)
            .when(claim_email("x@example.org", "ann", 2, 0, bob))
            .then(vec![claimed(EMAIL, "x@example.org", "ann", 2, Some(0))]);
    }

    #[test]
    fn a_release_frees_only_what_its_holder_no_longer_holds() {
        let past = [claimed(NAME, "ann", "ann", 1, Some(0))];
        let release = |holder: &str, current| ReservationCommand::Release {
            holder: name(holder),
            current,
        };
        given::<Reservation>(&past)
            .when(release(
                "ann",
                stream(&[registered("ann", None), removed("ann")]),
            ))
            .then(vec![released(NAME, "ann", "ann")]);
        // Registered again meanwhile, or its registration still pending: it stays.
        given::<Reservation>(&past)
            .when(release("ann", stream(&[registered("ann", None)])))
            .then_nothing();
        given::<Reservation>(&past)
            .when(release("ann", UserStream::default()))
            .then_nothing();
        // Another user took it over meanwhile: not ann's to release.
        let taken_over = [past[0].clone(), claimed(NAME, "ann", "ANN", 2, Some(0))];
        given::<Reservation>(&taken_over)
            .when(release(
                "ann",
                stream(&[registered("ann", None), removed("ann")]),
            ))
            .then_nothing();
    }

    #[test]
    fn a_claim_that_took_over_a_pending_one_is_never_withdrawn() {
        // ann's first try (claim 1) may still land at slot 0; her retry (claim 2) took it over
        // and was then refused: freeing the name now would let ANN register beside her.
        let took_over = ReservationEvent::ReservationClaimed {
            kind: NAME,
            value: "ann".into(),
            holder: name("ann"),
            claim: claim(2),
            slot: Some(0),
            supersedes: Some(claim(1)),
        };
        given::<Reservation>(&[claimed(NAME, "ann", "ann", 1, Some(0))])
            .when(ReservationCommand::Claim {
                kind: NAME,
                value: "ann".into(),
                holder: name("ann"),
                claim: claim(2),
                slot: 0,
                current: UserStream::default(),
            })
            .then(vec![took_over.clone()]);
        let past = [claimed(NAME, "ann", "ann", 1, Some(0)), took_over];
        for id in [1, 2] {
            given::<Reservation>(&past)
                .when(ReservationCommand::Withdraw {
                    claim: claim(id),
                    current: UserStream::default(),
                })
                .then_nothing();
        }
    }

    #[test]
    fn a_withdrawn_claim_is_released_unless_another_came_after_it_or_it_took_effect() {
        let past = [claimed(EMAIL, "x@example.org", "ann", 1, Some(0))];
        let withdraw = |id, current| ReservationCommand::Withdraw {
            claim: claim(id),
            current,
        };
        given::<Reservation>(&past)
            .when(withdraw(1, UserStream::default()))
            .then(vec![released(EMAIL, "x@example.org", "ann")]);
        let again = [
            past[0].clone(),
            claimed(EMAIL, "x@example.org", "ann", 2, Some(0)),
        ];
        given::<Reservation>(&again)
            .when(withdraw(1, UserStream::default()))
            .then_nothing();
        // Its command failed to hear back, but its registration is in: the claim stays.
        let ann = stream(&[registered("ann", Some("x@example.org"))]);
        given::<Reservation>(&past)
            .when(withdraw(1, ann))
            .then_nothing();
    }

    #[test]
    fn a_backfill_claims_only_what_was_never_claimed() {
        let backfill = ReservationCommand::Backfill {
            kind: NAME,
            value: "ann".into(),
            holder: name("Ann"),
            claim: claim(9),
        };
        given::<Reservation>(&[])
            .when(backfill.clone())
            .then(vec![claimed(NAME, "ann", "Ann", 9, None)]);
        let claimed_before = [claimed(NAME, "ann", "ANN", 1, Some(0))];
        given::<Reservation>(&claimed_before)
            .when(backfill.clone())
            .then_nothing();
        let released_before = [claimed_before[0].clone(), released(NAME, "ann", "ANN")];
        given::<Reservation>(&released_before)
            .when(backfill)
            .then_nothing();
        // A backfilled claim stands for as long as its holder is registered.
        let past = [claimed(NAME, "ann", "Ann", 9, None)];
        let ann = stream(&[registered("Ann", None)]);
        let state = given::<Reservation>(&past);
        assert_eq!(state.state().standing(&ann), Standing::Held);
        assert_eq!(
            state
                .state()
                .standing(&stream(&[registered("Ann", None), removed("Ann")])),
            Standing::Free
        );
    }

    #[test]
    fn a_claim_is_stored_with_its_slot_only_when_it_has_one() {
        let (event_type, data) = crate::encode(&claimed(NAME, "ann", "Ann", 1, None)).unwrap();
        assert_eq!(event_type, "ReservationClaimed");
        assert_eq!(
            data,
            serde_json::json!({"kind": "username", "value": "ann", "holder": "Ann",
                               "claim": claim(1)})
        );
        let slotted = claimed(EMAIL, "x@example.org", "ann", 1, Some(4));
        let (_, data) = crate::encode(&slotted).unwrap();
        assert_eq!(data["slot"], 4);
        assert_eq!(
            crate::decode::<ReservationEvent>("ReservationClaimed", &data).unwrap(),
            slotted
        );
    }
}
