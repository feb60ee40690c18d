//! The `Source` and `Sink` contracts every connector implements.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::error::ConnectorError;
use crate::job::{Guarantee, RetryConfig};
use crate::local::Confinement;
use crate::record::{Batch, Checkpoint, Record};

/// What a connector knows about the job it is built for.
///
/// One context is made per job load ([`BuildContext::new`]) and every connector of that job is
/// built with it, so [`BuildContext::resources`] is what the connectors of ONE job share.
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
    /// The retry policy the runtime applies to this connector's retryable failures: the sink's
    /// own `retry` table when a sink is built, the default policy otherwise (source reads are
    /// retried with it). A connector whose client waits and retries by itself (SQLite's busy
    /// timeout, a driver's reconnect loop) keeps each such wait within one backoff step of this
    /// policy, so the policy stays the one budget.
    pub retry: RetryConfig,
    /// Private so that every construction goes through `new` (and gets a fresh map).
    resources: Resources,
    /// Where a job from an untrusted party may reach; `None` for the operator's own jobs.
    confinement: Option<Arc<Confinement>>,
}

impl BuildContext {
    /// The context of one job load, with an empty resource map of its own.
    pub fn new(
        job: impl Into<String>,
        base_dir: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        guarantee: Guarantee,
    ) -> Self {
        Self {
            job: job.into(),
            base_dir: base_dir.into(),
            state_dir: state_dir.into(),
            guarantee,
            retry: RetryConfig::default(),
            resources: Resources::default(),
            confinement: None,
        }
    }

    /// The same context for a job from an untrusted party: [`BuildContext::local_file`] and
    /// [`BuildContext::allow_code`] refuse what `confinement` does not allow.
    pub fn confined(mut self, confinement: Option<Arc<Confinement>>) -> Self {
        self.confinement = confinement;
        self
    }

    /// The same context without confinement, for what the runtime itself puts in place (the
    /// default dead-letter file in the job's state directory).
    pub fn trusted(&self) -> Self {
        Self {
            confinement: None,
            ..self.clone()
        }
    }

    /// The confinement of this job, `None` for the operator's own jobs.
    pub fn confinement(&self) -> Option<&Confinement> {
        self.confinement.as_deref()
    }

    /// Resolve a local path a config names at `field` (a file to read or write, a certificate,
    /// a directory) against the job file's directory. For a confined job, a `Config` error at
    /// `field` when the path (`..` and symlinks resolved) is outside the worker's `--data-dir`:
    /// connectors call this before they open, read or even look at the path.
    pub fn local_file(
        &self,
        field: &str,
        path: &std::path::Path,
    ) -> Result<PathBuf, ConnectorError> {
        let resolved = self.resolve(path);
        self.allow_file(field, &resolved)?;
        Ok(resolved)
    }

    /// [`BuildContext::local_file`] for a path the connector resolved itself (a database file
    /// or a certificate named inside a URL), as it will open it.
    pub fn allow_file(&self, field: &str, path: &std::path::Path) -> Result<(), ConnectorError> {
        match &self.confinement {
            Some(c) => c
                .check_file(path)
                .map_err(|why| ConnectorError::config(why).at(field)),
            None => Ok(()),
        }
    }

    /// For a confined job, a `Config` error at `field` for a setting that loads native code or
    /// runs a command (`what` says which, in words); nothing for the operator's own jobs.
    pub fn allow_code(&self, field: &str, what: &str) -> Result<(), ConnectorError> {
        match &self.confinement {
            Some(c) => Err(ConnectorError::config(c.refuse_code(what)).at(field)),
            None => Ok(()),
        }
    }

    /// The same context (sharing its resources) for a connector retried under `retry`.
    pub fn with_retry(&self, retry: RetryConfig) -> Self {
        Self {
            retry,
            ..self.clone()
        }
    }

    /// Resolve a path from a config against the job file's directory.
    pub fn resolve(&self, path: &std::path::Path) -> PathBuf {
        if path.is_absolute() || path.as_os_str() == "-" {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// State shared by the connectors of this job, and only of this job.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }
}

/// A typed map of values shared by the connectors of one job, one value per type (e.g. the
/// Kafka connectors' registry of live consumers). A connector keeps the `Arc` it got; the value
/// lives as long as a connector of the job holds it, so it goes away with the job instead of
/// outliving it in a long-running worker the way a process-wide static would.
#[derive(Clone, Default)]
pub struct Resources(Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>);

impl Resources {
    /// The job's value of type `T`, made with `make` by the first connector that asks.
    pub fn get_or_insert_with<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        let mut map = self.0.lock();
        // Keyed by the value's own TypeId: the downcast of a stored value always succeeds.
        if let Some(found) = map
            .get(&TypeId::of::<T>())
            .and_then(|v| v.clone().downcast::<T>().ok())
        {
            return found;
        }
        let value = Arc::new(make());
        map.insert(TypeId::of::<T>(), value.clone());
        value
    }
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources")
            .field("values", &self.0.lock().len())
            .finish()
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

    /// What building could not check without side effects (reaching a service), in words for
    /// `sluice validate` to list. Building checks everything that can be checked without them
    /// (fields, URLs, that an input file exists); the default assumes a remote service.
    fn unchecked(&self) -> Vec<String> {
        vec!["that the service it reads from is reachable and readable".into()]
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

    /// What building could not check without side effects (connecting, creating a table), in
    /// words for `sluice validate` to list; see [`Source::unchecked`].
    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that {} is reachable and accepts writes",
            self.destination()
                .unwrap_or_else(|| "its destination".to_string())
        )]
    }

    /// Look at the destination without changing anything (connect, ask the server what it is)
    /// and refuse what it cannot do for this job, for `sluice validate`: a `Config` error when
    /// the job cannot work there (it names the field), any other error when the service could
    /// not be asked (validation then lists it as not checked). Called on a sink that is not
    /// opened; release what it opens before returning. The default checks nothing.
    async fn check(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let _ = ctx;
        Ok(())
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

    /// When a sink that holds records across writes (buffering of its own, reported durable
    /// because the stored checkpoint still needs them replayed) wants to be written to again
    /// even if no record comes: the runtime then makes an empty write (with the current
    /// checkpoint, under exactly-once) at that instant, so the sink's own age bound holds while
    /// the source is quiet. Asked whenever the runtime's buffer for the sink is empty; `None`
    /// (the default) for sinks that hold nothing.
    fn wake_at(&self) -> Option<std::time::Instant> {
        None
    }

    /// Flush and release resources. Called once, after the last write.
    async fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A shared, type-erased sink.
pub type SharedSink = Arc<tokio::sync::Mutex<Box<dyn Sink>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_shared_within_a_job_and_not_across_jobs() {
        let a = BuildContext::new("a", ".", ".", Guarantee::AtLeastOnce);
        let b = BuildContext::new("b", ".", ".", Guarantee::AtLeastOnce);
        let first = a.resources().get_or_insert_with(|| Mutex::new(vec![1]));
        first.lock().push(2);
        let again = a
            .clone()
            .resources()
            .get_or_insert_with(|| Mutex::new(Vec::<i32>::new()));
        assert_eq!(*again.lock(), vec![1, 2], "one value per type within a job");
        let other = b
            .resources()
            .get_or_insert_with(|| Mutex::new(Vec::<i32>::new()));
        assert!(other.lock().is_empty(), "another job has its own");
        let weak = Arc::downgrade(&first);
        drop((a, first, again));
        assert!(weak.upgrade().is_none(), "gone with the job");
    }
}
