//! App commands on the in-memory log: what they decide and write. Creating an app takes its
//! owner's quota in the same append; the quota is counted from the log, so a user over it
//! writes nothing and two racing creations cannot both take the last place; a swap is one
//! `AppsSwapped` on both apps; a removal releases the quota and the cnames and unswaps its
//! partner; a private value never enters the log in clear; an outsider writes nothing. (The
//! parts answered from the read models are the HTTP tests'.)

use super::*;
use crate::apps::{AppRules, CreateApp, EnvInput, UpdateApp};
use crate::{CommandError, Sealer, Written};
use bosun_domain::apps::{App, AppEvent, AppName, Cname, CnameClaimEvent, EnvValue, QuotaEvent};
use bosun_domain::identity::{Team, TeamCommand, TeamName, Username};
use bosun_domain::jobs::Catalog;
use bosun_domain::{Aggregate, DomainError};
use secrecy::{ExposeSecret, SecretSlice};

const UNLIMITED: AppRules = AppRules { default_quota: -1 };

/// A user of `teams`, with a token of every scope.
fn member(name: &str, teams: &[&str]) -> Actor {
    match user(name) {
        Actor::User {
            username,
            admin,
            token_id,
            scopes,
            ..
        } => Actor::User {
            username,
            admin,
            teams: teams.iter().map(|t| t.to_string()).collect(),
            token_id,
            scopes,
        },
        _ => unreachable!(),
    }
}

fn app_token(app: &str) -> Actor {
    Actor::App(crate::AppActor::new(app, Uuid::nil(), "ann"))
}

/// Commands that seal with a test key, over a log with platform `python` and teams `ops` (ann)
/// and `dev` (bob).
async fn apps_setup() -> (Commands<Racing>, Racing) {
    let log = Racing::default();
    let commands = Commands::over(log.clone(), Freshness::none(), None)
        .with_sealer(Sealer::new(&SecretSlice::from(vec![7u8; 32])));
    commands
        .add_platform(&admin("root"), &origin(), "python")
        .await
        .unwrap();
    for (team, creator) in [("ops", "ann"), ("dev", "bob")] {
        commands
            .execute::<Team>(team, &SYSTEM, &origin(), |state| {
                state.handle(TeamCommand::Create {
                    name: TeamName::parse(team).unwrap(),
                    creator: Username::parse(creator).unwrap(),
                })
            })
            .await
            .unwrap();
    }
    (commands, log)
}

/// [`apps_setup`], with ann (of `ops`) and her apps `apps`.
async fn ann_with_apps(apps: &[&str]) -> (Commands<Racing>, Racing, Actor) {
    let (commands, log) = apps_setup().await;
    let ann = member("ann", &["ops"]);
    for name in apps {
        app_of(&commands, &ann, name).await;
    }
    (commands, log, ann)
}

fn create(name: &str) -> CreateApp {
    CreateApp {
        name: name.into(),
        platform: "python".into(),
        ..CreateApp::default()
    }
}

async fn app_of(commands: &Commands<Racing>, actor: &Actor, name: &str) -> Written {
    commands
        .create_app(actor, &origin(), &UNLIMITED, create(name))
        .await
        .unwrap()
        .1
}

async fn state(commands: &Commands<Racing>, app: &str) -> App {
    commands.load::<App>(app).await.unwrap().0
}

/// The 403 of a refusal with `code`, if it is one.
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

fn invalid_field(error: &CommandError) -> Option<&'static str> {
    match error {
        CommandError::Domain(DomainError::Invalid { field, .. }) => Some(field),
        _ => None,
    }
}

fn cname(c: &str) -> Cname {
    Cname::parse(c).unwrap()
}

fn app(a: &str) -> AppName {
    AppName::parse(a).unwrap()
}

/// `cname` added to `app` as the cname command writes it (no read model needed).
async fn with_cname(log: &Racing, a: &str, c: &str) {
    append(
        log,
        &format!("app-{a}"),
        &[AppEvent::AppCnameAdded { cname: cname(c) }],
    )
    .await;
    append(
        log,
        &format!("cname-{c}"),
        &[CnameClaimEvent::CnameClaimed {
            cname: cname(c),
            app: app(a),
        }],
    )
    .await;
}

