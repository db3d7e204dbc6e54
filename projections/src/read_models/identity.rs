//! `users`, `teams`, `team_members` and `tokens`: who exists, who belongs where, and which token
//! digests are good. One projection, because a removed user's tokens and memberships go with it.
//!
//! Authentication reads `tokens` joined with `users` on every request: a revocation or removal is
//! in effect on every node once the write that caused it has answered (writes wait for the
//! projections to reach their position).

use crate::projection::{Projection, Tables, Writes};
use bosun_domain::identity::{TeamEvent, TokenEvent, UserEvent, Username};
use bosun_domain::DomainEvent;
use bosun_eventstore::{Filter, RecordedEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub struct Identity;

impl Projection for Identity {
    fn name(&self) -> &'static str {
        "identity"
    }

    /// 3: the index on `lower(username)`, for the check that names differ by more than case.
    /// 4: app tokens (`tokens.app`), and `token_apps`, the apps whose tokens may work.
    fn version(&self) -> i32 {
        4
    }

    fn tables(&self) -> &'static [&'static str] {
        &["users", "teams", "team_members", "tokens", "token_apps"]
    }

    /// `app`: an app's creation and removal decide whether its tokens work.
    /// A team's members are its own events' (a user must exist to join: read live), a token's
    /// its own (its user and app are read live).
    fn tables_of(&self, category: &str) -> &'static [&'static str] {
        match category {
            "user" => &["users", "team_members", "tokens"],
            "team" => &["teams", "team_members"],
            "token" => &["tokens"],
            "app" => &["token_apps", "tokens"],
            _ => self.tables(),
        }
    }

    fn filter(&self) -> Filter {
        Filter {
            categories: vec!["user".into(), "team".into(), "token".into(), "app".into()],
            ..Filter::default()
        }
    }

    fn create(&self, tables: &Tables) -> String {
        format!(
            "CREATE TABLE {users} (
                username      TEXT PRIMARY KEY,
                email         TEXT,
                admin         BOOLEAN NOT NULL,
                password_hash TEXT NOT NULL,
                created_at    TIMESTAMPTZ NOT NULL,
                updated_at    TIMESTAMPTZ NOT NULL);
             CREATE TABLE {teams} (
                name       TEXT PRIMARY KEY,
                created_by TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL);
             CREATE TABLE {members} (
                team     TEXT NOT NULL,
                username TEXT NOT NULL,
                PRIMARY KEY (team, username));
             CREATE TABLE {tokens} (
                token_id      UUID PRIMARY KEY,
                digest        TEXT NOT NULL,
                username      TEXT NOT NULL,
                kind          TEXT NOT NULL,
                description   TEXT NOT NULL,
                scopes        TEXT[] NOT NULL,
                issued_at     TIMESTAMPTZ NOT NULL,
                expires_at    TIMESTAMPTZ,
                revoked_at    TIMESTAMPTZ,
                revoke_reason TEXT,
                app           TEXT);
             CREATE TABLE {token_apps} (
                app    TEXT PRIMARY KEY,
                active BOOLEAN NOT NULL);",
            users = tables.name("users"),
            teams = tables.name("teams"),
            members = tables.name("team_members"),
            tokens = tables.name("tokens"),
            token_apps = tables.name("token_apps"),
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        format!(
            // Not unique: a log written before names were compared without case may hold both
            // `ann` and `ANN`, and the read model must still rebuild from it.
            "CREATE INDEX ON {users} (lower(email));
             CREATE INDEX ON {users} (lower(username));
             CREATE INDEX ON {members} (username);
             CREATE INDEX ON {tokens} (digest);
             CREATE INDEX ON {tokens} (username);
             CREATE INDEX ON {tokens} (app);",
            users = tables.name("users"),
            members = tables.name("team_members"),
            tokens = tables.name("tokens"),
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        let at = event.recorded_at;
        match event.stream_id.category() {
            "user" => {
                if let Some(e) = decode::<UserEvent>(event) {
                    apply_user(e, at, tables, writes)
                }
            }
            "team" => {
                if let Some(e) = decode::<TeamEvent>(event) {
                    apply_team(e, at, tables, writes)
                }
            }
            "token" => {
                if let Some(e) = decode::<TokenEvent>(event) {
                    apply_token(e, at, tables, writes)
                }
            }
            "app" => apply_app(&event.event_type, event.stream_id.id(), at, tables, writes),
            _ => {}
        }
    }
}

