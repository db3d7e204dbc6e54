//! The one rule for a retried append, shared by every store: if every event id was appended
//! before, as consecutive events of the same stream, the retry gets that first result; if only
//! some were, it is a conflict; if none were, it is a new append.
//!
//! A multi-append is a retry when every part is one by that rule and, besides, all its events
//! landed at consecutive positions in the order of the parts, as one multi-append writes them:
//! it gets the first results, one per part. Any other overlap with the log is a conflict.

use crate::error::AppendError;
use crate::event::{AppendResult, NewEvent, StreamAppend};
use crate::stream_id::StreamId;
use uuid::Uuid;

/// Where an already-appended event landed.
#[derive(Clone, Debug)]
pub(crate) struct Landed {
    pub stream_id: StreamId,
    pub version: u64,
    pub position: u64,
}

/// The results of the earlier append `parts` retries, if it is a retry (see the module's rule).
pub(crate) fn earlier_appends(
    parts: &[StreamAppend],
    lookup: impl Fn(&Uuid) -> Option<Landed>,
) -> Result<Option<Vec<AppendResult>>, AppendError> {
    let found: Vec<Vec<Option<Landed>>> = parts
        .iter()
        .map(|p| p.events.iter().map(|e| lookup(&e.event_id)).collect())
        .collect();
    if found.iter().flatten().all(Option::is_none) {
        return Ok(None);
    }
    let mut results = Vec::with_capacity(parts.len());
    for (part, found) in parts.iter().zip(found) {
        results.push(earlier_part(&part.stream, &part.events, found)?);
    }
    if parts.len() > 1 {
        // Consecutive positions over the whole call, in the order of its parts.
        for (index, (part, result)) in parts.iter().zip(&results).enumerate() {
            let spans_its_events = result
                .last_position
                .checked_sub(result.first_position)
                .is_some_and(|span| span + 1 == part.events.len() as u64);
            let follows =
                index == 0 || results[index - 1].last_position + 1 == result.first_position;
            if !spans_its_events || !follows {
                return Err(AppendError::EventIdConflict {
                    event_id: part.events[0].event_id,
                });
            }
        }
    }
    Ok(Some(results))
}

fn earlier_part(
    stream: &StreamId,
    events: &[NewEvent],
    found: Vec<Option<Landed>>,
) -> Result<AppendResult, AppendError> {
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
    Ok(AppendResult {
        stream_id: stream.clone(),
        first_version: first.version,
        last_version: last.version,
        first_position: first.position,
        last_position: last.position,
    })
}
