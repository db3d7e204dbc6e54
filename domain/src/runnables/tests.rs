//! Given these past events, when this command, then these events or this refusal.

use super::*;
use crate::aggregate::{decode, encode, Aggregate, DomainEvent};
use crate::identity::Username;
use crate::testing::given;
use crate::DomainError;
use chrono::{DateTime, Duration as Span, Utc};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
fn t0() -> DateTime<Utc> {
    at("2024-05-01T10:00:00Z")
}
fn t1() -> DateTime<Utc> {
    at("2024-05-01T11:00:00Z")
}
fn t2() -> DateTime<Utc> {
    at("2024-05-01T12:00:00Z")
}
fn id() -> RunnableId {
    RunnableId::new(Uuid::from_u128(1))
}
fn parent_id() -> RunnableId {
    RunnableId::new(Uuid::from_u128(2))
}
fn name(n: &str) -> RunnableName {
    RunnableName::parse(n).unwrap()
}
fn user(n: &str) -> Username {
    Username::parse(n).unwrap()
}
fn cmd(c: &str) -> StartCommand {
    StartCommand::parse(c).unwrap()
}
fn path(p: &str) -> FilePath {
    FilePath::parse(p).unwrap()
}
fn digest(content: &str) -> Digest {
    Digest::of(content.as_bytes())
}
/// A file at `p` holding `content`.
fn file(p: &str, content: &str) -> FileEntry {
    FileEntry {
        path: path(p),
        digest: digest(content),
        size: content.len() as u64,
    }
}
fn limits() -> FileLimits {
    FileLimits::default()
}
fn small_limits() -> FileLimits {
    FileLimits {
        max_file_bytes: 10,
        max_files: 3,
        max_total_bytes: 20,
    }
}
/// [`small_limits`] but for the total: created() already holds 21 bytes.
fn write_limits() -> FileLimits {
    FileLimits {
        max_total_bytes: 1000,
        ..small_limits()
    }
}
fn invalid(field: &'static str, message: &str) -> DomainError {
    DomainError::invalid(field, message)
}
fn conflict(code: &'static str, message: &str) -> DomainError {
    DomainError::conflict(code, message)
}
fn too_large(code: &'static str, message: &str) -> DomainError {
    DomainError::too_large(code, message)
}
fn no_such_runnable() -> DomainError {
    DomainError::NotFound("no such runnable".into())
}

/// A root runnable of alice's with `main.py` and `lib/util.py`, at t0.
fn created() -> RunnableEvent {
    RunnableEvent::RunnableCreated {
        id: id(),
        name: name("hello"),
        owner: user("alice"),
        parent: None,
        start_command: cmd("python3 main.py"),
        files: vec![
            file("lib/util.py", "def f(): pass"),
            file("main.py", "print(1)"),
        ],
        at: t0(),
    }
}
fn written(p: &str, content: &str, when: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableFileWritten {
        path: path(p),
        digest: digest(content),
        size: content.len() as u64,
        at: when,
    }
}
fn write(p: &str, content: &str, limits: FileLimits, when: DateTime<Utc>) -> RunnableCommand {
    RunnableCommand::WriteFile {
        path: path(p),
        digest: digest(content),
        size: content.len() as u64,
        limits,
        access_every: MINUTE,
        at: when,
    }
}
const MINUTE: Duration = Duration::from_secs(60);
fn saved(when: DateTime<Utc>) -> RunnableEvent {
    let files = vec![
        file("lib/util.py", "def f(): pass"),
        file("main.py", "print(1)"),
    ];
    RunnableEvent::RunnableImageSaved {
        digest: manifest_digest(&cmd("python3 main.py"), &files),
        start_command: cmd("python3 main.py"),
        files,
        at: when,
    }
}
fn image() -> Image {
    let files = vec![
        file("lib/util.py", "def f(): pass"),
        file("main.py", "print(1)"),
    ];
    Image {
        digest: manifest_digest(&cmd("python3 main.py"), &files),
        saved_at: t1(),
        start_command: cmd("python3 main.py"),
        files,
    }
}
fn fork(parent_image: Option<Image>) -> RunnableCommand {
    RunnableCommand::Fork {
        id: id(),
        name: name("my hello"),
        owner: user("bob"),
        parent: ForkSource {
            id: parent_id(),
            image: parent_image,
        },
        at: t2(),
    }
}
fn reap(days: u64, now: DateTime<Utc>) -> RunnableCommand {
    RunnableCommand::Reap {
        reap_after: Duration::from_secs(days * 86_400),
        now,
    }
}

// ---- values ----

#[test]
fn a_path_is_normalized() {
    for (given, normal) in [
        ("a", "a"),
        ("a//b/./c", "a/b/c"),
        ("a/b/", "a/b"),
        ("./a", "a"),
        ("a/./", "a"),
        (" a / b ", " a / b "),
        ("a\\b", "a\\b"),
        ("...", "..."),
        ("..a/b..", "..a/b.."),
        ("été/文件", "été/文件"),
        ("\u{e9}", "\u{e9}"),
        ("한국어", "한국어"),
    ] {
        assert_eq!(path(given).as_str(), normal, "{given:?}");
    }
    assert_eq!(path("a/b").to_string(), "a/b");
    assert_eq!(
        FilePath::parse(&format!("{}/b", "a".repeat(255)))
            .unwrap()
            .as_str()
            .len(),
        257
    );
}

#[test]
fn a_path_never_leaves_the_tree() {
    for (bad, message) in [
        ("", "is empty"),
        ("/", "must be relative to the runnable's tree, not absolute"),
        (".", "is empty"),
        ("./", "is empty"),
        (
            "//",
            "must be relative to the runnable's tree, not absolute",
        ),
        (
            "/etc/passwd",
            "must be relative to the runnable's tree, not absolute",
        ),
        ("..", "may not hold a `..` component"),
        ("../x", "may not hold a `..` component"),
        ("a/../../x", "may not hold a `..` component"),
        ("a/..", "may not hold a `..` component"),
        ("a\0b", "may not hold control characters"),
        ("a\nb", "may not hold control characters"),
        ("a/\tb", "may not hold control characters"),
        ("a\u{7f}", "may not hold control characters"),
        ("a\u{85}b", "may not hold control characters"),
        // `e` then a combining acute accent: NFD's é, not NFC's.
        ("e\u{301}t\u{e9}", "must be in Unicode NFC"),
        ("a/\u{212b}", "must be in Unicode NFC"),
    ] {
        assert_eq!(
            FilePath::parse(bad),
            Err(invalid("path", message)),
            "{bad:?}"
        );
    }
    assert_eq!(
        FilePath::parse(&"a".repeat(256)),
        Err(invalid("path", "each component must be at most 255 bytes"))
    );
    // 5 components of 255 bytes: 1279 bytes, each component fine, the whole too long.
    let long = vec!["a".repeat(255); 5].join("/");
    assert_eq!(
        FilePath::parse(&long),
        Err(invalid("path", "must be at most 1024 bytes"))
    );
    // 3 components of 255 bytes, one of 254 and one of 1: 1024 bytes, the longest.
    let longest = format!(
        "{}/{}/b",
        vec!["a".repeat(255); 3].join("/"),
        "a".repeat(254)
    );
    assert_eq!(longest.len(), 1024);
    assert!(FilePath::parse(&longest).is_ok());
    assert_eq!(
        FilePath::parse(&format!("{longest}c")),
        Err(invalid("path", "must be at most 1024 bytes"))
    );
    // Redundant separators do not count: the normalized path is what is measured.
    assert!(FilePath::parse(&format!("./{}", longest.replace('/', "//"))).is_ok());
}

#[test]
fn a_path_knows_its_folders() {
    assert!(path("a/b").is_under(&path("a")));
    assert!(path("a/b/c").is_under(&path("a")));
    assert!(path("a/b/c").is_under(&path("a/b")));
    assert!(!path("a").is_under(&path("a")));
    assert!(!path("ab").is_under(&path("a")));
    assert!(!path("a").is_under(&path("a/b")));
    assert_eq!(path("a/b/c").parent(), Some(path("a/b")));
    assert_eq!(path("a").parent(), None);
    assert_eq!(
        path("a/b/c").ancestors().collect::<Vec<_>>(),
        vec![path("a"), path("a/b")]
    );
    assert_eq!(path("a").ancestors().count(), 0);
    assert_eq!(path("a/b/c.txt").file_name(), "c.txt");
    assert_eq!(path("c.txt").file_name(), "c.txt");
}

#[test]
fn names_and_start_commands_are_bounded() {
    assert_eq!(name("My app ✓").as_str(), "My app ✓");
    assert!(RunnableName::parse(&"é".repeat(100)).is_ok());
    for bad in ["", &"a".repeat(101)] {
        assert_eq!(
            RunnableName::parse(bad),
            Err(invalid("name", "must be 1 to 100 characters"))
        );
    }
    assert_eq!(
        RunnableName::parse("a\nb"),
        Err(invalid("name", "may not hold control characters"))
    );
    assert_eq!(cmd("echo hi && sleep 1\n").as_str(), "echo hi && sleep 1\n");
    assert!(StartCommand::parse(&"a".repeat(4096)).is_ok());
    // Characters, not bytes: as the document's `maxLength` counts.
    assert!(StartCommand::parse(&"é".repeat(4096)).is_ok());
    for bad in ["", &"a".repeat(4097)] {
        assert_eq!(
            StartCommand::parse(bad),
            Err(invalid("start_command", "must be 1 to 4096 characters"))
        );
    }
    assert_eq!(
        StartCommand::parse("echo\0"),
        Err(invalid("start_command", "may not hold a NUL character"))
    );
}

