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
    /// Anything else: the database, the log. Logged, not shown.
    #[error("{0}")]
    Internal(String),
}

impl From<bosun_eventstore::StoreError> for CommandError {
    fn from(e: bosun_eventstore::StoreError) -> Self {
        CommandError::Internal(e.to_string())
    }
}

impl From<tokio_postgres::Error> for CommandError {
    fn from(e: tokio_postgres::Error) -> Self {
        CommandError::Internal(format!("database error: {e}"))
    }
}

impl From<deadpool_postgres::PoolError> for CommandError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        CommandError::Internal(format!("no database connection: {e}"))
    }
}
