//! The owner's registry of runnables, stream `runnable_owner-<username>`: the exact set of
//! runnables a user owns, so a quota can be kept and a hand-over is exact (no read model that
//! may lag is asked).
//!
//! Creating a runnable (root or fork) appends `RunnableCreated` (its stream) and
//! `RunnableOwnerTook` (its owner's registry, at its exact version) in one atomic append, so two
//! creations racing for a user's last place cannot both have it; removing or reaping it releases
//! the place in the same way. An anonymous user who registers hands every runnable over to the
//! registered user (`RunnableOwnerHandedOver` here, `RunnableOwnerReceived` on the other's, each
//! runnable's `RunnableOwnerChanged`, in one append); the registry is then closed for good:
//! nothing more is taken on it.
//!
//! Removing a user closes their registry too, once it is empty (`RunnableOwnerClosed`, which
//! records the version of the user's stream the removal is at), so a fork of theirs still under
//! way cannot land after the last runnable was removed: its `Take` was decided on the registry
//! before the close, so its append conflicts and the `Take` decided again is refused. A user
//! registered later under the same name reopens it (`RunnableOwnerReopened`, with the version of
//! the user's stream their registration is at) before their `UserRegistered`. The versions make
//! the order plain however the two race: a registry closed for a removal at version `r` is
//! reopened only by a registration after it (`> r`), and a close for a removal older than the
//! latest reopen (a cleanup that outlived the next registration) is no event. A hand-over is not
//! a removal: the anonymous name it closes is never registered again, so nothing reopens it.
//!
//! Rules it keeps:
//! - A runnable held already is not taken again (no event); one not held is not released (no
//!   event).
//! - A registry holding `limit` runnables takes no more (403 `runnable_quota_exceeded`); `None`
//!   is unlimited (the handler gives none for an admin).
//! - Once handed over, it takes nothing (409 `owner_registered`) and receives nothing; handing
//!   it over again to the same user is no event, to another one a 409 `owner_registered`.
//! - Closed for a removal, it takes, receives and hands over nothing (409 `owner_removed`)
//!   until reopened; it closes only once empty (409 `owner_has_runnables`: its runnables are
//!   removed first); closing it again is no event, and so is closing a handed-over one.
//!
//! Not its: which limit applies to whom (`commands`, from the configuration), who may act, and
//! runnables created before registries existed (in none: `commands` removes them with their
//! user as the read models list them; no quota counts them).

use super::values::RunnableId;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::identity::Username;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum RunnableOwnerEvent {
    RunnableOwnerTook {
        runnable: RunnableId,
    },
    RunnableOwnerReleased {
        runnable: RunnableId,
    },
    /// Every runnable it held (sorted) went to `to`; the registry is closed.
    RunnableOwnerHandedOver {
        to: Username,
        runnables: Vec<RunnableId>,
    },
    /// The runnables (sorted) `from` handed over, those not held already.
    RunnableOwnerReceived {
        from: Username,
        runnables: Vec<RunnableId>,
    },
    /// The user was removed (the removal is at version `removed_at` of their stream) and the
    /// registry is empty: it takes nothing until reopened.
    RunnableOwnerClosed {
        removed_at: u64,
    },
    /// A user of the name registered (at version `registered_at` of their stream), after the
    /// removal that closed it.
    RunnableOwnerReopened {
        registered_at: u64,
    },
}

impl DomainEvent for RunnableOwnerEvent {
    fn event_type(&self) -> &'static str {
        match self {
            RunnableOwnerEvent::RunnableOwnerTook { .. } => "RunnableOwnerTook",
            RunnableOwnerEvent::RunnableOwnerReleased { .. } => "RunnableOwnerReleased",
            RunnableOwnerEvent::RunnableOwnerHandedOver { .. } => "RunnableOwnerHandedOver",
            RunnableOwnerEvent::RunnableOwnerReceived { .. } => "RunnableOwnerReceived",
            RunnableOwnerEvent::RunnableOwnerClosed { .. } => "RunnableOwnerClosed",
            RunnableOwnerEvent::RunnableOwnerReopened { .. } => "RunnableOwnerReopened",
        }
    }
}

