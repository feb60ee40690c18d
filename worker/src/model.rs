//! The worker's vocabulary: desired and observed job states, the control value a job's runner
//! follows, and counter snapshots that survive the restarts of a job's pipeline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use sluice_core::error::{ErrorKind, Fault, causes};
use sluice_core::metrics::JobMetrics;
use utoipa::ToSchema;
use utoipa::openapi::{ObjectBuilder, Type};

/// What the operator asked a job to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Run the pipeline (restarting it with backoff when it fails).
    Running,
    /// Pipeline drained and stopped; resume continues where it was.
    Paused,
    /// Pipeline drained and stopped; offsets may be changed.
    Stopped,
}

impl Desired {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Paused => "paused",
            Desired::Stopped => "stopped",
        }
    }
}

impl std::str::FromStr for Desired {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "running" => Ok(Desired::Running),
            "paused" => Ok(Desired::Paused),
            "stopped" => Ok(Desired::Stopped),
            other => Err(format!("unknown desired state {other:?}")),
        }
    }
}

/// What a job is actually doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Loading the definition and building the pipeline.
    Starting,
    /// The pipeline is running.
    Running,
    /// Stopping the pipeline gracefully (drain, flush, commit) after a pause, stop, restart or
    /// config change.
    Draining,
    /// Paused by the operator.
    Paused,
    /// Stopped by the operator.
    Stopped,
    /// The last run failed; it is retried after a backoff.
    Failed,
    /// The source ended (a bounded source); everything was written and committed.
    Finished,
}

impl State {
    /// The reported spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Draining => "draining",
            State::Paused => "paused",
            State::Stopped => "stopped",
            State::Failed => "failed",
            State::Finished => "finished",
        }
    }

    /// Every state, for metrics.
    pub const ALL: [State; 7] = [
        State::Starting,
        State::Running,
        State::Draining,
        State::Paused,
        State::Stopped,
        State::Failed,
        State::Finished,
    ];
}

/// A job definition as the worker keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDef {
    /// The job name.
    pub name: String,
    /// TOML text.
    pub config: String,
    /// The jobs-dir file it came from, if any.
    pub source_file: Option<PathBuf>,
}

/// What a job's runner is told to do. Every change bumps `seq`.
#[derive(Clone, Debug)]
pub struct Control {
    /// Desired state.
    pub desired: Desired,
    /// Current definition.
    pub def: Arc<JobDef>,
    /// Bumped on every change; observations carry the `seq` they acted on.
    pub seq: u64,
    /// The job is being deleted: stop and exit.
    pub deleted: bool,
}

/// Why a run failed, as the status, the metrics and the page show it (Kafka Connect's FAILED
/// state with its trace): whose fault, whether the runner retries, and the cause chain.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Failure {
    /// The error.
    pub message: String,
    /// Whose fault: `config`, `data`, `external` or `internal`.
    #[schema(schema_with = error_kind_schema)]
    pub kind: ErrorKind,
    /// True when the runner retries on its own (an external service that may come back);
    /// otherwise the job stays `failed` until it is changed or restarted.
    pub retryable: bool,
    /// What caused it, outermost first.
    pub causes: Vec<String>,
    /// The sink that failed, if a sink did.
    pub sink: Option<String>,
}

/// [`ErrorKind`] (a core type) as a string enum.
fn error_kind_schema() -> ObjectBuilder {
    // Fails to compile when ErrorKind gains a variant, so the list below stays complete.
    let _: fn(ErrorKind) = |k| match k {
        ErrorKind::Config | ErrorKind::External | ErrorKind::Data | ErrorKind::Internal => {}
    };
    let kinds = [
        ErrorKind::Config,
        ErrorKind::Data,
        ErrorKind::External,
        ErrorKind::Internal,
    ];
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(kinds.map(ErrorKind::as_str)))
}

impl Failure {
    /// The classified form of an error.
    pub fn of<E: Fault + 'static>(err: &E, sink: Option<String>) -> Self {
        Self {
            message: err.to_string(),
            kind: err.kind(),
            retryable: err.retryable(),
            causes: causes(err),
            sink,
        }
    }

    /// A failure of the worker's own making (not retried).
    pub fn internal(message: String) -> Self {
        Self {
            message,
            kind: ErrorKind::Internal,
            retryable: false,
            causes: Vec::new(),
            sink: None,
        }
    }

    /// The message with its causes, on one line.
    pub fn text(&self) -> String {
        let mut text = self.message.clone();
        for c in &self.causes {
            text.push_str(": ");
            text.push_str(c);
        }
        text
    }
}