/// The domain event, or `None` (logged) for one this version cannot read: the projection keeps
/// going rather than stopping every read model on one event.
fn decode<E: DomainEvent>(event: &RecordedEvent) -> Option<E> {
    match bosun_domain::decode(&event.event_type, &event.data) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(position = event.position, event_type = %event.event_type, error = %e, "identity projection cannot read this event; skipped");
            None
        }
    }
}

fn apply_user(event: UserEvent, at: DateTime<Utc>, tables: &Tables, writes: &mut Writes) {
    let users = tables.name("users");
    match event {
        UserEvent::UserRegistered {
            username,
            email,
            admin,
            password_hash,
            ..
        } => writes.push(
            format!(
                "INSERT INTO {users} (username, email, admin, password_hash, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)"
            ),
            vec![
                Box::new(username.as_str().to_string()),
                Box::new(email.map(|e| e.as_str().to_string())),
                Box::new(admin),
                Box::new(password_hash.0),
                Box::new(at),
            ],
        ),
        UserEvent::UserUpdated {
            username,
            email,
            email_cleared,
            admin,
        } => writes.push(
            // A cleared email is NULL, so the address is free for another user.
            format!(
                "UPDATE {users}
                 SET email = CASE WHEN $5 THEN NULL ELSE COALESCE($2, email) END,
                     admin = COALESCE($3, admin), updated_at = $4
                 WHERE username = $1"
            ),
            vec![
                Box::new(username.as_str().to_string()),
                Box::new(email.map(|e| e.as_str().to_string())),
                Box::new(admin),
                Box::new(at),
                Box::new(email_cleared),
            ],
        ),
        UserEvent::PasswordChanged {
            username,
            password_hash,
        } => writes.push(
            format!("UPDATE {users} SET password_hash = $2, updated_at = $3 WHERE username = $1"),
            vec![
                Box::new(username.as_str().to_string()),
                Box::new(password_hash.0),
                Box::new(at),
            ],
        ),
        // No password: an empty hash, which no password verifies.
        UserEvent::AnonymousUserCreated { username } => writes.push(
            format!(
                "INSERT INTO {users} (username, email, admin, password_hash, created_at, updated_at)
                 VALUES ($1, NULL, false, '', $2, $2)"
            ),
            vec![Box::new(username.as_str().to_string()), Box::new(at)],
        ),
        // Registered as another user: gone as if removed, its tokens with it.
        UserEvent::AnonymousUserRegistered { username, .. } => {
            remove_user(username.as_str(), "registered", at, tables, writes)
        }
        UserEvent::UserRemoved { username } => {
            remove_user(username.as_str(), "user removed", at, tables, writes)
        }
        // SSH keys are the `keys` projection's; a reset's new password comes as PasswordChanged;
        // a registration under way shows in no read model (its 409 names it).
        UserEvent::AnonymousUserRegistering { .. }
        | UserEvent::AnonymousUserRegistrationAbandoned { .. }
        | UserEvent::UserKeyAdded { .. }
        | UserEvent::UserKeyRemoved { .. }
        | UserEvent::PasswordResetRequested { .. }
        | UserEvent::PasswordResetUsed { .. } => {}
    }
}

/// A user gone: its row, its memberships, and its tokens (revoked for `reason`).
fn remove_user(name: &str, reason: &str, at: DateTime<Utc>, tables: &Tables, writes: &mut Writes) {
    let users = tables.name("users");
    let name = name.to_string();
    writes.push(
        format!("DELETE FROM {users} WHERE username = $1"),
        vec![Box::new(name.clone())],
    );
    writes.push(
        format!(
            "DELETE FROM {} WHERE username = $1",
            tables.name("team_members")
        ),
        vec![Box::new(name.clone())],
    );
    writes.push(
        // An app token is its app's, not its issuer's: it outlives them.
        format!(
            "UPDATE {} SET revoked_at = $2, revoke_reason = $3
                     WHERE username = $1 AND revoked_at IS NULL AND kind <> 'app'",
            tables.name("tokens")
        ),
        vec![Box::new(name), Box::new(at), Box::new(reason.to_string())],
    );
}

/// A membership row, only for a user who exists when the event applies: one removed while the
/// command ran must not reappear as a member under a later user of the same name.
fn add_member(members: &str, users: &str) -> String {
    format!(
        "INSERT INTO {members} (team, username)
         SELECT $1::text, $2::text WHERE EXISTS (SELECT 1 FROM {users} WHERE username = $2)
         ON CONFLICT DO NOTHING"
    )
}

