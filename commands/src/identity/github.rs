//! Signing in with GitHub: the user `github:<login>` made at their first sign-in, put in the
//! configured team, and a session token of theirs with exactly the scopes their GitHub roles
//! give.
//!
//! Whether someone may sign in, and with which scopes, is the API's (`api::github`: membership
//! of the configured organization, the `authorization` lists); this only makes what a sign-in
//! needs in the log. The user has a random password no one knows and is no admin, with no
//! email (GitHub's is not copied: it would hold the address against its owner's own Bosun user,
//! and a password reset would need it). A GitHub user signs in through GitHub only: no login
//! with a password, no password set, changed or reset, no API or app token that would outlive
//! the sign-in (403 `github_user`, the user aggregate's and the token commands' rules). Two
//! first sign-ins of one login at once both succeed: the one that loses the race for the
//! name goes on with the user the other made. The events record the GitHub user as their actor,
//! as a login does.
//!
//! Does not own: GitHub itself (its API, the OAuth flow, the cache of its answers: the API's),
//! what a token may do (its scopes, as for any token).

use super::secrets::random_password;
use super::{IssuedToken, NewUser};
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{Scopes, Team, TeamCommand, TeamName, TokenKind, User, Username};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use std::time::Duration;
use uuid::Uuid;

/// What a GitHub sign-in's token is described as.
pub const GITHUB_TOKEN_DESCRIPTION: &str = "github";

/// How long a sign-in that lost the race for the name waits for the winner's user to appear.
const RACE_WAIT: Duration = Duration::from_secs(5);

impl<S: EventStore> Commands<S> {
    /// GitHub user `login` signs in: user `github:<login>` is made if it is not there (not
    /// admin, a random password, no email), put in `team` if one is
    /// given and they are not in it (the team made, with them as its creator, if it is not
    /// there), and given a session token with exactly `scopes` that works for `expires_in`
    /// seconds. Answers once the read models hold all of it, so the token works on any node.
    /// 400 for a login that is not one (`[A-Za-z0-9_-]{1,39}`, no dash first or last).
    #[tracing::instrument(skip_all, fields(login = login))]
    pub async fn github_sign_in(
        &self,
        origin: &Origin,
        login: &str,
        scopes: Scopes,
        team: Option<TeamName>,
        expires_in: i64,
    ) -> Result<(IssuedToken, Written), CommandError> {
        let username = Username::github(login)?;
        let token_id = Uuid::new_v4();
        let actor = Actor::User {
            username: username.as_str().to_string(),
            admin: false,
            teams: vec![],
            token_id,
            scopes: scopes.clone(),
        };
        let mut written = self.make_github_user(&actor, origin, &username).await?;
        if let Some(team) = &team {
            let (_, joined) = self
                .execute::<Team>(team.as_str(), &actor, origin, |state| {
                    if state.active {
                        state.handle(TeamCommand::AddMember {
                            username: username.clone(),
                            user_exists: true,
                        })
                    } else {
                        state.handle(TeamCommand::Create {
                            name: team.clone(),
                            creator: username.clone(),
                        })
                    }
                })
                .await?;
            written = written.and(joined);
        }
        let (token, issued) = self
            .issue(
                &actor,
                origin,
                token_id,
                username,
                TokenKind::Session,
                GITHUB_TOKEN_DESCRIPTION.into(),
                scopes,
                Some(expires_in),
                None,
            )
            .await?;
        let written = written.and(issued);
        self.settle(written).await;
        Ok((token, written))
    }

