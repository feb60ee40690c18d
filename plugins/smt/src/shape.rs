//! Transforms that reshape the whole value or move it into the key: `ExtractField` (and
//! `ExtractField$Key`), `HoistField`, `Flatten`, `ValueToKey`.
//!
//! ```toml
//! with = { type = "ExtractField", field = "payload.after" }   # the value becomes that field
//! with = { type = "HoistField", field = "reading" }           # {"reading": <the value>}
//! with = { type = "Flatten", delimiter = "_" }                # {"a":{"b":1}} -> {"a_b":1}
//! with = { type = "ValueToKey", fields = ["device_id"] }      # key = {"device_id":"d-1"}
//! with = { type = "ExtractField$Key", field = "device_id" }  # then key = d-1
//! ```

use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_plugin_sdk::{Bytes, ValuePath, config_at, config_error};

use crate::doc::{Doc, kind};
use crate::{Flow, Step, at};

fn not_object(v: &Value) -> String {
    format!("value is {}, not a JSON object", kind(v))
}

/// `ExtractField`: the value becomes one of its fields; a record without it fails.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtractField {
    field: ValuePath,
}

pub fn extract_field(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    Ok(Box::new(config_at::<ExtractField>(at_, with)?))
}

impl Step for ExtractField {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let value = doc.value()?;
        if !value.is_object() {
            return Err(not_object(value));
        }
        let field = self
            .field
            .remove(value)
            .ok_or_else(|| format!("field `{}` is missing", self.field))?;
        doc.set_value(field);
        Ok(Flow::Next)
    }
}

/// `ExtractField$Key`: the key (a JSON object, as `ValueToKey` writes it) becomes one of its
/// fields: a string as its text, anything else as JSON text. A record without a key, with a key
/// that is not a JSON object, or without the field fails.
struct ExtractKeyField {
    field: ValuePath,
}

pub fn extract_key_field(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: ExtractField = config_at(at_, with)?;
    Ok(Box::new(ExtractKeyField { field: c.field }))
}

impl Step for ExtractKeyField {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let key = doc.record.key.as_ref().ok_or("the record has no key")?;
        let mut key: Value =
            serde_json::from_slice(key).map_err(|e| format!("key is not JSON: {e}"))?;
        if !key.is_object() {
            return Err(format!("key is {}, not a JSON object", kind(&key)));
        }
        let field = self
            .field
            .remove(&mut key)
            .ok_or_else(|| format!("key field `{}` is missing", self.field))?;
        let text = match field {
            Value::String(s) => s.into_bytes(),
            other => serde_json::to_vec(&other).map_err(|e| e.to_string())?,
        };
        doc.record.key = Some(Bytes::from(text));
        Ok(Flow::Next)
    }
}

/// `HoistField`: the value moves into a field of a new object. A value that is not JSON is
/// hoisted as a string (a `format = "text"` line becomes `{"line": "..."}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoistField {
    field: ValuePath,
}

pub fn hoist_field(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    Ok(Box::new(config_at::<HoistField>(at_, with)?))
}

impl Step for HoistField {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let inner = match doc.value() {
            Ok(v) => std::mem::take(v),
            Err(not_json) => match std::str::from_utf8(&doc.record.value) {
                Ok(text) => Value::String(text.to_string()),
                Err(_) => return Err(format!("{not_json}, nor UTF-8 text")),
            },
        };
        let mut value = Value::Object(Map::new());
        self.field.insert(&mut value, inner)?;
        doc.set_value(value);
        Ok(Flow::Next)
    }
}

fn dot() -> String {
    ".".to_string()
}

/// `Flatten`: nested objects become fields named by their path, joined by `delimiter`. Arrays
/// are kept as they are; an empty nested object leaves nothing (as in Kafka Connect).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Flatten {
    #[serde(default = "dot")]
    delimiter: String,
}

pub fn flatten(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    Ok(Box::new(config_at::<Flatten>(at_, with)?))
}

impl Flatten {
    fn into(&self, prefix: &str, map: Map<String, Value>, out: &mut Map<String, Value>) {
        for (key, value) in map {
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}{}{key}", self.delimiter)
            };
            match value {
                Value::Object(inner) => self.into(&name, inner, out),
                other => {
                    out.insert(name, other);
                }
            }
        }
    }
}

impl Step for Flatten {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let map = std::mem::take(doc.object()?);
        let mut out = Map::with_capacity(map.len());
        self.into("", map, &mut out);
        doc.set_value(Value::Object(out));
        Ok(Flow::Next)
    }
}

