//! Given these past events, when this command, then these events or this refusal.

use super::*;
use crate::aggregate::{decode, encode, Aggregate, DomainEvent};
use crate::identity::{TeamName, Username};
use crate::sealed::Sealed;
use crate::services::{InstanceName, InstanceRef, ServiceName};
use crate::testing::given;
use crate::DomainError;
use chrono::{DateTime, Utc};
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
fn t0() -> DateTime<Utc> {
    at("2024-05-01T10:00:00Z")
}
fn t1() -> DateTime<Utc> {
    at("2024-05-01T11:00:00Z")
}
fn app(n: &str) -> AppName {
    AppName::parse(n).unwrap()
}
fn platform(n: &str) -> PlatformName {
    PlatformName::parse(n).unwrap()
}
fn team(n: &str) -> TeamName {
    TeamName::parse(n).unwrap()
}
fn user(n: &str) -> Username {
    Username::parse(n).unwrap()
}
fn cname(n: &str) -> Cname {
    Cname::parse(n).unwrap()
}
fn env(n: &str) -> EnvName {
    EnvName::parse(n).unwrap()
}
fn public(n: &str, v: &str) -> EnvVar {
    EnvVar::public(env(n), v.into()).unwrap()
}
fn private(n: &str, sealed: &str) -> EnvVar {
    EnvVar::private(env(n), Sealed::from_stored(sealed.into()))
}
fn enabled(n: &str) -> PlatformChoice {
    PlatformChoice {
        name: platform(n),
        status: PlatformStatus::Enabled,
    }
}
fn created_on(name: &str, on: &str) -> AppEvent {
    AppEvent::AppCreated {
        name: app(name),
        platform: platform(on),
        team_owner: team("ops"),
        owner: user("ann"),
        description: "the shop".into(),
        at: t0(),
    }
}
fn created() -> AppEvent {
    created_on("shop", "python")
}
fn create(name: &str) -> AppCommand {
    AppCommand::Create {
        name: app(name),
        platform: enabled("python"),
        team_owner: team("ops"),
        owner: user("ann"),
        description: "the shop".into(),
        at: t0(),
    }
}
fn removed() -> AppEvent {
    AppEvent::AppRemoved { at: t1() }
}
fn granted(t: &str) -> AppEvent {
    AppEvent::AppTeamGranted { team: team(t) }
}
fn no_such_app() -> DomainError {
    DomainError::NotFound("no such app".into())
}
fn invalid(field: &'static str, message: &str) -> DomainError {
    DomainError::invalid(field, message)
}

// ---- names ----

#[test]
fn app_and_platform_names_are_lowercase_letters_digits_and_dashes() {
    for bad in [
        "",
        "Shop",
        "1shop",
        "-shop",
        "shop_1",
        "shop.a",
        "sh op",
        &"a".repeat(41),
    ] {
        assert!(AppName::parse(bad).is_err(), "accepted {bad:?}");
        assert!(PlatformName::parse(bad).is_err(), "accepted {bad:?}");
    }
    for good in ["a", "shop-2", "a-", &"a".repeat(40)] {
        assert_eq!(AppName::parse(good).unwrap().as_str(), good);
        assert_eq!(PlatformName::parse(good).unwrap().as_str(), good);
    }
    assert_eq!(
        AppName::parse("Shop"),
        Err(invalid(
            "name",
            "\"Shop\" is not a valid name: 1 to 40 lowercase letters, digits and dashes, \
             starting with a letter (^[a-z][a-z0-9-]{0,39}$)"
        ))
    );
    assert!(matches!(
        PlatformName::parse_field("platform", "Py"),
        Err(DomainError::Invalid {
            field: "platform",
            ..
        })
    ));
}

#[test]
fn names_deserialize_through_parse_and_round_trip() {
    assert_eq!(
        serde_json::from_value::<AppName>(json!("shop")).unwrap(),
        app("shop")
    );
    assert!(serde_json::from_value::<AppName>(json!("Shop")).is_err());
    assert!(serde_json::from_value::<EnvName>(json!("PATH")).is_err());
    assert!(serde_json::from_value::<Cname>(json!("-a.com")).is_err());
    assert_eq!(serde_json::to_value(app("shop")).unwrap(), json!("shop"));
    assert_eq!(
        serde_json::to_value(cname("www.shop.com")).unwrap(),
        json!("www.shop.com")
    );
}

#[test]
fn a_cname_is_a_host_name_in_lower_case() {
    for bad in [
        "",
        ".",
        "a..b",
        "a.",
        ".a",
        "-a.com",
        "a-.com",
        "a_b.com",
        "a b.com",
        "*.shop.com",
        "shop.com/x",
        "10.0.0.1",
        "https://shop.com",
        &format!("{}.com", "a".repeat(64)),
        &format!("{}.com", ["a"; 126].join(".")),
    ] {
        assert!(Cname::parse(bad).is_err(), "accepted {bad:?}");
    }
    for good in [
        "localhost",
        "shop.com",
        "www.shop-1.example.org",
        "1a.2b.c0m",
    ] {
        assert_eq!(Cname::parse(good).unwrap().as_str(), good);
    }
    assert_eq!(cname("WWW.Shop.COM").as_str(), "www.shop.com");
    let longest = format!("{}.com", ["a"; 125].join("."));
    assert_eq!(longest.len(), 253);
    assert!(Cname::parse(&longest).is_ok());
    assert_eq!(
        Cname::parse("a_b.com"),
        Err(invalid(
            "cname",
            "\"a_b.com\" is not a host name: it may hold only letters, digits, dashes and dots"
        ))
    );
}

#[test]
fn env_names_follow_the_rule_of_job_variables() {
    for bad in [
        "",
        "1A",
        "A-B",
        "A B",
        "PATH",
        "LD_PRELOAD",
        "BOSUN_X",
        &"A".repeat(257),
    ] {
        assert!(EnvName::parse(bad).is_err(), "accepted {bad:?}");
    }
    for good in ["A", "_a1", "DATABASE_URL", "MY_PATH"] {
        assert_eq!(EnvName::parse(good).unwrap().as_str(), good);
    }
    assert_eq!(
        EnvName::parse("A-B"),
        Err(invalid(
            "envs",
            "\"A-B\" is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"
        ))
    );
    assert!(matches!(
        EnvName::parse_field("name", "1A"),
        Err(DomainError::Invalid { field: "name", .. })
    ));
}

#[test]
fn env_values_follow_the_rule_of_job_variables() {
    assert!(EnvVar::public(env("A"), "x\0y".into()).is_err());
    assert!(EnvVar::public(env("A"), "x".repeat(64 * 1024 + 1)).is_err());
    assert!(EnvVar::public(env("A"), "x".repeat(64 * 1024)).is_ok());
    assert_eq!(
        check_env_value(&env("A"), "x\0y"),
        Err(invalid("envs", "the value of A contains the NUL character"))
    );
}

#[test]
fn env_vars_are_stored_with_their_kind_and_private_ones_never_show_in_debug() {
    let vars = vec![public("A", "1"), private("B", "v1.nonce.secretbytes")];
    assert_eq!(
        serde_json::to_value(&vars).unwrap(),
        json!([
            {"name": "A", "kind": "public", "value": "1"},
            {"name": "B", "kind": "private", "sealed": "v1.nonce.secretbytes"},
        ])
    );
    let back: Vec<EnvVar> = serde_json::from_value(serde_json::to_value(&vars).unwrap()).unwrap();
    assert_eq!(back, vars);
    let event = AppEvent::AppEnvSet {
        envs: vars,
        restart: true,
    };
    assert!(!format!("{event:?}").contains("secretbytes"));
}