    /// The GitHub user `username`, registered unless they are there. Someone else registering
    /// them at the same time is no failure.
    async fn make_github_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &Username,
    ) -> Result<Written, CommandError> {
        let (user, _) = self.load::<User>(username.as_str()).await?;
        if user.active {
            return Ok(Written::default());
        }
        let user = NewUser {
            username: username.clone(),
            password: random_password(),
            email: None,
            admin: false,
        };
        match self.register(actor, origin, &user).await {
            Ok(written) => Ok(written),
            Err(CommandError::Domain(DomainError::Conflict {
                code: "user_exists",
                ..
            })) => {
                // Another sign-in of the same login claimed the name first: its user comes.
                self.wait_for_user(username).await?;
                Ok(Written::default())
            }
            Err(e) => Err(e),
        }
    }

    /// Waits (at most [`RACE_WAIT`]) until `username` is an active user in the log; `Contended`
    /// if they are not by then (the other sign-in failed: signing in again makes them).
    async fn wait_for_user(&self, username: &Username) -> Result<(), CommandError> {
        let deadline = tokio::time::Instant::now() + RACE_WAIT;
        loop {
            let (user, _) = self.load::<User>(username.as_str()).await?;
            if user.active {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CommandError::Contended(format!("user-{username}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::origin;
    use bosun_domain::identity::{Scope, UserEvent};
    use bosun_eventstore::{PgEventStore, StreamId};
    use bosun_projections::read_models::identity as model;

    /// Commands over a fresh PostgreSQL log with every read model projected; the projections
    /// run as long as the returned handle.
    async fn on_postgres() -> (Commands<PgEventStore>, bosun_projections::Running) {
        let config = bosun_eventstore::testing::fresh_database().await;
        let store = PgEventStore::open(&config).await.unwrap();
        let projections = bosun_projections::Projections::new(bosun_projections::all());
        projections.prepare(&config).await.unwrap();
        let running = projections.start(store.clone(), &config).await.unwrap();
        (Commands::new(store, running.freshness()), running)
    }

    fn scopes(names: &[&str]) -> Scopes {
        Scopes::parse(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    async fn holder(commands: &Commands<PgEventStore>, token: &str) -> model::TokenHolder {
        let client = commands.read_models().await.unwrap();
        model::token_holder(&**client, &super::super::secrets::digest(token).0)
            .await
            .unwrap()
            .expect("the token works")
    }

    async fn user_events(commands: &Commands<PgEventStore>, username: &str) -> Vec<UserEvent> {
        let stream = StreamId::parse(format!("user-{username}")).unwrap();
        commands
            .store
            .read_stream(&stream, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| bosun_domain::decode(&e.event_type, &e.data).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_first_sign_in_makes_the_user_and_the_second_reuses_it() {
        let (commands, _running) = on_postgres().await;
        let (token, _) = commands
            .github_sign_in(&origin(), "Alice", scopes(&["read", "write"]), None, 3600)
            .await
            .unwrap();
        assert_eq!(token.user, "github:alice");
        assert_eq!(token.kind, TokenKind::Session);
        assert_eq!(token.description, GITHUB_TOKEN_DESCRIPTION);
        let expires = token.expires_at.expect("it expires") - token.created_at;
        assert_eq!(expires.num_seconds(), 3600);
        let user = commands.user_view("github:alice").await.unwrap();
        assert_eq!(user.email, None, "GitHub's email is not copied");
        assert!(!user.admin);
        let held = holder(&commands, &token.token).await;
        assert_eq!(held.username, "github:alice");
        assert_eq!(held.scopes, ["read", "write"]);

        let (again, _) = commands
            .github_sign_in(&origin(), "alice", scopes(&["read"]), None, 60)
            .await
            .unwrap();
        assert_ne!(again.token, token.token);
        assert_eq!(again.user, "github:alice");
        let events = user_events(&commands, "github:alice").await;
        assert_eq!(events.len(), 1, "registered once: {events:?}");
        assert!(matches!(
            &events[0],
            UserEvent::UserRegistered {
                admin: false,
                registered_from: None,
                ..
            }
        ));
        // Both tokens work.
        holder(&commands, &token.token).await;
        assert_eq!(holder(&commands, &again.token).await.scopes, ["read"]);
        // No one knows the password: a login with any is refused.
        assert!(matches!(
            commands
                .login(&origin(), "github:alice", "password", None)
                .await,
            Err(CommandError::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn the_token_has_exactly_the_scopes_given() {
        let (commands, _running) = on_postgres().await;
        for (login, given) in [
            ("reader", vec!["read"]),
            ("writer", vec!["write"]),
            ("both", vec!["read", "write"]),
        ] {
            let (token, _) = commands
                .github_sign_in(&origin(), login, scopes(&given), None, 600)
                .await
                .unwrap();
            assert_eq!(token.scopes, scopes(&given));
            let held = holder(&commands, &token.token).await;
            assert_eq!(held.scopes, given, "{login}");
            assert!(!held.admin);
        }
        let (token, _) = commands
            .github_sign_in(&origin(), "writer", scopes(&["write"]), None, 600)
            .await
            .unwrap();
        assert!(!token.scopes.contains(Scope::Read), "no inheritance");
    }

    #[tokio::test]
    async fn the_team_is_made_if_missing_and_joined_once() {
        let (commands, _running) = on_postgres().await;
        let team = TeamName::parse("github").unwrap();
        let (alice, _) = commands
            .github_sign_in(
                &origin(),
                "alice",
                scopes(&["read"]),
                Some(team.clone()),
                600,
            )
            .await
            .unwrap();
        let view = commands.team_view("github").await.unwrap();
        assert_eq!(view.members, ["github:alice"]);
        assert_eq!(holder(&commands, &alice.token).await.teams, ["github"]);
        let (bob, _) = commands
            .github_sign_in(
                &origin(),
                "bob",
                scopes(&["write"]),
                Some(team.clone()),
                600,
            )
            .await
            .unwrap();
        commands
            .github_sign_in(
                &origin(),
                "bob",
                scopes(&["write"]),
                Some(team.clone()),
                600,
            )
            .await
            .unwrap();
        let view = commands.team_view("github").await.unwrap();
        assert_eq!(view.members, ["github:alice", "github:bob"]);
        assert_eq!(holder(&commands, &bob.token).await.teams, ["github"]);
        let team_stream = StreamId::parse("team-github").unwrap();
        let events = commands
            .store
            .read_stream(&team_stream, 0, 100)
            .await
            .unwrap();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["TeamCreated", "TeamMemberAdded"], "joined once");
        // Without a team, none is joined.
        let (carol, _) = commands
            .github_sign_in(&origin(), "carol", scopes(&["read"]), None, 600)
            .await
            .unwrap();
        assert!(holder(&commands, &carol.token).await.teams.is_empty());
    }

    #[tokio::test]
    async fn a_github_user_never_logs_in_with_a_password_even_one_their_stream_holds() {
        let (commands, _running) = on_postgres().await;
        commands
            .github_sign_in(&origin(), "ann_acme", scopes(&["read"]), None, 600)
            .await
            .unwrap();
        // A password hash in the stream (written before GitHub users had none, say), of a
        // password someone knows; and the same for a user of another name, to compare.
        let known = bosun_domain::identity::Password::parse("password", "known-pass").unwrap();
        let hash = super::super::secrets::hash_password(&known).await.unwrap();
        commands
            .register_user(
                &crate::tests::SYSTEM,
                &origin(),
                NewUser {
                    username: Username::parse("ann").unwrap(),
                    password: known,
                    email: None,
                    admin: false,
                },
            )
            .await
            .unwrap();
        let changed = UserEvent::PasswordChanged {
            username: Username::parse("github:ann_acme").unwrap(),
            password_hash: hash,
        };
        let (event_type, data) = bosun_domain::encode(&changed).unwrap();
        commands
            .store
            .append(
                &StreamId::parse("user-github:ann_acme").unwrap(),
                bosun_eventstore::ExpectedVersion::Any,
                vec![bosun_eventstore::NewEvent::new(event_type, data)],
            )
            .await
            .unwrap();
        commands.catch_up().await.unwrap();
        let client = commands.read_models().await.unwrap();
        assert!(
            model::password_hash(&**client, "github:ann_acme")
                .await
                .unwrap()
                .is_some(),
            "the read model holds the hash"
        );
        drop(client);
        let refused = commands
            .login(&origin(), "github:ann_acme", "known-pass", None)
            .await;
        assert!(
            matches!(refused, Err(CommandError::Unauthenticated)),
            "{refused:?}"
        );
        commands
            .login(&origin(), "ann", "known-pass", None)
            .await
            .expect("the same password logs another user in");
    }

    #[tokio::test]
    async fn first_sign_ins_of_one_login_at_once_all_succeed() {
        let (commands, _running) = on_postgres().await;
        let team = TeamName::parse("github").unwrap();
        let mut sign_ins = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (commands, team) = (commands.clone(), team.clone());
            sign_ins.spawn(async move {
                commands
                    .github_sign_in(&origin(), "racer", scopes(&["read"]), Some(team), 600)
                    .await
            });
        }
        let results = sign_ins.join_all().await;
        for result in &results {
            let (token, _) = result.as_ref().expect("every sign-in succeeds");
            assert_eq!(holder(&commands, &token.token).await.teams, ["github"]);
        }
        let events = user_events(&commands, "github:racer").await;
        assert_eq!(events.len(), 1, "registered once: {events:?}");
    }

    #[tokio::test]
    async fn no_admin_registers_a_github_users_name() {
        let (commands, _running) = on_postgres().await;
        let head = commands.store.head().await.unwrap();
        let refused = commands
            .register_user(
                &crate::tests::SYSTEM,
                &origin(),
                NewUser {
                    username: Username::github("mallory").unwrap(),
                    password: random_password(),
                    email: None,
                    admin: false,
                },
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(CommandError::Domain(DomainError::Invalid {
                    field: "username",
                    ..
                }))
            ),
            "{refused:?}"
        );
        assert_eq!(commands.store.head().await.unwrap(), head);
    }

    #[tokio::test]
    async fn a_login_that_is_not_one_is_refused_writing_nothing() {
        let (commands, _running) = on_postgres().await;
        let head = commands.store.head().await.unwrap();
        for bad in ["", "-x", "a.b", "a:b", "x-"] {
            let refused = commands
                .github_sign_in(&origin(), bad, scopes(&["read"]), None, 600)
                .await;
            assert!(
                matches!(
                    refused,
                    Err(CommandError::Domain(DomainError::Invalid {
                        field: "username",
                        ..
                    }))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(commands.store.head().await.unwrap(), head);
    }
}
