//! Glue between the generated bindings and a plugin: one plugin instance per component
//! instance, kept in a thread-local (WebAssembly instances are single-threaded).

use std::cell::{Cell, RefCell};

use serde::de::DeserializeOwned;

use crate::record::{IntoOutcome, Outcome, Record};
use crate::wire::BatchReader;
use crate::{Plugin, wire};

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
    serde_json::from_str(config).map_err(|e| format!("invalid config: {e}"))
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

/// `process`: decode, run the plugin, encode.
pub fn process(batch: Vec<u8>) -> Result<Vec<u8>, String> {
    let batch = BatchReader::new(batch)?;
    BATCH_TIME_MS.with(|t| t.set(batch.time_ms));
    let records = batch.collect()?;
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
    let mut out = wire::start_outcomes(n);
    for outcome in &outcomes {
        wire::put_outcome(&mut out, outcome);
    }
    Ok(out)
}
