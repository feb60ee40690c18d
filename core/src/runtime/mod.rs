//! The pipeline runtime: source task → transform stage → router → one task per sink, joined by
//! bounded channels (a slow sink slows the source; memory stays bounded), plus a committer that
//! commits positions only once every sink has made the data before them durable.

mod buffer;
mod committer;
pub mod dead_letter;
mod reset;
mod retry;
mod sink_task;
mod source_task;
mod stage;
pub mod tracker;

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use buffer::{SinkBuffer, Unit};
pub use reset::{ResetReport, reset_positions};
pub use retry::Backoff;

use crate::connector::SinkContext;
use crate::error::{ConnectorError, ErrorKind, Fault, with_causes};
use crate::job::{Guarantee, LoadedJob, SinkPlan, Tolerance};
use crate::metrics::JobMetrics;
use crate::offset_store::OffsetStore;
use crate::record::Checkpoint;
use crate::transform::Transform;
use dead_letter::{DeadLetterSink, DeadLetters};
use tracker::AckTracker;

/// Why a job stopped with an error. Connector errors are kept whole (kind, retry hint, cause
/// chain); [`Fault`] says whose fault the stop is and whether a restart may help.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The source failed for good.
    #[error("source failed: {0}")]
    Source(#[source] ConnectorError),
    /// A sink failed for good (after retries).
    #[error("sink `{sink}` failed: {error}")]
    Sink {
        /// The sink name.
        sink: String,
        /// What happened.
        #[source]
        error: ConnectorError,
    },
    /// A bad record with `errors.tolerance = "none"`.
    #[error(
        "bad record at {position} in {stage}: {reason} (errors.tolerance = \"none\" stops the job; set it to \"all\" to dead-letter such records)"
    )]
    BadRecord {
        /// The stage that failed.
        stage: String,
        /// Source position of the record.
        position: String,
        /// Why.
        reason: String,
    },
    /// The offset store failed.
    #[error("offset store: {0}")]
    OffsetStore(#[source] ConnectorError),
    /// Another process runs the same job (same state directory).
    #[error("another process is running this job (state directory {0} is locked)")]
    AlreadyRunning(String),
    /// The job asks for another delivery guarantee than its state was made with.
    #[error(
        "job `{job}` asks for {now} delivery, but its positions were made with {was}: resuming them under {now} would write data again or cut it from a sink. Either set `delivery.guarantee` back to \"{was}\", or start over with `sluice reset {file} --yes` (a worker: stop the job, then DELETE /jobs/{job}/offsets), which forgets every position; data already in the sinks stays there and is written again"
    )]
    GuaranteeChanged {
        /// The job name.
        job: String,
        /// The job file.
        file: String,
        /// The guarantee of the stored state.
        was: String,
        /// The guarantee the job asks for.
        now: Guarantee,
    },
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RuntimeError {
    /// A sink's failure.
    pub fn sink(sink: impl Into<String>, error: ConnectorError) -> Self {
        RuntimeError::Sink {
            sink: sink.into(),
            error,
        }
    }

    /// The sink that failed, when a sink did.
    pub fn failed_sink(&self) -> Option<&str> {
        match self {
            RuntimeError::Sink { sink, .. } => Some(sink),
            _ => None,
        }
    }
}

impl Fault for RuntimeError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Source(e) | RuntimeError::Sink { error: e, .. } => e.kind,
            RuntimeError::OffsetStore(e) => e.kind,
            RuntimeError::BadRecord { .. } => ErrorKind::Data,
            RuntimeError::AlreadyRunning(_) | RuntimeError::GuaranteeChanged { .. } => {
                ErrorKind::Config
            }
            RuntimeError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            RuntimeError::Source(e) | RuntimeError::Sink { error: e, .. } => e.retryable,
            RuntimeError::OffsetStore(e) => e.retryable,
            _ => false,
        }
    }
}

