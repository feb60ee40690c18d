//! Transforms that add, remove, rename or blank fields of the value: `InsertField`,
//! `ReplaceField`, `MaskField`.
//!
//! ```toml
//! with = { type = "InsertField", static_field = "pipeline", static_value = "sluice", timestamp_field = "event_ms", topic_field = "meta.topic" }
//! with = { type = "ReplaceField", include = ["id", "reading"], exclude = ["reading.raw"], rename = { id = "device" } }
//! with = { type = "MaskField", fields = ["operator.email", "pin"], replacement = "***" }
//! ```

use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_plugin_sdk::{ValuePath, config_at, config_error};

use crate::doc::{Doc, kind};
use crate::{Flow, Step, TOPIC_HEADER, at, step_error};

fn topic_header() -> String {
    TOPIC_HEADER.to_string()
}

/// `InsertField`: fields from the config and the record's metadata. Kafka's `partition.field`
/// and `offset.field` have no counterpart: plugins do not see where a record sits in its source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InsertField {
    /// Field receiving `static_value`.
    #[serde(default)]
    static_field: Option<ValuePath>,
    /// Any JSON value (Kafka: a string).
    #[serde(default)]
    static_value: Option<Value>,
    /// Field receiving the record's timestamp (epoch milliseconds), when it has one.
    #[serde(default)]
    timestamp_field: Option<ValuePath>,
    /// Field receiving the topic header's text, when the record has that header.
    #[serde(default)]
    topic_field: Option<ValuePath>,
    /// Field receiving the record's key as text (UTF-8), when it has one. Not in Kafka.
    #[serde(default)]
    key_field: Option<ValuePath>,
    /// The header `topic_field` reads.
    #[serde(default = "topic_header")]
    header: String,
    /// Refused with a reason.
    #[serde(default)]
    partition_field: Option<Value>,
    /// Refused with a reason.
    #[serde(default)]
    offset_field: Option<Value>,
}

pub fn insert_field(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: InsertField = config_at(at_, with)?;
    for (key, set) in [
        ("partition_field", c.partition_field.is_some()),
        ("offset_field", c.offset_field.is_some()),
    ] {
        if set {
            let message = "plugins do not see a record's source position: there is no partition or offset to insert";
            return Err(config_error(&at(at_, key), message));
        }
    }
    match (&c.static_field, &c.static_value) {
        (Some(_), None) => {
            return Err(config_error(
                &at(at_, "static_value"),
                "missing: the value of `static_field`",
            ));
        }
        (None, Some(_)) => {
            return Err(config_error(
                &at(at_, "static_field"),
                "missing: the field receiving `static_value`",
            ));
        }
        _ => {}
    }
    if c.static_field.is_none()
        && c.timestamp_field.is_none()
        && c.topic_field.is_none()
        && c.key_field.is_none()
    {
        let message = "nothing to insert: set `static_field`, `timestamp_field`, `topic_field` or `key_field`";
        return Err(step_error(at_, message));
    }
    Ok(Box::new(c))
}

impl Step for InsertField {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let text = |b: &[u8]| Value::String(String::from_utf8_lossy(b).into_owned());
        let mut values: Vec<(&ValuePath, Value)> = Vec::with_capacity(4);
        if let (Some(f), Some(v)) = (&self.static_field, &self.static_value) {
            values.push((f, v.clone()));
        }
        if let (Some(f), Some(ts)) = (&self.timestamp_field, doc.record.timestamp) {
            values.push((f, Value::from(ts)));
        }
        if let (Some(f), Some(topic)) = (&self.topic_field, doc.record.header(&self.header)) {
            values.push((f, text(topic)));
        }
        if let (Some(f), Some(key)) = (&self.key_field, &doc.record.key) {
            values.push((f, text(key)));
        }
        let value = doc.value()?;
        if !value.is_object() {
            return Err(format!("value is {}, not a JSON object", kind(value)));
        }
        for (field, v) in values {
            field.insert(value, v)?;
        }
        Ok(Flow::Next)
    }
}

/// `ReplaceField`: keep only `include`, then remove `exclude`, then `rename`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceFieldConfig {
    #[serde(default)]
    include: Vec<ValuePath>,
    #[serde(default)]
    exclude: Vec<ValuePath>,
    /// Old path → new path.
    #[serde(default)]
    rename: Map<String, Value>,
}

struct ReplaceField {
    include: Vec<ValuePath>,
    exclude: Vec<ValuePath>,
    rename: Vec<(ValuePath, ValuePath)>,
}

