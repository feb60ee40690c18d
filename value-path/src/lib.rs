//! The one syntax for naming a field inside a JSON record value, shared by the Sluice host
//! (every connector option that picks a field: `columns`, `key_field`, `topic_field`; route
//! `when = { field = ... }`) and the plugin SDK (plugin options such as `field =
//! "reading.temperature_c"`): names of nested objects joined by single dots.
//!
//! `customer.email` is `{"customer": {"email": ...}}`; `id` is a top-level field. A path is
//! checked once, when the job or the plugin's config is read: an empty path or segment (`a..b`,
//! `.a`) or a JSON pointer (`/a/b`) can never name a field and is refused with a reason, instead
//! of a field that is silently never found. Field names that contain a dot cannot be named;
//! arrays are not indexed.
//!
//! ```
//! use sluice_value_path::ValuePath;
//! use serde_json::json;
//!
//! let path = ValuePath::parse("customer.email").unwrap();
//! let mut doc = json!({"customer": {"email": "a@b", "id": 7}});
//! assert_eq!(path.get(&doc), Some(&json!("a@b")));
//! assert_eq!(path.remove(&mut doc), Some(json!("a@b")));
//! ValuePath::parse("meta.source").unwrap().insert(&mut doc, json!("sluice")).unwrap();
//! assert_eq!(doc, json!({"customer": {"id": 7}, "meta": {"source": "sluice"}}));
//! assert!(ValuePath::parse("a..b").is_err());
//! ```
//!
//! In a config struct, a `ValuePath` field deserializes from a string and a bad path is
//! reported at that field (`` `fields[1]`: "a..b" has an empty segment; ... ``).
#![deny(missing_docs)]

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The field names from the outermost object inwards (never empty).
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The last segment: the field's own name.
    pub fn name(&self) -> &str {
        self.segments.last().map_or("", String::as_str)
    }

    /// The field in `doc`, if every segment names a field of an object.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(doc, |v, segment| v.as_object()?.get(segment))
    }

    /// The field in `doc`, mutably.
    pub fn get_mut<'a>(&self, doc: &'a mut Value) -> Option<&'a mut Value> {
        self.segments
            .iter()
            .try_fold(doc, |v, segment| v.as_object_mut()?.get_mut(segment))
    }

    /// The object holding the field (the path without its last segment), mutably.
    pub fn parent_mut<'a>(&self, doc: &'a mut Value) -> Option<&'a mut Map<String, Value>> {
        let (_, parents) = self.segments.split_last()?;
        parents
            .iter()
            .try_fold(doc, |v, segment| v.as_object_mut()?.get_mut(segment))?
            .as_object_mut()
    }

    /// Remove the field from `doc` and return it. The other fields of its object keep their
    /// order.
    pub fn remove(&self, doc: &mut Value) -> Option<Value> {
        self.parent_mut(doc)?.shift_remove(self.name())
    }

    /// Set the field in `doc` to `value`, creating the objects on the way that are missing. An
    /// existing field keeps its place; a new one goes last. `Err` names the prefix of the path
    /// that holds something other than an object (`"customer"` when it is a string).
    pub fn insert(&self, doc: &mut Value, value: Value) -> Result<Option<Value>, String> {
        let mut here = doc;
        for (depth, segment) in self.segments.iter().enumerate() {
            let Value::Object(map) = here else {
                let at = self.segments[..depth].join(".");
                return Err(if at.is_empty() {
                    format!("cannot set field `{self}` in a value that is not a JSON object")
                } else {
                    format!("cannot set field `{self}`: `{at}` is not a JSON object")
                });
            };
            if depth + 1 == self.segments.len() {
                return Ok(map.insert(segment.clone(), value));
            }
            here = map
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        Ok(None)
    }
}

