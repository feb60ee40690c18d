//! `noop`: passes every record on. With `mode = "copy"` it re-emits each record as a new output
//! (so the record crosses the boundary both ways), otherwise it answers `keep`.

use serde::Deserialize;
use sluice_plugin_sdk::{Outcome, Record};

/// How to pass records on.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Answer `keep`: nothing crosses back to the host.
    #[default]
    Keep,
    /// Re-emit the record as an output.
    Copy,
}

/// The `with` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How to pass records on.
    #[serde(default)]
    pub mode: Mode,
}

/// Pass the record on.
pub fn transform(record: Record, config: &Config) -> Outcome {
    match config.mode {
        Mode::Keep => Outcome::Keep,
        Mode::Copy => Outcome::one(record),
    }
}

sluice_plugin_sdk::transform!(transform);
