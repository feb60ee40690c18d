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
//! librdkafka runs the rebalance callback inside `poll`, that is inside [`Source::next_batch`],
//! on the same task that calls [`Source::commit`]; the callback cannot wait for the pipeline to
//! drain without blocking the commits it would wait for. So, on revocation, the source
//! 1. commits (synchronously, before the partitions are given up) the last durable offsets of the
//!    revoked partitions it has been told about,
//! 2. drops the records of revoked partitions it has read but not yet handed to the runtime,
//!    and stops committing those partitions (records already in the pipeline are still written,
//!    but their offsets are not committed by this member).
//!
//! The new owner resumes from the last committed offset, so the guarantee across a rebalance is
//! at-least-once: nothing is lost; records that were in flight at revocation may be written twice
//! (bounded by the pipeline's in-flight window: `pipeline.channel_capacity` batches).
//!
//! With exactly-once the runtime opens the source at the sinks' checkpoint; every partition of
//! that checkpoint is assigned at the offset after it (and after what this member has since made
//! durable), never at the group's offset. Exactly-once runs one process per job: the sink's
//! stable `transactional.id` fences any second process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset as KOffset, TopicPartitionList};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_core::{
    Batch, BuildContext, Checkpoint, ConnectorError, DeadRecord, Guarantee, Header, HumanDuration,
    Offset, Position, Record, Source, SourceConnector, async_trait,
};

use crate::config::{Connection, SaslConfig, TlsConfig, millis};
use crate::error::to_connector;
use crate::groups;

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
    /// Sluice owns (offsets, group, brokers, security) are refused.
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

    /// Check the config without connecting.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.connection().client_config(SOURCE_OWNED)?;
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

/// The `kafka` source type.
pub struct KafkaSourceConnector;

impl SourceConnector for KafkaSourceConnector {
    const TYPE: &'static str = "kafka";
    const DOC: &'static str =
        "Consume Kafka topics in a consumer group; offsets committed only after durable writes.";
    type Config = KafkaSourceConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Source>, ConnectorError> {
        config.validate()?;
        Ok(Box::new(KafkaSource::new(config, ctx.guarantee)))
    }
}

type Tp = (String, i32);

/// What the rebalance callback and the source task share.
#[derive(Debug, Default)]
struct State {
    /// Partitions this member owns now.
    assigned: HashSet<Tp>,
    /// Bumped on every revocation: the source drops unreturned records of revoked partitions.
    generation: u64,
    /// Next offset to read per partition when it is (re)assigned: exactly-once resume points and
    /// everything made durable since. Empty with at-least-once (the group's offsets rule).
    seek: HashMap<Tp, i64>,
    /// The next offset of every partition the runtime said is durable (what we committed).
    durable: HashMap<Tp, i64>,
    /// Lag per partition (`topic/partition` → records behind the high watermark).
    lag: BTreeMap<String, i64>,
}

/// A cheap handle to read a running source's lag per partition.
#[derive(Clone, Debug)]
pub struct LagHandle(Arc<Mutex<State>>);

impl LagHandle {
    /// `topic/partition` → records between the last one handed to the pipeline and the high
    /// watermark, as of the last statistics refresh (`lag_interval`).
    pub fn lag(&self) -> BTreeMap<String, i64> {
        self.0.lock().lag.clone()
    }
}

/// The librdkafka context of the source consumer: rebalances and statistics.
pub(crate) struct SourceContext {
    state: Arc<Mutex<State>>,
    start_from: StartFrom,
    start_timestamp_ms: Option<i64>,
}

impl ClientContext for SourceContext {
    fn stats(&self, stats: Statistics) {
        let mut lag = BTreeMap::new();
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p < 0 || part.hi_offset < 0 {
                    continue;
                }
                let read = if part.app_offset >= 0 {
                    part.app_offset
                } else if part.committed_offset >= 0 {
                    part.committed_offset
                } else {
                    continue;
                };
                lag.insert(format!("{topic}/{p}"), (part.hi_offset - read).max(0));
            }
        }
        tracing::debug!(lag = ?lag, "Kafka source lag.");
        let mut st = self.state.lock();
        // Keep only partitions still owned.
        lag.retain(|k, _| parse_partition(k).is_some_and(|tp| st.assigned.contains(&tp)));
        st.lag = lag;
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.on_assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.on_revoke(consumer, tpl),
            other => {
                tracing::error!(error = ?other, "Kafka rebalance failed; dropping the assignment.");
                self.on_revoke(consumer, tpl);
            }
        }
    }
}

