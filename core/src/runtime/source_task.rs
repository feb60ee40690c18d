//! The source task: reads batches, registers them with the tracker, pushes them downstream with
//! backpressure, and applies commits. After it stops reading (end of data, shutdown, failure) it
//! keeps applying commits until the committer is done, then closes the source.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::RuntimeError;
use super::retry::Backoff;
use super::tracker::AckTracker;
use crate::connector::Source;
use crate::job::RetryConfig;
use crate::metrics::JobMetrics;
use crate::record::{Batch, Checkpoint, Record};
use crate::tap::Stage;

/// A source batch with its id, as it travels to the transform stage.
pub(super) struct SourceBatch {
    pub id: u64,
    pub batch: Batch,
    pub delta: Arc<Checkpoint>,
}

pub(super) async fn run(
    mut source: Box<dyn Source>,
    tx: mpsc::Sender<SourceBatch>,
    mut commits: mpsc::UnboundedReceiver<Checkpoint>,
    tracker: Arc<Mutex<AckTracker>>,
    metrics: Arc<JobMetrics>,
    stop: CancellationToken,
) -> Result<(), RuntimeError> {
    let result = read_loop(&mut *source, &tx, &mut commits, &tracker, &metrics, &stop).await;
    drop(tx);
    if result.is_err() {
        stop.cancel();
    }
    // Keep committing what becomes durable while the rest of the pipeline drains.
    while let Some(cp) = commits.recv().await {
        let cp = latest(cp, &mut commits);
        commit(&mut *source, &cp).await;
    }
    if let Err(e) = source.close().await {
        tracing::warn!(error = %e, "Source close failed.");
    }
    result
}

async fn read_loop(
    source: &mut dyn Source,
    tx: &mpsc::Sender<SourceBatch>,
    commits: &mut mpsc::UnboundedReceiver<Checkpoint>,
    tracker: &Mutex<AckTracker>,
    metrics: &JobMetrics,
    stop: &CancellationToken,
) -> Result<(), RuntimeError> {
    let mut next_id = 0u64;
    let mut backoff: Option<Backoff> = None;
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            Some(cp) = commits.recv() => {
                let cp = latest(cp, commits);
                commit(source, &cp).await;
                continue;
            }
            read = source.next_batch() => read,
        };
        let batch = match read {
            Ok(Some(batch)) => {
                backoff = None;
                batch
            }
            Ok(None) => return Ok(()),
            Err(e) if e.retryable => {
                let b = backoff.get_or_insert_with(|| Backoff::new(&RetryConfig::default()));
                match b.next_delay() {
                    Some(d) => {
                        tracing::warn!(error = %e, "Source read failed; retrying.");
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    None => return Err(RuntimeError::Source(e)),
                }
            }
            Err(e) => return Err(RuntimeError::Source(e)),
        };
        if batch.is_empty() {
            continue;
        }
        next_id += 1;
        metrics.taps.observe(Stage::Source, &batch.records);
        let count = (batch.records.len() + batch.dead.len()) as u64;
        let delta = Arc::new(batch.checkpoint());
        // Wait for the in-flight byte budget (commits keep flowing meanwhile).
        let bytes = batch.records.iter().map(Record::size_hint).sum();
        let (budget, take) = tracker.lock().budget(bytes);
        let acquire = budget.acquire_many_owned(take);
        tokio::pin!(acquire);
        let held = loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                Some(cp) = commits.recv() => {
                    let cp = latest(cp, commits);
                    commit(source, &cp).await;
                }
                permit = &mut acquire => break permit.ok(),
            }
        };
        // Register before sending: a sink may acknowledge as soon as it has the batch.
        tracker.lock().register(next_id, (*delta).clone(), held);
        let mut item = Some(SourceBatch {
            id: next_id,
            batch,
            delta,
        });
        while item.is_some() {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Ok(()),
                Some(cp) = commits.recv() => {
                    let cp = latest(cp, commits);
                    commit(source, &cp).await;
                }
                permit = tx.reserve() => match permit {
                    Ok(permit) => {
                        if let Some(b) = item.take() {
                            permit.send(b);
                        }
                    }
                    // Downstream is gone: a stage failed (it reports why) or died.
                    Err(_) => return Err(RuntimeError::Internal("the pipeline stopped taking records".into())),
                },
            }
        }
        JobMetrics::add(&metrics.records_in, count);
        JobMetrics::add(&metrics.batches_in, 1);
        if let Some(lag) = source.lag() {
            *metrics.source_lag.lock() = lag;
        }
    }
}

fn latest(mut cp: Checkpoint, commits: &mut mpsc::UnboundedReceiver<Checkpoint>) -> Checkpoint {
    while let Ok(newer) = commits.try_recv() {
        cp = newer;
    }
    cp
}

async fn commit(source: &mut dyn Source, cp: &Checkpoint) {
    // A failed source commit is not fatal: the next one covers it, and on restart the source
    // replays from the older position (at-least-once).
    if let Err(e) = source.commit(cp).await {
        tracing::warn!(error = %e, "Source commit failed; a later commit will cover it.");
    }
}
