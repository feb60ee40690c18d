//! Batch-write latency histograms per sink, for `/metrics`.
//!
//! The core keeps an exact histogram of every write per run of a pipeline. The runner samples
//! it every [`SAMPLE`] and adds what is new since the last sample, so the worker's histograms
//! run on across restarts of a job.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_core::metrics::{HistogramSnapshot, JobMetrics, LATENCY_BOUNDS as BOUNDS};

/// How often the runner samples a running pipeline's write counters.
pub const SAMPLE: Duration = Duration::from_millis(100);

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
    fn add(&mut self, now: &HistogramSnapshot, before: &HistogramSnapshot) {
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b += now.buckets[i].saturating_sub(before.buckets[i]);
        }
        self.sum_micros += now.sum_micros.saturating_sub(before.sum_micros);
        self.count += now.count.saturating_sub(before.count);
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
    /// Each sink's counters at the previous sample of the current run.
    last: BTreeMap<String, HistogramSnapshot>,
}

impl Latencies {
    /// A new run starts: its counters start at zero.
    pub fn start_run(&mut self) {
        self.last.clear();
    }

    /// Take a sample of the running pipeline's counters.
    pub fn sample(&mut self, metrics: &JobMetrics) {
        for s in &metrics.sinks {
            let now = s.write_latency.snapshot();
            let before = self.last.insert(s.name.clone(), now).unwrap_or_default();
            self.sinks
                .entry(s.name.clone())
                .or_default()
                .add(&now, &before);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_add_what_is_new_across_runs() {
        let mut l = Latencies::default();
        let run1 = JobMetrics::new(["out".to_string()]);
        run1.sinks[0]
            .write_latency
            .observe(Duration::from_millis(3));
        l.sample(&run1);
        run1.sinks[0]
            .write_latency
            .observe(Duration::from_millis(200));
        l.sample(&run1);
        l.sample(&run1);
        l.start_run();
        let run2 = JobMetrics::new(["out".to_string()]);
        run2.sinks[0]
            .write_latency
            .observe(Duration::from_millis(200));
        l.sample(&run2);
        let h = &l.sinks["out"];
        assert_eq!(h.count, 3);
        assert_eq!(h.sum_micros, 403_000);
        let cumulative = h.cumulative();
        assert_eq!(cumulative[0], ("0.005".to_string(), 1));
        assert_eq!(cumulative[4], ("0.1".to_string(), 1));
        assert_eq!(cumulative[5], ("0.25".to_string(), 3));
        assert_eq!(cumulative.last().unwrap(), &("+Inf".to_string(), 3));
    }
}