#[test]
fn a_digest_is_a_sha256_in_lowercase_hex() {
    assert_eq!(
        Digest::of(b"").as_str(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let d = Digest::of(b"hello");
    assert_eq!(Digest::parse(d.as_str()), Ok(d.clone()));
    for bad in [
        "",
        "abc",
        &d.as_str().to_uppercase(),
        &format!("{}0", d),
        &"g".repeat(64),
    ] {
        assert_eq!(
            Digest::parse(bad),
            Err(invalid(
                "digest",
                "must be a sha256: 64 lowercase hex digits"
            )),
            "{bad:?}"
        );
    }
    assert_eq!(serde_json::to_value(&d).unwrap(), json!(d.as_str()));
}

#[test]
fn a_runnable_id_is_a_uuid() {
    let uuid = Uuid::from_u128(7);
    assert_eq!(
        RunnableId::parse("from", &uuid.to_string()),
        Ok(RunnableId::new(uuid))
    );
    assert_eq!(RunnableId::from(uuid).as_uuid(), uuid);
    assert_eq!(RunnableId::new(uuid).to_string(), uuid.to_string());
    assert_eq!(
        RunnableId::parse("from", "nope"),
        Err(invalid("from", "\"nope\" is not a runnable id"))
    );
    assert_eq!(
        serde_json::to_value(RunnableId::new(uuid)).unwrap(),
        json!(uuid.to_string())
    );
}

#[test]
fn the_manifest_digest_depends_on_the_files_and_start_command_only() {
    let a = file("a", "1");
    let b = file("b", "2");
    let c = cmd("./run");
    let digest = manifest_digest(&c, &[a.clone(), b.clone()]);
    assert_eq!(
        manifest_digest(&c, &[b.clone(), a.clone()]),
        digest,
        "order does not matter"
    );
    let canonical = format!(
        "{{\"files\":[[\"a\",\"{}\",1],[\"b\",\"{}\",1]],\"start_command\":\"./run\"}}",
        a.digest, b.digest
    );
    assert_eq!(digest, Digest::of(canonical.as_bytes()));
    assert_ne!(
        manifest_digest(&cmd("./other"), &[a.clone(), b.clone()]),
        digest
    );
    assert_ne!(manifest_digest(&c, std::slice::from_ref(&a)), digest);
    assert_ne!(manifest_digest(&c, &[a, file("b", "3")]), digest);
}

#[test]
fn the_default_limits_are_one_mib_a_thousand_files_and_64_mib() {
    assert_eq!(
        FileLimits::default(),
        FileLimits {
            max_file_bytes: 1_048_576,
            max_files: 1000,
            max_total_bytes: 67_108_864,
        }
    );
    assert_eq!(limits().check_file_size(1_048_576), Ok(()));
    assert_eq!(
        limits().check_file_size(1_048_577),
        Err(too_large(
            "file_too_large",
            "a file may hold at most 1048576 bytes (runnables.max_file_bytes); this one holds \
             1048577"
        ))
    );
}

// ---- events ----

#[test]
fn events_round_trip_through_the_log() {
    for event in [
        created(),
        RunnableEvent::RunnableCreated {
            id: id(),
            name: name("fork"),
            owner: user("bob"),
            parent: Some(parent_id()),
            start_command: cmd("./run"),
            files: vec![],
            at: t0(),
        },
        RunnableEvent::RunnableUpdated {
            name: Some(name("renamed")),
            start_command: None,
            at: t1(),
        },
        RunnableEvent::RunnableUpdated {
            name: None,
            start_command: Some(cmd("./run")),
            at: t1(),
        },
        written("a/b", "x", t1()),
        RunnableEvent::RunnableFilesDeleted {
            paths: vec![path("a/b"), path("a/c")],
            at: t1(),
        },
        RunnableEvent::RunnableAccessed { at: t1() },
        saved(t1()),
        RunnableEvent::RunnableRemoved { at: t2() },
        RunnableEvent::RunnableReaped {
            last_access: t0(),
            at: t2(),
        },
    ] {
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, event.event_type());
        assert_eq!(decode::<RunnableEvent>(&event_type, &data).unwrap(), event);
    }
    let (event_type, data) = encode(&written("a/b", "x", t1())).unwrap();
    assert_eq!(event_type, "RunnableFileWritten");
    assert_eq!(
        data,
        json!({"path": "a/b", "digest": digest("x").as_str(), "size": 1,
               "at": "2024-05-01T11:00:00Z"})
    );
    let (_, data) = encode(&RunnableEvent::RunnableUpdated {
        name: Some(name("renamed")),
        start_command: None,
        at: t1(),
    })
    .unwrap();
    assert_eq!(
        data,
        json!({"name": "renamed", "at": "2024-05-01T11:00:00Z"})
    );
    let (_, data) = encode(&created()).unwrap();
    assert_eq!(data["id"], json!(Uuid::from_u128(1).to_string()));
    assert_eq!(data["parent"], json!(null));
    assert_eq!(
        data["files"][0],
        json!({"path": "lib/util.py", "digest": digest("def f(): pass").as_str(), "size": 13})
    );
    assert_eq!(Runnable::CATEGORY, "runnable");
}

// ---- create root ----

#[test]
fn creates_a_root_runnable_with_its_files_sorted() {
    given::<Runnable>(&[])
        .when(RunnableCommand::CreateRoot {
            id: id(),
            name: name("hello"),
            owner: user("alice"),
            start_command: cmd("python3 main.py"),
            files: vec![
                file("main.py", "print(1)"),
                file("lib/util.py", "def f(): pass"),
            ],
            limits: limits(),
            at: t0(),
        })
        .then(vec![created()]);
}

#[test]
fn a_created_runnable_holds_its_files_and_no_image() {
    let runnable = given::<Runnable>(&[created()]);
    let state = runnable.state();
    assert!(state.exists());
    assert!(state.is_active());
    assert_eq!(state.active_id(), Ok(id()));
    assert_eq!(state.id(), Some(id()));
    assert_eq!(state.name(), Some(&name("hello")));
    assert_eq!(state.owner(), Some(&user("alice")));
    assert_eq!(state.parent(), None);
    assert_eq!(state.start_command(), Some(&cmd("python3 main.py")));
    assert_eq!(
        state.files().keys().cloned().collect::<Vec<_>>(),
        vec![path("lib/util.py"), path("main.py")]
    );
    assert_eq!(
        state.file(&path("main.py")),
        Some(&file("main.py", "print(1)"))
    );
    assert_eq!(state.total_bytes(), 21);
    assert!(state.is_folder(&path("lib")));
    assert!(!state.is_folder(&path("main.py")));
    assert_eq!(state.image(), None);
    assert_eq!(state.last_access(), Some(t0()));
    assert_eq!(state.created_at(), Some(t0()));
    let none = given::<Runnable>(&[]);
    assert!(!none.state().exists());
    assert_eq!(none.state().active_id(), Err(no_such_runnable()));
}

#[test]
fn an_id_is_one_runnable() {
    let again = RunnableCommand::CreateRoot {
        id: id(),
        name: name("hello"),
        owner: user("alice"),
        start_command: cmd("./run"),
        files: vec![],
        limits: limits(),
        at: t1(),
    };
    let exists = conflict("runnable_exists", "a runnable with this id already exists");
    given::<Runnable>(&[created()])
        .when(again.clone())
        .refused(exists.clone());
    given::<Runnable>(&[created(), RunnableEvent::RunnableRemoved { at: t1() }])
        .when(again)
        .refused(exists.clone());
    given::<Runnable>(&[created()])
        .when(fork(Some(image())))
        .refused(exists);
}

#[test]
fn a_root_runnable_keeps_the_file_limits() {
    let create = |files: Vec<FileEntry>| RunnableCommand::CreateRoot {
        id: id(),
        name: name("hello"),
        owner: user("alice"),
        start_command: cmd("./run"),
        files,
        limits: small_limits(),
        at: t0(),
    };
    given::<Runnable>(&[])
        .when(create(vec![file("a", "0123456789x")]))
        .refused(too_large(
            "file_too_large",
            "a file may hold at most 10 bytes (runnables.max_file_bytes); this one holds 11",
        ));
    given::<Runnable>(&[])
        .when(create(vec![
            file("a", "1"),
            file("b", "2"),
            file("c", "3"),
            file("d", "4"),
        ]))
        .refused(invalid(
            "files",
            "a runnable may hold at most 3 files (runnables.max_files)",
        ));
    given::<Runnable>(&[])
        .when(create(vec![
            file("a", "0123456789"),
            file("b", "0123456789"),
            file("c", "0"),
        ]))
        .refused(too_large(
            "runnable_too_large",
            "a runnable's files may hold at most 20 bytes together (runnables.max_total_bytes); \
             these would hold 21",
        ));
    given::<Runnable>(&[])
        .when(create(vec![
            file("a", "0123456789"),
            file("b", "0123456789"),
        ]))
        .then(vec![RunnableEvent::RunnableCreated {
            id: id(),
            name: name("hello"),
            owner: user("alice"),
            parent: None,
            start_command: cmd("./run"),
            files: vec![file("a", "0123456789"), file("b", "0123456789")],
            at: t0(),
        }]);
}

#[test]
fn a_root_runnable_has_each_path_once_and_no_file_under_a_file() {
    let create = |files: Vec<FileEntry>| RunnableCommand::CreateRoot {
        id: id(),
        name: name("hello"),
        owner: user("alice"),
        start_command: cmd("./run"),
        files,
        limits: limits(),
        at: t0(),
    };
    given::<Runnable>(&[])
        .when(create(vec![file("a/b", "1"), file("a//b", "2")]))
        .refused(invalid("files", "a/b is given twice"));
    given::<Runnable>(&[])
        .when(create(vec![file("a/b/c", "1"), file("a", "2")]))
        .refused(invalid("files", "a is a file: a/b/c cannot be under it"));
}

// ---- fork ----

#[test]
fn a_fork_starts_from_its_parents_image() {
    given::<Runnable>(&[])
        .when(fork(Some(image())))
        .then(vec![RunnableEvent::RunnableCreated {
            id: id(),
            name: name("my hello"),
            owner: user("bob"),
            parent: Some(parent_id()),
            start_command: cmd("python3 main.py"),
            files: image().files,
            at: t2(),
        }]);
}

#[test]
fn a_parent_without_an_image_cannot_be_forked() {
    given::<Runnable>(&[]).when(fork(None)).refused(conflict(
        "parent_has_no_image",
        &format!(
            "runnable {} has no image to fork: its owner must save it first",
            parent_id()
        ),
    ));
}

#[test]
fn a_fork_source_is_an_active_runnables_image() {
    let parent = given::<Runnable>(&[created(), saved(t1())]);
    assert_eq!(
        ForkSource::of(parent.state()),
        Ok(ForkSource {
            id: id(),
            image: Some(image()),
        })
    );
    let unsaved = given::<Runnable>(&[created()]);
    assert_eq!(
        ForkSource::of(unsaved.state()),
        Ok(ForkSource {
            id: id(),
            image: None
        })
    );
    let removed = given::<Runnable>(&[
        created(),
        saved(t1()),
        RunnableEvent::RunnableRemoved { at: t2() },
    ]);
    assert_eq!(ForkSource::of(removed.state()), Err(no_such_runnable()));
    assert_eq!(
        ForkSource::of(&Runnable::default()),
        Err(no_such_runnable())
    );
}

// ---- update ----

#[test]
fn update_records_what_changed() {
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Update {
            name: Some(name("hello")),
            start_command: Some(cmd("./run")),
            at: t1(),
        })
        .then(vec![RunnableEvent::RunnableUpdated {
            name: None,
            start_command: Some(cmd("./run")),
            at: t1(),
        }]);
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Update {
            name: Some(name("renamed")),
            start_command: None,
            at: t1(),
        })
        .then(vec![RunnableEvent::RunnableUpdated {
            name: Some(name("renamed")),
            start_command: None,
            at: t1(),
        }]);
}

