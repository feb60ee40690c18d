//! What a database error means for the pipeline: a rejected row, a transient failure worth
//! retrying, or a permanent failure.

use sluice_core::ConnectorError;
use sqlx::mysql::MySqlDatabaseError;

use crate::db::Dialect;

/// A classified database error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The data is bad (constraint, type, range): the row is rejected, the rest may land.
    Row(String),
    /// Connection lost, deadlock, serialization failure, busy: retry the whole write.
    Transient(String),
    /// Anything else (missing table, syntax, permissions): stop.
    Fatal(String),
}

impl Failure {
    /// As a connector error, with context.
    pub fn into_connector(self, context: &str) -> ConnectorError {
        match self {
            Failure::Row(m) | Failure::Fatal(m) => {
                ConnectorError::external(format!("{context}: {m}"))
            }
            Failure::Transient(m) => ConnectorError::transient(format!("{context}: {m}")),
        }
    }
}

/// Classify an error from a statement.
pub fn classify(dialect: Dialect, err: &sqlx::Error) -> Failure {
    let msg = err.to_string();
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match dialect {
                Dialect::Postgres => {
                    if code.starts_with("22") || code.starts_with("23") {
                        Failure::Row(msg)
                    } else if code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || matches!(code.as_str(), "40001" | "40P01" | "55P03" | "25P03")
                    {
                        Failure::Transient(msg)
                    } else {
                        Failure::Fatal(msg)
                    }
                }
                Dialect::MySql => {
                    let number = db
                        .try_downcast_ref::<MySqlDatabaseError>()
                        .map_or(0, MySqlDatabaseError::number);
                    match number {
                        // deadlock, lock wait timeout, too many connections, server gone,
                        // connection killed, shutdown in progress, query interrupted
                        1205
                        | 1213
                        | 1040
                        | 1053
                        | 1158..=1161
                        | 1317
                        | 1927
                        | 2006
                        | 2013
                        | 4031 => Failure::Transient(msg),
                        // NULL in NOT NULL, duplicate key, out of range, truncated, incorrect
                        // value, too long, foreign key, check constraint, invalid JSON, ...
                        1048 | 1062 | 1136 | 1216 | 1217 | 1264 | 1265 | 1292 | 1364 | 1366
                        | 1367 | 1406 | 1411 | 1451 | 1452 | 1690 | 3140 | 3819 | 4025 | 4078
                        | 1586 | 1859 => Failure::Row(msg),
                        _ if code.starts_with("22") || code.starts_with("23") => Failure::Row(msg),
                        _ => Failure::Fatal(msg),
                    }
                }
                Dialect::Sqlite => {
                    let primary = code.parse::<i64>().map_or(-1, |c| c & 0xff);
                    match primary {
                        // SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_TOOBIG, SQLITE_RANGE
                        19 | 20 | 18 | 25 => Failure::Row(msg),
                        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL
                        5 | 6 | 10 | 13 => Failure::Transient(msg),
                        _ => Failure::Fatal(msg),
                    }
                }
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Failure::Transient(msg),
        sqlx::Error::Encode(_) => Failure::Row(msg),
        _ => Failure::Fatal(msg),
    }
}

/// An error while connecting: the server cannot be reached (refused, reset, timed out, TLS
/// handshake) is a transient external fault; one that refuses our credentials or does not have
/// the database is a config error (fix the URL); the rest as [`classify`] says. The message keeps
/// the driver's own cause ("Connection refused") and never the password.
pub fn connect_error(dialect: Dialect, url: &str, err: &sqlx::Error) -> ConnectorError {
    let message = format!("connecting to {}: {err}", crate::db::redact(url));
    let code = err
        .as_database_error()
        .and_then(|db| db.code().map(|c| c.into_owned()))
        .unwrap_or_default();
    let mysql_number = err
        .as_database_error()
        .and_then(|db| db.try_downcast_ref::<MySqlDatabaseError>())
        .map(MySqlDatabaseError::number);
    let refused_us = match dialect {
        // invalid authorization, invalid catalog name (no such database)
        Dialect::Postgres => code.starts_with("28") || code == "3D000",
        // access denied (user, password, database), unknown database
        Dialect::MySql => matches!(mysql_number, Some(1044 | 1045 | 1049 | 1698)),
        Dialect::Sqlite => false,
    };
    let error = match err {
        _ if refused_us => ConnectorError::config(message),
        sqlx::Error::Configuration(_) => ConnectorError::config(message),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::Protocol(_) => ConnectorError::transient(message),
        _ => classify(dialect, err)
            .into_connector(&format!("connecting to {}", crate::db::redact(url))),
    };
    error.caused_by(err)
}

/// Classify and convert in one step.
pub fn connector_error(dialect: Dialect, context: &str, err: &sqlx::Error) -> ConnectorError {
    classify(dialect, err)
        .into_connector(context)
        .caused_by(err)
}

/// True when a statement failed on a unique key (primary key or unique index).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}
