//! Typed configuration of the crate's connectors: `file` (source and sink), `stdin`, `stdout`
//! and `datagen`. The connector reference (`docs/connectors.md`) is generated from these types,
//! so every field's doc comment is its documentation.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use sluice_core::units::{ByteSize, HumanDuration};

fn yes() -> bool {
    true
}

/// How line-oriented connectors read and write values.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    /// One JSON document per line; a line that is not valid JSON is a bad record.
    #[default]
    Json,
    /// Any text; each line is one record, unchanged.
    Text,
}

/// `type = "file"` source.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file to read (relative to the job file).
    pub path: PathBuf,
    /// `"json"` (default): one JSON document per line, invalid lines are bad records.
    /// `"text"`: each line as is.
    #[serde(default)]
    pub format: LineFormat,
    /// Keep reading as the file grows (`tail -f`) instead of stopping at its end.
    #[serde(default)]
    pub follow: bool,
    /// With `follow`: how often to look for new data.
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// Bytes read per batch.
    #[serde(default = "default_read_size")]
    pub read_size: ByteSize,
    /// A longer line is dead-lettered ("line too long", with its first bytes, at most 4 KiB)
    /// instead of being buffered whole; reading goes on after its end.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// With `format = "json"`: a line whose arrays and objects nest deeper than this is
    /// dead-lettered (at least 1). The default, 127, is the deepest serde_json parses (its
    /// limit is 128), so whatever passes also parses in plugins and sinks downstream.
    #[serde(default = "sluice_core::json::default_max_depth")]
    pub max_json_depth: usize,
}

/// Default of `max_line_bytes`: 64 MiB.
pub(crate) const DEFAULT_MAX_LINE_BYTES: u64 = 64 << 20;

fn default_max_line_bytes() -> ByteSize {
    ByteSize(DEFAULT_MAX_LINE_BYTES)
}

pub(crate) fn default_poll() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}

fn default_read_size() -> ByteSize {
    ByteSize(1 << 20)
}

/// `type = "file"` sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to append to (relative to the job file). Parent directories are created.
    pub path: PathBuf,
    /// Rotate when the file would grow past this size: the full file is renamed to
    /// `<path>.<n>` (n = 1, 2, ...) and a new one started. Off by default.
    #[serde(default)]
    pub rotate_bytes: Option<ByteSize>,
    /// fsync after every write (the default). Turning it off trades durability on power loss
    /// (not on process crash) for speed.
    #[serde(default = "yes")]
    pub fsync: bool,
}

/// `type = "stdin"` source.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// `"json"` (default) or `"text"`.
    #[serde(default)]
    pub format: LineFormat,
    /// With `format = "json"`: a line whose arrays and objects nest deeper than this is
    /// dead-lettered (at least 1). The default, 127, is the deepest serde_json parses (its
    /// limit is 128), so whatever passes also parses in plugins and sinks downstream.
    #[serde(default = "sluice_core::json::default_max_depth")]
    pub max_json_depth: usize,
}

/// `type = "stdout"` sink.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

/// `type = "datagen"` source.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatagenConfig {
    /// Records to produce; unbounded when omitted.
    #[serde(default)]
    pub count: Option<u64>,
    /// Seed of the generator: the same seed gives the same records.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Records per second; as fast as possible when omitted.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Number of distinct devices.
    #[serde(default = "default_devices")]
    pub devices: u32,
    /// Records per batch; a batch also ends at 1 MiB of values.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Event time of record 0 (RFC 3339, UTC).
    #[serde(default = "default_start")]
    pub start_time: String,
    /// Event-time step between consecutive records.
    #[serde(default = "default_step")]
    pub step: HumanDuration,
    /// Fraction of readings that are anomalous (temperature above 90 °C).
    #[serde(default = "default_anomaly")]
    pub anomaly_rate: f64,
}

fn default_seed() -> u64 {
    42
}
fn default_devices() -> u32 {
    100
}
fn default_batch() -> usize {
    1000
}
fn default_start() -> String {
    "2026-11-25T00:00:00Z".into()
}
fn default_step() -> HumanDuration {
    HumanDuration(Duration::from_millis(10))
}
fn default_anomaly() -> f64 {
    0.01
}
