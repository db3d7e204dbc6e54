//! Runnable commands: on the in-memory log, what forking, changing, saving, deleting and reaping
//! decide and write, and who may (404 for one not seen, 403 for one seen but not owned); on
//! PostgreSQL, what touches bytes (a root runnable's files, writing and reading a file: blobs
//! stored once, nothing stored for a refused write) and the reads of the read models.

use super::*;
use crate::runnables::{CreateRoot, RunnableRules};
use crate::{CommandError, Queries, Written};
use bosun_domain::identity::Username;
use bosun_domain::runnables::{
    Digest, FileEntry, FileLimits, FilePath, RunnableEvent, RunnableId, RunnableName, StartCommand,
};
use bosun_domain::DomainError;
use chrono::{DateTime, Duration as Age, Utc};
use std::time::Duration;

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

fn entry(path: &str, content: &str) -> FileEntry {
    FileEntry {
        path: FilePath::parse(path).unwrap(),
        digest: Digest::of(content.as_bytes()),
        size: content.len() as u64,
    }
}

fn files() -> Vec<FileEntry> {
    vec![entry("lib/a.py", "a = 1"), entry("main.py", "print(1)")]
}

fn created(id: Uuid, owner: &str, at: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableCreated {
        id: RunnableId::new(id),
        name: RunnableName::parse("hello").unwrap(),
        owner: Username::parse(owner).unwrap(),
        parent: None,
        start_command: StartCommand::parse("python main.py").unwrap(),
        files: files(),
        at,
    }
}

fn saved(at: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableImageSaved {
        digest: Digest::of(b"a manifest"),
        start_command: StartCommand::parse("python main.py").unwrap(),
        files: files(),
        at,
    }
}

fn stream_of(id: Uuid) -> String {
    format!("runnable-{id}")
}

/// A runnable of `owner`'s, created `age` ago, saved (then) if `image`.
async fn runnable(log: &Racing, owner: &str, image: bool, age: Age) -> Uuid {
    let id = Uuid::new_v4();
    let at = Utc::now() - age;
    let mut events = vec![created(id, owner, at)];
    if image {
        events.push(saved(at));
    }
    append(log, &stream_of(id), &events).await;
    id
}

fn not_found(error: &CommandError) -> bool {
    matches!(error, CommandError::Domain(DomainError::NotFound(_)))
}

fn forbidden(error: &CommandError) -> bool {
    matches!(error, CommandError::Forbidden(_))
}

fn conflict_code(error: &CommandError) -> Option<&'static str> {
    match error {
        CommandError::Domain(DomainError::Conflict { code, .. }) => Some(code),
        _ => None,
    }
}

fn too_large_code(error: &CommandError) -> Option<&'static str> {
    match error {
        CommandError::Domain(DomainError::TooLarge { code, .. }) => Some(code),
        _ => None,
    }
}

fn invalid_field(error: &CommandError) -> Option<&'static str> {
    match error {
        CommandError::Domain(DomainError::Invalid { field, .. }) => Some(field),
        _ => None,
    }
}

#[tokio::test]
async fn a_fork_is_the_callers_with_its_parents_image_files_and_start_command() {
    let (commands, log) = commands();
    let parent = runnable(&log, "root", true, Age::zero()).await;
    let (view, written) = commands
        .fork_runnable(
            &user("ann"),
            &origin(),
            &RunnableRules::default(),
            &parent.to_string(),
            None,
        )
        .await
        .unwrap();
    assert!(written.position.is_some());
    assert_eq!(
        (view.owner.as_str(), view.parent, view.name.as_str()),
        ("ann", Some(parent), "hello")
    );
    assert_eq!(
        (view.start_command.as_str(), view.image, view.version),
        ("python main.py", None, 0)
    );
    let events: Vec<RunnableEvent> = stream(&log, &stream_of(view.id)).await;
    match &events[..] {
        [RunnableEvent::RunnableCreated {
            parent: Some(p),
            files: forked,
            ..
        }] => assert_eq!((p.as_uuid(), forked), (parent, &files())),
        other => panic!("{other:?}"),
    }
    let (named, _) = commands
        .fork_runnable(
            &user("ann"),
            &origin(),
            &RunnableRules::default(),
            &parent.to_string(),
            Some("mine".into()),
        )
        .await
        .unwrap();
    assert_eq!(named.name, "mine");
    let logged = log_summary(&log).await;
    assert_eq!(logged.last().unwrap().2, "ann");
}