#[tokio::test]
async fn creating_an_app_takes_its_owners_quota_in_the_same_append() {
    let (commands, log) = apps_setup().await;
    let head = head(&log).await;
    let (view, written) = commands
        .create_app(
            &member("ann", &["ops"]),
            &origin(),
            &AppRules { default_quota: 2 },
            CreateApp {
                description: Some("the shop".into()),
                ..create("shop")
            },
        )
        .await
        .unwrap();
    assert_eq!(written.position, Some(head + 2));
    let events = log.read_all(head + 1, 10, &Filter::all()).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.stream_id.to_string(), e.event_type.clone(), e.position))
            .collect::<Vec<_>>(),
        vec![
            ("app-shop".to_string(), "AppCreated".to_string(), head + 1),
            (
                "quota-ann".to_string(),
                "QuotaAppTaken".to_string(),
                head + 2
            ),
        ],
        "both streams, contiguous positions"
    );
    for e in &events {
        assert_eq!(e.metadata["actor"], "ann");
        assert_eq!(e.metadata["request_id"], "req-1");
    }
    assert_eq!(
        (
            view.name.as_str(),
            view.team_owner.as_str(),
            view.owner.as_str()
        ),
        ("shop", "ops", "ann"),
        "team_owner defaults to the caller's only team"
    );
    assert_eq!((view.teams, view.version), (vec!["ops".to_string()], 0));
    assert_eq!(view.description, "the shop");
    assert!(view.units.is_empty() && view.instances.is_empty());
    assert_eq!(
        view.created_at.timestamp_subsec_nanos() % 1000,
        0,
        "to the microsecond, as the read model keeps it"
    );
}

#[tokio::test]
async fn a_user_over_quota_creates_nothing() {
    let (commands, log) = apps_setup().await;
    let ann = member("ann", &["ops"]);
    let one = AppRules { default_quota: 1 };
    commands
        .create_app(&ann, &origin(), &one, create("shop"))
        .await
        .unwrap();
    let head = head(&log).await;
    let refused = commands
        .create_app(&ann, &origin(), &one, create("blog"))
        .await
        .unwrap_err();
    assert_eq!(
        forbidden_code(&refused),
        Some("quota_exceeded"),
        "{refused:?}"
    );
    assert_eq!(super::head(&log).await, head, "nothing written");
    assert!(!state(&commands, "blog").await.exists());
}

#[tokio::test]
async fn of_two_creations_racing_for_the_last_place_one_wins() {
    let (commands, log) = apps_setup().await;
    let one = AppRules { default_quota: 1 };
    // Just before our append, another node creates `blog` for ann, taking her only place.
    log.before_append_to_all(
        "app-shop",
        vec![
            (
                "app-blog",
                vec![new_event(&AppEvent::AppCreated {
                    name: app("blog"),
                    platform: bosun_domain::apps::PlatformName::parse("python").unwrap(),
                    team_owner: TeamName::parse("ops").unwrap(),
                    owner: Username::parse("ann").unwrap(),
                    description: String::new(),
                    at: chrono::Utc::now(),
                })],
            ),
            (
                "quota-ann",
                vec![new_event(&QuotaEvent::QuotaAppTaken { app: app("blog") })],
            ),
        ],
    );
    let refused = commands
        .create_app(&member("ann", &["ops"]), &origin(), &one, create("shop"))
        .await
        .unwrap_err();
    assert_eq!(
        forbidden_code(&refused),
        Some("quota_exceeded"),
        "{refused:?}"
    );
    assert_eq!(log.pending(), 0);
    assert!(
        !state(&commands, "shop").await.exists(),
        "the loser wrote nothing"
    );
    assert_eq!(
        stream::<QuotaEvent>(&log, "quota-ann").await,
        vec![QuotaEvent::QuotaAppTaken { app: app("blog") }]
    );
}

