//! Transforms on headers (Kafka's KIP-145 set): `InsertHeader`, `HeaderFrom`, `DropHeaders`.
//!
//! ```toml
//! with = { type = "InsertHeader", header = "topic", value_literal = "sensors" }
//! with = { type = "HeaderFrom", fields = ["device.site"], headers = ["topic"], operation = "copy" }
//! with = { type = "DropHeaders", headers = ["debug"] }
//! ```
//!
//! A header's value is text: a string field as it is, any other JSON value as its JSON text.
//! `HeaderFrom` skips a field the record does not have (Kafka writes a null header); with
//! `operation = "move"` the field is removed from the value.

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::{ValuePath, config_at, config_error};

use crate::doc::Doc;
use crate::{Flow, Step, at};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InsertHeader {
    header: String,
    value_literal: String,
}

pub fn insert_header(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: InsertHeader = config_at(at_, with)?;
    if c.header.is_empty() {
        return Err(config_error(&at(at_, "header"), "an empty header name"));
    }
    Ok(Box::new(c))
}

impl Step for InsertHeader {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        doc.record
            .set_header(&self.header, self.value_literal.clone());
        Ok(Flow::Next)
    }
}

/// Copy or move.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Operation {
    Copy,
    Move,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderFrom {
    fields: Vec<ValuePath>,
    headers: Vec<String>,
    operation: Operation,
}

pub fn header_from(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: HeaderFrom = config_at(at_, with)?;
    if c.fields.is_empty() {
        return Err(config_error(&at(at_, "fields"), "name at least one field"));
    }
    if c.fields.len() != c.headers.len() {
        let message = format!(
            "{} headers for {} fields: `headers` names one header per field, in order",
            c.headers.len(),
            c.fields.len()
        );
        return Err(config_error(&at(at_, "headers"), message));
    }
    Ok(Box::new(c))
}

impl Step for HeaderFrom {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let mut found = Vec::with_capacity(self.fields.len());
        for (field, header) in self.fields.iter().zip(&self.headers) {
            let v = match self.operation {
                Operation::Copy => field.get(doc.read()?).cloned(),
                Operation::Move => field.remove(doc.value()?),
            };
            if let Some(v) = v {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                found.push((header, text));
            }
        }
        for (header, text) in found {
            doc.record.set_header(header, text);
        }
        Ok(Flow::Next)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropHeaders {
    headers: Vec<String>,
}

pub fn drop_headers(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: DropHeaders = config_at(at_, with)?;
    if c.headers.is_empty() {
        return Err(config_error(
            &at(at_, "headers"),
            "name at least one header",
        ));
    }
    Ok(Box::new(c))
}

impl Step for DropHeaders {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        for h in &self.headers {
            doc.record.remove_header(h);
        }
        Ok(Flow::Next)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use serde_json::json;
    use sluice_plugin_sdk::Record;

    fn header(r: &Record, name: &str) -> Option<String> {
        r.header(name)
            .map(|h| String::from_utf8(h.to_vec()).unwrap())
    }

    #[test]
    fn headers_are_inserted_copied_moved_and_dropped() {
        let plugin = smt(json!({"steps": [
            {"type": "InsertHeader", "header": "src", "value_literal": "sluice"},
            {"type": "HeaderFrom", "fields": ["site", "n"], "headers": ["topic", "n"], "operation": "move"},
            {"type": "DropHeaders", "headers": ["old"]},
        ]}))
        .unwrap();
        let mut r = Record::new(r#"{"site":"eu","n":{"a":1},"x":1}"#);
        r.set_header("old", "1");
        let out = run_record(&plugin, r).unwrap().unwrap();
        assert_eq!(out.value, r#"{"x":1}"#);
        assert_eq!(header(&out, "src").as_deref(), Some("sluice"));
        assert_eq!(header(&out, "topic").as_deref(), Some("eu"));
        assert_eq!(header(&out, "n").as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(header(&out, "old"), None);
        let e =
            smt(json!({"type": "HeaderFrom", "fields": ["a"], "headers": [], "operation": "copy"}))
                .err()
                .unwrap();
        assert!(e.starts_with("`headers`: 0 headers for 1 fields"), "{e}");
    }
}