#[derive(Clone, Debug)]
pub enum RunnableOwnerCommand {
    /// Count `runnable` as the owner's: 403 `runnable_quota_exceeded` when `limit` are held
    /// already (`None`: unlimited), 409 `owner_registered` once handed over, 409 `owner_removed`
    /// while closed.
    Take {
        runnable: RunnableId,
        limit: Option<u32>,
    },
    Release {
        runnable: RunnableId,
    },
    /// Every runnable held goes to `to` (also none: the registry is closed all the same).
    HandOver {
        to: Username,
    },
    /// `runnables` handed over by `from` are this owner's now, over any limit.
    Receive {
        from: Username,
        runnables: Vec<RunnableId>,
    },
    /// The user was removed at version `removed_at` of their stream and every runnable of theirs
    /// removed: nothing more is taken (409 `owner_has_runnables` while it holds any).
    Close {
        removed_at: u64,
    },
    /// A user of the name is being registered at version `registered_at` of their stream.
    Reopen {
        registered_at: u64,
    },
}

/// A user's registry, folded from its stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunnableOwner {
    runnables: BTreeSet<RunnableId>,
    handed_over_to: Option<Username>,
    /// Closed for the removal at this version of the user's stream (none once reopened).
    closed_for: Option<u64>,
    /// Reopened for the registration at this version of the user's stream, last.
    reopened_for: Option<u64>,
    exists: bool,
}

impl RunnableOwner {
    /// The runnables the user owns now.
    pub fn runnables(&self) -> &BTreeSet<RunnableId> {
        &self.runnables
    }

    /// Whom its runnables were handed over to, once they were (it takes nothing then).
    pub fn handed_over_to(&self) -> Option<&Username> {
        self.handed_over_to.as_ref()
    }

    /// Closed for a removal (and not reopened since): it takes nothing.
    pub fn is_closed(&self) -> bool {
        self.closed_for.is_some()
    }

    /// Reopened for a registration later than the removal at version `removed_at` of the
    /// user's stream: what it holds is a later user's, not that removed one's.
    pub fn reopened_since(&self, removed_at: u64) -> bool {
        self.reopened_for.is_some_and(|at| at > removed_at)
    }

    /// How many runnables it holds.
    pub fn in_use(&self) -> u32 {
        u32::try_from(self.runnables.len()).unwrap_or(u32::MAX)
    }

    fn quota_exceeded(in_use: u32, limit: u32) -> DomainError {
        DomainError::forbidden(
            "runnable_quota_exceeded",
            format!(
                "runnable quota exceeded: {in_use} of {limit} runnables in use; remove one first"
            ),
        )
    }

    fn removed() -> DomainError {
        DomainError::conflict(
            "owner_removed",
            "this user was removed: they own no more runnables",
        )
    }

    /// Refused while closed one way or the other.
    fn check_open(&self) -> Result<(), DomainError> {
        if let Some(to) = &self.handed_over_to {
            return Err(RunnableOwner::registered(to));
        }
        if self.is_closed() {
            return Err(RunnableOwner::removed());
        }
        Ok(())
    }

    fn registered(to: &Username) -> DomainError {
        DomainError::conflict(
            "owner_registered",
            format!("this user registered as {to}: their runnables are {to}'s now"),
        )
    }
}

impl Aggregate for RunnableOwner {
    type Command = RunnableOwnerCommand;
    type Event = RunnableOwnerEvent;
    const CATEGORY: &'static str = "runnable_owner";

