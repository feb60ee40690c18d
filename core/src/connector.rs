//! The `Source` and `Sink` contracts every connector implements.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::ConnectorError;
use crate::job::Guarantee;
use crate::record::{Batch, Checkpoint, Record};

/// What a connector knows about the job it is built for.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// The job name.
    pub job: String,
    /// Directory of the job file; relative paths in connector configs resolve against it.
    pub base_dir: PathBuf,
    /// The job's state directory (offset store, caches).
    pub state_dir: PathBuf,
    /// The delivery guarantee the job asks for.
    pub guarantee: Guarantee,
}

impl BuildContext {
    /// Resolve a path from a config against the job file's directory.
    pub fn resolve(&self, path: &std::path::Path) -> PathBuf {
        if path.is_absolute() || path.as_os_str() == "-" {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// A source of records.
#[async_trait]
pub trait Source: Send {
    /// Open the source. `resume` is the checkpoint the runtime last committed (or, with
    /// exactly-once, the earliest checkpoint of the sinks); `None` on a first run. The source
    /// continues strictly after each partition's position.
    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError>;

    /// The next batch, `Ok(None)` at the end of a bounded source. Must be cancel-safe: the
    /// runtime may drop this future to commit or to shut down, and no record may be lost then.
    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError>;

    /// Called only once everything up to `checkpoint` is durable in every sink. Sources that own
    /// their offsets (Kafka group offsets) commit them here; others need not do anything, the
    /// runtime keeps their positions in the offset store.
    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<(), ConnectorError> {
        let _ = checkpoint;
        Ok(())
    }

    /// True when the source keeps its own offsets (then the runtime's offset store is not used
    /// to resume it).
    fn owns_offsets(&self) -> bool {
        false
    }

    /// True when the source can start at an arbitrary checkpoint (needed for exactly-once).
    fn can_seek(&self) -> bool {
        true
    }

    /// Records not yet read, per partition, when the source knows (Kafka consumer lag). The
    /// runtime publishes it in the job's metrics after every batch.
    fn lag(&self) -> Option<std::collections::BTreeMap<String, u64>> {
        None
    }

    /// Total number of records, when known up front (for progress display).
    fn expected_total(&self) -> Option<u64> {
        None
    }

    /// Release resources. Called once, after the last commit.
    async fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// What happened to a write, record by record. An empty report means every record is durable.
///
/// Rejected records, two ways:
/// - `rolled_back = false`: every record not listed is durable (and, with exactly-once, the
///   checkpoint with them); the runtime dead-letters the rejected ones afterwards. Sinks that
///   cannot undo a write (a file, a non-transactional producer) report this way.
/// - `rolled_back = true`: nothing of this write is durable, checkpoint included. The runtime
///   first dead-letters the rejected records (or, with `errors.tolerance = "none"`, stops the
///   job having committed nothing), then writes the other records again with the same
///   checkpoint. A rejected record is thus dead-lettered before any checkpoint covers it, and
///   a job that stops on it has written nothing it would write again. Transactional sinks
///   report this way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Records the destination rejected for good (constraint, type, size): index in the written
    /// slice and the destination's message. They go to the dead-letter sink.
    pub rejected: Vec<(usize, String)>,
    /// Records that failed transiently inside an otherwise successful call (throttling); the
    /// runtime retries exactly these with backoff.
    pub retry: Vec<usize>,
    /// The sink undid the whole write because of the rejected records (see above). Must come
    /// with at least one rejected record.
    pub rolled_back: bool,
}

impl WriteReport {
    /// Everything written.
    pub fn ok() -> Self {
        Self::default()
    }
}

/// Information a sink gets when opened.
#[derive(Clone, Debug)]
pub struct SinkContext {
    /// The job name.
    pub job: String,
    /// The sink's name within the job (unique).
    pub sink: String,
    /// The delivery guarantee.
    pub guarantee: Guarantee,
}

/// A destination of records.
#[async_trait]
pub trait Sink: Send {
    /// Connect, create what is needed.
    async fn open(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let _ = ctx;
        Ok(())
    }

    /// A stable identity of where this sink writes — what it is, not how the job spells it: a
    /// file's canonical path, a database's host/port/database plus the table, a topic. Used to
    /// refuse two writers on one destination (sinks and the dead-letter sink alike) and to tie
    /// an exactly-once checkpoint to its destination. `None` when the sink cannot tell.
    fn destination(&self) -> Option<String> {
        None
    }

    /// True when the sink can store a checkpoint atomically with its data (exactly-once).
    fn transactional(&self) -> bool {
        false
    }

    /// With exactly-once: the checkpoint stored with the last committed write, if any.
    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>, ConnectorError> {
        Ok(None)
    }

    /// Change the checkpoint stored with the sink's data while its job is not running (an
    /// offsets reset): `None` forgets it, so the next exactly-once run sends everything again;
    /// `Some(partitions)` sets the positions of those partitions and keeps the others. Called
    /// on a sink that is not opened (open what is needed, release it before returning). Data
    /// already written stays. The default does nothing: a sink that stores no checkpoint has
    /// nothing to reset.
    async fn reset_checkpoint(
        &mut self,
        ctx: &SinkContext,
        partitions: Option<&Checkpoint>,
    ) -> Result<(), ConnectorError> {
        let _ = (ctx, partitions);
        Ok(())
    }

    /// Write records durably: when this returns `Ok`, every record not listed in the report is
    /// durable, unless the report says `rolled_back` (then none is). With exactly-once,
    /// `checkpoint` is the sink's checkpoint after these records and must be stored atomically
    /// with them; a write that rejects records may be followed by a write of the others with
    /// the same checkpoint. Indices in the report refer to `records` and must be in range.
    async fn write(
        &mut self,
        records: &[Record],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError>;

    /// Flush and release resources. Called once, after the last write.
    async fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A shared, type-erased sink.
pub type SharedSink = Arc<tokio::sync::Mutex<Box<dyn Sink>>>;
