//! `jq`: transform each record's JSON value with a jq filter.
//!
//! ```toml
//! [[transforms]]
//! plugin = "plugins/jq.wasm"
//! with = { filter = '.temp_f = .temperature_c * 9 / 5 + 32 | del(.debug)' }
//! ```
//!
//! `filter` is a jq program, run by [jaq](https://github.com/01mf02/jaq) (a jq implementation in
//! Rust; its standard library, not jq's C builtins) on each record's value, parsed as JSON. It is
//! compiled once, when the job loads: a filter that does not compile rejects the job with jaq's
//! message. Per record:
//!
//! - one output replaces the value (key, headers and timestamp stay);
//! - no output (`empty`, `select(false)`) drops the record;
//! - several outputs (`.items[]`) become several records in the input's place, each with the
//!   input's key, headers and timestamp;
//! - an error (`error("…")`, `.a.b` on a string, a value that is not JSON, an output JSON
//!   cannot hold such as a byte string) fails the record with jq's message: it goes to the dead
//!   letter, and outputs produced before the error are discarded.
//!
//! `vars = { name = value }` binds each value (any JSON) as `$name`. `now` is the batch's
//! processing time in seconds (the sandbox has no clock); `env` is empty; `input`, `inputs`
//! and modules are not available. Output is compact JSON with object keys in order (but jaq's
//! `del` moves an object's last key into the deleted key's place); numbers read from the input
//! keep their text, a division's result is a float (`212.0`), non-finite numbers are written as
//! `null` (as jq does).

mod compile;
mod write;

use jaq_core::{Ctx, Exn, Vars};
use jaq_json::Val;
use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_plugin_sdk::{Bytes, Outcome, Plugin, Record, config_error};

/// The `with` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The jq program run on each record's value.
    pub filter: String,
    /// Variables bound as `$name` in the filter: name → any JSON value.
    #[serde(default)]
    pub vars: Map<String, Value>,
}

/// The plugin: a filter compiled once, and its variables' values.
pub struct Jq {
    filter: compile::Filter,
    vars: Vars<Val>,
}

/// Whether `name` can be written as `$name` in jq.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The message of a jq error: a string as it is, anything else as JSON (as jq prints it).
fn message(exn: Exn<'_, Val>) -> String {
    match exn.get_err() {
        Ok(error) => match error.into_val() {
            Val::TStr(s) => String::from_utf8_lossy(&s).into_owned(),
            other => format!("{other} (not a string)"),
        },
        Err(exn) => match exn.get_halt() {
            Ok(code) => format!("jq filter halted with exit code {code}"),
            Err(exn) => format!("jq filter escaped with {exn:?}"),
        },
    }
}

impl Jq {
    /// The values of `value` under the filter, as JSON texts.
    fn run(&self, value: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        // jaq's reader also takes `NaN`, `# comments` and leading zeros; serde_json checks the
        // text is JSON first (no allocation), then jaq reads it keeping numbers' text.
        let not_json = |e: &dyn std::fmt::Display| format!("value is not JSON: {e}");
        serde_json::from_slice::<serde::de::IgnoredAny>(value).map_err(|e| not_json(&e))?;
        let input = jaq_json::read::parse_single(value).map_err(|e| not_json(&e))?;
        let ctx = Ctx::<compile::Data>::new(&self.filter.lut, self.vars.clone());
        let mut outputs = Vec::new();
        for output in self.filter.id.run((ctx, input)) {
            let output = output.map_err(message)?;
            let mut text = Vec::with_capacity(value.len() + 32);
            write::json(&mut text, &output)?;
            outputs.push(text);
        }
        Ok(outputs)
    }
}

impl Plugin for Jq {
    type Config = Config;