#[test]
fn events_encode_adjacently_tagged_and_decode_back() {
    let events = vec![
        created(),
        AppEvent::AppUpdated {
            description: Some("new".into()),
            platform: None,
            team_owner: None,
            at: t1(),
        },
        granted("dev"),
        AppEvent::AppCnameAdded {
            cname: cname("shop.com"),
        },
        AppEvent::AppEnvSet {
            envs: vec![public("A", "1"), private("B", "v1.x.y")],
            restart: false,
        },
        AppEvent::AppEnvUnset {
            names: vec![env("A")],
            restart: true,
        },
        AppEvent::AppRestartRequested {
            process: Some("web".into()),
            generation: 2,
        },
        removed(),
    ];
    for event in events {
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, event.event_type());
        assert_eq!(decode::<AppEvent>(&event_type, &data).unwrap(), event);
    }
    let (event_type, data) = encode(&AppEvent::AppUpdated {
        description: None,
        platform: Some(platform("go")),
        team_owner: None,
        at: t1(),
    })
    .unwrap();
    assert_eq!(event_type, "AppUpdated");
    assert_eq!(
        data,
        json!({"platform": "go", "at": "2024-05-01T11:00:00Z"})
    );
    for event in [
        PlatformEvent::PlatformAdded {
            name: platform("go"),
        },
        PlatformEvent::PlatformUpdated { disabled: true },
        PlatformEvent::PlatformRemoved {},
    ] {
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(decode::<PlatformEvent>(&event_type, &data).unwrap(), event);
    }
    let (event_type, data) = encode(&PlatformEvent::PlatformRemoved {}).unwrap();
    assert_eq!((event_type.as_str(), data), ("PlatformRemoved", json!({})));
    let quota = QuotaEvent::QuotaAppTaken { app: app("shop") };
    let (event_type, data) = encode(&quota).unwrap();
    assert_eq!(data, json!({"app": "shop"}));
    assert_eq!(decode::<QuotaEvent>(&event_type, &data).unwrap(), quota);
    let claim = CnameClaimEvent::CnameTransferred {
        cname: cname("shop.com"),
        from: app("a"),
        to: app("b"),
    };
    let (event_type, data) = encode(&claim).unwrap();
    assert_eq!(
        decode::<CnameClaimEvent>(&event_type, &data).unwrap(),
        claim
    );
}

// ---- create ----

#[test]
fn creates_an_app_owned_by_its_team_owner() {
    given::<App>(&[]).when(create("shop")).then(vec![created()]);
    let state = given::<App>(&[created()]);
    let state = state.state();
    assert!(state.exists() && state.is_active() && !state.removed());
    assert_eq!(state.name(), Some(&app("shop")));
    assert_eq!(state.platform(), Some(&platform("python")));
    assert_eq!(state.team_owner(), Some(&team("ops")));
    assert_eq!(state.teams(), &[team("ops")].into());
    assert_eq!(state.owner(), Some(&user("ann")));
    assert_eq!(state.description(), "the shop");
    assert_eq!(state.units_of(), Some(&app("shop")));
    assert_eq!(state.restart_generation(), 0);
    assert!(state.env().is_empty() && state.cnames().is_empty() && state.bound().is_empty());
    assert_eq!(state.created_at(), Some(t0()));
}

#[test]
fn refuses_an_app_that_exists() {
    given::<App>(&[created()])
        .when(create("shop"))
        .refused(DomainError::conflict(
            "app_exists",
            "app shop already exists",
        ));
}

#[test]
fn refuses_an_unknown_or_disabled_platform() {
    let on = |status| AppCommand::Create {
        name: app("shop"),
        platform: PlatformChoice {
            name: platform("cobol"),
            status,
        },
        team_owner: team("ops"),
        owner: user("ann"),
        description: String::new(),
        at: t0(),
    };
    given::<App>(&[])
        .when(on(PlatformStatus::Unknown))
        .refused(invalid("platform", "unknown platform cobol"));
    given::<App>(&[])
        .when(on(PlatformStatus::Disabled))
        .refused(invalid("platform", "platform cobol is disabled"));
}

#[test]
fn refuses_a_description_over_1024_characters() {
    let long = AppCommand::Create {
        name: app("shop"),
        platform: enabled("python"),
        team_owner: team("ops"),
        owner: user("ann"),
        description: "é".repeat(1025),
        at: t0(),
    };
    given::<App>(&[])
        .when(long)
        .refused(invalid("description", "must be at most 1024 characters"));
}

#[test]
fn a_removed_app_refuses_every_command_but_its_creation_afresh() {
    let past = [
        created(),
        granted("dev"),
        AppEvent::AppEnvSet {
            envs: vec![public("A", "1")],
            restart: true,
        },
        AppEvent::AppCnameAdded {
            cname: cname("shop.com"),
        },
    ];
    given::<App>(&past)
        .when(AppCommand::Remove { at: t1() })
        .then(vec![removed()]);
    let past: Vec<AppEvent> = past.into_iter().chain([removed()]).collect();
    let refused = [
        AppCommand::Remove { at: t1() },
        AppCommand::Update {
            description: Some("x".into()),
            platform: None,
            team_owner: None,
            at: t1(),
        },
        AppCommand::GrantTeam {
            team: team("qa"),
            team_exists: true,
        },
        AppCommand::RevokeTeam { team: team("dev") },
        AppCommand::AddCname {
            cname: cname("x.com"),
        },
        AppCommand::RemoveCname {
            cname: cname("shop.com"),
        },
        AppCommand::SetEnv {
            envs: vec![public("B", "2")],
            restart: true,
        },
        AppCommand::UnsetEnv {
            names: vec![env("A")],
            restart: true,
        },
        AppCommand::RequestRestart { process: None },
    ];
    for command in refused {
        given::<App>(&past).when(command).refused(no_such_app());
    }
    let state = given::<App>(&past);
    assert!(state.state().removed() && state.state().exists() && !state.state().is_active());

    // tsuru frees a removed app's name: created again, it starts afresh.
    given::<App>(&past)
        .when(create("shop"))
        .then(vec![created()]);
    let again: Vec<AppEvent> = past.iter().cloned().chain([created()]).collect();
    assert_eq!(
        given::<App>(&again).state(),
        given::<App>(&[created()]).state()
    );
}

#[test]
fn an_app_never_created_refuses_every_command_but_creation() {
    given::<App>(&[])
        .when(AppCommand::Remove { at: t1() })
        .refused(no_such_app());
    given::<App>(&[])
        .when(AppCommand::RequestRestart { process: None })
        .refused(no_such_app());
    assert!(!given::<App>(&[]).state().exists());
}

// ---- update ----

#[test]
fn updates_only_what_changes() {
    let update = |description: Option<&str>, platform: Option<PlatformChoice>| AppCommand::Update {
        description: description.map(String::from),
        platform,
        team_owner: None,
        at: t1(),
    };
    given::<App>(&[created()])
        .when(update(Some("new"), Some(enabled("python"))))
        .then(vec![AppEvent::AppUpdated {
            description: Some("new".into()),
            platform: None,
            team_owner: None,
            at: t1(),
        }]);
    given::<App>(&[created()])
        .when(update(Some("the shop"), Some(enabled("python"))))
        .then_nothing();
    given::<App>(&[created()])
        .when(update(None, None))
        .then_nothing();
    given::<App>(&[created()])
        .when(update(None, Some(enabled("go"))))
        .then(vec![AppEvent::AppUpdated {
            description: None,
            platform: Some(platform("go")),
            team_owner: None,
            at: t1(),
        }]);
    let moved = given::<App>(&[
        created(),
        AppEvent::AppUpdated {
            description: Some("new".into()),
            platform: Some(platform("go")),
            team_owner: None,
            at: t1(),
        },
    ]);
    assert_eq!(moved.state().platform(), Some(&platform("go")));
    assert_eq!(moved.state().description(), "new");
    assert_eq!(moved.state().updated_at(), Some(t1()));
}

