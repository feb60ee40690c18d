//! Counters a running job keeps, read by the CLI progress line and the worker's `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::record::Checkpoint;

/// Upper bounds of the latency histogram buckets, seconds (Prometheus' defaults).
pub const LATENCY_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with fixed buckets, updated lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket of [`LATENCY_BOUNDS`]; the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A copy of a [`Histogram`]'s counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    pub buckets: [u64; LATENCY_BOUNDS.len() + 1],
    /// Sum of observations, microseconds.
    pub sum_micros: u64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The current counters.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

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
    /// Latency of every successful write call.
    pub write_latency: Histogram,
    /// Records skipped because the sink's exactly-once checkpoint already covered them.
    pub skipped: AtomicU64,
    /// True when the sink has a route (`when`): it gets only the records the route selects, so
    /// its count says nothing about how far the job is.
    pub routed: bool,
    /// When the write call in progress started, in ms since the Unix epoch; 0 when none is
    /// (a drain that waits says which sink it waits on).
    pub writing_since_ms: AtomicU64,
}

impl SinkMetrics {
    /// Mark a write call in progress until the guard is dropped (also when the call is
    /// cancelled).
    pub fn writing(&self) -> Writing<'_> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis().max(1) as u64);
        self.writing_since_ms.store(now, Ordering::Relaxed);
        Writing(&self.writing_since_ms)
    }

    /// How long the write call in progress has taken, if one is.
    pub fn writing_for(&self) -> Option<std::time::Duration> {
        let since = self.writing_since_ms.load(Ordering::Relaxed);
        (since > 0).then(|| {
            let since = std::time::UNIX_EPOCH + std::time::Duration::from_millis(since);
            since.elapsed().unwrap_or_default()
        })
    }
}

/// A write call in progress ([`SinkMetrics::writing`]).
pub struct Writing<'a>(&'a AtomicU64);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
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
    /// Records not yet read, per source partition, for sources that know it (Kafka lag).
    pub source_lag: Mutex<BTreeMap<String, u64>>,
    /// Live samples of the records passing each stage (`sluice tap`).
    pub taps: crate::tap::Taps,
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

    /// Records written by each sink, in job order.
    pub fn written(&self) -> Vec<(String, u64)> {
        self.sinks
            .iter()
            .map(|s| (s.name.clone(), Self::get(&s.records)))
            .collect()
    }

    /// Records written end to end; see [`records_out`].
    pub fn records_out(&self) -> u64 {
        records_out(self.sinks.iter().map(|s| (Self::get(&s.records), s.routed)))
    }
}

/// Records written end to end, from each sink's (records written, routed): the fewest written
/// by a sink that gets every record (one without `when`), since each of them must have written
/// a record for it to be done. A routed sink's count only says how many records its route
/// picked, so it is left out, unless every sink is routed: then the most any sink wrote.
/// Displays show the per-sink counts beside it.
pub fn records_out(sinks: impl IntoIterator<Item = (u64, bool)>) -> u64 {
    let (mut unrouted, mut routed) = (None::<u64>, 0u64);
    for (records, is_routed) in sinks {
        if is_routed {
            routed = routed.max(records);
        } else {
            unrouted = Some(unrouted.map_or(records, |m| m.min(records)));
        }
    }
    unrouted.unwrap_or(routed)
}

#[cfg(test)]
mod tests {
    use super::records_out;

    #[test]
    fn records_out_ignores_routed_sinks_unless_all_are_routed() {
        // archive got everything, device-state lags, alerts got the 1% its route picks.
        assert_eq!(records_out([(1000, false), (900, false), (10, true)]), 900);
        assert_eq!(records_out([(10, true), (25, true)]), 25);
        assert_eq!(records_out([]), 0);
    }
}