    fn new(config: Config) -> Result<Self, String> {
        let mut names = Vec::with_capacity(config.vars.len());
        let mut values = Vec::with_capacity(config.vars.len());
        for (name, value) in &config.vars {
            if !is_identifier(name) {
                let hint = "a variable name is letters, digits and `_`, without the `$`";
                return Err(config_error(&format!("vars.{name}"), hint));
            }
            let text = serde_json::to_vec(value).map_err(|e| e.to_string())?;
            let value = jaq_json::read::parse_single(&text)
                .map_err(|e| config_error(&format!("vars.{name}"), e))?;
            names.push(format!("${name}"));
            values.push(value);
        }
        let filter =
            compile::compile(&config.filter, &names).map_err(|e| config_error("filter", e))?;
        Ok(Self {
            filter,
            vars: Vars::new(values),
        })
    }

    fn transform(&mut self, record: Record) -> Outcome {
        let mut outputs = match self.run(&record.value) {
            Ok(outputs) => outputs,
            Err(reason) => return Outcome::Failed(reason),
        };
        match outputs.len() {
            0 => Outcome::Dropped,
            // Unchanged (`select(…)` keeping a record): nothing to copy back to the host.
            1 if outputs[0] == record.value => Outcome::Keep,
            1 => {
                let value = outputs.pop().unwrap_or_default();
                Outcome::one(Record {
                    value: Bytes::from(value),
                    ..record
                })
            }
            _ => Outcome::Ok(
                outputs
                    .into_iter()
                    .map(|value| Record {
                        value: Bytes::from(value),
                        ..record.clone()
                    })
                    .collect(),
            ),
        }
    }
}

