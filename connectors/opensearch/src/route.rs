//! Where a record goes: its index (fixed, from a field, or from its event time) and its `_id`
//! (from a field, or derived from its source position).
//!
//! Position-derived ids. A record's id is `{job}/{partition}/{offset}`; the second, third, ...
//! output of one input record (transforms may emit several, all at the input's position, and
//! the runtime never splits them across writes) get `#1`, `#2`, ... appended. The same record
//! delivered again after a crash therefore gets the same id and overwrites its document: the
//! index holds every input once (effectively once), although the sink is not transactional.
//! Ids longer than OpenSearch's 512 bytes are replaced by `sha256:` and the hex digest of the
//! readable form.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_core::{ConnectorError, Position, ValuePath};

/// Longest `_id` OpenSearch takes, in bytes.
const MAX_ID_BYTES: usize = 512;

/// One piece of an index template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(ValuePath),
    /// A `chrono` format string of the event time.
    Date(String),
}

/// The `index` setting, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexTemplate {
    parts: Vec<Part>,
}

/// Characters OpenSearch refuses in index names.
const INVALID: &[char] = &[' ', '"', '*', '\\', '<', '|', ',', '>', '/', '?', '#', ':'];

impl IndexTemplate {
    /// Parse `readings-{yyyy.MM.dd}`, `logs-{service}`, `fixed`.
    pub fn parse(text: &str) -> Result<Self, ConnectorError> {
        let bad = |why: String| ConnectorError::config(why).at("index");
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| bad(format!("{text:?}: a `{{` without its `}}`")))?;
            let inner = &after[..close];
            parts.push(match date_format(inner) {
                Some(format) => Part::Date(format),
                None => {
                    Part::Field(ValuePath::parse(inner).map_err(|e| bad(format!("{text:?}: {e}")))?)
                }
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.is_empty() {
            return Err(bad("`index` is empty".into()));
        }
        for part in &parts {
            if let Part::Text(t) = part {
                if t.contains('}') {
                    return Err(bad(format!("{text:?}: a `}}` without its `{{`")));
                }
                if t.chars().any(|c| c.is_uppercase()) {
                    return Err(bad(format!("{text:?}: index names are lowercase")));
                }
                if let Some(c) = t.chars().find(|c| INVALID.contains(c)) {
                    return Err(bad(format!("{text:?}: index names cannot contain {c:?}")));
                }
            }
        }
        if let Some(Part::Text(first)) = parts.first()
            && (first.starts_with(['_', '-', '+']) || first == "." || first == "..")
        {
            return Err(bad(format!(
                "{text:?}: index names cannot start with `_`, `-` or `+`"
            )));
        }
        Ok(Self { parts })
    }

    /// True when the index depends on the record (a field or the event time).
    pub fn is_fixed(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// True when a part comes from a field of the value.
    pub fn needs_value(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// The index of one record; `Err` is the reason to reject it.
    pub fn render(&self, doc: Option<&Value>, event_time: Option<i64>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) => match doc.and_then(|d| path.get(d)) {
                    Some(Value::String(s)) if !s.is_empty() => out.push_str(s),
                    Some(Value::Number(n)) => out.push_str(&n.to_string()),
                    Some(other) => {
                        return Err(format!(
                            "index field `{path}` is {other}, not a string or number"
                        ));
                    }
                    None => return Err(format!("index field `{path}` is missing")),
                },
                Part::Date(format) => {
                    let ms = event_time.ok_or_else(|| {
                        "the index names a date but the record has no event time".to_string()
                    })?;
                    let time: DateTime<Utc> = DateTime::from_timestamp_millis(ms)
                        .ok_or_else(|| format!("event time {ms} ms is out of range"))?;
                    out.push_str(&time.format(format).to_string());
                }
            }
        }
        Ok(out)
    }

    /// The template as the user wrote it, for names and messages.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(p) => {
                    out.push('{');
                    out.push_str(p.as_str());
                    out.push('}');
                }
                Part::Date(f) => {
                    out.push('{');
                    out.push_str(&joda_of(f));
                    out.push('}');
                }
            }
        }
        out
    }
}

/// Date letters and the chrono specifier of each, longest first.
const DATE_TOKENS: &[(&str, &str)] = &[
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
];

