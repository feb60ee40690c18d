//! `smt`: Kafka Connect's single message transforms, as one plugin.
//!
//! ```toml
//! # One transform per instance ...
//! [[transforms]]
//! plugin = "plugins/dist/smt.wasm"
//! with = { type = "ReplaceField", exclude = ["debug"], rename = { temperature_c = "temp_c" } }
//!
//! # ... or an ordered list of them, applied in one call per batch.
//! [[transforms]]
//! plugin = "plugins/dist/smt.wasm"
//! with = { steps = [
//!     { type = "Cast", fields = { seq = "string" } },
//!     { type = "ValueToKey", fields = ["device_id"] },
//!     { type = "RegexRouter", regex = "sensors-(.*)", replacement = "readings-$1" },
//! ] }
//! ```
//!
//! `type` is the Kafka Connect transform's class name: `InsertField`, `ReplaceField`,
//! `MaskField`, `Cast`, `TimestampConverter`, `ExtractField`, `Flatten`, `HoistField`,
//! `ValueToKey`, `Filter`, `RegexRouter`, `TimestampRouter`, and the header ones
//! `InsertHeader`, `HeaderFrom`, `DropHeaders` (a full class name such as
//! `org.apache.kafka.connect.transforms.Cast$Value` is read as its short name; of the `$Key`
//! variants, `ExtractField$Key` is offered). The other keys are that transform's, named after
//! Kafka's properties (`.` written `_`) where they fit; see each module and the table in
//! `plugins/README.md`. Fields are named with Sluice's dotted field paths ([`ValuePath`]), so
//! they reach into nested objects where Kafka's take top-level names.
//!
//! The whole config is checked when the job loads: an unknown transform, an unknown key, a bad
//! regex, cast type or time format rejects the job, naming the key (`steps[2].regex`). Per
//! record, the value is parsed once for all steps and written once after them; a step that
//! cannot do its work on a record (a required field missing, a cast that does not fit) fails the
//! record, so it goes to the dead letter with the reason, prefixed with the step
//! (`steps[1] (Cast): field `age`: "abc" is not an int32`).
//!
//! Sluice records carry no topic: what Kafka Connect does with the topic, this plugin does with
//! a header (default `topic`), which routes test (`when = { header = "topic", equals = ... }`)
//! and the Kafka sink writes to (`topic_header = "topic"`). Plugins do not see a record's source
//! partition or offset, so `InsertField` cannot insert them.

mod cast;
mod cond;
mod doc;
mod fields;
mod headers;
mod route;
mod shape;
mod time;

use serde_json::{Map, Value};
use sluice_plugin_sdk::{Outcome, Plugin, Record, config_error};

pub use doc::Doc;
pub use sluice_plugin_sdk::ValuePath;

/// The header that stands for Kafka's topic, unless a transform's `header` says otherwise.
pub const TOPIC_HEADER: &str = "topic";

/// What a step decided for a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next step.
    Next,
    /// Drop the record (`Filter`).
    Drop,
}

/// One configured transform, ready to run on records.
pub trait Step {
    /// Apply to one record; `Err` fails the record with that reason.
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String>;
}

/// Builds a step from its keys (without `type`); `at` is where they are in the `with` table.
type Build = fn(&str, Value) -> Result<Box<dyn Step>, String>;

/// Every transform, by its Kafka Connect name.
const SMTS: &[(&str, Build)] = &[
    ("InsertField", fields::insert_field),
    ("ReplaceField", fields::replace_field),
    ("MaskField", fields::mask_field),
    ("Cast", cast::build),
    ("TimestampConverter", time::build),
    ("ExtractField", shape::extract_field),
    ("Flatten", shape::flatten),
    ("HoistField", shape::hoist_field),
    ("ValueToKey", shape::value_to_key),
    ("Filter", route::filter),
    ("RegexRouter", route::regex_router),
    ("TimestampRouter", route::timestamp_router),
    ("InsertHeader", headers::insert_header),
    ("HeaderFrom", headers::header_from),
    ("DropHeaders", headers::drop_headers),
];

/// The transforms offered on the key too (`ExtractField$Key`).
const KEY_SMTS: &[(&str, Build)] = &[("ExtractField", shape::extract_key_field)];