#[tokio::test]
async fn of_two_concurrent_creations_over_a_quota_of_one_exactly_one_succeeds() {
    let (commands, log) = apps_setup().await;
    let other = another_process(&log);
    let ann = member("ann", &["ops"]);
    let one = AppRules { default_quota: 1 };
    let o = origin();
    let (a, b) = tokio::join!(
        commands.create_app(&ann, &o, &one, create("shop")),
        other.create_app(&ann, &o, &one, create("blog")),
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{a:?} {b:?}");
    let loser = a.err().or(b.err()).unwrap();
    assert_eq!(forbidden_code(&loser), Some("quota_exceeded"));
    assert_eq!(stream::<QuotaEvent>(&log, "quota-ann").await.len(), 1);
}

#[tokio::test]
async fn the_team_owner_is_a_team_of_the_caller_unless_an_admin() {
    let (commands, log) = apps_setup().await;
    let head = head(&log).await;
    for (actor, team_owner, wanted) in [
        (member("ann", &[]), None, "team_owner"),
        (member("ann", &["ops", "dev"]), None, "team_owner"),
        (admin("root"), None, "team_owner"),
        (admin("root"), Some("nope"), "team_owner"),
    ] {
        let refused = commands
            .create_app(
                &actor,
                &origin(),
                &UNLIMITED,
                CreateApp {
                    team_owner: team_owner.map(String::from),
                    ..create("shop")
                },
            )
            .await
            .unwrap_err();
        assert_eq!(invalid_field(&refused), Some(wanted), "{refused:?}");
    }
    let refused = commands
        .create_app(
            &member("ann", &["ops"]),
            &origin(),
            &UNLIMITED,
            CreateApp {
                team_owner: Some("dev".into()),
                ..create("shop")
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, CommandError::Forbidden(_)), "{refused:?}");
    for (platform, field) in [("ruby", "platform"), ("Bad Name", "platform")] {
        let refused = commands
            .create_app(
                &member("ann", &["ops"]),
                &origin(),
                &UNLIMITED,
                CreateApp {
                    platform: platform.into(),
                    ..create("shop")
                },
            )
            .await
            .unwrap_err();
        assert_eq!(invalid_field(&refused), Some(field), "{refused:?}");
    }
    let refused = commands
        .create_app(&app_token("shop"), &origin(), &UNLIMITED, create("shop"))
        .await
        .unwrap_err();
    assert!(matches!(refused, CommandError::Forbidden(_)), "{refused:?}");
    assert_eq!(super::head(&log).await, head, "nothing written");

    // An admin gives an app to any team and owns it.
    let (view, _) = commands
        .create_app(
            &admin("root"),
            &origin(),
            &UNLIMITED,
            CreateApp {
                team_owner: Some("dev".into()),
                ..create("shop")
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (view.team_owner.as_str(), view.owner.as_str()),
        ("dev", "root")
    );
    assert_eq!(
        stream::<QuotaEvent>(&log, "quota-root").await,
        vec![QuotaEvent::QuotaAppTaken { app: app("shop") }]
    );
    let taken = commands
        .create_app(
            &member("bob", &["dev"]),
            &origin(),
            &UNLIMITED,
            create("shop"),
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&taken), Some("app_exists"));
}

#[tokio::test]
async fn a_swap_is_one_event_on_both_apps_and_moves_the_cnames_in_the_same_append() {
    let (commands, log, ann) = ann_with_apps(&["shop", "blog"]).await;
    with_cname(&log, "shop", "www.shop.example").await;
    let head = head(&log).await;
    let written = commands
        .swap_apps(&ann, &origin(), "shop", "blog", false)
        .await
        .unwrap();
    assert_eq!(written.position, Some(head + 3));
    let events = log.read_all(head + 1, 10, &Filter::all()).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.stream_id.to_string(), e.event_type.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("app-shop".to_string(), "AppsSwapped"),
            ("app-blog".to_string(), "AppsSwapped"),
            ("cname-www.shop.example".to_string(), "CnameTransferred"),
        ]
    );
    assert_eq!(events[0].data, events[1].data, "the same decision on both");
    assert_ne!(events[0].event_id, events[1].event_id);
    let (shop, blog) = (
        state(&commands, "shop").await,
        state(&commands, "blog").await,
    );
    assert!(shop.cnames().is_empty());
    assert_eq!(
        blog.cnames().iter().collect::<Vec<_>>(),
        [&cname("www.shop.example")]
    );
    assert_eq!(
        (shop.units_of(), blog.units_of()),
        (Some(&app("blog")), Some(&app("shop")))
    );

    // A swap across platforms is refused and writes nothing.
    app_of(&commands, &ann, "api").await;
    app_of(&commands, &ann, "web").await;
    commands
        .add_platform(&admin("root"), &origin(), "go")
        .await
        .unwrap();
    commands
        .update_app(
            &ann,
            &origin(),
            "web",
            UpdateApp {
                platform: Some("go".into()),
                ..UpdateApp::default()
            },
        )
        .await
        .ok(); // its answer reads the units read model, absent here: the event is written
    assert_eq!(
        state(&commands, "web").await.platform().map(|p| p.as_str()),
        Some("go")
    );
    let head = super::head(&log).await;
    let refused = commands
        .swap_apps(&ann, &origin(), "api", "web", true)
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("platform_mismatch"));
    assert_eq!(super::head(&log).await, head);
}