/// `ValueToKey`: the key becomes a JSON object of these fields of the value (nested paths
/// nest). A record missing one fails.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueToKey {
    fields: Vec<ValuePath>,
}

pub fn value_to_key(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: ValueToKey = config_at(at_, with)?;
    if c.fields.is_empty() {
        return Err(config_error(&at(at_, "fields"), "name at least one field"));
    }
    Ok(Box::new(c))
}

impl Step for ValueToKey {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let value = doc.read()?;
        if !value.is_object() {
            return Err(not_object(value));
        }
        let mut key = Value::Object(Map::new());
        for field in &self.fields {
            let v = field
                .get(value)
                .ok_or_else(|| format!("field `{field}` is missing"))?;
            field.insert(&mut key, v.clone())?;
        }
        let text = serde_json::to_vec(&key).map_err(|e| e.to_string())?;
        doc.record.key = Some(Bytes::from(text));
        Ok(Flow::Next)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use serde_json::json;
    use sluice_plugin_sdk::{Bytes, Record};

    #[test]
    fn extract_field_replaces_the_value_or_fails() {
        let with = json!({"type": "ExtractField", "field": "payload.after"});
        assert_eq!(
            value(with.clone(), r#"{"payload":{"after":{"id":1}}}"#),
            r#"{"id":1}"#
        );
        assert_eq!(
            run(with.clone(), r#"{"payload":{}}"#).unwrap_err(),
            "ExtractField: field `payload.after` is missing"
        );
        assert!(
            run(with, "3")
                .unwrap_err()
                .contains("a number, not a JSON object")
        );
    }

    #[test]
    fn hoist_field_wraps_json_and_text() {
        let with = json!({"type": "HoistField", "field": "line"});
        assert_eq!(value(with.clone(), "[1,2]"), r#"{"line":[1,2]}"#);
        assert_eq!(value(with, "plain text"), r#"{"line":"plain text"}"#);
        let with = json!({"type": "HoistField", "field": "a.b"});
        assert_eq!(value(with, "1"), r#"{"a":{"b":1}}"#);
    }

    #[test]
    fn flatten_joins_nested_names() {
        let v = r#"{"a":{"b":1,"c":{"d":[1,{"x":2}]},"e":{}},"f":null}"#;
        assert_eq!(
            value(json!({"type": "Flatten"}), v),
            r#"{"a.b":1,"a.c.d":[1,{"x":2}],"f":null}"#
        );
        assert_eq!(
            value(
                json!({"type": "Flatten", "delimiter": "_"}),
                r#"{"a":{"b":1}}"#
            ),
            r#"{"a_b":1}"#
        );
    }

    #[test]
    fn value_to_key_sets_a_json_key() {
        let with = json!({"type": "ValueToKey", "fields": ["id", "site.name"]});
        let out = run(with.clone(), r#"{"id":7,"site":{"name":"p7","x":1},"t":1}"#)
            .unwrap()
            .unwrap();
        assert_eq!(out.key.unwrap(), r#"{"id":7,"site":{"name":"p7"}}"#);
        assert_eq!(out.value, r#"{"id":7,"site":{"name":"p7","x":1},"t":1}"#);
        assert_eq!(
            run(with, r#"{"id":7}"#).unwrap_err(),
            "ValueToKey: field `site.name` is missing"
        );
        let e = smt(json!({"type": "ValueToKey", "fields": []}))
            .err()
            .unwrap();
        assert!(e.starts_with("`fields`: "), "{e}");
    }

    #[test]
    fn extract_field_on_the_key_makes_a_scalar_key() {
        let with = json!({"steps": [
            {"type": "ValueToKey", "fields": ["id", "n"]},
            {"type": "ExtractField$Key", "field": "id"},
        ]});
        let out = run(with, r#"{"id":"d-7","n":1}"#).unwrap().unwrap();
        assert_eq!(out.key.unwrap(), "d-7");
        let plugin = smt(json!({"type": "ExtractField$Key", "field": "n"})).unwrap();
        let mut record = Record::new("{}");
        record.key = Some(Bytes::from_static(br#"{"n":{"a":1}}"#));
        let out = run_record(&plugin, record).unwrap().unwrap();
        assert_eq!(out.key.unwrap(), r#"{"a":1}"#);
        assert_eq!(out.value, "{}", "the value is not touched");
        let e = run_record(&plugin, Record::new("{}")).unwrap_err();
        assert_eq!(e, "ExtractField$Key: the record has no key");
    }
}