impl SourceContext {
    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let mut names = Vec::new();
        let mut unplaced = TopicPartitionList::new();
        {
            let mut st = self.state.lock();
            for e in tpl.elements() {
                let tp = (e.topic().to_string(), e.partition());
                names.push(format!("{}/{}", tp.0, tp.1));
                match st.seek.get(&tp) {
                    Some(next) => {
                        let _ = unplaced.add_partition_offset(&tp.0, tp.1, KOffset::Offset(*next));
                    }
                    None => {
                        let _ = unplaced.add_partition_offset(&tp.0, tp.1, KOffset::Stored);
                    }
                }
                st.assigned.insert(tp);
            }
        }
        if self.start_from == StartFrom::Timestamp {
            place_by_timestamp(
                consumer,
                &mut unplaced,
                self.start_timestamp_ms.unwrap_or(0),
            );
        }
        for e in unplaced.elements() {
            let _ = tpl.set_partition_offset(e.topic(), e.partition(), e.offset());
        }
        tracing::info!(partitions = ?names, "Kafka partitions assigned.");
        if let Err(e) = consumer.assign(tpl) {
            tracing::error!(error = %e, "Kafka assign failed.");
        }
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let mut commit = TopicPartitionList::new();
        let mut names = Vec::new();
        {
            let mut st = self.state.lock();
            for e in tpl.elements() {
                let tp = (e.topic().to_string(), e.partition());
                names.push(format!("{}/{}", tp.0, tp.1));
                if let Some(next) = st.durable.get(&tp) {
                    let _ = commit.add_partition_offset(&tp.0, tp.1, KOffset::Offset(*next));
                }
                st.assigned.remove(&tp);
            }
            st.generation += 1;
        }
        // Make sure the last durable offsets are committed before the partitions go to another
        // member (an earlier async commit may still be in flight). A commit of a lost assignment
        // is refused by the coordinator, which is fine: the new owner replays from the older one.
        if commit.count() > 0
            && !consumer.assignment_lost()
            && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
        {
            tracing::warn!(error = %e, "Offset commit on revocation failed.");
        }
        tracing::info!(partitions = ?names, "Kafka partitions revoked.");
        if let Err(e) = consumer.unassign() {
            tracing::error!(error = %e, "Kafka unassign failed.");
        }
    }
}

/// For partitions the group has no committed offset for, start at the first record at or after
/// `ts`; the others keep `Stored` (the group's offset).
fn place_by_timestamp(
    consumer: &BaseConsumer<SourceContext>,
    tpl: &mut TopicPartitionList,
    ts: i64,
) {
    let stored: Vec<Tp> = tpl
        .elements()
        .iter()
        .filter(|e| e.offset() == KOffset::Stored)
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect();
    if stored.is_empty() {
        return;
    }
    let mut query = TopicPartitionList::new();
    for (t, p) in &stored {
        let _ = query.add_partition_offset(t, *p, KOffset::Invalid);
    }
    let committed = match consumer.committed_offsets(query, Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "Could not read committed offsets; starting at the earliest.");
            return;
        }
    };
    let mut by_time = TopicPartitionList::new();
    for e in committed.elements() {
        if !matches!(e.offset(), KOffset::Offset(_)) {
            let _ = by_time.add_partition_offset(e.topic(), e.partition(), KOffset::Offset(ts));
        }
    }
    if by_time.count() == 0 {
        return;
    }
    match consumer.offsets_for_times(by_time, Duration::from_secs(10)) {
        Ok(found) => {
            for e in found.elements() {
                let off = match e.offset() {
                    KOffset::Offset(o) => KOffset::Offset(o),
                    // No record at or after the timestamp: start at the end.
                    _ => KOffset::End,
                };
                let _ = tpl.set_partition_offset(e.topic(), e.partition(), off);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "offsets_for_times failed; starting at the earliest.");
        }
    }
}

