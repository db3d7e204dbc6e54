//! Owners' registries of runnables on the in-memory log: creating and forking take a place on
//! the owner's registry in the same append as `RunnableCreated` (anonymous and registered users
//! each with their quota, admins with none), removing and reaping give it back in the same
//! append, a fork racing for the last place loses with nothing written, and a hand-over moves
//! every runnable in one append, a fork racing it included, and does nothing when done already.
//! Removing a user removes their runnables and closes their registry, so a fork racing the
//! removal is either removed or refused, never left behind; registering the name again reopens
//! it (removing what a failed cleanup left), and a removal whose cleanup failed is finished by
//! removing the user again.

use super::*;
use crate::runnables::RunnableRules;
use crate::{CommandError, Written};
use bosun_domain::identity::Username;
use bosun_domain::runnables::{
    Digest, FileEntry, FilePath, RunnableEvent, RunnableId, RunnableName, RunnableOwnerEvent,
    StartCommand,
};
use bosun_domain::DomainError;
use chrono::Utc;
use std::time::Duration;

const ANON: &str = "anon-00112233445566ff";
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// At most two runnables for a registered user, one for an anonymous one.
fn rules() -> RunnableRules {
    RunnableRules {
        quota_anonymous: Some(1),
        quota_user: Some(2),
        ..RunnableRules::default()
    }
}

fn created(id: Uuid, owner: &str) -> RunnableEvent {
    RunnableEvent::RunnableCreated {
        id: RunnableId::new(id),
        name: RunnableName::parse("hello").unwrap(),
        owner: Username::parse(owner).unwrap(),
        parent: None,
        start_command: StartCommand::parse("sh main.sh").unwrap(),
        files: vec![FileEntry {
            path: FilePath::parse("main.sh").unwrap(),
            digest: Digest::of(b"echo hi"),
            size: 7,
        }],
        at: Utc::now(),
    }
}

/// A saved root runnable of the admin `root`'s, as another writer appends it: its id.
async fn parent(log: &Racing) -> String {
    let id = Uuid::new_v4();
    let RunnableEvent::RunnableCreated {
        start_command,
        files,
        ..
    } = created(id, "root")
    else {
        unreachable!()
    };
    let saved = RunnableEvent::RunnableImageSaved {
        digest: Digest::of(b"a manifest"),
        start_command,
        files,
        at: Utc::now(),
    };
    append(
        log,
        &format!("runnable-{id}"),
        &[created(id, "root"), saved],
    )
    .await;
    id.to_string()
}

fn took(id: Uuid) -> RunnableOwnerEvent {
    RunnableOwnerEvent::RunnableOwnerTook {
        runnable: RunnableId::new(id),
    }
}

fn registry(owner: &str) -> String {
    format!("runnable_owner-{owner}")
}

async fn held(log: &Racing, owner: &str) -> Vec<Uuid> {
    let (state, _) = another_process(log)
        .load::<bosun_domain::runnables::RunnableOwner>(owner)
        .await
        .unwrap();
    state.runnables().iter().map(|r| r.as_uuid()).collect()
}

fn forbidden_code(error: &CommandError) -> Option<&'static str> {
    match error {
        CommandError::Domain(DomainError::Forbidden { code, .. }) => Some(code),
        _ => None,
    }
}

fn conflict_code(error: &CommandError) -> Option<&'static str> {
    match error {
        CommandError::Domain(DomainError::Conflict { code, .. }) => Some(code),
        _ => None,
    }
}

async fn fork(
    commands: &Commands<Racing>,
    actor: &Actor,
    from: &str,
) -> Result<Uuid, CommandError> {
    commands
        .fork_runnable(actor, &origin(), &rules(), from, None)
        .await
        .map(|(view, _)| view.id)
}