fn apply_team(event: TeamEvent, at: DateTime<Utc>, tables: &Tables, writes: &mut Writes) {
    let teams = tables.name("teams");
    let members = tables.name("team_members");
    let users = tables.name("users");
    match event {
        TeamEvent::TeamCreated { name, creator } => {
            writes.push(
                format!("INSERT INTO {teams} (name, created_by, created_at) VALUES ($1, $2, $3)"),
                vec![
                    Box::new(name.as_str().to_string()),
                    Box::new(creator.as_str().to_string()),
                    Box::new(at),
                ],
            );
            writes.push(
                add_member(&members, &users),
                vec![
                    Box::new(name.as_str().to_string()),
                    Box::new(creator.as_str().to_string()),
                ],
            );
        }
        TeamEvent::TeamMemberAdded { name, username } => writes.push(
            add_member(&members, &users),
            vec![
                Box::new(name.as_str().to_string()),
                Box::new(username.as_str().to_string()),
            ],
        ),
        TeamEvent::TeamMemberRemoved { name, username } => writes.push(
            format!("DELETE FROM {members} WHERE team = $1 AND username = $2"),
            vec![
                Box::new(name.as_str().to_string()),
                Box::new(username.as_str().to_string()),
            ],
        ),
        TeamEvent::TeamRemoved { name } => {
            writes.push(
                format!("DELETE FROM {members} WHERE team = $1"),
                vec![Box::new(name.as_str().to_string())],
            );
            writes.push(
                format!("DELETE FROM {teams} WHERE name = $1"),
                vec![Box::new(name.as_str().to_string())],
            );
        }
    }
}

fn apply_token(event: TokenEvent, at: DateTime<Utc>, tables: &Tables, writes: &mut Writes) {
    let tokens = tables.name("tokens");
    let users = tables.name("users");
    let token_apps = tables.name("token_apps");
    match event {
        TokenEvent::TokenIssued {
            token_id,
            username,
            kind,
            digest,
            description,
            scopes,
            expires_at,
            app: None,
        } => writes.push(
            // A token issued to a user removed while the command ran is born revoked, so it cannot
            // come to life for a later user of the same name.
            format!(
                "INSERT INTO {tokens} (token_id, digest, username, kind, description, scopes, issued_at, expires_at, revoked_at, revoke_reason)
                 SELECT $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text[], $7::timestamptz, $8::timestamptz,
                        CASE WHEN u.present THEN NULL ELSE $7::timestamptz END,
                        CASE WHEN u.present THEN NULL ELSE 'user removed' END
                 FROM (SELECT EXISTS (SELECT 1 FROM {users} WHERE username = $3) AS present) u"
            ),
            vec![
                Box::new(token_id),
                Box::new(digest.0),
                Box::new(username.as_str().to_string()),
                Box::new(kind.as_str()),
                Box::new(description),
                Box::new(scopes.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>()),
                Box::new(at),
                Box::new(expires_at),
            ],
        ),
        TokenEvent::TokenIssued {
            token_id,
            username,
            kind,
            digest,
            description,
            scopes,
            expires_at,
            app: Some(app),
        } => writes.push(
            // An app token issued while its app was being removed (the command saw it before its
            // removal) is born revoked: it cannot come to life for a later app of the same name.
            format!(
                "INSERT INTO {tokens} (token_id, digest, username, kind, description, scopes, issued_at, expires_at, revoked_at, revoke_reason, app)
                 SELECT $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text[], $7::timestamptz, $8::timestamptz,
                        CASE WHEN a.active THEN NULL ELSE $7::timestamptz END,
                        CASE WHEN a.active THEN NULL ELSE 'app removed' END,
                        $9::text
                 FROM (SELECT EXISTS (SELECT 1 FROM {token_apps} WHERE app = $9 AND active) AS active) a"
            ),
            vec![
                Box::new(token_id),
                Box::new(digest.0),
                Box::new(username.as_str().to_string()),
                Box::new(kind.as_str()),
                Box::new(description),
                Box::new(scopes.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>()),
                Box::new(at),
                Box::new(expires_at),
                Box::new(app),
            ],
        ),
        TokenEvent::TokenRevoked {
            token_id, reason, ..
        } => writes.push(
            format!(
                "UPDATE {tokens} SET revoked_at = $2, revoke_reason = $3
                 WHERE token_id = $1 AND revoked_at IS NULL"
            ),
            vec![Box::new(token_id), Box::new(at), Box::new(reason)],
        ),
    }
}

