//! Exactly-once for the Kafka sink: one transaction per write, with the sink's checkpoint in the
//! same transaction.
//!
//! Every transaction `n` (1, 2, ...) of `transactional.id` T
//! - produces the records,
//! - produces a progress record `{seq: n, checkpoint}` keyed by T to the progress topic
//!   (compacted, one partition),
//! - commits, through `send_offsets_to_transaction`, offset `n` of partition 0 of the progress
//!   topic for the group `sluice-progress.T`, and, when `source_group` is set, the source
//!   consumer's offsets (checkpoint + 1) for that group,
//! - commits.
//!
//! Transactional offset commits become visible only when the transaction commits, so the
//! progress group's offset is the number of the last committed transaction. On start the sink
//! reads that number and picks the progress record with that `seq`: records of aborted
//! transactions are never believed, even on a broker whose `read_committed` shows them.
//! `init_transactions` fences any older producer with the same id (a zombie of a crashed run)
//! and aborts its open transaction.
//!
//! The progress record also names the sink's destination (cluster and topic). A sink whose
//! `transactional.id` holds progress for another destination is refused at open: with the
//! default id `sluice-<job>-<sink>`, a new unnamed sink added before an existing one would
//! otherwise take over that one's checkpoint and skip its topic's history. (A renamed job or
//! sink gets a new id, hence no progress, and writes everything again: that is not detected —
//! many producers share a topic, so another id writing there proves nothing.)

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::msk::KafkaAuth;
use rdkafka::{ClientConfig, Offset as KOffset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sluice_core::{Checkpoint, ConnectorError, Offset};

use crate::error::to_connector;
use crate::groups::Groups;
use crate::rebalance::parse_partition;

/// What the progress topic holds for one transaction.
#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    seq: i64,
    checkpoint: Checkpoint,
    /// `KafkaSinkConfig::destination` of the writer; absent in records of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
}

/// Settings of the transactional mode.
pub(crate) struct TxnSettings {
    pub id: String,
    pub progress_topic: String,
    pub source_group: Option<String>,
    pub brokers: String,
    pub timeout: Duration,
    pub destination: String,
    /// The consumer groups of the sink's job.
    pub groups: Arc<Groups>,
    /// The clients' context (the MSK IAM token signer).
    pub auth: KafkaAuth,
}

/// The transactional state of an open sink.
pub(crate) struct Txn {
    s: Arc<TxnSettings>,
    progress_meta: Arc<ConsumerGroupMetadata>,
    /// Fallback metadata for `source_group` when the job has no live source consumer of it.
    source_meta: Option<Arc<ConsumerGroupMetadata>>,
    /// Kept open for the sink's lifetime (its group metadata is used in every commit).
    _helper: Arc<BaseConsumer<KafkaAuth>>,
    /// Number of the last committed transaction (0: none).
    seq: i64,
    committed: Option<Checkpoint>,
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, ConnectorError> + Send + 'static,
) -> Result<T, ConnectorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConnectorError::internal(format!("{what}: {e}")))?
}

