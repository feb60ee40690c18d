//! JSON views of jobs: the summary in `GET /jobs`, the definition in `GET /jobs/{name}`, the
//! status in `GET /jobs/{name}/status` and the offsets in `GET /jobs/{name}/offsets`. Each is a
//! type, so the OpenAPI document describes exactly what is sent.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use utoipa::ToSchema;

use super::model::{Counters, Desired, Failure, State};
use super::offsets::{self, PartitionOffset};
use super::supervisor::{Ctx, JobHandle};

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a job's definition comes from.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Submitted through the API.
    Api,
    /// A file in `--jobs-dir`.
    JobsDir,
}

/// One line of `GET /jobs`.
#[derive(Serialize, ToSchema)]
#[schema(as = JobSummary)]
pub struct Summary {
    /// The job name.
    name: String,
    /// What the job is doing.
    state: State,
    /// What the operator asked it to be.
    desired: Desired,
    /// Where its definition comes from.
    origin: Origin,
    /// The jobs-dir file that defines it (origin `jobs-dir` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    /// Source connector type, once the job was loaded.
    source_type: Option<String>,
    /// Records read from the source.
    records_in: u64,
    /// Records written end to end: the fewest written by any sink without a route (`when`),
    /// each of which gets every record; when every sink is routed, the most any sink wrote.
    records_out: u64,
    /// Records written by each sink, by sink name. A routed sink (`when`) gets only the
    /// records its route picks.
    sinks_out: BTreeMap<String, u64>,
    /// Records sent to the dead-letter sink.
    dead_lettered: u64,
    /// Failed runs that were retried.
    restarts: u64,
    /// The last error on one line, kept until a run succeeds.
    last_error: Option<String>,
    /// Why the last run failed, classified; absent once a run gets going.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Failure>,
}

/// The summary of a job.
pub fn summary(job: &JobHandle) -> Summary {
    let control = job.control();
    let observed = job.observed();
    let stats = job.stats.lock();
    let counters = stats.counters();
    Summary {
        name: job.name.clone(),
        state: observed.state,
        desired: control.desired,
        origin: if control.def.source_file.is_some() {
            Origin::JobsDir
        } else {
            Origin::Api
        },
        file: control
            .def
            .source_file
            .as_ref()
            .map(|p| p.display().to_string()),
        source_type: stats.shape.as_ref().map(|s| s.source_type.clone()),
        records_in: counters.records_in,
        records_out: counters.records_out(),
        sinks_out: counters.sinks_out(),
        dead_lettered: counters.dead_lettered,
        restarts: observed.restarts,
        last_error: observed.last_error,
        error: observed.failure,
    }
}

/// `GET /jobs/{name}`: the summary plus the definition.
#[derive(Serialize, ToSchema)]
#[schema(as = Job)]
pub struct Detail {
    #[serde(flatten)]
    summary: Summary,
    /// The definition as TOML text.
    config: String,
    /// The definition as JSON.
    #[schema(value_type = Object)]
    definition: serde_json::Map<String, serde_json::Value>,
    /// Only in the answer to a create or update: why the job's services could not be asked when
    /// it was checked (unreachable); the job was accepted unchecked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<String>,
}

