//! `anomaly`: flag sensor readings outside a threshold band.
//!
//! ```toml
//! [[transforms]]
//! plugin = "plugins/anomaly.wasm"
//! with = { field = "temperature_c", max = 90.0, header = "route" }
//! ```
//!
//! Every record gets a boolean field (`flag_field`, default `"anomaly"`) telling whether the
//! reading at `field` (a dotted path) lies outside `[min, max]` (either bound may be left out,
//! not both). When `header` is set, flagged records also get that header with value
//! `header_value` (default `"anomaly"`), so a sink can route them. A record without a numeric
//! reading fails (dead-letter) unless `on_missing = "keep"` (passed on unflagged).

use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_plugin_sdk::{Outcome, Plugin, Record, json};

/// Handling of records without a numeric reading.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// Fail the record (dead-letter).
    #[default]
    Fail,
    /// Pass it on unchanged.
    Keep,
}

fn default_flag_field() -> String {
    "anomaly".into()
}

fn default_header_value() -> String {
    "anomaly".into()
}

/// The `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Dotted path of the reading.
    pub field: String,
    /// Lowest normal value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest normal value.
    #[serde(default)]
    pub max: Option<f64>,
    /// The boolean field added to every record.
    #[serde(default = "default_flag_field")]
    pub flag_field: String,
    /// Header set on flagged records, if any.
    #[serde(default)]
    pub header: Option<String>,
    /// Value of that header.
    #[serde(default = "default_header_value")]
    pub header_value: String,
    /// Records without a numeric reading.
    #[serde(default)]
    pub on_missing: OnMissing,
}

/// The plugin: a validated config.
pub struct Anomaly {
    config: Config,
}

impl Anomaly {
    fn outside(&self, x: f64) -> bool {
        self.config.min.is_some_and(|min| x < min) || self.config.max.is_some_and(|max| x > max)
    }

    fn flag(&self, mut record: Record) -> Result<Outcome, String> {
        let doc: Map<String, Value> = record
            .json()
            .map_err(|e| format!("value is not a JSON object: {e}"))?;
        let c = &self.config;
        let reading = if c.field.contains('.') {
            let doc = Value::Object(doc.clone());
            json::get(&doc, &c.field).and_then(Value::as_f64)
        } else {
            doc.get(&c.field).and_then(Value::as_f64)
        };
        let Some(x) = reading else {
            return match c.on_missing {
                OnMissing::Fail => Err(format!("no numeric `{}` in the record", c.field)),
                OnMissing::Keep => Ok(Outcome::Keep),
            };
        };
        let flagged = self.outside(x);
        let flag = Value::Bool(flagged);
        let appended = if doc.contains_key(&c.flag_field) {
            None
        } else {
            json::append_fields(&record.value, &[(&c.flag_field, &flag)])
        };
        match appended {
            Some(text) => record.value = text.into(),
            None => {
                let mut doc = doc;
                doc.insert(c.flag_field.clone(), flag);
                record.set_json(&doc).map_err(|e| e.to_string())?;
            }
        }
        if flagged && let Some(header) = &c.header {
            record.set_header(header, c.header_value.clone().into_bytes());
        }
        Ok(Outcome::one(record))
    }
}

impl Plugin for Anomaly {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        match (config.min, config.max) {
            (None, None) => Err("set `min`, `max` or both".into()),
            (Some(min), Some(max)) if min > max => Err(sluice_plugin_sdk::config_error(
                "min",
                format!("{min} must not exceed `max` ({max})"),
            )),
            _ => Ok(Self { config }),
        }
    }

    fn transform(&mut self, record: Record) -> Outcome {
        self.flag(record).unwrap_or_else(Outcome::Failed)
    }
}

sluice_plugin_sdk::export_plugin!(Anomaly);

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(with: &str) -> Result<Anomaly, String> {
        Anomaly::new(serde_json::from_str(with).map_err(|e| e.to_string())?)
    }

    #[test]
    fn flags_out_of_band_readings_and_routes_them() {
        let mut p =
            plugin(r#"{"field": "temperature_c", "max": 90.0, "header": "route"}"#).unwrap();
        let Outcome::Ok(out) = p.transform(Record::new(r#"{"temperature_c":95.2}"#)) else {
            panic!()
        };
        assert_eq!(
            out[0].value_str().unwrap(),
            r#"{"temperature_c":95.2,"anomaly":true}"#
        );
        assert_eq!(
            out[0].header("route").map(|v| &v[..]),
            Some(&b"anomaly"[..])
        );
        let Outcome::Ok(out) = p.transform(Record::new(r#"{"temperature_c":71.3}"#)) else {
            panic!()
        };
        assert_eq!(
            out[0].value_str().unwrap(),
            r#"{"temperature_c":71.3,"anomaly":false}"#
        );
        assert!(out[0].headers.is_empty());
        assert!(matches!(
            p.transform(Record::new(r#"{"x":1}"#)),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn rejects_an_empty_or_inverted_band() {
        assert!(plugin(r#"{"field": "t"}"#).is_err());
        let err = plugin(r#"{"field": "t", "min": 5, "max": 1}"#)
            .err()
            .unwrap();
        assert!(err.contains("must not exceed"), "{err}");
    }
}