#[tokio::test]
async fn a_parent_without_an_image_is_409_to_its_owner_and_404_to_anyone_else() {
    let (commands, log) = commands();
    let parent = runnable(&log, "ann", false, Age::zero()).await;
    let before = head(&log).await;
    let refused = commands
        .fork_runnable(
            &user("ann"),
            &origin(),
            &RunnableRules::default(),
            &parent.to_string(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("parent_has_no_image"));
    let refused = commands
        .fork_runnable(
            &user("bob"),
            &origin(),
            &RunnableRules::default(),
            &parent.to_string(),
            None,
        )
        .await
        .unwrap_err();
    assert!(not_found(&refused), "{refused:?}");
    let refused = commands
        .fork_runnable(
            &admin("root"),
            &origin(),
            &RunnableRules::default(),
            &parent.to_string(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("parent_has_no_image"));
    let unknown = commands
        .fork_runnable(
            &user("ann"),
            &origin(),
            &RunnableRules::default(),
            &Uuid::new_v4().to_string(),
            None,
        )
        .await
        .unwrap_err();
    assert!(not_found(&unknown));
    let bad = commands
        .fork_runnable(
            &user("ann"),
            &origin(),
            &RunnableRules::default(),
            "not-a-uuid",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&bad), Some("from"));
    let bad_name = commands
        .fork_runnable(
            &user("ann"),
            &origin(),
            &RunnableRules::default(),
            &parent.to_string(),
            Some("".into()),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&bad_name), Some("name"));
    assert_eq!(head(&log).await, before, "nothing written");
}

#[tokio::test]
async fn only_its_owner_or_an_admin_changes_a_runnable_and_others_get_404_without_an_image() {
    let (commands, log) = commands();
    let imageless = runnable(&log, "ann", false, Age::zero()).await;
    let with_image = runnable(&log, "ann", true, Age::zero()).await;
    let before = head(&log).await;
    let bob = user("bob");
    for (id, expect_404) in [(imageless, true), (with_image, false)] {
        let results: Vec<Result<Written, CommandError>> = vec![
            commands
                .update_runnable(&bob, &origin(), id, Some("x".into()), None)
                .await
                .map(|(_, w)| w),
            commands
                .save_runnable(&bob, &origin(), &RunnableRules::default(), id)
                .await
                .map(|(_, w)| w),
            commands.remove_runnable(&bob, &origin(), id).await,
            commands
                .delete_runnable_files(&bob, &origin(), id, "main.py", false)
                .await,
        ];
        for result in results {
            let error = result.unwrap_err();
            if expect_404 {
                assert!(not_found(&error), "{error:?}");
            } else {
                assert!(forbidden(&error), "{error:?}");
            }
        }
    }
    // An app token, a read-only token: 403 before anything is looked at.
    let token = Actor::App(crate::AppActor::new("shop", Uuid::nil(), "ann"));
    let reader = user_with("ann", false, &[Scope::Read]);
    for actor in [&token, &reader] {
        let error = commands
            .remove_runnable(actor, &origin(), with_image)
            .await
            .unwrap_err();
        assert!(forbidden(&error), "{error:?}");
    }
    assert_eq!(head(&log).await, before, "nothing written");
    // An admin may.
    commands
        .update_runnable(
            &admin("root"),
            &origin(),
            imageless,
            Some("renamed".into()),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_update_changes_what_differs_and_nothing_else() {
    let (commands, log) = commands();
    let id = runnable(&log, "ann", false, Age::zero()).await;
    let (view, written) = commands
        .update_runnable(&user("ann"), &origin(), id, Some("hello".into()), None)
        .await
        .unwrap();
    assert_eq!((written.position, view.version), (None, 0), "the same name");
    let (view, written) = commands
        .update_runnable(
            &user("ann"),
            &origin(),
            id,
            Some("hello".into()),
            Some("sh run.sh".into()),
        )
        .await
        .unwrap();
    assert!(written.position.is_some());
    assert_eq!(
        (view.start_command.as_str(), view.version),
        ("sh run.sh", 1)
    );
    let events: Vec<RunnableEvent> = stream(&log, &stream_of(id)).await;
    assert!(matches!(
        &events[1],
        RunnableEvent::RunnableUpdated {
            name: None,
            start_command: Some(_),
            ..
        }
    ));
    let bad = commands
        .update_runnable(&user("ann"), &origin(), id, None, Some("a\0b".into()))
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&bad), Some("start_command"));
}

