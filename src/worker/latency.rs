//! Batch-write latency histograms per sink, for `/metrics`.
//!
//! The core counts writes and their total time per sink. The runner samples those counters
//! every [`SAMPLE`]; the writes of one window go into the bucket of that window's mean latency.
//! With a window this short that is usually one write per sample (exact); `_sum` and `_count`
//! are always exact.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_core::metrics::JobMetrics;

/// How often the runner samples a running pipeline's write counters.
pub const SAMPLE: Duration = Duration::from_millis(100);

/// Upper bounds of the buckets, seconds (Prometheus' defaults).
pub const BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One sink's histogram.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    pub buckets: [u64; BOUNDS.len() + 1],
    /// Sum of observed latencies, microseconds.
    pub sum_micros: u64,
    /// Observations.
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, n: u64, total_micros: u64) {
        if n == 0 {
            return;
        }
        let mean = total_micros as f64 / n as f64 / 1e6;
        let i = BOUNDS
            .iter()
            .position(|b| mean <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i] += n;
        self.sum_micros += total_micros;
        self.count += n;
    }

    /// `(upper bound, cumulative count)` pairs, ending with `+Inf`.
    pub fn cumulative(&self) -> Vec<(String, u64)> {
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, n) in self.buckets.iter().enumerate() {
            acc += n;
            let le = BOUNDS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            out.push((le, acc));
        }
        out
    }
}

/// Histograms of a job's sinks, fed from samples of the running pipeline's counters.
#[derive(Debug, Default)]
pub struct Latencies {
    /// Per sink name.
    pub sinks: BTreeMap<String, Histogram>,
    /// `(writes, write_micros)` at the previous sample of the current run.
    last: BTreeMap<String, (u64, u64)>,
}

impl Latencies {
    /// A new run starts: its counters start at zero.
    pub fn start_run(&mut self) {
        self.last.clear();
    }

    /// Take a sample of the running pipeline's counters.
    pub fn sample(&mut self, metrics: &JobMetrics) {
        for s in &metrics.sinks {
            let now = (JobMetrics::get(&s.writes), JobMetrics::get(&s.write_micros));
            let before = self.last.insert(s.name.clone(), now).unwrap_or((0, 0));
            let (n, micros) = (
                now.0.saturating_sub(before.0),
                now.1.saturating_sub(before.1),
            );
            self.sinks
                .entry(s.name.clone())
                .or_default()
                .observe(n, micros);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_go_to_the_bucket_of_their_mean() {
        let metrics = JobMetrics::new(["out".to_string()]);
        let mut l = Latencies::default();
        JobMetrics::add(&metrics.sinks[0].writes, 1);
        JobMetrics::add(&metrics.sinks[0].write_micros, 3_000);
        l.sample(&metrics);
        JobMetrics::add(&metrics.sinks[0].writes, 2);
        JobMetrics::add(&metrics.sinks[0].write_micros, 400_000);
        l.sample(&metrics);
        l.sample(&metrics);
        let h = &l.sinks["out"];
        assert_eq!(h.count, 3);
        assert_eq!(h.sum_micros, 403_000);
        let cumulative = h.cumulative();
        assert_eq!(cumulative[0], ("0.005".to_string(), 1));
        assert_eq!(cumulative[5], ("0.25".to_string(), 3));
        assert_eq!(cumulative.last().unwrap(), &("+Inf".to_string(), 3));
    }
}