/// The `with` table: `{ type = "...", ... }` for one transform, or `{ steps = [...] }`.
pub type Config = Map<String, Value>;

/// The plugin: its steps, in order, each with the label its failures carry.
pub struct Smt {
    steps: Vec<(String, Box<dyn Step>)>,
}

/// `at` joined with `key`, as config errors name fields.
pub(crate) fn at(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// A rejection of the step at `at` as a whole (of the whole `with` table when `at` is empty).
pub(crate) fn step_error(at: &str, message: &str) -> String {
    if at.is_empty() {
        message.to_string()
    } else {
        config_error(at, message)
    }
}

/// Build one step from `{ type = "...", ... }` found at `at`; returns its label too.
fn build_step(at_: &str, mut with: Map<String, Value>) -> Result<(String, Box<dyn Step>), String> {
    let names = || SMTS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let type_at = at(at_, "type");
    let name = match with.shift_remove("type") {
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(config_error(
                &type_at,
                "expected a transform name as a string",
            ));
        }
        None => {
            let message = format!("missing: name the transform, one of {}", names());
            return Err(config_error(&type_at, message));
        }
    };
    // `org.apache.kafka.connect.transforms.Cast$Value` reads as `Cast`.
    let short = name.rsplit('.').next().unwrap_or(&name);
    let (short, variant) = match short.split_once('$') {
        Some((s, v)) => (s, Some(v)),
        None => (short, None),
    };
    let Some((smt, build)) = SMTS.iter().find(|(n, _)| *n == short) else {
        let message = format!("unknown transform `{name}`; one of {}", names());
        return Err(config_error(&type_at, message));
    };
    let (build, smt) = match variant {
        None | Some("Value") => (*build, (*smt).to_string()),
        Some("Key") => match KEY_SMTS.iter().find(|(n, _)| n == smt) {
            Some((_, build)) => (*build, format!("{smt}$Key")),
            None => {
                let message = format!(
                    "`{smt}$Key` is not offered: transforms here work on the record's value (ValueToKey sets the key from it, ExtractField$Key picks one field of that key)"
                );
                return Err(config_error(&type_at, message));
            }
        },
        Some(other) => {
            let message = format!("unknown variant `${other}`");
            return Err(config_error(&type_at, message));
        }
    };
    let step = build(at_, Value::Object(with))?;
    let label = if at_.is_empty() {
        smt
    } else {
        format!("{at_} ({smt})")
    };
    Ok((label, step))
}

impl Smt {
    /// Run every step on `record`.
    fn run(&self, record: Record) -> Result<Outcome, String> {
        let (key, headers) = (record.key.clone(), record.headers.clone());
        let mut doc = Doc::new(record);
        for (label, step) in &self.steps {
            match step.apply(&mut doc) {
                Ok(Flow::Next) => {}
                Ok(Flow::Drop) => return Ok(Outcome::Dropped),
                Err(reason) => return Err(format!("{label}: {reason}")),
            }
        }
        // A record passed unchanged (a `Filter` keeping it) is not copied back to the host.
        if !doc.changed() && doc.record.key == key && doc.record.headers == headers {
            return Ok(Outcome::Keep);
        }
        Ok(Outcome::one(doc.finish()?))
    }
}

impl Plugin for Smt {
    type Config = Config;