/// An app's creation and removal, for its tokens: a removed app's tokens are revoked for good
/// (a later app of the same name does not revive them), and one issued after the removal is born
/// revoked. Only the event types are read, so the app events' other fields are not this
/// projection's concern.
fn apply_app(event_type: &str, app: &str, at: DateTime<Utc>, tables: &Tables, writes: &mut Writes) {
    let token_apps = tables.name("token_apps");
    match event_type {
        "AppCreated" => writes.push(
            format!(
                "INSERT INTO {token_apps} (app, active) VALUES ($1, true)
                 ON CONFLICT (app) DO UPDATE SET active = true"
            ),
            vec![Box::new(app.to_string())],
        ),
        "AppRemoved" => {
            writes.push(
                format!(
                    "INSERT INTO {token_apps} (app, active) VALUES ($1, false)
                     ON CONFLICT (app) DO UPDATE SET active = false"
                ),
                vec![Box::new(app.to_string())],
            );
            writes.push(
                format!(
                    "UPDATE {} SET revoked_at = $2, revoke_reason = 'app removed'
                     WHERE app = $1 AND revoked_at IS NULL",
                    tables.name("tokens")
                ),
                vec![Box::new(app.to_string()), Box::new(at)],
            );
        }
        _ => {}
    }
}

// Queries.

/// A user as the API shows it: never its password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub username: String,
    pub email: Option<String>,
    pub admin: bool,
    pub teams: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// An anonymous user (`anon-…`: no password, no email), which may register.
    pub anonymous: bool,
}

const USER_COLUMNS: &str = "u.username, u.email, u.admin, u.created_at,
    COALESCE((SELECT array_agg(m.team ORDER BY m.team) FROM team_members m WHERE m.username = u.username), '{}')";

fn user_view(row: &tokio_postgres::Row) -> UserView {
    let username: String = row.get(0);
    UserView {
        anonymous: Username::parse(&username).is_ok_and(|name| name.is_anonymous()),
        username,
        email: row.get(1),
        admin: row.get(2),
        created_at: row.get(3),
        teams: row.get(4),
    }
}

pub async fn user(
    client: &impl GenericClient,
    username: &str,
) -> Result<Option<UserView>, tokio_postgres::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1");
    Ok(client
        .query_opt(&sql, &[&username])
        .await?
        .map(|r| user_view(&r)))
}

/// A page of a list: at most `limit` rows after skipping `offset`, bounds checked by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// A page of users by name, and how many there are in all.
pub async fn users(
    client: &impl GenericClient,
    page: Page,
) -> Result<(Vec<UserView>, i64), tokio_postgres::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.username LIMIT $1 OFFSET $2");
    let users = client
        .query(&sql, &[&page.limit, &page.offset])
        .await?
        .iter()
        .map(user_view)
        .collect();
    let total = client
        .query_one("SELECT count(*) FROM users", &[])
        .await?
        .get(0);
    Ok((users, total))
}

/// The user whose name equals `username` without regard to case, if any: two users' names may
/// not differ only in case.
pub async fn name_holder(
    client: &impl GenericClient,
    username: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT username FROM users WHERE lower(username) = lower($1) ORDER BY username LIMIT 1",
            &[&username],
        )
        .await?
        .map(|r| r.get(0)))
}

/// The stored argon2 hash of a user's password, for a login.
pub async fn password_hash(
    client: &impl GenericClient,
    username: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT password_hash FROM users WHERE username = $1",
            &[&username],
        )
        .await?
        .map(|r| r.get(0)))
}

pub async fn admins(client: &impl GenericClient) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(client
        .query(
            "SELECT username FROM users WHERE admin ORDER BY username",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The user holding `email` (compared in lowercase), if any.
pub async fn email_owner(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT username FROM users WHERE lower(email) = lower($1) LIMIT 1",
            &[&email],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Who a good token speaks for: its owner's rights and its own scopes; or, for an app token,
/// its app (`app`), with `username` the user who issued it and none of their rights (`admin`
/// false, no `teams`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHolder {
    pub token_id: Uuid,
    pub username: String,
    pub admin: bool,
    pub teams: Vec<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The app an app token acts on (only on it).
    pub app: Option<String>,
}

/// The holder of the token with this digest if it is neither expired nor revoked and its owner
/// still exists; an app token needs no owner (its app's removal revokes it).
pub async fn token_holder(
    client: &impl GenericClient,
    digest: &str,
) -> Result<Option<TokenHolder>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT t.token_id, t.username, COALESCE(u.admin, false) AND t.app IS NULL,
                    CASE WHEN t.app IS NULL THEN
                        COALESCE((SELECT array_agg(m.team ORDER BY m.team) FROM team_members m WHERE m.username = u.username), '{}')
                    ELSE '{}' END,
                    t.scopes, t.expires_at, t.app
             FROM tokens t LEFT JOIN users u ON u.username = t.username
             WHERE t.digest = $1 AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > now())
               AND (u.username IS NOT NULL OR t.app IS NOT NULL)",
            &[&digest],
        )
        .await?;
    Ok(row.map(|r| TokenHolder {
        token_id: r.get(0),
        username: r.get(1),
        admin: r.get(2),
        teams: r.get(3),
        scopes: r.get(4),
        expires_at: r.get(5),
        app: r.get(6),
    }))
}