/// What a finished run did.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Records read.
    pub records_in: u64,
    /// Records written by each sink.
    pub records_out: Vec<(String, u64)>,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Records dropped by transforms.
    pub dropped: u64,
    /// The last committed checkpoint.
    pub committed: Checkpoint,
    /// The checkpoint the run resumed from; `None` on a first run (or a source that keeps its
    /// own offsets). With `records_in == 0`, an uninterrupted run of a bounded source had
    /// nothing left to read.
    pub resumed: Option<Checkpoint>,
}

/// Everything needed to run one job.
pub struct Pipeline {
    job: LoadedJob,
    /// One transform chain per transform thread (all alike; empty when the job has none).
    chains: Vec<Vec<Box<dyn Transform>>>,
    metrics: Arc<JobMetrics>,
}

impl Pipeline {
    /// A pipeline for a loaded job and its built transform chain, run on one thread.
    pub fn new(job: LoadedJob, transforms: Vec<Box<dyn Transform>>) -> Self {
        Self::with_chains(job, vec![transforms])
    }

    /// A pipeline whose transforms run on one thread per chain: `chains` holds one instance
    /// of the job's chain per thread (`pipeline.transform_threads`).
    pub fn with_chains(job: LoadedJob, chains: Vec<Vec<Box<dyn Transform>>>) -> Self {
        let mut metrics = JobMetrics::new(job.sinks.iter().map(|s| s.name.clone()));
        for (m, plan) in metrics.sinks.iter_mut().zip(&job.sinks) {
            m.routed = plan.common.when.is_some();
        }
        let metrics = Arc::new(metrics);
        Self {
            job,
            chains,
            metrics,
        }
    }

    /// The job as loaded: name, connectors, settings.
    pub fn job(&self) -> &LoadedJob {
        &self.job
    }

    /// The loaded job, to ask its connectors before a run (`Sink::check`).
    pub fn job_mut(&mut self) -> &mut LoadedJob {
        &mut self.job
    }

    /// The job's live counters.
    pub fn metrics(&self) -> Arc<JobMetrics> {
        self.metrics.clone()
    }

