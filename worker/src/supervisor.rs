//! The supervisor: the set of jobs this worker hosts, each followed by its own runner task
//! (see `runner.rs`), and the control operations the API and the jobs directory use.
//!
//! Every change is written to the store before the runner is told, so a worker killed at any
//! point comes back with what the operator last asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_core::Pipeline;
use sluice_core::job::{ConfigError, JobError, LoadedJob, Toolkit};
use sluice_core::metrics::JobMetrics;
use sluice_core::record::Checkpoint;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::latency::Latencies;
use super::model::{Control, Counters, Desired, JobDef, Observed, Shape, State};
use super::store::{JobRow, Store};

/// What every runner shares.
pub struct Ctx {
    /// The worker's store.
    pub store: Store,
    /// Connectors and plugin host: how definitions become jobs.
    pub toolkit: Toolkit,
    /// The same, expanding only the references `--allow-interpolation` allows: for jobs
    /// submitted through the API.
    pub api_toolkit: Toolkit,
    /// `--state-dir`.
    pub state_dir: PathBuf,
    /// The first `--data-dir`: where relative paths of API jobs resolve.
    pub data_dir: Option<PathBuf>,
    /// Fired on worker shutdown: every runner drains its pipeline and exits.
    pub shutdown: CancellationToken,
}

impl Ctx {
    /// The job's own state directory: `<state-dir>/jobs/<name>/` (offsets, dead letters).
    pub fn job_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join("jobs").join(name)
    }

    /// Where relative paths in a job's config resolve: the jobs-dir file's directory, or for
    /// jobs created through the API the first `--data-dir` (the job's state directory when
    /// there is none: such jobs may name no file anyway).
    pub fn base_dir(&self, def: &JobDef) -> PathBuf {
        match def.source_file.as_deref().and_then(Path::parent) {
            Some(dir) => dir.to_path_buf(),
            None => self.api_base_dir(&self.job_dir(&def.name)),
        }
    }

    /// Where relative paths of API-submitted configs resolve: the first `--data-dir`, else
    /// `fallback`.
    pub fn api_base_dir(&self, fallback: &Path) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| fallback.to_path_buf())
    }

    /// The operator's job files (from `--jobs-dir`) read any reference; API jobs what is allowed.
    fn toolkit_for(&self, def: &JobDef) -> &Toolkit {
        match def.source_file {
            Some(_) => &self.toolkit,
            None => &self.api_toolkit,
        }
    }

    /// Assemble a definition exactly as a run does: connectors built and checked, plugins
    /// compiled and initialised with their `with` tables (off the async threads: compiling
    /// takes a while).
    pub async fn assemble(&self, def: &JobDef) -> Result<Pipeline, JobError> {
        let toolkit = self.toolkit_for(def).clone();
        let (text, label) = (def.config.clone(), Self::label(def));
        let (base, state) = (self.base_dir(def), self.job_dir(&def.name));
        tokio::task::spawn_blocking(move || {
            toolkit.assemble_str(&text, &label, &base, Some(&state))
        })
        .await
        .unwrap_or_else(|e| {
            Err(JobError {
                errors: vec![ConfigError {
                    file: Self::label(def),
                    line: None,
                    path: "(job)".into(),
                    message: format!("assembling the job panicked: {e}"),
                }],
            })
        })
    }

    /// Build and check a definition's connectors only (resetting positions needs no plugin).
    pub fn load(&self, def: &JobDef) -> Result<LoadedJob, JobError> {
        self.toolkit_for(def).load_str(
            &def.config,
            &Self::label(def),
            &self.base_dir(def),
            Some(&self.job_dir(&def.name)),
        )
    }

    /// How a job is named in config errors.
    pub fn label(def: &JobDef) -> String {
        match &def.source_file {
            Some(file) => file.display().to_string(),
            None => format!("job {}", def.name),
        }
    }
}

/// Live and accumulated numbers of one job.
#[derive(Default)]
pub struct Stats {
    /// Counters of finished runs.
    pub totals: Counters,
    /// The running pipeline's counters.
    pub live: Option<Arc<JobMetrics>>,
    /// The last checkpoint seen committed.
    pub committed: Option<Checkpoint>,
    /// What the job looked like when last loaded.
    pub shape: Option<Shape>,
    /// Write latency histograms per sink.
    pub latency: Latencies,
}

impl Stats {
    /// Counters over all runs, the current one included.
    pub fn counters(&self) -> Counters {
        let mut c = self.totals.clone();
        if let Some(live) = &self.live {
            c.add(&Counters::of(live));
        }
        c
    }

    /// The last committed checkpoint known in memory.
    pub fn committed(&self) -> Option<Checkpoint> {
        match &self.live {
            Some(live) => Some(live.committed.lock().clone()),
            None => self.committed.clone(),
        }
    }