#[tokio::test]
async fn saving_makes_an_image_once_and_removing_leaves_a_404() {
    let (commands, log) = commands();
    let id = runnable(&log, "ann", false, Age::zero()).await;
    let (view, written) = commands
        .save_runnable(&user("ann"), &origin(), &RunnableRules::default(), id)
        .await
        .unwrap();
    assert!(written.position.is_some());
    let image = view.image.clone().expect("an image");
    let (again, written) = commands
        .save_runnable(&user("ann"), &origin(), &RunnableRules::default(), id)
        .await
        .unwrap();
    assert_eq!((written.position, again.image), (None, Some(image)));
    commands
        .remove_runnable(&user("ann"), &origin(), id)
        .await
        .unwrap();
    let error = commands
        .save_runnable(&user("ann"), &origin(), &RunnableRules::default(), id)
        .await
        .unwrap_err();
    assert!(not_found(&error), "{error:?}");
    let error = commands
        .fork_runnable(
            &user("bob"),
            &origin(),
            &RunnableRules::default(),
            &id.to_string(),
            None,
        )
        .await
        .unwrap_err();
    assert!(not_found(&error), "a removed parent is 404: {error:?}");
}

#[tokio::test]
async fn a_folder_is_deleted_only_when_asked_recursively() {
    let (commands, log) = commands();
    let id = runnable(&log, "ann", false, Age::zero()).await;
    let ann = user("ann");
    let error = commands
        .delete_runnable_files(&ann, &origin(), id, "lib", false)
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&error), Some("recursive"));
    let error = commands
        .delete_runnable_files(&ann, &origin(), id, "../etc", true)
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&error), Some("path"));
    let error = commands
        .delete_runnable_files(&ann, &origin(), id, "nothing", true)
        .await
        .unwrap_err();
    assert!(not_found(&error));
    commands
        .delete_runnable_files(&ann, &origin(), id, "lib/", true)
        .await
        .unwrap();
    let events: Vec<RunnableEvent> = stream(&log, &stream_of(id)).await;
    match events.last() {
        Some(RunnableEvent::RunnableFilesDeleted { paths, .. }) => {
            assert_eq!(paths, &[FilePath::parse("lib/a.py").unwrap()])
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_reaper_reaps_an_idle_runnable_without_an_image_and_nothing_else() {
    let (commands, log) = commands();
    let idle = runnable(&log, "ann", false, Age::days(8)).await;
    let idle_saved = runnable(&log, "ann", true, Age::days(8)).await;
    let recent = runnable(&log, "ann", false, Age::days(6)).await;
    let now = Utc::now();
    let reaped = commands.reap_runnable(idle, WEEK, now).await.unwrap();
    assert!(reaped.is_some_and(|w| w.position.is_some()));
    for id in [idle_saved, recent, idle, Uuid::new_v4()] {
        assert_eq!(commands.reap_runnable(id, WEEK, now).await.unwrap(), None);
    }
    let logged = log_summary(&log).await;
    let last = logged.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str(), last.2.as_str()),
        (stream_of(idle).as_str(), "RunnableReaped", "reaper")
    );
    let error = commands
        .update_runnable(&user("ann"), &origin(), idle, Some("x".into()), None)
        .await
        .unwrap_err();
    assert!(not_found(&error));
}

