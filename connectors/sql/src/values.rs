//! JSON field values → bound parameters, by the column's conversion class and the dialect.
//!
//! Integer and floating-point columns receive native 64-bit integers and doubles on every
//! database (a JSON string holding a number is parsed here): the server neither parses text
//! nor runs a conversion per value, which is most of the cost of a numeric column. Every other
//! class goes to PostgreSQL and MySQL as text for the database to convert (PostgreSQL through a
//! cast to the column's type), so a value the database cannot take is rejected with its own
//! message. A column's parameter type never varies between rows: PostgreSQL prepares a
//! statement once for the types of its first execution.

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::db::{Dialect, Param};
use crate::schema::Kind;

/// Convert one field value for a column. `Err` is a message for a rejected record.
pub fn to_param(dialect: Dialect, kind: Kind, value: Option<Value>) -> Result<Param, String> {
    let null = || match kind {
        Kind::Int => Param::Int(None),
        Kind::Float => Param::Float(None),
        Kind::Bytes if dialect == Dialect::Postgres => Param::Bytes(None),
        _ => Param::Text(None),
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
        _ if kind == Kind::Int => integer(&value).map(|i| Param::Int(Some(i))),
        _ if kind == Kind::Float => float(&value).map(|f| Param::Float(Some(f))),
        Value::Bool(b) => {
            let numeric = matches!(
                kind,
                Kind::Bool | Kind::Int | Kind::Float | Kind::Decimal | Kind::Other
            );
            match dialect {
                Dialect::Sqlite if numeric => Ok(Param::Int(Some(i64::from(b)))),
                Dialect::MySql if numeric => text(if b { "1" } else { "0" }.into()),
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
                    Ok(Param::Int(Some(i)))
                } else if n.is_u64() {
                    text(n.to_string())
                } else {
                    Ok(Param::Float(Some(n.as_f64().unwrap_or(f64::NAN))))
                }
            }
            _ => text(n.to_string()),
        },
        Value::String(s) => {
            if dialect == Dialect::MySql
                && matches!(kind, Kind::Timestamp | Kind::TimestampTz)
                && let Ok(t) = DateTime::parse_from_rfc3339(&s)
            {
                return text(format_time(dialect, &t.with_timezone(&Utc)));
            }
            text(s)
        }
        Value::Array(_) | Value::Object(_) => text(value.to_string()),
    }
}

/// The value of an integer column: a JSON integer, a float without a fraction (`3.0`), a
/// boolean (1/0) or a string holding one of those.
fn integer(value: &Value) -> Result<i64, String> {
    let from_float = |f: f64| {
        // i64::MAX as f64 rounds up to 2^63, which does not fit; -2^63 does.
        (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
    };
    let parsed = match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(from_float)),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(from_float))
        }
        _ => None,
    };
    parsed.ok_or_else(|| format!("expected an integer (64-bit), got {value}"))
}

/// The value of a floating-point column: a JSON number, or a string holding one (also `NaN`,
/// `Infinity`, `-Infinity`).
fn float(value: &Value) -> Result<f64, String> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("expected a number, got {value}"))
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
            to_param(pg, Kind::Int, Some(json!(42))).unwrap(),
            Param::Int(Some(42))
        );
        assert_eq!(
            to_param(pg, Kind::Int, Some(json!(" 42 "))).unwrap(),
            Param::Int(Some(42))
        );
        assert_eq!(
            to_param(Dialect::MySql, Kind::Int, Some(json!(3.0))).unwrap(),
            Param::Int(Some(3))
        );
        assert_eq!(to_param(pg, Kind::Int, None).unwrap(), Param::Int(None));
        assert_eq!(
            to_param(pg, Kind::Int, Some(Value::Null)).unwrap(),
            Param::Int(None)
        );
        let err = to_param(pg, Kind::Int, Some(json!(3.5))).unwrap_err();
        assert!(err.contains("expected an integer"), "{err}");
        assert!(to_param(pg, Kind::Int, Some(json!(1e19))).is_err());
        assert!(to_param(pg, Kind::Int, Some(json!("x"))).is_err());
        assert!(to_param(pg, Kind::Int, Some(json!([1]))).is_err());
        assert_eq!(
            to_param(pg, Kind::Float, Some(json!(21))).unwrap(),
            Param::Float(Some(21.0))
        );
        assert_eq!(
            to_param(Dialect::MySql, Kind::Float, Some(json!("-1.5e3"))).unwrap(),
            Param::Float(Some(-1500.0))
        );
        match to_param(pg, Kind::Float, Some(json!("NaN"))).unwrap() {
            Param::Float(Some(f)) => assert!(f.is_nan()),
            other => panic!("{other:?}"),
        }
        assert!(to_param(pg, Kind::Float, Some(json!(true))).is_err());
        assert_eq!(
            to_param(pg, Kind::Decimal, Some(json!(1.25))).unwrap(),
            Param::Text(Some("1.25".into()))
        );
        assert_eq!(to_param(pg, Kind::Bytes, None).unwrap(), Param::Bytes(None));
        assert_eq!(
            to_param(pg, Kind::Json, Some(json!("x"))).unwrap(),
            Param::Text(Some("\"x\"".into()))
        );
        assert_eq!(
            to_param(Dialect::Sqlite, Kind::Int, Some(json!(7))).unwrap(),
            Param::Int(Some(7))
        );
        assert_eq!(
            to_param(Dialect::Sqlite, Kind::Bool, Some(json!(true))).unwrap(),
            Param::Int(Some(1))
        );
        assert_eq!(
            to_param(
                Dialect::MySql,
                Kind::TimestampTz,
                Some(json!("2026-11-25T10:00:00.5+01:00"))
            )
            .unwrap(),
            Param::Text(Some("2026-11-25 09:00:00.500000".into()))
        );
        assert_eq!(
            to_param(pg, Kind::TimestampTz, Some(json!(0))).unwrap(),
            Param::Text(Some("1970-01-01T00:00:00Z".into()))
        );
        assert!(to_param(pg, Kind::Bytes, Some(json!("***"))).is_err());
        assert_eq!(
            to_param(pg, Kind::Bytes, Some(json!("AAE="))).unwrap(),
            Param::Bytes(Some(vec![0, 1]))
        );
    }
}
