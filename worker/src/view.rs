//! JSON views of jobs: the summary in `GET /jobs`, the definition in `GET /jobs/{name}`, and
//! the status in `GET /jobs/{name}/status`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use super::model::{Counters, Failure, State};
use super::offsets::{self, PartitionOffset};
use super::supervisor::{Ctx, JobHandle};

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One line of `GET /jobs`.
#[derive(Serialize)]
pub struct Summary {
    name: String,
    state: State,
    desired: &'static str,
    origin: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    source_type: Option<String>,
    records_in: u64,
    /// Written end to end: the fewest any sink without a route (`when`) wrote.
    records_out: u64,
    /// Written by each sink, by name (a routed sink gets only what its route picks).
    sinks_out: BTreeMap<String, u64>,
    dead_lettered: u64,
    restarts: u64,
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
        desired: control.desired.as_str(),
        origin: if control.def.source_file.is_some() {
            "jobs-dir"
        } else {
            "api"
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

/// `GET /jobs/{name}`: the summary plus the definition (TOML text and as JSON).
pub fn detail(job: &JobHandle) -> Value {
    let def = job.control().def;
    let definition = toml::from_str::<toml::Table>(&def.config)
        .ok()
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or(Value::Null);
    let mut v = serde_json::to_value(summary(job)).unwrap_or_else(|_| json!({}));
    v["config"] = Value::from(def.config.clone());
    v["definition"] = definition;
    v
}

fn counters_json(c: &Counters) -> Value {
    json!({
        "records_in": c.records_in,
        "records_out": c.records_out(),
        "sinks_out": c.sinks_out(),
        "batches_in": c.batches_in,
        "dropped": c.dropped,
        "dead_lettered": c.dead_lettered,
        "commits": c.commits,
        "transform_ms": c.transform_micros as f64 / 1000.0,
    })
}

/// `GET /jobs/{name}/status`.
pub async fn status(ctx: &Ctx, job: &JobHandle) -> anyhow::Result<Value> {
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
    let sinks: Vec<Value> = shape
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
            json!({
                "name": name,
                "type": kind,
                "state": state,
                "records": c.records,
                "routed": c.routed,
                "bytes": c.bytes,
                "writes": c.writes,
                "errors": c.errors,
                "mean_write_ms": if c.writes > 0 {
                    c.write_micros as f64 / c.writes as f64 / 1000.0
                } else {
                    0.0
                },
            })
        })
        .collect();
    let retry_in_ms = observed.retry_at.and_then(|t| {
        (observed.state == State::Failed).then(|| {
            t.duration_since(SystemTime::now())
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        })
    });
    Ok(json!({
        "name": job.name,
        "state": observed.state,
        "desired": control.desired.as_str(),
        "since_ms": millis(observed.since),
        "restarts": observed.restarts,
        "retry_in_ms": retry_in_ms,
        "last_error": observed.last_error,
        "error": observed.failure,
        "source": {
            "type": shape.as_ref().map(|s| s.source_type.clone()),
            "owns_offsets": shape.as_ref().map(|s| s.source_owns_offsets),
            "partitions": partitions,
            "remaining_records": remaining,
        },
        "sinks": sinks,
        "counters": counters_json(&counters),
    }))
}