    fn new(mut config: Config) -> Result<Self, String> {
        let Some(steps) = config.shift_remove("steps") else {
            return Ok(Self {
                steps: vec![build_step("", config)?],
            });
        };
        if let Some(key) = config.keys().next() {
            let message = "with `steps`, each transform's keys go inside its step";
            return Err(config_error(key, message));
        }
        let Value::Array(steps) = steps else {
            return Err(config_error("steps", "expected a list of transforms"));
        };
        if steps.is_empty() {
            return Err(config_error("steps", "needs at least one transform"));
        }
        let steps = steps
            .into_iter()
            .enumerate()
            .map(|(i, step)| match step {
                Value::Object(with) => build_step(&format!("steps[{i}]"), with),
                _ => Err(config_error(
                    &format!("steps[{i}]"),
                    "expected a table: { type = \"...\", ... }",
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { steps })
    }

    fn transform(&mut self, record: Record) -> Outcome {
        self.run(record).unwrap_or_else(Outcome::Failed)
    }
}

sluice_plugin_sdk::export_plugin!(Smt);

/// Helpers for the modules' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The plugin for a `with` table, or its config error.
    pub fn smt(with: Value) -> Result<Smt, String> {
        let Value::Object(config) = with else {
            panic!("not a table")
        };
        Smt::new(config)
    }

    /// Run `with` on a record with `value`; the output record, or the failure.
    pub fn run(with: Value, value: &str) -> Result<Option<Record>, String> {
        let plugin = smt(with).unwrap();
        run_record(&plugin, Record::new(value.to_string()))
    }

    /// Run a built plugin on a record.
    pub fn run_record(plugin: &Smt, record: Record) -> Result<Option<Record>, String> {
        match plugin.run(record.clone())? {
            Outcome::Keep => Ok(Some(record)),
            Outcome::Dropped => Ok(None),
            Outcome::Ok(mut out) => Ok(out.pop()),
            other => panic!("{other:?}"),
        }
    }

    /// The output value of `with` on `value`, as text.
    pub fn value(with: Value, value: &str) -> String {
        let out = run(with, value).unwrap().expect("dropped");
        String::from_utf8(out.value.to_vec()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_transforms_and_keys_are_config_errors_naming_the_key() {
        let e = smt(json!({"type": "Frobnicate"})).err().unwrap();
        assert!(
            e.starts_with("`type`: unknown transform `Frobnicate`; one of InsertField, "),
            "{e}"
        );
        let e = smt(json!({"steps": [{"type": "Flatten"}, {"type": "Nope"}]}))
            .err()
            .unwrap();
        assert!(e.starts_with("`steps[1].type`: unknown transform"), "{e}");
        let e = smt(json!({"steps": [{"type": "Flatten", "colour": 1}]}))
            .err()
            .unwrap();
        assert!(e.starts_with("`steps[0].colour`: unknown field"), "{e}");
        let e = smt(json!({"field": "a"})).err().unwrap();
        assert!(e.starts_with("`type`: missing"), "{e}");
        let e = smt(json!({"type": "InsertField$Key"})).err().unwrap();
        assert!(e.contains("not offered"), "{e}");
        let e = smt(json!({"type": "Cast$Nope"})).err().unwrap();
        assert!(e.starts_with("`type`: unknown variant `$Nope`"), "{e}");
        let e = smt(json!({"steps": [], })).err().unwrap();
        assert!(e.starts_with("`steps`: needs at least one"), "{e}");
        let e = smt(json!({"steps": [{"type": "Flatten"}], "type": "Flatten"}))
            .err()
            .unwrap();
        assert!(e.starts_with("`type`: with `steps`"), "{e}");
        assert!(smt(json!({"type": "org.apache.kafka.connect.transforms.Flatten$Value"})).is_ok());
    }

    #[test]
    fn records_passed_unchanged_are_kept_without_a_copy() {
        let filter = json!({"type": "Filter", "when": {"field": "level", "equals": "debug"}});
        let record = Record::new(r#"{ "level": "info", "n": 1.50 }"#);
        assert_eq!(smt(filter).unwrap().run(record.clone()), Ok(Outcome::Keep));
        // Read only: the value keeps its text; the new key is written.
        let to_key = json!({"type": "ValueToKey", "fields": ["n"]});
        let out = run_record(&smt(to_key).unwrap(), record.clone())
            .unwrap()
            .unwrap();
        assert_eq!(out.value, record.value);
        assert_eq!(out.key.unwrap(), r#"{"n":1.5}"#);
    }

    #[test]
    fn steps_run_in_order_and_failures_name_the_step() {
        let with = json!({"steps": [
            {"type": "HoistField", "field": "inner"},
            {"type": "InsertField", "static_field": "v", "static_value": 2},
            {"type": "ExtractField", "field": "inner.a"},
        ]});
        assert_eq!(value(with.clone(), r#"{"a":"x"}"#), r#""x""#);
        let e = run(with, r#"{"b":1}"#).unwrap_err();
        assert_eq!(e, "steps[2] (ExtractField): field `inner.a` is missing");
        let e = run(json!({"type": "Flatten"}), "not json").unwrap_err();
        assert!(e.starts_with("Flatten: value is not JSON: "), "{e}");
    }
}
