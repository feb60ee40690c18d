//! Typed configuration of the Kafka source and sink (the connector reference is generated from
//! these types), with the checks that need no broker. How a config becomes librdkafka
//! properties is in `client`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_core::{ConnectorError, HumanDuration, Secret, ValuePath};

use crate::client::{Connection, millis};

fn yes() -> bool {
    true
}

/// `tls = { ... }`: encrypt the connection (`security.protocol` SSL or SASL_SSL).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates that sign the brokers' certificates; the system trust
    /// store when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Password of `key_file`, if it is encrypted.
    #[serde(default)]
    pub key_password: Option<Secret>,
    /// Check that the broker's certificate names the host we connect to (default true).
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

/// A SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SaslMechanism {
    /// Username and password in clear (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// Amazon MSK IAM: SASL/OAUTHBEARER with a SigV4-signed token, refreshed before it expires
    /// (with `region` and `auth`; MSK's IAM listener, port 9098, also wants `tls`).
    #[serde(rename = "aws-msk-iam")]
    AwsMskIam,
}

impl SaslMechanism {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::AwsMskIam => "OAUTHBEARER",
        }
    }
}

/// `sasl = { ... }`: authenticate with SASL (`security.protocol` SASL_PLAINTEXT or SASL_SSL).
/// `PLAIN` and `SCRAM-*` take `username` and `password`; `aws-msk-iam` takes `region` and
/// `auth`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `"PLAIN"`, `"SCRAM-SHA-256"`, `"SCRAM-SHA-512"` or `"aws-msk-iam"`.
    pub mechanism: SaslMechanism,
    /// User name (`PLAIN`, `SCRAM-*`); use `"${env:VAR}"` rather than writing it inline.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (`PLAIN`, `SCRAM-*`); use `"${env:VAR}"` or `"${file:PATH}"`, never inline.
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
    /// `aws-msk-iam`: the cluster's AWS region; the standard chain (`AWS_REGION`, profile) when
    /// absent.
    #[serde(default)]
    pub region: Option<String>,
    /// `aws-msk-iam`: the credentials that sign the token, as for every AWS connector (static
    /// keys, `profile`, `assume_role`); the standard AWS chain when absent.
    #[serde(default, skip_serializing)]
    pub auth: sluice_aws::AwsAuth,
}

impl SaslConfig {
    /// Checks that need no I/O; errors name `sasl.<field>`.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        match self.mechanism {
            SaslMechanism::AwsMskIam => {
                if self.username.is_some() || self.password.is_some() {
                    return Err(ConnectorError::config(
                        "aws-msk-iam signs with AWS credentials: put them in `sasl.auth`, not `username`/`password`",
                    )
                    .at("sasl.username"));
                }
                self.connection().validate().map_err(|e| ConnectorError {
                    field: e.field.as_ref().map(|f| format!("sasl.{f}")),
                    ..e
                })
            }
            _ => {
                if self.region.is_some() || self.auth != sluice_aws::AwsAuth::default() {
                    return Err(ConnectorError::config(
                        "`region` and `auth` are for mechanism = \"aws-msk-iam\"",
                    )
                    .at("sasl.mechanism"));
                }
                if self.username.is_none() {
                    return Err(ConnectorError::config(format!(
                        "{} needs `username`",
                        self.mechanism.as_str()
                    ))
                    .at("sasl.username"));
                }
                if self.password.is_none() {
                    return Err(ConnectorError::config(format!(
                        "{} needs `password`",
                        self.mechanism.as_str()
                    ))
                    .at("sasl.password"));
                }
                Ok(())
            }
        }
    }

    /// The AWS connection of `aws-msk-iam`.
    pub fn connection(&self) -> sluice_aws::AwsConnection {
        sluice_aws::AwsConnection {
            region: self.region.clone(),
            endpoint: None,
            auth: self.auth.clone(),
        }
    }
}

/// Where a group with no committed offset starts reading a partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The oldest record still in the partition.
    #[default]
    Earliest,
    /// Only records produced after the member joins.
    Latest,
    /// The first record at or after `start_timestamp_ms`.
    Timestamp,
}

/// How record values are decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// A JSON document; anything else (including an empty value) is dead-lettered.
    #[default]
    Json,
    /// UTF-8 text; invalid UTF-8 is dead-lettered.
    Text,
    /// Any bytes, passed through.
    Bytes,
}