#[test]
fn moves_only_to_an_enabled_platform() {
    let to = |status| AppCommand::Update {
        description: None,
        platform: Some(PlatformChoice {
            name: platform("go"),
            status,
        }),
        team_owner: None,
        at: t1(),
    };
    given::<App>(&[created()])
        .when(to(PlatformStatus::Disabled))
        .refused(invalid("platform", "platform go is disabled"));
    given::<App>(&[created()])
        .when(to(PlatformStatus::Unknown))
        .refused(invalid("platform", "unknown platform go"));
    // Its own platform, disabled since, is no change: nothing to refuse.
    given::<App>(&[created()])
        .when(AppCommand::Update {
            description: None,
            platform: Some(PlatformChoice {
                name: platform("python"),
                status: PlatformStatus::Disabled,
            }),
            team_owner: None,
            at: t1(),
        })
        .then_nothing();
}

#[test]
fn a_new_team_owner_is_granted_the_app_first() {
    let owner = |t: &str| AppCommand::Update {
        description: None,
        platform: None,
        team_owner: Some(team(t)),
        at: t1(),
    };
    let updated = |t: &str| AppEvent::AppUpdated {
        description: None,
        platform: None,
        team_owner: Some(team(t)),
        at: t1(),
    };
    given::<App>(&[created()])
        .when(owner("dev"))
        .then(vec![granted("dev"), updated("dev")]);
    given::<App>(&[created(), granted("dev")])
        .when(owner("dev"))
        .then(vec![updated("dev")]);
    given::<App>(&[created()]).when(owner("ops")).then_nothing();
    let state = given::<App>(&[created(), granted("dev"), updated("dev")]);
    assert_eq!(state.state().team_owner(), Some(&team("dev")));
    assert_eq!(state.state().teams(), &[team("dev"), team("ops")].into());
}

// ---- teams ----

#[test]
fn grants_a_team_once_and_refuses_an_unknown_team() {
    let grant = |t: &str, team_exists| AppCommand::GrantTeam {
        team: team(t),
        team_exists,
    };
    given::<App>(&[created()])
        .when(grant("dev", true))
        .then(vec![granted("dev")]);
    given::<App>(&[created(), granted("dev")])
        .when(grant("dev", true))
        .then_nothing();
    given::<App>(&[created()])
        .when(grant("ops", true))
        .then_nothing();
    given::<App>(&[created()])
        .when(grant("zed", false))
        .refused(DomainError::NotFound("no team zed".into()));
}

#[test]
fn revokes_a_team_but_never_the_last_one_nor_the_team_owner() {
    let revoke = |t: &str| AppCommand::RevokeTeam { team: team(t) };
    given::<App>(&[created(), granted("dev")])
        .when(revoke("dev"))
        .then(vec![AppEvent::AppTeamRevoked { team: team("dev") }]);
    given::<App>(&[created()])
        .when(revoke("ops"))
        .refused(DomainError::conflict(
            "last_team",
            "team ops is the app's last team: grant another one first",
        ));
    given::<App>(&[created(), granted("dev")])
        .when(revoke("ops"))
        .refused(DomainError::conflict(
            "team_owner",
            "team ops owns the app: set another team_owner first",
        ));
    given::<App>(&[created()])
        .when(revoke("qa"))
        .refused(DomainError::NotFound(
            "team qa has no access to this app".into(),
        ));
    let revoked = given::<App>(&[
        created(),
        granted("dev"),
        AppEvent::AppTeamRevoked { team: team("dev") },
    ]);
    assert_eq!(revoked.state().teams(), &[team("ops")].into());
}

// ---- cnames ----

#[test]
fn an_app_adds_and_removes_its_cnames() {
    let added = AppEvent::AppCnameAdded {
        cname: cname("shop.com"),
    };
    given::<App>(&[created()])
        .when(AppCommand::AddCname {
            cname: cname("shop.com"),
        })
        .then(vec![added.clone()]);
    given::<App>(&[created(), added.clone()])
        .when(AppCommand::AddCname {
            cname: cname("shop.com"),
        })
        .then_nothing();
    given::<App>(&[created(), added.clone()])
        .when(AppCommand::RemoveCname {
            cname: cname("shop.com"),
        })
        .then(vec![AppEvent::AppCnameRemoved {
            cname: cname("shop.com"),
        }]);
    given::<App>(&[created()])
        .when(AppCommand::RemoveCname {
            cname: cname("shop.com"),
        })
        .refused(DomainError::NotFound(
            "shop.com is not a cname of this app".into(),
        ));
    assert_eq!(
        given::<App>(&[created(), added]).state().cnames(),
        &[cname("shop.com")].into()
    );
}

fn claimed(by: &str) -> CnameClaimEvent {
    CnameClaimEvent::CnameClaimed {
        cname: cname("shop.com"),
        app: app(by),
    }
}

#[test]
fn a_cname_belongs_to_one_app() {
    let claim = |by: &str| CnameClaimCommand::Claim {
        cname: cname("shop.com"),
        app: app(by),
    };
    given::<CnameClaim>(&[])
        .when(claim("shop"))
        .then(vec![claimed("shop")]);
    given::<CnameClaim>(&[claimed("shop")])
        .when(claim("shop"))
        .then_nothing();
    given::<CnameClaim>(&[claimed("shop")])
        .when(claim("blog"))
        .refused(DomainError::conflict(
            "cname_taken",
            "shop.com is already a cname of another app",
        ));
    assert_eq!(
        given::<CnameClaim>(&[claimed("shop")]).state().holder(),
        Some(&app("shop"))
    );
}

#[test]
fn only_its_holder_releases_a_cname_and_then_another_app_may_claim_it() {
    let release = |by: &str| CnameClaimCommand::Release {
        cname: cname("shop.com"),
        app: app(by),
    };
    let released = CnameClaimEvent::CnameReleased {
        cname: cname("shop.com"),
        app: app("shop"),
    };
    given::<CnameClaim>(&[claimed("shop")])
        .when(release("shop"))
        .then(vec![released.clone()]);
    given::<CnameClaim>(&[claimed("shop")])
        .when(release("blog"))
        .refused(DomainError::conflict(
            "cname_taken",
            "shop.com is already a cname of another app",
        ));
    given::<CnameClaim>(&[])
        .when(release("shop"))
        .then_nothing();
    given::<CnameClaim>(&[claimed("shop"), released.clone()])
        .when(release("shop"))
        .then_nothing();
    given::<CnameClaim>(&[claimed("shop"), released])
        .when(CnameClaimCommand::Claim {
            cname: cname("shop.com"),
            app: app("blog"),
        })
        .then(vec![claimed("blog")]);
}

#[test]
fn a_swap_transfers_a_cname_from_its_holder_only() {
    let transfer = |from: &str, to: &str| CnameClaimCommand::Transfer {
        cname: cname("shop.com"),
        from: app(from),
        to: app(to),
    };
    let transferred = CnameClaimEvent::CnameTransferred {
        cname: cname("shop.com"),
        from: app("shop"),
        to: app("blog"),
    };
    given::<CnameClaim>(&[claimed("shop")])
        .when(transfer("shop", "blog"))
        .then(vec![transferred.clone()]);
    given::<CnameClaim>(&[claimed("shop")])
        .when(transfer("blog", "shop"))
        .refused(DomainError::conflict(
            "cname_taken",
            "shop.com is already a cname of another app",
        ));
    given::<CnameClaim>(&[claimed("shop")])
        .when(transfer("shop", "shop"))
        .then_nothing();
    assert_eq!(
        given::<CnameClaim>(&[claimed("shop"), transferred])
            .state()
            .holder(),
        Some(&app("blog"))
    );
}

// ---- env ----