    fn handle(
        &self,
        command: RunnableOwnerCommand,
    ) -> Result<Vec<RunnableOwnerEvent>, DomainError> {
        match command {
            RunnableOwnerCommand::Take { runnable, limit } => {
                self.check_open()?;
                if self.runnables.contains(&runnable) {
                    return Ok(vec![]);
                }
                if let Some(limit) = limit.filter(|limit| self.in_use() >= *limit) {
                    return Err(RunnableOwner::quota_exceeded(self.in_use(), limit));
                }
                Ok(vec![RunnableOwnerEvent::RunnableOwnerTook { runnable }])
            }
            RunnableOwnerCommand::Release { runnable } => {
                if !self.runnables.contains(&runnable) {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableOwnerEvent::RunnableOwnerReleased { runnable }])
            }
            RunnableOwnerCommand::HandOver { to } => match &self.handed_over_to {
                Some(done) if *done == to => Ok(vec![]),
                Some(other) => Err(RunnableOwner::registered(other)),
                None if self.is_closed() => Err(RunnableOwner::removed()),
                None => Ok(vec![RunnableOwnerEvent::RunnableOwnerHandedOver {
                    to,
                    runnables: self.runnables.iter().copied().collect(),
                }]),
            },
            RunnableOwnerCommand::Receive { from, runnables } => {
                self.check_open()?;
                let new: BTreeSet<RunnableId> = runnables
                    .into_iter()
                    .filter(|r| !self.runnables.contains(r))
                    .collect();
                if new.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableOwnerEvent::RunnableOwnerReceived {
                    from,
                    runnables: new.into_iter().collect(),
                }])
            }
            RunnableOwnerCommand::Close { removed_at } => {
                // Closed already, for good (handed over) or for this removal or another; or a
                // later user's since (a cleanup that outlived the next registration).
                if self.handed_over_to.is_some()
                    || self.is_closed()
                    || self.reopened_since(removed_at)
                {
                    return Ok(vec![]);
                }
                if !self.runnables.is_empty() {
                    return Err(DomainError::conflict(
                        "owner_has_runnables",
                        format!(
                            "this removed user still owns {} runnables: they are removed first",
                            self.runnables.len()
                        ),
                    ));
                }
                Ok(vec![RunnableOwnerEvent::RunnableOwnerClosed { removed_at }])
            }
            RunnableOwnerCommand::Reopen { registered_at } => match self.closed_for {
                Some(removed_at) if removed_at < registered_at => {
                    Ok(vec![RunnableOwnerEvent::RunnableOwnerReopened {
                        registered_at,
                    }])
                }
                // Open (never closed, or reopened already), or handed over: nothing to reopen.
                _ => Ok(vec![]),
            },
        }
    }

    fn apply(&mut self, event: &RunnableOwnerEvent) {
        self.exists = true;
        match event {
            RunnableOwnerEvent::RunnableOwnerTook { runnable } => {
                self.runnables.insert(*runnable);
            }
            RunnableOwnerEvent::RunnableOwnerReleased { runnable } => {
                self.runnables.remove(runnable);
            }
            RunnableOwnerEvent::RunnableOwnerHandedOver { to, .. } => {
                self.runnables.clear();
                self.handed_over_to = Some(to.clone());
            }
            RunnableOwnerEvent::RunnableOwnerReceived { runnables, .. } => {
                self.runnables.extend(runnables.iter().copied());
            }
            RunnableOwnerEvent::RunnableOwnerClosed { removed_at } => {
                self.closed_for = Some(*removed_at);
            }
            RunnableOwnerEvent::RunnableOwnerReopened { registered_at } => {
                self.closed_for = None;
                self.reopened_for = Some(*registered_at);
            }
        }
    }

    fn exists(&self) -> bool {
        self.exists
    }
}

#[cfg(test)]
mod tests {
    //! Given these past events, when this command, then these events or this refusal.

    use super::*;
    use crate::aggregate::{decode, encode};
    use crate::testing::given;
    use serde_json::json;
    use uuid::Uuid;

    use RunnableOwnerCommand as C;
    use RunnableOwnerEvent as E;

    fn r(n: u128) -> RunnableId {
        RunnableId::new(Uuid::from_u128(n))
    }
    fn user(n: &str) -> Username {
        Username::parse(n).unwrap()
    }
    fn took(n: u128) -> E {
        E::RunnableOwnerTook { runnable: r(n) }
    }
    fn handed_over(to: &str, runnables: &[u128]) -> E {
        E::RunnableOwnerHandedOver {
            to: user(to),
            runnables: runnables.iter().map(|n| r(*n)).collect(),
        }
    }
    fn registered(to: &str) -> DomainError {
        DomainError::conflict(
            "owner_registered",
            format!("this user registered as {to}: their runnables are {to}'s now"),
        )
    }
    fn closed(removed_at: u64) -> E {
        E::RunnableOwnerClosed { removed_at }
    }
    fn reopened(registered_at: u64) -> E {
        E::RunnableOwnerReopened { registered_at }
    }
    fn removed() -> DomainError {
        DomainError::conflict(
            "owner_removed",
            "this user was removed: they own no more runnables",
        )
    }
    fn take(n: u128) -> C {
        C::Take {
            runnable: r(n),
            limit: None,
        }
    }

