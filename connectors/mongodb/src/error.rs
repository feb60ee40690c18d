//! What a driver error means: whose fault, and whether a retry can help. Per-item errors of a
//! bulk write are classified in [`item`].

use bson::Document;
use mongodb::error::{
    BulkWriteError, Error, ErrorKind as Kind, IndexedWriteError, RETRYABLE_WRITE_ERROR,
    TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteError,
};
use sluice_core::ConnectorError;
use sluice_core::error::with_causes;

/// Server error codes a retry can get past: a primary stepping down or shutting down, network
/// trouble between members, write conflicts and lock timeouts inside transactions.
const RETRYABLE_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    24,    // LockTimeout
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    112,   // WriteConflict
    189,   // PrimarySteppedDown
    251,   // NoSuchTransaction (the transaction was aborted under us)
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Codes that mean the user or the job file must change something.
const CONFIG_CODES: &[i32] = &[
    13,   // Unauthorized
    18,   // AuthenticationFailed
    20,   // IllegalOperation (e.g. transactions on a standalone server)
    263,  // OperationNotSupportedInTransaction
    8000, // AtlasError (auth)
];

/// Duplicate key.
pub const DUPLICATE_KEY: i32 = 11000;

/// A whole operation failed: network and server-selection trouble, stepdowns and errors labelled
/// transient by the server are retryable; authentication is a config error at `url`.
pub fn mongo_error(what: &str, err: &Error) -> ConnectorError {
    let message = format!("{what}: {}", describe(err));
    let transient_label = err.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || err.contains_label(RETRYABLE_WRITE_ERROR)
        || err.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT);
    let error = match err.kind.as_ref() {
        _ if transient_label => ConnectorError::transient(message),
        Kind::Io(_) | Kind::ConnectionPoolCleared { .. } | Kind::ServerSelection { .. } => {
            ConnectorError::transient(message)
        }
        Kind::DnsResolve { .. } => ConnectorError::transient(message),
        Kind::Authentication { .. } => {
            ConnectorError::config(format!("{message} (check the credentials in `url`)")).at("url")
        }
        Kind::InvalidArgument { .. } | Kind::InvalidTlsConfig { .. } => {
            ConnectorError::config(message).at("url")
        }
        Kind::Command(c) if RETRYABLE_CODES.contains(&c.code) => ConnectorError::transient(message),
        Kind::Command(c) if CONFIG_CODES.contains(&c.code) => ConnectorError::config(message),
        Kind::Write(mongodb::error::WriteFailure::WriteConcernError(_)) => {
            ConnectorError::transient(message)
        }
        Kind::BulkWrite(b) if !b.write_concern_errors.is_empty() => {
            ConnectorError::transient(message)
        }
        Kind::InsertMany(i) if i.write_concern_error.is_some() => {
            ConnectorError::transient(message)
        }
        Kind::Internal { .. } => ConnectorError::internal(message),
        _ => ConnectorError::external(message),
    };
    error.caused_by(err)
}

/// The driver's error in a line: the server's code name, code and message for a command error
/// (its `Display` adds the raw reply), the kind's text otherwise, with the error labels.
pub fn describe(err: &Error) -> String {
    let mut text = match err.kind.as_ref() {
        Kind::Command(c) => format!("{} ({}): {}", c.code_name, c.code, c.message),
        Kind::BulkWrite(b) => {
            let first = b.write_errors.values().next().map(|w| w.message.clone());
            match (first, b.write_concern_errors.first()) {
                (_, Some(wc)) => format!("write concern error: {}", wc.message),
                (Some(m), None) => format!("{} item errors, one: {m}", b.write_errors.len()),
                (None, None) => "bulk write failed".into(),
            }
        }
        Kind::InsertMany(i) => {
            let errors = i.write_errors.as_deref().unwrap_or_default();
            match (errors.first(), &i.write_concern_error) {
                (_, Some(wc)) => format!("write concern error: {}", wc.message),
                (Some(e), None) => format!("{} item errors, one: {}", errors.len(), e.message),
                (None, None) => "insert failed".into(),
            }
        }
        Kind::Io(e) => format!("I/O error: {}", with_causes(e.as_ref())),
        other => other.to_string(),
    };
    if !err.labels().is_empty() {
        let mut labels: Vec<&String> = err.labels().iter().collect();
        labels.sort();
        let labels: Vec<&str> = labels.into_iter().map(String::as_str).collect();
        text.push_str(&format!(" [{}]", labels.join(", ")));
    }
    text
}

/// What became of one item of a bulk write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemOutcome {
    /// A duplicate key: rejected, or written when duplicates are ignored.
    Duplicate(String),
    /// Refused for good (validation, bad field names, too large): the server's message.
    Reject(String),
    /// Failed for now: worth writing again.
    Retry(String),
}

/// Classify one item error of a bulk write.
pub fn item(err: &WriteError) -> ItemOutcome {
    classify(
        err.code,
        err.code_name.as_deref(),
        &err.message,
        err.details.as_ref(),
    )
}

/// Classify one item error of an `insert_many`.
pub fn inserted_item(err: &IndexedWriteError) -> ItemOutcome {
    classify(
        err.code,
        err.code_name.as_deref(),
        &err.message,
        err.details.as_ref(),
    )
}

fn classify(
    code: i32,
    name: Option<&str>,
    message: &str,
    details: Option<&Document>,
) -> ItemOutcome {
    let mut text = match name.filter(|n| !n.is_empty()) {
        Some(name) => format!("{name} ({code}): {message}"),
        None => format!("code {code}: {message}"),
    };
    if let Some(details) = details {
        // Validation failures say which rule failed here.
        text.push_str(&format!(" {details}"));
    }
    if code == DUPLICATE_KEY {
        ItemOutcome::Duplicate(text)
    } else if RETRYABLE_CODES.contains(&code) {
        ItemOutcome::Retry(text)
    } else {
        ItemOutcome::Reject(text)
    }
}

/// The per-item errors of a failed bulk write, when that is what failed (and no write concern
/// error makes the whole write doubtful).
pub fn item_errors(err: &Error) -> Option<&BulkWriteError> {
    match err.kind.as_ref() {
        Kind::BulkWrite(b) if b.write_concern_errors.is_empty() && !b.write_errors.is_empty() => {
            Some(b)
        }
        _ => None,
    }
}

/// The per-item errors of a failed `insert_many` (indexes into its documents), when that is
/// what failed (and no write concern error makes the whole write doubtful).
pub fn insert_errors(err: &Error) -> Option<&[IndexedWriteError]> {
    match err.kind.as_ref() {
        Kind::InsertMany(i) if i.write_concern_error.is_none() => i
            .write_errors
            .as_deref()
            .filter(|errors| !errors.is_empty()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_by_code() {
        let e = |code, msg: &str| {
            let mut w: WriteError = mongodb::bson::deserialize_from_document(mongodb::bson::doc! {
                "code": code, "errmsg": msg
            })
            .unwrap();
            w.code_name = None;
            w
        };
        assert!(matches!(
            item(&e(11000, "E11000 dup")),
            ItemOutcome::Duplicate(_)
        ));
        assert!(
            matches!(item(&e(121, "Document failed validation")), ItemOutcome::Reject(m) if m.contains("failed validation"))
        );
        assert!(matches!(
            item(&e(112, "WriteConflict")),
            ItemOutcome::Retry(_)
        ));
    }
}
