//! Glue between the generated bindings and a plugin: one plugin instance per component
//! instance, kept in a thread-local (WebAssembly instances are single-threaded).

use std::cell::{Cell, RefCell};

use serde::de::DeserializeOwned;

use sluice_wire::BatchReader;

use crate::Plugin;
use crate::record::{IntoOutcome, Outcome, Record};

/// A plugin with its types erased. (Measured: decoding the whole batch first, then
/// transforming, then encoding is faster in a guest than streaming record by record.)
trait Erased {
    fn process(&mut self, records: Vec<Record>) -> Vec<Outcome>;
}

impl<P: Plugin> Erased for P {
    fn process(&mut self, records: Vec<Record>) -> Vec<Outcome> {
        self.process_batch(records)
    }
}

/// A plugin made of one function and its config.
struct FnPlugin<C, O> {
    config: C,
    f: fn(Record, &C) -> O,
}

impl<C, O: IntoOutcome> Erased for FnPlugin<C, O> {
    fn process(&mut self, records: Vec<Record>) -> Vec<Outcome> {
        records
            .into_iter()
            .map(|r| (self.f)(r, &self.config).into_outcome())
            .collect()
    }
}

thread_local! {
    static PLUGIN: RefCell<Option<Box<dyn Erased>>> = const { RefCell::new(None) };
    static BATCH_TIME_MS: Cell<i64> = const { Cell::new(0) };
}

/// Host wall-clock time of the current `process` call, in milliseconds since the Unix epoch.
///
/// Plugins get no clock of their own (the sandbox grants none); this is the time the host
/// handed over with the batch, the same for every record in it. Zero outside a batch.
pub fn batch_time_ms() -> i64 {
    BATCH_TIME_MS.with(Cell::get)
}

fn parse_config<C: DeserializeOwned>(config: &str) -> Result<C, String> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let de = &mut serde_json::Deserializer::from_str(config);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let parent = e.path().to_string();
        let inner = e.into_inner().to_string();
        // The host made this JSON from the job file: its line and column mean nothing there.
        let message = match inner.rfind(" at line ") {
            Some(i) => &inner[..i],
            None => &inner,
        };
        if parent == "." {
            return format!("invalid config: {message}");
        }
        crate::config_error(&parent, message)
    })
}

/// `value`, a part of the `with` table found at `at`, deserialized into `C`; a rejection names
/// the field as `at` followed by the path inside `value`.
pub fn config_at<C: DeserializeOwned>(at: &str, value: serde_json::Value) -> Result<C, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let message = e.into_inner();
        let field = match (at, inner.as_str()) {
            (at, ".") => at.to_string(),
            ("", inner) => inner.to_string(),
            (at, inner) if inner.starts_with('[') => format!("{at}{inner}"),
            (at, inner) => format!("{at}.{inner}"),
        };
        if field.is_empty() {
            return format!("invalid config: {message}");
        }
        crate::config_error(&field, message)
    })
}

fn install(plugin: Box<dyn Erased>) {
    PLUGIN.with(|p| *p.borrow_mut() = Some(plugin));
}

/// `init` for a [`Plugin`] type.
pub fn init_plugin<P: Plugin>(config: String) -> Result<(), String> {
    let config = parse_config::<P::Config>(&config)?;
    install(Box::new(P::new(config)?));
    Ok(())
}

/// `init` for a one-function plugin.
pub fn init_fn<C: DeserializeOwned + 'static, O: IntoOutcome + 'static>(
    config: String,
    f: fn(Record, &C) -> O,
) -> Result<(), String> {
    let config = parse_config::<C>(&config)?;
    install(Box::new(FnPlugin { config, f }));
    Ok(())
}

