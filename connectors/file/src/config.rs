//! Typed configuration of the crate's connectors: `file` (source and sink), `stdin`, `stdout`
//! and `datagen`. The connector reference (`docs/connectors.md`) is generated from these types,
//! so every field's doc comment is its documentation.

use std::collections::BTreeMap;
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
    /// Comma-separated values (RFC 4180, options in `csv`): each row becomes a JSON object of
    /// its columns; a row that does not fit (field count, a typed value) is a bad record.
    Csv,
}

/// How the file and stdout sinks write values.
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
pub enum OutputFormat {
    /// Each record value as one line, unchanged (JSON lines when the values are JSON).
    #[default]
    Json,
    /// One CSV row per record (options in `csv`): the record must be a JSON object; its fields
    /// in the order of the columns, objects and arrays as JSON text, null and missing as empty.
    Csv,
}

/// Whether input files are compressed.
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
pub enum Compression {
    /// By the file's extension: `.gz` is gzip, `.zst` and `.zstd` are zstd, others are not
    /// compressed.
    #[default]
    Auto,
    /// Not compressed.
    None,
    /// gzip (concatenated members are one stream, as with `gzip -d`).
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Its name in the job file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

/// The JSON type a CSV column's text becomes.
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
pub enum CsvType {
    /// The text as a JSON string (the default).
    #[default]
    String,
    /// A 64-bit signed integer.
    Int,
    /// A finite floating-point number.
    Float,
    /// `true` or `false` (any letter case).
    Bool,
}

/// `csv = { ... }` of a source with `format = "csv"`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvInput {
    /// The first row of the input names the columns (the default). On a restart in the middle
    /// of a file the header row is read again from byte 0.
    #[serde(default = "yes")]
    pub header: bool,
    /// The field separator: one ASCII character, e.g. `";"` or `"\t"`.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// The column names in order; required with `header = false`, refused with a header.
    #[serde(default)]
    pub columns: Vec<String>,
    /// JSON type of columns by name (`"string"`, the default, `"int"`, `"float"`, `"bool"`),
    /// e.g. `{ temp = "float", n = "int" }`. Surrounding spaces of a typed field are ignored
    /// and an empty one is null; a value that does not parse makes its row a bad record.
    #[serde(default)]
    pub types: BTreeMap<String, CsvType>,
}

impl Default for CsvInput {
    fn default() -> Self {
        Self {
            header: true,
            delimiter: ',',
            columns: Vec::new(),
            types: BTreeMap::new(),
        }
    }
}

/// `csv = { ... }` of a sink with `format = "csv"`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvOutput {
    /// Write a header row at the start of every file (the default).
    #[serde(default = "yes")]
    pub header: bool,
    /// The field separator: one ASCII character, e.g. `";"` or `"\t"`.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// The columns to write, in order; fields of a record not named here are not written.
    /// Without it the columns are the fields of the first record (with a header only: a
    /// restart takes them from the header of the file it appends to).
    #[serde(default)]
    pub columns: Vec<String>,
}

impl Default for CsvOutput {
    fn default() -> Self {
        Self {
            header: true,
            delimiter: ',',
            columns: Vec::new(),
        }
    }
}

fn default_delimiter() -> char {
    ','
}

/// `type = "file"` source.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file to read (relative to the job file); or a directory (its regular files) or a
    /// glob (`logs/*.jsonl`, `in/**/*.csv`): every matching file is read as its own partition,
    /// and with `follow` new matching files are picked up.
    pub path: PathBuf,
    /// `"json"` (default): one JSON document per line, invalid lines are bad records.
    /// `"text"`: each line as is. `"csv"`: each row as a JSON object (see `csv`).
    #[serde(default)]
    pub format: LineFormat,
    /// With `format = "csv"`: `{ header = true, delimiter = ",", columns = [...] (with
    /// `header = false`), types = { temp = "float", n = "int", ok = "bool" } }`.
    #[serde(default)]
    pub csv: Option<CsvInput>,
    /// `"auto"` (default: by extension, `.gz` gzip, `.zst`/`.zstd` zstd), `"none"`, `"gzip"`,
    /// `"zstd"`. A compressed file is read whole, once complete (not with `follow`); positions
    /// are offsets in the decompressed bytes, and a restart decompresses it again from its
    /// start and skips to the committed one.
    #[serde(default)]
    pub compression: Compression,
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

/// 256 KiB: as fast as 1 MiB through a plugin, and a job's peak RSS is a third lower, since
/// several batches are in flight at once (bench/memory: file → add-field → file 80 → 55 MiB).
fn default_read_size() -> ByteSize {
    ByteSize(256 << 10)
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
    /// `"json"` (default): each value as one line. `"csv"`: one row per record (see `csv`).
    #[serde(default)]
    pub format: OutputFormat,
    /// With `format = "csv"`: `{ header = true, delimiter = ",", columns = [...] }` (columns
    /// default to the first record's fields; required with `header = false`).
    #[serde(default)]
    pub csv: Option<CsvOutput>,
    /// `"none"` (default) or `"gzip"`: every write is appended as one gzip member, so the
    /// file is always a valid gzip stream of the committed writes (`gzip -dc` reads them all)
    /// and exactly-once recovery cuts it at a member boundary. `rotate_bytes` counts
    /// compressed bytes.
    #[serde(default)]
    pub compression: OutputCompression,
}

/// Whether the file sink compresses what it writes.
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
pub enum OutputCompression {
    /// Plain bytes.
    #[default]
    None,
    /// One gzip member per write.
    Gzip,
}

/// `type = "stdin"` source.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// `"json"` (default), `"text"` or `"csv"`.
    #[serde(default)]
    pub format: LineFormat,
    /// With `format = "csv"`: `{ header = true, delimiter = ",", columns = [...] (with
    /// `header = false`), types = { temp = "float", n = "int", ok = "bool" } }`.
    #[serde(default)]
    pub csv: Option<CsvInput>,
    /// With `format = "json"`: a line whose arrays and objects nest deeper than this is
    /// dead-lettered (at least 1). The default, 127, is the deepest serde_json parses (its
    /// limit is 128), so whatever passes also parses in plugins and sinks downstream.
    #[serde(default = "sluice_core::json::default_max_depth")]
    pub max_json_depth: usize,
}

/// `type = "stdout"` sink.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// `"json"` (default): each value as one line. `"csv"`: one row per record (see `csv`).
    #[serde(default)]
    pub format: OutputFormat,
    /// With `format = "csv"`: `{ header = true, delimiter = ",", columns = [...] }` (columns
    /// default to the first record's fields; required with `header = false`).
    #[serde(default)]
    pub csv: Option<CsvOutput>,
}

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
