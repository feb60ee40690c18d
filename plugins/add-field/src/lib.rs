//! `add-field`: set, rename and timestamp top-level JSON fields.
//!
//! ```toml
//! [[transforms]]
//! plugin = "plugins/add-field.wasm"
//! with = { set = { pipeline = "sluice" }, rename = { temperature_c = "temp_c" }, timestamp = "processed_at" }
//! ```
//!
//! `set` adds or overwrites fields; `rename` renames fields that exist (in place); `timestamp`
//! names a field that receives the batch's processing time, as RFC 3339
//! (`timestamp_format = "rfc3339"`, default) or epoch milliseconds (`"millis"`). When only new
//! fields are added, the JSON text is appended to without being re-serialized.

use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_plugin_sdk::{Outcome, Plugin, Record, batch_time_ms, json};

/// How the processing time is written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// `"2026-11-25T10:00:00.000Z"`.
    #[default]
    Rfc3339,
    /// Milliseconds since the Unix epoch, as a number.
    Millis,
}

/// The `with` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Fields to add or overwrite.
    #[serde(default)]
    pub set: Map<String, Value>,
    /// Fields to rename: old name → new name.
    #[serde(default)]
    pub rename: Map<String, Value>,
    /// Field receiving the processing time.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Format of the processing time.
    #[serde(default)]
    pub timestamp_format: TimestampFormat,
}

/// The plugin.
pub struct AddField {
    config: Config,
    /// Every field name `set` or `timestamp` writes, in order.
    names: Vec<String>,
    renames: Vec<(String, String)>,
}

/// Format epoch milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

impl AddField {
    fn values(&self) -> Vec<(&str, Value)> {
        let mut out: Vec<(&str, Value)> = self
            .config
            .set
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if let Some(field) = &self.config.timestamp {
            let now = batch_time_ms();
            let v = match self.config.timestamp_format {
                TimestampFormat::Rfc3339 => Value::String(rfc3339(now)),
                TimestampFormat::Millis => Value::from(now),
            };
            out.push((field, v));
        }
        out
    }

    fn edit(&self, mut record: Record) -> Result<Outcome, String> {
        let values = self.values();
        if self.renames.is_empty() {
            let present = json::present_keys(&record.value, &self.names)
                .map_err(|e| format!("value is not a JSON object: {e}"))?;
            if !present.contains(&true) {
                let fields: Vec<(&str, &Value)> = values.iter().map(|(k, v)| (*k, v)).collect();
                if let Some(text) = json::append_fields(&record.value, &fields) {
                    record.value = text.into();
                    return Ok(Outcome::one(record));
                }
            }
        }
        let mut doc: Map<String, Value> = record
            .json()
            .map_err(|e| format!("value is not a JSON object: {e}"))?;
        for (from, to) in &self.renames {
            if let Some(v) = doc.shift_remove(from) {
                doc.insert(to.clone(), v);
            }
        }
        for (k, v) in values {
            doc.insert(k.to_string(), v);
        }
        record.set_json(&doc).map_err(|e| e.to_string())?;
        Ok(Outcome::one(record))
    }
}

impl Plugin for AddField {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let renames = config
            .rename
            .iter()
            .map(|(from, to)| match to {
                Value::String(to) => Ok((from.clone(), to.clone())),
                _ => Err(sluice_plugin_sdk::config_error(
                    &format!("rename.{from}"),
                    "expected the new field name as a string",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut names: Vec<String> = config.set.keys().cloned().collect();
        names.extend(config.timestamp.clone());
        if names.is_empty() && renames.is_empty() {
            return Err("nothing to do: set `set`, `rename` or `timestamp`".into());
        }
        Ok(Self {
            config,
            names,
            renames,
        })
    }

    fn transform(&mut self, record: Record) -> Outcome {
        self.edit(record).unwrap_or_else(Outcome::Failed)
    }
}

sluice_plugin_sdk::export_plugin!(AddField);

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(with: &str) -> AddField {
        AddField::new(serde_json::from_str(with).unwrap()).unwrap()
    }

    fn value(o: Outcome) -> String {
        let Outcome::Ok(out) = o else { panic!("{o:?}") };
        String::from_utf8(out[0].value.to_vec()).unwrap()
    }

    #[test]
    fn appends_new_fields_and_overwrites_existing_ones() {
        let mut p = plugin(r#"{"set": {"pipeline": "sluice"}}"#);
        assert_eq!(
            value(p.transform(Record::new(r#"{"a":1}"#))),
            r#"{"a":1,"pipeline":"sluice"}"#
        );
        assert_eq!(
            value(p.transform(Record::new(r#"{"pipeline":"x","a":1}"#))),
            r#"{"pipeline":"sluice","a":1}"#
        );
        assert!(matches!(
            p.transform(Record::new("[1]")),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn renames_in_place_and_formats_timestamps() {
        let mut p = plugin(r#"{"rename": {"t": "temp"}}"#);
        assert_eq!(
            value(p.transform(Record::new(r#"{"t":1,"b":2}"#))),
            r#"{"b":2,"temp":1}"#
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_600_800_123), "2026-11-25T10:00:00.123Z");
    }
}