impl Txn {
    /// Create the progress topic if needed, fence older producers, and read the last committed
    /// transaction's checkpoint.
    pub async fn open(
        s: TxnSettings,
        base: &ClientConfig,
        producer: &FutureProducer<KafkaAuth>,
    ) -> Result<Txn, ConnectorError> {
        let s = Arc::new(s);
        ensure_progress_topic(base, &s.auth, &s.progress_topic).await?;
        let p = producer.clone();
        let timeout = s.timeout;
        blocking("init_transactions", move || {
            p.init_transactions(timeout)
                .map_err(|e| to_connector("kafka init_transactions", &e))
        })
        .await?;

        let mut hc = base.clone();
        hc.set("group.id", format!("sluice-progress.{}", s.id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest");
        let helper: BaseConsumer<KafkaAuth> = hc
            .create_with_context(s.auth.clone())
            .map_err(|e| to_connector("kafka progress consumer", &e))?;
        let progress_meta = helper
            .group_metadata()
            .ok_or_else(|| ConnectorError::internal("no group metadata for the progress group"))?;
        let source_meta = match &s.source_group {
            None => None,
            Some(g) => {
                s.groups.claim_offsets(&s.brokers, g);
                let mut sc = base.clone();
                sc.set("group.id", g).set("enable.auto.commit", "false");
                let c: BaseConsumer<KafkaAuth> = sc
                    .create_with_context(s.auth.clone())
                    .map_err(|e| to_connector("kafka source-group consumer", &e))?;
                c.group_metadata().map(Arc::new)
            }
        };
        let helper = Arc::new(helper);
        let (seq, committed) = {
            let (h, s2) = (helper.clone(), s.clone());
            blocking("read progress", move || read_progress(&h, &s2)).await?
        };
        if seq > 0 {
            tracing::info!(transactional_id = %s.id, seq, checkpoint = %committed.clone().unwrap_or_default(), "Kafka sink resumes after its last committed transaction.");
        }
        Ok(Txn {
            s,
            progress_meta: Arc::new(progress_meta),
            source_meta,
            _helper: helper,
            seq,
            committed,
        })
    }

    /// The checkpoint of the last committed transaction.
    pub fn committed(&self) -> Option<Checkpoint> {
        self.committed.clone()
    }

    /// Start a transaction.
    pub fn begin(&self, producer: &FutureProducer<KafkaAuth>) -> Result<(), ConnectorError> {
        producer
            .begin_transaction()
            .map_err(|e| to_connector("kafka begin_transaction", &e))
    }

    /// Abort the open transaction (best effort: a failed abort leaves a fatal state that the
    /// next `init_transactions` clears).
    pub async fn abort(&self, producer: &FutureProducer<KafkaAuth>) {
        let p = producer.clone();
        let timeout = self.s.timeout;
        let r = blocking("abort_transaction", move || {
            p.abort_transaction(timeout)
                .map_err(|e| to_connector("kafka abort_transaction", &e))
        })
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "Kafka abort_transaction failed.");
        }
    }

    /// Add the progress record and offsets to the open transaction and commit it.
    pub async fn commit(
        &mut self,
        producer: &FutureProducer<KafkaAuth>,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), ConnectorError> {
        let next = self.seq + 1;
        let cp = checkpoint.cloned().unwrap_or_default();
        let value = serde_json::to_vec(&Progress {
            seq: next,
            checkpoint: cp.clone(),
            destination: Some(self.s.destination.clone()),
        })
        .map_err(|e| ConnectorError::internal(format!("progress record: {e}")))?;
        let delivery = producer
            .send_result(
                FutureRecord::to(&self.s.progress_topic)
                    .partition(0)
                    .key(self.s.id.as_bytes())
                    .payload(&value),
            )
            .map_err(|(e, _)| to_connector("kafka progress record", &e))?;

        let mut progress = TopicPartitionList::new();
        progress
            .add_partition_offset(&self.s.progress_topic, 0, KOffset::Offset(next))
            .map_err(|e| to_connector("progress offset", &e))?;
        let source = match &self.s.source_group {
            None => None,
            Some(group) => {
                let mut tpl = TopicPartitionList::new();
                for (partition, offset) in &cp.offsets {
                    let (Some((t, p)), Offset::Int(o)) = (parse_partition(partition), offset)
                    else {
                        return Err(ConnectorError::config(format!(
                            "`source_group` is set but the checkpoint position {partition}@{offset} is not a Kafka topic/partition: unset `source_group` unless the source is Kafka on this cluster"
                        )));
                    };
                    tpl.add_partition_offset(&t, p, KOffset::Offset(o + 1))
                        .map_err(|e| to_connector("source offset", &e))?;
                }
                let live = self.s.groups.metadata(&self.s.brokers, group).map(Arc::new);
                live.or_else(|| self.source_meta.clone()).map(|m| (tpl, m))
            }
        };
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(to_connector("kafka progress record", &e)),
            Err(_) => {
                return Err(ConnectorError::transient(
                    "progress record delivery canceled",
                ));
            }
        }
        let p = producer.clone();
        let meta = self.progress_meta.clone();
        let timeout = self.s.timeout;
        blocking("commit_transaction", move || {
            let err = |e: KafkaError| to_connector("kafka send_offsets_to_transaction", &e);
            p.send_offsets_to_transaction(&progress, &meta, timeout)
                .map_err(err)?;
            if let Some((tpl, m)) = source
                && tpl.count() > 0
            {
                p.send_offsets_to_transaction(&tpl, &m, timeout)
                    .map_err(err)?;
            }
            let mut attempts = 0;
            loop {
                match p.commit_transaction(timeout) {
                    Ok(()) => return Ok(()),
                    Err(KafkaError::Transaction(e)) if e.is_retriable() && attempts < 3 => {
                        attempts += 1;
                        tracing::warn!(error = %e, "commit_transaction failed; retrying.");
                    }
                    Err(e) => return Err(to_connector("kafka commit_transaction", &e)),
                }
            }
        })
        .await?;
        self.seq = next;
        self.committed = Some(cp);
        Ok(())
    }
}