#[test]
fn update_without_a_change_is_no_event() {
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Update {
            name: Some(name("hello")),
            start_command: Some(cmd("python3 main.py")),
            at: t1(),
        })
        .then_nothing();
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Update {
            name: None,
            start_command: None,
            at: t1(),
        })
        .then_nothing();
}

#[test]
fn an_update_applies_and_moves_the_last_access() {
    let runnable = given::<Runnable>(&[
        created(),
        RunnableEvent::RunnableUpdated {
            name: Some(name("renamed")),
            start_command: Some(cmd("./run")),
            at: t1(),
        },
    ]);
    assert_eq!(runnable.state().name(), Some(&name("renamed")));
    assert_eq!(runnable.state().start_command(), Some(&cmd("./run")));
    assert_eq!(runnable.state().last_access(), Some(t1()));
}

// ---- write a file ----

#[test]
fn writes_a_new_file() {
    given::<Runnable>(&[created()])
        .when(write("lib/more/x.py", "x = 1", limits(), t1()))
        .then(vec![written("lib/more/x.py", "x = 1", t1())]);
}

#[test]
fn replaces_a_files_content() {
    given::<Runnable>(&[created()])
        .when(write("main.py", "print(2)", limits(), t1()))
        .then(vec![written("main.py", "print(2)", t1())]);
}

#[test]
fn a_written_file_is_in_the_tree_and_moves_the_last_access() {
    let runnable = given::<Runnable>(&[created(), written("main.py", "print(22)", t1())]);
    assert_eq!(
        runnable.state().file(&path("main.py")),
        Some(&file("main.py", "print(22)"))
    );
    assert_eq!(runnable.state().total_bytes(), 22);
    assert_eq!(runnable.state().last_access(), Some(t1()));
}

#[test]
fn the_same_content_again_is_an_access_at_most_once_a_minute() {
    given::<Runnable>(&[created()])
        .when(write("main.py", "print(1)", limits(), t1()))
        .then(vec![RunnableEvent::RunnableAccessed { at: t1() }]);
    given::<Runnable>(&[created()])
        .when(write(
            "main.py",
            "print(1)",
            limits(),
            t0() + Span::seconds(59),
        ))
        .then_nothing();
}

#[test]
fn a_file_past_max_file_bytes_is_refused() {
    given::<Runnable>(&[created()])
        .when(write("big", "0123456789x", write_limits(), t1()))
        .refused(too_large(
            "file_too_large",
            "a file may hold at most 10 bytes (runnables.max_file_bytes); this one holds 11",
        ));
    given::<Runnable>(&[created()])
        .when(write("big", "0123456789", write_limits(), t1()))
        .then(vec![written("big", "0123456789", t1())]);
}

#[test]
fn a_new_file_past_max_files_is_refused_a_replaced_one_is_not() {
    // created() holds 2 files; write_limits() allows 3.
    let three = [created(), written("c", "3", t1())];
    given::<Runnable>(&three)
        .when(write("d", "4", write_limits(), t2()))
        .refused(invalid(
            "files",
            "a runnable may hold at most 3 files (runnables.max_files)",
        ));
    given::<Runnable>(&three)
        .when(write("c", "33", write_limits(), t2()))
        .then(vec![written("c", "33", t2())]);
}

#[test]
fn files_past_max_total_bytes_are_refused_counting_the_replaced_one_out() {
    let files = FileLimits {
        max_file_bytes: 100,
        max_files: 100,
        max_total_bytes: 30,
    };
    // created() holds 21 bytes: main.py 8, lib/util.py 13.
    given::<Runnable>(&[created()])
        .when(write("c", "0123456789", files, t1()))
        .refused(too_large(
            "runnable_too_large",
            "a runnable's files may hold at most 30 bytes together (runnables.max_total_bytes); \
             these would hold 31",
        ));
    given::<Runnable>(&[created()])
        .when(write("c", "012345678", files, t1()))
        .then(vec![written("c", "012345678", t1())]);
    given::<Runnable>(&[created()])
        .when(write("main.py", "print(123456789)", files, t1()))
        .then(vec![written("main.py", "print(123456789)", t1())]);
}

#[test]
fn a_runnable_over_max_total_bytes_may_still_shrink_a_file_but_not_grow() {
    // The limit lowered under what created() holds (21 bytes).
    let lowered = FileLimits {
        max_file_bytes: 100,
        max_files: 100,
        max_total_bytes: 10,
    };
    given::<Runnable>(&[created()])
        .when(write("lib/util.py", "pass", lowered, t1()))
        .then(vec![written("lib/util.py", "pass", t1())]);
    // As large as before: not growing, allowed.
    given::<Runnable>(&[created()])
        .when(write("main.py", "print(2)", lowered, t1()))
        .then(vec![written("main.py", "print(2)", t1())]);
    given::<Runnable>(&[created()])
        .when(write("main.py", "print(22)", lowered, t1()))
        .refused(too_large(
            "runnable_too_large",
            "a runnable's files may hold at most 10 bytes together (runnables.max_total_bytes); \
             these would hold 22",
        ));
    given::<Runnable>(&[created()])
        .when(write("new", "1", lowered, t1()))
        .refused(too_large(
            "runnable_too_large",
            "a runnable's files may hold at most 10 bytes together (runnables.max_total_bytes); \
             these would hold 22",
        ));
}

#[test]
fn a_file_is_not_written_under_a_file() {
    given::<Runnable>(&[created()])
        .when(write("main.py/x", "1", limits(), t1()))
        .refused(conflict(
            "path_conflict",
            "main.py is a file: main.py/x cannot be under it",
        ));
    given::<Runnable>(&[created()])
        .when(write("lib/util.py/a/b", "1", limits(), t1()))
        .refused(conflict(
            "path_conflict",
            "lib/util.py is a file: lib/util.py/a/b cannot be under it",
        ));
}