#[test]
fn sets_public_values_in_clear_and_private_ones_sealed() {
    let envs = vec![public("A", "1"), private("B", "v1.n.c")];
    given::<App>(&[created()])
        .when(AppCommand::SetEnv {
            envs: envs.clone(),
            restart: true,
        })
        .then(vec![AppEvent::AppEnvSet {
            envs: envs.clone(),
            restart: true,
        }]);
    let state = given::<App>(&[
        created(),
        AppEvent::AppEnvSet {
            envs,
            restart: true,
        },
    ]);
    let env_of = state.state().env();
    assert_eq!(env_of[&env("A")].public_value(), Some("1"));
    assert_eq!(env_of[&env("B")].public_value(), None);
    assert_eq!(
        env_of[&env("B")],
        EnvValue::Private {
            sealed: Sealed::from_stored("v1.n.c".into())
        }
    );
}

#[test]
fn setting_the_same_public_values_changes_nothing_but_private_ones_are_always_set() {
    let past = [
        created(),
        AppEvent::AppEnvSet {
            envs: vec![public("A", "1"), private("B", "v1.n.c")],
            restart: false,
        },
    ];
    given::<App>(&past)
        .when(AppCommand::SetEnv {
            envs: vec![public("A", "1")],
            restart: true,
        })
        .then_nothing();
    given::<App>(&past)
        .when(AppCommand::SetEnv {
            envs: vec![public("A", "1"), public("C", "3"), private("B", "v1.m.d")],
            restart: false,
        })
        .then(vec![AppEvent::AppEnvSet {
            envs: vec![public("C", "3"), private("B", "v1.m.d")],
            restart: false,
        }]);
    // A public value replacing a private one is a change.
    given::<App>(&past)
        .when(AppCommand::SetEnv {
            envs: vec![public("B", "2")],
            restart: false,
        })
        .then(vec![AppEvent::AppEnvSet {
            envs: vec![public("B", "2")],
            restart: false,
        }]);
}

#[test]
fn refuses_no_variables_twice_the_same_and_bad_public_values() {
    let set = |envs| AppCommand::SetEnv {
        envs,
        restart: true,
    };
    given::<App>(&[created()])
        .when(set(vec![]))
        .refused(invalid("envs", "give at least one variable"));
    given::<App>(&[created()])
        .when(set(vec![public("A", "1"), private("A", "v1.n.c")]))
        .refused(invalid("envs", "A is given twice"));
    let nul = EnvVar {
        name: env("A"),
        value: EnvValue::Public {
            value: "a\0b".into(),
        },
    };
    given::<App>(&[created()])
        .when(set(vec![nul]))
        .refused(invalid("envs", "the value of A contains the NUL character"));
}

#[test]
fn refuses_an_environment_over_1_mib_in_all() {
    let value = "x".repeat(64 * 1024);
    let many: Vec<EnvVar> = (0..15).map(|i| public(&format!("V{i}"), &value)).collect();
    let past = [
        created(),
        AppEvent::AppEnvSet {
            envs: many,
            restart: false,
        },
    ];
    given::<App>(&past)
        .when(AppCommand::SetEnv {
            envs: vec![public("V15", &value), public("V16", &value)],
            restart: false,
        })
        .refused(invalid(
            "envs",
            "all the app's variables together would be longer than 1 MiB",
        ));
    given::<App>(&past)
        .when(AppCommand::SetEnv {
            envs: vec![public("V0", "small"), public("V15", &value)],
            restart: false,
        })
        .then(vec![AppEvent::AppEnvSet {
            envs: vec![public("V0", "small"), public("V15", &value)],
            restart: false,
        }]);
}

#[test]
fn unsets_only_names_that_are_set() {
    let past = [
        created(),
        AppEvent::AppEnvSet {
            envs: vec![public("A", "1"), private("B", "v1.n.c")],
            restart: false,
        },
    ];
    let unset = |names: &[&str]| AppCommand::UnsetEnv {
        names: names.iter().map(|n| env(n)).collect(),
        restart: false,
    };
    given::<App>(&past)
        .when(unset(&["B", "Z", "B"]))
        .then(vec![AppEvent::AppEnvUnset {
            names: vec![env("B")],
            restart: false,
        }]);
    given::<App>(&past).when(unset(&["Z"])).then_nothing();
    given::<App>(&past)
        .when(unset(&[]))
        .refused(invalid("name", "give at least one variable name"));
    let state = given::<App>(&[
        past[0].clone(),
        past[1].clone(),
        AppEvent::AppEnvUnset {
            names: vec![env("B")],
            restart: false,
        },
    ]);
    assert_eq!(
        state.state().env().keys().collect::<Vec<_>>(),
        vec![&env("A")]
    );
}

#[test]
fn names_set_by_bound_instances_are_neither_set_nor_unset() {
    let past = [
        created(),
        bind_requested("db"),
        instance_bound("db", &["DATABASE_URL"], false),
    ];
    let refusal = DomainError::conflict(
        "env_bound",
        "DATABASE_URL is set by a bound service instance",
    );
    given::<App>(&past)
        .when(AppCommand::SetEnv {
            envs: vec![public("A", "1"), public("DATABASE_URL", "x")],
            restart: true,
        })
        .refused(refusal.clone());
    given::<App>(&past)
        .when(AppCommand::UnsetEnv {
            names: vec![env("DATABASE_URL")],
            restart: true,
        })
        .refused(refusal);
}

// ---- service instances ----

fn instance_ref(i: &str) -> InstanceRef {
    InstanceRef {
        service: ServiceName::parse("mysql").unwrap(),
        instance: InstanceName::parse(i).unwrap(),
    }
}
fn bind_requested(i: &str) -> AppEvent {
    AppEvent::AppInstanceBindRequested {
        service: ServiceName::parse("mysql").unwrap(),
        instance: InstanceName::parse(i).unwrap(),
    }
}
fn bound_vars(names: &[&str]) -> Vec<EnvVar> {
    names.iter().map(|n| private(n, "v1.bound")).collect()
}
fn instance_bound(i: &str, names: &[&str], restart: bool) -> AppEvent {
    AppEvent::AppInstanceBound {
        service: ServiceName::parse("mysql").unwrap(),
        instance: InstanceName::parse(i).unwrap(),
        envs: bound_vars(names),
        restart,
    }
}
fn instance_unbound(i: &str, names: &[&str], restart: bool) -> AppEvent {
    unbound_restoring(i, names, vec![], restart)
}
fn unbound_restoring(
    i: &str,
    names: &[&str],
    restored: Vec<RestoredEnv>,
    restart: bool,
) -> AppEvent {
    AppEvent::AppInstanceUnbound {
        service: ServiceName::parse("mysql").unwrap(),
        instance: InstanceName::parse(i).unwrap(),
        names: names.iter().map(|n| env(n)).collect(),
        restored,
        restart,
    }
}
/// Instance `i` bound, setting these (name, sealed value) pairs.
fn bound_with(i: &str, vars: &[(&str, &str)], restart: bool) -> AppEvent {
    AppEvent::AppInstanceBound {
        service: ServiceName::parse("mysql").unwrap(),
        instance: InstanceName::parse(i).unwrap(),
        envs: vars.iter().map(|(n, v)| private(n, v)).collect(),
        restart,
    }
}
fn restored(n: &str, value: EnvValue, by: Option<&str>) -> RestoredEnv {
    RestoredEnv {
        name: env(n),
        value,
        bound: by.map(instance_ref),
    }
}
fn record_unbound(i: &str, restart: bool) -> AppCommand {
    AppCommand::RecordUnbound {
        instance: instance_ref(i),
        restart,
    }
}

#[test]
fn binding_events_round_trip_with_their_type() {
    for event in [
        bind_requested("db"),
        instance_bound("db", &["DATABASE_URL"], true),
        AppEvent::AppInstanceBindFailed {
            service: ServiceName::parse("mysql").unwrap(),
            instance: InstanceName::parse("db").unwrap(),
        },
        instance_unbound("db", &["DATABASE_URL"], false),
    ] {
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, event.event_type());
        assert_eq!(decode::<AppEvent>(&event_type, &data).unwrap(), event);
    }
    let (event_type, data) = encode(&instance_bound("db", &["DATABASE_URL"], true)).unwrap();
    assert_eq!(event_type, "AppInstanceBound");
    assert_eq!(
        data,
        json!({"service": "mysql", "instance": "db",
               "envs": [{"name": "DATABASE_URL", "kind": "private", "sealed": "v1.bound"}],
               "restart": true})
    );
}

