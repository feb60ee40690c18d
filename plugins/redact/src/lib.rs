//! `redact`: mask or hash named JSON fields (PII).
//!
//! ```toml
//! [[transforms]]
//! plugin = "plugins/redact.wasm"
//! with = { fields = ["device_id", "operator.email"], mode = "hash", salt = "s3cret" }
//! ```
//!
//! `mode = "mask"` (default) replaces each present field with `mask` (default `"***"`);
//! `mode = "hash"` replaces it with the hex SHA-256 of `salt` + the field's JSON text, so equal
//! values stay joinable without being readable. Absent fields are left alone.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_plugin_sdk::{Outcome, Record, json};

/// How to redact.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Replace with a fixed mask.
    #[default]
    Mask,
    /// Replace with a salted SHA-256 (hex).
    Hash,
}

fn default_mask() -> String {
    "***".to_string()
}

/// The `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Dotted paths of the fields to redact.
    pub fields: Vec<String>,
    /// Mask or hash.
    #[serde(default)]
    pub mode: Mode,
    /// The mask for `mode = "mask"`.
    #[serde(default = "default_mask")]
    pub mask: String,
    /// The salt for `mode = "hash"`.
    #[serde(default)]
    pub salt: String,
}

fn hash(salt: &str, value: &Value) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    match value {
        Value::String(s) => h.update(s.as_bytes()),
        other => h.update(other.to_string().as_bytes()),
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Redact the configured fields of one record.
pub fn transform(mut record: Record, config: &Config) -> Result<Outcome, serde_json::Error> {
    let mut doc: Value = record.json()?;
    let mut changed = false;
    for field in &config.fields {
        if let Some(v) = json::get_mut(&mut doc, field) {
            *v = match config.mode {
                Mode::Mask => Value::String(config.mask.clone()),
                Mode::Hash => Value::String(hash(&config.salt, v)),
            };
            changed = true;
        }
    }
    if !changed {
        return Ok(Outcome::Keep);
    }
    record.set_json(&doc)?;
    Ok(Outcome::one(record))
}

sluice_plugin_sdk::transform!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_hashes_fields() {
        let mask: Config =
            serde_json::from_str(r#"{"fields": ["device_id", "op.email"]}"#).unwrap();
        let r = Record::new(r#"{"device_id":"dev-1","op":{"email":"a@b"},"t":1}"#);
        let Ok(Outcome::Ok(out)) = transform(r, &mask) else {
            panic!()
        };
        assert_eq!(
            out[0].value_str().unwrap(),
            r#"{"device_id":"***","op":{"email":"***"},"t":1}"#
        );

        let h: Config =
            serde_json::from_str(r#"{"fields": ["device_id"], "mode": "hash"}"#).unwrap();
        let Ok(Outcome::Ok(out)) = transform(Record::new(r#"{"device_id":"dev-1"}"#), &h) else {
            panic!()
        };
        let doc: Value = out[0].json().unwrap();
        assert_eq!(doc["device_id"].as_str().unwrap().len(), 64);
    }
}
