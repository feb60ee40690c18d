//! `filter`: keep or drop records by a condition on a JSON field.
//!
//! ```toml
//! [[transforms]]
//! plugin = "plugins/filter.wasm"
//! with = { field = "status", op = "ne", value = "ok" }   # keep only non-ok records
//! ```
//!
//! `field` is a dotted path; `op` is one of `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`,
//! `contains`, `exists`, `missing`. Records matching the condition are kept (set
//! `action = "drop"` to drop them instead). A value that is not JSON fails the record, or is
//! handled per `on_invalid = "keep" | "drop"`.

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::{Outcome, Record, json};

/// Comparison operator.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal (numbers compare by value).
    Eq,
    /// Not equal.
    Ne,
    /// Greater than (numbers, or strings lexically).
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Equal to one element of `value` (an array).
    In,
    /// A string containing `value`, or an array containing an element equal to `value`.
    Contains,
    /// The field exists (even if null).
    Exists,
    /// The field does not exist.
    Missing,
}

/// What to do with records matching the condition.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Keep matching records, drop the rest.
    #[default]
    Keep,
    /// Drop matching records, keep the rest.
    Drop,
}

/// What to do with a value that is not JSON.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// Fail the record (dead-letter it).
    #[default]
    Fail,
    /// Keep it.
    Keep,
    /// Drop it.
    Drop,
}

/// The `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Dotted path of the field to test.
    pub field: String,
    /// The comparison.
    pub op: Op,
    /// The operand (not needed by `exists` / `missing`).
    #[serde(default)]
    pub value: Value,
    /// Keep or drop matching records.
    #[serde(default)]
    pub action: Action,
    /// Handling of values that are not JSON.
    #[serde(default)]
    pub on_invalid: OnInvalid,
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(std::cmp::Ordering::Equal),
        _ => a == b,
    }
}

/// Whether `doc` matches the condition.
pub fn matches(doc: &Value, config: &Config) -> bool {
    use std::cmp::Ordering::*;
    let field = json::get(doc, &config.field);
    match (config.op, field) {
        (Op::Exists, f) => f.is_some(),
        (Op::Missing, f) => f.is_none(),
        (_, None) => config.op == Op::Ne,
        (Op::Eq, Some(f)) => equal(f, &config.value),
        (Op::Ne, Some(f)) => !equal(f, &config.value),
        (Op::Gt, Some(f)) => compare(f, &config.value) == Some(Greater),
        (Op::Gte, Some(f)) => matches!(compare(f, &config.value), Some(Greater | Equal)),
        (Op::Lt, Some(f)) => compare(f, &config.value) == Some(Less),
        (Op::Lte, Some(f)) => matches!(compare(f, &config.value), Some(Less | Equal)),
        (Op::In, Some(f)) => config
            .value
            .as_array()
            .is_some_and(|items| items.iter().any(|v| equal(f, v))),
        (Op::Contains, Some(Value::String(s))) => config
            .value
            .as_str()
            .is_some_and(|needle| s.contains(needle)),
        (Op::Contains, Some(Value::Array(items))) => items.iter().any(|v| equal(v, &config.value)),
        (Op::Contains, Some(_)) => false,
    }
}

/// Keep or drop one record.
pub fn transform(record: Record, config: &Config) -> Outcome {
    let doc: Value = match record.json() {
        Ok(doc) => doc,
        Err(e) => {
            return match config.on_invalid {
                OnInvalid::Fail => Outcome::failed(format_args!("value is not JSON: {e}")),
                OnInvalid::Keep => Outcome::Keep,
                OnInvalid::Drop => Outcome::Dropped,
            };
        }
    };
    if matches(&doc, config) == (config.action == Action::Keep) {
        Outcome::Keep
    } else {
        Outcome::Dropped
    }
}

sluice_plugin_sdk::transform!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Value) -> Config {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn keeps_matching_and_drops_the_rest() {
        let c = config(serde_json::json!({"field": "temperature_c", "op": "gt", "value": 90}));
        assert_eq!(
            transform(Record::new(r#"{"temperature_c": 95.1}"#), &c),
            Outcome::Keep
        );
        assert_eq!(
            transform(Record::new(r#"{"temperature_c": 70}"#), &c),
            Outcome::Dropped
        );
        assert_eq!(
            transform(Record::new(r#"{"other": 1}"#), &c),
            Outcome::Dropped
        );
    }

    #[test]
    fn drop_action_inverts_and_invalid_json_fails() {
        let c = config(
            serde_json::json!({"field": "status", "op": "in", "value": ["ok"], "action": "drop"}),
        );
        assert_eq!(
            transform(Record::new(r#"{"status": "ok"}"#), &c),
            Outcome::Dropped
        );
        assert_eq!(
            transform(Record::new(r#"{"status": "fault"}"#), &c),
            Outcome::Keep
        );
        assert!(matches!(
            transform(Record::new("nope"), &c),
            Outcome::Failed(_)
        ));
    }
}