async fn ensure_progress_topic(
    base: &ClientConfig,
    auth: &KafkaAuth,
    topic: &str,
) -> Result<(), ConnectorError> {
    let admin: AdminClient<KafkaAuth> = base
        .create_with_context(auth.clone())
        .map_err(|e| to_connector("kafka admin client", &e))?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    // The request timeout bounds the wait on brokers that do not answer (librdkafka's default is
    // a minute of "running"); the operation timeout bounds the broker's own work.
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| to_connector("kafka create progress topic", &e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(ConnectorError::transient(format!(
                    "creating progress topic {t}: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// The last committed transaction number and its checkpoint.
fn read_progress(
    helper: &BaseConsumer<KafkaAuth>,
    s: &TxnSettings,
) -> Result<(i64, Option<Checkpoint>), ConnectorError> {
    let timeout = Duration::from_secs(10);
    let mut q = TopicPartitionList::new();
    q.add_partition(&s.progress_topic, 0);
    let committed = helper
        .committed_offsets(q, timeout)
        .map_err(|e| to_connector("kafka read progress offset", &e))?;
    let seq = match committed.elements().first().map(|e| e.offset()) {
        Some(KOffset::Offset(n)) if n > 0 => n,
        _ => return Ok((0, None)),
    };
    let (_, high) = helper
        .fetch_watermarks(&s.progress_topic, 0, timeout)
        .map_err(|e| to_connector("kafka progress watermarks", &e))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&s.progress_topic, 0, KOffset::Beginning)
        .map_err(|e| to_connector("progress assign", &e))?;
    helper
        .assign(&tpl)
        .map_err(|e| to_connector("kafka progress assign", &e))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut found = None;
    let mut idle_since: Option<std::time::Instant> = None;
    // Read up to the high watermark (transaction markers take offsets too: go by position).
    loop {
        let position = helper
            .position()
            .ok()
            .and_then(|p| p.elements().first().map(|e| e.offset()));
        // Past the high watermark and quiet (some brokers under-report the watermark).
        if matches!(position, Some(KOffset::Offset(o)) if o >= high)
            && idle_since.is_some_and(|t| t.elapsed() >= Duration::from_millis(300))
        {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(ConnectorError::transient(format!(
                "timed out reading progress topic `{}`",
                s.progress_topic
            )));
        }
        let Some(msg) = helper.poll(Duration::from_millis(100)) else {
            idle_since.get_or_insert_with(std::time::Instant::now);
            continue;
        };
        idle_since = None;
        let msg = msg.map_err(|e| to_connector("kafka read progress", &e))?;
        if msg.key() != Some(s.id.as_bytes()) {
            continue;
        }
        if let Some(p) = msg
            .payload()
            .and_then(|v| serde_json::from_slice::<Progress>(v).ok())
            && p.seq == seq
        {
            found = Some(p);
        }
    }
    let _ = helper.unassign();
    match found {
        Some(Progress {
            destination: Some(theirs),
            ..
        }) if theirs != s.destination => Err(ConnectorError::config(format!(
            "transactional.id `{}` holds the exactly-once progress of destination `{theirs}`, but this sink writes to `{}`. Its id comes from the job and sink names, and unnamed sinks are named by their order (kafka, kafka-2, ...): if sinks were added, removed or reordered, give each one its old name (`name = ...`); if this sink should start over, give it a new `transactional_id`",
            s.id, s.destination
        ))),
        Some(p) => Ok((seq, Some(p.checkpoint))),
        None => Err(ConnectorError::external(format!(
            "transaction {seq} of `{}` is committed but its progress record is not in topic `{}`; was the topic deleted?",
            s.id, s.progress_topic
        ))),
    }
}