#[tokio::test]
async fn removing_an_app_releases_its_quota_and_cnames_and_unswaps_its_partner() {
    let (commands, log) = apps_setup().await;
    let ann = member("ann", &["ops"]);
    let one = AppRules { default_quota: 2 };
    for name in ["shop", "blog"] {
        commands
            .create_app(&ann, &origin(), &one, create(name))
            .await
            .unwrap();
    }
    with_cname(&log, "shop", "shop.example").await;
    commands
        .swap_apps(&ann, &origin(), "shop", "blog", false)
        .await
        .unwrap();
    // blog now answers at shop.example with shop's units, shop with blog's.
    let head = head(&log).await;
    commands.remove_app(&ann, &origin(), "blog").await.unwrap();
    let events = log.read_all(head + 1, 10, &Filter::all()).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.stream_id.to_string(), e.event_type.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("app-shop".to_string(), "AppsSwapped"),
            ("app-blog".to_string(), "AppsSwapped"),
            ("app-blog".to_string(), "AppRemoved"),
            ("quota-ann".to_string(), "QuotaAppReleased"),
            ("cname-shop.example".to_string(), "CnameReleased"),
        ],
        "one append"
    );
    assert_eq!(events[0].data, events[1].data);
    let shop = state(&commands, "shop").await;
    assert_eq!(shop.units_of(), Some(&app("shop")), "its own units again");
    assert!(
        shop.cnames().is_empty(),
        "cnames stay where the swap put them"
    );
    assert!(state(&commands, "blog").await.removed());

    // The place and the cname are free again.
    commands
        .create_app(&ann, &origin(), &one, create("wiki"))
        .await
        .unwrap();
    with_cname(&log, "wiki", "shop.example").await;
    let refused = commands
        .create_app(&ann, &origin(), &one, create("docs"))
        .await
        .unwrap_err();
    assert_eq!(forbidden_code(&refused), Some("quota_exceeded"));
}

#[tokio::test]
async fn a_removed_app_in_a_chain_of_swaps_leaves_every_other_app_its_units() {
    let (commands, log, ann) = ann_with_apps(&["a", "b", "c"]).await;
    commands
        .swap_apps(&ann, &origin(), "a", "b", false)
        .await
        .unwrap();
    // b's restart since the swap would be read from the units read model, absent here: this
    // second swap is written as the command would.
    let (b, c) = (state(&commands, "b").await, state(&commands, "c").await);
    let swapped = bosun_domain::apps::Swap {
        app1: &b,
        app2: &c,
        cname_only: false,
        restarting1: false,
        restarting2: false,
    }
    .decide()
    .unwrap();
    append(&log, "app-b", std::slice::from_ref(&swapped)).await;
    append(&log, "app-c", &[swapped]).await;
    // a serves b's units, b c's, c a's.
    let units = |s: App| s.units_of().map(|u| u.as_str().to_string());
    assert_eq!(units(state(&commands, "c").await).as_deref(), Some("a"));
    commands.remove_app(&ann, &origin(), "a").await.unwrap();
    assert_eq!(units(state(&commands, "b").await).as_deref(), Some("c"));
    assert_eq!(
        units(state(&commands, "c").await).as_deref(),
        Some("b"),
        "c serves what a did"
    );
}

