//! Who is acting, from where, and what each kind of call requires of them.

use crate::error::CommandError;
use bosun_domain::identity::{Scope, Scopes, Username, REGISTRATION_REQUIRED};
use bosun_domain::DomainError;
use serde_json::{json, Value};
use uuid::Uuid;

/// The one on whose behalf a command runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A user, through one of their tokens: their rights cut down to the token's scopes.
    User {
        username: String,
        admin: bool,
        teams: Vec<String>,
        token_id: Uuid,
        scopes: Scopes,
    },
    /// An app token: it acts on its one app only, and there only as [`AppAction`] allows (that
    /// app's jobs and their output, its env, its restarts, reading the app), through
    /// [`Actor::require_on_app`]; every other call, which asks [`Actor::require`], refuses it.
    App(AppActor),
    /// Someone who has not authenticated: only a login.
    Anonymous,
    /// The server itself or its command line (`system`, `cli`): every right.
    System(&'static str),
}

/// Who acts through an app token: the app, by a token a user issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppActor {
    app: String,
    token_id: Uuid,
    issued_by: String,
    /// `app:<app>`, as events record it (no user's name starts with `app:`: the only names
    /// with a `:` are GitHub users', `github:<login>`).
    name: String,
}

impl AppActor {
    pub fn new(app: &str, token_id: Uuid, issued_by: &str) -> Self {
        AppActor {
            app: app.to_string(),
            token_id,
            issued_by: issued_by.to_string(),
            name: app_actor_name(app),
        }
    }

    /// The one app it acts on.
    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn token_id(&self) -> Uuid {
        self.token_id
    }

    /// The user who issued the token (the events of its calls record them as `issued_by`).
    pub fn issued_by(&self) -> &str {
        &self.issued_by
    }
}

/// What a call does on an app, as [`Actor::require_on_app`] is asked it: the scope it needs, and
/// whether the app's own token may do it. An app token operates its app (its jobs, its env, its
/// restarts, reading it); changing the app itself or who may act on it is its teams' members'
/// and the admins'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppAction {
    /// Read the app, its env and its units (`read`): its token may.
    Read,
    /// Submit, cancel or kill its jobs (`write`): its token may. (Reading them is
    /// [`crate::queries::job_readers`]'.)
    Jobs,
    /// Set or unset its env (`write`): its token may.
    Env,
    /// Restart its units (`write`): its token may.
    Restart,
    /// Change the app itself or who acts on it (`write`): update (`PATCH`), remove, grant and
    /// revoke teams, add and remove cnames, swap, issue and revoke its tokens. Not its token.
    Manage,
    /// List its tokens (`read`). Not its token.
    ListTokens,
}

impl AppAction {
    /// The scope a user's token needs for it.
    pub fn scope(self) -> Scope {
        match self {
            AppAction::Read | AppAction::ListTokens => Scope::Read,
            AppAction::Jobs | AppAction::Env | AppAction::Restart | AppAction::Manage => {
                Scope::Write
            }
        }
    }

    /// Whether the app's own token may do it.
    pub fn by_its_token(self) -> bool {
        !matches!(self, AppAction::Manage | AppAction::ListTokens)
    }
}

/// The actor name of `app`'s tokens in events, `created_by` and the audit: `app:<app>`.
pub fn app_actor_name(app: &str) -> String {
    format!("app:{app}")
}

impl Actor {
    /// The name events record as their actor.
    pub fn name(&self) -> &str {
        match self {
            Actor::User { username, .. } => username,
            Actor::App(token) => &token.name,
            Actor::Anonymous => "anonymous",
            Actor::System(name) => name,
        }
    }

    pub fn username(&self) -> Option<&str> {
        match self {
            Actor::User { username, .. } => Some(username),
            _ => None,
        }
    }

    pub fn token_id(&self) -> Option<Uuid> {
        match self {
            Actor::User { token_id, .. } => Some(*token_id),
            Actor::App(token) => Some(token.token_id),
            _ => None,
        }
    }

    /// The app an app token acts on; `None` for every other actor.
    pub fn app_token(&self) -> Option<&AppActor> {
        match self {
            Actor::App(token) => Some(token),
            _ => None,
        }
    }

    /// The token carries `scope`. An app token never passes: it acts only through
    /// [`Actor::require_on_app`].
    pub fn require(&self, scope: Scope) -> Result<(), CommandError> {
        match self {
            Actor::User { scopes, .. } if scopes.contains(scope) => Ok(()),
            Actor::User { .. } => Err(CommandError::Forbidden(format!(
                "this token lacks the {} scope",
                scope.as_str()
            ))),
            Actor::App(token) => Err(app_token_refused(token)),
            Actor::Anonymous => Err(CommandError::Unauthenticated),
            Actor::System(_) => Ok(()),
        }
    }