/// What a job's runner last reported.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Current state.
    pub state: State,
    /// The control `seq` this observation acted on.
    pub seq: u64,
    /// The last error (kept until a run succeeds).
    pub last_error: Option<String>,
    /// The sink that failed the last run, if it was a sink.
    pub failed_sink: Option<String>,
    /// Why the last run failed, classified (cleared when a run gets going).
    pub failure: Option<Failure>,
    /// Runs that failed since the worker started.
    pub restarts: u64,
    /// When the runner will try again (state `failed`).
    pub retry_at: Option<SystemTime>,
    /// When the state was entered.
    pub since: SystemTime,
}

impl Observed {
    /// The observation of a runner that has not reported yet.
    pub fn initial(desired: Desired, last_error: Option<String>) -> Self {
        Self {
            state: match desired {
                Desired::Running => State::Starting,
                Desired::Paused => State::Paused,
                Desired::Stopped => State::Stopped,
            },
            seq: 0,
            last_error,
            failed_sink: None,
            failure: None,
            restarts: 0,
            retry_at: None,
            since: SystemTime::now(),
        }
    }
}

/// Counters of one sink.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SinkCounters {
    /// Records durably written.
    pub records: u64,
    /// Bytes durably written.
    pub bytes: u64,
    /// Successful write calls.
    pub writes: u64,
    /// Failed write attempts.
    pub errors: u64,
    /// Sum of write latencies, microseconds.
    pub write_micros: u64,
    /// Records skipped (already covered by an exactly-once checkpoint).
    pub skipped: u64,
    /// The sink has a route (`when`) in the job's latest run: it gets only what its route picks.
    pub routed: bool,
}

/// Counters of a job, summed over its runs in this worker process.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Records read from the source.
    pub records_in: u64,
    /// Source batches read.
    pub batches_in: u64,
    /// Records dropped by transforms.
    pub dropped: u64,
    /// Records sent to the dead-letter sink.
    pub dead_lettered: u64,
    /// Time in transform calls, microseconds.
    pub transform_micros: u64,
    /// Commits made.
    pub commits: u64,
    /// Per sink, by name.
    pub sinks: BTreeMap<String, SinkCounters>,
}

impl Counters {
    /// A snapshot of a running pipeline's counters.
    pub fn of(m: &JobMetrics) -> Self {
        let get = JobMetrics::get;
        Self {
            records_in: get(&m.records_in),
            batches_in: get(&m.batches_in),
            dropped: get(&m.dropped),
            dead_lettered: get(&m.dead_lettered),
            transform_micros: get(&m.transform_micros),
            commits: get(&m.commits),
            sinks: m
                .sinks
                .iter()
                .map(|s| {
                    let c = SinkCounters {
                        records: get(&s.records),
                        bytes: get(&s.bytes),
                        writes: get(&s.writes),
                        errors: get(&s.errors),
                        write_micros: get(&s.write_micros),
                        skipped: get(&s.skipped),
                        routed: s.routed,
                    };
                    (s.name.clone(), c)
                })
                .collect(),
        }
    }

    /// Add another snapshot.
    pub fn add(&mut self, o: &Counters) {
        self.records_in += o.records_in;
        self.batches_in += o.batches_in;
        self.dropped += o.dropped;
        self.dead_lettered += o.dead_lettered;
        self.transform_micros += o.transform_micros;
        self.commits += o.commits;
        for (name, s) in &o.sinks {
            let t = self.sinks.entry(name.clone()).or_default();
            t.records += s.records;
            t.bytes += s.bytes;
            t.writes += s.writes;
            t.errors += s.errors;
            t.write_micros += s.write_micros;
            t.skipped += s.skipped;
            t.routed = s.routed;
        }
    }

    /// Records written end to end: the fewest any sink without a route wrote (see
    /// [`sluice_core::metrics::records_out`]); per sink in [`Counters::sinks_out`].
    pub fn records_out(&self) -> u64 {
        sluice_core::metrics::records_out(self.sinks.values().map(|s| (s.records, s.routed)))
    }

    /// Records written by each sink, by name.
    pub fn sinks_out(&self) -> BTreeMap<String, u64> {
        self.sinks
            .iter()
            .map(|(name, s)| (name.clone(), s.records))
            .collect()
    }
}

/// What the worker learned about a job's shape when it last loaded it.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    /// Source connector type.
    pub source_type: String,
    /// True when the source keeps its own offsets (no offset store).
    pub source_owns_offsets: bool,
    /// Sinks: (name, type), in job order.
    pub sinks: Vec<(String, String)>,
}
