//! `bosun admin …`: create users and issue tokens from the command line, against the same
//! database as the server (its managed PostgreSQL, or `database.url`), recorded with actor `cli`.

use super::UsageError;
use crate::config::Settings;
use crate::core::Core;
use crate::database::Database;
use bosun_commands::identity::secrets::random_password;
use bosun_commands::identity::NewUser;
use bosun_commands::{Actor, Origin};
use bosun_domain::identity::{Email, Password, Username};
use std::io::BufRead;

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Register a user; prints the password (generated unless --password-stdin).
    CreateUser {
        name: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Issue a long-lived API token for a user and print it (shown once).
    IssueToken {
        name: String,
        #[arg(long, default_value = "issued by bosun admin")]
        description: String,
        /// Lifetime in seconds (default: until revoked).
        #[arg(long)]
        expires_in: Option<i64>,
    },
}

pub async fn run(settings: Settings, command: AdminCommand) -> anyhow::Result<()> {
    let input = parse(command)?;
    let database = Database::open(&settings).await?;
    let result = async {
        let core = Core::open(&database.config).await?;
        let commands = &core.commands;
        commands.catch_up().await?;
        let actor = Actor::System("cli");
        let origin = Origin {
            request_id: Some(uuid::Uuid::new_v4().to_string()),
            user_agent: Some(format!("bosun admin {}", env!("CARGO_PKG_VERSION"))),
            source: Some("cli".into()),
            ..Origin::default()
        };
        match input {
            Input::User {
                username,
                password,
                email,
                admin,
                generated,
            } => {
                let shown = generated.then(|| password.expose().to_string());
                let (user, _) = commands
                    .register_user(
                        &actor,
                        &origin,
                        NewUser {
                            username,
                            password,
                            email,
                            admin,
                        },
                    )
                    .await?;
                println!(
                    "created user {}{}",
                    user.username,
                    if user.admin { " (admin)" } else { "" }
                );
                if let Some(password) = shown {
                    println!("password: {password}");
                }
            }
            Input::Token {
                username,
                description,
                expires_in,
            } => {
                let (token, _) = commands
                    .issue_token_for(&actor, &origin, username.as_str(), description, expires_in)
                    .await?;
                println!("{}", token.token);
                eprintln!("token id {} for {}", token.token_id, token.user);
            }
        }
        drop(core);
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}

/// The command's arguments, parsed.
enum Input {
    User {
        username: Username,
        password: Password,
        email: Option<Email>,
        admin: bool,
        generated: bool,
    },
    Token {
        username: Username,
        description: String,
        expires_in: Option<i64>,
    },
}

/// Checks the arguments before anything starts: a bad one is a usage error (exit status 2).
fn parse(command: AdminCommand) -> Result<Input, UsageError> {
    let usage = |e: bosun_domain::DomainError| UsageError(e.to_string());
    match command {
        AdminCommand::CreateUser {
            name,
            email,
            password_stdin,
            admin,
        } => {
            let username = Username::parse(&name).map_err(usage)?;
            let email = email
                .as_deref()
                .map(Email::parse)
                .transpose()
                .map_err(usage)?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| UsageError(format!("cannot read the password from stdin: {e}")))?;
                let line = line.trim_end_matches(['\n', '\r']);
                (Password::parse("password", line).map_err(usage)?, false)
            } else {
                (random_password(), true)
            };
            Ok(Input::User {
                username,
                password,
                email,
                admin,
                generated,
            })
        }
        AdminCommand::IssueToken {
            name,
            description,
            expires_in,
        } => Ok(Input::Token {
            username: Username::parse(&name).map_err(usage)?,
            description,
            expires_in,
        }),
    }
}