sluice_plugin_sdk::export_plugin!(Jq);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plugin(with: Value) -> Result<Jq, String> {
        Jq::new(serde_json::from_value(with).map_err(|e| e.to_string())?)
    }

    fn jq(filter: &str) -> Jq {
        plugin(json!({ "filter": filter })).unwrap()
    }

    /// The output values of `filter` on `input`, as text.
    fn values(o: Outcome) -> Vec<String> {
        let Outcome::Ok(out) = o else { panic!("{o:?}") };
        out.iter()
            .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn sets_and_deletes_fields() {
        let mut p = jq(".temp_f = .temperature_c * 9 / 5 + 32 | del(.debug)");
        let out = p.transform(Record::new(
            r#"{"sensor":"s1","temperature_c":100,"debug":"x","ok":true}"#,
        ));
        // New keys go last; `del` moves the last key into the deleted one's place (jaq deletes
        // in constant time).
        assert_eq!(
            values(out),
            [r#"{"sensor":"s1","temperature_c":100,"temp_f":212.0,"ok":true}"#]
        );
        let mut p = jq(r#"with_entries(select(.key != "debug"))"#);
        let out = p.transform(Record::new(r#"{"a":1,"debug":2,"b":3,"c":4}"#));
        assert_eq!(values(out), [r#"{"a":1,"b":3,"c":4}"#]);
    }

    #[test]
    fn one_output_keeps_key_headers_and_timestamp() {
        let mut p = jq(".n += 1");
        let mut record = Record::new(r#"{"n":1}"#);
        record.key = Some(Bytes::from_static(b"k"));
        record.set_header("h", "v");
        record.timestamp = Some(7);
        let Outcome::Ok(out) = p.transform(record.clone()) else {
            panic!()
        };
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, r#"{"n":2}"#);
        assert_eq!(
            (&out[0].key, &out[0].headers),
            (&record.key, &record.headers)
        );
        assert_eq!(out[0].timestamp, Some(7));
    }

    #[test]
    fn empty_drops_and_an_unchanged_value_is_kept() {
        let mut p = jq("select(.n > 1)");
        assert_eq!(p.transform(Record::new(r#"{"n":1}"#)), Outcome::Dropped);
        assert_eq!(p.transform(Record::new(r#"{"n":2}"#)), Outcome::Keep);
        assert_eq!(jq("empty").transform(Record::new("1")), Outcome::Dropped);
    }

    #[test]
    fn several_outputs_fan_out_with_the_inputs_key() {
        let mut p = jq(".id as $id | .items[] | {id: $id, item: .}");
        let mut record = Record::new(r#"{"id":7,"items":["a",{"b":1}]}"#);
        record.key = Some(Bytes::from_static(b"k"));
        let Outcome::Ok(out) = p.transform(record) else {
            panic!()
        };
        let texts: Vec<_> = out.iter().map(|r| r.value.clone()).collect();
        assert_eq!(
            texts,
            [r#"{"id":7,"item":"a"}"#, r#"{"id":7,"item":{"b":1}}"#]
        );
        assert!(out.iter().all(|r| r.key.as_deref() == Some(&b"k"[..])));
    }

    #[test]
    fn runtime_errors_fail_the_record_with_jqs_message() {
        let mut p = jq(".temperature_c - 2");
        let Outcome::Failed(reason) = p.transform(Record::new(r#"{"temperature_c":"hot"}"#)) else {
            panic!()
        };
        assert_eq!(reason, r#"cannot calculate "hot" - 2"#);

        let mut p = jq(r#"if .ok then . else error("not ok: \(.id)") end"#);
        assert_eq!(
            p.transform(Record::new(r#"{"ok":false,"id":3}"#)),
            Outcome::Failed("not ok: 3".into())
        );
        // Outputs before the error are discarded with the record.
        let mut p = jq(".[] | 10 / .");
        assert!(matches!(
            p.transform(Record::new("[1, 2, \"x\"]")),
            Outcome::Failed(_)
        ));
        for not_json in ["{nope", "NaN", "01", "# comment\n1"] {
            let Outcome::Failed(reason) = p.transform(Record::new(not_json)) else {
                panic!("{not_json}")
            };
            assert!(reason.starts_with("value is not JSON"), "{reason}");
        }
        let Outcome::Failed(reason) = jq("tobytes").transform(Record::new(r#""a""#)) else {
            panic!()
        };
        assert!(reason.contains("byte string"), "{reason}");
    }

    #[test]
    fn a_filter_that_does_not_compile_is_a_config_error() {
        let e = plugin(json!({ "filter": ".a | | .b" })).err().unwrap();
        assert!(e.starts_with("`filter`: expected"), "{e}");
        assert!(e.contains("at character"), "{e}");
        let e = plugin(json!({ "filter": "frobnicate(1)" })).err().unwrap();
        assert_eq!(
            e,
            "`filter`: undefined filter `frobnicate/1` at character 1"
        );
        let e = plugin(json!({ "filter": ".a + $missing" })).err().unwrap();
        assert_eq!(e, "`filter`: undefined variable `$missing` at character 6");
        let e = plugin(json!({ "filter": "(.a" })).err().unwrap();
        assert!(
            e.starts_with("`filter`: expected closing parenthesis"),
            "{e}"
        );
        // No input stream beside the record.
        let e = plugin(json!({ "filter": "[., input]" })).err().unwrap();
        assert!(e.contains("undefined filter `input/0`"), "{e}");
        assert!(plugin(json!({ "filter": ".", "extra": 1 })).is_err());
    }

    #[test]
    fn vars_are_bound_as_dollar_names() {
        let mut p = plugin(json!({
            "filter": ".site = $site | .limit = $limits.max",
            "vars": { "site": "plant-7", "limits": { "max": 90 } },
        }))
        .unwrap();
        assert_eq!(
            values(p.transform(Record::new(r#"{"t":1}"#))),
            [r#"{"t":1,"site":"plant-7","limit":90}"#]
        );
        let e = plugin(json!({ "filter": ".", "vars": { "$x": 1 } }))
            .err()
            .unwrap();
        assert!(e.starts_with("`vars.$x`: "), "{e}");
    }

    #[test]
    fn now_is_the_batch_time() {
        let mut p = jq("{t: now}");
        let out = values(p.transform(Record::new("null")));
        let t: f64 = serde_json::from_str::<Value>(&out[0]).unwrap()["t"]
            .as_f64()
            .unwrap();
        assert_eq!(t, sluice_plugin_sdk::batch_time_ms() as f64 / 1000.0);
    }
}