/// The detail of a job.
pub fn detail(job: &JobHandle) -> Detail {
    let def = job.control().def;
    let definition = toml::from_str::<toml::Table>(&def.config)
        .ok()
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| match v {
            serde_json::Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    Detail {
        summary: summary(job),
        config: def.config.clone(),
        definition,
        not_checked: None,
    }
}

/// A job's counters, summed over its runs in this worker process.
#[derive(Serialize, ToSchema)]
pub struct CountersView {
    /// Records read from the source.
    records_in: u64,
    /// Records written end to end (see `JobSummary.records_out`).
    records_out: u64,
    /// Records written by each sink, by sink name.
    sinks_out: BTreeMap<String, u64>,
    /// Source batches read.
    batches_in: u64,
    /// Records dropped by transforms.
    dropped: u64,
    /// Records sent to the dead-letter sink.
    dead_lettered: u64,
    /// Checkpoints committed.
    commits: u64,
    /// Time in transform calls, milliseconds.
    transform_ms: f64,
}

impl CountersView {
    fn of(c: &Counters) -> Self {
        Self {
            records_in: c.records_in,
            records_out: c.records_out(),
            sinks_out: c.sinks_out(),
            batches_in: c.batches_in,
            dropped: c.dropped,
            dead_lettered: c.dead_lettered,
            commits: c.commits,
            transform_ms: c.transform_micros as f64 / 1000.0,
        }
    }
}

/// The source of a job, in its status.
#[derive(Serialize, ToSchema)]
pub struct SourceStatus {
    /// Connector type, once the job was loaded.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// True when the source keeps its own offsets (they cannot be changed through the worker).
    owns_offsets: Option<bool>,
    /// The committed position of each partition.
    partitions: Vec<PartitionOffset>,
    /// Records the source has yet to deliver, for sources that know their total.
    remaining_records: Option<u64>,
}

/// One sink of a job, in its status.
#[derive(Serialize, ToSchema)]
pub struct SinkStatus {
    /// Sink name.
    name: String,
    /// Connector type.
    #[serde(rename = "type")]
    kind: String,
    /// The job's state, or `failed` for the sink that failed its last run.
    state: State,
    /// Records durably written (a routed sink counts only what its route picked).
    records: u64,
    /// The sink has a route (`when`).
    routed: bool,
    /// Bytes durably written.
    bytes: u64,
    /// Successful write calls.
    writes: u64,
    /// Failed write attempts.
    errors: u64,
    /// Mean latency of a successful write, milliseconds.
    mean_write_ms: f64,
}

/// `GET /jobs/{name}/status`, and the answer to a state change.
#[derive(Serialize, ToSchema)]
#[schema(as = JobStatus)]
pub struct Status {
    /// The job name.
    name: String,
    /// What the job is doing.
    state: State,
    /// What the operator asked it to be.
    desired: Desired,
    /// When the job entered `state`, milliseconds since the Unix epoch.
    since_ms: u64,
    /// Failed runs that were retried.
    restarts: u64,
    /// When the worker retries a failed job, milliseconds from now (state `failed` only).
    retry_in_ms: Option<u64>,
    /// The last error on one line, kept until a run succeeds.
    last_error: Option<String>,
    /// Why the last run failed, classified; null once a run gets going.
    error: Option<Failure>,
    /// The source.
    source: SourceStatus,
    /// Each sink, in job order.
    sinks: Vec<SinkStatus>,
    /// Counters over the job's runs in this worker process.
    counters: CountersView,
}

/// The status of a job.
pub async fn status(ctx: &Ctx, job: &JobHandle) -> anyhow::Result<Status> {
    let control = job.control();
    let observed = job.observed();
    let (counters, committed, shape, remaining) = {
        let stats = job.stats.lock();
        (
            stats.counters(),
            stats.committed(),
            stats.shape.clone(),
            stats.remaining(),
        )
    };
    let committed = match committed {
        Some(cp) => Some(cp),
        None => offsets::load(&ctx.job_dir(&job.name), &job.name).await?,
    };
    let partitions: Vec<PartitionOffset> =
        committed.as_ref().map(offsets::to_rows).unwrap_or_default();
    let sinks = shape
        .as_ref()
        .map(|s| s.sinks.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|(name, kind)| {
            let c = counters.sinks.get(name).cloned().unwrap_or_default();
            let state = if observed.failed_sink.as_deref() == Some(name) {
                State::Failed
            } else {
                observed.state
            };
            SinkStatus {
                name: name.clone(),
                kind: kind.clone(),
                state,
                records: c.records,
                routed: c.routed,
                bytes: c.bytes,
                writes: c.writes,
                errors: c.errors,
                mean_write_ms: if c.writes > 0 {
                    c.write_micros as f64 / c.writes as f64 / 1000.0
                } else {
                    0.0
                },
            }
        })
        .collect();
    let retry_in_ms = observed.retry_at.and_then(|t| {
        (observed.state == State::Failed).then(|| {
            t.duration_since(SystemTime::now())
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        })
    });
    Ok(Status {
        name: job.name.clone(),
        state: observed.state,
        desired: control.desired,
        since_ms: millis(observed.since),
        restarts: observed.restarts,
        retry_in_ms,
        last_error: observed.last_error,
        error: observed.failure,
        source: SourceStatus {
            kind: shape.as_ref().map(|s| s.source_type.clone()),
            owns_offsets: shape.as_ref().map(|s| s.source_owns_offsets),
            partitions,
            remaining_records: remaining,
        },
        sinks,
        counters: CountersView::of(&counters),
    })
}

/// `GET /jobs/{name}/offsets`.
#[derive(Serialize, ToSchema)]
pub struct Offsets {
    /// The job name.
    pub name: String,
    /// What the job is doing (offsets may be changed only while it is `stopped`).
    pub state: State,
    /// True when the source keeps its own offsets; null until the job was loaded.
    pub source_owns_offsets: Option<bool>,
    /// The committed position of each partition.
    pub offsets: Vec<PartitionOffset>,
}

/// The answer to `PATCH` and `DELETE /jobs/{name}/offsets`: the positions now stored.
#[derive(Serialize, ToSchema)]
pub struct OffsetsChanged {
    /// The job name.
    pub name: String,
    /// The committed position of each partition.
    pub offsets: Vec<PartitionOffset>,
}
