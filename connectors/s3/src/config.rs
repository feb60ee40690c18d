//! Typed configuration of the S3 sink (the config reference is generated from these).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use sluice_aws::{AwsAuth, AwsConnection};
use sluice_core::{ByteSize, ConnectorError, HumanDuration};

/// How records are laid out in an object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON lines: every record's value (one JSON document) on its own line.
    #[default]
    Json,
    /// Apache Parquet: one row per record, columns from `schema` or inferred from the first
    /// write. A record that does not fit the schema is dead-lettered.
    Parquet,
}

/// Compression of an object: of the whole file for JSON lines (`.gz`, `.zst`), of the column
/// pages for Parquet (Parquet's own GZIP / ZSTD codecs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed.
    #[default]
    None,
    /// gzip (DEFLATE).
    Gzip,
    /// Zstandard.
    Zstd,
}

/// Which time `{date}`, `{hour}`... in `prefix` are taken from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PartitionTime {
    /// The record's event time (its timestamp from the source); the arrival time for a record
    /// that has none. A replay puts a record into the same partition again.
    #[default]
    Event,
    /// The time the sink writes the record (like Firehose's default `timestamp` namespace).
    Arrival,
}

/// A Parquet column type of `schema`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Double,
    /// true / false.
    Boolean,
}

/// `type = "s3"` sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3SinkConfig {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The key template of every object, before the object's own name: `{date}` (`2026-12-02`),
    /// `{year}` `{month}` `{day}` `{hour}` `{minute}` (UTC, zero-padded) from the record's time
    /// (see `partition_time`), and `{field:path}` from a field of the record (a string, number
    /// or boolean; a record without it is dead-lettered). E.g.
    /// `"readings/dt={date}/hour={hour}/device={field:device}/"`. Records are grouped by the
    /// rendered prefix: every write makes one object per group.
    #[serde(default)]
    pub prefix: String,
    /// The region (`eu-west-1`); the standard chain (`AWS_REGION`, profile) when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint URL instead of AWS's (MinIO, emulators, VPC endpoints).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key` (MinIO and
    /// most S3-compatible stores and emulators want this).
    #[serde(default)]
    pub force_path_style: bool,
    /// Credentials; the standard AWS chain when absent.
    #[serde(default)]
    pub auth: AwsAuth,
    /// `"json"` (JSON lines, default) or `"parquet"`.
    #[serde(default)]
    pub format: Format,
    /// `"none"` (default), `"gzip"` or `"zstd"`.
    #[serde(default)]
    pub compression: Compression,
    /// `"event"` (default): `{date}`... from the record's event time; `"arrival"`: from the
    /// time of the write.
    #[serde(default)]
    pub partition_time: PartitionTime,
    /// Parquet columns, name → `"string"`, `"int64"`, `"double"` or `"boolean"` (all nullable).
    /// When absent the schema is inferred from the first write of each run. A record with a
    /// field that is not a column, or a value of another type, is dead-lettered.
    #[serde(default)]
    pub schema: Option<BTreeMap<String, ColumnType>>,
    /// Objects larger than this are uploaded in parts of this size (multipart upload; S3's
    /// smallest part is 5 MiB).
    #[serde(default = "default_part_size")]
    pub part_size: ByteSize,
    /// Buffering per partition (per rendered `prefix`, like Firehose's buffering hints with
    /// dynamic partitioning): a partition's records are held across writes and become one
    /// object when the partition reaches `max_records` or `max_bytes`, or its oldest record has
    /// waited `max_wait`. Needs `guarantee = "exactly-once"` (held records are replayed from
    /// the checkpoint object after a crash). When absent, every write makes one object per
    /// partition it touches.
    #[serde(default)]
    pub buffering: Option<Buffering>,
}

/// `buffering`: when one partition's held records become an object.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Buffering {
    /// Records of one partition per object.
    #[serde(default = "default_buffer_records")]
    pub max_records: usize,
    /// Bytes of one partition per object (before compression).
    #[serde(default = "default_buffer_bytes")]
    pub max_bytes: ByteSize,
    /// The longest a record waits in its partition, also while no record comes: the sink asks
    /// the runtime to wake it then (`Sink::wake_at`) and the empty write flushes the partition.
    #[serde(default = "default_buffer_wait")]
    pub max_wait: HumanDuration,
}

fn default_buffer_records() -> usize {
    1_000_000
}

fn default_buffer_bytes() -> ByteSize {
    ByteSize(64 << 20)
}

fn default_buffer_wait() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(300))
}

fn default_part_size() -> ByteSize {
    ByteSize(8 << 20)
}

/// S3's smallest part of a multipart upload (but the last).
const MIN_PART: u64 = 5 << 20;

impl S3SinkConfig {
    /// The AWS connection of this sink.
    pub fn connection(&self) -> AwsConnection {
        AwsConnection {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            auth: self.auth.clone(),
        }
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.connection().validate()?;
        if self.bucket.trim().is_empty() || self.bucket.contains('/') {
            return Err(ConnectorError::config(format!(
                "bucket {:?} is not a bucket name (no slashes; the key goes into `prefix`)",
                self.bucket
            ))
            .at("bucket"));
        }
        if self.prefix.starts_with('/') {
            return Err(ConnectorError::config(
                "`prefix` starts with '/': S3 keys do not (it would make an empty first folder)",
            )
            .at("prefix"));
        }
        if self.part_size.0 < MIN_PART {
            return Err(ConnectorError::config(format!(
                "`part_size` is {} bytes; S3's smallest part is 5MiB",
                self.part_size.0
            ))
            .at("part_size"));
        }
        if self.schema.is_some() && self.format != Format::Parquet {
            return Err(
                ConnectorError::config("`schema` is for format = \"parquet\"").at("schema"),
            );
        }
        if let Some(b) = &self.buffering
            && (b.max_records == 0 || b.max_bytes.0 == 0)
        {
            return Err(ConnectorError::config(
                "`buffering.max_records` and `max_bytes` must be at least 1",
            )
            .at("buffering"));
        }
        if self.schema.as_ref().is_some_and(BTreeMap::is_empty) {
            return Err(ConnectorError::config("`schema` names no column").at("schema"));
        }
        Ok(())
    }

    /// The object name's extension.
    pub fn extension(&self) -> &'static str {
        match (self.format, self.compression) {
            (Format::Parquet, _) => "parquet",
            (Format::Json, Compression::None) => "jsonl",
            (Format::Json, Compression::Gzip) => "jsonl.gz",
            (Format::Json, Compression::Zstd) => "jsonl.zst",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> S3SinkConfig {
        let table: toml::Table = toml::from_str(src).unwrap();
        toml::Value::Table(table).try_into().unwrap()
    }

    #[test]
    fn defaults_and_checks() {
        let c = parse("bucket = 'b'");
        assert_eq!(c.format, Format::Json);
        assert_eq!(c.extension(), "jsonl");
        c.validate().unwrap();
        let c = parse("bucket = 'b'\npart_size = '1MiB'");
        assert_eq!(
            c.validate().unwrap_err().field.as_deref(),
            Some("part_size")
        );
        let c = parse("bucket = 'b/x'");
        assert_eq!(c.validate().unwrap_err().field.as_deref(), Some("bucket"));
        let c = parse("bucket = 'b'\nschema = { a = 'int64' }");
        assert_eq!(c.validate().unwrap_err().field.as_deref(), Some("schema"));
        let c = parse(
            "bucket = 'b'\nformat = 'parquet'\ncompression = 'zstd'\nschema = { a = 'int64' }",
        );
        c.validate().unwrap();
        assert_eq!(c.extension(), "parquet");
    }
}