#[tokio::test]
async fn a_fork_takes_its_owners_place_in_the_same_append() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    let before = head(&log).await;
    let (view, written) = commands
        .fork_runnable(&user("ann"), &origin(), &rules(), &from, None)
        .await
        .unwrap();
    assert_eq!(written.position, Some(before + 2));
    assert_eq!(
        log_summary(&log).await[before as usize..],
        [
            (
                format!("runnable-{}", view.id),
                "RunnableCreated".to_string(),
                "ann".to_string()
            ),
            (
                registry("ann"),
                "RunnableOwnerTook".to_string(),
                "ann".to_string()
            ),
        ]
    );
    assert_eq!(
        stream::<RunnableOwnerEvent>(&log, &registry("ann")).await,
        vec![took(view.id)]
    );
}

#[tokio::test]
async fn a_user_at_the_quota_forks_nothing_and_an_admin_has_none() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    let ann = user("ann");
    fork(&commands, &ann, &from).await.unwrap();
    fork(&commands, &ann, &from).await.unwrap();
    let before = head(&log).await;
    let refused = fork(&commands, &ann, &from).await.unwrap_err();
    assert_eq!(
        forbidden_code(&refused),
        Some("runnable_quota_exceeded"),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("2 of 2"), "{refused}");
    assert_eq!(head(&log).await, before, "nothing written");
    // An anonymous user has the anonymous quota: one.
    let anon = user(ANON);
    fork(&commands, &anon, &from).await.unwrap();
    let refused = fork(&commands, &anon, &from).await.unwrap_err();
    assert_eq!(forbidden_code(&refused), Some("runnable_quota_exceeded"));
    assert!(refused.to_string().contains("1 of 1"), "{refused}");
    // An admin is never limited; a root runnable's owner is counted all the same.
    for _ in 0..3 {
        fork(&commands, &admin("root"), &from).await.unwrap();
    }
    assert_eq!(held(&log, "root").await.len(), 3);
    // Unlimited: no quota for registered users.
    let unlimited = RunnableRules {
        quota_user: None,
        ..rules()
    };
    commands
        .fork_runnable(&ann, &origin(), &unlimited, &from, None)
        .await
        .unwrap();
    assert_eq!(held(&log, "ann").await.len(), 3);
}

#[tokio::test]
async fn of_two_forks_racing_for_the_last_place_one_wins() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    let ann = user("ann");
    fork(&commands, &ann, &from).await.unwrap();
    // Just before our append, another node forks for ann, taking her last place.
    let other = Uuid::new_v4();
    log.before_append_to_all(
        &registry("ann"),
        vec![
            (
                &format!("runnable-{other}"),
                vec![new_event(&created(other, "ann"))],
            ),
            (&registry("ann"), vec![new_event(&took(other))]),
        ],
    );
    let before = head(&log).await;
    let refused = fork(&commands, &ann, &from).await.unwrap_err();
    assert_eq!(
        forbidden_code(&refused),
        Some("runnable_quota_exceeded"),
        "{refused:?}"
    );
    assert_eq!(log.pending(), 0);
    assert_eq!(head(&log).await, before + 2, "only the other node's fork");
    assert_eq!(held(&log, "ann").await.len(), 2);
}

#[tokio::test]
async fn of_two_concurrent_forks_at_the_quotas_edge_exactly_one_lands() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    let ann = user("ann");
    fork(&commands, &ann, &from).await.unwrap();
    let other = another_process(&log);
    let (a, b) = tokio::join!(fork(&commands, &ann, &from), fork(&other, &ann, &from));
    assert_eq!(
        [&a, &b].iter().filter(|r| r.is_ok()).count(),
        1,
        "{a:?} {b:?}"
    );
    let loser = a.err().or(b.err()).unwrap();
    assert_eq!(forbidden_code(&loser), Some("runnable_quota_exceeded"));
    assert_eq!(held(&log, "ann").await.len(), 2);
}

