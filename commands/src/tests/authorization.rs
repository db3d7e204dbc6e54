//! Who may stop a job, change an orchestration or revoke a token, decided on the aggregate
//! itself, which knows who created it: no read model is consulted (these commands have none).

use super::execute::{submission, submitted};
use super::*;
use crate::orchestrations::{RunOrchestration, UpdateOrchestration};
use crate::CommandError;
use bosun_domain::identity::{
    Scope, Scopes, Token, TokenCommand, TokenDigest, TokenEvent, TokenKind, Username,
};
use bosun_domain::jobs::{Catalog, Job, JobCommand, JobEvent};
use bosun_domain::orchestrations::{
    Definition, Orchestration, OrchestrationCommand, OrchestrationEvent, TaskRules,
};
use bosun_domain::{Aggregate, DomainError};

fn forbidden(result: Result<impl std::fmt::Debug, CommandError>) -> String {
    match result {
        Err(CommandError::Forbidden(message)) => message,
        other => panic!("expected a 403, got {other:?}"),
    }
}

fn not_found(result: Result<impl std::fmt::Debug, CommandError>) -> String {
    match result {
        Err(CommandError::Domain(DomainError::NotFound(message))) => message,
        other => panic!("expected a 404, got {other:?}"),
    }
}

#[tokio::test]
async fn only_its_submitter_or_an_admin_may_stop_a_job() {
    let (commands, log) = commands();
    let job_id = submitted(&commands, "ann").await;
    let head = head(&log).await;
    let cancel = || JobCommand::Cancel { reason: None };
    let message = forbidden(
        commands
            .stop(&user("bob"), &origin(), job_id, cancel())
            .await,
    );
    assert_eq!(message, "only the job's submitter or an admin may stop it");
    let kill = JobCommand::Kill { reason: None };
    forbidden(commands.stop(&user("bob"), &origin(), job_id, kill).await);
    // The submitter with a token that may not write.
    let read_only = user_with("ann", false, &[Scope::Read]);
    let message = forbidden(commands.stop(&read_only, &origin(), job_id, cancel()).await);
    assert_eq!(message, "this token lacks the write scope");
    assert_eq!(super::head(&log).await, head, "a refusal writes nothing");
    // No job: a 404, whoever asks.
    let unknown = Uuid::new_v4();
    assert_eq!(
        not_found(
            commands
                .stop(&user("bob"), &origin(), unknown, cancel())
                .await
        ),
        format!("no job {unknown}")
    );
    // The submitter may; so may an admin.
    let (job, _) = commands
        .stop(&user("ann"), &origin(), job_id, cancel())
        .await
        .unwrap();
    assert_eq!(job.created_by.as_deref(), Some("ann"));
    let other = submitted(&commands, "ann").await;
    commands
        .stop(&admin("root"), &origin(), other, cancel())
        .await
        .unwrap();
    assert_eq!(
        stream::<JobEvent>(&log, &format!("job-{job_id}")).await,
        vec![
            JobEvent::JobSubmitted(Box::new(submission(job_id, "ann"))),
            JobEvent::JobCancelled {
                job_id,
                reason: None
            },
        ]
    );
}

/// App `shop` registered (created now) by ann for team `ops`.
async fn shop_registered(log: &Racing) {
    use bosun_domain::apps::{AppEvent, AppName, PlatformName};
    use bosun_domain::identity::TeamName;
    append(
        log,
        "app-shop",
        &[AppEvent::AppCreated {
            name: AppName::parse("shop").unwrap(),
            platform: PlatformName::parse("python").unwrap(),
            team_owner: TeamName::parse("ops").unwrap(),
            owner: Username::parse("ann").unwrap(),
            description: String::new(),
            at: chrono::Utc::now(),
        }],
    )
    .await;
}

fn app_token(app: &str) -> Actor {
    Actor::App(crate::AppActor::new(app, Uuid::nil(), "ann"))
}

#[tokio::test]
async fn an_apps_token_may_stop_the_jobs_of_its_app_and_no_other() {
    let (commands, log) = commands();
    // A job of shop submitted before the app was registered is not the app's.
    let earlier = submitted(&commands, "bob").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    shop_registered(&log).await;
    let token = app_token("shop");
    let cancel = || JobCommand::Cancel { reason: None };
    // Ann's job of shop, and one the token submitted: the token cancels and kills them.
    let anns = submitted(&commands, "ann").await;
    let (job, _) = commands
        .stop(&token, &origin(), anns, cancel())
        .await
        .unwrap();
    assert!(job.status.is_some_and(|s| s.is_finished()), "{job:?}");
    let its_own = submitted(&commands, "app:shop").await;
    commands
        .execute::<Job>(&its_own.to_string(), &SYSTEM, &origin(), |j| {
            j.handle(JobCommand::Start {
                worker: "w1".into(),
                pid: Some(7),
                command: vec!["true".into()],
            })
        })
        .await
        .unwrap();
    let (job, _) = commands
        .stop(
            &token,
            &origin(),
            its_own,
            JobCommand::Kill { reason: None },
        )
        .await
        .unwrap();
    assert!(job.kill_requested);
    let head = head(&log).await;
    let message = forbidden(commands.stop(&token, &origin(), earlier, cancel()).await);
    assert!(message.contains("jobs of its app shop"), "{message}");
    // Another app's token stops none of shop's jobs.
    let other = submitted(&commands, "ann").await;
    let head = super::head(&log).await.max(head);
    forbidden(
        commands
            .stop(&app_token("blog"), &origin(), other, cancel())
            .await,
    );
    assert_eq!(super::head(&log).await, head, "a refusal writes nothing");
}

