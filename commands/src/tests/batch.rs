//! Deciding on several aggregates at once and appending in one atomic append: every stream
//! written together or none; decided again on the reloaded states when one moved; nothing
//! appended when nothing was decided.

use super::execute::submitted;
use super::*;
use crate::{Batch, BatchAppended, CommandError, Held, Written};
use bosun_domain::identity::{Team, TeamCommand, TeamEvent, TeamName, Username};
use bosun_domain::jobs::{Job, JobCommand, JobEvent};
use bosun_domain::{Aggregate, DomainError};
use std::sync::atomic::{AtomicUsize, Ordering};

fn team(t: &str) -> TeamName {
    TeamName::parse(t).unwrap()
}

fn name(n: &str) -> Username {
    Username::parse(n).unwrap()
}

fn added(t: &str, n: &str) -> TeamEvent {
    TeamEvent::TeamMemberAdded {
        name: team(t),
        username: name(n),
    }
}

fn add(n: &str) -> TeamCommand {
    TeamCommand::AddMember {
        username: name(n),
        user_exists: true,
    }
}

async fn teams_of_ann(commands: &Commands<Racing>, teams: &[&str]) {
    for t in teams {
        commands
            .execute::<Team>(t, &SYSTEM, &origin(), |state| {
                state.handle(TeamCommand::Create {
                    name: team(t),
                    creator: name("ann"),
                })
            })
            .await
            .unwrap();
    }
}

async fn both(commands: &Commands<Racing>) -> (Held<Team>, Held<Team>) {
    (
        commands.hold::<Team>("ops").await.unwrap(),
        commands.hold::<Team>("dev").await.unwrap(),
    )
}

/// Adds `n` to both teams: an event for each team `n` is not yet in.
fn add_to_both(
    n: &str,
) -> impl Fn(&(Held<Team>, Held<Team>), &mut Batch) -> Result<(), CommandError> + '_ {
    move |(ops, dev), batch| {
        batch.add(ops, ops.state.handle(add(n))?)?;
        batch.add(dev, dev.state.handle(add(n))?)?;
        Ok(())
    }
}

#[tokio::test]
async fn both_streams_are_written_in_one_append_with_the_commands_metadata() {
    let (commands, log) = commands();
    teams_of_ann(&commands, &["ops", "dev"]).await;
    let head = head(&log).await;
    let ((), written) = commands
        .execute_batch(
            both(&commands).await,
            &user("ann"),
            &origin(),
            add_to_both("carl"),
        )
        .await
        .unwrap();
    assert_eq!(
        written,
        Written {
            position: Some(head + 2)
        }
    );
    let events = log.read_all(head + 1, 10, &Filter::all()).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.stream_id.to_string(), e.position, e.version))
            .collect::<Vec<_>>(),
        vec![
            ("team-ops".to_string(), head + 1, 1),
            ("team-dev".to_string(), head + 2, 1)
        ],
        "consecutive positions, in the order decided"
    );
    for e in &events {
        assert_eq!(e.metadata["actor"], "ann");
        assert_eq!(e.metadata["request_id"], "req-1");
    }
    assert_ne!(events[0].event_id, events[1].event_id);
    assert_eq!(
        stream::<TeamEvent>(&log, "team-ops").await[1],
        added("ops", "carl")
    );
    assert_eq!(
        stream::<TeamEvent>(&log, "team-dev").await[1],
        added("dev", "carl")
    );
}