#[test]
fn a_file_is_not_written_where_a_folder_is() {
    given::<Runnable>(&[created()])
        .when(write("lib", "1", limits(), t1()))
        .refused(conflict(
            "path_conflict",
            "lib is a folder: delete it first to write a file there",
        ));
    // A name that only starts like a folder's is no folder.
    given::<Runnable>(&[created()])
        .when(write("li", "1", limits(), t1()))
        .then(vec![written("li", "1", t1())]);
    given::<Runnable>(&[created()])
        .when(write("lib.py", "1", limits(), t1()))
        .then(vec![written("lib.py", "1", t1())]);
}

// ---- delete files ----

#[test]
fn deletes_a_file() {
    given::<Runnable>(&[created()])
        .when(RunnableCommand::DeleteFiles {
            path: path("main.py"),
            recursive: false,
            at: t1(),
        })
        .then(vec![RunnableEvent::RunnableFilesDeleted {
            paths: vec![path("main.py")],
            at: t1(),
        }]);
}

#[test]
fn a_folder_is_deleted_only_recursively() {
    let past = [
        created(),
        written("lib/a/b.py", "1", t1()),
        written("libs", "2", t1()),
    ];
    given::<Runnable>(&past)
        .when(RunnableCommand::DeleteFiles {
            path: path("lib"),
            recursive: false,
            at: t2(),
        })
        .refused(invalid(
            "recursive",
            "lib is a folder of 2 file(s): delete it with recursive=true",
        ));
    given::<Runnable>(&past)
        .when(RunnableCommand::DeleteFiles {
            path: path("lib"),
            recursive: true,
            at: t2(),
        })
        .then(vec![RunnableEvent::RunnableFilesDeleted {
            paths: vec![path("lib/a/b.py"), path("lib/util.py")],
            at: t2(),
        }]);
    given::<Runnable>(&past)
        .when(RunnableCommand::DeleteFiles {
            path: path("lib/a"),
            recursive: true,
            at: t2(),
        })
        .then(vec![RunnableEvent::RunnableFilesDeleted {
            paths: vec![path("lib/a/b.py")],
            at: t2(),
        }]);
}

#[test]
fn deleting_nothing_is_not_found() {
    for missing in ["nope", "li", "main.py/x", "lib/util"] {
        given::<Runnable>(&[created()])
            .when(RunnableCommand::DeleteFiles {
                path: path(missing),
                recursive: true,
                at: t1(),
            })
            .refused(DomainError::NotFound(format!(
                "no file or folder {missing}"
            )));
    }
}

#[test]
fn deleted_files_leave_the_tree_and_their_empty_folders() {
    let runnable = given::<Runnable>(&[
        created(),
        RunnableEvent::RunnableFilesDeleted {
            paths: vec![path("lib/util.py")],
            at: t1(),
        },
    ]);
    assert_eq!(
        runnable.state().files().keys().cloned().collect::<Vec<_>>(),
        vec![path("main.py")]
    );
    assert!(!runnable.state().is_folder(&path("lib")));
    assert_eq!(runnable.state().total_bytes(), 8);
    assert_eq!(runnable.state().last_access(), Some(t1()));
}

// ---- access ----

#[test]
fn a_read_is_an_access_at_most_once_a_minute() {
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Access {
            every: MINUTE,
            at: t0() + Span::seconds(60),
        })
        .then(vec![RunnableEvent::RunnableAccessed {
            at: t0() + Span::seconds(60),
        }]);
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Access {
            every: MINUTE,
            at: t0() + Span::seconds(59),
        })
        .then_nothing();
    // A clock behind the last access: no access either.
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Access {
            every: MINUTE,
            at: t0() - Span::seconds(10),
        })
        .then_nothing();
    let runnable = given::<Runnable>(&[created(), RunnableEvent::RunnableAccessed { at: t1() }]);
    assert_eq!(runnable.state().last_access(), Some(t1()));
}

#[test]
fn the_access_throttle_is_a_minute_or_a_quarter_of_reap_after() {
    assert_eq!(access_every(Duration::from_secs(7 * 24 * 3600)), MINUTE);
    assert_eq!(access_every(Duration::from_secs(240)), MINUTE);
    assert_eq!(access_every(Duration::from_secs(8)), Duration::from_secs(2));
    assert_eq!(
        access_every(Duration::from_secs(1)),
        Duration::from_millis(250)
    );
    assert_eq!(ACCESS_EVERY_AT_MOST, MINUTE);
}

#[test]
fn a_read_is_an_access_at_most_once_every_the_throttle_given() {
    let every = Duration::from_secs(2);
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Access {
            every,
            at: t0() + Span::seconds(2),
        })
        .then(vec![RunnableEvent::RunnableAccessed {
            at: t0() + Span::seconds(2),
        }]);
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Access {
            every,
            at: t0() + Span::milliseconds(1999),
        })
        .then_nothing();
    // The same content written again: the same throttle.
    given::<Runnable>(&[created()])
        .when(RunnableCommand::WriteFile {
            path: path("main.py"),
            digest: digest("print(1)"),
            size: 8,
            limits: limits(),
            access_every: every,
            at: t0() + Span::seconds(3),
        })
        .then(vec![RunnableEvent::RunnableAccessed {
            at: t0() + Span::seconds(3),
        }]);
}

// ---- save ----

#[test]
fn save_makes_an_image_of_its_files_and_start_command() {
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Save { at: t1() })
        .then(vec![saved(t1())]);
    let runnable = given::<Runnable>(&[created(), saved(t1())]);
    assert_eq!(runnable.state().image(), Some(&image()));
    assert_eq!(runnable.state().last_access(), Some(t1()));
}

#[test]
fn saving_the_same_again_is_no_event() {
    given::<Runnable>(&[created(), saved(t1())])
        .when(RunnableCommand::Save { at: t2() })
        .then_nothing();
}

#[test]
fn save_overwrites_the_image() {
    let past = [created(), saved(t1()), written("main.py", "print(2)", t1())];
    let files = vec![
        file("lib/util.py", "def f(): pass"),
        file("main.py", "print(2)"),
    ];
    given::<Runnable>(&past)
        .when(RunnableCommand::Save { at: t2() })
        .then(vec![RunnableEvent::RunnableImageSaved {
            digest: manifest_digest(&cmd("python3 main.py"), &files),
            start_command: cmd("python3 main.py"),
            files: files.clone(),
            at: t2(),
        }]);
    // A new start command alone is a new image too.
    let past = [
        created(),
        saved(t1()),
        RunnableEvent::RunnableUpdated {
            name: None,
            start_command: Some(cmd("./run")),
            at: t1(),
        },
    ];
    let files = image().files;
    given::<Runnable>(&past)
        .when(RunnableCommand::Save { at: t2() })
        .then(vec![RunnableEvent::RunnableImageSaved {
            digest: manifest_digest(&cmd("./run"), &files),
            start_command: cmd("./run"),
            files,
            at: t2(),
        }]);
}

#[test]
fn the_image_stays_as_saved_while_the_files_change() {
    let runnable = given::<Runnable>(&[
        created(),
        saved(t1()),
        written("main.py", "print(2)", t2()),
        RunnableEvent::RunnableFilesDeleted {
            paths: vec![path("lib/util.py")],
            at: t2(),
        },
    ]);
    assert_eq!(runnable.state().image(), Some(&image()));
    assert_eq!(runnable.state().files().len(), 1);
}

// ---- remove ----

#[test]
fn removes_a_runnable() {
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Remove { at: t1() })
        .then(vec![RunnableEvent::RunnableRemoved { at: t1() }]);
    let runnable = given::<Runnable>(&[created(), RunnableEvent::RunnableRemoved { at: t1() }]);
    assert!(runnable.state().exists());
    assert!(!runnable.state().is_active());
    assert_eq!(runnable.state().active_id(), Err(no_such_runnable()));
    assert_eq!(
        runnable.state().last_access(),
        Some(t0()),
        "a removal is no access"
    );
}

#[test]
fn a_removed_or_reaped_runnable_is_not_found() {
    let commands = || {
        vec![
            RunnableCommand::Update {
                name: Some(name("x")),
                start_command: None,
                at: t2(),
            },
            write("x", "1", limits(), t2()),
            RunnableCommand::DeleteFiles {
                path: path("main.py"),
                recursive: false,
                at: t2(),
            },
            RunnableCommand::Access {
                every: MINUTE,
                at: t2(),
            },
            RunnableCommand::Save { at: t2() },
            RunnableCommand::Remove { at: t2() },
        ]
    };
    let reaped = RunnableEvent::RunnableReaped {
        last_access: t0(),
        at: t1(),
    };
    for past in [
        vec![],
        vec![created(), RunnableEvent::RunnableRemoved { at: t1() }],
        vec![created(), reaped],
    ] {
        for command in commands() {
            given::<Runnable>(&past)
                .when(command)
                .refused(no_such_runnable());
        }
    }
}

// ---- reap ----

