//! Typed configuration of the Kinesis source and sink (the config reference is generated from
//! these doc comments).

use schemars::JsonSchema;
use serde::Deserialize;
use sluice_aws::{AwsAuth, AwsConnection};
use sluice_core::{ConnectorError, HumanDuration, ValuePath};

/// Where a shard with no committed position starts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// The oldest record still in the shard (`TRIM_HORIZON`).
    #[default]
    TrimHorizon,
    /// Only records put after the source opens (`LATEST`).
    Latest,
    /// `{ at_timestamp = "2026-01-31T12:00:00Z" }`: the first record that arrived at or after
    /// this RFC 3339 time (`AT_TIMESTAMP`).
    AtTimestamp(String),
}

/// How record data is decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// A JSON document; anything else is dead-lettered.
    #[default]
    Json,
    /// UTF-8 text; invalid UTF-8 is dead-lettered.
    Text,
    /// Any bytes, passed through.
    Bytes,
}

fn default_poll_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}

fn default_discover_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}

fn default_max_records() -> i32 {
    1000
}

/// How record data is checked: its format, and for JSON the depth limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoding {
    /// The format.
    pub format: DataFormat,
    /// With JSON: the nesting limit.
    pub max_json_depth: usize,
}

impl From<DataFormat> for Decoding {
    /// `format` with the default depth limit.
    fn from(format: DataFormat) -> Self {
        Decoding {
            format,
            max_json_depth: sluice_core::json::DEFAULT_MAX_DEPTH,
        }
    }
}

/// `[source] type = "kinesis"`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KinesisSourceConfig {
    /// The stream: its name or its ARN.
    pub stream: String,
    /// The AWS region (`eu-west-1`); else `AWS_REGION` or the profile's.
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint URL instead of AWS's (emulators, VPC endpoints).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Credentials; the standard AWS chain when empty.
    #[serde(default)]
    pub auth: AwsAuth,
    /// Where a shard with no committed position starts: `"trim_horizon"` (default),
    /// `"latest"`, or `{ at_timestamp = "2026-01-31T12:00:00Z" }`. Shards that appear while the
    /// job runs (after a split or merge) always start at their beginning.
    #[serde(default)]
    pub start_from: StartFrom,
    /// How record data is decoded: `"json"` (default), `"text"` or `"bytes"`.
    #[serde(default)]
    pub format: DataFormat,
    /// With `format = "json"`: a value whose arrays and objects nest deeper than this is
    /// dead-lettered (at least 1). The default, 127, is the deepest serde_json parses (its
    /// limit is 128), so whatever passes also parses in plugins and sinks downstream.
    #[serde(default = "sluice_core::json::default_max_depth")]
    pub max_json_depth: usize,
    /// Most records one GetRecords call returns (1–10000).
    #[serde(default = "default_max_records")]
    pub max_records: i32,
    /// How long a shard that returned nothing waits before its next GetRecords call. A shard
    /// is never read more than 5 times a second (the Kinesis limit).
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// How often ListShards looks for new shards (also done at once when a shard closes).
    #[serde(default = "default_discover_interval")]
    pub discover_interval: HumanDuration,
    /// Enhanced fan-out: read through this registered stream consumer (registered when it
    /// does not exist yet) with one SubscribeToShard subscription per shard, renewed every 5
    /// minutes, instead of polling GetRecords. The consumer gets its own 2 MiB/s per shard
    /// and records arrive as soon as they are put; Kinesis bills it per consumer-shard hour.
    /// Positions, lineage and `start_from` work as with polling (`max_records` and
    /// `poll_interval` do not apply). 1–128 characters of letters, digits, `_`, `.` and `-`.
    #[serde(default)]
    pub consumer: Option<String>,
}

impl KinesisSourceConfig {
    /// The AWS connection.
    pub fn connection(&self) -> AwsConnection {
        AwsConnection {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            auth: self.auth.clone(),
        }
    }

    /// How record data is checked.
    pub fn decoding(&self) -> Decoding {
        Decoding {
            format: self.format,
            max_json_depth: self.max_json_depth,
        }
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        validate_stream(&self.stream)?;
        sluice_core::json::max_depth_option(self.max_json_depth)?;
        self.connection().validate()?;
        if !(1..=10_000).contains(&self.max_records) {
            return Err(
                ConnectorError::config("`max_records` must be between 1 and 10000")
                    .at("max_records"),
            );
        }
        if let StartFrom::AtTimestamp(t) = &self.start_from {
            parse_timestamp(t).map_err(|e| e.at("start_from.at_timestamp"))?;
        }
        if let Some(name) = &self.consumer {
            let ok = (1..=128).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(ConnectorError::config(format!(
                    "consumer name {name:?}: 1-128 characters of letters, digits, `_`, `.` and `-`"
                ))
                .at("consumer"));
            }
        }
        Ok(())
    }
}

