//! Load → decide → append against the exact version; decided again when another writer got
//! there first; a held state appended against without reading; an attempt's events written
//! once however often it is retried.

use super::*;
use crate::execute::Written;
use crate::CommandError;
use bosun_domain::identity::{Team, TeamCommand, TeamEvent, TeamName, Username};
use bosun_domain::jobs::{Job, JobCommand, JobEvent, OutputStream, Submission, Variables};
use bosun_domain::{Aggregate, DomainError};
use std::sync::atomic::{AtomicUsize, Ordering};

fn team() -> TeamName {
    TeamName::parse("ops").unwrap()
}

fn name(n: &str) -> Username {
    Username::parse(n).unwrap()
}

fn added(n: &str) -> TeamEvent {
    TeamEvent::TeamMemberAdded {
        name: team(),
        username: name(n),
    }
}

fn add(n: &str) -> TeamCommand {
    TeamCommand::AddMember {
        username: name(n),
        user_exists: true,
    }
}

async fn team_of_ann(commands: &Commands<Racing>) {
    commands
        .execute::<Team>("ops", &SYSTEM, &origin(), |t| {
            t.handle(TeamCommand::Create {
                name: team(),
                creator: name("ann"),
            })
        })
        .await
        .unwrap();
}

pub(crate) fn submission(job_id: Uuid, created_by: &str) -> Submission {
    Submission {
        job_id,
        name: None,
        app: "shop".into(),
        env: "production".into(),
        task: "deploy".into(),
        variables: Variables::default(),
        command: vec!["true".into()],
        timeout_seconds: None,
        notification_emails: vec![],
        orchestration_id: None,
        initialized_by: "manual".into(),
        created_by: created_by.into(),
        request_digest: None,
        tasks: vec![],
        scheduled_for: None,
        restarted_from: None,
        role_job: None,
    }
}

pub(crate) async fn submitted(commands: &Commands<Racing>, created_by: &str) -> Uuid {
    let job_id = Uuid::new_v4();
    commands
        .execute::<Job>(&job_id.to_string(), &SYSTEM, &origin(), |j| {
            j.handle(JobCommand::Submit(Box::new(submission(job_id, created_by))))
        })
        .await
        .unwrap();
    job_id
}

fn start() -> JobCommand {
    JobCommand::Start {
        worker: "w1".into(),
        pid: Some(7),
        command: vec!["true".into()],
    }
}

fn started(job_id: Uuid) -> JobEvent {
    JobEvent::JobStarted {
        job_id,
        worker: "w1".into(),
        pid: Some(7),
        command: vec!["true".into()],
    }
}

fn output(text: &str) -> JobCommand {
    JobCommand::AppendOutput {
        stream: OutputStream::Stdout,
        text: text.into(),
        task: None,
    }
}

#[tokio::test]
async fn a_command_whose_stream_moved_is_decided_again_on_the_new_state() {
    let (commands, log) = commands();
    team_of_ann(&commands).await;
    // Between our load and our append, another writer adds bob.
    log.before_append_to("team-ops", "team-ops", vec![new_event(&added("bob"))]);
    let decided = AtomicUsize::new(0);
    let (state, written) = commands
        .execute::<Team>("ops", &user("ann"), &origin(), |t| {
            decided.fetch_add(1, Ordering::SeqCst);
            t.handle(add("carl"))
        })
        .await
        .unwrap();
    assert_eq!(
        decided.load(Ordering::SeqCst),
        2,
        "decided again after the conflict"
    );
    assert_eq!(
        stream::<TeamEvent>(&log, "team-ops").await,
        vec![
            TeamEvent::TeamCreated {
                name: team(),
                creator: name("ann"),
            },
            added("bob"),
            added("carl"),
        ]
    );
    assert_eq!(
        state.members,
        [name("ann"), name("bob"), name("carl")].into()
    );
    assert_eq!(written.position, Some(3));
}

#[tokio::test]
async fn a_command_the_other_writers_state_refuses_writes_nothing() {
    let (commands, log) = commands();
    let job_id = submitted(&commands, "ann").await;
    let id = format!("job-{job_id}");
    // A worker starts the job between our load and our append: it can no longer be cancelled.
    log.before_append_to(&id, &id, vec![new_event(&started(job_id))]);
    let refused = commands
        .stop(
            &user("ann"),
            &origin(),
            job_id,
            JobCommand::Cancel { reason: None },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            CommandError::Domain(e) if *e == DomainError::conflict(
                "job_not_waiting",
                "the job is processing; this needs it waiting"
            )
        ),
        "{refused:?}"
    );
    assert_eq!(
        stream::<JobEvent>(&log, &id).await,
        vec![
            JobEvent::JobSubmitted(Box::new(submission(job_id, "ann"))),
            started(job_id)
        ]
    );
}

