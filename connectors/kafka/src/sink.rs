//! The Kafka sink: an idempotent producer that awaits every delivery report before a write
//! returns; with exactly-once, a transactional producer (see [`crate::txn`]).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::msk::KafkaAuth;
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Guarantee, Record, Sink, SinkConnector, SinkContext,
    ValuePath, WriteReport, async_trait,
};

use crate::client::millis;
use crate::config::KafkaSinkConfig;
use crate::error::{RecordFailure, classify_record, to_connector};
use crate::groups::Groups;
use crate::txn::{Txn, TxnSettings};

/// The `kafka` sink type.
pub struct KafkaSinkConnector;

impl SinkConnector for KafkaSinkConnector {
    const TYPE: &'static str = "kafka";
    const DOC: &'static str =
        "Produce to Kafka topics; idempotent, or transactional for exactly-once.";
    type Config = KafkaSinkConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        config.validate()?;
        config.allow_local(ctx)?;
        Ok(Box::new(KafkaSink::in_job(config, ctx)))
    }
}

/// The Kafka sink.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    producer: Option<FutureProducer<KafkaAuth>>,
    txn: Option<Txn>,
    /// The consumer groups of this sink's job (whose offsets `source_group` commits).
    groups: Arc<Groups>,
}

/// The value parsed as JSON, once, when a field is needed.
fn json_field<'a>(
    parsed: &'a mut Option<Option<serde_json::Value>>,
    value: &[u8],
    field: &ValuePath,
) -> Option<&'a serde_json::Value> {
    parsed
        .get_or_insert_with(|| serde_json::from_slice(value).ok())
        .as_ref()
        .and_then(|v| field.get(v))
}

impl KafkaSink {
    /// A sink for `config` on its own, outside any job: with `source_group`, it commits that
    /// group's offsets with the metadata of a consumer it makes (no I/O until `open`).
    pub fn new(config: KafkaSinkConfig) -> Self {
        Self::with_groups(config, Arc::default())
    }

    /// The sink of the job `ctx` is for: with `source_group`, it commits the offsets of the
    /// job's own Kafka source consumer in its transactions.
    pub fn in_job(config: KafkaSinkConfig, ctx: &BuildContext) -> Self {
        Self::with_groups(config, Groups::of_job(ctx))
    }

    fn with_groups(config: KafkaSinkConfig, groups: Arc<Groups>) -> Self {
        Self {
            config,
            producer: None,
            txn: None,
            groups,
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
        producer: &FutureProducer<KafkaAuth>,
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
fn fatal(producer: &FutureProducer<KafkaAuth>) -> Option<ConnectorError> {
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
        let auth = KafkaAuth::for_sasl(self.config.sasl.as_ref()).await?;
        let producer: FutureProducer<KafkaAuth> = c
            .create_with_context(auth.clone())
            .map_err(|e| to_connector("kafka producer", &e))?;
        if exactly_once {
            let base = self.config.base_client_config()?;
            let settings = TxnSettings {
                id,
                progress_topic: self.config.progress_topic.clone(),
                source_group: self.config.source_group.clone(),
                brokers: self.config.brokers.clone(),
                timeout: self.config.transaction_timeout.0,
                destination: self.config.destination(),
                groups: self.groups.clone(),
                auth,
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

    fn config(src: &str) -> KafkaSinkConfig {
        let table: toml::Table = toml::from_str(src).unwrap();
        toml::Value::Table(table).try_into().unwrap()
    }

    fn record(value: &str) -> Record {
        Record::new(value.to_string(), Position::int(Arc::from("p"), 0))
    }

    #[test]
    fn routes_by_header_then_field_then_fallback() {
        let sink = KafkaSink::new(config(
            "brokers = 'b'\ntopic = 'fallback'\ntopic_field = 'kind'\ntopic_header = 'dest'\nkey_field = 'id'",
        ));
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

        // Nested fields, in the project's one field-path syntax.
        let nested = KafkaSink::new(config(
            "brokers = 'b'\ntopic_field = 'meta.topic'\nkey_field = 'device.id'",
        ));
        let r = record(r#"{"meta":{"topic":"t9"},"device":{"id":"d-1"}}"#);
        assert_eq!(
            nested.route(&r).unwrap(),
            ("t9".into(), Some(b"d-1".to_vec()))
        );
        // A JSON pointer can never name a field: refused at load, with the fix.
        let table: toml::Table = toml::from_str("brokers = 'b'\nkey_field = '/device/id'").unwrap();
        let err = toml::Value::Table(table)
            .try_into::<KafkaSinkConfig>()
            .unwrap_err();
        assert!(err.to_string().contains("device.id"), "{err}");
    }
}
