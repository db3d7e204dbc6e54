//! The one rule for a retried append, shared by every store: if every event id was appended
//! before, as consecutive events of the same stream, the retry gets that first result; if only
//! some were, it is a conflict; if none were, it is a new append.

use crate::error::AppendError;
use crate::event::{AppendResult, NewEvent};
use crate::stream_id::StreamId;
use uuid::Uuid;

/// Where an already-appended event landed.
#[derive(Clone, Debug)]
pub(crate) struct Landed {
    pub stream_id: StreamId,
    pub version: u64,
    pub position: u64,
}

pub(crate) fn earlier_append(
    stream: &StreamId,
    events: &[NewEvent],
    lookup: impl Fn(&Uuid) -> Option<Landed>,
) -> Result<Option<AppendResult>, AppendError> {
    let found: Vec<Option<Landed>> = events.iter().map(|e| lookup(&e.event_id)).collect();
    if found.iter().all(Option::is_none) {
        return Ok(None);
    }
    let conflict = |i: usize| AppendError::EventIdConflict {
        event_id: events[i].event_id,
    };
    let mut landed = Vec::with_capacity(found.len());
    for (i, l) in found.into_iter().enumerate() {
        match l {
            Some(l) if &l.stream_id == stream => landed.push(l),
            _ => return Err(conflict(i)),
        }
    }
    if let Some(i) = landed
        .windows(2)
        .position(|w| w[1].version != w[0].version + 1)
    {
        return Err(conflict(i + 1));
    }
    let (first, last) = (&landed[0], &landed[landed.len() - 1]);
    Ok(Some(AppendResult {
        stream_id: stream.clone(),
        first_version: first.version,
        last_version: last.version,
        first_position: first.position,
        last_position: last.position,
    }))
}