#[tokio::test]
async fn a_stream_that_keeps_moving_gives_up_after_a_bounded_number_of_tries() {
    let (commands, log) = commands();
    team_of_ann(&commands).await;
    for n in 0..crate::execute::ATTEMPTS {
        log.before_append_to(
            "team-ops",
            "team-ops",
            vec![new_event(&added(&format!("u{n}")))],
        );
    }
    let result = commands
        .execute::<Team>("ops", &user("ann"), &origin(), |t| t.handle(add("carl")))
        .await;
    assert!(
        matches!(&result, Err(CommandError::Contended(s)) if s == "team-ops"),
        "{:?}",
        result.map(|_| ())
    );
    assert_eq!(log.pending(), 0);
    let members = commands.load::<Team>("ops").await.unwrap().0.members;
    assert!(!members.contains(&name("carl")), "never written");
}

#[tokio::test]
async fn a_held_state_is_appended_against_its_version_and_reloaded_when_it_is_stale() {
    let (commands, log) = commands();
    let job_id = submitted(&commands, "ann").await;
    let id = job_id.to_string();
    let mut held = commands.hold::<Job>(&id).await.unwrap();
    // Cancelled behind the holder's back: its stale state would start the job, the log's
    // version refuses the append, and the reloaded state refuses the start.
    commands
        .stop(
            &user("ann"),
            &origin(),
            job_id,
            JobCommand::Cancel { reason: None },
        )
        .await
        .unwrap();
    let refused = commands
        .execute_held(&mut held, &SYSTEM, &origin(), Uuid::new_v4(), |j: &Job| {
            j.handle(start())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            CommandError::Domain(DomainError::Conflict {
                code: "job_finished",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(held.state, commands.load::<Job>(&id).await.unwrap().0);
    assert_eq!(held.version(), Some(1));
    assert_eq!(
        stream::<JobEvent>(&log, &format!("job-{id}")).await,
        vec![
            JobEvent::JobSubmitted(Box::new(submission(job_id, "ann"))),
            JobEvent::JobCancelled {
                job_id,
                reason: None
            },
        ]
    );
}

#[tokio::test]
async fn a_refusal_by_a_state_carried_forward_is_decided_again_on_a_fresh_one() {
    let (commands, log) = commands();
    team_of_ann(&commands).await;
    let mut held = commands.hold::<Team>("ops").await.unwrap();
    commands
        .execute_held(
            &mut held,
            &user("ann"),
            &origin(),
            Uuid::new_v4(),
            |t: &Team| t.handle(add("bob")),
        )
        .await
        .unwrap();
    // Another writer adds carl; the holder, not knowing, removes carl: its state refuses (no
    // such member), so the stream is read again, and there carl is.
    append(&log, "team-ops", &[added("carl")]).await;
    let written = commands
        .execute_held(
            &mut held,
            &user("ann"),
            &origin(),
            Uuid::new_v4(),
            |t: &Team| {
                t.handle(TeamCommand::RemoveMember {
                    username: name("carl"),
                })
            },
        )
        .await
        .unwrap();
    assert_eq!(written.position, Some(4));
    assert_eq!(held.state.members, [name("ann"), name("bob")].into());
    assert_eq!(
        stream::<TeamEvent>(&log, "team-ops").await[1..],
        [
            added("bob"),
            added("carl"),
            TeamEvent::TeamMemberRemoved {
                name: team(),
                username: name("carl"),
            },
        ]
    );
}

#[tokio::test]
async fn an_attempt_retried_after_its_first_try_committed_unseen_writes_nothing_more() {
    let (commands, log) = commands();
    let job_id = submitted(&commands, "ann").await;
    let id = job_id.to_string();
    commands
        .execute_unsettled::<Job>(&id, &SYSTEM, &origin(), |j| j.handle(start()))
        .await
        .unwrap();
    let attempt = Uuid::new_v4();
    // Two holders at the same version: the first try, and the worker's state before it.
    let mut first = commands.hold::<Job>(&id).await.unwrap();
    let mut before = commands.hold::<Job>(&id).await.unwrap();
    let written = commands
        .execute_held(&mut first, &SYSTEM, &origin(), attempt, |j: &Job| {
            j.handle(output("x"))
        })
        .await
        .unwrap();
    // The reply was lost: the worker retries the same attempt, from the state it had…
    let again = commands
        .execute_held(&mut before, &SYSTEM, &origin(), attempt, |j: &Job| {
            j.handle(output("x"))
        })
        .await
        .unwrap();
    assert_eq!(again, written);
    assert_eq!(before.state, first.state);
    // …or from a state read again, which holds the first try (and decides an event at another
    // offset, with the same id): the first try's result, and the stream read again.
    let mut reloaded = commands.hold::<Job>(&id).await.unwrap();
    let once_more = commands
        .execute_held(&mut reloaded, &SYSTEM, &origin(), attempt, |j: &Job| {
            j.handle(output("x"))
        })
        .await
        .unwrap();
    assert_eq!(once_more, written);
    assert_eq!(reloaded.state, first.state);
    let outputs: Vec<JobEvent> = stream::<JobEvent>(&log, &format!("job-{id}"))
        .await
        .into_iter()
        .filter(|e| matches!(e, JobEvent::JobOutputAppended { .. }))
        .collect();
    assert_eq!(
        outputs,
        vec![JobEvent::JobOutputAppended {
            job_id,
            stream: OutputStream::Stdout,
            offset: 0,
            text: "x".into(),
            task: None,
        }],
        "written once"
    );
    // A new attempt is a new command.
    let next = commands
        .execute_held(
            &mut reloaded,
            &SYSTEM,
            &origin(),
            Uuid::new_v4(),
            |j: &Job| j.handle(output("x")),
        )
        .await
        .unwrap();
    assert_eq!(next, Written { position: Some(4) });
}

#[tokio::test]
async fn a_load_after_a_kept_state_applies_what_other_writers_appended_since() {
    let (commands, log) = commands();
    team_of_ann(&commands).await;
    let (kept, _) = commands.load::<Team>("ops").await.unwrap();
    append(&log, "team-ops", &[added("bob"), added("cat")]).await;

    let (loaded, version) = commands.load::<Team>("ops").await.unwrap();
    let (fresh, fresh_version) = another_process(&log).load::<Team>("ops").await.unwrap();
    assert_ne!(loaded, kept, "the others' members are in");
    assert_eq!((loaded, version), (fresh, fresh_version));
    assert_eq!(version, ExpectedVersion::Exact(2));
}

#[tokio::test]
async fn a_kept_state_whose_last_event_the_log_no_longer_holds_is_loaded_from_the_start() {
    let (mut commands, _) = commands();
    team_of_ann(&commands).await;
    commands
        .execute::<Team>("ops", &SYSTEM, &origin(), |t| t.handle(add("bob")))
        .await
        .unwrap();
    commands.load::<Team>("ops").await.unwrap();
    // The log is replaced under the running handler by one whose stream has as many events,
    // others (a restore, a failover): the kept state's last event is not there.
    let restored = Racing::default();
    let created = TeamEvent::TeamCreated {
        name: team(),
        creator: name("dan"),
    };
    append(&restored, "team-ops", &[created, added("eve")]).await;
    commands.store = restored.clone();

    let (loaded, version) = commands.load::<Team>("ops").await.unwrap();
    let (fresh, fresh_version) = another_process(&restored)
        .load::<Team>("ops")
        .await
        .unwrap();
    assert_eq!((loaded, version), (fresh, fresh_version));
}

#[tokio::test]
async fn a_second_load_of_a_long_stream_reads_its_tail_only() {
    let (commands, log) = commands();
    team_of_ann(&commands).await;
    let members: Vec<TeamEvent> = (0..2500).map(|i| added(&format!("u{i}"))).collect();
    append(&log, "team-ops", &members).await;
    let first = log.streamed.load(Ordering::Relaxed);
    let (state, version) = commands.load::<Team>("ops").await.unwrap();
    let read_first = log.streamed.load(Ordering::Relaxed) - first;
    assert_eq!(version, ExpectedVersion::Exact(2500));
    assert!(
        read_first >= 2501,
        "the first load read the stream: {read_first}"
    );

    append(&log, "team-ops", &[added("last")]).await;
    let before = log.streamed.load(Ordering::Relaxed);
    let (again, version) = commands.load::<Team>("ops").await.unwrap();
    let read_again = log.streamed.load(Ordering::Relaxed) - before;
    assert_eq!(version, ExpectedVersion::Exact(2501));
    assert_eq!(
        read_again, 2,
        "the kept state's last event and the new one: {read_again}"
    );
    assert_ne!(again, state);
    let (fresh, _) = another_process(&log).load::<Team>("ops").await.unwrap();
    assert_eq!(again, fresh);
}
