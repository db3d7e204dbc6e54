//! The service calls reactor: one active instance across all nodes (the `service calls`
//! advisory lock). Every second it reads the due pending intents (`service_calls` read model:
//! those that got no answer, at their `retry_at`; and those with no attempt recorded once the
//! request that made the first one must be done with it, [`super::handover`] after its
//! `requested_at`) and makes their calls, each in a task of its own, unless this process is
//! making them already. Each is checked due again against the instance's stream just before
//! it is made (the read model may lag behind it).
//!
//! Its attempts belong to the lead that started them: when the lock is lost they are aborted,
//! for the next holder to make again (a call is made at least once). At most
//! [`MAX_IN_FLIGHT`] of its own attempts run at once.
//!
//! A call made here counts as retried (an earlier attempt may have reached the service), so the
//! protocol's retried-call rules apply (`client`).
//!
//! Does not own: the attempt itself (`services`), the read model (`projections`).

use super::{By, ServiceCalls};
use crate::leader::Leader;
use bosun_commands::services::Intent;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::task::JoinSet;

/// The reactor's advisory lock ("bosun_sv"; the scheduler's is "bosun_sc").
pub const LOCK_KEY: i64 = 0x626f_7375_6e5f_7376;
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Pending intents read per look.
const PAGE: i64 = 200;
/// The reactor's attempts running at once, at most.
const MAX_IN_FLIGHT: usize = 64;

pub(crate) async fn run(calls: ServiceCalls, config: tokio_postgres::Config) {
    loop {
        let leader = Leader::acquire(&config, LOCK_KEY, "service calls").await;
        lead(&calls, &leader).await;
        tracing::warn!("lost the service calls lock; trying to take it again");
    }
}

async fn lead(calls: &ServiceCalls, leader: &Leader) {
    // Dropped, and so aborted, with this lead.
    let mut attempts = JoinSet::new();
    let handed_over = super::handover(calls.settings().timeout);
    loop {
        while let Some(ended) = attempts.try_join_next() {
            if let Err(e) = ended {
                tracing::error!(error = %e, "a service call's attempt ended without an outcome");
            }
        }
        if !leader.holds().await {
            return;
        }
        match calls
            .queries()
            .pending_service_calls(PAGE, handed_over)
            .await
        {
            Ok(rows) => {
                for row in rows {
                    if attempts.len() >= MAX_IN_FLIGHT {
                        break;
                    }
                    // None: this process is making it already.
                    let Some(in_flight) = calls.mark_in_flight(row.request_id) else {
                        continue;
                    };
                    let intent = Intent {
                        service: row.service,
                        instance: row.instance,
                        request_id: row.request_id,
                    };
                    let calls = calls.clone();
                    attempts.spawn(async move {
                        calls.attempt_marked(intent, By::Reactor, in_flight).await;
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the pending service calls failed"),
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Whether a pending call is due now: at its `retry_at` after an unanswered attempt; else once
/// its first attempt, made by the request that recorded it, must be over ([`super::handover`]
/// after the intent).
pub(super) fn is_due(
    retry_at: Option<DateTime<Utc>>,
    requested_at: DateTime<Utc>,
    now: DateTime<Utc>,
    timeout: Duration,
) -> bool {
    match retry_at {
        Some(retry_at) => retry_at <= now,
        None => requested_at + super::chrono_duration(super::handover(timeout)) <= now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_due_at_its_retry_or_once_its_first_attempt_is_over() {
        let now = Utc::now();
        let timeout = Duration::from_secs(10);
        let ago = |s| now - chrono::Duration::seconds(s);
        assert!(is_due(Some(ago(0)), ago(100), now, timeout));
        assert!(!is_due(Some(ago(-1)), ago(100), now, timeout));
        assert!(
            !is_due(None, ago(29), now, timeout),
            "the request may still be calling, or undoing, or recording"
        );
        assert!(is_due(None, ago(30), now, timeout));
        assert!(is_due(None, ago(600), now, timeout));
    }
}