#[test]
fn requests_a_bind_once() {
    given::<App>(&[created()])
        .when(AppCommand::RequestBind {
            instance: instance_ref("db"),
        })
        .then(vec![bind_requested("db")]);
    let pending = [created(), bind_requested("db")];
    assert_eq!(
        given::<App>(&pending).state().bindings(),
        &[(instance_ref("db"), Binding::Pending)].into()
    );
    given::<App>(&pending)
        .when(AppCommand::RequestBind {
            instance: instance_ref("db"),
        })
        .refused(DomainError::conflict(
            "already_bound",
            "mysql/db is already being bound to this app",
        ));
    let bound = [
        created(),
        bind_requested("db"),
        instance_bound("db", &["DATABASE_URL"], true),
    ];
    given::<App>(&bound)
        .when(AppCommand::RequestBind {
            instance: instance_ref("db"),
        })
        .refused(DomainError::conflict(
            "already_bound",
            "mysql/db is already bound to this app",
        ));
    given::<App>(&bound)
        .when(AppCommand::RequestBind {
            instance: instance_ref("cache"),
        })
        .then(vec![bind_requested("cache")]);
    for past in [vec![], vec![created(), removed()]] {
        given::<App>(&past)
            .when(AppCommand::RequestBind {
                instance: instance_ref("db"),
            })
            .refused(no_such_app());
    }
}

#[test]
fn a_bind_sets_the_instance_variables_over_the_app_own() {
    let past = [
        created(),
        AppEvent::AppEnvSet {
            envs: vec![public("DATABASE_URL", "sqlite://"), public("A", "1")],
            restart: false,
        },
        bind_requested("db"),
    ];
    given::<App>(&past)
        .when(AppCommand::RecordBound {
            instance: instance_ref("db"),
            envs: bound_vars(&["DATABASE_URL", "DATABASE_USER"]),
            restart: true,
        })
        .then(vec![instance_bound(
            "db",
            &["DATABASE_URL", "DATABASE_USER"],
            true,
        )]);
    let mut after = past.to_vec();
    after.push(instance_bound(
        "db",
        &["DATABASE_URL", "DATABASE_USER"],
        true,
    ));
    let given_state = given::<App>(&after);
    let state = given_state.state();
    assert_eq!(
        state.bindings(),
        &[(instance_ref("db"), Binding::Bound)].into()
    );
    assert_eq!(
        state.bound(),
        &[
            (env("DATABASE_URL"), instance_ref("db")),
            (env("DATABASE_USER"), instance_ref("db")),
        ]
        .into()
    );
    assert_eq!(
        state.env().get(&env("DATABASE_URL")),
        Some(&private("DATABASE_URL", "v1.bound").value)
    );
    assert_eq!(state.env().get(&env("A")), Some(&public("A", "1").value));
    assert_eq!(state.restart_generation(), 1);
    let quiet = [
        created(),
        bind_requested("db"),
        instance_bound("db", &["DATABASE_URL"], false),
    ];
    assert_eq!(given::<App>(&quiet).state().restart_generation(), 0);
}

#[test]
fn a_failed_bind_leaves_nothing_bound() {
    let failed = AppEvent::AppInstanceBindFailed {
        service: ServiceName::parse("mysql").unwrap(),
        instance: InstanceName::parse("db").unwrap(),
    };
    let past = [created(), bind_requested("db")];
    given::<App>(&past)
        .when(AppCommand::RecordBindFailed {
            instance: instance_ref("db"),
        })
        .then(vec![failed.clone()]);
    given::<App>(&[created()])
        .when(AppCommand::RecordBindFailed {
            instance: instance_ref("db"),
        })
        .then_nothing();
    let bound = [
        created(),
        bind_requested("db"),
        instance_bound("db", &["DATABASE_URL"], false),
    ];
    given::<App>(&bound)
        .when(AppCommand::RecordBindFailed {
            instance: instance_ref("db"),
        })
        .then_nothing();
    let state = given::<App>(&[created(), bind_requested("db"), failed]);
    assert!(state.state().bindings().is_empty());
    assert!(state.state().bound().is_empty() && state.state().env().is_empty());
    given::<App>(&[created(), bind_requested("db")])
        .when(AppCommand::Remove { at: t1() })
        .refused(DomainError::conflict(
            "app_has_bindings",
            "the app has 1 service instance bound or being bound: unbind it first",
        ));
}

#[test]
fn an_unbind_takes_the_variables_the_instance_still_sets() {
    let past = [
        created(),
        bind_requested("db"),
        instance_bound("db", &["DATABASE_URL", "DATABASE_USER"], false),
        bind_requested("replica"),
        // The replica's bind replaces DATABASE_URL: the name is the replica's now.
        instance_bound("replica", &["DATABASE_URL"], false),
    ];
    given::<App>(&past)
        .when(AppCommand::RecordUnbound {
            instance: instance_ref("db"),
            restart: true,
        })
        .then(vec![instance_unbound("db", &["DATABASE_USER"], true)]);
    let mut after = past.to_vec();
    after.push(instance_unbound("db", &["DATABASE_USER"], true));
    let given_state = given::<App>(&after);
    let state = given_state.state();
    assert_eq!(
        state.bindings(),
        &[(instance_ref("replica"), Binding::Bound)].into()
    );
    assert_eq!(
        state.bound(),
        &[(env("DATABASE_URL"), instance_ref("replica"))].into()
    );
    assert_eq!(
        state.env().keys().collect::<Vec<_>>(),
        vec![&env("DATABASE_URL")]
    );
    assert_eq!(state.restart_generation(), 1);
    // The name is free for the app's own env again.
    given::<App>(&after)
        .when(AppCommand::SetEnv {
            envs: vec![public("DATABASE_USER", "me")],
            restart: false,
        })
        .then(vec![AppEvent::AppEnvSet {
            envs: vec![public("DATABASE_USER", "me")],
            restart: false,
        }]);
    given::<App>(&after)
        .when(AppCommand::RecordUnbound {
            instance: instance_ref("db"),
            restart: true,
        })
        .then_nothing();
}

#[test]
fn unbinding_the_later_of_two_bindings_gives_back_the_earlier_value() {
    let past = [
        created(),
        bind_requested("db"),
        bound_with(
            "db",
            &[("DATABASE_URL", "v1.db"), ("DB_USER", "v1.db-user")],
            false,
        ),
        bind_requested("replica"),
        bound_with("replica", &[("DATABASE_URL", "v1.replica")], false),
    ];
    // The latest bind wins.
    let state = given::<App>(&past);
    assert_eq!(
        state.state().env().get(&env("DATABASE_URL")),
        Some(&private("DATABASE_URL", "v1.replica").value)
    );
    assert_eq!(
        state.state().bound().get(&env("DATABASE_URL")),
        Some(&instance_ref("replica"))
    );
    let unbound = unbound_restoring(
        "replica",
        &[],
        vec![restored(
            "DATABASE_URL",
            private("DATABASE_URL", "v1.db").value,
            Some("db"),
        )],
        true,
    );
    given::<App>(&past)
        .when(record_unbound("replica", true))
        .then(vec![unbound.clone()]);
    let mut after = past.to_vec();
    after.push(unbound);
    let given_state = given::<App>(&after);
    let state = given_state.state();
    assert_eq!(
        state.env().get(&env("DATABASE_URL")),
        Some(&private("DATABASE_URL", "v1.db").value)
    );
    assert_eq!(
        state.bound(),
        &[
            (env("DATABASE_URL"), instance_ref("db")),
            (env("DB_USER"), instance_ref("db")),
        ]
        .into()
    );
    assert_eq!(state.restart_generation(), 1);
    // Unbinding the earlier one now takes its variables away: nothing is under them.
    given::<App>(&after)
        .when(record_unbound("db", false))
        .then(vec![instance_unbound(
            "db",
            &["DATABASE_URL", "DB_USER"],
            false,
        )]);
}

