//! Rebalances and statistics of the Kafka source consumer: the librdkafka context.
//!
//! librdkafka runs the rebalance callback inside `poll`, that is inside `Source::next_batch`,
//! on the same task that calls `Source::commit`; the callback cannot wait for the pipeline to
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset as KOffset, TopicPartitionList};

use crate::config::StartFrom;

/// A topic and partition.
pub(crate) type Tp = (String, i32);

/// What the rebalance callback and the source task share.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Partitions this member owns now.
    pub(crate) assigned: HashSet<Tp>,
    /// Bumped on every revocation: the source drops unreturned records of revoked partitions.
    pub(crate) generation: u64,
    /// Next offset to read per partition when it is (re)assigned: exactly-once resume points and
    /// everything made durable since. Empty with at-least-once (the group's offsets rule).
    pub(crate) seek: HashMap<Tp, i64>,
    /// The next offset of every partition the runtime said is durable (what we committed).
    pub(crate) durable: HashMap<Tp, i64>,
    /// Lag per partition (`topic/partition` → records behind the high watermark).
    pub(crate) lag: BTreeMap<String, i64>,
}

/// A cheap handle to read a running source's lag per partition.
#[derive(Clone, Debug)]
pub struct LagHandle(pub(crate) Arc<Mutex<State>>);

impl LagHandle {
    /// `topic/partition` → records between the last one handed to the pipeline and the high
    /// watermark, as of the last statistics refresh (`lag_interval`).
    pub fn lag(&self) -> BTreeMap<String, i64> {
        self.0.lock().lag.clone()
    }
}

/// The librdkafka context of the source consumer: rebalances and statistics.
pub(crate) struct SourceContext {
    /// The MSK IAM token signer, with `sasl.mechanism = "aws-msk-iam"`.
    pub(crate) auth: crate::msk::KafkaAuth,
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) start_from: StartFrom,
    pub(crate) start_timestamp_ms: Option<i64>,
}

impl ClientContext for SourceContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        self.auth.oauth_token()
    }

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