/// A token as its owner sees it: no secret, not even the digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub token_id: Uuid,
    pub username: String,
    pub kind: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    /// An app token's app.
    pub app: Option<String>,
}

const TOKEN_COLUMNS: &str = "token_id, username, kind, description, scopes, issued_at, expires_at, revoked_at, revoke_reason, app";

fn token_view(r: &tokio_postgres::Row) -> TokenView {
    TokenView {
        token_id: r.get(0),
        username: r.get(1),
        kind: r.get(2),
        description: r.get(3),
        scopes: r.get(4),
        issued_at: r.get(5),
        expires_at: r.get(6),
        revoked_at: r.get(7),
        revoke_reason: r.get(8),
        app: r.get(9),
    }
}

/// A page of the tokens of `username`, or of everyone's when `None`, newest first; and how many
/// there are in all.
pub async fn tokens(
    client: &impl GenericClient,
    username: Option<&str>,
    page: Page,
) -> Result<(Vec<TokenView>, i64), tokio_postgres::Error> {
    let filter = "($1::text IS NULL OR username = $1)";
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE {filter}
         ORDER BY issued_at DESC, token_id LIMIT $2 OFFSET $3"
    );
    let tokens = client
        .query(&sql, &[&username, &page.limit, &page.offset])
        .await?
        .iter()
        .map(token_view)
        .collect();
    let total = client
        .query_one(
            &format!("SELECT count(*) FROM tokens WHERE {filter}"),
            &[&username],
        )
        .await?
        .get(0);
    Ok((tokens, total))
}

pub async fn token(
    client: &impl GenericClient,
    token_id: Uuid,
) -> Result<Option<TokenView>, tokio_postgres::Error> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_id = $1");
    Ok(client
        .query_opt(&sql, &[&token_id])
        .await?
        .map(|r| token_view(&r)))
}

/// A page of the tokens of app `app`, newest first (revoked ones too, saying so), and how many
/// there are in all.
pub async fn app_tokens(
    client: &impl GenericClient,
    app: &str,
    page: Page,
) -> Result<(Vec<TokenView>, i64), tokio_postgres::Error> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE app = $1
         ORDER BY issued_at DESC, token_id LIMIT $2 OFFSET $3"
    );
    let tokens = client
        .query(&sql, &[&app, &page.limit, &page.offset])
        .await?
        .iter()
        .map(token_view)
        .collect();
    let total = client
        .query_one("SELECT count(*) FROM tokens WHERE app = $1", &[&app])
        .await?
        .get(0);
    Ok((tokens, total))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TeamView {
    pub name: String,
    pub members: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

const TEAM_COLUMNS: &str = "t.name,
    COALESCE((SELECT array_agg(m.username ORDER BY m.username) FROM team_members m WHERE m.team = t.name), '{}'),
    t.created_by, t.created_at";

fn team_view(r: &tokio_postgres::Row) -> TeamView {
    TeamView {
        name: r.get(0),
        members: r.get(1),
        created_by: r.get(2),
        created_at: r.get(3),
    }
}

pub async fn team(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<TeamView>, tokio_postgres::Error> {
    let sql = format!("SELECT {TEAM_COLUMNS} FROM teams t WHERE t.name = $1");
    Ok(client
        .query_opt(&sql, &[&name])
        .await?
        .map(|r| team_view(&r)))
}

/// A page of teams by name, and how many there are in all.
pub async fn teams(
    client: &impl GenericClient,
    page: Page,
) -> Result<(Vec<TeamView>, i64), tokio_postgres::Error> {
    let sql = format!("SELECT {TEAM_COLUMNS} FROM teams t ORDER BY t.name LIMIT $1 OFFSET $2");
    let teams = client
        .query(&sql, &[&page.limit, &page.offset])
        .await?
        .iter()
        .map(team_view)
        .collect();
    let total = client
        .query_one("SELECT count(*) FROM teams", &[])
        .await?
        .get(0);
    Ok((teams, total))
}