#[tokio::test]
async fn aggregates_of_different_types_are_decided_and_written_together() {
    let (commands, log) = commands();
    teams_of_ann(&commands, &["ops"]).await;
    let job_id = submitted(&commands, "ann").await;
    let id = job_id.to_string();
    let held = (
        commands.hold::<Team>("ops").await.unwrap(),
        commands.hold::<Job>(&id).await.unwrap(),
    );
    let head = head(&log).await;
    let (members, written) = commands
        .execute_batch(held, &SYSTEM, &origin(), |(ops, job), batch| {
            let start = JobCommand::Start {
                worker: "w1".into(),
                pid: Some(7),
                command: vec!["true".into()],
            };
            batch.add(job, job.state.handle(start)?)?;
            batch.add(ops, ops.state.handle(add("carl"))?)?;
            Ok(ops.state.members.len() + 1)
        })
        .await
        .unwrap();
    assert_eq!((members, written.position), (2, Some(head + 2)));
    assert!(matches!(
        stream::<JobEvent>(&log, &format!("job-{id}")).await[..],
        [JobEvent::JobSubmitted { .. }, JobEvent::JobStarted { .. }]
    ));
    assert_eq!(
        stream::<TeamEvent>(&log, "team-ops").await[1],
        added("ops", "carl")
    );
}

#[tokio::test]
async fn after_a_conflict_on_one_stream_nothing_was_written_and_all_are_decided_again_on_the_reloaded_states(
) {
    let (commands, log) = commands();
    teams_of_ann(&commands, &["ops", "dev"]).await;
    let held = both(&commands).await;
    // Between our load and our append, another writer adds carl to dev.
    log.before_append_to(
        "team-dev",
        "team-dev",
        vec![new_event(&added("dev", "carl"))],
    );
    let decided = AtomicUsize::new(0);
    let ((), _) = commands
        .execute_batch(held, &user("ann"), &origin(), |held, batch| {
            decided.fetch_add(1, Ordering::SeqCst);
            add_to_both("carl")(held, batch)
        })
        .await
        .unwrap();
    assert_eq!(
        decided.load(Ordering::SeqCst),
        2,
        "decided again after the conflict"
    );
    assert_eq!(log.pending(), 0);
    // The first try's ops event was not written; the second decided dev needs nothing.
    assert_eq!(
        log_summary(&log).await[2..],
        [
            ("team-dev".into(), "TeamMemberAdded".into(), "other".into()),
            ("team-ops".into(), "TeamMemberAdded".into(), "ann".into()),
        ]
    );
}

#[tokio::test]
async fn a_batch_that_keeps_conflicting_is_contended_naming_the_stream() {
    let (commands, log) = commands();
    teams_of_ann(&commands, &["ops", "dev"]).await;
    for other in ["b1", "b2", "b3", "b4", "b5"] {
        log.before_append_to(
            "team-dev",
            "team-dev",
            vec![new_event(&added("dev", other))],
        );
    }
    let before = head(&log).await;
    let err = commands
        .execute_batch(
            both(&commands).await,
            &user("ann"),
            &origin(),
            add_to_both("carl"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CommandError::Contended(stream) if stream == "team-dev"),
        "{err:?}"
    );
    assert_eq!(
        head(&log).await,
        before + 5,
        "only the other writer's events"
    );
    assert!(stream::<TeamEvent>(&log, "team-ops").await.len() == 1);
}

#[tokio::test]
async fn no_events_decided_writes_nothing() {
    let (commands, log) = commands();
    teams_of_ann(&commands, &["ops", "dev"]).await;
    let ((), _) = commands
        .execute_batch(
            both(&commands).await,
            &SYSTEM,
            &origin(),
            add_to_both("carl"),
        )
        .await
        .unwrap();
    let before = head(&log).await;
    // carl is in both already.
    let ((), written) = commands
        .execute_batch(
            both(&commands).await,
            &SYSTEM,
            &origin(),
            add_to_both("carl"),
        )
        .await
        .unwrap();
    assert_eq!(written, Written::default());
    assert_eq!(head(&log).await, before);
}

#[tokio::test]
async fn a_refusal_on_any_aggregate_writes_nothing() {
    let (commands, log) = commands();
    teams_of_ann(&commands, &["ops"]).await;
    let held = (
        commands.hold::<Team>("ops").await.unwrap(),
        commands.hold::<Team>("nope").await.unwrap(),
    );
    let before = head(&log).await;
    let err = commands
        .execute_batch(held, &SYSTEM, &origin(), |(ops, nope), batch| {
            batch.add(ops, ops.state.handle(add("carl"))?)?;
            batch.add(nope, nope.state.handle(add("carl"))?)?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Domain(DomainError::NotFound(_))),
        "{err:?}"
    );
    assert_eq!(head(&log).await, before);
}