#[test]
fn an_idle_runnable_without_an_image_is_reaped() {
    given::<Runnable>(&[created()])
        .when(reap(7, t0() + Span::days(7)))
        .then(vec![RunnableEvent::RunnableReaped {
            last_access: t0(),
            at: t0() + Span::days(7),
        }]);
    let runnable = given::<Runnable>(&[
        created(),
        RunnableEvent::RunnableReaped {
            last_access: t0(),
            at: t2(),
        },
    ]);
    assert!(!runnable.state().is_active());
    assert_eq!(
        runnable.state().last_access(),
        Some(t0()),
        "a reaping is no access"
    );
}

#[test]
fn a_runnable_accessed_lately_is_not_reaped() {
    given::<Runnable>(&[created()])
        .when(reap(7, t0() + Span::days(7) - Span::seconds(1)))
        .then_nothing();
    // The last access counts, not the creation.
    let past = [created(), RunnableEvent::RunnableAccessed { at: t1() }];
    given::<Runnable>(&past)
        .when(reap(7, t0() + Span::days(7)))
        .then_nothing();
    given::<Runnable>(&past)
        .when(reap(7, t1() + Span::days(7)))
        .then(vec![RunnableEvent::RunnableReaped {
            last_access: t1(),
            at: t1() + Span::days(7),
        }]);
    // A clock behind the last access.
    given::<Runnable>(&past).when(reap(0, t0())).then_nothing();
}

#[test]
fn a_runnable_with_an_image_is_never_reaped() {
    given::<Runnable>(&[created(), saved(t0())])
        .when(reap(7, t0() + Span::days(700)))
        .then_nothing();
}

#[test]
fn reaping_what_is_gone_is_no_event() {
    for past in [
        vec![],
        vec![created(), RunnableEvent::RunnableRemoved { at: t1() }],
        vec![
            created(),
            RunnableEvent::RunnableReaped {
                last_access: t0(),
                at: t1(),
            },
        ],
    ] {
        given::<Runnable>(&past)
            .when(reap(0, t2() + Span::days(30)))
            .then_nothing();
    }
}

// ---- runs ----

fn start_requested(generation: u64, when: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableStartRequested {
        generation,
        at: when,
    }
}
fn restart_requested(generation: u64, when: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableRestartRequested {
        generation,
        at: when,
    }
}
fn stop_requested(when: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableStopRequested { at: when }
}
fn run_started(generation: u64, node: &str, when: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableRunStarted {
        generation,
        node: node.into(),
        pid: 42,
        at: when,
    }
}
fn run_ended(generation: u64, node: &str, code: Option<i32>, when: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableRunEnded {
        generation,
        node: node.into(),
        code,
        signal: None,
        synced: true,
        at: when,
    }
}
fn run_stopped(
    generation: u64,
    node: &str,
    reason: RunStopReason,
    when: DateTime<Utc>,
) -> RunnableEvent {
    RunnableEvent::RunnableRunStopped {
        generation,
        node: node.into(),
        reason,
        // What a runner says: nothing synced from a run lost.
        synced: !matches!(reason, RunStopReason::LeaseLost | RunStopReason::Lost),
        at: when,
    }
}
fn run_failed(generation: u64, node: &str, when: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableRunFailed {
        generation,
        node: node.into(),
        diagnostics: "bwrap: not found".into(),
        at: when,
    }
}
fn started_cmd(generation: u64, node: &str, when: DateTime<Utc>) -> RunnableCommand {
    RunnableCommand::RunStarted {
        generation,
        node: node.into(),
        pid: 42,
        at: when,
    }
}
fn ended_cmd(
    generation: u64,
    node: &str,
    code: Option<i32>,
    when: DateTime<Utc>,
) -> RunnableCommand {
    RunnableCommand::RunEnded {
        generation,
        node: node.into(),
        code,
        signal: None,
        synced: true,
        at: when,
    }
}
fn stopped_cmd(
    generation: u64,
    node: &str,
    reason: RunStopReason,
    when: DateTime<Utc>,
) -> RunnableCommand {
    RunnableCommand::RunStopped {
        generation,
        node: node.into(),
        reason,
        synced: !matches!(reason, RunStopReason::LeaseLost | RunStopReason::Lost),
        at: when,
    }
}
fn failed_cmd(
    generation: u64,
    node: &str,
    diagnostics: &str,
    when: DateTime<Utc>,
) -> RunnableCommand {
    RunnableCommand::RunFailed {
        generation,
        node: node.into(),
        diagnostics: diagnostics.into(),
        at: when,
    }
}
fn sync_cmd(
    node: &str,
    sync: Option<Uuid>,
    written: Vec<FileEntry>,
    deleted: Vec<FilePath>,
    limits: FileLimits,
) -> RunnableCommand {
    RunnableCommand::SyncFiles {
        node: node.into(),
        sync,
        written,
        deleted,
        skipped: vec![],
        limits,
        at: t2(),
    }
}
fn synced(
    sync: Option<Uuid>,
    written: Vec<FileEntry>,
    deleted: Vec<FilePath>,
    skipped: Vec<SkippedFile>,
) -> RunnableEvent {
    RunnableEvent::RunnableFilesSynced {
        node: "n1".into(),
        sync,
        written,
        deleted,
        skipped,
        at: t2(),
    }
}
fn skipped(p: &str, reason: &str) -> SkippedFile {
    SkippedFile {
        path: p.into(),
        reason: reason.into(),
    }
}
/// alice's runnable, started at t1: generation 1 runs on `n1` as pid 42.
fn running() -> Vec<RunnableEvent> {
    vec![
        created(),
        start_requested(1, t1()),
        run_started(1, "n1", t1()),
    ]
}
fn with(
    mut past: Vec<RunnableEvent>,
    more: impl IntoIterator<Item = RunnableEvent>,
) -> Vec<RunnableEvent> {
    past.extend(more);
    past
}
fn removed(when: DateTime<Utc>) -> RunnableEvent {
    RunnableEvent::RunnableRemoved { at: when }
}
fn not_wanted(generation: u64, why: &str) -> DomainError {
    conflict(
        "run_not_wanted",
        &format!("the run of generation {generation} is not wanted: {why}"),
    )
}
fn moved(node: &str, generation: u64) -> DomainError {
    conflict(
        "run_moved",
        &format!("the run of this runnable on record is not {node}'s of generation {generation}"),
    )
}

#[test]
fn run_events_round_trip_through_the_log() {
    for event in [
        RunnableEvent::RunnableOwnerChanged {
            from: user("anon-0123456789abcdef"),
            to: user("alice"),
            at: t1(),
        },
        start_requested(1, t1()),
        restart_requested(2, t1()),
        stop_requested(t1()),
        run_started(1, "n1", t1()),
        run_ended(1, "n1", Some(3), t1()),
        RunnableEvent::RunnableRunEnded {
            generation: 1,
            node: "n1".into(),
            code: None,
            signal: Some(9),
            synced: false,
            at: t1(),
        },
        run_stopped(1, "n1", RunStopReason::LeaseLost, t1()),
        run_failed(1, "n1", t1()),
        RunnableEvent::RunnableSyncRequested {
            sync: Uuid::from_u128(7),
            at: t1(),
        },
        synced(
            Some(Uuid::from_u128(7)),
            vec![file("out.txt", "x")],
            vec![path("old.txt")],
            vec![skipped("link", "a symlink")],
        ),
        synced(None, vec![], vec![path("old.txt")], vec![]),
    ] {
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, event.event_type());
        assert_eq!(decode::<RunnableEvent>(&event_type, &data).unwrap(), event);
    }
    let (event_type, data) =
        encode(&run_stopped(2, "n1", RunStopReason::NodeStopped, t1())).unwrap();
    assert_eq!(event_type, "RunnableRunStopped");
    assert_eq!(
        data,
        json!({"generation": 2, "node": "n1", "reason": "node_stopped", "synced": true, "at": "2024-05-01T11:00:00Z"})
    );
    // Recorded before runs said whether their files were synced: not synced.
    let older = decode::<RunnableEvent>(
        "RunnableRunStopped",
        &json!({"generation": 2, "node": "n1", "reason": "stop", "at": "2024-05-01T11:00:00Z"}),
    )
    .unwrap();
    assert!(
        matches!(
            older,
            RunnableEvent::RunnableRunStopped { synced: false, .. }
        ),
        "{older:?}"
    );
    for (reason, text) in [
        (RunStopReason::Stop, "stop"),
        (RunStopReason::Restart, "restart"),
        (RunStopReason::Removed, "removed"),
        (RunStopReason::NodeStopped, "node_stopped"),
        (RunStopReason::LeaseLost, "lease_lost"),
        (RunStopReason::Lost, "lost"),
    ] {
        assert_eq!(json!(reason), json!(text));
        assert_eq!(reason.as_str(), text);
    }
    let (_, data) = encode(&synced(None, vec![], vec![path("old.txt")], vec![])).unwrap();
    assert_eq!(
        data,
        json!({"node": "n1", "written": [], "deleted": ["old.txt"], "at": "2024-05-01T12:00:00Z"}),
        "no sync, nothing skipped: neither written"
    );
}

