//! JSON field values → bound parameters, by the column's conversion class and the dialect.
//!
//! PostgreSQL and MySQL receive text and convert it themselves (PostgreSQL through a cast to
//! the column's type), so a value the database cannot take is rejected by the database with its
//! own message. SQLite, dynamically typed, receives native integers and floats.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::db::{Dialect, Param};
use crate::schema::Kind;

/// Convert one field value for a column. `Err` is a message for a rejected record.
pub fn to_param(dialect: Dialect, kind: Kind, value: Option<&Value>) -> Result<Param, String> {
    let null = || {
        if dialect == Dialect::Postgres && kind == Kind::Bytes {
            Param::Bytes(None)
        } else {
            Param::Text(None)
        }
    };
    let Some(value) = value else {
        return Ok(null());
    };
    let text = |s: String| Ok(Param::Text(Some(s)));
    match value {
        Value::Null => Ok(null()),
        _ if kind == Kind::Json => text(value.to_string()),
        Value::String(s) if kind == Kind::Bytes => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| Param::Bytes(Some(b)))
            .map_err(|e| format!("expected base64 for a binary column: {e}")),
        _ if kind == Kind::Bytes => Err("expected a base64 string for a binary column".into()),
        Value::Bool(b) => {
            let numeric = matches!(
                kind,
                Kind::Bool | Kind::Int | Kind::Float | Kind::Decimal | Kind::Other
            );
            match dialect {
                Dialect::Sqlite if numeric => Ok(Param::Int(i64::from(*b))),
                Dialect::MySql if numeric => text(if *b { "1" } else { "0" }.into()),
                _ => text(b.to_string()),
            }
        }
        Value::Number(n) if matches!(kind, Kind::Timestamp | Kind::TimestampTz) => {
            // Epoch milliseconds.
            let ms = n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or("timestamp out of range")?;
            let t = DateTime::<Utc>::from_timestamp_millis(ms).ok_or("timestamp out of range")?;
            text(format_time(dialect, &t))
        }
        Value::Number(n) => match dialect {
            Dialect::Sqlite if kind != Kind::Text => {
                if let Some(i) = n.as_i64() {
                    Ok(Param::Int(i))
                } else if n.is_u64() {
                    text(n.to_string())
                } else {
                    Ok(Param::Float(n.as_f64().unwrap_or(f64::NAN)))
                }
            }
            _ => text(n.to_string()),
        },
        Value::String(s) => {
            if dialect == Dialect::MySql
                && matches!(kind, Kind::Timestamp | Kind::TimestampTz)
                && let Ok(t) = DateTime::parse_from_rfc3339(s)
            {
                return text(format_time(dialect, &t.with_timezone(&Utc)));
            }
            text(s.clone())
        }
        Value::Array(_) | Value::Object(_) => text(value.to_string()),
    }
}

fn format_time(dialect: Dialect, t: &DateTime<Utc>) -> String {
    match dialect {
        Dialect::MySql => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        _ => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_by_dialect_and_kind() {
        let pg = Dialect::Postgres;
        assert_eq!(
            to_param(pg, Kind::Int, Some(&json!(42))).unwrap(),
            Param::Text(Some("42".into()))
        );
        assert_eq!(to_param(pg, Kind::Bytes, None).unwrap(), Param::Bytes(None));
        assert_eq!(
            to_param(pg, Kind::Json, Some(&json!("x"))).unwrap(),
            Param::Text(Some("\"x\"".into()))
        );
        assert_eq!(
            to_param(Dialect::Sqlite, Kind::Int, Some(&json!(7))).unwrap(),
            Param::Int(7)
        );
        assert_eq!(
            to_param(Dialect::Sqlite, Kind::Bool, Some(&json!(true))).unwrap(),
            Param::Int(1)
        );
        assert_eq!(
            to_param(
                Dialect::MySql,
                Kind::TimestampTz,
                Some(&json!("2026-11-25T10:00:00.5+01:00"))
            )
            .unwrap(),
            Param::Text(Some("2026-11-25 09:00:00.500000".into()))
        );
        assert_eq!(
            to_param(pg, Kind::TimestampTz, Some(&json!(0))).unwrap(),
            Param::Text(Some("1970-01-01T00:00:00Z".into()))
        );
        assert!(to_param(pg, Kind::Bytes, Some(&json!("***"))).is_err());
        assert_eq!(
            to_param(pg, Kind::Bytes, Some(&json!("AAE="))).unwrap(),
            Param::Bytes(Some(vec![0, 1]))
        );
    }
}
