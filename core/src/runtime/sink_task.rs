//! One task per sink: buffers units, writes by the sink's buffering hints with retries, sends
//! rejected records to the dead-letter path, and reports its watermark to the tracker.
//!
//! Rejected records (`flush_one`). One cut of the buffer is written as follows:
//! 1. Write the cut (with exactly-once: with the checkpoint after it), retrying failures.
//! 2. The sink rejected some records and rolled the write back (`WriteReport::rolled_back`,
//!    what transactional sinks do): nothing of it is durable and no checkpoint covers it. The
//!    rejected records go to the dead-letter path first — with `errors.tolerance = "none"` the
//!    job stops here having committed nothing, so a restart meets the same record and stops
//!    again instead of skipping it or writing the others twice. Then the rest of the cut is
//!    written again, with the same checkpoint, from step 1. Every round removes at least one
//!    record, so this ends; the last round may write no record and only the checkpoint.
//! 3. The sink rejected some records and kept the others (sinks that cannot undo a write): the
//!    rejected ones are dead-lettered after the write. A crash in between loses their
//!    dead-letter entries unless the source replays them (at-least-once does).
//!
//! Only then is the cut dropped from the buffer, so the watermark and the committed positions
//! never pass a record that is neither written nor dead-lettered.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;

use super::RuntimeError;
use super::buffer::{SinkBuffer, Unit};
use super::dead_letter::DeadLetters;
use super::retry::Backoff;
use super::tracker::AckTracker;
use crate::connector::WriteReport;
use crate::error::{ConnectorError, with_causes};
use crate::job::SinkPlan;
use crate::metrics::JobMetrics;
use crate::record::{Checkpoint, DeadRecord, Record};

pub(super) struct SinkTask {
    pub index: usize,
    pub plan: SinkPlan,
    /// With exactly-once: the checkpoint the sink had committed; records it covers are skipped.
    pub committed: Option<Checkpoint>,
    pub exactly_once: bool,
    /// With exactly-once: how often at most a checkpoint that moved without data (every unit
    /// since the last write was empty for this sink) is stored by an empty write.
    pub checkpoint_every: std::time::Duration,
    pub rx: mpsc::Receiver<Unit>,
    pub tracker: Arc<Mutex<AckTracker>>,
    pub metrics: Arc<JobMetrics>,
    pub dead_letters: DeadLetters,
}

pub(super) async fn run(mut task: SinkTask) -> Result<(), RuntimeError> {
    let result = pump(&mut task).await;
    let close = task.plan.sink.close().await.map_err(|e| {
        let message = format!("close: {}", e.message);
        RuntimeError::sink(task.plan.name.clone(), ConnectorError { message, ..e })
    });
    result.and(close)
}