/// An RFC 3339 time (`2026-01-31T12:00:00Z`).
pub fn parse_timestamp(text: &str) -> Result<std::time::SystemTime, ConnectorError> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).map_err(|e| {
        ConnectorError::config(format!(
            "{text:?} is not an RFC 3339 time like \"2026-01-31T12:00:00Z\": {e}"
        ))
    })
}

fn validate_stream(stream: &str) -> Result<(), ConnectorError> {
    if stream.trim().is_empty() {
        return Err(ConnectorError::config("`stream` is empty").at("stream"));
    }
    Ok(())
}

/// Where the partition key of each record comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKey {
    /// The record's key (a Kafka key, a Kinesis partition key) as text; a record without one
    /// gets the hash of its source position.
    #[default]
    RecordKey,
    /// A hash of the record's source position: spreads records evenly over the shards, with no
    /// per-key order.
    Hash,
    /// `{ field = "device_id" }`: the value (string or number) of this field of the JSON record.
    Field(ValuePath),
    /// `{ header = "device" }`: the value of this header of the record.
    Header(String),
}

/// `[[sinks]] type = "kinesis"`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KinesisSinkConfig {
    /// The stream: its name or its ARN.
    pub stream: String,
    /// The AWS region (`eu-west-1`); else `AWS_REGION` or the profile's.
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint URL instead of AWS's (emulators, VPC endpoints).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Credentials; the standard AWS chain when empty.
    #[serde(default)]
    pub auth: AwsAuth,
    /// The partition key: `"record_key"` (default: the record's key, else a hash of its
    /// position), `"hash"`, `{ field = "device_id" }` or `{ header = "device" }`. A record
    /// whose key is missing, empty or over 256 characters is dead-lettered.
    #[serde(default)]
    pub partition_key: PartitionKey,
    /// Field path whose value (a decimal integer below 2^128, as a string or number) is the
    /// record's explicit hash key, which picks the shard instead of the partition key's hash.
    #[serde(default)]
    pub explicit_hash_key: Option<ValuePath>,
}

impl KinesisSinkConfig {
    /// The AWS connection.
    pub fn connection(&self) -> AwsConnection {
        AwsConnection {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            auth: self.auth.clone(),
        }
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        validate_stream(&self.stream)?;
        self.connection().validate()?;
        if let PartitionKey::Header(h) = &self.partition_key
            && h.is_empty()
        {
            return Err(
                ConnectorError::config("the partition key header name is empty")
                    .at("partition_key.header"),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(src: &str) -> KinesisSourceConfig {
        let table: toml::Table = toml::from_str(src).unwrap();
        toml::Value::Table(table).try_into().unwrap()
    }

    fn sink(src: &str) -> KinesisSinkConfig {
        let table: toml::Table = toml::from_str(src).unwrap();
        toml::Value::Table(table).try_into().unwrap()
    }

    #[test]
    fn start_from_is_a_word_or_a_timestamp_table() {
        assert_eq!(source("stream = 's'").start_from, StartFrom::TrimHorizon);
        assert_eq!(
            source("stream = 's'\nstart_from = 'latest'").start_from,
            StartFrom::Latest
        );
        let c = source("stream = 's'\nstart_from = { at_timestamp = '2026-01-31T12:00:00Z' }");
        assert_eq!(
            c.start_from,
            StartFrom::AtTimestamp("2026-01-31T12:00:00Z".into())
        );
        c.validate().unwrap();
        source("stream = 's'\nconsumer = 'sluice-1.a_b'")
            .validate()
            .unwrap();
        let bad = source("stream = 's'\nconsumer = 'no spaces'");
        assert_eq!(
            bad.validate().unwrap_err().field.as_deref(),
            Some("consumer")
        );
        let bad = source("stream = 's'\nstart_from = { at_timestamp = 'yesterday' }");
        assert_eq!(
            bad.validate().unwrap_err().field.as_deref(),
            Some("start_from.at_timestamp")
        );
    }

    #[test]
    fn partition_key_sources() {
        assert_eq!(sink("stream = 's'").partition_key, PartitionKey::RecordKey);
        assert_eq!(
            sink("stream = 's'\npartition_key = 'hash'").partition_key,
            PartitionKey::Hash
        );
        assert_eq!(
            sink("stream = 's'\npartition_key = { field = 'a.b' }").partition_key,
            PartitionKey::Field(ValuePath::parse("a.b").unwrap())
        );
        assert_eq!(
            sink("stream = 's'\npartition_key = { header = 'dev' }").partition_key,
            PartitionKey::Header("dev".into())
        );
        let bad = sink("stream = 's'\npartition_key = { header = '' }");
        assert!(bad.validate().is_err());
    }
}