    #[test]
    fn take_counts_a_runnable_under_the_limit() {
        given::<RunnableOwner>(&[])
            .when(C::Take {
                runnable: r(1),
                limit: Some(1),
            })
            .then(vec![took(1)]);
        given::<RunnableOwner>(&[took(1)])
            .when(C::Take {
                runnable: r(2),
                limit: Some(2),
            })
            .then(vec![took(2)]);
    }

    #[test]
    fn take_at_the_limit_is_refused_with_the_limit() {
        given::<RunnableOwner>(&[took(1), took(2)])
            .when(C::Take {
                runnable: r(3),
                limit: Some(2),
            })
            .refused(DomainError::forbidden(
                "runnable_quota_exceeded",
                "runnable quota exceeded: 2 of 2 runnables in use; remove one first",
            ));
        // A limit lowered under what is held keeps refusing.
        given::<RunnableOwner>(&[took(1), took(2)])
            .when(C::Take {
                runnable: r(3),
                limit: Some(1),
            })
            .refused(DomainError::forbidden(
                "runnable_quota_exceeded",
                "runnable quota exceeded: 2 of 1 runnables in use; remove one first",
            ));
        given::<RunnableOwner>(&[])
            .when(C::Take {
                runnable: r(1),
                limit: Some(0),
            })
            .refused(DomainError::forbidden(
                "runnable_quota_exceeded",
                "runnable quota exceeded: 0 of 0 runnables in use; remove one first",
            ));
    }

    #[test]
    fn no_limit_takes_any_number() {
        let past: Vec<E> = (1..=100).map(took).collect();
        given::<RunnableOwner>(&past)
            .when(C::Take {
                runnable: r(101),
                limit: None,
            })
            .then(vec![took(101)]);
    }

    #[test]
    fn a_runnable_held_already_is_no_event_even_at_the_limit() {
        given::<RunnableOwner>(&[took(1)])
            .when(C::Take {
                runnable: r(1),
                limit: Some(1),
            })
            .then_nothing();
    }

    #[test]
    fn release_gives_the_place_back() {
        let given_ = given::<RunnableOwner>(&[
            took(1),
            took(2),
            E::RunnableOwnerReleased { runnable: r(1) },
        ]);
        assert_eq!(given_.state().in_use(), 1);
        given_
            .when(C::Take {
                runnable: r(3),
                limit: Some(2),
            })
            .then(vec![took(3)]);
        given::<RunnableOwner>(&[took(1)])
            .when(C::Release { runnable: r(1) })
            .then(vec![E::RunnableOwnerReleased { runnable: r(1) }]);
    }

    #[test]
    fn release_of_one_not_held_is_no_event() {
        given::<RunnableOwner>(&[])
            .when(C::Release { runnable: r(1) })
            .then_nothing();
        given::<RunnableOwner>(&[took(1), E::RunnableOwnerReleased { runnable: r(1) }])
            .when(C::Release { runnable: r(1) })
            .then_nothing();
        given::<RunnableOwner>(&[took(1), handed_over("alice", &[1])])
            .when(C::Release { runnable: r(1) })
            .then_nothing();
    }

    #[test]
    fn hand_over_gives_every_runnable_sorted_and_closes() {
        given::<RunnableOwner>(&[took(2), took(1)])
            .when(C::HandOver { to: user("alice") })
            .then(vec![handed_over("alice", &[1, 2])]);
        // None held: closed all the same.
        given::<RunnableOwner>(&[])
            .when(C::HandOver { to: user("alice") })
            .then(vec![handed_over("alice", &[])]);
        let after = given::<RunnableOwner>(&[took(1), handed_over("alice", &[1])]);
        assert!(after.state().runnables().is_empty());
        assert_eq!(after.state().handed_over_to(), Some(&user("alice")));
    }

    #[test]
    fn hand_over_again_to_the_same_user_is_no_event_to_another_a_conflict() {
        given::<RunnableOwner>(&[took(1), handed_over("alice", &[1])])
            .when(C::HandOver { to: user("alice") })
            .then_nothing();
        given::<RunnableOwner>(&[took(1), handed_over("alice", &[1])])
            .when(C::HandOver { to: user("bob") })
            .refused(registered("alice"));
    }

