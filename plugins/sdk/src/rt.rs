//! Glue between the generated bindings and a plugin: one plugin instance per component
//! instance, kept in a thread-local (WebAssembly instances are single-threaded).

use std::cell::{Cell, RefCell};

use serde::de::DeserializeOwned;

use crate::record::{IntoOutcome, Record};
use crate::wire::BatchReader;
use crate::{Plugin, wire};

/// A plugin with its types erased: reads a batch, writes its outcomes.
trait Erased {
    fn process(&mut self, batch: BatchReader, out: &mut Vec<u8>) -> Result<(), String>;
}

impl<P: Plugin> Erased for P {
    fn process(&mut self, mut batch: BatchReader, out: &mut Vec<u8>) -> Result<(), String> {
        let n = batch.remaining();
        let mut records = Vec::with_capacity(n);
        while let Some(record) = batch.next_record()? {
            records.push(record);
        }
        let outcomes = self.process_batch(records);
        if outcomes.len() != n {
            return Err(format!(
                "plugin returned {} outcomes for {n} records",
                outcomes.len()
            ));
        }
        for outcome in &outcomes {
            wire::put_outcome(out, outcome);
        }
        Ok(())
    }
}

/// A plugin made of one function and its config.
struct FnPlugin<C, O> {
    config: C,
    f: fn(Record, &C) -> O,
}

impl<C, O: IntoOutcome> Erased for FnPlugin<C, O> {
    /// Streams: decode a record, transform it, encode its outcome; nothing is collected.
    fn process(&mut self, mut batch: BatchReader, out: &mut Vec<u8>) -> Result<(), String> {
        while let Some(record) = batch.next_record()? {
            wire::put_outcome(out, &(self.f)(record, &self.config).into_outcome());
        }
        Ok(())
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
    let mut out = wire::start_outcomes(batch.remaining());
    PLUGIN.with(|p| match p.borrow_mut().as_mut() {
        Some(plugin) => plugin.process(batch, &mut out),
        None => Err("process called before init".to_string()),
    })?;
    Ok(out)
}
