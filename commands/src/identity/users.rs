//! Registering, changing and removing users.

use super::reservations::{name_key, Claiming};
use super::secrets::{hash_password, verify_password};
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Appended, Commands, Written, ATTEMPTS};
use bosun_domain::identity::{
    Email, EmailChange, Password, PasswordHash, ReservationKind, Scope, Team, TeamCommand, User,
    UserCommand, UserEvent, Username,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use bosun_projections::read_models::identity as model;
use uuid::Uuid;

pub struct NewUser {
    pub username: Username,
    pub password: Password,
    pub email: Option<Email>,
    pub admin: bool,
}

/// A partial update; absent fields stay as they are.
#[derive(Default)]
pub struct UserChanges {
    pub password: Option<Password>,
    pub admin: Option<bool>,
    /// Kept, cleared or set.
    pub email: EmailChange,
}

impl<S: EventStore> Commands<S> {
    /// An admin registers a user.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = user.username.as_str()))]
    pub async fn register_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        user: NewUser,
    ) -> Result<(model::UserView, Written), CommandError> {
        actor.require(Scope::Write)?;
        actor.require_admin()?;
        // The user's stream lets a GitHub user's name through (for a GitHub sign-in): no admin
        // registers one (the command line parses names as the log holds them).
        Username::parse_new(user.username.as_str())?;
        let written = self.register(actor, origin, &user).await?;
        self.settle(written).await;
        Ok((self.user_view(user.username.as_str()).await?, written))
    }

    /// Registration: the name (without regard to case) and the email are claimed in their
    /// reservations, then the user is registered in its stream at the version the claims name.
    /// Two registrations of one name racing on any nodes: one claim wins, the other is refused.
    /// Does not wait for the read models.
    pub(crate) async fn register(
        &self,
        actor: &Actor,
        origin: &Origin,
        user: &NewUser,
    ) -> Result<Written, CommandError> {
        self.register_from(actor, origin, user, None).await
    }

    /// [`Commands::register`], of a user registered from the anonymous user `from` (which its
    /// registration then records): the same `from` registering the same name again continues.
    pub(crate) async fn register_from(
        &self,
        actor: &Actor,
        origin: &Origin,
        user: &NewUser,
        from: Option<&Username>,
    ) -> Result<Written, CommandError> {
        let password_hash = hash_password(&user.password).await?;
        self.identity_backfill(origin).await?;
        let mut claims = Vec::new();
        let registered = self
            .register_claimed(actor, origin, user, from, &password_hash, &mut claims)
            .await;
        if matches!(&registered, Err(e) if !e.is_transient()) {
            self.withdraw(claims, origin).await;
        }
        registered
    }

    async fn register_claimed(
        &self,
        actor: &Actor,
        origin: &Origin,
        user: &NewUser,
        from: Option<&Username>,
        password_hash: &PasswordHash,
        claims: &mut Vec<Claiming>,
    ) -> Result<Written, CommandError> {
        let username = &user.username;
        'attempt: for _ in 0..ATTEMPTS {
            let mut account = self.hold::<User>(username.as_str()).await?;
            let events = account.state.handle(UserCommand::Register {
                username: username.clone(),
                email: user.email.clone(),
                admin: user.admin,
                password_hash: password_hash.clone(),
                registered_from: from.cloned(),
            })?;
            let slot = account.next_version();
            // Every check before any write: a refusal writes nothing.
            let mut wanted = vec![
                self.check_claim(
                    ReservationKind::Username,
                    &name_key(username),
                    username,
                    slot,
                )
                .await?,
            ];
            if let Some(email) = &user.email {
                wanted.push(
                    self.check_claim(ReservationKind::Email, email.as_str(), username, slot)
                        .await?,
                );
            }
            let mut written = Written::default();
            for mut claiming in wanted {
                let appended = self.append_claim(&mut claiming, origin).await?;
                claims.push(claiming);
                match appended {
                    Some(w) => written = written.and(w),
                    None => continue 'attempt,
                }
            }
            // Their runnables' registry, reopened if a removed user of the name closed it (and
            // what that one's cleanup left removed), before the user exists.
            let previous_removal = match (&account.state.username, account.state.active) {
                (Some(_), false) => account.version(),
                _ => None,
            };
            written = written.and(
                self.reopen_runnables_of(origin, username, previous_removal, slot)
                    .await?,
            );
            match self
                .append_held(&mut account, actor, origin, Uuid::new_v4(), events)
                .await?
            {
                Appended::Written(w) => written = written.and(w),
                // Registered, or changed, meanwhile: decided again (and refused if registered).
                Appended::Conflict => continue,
            }
            if user.admin {
                written = written.and(self.join_roster(username, origin).await);
            }
            return Ok(written);
        }
        Err(CommandError::Contended(format!("user-{username}")))
    }

    /// An admin changes a user's password, admin flag or email.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username))]
    pub async fn update_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        changes: UserChanges,
    ) -> Result<(model::UserView, Written), CommandError> {
        actor.require(Scope::Write)?;
        actor.require_admin()?;
        let written = self.update(actor, origin, username, &changes).await?;
        self.settle(written).await;
        Ok((self.user_view(username).await?, written))
    }

    /// An update: a new email is claimed first (the old one released after), a demotion of an
    /// admin claims its step-down on the admin roster first. Does not wait for the read models.
    pub(crate) async fn update(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        changes: &UserChanges,
    ) -> Result<Written, CommandError> {
        let password_hash = match &changes.password {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        self.identity_backfill(origin).await?;
        let mut claims = Vec::new();
        let updated = self
            .update_claimed(
                actor,
                origin,
                username,
                changes,
                &password_hash,
                &mut claims,
            )
            .await;
        if matches!(&updated, Err(e) if !e.is_transient()) {
            self.withdraw(claims, origin).await;
        }
        updated
    }

    async fn update_claimed(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        changes: &UserChanges,
        password_hash: &Option<PasswordHash>,
        claims: &mut Vec<Claiming>,
    ) -> Result<Written, CommandError> {
        for _ in 0..ATTEMPTS {
            let mut account = self.hold::<User>(username).await?;
            let before = account.state.clone();
            let slot = account.next_version();
            let demoting = changes.admin == Some(false) && before.is_admin();
            let mut step = match (demoting, &before.username) {
                (true, Some(name)) => Some(self.check_step_down(name, slot).await?),
                _ => None,
            };
            let events = before.handle(UserCommand::Update {
                email: changes.email.clone(),
                admin: changes.admin,
                password_hash: password_hash.clone(),
                admin_count: step.as_ref().map_or(0, |s| s.admin_count),
            })?;
            account.check_version(origin)?;
            let Some(name) = &before.username else {
                return Ok(Written::default());
            };
            if events.is_empty() {
                // Nothing changes; a promotion of an admin the roster misses (a node died
                // between the two) puts them on it.
                if changes.admin == Some(true) && before.is_admin() {
                    return Ok(self.join_roster(name, origin).await);
                }
                return Ok(Written::default());
            }
            let new_email = events.iter().find_map(|e| match e {
                UserEvent::UserUpdated { email, .. } => email.clone(),
                _ => None,
            });
            let mut claiming = match &new_email {
                Some(email) => Some(
                    self.check_claim(ReservationKind::Email, email.as_str(), name, slot)
                        .await?,
                ),
                None => None,
            };
            // Checked: the email first (the claim other users race for), then the step-down.
            let mut written = Written::default();
            if let Some(mut claiming) = claiming.take() {
                let appended = self.append_claim(&mut claiming, origin).await?;
                claims.push(claiming);
                match appended {
                    Some(w) => written = written.and(w),
                    None => continue,
                }
            }
            if let Some(step) = &mut step {
                match self.append_step_down(step, origin).await? {
                    Some(w) => written = written.and(w),
                    None => continue,
                }
            }
            match self
                .append_held(&mut account, actor, origin, Uuid::new_v4(), events)
                .await?
            {
                Appended::Written(w) => written = written.and(w),
                Appended::Conflict => continue,
            }
            let after = &account.state;
            if let Some(old) = before
                .email
                .as_ref()
                .filter(|_| before.email != after.email)
            {
                let released = self
                    .release(ReservationKind::Email, old.as_str(), name, origin)
                    .await;
                written = written.and(released);
            }
            if after.is_admin() && !before.is_admin() {
                written = written.and(self.join_roster(name, origin).await);
            }
            return Ok(written);
        }
        Err(CommandError::Contended(format!("user-{username}")))
    }

    /// A user changes their own password, proving they know the old one (403 if not).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username))]
    pub async fn change_password(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        old: &str,
        new: Password,
    ) -> Result<Written, CommandError> {
        may_change_password(actor, username)?;
        let (state, _) = self.load::<User>(username).await?;
        if state.active && state.username.as_ref().is_some_and(Username::is_github) {
            // A GitHub user has no password: the user's refusal (403 `github_user`), before
            // any password is checked.
            state.handle(UserCommand::ChangePassword {
                password_hash: PasswordHash(String::new()),
            })?;
        }
        let current = state.password_hash.filter(|_| state.active).map(|h| h.0);
        if !verify_password(old, current).await {
            return Err(CommandError::Forbidden("the old password is wrong".into()));
        }
        let password_hash = hash_password(&new).await?;
        let (_, written) = self
            .execute::<User>(username, actor, origin, |state| {
                state.handle(UserCommand::ChangePassword {
                    password_hash: password_hash.clone(),
                })
            })
            .await?;
        Ok(written)
    }

    /// A user removes themself, or an admin removes them; their tokens stop working, their
    /// name and email are free again, their runnables are removed. An admin's removal claims
    /// its step-down on the admin roster first.
    ///
    /// The cleanup after the removal (releasing the reservations, removing the runnables and
    /// closing their registry, leaving the teams) may fail (`Contended`) once the user is
    /// removed: removing them again (a retried `DELETE`) runs what is left of it and answers as
    /// the removal would have (204); with nothing left, it is the 404 of a user who is not
    /// there. The teams are left only as the read models list them, which forget a removed
    /// user's memberships: a retry leaves no team.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username))]
    pub async fn remove_user(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        actor.require_self_or_admin(username)?;
        self.identity_backfill(origin).await?;
        // The teams to leave, as the read models know them (none without read models).
        self.catch_up().await?;
        let teams = match self.user_view(username).await {
            Ok(user) => user.teams,
            Err(_) => vec![],
        };
        // `Some(why)` for a retry, 404 `why` if it finds nothing left to do.
        let (before, removed_at, mut written, retried) =
            match self.remove(actor, origin, username).await {
                Ok((before, removed_at, written)) => (before, removed_at, written, None),
                Err(CommandError::Domain(DomainError::NotFound(message))) => {
                    // Removed already (not registered from an anonymous user: its runnables
                    // were handed over): what the first removal's cleanup left is done now.
                    let account = self.hold::<User>(username).await?;
                    let state = account.state.clone();
                    match (account.version(), &state.username) {
                        (Some(at), Some(_)) if !state.active && state.registered_as.is_none() => {
                            (state, at, Written::default(), Some(message))
                        }
                        _ => return Err(CommandError::Domain(DomainError::NotFound(message))),
                    }
                }
                Err(e) => return Err(e),
            };
        let Some(member) = before.username.clone() else {
            return Ok(written);
        };
        for (kind, value) in [
            (ReservationKind::Username, Some(name_key(&member))),
            (
                ReservationKind::Email,
                before.email.as_ref().map(|e| e.as_str().to_string()),
            ),
        ] {
            if let Some(value) = value {
                written = written.and(self.release(kind, &value, &member, origin).await);
            }
        }
        // The user leaves their teams first, so a later user of the same name starts in none
        // and can be added again. Before the runnables: a retry no longer finds these teams
        // (the read models dropped the memberships), while it can redo the runnables.
        for team in teams {
            let left = self
                .execute::<Team>(&team, actor, origin, |state| {
                    state.handle(TeamCommand::RemoveMember {
                        username: member.clone(),
                    })
                })
                .await;
            match left {
                Ok((_, w)) => written = written.and(w),
                Err(CommandError::Domain(DomainError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        // Then their runnables, so a later user of the same name owns none of them: as their
        // registry holds them (exact), not as the read models may have them yet; then the
        // registry is closed. A retry redoes what a failure here left.
        written = written.and(
            self.remove_runnables_of(actor, origin, &member, removed_at)
                .await?,
        );
        if let Some(message) = retried.filter(|_| written.position.is_none()) {
            return Err(CommandError::Domain(DomainError::NotFound(message)));
        }
        self.settle(written).await;
        Ok(written)
    }

    /// The removal itself; returns the user as it was and the version of their stream's
    /// `UserRemoved`. Does not wait for the read models.
    pub(crate) async fn remove(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
    ) -> Result<(User, u64, Written), CommandError> {
        for _ in 0..ATTEMPTS {
            let mut account = self.hold::<User>(username).await?;
            let before = account.state.clone();
            let mut step = match (before.is_admin(), &before.username) {
                (true, Some(name)) => {
                    Some(self.check_step_down(name, account.next_version()).await?)
                }
                _ => None,
            };
            let events = before.handle(UserCommand::Remove {
                admin_count: step.as_ref().map_or(0, |s| s.admin_count),
            })?;
            // Before the roster's step-down is appended: a stale If-Match writes nothing.
            account.check_version(origin)?;
            let mut written = Written::default();
            if let Some(step) = &mut step {
                match self.append_step_down(step, origin).await? {
                    Some(w) => written = written.and(w),
                    None => continue,
                }
            }
            match self
                .append_held(&mut account, actor, origin, Uuid::new_v4(), events)
                .await?
            {
                Appended::Written(w) => {
                    let removed_at = account.version().unwrap_or_default();
                    return Ok((before, removed_at, written.and(w)));
                }
                Appended::Conflict => continue,
            }
        }
        Err(CommandError::Contended(format!("user-{username}")))
    }

    pub(crate) async fn user_view(&self, username: &str) -> Result<model::UserView, CommandError> {
        let client = self.read_models().await?;
        model::user(&**client, username).await?.ok_or_else(|| {
            CommandError::Domain(DomainError::NotFound(format!("no user {username}")))
        })
    }

    /// How many admins the read models know of.
    pub(crate) async fn admin_count(&self) -> Result<usize, CommandError> {
        let client = self.read_models().await?;
        Ok(model::admins(&**client).await?.len())
    }
}

/// Who may change `username`'s password by giving the old one: that user, with the write scope
/// (an admin does not: a removal, or a reset, instead). A route that parses the new password
/// asks this first, so that a caller who may not is told so whatever it sent.
pub fn may_change_password(actor: &Actor, username: &str) -> Result<(), CommandError> {
    actor.require_writer()?;
    if !actor.is(username) {
        return Err(CommandError::Forbidden(
            "only the user themself may change their password this way".into(),
        ));
    }
    Ok(())
}
