//! Error types of the core. Errors say whose fault they are and whether a retry can help.

/// Whose fault an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The job's configuration is wrong; fix the job file.
    Config,
    /// An external system (broker, database, file system) failed or refused.
    External,
    /// The data itself is bad (cannot be decoded or is rejected).
    Data,
    /// A bug or broken invariant inside Sluice.
    Internal,
}

/// An error raised by a source or sink.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    /// Whose fault it is.
    pub kind: ErrorKind,
    /// Whether retrying the same operation may succeed.
    pub retryable: bool,
    /// Human-readable detail.
    pub message: String,
}

impl ConnectorError {
    /// A configuration error (never retryable).
    pub fn config(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Config,
            retryable: false,
            message: message.into(),
        }
    }

    /// A transient failure of an external system: worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::External,
            retryable: true,
            message: message.into(),
        }
    }

    /// A permanent failure of an external system.
    pub fn external(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::External,
            retryable: false,
            message: message.into(),
        }
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            retryable: false,
            message: message.into(),
        }
    }

    /// Classify an I/O error: interruptions and timeouts are transient, the rest permanent.
    pub fn io(context: &str, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let retryable = matches!(
            err.kind(),
            K::Interrupted
                | K::TimedOut
                | K::WouldBlock
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::ConnectionRefused
                | K::StorageFull
        );
        Self {
            kind: ErrorKind::External,
            retryable,
            message: format!("{context}: {err}"),
        }
    }
}