    #[test]
    fn take_after_hand_over_is_a_conflict() {
        given::<RunnableOwner>(&[handed_over("alice", &[])])
            .when(C::Take {
                runnable: r(1),
                limit: None,
            })
            .refused(registered("alice"));
        // Even one it held before.
        given::<RunnableOwner>(&[took(1), handed_over("alice", &[1])])
            .when(C::Take {
                runnable: r(1),
                limit: None,
            })
            .refused(registered("alice"));
    }

    #[test]
    fn receive_adds_over_any_limit_those_not_held() {
        let from = user("anon-0123456789abcdef");
        given::<RunnableOwner>(&[took(1)])
            .when(C::Receive {
                from: from.clone(),
                runnables: vec![r(3), r(1), r(2)],
            })
            .then(vec![E::RunnableOwnerReceived {
                from: from.clone(),
                runnables: vec![r(2), r(3)],
            }]);
        let after = given::<RunnableOwner>(&[
            took(1),
            E::RunnableOwnerReceived {
                from: from.clone(),
                runnables: vec![r(2), r(3)],
            },
        ]);
        assert_eq!(
            after
                .state()
                .runnables()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![r(1), r(2), r(3)]
        );
        // Received over the limit: the next take is refused.
        after
            .when(C::Take {
                runnable: r(4),
                limit: Some(2),
            })
            .refused(DomainError::forbidden(
                "runnable_quota_exceeded",
                "runnable quota exceeded: 3 of 2 runnables in use; remove one first",
            ));
    }

    #[test]
    fn receive_of_nothing_new_is_no_event_and_a_closed_registry_receives_nothing() {
        let from = user("anon-0123456789abcdef");
        given::<RunnableOwner>(&[took(1)])
            .when(C::Receive {
                from: from.clone(),
                runnables: vec![r(1)],
            })
            .then_nothing();
        given::<RunnableOwner>(&[])
            .when(C::Receive {
                from: from.clone(),
                runnables: vec![],
            })
            .then_nothing();
        given::<RunnableOwner>(&[handed_over("alice", &[])])
            .when(C::Receive {
                from,
                runnables: vec![r(1)],
            })
            .refused(registered("alice"));
    }

    #[test]
    fn close_of_an_empty_registry_closes_it_and_it_takes_nothing_more() {
        // Never used (a user removed with no runnable) or emptied.
        given::<RunnableOwner>(&[])
            .when(C::Close { removed_at: 3 })
            .then(vec![closed(3)]);
        given::<RunnableOwner>(&[took(1), E::RunnableOwnerReleased { runnable: r(1) }])
            .when(C::Close { removed_at: 3 })
            .then(vec![closed(3)]);
        let after = given::<RunnableOwner>(&[closed(3)]);
        assert!(after.state().is_closed());
        // A fork decided before the close is decided again after it: refused.
        after.when(take(1)).refused(removed());
        given::<RunnableOwner>(&[closed(3)])
            .when(C::Receive {
                from: user("anon-0123456789abcdef"),
                runnables: vec![r(1)],
            })
            .refused(removed());
        given::<RunnableOwner>(&[closed(3)])
            .when(C::HandOver { to: user("alice") })
            .refused(removed());
        given::<RunnableOwner>(&[closed(3)])
            .when(C::Release { runnable: r(1) })
            .then_nothing();
    }

    #[test]
    fn close_of_a_registry_holding_runnables_is_refused() {
        given::<RunnableOwner>(&[took(1), took(2)])
            .when(C::Close { removed_at: 3 })
            .refused(DomainError::conflict(
                "owner_has_runnables",
                "this removed user still owns 2 runnables: they are removed first",
            ));
    }

    #[test]
    fn close_again_or_of_a_handed_over_registry_is_no_event() {
        given::<RunnableOwner>(&[closed(3)])
            .when(C::Close { removed_at: 3 })
            .then_nothing();
        // A hand-over is no removal: it stays handed over (and its refusal says so).
        let handed = given::<RunnableOwner>(&[handed_over("alice", &[])]);
        assert!(!handed.state().is_closed());
        handed.when(C::Close { removed_at: 3 }).then_nothing();
        given::<RunnableOwner>(&[handed_over("alice", &[])])
            .when(take(1))
            .refused(registered("alice"));
        given::<RunnableOwner>(&[handed_over("alice", &[])])
            .when(C::Reopen { registered_at: 9 })
            .then_nothing();
    }

