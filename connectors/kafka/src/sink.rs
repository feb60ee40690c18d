//! The Kafka sink: an idempotent producer that awaits every delivery report before a write
//! returns; with exactly-once, a transactional producer (see [`crate::txn`]).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Guarantee, HumanDuration, Record, Sink,
    SinkConnector, SinkContext, WriteReport, async_trait,
};

use crate::config::{Connection, SaslConfig, TlsConfig, millis};
use crate::error::{RecordFailure, classify_record, to_connector};
use crate::txn::{Txn, TxnSettings};

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
    fn as_str(self) -> &'static str {
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
    /// Take the topic from this top-level field of the JSON value (a string).
    #[serde(default)]
    pub topic_field: Option<String>,
    /// Take the topic from this record header (UTF-8); checked before `topic_field`.
    #[serde(default)]
    pub topic_header: Option<String>,
    /// Take the key from this top-level field of the JSON value (strings as is, other values as
    /// JSON text). Without it the record's own key is kept.
    #[serde(default)]
    pub key_field: Option<String>,
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
    /// Sluice owns are refused.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
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
            topic.push(format!("topic from field {f:?}"));
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

    fn producer_config(&self) -> Result<rdkafka::ClientConfig, ConnectorError> {
        let mut c = self.connection().client_config(SINK_OWNED)?;
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

/// The `kafka` sink type.
pub struct KafkaSinkConnector;

impl SinkConnector for KafkaSinkConnector {
    const TYPE: &'static str = "kafka";
    const DOC: &'static str =
        "Produce to Kafka topics; idempotent, or transactional for exactly-once.";
    type Config = KafkaSinkConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        config.validate()?;
        let _ = ctx;
        Ok(Box::new(KafkaSink::new(config)))
    }
}

/// The Kafka sink.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    producer: Option<FutureProducer>,
    txn: Option<Txn>,
}

/// The value parsed as JSON, once, when a field is needed.
fn json_field<'a>(
    parsed: &'a mut Option<Option<serde_json::Value>>,
    value: &[u8],
    field: &str,
) -> Option<&'a serde_json::Value> {
    parsed
        .get_or_insert_with(|| serde_json::from_slice(value).ok())
        .as_ref()
        .and_then(|v| v.get(field))
}

impl KafkaSink {
    /// A sink for `config` (no I/O until `open`).
    pub fn new(config: KafkaSinkConfig) -> Self {
        Self {
            config,
            producer: None,
            txn: None,
        }
    }

    /// Where a record goes, and its key: `Err(reason)` rejects it.
    fn route(&self, r: &Record) -> Result<(String, Option<Vec<u8>>), String> {
        let cfg = &self.config;
        let mut parsed = None;
        let mut topic = None;
        if let Some(h) = &cfg.topic_header
            && let Some(v) = r.header(h)
        {
            topic = Some(
                std::str::from_utf8(v)
                    .map_err(|_| format!("header `{h}` is not UTF-8"))?
                    .to_string(),
            );
        }
        if topic.is_none()
            && let Some(f) = &cfg.topic_field
            && let Some(v) = json_field(&mut parsed, &r.value, f)
        {
            match v.as_str() {
                Some(s) => topic = Some(s.to_string()),
                None => return Err(format!("field `{f}` is not a string topic name")),
            }
        }
        let topic = match topic.or_else(|| cfg.topic.clone()) {
            Some(t) if !t.is_empty() => t,
            _ => {
                return Err(format!(
                    "no topic for this record (header {:?} / field {:?} missing, no fallback `topic`)",
                    cfg.topic_header, cfg.topic_field
                ));
            }
        };
        let key = match &cfg.key_field {
            None => None,
            Some(f) => match json_field(&mut parsed, &r.value, f) {
                Some(serde_json::Value::String(s)) => Some(s.clone().into_bytes()),
                Some(v) => Some(v.to_string().into_bytes()),
                None => {
                    return Err(format!(
                        "key field `{f}` is missing or the value is not JSON"
                    ));
                }
            },
        };
        Ok((topic, key))
    }

