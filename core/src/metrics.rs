//! Counters a running job keeps, read by the CLI progress line and the worker's `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::record::Checkpoint;

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// Sink name.
    pub name: String,
    /// Records durably written.
    pub records: AtomicU64,
    /// Bytes durably written (keys, values, headers).
    pub bytes: AtomicU64,
    /// Successful write calls.
    pub writes: AtomicU64,
    /// Failed write attempts (retried or fatal).
    pub errors: AtomicU64,
    /// Sum of write latencies, microseconds (with `writes`: the mean).
    pub write_micros: AtomicU64,
    /// Records skipped because the sink's exactly-once checkpoint already covered them.
    pub skipped: AtomicU64,
}

/// Counters of one job. Cheap to update from every stage.
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Records read from the source (decoded or not).
    pub records_in: AtomicU64,
    /// Source batches read.
    pub batches_in: AtomicU64,
    /// Records dropped by transforms (filtered).
    pub dropped: AtomicU64,
    /// Records sent to the dead-letter sink.
    pub dead_lettered: AtomicU64,
    /// Time spent in transform calls, microseconds.
    pub transform_micros: AtomicU64,
    /// Total expected records, when the source knows (0 = unknown).
    pub expected_total: AtomicU64,
    /// Per-sink counters, in job order.
    pub sinks: Vec<SinkMetrics>,
    /// The last committed checkpoint.
    pub committed: Mutex<Checkpoint>,
    /// Commits made.
    pub commits: AtomicU64,
    /// The last error, for status displays.
    pub last_error: Mutex<Option<String>>,
}

impl JobMetrics {
    /// Metrics for a job with these sink names.
    pub fn new(sinks: impl IntoIterator<Item = String>) -> Self {
        Self {
            sinks: sinks
                .into_iter()
                .map(|name| SinkMetrics {
                    name,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Add to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Read a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Records written by the slowest sink: what is done end to end.
    pub fn records_out_min(&self) -> u64 {
        self.sinks
            .iter()
            .map(|s| Self::get(&s.records))
            .min()
            .unwrap_or(0)
    }
}
