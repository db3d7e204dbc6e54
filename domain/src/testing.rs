//! Given these past events, when this command, then exactly these events, or exactly this
//! refusal: the one way every aggregate's tests state a decision.
//!
//! ```ignore
//! given::<Job>(&[submitted()])
//!     .when(JobCommand::Cancel { reason: None })
//!     .then(vec![JobEvent::JobCancelled { job_id, reason: None }]);
//! ```

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use std::fmt::Debug;

/// An aggregate after its past events.
pub(crate) struct Given<A> {
    state: A,
}

/// The aggregate `A` after `past`, applied in order.
pub(crate) fn given<A: Aggregate>(past: &[A::Event]) -> Given<A> {
    let mut state = A::default();
    past.iter().for_each(|event| state.apply(event));
    Given { state }
}

impl<A: Aggregate> Given<A> {
    /// What the aggregate decides on `command`.
    pub(crate) fn when(self, command: A::Command) -> Then<A::Event> {
        Then {
            result: self.state.handle(command),
        }
    }

    /// The state itself, for what a decision does not show (what a worker reads of it).
    pub(crate) fn state(&self) -> &A {
        &self.state
    }
}

/// A decision, to compare with what it must be.
#[must_use = "a decision says nothing until it is compared: call then, then_nothing or refused"]
pub(crate) struct Then<E> {
    result: Result<Vec<E>, DomainError>,
}

impl<E: PartialEq + Debug> Then<E> {
    /// The command caused exactly `events`, in this order.
    #[track_caller]
    pub(crate) fn then(self, events: Vec<E>) {
        match self.result {
            Ok(produced) => assert_eq!(produced, events, "other events than expected"),
            Err(e) => panic!("expected {events:?}, the command was refused: {e:?}"),
        }
    }

    /// The command was accepted and changes nothing (it was already so).
    #[track_caller]
    pub(crate) fn then_nothing(self) {
        self.then(vec![]);
    }

    /// The command was refused with exactly `error` (kind, code, field and message).
    #[track_caller]
    pub(crate) fn refused(self, error: DomainError) {
        match self.result {
            Err(e) => assert_eq!(e, error, "another refusal than expected"),
            Ok(events) => panic!("expected the refusal {error:?}, got the events {events:?}"),
        }
    }
}