/// `[source] type = "kafka"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Comma-separated `host:port` list of bootstrap brokers.
    pub brokers: String,
    /// Topics to consume. An entry that starts with `^` is a regular expression matched against
    /// every topic name (librdkafka's convention), e.g. `"^sensors-.*"`.
    pub topics: Vec<String>,
    /// Consumer group id. Members of one group share the partitions.
    pub group: String,
    /// Where to start on a partition the group has no committed offset for.
    #[serde(default)]
    pub start_from: StartFrom,
    /// With `start_from = "timestamp"`: milliseconds since the Unix epoch.
    #[serde(default)]
    pub start_timestamp_ms: Option<i64>,
    /// How values are decoded.
    #[serde(default)]
    pub format: ValueFormat,
    /// With `format = "json"`: a value whose arrays and objects nest deeper than this is
    /// dead-lettered (at least 1). The default, 127, is the deepest serde_json parses (its
    /// limit is 128), so whatever passes also parses in plugins and sinks downstream.
    #[serde(default = "sluice_core::json::default_max_depth")]
    pub max_json_depth: usize,
    /// Most records in one batch handed to the pipeline.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest wait to fill a batch once its first record has arrived.
    #[serde(default = "default_batch_wait")]
    pub batch_wait: HumanDuration,
    /// Group session timeout (`session.timeout.ms`): how long a silent member keeps its
    /// partitions.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: HumanDuration,
    /// How often partition lag is refreshed (`statistics.interval.ms`).
    #[serde(default = "default_lag_interval")]
    pub lag_interval: HumanDuration,
    /// Client id sent to the brokers (default `sluice`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// TLS settings; the connection is plaintext when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL authentication; none when absent.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// Extra librdkafka consumer properties, e.g. `{ "fetch.max.bytes" = "52428800" }`. The ones
    /// Sluice owns (offsets, group, brokers, security) are refused. In jobs submitted through
    /// the worker's API, the ones that load native code or run commands (`plugin.library.paths`,
    /// `ssl.engine.location`, `ssl.engine.id`, `ssl.providers`, `sasl.kerberos.kinit.cmd`) are
    /// refused and the ones naming files must point under the worker's `--data-dir`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_batch_size() -> usize {
    1000
}
fn default_batch_wait() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}
fn default_session_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_lag_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

const SOURCE_OWNED: &[(&str, &str)] = &[
    ("group.id", "set `group`"),
    (
        "enable.auto.commit",
        "Sluice commits offsets only once records are durable in every sink",
    ),
    (
        "enable.auto.offset.store",
        "Sluice commits offsets only once records are durable in every sink",
    ),
    ("auto.commit.enable", "Sluice commits offsets itself"),
    ("auto.offset.reset", "set `start_from`"),
    ("session.timeout.ms", "set `session_timeout`"),
    ("statistics.interval.ms", "set `lag_interval`"),
    ("enable.partition.eof", "Sluice reads unbounded streams"),
];

impl KafkaSourceConfig {
    fn connection(&self) -> Connection<'_> {
        Connection {
            brokers: &self.brokers,
            client_id: self.client_id.as_deref(),
            tls: self.tls.as_ref(),
            sasl: self.sasl.as_ref(),
            properties: &self.properties,
        }
    }

    /// Refuse, for a confined job, local files and code outside what the worker allows.
    pub(crate) fn allow_local(
        &self,
        ctx: &sluice_core::BuildContext,
    ) -> Result<(), ConnectorError> {
        self.connection().allow_local(ctx)
    }

    /// The consumer's connection settings (the rest is set at open).
    pub(crate) fn client_config(&self) -> Result<rdkafka::ClientConfig, ConnectorError> {
        self.connection().client_config(SOURCE_OWNED)
    }

    /// Check the config without connecting.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.client_config()?;
        sluice_core::json::max_depth_option(self.max_json_depth)?;
        if self.topics.is_empty() {
            return Err(ConnectorError::config(
                "`topics` is empty: name at least one topic",
            ));
        }
        for t in &self.topics {
            if t.starts_with('^') {
                regex::Regex::new(t).map_err(|e| {
                    ConnectorError::config(format!("topics: {t:?} is not a valid regex: {e}"))
                })?;
            } else if t.trim().is_empty() {
                return Err(ConnectorError::config("topics: empty topic name"));
            }
        }
        if self.group.trim().is_empty() {
            return Err(ConnectorError::config("`group` is empty"));
        }
        match (self.start_from, self.start_timestamp_ms) {
            (StartFrom::Timestamp, None) => Err(ConnectorError::config(
                "start_from = \"timestamp\" needs `start_timestamp_ms`",
            )),
            (StartFrom::Earliest | StartFrom::Latest, Some(_)) => Err(ConnectorError::config(
                "`start_timestamp_ms` is only used with start_from = \"timestamp\"",
            )),
            _ if self.batch_size == 0 => Err(ConnectorError::config("`batch_size` must be > 0")),
            _ => Ok(()),
        }
    }
}

/// Compression codec of produced batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Which acknowledgement a produce request waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Acks {
    /// Every in-sync replica (required by the idempotent and transactional producer).
    #[default]
    All,
    /// The partition leader only (needs `idempotent = false`).
    Leader,
}

