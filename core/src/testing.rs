//! Test doubles for connector and runtime tests (cargo feature `testing`): an in-memory source
//! and sink, a `mem` source type that job files can name, a pacing transform, and a
//! deterministic generator of records with unique keys.
//!
//! A connector crate uses them from its tests with
//! `sluice-core = { workspace = true, features = ["testing"] }` under `[dev-dependencies]`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::connector::{BuildContext, Sink, Source, WriteReport};
use crate::error::ConnectorError;
use crate::record::{Batch, Checkpoint, DeadRecord, Offset, Partition, Position, Record};
use crate::registry::SourceConnector;
use crate::transform::{Outcome, Transform, TransformError};

/// The unique key of generated record `seq`: `k` and 10 digits, so keys sort like their numbers.
pub fn test_key(seq: u64) -> String {
    format!("k{seq:010}")
}

/// The JSON value of generated record `seq`: `{"key":"k0000000042","seq":42,"note":"..."}`.
/// `key` is unique per `seq`; `note` gives the value some body.
pub fn test_value(seq: u64) -> String {
    format!(
        "{{\"key\":\"{}\",\"seq\":{seq},\"note\":\"record {seq} of a conformance run\"}}",
        test_key(seq)
    )
}

/// Generated record `seq` at `partition`/`seq`: key [`test_key`], value [`test_value`].
pub fn test_record(partition: &Partition, seq: u64) -> Record {
    let mut r = Record::new(
        test_value(seq),
        Position::int(partition.clone(), seq as i64),
    );
    r.key = Some(Bytes::from(test_key(seq)));
    r
}

/// The `key` field of a JSON value made by [`test_value`] (or of a row read back as JSON).
pub fn key_of(value: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(value).ok()?;
    doc.get("key")?.as_str().map(str::to_string)
}

/// What a [`MemSource`] puts in its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Values {
    /// `{"i":N}`, no key.
    #[default]
    Counter,
    /// [`test_record`]: a unique key and `{"key":...,"seq":N,...}`.
    Keyed,
}

/// Yields records `0..count` in batches of `batch`, at positions (`partition`, N). Resumes after
/// the checkpoint it is opened with, unless `replay` is set (then it starts at 0 every time,
/// like a source that redelivers what a sink already holds).
#[derive(Clone, Debug)]
pub struct MemSource {
    /// The next record to yield.
    pub next: i64,
    /// Records in all.
    pub count: i64,
    /// Records per batch.
    pub batch: i64,
    /// Every `n`-th record (`n-1`, `2n-1`, ...) comes as a dead record (failed to decode).
    pub bad_every: Option<i64>,
    /// The partition name of every position.
    pub partition: Partition,
    /// What the records hold.
    pub values: Values,
    /// Ignore the checkpoint given to `open` (redeliver from the start).
    pub replay: bool,
}

impl MemSource {
    /// `count` records `{"i":N}` in batches of 7 at ("mem", N).
    pub fn new(count: i64) -> Self {
        Self {
            next: 0,
            count,
            batch: 7,
            bad_every: None,
            partition: Arc::from("mem"),
            values: Values::Counter,
            replay: false,
        }
    }

    /// `count` keyed records ([`test_record`]) in batches of `batch`.
    pub fn keyed(count: i64, batch: i64) -> Self {
        Self {
            batch,
            values: Values::Keyed,
            ..Self::new(count)
        }
    }

    fn record(&self, i: i64) -> Record {
        match self.values {
            Values::Counter => Record::new(
                format!("{{\"i\":{i}}}"),
                Position::int(self.partition.clone(), i),
            ),
            Values::Keyed => test_record(&self.partition, i as u64),
        }
    }
}

#[async_trait]
impl Source for MemSource {
    // In memory: nothing to reach.
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        if !self.replay
            && let Some(Offset::Int(done)) = resume.as_ref().and_then(|c| c.get(&self.partition))
        {
            self.next = done + 1;
        }
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        if self.next >= self.count {
            return Ok(None);
        }
        let end = (self.next + self.batch.max(1)).min(self.count);
        let mut batch = Batch::default();
        for i in self.next..end {
            let r = self.record(i);
            if self.bad_every.is_some_and(|n| i % n == n - 1) {
                batch.dead.push(DeadRecord {
                    record: r,
                    stage: "source".into(),
                    reason: "bad".into(),
                });
            } else {
                batch.records.push(r);
            }
        }
        // No await above: the batch is built and `next` moved in one step (cancel-safe).
        self.next = end;
        Ok(Some(batch))
    }

    fn expected_total(&self) -> Option<u64> {
        u64::try_from(self.count).ok()
    }
}

