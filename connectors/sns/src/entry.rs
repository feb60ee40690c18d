//! What one record becomes: an SNS message with its subject, attributes, FIFO group and
//! deduplication id, and its size as SNS counts it.
//!
//! The deduplication id of a FIFO message is a hash of the job, the record's source position
//! and its ordinal among the outputs of that position (a transform may make several records of
//! one input). A record written again after a crash or a retry gets the same id, so SNS drops
//! the copy within its 5-minute deduplication window.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_core::{Position, Record};

use crate::config::{Pick, SnsSinkConfig};

/// Most bytes of one message, attributes included, and of one PublishBatch call (256 KiB).
pub const MAX_BYTES: usize = 256 * 1024;
/// Most characters of a subject.
const MAX_SUBJECT: usize = 100;

/// A message attribute's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribute {
    /// `DataType = "String"`.
    String(String),
    /// `DataType = "Number"` (the number as text).
    Number(String),
}

impl Attribute {
    /// The SNS data type.
    pub fn data_type(&self) -> &'static str {
        match self {
            Attribute::String(_) => "String",
            Attribute::Number(_) => "Number",
        }
    }

    /// The value as text.
    pub fn text(&self) -> &str {
        match self {
            Attribute::String(s) | Attribute::Number(s) => s,
        }
    }
}

/// One message to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The record's value.
    pub message: String,
    /// The subject, if any.
    pub subject: Option<String>,
    /// Message attributes.
    pub attributes: Vec<(String, Attribute)>,
    /// FIFO: the message group.
    pub group: Option<String>,
    /// FIFO: the deduplication id.
    pub dedup: Option<String>,
    /// Bytes SNS counts against its 256 KiB limit (message and attributes).
    pub size: usize,
}

/// Makes entries from records, as the config says.
#[derive(Clone, Debug)]
pub struct Planner {
    job: String,
    subject: Option<Pick>,
    attributes: Vec<(String, Pick)>,
    group: Option<Pick>,
    fifo: bool,
}

/// The text of a picked JSON value: strings as they are, numbers and booleans printed.
fn scalar(v: &Value) -> Option<(String, bool)> {
    match v {
        Value::String(s) => Some((s.clone(), false)),
        Value::Number(n) => Some((n.to_string(), true)),
        Value::Bool(b) => Some((b.to_string(), false)),
        _ => None,
    }
}

impl Planner {
    /// The planner of a sink with `config`, in job `job`.
    pub fn new(config: &SnsSinkConfig, job: &str) -> Self {
        Self {
            job: job.to_string(),
            subject: config.subject.clone(),
            attributes: config
                .message_attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            group: config.message_group_id.clone(),
            fifo: config.fifo(),
        }
    }

    fn needs_json(&self) -> bool {
        self.subject
            .iter()
            .chain(self.group.iter())
            .chain(self.attributes.iter().map(|(_, p)| p))
            .any(|p| p.field.is_some())
    }

    /// The picked value's text and whether it is a number; `None` when missing.
    fn pick(pick: &Pick, r: &Record, json: Option<&Value>) -> Option<(String, bool)> {
        if let Some(v) = &pick.value {
            return Some((v.clone(), false));
        }
        if let Some(h) = &pick.header {
            return r
                .header(h)
                .map(|b| (String::from_utf8_lossy(b).into_owned(), false));
        }
        pick.field.as_ref().and_then(|f| scalar(f.get(json?)?))
    }

