//! Rows → JSON objects, with column types mapped faithfully:
//! integers and floats → numbers (a non-finite float → a string), exact decimals → strings (no
//! precision lost, trailing fractional zeros trimmed), booleans → booleans, timestamps with a zone → RFC 3339 in UTC with
//! microseconds (`2026-11-25T10:00:00.000000Z`), without a zone → the same without `Z`, dates →
//! `YYYY-MM-DD`, times → `HH:MM:SS.ffffff`, JSON → embedded JSON, bytes → base64, UUIDs → text.

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value};
use sluice_core::ConnectorError;
use sqlx::mysql::MySqlRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::{BigDecimal, Json, Uuid};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use crate::db::{Db, Param, bind_all};
use crate::error::connector_error;

/// A JSON object per row.
pub type JsonRows = Vec<Map<String, Value>>;

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

/// An exact decimal as text, without trailing fractional zeros (PostgreSQL's wire format does
/// not keep the declared scale through the driver).
fn decimal(d: BigDecimal) -> Value {
    let s = d.to_string();
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    Value::String(s)
}

fn b64(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

fn tz(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn naive(t: NaiveDateTime) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
}

fn date(d: NaiveDate) -> Value {
    Value::String(d.format("%Y-%m-%d").to_string())
}

fn time(t: NaiveTime) -> Value {
    Value::String(t.format("%H:%M:%S%.6f").to_string())
}

fn unsupported(column: &str, ty: &str) -> sqlx::Error {
    sqlx::Error::Decode(
        format!(
            "column {column:?} has type {ty}, which the SQL source does not map; cast it in a custom query (e.g. CAST(x AS TEXT))"
        )
        .into(),
    )
}

fn pg_value(row: &PgRow, i: usize) -> Result<Value, sqlx::Error> {
    if row.try_get_raw(i)?.is_null() {
        return Ok(Value::Null);
    }
    let col = row.column(i);
    Ok(match col.type_info().name() {
        "BOOL" => Value::Bool(row.try_get(i)?),
        "INT2" => Value::from(row.try_get::<i16, _>(i)?),
        "INT4" => Value::from(row.try_get::<i32, _>(i)?),
        "INT8" => Value::from(row.try_get::<i64, _>(i)?),
        "OID" => Value::from(row.try_get::<sqlx::postgres::types::Oid, _>(i)?.0),
        "FLOAT4" => float(f64::from(row.try_get::<f32, _>(i)?)),
        "FLOAT8" => float(row.try_get::<f64, _>(i)?),
        "NUMERIC" => decimal(row.try_get::<BigDecimal, _>(i)?),
        "TIMESTAMPTZ" => tz(row.try_get(i)?),
        "TIMESTAMP" => naive(row.try_get(i)?),
        "DATE" => date(row.try_get(i)?),
        "TIME" => time(row.try_get(i)?),
        "JSON" | "JSONB" => row.try_get::<Json<Value>, _>(i)?.0,
        "BYTEA" => b64(&row.try_get::<Vec<u8>, _>(i)?),
        "UUID" => Value::String(row.try_get::<Uuid, _>(i)?.to_string()),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" | "UNKNOWN" => {
            Value::String(row.try_get(i)?)
        }
        other => match row.try_get_unchecked::<String, _>(i) {
            // Enums and domains over text arrive as text.
            Ok(s) if col.type_info().kind_is_enum_or_text() => Value::String(s),
            _ => return Err(unsupported(col.name(), other)),
        },
    })
}

trait EnumOrText {
    fn kind_is_enum_or_text(&self) -> bool;
}

impl EnumOrText for sqlx::postgres::PgTypeInfo {
    fn kind_is_enum_or_text(&self) -> bool {
        matches!(self.kind(), sqlx::postgres::PgTypeKind::Enum(_))
    }
}

fn my_value(row: &MySqlRow, i: usize) -> Result<Value, sqlx::Error> {
    if row.try_get_raw(i)?.is_null() {
        return Ok(Value::Null);
    }
    let col = row.column(i);
    let ty = col.type_info().name();
    Ok(match ty {
        "BOOLEAN" => Value::Bool(row.try_get(i)?),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
            Value::from(row.try_get_unchecked::<i64, _>(i)?)
        }
        t if t.ends_with("UNSIGNED") => Value::from(row.try_get_unchecked::<u64, _>(i)?),
        "FLOAT" => float(f64::from(row.try_get::<f32, _>(i)?)),
        "DOUBLE" => float(row.try_get::<f64, _>(i)?),
        "DECIMAL" => decimal(row.try_get::<BigDecimal, _>(i)?),
        "DATETIME" => naive(row.try_get(i)?),
        "TIMESTAMP" => tz(row.try_get(i)?),
        "DATE" => date(row.try_get(i)?),
        "TIME" => match row.try_get::<NaiveTime, _>(i) {
            Ok(t) => time(t),
            Err(_) => Value::String(row.try_get_unchecked::<String, _>(i)?),
        },
        "JSON" => row.try_get::<Json<Value>, _>(i)?.0,
        "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BINARY" | "VARBINARY" | "BIT"
        | "GEOMETRY" => b64(&row.try_get_unchecked::<Vec<u8>, _>(i)?),
        "VARCHAR" | "CHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            Value::String(row.try_get_unchecked(i)?)
        }
        other => return Err(unsupported(col.name(), other)),
    })
}

fn lite_value(row: &SqliteRow, i: usize) -> Result<Value, sqlx::Error> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let storage = raw.type_info().name().to_string();
    let declared = row.column(i).type_info().name().to_ascii_uppercase();
    Ok(match storage.as_str() {
        "INTEGER" if declared.starts_with("BOOL") => {
            Value::Bool(row.try_get_unchecked::<i64, _>(i)? != 0)
        }
        "INTEGER" => Value::from(row.try_get_unchecked::<i64, _>(i)?),
        "REAL" => float(row.try_get_unchecked::<f64, _>(i)?),
        "BLOB" => b64(&row.try_get_unchecked::<Vec<u8>, _>(i)?),
        _ => {
            let s: String = row.try_get_unchecked(i)?;
            if declared.starts_with("JSON")
                && let Ok(v) = serde_json::from_str(&s)
            {
                v
            } else {
                Value::String(s)
            }
        }
    })
}

fn to_objects<R: Row>(
    rows: &[R],
    decode: fn(&R, usize) -> Result<Value, sqlx::Error>,
) -> Result<JsonRows, sqlx::Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut obj = Map::with_capacity(row.len());
        for i in 0..row.len() {
            obj.insert(row.columns()[i].name().to_string(), decode(row, i)?);
        }
        out.push(obj);
    }
    Ok(out)
}

/// Run a query and return its rows as JSON objects.
pub async fn fetch_json(db: &Db, sql: &str, params: &[Param]) -> Result<JsonRows, ConnectorError> {
    let result = match db {
        Db::Pg(p) => match bind_all!(sqlx::query(sql), params).fetch_all(p).await {
            Ok(rows) => to_objects(&rows, pg_value),
            Err(e) => Err(e),
        },
        Db::My(p) => match bind_all!(sqlx::query(sql), params).fetch_all(p).await {
            Ok(rows) => to_objects(&rows, my_value),
            Err(e) => Err(e),
        },
        Db::Lite(p) => match bind_all!(sqlx::query(sql), params).fetch_all(p).await {
            Ok(rows) => to_objects(&rows, lite_value),
            Err(e) => Err(e),
        },
    };
    result.map_err(|e| connector_error(db.dialect(), "polling", &e))
}