#[tokio::test]
async fn removing_or_reaping_gives_the_place_back_in_the_same_append() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    let ann = user("ann");
    let one = fork(&commands, &ann, &from).await.unwrap();
    let two = fork(&commands, &ann, &from).await.unwrap();
    let before = head(&log).await;
    let written = commands
        .remove_runnable(&ann, &origin(), one)
        .await
        .unwrap();
    assert_eq!(written.position, Some(before + 2));
    let summary = log_summary(&log).await;
    let mut removal = summary[before as usize..].to_vec();
    removal.sort();
    assert_eq!(
        removal,
        [
            (
                format!("runnable-{one}"),
                "RunnableRemoved".to_string(),
                "ann".to_string()
            ),
            (
                registry("ann"),
                "RunnableOwnerReleased".to_string(),
                "ann".to_string()
            ),
        ]
    );
    assert_eq!(held(&log, "ann").await, vec![two]);
    let three = fork(&commands, &ann, &from).await.unwrap();
    // The reaper's reap (a week and a day idle) gives one back too.
    let reaped = commands
        .reap_runnable(two, WEEK, Utc::now() + chrono::Duration::days(8))
        .await
        .unwrap();
    assert!(reaped.is_some());
    let last = log_summary(&log).await;
    assert!(last.contains(&(
        registry("ann"),
        "RunnableOwnerReleased".to_string(),
        "reaper".to_string()
    )));
    assert_eq!(held(&log, "ann").await, vec![three]);
    // A reap not due releases nothing.
    let before = head(&log).await;
    assert_eq!(
        commands
            .reap_runnable(three, WEEK, Utc::now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(head(&log).await, before);
    fork(&commands, &ann, &from).await.unwrap();
}

#[tokio::test]
async fn a_hand_over_moves_every_runnable_in_one_append_and_closes_the_registry() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    let rules = RunnableRules {
        quota_anonymous: Some(2),
        ..rules()
    };
    let anon = user(ANON);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (view, _) = commands
            .fork_runnable(&anon, &origin(), &rules, &from, None)
            .await
            .unwrap();
        ids.push(view.id);
    }
    ids.sort();
    let (a, b) = (
        Username::parse(ANON).unwrap(),
        Username::parse("ann").unwrap(),
    );
    let before = head(&log).await;
    let written = commands
        .hand_over_runnables(&origin(), &a, &b)
        .await
        .unwrap();
    assert_eq!(
        written.position,
        Some(before + 4),
        "one append of four events"
    );
    let mut summary = log_summary(&log).await[before as usize..].to_vec();
    summary.sort();
    let mut wanted = vec![
        (
            registry(ANON),
            "RunnableOwnerHandedOver".to_string(),
            "identity".to_string(),
        ),
        (
            registry("ann"),
            "RunnableOwnerReceived".to_string(),
            "identity".to_string(),
        ),
    ];
    for id in &ids {
        wanted.push((
            format!("runnable-{id}"),
            "RunnableOwnerChanged".to_string(),
            "identity".to_string(),
        ));
    }
    wanted.sort();
    assert_eq!(summary, wanted);
    let runnable_ids: Vec<RunnableId> = ids.iter().map(|id| RunnableId::new(*id)).collect();
    assert_eq!(
        stream::<RunnableOwnerEvent>(&log, &registry(ANON))
            .await
            .last(),
        Some(&RunnableOwnerEvent::RunnableOwnerHandedOver {
            to: b.clone(),
            runnables: runnable_ids.clone(),
        })
    );
    assert_eq!(
        stream::<RunnableOwnerEvent>(&log, &registry("ann")).await,
        vec![RunnableOwnerEvent::RunnableOwnerReceived {
            from: a.clone(),
            runnables: runnable_ids,
        }]
    );
    assert_eq!(held(&log, "ann").await, ids);
    assert!(held(&log, ANON).await.is_empty());
    for id in &ids {
        let events = stream::<RunnableEvent>(&log, &format!("runnable-{id}")).await;
        assert!(matches!(
            events.last(),
            Some(RunnableEvent::RunnableOwnerChanged { from, to, .. }) if *from == a && *to == b
        ));
    }
    // Again (after a crash, say): nothing more.
    let before = head(&log).await;
    assert_eq!(
        commands
            .hand_over_runnables(&origin(), &a, &b)
            .await
            .unwrap(),
        Written::default()
    );
    assert_eq!(head(&log).await, before);
    // To someone else: refused.
    let bob = Username::parse("bob").unwrap();
    let refused = commands
        .hand_over_runnables(&origin(), &a, &bob)
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("owner_registered"));
    // The anonymous name makes no more runnables.
    let refused = commands
        .fork_runnable(&anon, &origin(), &rules, &from, None)
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("owner_registered"));
    // They are ann's: she removes one and it leaves her registry.
    commands
        .remove_runnable(&user("ann"), &origin(), ids[0])
        .await
        .unwrap();
    assert_eq!(held(&log, "ann").await, vec![ids[1]]);
}