    /// The entry of record `r`, the `ordinal`-th output of its position in this write;
    /// `dedup` reuses the id it was sent with before (a retry). `Err` is why the record is
    /// refused.
    pub fn plan(&self, r: &Record, ordinal: u32, dedup: Option<&str>) -> Result<Entry, String> {
        let message = std::str::from_utf8(&r.value)
            .map_err(|e| format!("the value is not UTF-8 text (SNS messages are): {e}"))?
            .to_string();
        if message.is_empty() {
            return Err("the value is empty (SNS refuses empty messages)".into());
        }
        let json = if self.needs_json() {
            serde_json::from_slice::<Value>(&r.value).ok()
        } else {
            None
        };
        let subject = self
            .subject
            .as_ref()
            .and_then(|p| Self::pick(p, r, json.as_ref()))
            .map(|(s, _)| clean_subject(&s))
            .filter(|s| !s.is_empty());
        let mut attributes = Vec::with_capacity(self.attributes.len());
        let mut size = message.len();
        for (name, pick) in &self.attributes {
            if let Some((text, number)) = Self::pick(pick, r, json.as_ref()) {
                let attr = if number {
                    Attribute::Number(text)
                } else {
                    Attribute::String(text)
                };
                size += name.len() + attr.data_type().len() + attr.text().len();
                attributes.push((name.clone(), attr));
            }
        }
        if size > MAX_BYTES {
            return Err(format!(
                "the message with its attributes is {size} bytes; SNS takes at most {MAX_BYTES}"
            ));
        }
        let (group, dedup) = if self.fifo {
            let group = self
                .group
                .as_ref()
                .and_then(|p| Self::pick(p, r, json.as_ref()))
                .map(|(g, _)| g)
                .filter(|g| !g.is_empty())
                .ok_or_else(|| {
                    "no message group id: the record lacks the `message_group_id` field or header"
                        .to_string()
                })?;
            if group.len() > 128 {
                return Err(format!(
                    "the message group id is {} characters; SNS takes at most 128",
                    group.len()
                ));
            }
            let dedup = match dedup {
                Some(d) => d.to_string(),
                None => dedup_id(&self.job, &r.position, ordinal),
            };
            (Some(group), Some(dedup))
        } else {
            (None, None)
        };
        Ok(Entry {
            message,
            subject,
            attributes,
            group,
            dedup,
            size,
        })
    }
}

/// The deduplication id of the `ordinal`-th output of `position` in job `job`: 64 hex digits
/// (SNS takes up to 128 characters).
pub fn dedup_id(job: &str, position: &Position, ordinal: u32) -> String {
    let mut h = Sha256::new();
    h.update(job.as_bytes());
    h.update([0]);
    h.update(position.partition.as_bytes());
    h.update([0]);
    h.update(position.offset.to_string().as_bytes());
    h.update([0]);
    h.update(ordinal.to_be_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A subject SNS takes: no line breaks or control characters, at most 100 characters.
fn clean_subject(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SUBJECT)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_core::{Header, Position};

    use super::*;

    fn config(extra: &str) -> SnsSinkConfig {
        let src = format!("topic_arn = 'arn:aws:sns:us-east-1:000000000000:t.fifo'\n{extra}");
        let table: toml::Table = toml::from_str(&src).unwrap();
        toml::Value::Table(table).try_into().unwrap()
    }

    fn record(value: &str, offset: i64) -> Record {
        Record::new(value.to_string(), Position::int(Arc::from("p0"), offset))
    }

    #[test]
    fn subject_attributes_and_group_come_from_fields_and_headers() {
        let c = config(
            "subject = { field = 'title' }\nmessage_group_id = { field = 'device' }\n\
             message_attributes = { level = { field = 'level' }, source = { header = 'src' }, gone = { field = 'nope' } }",
        );
        let p = Planner::new(&c, "job");
        let mut r = record(r#"{"title":"Too\nhot","device":"d7","level":3,"t":1}"#, 5);
        r.headers.push(Header {
            name: "src".into(),
            value: "edge-1".into(),
        });
        let e = p.plan(&r, 0, None).unwrap();
        assert_eq!(e.subject.as_deref(), Some("Too hot"));
        assert_eq!(e.group.as_deref(), Some("d7"));
        assert_eq!(
            e.attributes,
            vec![
                ("level".into(), Attribute::Number("3".into())),
                ("source".into(), Attribute::String("edge-1".into())),
            ]
        );
        let again = p.plan(&r, 0, None).unwrap();
        assert_eq!(e.dedup, again.dedup, "a replay has the same dedup id");
        assert_ne!(e.dedup, p.plan(&r, 1, None).unwrap().dedup);
        assert_ne!(
            e.dedup,
            p.plan(&record(&String::from_utf8_lossy(&r.value), 6), 0, None)
                .unwrap()
                .dedup
        );
        assert_eq!(e.dedup.as_ref().unwrap().len(), 64);
    }

    #[test]
    fn refusals() {
        let c = config("message_group_id = { field = 'device' }");
        let p = Planner::new(&c, "job");
        assert!(
            p.plan(&record(r#"{"x":1}"#, 0), 0, None)
                .unwrap_err()
                .contains("group")
        );
        let big = format!(r#"{{"device":"d","pad":"{}"}}"#, "x".repeat(MAX_BYTES));
        assert!(
            p.plan(&record(&big, 0), 0, None)
                .unwrap_err()
                .contains("262144")
        );
        let mut bad = record("", 0);
        bad.value = vec![0xff, 0xfe].into();
        assert!(p.plan(&bad, 0, None).unwrap_err().contains("UTF-8"));
    }
}
