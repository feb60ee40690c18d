//! The transform stage and the router.
//!
//! Transforms are CPU-bound and synchronous, so the chain runs on threads of its own
//! (`pipeline.transform_threads`, order kept). The router
//! then makes dead letters durable (or stops the job) and fans each batch out to every sink.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::RuntimeError;
use super::buffer::Unit;
use super::dead_letter::DeadLetters;
use super::source_task::SourceBatch;
use crate::chain::{Chain, Fate};
use crate::job::{RouteCondition, RouteInput};
use crate::metrics::JobMetrics;
use crate::record::{Checkpoint, DeadRecord, Record};
use crate::tap::Stage;
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

/// Start the transform threads, one per chain (or a pass-through when there are no
/// transforms). With several chains, batches are dealt to them in turn and collected in the
/// same turn, so the router sees them in the order the source read them.
pub(super) fn spawn_transforms(
    mut chains: Vec<Vec<Box<dyn Transform>>>,
    mut rx: mpsc::Receiver<SourceBatch>,
    capacity: usize,
    metrics: Arc<JobMetrics>,
) -> Result<mpsc::Receiver<StageResult>, RuntimeError> {
    let (tx, out) = mpsc::channel(capacity);
    if chains.iter().all(Vec::is_empty) {
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
    if chains.len() == 1 {
        let chain = chains.pop().unwrap_or_default();
        spawn_chain(0, chain, rx, tx, metrics)?;
        return Ok(out);
    }
    let mut inputs = Vec::with_capacity(chains.len());
    let mut outputs = Vec::with_capacity(chains.len());
    for (i, chain) in chains.into_iter().enumerate() {
        let (in_tx, in_rx) = mpsc::channel(capacity);
        let (out_tx, out_rx) = mpsc::channel(capacity);
        spawn_chain(i, chain, in_rx, out_tx, metrics.clone())?;
        inputs.push(in_tx);
        outputs.push(out_rx);
    }
    tokio::spawn(async move {
        let mut turn = 0;
        while let Some(b) = rx.recv().await {
            // A chain that stopped has sent its error; the collector passes it on.
            if inputs[turn].send(b).await.is_err() {
                break;
            }
            turn = (turn + 1) % inputs.len();
        }
    });
    tokio::spawn(async move {
        let mut turn = 0;
        // Batch k went to chain k mod n: when the chain whose turn it is has nothing more,
        // no later batch exists either.
        while let Some(staged) = outputs[turn].recv().await {
            let failed = staged.is_err();
            if tx.send(staged).await.is_err() || failed {
                break;
            }
            turn = (turn + 1) % outputs.len();
        }
    });
    Ok(out)
}

/// One transform thread: batches in, staged batches (or the reason it stopped) out, in order.
fn spawn_chain(
    index: usize,
    chain: Vec<Box<dyn Transform>>,
    mut rx: mpsc::Receiver<SourceBatch>,
    tx: mpsc::Sender<StageResult>,
    metrics: Arc<JobMetrics>,
) -> Result<(), RuntimeError> {
    let mut chain = Chain::new(chain);
    std::thread::Builder::new()
        .name(format!("sluice-transforms-{index}"))
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
        .map_err(|e| RuntimeError::Internal(format!("cannot start a transform thread: {e}")))?;
    Ok(())
}

/// Run a source batch through the chain (its rule is in [`crate::chain`]): records to write,
/// dropped ones counted, failed inputs dead-lettered as they entered the chain.
fn run_chain(chain: &mut Chain, batch: SourceBatch, metrics: &JobMetrics) -> Staged {
    let SourceBatch { id, batch, delta } = batch;
    let mut dead = batch.dead;
    let processed = chain.process_observed(&batch.records, |stage, records| {
        metrics.taps.observe(Stage::Transform(stage), records)
    });
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
        metrics.taps.observe_dead(&staged.dead);
        dead_letters
            .handle_batch(staged.dead, &staged.delta, &metrics)
            .await?;
        // Which records each routed sink takes, decided before any is handed over: a record's
        // value is parsed once however many sinks test its fields.
        let routed: Vec<Option<Vec<Record>>> = {
            let inputs: Vec<RouteInput<'_>> = if sinks.iter().any(|(_, w)| w.is_some()) {
                staged.records.iter().map(RouteInput::new).collect()
            } else {
                Vec::new()
            };
            sinks
                .iter()
                .map(|(_, when)| {
                    when.as_ref().map(|cond| {
                        inputs
                            .iter()
                            .zip(&staged.records)
                            .filter(|(input, _)| cond.test(input))
                            .map(|(_, r)| r.clone())
                            .collect()
                    })
                })
                .collect()
        };
        let mut records = Some(staged.records);
        for (i, ((tx, _), routed)) in sinks.iter().zip(routed).enumerate() {
            let all = records.as_deref().unwrap_or_default();
            let records = match routed {
                Some(taken) => taken,
                None if i + 1 == sinks.len() => records.take().unwrap_or_default(),
                None => all.to_vec(),
            };
            if let Some(sink) = metrics.sinks.get(i) {
                metrics.taps.observe(Stage::Sink(&sink.name), &records);
            }
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