#[test]
fn a_new_runnable_is_stopped_and_never_wanted() {
    let runnable = given::<Runnable>(&[created()]);
    assert_eq!(runnable.state().run(), &Run::default());
    assert_eq!(runnable.state().run().phase.as_str(), "stopped");
}

#[test]
fn start_asks_for_the_next_generation_once() {
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Start { at: t1() })
        .then(vec![start_requested(1, t1())]);
    let starting = given::<Runnable>(&[created(), start_requested(1, t1())]);
    let run = starting.state().run();
    assert!(run.wanted);
    assert_eq!(
        (run.generation, run.phase, run.since),
        (1, RunPhase::Starting, Some(t1()))
    );
    assert_eq!(
        starting.state().last_access(),
        Some(t1()),
        "a start is an access"
    );
    starting
        .when(RunnableCommand::Start { at: t2() })
        .then_nothing();
    given::<Runnable>(&running())
        .when(RunnableCommand::Start { at: t2() })
        .then_nothing();
    // Stopped again, a start is a new generation.
    let past = with(running(), [run_ended(1, "n1", Some(0), t2())]);
    given::<Runnable>(&past)
        .when(RunnableCommand::Start { at: t2() })
        .then(vec![start_requested(2, t2())]);
    // Running but asked to stop: a start is wanted again, a new generation.
    let past = with(running(), [stop_requested(t2())]);
    given::<Runnable>(&past)
        .when(RunnableCommand::Start { at: t2() })
        .then(vec![start_requested(2, t2())]);
}

#[test]
fn restart_is_always_the_next_generation_and_starts_a_stopped_one() {
    given::<Runnable>(&running())
        .when(RunnableCommand::Restart { at: t2() })
        .then(vec![restart_requested(2, t2())]);
    given::<Runnable>(&[created()])
        .when(RunnableCommand::Restart { at: t1() })
        .then(vec![restart_requested(1, t1())]);
    given::<Runnable>(&[created(), start_requested(1, t1())])
        .when(RunnableCommand::Restart { at: t1() })
        .then(vec![restart_requested(2, t1())]);
    // The old run goes on until the runner stops it; the new generation is starting.
    let past = with(running(), [restart_requested(2, t2())]);
    let restarting = given::<Runnable>(&past);
    let run = restarting.state().run();
    assert!(run.wanted && run.is_live());
    assert_eq!(
        (run.generation, run.phase, run.run_generation, run.since),
        (2, RunPhase::Starting, Some(1), Some(t2()))
    );
    assert_eq!(restarting.state().last_access(), Some(t2()));
    // The runner stops the old one, then starts the new one.
    let past = with(past, [run_stopped(1, "n1", RunStopReason::Restart, t2())]);
    let stopped = given::<Runnable>(&past);
    assert_eq!(stopped.state().run().phase, RunPhase::Starting);
    assert!(!stopped.state().run().is_live());
    stopped
        .when(started_cmd(2, "n1", t2()))
        .then(vec![run_started(2, "n1", t2())]);
}

#[test]
fn stop_is_asked_once_and_a_starting_one_stops_at_once() {
    given::<Runnable>(&running())
        .when(RunnableCommand::Stop { at: t2() })
        .then(vec![stop_requested(t2())]);
    given::<Runnable>(&[created(), start_requested(1, t1())])
        .when(RunnableCommand::Stop { at: t2() })
        .then(vec![stop_requested(t2())]);
    for past in [
        vec![created()],
        with(running(), [stop_requested(t2())]),
        with(running(), [run_ended(1, "n1", Some(1), t2())]),
        with(
            running(),
            [
                stop_requested(t2()),
                run_stopped(1, "n1", RunStopReason::Stop, t2()),
            ],
        ),
        vec![
            created(),
            start_requested(1, t1()),
            run_failed(1, "n1", t1()),
        ],
    ] {
        given::<Runnable>(&past)
            .when(RunnableCommand::Stop { at: t2() })
            .then_nothing();
    }
    let starting = given::<Runnable>(&[created(), start_requested(1, t1()), stop_requested(t2())]);
    let run = starting.state().run();
    assert_eq!(
        (run.wanted, run.phase, run.since),
        (false, RunPhase::Stopped, Some(t2()))
    );
    // A running one runs on until its runner stops it.
    let stopping = given::<Runnable>(&with(running(), [stop_requested(t2())]));
    let run = stopping.state().run();
    assert_eq!(
        (run.wanted, run.phase, run.since),
        (false, RunPhase::Running, Some(t1()))
    );
    assert_eq!(
        stopping.state().last_access(),
        Some(t2()),
        "a stop is an access"
    );
    let stopped = given::<Runnable>(&with(
        running(),
        [
            stop_requested(t2()),
            run_stopped(1, "n1", RunStopReason::Stop, t2()),
        ],
    ));
    let run = stopped.state().run();
    assert_eq!(
        (
            run.wanted,
            run.phase,
            run.pid,
            run.node.as_deref(),
            run.since
        ),
        (false, RunPhase::Stopped, None, Some("n1"), Some(t2()))
    );
}

#[test]
fn a_run_starts_only_as_the_generation_wanted() {
    given::<Runnable>(&[created(), start_requested(1, t1())])
        .when(started_cmd(1, "n1", t1()))
        .then(vec![run_started(1, "n1", t1())]);
    let run = given::<Runnable>(&running()).state().run().clone();
    assert_eq!(
        (
            run.phase,
            run.node.as_deref(),
            run.pid,
            run.run_generation,
            run.is_live()
        ),
        (RunPhase::Running, Some("n1"), Some(42), Some(1), true)
    );
    given::<Runnable>(&[created()])
        .when(started_cmd(1, "n1", t1()))
        .refused(not_wanted(1, "it is not wanted running"));
    given::<Runnable>(&[created(), start_requested(1, t1()), stop_requested(t1())])
        .when(started_cmd(1, "n1", t1()))
        .refused(not_wanted(1, "it is not wanted running"));
    given::<Runnable>(&[
        created(),
        start_requested(1, t1()),
        restart_requested(2, t1()),
    ])
    .when(started_cmd(1, "n1", t1()))
    .refused(not_wanted(1, "generation 2 is wanted now"));
    given::<Runnable>(&[created(), start_requested(1, t1()), removed(t1())])
        .when(started_cmd(1, "n1", t1()))
        .refused(not_wanted(1, "it is removed"));
    given::<Runnable>(&[])
        .when(started_cmd(1, "n1", t1()))
        .refused(no_such_runnable());
    // The same start told again (a retried append) is no event.
    given::<Runnable>(&running())
        .when(started_cmd(1, "n1", t2()))
        .then_nothing();
}

#[test]
fn a_run_ends_or_stops_only_from_its_node_and_generation() {
    given::<Runnable>(&running())
        .when(ended_cmd(1, "n1", Some(0), t2()))
        .then(vec![run_ended(1, "n1", Some(0), t2())]);
    given::<Runnable>(&running())
        .when(stopped_cmd(1, "n1", RunStopReason::NodeStopped, t2()))
        .then(vec![run_stopped(1, "n1", RunStopReason::NodeStopped, t2())]);
    for (node, generation) in [("n2", 1), ("n1", 2), ("n1", 0)] {
        given::<Runnable>(&running())
            .when(ended_cmd(generation, node, Some(0), t2()))
            .refused(moved(node, generation));
        given::<Runnable>(&running())
            .when(stopped_cmd(generation, node, RunStopReason::Stop, t2()))
            .refused(moved(node, generation));
    }
    // Moved: n2 runs it now (n1 lost its lease, n2 took it over).
    let moved_on = with(
        running(),
        [
            run_stopped(1, "n1", RunStopReason::Lost, t2()),
            run_started(1, "n2", t2()),
        ],
    );
    given::<Runnable>(&moved_on)
        .when(stopped_cmd(1, "n1", RunStopReason::LeaseLost, t2()))
        .refused(moved("n1", 1));
    // Told again once ended: no event.
    let ended = with(running(), [run_ended(1, "n1", Some(0), t2())]);
    given::<Runnable>(&ended)
        .when(ended_cmd(1, "n1", Some(0), t2()))
        .then_nothing();
    given::<Runnable>(&ended)
        .when(stopped_cmd(1, "n1", RunStopReason::Stop, t2()))
        .then_nothing();
    given::<Runnable>(&[created()])
        .when(ended_cmd(1, "n1", Some(0), t2()))
        .refused(moved("n1", 1));
}

