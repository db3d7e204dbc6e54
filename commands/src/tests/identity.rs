//! Names and emails unique across users, and the last admin kept, decided in the log: racing
//! registrations, a crash between two appends, users from before reservations existed, and
//! two admins stepping down at once.

use super::*;
use crate::execute::Written;
use crate::identity::reservations::reservation_id;
use crate::identity::{NewUser, UserChanges};
use crate::CommandError;
use bosun_domain::identity::{
    AdminRosterEvent, Email, EmailChange, Password, PasswordHash, ReservationEvent,
    ReservationKind, User, UserEvent, Username,
};
use bosun_domain::DomainError;

fn name(n: &str) -> Username {
    Username::parse(n).unwrap()
}

fn new_user(username: &str, email: Option<&str>, admin: bool) -> NewUser {
    NewUser {
        username: name(username),
        password: Password::parse("password", "secret-pw-1").unwrap(),
        email: email.map(|e| Email::parse(e).unwrap()),
        admin,
    }
}

async fn register(
    commands: &Commands<Racing>,
    username: &str,
    email: Option<&str>,
    admin: bool,
) -> Result<Written, CommandError> {
    commands
        .register(&SYSTEM, &origin(), &new_user(username, email, admin))
        .await
}

async fn update(
    commands: &Commands<Racing>,
    username: &str,
    changes: UserChanges,
) -> Result<Written, CommandError> {
    commands
        .update(&SYSTEM, &origin(), username, &changes)
        .await
}

async fn remove(commands: &Commands<Racing>, username: &str) -> Result<Written, CommandError> {
    commands.remove_user(&SYSTEM, &origin(), username).await
}

/// The code of a 409.
fn conflict(result: Result<impl std::fmt::Debug, CommandError>) -> &'static str {
    match result {
        Err(CommandError::Domain(DomainError::Conflict { code, .. })) => code,
        other => panic!("expected a 409, got {other:?}"),
    }
}

fn set_email(email: Option<&str>) -> UserChanges {
    UserChanges {
        email: match email {
            Some(e) => EmailChange::Set(Email::parse(e).unwrap()),
            None => EmailChange::Clear,
        },
        ..UserChanges::default()
    }
}

fn admin_flag(admin: bool) -> UserChanges {
    UserChanges {
        admin: Some(admin),
        ..UserChanges::default()
    }
}

/// A registration as appended by a node that then died, or by a version before reservations.
fn registered(username: &str, email: Option<&str>, admin: bool) -> UserEvent {
    UserEvent::UserRegistered {
        username: name(username),
        email: email.map(|e| Email::parse(e).unwrap()),
        admin,
        password_hash: PasswordHash("$argon2id$…".into()),
        registered_from: None,
    }
}

fn claimed(
    kind: ReservationKind,
    value: &str,
    holder: &str,
    slot: Option<u64>,
) -> ReservationEvent {
    ReservationEvent::ReservationClaimed {
        kind,
        value: value.into(),
        holder: name(holder),
        claim: Uuid::new_v4(),
        slot,
        supersedes: None,
    }
}

/// A claim as it is stored, its (random) claim id left out.
fn claim_of(event: &ReservationEvent) -> (ReservationKind, &str, &str, Option<u64>) {
    match event {
        ReservationEvent::ReservationClaimed {
            kind,
            value,
            holder,
            slot,
            ..
        } => (*kind, value.as_str(), holder.as_str(), *slot),
        other => panic!("not a claim: {other:?}"),
    }
}

fn released(kind: ReservationKind, value: &str, holder: &str) -> ReservationEvent {
    ReservationEvent::ReservationReleased {
        kind,
        value: value.into(),
        holder: name(holder),
    }
}

fn name_stream(value: &str) -> String {
    format!(
        "reservation-{}",
        reservation_id(ReservationKind::Username, value)
    )
}

fn email_stream(email: &str) -> String {
    format!(
        "reservation-{}",
        reservation_id(ReservationKind::Email, email)
    )
}

async fn active(commands: &Commands<Racing>, username: &str) -> bool {
    commands.load::<User>(username).await.unwrap().0.active
}

fn summary(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(s, t, a)| (s.to_string(), t.to_string(), a.to_string()))
        .collect()
}