    /// Run until the source ends or `shutdown` fires, then drain, flush, commit and close.
    pub async fn run(self, shutdown: CancellationToken) -> Result<RunReport, RuntimeError> {
        let Pipeline {
            job,
            chains,
            metrics,
        } = self;
        let LoadedJob {
            name,
            file,
            state_dir,
            delivery,
            mut source,
            sinks,
            tolerance,
            dead_letter,
            pipeline,
            ..
        } = job;
        let guarantee = delivery.guarantee;

        // One process per job state: a second `sluice run` of the same job would commit
        // positions the first one has not made durable.
        let _lock = lock_state_dir(&state_dir)?;

        // Before any sink opens: opening one under the wrong guarantee may already cut data.
        // The offset store records the guarantee the job's state is made with.
        let state = OffsetStore::open(&state_dir.join("offsets.db"))
            .await
            .map_err(RuntimeError::OffsetStore)?;
        if let Err(e) =
            check_guarantee(&state, &name, &file, guarantee, source.owns_offsets()).await
        {
            state.close().await;
            return Err(e);
        }

        // Open sinks first: with exactly-once their checkpoints decide where the source starts.
        let mut opened = Vec::with_capacity(sinks.len());
        for plan in sinks {
            opened.push(open_sink(&name, plan, guarantee).await?);
        }
        let dead_letters = match (tolerance, dead_letter) {
            (Tolerance::All, Some(plan)) => {
                // Exactly-once covers dead letters too when their sink can store a checkpoint.
                let dlq_guarantee = match guarantee {
                    Guarantee::ExactlyOnce if plan.sink.transactional() => guarantee,
                    _ => Guarantee::AtLeastOnce,
                };
                let (plan, dlq_cp) = open_sink(&name, plan, dlq_guarantee).await?;
                // Any sink's checkpoint covers positions whose dead letters were written.
                let mut written = dlq_cp.clone().unwrap_or_default();
                if guarantee == Guarantee::ExactlyOnce {
                    for (_, cp) in &opened {
                        if let Some(cp) = cp {
                            written.merge(cp);
                        }
                    }
                }
                let dlq_cp =
                    (dlq_guarantee == Guarantee::ExactlyOnce).then(|| dlq_cp.unwrap_or_default());
                DeadLetters::Sink(Arc::new(DeadLetterSink::new(
                    plan.sink,
                    plan.common.retry,
                    plan.name,
                    dlq_cp,
                    written,
                )))
            }
            _ => DeadLetters::Stop,
        };
        let store = (!source.owns_offsets()).then(|| state.clone());
        let resume = match guarantee {
            Guarantee::ExactlyOnce => {
                let cps: Vec<Checkpoint> = opened
                    .iter()
                    .map(|(_, cp)| cp.clone().unwrap_or_default())
                    .collect();
                let cp = Checkpoint::earliest(cps.iter());
                (!cp.is_empty()).then_some(cp)
            }
            Guarantee::AtLeastOnce => match &store {
                Some(store) => store.load(&name).await.map_err(RuntimeError::OffsetStore)?,
                None => None,
            },
        };
        if let Some(cp) = &resume {
            tracing::info!(job = %name, checkpoint = %cp, "Resuming from checkpoint.");
        }
        source
            .open(resume.clone())
            .await
            .map_err(RuntimeError::Source)?;
        if let Some(total) = source.expected_total() {
            JobMetrics::add(&metrics.expected_total, total);
        }
        *metrics.committed.lock() = resume.clone().unwrap_or_default();

        let budget =
            pipeline.in_flight_budget(opened.iter().map(|(plan, _)| plan.common.batch.max_bytes.0));
        let tracker = Arc::new(Mutex::new(AckTracker::new(
            opened.len(),
            resume.clone().unwrap_or_default(),
            budget,
        )));
        let cap = pipeline.channel_capacity;
        let failure = CancellationToken::new();
        let stop_reading = CancellationToken::new();
        {
            let (shutdown, failure, stop) =
                (shutdown.clone(), failure.clone(), stop_reading.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = failure.cancelled() => {}
                }
                stop.cancel();
            });
        }

        // Source → (transform thread) → router → sinks.
        let (batch_tx, batch_rx) = mpsc::channel(cap);
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        let source_task = tokio::spawn(source_task::run(
            source,
            batch_tx,
            commit_rx,
            tracker.clone(),
            metrics.clone(),
            stop_reading.clone(),
        ));
        let staged_rx = stage::spawn_transforms(chains, batch_rx, cap, metrics.clone())?;

        let mut sink_txs = Vec::new();
        let mut sink_tasks = Vec::new();
        for (index, (plan, committed)) in opened.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(cap);
            sink_txs.push((tx, plan.common.when.clone()));
            sink_tasks.push(tokio::spawn(sink_task::run(sink_task::SinkTask {
                index,
                plan,
                committed: committed.filter(|_| guarantee == Guarantee::ExactlyOnce),
                exactly_once: guarantee == Guarantee::ExactlyOnce,
                checkpoint_every: delivery.commit_interval.0,
                rx,
                tracker: tracker.clone(),
                metrics: metrics.clone(),
                dead_letters: dead_letters.clone(),
            })));
        }
        let router = tokio::spawn(stage::route(
            staged_rx,
            sink_txs,
            dead_letters.clone(),
            metrics.clone(),
        ));
        let sinks_done = CancellationToken::new();
        let committer = tokio::spawn(committer::run(
            sinks_done.clone(),
            name.clone(),
            tracker.clone(),
            store.clone(),
            commit_tx,
            metrics.clone(),
            delivery.commit_interval.0,
        ));

        let mut first_error: Option<RuntimeError> = None;
        let mut note = |r: Result<Result<(), RuntimeError>, tokio::task::JoinError>,
                        failure: &CancellationToken| {
            let err = match r {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(e) => RuntimeError::Internal(format!("task panicked: {e}")),
            };
            failure.cancel();
            // The first failure is the job's error: the caller reports it, once. Later ones are
            // usually its consequences, but may tell more.
            match &first_error {
                None => first_error = Some(err),
                Some(_) => {
                    tracing::warn!(error = %with_causes(&err), "Another stage failed after the job's first failure.")
                }
            }
        };
        // Router and sinks end once the source stops and everything in flight is drained.
        let routed = router.await;
        note(routed, &failure);
        for t in sink_tasks {
            let r = t.await;
            note(r, &failure);
        }
        // Final commit of everything acknowledged, then let the source commit and close.
        sinks_done.cancel();
        let committed = committer.await;
        note(committed.map(|r| r.map(|_| ())), &failure);
        let src = source_task.await;
        note(src, &failure);
        if let DeadLetters::Sink(dls) = &dead_letters
            && let Err(e) = dls.close().await
        {
            note(Ok(Err(e)), &failure);
        }
        state.close().await;

        let report = RunReport {
            records_in: JobMetrics::get(&metrics.records_in),
            records_out: metrics.written(),
            dead_lettered: JobMetrics::get(&metrics.dead_lettered),
            dropped: JobMetrics::get(&metrics.dropped),
            committed: metrics.committed.lock().clone(),
            resumed: resume,
        };
        match first_error {
            Some(e) => {
                *metrics.last_error.lock() = Some(with_causes(&e));
                Err(e)
            }
            None => Ok(report),
        }
    }
}

