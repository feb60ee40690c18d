//! `TimestampConverter`: a field (or the whole value) between epoch numbers and text.
//!
//! ```toml
//! with = { type = "TimestampConverter", field = "ts", target_type = "rfc3339" }
//! with = { type = "TimestampConverter", field = "ts", target_type = "string", format = "%Y-%m-%d %H:%M:%S" }
//! with = { type = "TimestampConverter", field = "when", target_type = "unix", format = "%d/%m/%Y %H:%M", unix_precision = "seconds" }
//! ```
//!
//! Input: a number is time since the Unix epoch in `unix_precision` units (default
//! milliseconds); text is read with `format` when it is set, else as RFC 3339
//! (`2026-11-25T10:00:00.5+01:00`). `target_type`: `"unix"` (a number, in `unix_precision`),
//! `"string"` (written with `format`, in UTC) or `"rfc3339"` (UTC with milliseconds,
//! `2026-11-25T09:00:00.500Z`). `format` is strftime-style (`%Y-%m-%d`, as in
//! [jiff](https://docs.rs/jiff/latest/jiff/fmt/strtime/), not Java's `yyyy-MM-dd`); text read
//! without an offset (`%z`) is UTC. A field that is missing is left alone; one that cannot be
//! read fails the record.

use jiff::Timestamp;
use jiff::fmt::strtime;
use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::{ValuePath, config_at, config_error};

use crate::doc::{Doc, kind};
use crate::{Flow, Step, at};

/// What a timestamp becomes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Target {
    /// A number since the epoch, in `unix_precision`.
    Unix,
    /// Text written with `format`.
    String,
    /// RFC 3339 text in UTC with milliseconds.
    Rfc3339,
}

/// Unit of epoch numbers.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Precision {
    Seconds,
    #[default]
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimestampConverter {
    /// The field to convert; the whole value when absent.
    #[serde(default)]
    field: Option<ValuePath>,
    target_type: Target,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    unix_precision: Precision,
}

pub fn build(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: TimestampConverter = config_at(at_, with)?;
    match &c.format {
        Some(format) => {
            strtime::format(format.as_str(), Timestamp::UNIX_EPOCH)
                .map_err(|e| config_error(&at(at_, "format"), e))?;
        }
        None if c.target_type == Target::String => {
            let message = "missing: `target_type = \"string\"` writes with a format like \"%Y-%m-%d %H:%M:%S\"";
            return Err(config_error(&at(at_, "format"), message));
        }
        None => {}
    }
    Ok(Box::new(c))
}

impl TimestampConverter {
    fn read(&self, v: &Value) -> Result<Timestamp, String> {
        let range = |e: jiff::Error| format!("{v} is out of range: {e}");
        match v {
            Value::Number(n) => {
                let Some(i) = n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)) else {
                    return Err(format!("{v} is out of range"));
                };
                match self.unix_precision {
                    Precision::Seconds => Timestamp::from_second(i),
                    Precision::Milliseconds => Timestamp::from_millisecond(i),
                    Precision::Microseconds => Timestamp::from_microsecond(i),
                    Precision::Nanoseconds => Timestamp::from_nanosecond(i.into()),
                }
                .map_err(range)
            }
            Value::String(s) => match &self.format {
                Some(format) => {
                    let bad = |e: jiff::Error| format!("{v} does not match format {format:?}: {e}");
                    let tm = strtime::parse(format.as_str(), s).map_err(bad)?;
                    if tm.offset().is_some() {
                        tm.to_timestamp().map_err(bad)
                    } else {
                        let dt = tm.to_datetime().map_err(bad)?;
                        dt.to_zoned(jiff::tz::TimeZone::UTC)
                            .map(|z| z.timestamp())
                            .map_err(bad)
                    }
                }
                None => s
                    .parse::<Timestamp>()
                    .map_err(|e| format!("{v} is not an RFC 3339 time: {e}")),
            },
            other => Err(format!("cannot read a time from {}", kind(other))),
        }
    }

    fn write(&self, ts: Timestamp) -> Result<Value, String> {
        Ok(match self.target_type {
            Target::Unix => Value::from(match self.unix_precision {
                Precision::Seconds => ts.as_second(),
                Precision::Milliseconds => ts.as_millisecond(),
                Precision::Microseconds => ts.as_microsecond(),
                Precision::Nanoseconds => i64::try_from(ts.as_nanosecond())
                    .map_err(|_| format!("{ts} is out of range in nanoseconds"))?,
            }),
            Target::String => {
                let format = self.format.as_deref().unwrap_or("%+");
                Value::String(strtime::format(format, ts).map_err(|e| e.to_string())?)
            }
            Target::Rfc3339 => {
                let ms = ts.as_millisecond();
                let secs =
                    Timestamp::from_second(ms.div_euclid(1000)).map_err(|e| e.to_string())?;
                let base = strtime::format("%Y-%m-%dT%H:%M:%S", secs).map_err(|e| e.to_string())?;
                Value::String(format!("{base}.{:03}Z", ms.rem_euclid(1000)))
            }
        })
    }
}