#[tokio::test]
async fn a_registration_claims_its_name_and_email_then_registers_the_user() {
    let (commands, log) = commands();
    register(&commands, "Ann", Some("Ann@Example.org"), true)
        .await
        .unwrap();
    let email = email_stream("ann@example.org");
    assert_eq!(
        log_summary(&log).await,
        summary(&[
            ("identity-admins", "AdminRosterStarted", "system"),
            ("reservation-username-ann", "ReservationClaimed", "system"),
            (&email, "ReservationClaimed", "system"),
            ("user-Ann", "UserRegistered", "system"),
            ("identity-admins", "AdminJoined", "system"),
        ])
    );
    let claims = stream::<ReservationEvent>(&log, "reservation-username-ann").await;
    assert_eq!(
        claim_of(&claims[0]),
        (ReservationKind::Username, "ann", "Ann", Some(0))
    );
    let claims = stream::<ReservationEvent>(&log, &email).await;
    assert_eq!(
        claim_of(&claims[0]),
        (ReservationKind::Email, "ann@example.org", "Ann", Some(0))
    );
    // The command's own event carries its actor; the claims are the server's bookkeeping,
    // under the same request.
    commands
        .register(&admin("root"), &origin(), &new_user("bob", None, false))
        .await
        .unwrap();
    assert_eq!(
        log_summary(&log).await[5..],
        summary(&[
            ("reservation-username-bob", "ReservationClaimed", "system"),
            ("user-bob", "UserRegistered", "root"),
        ])
    );
    let all = log.read_all(1, 100, &Filter::all()).await.unwrap();
    assert!(all.iter().all(|e| e.metadata["request_id"] == "req-1"));
}

#[tokio::test]
async fn names_are_unique_without_regard_to_case_and_a_refusal_writes_nothing() {
    let (commands, log) = commands();
    register(&commands, "ann", None, false).await.unwrap();
    let before = head(&log).await;
    for other in ["ann", "ANN", "Ann", "aNN"] {
        assert_eq!(
            conflict(register(&commands, other, None, false).await),
            "user_exists",
            "{other}"
        );
    }
    assert_eq!(head(&log).await, before, "a refusal writes nothing");
    let refused = register(&commands, "ANN", None, false).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "user ann already exists (names are compared without regard to case)"
    );
    // A name keeps its case, and another name is another name.
    register(&commands, "Bo_Lee", None, false).await.unwrap();
    assert_eq!(
        conflict(register(&commands, "bo_lee", None, false).await),
        "user_exists"
    );
    register(&commands, "anna", None, false).await.unwrap();
}

#[tokio::test]
async fn a_registration_that_loses_the_race_for_the_name_is_refused_and_writes_nothing() {
    let (commands, log) = commands();
    register(&commands, "someone", None, false).await.unwrap();
    // Between carl's check and carl's claim, CARL's registration claims the name.
    let others = claimed(ReservationKind::Username, "carl", "CARL", Some(0));
    let carl = name_stream("carl");
    log.before_append_to(&carl, &carl, vec![new_event(&others)]);
    let refused = register(&commands, "carl", Some("carl@example.org"), false)
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "user CARL is being registered (names are compared without regard to case)"
    );
    assert_eq!(stream::<ReservationEvent>(&log, &carl).await, vec![others]);
    assert!(stream::<UserEvent>(&log, "user-carl").await.is_empty());
    assert!(
        stream::<ReservationEvent>(&log, &email_stream("carl@example.org"))
            .await
            .is_empty(),
        "nor its email"
    );
    // CARL's registration goes on: the claim is its own.
    register(&commands, "CARL", None, false).await.unwrap();
    assert!(active(&commands, "CARL").await);
}