#[test]
fn unbinding_the_earlier_of_two_bindings_leaves_the_later_value() {
    let past = [
        created(),
        bind_requested("db"),
        bound_with("db", &[("DATABASE_URL", "v1.db")], false),
        bind_requested("replica"),
        bound_with("replica", &[("DATABASE_URL", "v1.replica")], false),
    ];
    // Nothing the app's units see changes: a restart asked for is dropped.
    let unbound = unbound_restoring("db", &[], vec![], false);
    given::<App>(&past)
        .when(record_unbound("db", true))
        .then(vec![unbound.clone()]);
    let mut after = past.to_vec();
    after.push(unbound);
    let state = given::<App>(&after);
    assert_eq!(
        state.state().env().get(&env("DATABASE_URL")),
        Some(&private("DATABASE_URL", "v1.replica").value)
    );
    assert_eq!(state.state().restart_generation(), 0);
    // The earlier binding is gone from under it: unbinding the later one leaves the name.
    given::<App>(&after)
        .when(record_unbound("replica", true))
        .then(vec![instance_unbound("replica", &["DATABASE_URL"], true)]);
}

#[test]
fn unbinding_gives_the_app_own_value_back() {
    let past = [
        created(),
        AppEvent::AppEnvSet {
            envs: vec![public("DATABASE_URL", "sqlite://"), public("A", "1")],
            restart: false,
        },
        bind_requested("db"),
        bound_with("db", &[("DATABASE_URL", "v1.db")], false),
    ];
    let state = given::<App>(&past);
    assert_eq!(
        state.state().own_env().get(&env("DATABASE_URL")),
        Some(&public("DATABASE_URL", "sqlite://").value)
    );
    let unbound = unbound_restoring(
        "db",
        &[],
        vec![restored(
            "DATABASE_URL",
            public("DATABASE_URL", "sqlite://").value,
            None,
        )],
        true,
    );
    given::<App>(&past)
        .when(record_unbound("db", true))
        .then(vec![unbound.clone()]);
    let mut after = past.to_vec();
    after.push(unbound);
    let given_state = given::<App>(&after);
    let state = given_state.state();
    assert_eq!(
        state.env(),
        &[
            (env("A"), public("A", "1").value),
            (
                env("DATABASE_URL"),
                public("DATABASE_URL", "sqlite://").value
            ),
        ]
        .into()
    );
    assert!(state.bound().is_empty() && state.bindings().is_empty());
    assert_eq!(state.restart_generation(), 1);
    // Its own again: set and unset through the app's env.
    given::<App>(&after)
        .when(AppCommand::UnsetEnv {
            names: vec![env("DATABASE_URL")],
            restart: false,
        })
        .then(vec![AppEvent::AppEnvUnset {
            names: vec![env("DATABASE_URL")],
            restart: false,
        }]);
}

#[test]
fn an_own_value_under_two_bindings_comes_back_after_both() {
    let past = [
        created(),
        AppEvent::AppEnvSet {
            envs: vec![public("URL", "own")],
            restart: false,
        },
        bind_requested("db"),
        bound_with("db", &[("URL", "v1.db")], false),
        bind_requested("replica"),
        bound_with("replica", &[("URL", "v1.replica")], false),
        unbound_restoring(
            "replica",
            &[],
            vec![restored("URL", private("URL", "v1.db").value, Some("db"))],
            false,
        ),
    ];
    given::<App>(&past)
        .when(record_unbound("db", false))
        .then(vec![unbound_restoring(
            "db",
            &[],
            vec![restored("URL", public("URL", "own").value, None)],
            false,
        )]);
}

#[test]
fn an_unbind_event_from_before_layering_still_reads() {
    let (_, data) = encode(&instance_unbound("db", &["DATABASE_URL"], false)).unwrap();
    assert_eq!(
        data,
        json!({"service": "mysql", "instance": "db", "names": ["DATABASE_URL"],
               "restored": [], "restart": false})
    );
    let old = json!({"service": "mysql", "instance": "db", "names": ["DATABASE_URL"],
                     "restart": true});
    assert_eq!(
        decode::<AppEvent>("AppInstanceUnbound", &old).unwrap(),
        instance_unbound("db", &["DATABASE_URL"], true)
    );
    let event = unbound_restoring(
        "replica",
        &[],
        vec![
            restored("A", private("A", "v1.db").value, Some("db")),
            restored("B", public("B", "own").value, None),
        ],
        true,
    );
    let (event_type, data) = encode(&event).unwrap();
    assert_eq!(
        data["restored"],
        json!([
            {"name": "A", "kind": "private", "sealed": "v1.db",
             "bound": {"service": "mysql", "instance": "db"}},
            {"name": "B", "kind": "public", "value": "own"},
        ])
    );
    assert_eq!(decode::<AppEvent>(&event_type, &data).unwrap(), event);
    // Replayed, an old unbind takes the names away, the own value it had replaced included.
    let replayed = given::<App>(&[
        created(),
        AppEvent::AppEnvSet {
            envs: vec![public("DATABASE_URL", "own")],
            restart: false,
        },
        bind_requested("db"),
        instance_bound("db", &["DATABASE_URL"], false),
        decode::<AppEvent>("AppInstanceUnbound", &old).unwrap(),
    ]);
    assert!(replayed.state().env().is_empty() && replayed.state().own_env().is_empty());
    assert_eq!(replayed.state().restart_generation(), 1);
}

#[test]
fn a_bind_outcome_is_recorded_only_while_pending() {
    let bound = |past: &[AppEvent]| {
        given::<App>(past).when(AppCommand::RecordBound {
            instance: instance_ref("db"),
            envs: bound_vars(&["DATABASE_URL"]),
            restart: false,
        })
    };
    let refusal = DomainError::conflict(
        "bind_not_pending",
        "mysql/db has no bind pending on this app",
    );
    bound(&[created()]).refused(refusal.clone());
    bound(&[
        created(),
        bind_requested("db"),
        instance_bound("db", &["DATABASE_URL"], false),
    ])
    .refused(refusal);
    bound(&[created(), bind_requested("db")]).then(vec![instance_bound(
        "db",
        &["DATABASE_URL"],
        false,
    )]);
    given::<App>(&[created(), bind_requested("db")])
        .when(AppCommand::RecordBound {
            instance: instance_ref("db"),
            envs: vec![private("A", "v1.a"), private("A", "v1.b")],
            restart: false,
        })
        .refused(invalid("envs", "A is given twice"));
}

#[test]
fn a_bind_may_not_take_the_environment_over_1_mib() {
    let big = "x".repeat(60 * 1024);
    // 9 own values of 60 KiB: 540 KiB.
    let own: Vec<EnvVar> = (0..9).map(|i| public(&format!("OWN_{i}"), &big)).collect();
    let sealed = |prefix: &str| -> Vec<EnvVar> {
        (0..9)
            .map(|i| private(&format!("{prefix}_{i}"), &format!("v1.{big}")))
            .collect()
    };
    let past = [
        created(),
        AppEvent::AppEnvSet {
            envs: own,
            restart: false,
        },
        bind_requested("db"),
    ];
    let bind = |envs: Vec<EnvVar>| AppCommand::RecordBound {
        instance: instance_ref("db"),
        envs,
        restart: false,
    };
    given::<App>(&past)
        .when(bind(sealed("BOUND")))
        .refused(invalid(
            "envs",
            "all the app's variables together would be longer than 1 MiB",
        ));
    // Overriding the own values counts the binding's values, not both.
    given::<App>(&past)
        .when(bind(sealed("OWN")))
        .then(vec![AppEvent::AppInstanceBound {
            service: ServiceName::parse("mysql").unwrap(),
            instance: InstanceName::parse("db").unwrap(),
            envs: sealed("OWN"),
            restart: false,
        }]);
}