/// `process`: decode, run the plugin, encode. An `Err` fails the batch on the host.
pub fn process(batch: Vec<u8>) -> Result<Vec<u8>, String> {
    let batch = BatchReader::new(batch).map_err(|e| format!("bad batch: {e}"))?;
    BATCH_TIME_MS.with(|t| t.set(batch.time_ms()));
    let mut records = Vec::with_capacity(batch.size_hint().1.unwrap_or(0));
    for fields in batch {
        records.push(Record::from(fields.map_err(|e| format!("bad batch: {e}"))?));
    }
    let n = records.len();
    let outcomes = PLUGIN.with(|p| match p.borrow_mut().as_mut() {
        Some(plugin) => Ok(plugin.process(records)),
        None => Err("process called before init".to_string()),
    })?;
    if outcomes.len() != n {
        return Err(format!(
            "plugin returned {} outcomes for {n} records",
            outcomes.len()
        ));
    }
    let mut out = Vec::with_capacity(4 + n);
    sluice_wire::encode_outcomes(&mut out, outcomes.into_iter().map(Outcome::into_wire))
        .map_err(|e| format!("cannot encode the outcomes: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sluice_wire::{OutcomeReader, RecordFields, encode_batch};

    use super::*;
    use crate::{Header, NoConfig};

    fn upper_or_fail(record: Record, _: &NoConfig) -> Outcome {
        match record.value_str() {
            Ok("drop") => Outcome::Dropped,
            Ok("keep") => Outcome::Keep,
            Ok(text) => {
                let mut out = record.clone();
                out.value = Bytes::from(text.to_uppercase());
                out.set_header("seen", "1");
                Outcome::Ok(vec![record, out])
            }
            Err(e) => Outcome::failed(e),
        }
    }

    fn batch(values: &[&'static [u8]]) -> Vec<u8> {
        let records: Vec<RecordFields> = values
            .iter()
            .map(|v| RecordFields {
                value: Bytes::from_static(v),
                timestamp: Some(5),
                ..RecordFields::default()
            })
            .collect();
        let mut buf = Vec::new();
        encode_batch(&mut buf, 1234, &records).unwrap();
        buf
    }

    #[test]
    fn process_runs_the_plugin_and_encodes_one_outcome_per_record() {
        init_fn(String::new(), upper_or_fail).unwrap();
        let out = process(batch(&[b"keep", b"drop", b"ab", b"\xff"])).unwrap();
        assert_eq!(batch_time_ms(), 1234);
        let mut reader = OutcomeReader::new(out, 4).unwrap();
        let mut next = || reader.next_outcome(|f| f).unwrap();
        assert_eq!(next(), sluice_wire::Outcome::Keep);
        assert_eq!(next(), sluice_wire::Outcome::Dropped);
        let sluice_wire::Outcome::Ok(records) = next() else {
            panic!("expected two records")
        };
        assert_eq!(records[0].value, "ab");
        assert_eq!(records[1].value, "AB");
        assert_eq!(records[1].timestamp, Some(5));
        let seen = Header {
            name: "seen".into(),
            value: Bytes::from_static(b"1"),
        };
        assert_eq!(records[1].headers, vec![seen]);
        assert!(matches!(next(), sluice_wire::Outcome::Failed(r) if r.contains("utf-8")));
    }

    #[test]
    fn process_rejects_a_batch_with_trailing_bytes() {
        init_fn(String::new(), upper_or_fail).unwrap();
        let mut buf = batch(&[b"a"]);
        buf.push(0);
        let err = process(buf).unwrap_err();
        assert!(err.contains("1 trailing bytes"), "{err}");
    }

    #[test]
    fn process_rejects_a_plugin_that_loses_records() {
        struct Lossy;
        impl Plugin for Lossy {
            type Config = NoConfig;
            fn new(_: NoConfig) -> Result<Self, String> {
                Ok(Lossy)
            }
            fn transform(&mut self, _: Record) -> Outcome {
                Outcome::Keep
            }
            fn process_batch(&mut self, _: Vec<Record>) -> Vec<Outcome> {
                vec![Outcome::Keep]
            }
        }
        init_plugin::<Lossy>(String::new()).unwrap();
        let err = process(batch(&[b"a", b"b"])).unwrap_err();
        assert!(err.contains("1 outcomes for 2 records"), "{err}");
    }
}

#[cfg(test)]
mod config_tests {
    use super::parse_config;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        rename: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        limit: u32,
    }

    #[test]
    fn config_errors_name_the_field_without_json_positions() {
        let err = parse_config::<Config>(r#"{"rename": {"a": 5}}"#).unwrap_err();
        assert!(
            err.starts_with("`rename.a`: invalid type: integer `5`"),
            "{err}"
        );
        assert!(!err.contains("line 1"), "{err}");
        let err = parse_config::<Config>(r#"{"rename": {}, "colour": 1}"#).unwrap_err();
        assert!(err.starts_with("`colour`: unknown field `colour`"), "{err}");
        let err = parse_config::<Config>("{}").unwrap_err();
        assert_eq!(err, "invalid config: missing field `rename`");
        assert!(parse_config::<Config>(r#"{"rename": {"a": "b"}}"#).is_ok());
    }

    #[test]
    fn config_at_prefixes_the_field_path() {
        use super::config_at;
        let v = serde_json::json!({"rename": {"a": 5}});
        let err = config_at::<Config>("steps[2]", v.clone()).unwrap_err();
        assert!(
            err.starts_with("`steps[2].rename.a`: invalid type: integer `5`"),
            "{err}"
        );
        let err = config_at::<Config>("", v).unwrap_err();
        assert!(err.starts_with("`rename.a`: "), "{err}");
        let err = config_at::<Config>("steps[0]", serde_json::json!({})).unwrap_err();
        assert_eq!(err, "`steps[0]`: missing field `rename`");
    }
}
