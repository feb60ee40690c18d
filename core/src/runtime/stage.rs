//! The transform stage and the router.
//!
//! Transforms are CPU-bound and synchronous, so the chain runs on its own thread. The router
//! then makes dead letters durable (or stops the job) and fans each batch out to every sink.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::RuntimeError;
use super::buffer::Unit;
use super::dead_letter::DeadLetters;
use super::source_task::SourceBatch;
use crate::chain::{Chain, Fate};
use crate::job::RouteCondition;
use crate::metrics::JobMetrics;
use crate::record::{Checkpoint, DeadRecord, Record};
use crate::transform::Transform;

/// A batch after the transform chain.
pub(super) struct Staged {
    id: u64,
    records: Vec<Record>,
    dead: Vec<DeadRecord>,
    delta: Arc<Checkpoint>,
}

/// What the router receives: a staged batch, or why the transform stage died.
pub(super) type StageResult = Result<Staged, RuntimeError>;

/// Start the transform thread (or a pass-through when there are no transforms).
pub(super) fn spawn_transforms(
    chain: Vec<Box<dyn Transform>>,
    mut rx: mpsc::Receiver<SourceBatch>,
    capacity: usize,
    metrics: Arc<JobMetrics>,
) -> Result<mpsc::Receiver<StageResult>, RuntimeError> {
    let (tx, out) = mpsc::channel(capacity);
    if chain.is_empty() {
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                let staged = Staged {
                    id: b.id,
                    records: b.batch.records,
                    dead: b.batch.dead,
                    delta: b.delta,
                };
                if tx.send(Ok(staged)).await.is_err() {
                    break;
                }
            }
        });
        return Ok(out);
    }
    let mut chain = Chain::new(chain);
    std::thread::Builder::new()
        .name("sluice-transforms".into())
        .spawn(move || {
            while let Some(b) = rx.blocking_recv() {
                let started = Instant::now();
                // A panicking transform must not look like the end of the input.
                let staged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_chain(&mut chain, b, &metrics)
                }))
                .map_err(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    RuntimeError::Internal(format!("the transform stage panicked: {what}"))
                });
                JobMetrics::add(
                    &metrics.transform_micros,
                    started.elapsed().as_micros() as u64,
                );
                let failed = staged.is_err();
                if tx.blocking_send(staged).is_err() || failed {
                    break;
                }
            }
        })
        .map_err(|e| RuntimeError::Internal(format!("cannot start the transform thread: {e}")))?;
    Ok(out)
}

/// Run a source batch through the chain (its rule is in [`crate::chain`]): records to write,
/// dropped ones counted, failed inputs dead-lettered as they entered the chain.
fn run_chain(chain: &mut Chain, batch: SourceBatch, metrics: &JobMetrics) -> Staged {
    let SourceBatch { id, batch, delta } = batch;
    let mut dead = batch.dead;
    let processed = chain.process(&batch.records);
    // Outputs of written inputs are already in order in one vector; only the others need a look.
    for (input, fate) in batch.records.into_iter().zip(processed.fates) {
        match fate {
            Fate::Written(_) => {}
            Fate::Dropped => JobMetrics::add(&metrics.dropped, 1),
            Fate::Failed { stage, reason } => dead.push(DeadRecord {
                record: input,
                stage: format!("transform:{stage}"),
                reason,
            }),
        }
    }
    let records = processed.records;
    Staged {
        id,
        records,
        dead,
        delta,
    }
}

/// Dead letters first (durable before anything of the batch is acknowledged), then fan out.
pub(super) async fn route(
    mut rx: mpsc::Receiver<StageResult>,
    sinks: Vec<(mpsc::Sender<Unit>, Option<RouteCondition>)>,
    dead_letters: DeadLetters,
    metrics: Arc<JobMetrics>,
) -> Result<(), RuntimeError> {
    while let Some(staged) = rx.recv().await {
        let staged = staged?;
        dead_letters
            .handle_batch(staged.dead, &staged.delta, &metrics)
            .await?;
        let mut records = Some(staged.records);
        for (i, (tx, when)) in sinks.iter().enumerate() {
            let all = records.as_deref().unwrap_or_default();
            let records = match when {
                Some(cond) => all.iter().filter(|r| cond.matches(r)).cloned().collect(),
                None if i + 1 == sinks.len() => records.take().unwrap_or_default(),
                None => all.to_vec(),
            };
            let unit = Unit {
                id: staged.id,
                records,
                delta: staged.delta.clone(),
            };
            if tx.send(unit).await.is_err() {
                // The sink task ended with an error; it reports it.
                return Ok(());
            }
        }
    }
    Ok(())
}