#[test]
fn an_app_with_two_bindings_counts_them_in_its_refusal() {
    given::<App>(&[created(), bind_requested("db"), bind_requested("cache")])
        .when(AppCommand::Remove { at: t1() })
        .refused(DomainError::conflict(
            "app_has_bindings",
            "the app has 2 service instances bound or being bound: unbind them first",
        ));
}

#[test]
fn an_app_with_bindings_is_not_removed() {
    let past = [
        created(),
        bind_requested("db"),
        instance_bound("db", &["DATABASE_URL"], false),
    ];
    given::<App>(&past)
        .when(AppCommand::Remove { at: t1() })
        .refused(DomainError::conflict(
            "app_has_bindings",
            "the app has 1 service instance bound or being bound: unbind it first",
        ));
    let mut unbound = past.to_vec();
    unbound.push(instance_unbound("db", &["DATABASE_URL"], false));
    given::<App>(&unbound)
        .when(AppCommand::Remove { at: t1() })
        .then(vec![removed()]);
}

#[test]
fn a_recreated_app_starts_without_bindings() {
    let past = [
        created(),
        bind_requested("db"),
        AppEvent::AppInstanceBindFailed {
            service: ServiceName::parse("mysql").unwrap(),
            instance: InstanceName::parse("db").unwrap(),
        },
        removed(),
        created(),
    ];
    let state = given::<App>(&past);
    assert!(state.state().bindings().is_empty() && state.state().bound().is_empty());
}

// ---- restarts ----

#[test]
fn a_restart_request_carries_the_next_generation() {
    given::<App>(&[created()])
        .when(AppCommand::RequestRestart { process: None })
        .then(vec![AppEvent::AppRestartRequested {
            process: None,
            generation: 1,
        }]);
    let past = [
        created(),
        AppEvent::AppRestartRequested {
            process: None,
            generation: 1,
        },
        AppEvent::AppEnvSet {
            envs: vec![public("A", "1")],
            restart: true,
        },
        AppEvent::AppEnvSet {
            envs: vec![public("A", "2")],
            restart: false,
        },
        AppEvent::AppEnvUnset {
            names: vec![env("A")],
            restart: true,
        },
    ];
    assert_eq!(given::<App>(&past).state().restart_generation(), 3);
    given::<App>(&past)
        .when(AppCommand::RequestRestart {
            process: Some("web".into()),
        })
        .then(vec![AppEvent::AppRestartRequested {
            process: Some("web".into()),
            generation: 4,
        }]);
    given::<App>(&past)
        .when(AppCommand::RequestRestart {
            process: Some(" ".into()),
        })
        .refused(invalid("process", "may not be blank"));
}

// ---- swap ----

fn with_cname(name: &str, on: &str, host: &str) -> App {
    given::<App>(&[
        created_on(name, on),
        AppEvent::AppCnameAdded { cname: cname(host) },
    ])
    .state()
    .clone()
}

fn swap<'a>(app1: &'a App, app2: &'a App, cname_only: bool) -> Swap<'a> {
    Swap {
        app1,
        app2,
        cname_only,
        restarting1: false,
        restarting2: false,
    }
}

#[test]
fn a_swap_exchanges_cnames_and_units_in_one_event_both_streams_get() {
    let shop = with_cname("shop", "python", "shop.com");
    let blog = with_cname("blog", "python", "blog.com");
    let event = swap(&shop, &blog, false).decide().unwrap();
    assert_eq!(
        event,
        AppEvent::AppsSwapped {
            app1: app("shop"),
            app2: app("blog"),
            cname_only: false,
            cnames1: vec![cname("blog.com")],
            cnames2: vec![cname("shop.com")],
            units_of1: app("blog"),
            units_of2: app("shop"),
        }
    );
    let (mut shop_after, mut blog_after) = (shop.clone(), blog.clone());
    shop_after.apply(&event);
    blog_after.apply(&event);
    assert_eq!(shop_after.cnames(), &[cname("blog.com")].into());
    assert_eq!(blog_after.cnames(), &[cname("shop.com")].into());
    assert_eq!(shop_after.units_of(), Some(&app("blog")));
    assert_eq!(blog_after.units_of(), Some(&app("shop")));
    assert_eq!(shop_after.restart_generation(), 1);
    assert_eq!(blog_after.restart_generation(), 1);

    // Swapped back, each serves its own units again.
    let back = swap(&blog_after, &shop_after, false).decide().unwrap();
    shop_after.apply(&back);
    blog_after.apply(&back);
    assert_eq!(shop_after.units_of(), Some(&app("shop")));
    assert_eq!(blog_after.units_of(), Some(&app("blog")));
    assert_eq!(shop_after.cnames(), &[cname("shop.com")].into());
    assert_eq!(shop_after.restart_generation(), 2);
}

#[test]
fn a_swap_transfers_each_cname_to_the_other_app() {
    let shop = given::<App>(&[
        created_on("shop", "python"),
        AppEvent::AppCnameAdded {
            cname: cname("shop.com"),
        },
        AppEvent::AppCnameAdded {
            cname: cname("www.shop.com"),
        },
    ])
    .state()
    .clone();
    let blog = given::<App>(&[created_on("blog", "python")])
        .state()
        .clone();
    let transfer = |c: &str, from: &str, to: &str| CnameClaimCommand::Transfer {
        cname: cname(c),
        from: app(from),
        to: app(to),
    };
    assert_eq!(
        swap(&shop, &blog, true).cname_transfers(),
        vec![
            transfer("shop.com", "shop", "blog"),
            transfer("www.shop.com", "shop", "blog"),
        ]
    );
    let blog = with_cname("blog", "python", "blog.com");
    assert_eq!(
        swap(&blog, &shop, false).cname_transfers(),
        vec![
            transfer("blog.com", "blog", "shop"),
            transfer("shop.com", "shop", "blog"),
            transfer("www.shop.com", "shop", "blog"),
        ]
    );
}

#[test]
fn a_cname_only_swap_leaves_units_and_restarts_alone() {
    let shop = with_cname("shop", "python", "shop.com");
    let blog = with_cname("blog", "python", "blog.com");
    let event = swap(&shop, &blog, true).decide().unwrap();
    assert_eq!(
        event,
        AppEvent::AppsSwapped {
            app1: app("shop"),
            app2: app("blog"),
            cname_only: true,
            cnames1: vec![cname("blog.com")],
            cnames2: vec![cname("shop.com")],
            units_of1: app("shop"),
            units_of2: app("blog"),
        }
    );
    let mut shop_after = shop.clone();
    shop_after.apply(&event);
    assert_eq!(shop_after.cnames(), &[cname("blog.com")].into());
    assert_eq!(shop_after.units_of(), Some(&app("shop")));
    assert_eq!(shop_after.restart_generation(), 0);
}

#[test]
fn refuses_a_swap_across_platforms_during_a_restart_or_with_itself() {
    let shop = with_cname("shop", "python", "shop.com");
    let blog = with_cname("blog", "go", "blog.com");
    assert_eq!(
        swap(&shop, &blog, false).decide(),
        Err(DomainError::conflict(
            "platform_mismatch",
            "shop and blog run on different platforms"
        ))
    );
    let blog = with_cname("blog", "python", "blog.com");
    for (restarting1, restarting2, busy) in [(true, false, "shop"), (false, true, "blog")] {
        let decision = Swap {
            restarting1,
            restarting2,
            ..swap(&shop, &blog, true)
        }
        .decide();
        assert_eq!(
            decision,
            Err(DomainError::conflict(
                "restart_running",
                format!("{busy} has a restart running: swap once it is done")
            ))
        );
    }
    assert_eq!(
        swap(&shop, &shop, false).decide(),
        Err(invalid("app2", "an app cannot be swapped with itself"))
    );
}

