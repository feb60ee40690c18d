//! One job's runner: follows the job's control value, runs its pipeline while it should run,
//! stops it gracefully (drain, flush, commit) on pause, stop, restart, config change, delete
//! and worker shutdown. A run that fails on a retryable external fault (a broker or database
//! that is down) is restarted with exponential backoff; any other failure (a config error, a
//! bad record with `tolerance = "none"`, a destination owned by another job) would fail the
//! same way again, so the job stays `failed` with its error until it is changed or restarted.
//! A failing job only ever affects its own runner.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sluice_core::ErrorKind;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::latency;
use super::model::{Control, Desired, Failure, Observed, Shape, State};
use super::supervisor::{Ctx, JobHandle};

/// First retry delay after a failure; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run that lasted this long resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

enum Outcome {
    /// The control value changed or the worker shuts down; the pipeline was drained.
    Interrupted,
    /// The source ended and everything was committed.
    Finished,
    /// The run failed.
    Failed { failure: Failure, ran_for: Duration },
}

/// Follow `job`'s control value until it is deleted or the worker shuts down.
pub async fn run(job: Arc<JobHandle>, ctx: Arc<Ctx>) {
    let mut control = job.control.subscribe();
    let mut failures: u32 = 0;
    let mut finished_seq: Option<u64> = None;
    loop {
        let ctl = control.borrow_and_update().clone();
        if ctl.deleted || ctx.shutdown.is_cancelled() {
            break;
        }
        let idle_state = match ctl.desired {
            Desired::Paused => Some(State::Paused),
            Desired::Stopped => Some(State::Stopped),
            Desired::Running if finished_seq == Some(ctl.seq) => Some(State::Finished),
            Desired::Running => None,
        };
        if let Some(state) = idle_state {
            failures = 0;
            observe(&job, &ctx, ctl.seq, state, |_| {}).await;
            tokio::select! {
                r = control.changed() => if r.is_err() { break },
                _ = ctx.shutdown.cancelled() => break,
            }
            continue;
        }
        match run_once(&job, &ctx, &ctl, &mut control).await {
            Outcome::Interrupted => failures = 0,
            Outcome::Finished => {
                failures = 0;
                finished_seq = Some(ctl.seq);
            }
            Outcome::Failed { failure, ran_for } => {
                if ran_for >= HEALTHY_RUN {
                    failures = 0;
                }
                failures += 1;
                let backoff = failure.retryable.then(|| {
                    FIRST_BACKOFF
                        .saturating_mul(1 << (failures - 1).min(6))
                        .min(MAX_BACKOFF)
                });
                match backoff {
                    Some(backoff) => {
                        tracing::warn!(job = %job.name, error = %failure.text(), kind = %failure.kind, retry_in = ?backoff, "Job failed on a fault that may pass; retrying.")
                    }
                    None => {
                        tracing::error!(job = %job.name, error = %failure.text(), kind = %failure.kind, "Job failed; it stays failed until it is changed or restarted.")
                    }
                }
                observe(&job, &ctx, ctl.seq, State::Failed, |o| {
                    o.last_error = Some(failure.text());
                    o.failed_sink = failure.sink.clone();
                    o.failure = Some(failure);
                    o.restarts += 1;
                    o.retry_at = backoff.map(|b| SystemTime::now() + b);
                })
                .await;
                match backoff {
                    Some(backoff) => tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        r = control.changed() => if r.is_err() { break },
                        _ = ctx.shutdown.cancelled() => break,
                    },
                    None => tokio::select! {
                        r = control.changed() => if r.is_err() { break },
                        _ = ctx.shutdown.cancelled() => break,
                    },
                }
            }
        }
    }
    tracing::debug!(job = %job.name, "Job runner exits.");
}

async fn run_once(
    job: &JobHandle,
    ctx: &Ctx,
    ctl: &Control,
    control: &mut watch::Receiver<Control>,
) -> Outcome {
    let started = Instant::now();
    let failed = |failure: Failure| Outcome::Failed {
        failure,
        ran_for: started.elapsed(),
    };
    observe(job, ctx, ctl.seq, State::Starting, |_| {}).await;
    let def = &ctl.def;
    let pipeline = match ctx.assemble(def).await {
        Ok(pipeline) => pipeline,
        Err(e) => return failed(Failure::of(&e, None)),
    };
    let loaded = pipeline.job();
    if loaded.name != def.name {
        return failed(Failure {
            kind: ErrorKind::Config,
            ..Failure::internal(format!(
                "the definition names job {:?}, not {:?}",
                loaded.name, def.name
            ))
        });
    }
    let shape = Shape {
        source_type: loaded.source_type.clone(),
        source_owns_offsets: loaded.source.owns_offsets(),
        sinks: loaded
            .sinks
            .iter()
            .map(|s| (s.name.clone(), s.type_name.clone()))
            .collect(),
    };
    {
        let mut stats = job.stats.lock();
        stats.shape = Some(shape);
        stats.start_run(pipeline.metrics());
    }
    let token = CancellationToken::new();
    let mut task = tokio::spawn(pipeline.run(token.clone()));
    observe(job, ctx, ctl.seq, State::Running, |o| {
        o.retry_at = None;
    })
    .await;

    let mut interrupted = false;
    let mut sample = tokio::time::interval(latency::SAMPLE);
    let result = loop {
        tokio::select! {
            r = &mut task => break r,
            _ = control.changed() => {
                interrupted = true;
                observe(job, ctx, ctl.seq, State::Draining, |_| {}).await;
                token.cancel();
                break task.await;
            }
            _ = ctx.shutdown.cancelled() => {
                interrupted = true;
                token.cancel();
                break task.await;
            }
            _ = sample.tick() => job.stats.lock().sample_latency(),
        }
    };
    job.stats.lock().end_run();
    match result {
        Ok(Ok(report)) if !interrupted => {
            tracing::info!(job = %job.name, records_in = report.records_in, "Job finished: its source ended.");
            Outcome::Finished
        }
        Ok(Ok(_)) => Outcome::Interrupted,
        Ok(Err(e)) => {
            let failure = Failure::of(&e, e.failed_sink().map(str::to_string));
            if interrupted {
                // Keep the error visible; the control change decides what happens next.
                tracing::warn!(job = %job.name, error = %failure.text(), "Job failed while stopping.");
                job.observed.send_modify(|o| {
                    o.last_error = Some(failure.text());
                    o.failed_sink = failure.sink.clone();
                    o.failure = Some(failure);
                });
                Outcome::Interrupted
            } else {
                failed(failure)
            }
        }
        Err(e) => failed(Failure::internal(format!("the pipeline panicked: {e}"))),
    }
}

/// Report a state (and persist it) after applying `f` to the observation.
async fn observe(
    job: &JobHandle,
    ctx: &Ctx,
    seq: u64,
    state: State,
    f: impl FnOnce(&mut Observed),
) {
    let mut snapshot = None;
    job.observed.send_modify(|o| {
        if o.state != state {
            o.since = SystemTime::now();
        }
        o.state = state;
        o.seq = seq;
        if state == State::Running {
            // A run that got going clears the failure; the error stays in the log.
            o.failed_sink = None;
            o.failure = None;
        }
        f(o);
        snapshot = Some((o.state, o.last_error.clone()));
    });
    if let Some((state, last_error)) = snapshot
        && let Err(e) = ctx
            .store
            .set_status(&job.name, state.as_str(), last_error.as_deref())
            .await
    {
        tracing::warn!(job = %job.name, error = %e, "Could not save the job status.");
    }
}