#[tokio::test]
async fn a_private_value_is_sealed_before_it_enters_the_log() {
    let (commands, log, ann) = ann_with_apps(&["shop"]).await;
    let envs = vec![
        EnvInput {
            name: "DB_PASSWORD".into(),
            value: "s3cret-value".into(),
            public: false,
        },
        EnvInput {
            name: "MODE".into(),
            value: "production".into(),
            public: true,
        },
    ];
    assert!(
        !format!("{envs:?}").contains("s3cret"),
        "Debug hides values"
    );
    let (shown, written) = commands
        .set_app_env(&ann, &origin(), "shop", envs, true)
        .await
        .unwrap();
    assert!(written.position.is_some());
    let shown: Vec<_> = shown
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref(), e.public))
        .collect();
    assert_eq!(
        shown,
        [
            ("DB_PASSWORD", None, false),
            ("MODE", Some("production"), true)
        ]
    );
    let whole_log =
        serde_json::to_string(&log.read_all(1, 10_000, &Filter::all()).await.unwrap()).unwrap();
    assert!(!whole_log.contains("s3cret"), "never in clear in the log");
    assert!(whole_log.contains("production"));
    let shop = state(&commands, "shop").await;
    assert!(matches!(
        shop.env()
            .get(&bosun_domain::apps::EnvName::parse("DB_PASSWORD").unwrap()),
        Some(EnvValue::Private { .. })
    ));
    assert_eq!(shop.restart_generation(), 1, "restart: true");

    // The runner opens it.
    let environment = commands.app_environment("shop").await.unwrap().unwrap();
    let opened: Vec<_> = environment
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose_secret()))
        .collect();
    assert_eq!(
        opened,
        [("DB_PASSWORD", "s3cret-value"), ("MODE", "production")]
    );
    assert!(commands.app_environment("blog").await.unwrap().is_none());
    assert_eq!(
        commands.app_teams("shop").await.unwrap(),
        Some(vec!["ops".to_string()])
    );

    // A sealed value belongs to its place: copied to another app, it does not open.
    app_of(&commands, &ann, "blog").await;
    let sealed = match &shop.env()[&bosun_domain::apps::EnvName::parse("DB_PASSWORD").unwrap()] {
        EnvValue::Private { sealed } => sealed.clone(),
        _ => unreachable!(),
    };
    append(
        &log,
        "app-blog",
        &[AppEvent::AppEnvSet {
            envs: vec![bosun_domain::apps::EnvVar::private(
                bosun_domain::apps::EnvName::parse("DB_PASSWORD").unwrap(),
                sealed,
            )],
            restart: false,
        }],
    )
    .await;
    assert!(commands.app_environment("blog").await.is_err());

    // Unsetting, without a restart.
    let (left, _) = commands
        .unset_app_env(&ann, &origin(), "shop", vec!["DB_PASSWORD".into()], false)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(state(&commands, "shop").await.restart_generation(), 1);
}

#[tokio::test]
async fn a_bad_private_value_is_refused_before_it_is_sealed() {
    let (commands, log, ann) = ann_with_apps(&["shop"]).await;
    let head = head(&log).await;
    for (name, value) in [("BAD NAME", "x"), ("OK", "a\0b"), ("PATH", "x")] {
        let refused = commands
            .set_app_env(
                &ann,
                &origin(),
                "shop",
                vec![EnvInput {
                    name: name.into(),
                    value: value.into(),
                    public: false,
                }],
                true,
            )
            .await
            .unwrap_err();
        assert_eq!(invalid_field(&refused), Some("envs"), "{name}: {refused:?}");
    }
    assert_eq!(super::head(&log).await, head);
}