impl std::str::FromStr for ValuePath {
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

/// Equality as a route's or filter's `equals` / `in` means it: numbers by value (`1` equals
/// `1.0`); text and a number or boolean by their written form (`"42"` equals `42`, since
/// headers are text); anything else by JSON equality.
pub fn loosely_equal(subject: &Value, want: &Value) -> bool {
    let text_equals = |s: &str, other: &Value| {
        let written = other.to_string();
        s == written
    };
    match (subject, want) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(s), Value::Number(_) | Value::Bool(_)) => text_equals(s, want),
        (Value::Number(_) | Value::Bool(_), Value::String(s)) => text_equals(s, subject),
        _ => subject == want,
    }
}

/// A value as a number for `gt` / `gte` / `lt` / `lte`: a JSON number, or text that spells one
/// (headers are text); anything else has none, and fails every comparison.
pub fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for ValuePath {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ValuePath".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[^./][^.]*(\\.[^.]+)*$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> ValuePath {
        ValuePath::parse(p).unwrap()
    }

    #[test]
    fn finds_nested_and_top_level_fields() {
        let v = json!({"customer": {"email": "a@b"}, "id": 7, "list": [1]});
        let get = |p: &str| path(p).get(&v).cloned();
        assert_eq!(get("customer.email"), Some(json!("a@b")));
        assert_eq!(get("id"), Some(json!(7)));
        assert_eq!(get("customer.name"), None);
        assert_eq!(get("id.x"), None, "a scalar has no fields");
        assert_eq!(get("list.0"), None, "arrays are not indexed");
        assert_eq!(path("customer.email").name(), "email");
    }

    #[test]
    fn paths_that_can_never_match_are_refused_with_a_reason() {
        for bad in ["", ".a", "a.", "a..b"] {
            assert!(ValuePath::parse(bad).is_err(), "{bad:?}");
        }
        let e = ValuePath::parse("/payload/temp").unwrap_err();
        assert!(e.contains("\"payload.temp\""), "{e}");
        let e = serde_json::from_value::<ValuePath>(json!("a..b")).unwrap_err();
        assert!(e.to_string().contains("empty segment"), "{e}");
        let p: ValuePath = serde_json::from_value(json!("a.b")).unwrap();
        assert_eq!(p.segments(), ["a", "b"]);
    }

    #[test]
    fn insert_creates_objects_and_keeps_existing_places() {
        let mut v = json!({"a": 1, "b": {"c": 2}, "d": 3});
        assert_eq!(path("a").insert(&mut v, json!(9)).unwrap(), Some(json!(1)));
        path("b.e.f").insert(&mut v, json!(true)).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"a":9,"b":{"c":2,"e":{"f":true}},"d":3}"#
        );
        let e = path("d.x").insert(&mut v, json!(1)).unwrap_err();
        assert_eq!(e, "cannot set field `d.x`: `d` is not a JSON object");
        let e = path("x").insert(&mut json!([1]), json!(1)).unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
    }

    #[test]
    fn comparisons_are_loose_across_text_and_numbers() {
        assert!(loosely_equal(&json!(1), &json!(1.0)));
        assert!(loosely_equal(&json!("42"), &json!(42)));
        assert!(loosely_equal(&json!(true), &json!("true")));
        assert!(!loosely_equal(&json!("42"), &json!("42.0")));
        assert_eq!(as_number(&json!(" 2.5 ")), Some(2.5));
        assert_eq!(as_number(&json!([1])), None);
    }

    #[test]
    fn remove_keeps_the_order_of_the_rest() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4});
        assert_eq!(path("a").remove(&mut v), Some(json!(1)));
        assert_eq!(path("b.c").remove(&mut v), Some(json!(2)));
        assert_eq!(path("b.x").remove(&mut v), None);
        assert_eq!(path("e.x").remove(&mut v), None);
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"b":{"d":3},"e":4}"#);
        *path("b.d").get_mut(&mut v).unwrap() = json!(5);
        assert_eq!(v["b"]["d"], 5);
    }
}