#[test]
fn a_run_that_ends_on_its_own_is_not_started_again() {
    let ok = given::<Runnable>(&with(running(), [run_ended(1, "n1", Some(0), t2())]));
    let run = ok.state().run();
    assert_eq!(
        (
            run.wanted,
            run.phase,
            run.exit_code,
            run.pid,
            run.is_live(),
            run.since
        ),
        (false, RunPhase::Stopped, Some(0), None, false, Some(t2()))
    );
    let failed = given::<Runnable>(&with(running(), [run_ended(1, "n1", Some(3), t2())]));
    assert_eq!(
        (failed.state().run().phase, failed.state().run().exit_code),
        (RunPhase::Error, Some(3))
    );
    let killed = given::<Runnable>(&with(
        running(),
        [RunnableEvent::RunnableRunEnded {
            generation: 1,
            node: "n1".into(),
            code: None,
            signal: Some(9),
            synced: false,
            at: t2(),
        }],
    ));
    let run = killed.state().run();
    assert_eq!(
        (run.phase, run.signal, run.wanted),
        (RunPhase::Error, Some(9), false)
    );
    // The old generation ending on its own while a restart is wanted: the restart stands.
    let restarting = given::<Runnable>(&with(
        running(),
        [
            restart_requested(2, t2()),
            run_ended(1, "n1", Some(1), t2()),
        ],
    ));
    let run = restarting.state().run();
    assert_eq!(
        (run.wanted, run.generation, run.phase),
        (true, 2, RunPhase::Starting)
    );
    // A new run clears how the last one ended.
    let again = given::<Runnable>(&with(
        running(),
        [
            run_ended(1, "n1", Some(3), t2()),
            start_requested(2, t2()),
            run_started(2, "n2", t2()),
        ],
    ));
    let run = again.state().run();
    assert_eq!(
        (run.exit_code, run.node.as_deref(), run.run_generation),
        (None, Some("n2"), Some(2))
    );
}

#[test]
fn a_stopped_run_still_wanted_is_starting_again() {
    for reason in [
        RunStopReason::NodeStopped,
        RunStopReason::LeaseLost,
        RunStopReason::Lost,
    ] {
        let past = with(running(), [run_stopped(1, "n1", reason, t2())]);
        let run = given::<Runnable>(&past).state().run().clone();
        assert_eq!(
            (run.wanted, run.phase, run.is_live(), run.since),
            (true, RunPhase::Starting, false, Some(t2())),
            "{reason:?}"
        );
        // Another node takes it over, the same generation.
        given::<Runnable>(&past)
            .when(started_cmd(1, "n2", t2()))
            .then(vec![run_started(1, "n2", t2())]);
    }
}

#[test]
fn a_run_that_cannot_start_is_an_error_not_tried_again() {
    let starting = [created(), start_requested(1, t1())];
    given::<Runnable>(&starting)
        .when(failed_cmd(1, "n1", "bwrap: not found", t1()))
        .then(vec![run_failed(1, "n1", t1())]);
    given::<Runnable>(&starting)
        .when(failed_cmd(1, "n1", "a\0b", t1()))
        .then(vec![RunnableEvent::RunnableRunFailed {
            generation: 1,
            node: "n1".into(),
            diagnostics: "a\u{FFFD}b".into(),
            at: t1(),
        }]);
    let failed = given::<Runnable>(&[
        created(),
        start_requested(1, t1()),
        run_failed(1, "n1", t1()),
    ]);
    let run = failed.state().run();
    assert_eq!(
        (
            run.wanted,
            run.phase,
            run.diagnostics.as_deref(),
            run.node.as_deref()
        ),
        (false, RunPhase::Error, Some("bwrap: not found"), Some("n1"))
    );
    failed
        .when(failed_cmd(1, "n1", "again", t2()))
        .refused(not_wanted(1, "it is not wanted running"));
    given::<Runnable>(&[
        created(),
        start_requested(1, t1()),
        restart_requested(2, t1()),
    ])
    .when(failed_cmd(1, "n1", "x", t1()))
    .refused(not_wanted(1, "generation 2 is wanted now"));
    // Started again after an error: the diagnostics go with the new run.
    let again = given::<Runnable>(&[
        created(),
        start_requested(1, t1()),
        run_failed(1, "n1", t1()),
        start_requested(2, t2()),
        run_started(2, "n1", t2()),
    ]);
    assert_eq!(again.state().run().diagnostics, None);
}

#[test]
fn a_removed_runnables_run_still_ends() {
    let past = with(running(), [removed(t2())]);
    let gone = given::<Runnable>(&past);
    let run = gone.state().run();
    assert_eq!((run.wanted, run.phase), (false, RunPhase::Running));
    given::<Runnable>(&past)
        .when(stopped_cmd(1, "n1", RunStopReason::Removed, t2()))
        .then(vec![run_stopped(1, "n1", RunStopReason::Removed, t2())]);
    given::<Runnable>(&past)
        .when(ended_cmd(1, "n1", Some(0), t2()))
        .then(vec![run_ended(1, "n1", Some(0), t2())]);
    given::<Runnable>(&past)
        .when(RunnableCommand::RunLost {
            node: "n1".into(),
            at: t2(),
        })
        .then(vec![run_stopped(1, "n1", RunStopReason::Lost, t2())]);
    // Its files are gone with it: a sync is no event.
    given::<Runnable>(&past)
        .when(sync_cmd(
            "n1",
            Some(Uuid::from_u128(7)),
            vec![file("x", "1")],
            vec![],
            limits(),
        ))
        .then_nothing();
    let reaped = with(
        running(),
        [RunnableEvent::RunnableReaped {
            last_access: t1(),
            at: t2(),
        }],
    );
    given::<Runnable>(&reaped)
        .when(stopped_cmd(1, "n1", RunStopReason::Removed, t2()))
        .then(vec![run_stopped(1, "n1", RunStopReason::Removed, t2())]);
    let stopped = given::<Runnable>(&with(
        past,
        [run_stopped(1, "n1", RunStopReason::Removed, t2())],
    ));
    assert_eq!(stopped.state().run().phase, RunPhase::Stopped);
    // One removed while starting is stopped at once.
    let starting = given::<Runnable>(&[created(), start_requested(1, t1()), removed(t2())]);
    assert_eq!(starting.state().run().phase, RunPhase::Stopped);
}

#[test]
fn a_run_on_a_lost_node_is_stopped_as_lost() {
    let lost = |node: &str| RunnableCommand::RunLost {
        node: node.into(),
        at: t2(),
    };
    given::<Runnable>(&running())
        .when(lost("n1"))
        .then(vec![run_stopped(1, "n1", RunStopReason::Lost, t2())]);
    given::<Runnable>(&running())
        .when(lost("n2"))
        .then_nothing();
    given::<Runnable>(&[created(), start_requested(1, t1())])
        .when(lost("n1"))
        .then_nothing();
    given::<Runnable>(&with(running(), [run_ended(1, "n1", Some(0), t2())]))
        .when(lost("n1"))
        .then_nothing();
    // A restart pending: the run lost is the old generation's.
    given::<Runnable>(&with(running(), [restart_requested(2, t2())]))
        .when(lost("n1"))
        .then(vec![run_stopped(1, "n1", RunStopReason::Lost, t2())]);
}

#[test]
fn a_sync_keeps_the_writes_within_the_limits_and_skips_the_rest() {
    // created() holds lib/util.py (13 bytes) and main.py (8 bytes); at most 3 files of 10
    // bytes, 1000 together.
    let sync = Uuid::from_u128(7);
    given::<Runnable>(&running())
        .when(sync_cmd(
            "n1",
            Some(sync),
            vec![
                file("out.txt", "0123456789x"),
                file("a.txt", "a"),
                file("b.txt", "b"),
                file("main.py/x", "x"),
                file("main.py", "print(2)"),
            ],
            vec![],
            write_limits(),
        ))
        .then(vec![synced(
            Some(sync),
            vec![file("a.txt", "a"), file("main.py", "print(2)")],
            vec![],
            vec![
                skipped(
                    "out.txt",
                    "a file may hold at most 10 bytes (runnables.max_file_bytes); this one holds 11",
                ),
                skipped("b.txt", "files: a runnable may hold at most 3 files (runnables.max_files)"),
                skipped("main.py/x", "main.py is a file: main.py/x cannot be under it"),
            ],
        )]);
}

#[test]
fn a_sync_records_what_the_runner_could_not_read_before_what_the_limits_refused() {
    let mut command = sync_cmd(
        "n1",
        None,
        vec![file("out.txt", "0123456789x")],
        vec![],
        write_limits(),
    );
    if let RunnableCommand::SyncFiles { skipped: s, .. } = &mut command {
        *s = vec![skipped("link", "a symbolic link")];
    }
    given::<Runnable>(&running())
        .when(command)
        .then(vec![synced(
            None,
            vec![],
            vec![],
            vec![
            skipped("link", "a symbolic link"),
            skipped(
                "out.txt",
                "a file may hold at most 10 bytes (runnables.max_file_bytes); this one holds 11",
            ),
        ],
        )]);
}

#[test]
fn a_sync_deletes_first_then_writes_in_order() {
    // main.py becomes a folder; lib/util.py's deletion makes room for a third file.
    given::<Runnable>(&running())
        .when(sync_cmd(
            "n1",
            None,
            vec![
                file("main.py/x", "x"),
                file("c.txt", "c"),
                file("c.txt", "cc"),
            ],
            vec![path("main.py"), path("lib/util.py"), path("nothing.txt")],
            write_limits(),
        ))
        .then(vec![synced(
            None,
            vec![
                file("main.py/x", "x"),
                file("c.txt", "c"),
                file("c.txt", "cc"),
            ],
            vec![path("main.py"), path("lib/util.py")],
            vec![],
        )]);
    let after = given::<Runnable>(&with(
        running(),
        [synced(
            None,
            vec![
                file("main.py/x", "x"),
                file("c.txt", "c"),
                file("c.txt", "cc"),
            ],
            vec![path("main.py"), path("lib/util.py")],
            vec![],
        )],
    ));
    let paths: Vec<&str> = after.state().files().keys().map(|p| p.as_str()).collect();
    assert_eq!(paths, ["c.txt", "main.py/x"]);
    assert_eq!(
        after.state().file(&path("c.txt")),
        Some(&file("c.txt", "cc"))
    );
}

