//! Why a command was not carried out. Each kind maps to one HTTP status at the API.

use bosun_domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// 400, 404 or 409, as the domain decided.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// 401: no credentials, or bad ones.
    #[error("authentication required")]
    Unauthenticated,
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// The stream kept changing under us.
    #[error("the {0} kept changing while this command ran; retry it")]
    Contended(String),
    /// 412: the client's `If-Match` named another version of `stream` than the one it is at.
    #[error("{stream} is at version {}, not the one If-Match names", current.map_or("none".to_string(), |v| v.to_string()))]
    VersionMismatch {
        stream: String,
        current: Option<u64>,
    },
    /// A value the log cannot store got past the edge's checks (400: it is the input's fault,
    /// and retrying it cannot help).
    #[error("the input cannot be stored: {0}")]
    Unstorable(String),
    /// Something the command waits for did not come in time (503 with `code`), such as a
    /// running runnable's node syncing its files before a save (`sync_timeout`).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The log could not be reached or failed: worth retrying (a worker does).
    #[error("the event store failed: {0}")]
    Store(String),
    /// Anything else: the database, the log. Logged, not shown.
    #[error("{0}")]
    Internal(String),
}

impl CommandError {
    /// An outage rather than a refusal: the same command may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, CommandError::Store(_))
    }
}

impl From<bosun_eventstore::StoreError> for CommandError {
    fn from(e: bosun_eventstore::StoreError) -> Self {
        use bosun_eventstore::StoreError;
        match e {
            StoreError::Database(e) => CommandError::from(e),
            StoreError::Corrupt(_) => CommandError::Internal(e.to_string()),
            _ => CommandError::Store(e.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for CommandError {
    /// An outage (the connection closed or failed; SQLSTATE classes 08 connection, 40 rollback,
    /// 53 resources, 57 operator intervention) is worth retrying; any other database error, a
    /// value that does not convert or a query answering other rows than expected included, is a
    /// fault here.
    fn from(e: tokio_postgres::Error) -> Self {
        let transient = match e.as_db_error() {
            None => {
                e.is_closed()
                    || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
            }
            Some(db) => ["08", "40", "53", "57"]
                .iter()
                .any(|class| db.code().code().starts_with(class)),
        };
        if transient {
            CommandError::Store(format!("database error: {e}"))
        } else {
            CommandError::Internal(format!("database error: {e}"))
        }
    }
}

impl From<deadpool_postgres::PoolError> for CommandError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        CommandError::Store(format!("no database connection: {e}"))
    }
}