    /// Enqueue every record; returns the delivery futures and fills `report` with records that
    /// fail before reaching the broker.
    async fn enqueue(
        &self,
        producer: &FutureProducer,
        records: &[Record],
        report: &mut WriteReport,
    ) -> Vec<(usize, DeliveryFuture)> {
        let mut futures = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let (topic, key) = match self.route(r) {
                Ok(x) => x,
                Err(reason) => {
                    report.rejected.push((i, reason));
                    continue;
                }
            };
            let mut rec = FutureRecord::<[u8], [u8]>::to(&topic).payload(&r.value[..]);
            if let Some(k) = key.as_deref().or(r.key.as_deref()) {
                rec = rec.key(k);
            }
            if !r.headers.is_empty() {
                let mut hs = OwnedHeaders::new_with_capacity(r.headers.len());
                for h in &r.headers {
                    hs = hs.insert(KHeader {
                        key: &h.name,
                        value: Some(&h.value[..]),
                    });
                }
                rec = rec.headers(hs);
            }
            if let Some(ts) = r.timestamp {
                rec = rec.timestamp(ts);
            }
            loop {
                match producer.send_result(rec) {
                    Ok(f) => {
                        futures.push((i, f));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => {
                        note_failure(report, i, &e);
                        break;
                    }
                }
            }
        }
        futures
    }
}

/// The producer's fatal error (fenced by a newer producer with the same `transactional.id`, ...):
/// nothing more can be written with it, the job must stop.
fn fatal(producer: &FutureProducer) -> Option<ConnectorError> {
    use rdkafka::producer::Producer;
    producer.client().fatal_error().map(|(code, reason)| {
        ConnectorError::external(format!(
            "kafka producer failed for good ({code:?}: {reason}); another process with the same transactional.id has probably taken over"
        ))
    })
}