    /// May do `action` on app `app`, whose teams are `teams` (as its stream has them now): a
    /// user whose token has the action's scope and who is a member of one of `teams` or an admin
    /// (with the admin scope); that app's own token, for what [`AppAction::by_its_token`]
    /// allows (a 403 saying so for the rest); the server. Every command or query on an app (its
    /// env, restart, its jobs, the app itself, its teams, cnames, swaps and tokens) asks this,
    /// and nothing else, after loading the app (a 404 for none comes first).
    pub fn require_on_app(
        &self,
        app: &str,
        teams: &[String],
        action: AppAction,
    ) -> Result<(), CommandError> {
        match self {
            Actor::App(token) if token.app == app && action.by_its_token() => Ok(()),
            Actor::App(token) if token.app == app => Err(CommandError::Forbidden(format!(
                "an app token operates its app {app} (its jobs, env and restarts, and reads it); \
                 changing the app itself (update, remove, teams, cnames, swap, tokens) is for a \
                 member of its teams or an admin"
            ))),
            Actor::App(token) => Err(app_token_refused(token)),
            Actor::User { .. } => {
                self.require(action.scope())?;
                self.require_registered()?;
                if self.may_act_on_app(app, teams) {
                    Ok(())
                } else {
                    Err(CommandError::Forbidden(format!(
                        "only a member of one of app {app}'s teams ({}) or an admin may do this",
                        teams.join(", ")
                    )))
                }
            }
            Actor::Anonymous => Err(CommandError::Unauthenticated),
            Actor::System(_) => Ok(()),
        }
    }

    /// Whether this actor may act on app `app` with teams `teams` at all (scopes aside): a
    /// member of one of them, an admin, that app's token, the server. For filtering lists;
    /// commands ask [`Actor::require_on_app`].
    pub fn may_act_on_app(&self, app: &str, teams: &[String]) -> bool {
        match self {
            Actor::App(token) => token.app == app,
            _ => self.is_admin() || teams.iter().any(|team| self.is_member(team)),
        }
    }

    /// An admin acting with the `admin` scope.
    pub fn is_admin(&self) -> bool {
        match self {
            Actor::User { admin, scopes, .. } => *admin && scopes.contains(Scope::Admin),
            Actor::App(_) | Actor::Anonymous => false,
            Actor::System(_) => true,
        }
    }

    pub fn require_admin(&self) -> Result<(), CommandError> {
        if self.is_admin() {
            return Ok(());
        }
        match self {
            Actor::Anonymous => Err(CommandError::Unauthenticated),
            Actor::App(token) => Err(app_token_refused(token)),
            Actor::User { admin: true, .. } => Err(CommandError::Forbidden(
                "this needs a token with the admin scope".into(),
            )),
            _ => Err(CommandError::Forbidden("only an admin may do this".into())),
        }
    }

    pub fn is(&self, username: &str) -> bool {
        self.username() == Some(username)
    }

    /// A user through an anonymous user's token (`anon-…`).
    pub fn is_anonymous_user(&self) -> bool {
        self.username()
            .and_then(|name| Username::parse(name).ok())
            .is_some_and(|name| name.is_anonymous())
    }

    /// Not an anonymous user: 403 `registration_required` for one. An anonymous user may use
    /// runnables, read itself, register and log out; every other command that changes state
    /// asks this, and every other read through [`Actor::require_reader`].
    pub fn require_registered(&self) -> Result<(), CommandError> {
        if self.is_anonymous_user() {
            return Err(DomainError::forbidden(
                REGISTRATION_REQUIRED,
                "an anonymous user may only use runnables: register first (POST /v1/users/me/register)",
            )
            .into());
        }
        Ok(())
    }

    /// The read scope, and not an anonymous user (403 `registration_required`): what every read
    /// asks but the few an anonymous user may make, of itself (`me`, its own user, its own
    /// tokens), of runnables (its own and those with an image) and its logout. A token is free
    /// to have, so an anonymous one reads nothing a registered user's would show (orchestrations,
    /// teams, users, platforms, the catalog, apps, jobs, services, streams). An app token is
    /// refused as [`Actor::require`] refuses it.
    pub fn require_reader(&self) -> Result<(), CommandError> {
        self.require(Scope::Read)?;
        self.require_registered()
    }