/// `type = "mem"`: a [`MemSource`] of keyed records, for job files in tests.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemSourceConfig {
    /// Records in all (`seq` 0 to count - 1).
    pub count: u64,
    /// Records per batch.
    #[serde(default = "default_mem_batch")]
    pub batch: u64,
    /// Partition name of the positions.
    #[serde(default = "default_mem_partition")]
    pub partition: String,
    /// Start at record 0 whatever checkpoint the runtime resumes from (a redelivering source).
    #[serde(default)]
    pub replay: bool,
}

fn default_mem_batch() -> u64 {
    20
}

fn default_mem_partition() -> String {
    "mem".into()
}

/// Registers `type = "mem"` ([`MemSourceConfig`]).
pub struct MemSourceConnector;

impl SourceConnector for MemSourceConnector {
    const TYPE: &'static str = "mem";
    const DOC: &'static str = "In-memory keyed test records (tests only).";
    type Config = MemSourceConfig;

    fn build(
        config: MemSourceConfig,
        _ctx: &BuildContext,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let count =
            i64::try_from(config.count).map_err(|_| ConnectorError::config("count: too large"))?;
        let mut source = MemSource::keyed(count, i64::try_from(config.batch).unwrap_or(i64::MAX));
        source.partition = Arc::from(config.partition);
        source.replay = config.replay;
        Ok(Box::new(source))
    }
}

/// A scripted in-memory sink: each write pops the next scripted result (default: success), and
/// what it keeps is shared between its clones, so a test holds a clone to look inside.
#[derive(Clone, Default)]
pub struct MemSink {
    /// Records durably "written" (not rejected, not retried, not rolled back).
    pub written: Arc<Mutex<Vec<Record>>>,
    /// Results of the next writes, in order.
    pub script: Arc<Mutex<VecDeque<Result<WriteReport, ConnectorError>>>>,
    /// Number of write calls.
    pub calls: Arc<Mutex<usize>>,
    /// What `committed_checkpoint` answers.
    pub committed: Option<Checkpoint>,
    /// Every checkpoint a successful write stored.
    pub checkpoints: Arc<Mutex<Vec<Checkpoint>>>,
    /// Every write call as "tag: offsets [rolled back]" (share one log between sinks to see
    /// the order of their writes).
    pub log: Arc<Mutex<Vec<String>>>,
    /// This sink's name in `log`.
    pub tag: &'static str,
}

#[async_trait]
impl Sink for MemSink {
    // In memory: nothing to reach.
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    fn transactional(&self) -> bool {
        true
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>, ConnectorError> {
        Ok(self.committed.clone())
    }

    async fn write(
        &mut self,
        records: &[Record],
        cp: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        *self.calls.lock() += 1;
        let next = self
            .script
            .lock()
            .pop_front()
            .unwrap_or_else(|| Ok(WriteReport::ok()));
        let report = next?;
        let offsets: Vec<String> = records
            .iter()
            .map(|r| r.position.offset.to_string())
            .collect();
        self.log.lock().push(format!(
            "{}: {}{}",
            self.tag,
            offsets.join(","),
            if report.rolled_back {
                " rolled back"
            } else {
                ""
            }
        ));
        if report.rolled_back {
            return Ok(report);
        }
        let mut written = self.written.lock();
        for (i, r) in records.iter().enumerate() {
            if !report.rejected.iter().any(|(j, _)| *j == i) && !report.retry.contains(&i) {
                written.push(r.clone());
            }
        }
        if let Some(cp) = cp {
            self.checkpoints.lock().push(cp.clone());
        }
        Ok(report)
    }
}

/// A pass-through transform that takes `per_record` of wall-clock time per record: it slows a
/// pipeline down so a crash test can kill it in the middle of its work.
pub struct Pace {
    /// Time spent per record.
    pub per_record: Duration,
}

impl Transform for Pace {
    fn name(&self) -> &str {
        "pace"
    }

    fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
        // The transform stage runs on its own thread: sleeping here blocks no executor.
        std::thread::sleep(self.per_record * u32::try_from(records.len()).unwrap_or(u32::MAX));
        Ok(records
            .iter()
            .map(|r| Outcome::Ok(vec![r.clone()]))
            .collect())
    }
}