async fn pump(task: &mut SinkTask) -> Result<(), RuntimeError> {
    let batch = task.plan.common.batch.clone();
    let max_bytes = batch.max_bytes.as_usize().max(1);
    let mut buffer = SinkBuffer::new();
    let mut checkpoint = task.committed.clone().unwrap_or_default();
    let skip = task.committed.clone().filter(|cp| !cp.is_empty());
    let mut oldest: Option<TokioInstant> = None;
    // With exactly-once, a sink that receives nothing for a while (a rare `when`, a range it
    // already holds) must still move its stored checkpoint over that range: resume starts at
    // the earliest sink checkpoint, so one idle sink would replay everything for all. When
    // empty units move `checkpoint` past what the sink stored, `idle_since` is when, and an
    // empty transactional write stores it at most once per `checkpoint_every` (and on drain).
    let mut idle_since: Option<TokioInstant> = None;
    let mut last_stored = TokioInstant::now();
    let mut open = true;
    while open || !buffer.is_empty() {
        let deadline = oldest.map(|t| t + batch.max_wait.0);
        let store_at = idle_since.map(|_| last_stored + task.checkpoint_every);
        // Never sooner than `WAKE_FLOOR` after the last write: a sink whose wake-up instant has
        // passed (its flush failed to move it) must not spin the task.
        let wake_at = buffer
            .is_empty()
            .then(|| task.plan.sink.wake_at())
            .flatten()
            .map(|t| TokioInstant::from_std(t).max(last_stored + WAKE_FLOOR));
        tokio::select! {
            unit = task.rx.recv(), if open => match unit {
                Some(mut unit) => {
                    if let Some(skip) = &skip {
                        let before = unit.records.len();
                        unit.records.retain(|r| !skip.covers(&r.position));
                        let skipped = (before - unit.records.len()) as u64;
                        JobMetrics::add(&task.metrics.sinks[task.index].skipped, skipped);
                    }
                    if task.exactly_once && buffer.is_empty() && unit.records.is_empty() {
                        // Everything before this unit is written, and it brings nothing: the
                        // sink's checkpoint covers its whole batch.
                        let before = checkpoint.clone();
                        checkpoint.merge(&unit.delta);
                        if checkpoint != before && idle_since.is_none() {
                            idle_since = Some(TokioInstant::now());
                        }
                    }
                    if buffer.is_empty() && !unit.records.is_empty() {
                        oldest = Some(TokioInstant::now());
                    }
                    buffer.push(unit);
                    while buffer.len() >= batch.max_records || buffer.bytes() >= max_bytes {
                        flush_one(task, &mut buffer, &mut checkpoint, max_bytes).await?;
                        (idle_since, last_stored) = (None, TokioInstant::now());
                    }
                }
                None => open = false,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {
                while !buffer.is_empty() {
                    flush_one(task, &mut buffer, &mut checkpoint, max_bytes).await?;
                    (idle_since, last_stored) = (None, TokioInstant::now());
                }
            }
            _ = sleep_until(store_at), if store_at.is_some() && buffer.is_empty() => {
                store_checkpoint(task, &checkpoint).await?;
                (idle_since, last_stored) = (None, TokioInstant::now());
            }
            _ = sleep_until(wake_at), if wake_at.is_some() => {
                wake(task, &checkpoint).await?;
                (idle_since, last_stored) = (None, TokioInstant::now());
            }
        }
        if !open {
            while !buffer.is_empty() {
                flush_one(task, &mut buffer, &mut checkpoint, max_bytes).await?;
                (idle_since, last_stored) = (None, TokioInstant::now());
            }
            if idle_since.take().is_some() {
                store_checkpoint(task, &checkpoint).await?;
            }
        }
        if buffer.is_empty() {
            oldest = None;
        }
        if let Some(done) = buffer.done() {
            task.tracker.lock().ack(task.index, done);
        }
    }
    Ok(())
}

/// Store a checkpoint that moved without data: an empty transactional write.
async fn store_checkpoint(
    task: &mut SinkTask,
    checkpoint: &Checkpoint,
) -> Result<(), RuntimeError> {
    empty_write(task, Some(checkpoint)).await?;
    tracing::debug!(sink = %task.plan.name, checkpoint = %checkpoint, "Checkpoint moved over records this sink did not get.");
    Ok(())
}

/// The shortest time between two writes a sink's [`wake_at`](crate::Sink::wake_at) can cause.
const WAKE_FLOOR: std::time::Duration = std::time::Duration::from_millis(10);

/// The empty write a sink asked for with `wake_at` (with the checkpoint, under exactly-once,
/// which also stores a checkpoint that moved without data).
async fn wake(task: &mut SinkTask, checkpoint: &Checkpoint) -> Result<(), RuntimeError> {
    let checkpoint = task.exactly_once.then_some(checkpoint);
    empty_write(task, checkpoint).await
}

async fn empty_write(
    task: &mut SinkTask,
    checkpoint: Option<&Checkpoint>,
) -> Result<(), RuntimeError> {
    let written = write_with_retry(task, &[], None, checkpoint).await?;
    debug_assert!(
        written.rejected.is_empty() && written.again.is_none(),
        "an empty write rejects nothing"
    );
    Ok(())
}

async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Write the next cut of the buffer (with retries), dead-letter what the sink rejects, and drop
/// it from the buffer (see the module docs for the order).
async fn flush_one(
    task: &mut SinkTask,
    buffer: &mut SinkBuffer,
    checkpoint: &mut Checkpoint,
    max_bytes: usize,
) -> Result<(), RuntimeError> {
    let cut = buffer.cut(task.plan.common.batch.max_records, max_bytes);
    let next_cp = task
        .exactly_once
        .then(|| buffer.checkpoint_after(checkpoint, cut.len));
    let records = &buffer.records()[..cut.len];
    let mut rejected_count = 0;
    // Indices (into `records`) of this round's write; `None` is all of them.
    let mut todo: Option<Vec<usize>> = None;
    loop {
        let written = match &todo {
            Some(idx) if idx.is_empty() && next_cp.is_none() => break,
            _ => write_with_retry(task, records, todo.as_deref(), next_cp.as_ref()).await?,
        };
        rejected_count += written.rejected.len();
        let dead = written
            .rejected
            .into_iter()
            .map(|(i, reason)| DeadRecord {
                record: records[i].clone(),
                stage: format!("sink:{}", task.plan.name),
                reason,
            })
            .collect();
        task.dead_letters.handle(dead, &task.metrics).await?;
        match written.again {
            Some(rest) => todo = Some(rest),
            None => break,
        }
    }
    let m = &task.metrics.sinks[task.index];
    JobMetrics::add(&m.records, (cut.len - rejected_count) as u64);
    JobMetrics::add(&m.bytes, cut.bytes as u64);
    if let Some(cp) = next_cp {
        *checkpoint = cp;
    }
    buffer.consume(&cut);
    Ok(())
}

/// What became of one round of a cut.
struct Written {
    /// Records rejected for good (indices into the cut) with the sink's reasons.
    rejected: Vec<(usize, String)>,
    /// The sink rolled the write back: these records (the round's records less the rejected
    /// ones) are still to be written, after the rejected ones are dead-lettered.
    again: Option<Vec<usize>>,
}

/// Write `records` (or the subset `only`), retrying retryable failures (whole-call or
/// per-record) with backoff.
async fn write_with_retry(
    task: &mut SinkTask,
    records: &[Record],
    only: Option<&[usize]>,
    checkpoint: Option<&Checkpoint>,
) -> Result<Written, RuntimeError> {
    let mut backoff = Backoff::new(&task.plan.common.retry);
    let mut rejected = Vec::new();
    // Indices (into `records`) still to write; `None` is everything.
    let mut pending: Option<Vec<usize>> = only.map(<[usize]>::to_vec);
    let m = &task.metrics.sinks[task.index];
    loop {
        let subset: Vec<Record>;
        let slice: &[Record] = match &pending {
            None => records,
            Some(idx) => {
                subset = idx.iter().map(|&i| records[i].clone()).collect();
                &subset
            }
        };
        let started = Instant::now();
        let writing = m.writing();
        let outcome = task.plan.sink.write(slice, checkpoint).await;
        drop(writing);
        let map = |i: usize| pending.as_ref().map_or(i, |idx| idx[i]);
        match outcome {
            Ok(report) => {
                JobMetrics::add(&m.writes, 1);
                let elapsed = started.elapsed();
                JobMetrics::add(&m.write_micros, elapsed.as_micros() as u64);
                m.write_latency.observe(elapsed);
                check_report(&task.plan.name, &report, slice.len())?;
                rejected.extend(report.rejected.iter().map(|(i, r)| (map(*i), r.clone())));
                if report.rolled_back {
                    // Nothing of this call is durable: everything it held but the rejected
                    // records is to be written again.
                    let mut out = vec![false; slice.len()];
                    for (i, _) in &report.rejected {
                        out[*i] = true;
                    }
                    let again = (0..slice.len()).filter(|&i| !out[i]).map(map).collect();
                    return Ok(Written {
                        rejected,
                        again: Some(again),
                    });
                }
                if report.retry.is_empty() {
                    return Ok(Written {
                        rejected,
                        again: None,
                    });
                }
                if checkpoint.is_some() {
                    return Err(RuntimeError::sink(
                        task.plan.name.clone(),
                        ConnectorError::internal("a transactional write asked for a partial retry"),
                    ));
                }
                let retry: Vec<usize> = report.retry.into_iter().map(map).collect();
                let Some(delay) = backoff.next_delay() else {
                    return Err(RuntimeError::sink(
                        task.plan.name.clone(),
                        ConnectorError::transient(format!(
                            "{} record(s) still failing after retries",
                            retry.len()
                        )),
                    ));
                };
                tracing::warn!(sink = %task.plan.name, records = retry.len(), "Partial write failure; retrying those records.");
                pending = Some(retry);
                tokio::time::sleep(delay).await;
            }
            Err(e) => {
                JobMetrics::add(&m.errors, 1);
                *task.metrics.last_error.lock() =
                    Some(format!("sink {}: {}", task.plan.name, with_causes(&e)));
                let delay = if e.retryable {
                    backoff.next_delay()
                } else {
                    None
                };
                match delay {
                    Some(delay) => {
                        tracing::warn!(error = %with_causes(&e), sink = %task.plan.name, attempt = backoff.attempts(), "Sink write failed; retrying.");
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        let error = if e.retryable {
                            let message = format!(
                                "{} (gave up after {} attempts)",
                                e.message,
                                backoff.attempts() + 1
                            );
                            ConnectorError { message, ..e }
                        } else {
                            e
                        };
                        return Err(RuntimeError::sink(task.plan.name.clone(), error));
                    }
                }
            }
        }
    }
}

/// A report must name records of the write, each at most once, and a rollback must reject
/// something (or the rounds of `flush_one` would never end): anything else is a connector bug,
/// reported as the sink's failure rather than a panic.
fn check_report(sink: &str, report: &WriteReport, len: usize) -> Result<(), RuntimeError> {
    let bad = |message: String| RuntimeError::sink(sink, ConnectorError::internal(message));
    let mut seen = vec![false; len];
    let indices = report
        .rejected
        .iter()
        .map(|(i, _)| *i)
        .chain(report.retry.iter().copied());
    for i in indices {
        match seen.get_mut(i) {
            None => {
                return Err(bad(format!(
                    "the sink reported record {i} of a write of {len} record(s)"
                )));
            }
            Some(true) => {
                return Err(bad(format!(
                    "the sink reported record {i} twice in one write"
                )));
            }
            Some(s) => *s = true,
        }
    }
    if report.rolled_back && report.rejected.is_empty() {
        return Err(bad(
            "the sink rolled a write back without rejecting any record".into(),
        ));
    }
    Ok(())
}