#[tokio::test]
async fn a_fork_racing_a_hand_over_is_handed_over_too() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    let anon = user(ANON);
    let first = fork(&commands, &anon, &from).await.unwrap();
    // Just before the hand-over's append, a fork of the anonymous user's lands.
    let raced = Uuid::new_v4();
    log.before_append_to_all(
        &registry(ANON),
        vec![
            (
                &format!("runnable-{raced}"),
                vec![new_event(&created(raced, ANON))],
            ),
            (&registry(ANON), vec![new_event(&took(raced))]),
        ],
    );
    let (a, b) = (
        Username::parse(ANON).unwrap(),
        Username::parse("ann").unwrap(),
    );
    commands
        .hand_over_runnables(&origin(), &a, &b)
        .await
        .unwrap();
    assert_eq!(log.pending(), 0);
    let mut both = vec![first, raced];
    both.sort();
    assert_eq!(held(&log, "ann").await, both);
    for id in both {
        let events = stream::<RunnableEvent>(&log, &format!("runnable-{id}")).await;
        assert!(
            matches!(
                events.last(),
                Some(RunnableEvent::RunnableOwnerChanged { .. })
            ),
            "{id}: {events:?}"
        );
    }
}

#[tokio::test]
async fn a_hand_over_of_nothing_closes_the_registry_all_the_same() {
    let (commands, log) = commands();
    let (a, b) = (
        Username::parse(ANON).unwrap(),
        Username::parse("ann").unwrap(),
    );
    let written = commands
        .hand_over_runnables(&origin(), &a, &b)
        .await
        .unwrap();
    assert!(written.position.is_some());
    assert_eq!(
        stream::<RunnableOwnerEvent>(&log, &registry(ANON)).await,
        vec![RunnableOwnerEvent::RunnableOwnerHandedOver {
            to: b,
            runnables: vec![],
        }]
    );
    assert!(stream::<RunnableOwnerEvent>(&log, &registry("ann"))
        .await
        .is_empty());
}

#[tokio::test]
async fn removing_a_user_removes_what_their_registry_holds() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    let ann = user("ann");
    let mine = fork(&commands, &ann, &from).await.unwrap();
    let bobs = fork(&commands, &user("bob"), &from).await.unwrap();
    let written = commands
        .remove_runnables_of(
            &admin("root"),
            &origin(),
            &Username::parse("ann").unwrap(),
            0,
        )
        .await
        .unwrap();
    assert!(written.position.is_some());
    let events = stream::<RunnableEvent>(&log, &format!("runnable-{mine}")).await;
    assert!(matches!(
        events.last(),
        Some(RunnableEvent::RunnableRemoved { .. })
    ));
    assert!(held(&log, "ann").await.is_empty());
    assert_eq!(held(&log, "bob").await, vec![bobs]);
    let events = stream::<RunnableEvent>(&log, &format!("runnable-{bobs}")).await;
    assert!(matches!(
        events.last(),
        Some(RunnableEvent::RunnableCreated { .. })
    ));
    // Nothing left: nothing written.
    assert_eq!(
        commands
            .remove_runnables_of(
                &admin("root"),
                &origin(),
                &Username::parse("ann").unwrap(),
                0,
            )
            .await
            .unwrap(),
        Written::default()
    );
}

fn new_user(username: &str) -> crate::identity::NewUser {
    crate::identity::NewUser {
        username: Username::parse(username).unwrap(),
        password: bosun_domain::identity::Password::parse("password", "secret-pw-1").unwrap(),
        email: None,
        admin: false,
    }
}