    #[test]
    fn a_registration_after_the_removal_reopens_it() {
        given::<RunnableOwner>(&[closed(3)])
            .when(C::Reopen { registered_at: 4 })
            .then(vec![reopened(4)]);
        let after = given::<RunnableOwner>(&[
            took(1),
            E::RunnableOwnerReleased { runnable: r(1) },
            closed(3),
            reopened(4),
        ]);
        assert!(!after.state().is_closed());
        assert!(after.state().reopened_since(3));
        assert!(!after.state().reopened_since(4));
        after
            .when(C::Take {
                runnable: r(1),
                limit: Some(1),
            })
            .then(vec![took(1)]);
        given::<RunnableOwner>(&[closed(3), reopened(4)])
            .when(C::Receive {
                from: user("anon-0123456789abcdef"),
                runnables: vec![r(2)],
            })
            .then(vec![E::RunnableOwnerReceived {
                from: user("anon-0123456789abcdef"),
                runnables: vec![r(2)],
            }]);
    }

    #[test]
    fn reopen_of_an_open_registry_or_for_an_older_registration_is_no_event() {
        // A name never removed (every first registration), or reopened already (a retry).
        given::<RunnableOwner>(&[])
            .when(C::Reopen { registered_at: 0 })
            .then_nothing();
        given::<RunnableOwner>(&[took(1)])
            .when(C::Reopen { registered_at: 5 })
            .then_nothing();
        given::<RunnableOwner>(&[closed(3), reopened(4)])
            .when(C::Reopen { registered_at: 4 })
            .then_nothing();
        // Not before the removal it was closed for.
        given::<RunnableOwner>(&[closed(3)])
            .when(C::Reopen { registered_at: 3 })
            .then_nothing();
    }

    #[test]
    fn a_close_for_a_removal_older_than_the_reopen_is_no_event() {
        // The cleanup of a removal at 3 outlived the next registration (at 4).
        given::<RunnableOwner>(&[closed(3), reopened(4)])
            .when(C::Close { removed_at: 3 })
            .then_nothing();
        given::<RunnableOwner>(&[closed(3), reopened(4), took(1)])
            .when(C::Close { removed_at: 3 })
            .then_nothing();
        // That later user's own removal closes it again.
        given::<RunnableOwner>(&[closed(3), reopened(4)])
            .when(C::Close { removed_at: 6 })
            .then(vec![closed(6)]);
    }

    #[test]
    fn events_are_stored_as_named() {
        let from = user("anon-0123456789abcdef");
        for event in [
            took(1),
            E::RunnableOwnerReleased { runnable: r(1) },
            handed_over("alice", &[1, 2]),
            E::RunnableOwnerReceived {
                from: from.clone(),
                runnables: vec![r(1)],
            },
            closed(3),
            reopened(4),
        ] {
            let (event_type, data) = encode(&event).unwrap();
            assert_eq!(event_type, event.event_type());
            assert_eq!(decode::<E>(&event_type, &data).unwrap(), event);
        }
        let (event_type, data) = encode(&handed_over("alice", &[1])).unwrap();
        assert_eq!(event_type, "RunnableOwnerHandedOver");
        assert_eq!(
            data,
            json!({"to": "alice", "runnables": [Uuid::from_u128(1).to_string()]})
        );
        let (event_type, data) = encode(&took(1)).unwrap();
        assert_eq!(event_type, "RunnableOwnerTook");
        assert_eq!(data, json!({"runnable": Uuid::from_u128(1).to_string()}));
        assert_eq!(
            encode(&closed(3)).unwrap(),
            ("RunnableOwnerClosed".to_string(), json!({"removed_at": 3}))
        );
        assert_eq!(
            encode(&reopened(4)).unwrap(),
            (
                "RunnableOwnerReopened".to_string(),
                json!({"registered_at": 4})
            )
        );
        assert_eq!(RunnableOwner::CATEGORY, "runnable_owner");
    }
}
