//! The job file (`connector.toml`): model, loading, interpolation and validation.

mod assemble;
mod check;
#[cfg(test)]
mod fuzz;
mod interpolate;
mod load;
pub mod path;
mod route;
mod schema;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::transform::TransformSpec;
use crate::units::{ByteSize, HumanDuration};

pub use assemble::{NoTransforms, Toolkit, TransformFactory};
pub use check::Unchecked;
pub use interpolate::{Expanded, Interpolation};
pub use load::{
    ConfigError, JobError, LoadedJob, MAX_JOB_NAME, SinkPlan, check_job_name, load_job_file,
    load_job_str,
};
pub use route::{RouteCondition, RouteInput};
pub use schema::job_schema;

/// The job-file format version this build understands.
pub const API_VERSION: u32 = 1;

/// The delivery guarantee of a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Nothing is lost; a crash may replay records already written.
    #[default]
    AtLeastOnce,
    /// Nothing is lost and nothing is written twice (transactional sinks only).
    ExactlyOnce,
}

impl std::fmt::Display for Guarantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        })
    }
}

/// `[delivery]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// `"at-least-once"` (default) or `"exactly-once"`.
    pub guarantee: Guarantee,
    /// How often positions are committed to the source / offset store.
    pub commit_interval: HumanDuration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            guarantee: Guarantee::AtLeastOnce,
            commit_interval: HumanDuration(std::time::Duration::from_secs(1)),
        }
    }
}

/// What to do with a record that cannot be processed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Tolerance {
    /// Stop the job on the first bad record (its position is not committed).
    #[default]
    None,
    /// Send bad records to the dead-letter sink and keep going.
    All,
}

/// `[errors]`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorsConfig {
    /// `"none"` (default): stop on the first bad record. `"all"`: dead-letter it and go on.
    #[serde(default)]
    pub tolerance: Tolerance,
    /// The dead-letter sink: any sink type, e.g. `{ type = "file", path = "dlq.jsonl" }`.
    /// With `tolerance = "all"` and no sink given, `dead-letter.jsonl` in the state directory.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub dead_letter: Option<toml::Table>,
}

/// Firehose-style buffering hints of one sink: a batch is written when any limit is reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most records in one write.
    pub max_records: usize,
    /// Most bytes (keys, values, headers) in one write.
    pub max_bytes: ByteSize,
    /// Longest time a record waits in the buffer.
    pub max_wait: HumanDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: 10_000,
            max_bytes: ByteSize(4 << 20),
            max_wait: HumanDuration(std::time::Duration::from_millis(500)),
        }
    }
}

/// Retries of a sink's retryable failures: exponential backoff with full jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First backoff.
    pub initial_backoff: HumanDuration,
    /// Largest backoff.
    pub max_backoff: HumanDuration,
    /// Give up (and stop the job, committing nothing past the failure) after this long.
    pub max_elapsed: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: HumanDuration(std::time::Duration::from_millis(100)),
            max_backoff: HumanDuration(std::time::Duration::from_secs(10)),
            max_elapsed: HumanDuration(std::time::Duration::from_secs(300)),
        }
    }
}

/// The runtime settings every sink has, besides its connector's own config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkCommon {
    /// Name in logs, metrics and status; defaults to the type (with an index when repeated).
    #[serde(default)]
    pub name: Option<String>,
    /// Buffering hints.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Retry policy for retryable failures.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Only records matching this condition go to this sink: a header a transform set
    /// (`{ header = "route", equals = "alert" }`), a field of the record's JSON value
    /// (`{ field = "status", in = ["error", "fatal"] }`, `{ field = "t", gte = 80 }`), or
    /// conditions combined with `not`, `all`, `any`. Every record by default.
    #[serde(default)]
    pub when: Option<RouteCondition>,
}

impl SinkCommon {
    /// The keys of a `[[sinks]]` entry that are these runtime settings rather than the
    /// connector's own config, read from this type's schema (so a new setting cannot be
    /// forgotten in one of the places that splits a sink table).
    pub fn keys() -> &'static [String] {
        static KEYS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            let schema = schemars::schema_for!(SinkCommon).to_value();
            schema["properties"]
                .as_object()
                .map(|props| props.keys().cloned().collect())
                .unwrap_or_default()
        });
        &KEYS
    }

    /// Take the runtime settings out of a sink table, leaving the connector's own config.
    pub fn split_off(table: &mut toml::Table) -> toml::Table {
        let mut common = toml::Table::new();
        for key in Self::keys() {
            if let Some(v) = table.remove(key) {
                common.insert(key.clone(), v);
            }
        }
        common
    }
}

/// `[pipeline]`: tuning of the runtime itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Batches buffered between stages; bounds memory, gives backpressure.
    pub channel_capacity: usize,
    /// Bytes (keys, values, headers) of source batches read but not yet durable in every
    /// sink; the source waits while they reach it, so memory is bounded by bytes as well as
    /// by batch count. Default: 64 MiB, or twice the sum of the sinks' `batch.max_bytes` if
    /// that is more. At least the largest sink `batch.max_bytes`, below 4 GiB.
    pub max_in_flight_bytes: Option<ByteSize>,
    /// Threads running the transform chain, each with its own plugin instances. Batches are
    /// handed out in turn and collected in the same turn, so sinks see the order the source
    /// read. 1 to 64; more than the machine's cores only adds memory.
    pub transform_threads: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 4,
            max_in_flight_bytes: None,
            transform_threads: 1,
        }
    }
}

/// The most `pipeline.transform_threads` a job may ask for.
pub const MAX_TRANSFORM_THREADS: usize = 64;

impl PipelineConfig {
    /// The budget of `max_in_flight_bytes` for sinks writing up to `sink_max_bytes` per write.
    pub fn in_flight_budget(&self, sink_max_bytes: impl IntoIterator<Item = u64>) -> u64 {
        self.max_in_flight_bytes.map_or_else(
            || {
                let sum: u64 = sink_max_bytes.into_iter().sum();
                (64 << 20)
                    .max(sum.saturating_mul(2))
                    .min(MAX_IN_FLIGHT_BYTES)
            },
            |b| b.0,
        )
    }
}

/// The largest `max_in_flight_bytes` (the budget counts bytes in `u32` permits).
pub const MAX_IN_FLIGHT_BYTES: u64 = u32::MAX as u64;

/// The top level of a job file, with connector sections still raw.
#[derive(Clone, Debug)]
pub(crate) struct RawJob {
    pub api_version: u32,
    pub name: String,
    pub delivery: DeliveryConfig,
    pub source: toml::Table,
    pub transforms: Vec<TransformSpec>,
    pub sinks: Vec<toml::Table>,
    pub errors: ErrorsConfig,
    pub pipeline: PipelineConfig,
}