#[tokio::test]
async fn an_outsider_gets_403_on_every_write_and_writes_nothing() {
    let (commands, log, _ann) = ann_with_apps(&["shop", "blog"]).await;
    with_cname(&log, "shop", "shop.example").await;
    let head = head(&log).await;
    for eve in [member("eve", &["dev"]), app_token("blog")] {
        let o = origin();
        let refusals: Vec<Result<(), CommandError>> = vec![
            commands
                .update_app(
                    &eve,
                    &o,
                    "shop",
                    UpdateApp {
                        description: Some("mine".into()),
                        ..UpdateApp::default()
                    },
                )
                .await
                .map(drop),
            commands.remove_app(&eve, &o, "shop").await.map(drop),
            commands
                .grant_app_team(&eve, &o, "shop", "dev")
                .await
                .map(drop),
            commands
                .revoke_app_team(&eve, &o, "shop", "ops")
                .await
                .map(drop),
            commands
                .add_app_cname(&eve, &o, "shop", "mine.example")
                .await
                .map(drop),
            commands
                .remove_app_cname(&eve, &o, "shop", "shop.example")
                .await
                .map(drop),
            commands
                .set_app_env(
                    &eve,
                    &o,
                    "shop",
                    vec![EnvInput {
                        name: "A".into(),
                        value: "b".into(),
                        public: true,
                    }],
                    true,
                )
                .await
                .map(drop),
            commands
                .unset_app_env(&eve, &o, "shop", vec!["A".into()], true)
                .await
                .map(drop),
            commands
                .restart_app(&eve, &o, &Catalog::default(), "shop", None)
                .await
                .map(drop),
            commands
                .swap_apps(&eve, &o, "shop", "blog", false)
                .await
                .map(drop),
            commands
                .swap_apps(&eve, &o, "blog", "shop", true)
                .await
                .map(drop),
        ];
        for (i, refusal) in refusals.into_iter().enumerate() {
            assert!(
                matches!(refusal, Err(CommandError::Forbidden(_))),
                "{} write {i}: {refusal:?}",
                eve.name()
            );
        }
    }
    // Admins' writes.
    let bob = member("bob", &["dev"]);
    for refusal in [
        commands.add_platform(&bob, &origin(), "go").await.map(drop),
        commands
            .update_platform(&bob, &origin(), "python", true)
            .await
            .map(drop),
        commands
            .remove_platform(&bob, &origin(), "python")
            .await
            .map(drop),
        commands
            .set_quota(&bob, &origin(), "ann", 10, &UNLIMITED)
            .await
            .map(drop),
    ] {
        assert!(
            matches!(refusal, Err(CommandError::Forbidden(_))),
            "{refusal:?}"
        );
    }
    assert_eq!(super::head(&log).await, head, "nothing written");

    // An unknown app is a 404, before any 403.
    let missing = commands
        .remove_app(&member("eve", &["dev"]), &origin(), "nope")
        .await
        .unwrap_err();
    assert!(matches!(
        missing,
        CommandError::Domain(DomainError::NotFound(_))
    ));
    let missing = commands
        .swap_apps(&member("eve", &["dev"]), &origin(), "nope", "shop", false)
        .await
        .unwrap_err();
    assert!(matches!(
        missing,
        CommandError::Domain(DomainError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_apps_token_and_its_teams_members_act_on_it() {
    let (commands, log, ann) = ann_with_apps(&["shop"]).await;
    commands
        .set_app_env(
            &app_token("shop"),
            &origin(),
            "shop",
            vec![EnvInput {
                name: "A".into(),
                value: "1".into(),
                public: true,
            }],
            false,
        )
        .await
        .unwrap();
    commands
        .grant_app_team(&ann, &origin(), "shop", "dev")
        .await
        .unwrap();
    // bob is in dev now, which has access.
    commands
        .unset_app_env(
            &member("bob", &["dev"]),
            &origin(),
            "shop",
            vec!["A".into()],
            false,
        )
        .await
        .unwrap();
    let refused = commands
        .revoke_app_team(&ann, &origin(), "shop", "ops")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("team_owner"));
    commands
        .revoke_app_team(&ann, &origin(), "shop", "dev")
        .await
        .unwrap();
    let missing = commands
        .grant_app_team(&ann, &origin(), "shop", "nope")
        .await
        .unwrap_err();
    assert!(matches!(
        missing,
        CommandError::Domain(DomainError::NotFound(_))
    ));
    let events: Vec<_> = log_summary(&log)
        .await
        .into_iter()
        .filter(|(s, _, _)| s == "app-shop")
        .map(|(_, t, actor)| (t, actor))
        .collect();
    assert_eq!(
        events,
        [
            ("AppCreated", "ann"),
            ("AppEnvSet", "app:shop"),
            ("AppTeamGranted", "ann"),
            ("AppEnvUnset", "bob"),
            ("AppTeamRevoked", "ann"),
        ]
        .map(|(t, a)| (t.to_string(), a.to_string()))
    );
}

#[tokio::test]
async fn platforms_are_the_admins_and_a_quota_needs_a_user() {
    let (commands, log) = apps_setup().await;
    let root = admin("root");
    let (view, _) = commands
        .update_platform(&root, &origin(), "python", true)
        .await
        .unwrap();
    assert!(view.disabled);
    let refused = commands
        .create_app(
            &member("ann", &["ops"]),
            &origin(),
            &UNLIMITED,
            create("shop"),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&refused), Some("platform"), "disabled");
    let exists = commands
        .add_platform(&root, &origin(), "python")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&exists), Some("platform_exists"));
    let missing = commands
        .update_platform(&root, &origin(), "ruby", false)
        .await
        .unwrap_err();
    assert!(matches!(
        missing,
        CommandError::Domain(DomainError::NotFound(_))
    ));
    let head = head(&log).await;
    let missing = commands
        .set_quota(&root, &origin(), "nobody", 3, &UNLIMITED)
        .await
        .unwrap_err();
    assert!(matches!(
        missing,
        CommandError::Domain(DomainError::NotFound(_))
    ));
    assert_eq!(super::head(&log).await, head);
}