impl Step for TimestampConverter {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let value = doc.value()?;
        let (slot, name) = match &self.field {
            Some(field) => match field.get_mut(value) {
                Some(v) => (v, format!("field `{field}`")),
                None => return Ok(Flow::Next),
            },
            None => (value, "value".to_string()),
        };
        if slot.is_null() {
            return Ok(Flow::Next);
        }
        let converted = self
            .read(slot)
            .and_then(|ts| self.write(ts))
            .map_err(|e| format!("{name}: {e}"))?;
        *slot = converted;
        Ok(Flow::Next)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use serde_json::{Value, json};

    fn convert(with: Value, input: &str) -> String {
        let mut with = with;
        with["type"] = json!("TimestampConverter");
        with["field"] = json!("t");
        value(with, &format!(r#"{{"t":{input}}}"#))
    }

    #[test]
    fn converts_between_unix_rfc3339_and_formatted_text() {
        let ms = "1795600800123"; // 2026-11-25T10:00:00.123Z
        assert_eq!(
            convert(json!({"target_type": "rfc3339"}), ms),
            r#"{"t":"2026-11-25T10:00:00.123Z"}"#
        );
        assert_eq!(
            convert(
                json!({"target_type": "string", "format": "%Y-%m-%d %H:%M"}),
                ms
            ),
            r#"{"t":"2026-11-25 10:00"}"#
        );
        assert_eq!(
            convert(
                json!({"target_type": "unix"}),
                r#""2026-11-25T11:00:00.123+01:00""#
            ),
            r#"{"t":1795600800123}"#
        );
        assert_eq!(
            convert(
                json!({"target_type": "unix", "format": "%d/%m/%Y %H:%M", "unix_precision": "seconds"}),
                r#""25/11/2026 10:00""#
            ),
            r#"{"t":1795600800}"#
        );
        assert_eq!(
            convert(
                json!({"target_type": "rfc3339", "unix_precision": "seconds"}),
                "0"
            ),
            r#"{"t":"1970-01-01T00:00:00.000Z"}"#
        );
        let with =
            json!({"type": "TimestampConverter", "target_type": "unix", "format": "%Y-%m-%d"});
        assert_eq!(value(with, r#""2026-11-25""#), "1795564800000");
    }

    #[test]
    fn unreadable_times_fail_and_bad_formats_are_config_errors() {
        let with = json!({"type": "TimestampConverter", "field": "t", "target_type": "unix"});
        let e = run(with.clone(), r#"{"t":"yesterday"}"#).unwrap_err();
        assert!(
            e.starts_with(r#"TimestampConverter: field `t`: "yesterday" is not an RFC 3339 time"#),
            "{e}"
        );
        let e = run(with.clone(), r#"{"t":true}"#).unwrap_err();
        assert!(e.ends_with("cannot read a time from a boolean"), "{e}");
        assert_eq!(
            value(with, r#"{"u":1}"#),
            r#"{"u":1}"#,
            "a missing field is left alone"
        );
        let e = smt(json!({"type": "TimestampConverter", "target_type": "string"}))
            .err()
            .unwrap();
        assert!(e.starts_with("`format`: missing"), "{e}");
        let e = smt(json!({"type": "TimestampConverter", "target_type": "unix", "format": "%Y %"}))
            .err()
            .unwrap();
        assert!(e.starts_with("`format`: "), "{e}");
        let e = smt(json!({"type": "TimestampConverter", "target_type": "Date"}))
            .err()
            .unwrap();
        assert!(
            e.starts_with("`target_type`: unknown variant `Date`"),
            "{e}"
        );
    }
}
