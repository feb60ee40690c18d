//! The one syntax for naming a field inside a JSON record value, used by every connector option
//! that picks a field (`columns`, `key_field`, `topic_field`, ...) and by the bundled plugins
//! (`field = "reading.temperature_c"`): names of nested objects joined by dots.
//!
//! `customer.email` is `{"customer": {"email": ...}}`; `id` is a top-level field. A path is
//! checked when the job is loaded: an empty path or segment (`a..b`, `.a`) or a JSON pointer
//! (`/a/b`) can never name a field and is a config error at the option, with its line, instead
//! of a field that is silently never found. Field names that contain a dot cannot be named.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A dotted path to a field of a JSON object (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ValuePath {
    text: String,
    segments: Vec<String>,
}

impl ValuePath {
    /// Parse a dotted path; `Err` says why it can never name a field.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty field path names no field".into());
        }
        if text.starts_with('/') {
            let dotted = text.trim_start_matches('/').replace('/', ".");
            return Err(format!(
                "{text:?} is a JSON pointer; field paths are dotted: write {dotted:?}"
            ));
        }
        let segments: Vec<String> = text.split('.').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!(
                "{text:?} has an empty segment; a field path is names joined by single dots, like \"customer.email\""
            ));
        }
        Ok(Self {
            text: text.to_string(),
            segments,
        })
    }

    /// The field in `value`, if every segment names a field of an object.
    pub fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(value, |v, segment| v.as_object()?.get(segment))
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The field names from the outermost object inwards.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

impl FromStr for ValuePath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ValuePath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<ValuePath> for String {
    fn from(p: ValuePath) -> String {
        p.text
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonSchema for ValuePath {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "ValuePath".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[^./][^.]*(\\.[^.]+)*$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_nested_and_top_level_fields() {
        let v = json!({"customer": {"email": "a@b"}, "id": 7, "list": [1]});
        let get = |p: &str| ValuePath::parse(p).unwrap().get(&v).cloned();
        assert_eq!(get("customer.email"), Some(json!("a@b")));
        assert_eq!(get("id"), Some(json!(7)));
        assert_eq!(get("customer.name"), None);
        assert_eq!(get("id.x"), None, "a scalar has no fields");
        assert_eq!(get("list.0"), None, "arrays are not indexed");
    }

    #[test]
    fn paths_that_can_never_match_are_refused_with_a_reason() {
        for bad in ["", ".a", "a.", "a..b"] {
            assert!(ValuePath::parse(bad).is_err(), "{bad:?}");
        }
        let e = ValuePath::parse("/payload/temp").unwrap_err();
        assert!(e.contains("\"payload.temp\""), "{e}");
    }

    #[test]
    fn deserializes_from_a_string_and_refuses_bad_ones() {
        let p: ValuePath = serde_json::from_value(json!("a.b")).unwrap();
        assert_eq!(p.segments(), ["a", "b"]);
        let e = serde_json::from_value::<ValuePath>(json!("a..b")).unwrap_err();
        assert!(e.to_string().contains("empty segment"), "{e}");
    }
}