async fn register(commands: &Commands<Racing>, username: &str) {
    commands
        .register(&SYSTEM, &origin(), &new_user(username))
        .await
        .unwrap();
}

/// The version of `username`'s stream's last event.
async fn user_version(log: &Racing, username: &str) -> u64 {
    stream::<bosun_domain::identity::UserEvent>(log, &format!("user-{username}"))
        .await
        .len() as u64
        - 1
}

fn closed(removed_at: u64) -> RunnableOwnerEvent {
    RunnableOwnerEvent::RunnableOwnerClosed { removed_at }
}

fn is_removed(events: &[RunnableEvent]) -> bool {
    matches!(events.last(), Some(RunnableEvent::RunnableRemoved { .. }))
}

#[tokio::test]
async fn a_fork_landing_between_the_last_read_and_the_close_is_removed_too() {
    let (commands, log) = commands();
    register(&commands, "ann").await;
    // ann owns nothing: the cleanup's only append to her registry is the close. Just before it,
    // a fork of hers still under way lands.
    let raced = Uuid::new_v4();
    log.before_append_to_all(
        &registry("ann"),
        vec![
            (
                &format!("runnable-{raced}"),
                vec![new_event(&created(raced, "ann"))],
            ),
            (&registry("ann"), vec![new_event(&took(raced))]),
        ],
    );
    commands
        .remove_user(&admin("root"), &origin(), "ann")
        .await
        .unwrap();
    assert_eq!(log.pending(), 0);
    let removed_at = user_version(&log, "ann").await;
    assert!(is_removed(
        &stream::<RunnableEvent>(&log, &format!("runnable-{raced}")).await
    ));
    assert_eq!(
        stream::<RunnableOwnerEvent>(&log, &registry("ann")).await,
        vec![
            took(raced),
            RunnableOwnerEvent::RunnableOwnerReleased {
                runnable: RunnableId::new(raced),
            },
            closed(removed_at),
        ]
    );
}

#[tokio::test]
async fn a_fork_decided_before_the_close_is_refused_after_it() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    let ann = user("ann");
    // Just before the fork's append, ann's removal closes her registry.
    log.before_append_to(
        &registry("ann"),
        &registry("ann"),
        vec![new_event(&closed(1))],
    );
    let before = head(&log).await;
    let refused = fork(&commands, &ann, &from).await.unwrap_err();
    assert_eq!(
        conflict_code(&refused),
        Some("owner_removed"),
        "{refused:?}"
    );
    assert_eq!(log.pending(), 0);
    assert_eq!(head(&log).await, before + 1, "only the close");
    assert!(held(&log, "ann").await.is_empty());
}

#[tokio::test]
async fn registering_the_name_again_reopens_the_registry() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    register(&commands, "ann").await;
    fork(&commands, &user("ann"), &from).await.unwrap();
    commands
        .remove_user(&admin("root"), &origin(), "ann")
        .await
        .unwrap();
    let removed_at = user_version(&log, "ann").await;
    let refused = fork(&commands, &user("ann"), &from).await.unwrap_err();
    assert_eq!(conflict_code(&refused), Some("owner_removed"));
    register(&commands, "ann").await;
    let registered_at = user_version(&log, "ann").await;
    assert_eq!(registered_at, removed_at + 1);
    let events = stream::<RunnableOwnerEvent>(&log, &registry("ann")).await;
    assert_eq!(
        events[events.len() - 2..],
        [
            closed(removed_at),
            RunnableOwnerEvent::RunnableOwnerReopened { registered_at },
        ]
    );
    // The reopen is appended before the user, by the identity system.
    let summary = log_summary(&log).await;
    let at = |stream: &str, event: &str| {
        summary
            .iter()
            .rposition(|(s, e, _)| s == stream && e == event)
            .unwrap()
    };
    assert!(at(&registry("ann"), "RunnableOwnerReopened") < at("user-ann", "UserRegistered"));
    assert_eq!(
        summary[at(&registry("ann"), "RunnableOwnerReopened")].2,
        "identity"
    );
    let mine = fork(&commands, &user("ann"), &from).await.unwrap();
    assert_eq!(held(&log, "ann").await, vec![mine]);
    // A late close for the earlier removal (its cleanup outlived the registration) is nothing.
    let before = head(&log).await;
    commands
        .remove_runnables_of(
            &admin("root"),
            &origin(),
            &Username::parse("ann").unwrap(),
            removed_at,
        )
        .await
        .unwrap();
    assert_eq!(head(&log).await, before);
    assert_eq!(held(&log, "ann").await, vec![mine]);
}