#[test]
fn refuses_a_swap_with_an_unknown_or_removed_app() {
    let shop = with_cname("shop", "python", "shop.com");
    let nothing = App::default();
    let gone = given::<App>(&[created_on("blog", "python"), removed()])
        .state()
        .clone();
    assert_eq!(swap(&shop, &nothing, false).decide(), Err(no_such_app()));
    assert_eq!(swap(&gone, &shop, false).decide(), Err(no_such_app()));
}

#[test]
fn a_swap_event_leaves_a_third_app_unchanged() {
    let shop = with_cname("shop", "python", "shop.com");
    let blog = with_cname("blog", "python", "blog.com");
    let event = swap(&shop, &blog, false).decide().unwrap();
    let mut other = with_cname("wiki", "python", "wiki.com");
    let before = other.clone();
    other.apply(&event);
    assert_eq!(other, before);
}

// ---- platforms ----

fn added(n: &str) -> PlatformEvent {
    PlatformEvent::PlatformAdded { name: platform(n) }
}

#[test]
fn adds_a_platform_once() {
    given::<Platform>(&[])
        .when(PlatformCommand::Add {
            name: platform("python"),
        })
        .then(vec![added("python")]);
    given::<Platform>(&[added("python")])
        .when(PlatformCommand::Add {
            name: platform("python"),
        })
        .refused(DomainError::conflict(
            "platform_exists",
            "platform python already exists",
        ));
    let state = given::<Platform>(&[added("python")]);
    assert_eq!(state.state().status(), PlatformStatus::Enabled);
    assert_eq!(state.state().name(), Some(&platform("python")));
}

#[test]
fn disables_and_enables_a_platform() {
    let update = |disabled| PlatformCommand::Update { disabled };
    let disabled = PlatformEvent::PlatformUpdated { disabled: true };
    given::<Platform>(&[added("python")])
        .when(update(true))
        .then(vec![disabled.clone()]);
    given::<Platform>(&[added("python")])
        .when(update(false))
        .then_nothing();
    given::<Platform>(&[added("python"), disabled.clone()])
        .when(update(true))
        .then_nothing();
    given::<Platform>(&[added("python"), disabled.clone()])
        .when(update(false))
        .then(vec![PlatformEvent::PlatformUpdated { disabled: false }]);
    assert_eq!(
        given::<Platform>(&[added("python"), disabled])
            .state()
            .status(),
        PlatformStatus::Disabled
    );
    given::<Platform>(&[])
        .when(update(true))
        .refused(DomainError::NotFound("no such platform".into()));
}

#[test]
fn removes_a_known_platform_which_may_then_be_added_again() {
    let removed = PlatformEvent::PlatformRemoved {};
    given::<Platform>(&[added("python")])
        .when(PlatformCommand::Remove)
        .then(vec![removed.clone()]);
    given::<Platform>(&[])
        .when(PlatformCommand::Remove)
        .refused(DomainError::NotFound("no such platform".into()));
    let past = [
        added("python"),
        PlatformEvent::PlatformUpdated { disabled: true },
        removed,
    ];
    given::<Platform>(&past)
        .when(PlatformCommand::Remove)
        .refused(DomainError::NotFound("no such platform".into()));
    given::<Platform>(&past)
        .when(PlatformCommand::Update { disabled: false })
        .refused(DomainError::NotFound("no such platform".into()));
    assert_eq!(
        given::<Platform>(&past).state().status(),
        PlatformStatus::Unknown
    );
    assert_eq!(
        given::<Platform>(&[]).state().status(),
        PlatformStatus::Unknown
    );
    given::<Platform>(&past)
        .when(PlatformCommand::Add {
            name: platform("python"),
        })
        .then(vec![added("python")]);
    let again: Vec<PlatformEvent> = past.into_iter().chain([added("python")]).collect();
    assert_eq!(
        given::<Platform>(&again).state().status(),
        PlatformStatus::Enabled
    );
}

// ---- quotas ----

fn taken(a: &str) -> QuotaEvent {
    QuotaEvent::QuotaAppTaken { app: app(a) }
}
fn take(a: &str, default_limit: i64) -> QuotaCommand {
    QuotaCommand::Take {
        app: app(a),
        default_limit,
    }
}

#[test]
fn takes_an_app_under_the_default_limit_and_refuses_one_over_it() {
    given::<Quota>(&[])
        .when(take("shop", 2))
        .then(vec![taken("shop")]);
    given::<Quota>(&[taken("shop")])
        .when(take("blog", 2))
        .then(vec![taken("blog")]);
    given::<Quota>(&[taken("shop"), taken("blog")])
        .when(take("wiki", 2))
        .refused(DomainError::forbidden(
            "quota_exceeded",
            "quota exceeded: 2 of 2 apps in use",
        ));
    given::<Quota>(&[])
        .when(take("shop", 0))
        .refused(DomainError::forbidden(
            "quota_exceeded",
            "quota exceeded: 0 of 0 apps in use",
        ));
    given::<Quota>(&[taken("shop"), taken("blog")])
        .when(take("wiki", UNLIMITED))
        .then(vec![taken("wiki")]);
}

#[test]
fn an_app_counted_already_changes_nothing() {
    given::<Quota>(&[taken("shop")])
        .when(take("shop", 1))
        .then_nothing();
    given::<Quota>(&[taken("shop")])
        .when(take("shop", 0))
        .then_nothing();
}

#[test]
fn a_set_limit_overrides_the_default() {
    let limit = |l| QuotaEvent::QuotaLimitSet { limit: l };
    given::<Quota>(&[limit(1), taken("shop")])
        .when(take("blog", 10))
        .refused(DomainError::forbidden(
            "quota_exceeded",
            "quota exceeded: 1 of 1 apps in use",
        ));
    given::<Quota>(&[limit(UNLIMITED), taken("shop")])
        .when(take("blog", 1))
        .then(vec![taken("blog")]);
    given::<Quota>(&[limit(5), taken("shop")])
        .when(take("blog", 0))
        .then(vec![taken("blog")]);
    let state = given::<Quota>(&[limit(5), taken("shop")]);
    assert_eq!(state.state().limit(), Some(5));
    assert_eq!(state.state().effective_limit(1), 5);
    assert_eq!(state.state().in_use(), 1);
    assert_eq!(given::<Quota>(&[]).state().effective_limit(3), 3);
}

#[test]
fn sets_a_limit_of_minus_one_or_more() {
    let set = |l| QuotaCommand::SetLimit { limit: l };
    given::<Quota>(&[])
        .when(set(3))
        .then(vec![QuotaEvent::QuotaLimitSet { limit: 3 }]);
    given::<Quota>(&[])
        .when(set(-1))
        .then(vec![QuotaEvent::QuotaLimitSet { limit: -1 }]);
    given::<Quota>(&[QuotaEvent::QuotaLimitSet { limit: 3 }])
        .when(set(3))
        .then_nothing();
    given::<Quota>(&[])
        .when(set(-2))
        .refused(invalid("limit", "must be -1 (unlimited) or more"));
    // Under what is in use: accepted, it only keeps more from being created.
    given::<Quota>(&[taken("shop"), taken("blog")])
        .when(set(1))
        .then(vec![QuotaEvent::QuotaLimitSet { limit: 1 }]);
}

#[test]
fn releases_a_counted_app_and_frees_its_place() {
    let released = QuotaEvent::QuotaAppReleased { app: app("shop") };
    given::<Quota>(&[taken("shop")])
        .when(QuotaCommand::Release { app: app("shop") })
        .then(vec![released.clone()]);
    given::<Quota>(&[])
        .when(QuotaCommand::Release { app: app("shop") })
        .then_nothing();
    given::<Quota>(&[taken("shop"), released])
        .when(take("blog", 1))
        .then(vec![taken("blog")]);
}