    /// Records still to come: the source's lag (Kafka), or what is left of a known total.
    pub fn remaining(&self) -> Option<u64> {
        let live = self.live.as_ref()?;
        let lag = live.source_lag.lock();
        if !lag.is_empty() {
            return Some(lag.values().sum());
        }
        let total = JobMetrics::get(&live.expected_total);
        (total > 0).then(|| total.saturating_sub(JobMetrics::get(&live.records_in)))
    }

    /// A run starts with these counters.
    pub fn start_run(&mut self, live: Arc<JobMetrics>) {
        self.latency.start_run();
        self.live = Some(live);
    }

    /// Sample the running pipeline's write latencies.
    pub fn sample_latency(&mut self) {
        if let Some(live) = &self.live {
            self.latency.sample(live);
        }
    }

    /// Fold the finished run's counters into the totals.
    pub fn end_run(&mut self) {
        self.sample_latency();
        if let Some(live) = self.live.take() {
            self.totals.add(&Counters::of(&live));
            self.committed = Some(live.committed.lock().clone());
        }
    }
}

/// One hosted job.
pub struct JobHandle {
    /// The job name.
    pub name: String,
    /// What the runner is told.
    pub control: watch::Sender<Control>,
    /// What the runner reports.
    pub observed: watch::Sender<Observed>,
    /// Counters and shape.
    pub stats: Mutex<Stats>,
    /// Serializes control operations on this job.
    pub op: tokio::sync::Mutex<()>,
    runner: Mutex<Option<JoinHandle<()>>>,
}

impl JobHandle {
    /// The current control value.
    pub fn control(&self) -> Control {
        self.control.borrow().clone()
    }

    /// Take this job's operation lock, unless the job was deleted (while waiting for it, say):
    /// every control operation goes through here, so a request that raced a `DELETE` finds no
    /// job instead of bringing it back into the store or removing a new job of the same name.
    pub async fn lock_live(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let guard = self.op.lock().await;
        (!self.control.borrow().deleted).then_some(guard)
    }

    /// The current observation.
    pub fn observed(&self) -> Observed {
        self.observed.borrow().clone()
    }

    /// Change the control value; returns the new `seq`.
    fn update(&self, f: impl FnOnce(&mut Control)) -> u64 {
        let mut seq = 0;
        self.control.send_modify(|c| {
            f(c);
            c.seq += 1;
            seq = c.seq;
        });
        seq
    }
}

/// The jobs this worker hosts.
pub struct Supervisor {
    /// Shared with runners.
    pub ctx: Arc<Ctx>,
    jobs: Mutex<BTreeMap<String, Arc<JobHandle>>>,
    membership: tokio::sync::Mutex<()>,
}

/// Why a job could not be created.
#[derive(Debug)]
pub enum CreateError {
    /// A job of that name exists.
    Exists,
    /// The worker is shutting down.
    ShuttingDown,
    /// The store failed.
    Store(anyhow::Error),
}

impl Supervisor {
    /// A supervisor with no jobs yet.
    pub fn new(ctx: Ctx) -> Self {
        Self {
            ctx: Arc::new(ctx),
            jobs: Mutex::default(),
            membership: tokio::sync::Mutex::default(),
        }
    }

    /// Start every job in the store, each in its stored desired state.
    pub async fn start_stored(&self) -> anyhow::Result<usize> {
        let rows = self.ctx.store.list().await?;
        let n = rows.len();
        let _m = self.membership.lock().await;
        for row in rows {
            tracing::info!(job = %row.name, desired = row.desired.as_str(), "Resuming stored job.");
            let def = JobDef {
                name: row.name.clone(),
                config: row.config,
                source_file: row.source_file,
            };
            self.spawn(def, row.desired, row.last_error);
        }
        Ok(n)
    }

    fn spawn(&self, def: JobDef, desired: Desired, last_error: Option<String>) -> Arc<JobHandle> {
        let name = def.name.clone();
        let (control, _) = watch::channel(Control {
            desired,
            def: Arc::new(def),
            seq: 1,
            deleted: false,
        });
        let (observed, _) = watch::channel(Observed::initial(desired, last_error));
        let handle = Arc::new(JobHandle {
            name: name.clone(),
            control,
            observed,
            stats: Mutex::default(),
            op: tokio::sync::Mutex::default(),
            runner: Mutex::default(),
        });
        let task = tokio::spawn(super::runner::run(handle.clone(), self.ctx.clone()));
        *handle.runner.lock() = Some(task);
        self.jobs.lock().insert(name, handle.clone());
        handle
    }

    /// A job by name.
    pub fn get(&self, name: &str) -> Option<Arc<JobHandle>> {
        self.jobs.lock().get(name).cloned()
    }

    /// Every job, by name.
    pub fn list(&self) -> Vec<Arc<JobHandle>> {
        self.jobs.lock().values().cloned().collect()
    }