/// The chrono format of a placeholder made only of date letters and separators, else `None`.
fn date_format(inner: &str) -> Option<String> {
    let mut rest = inner;
    let mut out = String::new();
    while !rest.is_empty() {
        if let Some((tok, spec)) = DATE_TOKENS.iter().find(|(t, _)| rest.starts_with(t)) {
            out.push_str(spec);
            rest = &rest[tok.len()..];
        } else if let Some(c) = rest.chars().next().filter(|c| matches!(c, '.' | '-' | '_')) {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        } else {
            return None;
        }
    }
    (!out.is_empty() && out.contains('%')).then_some(out)
}

/// The placeholder a chrono format came from.
fn joda_of(format: &str) -> String {
    let mut out = format.to_string();
    for (tok, spec) in DATE_TOKENS {
        out = out.replace(spec, tok);
    }
    out
}

/// How a record's `_id` is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdSource {
    /// From a field of the value.
    Field(ValuePath),
    /// From the job and the record's source position.
    Position {
        /// The job name: positions mean something only within their job.
        job: String,
    },
}

impl IdSource {
    /// The id of a record from a field; `Err` is the reason to reject it.
    pub fn from_field(path: &ValuePath, doc: Option<&Value>) -> Result<String, String> {
        match doc.and_then(|d| path.get(d)) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(format!(
                "id field `{path}` is {other}, not a string or number"
            )),
            None => Err(format!("id field `{path}` is missing")),
        }
        .and_then(|id| {
            if id.len() > MAX_ID_BYTES {
                Err(format!(
                    "id field `{path}` is longer than {MAX_ID_BYTES} bytes"
                ))
            } else {
                Ok(id)
            }
        })
    }

    /// The position-derived id of the `ordinal`-th output (0 for the first) of the input at
    /// `position`.
    pub fn from_position(job: &str, position: &Position, ordinal: u32) -> String {
        let mut id = format!("{job}/{}/{}", position.partition, position.offset);
        if ordinal > 0 {
            id.push_str(&format!("#{ordinal}"));
        }
        if id.len() <= MAX_ID_BYTES {
            return id;
        }
        let digest = Sha256::digest(id.as_bytes());
        let mut hex = String::with_capacity(7 + 64);
        hex.push_str("sha256:");
        for b in digest {
            hex.push_str(&format!("{b:02x}"));
        }
        hex
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    #[test]
    fn fixed_field_and_date_parts() {
        let t = IndexTemplate::parse("readings-{yyyy.MM.dd}").unwrap();
        assert!(!t.is_fixed() && !t.needs_value());
        // 2026-11-25T13:00:00Z
        let ms = 1_795_611_600_000;
        assert_eq!(t.render(None, Some(ms)).unwrap(), "readings-2026.11.25");
        assert!(t.render(None, None).unwrap_err().contains("no event time"));
        assert_eq!(t.text(), "readings-{yyyy.MM.dd}");

        let t = IndexTemplate::parse("logs-{service.name}-{yyyy-MM}").unwrap();
        assert!(t.needs_value());
        let doc = json!({"service": {"name": "api"}});
        assert_eq!(t.render(Some(&doc), Some(ms)).unwrap(), "logs-api-2026-11");
        let e = t.render(Some(&json!({})), Some(ms)).unwrap_err();
        assert!(e.contains("`service.name` is missing"), "{e}");

        let t = IndexTemplate::parse("plain").unwrap();
        assert!(t.is_fixed());
        assert_eq!(t.render(None, None).unwrap(), "plain");
    }

    #[test]
    fn bad_templates_are_config_errors_at_index() {
        for bad in [
            "", "Upper", "a b", "x-{", "x-{a..b}", "_hidden", "a}b", "a/b",
        ] {
            let e = IndexTemplate::parse(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("index"), "{bad:?}");
        }
    }

    #[test]
    fn ids_from_positions_are_stable_and_bounded() {
        let p = Position::int(Arc::from("topic/0"), 42);
        assert_eq!(IdSource::from_position("job", &p, 0), "job/topic/0/42");
        assert_eq!(IdSource::from_position("job", &p, 2), "job/topic/0/42#2");
        let long = Position::int(Arc::from("x".repeat(600).as_str()), 1);
        let id = IdSource::from_position("job", &long, 0);
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
        assert_eq!(id, IdSource::from_position("job", &long, 0));
    }

    #[test]
    fn ids_from_fields() {
        let path = ValuePath::parse("a.id").unwrap();
        let doc = json!({"a": {"id": 7}});
        assert_eq!(IdSource::from_field(&path, Some(&doc)).unwrap(), "7");
        assert!(IdSource::from_field(&path, Some(&json!({"a": {"id": [1]}}))).is_err());
        assert!(IdSource::from_field(&path, None).is_err());
    }
}