pub fn replace_field(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: ReplaceFieldConfig = config_at(at_, with)?;
    let mut rename = Vec::with_capacity(c.rename.len());
    for (from, to) in c.rename {
        let here = at(&at(at_, "rename"), &from);
        let from = ValuePath::parse(&from).map_err(|e| config_error(&here, e))?;
        let to = match to {
            Value::String(to) => ValuePath::parse(&to).map_err(|e| config_error(&here, e))?,
            _ => {
                return Err(config_error(
                    &here,
                    "expected the new field name as a string",
                ));
            }
        };
        rename.push((from, to));
    }
    if c.include.is_empty() && c.exclude.is_empty() && rename.is_empty() {
        let message = "nothing to do: set `include`, `exclude` or `rename`";
        return Err(step_error(at_, message));
    }
    Ok(Box::new(ReplaceField {
        include: c.include,
        exclude: c.exclude,
        rename,
    }))
}

/// Keep only the fields on `paths` (each a list of segments), in their order in `map`.
fn keep(map: &mut Map<String, Value>, paths: &[&[String]]) {
    map.retain(|key, value| {
        let under: Vec<&[String]> = paths
            .iter()
            .filter(|p| p.first() == Some(key))
            .map(|p| &p[1..])
            .collect();
        if under.is_empty() {
            return false;
        }
        if under.iter().any(|rest| rest.is_empty()) {
            return true;
        }
        match value {
            Value::Object(inner) => {
                keep(inner, &under);
                true
            }
            _ => false,
        }
    });
}

/// Rename `from` to `to` inside one object, keeping its place.
fn rename_in_place(map: &mut Map<String, Value>, from: &str, to: &str) {
    if from == to || !map.contains_key(from) {
        return;
    }
    let old = std::mem::take(map);
    for (k, v) in old {
        if k == from {
            map.insert(to.to_string(), v);
        } else if k != to {
            map.insert(k, v);
        }
    }
}

impl Step for ReplaceField {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let map = doc.object()?;
        if !self.include.is_empty() {
            let paths: Vec<&[String]> = self.include.iter().map(ValuePath::segments).collect();
            keep(map, &paths);
        }
        let mut value = Value::Object(std::mem::take(map));
        for path in &self.exclude {
            path.remove(&mut value);
        }
        for (from, to) in &self.rename {
            let (parent, to_parent) = (
                &from.segments()[..from.segments().len() - 1],
                &to.segments()[..to.segments().len() - 1],
            );
            if parent == to_parent {
                if let Some(map) = from.parent_mut(&mut value) {
                    rename_in_place(map, from.name(), to.name());
                }
            } else if let Some(v) = from.remove(&mut value) {
                to.insert(&mut value, v)?;
            }
        }
        doc.set_value(value);
        Ok(Flow::Next)
    }
}

/// `MaskField`: blank fields, or write `replacement` in them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskField {
    fields: Vec<ValuePath>,
    /// Written into string fields, and, read as a number, into number fields.
    #[serde(default)]
    replacement: Option<String>,
}

pub fn mask_field(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: MaskField = config_at(at_, with)?;
    if c.fields.is_empty() {
        return Err(config_error(&at(at_, "fields"), "name at least one field"));
    }
    Ok(Box::new(c))
}

/// The empty value of `v`'s type: `""`, `0`, `false`, `[]`, `{}`, `null`.
fn empty_like(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::Bool(_) => Value::Bool(false),
        Value::Number(n) if n.is_f64() => Value::from(0.0),
        Value::Number(_) => Value::from(0),
        Value::String(_) => Value::String(String::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Object(_) => Value::Object(Map::new()),
    }
}

impl MaskField {
    fn masked(&self, field: &ValuePath, v: &Value) -> Result<Value, String> {
        let Some(r) = &self.replacement else {
            return Ok(empty_like(v));
        };
        match v {
            Value::Null => Ok(Value::Null),
            Value::String(_) => Ok(Value::String(r.clone())),
            Value::Number(n) => {
                let parsed = if n.is_f64() {
                    r.trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                } else {
                    r.trim().parse::<i64>().ok().map(serde_json::Number::from)
                };
                parsed.map(Value::Number).ok_or_else(|| {
                    format!("field `{field}` is a number and the replacement {r:?} is not one")
                })
            }
            other => Err(format!(
                "field `{field}` is {}: a replacement masks strings and numbers only",
                kind(other)
            )),
        }
    }
}

impl Step for MaskField {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let value = doc.value()?;
        for field in &self.fields {
            if let Some(v) = field.get_mut(value) {
                *v = self.masked(field, v)?;
            }
        }
        Ok(Flow::Next)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use serde_json::json;
    use sluice_plugin_sdk::{Bytes, Record};