/// Commands over a fresh PostgreSQL log with every read model projected, and the queries on
/// it. The projections run as long as the returned handle.
async fn on_postgres() -> (
    Commands<bosun_eventstore::PgEventStore>,
    Queries,
    bosun_projections::Running,
) {
    let config = bosun_eventstore::testing::fresh_database().await;
    let store = bosun_eventstore::PgEventStore::open(&config).await.unwrap();
    let projections = bosun_projections::Projections::new(bosun_projections::all());
    projections.prepare(&config).await.unwrap();
    let running = projections.start(store.clone(), &config).await.unwrap();
    let queries = Queries::new(store.clone());
    (Commands::new(store, running.freshness()), queries, running)
}

async fn blobs(commands: &Commands<bosun_eventstore::PgEventStore>) -> i64 {
    let client = commands.store.pool().get().await.unwrap();
    client
        .query_one("SELECT count(*) FROM blobs", &[])
        .await
        .unwrap()
        .get(0)
}

fn root_request() -> CreateRoot {
    CreateRoot {
        name: "hello".into(),
        start_command: "python main.py".into(),
        files: vec![
            ("main.py".into(), b"print(1)".to_vec()),
            ("lib/./a.py".into(), b"print(1)".to_vec()),
            ("data.bin".into(), vec![0, 255, 0]),
        ],
    }
}