    /// Create and start a job (the caller validated the definition).
    pub async fn create(
        &self,
        def: JobDef,
        desired: Desired,
    ) -> Result<Arc<JobHandle>, CreateError> {
        let _m = self.membership.lock().await;
        if self.ctx.shutdown.is_cancelled() {
            return Err(CreateError::ShuttingDown);
        }
        if self.get(&def.name).is_some() {
            return Err(CreateError::Exists);
        }
        let row = JobRow {
            name: def.name.clone(),
            config: def.config.clone(),
            source_file: def.source_file.clone(),
            desired,
            status: State::Starting.as_str().into(),
            last_error: None,
        };
        self.ctx
            .store
            .upsert(&row)
            .await
            .map_err(CreateError::Store)?;
        tracing::info!(job = %def.name, "Job created.");
        Ok(self.spawn(def, desired, None))
    }

    /// Ask for a desired state; returns the control `seq` to wait for.
    pub async fn set_desired(&self, job: &JobHandle, desired: Desired) -> anyhow::Result<u64> {
        self.ctx.store.set_desired(&job.name, desired).await?;
        tracing::info!(job = %job.name, desired = desired.as_str(), "Job state requested.");
        Ok(job.update(|c| c.desired = desired))
    }

    /// Replace a job's definition (the runner restarts it if it runs).
    pub async fn update_config(&self, job: &JobHandle, def: JobDef) -> anyhow::Result<u64> {
        let control = job.control();
        self.ctx
            .store
            .upsert(&JobRow {
                name: def.name.clone(),
                config: def.config.clone(),
                source_file: def.source_file.clone(),
                desired: control.desired,
                status: job.observed().state.as_str().into(),
                last_error: None,
            })
            .await?;
        tracing::info!(job = %job.name, "Job config updated.");
        Ok(job.update(|c| c.def = Arc::new(def)))
    }

    /// Restart a job's pipeline (graceful stop, then start; resets the failure backoff).
    pub fn restart(&self, job: &JobHandle) -> u64 {
        tracing::info!(job = %job.name, "Job restart requested.");
        job.update(|_| {})
    }

    /// Stop a job gracefully, forget it and its positions. The caller holds the job's
    /// [`JobHandle::lock_live`] guard.
    pub async fn delete(&self, job: &Arc<JobHandle>) -> anyhow::Result<()> {
        job.update(|c| c.deleted = true);
        let task = job.runner.lock().take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(job = %job.name, error = %e, "Job runner panicked.");
        }
        // Sinks keep exactly-once checkpoints of their own: a job created again under this
        // name must not resume from them.
        let def = job.control().def.clone();
        let reset = super::offsets::reset_job(&self.ctx, &def, None).await;
        let _m = self.membership.lock().await;
        // No job of this name can have been created meanwhile (this one was still listed), but
        // the row and the entry are only this handle's to remove.
        let listed = self.get(&job.name).is_some_and(|j| Arc::ptr_eq(&j, job));
        if !listed {
            anyhow::bail!("job {} was already deleted", job.name);
        }
        self.ctx.store.delete(&job.name).await?;
        self.jobs.lock().remove(&job.name);
        // Forget the positions (a job created again under this name starts afresh), but keep
        // the rest of its directory: dead letters and relative output paths are user data.
        let dir = self.ctx.job_dir(&job.name);
        for file in ["offsets.db", "offsets.db-wal", "offsets.db-shm"] {
            match tokio::fs::remove_file(dir.join(file)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => anyhow::bail!("removing the positions of job {}: {e}", job.name),
            }
        }
        tracing::info!(job = %job.name, "Job deleted.");
        reset.map(|_| ()).map_err(|e| {
            anyhow::anyhow!(
                "job {} was deleted, but its positions could not all be reset ({e:#}): a job created again under this name may resume from a sink's stored checkpoint; reset it with `sluice reset` on its job file",
                job.name
            )
        })
    }

    /// Wait until the runner acted on `seq` and is in one of `states`; the last observation
    /// either way.
    pub async fn wait(
        &self,
        job: &JobHandle,
        seq: u64,
        states: &[State],
        timeout: Duration,
    ) -> (bool, Observed) {
        let mut rx = job.observed.subscribe();
        let reached = tokio::time::timeout(timeout, async {
            loop {
                {
                    let o = rx.borrow_and_update();
                    if o.seq >= seq && states.contains(&o.state) {
                        return true;
                    }
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return false },
                    _ = self.ctx.shutdown.cancelled() => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        (reached, job.observed())
    }

    /// After the shutdown token fired: wait for every runner to drain and commit.
    pub async fn join_all(&self) {
        let tasks: Vec<_> = self
            .list()
            .iter()
            .filter_map(|j| j.runner.lock().take().map(|t| (j.name.clone(), t)))
            .collect();
        for (name, task) in tasks {
            if let Err(e) = task.await {
                tracing::error!(job = %name, error = %e, "Job runner panicked.");
            }
        }
    }
}