#[test]
fn a_sync_that_changes_nothing_is_no_event_unless_it_answers_a_request() {
    let unchanged = || vec![file("main.py", "print(1)")];
    given::<Runnable>(&running())
        .when(sync_cmd(
            "n1",
            None,
            unchanged(),
            vec![path("gone.txt")],
            limits(),
        ))
        .then_nothing();
    given::<Runnable>(&running())
        .when(sync_cmd(
            "n1",
            Some(Uuid::from_u128(7)),
            unchanged(),
            vec![],
            limits(),
        ))
        .then(vec![synced(
            Some(Uuid::from_u128(7)),
            vec![],
            vec![],
            vec![],
        )]);
}

#[test]
fn a_sync_comes_only_from_the_node_of_the_run_on_record() {
    let refused = conflict(
        "run_moved",
        "the run of this runnable on record is not n2's: its files are not synced from there",
    );
    given::<Runnable>(&running())
        .when(sync_cmd("n2", None, vec![file("x", "1")], vec![], limits()))
        .refused(refused.clone());
    given::<Runnable>(&[created()])
        .when(sync_cmd("n2", None, vec![file("x", "1")], vec![], limits()))
        .refused(refused);
    // Once its run is over (stopped, lost), not even its last node syncs: its tree is not
    // the runnable's any more (another node may run it already).
    let not_live = conflict(
        "run_moved",
        "the run of this runnable on record is not n1's: its files are not synced from there",
    );
    for end in [
        run_stopped(1, "n1", RunStopReason::Stop, t2()),
        run_stopped(1, "n1", RunStopReason::Lost, t2()),
    ] {
        given::<Runnable>(&with(running(), [end]))
            .when(sync_cmd("n1", None, vec![file("x", "1")], vec![], limits()))
            .refused(not_live.clone());
    }
}

#[test]
fn a_failed_start_is_refused_while_another_nodes_run_is_live() {
    given::<Runnable>(&with(running(), [restart_requested(2, t2())]))
        .when(failed_cmd(2, "n2", "bwrap: not found", t2()))
        .refused(conflict(
            "run_moved",
            "the run of this runnable on record is another node's, not n2's",
        ));
    // Its own node's, or once the other's is recorded lost: recorded.
    given::<Runnable>(&with(
        running(),
        [
            restart_requested(2, t2()),
            run_stopped(1, "n1", RunStopReason::Lost, t2()),
        ],
    ))
    .when(failed_cmd(2, "n2", "bwrap: not found", t2()))
    .then(vec![run_failed(2, "n2", t2())]);
}

#[test]
fn only_the_owners_events_are_accesses() {
    let past = with(
        running(),
        [
            synced(None, vec![file("x", "1")], vec![], vec![]),
            RunnableEvent::RunnableSyncRequested {
                sync: Uuid::from_u128(7),
                at: t2(),
            },
            run_stopped(1, "n1", RunStopReason::NodeStopped, t2()),
            run_started(1, "n2", t2()),
            RunnableEvent::RunnableOwnerChanged {
                from: user("alice"),
                to: user("bob"),
                at: t2(),
            },
        ],
    );
    let runnable = given::<Runnable>(&past);
    assert_eq!(runnable.state().last_access(), Some(t1()), "the start only");
    // The reaper is not held off by a running process syncing its files.
    given::<Runnable>(&past)
        .when(reap(7, t1() + Span::days(7)))
        .then(vec![RunnableEvent::RunnableReaped {
            last_access: t1(),
            at: t1() + Span::days(7),
        }]);
    for (event, when) in [
        (start_requested(1, t2()), t2()),
        (restart_requested(1, t2()), t2()),
        (stop_requested(t2()), t2()),
    ] {
        let runnable = given::<Runnable>(&[created(), event]);
        assert_eq!(runnable.state().last_access(), Some(when));
    }
}

#[test]
fn the_owner_changes_from_the_one_it_is() {
    let change = |from: &str, to: &str| RunnableCommand::ChangeOwner {
        from: user(from),
        to: user(to),
        at: t1(),
    };
    let changed = RunnableEvent::RunnableOwnerChanged {
        from: user("alice"),
        to: user("bob"),
        at: t1(),
    };
    given::<Runnable>(&[created()])
        .when(change("alice", "bob"))
        .then(vec![changed.clone()]);
    given::<Runnable>(&[created(), changed.clone()])
        .when(change("alice", "bob"))
        .then_nothing();
    given::<Runnable>(&[created()])
        .when(change("carol", "bob"))
        .refused(conflict(
            "owner_changed",
            "this runnable is alice's, not carol's",
        ));
    let runnable = given::<Runnable>(&[created(), changed]);
    assert_eq!(runnable.state().owner(), Some(&user("bob")));
    assert_eq!(runnable.state().last_access(), Some(t0()), "no access");
}

#[test]
fn a_sync_is_requested_only_while_a_process_runs() {
    let request = || RunnableCommand::RequestSync {
        sync: Uuid::from_u128(7),
        at: t2(),
    };
    given::<Runnable>(&running()).when(request()).then(vec![
        RunnableEvent::RunnableSyncRequested {
            sync: Uuid::from_u128(7),
            at: t2(),
        },
    ]);
    for past in [
        vec![created()],
        vec![created(), start_requested(1, t1())],
        with(running(), [run_ended(1, "n1", Some(0), t2())]),
    ] {
        given::<Runnable>(&past).when(request()).then_nothing();
    }
}

#[test]
fn a_removed_runnable_takes_no_owners_run_command() {
    for past in [vec![], vec![created(), removed(t1())]] {
        for command in [
            RunnableCommand::Start { at: t2() },
            RunnableCommand::Restart { at: t2() },
            RunnableCommand::Stop { at: t2() },
            RunnableCommand::ChangeOwner {
                from: user("alice"),
                to: user("bob"),
                at: t2(),
            },
            RunnableCommand::RequestSync {
                sync: Uuid::from_u128(7),
                at: t2(),
            },
        ] {
            given::<Runnable>(&past)
                .when(command)
                .refused(no_such_runnable());
        }
    }
}

#[test]
fn a_run_does_not_start_while_another_nodes_run_is_live_on_record() {
    given::<Runnable>(&running())
        .when(started_cmd(1, "n2", t2()))
        .refused(conflict(
            "run_moved",
            "the run of this runnable on record is another node's, not n2's",
        ));
    // Recorded lost first, it starts there.
    let lost = with(running(), [run_stopped(1, "n1", RunStopReason::Lost, t2())]);
    given::<Runnable>(&lost)
        .when(started_cmd(1, "n2", t2()))
        .then(vec![run_started(1, "n2", t2())]);
    // Its own node starts it again (its earlier run ended unrecorded).
    given::<Runnable>(&running())
        .when(RunnableCommand::RunStarted {
            generation: 1,
            node: "n1".into(),
            pid: 43,
            at: t2(),
        })
        .then(vec![RunnableEvent::RunnableRunStarted {
            generation: 1,
            node: "n1".into(),
            pid: 43,
            at: t2(),
        }]);
}

#[test]
fn a_sync_names_at_most_a_hundred_skipped_files_then_how_many_more() {
    let many: Vec<SkippedFile> = (0..150)
        .map(|i| skipped(&format!("link-{i:03}"), "a symbolic link"))
        .collect();
    let mut command = sync_cmd(
        "n1",
        None,
        vec![file("out.txt", "0123456789x")],
        vec![],
        write_limits(),
    );
    if let RunnableCommand::SyncFiles { skipped: s, .. } = &mut command {
        *s = many.clone();
    }
    let mut expected: Vec<SkippedFile> = many[..MAX_SKIPPED].to_vec();
    // 50 links and the write the limits refused.
    expected.push(skipped("…", "and 51 more"));
    given::<Runnable>(&running())
        .when(command)
        .then(vec![synced(None, vec![], vec![], expected)]);
    // The runner's own count of more is added to.
    let mut command = sync_cmd(
        "n1",
        None,
        vec![file("out.txt", "0123456789x")],
        vec![],
        write_limits(),
    );
    let mut capped = many[..MAX_SKIPPED].to_vec();
    capped.push(SkippedFile::more(7));
    if let RunnableCommand::SyncFiles { skipped: s, .. } = &mut command {
        *s = capped;
    }
    let mut expected: Vec<SkippedFile> = many[..MAX_SKIPPED].to_vec();
    expected.push(skipped("…", "and 8 more"));
    given::<Runnable>(&running())
        .when(command)
        .then(vec![synced(None, vec![], vec![], expected)]);
    // Under the cap, nothing is added.
    assert_eq!(cap_skipped(many[..3].to_vec()), many[..3].to_vec());
}