    #[test]
    fn insert_field_adds_static_and_metadata_fields() {
        let with = json!({"type": "InsertField", "static_field": "meta.by", "static_value": "sluice",
            "timestamp_field": "ts", "topic_field": "topic", "key_field": "k"});
        let plugin = smt(with).unwrap();
        let mut record = Record::new(r#"{"a":1}"#);
        record.timestamp = Some(1700);
        record.key = Some(Bytes::from_static(b"dev-1"));
        record.set_header("topic", "sensors");
        let out = run_record(&plugin, record).unwrap().unwrap();
        assert_eq!(
            out.value,
            r#"{"a":1,"meta":{"by":"sluice"},"ts":1700,"topic":"sensors","k":"dev-1"}"#
        );
        // Metadata the record lacks is not inserted.
        let out = run_record(&plugin, Record::new("{}")).unwrap().unwrap();
        assert_eq!(out.value, r#"{"meta":{"by":"sluice"}}"#);
        assert!(
            run_record(&plugin, Record::new("[1]"))
                .unwrap_err()
                .contains("not a JSON object")
        );
    }

    #[test]
    fn insert_field_config_errors() {
        let e = smt(json!({"type": "InsertField", "static_field": "a"}))
            .err()
            .unwrap();
        assert!(e.starts_with("`static_value`: missing"), "{e}");
        let e = smt(json!({"type": "InsertField", "offset_field": "o"}))
            .err()
            .unwrap();
        assert!(e.starts_with("`offset_field`: plugins do not see"), "{e}");
        let e = smt(json!({"type": "InsertField"})).err().unwrap();
        assert!(e.contains("nothing to insert"), "{e}");
        let e = smt(json!({"steps": [{"type": "InsertField", "topic_field": "a..b"}]}))
            .err()
            .unwrap();
        assert!(
            e.starts_with("`steps[0].topic_field`: \"a..b\" has an empty segment"),
            "{e}"
        );
    }

    #[test]
    fn replace_field_includes_excludes_and_renames_in_place() {
        let v = r#"{"id":1,"debug":true,"reading":{"t":20,"raw":"x","unit":"C"},"b":2}"#;
        let with = json!({"type": "ReplaceField", "include": ["id", "reading", "b"],
            "exclude": ["reading.raw"], "rename": {"id": "device", "reading.t": "reading.temp", "b": "x.b"}});
        assert_eq!(
            value(with, v),
            r#"{"device":1,"reading":{"temp":20,"unit":"C"},"x":{"b":2}}"#
        );
        let with = json!({"type": "ReplaceField", "include": ["reading.unit"]});
        assert_eq!(value(with, v), r#"{"reading":{"unit":"C"}}"#);
        let with = json!({"type": "ReplaceField", "exclude": ["debug", "missing"]});
        assert_eq!(value(with, r#"{"a":1,"debug":2}"#), r#"{"a":1}"#);
        let e = smt(json!({"type": "ReplaceField", "rename": {"a": 1}}))
            .err()
            .unwrap();
        assert!(e.starts_with("`rename.a`: expected"), "{e}");
        let e = smt(json!({"type": "ReplaceField"})).err().unwrap();
        assert!(e.contains("nothing to do"), "{e}");
    }

    #[test]
    fn mask_field_blanks_by_type_or_writes_the_replacement() {
        let v = r#"{"s":"secret","i":42,"f":1.5,"b":true,"o":{"x":1},"a":[1],"n":null}"#;
        let with =
            json!({"type": "MaskField", "fields": ["s", "i", "f", "b", "o", "a", "n", "missing"]});
        assert_eq!(
            value(with, v),
            r#"{"s":"","i":0,"f":0.0,"b":false,"o":{},"a":[],"n":null}"#
        );
        let with = json!({"type": "MaskField", "fields": ["s", "i"], "replacement": "0"});
        assert_eq!(value(with, r#"{"s":"x","i":7}"#), r#"{"s":"0","i":0}"#);
        let with = json!({"type": "MaskField", "fields": ["i"], "replacement": "***"});
        let e = run(with, r#"{"i":7}"#).unwrap_err();
        assert_eq!(
            e,
            r#"MaskField: field `i` is a number and the replacement "***" is not one"#
        );
        let e = smt(json!({"type": "MaskField", "fields": []}))
            .err()
            .unwrap();
        assert!(e.starts_with("`fields`: name at least one"), "{e}");
    }
}