    /// What every write asks first: the `write` scope, of a registered user (see
    /// [`Actor::require_reader`] for what an anonymous user may do).
    pub fn require_writer(&self) -> Result<(), CommandError> {
        self.require(Scope::Write)?;
        self.require_registered()
    }

    /// The user themself, or an admin.
    pub fn require_self_or_admin(&self, username: &str) -> Result<(), CommandError> {
        if let Actor::App(token) = self {
            return Err(app_token_refused(token));
        }
        if self.is(username) || self.is_admin() {
            Ok(())
        } else {
            self.require_admin().map_err(|_| {
                CommandError::Forbidden(format!("only {username} or an admin may do this"))
            })
        }
    }

    pub fn is_member(&self, team: &str) -> bool {
        matches!(self, Actor::User { teams, .. } if teams.iter().any(|t| t == team))
    }
}

/// What an app token gets for anything but its app.
fn app_token_refused(token: &AppActor) -> CommandError {
    CommandError::Forbidden(format!(
        "an app token acts only on its app {}: its jobs and their output, its env, its restarts",
        token.app
    ))
}

/// Where a call came from, as events record it.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub user_agent: Option<String>,
    pub source: Option<String>,
    /// The client's `If-Match`: the version of one stream its command was decided on.
    pub if_match: Option<IfMatch>,
}

/// A write's precondition (`If-Match`): the stream of the resource it changes is still at
/// `version`, the one its client last saw. Checked against the version each append was decided
/// on, so a client never overwrites what it has not seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfMatch {
    pub stream: String,
    pub version: u64,
}

