//! The Kafka source: a consumer-group member with manual offset management.
//!
//! # Offsets
//! `enable.auto.commit` and `enable.auto.offset.store` are off. Offsets are committed only in
//! [`Source::commit`], which the runtime calls once the checkpoint is durable in every sink, and
//! only for partitions this member still owns, and only forwards. With exactly-once and a Kafka
//! sink in the same process whose `source_group` is this group, the sink commits the offsets
//! inside its transactions and the source commits none itself (a late plain commit could move
//! them back behind the last committed transaction).
//!
//! # Rebalances
//! See `rebalance`: on revocation the last durable offsets are committed and unreturned
//! records of revoked partitions dropped; across a rebalance the guarantee is at-least-once.
//!
//! With exactly-once the runtime opens the source at the sinks' checkpoint; every partition of
//! that checkpoint is assigned at the offset after it (and after what this member has since made
//! durable), never at the group's offset. Exactly-once runs one process per job: the sink's
//! stable `transactional.id` fences any second process.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset as KOffset, TopicPartitionList};
use sluice_core::{
    Batch, BuildContext, Checkpoint, ConnectorError, DeadRecord, Guarantee, Header, Offset,
    Position, Record, Source, SourceConnector, async_trait,
};

use crate::client::millis;
use crate::config::{KafkaSourceConfig, StartFrom, ValueFormat};
use crate::error::to_connector;
use crate::groups::Groups;
use crate::msk::KafkaAuth;
use crate::rebalance::{LagHandle, SourceContext, State, parse_partition};

/// The `kafka` source type.
pub struct KafkaSourceConnector;

impl SourceConnector for KafkaSourceConnector {
    const TYPE: &'static str = "kafka";
    const DOC: &'static str =
        "Consume Kafka topics in a consumer group; offsets committed only after durable writes.";
    type Config = KafkaSourceConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Source>, ConnectorError> {
        config.validate()?;
        config.allow_local(ctx)?;
        Ok(Box::new(KafkaSource::in_job(config, ctx)))
    }
}

type Consumer_ = StreamConsumer<SourceContext>;

/// The Kafka source. See the module docs for offsets and rebalances.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    guarantee: Guarantee,
    state: Arc<Mutex<State>>,
    /// The consumer groups of this source's job (shared with a transactional sink of it).
    groups: Arc<Groups>,
    consumer: Option<Arc<Consumer_>>,
    /// Records read but not yet returned (kept here so `next_batch` is cancel-safe).
    pending: Batch,
    pending_since: Option<tokio::time::Instant>,
    generation_seen: u64,
    partition_names: Vec<(String, i32, Arc<str>)>,
}

impl KafkaSource {
    /// A source for `config` on its own, outside any job: no Kafka sink will commit its
    /// group's offsets (no I/O until `open`).
    pub fn new(config: KafkaSourceConfig, guarantee: Guarantee) -> Self {
        Self::with_groups(config, guarantee, Arc::default())
    }

    /// The source of the job `ctx` is for: a transactional Kafka sink of the same job with
    /// `source_group` set commits this source's offsets in its transactions.
    pub fn in_job(config: KafkaSourceConfig, ctx: &BuildContext) -> Self {
        Self::with_groups(config, ctx.guarantee, Groups::of_job(ctx))
    }

    fn with_groups(config: KafkaSourceConfig, guarantee: Guarantee, groups: Arc<Groups>) -> Self {
        Self {
            config,
            guarantee,
            groups,
            state: Arc::default(),
            consumer: None,
            pending: Batch::default(),
            pending_since: None,
            generation_seen: 0,
            partition_names: Vec::new(),
        }
    }

    /// A handle to this source's lag per partition (the status surface reads it).
    pub fn lag_handle(&self) -> LagHandle {
        LagHandle(self.state.clone())
    }

    /// Partitions this member owns now, as `topic/partition`.
    pub fn assignment(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .state
            .lock()
            .assigned
            .iter()
            .map(|(t, p)| format!("{t}/{p}"))
            .collect();
        v.sort();
        v
    }

    fn consumer(&self) -> Result<Arc<Consumer_>, ConnectorError> {
        self.consumer
            .clone()
            .ok_or_else(|| ConnectorError::internal("kafka source used before open"))
    }

    fn partition_name(&mut self, topic: &str, partition: i32) -> Arc<str> {
        // Few partitions per member: a linear scan without allocating beats a map keyed by
        // an owned topic name.
        if let Some((_, _, n)) = self
            .partition_names
            .iter()
            .find(|(t, p, _)| *p == partition && t == topic)
        {
            return n.clone();
        }
        let n: Arc<str> = Arc::from(format!("{topic}/{partition}"));
        self.partition_names
            .push((topic.to_string(), partition, n.clone()));
        n
    }