/// `[[sinks]] type = "kafka"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Comma-separated `host:port` list of bootstrap brokers.
    pub brokers: String,
    /// The topic to write to; with `topic_field` / `topic_header`, the fallback when the record
    /// does not name one.
    #[serde(default)]
    pub topic: Option<String>,
    /// Take the topic from this field of the JSON value (a string); a dotted path such as
    /// `meta.topic` reaches into nested objects.
    #[serde(default)]
    pub topic_field: Option<ValuePath>,
    /// Take the topic from this record header (UTF-8); checked before `topic_field`.
    #[serde(default)]
    pub topic_header: Option<String>,
    /// Take the key from this field of the JSON value (strings as is, other values as JSON
    /// text); a dotted path such as `device.id` reaches into nested objects. Without it the
    /// record's own key is kept.
    #[serde(default)]
    pub key_field: Option<ValuePath>,
    /// Compression codec.
    #[serde(default)]
    pub compression: Compression,
    /// Idempotent producer (no duplicates or reordering from producer retries). Default true.
    #[serde(default = "yes")]
    pub idempotent: bool,
    /// Acknowledgements to wait for.
    #[serde(default)]
    pub acks: Acks,
    /// How long the producer waits to fill a request (`linger.ms`).
    #[serde(default = "default_linger")]
    pub linger: HumanDuration,
    /// How long a record may take to be delivered before it counts as failed (and is retried).
    #[serde(default = "default_message_timeout")]
    pub message_timeout: HumanDuration,
    /// With exactly-once: the producer's `transactional.id`, stable across restarts (zombie
    /// fencing). Default `sluice-<job>-<sink>`.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// With exactly-once: the compacted topic the sink's checkpoint is written to, in the same
    /// transaction as the data.
    #[serde(default = "default_progress_topic")]
    pub progress_topic: String,
    /// With exactly-once and a Kafka source on this cluster: the source's consumer group, whose
    /// offsets are then committed inside each transaction (`send_offsets_to_transaction`).
    #[serde(default)]
    pub source_group: Option<String>,
    /// With exactly-once: `transaction.timeout.ms`, and the timeout of transaction calls.
    #[serde(default = "default_transaction_timeout")]
    pub transaction_timeout: HumanDuration,
    /// Client id sent to the brokers (default `sluice`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// TLS settings; the connection is plaintext when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// SASL authentication; none when absent.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// Extra librdkafka producer properties, e.g. `{ "batch.size" = "1000000" }`. The ones
    /// Sluice owns are refused. In jobs submitted through the worker's API, the ones that load
    /// native code or run commands (`plugin.library.paths`, `ssl.engine.location`,
    /// `ssl.engine.id`, `ssl.providers`, `sasl.kerberos.kinit.cmd`) are refused and the ones
    /// naming files must point under the worker's `--data-dir`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_linger() -> HumanDuration {
    HumanDuration(Duration::from_millis(5))
}
fn default_message_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_transaction_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_progress_topic() -> String {
    "_sluice_progress".into()
}

const SINK_OWNED: &[(&str, &str)] = &[
    ("enable.idempotence", "set `idempotent`"),
    ("compression.type", "set `compression`"),
    ("compression.codec", "set `compression`"),
    ("acks", "set `acks`"),
    ("request.required.acks", "set `acks`"),
    ("linger.ms", "set `linger`"),
    ("queue.buffering.max.ms", "set `linger`"),
    ("message.timeout.ms", "set `message_timeout`"),
    ("delivery.timeout.ms", "set `message_timeout`"),
    ("transaction.timeout.ms", "set `transaction_timeout`"),
];