impl Origin {
    /// 412 when the client's `If-Match` names `stream` and the state decided on is at another
    /// version (`None`: the stream has no events yet).
    pub(crate) fn check_version(
        &self,
        stream: &str,
        current: Option<u64>,
    ) -> Result<(), CommandError> {
        match &self.if_match {
            Some(expected) if expected.stream == stream && current != Some(expected.version) => {
                Err(CommandError::VersionMismatch {
                    stream: stream.to_string(),
                    current,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The metadata every event of a command carries; an app token's also name the user who issued
/// it (`issued_by`).
pub(crate) fn metadata(actor: &Actor, origin: &Origin) -> Value {
    let mut metadata = json!({
        "actor": actor.name(),
        "token_id": actor.token_id(),
        "request_id": origin.request_id,
        "correlation_id": origin.correlation_id.as_ref().or(origin.request_id.as_ref()),
        "causation_id": null,
        "user_agent": origin.user_agent,
        "source": origin.source,
    });
    if let (Actor::App(token), Value::Object(fields)) = (actor, &mut metadata) {
        fields.insert("issued_by".into(), Value::String(token.issued_by.clone()));
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, admin: bool, teams: &[&str], scopes: &[&str]) -> Actor {
        Actor::User {
            username: name.into(),
            admin,
            teams: teams.iter().map(|t| t.to_string()).collect(),
            token_id: Uuid::nil(),
            scopes: Scopes::parse(&scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
        }
    }

    fn shop_token() -> Actor {
        Actor::App(AppActor::new("shop", Uuid::nil(), "ann"))
    }

    fn teams() -> Vec<String> {
        vec!["ops".into(), "web".into()]
    }

    fn forbidden(result: Result<(), CommandError>) -> String {
        match result {
            Err(CommandError::Forbidden(message)) => message,
            other => panic!("expected a 403, got {other:?}"),
        }
    }

    #[test]
    fn an_app_token_is_refused_everything_but_its_app() {
        let token = shop_token();
        for scope in [Scope::Read, Scope::Write, Scope::Admin] {
            assert!(forbidden(token.require(scope)).contains("acts only on its app shop"));
        }
        assert!(forbidden(token.require_admin()).contains("acts only on its app shop"));
        assert!(forbidden(token.require_self_or_admin("ann")).contains("acts only"));
        assert!(!token.is_admin() && !token.is_member("ops") && !token.is("ann"));
        assert!(
            forbidden(token.require_on_app("blog", &teams(), AppAction::Read))
                .contains("acts only on its app shop")
        );
        for action in [
            AppAction::Read,
            AppAction::Jobs,
            AppAction::Env,
            AppAction::Restart,
        ] {
            token.require_on_app("shop", &teams(), action).unwrap();
            token.require_on_app("shop", &[], action).unwrap();
        }
        assert!(token.may_act_on_app("shop", &[]) && !token.may_act_on_app("blog", &teams()));
    }

    #[test]
    fn an_app_token_does_not_change_its_app_itself() {
        let token = shop_token();
        for action in [AppAction::Manage, AppAction::ListTokens] {
            let message = forbidden(token.require_on_app("shop", &teams(), action));
            assert!(
                message.contains("changing the app itself") && message.contains("member"),
                "{message}"
            );
        }
        // A member of its teams does, with the scope each needs.
        let ann = user("ann", false, &["web"], &["read", "write"]);
        ann.require_on_app("shop", &teams(), AppAction::Manage)
            .unwrap();
        let reader = user("ann", false, &["web"], &["read"]);
        reader
            .require_on_app("shop", &teams(), AppAction::ListTokens)
            .unwrap();
        assert!(
            forbidden(reader.require_on_app("shop", &teams(), AppAction::Manage)).contains("write")
        );
    }

    #[test]
    fn on_an_app_a_user_needs_the_scope_and_one_of_its_teams_or_to_be_an_admin() {
        let all = ["read", "write", "admin"];
        user("ann", false, &["web"], &all)
            .require_on_app("shop", &teams(), AppAction::Manage)
            .unwrap();
        let outsider = forbidden(user("bob", false, &["db"], &all).require_on_app(
            "shop",
            &teams(),
            AppAction::Read,
        ));
        assert!(outsider.contains("ops, web"), "{outsider}");
        user("root", true, &[], &all)
            .require_on_app("shop", &teams(), AppAction::Manage)
            .unwrap();
        // An admin acting without the admin scope is a user like any other.
        forbidden(user("root", true, &[], &["read", "write"]).require_on_app(
            "shop",
            &teams(),
            AppAction::Env,
        ));
        // A member's read-only token reads, and does not write.
        let reader = user("ann", false, &["ops"], &["read"]);
        reader
            .require_on_app("shop", &teams(), AppAction::Read)
            .unwrap();
        assert!(
            forbidden(reader.require_on_app("shop", &teams(), AppAction::Jobs)).contains("write")
        );
        assert!(matches!(
            Actor::Anonymous.require_on_app("shop", &teams(), AppAction::Read),
            Err(CommandError::Unauthenticated)
        ));
        Actor::System("system")
            .require_on_app("shop", &[], AppAction::Manage)
            .unwrap();
    }

    #[test]
    fn an_app_tokens_events_name_the_app_and_the_user_who_issued_it() {
        let metadata = metadata(&shop_token(), &Origin::default());
        assert_eq!(metadata["actor"], "app:shop");
        assert_eq!(metadata["issued_by"], "ann");
        assert_eq!(metadata["token_id"], json!(Uuid::nil()));
        let user = metadata_of_user();
        assert!(user.get("issued_by").is_none(), "{user}");
    }

    #[test]
    fn an_anonymous_user_is_refused_what_needs_registration() {
        let anonymous = user("anon-0123456789abcdef", false, &[], &["read", "write"]);
        assert!(anonymous.is_anonymous_user());
        assert!(matches!(
            anonymous.require_registered(),
            Err(CommandError::Domain(DomainError::Forbidden {
                code: REGISTRATION_REQUIRED,
                ..
            }))
        ));
        for registered in [
            user("ann", false, &[], &["read"]),
            Actor::System("system"),
            Actor::Anonymous,
            shop_token(),
        ] {
            assert!(!registered.is_anonymous_user());
            registered.require_registered().unwrap();
        }
    }

    #[test]
    fn an_anonymous_user_reads_nothing_a_registered_user_reads() {
        let anonymous = user("anon-0123456789abcdef", false, &[], &["read", "write"]);
        let registration_required = |result: Result<(), CommandError>| {
            matches!(
                result,
                Err(CommandError::Domain(DomainError::Forbidden {
                    code: REGISTRATION_REQUIRED,
                    ..
                }))
            )
        };
        assert!(registration_required(anonymous.require_reader()));
        assert!(registration_required(anonymous.require_on_app(
            "shop",
            &[],
            AppAction::Read
        )));
        user("ann", false, &[], &["read"]).require_reader().unwrap();
        Actor::System("system").require_reader().unwrap();
        // The scope and the other actors are refused as ever.
        assert!(forbidden(user("ann", false, &[], &["write"]).require_reader()).contains("read"));
        assert!(forbidden(shop_token().require_reader()).contains("acts only"));
        assert!(matches!(
            Actor::Anonymous.require_reader(),
            Err(CommandError::Unauthenticated)
        ));
    }

    fn metadata_of_user() -> Value {
        metadata(&user("ann", false, &[], &["read"]), &Origin::default())
    }
}