fn definition(id: &str, created_by: &str) -> Definition {
    Definition {
        id: id.into(),
        name: "nightly".into(),
        crontab: None,
        active: true,
        tasks: vec![],
        notifications: vec![],
        token_id: Uuid::nil(),
        created_by: created_by.into(),
        at: chrono::Utc::now(),
        next_scheduled_at: None,
    }
}

#[tokio::test]
async fn only_its_creator_or_an_admin_may_change_or_run_an_orchestration() {
    let (commands, log) = commands();
    commands
        .execute::<Orchestration>("o1", &SYSTEM, &origin(), |o| {
            o.handle(OrchestrationCommand::Create(Box::new(definition(
                "o1", "ann",
            ))))
        })
        .await
        .unwrap();
    let catalog = Catalog::default();
    let rules = TaskRules {
        catalog: &catalog,
        allow_insecure_hosts: &[],
    };
    let head = head(&log).await;
    let bob = user("bob");
    let rename = || UpdateOrchestration {
        name: Some("mine now".into()),
        ..UpdateOrchestration::default()
    };
    let message = forbidden(
        commands
            .update_orchestration(&bob, &origin(), &rules, "o1", rename())
            .await,
    );
    assert_eq!(
        message,
        "only the orchestration's creator or an admin may change or run it"
    );
    // Refused before its input is read: a stranger's bad schedule is a 403 too, not a 400.
    let bad = UpdateOrchestration {
        crontab: Some(Some("not a schedule".into())),
        ..UpdateOrchestration::default()
    };
    forbidden(
        commands
            .update_orchestration(&bob, &origin(), &rules, "o1", bad)
            .await,
    );
    forbidden(
        commands
            .refresh_orchestration_token(&bob, &origin(), "o1")
            .await,
    );
    forbidden(commands.delete_orchestration(&bob, &origin(), "o1").await);
    forbidden(
        commands
            .run_orchestration(&bob, &origin(), &rules, "o1", RunOrchestration::default())
            .await,
    );
    assert_eq!(super::head(&log).await, head, "a refusal writes nothing");
    assert_eq!(
        not_found(commands.delete_orchestration(&bob, &origin(), "nope").await),
        "no orchestration nope"
    );
    // Its creator may (and an admin, on the deleted one, meets the domain's refusal).
    commands
        .delete_orchestration(&user("ann"), &origin(), "o1")
        .await
        .unwrap();
    let refused = commands
        .delete_orchestration(&admin("root"), &origin(), "o1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            CommandError::Domain(DomainError::Conflict {
                code: "orchestration_deleted",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        stream::<OrchestrationEvent>(&log, "orchestration-o1").await[1..],
        [OrchestrationEvent::OrchestrationDeleted {}]
    );
}

#[tokio::test]
async fn only_its_owner_or_an_admin_may_revoke_a_token() {
    let (commands, log) = commands();
    let token_id = Uuid::new_v4();
    let id = token_id.to_string();
    commands
        .execute::<Token>(&id, &SYSTEM, &origin(), |t| {
            t.handle(TokenCommand::Issue {
                token_id,
                username: Username::parse("ann").unwrap(),
                kind: TokenKind::Api,
                digest: TokenDigest("ab".into()),
                description: "ci".into(),
                scopes: Scopes::all(),
                expires_in: None,
                now: chrono::Utc::now(),
                app: None,
            })
        })
        .await
        .unwrap();
    let head = head(&log).await;
    let message = forbidden(
        commands
            .revoke_token(&user("bob"), &origin(), token_id, "mine")
            .await,
    );
    assert_eq!(message, "only the token's owner or an admin may revoke it");
    assert_eq!(super::head(&log).await, head);
    let unknown = Uuid::new_v4();
    assert_eq!(
        not_found(
            commands
                .revoke_token(&user("bob"), &origin(), unknown, "x")
                .await
        ),
        format!("no token {unknown}")
    );
    commands
        .revoke_token(&user("ann"), &origin(), token_id, "done")
        .await
        .unwrap();
    assert_eq!(
        stream::<TokenEvent>(&log, &format!("token-{id}")).await[1..],
        [TokenEvent::TokenRevoked {
            token_id,
            username: Username::parse("ann").unwrap(),
            reason: "done".into(),
        }]
    );
}