impl KafkaSinkConfig {
    fn connection(&self) -> Connection<'_> {
        Connection {
            brokers: &self.brokers,
            client_id: self.client_id.as_deref(),
            tls: self.tls.as_ref(),
            sasl: self.sasl.as_ref(),
            properties: &self.properties,
        }
    }

    /// Where this sink writes: `kafka://<bootstrap servers, sorted>/<topic>`, or with
    /// `topic_header` / `topic_field` a description of that choice (what a record names is
    /// only known per record).
    pub fn destination(&self) -> String {
        let mut brokers: Vec<&str> = self
            .brokers
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .collect();
        brokers.sort_unstable();
        brokers.dedup();
        let mut topic = Vec::new();
        if let Some(h) = &self.topic_header {
            topic.push(format!("topic from header {h:?}"));
        }
        if let Some(f) = &self.topic_field {
            topic.push(format!("topic from field {:?}", f.as_str()));
        }
        match (&self.topic, topic.is_empty()) {
            (Some(t), true) => topic.push(t.clone()),
            (Some(t), false) => topic.push(format!("else {t}")),
            (None, _) => {}
        }
        format!("kafka://{}/{}", brokers.join(","), topic.join(", "))
    }

    /// Check the config without connecting.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.connection().client_config(SINK_OWNED)?;
        if self.topic.is_none() && self.topic_field.is_none() && self.topic_header.is_none() {
            return Err(ConnectorError::config(
                "set `topic`, or `topic_field` / `topic_header` to take it from each record",
            ));
        }
        if self.idempotent && self.acks != Acks::All {
            return Err(ConnectorError::config(
                "an idempotent producer needs acks = \"all\" (or set idempotent = false)",
            ));
        }
        if self.progress_topic.trim().is_empty() {
            return Err(ConnectorError::config("`progress_topic` is empty"));
        }
        Ok(())
    }

    /// Refuse, for a confined job, local files and code outside what the worker allows.
    pub(crate) fn allow_local(
        &self,
        ctx: &sluice_core::BuildContext,
    ) -> Result<(), ConnectorError> {
        self.connection().allow_local(ctx)
    }

    /// The connection settings alone (for the helper clients of the transactional mode).
    pub(crate) fn base_client_config(&self) -> Result<rdkafka::ClientConfig, ConnectorError> {
        self.connection().client_config(SINK_OWNED)
    }

    /// The producer's librdkafka settings (the transactional ones are added at open).
    pub(crate) fn producer_config(&self) -> Result<rdkafka::ClientConfig, ConnectorError> {
        let mut c = self.base_client_config()?;
        c.set(
            "enable.idempotence",
            if self.idempotent { "true" } else { "false" },
        )
        .set("compression.type", self.compression.as_str())
        .set("acks", if self.acks == Acks::All { "all" } else { "1" })
        .set("linger.ms", millis(self.linger.0))
        .set("message.timeout.ms", millis(self.message_timeout.0));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_config(toml_src: &str) -> Result<KafkaSourceConfig, String> {
        let table: toml::Table = toml::from_str(toml_src).map_err(|e| e.to_string())?;
        let cfg: KafkaSourceConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        cfg.validate().map_err(|e| e.message)?;
        Ok(cfg)
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c = source_config("brokers = 'b:9092'\ntopics = ['t']\ngroup = 'g'").unwrap();
        assert_eq!(c.start_from, StartFrom::Earliest);
        assert_eq!(c.format, ValueFormat::Json);
        assert_eq!(c.batch_size, 1000);
        let e =
            source_config("brokers = 'b'\ntopics = ['t']\ngroup = 'g'\ntopic = 'x'").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let e = source_config("brokers = 'b'\ntopics = ['^(']\ngroup = 'g'").unwrap_err();
        assert!(e.contains("regex"), "{e}");
        let e =
            source_config("brokers = 'b'\ntopics = ['t']\ngroup = 'g'\nstart_from = 'timestamp'")
                .unwrap_err();
        assert!(e.contains("start_timestamp_ms"), "{e}");
        let e = source_config(
            "brokers = 'b'\ntopics = ['t']\ngroup = 'g'\nproperties = { 'enable.auto.commit' = 'true' }",
        )
        .unwrap_err();
        assert!(e.contains("managed by Sluice"), "{e}");
    }

    fn sink_config(src: &str) -> Result<KafkaSinkConfig, String> {
        let table: toml::Table = toml::from_str(src).map_err(|e| e.to_string())?;
        let cfg: KafkaSinkConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        cfg.validate().map_err(|e| e.message)?;
        Ok(cfg)
    }

    #[test]
    fn config_defaults_and_checks() {
        let c = sink_config("brokers = 'b'\ntopic = 't'").unwrap();
        assert!(c.idempotent);
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.progress_topic, "_sluice_progress");
        assert!(sink_config("brokers = 'b'").unwrap_err().contains("topic"));
        assert!(
            sink_config("brokers = 'b'\ntopic = 't'\nacks = 'leader'")
                .unwrap_err()
                .contains("idempotent")
        );
        assert!(
            sink_config("brokers = 'b'\ntopic = 't'\nproperties = { 'transactional.id' = 'x' }")
                .unwrap_err()
                .contains("managed by Sluice")
        );
        assert!(sink_config("brokers = 'b'\ntopic = 't'\nlinger = 5").is_err());
    }

    #[test]
    fn destination_is_the_cluster_and_the_topic_choice() {
        let a = sink_config("brokers = 'b:9092, a:9092'\ntopic = 't'").unwrap();
        let b = sink_config("brokers = 'a:9092,b:9092'\ntopic = 't'").unwrap();
        assert_eq!(a.destination(), "kafka://a:9092,b:9092/t");
        assert_eq!(a.destination(), b.destination());
        let f = sink_config("brokers = 'a:9092'\ntopic_field = 'kind'\ntopic = 't'").unwrap();
        assert_eq!(
            f.destination(),
            "kafka://a:9092/topic from field \"kind\", else t"
        );
    }
}