fn note_failure(report: &mut WriteReport, i: usize, e: &KafkaError) {
    match classify_record(e) {
        RecordFailure::Retry => report.retry.push(i),
        RecordFailure::Reject => report.rejected.push((i, e.to_string())),
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn open(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let mut c = self.config.producer_config()?;
        let exactly_once = ctx.guarantee == Guarantee::ExactlyOnce;
        let id = self
            .config
            .transactional_id
            .clone()
            .unwrap_or_else(|| format!("sluice-{}-{}", ctx.job, ctx.sink));
        if exactly_once {
            let txn_timeout = self.config.transaction_timeout.0;
            c.set("transactional.id", &id)
                .set("transaction.timeout.ms", millis(txn_timeout))
                // librdkafka requires delivery to give up before the transaction does.
                .set(
                    "message.timeout.ms",
                    millis(self.config.message_timeout.0.min(txn_timeout)),
                );
        }
        let producer: FutureProducer =
            c.create().map_err(|e| to_connector("kafka producer", &e))?;
        if exactly_once {
            let base = self.config.connection().client_config(SINK_OWNED)?;
            let settings = TxnSettings {
                id,
                progress_topic: self.config.progress_topic.clone(),
                source_group: self.config.source_group.clone(),
                brokers: self.config.brokers.clone(),
                timeout: self.config.transaction_timeout.0,
                destination: self.config.destination(),
            };
            self.txn = Some(Txn::open(settings, &base, &producer).await?);
        }
        self.producer = Some(producer);
        Ok(())
    }

    /// The cluster (bootstrap servers, sorted) and the topic, or how records choose it.
    fn destination(&self) -> Option<String> {
        Some(self.config.destination())
    }

    fn transactional(&self) -> bool {
        true
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>, ConnectorError> {
        Ok(self.txn.as_ref().and_then(Txn::committed))
    }

    /// Commit an empty transaction whose progress record holds the new checkpoint (fencing any
    /// older producer of this `transactional.id`). Only exactly-once jobs store one.
    async fn reset_checkpoint(
        &mut self,
        ctx: &SinkContext,
        partitions: Option<&Checkpoint>,
    ) -> Result<(), ConnectorError> {
        if ctx.guarantee != Guarantee::ExactlyOnce {
            return Ok(());
        }
        self.open(ctx).await?;
        let committed = self.txn.as_ref().and_then(Txn::committed);
        let result = match (committed, partitions) {
            (None, None) => Ok(()),
            (committed, partitions) => {
                let mut cp = match partitions {
                    Some(_) => committed.unwrap_or_default(),
                    None => Checkpoint::default(),
                };
                if let Some(p) = partitions {
                    cp.offsets.extend(p.offsets.clone());
                }
                self.write(&[], Some(&cp)).await.map(|_| ())
            }
        };
        let closed = self.close().await;
        result.and(closed)
    }

    async fn write(
        &mut self,
        records: &[Record],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let producer = self
            .producer
            .clone()
            .ok_or_else(|| ConnectorError::internal("kafka sink used before open"))?;
        let mut report = WriteReport::ok();
        if let Some(txn) = &self.txn {
            txn.begin(&producer)?;
        }
        let futures = self.enqueue(&producer, records, &mut report).await;
        let mut failed: Option<KafkaError> = None;
        for (i, f) in futures {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    note_failure(&mut report, i, &e);
                    failed.get_or_insert(e);
                }
                Err(_) => {
                    report.retry.push(i);
                    failed.get_or_insert(KafkaError::Canceled);
                }
            }
        }
        let Some(txn) = &mut self.txn else {
            report.retry.sort_unstable();
            report.rejected.sort_unstable_by_key(|(i, _)| *i);
            return Ok(report);
        };
        // A transaction is all or nothing: any record the broker did not take aborts it.
        if let Some(e) = failed.or_else(|| {
            (!report.retry.is_empty())
                .then_some(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))
        }) {
            if let Some(fatal) = fatal(&producer) {
                return Err(fatal);
            }
            txn.abort(&producer).await;
            let mut err = to_connector("kafka transactional write aborted", &e);
            if classify_record(&e) == RecordFailure::Retry {
                err.retryable = true;
            }
            return Err(err);
        }
        if let Err(e) = txn.commit(&producer, checkpoint).await {
            if let Some(fatal) = fatal(&producer) {
                return Err(fatal);
            }
            if e.retryable {
                txn.abort(&producer).await;
            }
            return Err(e);
        }
        report.rejected.sort_unstable_by_key(|(i, _)| *i);
        Ok(report)
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(p) = self.producer.take() {
            tokio::task::spawn_blocking(move || {
                use rdkafka::producer::Producer;
                let _ = p.flush(Duration::from_secs(10));
            })
            .await
            .map_err(|e| ConnectorError::internal(format!("close task: {e}")))?;
        }
        self.txn = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_core::{Header, Position};

    use super::*;

    fn config(src: &str) -> Result<KafkaSinkConfig, String> {
        let table: toml::Table = toml::from_str(src).map_err(|e| e.to_string())?;
        let cfg: KafkaSinkConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        cfg.validate().map_err(|e| e.message)?;
        Ok(cfg)
    }

    fn record(value: &str) -> Record {
        Record::new(value.to_string(), Position::int(Arc::from("p"), 0))
    }

    #[test]
    fn config_defaults_and_checks() {
        let c = config("brokers = 'b'\ntopic = 't'").unwrap();
        assert!(c.idempotent);
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.progress_topic, "_sluice_progress");
        assert!(config("brokers = 'b'").unwrap_err().contains("topic"));
        assert!(
            config("brokers = 'b'\ntopic = 't'\nacks = 'leader'")
                .unwrap_err()
                .contains("idempotent")
        );
        assert!(
            config("brokers = 'b'\ntopic = 't'\nproperties = { 'transactional.id' = 'x' }")
                .unwrap_err()
                .contains("managed by Sluice")
        );
        assert!(config("brokers = 'b'\ntopic = 't'\nlinger = 5").is_err());
    }

    #[test]
    fn destination_is_the_cluster_and_the_topic_choice() {
        let a = config("brokers = 'b:9092, a:9092'\ntopic = 't'").unwrap();
        let b = config("brokers = 'a:9092,b:9092'\ntopic = 't'").unwrap();
        assert_eq!(a.destination(), "kafka://a:9092,b:9092/t");
        assert_eq!(a.destination(), b.destination());
        let f = config("brokers = 'a:9092'\ntopic_field = 'kind'\ntopic = 't'").unwrap();
        assert_eq!(
            f.destination(),
            "kafka://a:9092/topic from field \"kind\", else t"
        );
    }

    #[test]
    fn routes_by_header_then_field_then_fallback() {
        let sink = KafkaSink::new(
            config("brokers = 'b'\ntopic = 'fallback'\ntopic_field = 'kind'\ntopic_header = 'dest'\nkey_field = 'id'")
                .unwrap(),
        );
        let mut r = record(r#"{"kind":"a","id":7}"#);
        assert_eq!(sink.route(&r).unwrap(), ("a".into(), Some(b"7".to_vec())));
        r.headers.push(Header {
            name: "dest".into(),
            value: "h".into(),
        });
        assert_eq!(sink.route(&r).unwrap().0, "h");
        let r = record(r#"{"id":"x"}"#);
        assert_eq!(
            sink.route(&r).unwrap(),
            ("fallback".into(), Some(b"x".to_vec()))
        );
        let r = record(r#"{"kind":"a"}"#);
        assert!(sink.route(&r).unwrap_err().contains("key field"));
        let r = record(r#"{"kind":3,"id":1}"#);
        assert!(sink.route(&r).is_err());
    }
}
