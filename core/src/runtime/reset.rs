//! Offsets reset: change every place a job resumes from, while it does not run.
//!
//! Resume reads the offset store (at-least-once) or the sinks' own checkpoints (exactly-once,
//! stored with their data), and the dead letters of a replay are skipped by the dead-letter
//! sink's and the sinks' checkpoints. A reset changes all of them, or a later run silently
//! resumes from whichever was left. Data already in the sinks stays there.

use crate::connector::SinkContext;
use crate::error::ConnectorError;
use crate::job::{Guarantee, LoadedJob};
use crate::offset_store::OffsetStore;
use crate::record::Checkpoint;

use super::{RuntimeError, lock_state_dir};

/// What a reset changed.
#[derive(Clone, Debug, Default)]
pub struct ResetReport {
    /// The offset store's checkpoint afterwards (`None`: empty).
    pub offsets: Option<Checkpoint>,
    /// True when the source keeps its own offsets (a Kafka consumer group): those are not
    /// changed here.
    pub source_owns_offsets: bool,
    /// Sinks (dead-letter sink included) whose stored checkpoint was reset.
    pub sinks: Vec<String>,
}

/// Reset a job's positions: `None` forgets them all (the next run starts from the beginning of
/// the source, and re-sends everything, dead letters included); `Some(partitions)` sets those
/// partitions and keeps the others. Refused while the job runs (its state directory is locked).
pub async fn reset_positions(
    job: LoadedJob,
    partitions: Option<&Checkpoint>,
) -> Result<ResetReport, RuntimeError> {
    let LoadedJob {
        name,
        state_dir,
        delivery,
        source,
        sinks,
        dead_letter,
        ..
    } = job;
    let _lock = lock_state_dir(&state_dir)?;
    let guarantee = delivery.guarantee;
    let mut report = ResetReport {
        source_owns_offsets: source.owns_offsets(),
        ..ResetReport::default()
    };

    // Sinks first: should one fail, the offset store still holds the old positions and the
    // reset can simply be run again.
    let sink_checkpoints_matter = partitions.is_none() || guarantee == Guarantee::ExactlyOnce;
    if sink_checkpoints_matter {
        for mut plan in sinks.into_iter().chain(dead_letter) {
            let ctx = SinkContext {
                job: name.clone(),
                sink: plan.name.clone(),
                guarantee,
            };
            plan.sink
                .reset_checkpoint(&ctx, partitions)
                .await
                .map_err(|e| {
                    let message = format!("resetting its checkpoint: {}", e.message);
                    RuntimeError::sink(plan.name.clone(), ConnectorError { message, ..e })
                })?;
            report.sinks.push(plan.name);
        }
    }

    let path = state_dir.join("offsets.db");
    if partitions.is_some() || path.exists() {
        let store = OffsetStore::open(&path)
            .await
            .map_err(RuntimeError::OffsetStore)?;
        let result = async {
            match partitions {
                None => store.reset(&name, None).await.map(|()| None),
                Some(patch) => {
                    let mut cp = store.load(&name).await?.unwrap_or_default();
                    cp.offsets.extend(patch.offsets.clone());
                    store.reset(&name, Some(&cp)).await.map(|()| Some(cp))
                }
            }
        }
        .await;
        store.close().await;
        report.offsets = result.map_err(RuntimeError::OffsetStore)?;
    }
    Ok(report)
}