/// `"topic/3"` → `("topic", 3)`.
pub(crate) fn parse_partition(name: &str) -> Option<Tp> {
    let (topic, p) = name.rsplit_once('/')?;
    Some((topic.to_string(), p.parse().ok()?))
}

type Consumer_ = StreamConsumer<SourceContext>;

/// The Kafka source. See the module docs for offsets and rebalances.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    guarantee: Guarantee,
    state: Arc<Mutex<State>>,
    consumer: Option<Arc<Consumer_>>,
    /// Records read but not yet returned (kept here so `next_batch` is cancel-safe).
    pending: Batch,
    pending_since: Option<tokio::time::Instant>,
    generation_seen: u64,
    partition_names: Vec<(String, i32, Arc<str>)>,
}

impl KafkaSource {
    /// A source for `config` (no I/O until `open`).
    pub fn new(config: KafkaSourceConfig, guarantee: Guarantee) -> Self {
        Self {
            config,
            guarantee,
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
        match decode_problem(self.config.format, msg.payload()) {
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

/// Why a value does not decode in `format`, if it does not.
fn decode_problem(format: ValueFormat, payload: Option<&[u8]>) -> Option<String> {
    match (format, payload) {
        (ValueFormat::Bytes, _) => None,
        (ValueFormat::Text, None) => None,
        (ValueFormat::Text, Some(v)) => std::str::from_utf8(v)
            .err()
            .map(|e| format!("value is not UTF-8 text: {e}")),
        (ValueFormat::Json, None) => Some("value is empty (a tombstone), not JSON".into()),
        (ValueFormat::Json, Some(v)) => serde_json::from_slice::<serde::de::IgnoredAny>(v)
            .err()
            .map(|e| format!("value is not JSON: {e}")),
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        let cfg = &self.config;
        let mut c = cfg.connection().client_config(SOURCE_OWNED)?;
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
        groups::register(&cfg.brokers, &cfg.group, &consumer);
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
            && groups::offsets_claimed(&self.config.brokers, &self.config.group)
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

    fn config(toml_src: &str) -> Result<KafkaSourceConfig, String> {
        let table: toml::Table = toml::from_str(toml_src).map_err(|e| e.to_string())?;
        let cfg: KafkaSourceConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        cfg.validate().map_err(|e| e.message)?;
        Ok(cfg)
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c = config("brokers = 'b:9092'\ntopics = ['t']\ngroup = 'g'").unwrap();
        assert_eq!(c.start_from, StartFrom::Earliest);
        assert_eq!(c.format, ValueFormat::Json);
        assert_eq!(c.batch_size, 1000);
        let e = config("brokers = 'b'\ntopics = ['t']\ngroup = 'g'\ntopic = 'x'").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let e = config("brokers = 'b'\ntopics = ['^(']\ngroup = 'g'").unwrap_err();
        assert!(e.contains("regex"), "{e}");
        let e = config("brokers = 'b'\ntopics = ['t']\ngroup = 'g'\nstart_from = 'timestamp'")
            .unwrap_err();
        assert!(e.contains("start_timestamp_ms"), "{e}");
        let e = config(
            "brokers = 'b'\ntopics = ['t']\ngroup = 'g'\nproperties = { 'enable.auto.commit' = 'true' }",
        )
        .unwrap_err();
        assert!(e.contains("managed by Sluice"), "{e}");
    }

    #[test]
    fn decode_failures_are_reported_not_skipped() {
        assert!(decode_problem(ValueFormat::Json, Some(b"{\"a\":1}")).is_none());
        assert!(decode_problem(ValueFormat::Json, Some(b"{nope")).is_some());
        assert!(decode_problem(ValueFormat::Json, None).is_some());
        assert!(decode_problem(ValueFormat::Text, Some(&[0xff, 0xfe])).is_some());
        assert!(decode_problem(ValueFormat::Bytes, Some(&[0xff])).is_none());
    }

    #[test]
    fn parses_partition_names_with_slashes_in_topics() {
        assert_eq!(parse_partition("a/b/3"), Some(("a/b".to_string(), 3)));
        assert_eq!(parse_partition("nope"), None);
    }
}