fn page() -> bosun_projections::read_models::identity::Page {
    bosun_projections::read_models::identity::Page {
        limit: 100,
        offset: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_a_root_runnable_and_its_contents_are_stored_once() {
    let (commands, _queries, _running) = on_postgres().await;
    let rules = RunnableRules::default();
    let refused = commands
        .create_root_runnable(&user("ann"), &origin(), &rules, root_request())
        .await
        .unwrap_err();
    assert!(forbidden(&refused), "{refused:?}");
    assert_eq!(blobs(&commands).await, 0);
    let (view, _) = commands
        .create_root_runnable(&admin("root"), &origin(), &rules, root_request())
        .await
        .unwrap();
    assert_eq!((view.owner.as_str(), view.parent), ("root", None));
    assert_eq!(blobs(&commands).await, 2, "print(1) once, and data.bin");
    let listed = commands
        .runnable_files(
            &admin("root"),
            &origin(),
            &RunnableRules::default(),
            view.id,
            None,
        )
        .await
        .unwrap();
    let paths: Vec<(&str, bool)> = listed.iter().map(|f| (f.path.as_str(), f.dir)).collect();
    assert_eq!(
        paths,
        [("data.bin", false), ("lib", true), ("main.py", false)]
    );
    let content = commands
        .runnable_file(
            &admin("root"),
            &origin(),
            &RunnableRules::default(),
            view.id,
            "data.bin",
        )
        .await
        .unwrap();
    assert_eq!(content, [0, 255, 0]);

    // Refused trees store nothing: a file too large, a path out of the tree, a file under one.
    let small = RunnableRules {
        limits: FileLimits {
            max_file_bytes: 4,
            ..FileLimits::default()
        },
        ..RunnableRules::default()
    };
    let error = commands
        .create_root_runnable(&admin("root"), &origin(), &small, root_request())
        .await
        .unwrap_err();
    assert_eq!(too_large_code(&error), Some("file_too_large"));
    let mut outside = root_request();
    outside.files.push(("../x".into(), b"new content".to_vec()));
    let error = commands
        .create_root_runnable(&admin("root"), &origin(), &rules, outside)
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&error), Some("files"));
    let mut under_a_file = root_request();
    under_a_file
        .files
        .push(("main.py/x".into(), b"new content".to_vec()));
    let error = commands
        .create_root_runnable(&admin("root"), &origin(), &rules, under_a_file)
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&error), Some("files"));
    assert_eq!(blobs(&commands).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_a_file_stores_its_blob_and_a_refused_write_stores_nothing() {
    let (commands, queries, _running) = on_postgres().await;
    let rules = RunnableRules {
        limits: FileLimits {
            max_file_bytes: 16,
            max_files: 4,
            max_total_bytes: 1000,
        },
        ..RunnableRules::default()
    };
    let (root, _) = commands
        .create_root_runnable(&admin("root"), &origin(), &rules, root_request())
        .await
        .unwrap();
    commands
        .save_runnable(
            &admin("root"),
            &origin(),
            &RunnableRules::default(),
            root.id,
        )
        .await
        .unwrap();
    let ann = user("ann");
    let (fork, _) = commands
        .fork_runnable(
            &ann,
            &origin(),
            &RunnableRules::default(),
            &root.id.to_string(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(blobs(&commands).await, 2, "a fork copies no bytes");

    let (file, created, written) = commands
        .write_runnable_file(
            &ann,
            &origin(),
            &rules,
            fork.id,
            "src//x.py",
            b"x = 1".to_vec(),
        )
        .await
        .unwrap();
    assert!(created && written.position.is_some());
    assert_eq!((file.path.as_str(), file.size), ("src/x.py", 5));
    assert_eq!(file.digest, Some(Digest::of(b"x = 1").as_str().to_string()));
    assert_eq!(blobs(&commands).await, 3);
    let (_, created, _) = commands
        .write_runnable_file(
            &ann,
            &origin(),
            &rules,
            fork.id,
            "src/x.py",
            b"x = 2".to_vec(),
        )
        .await
        .unwrap();
    assert!(!created, "replaced");
    let (_, created, again) = commands
        .write_runnable_file(
            &ann,
            &origin(),
            &rules,
            fork.id,
            "src/x.py",
            b"x = 2".to_vec(),
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.position, None, "the same content, just accessed");
    assert_eq!(blobs(&commands).await, 4);
    assert_eq!(
        commands
            .runnable_file(
                &ann,
                &origin(),
                &RunnableRules::default(),
                fork.id,
                "src/x.py"
            )
            .await
            .unwrap(),
        b"x = 2"
    );

    let refusals = [
        ("big.bin", vec![7u8; 17]),
        ("main.py/under", b"new".to_vec()),
        ("src", b"new".to_vec()),
        ("/abs", b"new".to_vec()),
        ("a/../b", b"new".to_vec()),
    ];
    for (path, content) in refusals {
        let error = commands
            .write_runnable_file(&ann, &origin(), &rules, fork.id, path, content)
            .await
            .unwrap_err();
        match path {
            "big.bin" => assert_eq!(too_large_code(&error), Some("file_too_large")),
            "main.py/under" | "src" => assert_eq!(conflict_code(&error), Some("path_conflict")),
            _ => assert_eq!(invalid_field(&error), Some("path")),
        }
    }
    // A fifth file is one too many.
    let error = commands
        .write_runnable_file(&ann, &origin(), &rules, fork.id, "five", b"5".to_vec())
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&error), Some("files"));
    assert_eq!(
        blobs(&commands).await,
        4,
        "nothing stored for a refused write"
    );

    // bob sees the root (it has an image) but may not touch its files; ann's fork is 404 to him.
    let bob = user("bob");
    let error = commands
        .write_runnable_file(&bob, &origin(), &rules, root.id, "x", b"x".to_vec())
        .await
        .unwrap_err();
    assert!(forbidden(&error));
    assert!(forbidden(
        &commands
            .runnable_file(
                &bob,
                &origin(),
                &RunnableRules::default(),
                root.id,
                "main.py"
            )
            .await
            .unwrap_err()
    ));
    assert!(forbidden(
        &commands
            .runnable_files(&bob, &origin(), &RunnableRules::default(), root.id, None)
            .await
            .unwrap_err()
    ));
    assert!(not_found(
        &commands
            .runnable_file(
                &bob,
                &origin(),
                &RunnableRules::default(),
                fork.id,
                "main.py"
            )
            .await
            .unwrap_err()
    ));
    assert!(not_found(
        &queries.runnable(&bob, fork.id).await.unwrap_err()
    ));
    assert_eq!(queries.runnable(&bob, root.id).await.unwrap().id, root.id);
    let (seen, total) = queries
        .runnables(&bob, Default::default(), page())
        .await
        .unwrap();
    assert_eq!((seen.len(), total), (1, 1));
    let (seen, total) = queries
        .runnables(&ann, Default::default(), page())
        .await
        .unwrap();
    assert_eq!((seen[0].id, total), (fork.id, 2), "the newest first");
    assert!(not_found(
        &commands
            .runnable_file(&ann, &origin(), &RunnableRules::default(), fork.id, "src")
            .await
            .unwrap_err()
    ));
    assert!(not_found(
        &commands
            .runnable_files(
                &ann,
                &origin(),
                &RunnableRules::default(),
                fork.id,
                Some("nothing")
            )
            .await
            .unwrap_err()
    ));
    let listed = commands
        .runnable_files(
            &ann,
            &origin(),
            &RunnableRules::default(),
            fork.id,
            Some("src/"),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        invalid_field(
            &commands
                .runnable_files(
                    &ann,
                    &origin(),
                    &RunnableRules::default(),
                    fork.id,
                    Some("../")
                )
                .await
                .unwrap_err()
        ),
        Some("path")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reapable_runnables_are_the_idle_ones_without_an_image() {
    let (commands, queries, running) = on_postgres().await;
    let (root, _) = commands
        .create_root_runnable(
            &admin("root"),
            &origin(),
            &RunnableRules::default(),
            root_request(),
        )
        .await
        .unwrap();
    commands
        .save_runnable(
            &admin("root"),
            &origin(),
            &RunnableRules::default(),
            root.id,
        )
        .await
        .unwrap();
    let (fork, _) = commands
        .fork_runnable(
            &user("ann"),
            &origin(),
            &RunnableRules::default(),
            &root.id.to_string(),
            None,
        )
        .await
        .unwrap();
    assert!(queries
        .reapable_runnables(WEEK, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(queries
        .reapable_runnables(Duration::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let due = Duration::from_millis(10);
    assert_eq!(
        queries.reapable_runnables(due, 10).await.unwrap(),
        [fork.id]
    );
    let written = commands
        .reap_runnable(fork.id, due, Utc::now())
        .await
        .unwrap()
        .unwrap();
    commands.settle(written).await;
    assert!(queries
        .reapable_runnables(due, 10)
        .await
        .unwrap()
        .is_empty());
    drop(running);
}

#[tokio::test]
async fn listing_files_and_reading_one_are_accesses_from_the_callers_origin_throttled() {
    let (commands, log) = commands();
    // Created two seconds ago; reaped after 4 s, so an access counts once a second.
    let id = runnable(&log, "ann", false, Age::seconds(2)).await;
    let rules = RunnableRules {
        reap_after: Duration::from_secs(4),
        ..RunnableRules::default()
    };
    assert_eq!(rules.access_every(), Duration::from_secs(1));
    assert_eq!(
        RunnableRules::default().access_every(),
        Duration::from_secs(60)
    );
    let listing = Origin {
        request_id: Some("listing".into()),
        ..Origin::default()
    };
    let ann = user("ann");
    let listed = commands
        .runnable_files(&ann, &listing, &rules, id, None)
        .await
        .unwrap();
    let paths: Vec<(&str, bool)> = listed.iter().map(|f| (f.path.as_str(), f.dir)).collect();
    assert_eq!(paths, [("lib", true), ("main.py", false)]);
    let raw = log
        .log
        .read_stream(&StreamId::parse(stream_of(id)).unwrap(), 0, 100)
        .await
        .unwrap();
    let last = raw.last().unwrap();
    assert_eq!(last.event_type, "RunnableAccessed");
    assert_eq!(last.metadata["request_id"], "listing");
    assert_eq!(last.metadata["actor"], "ann");
    // Within the second: no other access, listing or reading.
    commands
        .runnable_files(&ann, &listing, &rules, id, Some("lib"))
        .await
        .unwrap();
    let events: Vec<RunnableEvent> = stream(&log, &stream_of(id)).await;
    assert_eq!(events.len(), 2, "{events:?}");
    // A listing refused records nothing: a path with nothing there, another's runnable.
    assert!(not_found(
        &commands
            .runnable_files(&ann, &listing, &rules, id, Some("nothing"))
            .await
            .unwrap_err()
    ));
    assert_eq!(
        invalid_field(
            &commands
                .runnable_files(&ann, &listing, &rules, id, Some("a/\u{7}"))
                .await
                .unwrap_err()
        ),
        Some("path")
    );
    assert!(not_found(
        &commands
            .runnable_files(&user("bob"), &listing, &rules, id, None)
            .await
            .unwrap_err()
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    commands
        .runnable_files(&ann, &origin(), &rules, id, Some("lib/a.py"))
        .await
        .unwrap();
    let events: Vec<RunnableEvent> = stream(&log, &stream_of(id)).await;
    assert_eq!(events.len(), 3, "a second later, an access again");
    assert!(matches!(
        events.last(),
        Some(RunnableEvent::RunnableAccessed { .. })
    ));
}

#[tokio::test]
async fn a_write_is_checked_for_who_and_the_path_before_its_body_is_read() {
    let (commands, log) = commands();
    let ann_s = runnable(&log, "ann", false, Age::zero()).await;
    let saved = runnable(&log, "root", true, Age::zero()).await;
    let ann = user("ann");
    let id = ann_s.to_string();
    commands
        .check_runnable_write(&ann, &id, "src//x.py")
        .await
        .unwrap();
    commands
        .check_runnable_write(&admin("root"), &id, "x")
        .await
        .unwrap();
    for path in ["../x", "/x", "", "a\u{0}b", "e\u{301}"] {
        let error = commands
            .check_runnable_write(&ann, &id, path)
            .await
            .unwrap_err();
        assert_eq!(invalid_field(&error), Some("path"), "{path:?}");
    }
    assert!(not_found(
        &commands
            .check_runnable_write(&ann, "not-a-uuid", "x")
            .await
            .unwrap_err()
    ));
    assert!(not_found(
        &commands
            .check_runnable_write(&ann, &Uuid::new_v4().to_string(), "x")
            .await
            .unwrap_err()
    ));
    assert!(not_found(
        &commands
            .check_runnable_write(&user("bob"), &id, "x")
            .await
            .unwrap_err()
    ));
    assert!(forbidden(
        &commands
            .check_runnable_write(&ann, &saved.to_string(), "x")
            .await
            .unwrap_err()
    ));
    let read_only = user_with("ann", false, &[Scope::Read]);
    assert!(forbidden(
        &commands
            .check_runnable_write(&read_only, &id, "x")
            .await
            .unwrap_err()
    ));
    assert!(log_summary(&log).await.len() == 3, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyone_but_its_owner_sees_the_start_command_of_its_image() {
    let (commands, queries, _running) = on_postgres().await;
    let root = admin("root");
    let (view, _) = commands
        .create_root_runnable(&root, &origin(), &RunnableRules::default(), root_request())
        .await
        .unwrap();
    commands
        .save_runnable(&root, &origin(), &RunnableRules::default(), view.id)
        .await
        .unwrap();
    commands
        .update_runnable(
            &root,
            &origin(),
            view.id,
            None,
            Some("python main.py --unsaved".into()),
        )
        .await
        .unwrap();
    let seen = |actor: Actor| {
        let queries = &queries;
        async move {
            let one = queries.runnable(&actor, view.id).await.unwrap();
            let (listed, _) = queries
                .runnables(&actor, Default::default(), page())
                .await
                .unwrap();
            assert_eq!(listed[0].start_command, one.start_command);
            one.start_command
        }
    };
    assert_eq!(seen(root.clone()).await, "python main.py --unsaved");
    assert_eq!(seen(admin("other")).await, "python main.py --unsaved");
    assert_eq!(seen(user("bob")).await, "python main.py", "the image's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_users_runnables_go_with_them_and_a_new_user_of_the_name_owns_none() {
    let (commands, queries, _running) = on_postgres().await;
    let root = admin("root");
    let new_ann = || crate::identity::NewUser {
        username: Username::parse("ann").unwrap(),
        password: bosun_domain::identity::Password::parse("password", "secret-pw-1").unwrap(),
        email: None,
        admin: false,
    };
    commands
        .register_user(&root, &origin(), new_ann())
        .await
        .unwrap();
    let (parent, _) = commands
        .create_root_runnable(&root, &origin(), &RunnableRules::default(), root_request())
        .await
        .unwrap();
    commands
        .save_runnable(&root, &origin(), &RunnableRules::default(), parent.id)
        .await
        .unwrap();
    let ann = user("ann");
    let from = parent.id.to_string();
    let (unsaved, _) = commands
        .fork_runnable(&ann, &origin(), &RunnableRules::default(), &from, None)
        .await
        .unwrap();
    let (saved, _) = commands
        .fork_runnable(
            &ann,
            &origin(),
            &RunnableRules::default(),
            &from,
            Some("saved".into()),
        )
        .await
        .unwrap();
    commands
        .save_runnable(&ann, &origin(), &RunnableRules::default(), saved.id)
        .await
        .unwrap();
    let (bobs, _) = commands
        .fork_runnable(
            &user("bob"),
            &origin(),
            &RunnableRules::default(),
            &from,
            None,
        )
        .await
        .unwrap();

    let removal = Origin {
        request_id: Some("removal".into()),
        ..Origin::default()
    };
    commands.remove_user(&root, &removal, "ann").await.unwrap();
    for id in [unsaved.id, saved.id] {
        let raw = commands
            .store
            .read_stream(&StreamId::parse(stream_of(id)).unwrap(), 0, 100)
            .await
            .unwrap();
        let last = raw.last().unwrap();
        assert_eq!(last.event_type, "RunnableRemoved");
        assert_eq!(
            (&last.metadata["actor"], &last.metadata["request_id"]),
            (&serde_json::json!("root"), &serde_json::json!("removal"))
        );
    }

    commands
        .register_user(&root, &origin(), new_ann())
        .await
        .unwrap();
    let mine = crate::queries::RunnableFilter {
        owner: Some("ann".into()),
        ..Default::default()
    };
    let (listed, total) = queries.runnables(&ann, mine, page()).await.unwrap();
    assert!(listed.is_empty() && total == 0, "{listed:?}");
    for id in [unsaved.id, saved.id] {
        assert!(not_found(&queries.runnable(&ann, id).await.unwrap_err()));
        assert!(not_found(
            &commands
                .update_runnable(&ann, &origin(), id, Some("mine".into()), None)
                .await
                .unwrap_err()
        ));
    }
    // Others' are left alone.
    assert_eq!(queries.runnable(&root, bobs.id).await.unwrap().id, bobs.id);
    assert_eq!(
        queries.runnable(&root, parent.id).await.unwrap().id,
        parent.id
    );
}