#[tokio::test]
async fn registering_the_name_again_removes_what_a_failed_cleanup_left() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    register(&commands, "ann").await;
    let left = fork(&commands, &user("ann"), &from).await.unwrap();
    // Removed, and the node died before the cleanup: her registry is open and holds one.
    commands
        .remove(&admin("root"), &origin(), "ann")
        .await
        .unwrap();
    register(&commands, "ann").await;
    let events = stream::<RunnableEvent>(&log, &format!("runnable-{left}")).await;
    assert!(is_removed(&events), "{events:?}");
    assert!(held(&log, "ann").await.is_empty());
    let summary = log_summary(&log).await;
    assert!(summary.contains(&(
        format!("runnable-{left}"),
        "RunnableRemoved".to_string(),
        "identity".to_string()
    )));
    fork(&commands, &user("ann"), &from).await.unwrap();
    fork(&commands, &user("ann"), &from).await.unwrap();
}

#[tokio::test]
async fn removing_a_user_again_finishes_a_cleanup_that_failed() {
    let (commands, log) = commands();
    let from = parent(&log).await;
    register(&commands, "ann").await;
    let first = fork(&commands, &user("ann"), &from).await.unwrap();
    // A fork storm of hers: before each try of the cleanup's append, another lands.
    let mut storm = Vec::new();
    for _ in 0..crate::execute::ATTEMPTS {
        let raced = Uuid::new_v4();
        storm.push(raced);
        log.before_append_to_all(
            &registry("ann"),
            vec![
                (
                    &format!("runnable-{raced}"),
                    vec![new_event(&created(raced, "ann"))],
                ),
                (&registry("ann"), vec![new_event(&took(raced))]),
            ],
        );
    }
    let failed = commands
        .remove_user(&admin("root"), &origin(), "ann")
        .await
        .unwrap_err();
    assert!(matches!(failed, CommandError::Contended(_)), "{failed:?}");
    assert_eq!(log.pending(), 0);
    let (ann, _) = commands
        .load::<bosun_domain::identity::User>("ann")
        .await
        .unwrap();
    assert!(!ann.active, "removed before the cleanup failed");
    // Again: the cleanup is finished, and it answers as the removal would have.
    let written = commands
        .remove_user(&admin("root"), &origin(), "ann")
        .await
        .unwrap();
    assert!(written.position.is_some());
    for id in std::iter::once(first).chain(storm) {
        let events = stream::<RunnableEvent>(&log, &format!("runnable-{id}")).await;
        assert!(is_removed(&events), "{id}: {events:?}");
    }
    let removed_at = user_version(&log, "ann").await;
    assert_eq!(
        stream::<RunnableOwnerEvent>(&log, &registry("ann"))
            .await
            .last(),
        Some(&closed(removed_at))
    );
    // Nothing left: the 404 of a user who is not there, nothing written.
    let before = head(&log).await;
    let again = commands
        .remove_user(&admin("root"), &origin(), "ann")
        .await
        .unwrap_err();
    assert!(
        matches!(again, CommandError::Domain(DomainError::NotFound(_))),
        "{again:?}"
    );
    assert_eq!(head(&log).await, before);
    // Nor for a name never used.
    let never = commands
        .remove_user(&admin("root"), &origin(), "nobody")
        .await
        .unwrap_err();
    assert!(matches!(
        never,
        CommandError::Domain(DomainError::NotFound(_))
    ));
}
