//! The committer: every `commit_interval`, and once more at the end, takes the checkpoint the
//! tracker says is durable everywhere, saves it in the offset store (for sources that do not own
//! their offsets) and hands it to the source task, which calls `Source::commit`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::RuntimeError;
use super::tracker::AckTracker;
use crate::metrics::JobMetrics;
use crate::offset_store::OffsetStore;
use crate::record::Checkpoint;

pub(super) async fn run(
    done: CancellationToken,
    job: String,
    tracker: Arc<Mutex<AckTracker>>,
    store: Option<OffsetStore>,
    commits: mpsc::UnboundedSender<Checkpoint>,
    metrics: Arc<JobMetrics>,
    interval: Duration,
) -> Result<(), RuntimeError> {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            _ = done.cancelled() => true,
        };
        let next = tracker.lock().take_commit();
        if let Some(cp) = next {
            if let Some(store) = &store {
                save_with_retry(store, &job, &cp).await?;
            }
            *metrics.committed.lock() = cp.clone();
            JobMetrics::add(&metrics.commits, 1);
            tracing::debug!(job = %job, checkpoint = %cp, "Checkpoint committed.");
            // The source task may already be gone after a failure; the offset store has it.
            let _ = commits.send(cp);
        }
        if last {
            return Ok(());
        }
    }
}

async fn save_with_retry(
    store: &OffsetStore,
    job: &str,
    cp: &Checkpoint,
) -> Result<(), RuntimeError> {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=8 {
        match store.save(job, cp).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 8 => {
                tracing::warn!(error = %e, attempt, "Offset store write failed; retrying.");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(RuntimeError::OffsetStore(e)),
        }
    }
    unreachable!("the last attempt returns")
}