/// Refuse to resume state made with another delivery guarantee (at-least-once positions are
/// not sink checkpoints; an exactly-once file sink cuts what an at-least-once run appended),
/// unless there is no such state; then record this run's guarantee.
async fn check_guarantee(
    store: &OffsetStore,
    job: &str,
    file: &str,
    guarantee: Guarantee,
    source_owns_offsets: bool,
) -> Result<(), RuntimeError> {
    let err = RuntimeError::OffsetStore;
    let now = guarantee.to_string();
    match store.guarantee(job).await.map_err(err)? {
        Some(was) if was == now => return Ok(()),
        Some(was) => {
            // Positions committed (or kept by the source itself) are state; a run that never
            // committed anything left none.
            let has_state = source_owns_offsets || store.load(job).await.map_err(err)?.is_some();
            if has_state {
                return Err(RuntimeError::GuaranteeChanged {
                    job: job.to_string(),
                    file: file.to_string(),
                    was,
                    now: guarantee,
                });
            }
        }
        None => {}
    }
    store.set_guarantee(job, &now).await.map_err(err)
}

/// Hold an exclusive lock on `<state_dir>/lock` for as long as the returned file lives.
fn lock_state_dir(state_dir: &std::path::Path) -> Result<std::fs::File, RuntimeError> {
    std::fs::create_dir_all(state_dir).map_err(|e| {
        RuntimeError::OffsetStore(ConnectorError::io(
            &format!("creating {}", state_dir.display()),
            &e,
        ))
    })?;
    let path = state_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            RuntimeError::OffsetStore(ConnectorError::io(
                &format!("opening {}", path.display()),
                &e,
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(RuntimeError::AlreadyRunning(
            state_dir.display().to_string(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(RuntimeError::OffsetStore(ConnectorError::io(
            &format!("locking {}", path.display()),
            &e,
        ))),
    }
}

async fn open_sink(
    job: &str,
    mut plan: SinkPlan,
    guarantee: Guarantee,
) -> Result<(SinkPlan, Option<Checkpoint>), RuntimeError> {
    let ctx = SinkContext {
        job: job.to_string(),
        sink: plan.name.clone(),
        guarantee,
    };
    let err = |e: ConnectorError| RuntimeError::sink(ctx.sink.clone(), e);
    plan.sink.open(&ctx).await.map_err(err)?;
    let committed = if guarantee == Guarantee::ExactlyOnce {
        plan.sink.committed_checkpoint().await.map_err(err)?
    } else {
        None
    };
    Ok((plan, committed))
}

#[cfg(test)]
mod tests;
