//! The transform contract as the runtime sees it. The WebAssembly host (`sluice-transforms`)
//! implements it; the core never names wasmtime types.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::record::Record;
use crate::units::{ByteSize, HumanDuration};

/// The outcome of one input record, Firehose-style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Zero, one or many output records. Each carries its input's position.
    Ok(Vec<Record>),
    /// The record is intentionally dropped (filtered out).
    Dropped,
    /// The record failed; it goes to the dead-letter sink with this reason.
    Failed(String),
}

/// Why a whole batch failed inside a transform.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("transform `{plugin}` failed ({kind}): {message}")]
pub struct TransformError {
    /// The transform (plugin) name.
    pub plugin: String,
    /// What went wrong.
    pub kind: TransformErrorKind,
    /// Human-readable detail.
    pub message: String,
    /// The field of the plugin's `with` table an `init` rejection names, when it names one.
    pub field: Option<String>,
}

impl TransformError {
    /// An error of `kind` from the transform `plugin`.
    pub fn new(
        plugin: impl Into<String>,
        kind: TransformErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            plugin: plugin.into(),
            kind,
            message: message.into(),
            field: None,
        }
    }

    /// A plugin's rejection of its `with` table. A message that starts with a field path in
    /// backquotes and a colon (`` `rename.a`: expected a string ``, the form the SDK writes) names
    /// that field; the job file's error then points at its line.
    pub fn rejected_config(plugin: impl Into<String>, message: &str) -> Self {
        let (field, rest) = match message.strip_prefix('`').and_then(|m| m.split_once("`: ")) {
            Some((field, rest))
                if !field.is_empty() && crate::job::path::FieldPath::parse(field).is_some() =>
            {
                (Some(field.to_string()), rest)
            }
            _ => (None, message),
        };
        Self {
            plugin: plugin.into(),
            kind: TransformErrorKind::Init,
            message: format!("rejected its configuration: {rest}"),
            field,
        }
    }
}

/// Classes of transform failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformErrorKind {
    /// The plugin trapped (panic, unreachable, out-of-bounds access).
    Trap,
    /// The wall-clock deadline passed.
    Deadline,
    /// The fuel budget was used up.
    Fuel,
    /// The memory cap was hit.
    Memory,
    /// The plugin returned more output bytes than allowed.
    OutputTooLarge,
    /// The plugin returned output that breaks the contract (wrong outcome count, bad encoding).
    Malformed,
    /// The plugin could not be loaded or rejected its configuration.
    Init,
}

impl std::fmt::Display for TransformErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransformErrorKind::Trap => "trap",
            TransformErrorKind::Deadline => "deadline exceeded",
            TransformErrorKind::Fuel => "fuel exhausted",
            TransformErrorKind::Memory => "memory limit",
            TransformErrorKind::OutputTooLarge => "output too large",
            TransformErrorKind::Malformed => "malformed output",
            TransformErrorKind::Init => "init",
        })
    }
}

/// A transform stage. Calls are synchronous and CPU-bound; the runtime runs them off the async
/// executor.
pub trait Transform: Send {
    /// Name used in logs, metrics and dead-letter entries.
    fn name(&self) -> &str;

    /// Process a batch: exactly one outcome per input, in input order. Output records must carry
    /// the position of the input they came from. `Err` fails the whole batch (trap, limit); the
    /// transform must be usable again afterwards.
    fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError>;
}

/// One `[[transforms]]` entry of a job file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// Path to the plugin component (`.wasm`), relative to the job file.
    pub plugin: std::path::PathBuf,
    /// Name in logs and dead-letter entries; defaults to the plugin file stem.
    #[serde(default)]
    pub name: Option<String>,
    /// Configuration handed to the plugin's `init`, as JSON.
    #[serde(default = "empty_object")]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub with: serde_json::Value,
    /// Resource limits for every call.
    #[serde(default)]
    pub limits: TransformLimits,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl TransformSpec {
    /// The display name: `name`, or the plugin file stem.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.plugin
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "transform".to_string())
        })
    }
}

/// Limits applied to every plugin call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TransformLimits {
    /// Wall-clock deadline per batch call.
    pub deadline: HumanDuration,
    /// Fuel (roughly: WebAssembly instructions) per batch call; 0 disables fuel metering.
    pub fuel: u64,
    /// Maximum linear memory of one plugin instance.
    pub memory: ByteSize,
    /// Maximum total output bytes of one batch call.
    pub max_output: ByteSize,
}

impl Default for TransformLimits {
    fn default() -> Self {
        Self {
            deadline: HumanDuration(Duration::from_secs(5)),
            fuel: 0,
            memory: ByteSize(64 * 1024 * 1024),
            max_output: ByteSize(64 * 1024 * 1024),
        }
    }
}