#[tokio::test]
async fn a_batch_retried_with_its_attempt_after_it_committed_writes_nothing_more() {
    let (commands, log) = commands();
    teams_of_ann(&commands, &["ops", "dev"]).await;
    let held = both(&commands).await;
    let batch = || {
        let mut batch = Batch::new();
        add_to_both("carl")(&held, &mut batch).unwrap();
        batch
    };
    let attempt = Uuid::new_v4();
    let first = commands
        .append_batch(batch(), &SYSTEM, &origin(), attempt)
        .await
        .unwrap();
    let head_after = head(&log).await;
    assert_eq!(
        first,
        BatchAppended::Written(Written {
            position: Some(head_after)
        })
    );
    // The reply was lost: the same attempt, decided on the same states, again.
    let again = commands
        .append_batch(batch(), &SYSTEM, &origin(), attempt)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(head(&log).await, head_after);
    // The ids are the attempt's, one numbering over both streams.
    let ids: Vec<Uuid> = log
        .read_all(head_after - 1, 10, &Filter::all())
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(
        ids,
        vec![
            Uuid::new_v5(&attempt, &0u64.to_be_bytes()),
            Uuid::new_v5(&attempt, &1u64.to_be_bytes())
        ]
    );
    // A new attempt on the old states is a conflict, naming the first stream that moved.
    let conflict = commands
        .append_batch(batch(), &SYSTEM, &origin(), Uuid::new_v4())
        .await
        .unwrap();
    assert_eq!(
        conflict,
        BatchAppended::Conflict {
            stream: "team-ops".into()
        }
    );
}

#[tokio::test]
async fn a_stream_added_twice_appends_its_events_in_order_but_not_from_two_versions() {
    let (commands, log) = commands();
    teams_of_ann(&commands, &["ops"]).await;
    let ops = commands.hold::<Team>("ops").await.unwrap();
    let mut batch = Batch::new();
    batch.add(&ops, vec![added("ops", "bob")]).unwrap();
    batch.add(&ops, vec![added("ops", "carl")]).unwrap();
    batch.add::<Team>(&ops, vec![]).unwrap();
    assert_eq!(batch.streams().count(), 1);
    commands
        .append_batch(batch, &SYSTEM, &origin(), Uuid::new_v4())
        .await
        .unwrap();
    assert_eq!(
        stream::<TeamEvent>(&log, "team-ops").await[1..],
        [added("ops", "bob"), added("ops", "carl")]
    );
    let newer = commands.hold::<Team>("ops").await.unwrap();
    let mut batch = Batch::new();
    batch.add(&ops, vec![added("ops", "dan")]).unwrap();
    let err = batch.add(&newer, vec![added("ops", "eve")]).unwrap_err();
    assert!(matches!(err, CommandError::Internal(_)), "{err:?}");
}

/// A command over any store that holds aggregates of two types and executes a batch, as a
/// handler's future: it must be `Send` (axum, `tokio::spawn`).
async fn generic_command<S: EventStore>(commands: &Commands<S>) -> Result<Written, CommandError> {
    let held = (
        commands.hold::<Team>("ops").await?,
        vec![commands.hold::<Job>("j").await?],
    );
    let ((), written) = commands
        .execute_batch(held, &SYSTEM, &origin(), |(ops, _jobs), batch| {
            batch.add(ops, vec![])?;
            Ok(())
        })
        .await?;
    Ok(written)
}

fn assert_send<T: Send>(_: T) {}

fn generic_is_send<S: EventStore>(commands: &Commands<S>) {
    assert_send(generic_command(commands));
}

#[tokio::test]
async fn a_batch_commands_future_is_send() {
    let (commands, _) = commands();
    generic_is_send(&commands);
    let spawned = commands.clone();
    let written = tokio::spawn(async move { generic_command(&spawned).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(written, Written::default());
}
