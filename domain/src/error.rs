//! Why the domain refuses a command. Each kind maps to one HTTP status at the API.

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Input that can never be accepted (400).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The current state forbids the command (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The thing the command is about does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// A limit of the one acting forbids the command, such as a quota (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The input is over a size limit, such as a file past `runnables.max_file_bytes` (413).
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    /// Input this server's settings do not accept, with a code saying which (400), such as a
    /// role job's shell command where commands are off (`commands_not_allowed`).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::TooLarge {
            code,
            message: message.into(),
        }
    }

    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            code,
            message: message.into(),
        }
    }
}
