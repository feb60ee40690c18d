//! The dead-letter path: records that failed to decode, were failed by a transform, or were
//! rejected by a sink. With `tolerance = "none"` the first one stops the job; with `"all"`
//! each is written — durably, before its position can be committed — to the dead-letter sink as
//! a JSON envelope with the original record, the failing stage, the reason, the source position
//! and the time.
//!
//! Replays must not write a dead letter twice. The router writes a batch's dead letters before
//! it hands the batch to any sink, so a position covered by a sink's committed checkpoint had
//! its dead letters written already. With exactly-once and a transactional dead-letter sink, its
//! own checkpoint (the batches whose dead letters it holds) is stored with them, which closes
//! the gap between the dead-letter write and the sinks' next commit.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::json;
use tokio::sync::Mutex;

use super::RuntimeError;
use super::retry::Backoff;
use crate::connector::Sink;
use crate::error::ConnectorError;
use crate::job::RetryConfig;
use crate::metrics::JobMetrics;
use crate::record::{Checkpoint, DeadRecord, Position, Record};

/// Where bad records go.
#[derive(Clone)]
pub enum DeadLetters {
    /// Stop the job on the first bad record.
    Stop,
    /// Write them to this sink.
    Sink(Arc<DeadLetterSink>),
}

/// A sink used for dead letters, with its retry policy.
pub struct DeadLetterSink {
    sink: Mutex<Inner>,
    retry: RetryConfig,
    name: String,
    /// Positions whose dead letters were written by an earlier run (see the module docs).
    written: Checkpoint,
}

struct Inner {
    sink: Box<dyn Sink>,
    /// With a transactional dead-letter sink: its checkpoint, stored with every write.
    checkpoint: Option<Checkpoint>,
}

impl DeadLetterSink {
    /// Wrap an opened sink. `checkpoint` is its committed checkpoint when it is written
    /// transactionally (exactly-once), `None` otherwise; `written` covers the positions whose
    /// dead letters an earlier run wrote.
    pub fn new(
        sink: Box<dyn Sink>,
        retry: RetryConfig,
        name: String,
        checkpoint: Option<Checkpoint>,
        written: Checkpoint,
    ) -> Self {
        Self {
            sink: Mutex::new(Inner { sink, checkpoint }),
            retry,
            name,
            written,
        }
    }

    /// Close the sink.
    pub async fn close(&self) -> Result<(), RuntimeError> {
        self.sink
            .lock()
            .await
            .sink
            .close()
            .await
            .map_err(|e| RuntimeError::sink(self.name.clone(), e))
    }
}

impl DeadLetters {
    /// The router's dead letters of one source batch (`delta`: its furthest positions). Those
    /// an earlier run wrote are skipped.
    pub async fn handle_batch(
        &self,
        mut dead: Vec<DeadRecord>,
        delta: &Checkpoint,
        metrics: &JobMetrics,
    ) -> Result<(), RuntimeError> {
        if let DeadLetters::Sink(dls) = self
            && !dls.written.is_empty()
        {
            dead.retain(|d| !dls.written.covers(&d.record.position));
        }
        self.write(dead, Some(delta), metrics).await
    }

    /// Handle bad records: returns once they are durable in the dead-letter sink, or an error
    /// that stops the job.
    pub async fn handle(
        &self,
        dead: Vec<DeadRecord>,
        metrics: &JobMetrics,
    ) -> Result<(), RuntimeError> {
        self.write(dead, None, metrics).await
    }

    async fn write(
        &self,
        dead: Vec<DeadRecord>,
        delta: Option<&Checkpoint>,
        metrics: &JobMetrics,
    ) -> Result<(), RuntimeError> {
        if dead.is_empty() {
            return Ok(());
        }
        match self {
            DeadLetters::Stop => {
                let first = &dead[0];
                Err(RuntimeError::BadRecord {
                    stage: first.stage.clone(),
                    position: first.record.position.to_string(),
                    reason: first.reason.clone(),
                })
            }
            DeadLetters::Sink(dls) => {
                let records: Vec<Record> = dead.iter().map(envelope).collect();
                let mut inner = dls.sink.lock().await;
                let Inner { sink, checkpoint } = &mut *inner;
                // The batch's dead letters are all in this write: the checkpoint covers it.
                let next = checkpoint.as_ref().map(|cp| {
                    let mut next = cp.clone();
                    if let Some(delta) = delta {
                        next.merge(delta);
                    }
                    next
                });
                let mut backoff = Backoff::new(&dls.retry);
                loop {
                    match sink.write(&records, next.as_ref()).await {
                        Ok(report) if report.rejected.is_empty() && report.retry.is_empty() => {
                            if next.is_some() {
                                *checkpoint = next;
                            }
                            break;
                        }
                        Ok(report) => {
                            let message = format!(
                                "dead-letter sink refused {} record(s): {}",
                                report.rejected.len() + report.retry.len(),
                                report
                                    .rejected
                                    .first()
                                    .map(|r| r.1.as_str())
                                    .unwrap_or("retry requested")
                            );
                            return Err(RuntimeError::sink(
                                dls.name.clone(),
                                ConnectorError::data(message),
                            ));
                        }
                        Err(e) if e.retryable => match backoff.next_delay() {
                            Some(d) => {
                                tracing::warn!(error = %e, sink = %dls.name, "Dead-letter write failed; retrying.");
                                tokio::time::sleep(d).await;
                            }
                            None => {
                                return Err(RuntimeError::sink(dls.name.clone(), e));
                            }
                        },
                        Err(e) => {
                            return Err(RuntimeError::sink(dls.name.clone(), e));
                        }
                    }
                }
                JobMetrics::add(&metrics.dead_lettered, dead.len() as u64);
                for d in &dead {
                    tracing::debug!(stage = %d.stage, position = %d.record.position, reason = %d.reason, "Record dead-lettered.");
                }
                Ok(())
            }
        }
    }
}

/// The JSON envelope written for one dead record. The value is kept as a string when it is
/// UTF-8, and base64 (`value_base64`) otherwise, so nothing is lost.
pub fn envelope(dead: &DeadRecord) -> Record {
    let r = &dead.record;
    let mut original = serde_json::Map::new();
    match std::str::from_utf8(&r.value) {
        Ok(s) => original.insert("value".into(), json!(s)),
        Err(_) => original.insert(
            "value_base64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(&r.value)),
        ),
    };
    if let Some(k) = &r.key {
        original.insert("key".into(), json!(String::from_utf8_lossy(k)));
    }
    if !r.headers.is_empty() {
        let headers: serde_json::Map<String, serde_json::Value> = r
            .headers
            .iter()
            .map(|h| (h.name.clone(), json!(String::from_utf8_lossy(&h.value))))
            .collect();
        original.insert("headers".into(), serde_json::Value::Object(headers));
    }
    if let Some(ts) = r.timestamp {
        original.insert("timestamp".into(), json!(ts));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let value = json!({
        "record": original,
        "stage": dead.stage,
        "reason": dead.reason,
        "position": { "partition": &*r.position.partition, "offset": r.position.offset.to_string() },
        "time_ms": now,
    });
    Record {
        key: r.key.clone(),
        value: serde_json::to_vec(&value).unwrap_or_default().into(),
        headers: Vec::new(),
        timestamp: Some(now),
        position: Position {
            partition: r.position.partition.clone(),
            offset: r.position.offset.clone(),
        },
    }
}
