//! `GET /metrics`: every job's counters in the Prometheus text format (version 0.0.4).
//!
//! Counters are summed over the job's runs in this worker process, so they only go down when
//! the worker restarts (which Prometheus handles as a counter reset).

use std::fmt::Write;

use super::model::State;
use super::supervisor::Supervisor;

/// A metric family being written: `# HELP`, `# TYPE`, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Self { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Render every job's metrics.
pub fn render(sup: &Supervisor) -> String {
    let jobs: Vec<_> = sup
        .list()
        .into_iter()
        .map(|job| {
            let stats = job.stats.lock();
            (
                job.name.clone(),
                job.observed(),
                stats.counters(),
                stats.remaining(),
                stats.latency.sinks.clone(),
            )
        })
        .collect();
    let mut out = String::new();

    let mut f = Family::new(
        &mut out,
        "sluice_job_state",
        "gauge",
        "1 for the state each job is in.",
    );
    for (name, observed, _, _, _) in &jobs {
        for state in State::ALL {
            let v = f64::from(u8::from(observed.state == state));
            f.sample(
                "sluice_job_state",
                &[("job", name), ("state", state.as_str())],
                v,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "sluice_job_failure",
        "gauge",
        "1 while a job's last run failed: whose fault (config, data, external, internal) and whether the worker retries it on its own.",
    );
    for (name, observed, _, _, _) in &jobs {
        if let Some(failure) = &observed.failure {
            f.sample(
                "sluice_job_failure",
                &[
                    ("job", name),
                    ("kind", failure.kind.as_str()),
                    (
                        "retryable",
                        if failure.retryable { "true" } else { "false" },
                    ),
                ],
                1.0,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "sluice_job_restarts_total",
        "counter",
        "Runs of the job that failed and were retried.",
    );
    for (name, observed, _, _, _) in &jobs {
        f.sample(
            "sluice_job_restarts_total",
            &[("job", name)],
            observed.restarts as f64,
        );
    }

    let mut f = Family::new(
        &mut out,
        "sluice_records_total",
        "counter",
        "Records per job and stage: read by the source, dropped or dead-lettered, written by each sink.",
    );
    for (name, _, c, _, _) in &jobs {
        let n = "sluice_records_total";
        f.sample(
            n,
            &[("job", name), ("stage", "source"), ("outcome", "in")],
            c.records_in as f64,
        );
        f.sample(
            n,
            &[
                ("job", name),
                ("stage", "transforms"),
                ("outcome", "dropped"),
            ],
            c.dropped as f64,
        );
        f.sample(
            n,
            &[
                ("job", name),
                ("stage", "dead_letter"),
                ("outcome", "dead_lettered"),
            ],
            c.dead_lettered as f64,
        );
        for (sink, s) in &c.sinks {
            f.sample(
                n,
                &[
                    ("job", name),
                    ("stage", "sink"),
                    ("sink", sink),
                    ("outcome", "out"),
                ],
                s.records as f64,
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "sluice_source_batches_total",
        "counter",
        "Batches read from the source.",
    );
    for (name, _, c, _, _) in &jobs {
        f.sample(
            "sluice_source_batches_total",
            &[("job", name)],
            c.batches_in as f64,
        );
    }
    let mut f = Family::new(
        &mut out,
        "sluice_source_remaining_records",
        "gauge",
        "Records the source has yet to deliver (lag), for sources that know it.",
    );
    for (name, _, _, remaining, _) in &jobs {
        if let Some(r) = remaining {
            f.sample(
                "sluice_source_remaining_records",
                &[("job", name)],
                *r as f64,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "sluice_commits_total",
        "counter",
        "Checkpoints committed.",
    );
    for (name, _, c, _, _) in &jobs {
        f.sample("sluice_commits_total", &[("job", name)], c.commits as f64);
    }
    let mut f = Family::new(
        &mut out,
        "sluice_plugin_call_seconds_total",
        "counter",
        "Time spent in WebAssembly transform calls.",
    );
    for (name, _, c, _, _) in &jobs {
        f.sample(
            "sluice_plugin_call_seconds_total",
            &[("job", name)],
            c.transform_micros as f64 / 1e6,
        );
    }

    let mut f = Family::new(
        &mut out,
        "sluice_sink_bytes_total",
        "counter",
        "Bytes durably written per sink.",
    );
    for (name, _, c, _, _) in &jobs {
        for (sink, s) in &c.sinks {
            f.sample(
                "sluice_sink_bytes_total",
                &[("job", name), ("sink", sink)],
                s.bytes as f64,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "sluice_sink_write_errors_total",
        "counter",
        "Failed write attempts per sink (retried or fatal).",
    );
    for (name, _, c, _, _) in &jobs {
        for (sink, s) in &c.sinks {
            f.sample(
                "sluice_sink_write_errors_total",
                &[("job", name), ("sink", sink)],
                s.errors as f64,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "sluice_sink_write_seconds",
        "histogram",
        "Latency of successful batch writes per sink (bucketed by the mean of each 100 ms sample).",
    );
    for (name, _, _, _, latency) in &jobs {
        for (sink, h) in latency {
            for (le, n) in h.cumulative() {
                f.sample(
                    "sluice_sink_write_seconds_bucket",
                    &[("job", name), ("sink", sink), ("le", &le)],
                    n as f64,
                );
            }
            let labels = [("job", name.as_str()), ("sink", sink.as_str())];
            f.sample(
                "sluice_sink_write_seconds_sum",
                &labels,
                h.sum_micros as f64 / 1e6,
            );
            f.sample("sluice_sink_write_seconds_count", &labels, h.count as f64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = String::new();
        let mut f = Family::new(&mut out, "x_total", "counter", "Help.");
        f.sample("x_total", &[("job", "j\"1")], 3.0);
        assert_eq!(
            out,
            "# HELP x_total Help.\n# TYPE x_total counter\nx_total{job=\"j\\\"1\"} 3\n"
        );
    }
}
