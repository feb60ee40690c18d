//! Error types of the core. Every error says whose fault it is ([`ErrorKind`]), whether retrying
//! can help, what caused it (a [`std::error::Error::source`] chain down to the client library's
//! error) and, where it concerns one field, that field's path. The worker decides on those
//! facts whether to back off and retry a job or put it in `failed`; the CLI picks its exit code
//! from them.

use std::sync::Arc;

/// Whose fault an error is: its domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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

impl ErrorKind {
    /// The lowercase name used in logs, the worker's status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::External => "external",
            ErrorKind::Data => "data",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every error of a job can say about itself.
pub trait Fault: std::error::Error {
    /// Whose fault it is.
    fn kind(&self) -> ErrorKind;
    /// Whether running the same thing again later may succeed (a broker that comes back).
    fn retryable(&self) -> bool;
}

/// The chain of causes of an error, outermost first, each as its `Display` text (repeated
/// texts skipped: wrappers often repeat their cause).
pub fn causes(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if out.last().is_none_or(|last| last != &text) && !err.to_string().ends_with(&text) {
            out.push(text);
        }
        next = e.source();
    }
    out
}

/// An error with its causes on one line: `message: cause: cause`.
pub fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    for cause in causes(err) {
        text.push_str(": ");
        text.push_str(&cause);
    }
    text
}

/// An error and its `source` chain, copied as text.
#[derive(Debug)]
struct CopiedError {
    text: String,
    source: Option<Box<CopiedError>>,
}

impl CopiedError {
    fn of(err: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            text: err.to_string(),
            source: err.source().map(|s| Box::new(Self::of(s))),
        }
    }
}

impl std::fmt::Display for CopiedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for CopiedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// The underlying error of a [`ConnectorError`], shared so the error stays `Clone`.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An error raised by a source or sink.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    /// Whose fault it is.
    pub kind: ErrorKind,
    /// Whether retrying the same operation may succeed.
    pub retryable: bool,
    /// Human-readable detail: what was being done, in the connector's words.
    pub message: String,
    /// The field the error concerns (`columns.email`, `path`), when it concerns one.
    pub field: Option<String>,
    /// What caused it: the client library's error, kept for its own `source` chain.
    #[source]
    pub cause: Option<Cause>,
}

impl ConnectorError {
    fn new(kind: ErrorKind, retryable: bool, message: impl Into<String>) -> Self {
        Self {
            kind,
            retryable,
            message: message.into(),
            field: None,
            cause: None,
        }
    }

    /// A configuration error (never retryable).
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, false, message)
    }

    /// Bad data: a record that cannot be decoded or written as it is (never retryable).
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, false, message)
    }

    /// A transient failure of an external system: worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::External, true, message)
    }

    /// A permanent failure of an external system.
    pub fn external(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::External, false, message)
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, false, message)
    }

    /// The same error, caused by `cause` (the client library's error).
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Arc::new(cause));
        self
    }

    /// The same error, caused by `cause` when the client library's error cannot be kept itself
    /// (it is neither `Clone` nor shareable): its text and its whole `source` chain are copied.
    pub fn caused_by(self, cause: &(dyn std::error::Error + 'static)) -> Self {
        self.with_source(CopiedError::of(cause))
    }

    /// The same error, concerning `field`.
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Classify an I/O error: interruptions, timeouts, refused or reset connections and a full
    /// disk are transient, the rest permanent. The error is kept as the cause.
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
        // The text stays in the message too: connectors log `{e}` while retrying.
        let copy = std::io::Error::new(err.kind(), err.to_string());
        Self::new(ErrorKind::External, retryable, format!("{context}: {err}")).with_source(copy)
    }
}

impl Fault for ConnectorError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }

    fn retryable(&self) -> bool {
        self.retryable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_cause_and_classification() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = ConnectorError::io("connecting to db:5432", &refused);
        assert!(e.retryable);
        assert_eq!(e.kind, ErrorKind::External);
        assert_eq!(e.to_string(), "connecting to db:5432: refused");
        assert_eq!(with_causes(&e), "connecting to db:5432: refused");
        assert_eq!(
            std::error::Error::source(&e)
                .map(|c| c.to_string())
                .as_deref(),
            Some("refused")
        );
        let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        assert!(!ConnectorError::io("open", &denied).retryable);
    }

    #[test]
    fn causes_skip_repeated_text() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: inner")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner")]
        struct Inner;
        assert!(causes(&Outer(Inner)).is_empty());
        let e = ConnectorError::data("row 3 rejected")
            .with_source(Inner)
            .at("columns.email");
        assert_eq!(causes(&e), vec!["inner".to_string()]);
        assert_eq!(e.field.as_deref(), Some("columns.email"));
        assert_eq!(e.kind(), ErrorKind::Data);
    }

    #[test]
    fn a_copied_cause_keeps_the_whole_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("pool failed")]
        struct Pool(#[source] std::io::Error);
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = ConnectorError::transient("connecting to db:5432").caused_by(&Pool(refused));
        assert_eq!(
            with_causes(&e),
            "connecting to db:5432: pool failed: refused"
        );
    }
}