#[tokio::test]
async fn an_apps_own_token_changes_nothing_of_the_app_itself() {
    let (commands, log, _ann) = ann_with_apps(&["shop", "blog"]).await;
    with_cname(&log, "shop", "shop.example").await;
    let head = head(&log).await;
    let token = app_token("shop");
    let o = origin();
    let refusals: Vec<(&str, Result<(), CommandError>)> = vec![
        (
            "update",
            commands
                .update_app(
                    &token,
                    &o,
                    "shop",
                    UpdateApp {
                        description: Some("mine".into()),
                        ..UpdateApp::default()
                    },
                )
                .await
                .map(drop),
        ),
        (
            "remove",
            commands.remove_app(&token, &o, "shop").await.map(drop),
        ),
        (
            "grant",
            commands
                .grant_app_team(&token, &o, "shop", "dev")
                .await
                .map(drop),
        ),
        (
            "revoke",
            commands
                .revoke_app_team(&token, &o, "shop", "ops")
                .await
                .map(drop),
        ),
        (
            "add cname",
            commands
                .add_app_cname(&token, &o, "shop", "mine.example")
                .await
                .map(drop),
        ),
        (
            "remove cname",
            commands
                .remove_app_cname(&token, &o, "shop", "shop.example")
                .await
                .map(drop),
        ),
        (
            "swap",
            commands
                .swap_apps(&token, &o, "shop", "blog", false)
                .await
                .map(drop),
        ),
        (
            "issue a token",
            commands
                .issue_app_token(
                    &token,
                    &o,
                    "shop",
                    crate::identity::NewAppToken {
                        description: String::new(),
                        expires_in: None,
                    },
                )
                .await
                .map(drop),
        ),
    ];
    for (what, refusal) in refusals {
        match refusal {
            Err(CommandError::Forbidden(message)) => {
                assert!(message.contains("app token"), "{what}: {message}")
            }
            other => panic!("{what}: expected a 403, got {other:?}"),
        }
    }
    assert_eq!(super::head(&log).await, head, "nothing written");
    // What it may do on its app: its env (and its restarts, its jobs).
    commands
        .set_app_env(
            &token,
            &o,
            "shop",
            vec![EnvInput {
                name: "A".into(),
                value: "1".into(),
                public: true,
            }],
            false,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_swap_decided_on_a_restart_generation_it_did_not_see_is_planned_again() {
    let (commands, log, ann) = ann_with_apps(&["shop", "blog"]).await;
    // Both apps at generation 0: no restart running, without asking the units. Just before the
    // swap's append, a restart of shop is asked for: the swap's answer for generation 0 says
    // nothing of it, so the swap plans again and asks the units read model (absent here: an
    // error, where the server would answer 409 `restart_running` while the restart runs).
    log.before_append_to(
        "app-shop",
        "app-shop",
        vec![new_event(&AppEvent::AppRestartRequested {
            process: None,
            generation: 1,
        })],
    );
    let result = commands
        .swap_apps(&ann, &origin(), "shop", "blog", false)
        .await;
    assert_eq!(log.pending(), 0, "the restart came in between");
    match result {
        Err(CommandError::Internal(message)) => {
            assert!(message.contains("no read models"), "{message}")
        }
        other => panic!("expected the swap to plan again and ask the units, got {other:?}"),
    }
    let swapped = log_summary(&log)
        .await
        .into_iter()
        .filter(|(_, t, _)| t == "AppsSwapped")
        .count();
    assert_eq!(swapped, 0, "no swap decided on the stale answer");
}

#[tokio::test]
async fn a_swap_authorizes_app1_before_it_looks_at_app2() {
    let (commands, _log, ann) = ann_with_apps(&["shop"]).await;
    let eve = member("eve", &["dev"]);
    // eve may not change shop: whether app2 exists is not hers to learn.
    for app2 in ["nope", "blog", "Not_A_Name"] {
        let refused = commands
            .swap_apps(&eve, &origin(), "shop", app2, false)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, CommandError::Forbidden(_)),
            "{app2}: {refused:?}"
        );
    }
    // ann may: an unknown app2 is a 404 for her.
    let missing = commands
        .swap_apps(&ann, &origin(), "shop", "nope", false)
        .await
        .unwrap_err();
    assert!(matches!(
        missing,
        CommandError::Domain(DomainError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_restart_naming_a_process_the_app_does_not_have_is_refused() {
    let (commands, log, ann) = ann_with_apps(&["shop"]).await;
    let catalog: Catalog = serde_json::from_value(serde_json::json!({
        "shop": {"production": {
            "deploy": {"command": ["true"]},
            "processes": {"web": {"command": ["sleep", "600"], "units": 1}},
        }},
    }))
    .unwrap();
    let head = head(&log).await;
    for process in ["worker", "deploy", ""] {
        let refused = commands
            .restart_app(&ann, &origin(), &catalog, "shop", Some(process.into()))
            .await
            .unwrap_err();
        assert_eq!(
            invalid_field(&refused),
            Some("process"),
            "{process}: {refused:?}"
        );
    }
    let refused = commands
        .restart_app(
            &ann,
            &origin(),
            &Catalog::default(),
            "shop",
            Some("web".into()),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&refused), Some("process"));
    assert_eq!(super::head(&log).await, head, "nothing written");
    // One of its processes: the restart is written (its answer reads the units read model,
    // absent here).
    let _ = commands
        .restart_app(&ann, &origin(), &catalog, "shop", Some("web".into()))
        .await;
    assert_eq!(state(&commands, "shop").await.restart_generation(), 1);
}

#[tokio::test]
async fn an_app_whose_swap_partner_is_gone_is_removed_without_unswapping() {
    let (commands, log, ann) = ann_with_apps(&["shop", "blog"]).await;
    commands
        .swap_apps(&ann, &origin(), "shop", "blog", false)
        .await
        .unwrap();
    // blog is gone without unswapping (as an older server would have removed it): shop's
    // address serves blog's units, and no app's serves shop's: a broken chain.
    append(
        &log,
        "app-blog",
        &[AppEvent::AppRemoved {
            at: chrono::Utc::now(),
        }],
    )
    .await;
    let head = head(&log).await;
    commands.remove_app(&ann, &origin(), "shop").await.unwrap();
    let events = log.read_all(head + 1, 10, &Filter::all()).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.stream_id.to_string(), e.event_type.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("app-shop".to_string(), "AppRemoved"),
            ("quota-ann".to_string(), "QuotaAppReleased"),
        ],
        "removed without unswapping, nothing written to blog"
    );
}

#[tokio::test]
async fn keeping_the_team_owner_is_decided_again_on_the_state_held() {
    let (commands, log, ann) = ann_with_apps(&["shop"]).await;
    commands
        .grant_app_team(&ann, &origin(), "shop", "dev")
        .await
        .unwrap();
    // bob (dev, not ops) changes the description and gives shop's own team owner again: no
    // change of owner, no membership asked. But just before his append, the team owner
    // becomes dev: on the state held, ops is a new team owner, which bob may not give.
    log.before_append_to(
        "app-shop",
        "app-shop",
        vec![new_event(&AppEvent::AppUpdated {
            description: None,
            platform: None,
            team_owner: Some(TeamName::parse("dev").unwrap()),
            at: chrono::Utc::now(),
        })],
    );
    let refused = commands
        .update_app(
            &member("bob", &["dev"]),
            &origin(),
            "shop",
            UpdateApp {
                description: Some("bob's".into()),
                team_owner: Some("ops".into()),
                ..UpdateApp::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(log.pending(), 0);
    assert!(
        matches!(&refused, CommandError::Forbidden(m) if m.contains("member of team ops")),
        "{refused:?}"
    );
    let shop = state(&commands, "shop").await;
    assert_eq!(shop.team_owner().map(|t| t.as_str()), Some("dev"));
    assert_eq!(shop.description(), "", "nothing of bob's written");
}
