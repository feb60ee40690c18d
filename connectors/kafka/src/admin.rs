//! Inspection helpers for operators and tests: create a topic, read a group's committed
//! offsets, watermarks, and a topic's contents. Blocking calls are marked; run them off the
//! async runtime (`spawn_blocking`) in async code.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset as KOffset, TopicPartitionList};
use sluice_core::ConnectorError;

use crate::error::to_connector;

const TIMEOUT: Duration = Duration::from_secs(10);

fn base(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// Create `topic` with `partitions` partitions (replication: the broker default); an existing
/// topic is fine.
pub async fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Result<(), ConnectorError> {
    let admin: AdminClient<DefaultClientContext> = base(brokers)
        .create()
        .map_err(|e| to_connector("kafka admin client", &e))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .map_err(|e| to_connector("kafka create topic", &e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(ConnectorError::external(format!(
                    "creating topic {t}: {code}"
                )));
            }
        }
    }
    Ok(())
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, ConnectorError> {
    let md = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| to_connector("kafka metadata", &e))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| ConnectorError::external(format!("no topic {topic}")))?;
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// Blocking: the committed offset (the next record to read) of `group` for each partition of
/// `topic`; partitions without one are absent.
pub fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, ConnectorError> {
    GroupWatch::new(brokers, group, topic)?.committed()
}

/// A connection kept open to read one group's committed offsets on one topic repeatedly (cheap
/// enough to poll every few milliseconds).
pub struct GroupWatch {
    consumer: BaseConsumer,
    tpl: TopicPartitionList,
}

impl GroupWatch {
    /// Blocking: connect and look up the topic's partitions.
    pub fn new(brokers: &str, group: &str, topic: &str) -> Result<Self, ConnectorError> {
        let consumer: BaseConsumer = base(brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| to_connector("kafka consumer", &e))?;
        let mut tpl = TopicPartitionList::new();
        for p in partitions(&consumer, topic)? {
            tpl.add_partition(topic, p);
        }
        Ok(Self { consumer, tpl })
    }

    /// Blocking: partition → committed offset (partitions without one are absent).
    pub fn committed(&self) -> Result<BTreeMap<i32, i64>, ConnectorError> {
        let committed = self
            .consumer
            .committed_offsets(self.tpl.clone(), TIMEOUT)
            .map_err(|e| to_connector("kafka committed offsets", &e))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                KOffset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }
}

/// Blocking: `(low, high)` watermarks of every partition of `topic`, as the broker reports them
/// (Tansu 0.1.2 under-reports the high watermark: the base offset of the last batch + 1).
pub fn watermarks(brokers: &str, topic: &str) -> Result<BTreeMap<i32, (i64, i64)>, ConnectorError> {
    let consumer: BaseConsumer = base(brokers)
        .create()
        .map_err(|e| to_connector("kafka consumer", &e))?;
    let mut out = BTreeMap::new();
    for p in partitions(&consumer, topic)? {
        let w = consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .map_err(|e| to_connector("kafka watermarks", &e))?;
        out.insert(p, w);
    }
    Ok(out)
}

/// Blocking: every value in `topic` up to its current end, partition by partition, as the
/// given isolation level shows them (`read_committed`: committed transactions only, on a broker
/// that honours it).
pub fn read_all(
    brokers: &str,
    topic: &str,
    read_committed: bool,
    within: Duration,
) -> Result<Vec<Bytes>, ConnectorError> {
    let consumer: BaseConsumer = base(brokers)
        .set("group.id", "sluice-inspect")
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .map_err(|e| to_connector("kafka consumer", &e))?;
    let marks = watermarks(brokers, topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in marks.keys() {
        tpl.add_partition_offset(topic, *p, KOffset::Beginning)
            .map_err(|e| to_connector("assign", &e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| to_connector("kafka assign", &e))?;
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    // Some brokers (Tansu) report a high watermark below the real end: past it, read on until
    // the partition stays quiet.
    let mut idle_since: Option<Instant> = None;
    loop {
        let pos = consumer
            .position()
            .map_err(|e| to_connector("kafka position", &e))?;
        let past_marks = marks.iter().all(|(p, (_, high))| {
            *high == 0
                || pos.elements().iter().any(|e| {
                    e.partition() == *p && matches!(e.offset(), KOffset::Offset(o) if o >= *high)
                })
        });
        if past_marks && idle_since.is_some_and(|t| t.elapsed() >= Duration::from_millis(500)) {
            return Ok(out);
        }
        if Instant::now() >= deadline {
            return Err(ConnectorError::transient(format!(
                "reading {topic}: not at the end after {within:?} ({} values so far)",
                out.len()
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m.map_err(|e| to_connector("kafka read", &e))?;
                out.push(m.payload().map(Bytes::copy_from_slice).unwrap_or_default());
                idle_since = None;
            }
            None => {
                idle_since.get_or_insert_with(Instant::now);
            }
        }
    }
}