    /// Drop unreturned records of partitions revoked since the last look.
    fn drop_revoked(&mut self) {
        let st = self.state.lock();
        if st.generation == self.generation_seen {
            return;
        }
        self.generation_seen = st.generation;
        let owned = |p: &Position| {
            parse_partition(&p.partition).is_some_and(|tp| st.assigned.contains(&tp))
        };
        let before = self.pending.records.len() + self.pending.dead.len();
        self.pending.records.retain(|r| owned(&r.position));
        self.pending.dead.retain(|d| owned(&d.record.position));
        let dropped = before - self.pending.records.len() - self.pending.dead.len();
        if dropped > 0 {
            tracing::info!(
                records = dropped,
                "Dropped unreturned records of revoked partitions."
            );
        }
    }

    fn push(&mut self, msg: &rdkafka::message::BorrowedMessage<'_>) {
        let partition = self.partition_name(msg.topic(), msg.partition());
        let value = msg
            .payload()
            .map(Bytes::copy_from_slice)
            .unwrap_or_default();
        let headers = msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| Header {
                        name: h.key.to_string(),
                        value: h.value.map(Bytes::copy_from_slice).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let record = Record {
            key: msg.key().map(Bytes::copy_from_slice),
            value,
            headers,
            timestamp: msg.timestamp().to_millis(),
            position: Position {
                partition,
                offset: Offset::Int(msg.offset()),
            },
        };
        match decode_problem(
            self.config.format,
            self.config.max_json_depth,
            msg.payload(),
        ) {
            None => self.pending.records.push(record),
            Some(reason) => self.pending.dead.push(DeadRecord {
                record,
                stage: "source".into(),
                reason,
            }),
        }
        if self.pending_since.is_none() {
            self.pending_since = Some(tokio::time::Instant::now());
        }
    }

    fn pending_len(&self) -> usize {
        self.pending.records.len() + self.pending.dead.len()
    }

    fn take_pending(&mut self) -> Batch {
        self.pending_since = None;
        std::mem::take(&mut self.pending)
    }
}

/// Why a value does not decode in `format` (JSON nested at most `max_json_depth` deep), if it
/// does not.
fn decode_problem(
    format: ValueFormat,
    max_json_depth: usize,
    payload: Option<&[u8]>,
) -> Option<String> {
    match (format, payload) {
        (ValueFormat::Bytes, _) => None,
        (ValueFormat::Text, None) => None,
        (ValueFormat::Text, Some(v)) => std::str::from_utf8(v)
            .err()
            .map(|e| format!("value is not UTF-8 text: {e}")),
        (ValueFormat::Json, None) => Some("value is empty (a tombstone), not JSON".into()),
        (ValueFormat::Json, Some(v)) => sluice_core::json::check_json(v, max_json_depth)
            .err()
            .map(|e| format!("value is not JSON: {e}")),
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        let cfg = &self.config;
        let mut c = cfg.client_config()?;
        c.set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                match cfg.start_from {
                    StartFrom::Latest => "latest",
                    _ => "earliest",
                },
            )
            .set("session.timeout.ms", millis(cfg.session_timeout.0))
            .set("statistics.interval.ms", millis(cfg.lag_interval.0));
        if self.guarantee == Guarantee::ExactlyOnce {
            // Only committed transactions' records (on a broker that honours it).
            c.set("isolation.level", "read_committed");
            if let Some(cp) = &resume {
                let mut st = self.state.lock();
                for (partition, offset) in &cp.offsets {
                    let (Some(tp), Offset::Int(o)) = (parse_partition(partition), offset) else {
                        return Err(ConnectorError::internal(format!(
                            "checkpoint position {partition}@{offset} is not a Kafka position"
                        )));
                    };
                    st.seek.insert(tp, o + 1);
                }
            }
        }
        let ctx = SourceContext {
            auth: KafkaAuth::for_sasl(cfg.sasl.as_ref()).await?,
            state: self.state.clone(),
            start_from: cfg.start_from,
            start_timestamp_ms: cfg.start_timestamp_ms,
        };
        let consumer: Consumer_ = c
            .create_with_context(ctx)
            .map_err(|e| to_connector("kafka consumer", &e))?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| to_connector("kafka subscribe", &e))?;
        let consumer = Arc::new(consumer);
        self.groups.register(&cfg.brokers, &cfg.group, &consumer);
        tracing::info!(topics = ?cfg.topics, group = %cfg.group, "Kafka source subscribed.");
        self.consumer = Some(consumer);
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        let consumer = self.consumer()?;
        let max = self.config.batch_size;
        let wait = self.config.batch_wait.0;
        loop {
            if self.pending_len() >= max {
                return Ok(Some(self.take_pending()));
            }
            let msg = match self.pending_since {
                // Cancel-safe: a message is moved into `self.pending` as soon as it arrives.
                None => consumer.recv().await,
                Some(since) => match tokio::time::timeout_at(since + wait, consumer.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        self.drop_revoked();
                        if self.pending_len() == 0 {
                            continue;
                        }
                        return Ok(Some(self.take_pending()));
                    }
                },
            };
            // A rebalance runs inside `recv`: drop what we hold of revoked partitions first.
            self.drop_revoked();
            match msg {
                Ok(m) => self.push(&m),
                Err(e) => {
                    if self.pending_len() > 0 {
                        tracing::warn!(error = %e, "Kafka consumer error.");
                        return Ok(Some(self.take_pending()));
                    }
                    return Err(to_connector("kafka consume", &e));
                }
            }
        }
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), ConnectorError> {
        let consumer = self.consumer()?;
        let mut tpl = TopicPartitionList::new();
        let mut advanced = Vec::new();
        {
            let mut st = self.state.lock();
            for (partition, offset) in &checkpoint.offsets {
                let (Some(tp), Offset::Int(o)) = (parse_partition(partition), offset) else {
                    continue;
                };
                let next = o + 1;
                if self.guarantee == Guarantee::ExactlyOnce {
                    // Reassignment later resumes after what is durable, not the group offset.
                    st.seek.insert(tp.clone(), next);
                }
                if !st.assigned.contains(&tp) || st.durable.get(&tp).is_some_and(|d| *d >= next) {
                    continue;
                }
                let _ = tpl.add_partition_offset(&tp.0, tp.1, KOffset::Offset(next));
                advanced.push((tp, next));
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        if self.guarantee == Guarantee::ExactlyOnce
            && self
                .groups
                .offsets_claimed(&self.config.brokers, &self.config.group)
        {
            // A transactional Kafka sink commits these offsets inside its transactions.
            return Ok(());
        }
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| ConnectorError::internal(format!("commit task: {e}")))?
            .map_err(|e| to_connector("kafka offset commit", &e))?;
        let mut st = self.state.lock();
        for (tp, next) in advanced {
            st.durable.insert(tp, next);
        }
        Ok(())
    }

    fn owns_offsets(&self) -> bool {
        true
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn lag(&self) -> Option<BTreeMap<String, u64>> {
        let lag = self.state.lock().lag.clone();
        (!lag.is_empty()).then(|| {
            lag.into_iter()
                .map(|(p, l)| (p, u64::try_from(l).unwrap_or(0)))
                .collect()
        })
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(consumer) = self.consumer.take() {
            // Leaving the group blocks (it runs the revocation callback): not on the runtime.
            tokio::task::spawn_blocking(move || {
                consumer.unsubscribe();
                drop(consumer);
            })
            .await
            .map_err(|e| ConnectorError::internal(format!("close task: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_failures_are_reported_not_skipped() {
        let json = |v: &[u8]| decode_problem(ValueFormat::Json, 3, Some(v));
        assert!(json(b"{\"a\":1}").is_none());
        assert!(json(b"{nope").is_some());
        assert!(decode_problem(ValueFormat::Json, 3, None).is_some());
        assert!(decode_problem(ValueFormat::Text, 3, Some(&[0xff, 0xfe])).is_some());
        assert!(decode_problem(ValueFormat::Bytes, 3, Some(&[0xff])).is_none());
        // RFC 8259: UTF-8 inside strings, no lone surrogate, the depth limit; 1e999 is JSON.
        assert_eq!(
            json(b"[\"\xff\"]").as_deref(),
            Some("value is not JSON: invalid UTF-8 at byte 2")
        );
        assert!(json(b"\"\\ud800\"").is_some());
        assert!(json(b"[[[1e999]]]").is_none());
        assert_eq!(
            json(b"[[[[]]]]").as_deref(),
            Some("value is not JSON: nesting deeper than 3 at byte 3")
        );
    }

    #[test]
    fn parses_partition_names_with_slashes_in_topics() {
        assert_eq!(parse_partition("a/b/3"), Some(("a/b".to_string(), 3)));
        assert_eq!(parse_partition("nope"), None);
    }
}