#[tokio::test]
async fn a_registration_that_loses_the_race_for_the_email_gives_its_name_back() {
    let (commands, log) = commands();
    register(&commands, "someone", None, false).await.unwrap();
    // Between dora's checks and her claim of the email, erin's registration claims it, and
    // erin is registered before dora checks again.
    let email = email_stream("x@example.org");
    let erins = claimed(ReservationKind::Email, "x@example.org", "erin", Some(0));
    log.before_append_to_all(
        &email,
        vec![
            (&email, vec![new_event(&erins)]),
            (
                "user-erin",
                vec![new_event(&registered("erin", Some("x@example.org"), false))],
            ),
        ],
    );
    let refused = register(&commands, "dora", Some("x@example.org"), false)
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the email x@example.org belongs to another user"
    );
    assert_eq!(log.pending(), 0);
    // Dora's claim of her name is withdrawn: DORA may have it.
    let claims = stream::<ReservationEvent>(&log, &name_stream("dora")).await;
    assert_eq!(
        claim_of(&claims[0]),
        (ReservationKind::Username, "dora", "dora", Some(0))
    );
    assert_eq!(
        claims[1..],
        [released(ReservationKind::Username, "dora", "dora")]
    );
    assert!(stream::<UserEvent>(&log, "user-dora").await.is_empty());
    register(&commands, "DORA", None, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_registrations_of_one_name_at_once_one_wins() {
    let (commands, _log) = commands();
    for (a, b) in [("carl", "CARL"), ("dana", "Dana"), ("eli", "eli")] {
        let (first, second) = tokio::join!(
            register(&commands, a, None, false),
            register(&commands, b, None, false)
        );
        let won = [&first, &second].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{a}: {first:?} / {b}: {second:?}");
        let loser = if first.is_ok() { second } else { first };
        assert_eq!(conflict(loser), "user_exists");
        let mut holders = 0;
        for n in [a, b].iter().collect::<std::collections::BTreeSet<_>>() {
            holders += usize::from(active(&commands, n).await);
        }
        assert_eq!(holders, 1, "{a} / {b}");
    }
}

#[tokio::test]
async fn an_email_belongs_to_one_user() {
    let (commands, log) = commands();
    register(&commands, "ann", Some("ann@example.org"), false)
        .await
        .unwrap();
    register(&commands, "bob", Some("bob@example.org"), false)
        .await
        .unwrap();
    let before = head(&log).await;
    assert_eq!(
        conflict(register(&commands, "carl", Some("ANN@example.org"), false).await),
        "email_taken"
    );
    assert_eq!(
        conflict(update(&commands, "bob", set_email(Some("Ann@Example.org"))).await),
        "email_taken"
    );
    assert_eq!(head(&log).await, before, "a refusal writes nothing");
    // Setting one's own address again changes nothing.
    assert_eq!(
        update(&commands, "ann", set_email(Some("ann@example.org")))
            .await
            .unwrap(),
        Written::default()
    );
    // A cleared address is free: its reservation released.
    update(&commands, "ann", set_email(None)).await.unwrap();
    assert_eq!(
        stream::<ReservationEvent>(&log, &email_stream("ann@example.org")).await[1..],
        [released(ReservationKind::Email, "ann@example.org", "ann")]
    );
    update(&commands, "bob", set_email(Some("ann@example.org")))
        .await
        .unwrap();
    // And so is the one bob left.
    register(&commands, "carl", Some("bob@example.org"), false)
        .await
        .unwrap();
    assert_eq!(
        conflict(update(&commands, "ann", set_email(Some("ann@example.org"))).await),
        "email_taken"
    );
}

#[tokio::test]
async fn a_removed_users_name_and_email_are_free_again() {
    let (commands, log) = commands();
    register(&commands, "admin", None, true).await.unwrap();
    register(&commands, "ann", Some("ann@example.org"), false)
        .await
        .unwrap();
    remove(&commands, "ann").await.unwrap();
    assert_eq!(
        stream::<ReservationEvent>(&log, &name_stream("ann")).await[1..],
        [released(ReservationKind::Username, "ann", "ann")]
    );
    register(&commands, "ANN", Some("ann@example.org"), false)
        .await
        .unwrap();
    // The same name again, in its stream's next version.
    remove(&commands, "ANN").await.unwrap();
    register(&commands, "ann", None, false).await.unwrap();
    let claims = stream::<ReservationEvent>(&log, &name_stream("ann")).await;
    assert_eq!(
        claim_of(&claims[4]),
        (ReservationKind::Username, "ann", "ann", Some(2))
    );
    assert_eq!(
        stream::<UserEvent>(&log, "user-ann").await.len(),
        3,
        "registered, removed, registered"
    );
}

#[tokio::test]
async fn a_claim_left_by_a_crash_holds_its_name_off_until_that_name_registers() {
    let (commands, log) = commands();
    register(&commands, "someone", None, false).await.unwrap();
    // A node claimed `dora` and the address for dora's registration, and died.
    append(
        &log,
        &name_stream("dora"),
        &[claimed(ReservationKind::Username, "dora", "dora", Some(0))],
    )
    .await;
    append(
        &log,
        &email_stream("x@example.org"),
        &[claimed(
            ReservationKind::Email,
            "x@example.org",
            "dora",
            Some(0),
        )],
    )
    .await;
    let before = head(&log).await;
    let refused = register(&commands, "Dora", None, false).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "user dora is being registered (names are compared without regard to case)"
    );
    let refused = register(&commands, "fay", Some("x@example.org"), false)
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the email x@example.org is being given to another user"
    );
    assert_eq!(head(&log).await, before);
    // Dora herself, registered again (without the address): it goes through, and her stream's
    // first event is not the one the address was claimed for, so the address is free.
    register(&commands, "dora", None, false).await.unwrap();
    assert_eq!(
        conflict(register(&commands, "Dora", None, false).await),
        "user_exists"
    );
    register(&commands, "fay", Some("x@example.org"), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_removal_whose_release_was_lost_frees_the_name_all_the_same() {
    let (commands, log) = commands();
    register(&commands, "gus", Some("gus@example.org"), false)
        .await
        .unwrap();
    // Removed, and the node died before the releases.
    append(
        &log,
        "user-gus",
        &[UserEvent::UserRemoved {
            username: name("gus"),
        }],
    )
    .await;
    register(&commands, "GUS", Some("gus@example.org"), false)
        .await
        .unwrap();
    assert!(active(&commands, "GUS").await);
}

#[tokio::test]
async fn users_registered_before_reservations_keep_their_names_and_emails() {
    let (_, log) = commands();
    // A log written before reservations and the roster existed.
    append(
        &log,
        "user-Ann",
        &[registered("Ann", Some("a@example.org"), true)],
    )
    .await;
    append(&log, "user-bob", &[registered("bob", None, false)]).await;
    append(
        &log,
        "user-cy",
        &[
            registered("cy", Some("c@example.org"), false),
            UserEvent::UserRemoved {
                username: name("cy"),
            },
        ],
    )
    .await;
    let commands = another_process(&log);
    assert_eq!(
        conflict(register(&commands, "ANN", None, false).await),
        "user_exists"
    );
    assert_eq!(
        conflict(register(&commands, "dan", Some("A@example.org"), false).await),
        "email_taken"
    );
    assert_eq!(
        conflict(register(&commands, "BOB", None, false).await),
        "user_exists"
    );
    // A removed user's name and address are free, and Ann is the last admin.
    register(&commands, "CY", Some("c@example.org"), false)
        .await
        .unwrap();
    assert_eq!(conflict(remove(&commands, "Ann").await), "last_admin");
    assert_eq!(
        stream::<AdminRosterEvent>(&log, "identity-admins").await,
        vec![AdminRosterEvent::AdminRosterStarted {
            admins: vec![name("Ann")]
        }]
    );
    let backfilled = log_summary(&log)
        .await
        .into_iter()
        .filter(|(stream, _, _)| stream.starts_with("reservation-"))
        .count();
    assert_eq!(
        backfilled, 5,
        "Ann's name and email, bob's name; then CY's name and email"
    );
    // Done once: another process does not do it again.
    let later = another_process(&log);
    let before = head(&log).await;
    assert_eq!(
        conflict(register(&later, "ann", None, false).await),
        "user_exists"
    );
    assert_eq!(head(&log).await, before);
}

#[tokio::test]
async fn the_last_admin_can_be_neither_removed_nor_demoted() {
    let (commands, log) = commands();
    register(&commands, "root", None, true).await.unwrap();
    register(&commands, "bob", None, false).await.unwrap();
    let before = head(&log).await;
    assert_eq!(conflict(remove(&commands, "root").await), "last_admin");
    assert_eq!(
        conflict(update(&commands, "root", admin_flag(false)).await),
        "last_admin"
    );
    assert_eq!(head(&log).await, before, "a refusal writes nothing");
    // A user who is no admin goes without asking the roster.
    update(&commands, "bob", admin_flag(false)).await.unwrap();
    assert_eq!(head(&log).await, before, "nothing changed");
    // With a second admin, either may go, but not both.
    update(&commands, "bob", admin_flag(true)).await.unwrap();
    update(&commands, "root", admin_flag(false)).await.unwrap();
    assert_eq!(
        conflict(update(&commands, "bob", admin_flag(false)).await),
        "last_admin"
    );
    assert_eq!(conflict(remove(&commands, "bob").await), "last_admin");
    update(&commands, "root", admin_flag(true)).await.unwrap();
    remove(&commands, "bob").await.unwrap();
    assert_eq!(conflict(remove(&commands, "root").await), "last_admin");
    assert_eq!(
        stream::<AdminRosterEvent>(&log, "identity-admins").await,
        vec![
            AdminRosterEvent::AdminRosterStarted { admins: vec![] },
            AdminRosterEvent::AdminJoined {
                username: name("root")
            },
            AdminRosterEvent::AdminJoined {
                username: name("bob")
            },
            // Root's stream was at version 0: its demotion is event 1.
            AdminRosterEvent::AdminStepDownClaimed {
                username: name("root"),
                slot: 1,
            },
            AdminRosterEvent::AdminStepDownClaimed {
                username: name("bob"),
                slot: 2,
            },
        ]
    );
}

#[tokio::test]
async fn two_admins_stepping_down_at_once_cannot_both_go() {
    let (commands, log) = commands();
    register(&commands, "root", None, true).await.unwrap();
    register(&commands, "bob", None, true).await.unwrap();
    // Between root's check and root's claim, bob's removal claims its step-down (bob's stream
    // is at version 0: his removal is event 1).
    log.before_append_to(
        "identity-admins",
        "identity-admins",
        vec![new_event(&AdminRosterEvent::AdminStepDownClaimed {
            username: name("bob"),
            slot: 1,
        })],
    );
    assert_eq!(conflict(remove(&commands, "root").await), "last_admin");
    assert!(active(&commands, "root").await);
    // Bob's removal never came (its node died): until bob's stream passes that slot he is
    // not counted on; any event of his there does it.
    assert_eq!(conflict(remove(&commands, "root").await), "last_admin");
    update(
        &commands,
        "bob",
        UserChanges {
            password: Some(Password::parse("password", "another-pw").unwrap()),
            ..UserChanges::default()
        },
    )
    .await
    .unwrap();
    remove(&commands, "root").await.unwrap();
    assert!(!active(&commands, "root").await);
    assert_eq!(conflict(remove(&commands, "bob").await), "last_admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_admins_demoting_each_other_at_once_leave_one() {
    for _ in 0..3 {
        let (commands, _log) = commands();
        register(&commands, "root", None, true).await.unwrap();
        register(&commands, "bob", None, true).await.unwrap();
        let (a, b) = tokio::join!(
            update(&commands, "root", admin_flag(false)),
            remove(&commands, "bob"),
        );
        assert_eq!(
            [&a, &b].iter().filter(|r| r.is_ok()).count(),
            1,
            "{a:?} / {b:?}"
        );
        let loser = if a.is_ok() { b } else { a };
        assert_eq!(conflict(loser), "last_admin");
        let root = commands.load::<User>("root").await.unwrap().0;
        let bob = commands.load::<User>("bob").await.unwrap().0;
        assert_eq!(
            usize::from(root.is_admin()) + usize::from(bob.is_admin()),
            1
        );
    }
}

#[tokio::test]
async fn an_admin_missing_from_the_roster_is_not_counted_on_until_promoted_again() {
    let (commands, log) = commands();
    register(&commands, "root", None, true).await.unwrap();
    register(&commands, "bob", None, false).await.unwrap();
    // Bob was promoted, and the node died before he joined the roster.
    append(
        &log,
        "user-bob",
        &[UserEvent::UserUpdated {
            username: name("bob"),
            email: None,
            email_cleared: false,
            admin: Some(true),
        }],
    )
    .await;
    assert_eq!(
        conflict(update(&commands, "root", admin_flag(false)).await),
        "last_admin"
    );
    // Promoting him again changes nothing in his stream, and puts him on the roster.
    update(&commands, "bob", admin_flag(true)).await.unwrap();
    assert_eq!(
        stream::<UserEvent>(&log, "user-bob").await.len(),
        2,
        "no second promotion"
    );
    update(&commands, "root", admin_flag(false)).await.unwrap();
}
