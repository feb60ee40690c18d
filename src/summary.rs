//! The summary `sluice run` prints when a job ends: how long it ran, what it read, what each
//! sink wrote and where, dead letters and where they went; or, for a finished bounded job run
//! again, that there was nothing new to read and how to start over.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_core::job::{LoadedJob, SinkPlan};
use sluice_core::runtime::RunReport;

/// Where a sink writes, taken from the job before the run consumes it.
#[derive(Clone, Debug)]
pub struct SinkPlace {
    /// Sink name.
    pub name: String,
    /// Connector type.
    pub type_name: String,
    /// [`sluice_core::connector::Sink::destination`]: never holds credentials.
    pub destination: Option<String>,
    /// The route (`when`), as written: `header route = "alert"`.
    pub route: Option<String>,
}

impl SinkPlace {
    fn of(plan: &SinkPlan) -> Self {
        Self {
            name: plan.name.clone(),
            type_name: plan.type_name.clone(),
            destination: plan.sink.destination(),
            route: plan.common.when.as_ref().map(ToString::to_string),
        }
    }

    fn place(&self) -> String {
        match &self.destination {
            Some(d) => d.clone(),
            None => format!("a {} sink that does not say where", self.type_name),
        }
    }
}

/// What the summary needs to know about the job besides the run's counters.
#[derive(Clone, Debug)]
pub struct JobPlaces {
    /// The job name.
    pub name: String,
    /// The job file, as the user named it.
    pub file: PathBuf,
    /// `--state-dir`, when given (the reset command needs it too).
    pub state_dir_flag: Option<PathBuf>,
    /// The state directory in use.
    pub state_dir: PathBuf,
    /// The sinks, in job order.
    pub sinks: Vec<SinkPlace>,
    /// The dead-letter sink; `None` when a bad record stops the job.
    pub dead_letter: Option<SinkPlace>,
}

impl JobPlaces {
    /// Capture from a loaded job (call before `Pipeline::run` consumes it).
    pub fn of(job: &LoadedJob, file: &Path, state_dir_flag: Option<&Path>) -> Self {
        Self {
            name: job.name.clone(),
            file: file.to_path_buf(),
            state_dir_flag: state_dir_flag.map(Path::to_path_buf),
            state_dir: job.state_dir.clone(),
            sinks: job.sinks.iter().map(SinkPlace::of).collect(),
            dead_letter: job.dead_letter.as_ref().map(SinkPlace::of),
        }
    }

    fn reset_command(&self) -> String {
        match &self.state_dir_flag {
            Some(dir) => format!(
                "sluice reset {} --state-dir {} --yes",
                self.file.display(),
                dir.display()
            ),
            None => format!("sluice reset {} --yes", self.file.display()),
        }
    }
}

/// How a run ended, for the summary.
pub struct Ending<'a> {
    /// The run's report.
    pub report: &'a RunReport,
    /// Wall time of the run (assembly not included).
    pub elapsed: Duration,
    /// Stopped by SIGINT/SIGTERM (drained and committed) rather than by the source ending.
    pub interrupted: bool,
}

impl Ending<'_> {
    /// The run read nothing because an earlier run already read the bounded input to its end.
    pub fn nothing_new(&self) -> bool {
        !self.interrupted && self.report.records_in == 0 && self.report.resumed.is_some()
    }

    fn rate(&self) -> u64 {
        (self.report.records_in as f64 / self.elapsed.as_secs_f64().max(1e-3)).round() as u64
    }
}

/// The summary block for people (several lines, ending in a newline).
pub fn render(job: &JobPlaces, end: &Ending<'_>) -> String {
    let report = end.report;
    let mut out = String::new();
    if end.nothing_new() {
        let resumed = report.resumed.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "Nothing new to read: job {:?} already read its input up to {resumed} (state in {}).\n\
             To start over (the sinks get everything again), run: {}",
            job.name,
            job.state_dir.display(),
            job.reset_command()
        );
        return out;
    }
    let how = if end.interrupted {
        "stopped by a signal after"
    } else {
        "finished in"
    };
    let _ = writeln!(
        out,
        "Job {:?} {how} {}: read {} records ({} rec/s).",
        job.name,
        seconds(end.elapsed),
        report.records_in,
        end.rate()
    );
    let name_w = job.sinks.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let count_w = report
        .records_out
        .iter()
        .map(|(_, n)| n.to_string().len())
        .max()
        .unwrap_or(1);
    for sink in &job.sinks {
        let written = report
            .records_out
            .iter()
            .find(|(n, _)| *n == sink.name)
            .map_or(0, |(_, c)| *c);
        let route = sink
            .route
            .as_ref()
            .map(|r| format!(" (only records with {r})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<name_w$}  wrote {written:>count_w$} to {}{route}",
            sink.name,
            sink.place()
        );
    }
    let dead = match &job.dead_letter {
        Some(dl) => format!("dead-lettered {} to {}", report.dead_lettered, dl.place()),
        None => format!(
            "dead-lettered {} (no dead-letter sink: a bad record stops the job)",
            report.dead_lettered
        ),
    };
    let _ = writeln!(out, "  dropped by transforms {} · {dead}", report.dropped);
    if end.interrupted {
        let _ = writeln!(
            out,
            "Positions are committed up to what the sinks hold; `sluice run {}` resumes there.",
            job.file.display()
        );
    }
    out
}

/// The same facts as one structured log event. Lists are `name=value` joined by commas, no
/// spaces, so that text logs stay one `key=value` per field.
pub fn log(job: &JobPlaces, end: &Ending<'_>) {
    let report = end.report;
    let records_out = report
        .records_out
        .iter()
        .map(|(n, c)| format!("{n}={c}"))
        .collect::<Vec<_>>()
        .join(",");
    let destinations = job
        .sinks
        .iter()
        .map(|s| format!("{}={}", s.name, s.place()))
        .collect::<Vec<_>>()
        .join(",");
    let dead_letter_to = job
        .dead_letter
        .as_ref()
        .map(SinkPlace::place)
        .unwrap_or_default();
    let resumed_from = report
        .resumed
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    tracing::info!(
        job = %job.name,
        elapsed_ms = end.elapsed.as_millis() as u64,
        records_in = report.records_in,
        rate = end.rate(),
        records_out = %records_out,
        destinations = %destinations,
        dropped = report.dropped,
        dead_lettered = report.dead_lettered,
        dead_letter_to = %dead_letter_to,
        interrupted = end.interrupted,
        nothing_new = end.nothing_new(),
        resumed_from = %resumed_from,
        "Job finished."
    );
}

/// `0.4s`, `12.3s`, `2m05s`, `1h02m`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, s as u64 % 60)
    } else {
        format!("{}h{:02}m", (s / 3600.0) as u64, (s as u64 / 60) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::record::{Checkpoint, Position};

    fn places() -> JobPlaces {
        let sink = |name: &str, dest: &str, route: Option<&str>| SinkPlace {
            name: name.into(),
            type_name: "file".into(),
            destination: Some(dest.into()),
            route: route.map(Into::into),
        };
        JobPlaces {
            name: "iot".into(),
            file: "connector.toml".into(),
            state_dir_flag: None,
            state_dir: ".sluice/iot".into(),
            sinks: vec![
                sink("archive", "/data/out/archive.jsonl", None),
                sink(
                    "alerts",
                    "sqlite:///data/out/iot.db/alerts",
                    Some("header route"),
                ),
            ],
            dead_letter: Some(sink("dead-letter", "/data/out/dlq.jsonl", None)),
        }
    }

    #[test]
    fn summary_names_each_sink_its_count_and_where_it_wrote() {
        let report = RunReport {
            records_in: 2000,
            records_out: vec![("archive".into(), 1998), ("alerts".into(), 20)],
            dead_lettered: 2,
            ..Default::default()
        };
        let end = Ending {
            report: &report,
            elapsed: Duration::from_secs(4),
            interrupted: false,
        };
        let text = render(&places(), &end);
        assert_eq!(
            text,
            "Job \"iot\" finished in 4.0s: read 2000 records (500 rec/s).\n  \
             archive  wrote 1998 to /data/out/archive.jsonl\n  \
             alerts   wrote   20 to sqlite:///data/out/iot.db/alerts (only records with header route)\n  \
             dropped by transforms 0 · dead-lettered 2 to /data/out/dlq.jsonl\n"
        );
    }

    #[test]
    fn a_run_that_read_nothing_after_resuming_says_the_input_was_already_read() {
        let mut cp = Checkpoint::default();
        cp.advance(&Position::int("datagen".into(), 1999));
        let report = RunReport {
            records_out: vec![("archive".into(), 0), ("alerts".into(), 0)],
            resumed: Some(cp),
            ..Default::default()
        };
        let mut end = Ending {
            report: &report,
            elapsed: Duration::from_millis(30),
            interrupted: false,
        };
        let text = render(&places(), &end);
        assert!(
            text.starts_with(
                "Nothing new to read: job \"iot\" already read its input up to datagen@1999 (state in .sluice/iot)."
            ),
            "{text}"
        );
        assert!(text.contains("sluice reset connector.toml --yes"), "{text}");
        // Stopped by a signal before anything came: not the same thing.
        end.interrupted = true;
        assert!(render(&places(), &end).contains("stopped by a signal after 0.0s"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_millis(400)), "0.4s");
        assert_eq!(seconds(Duration::from_secs(125)), "2m05s");
        assert_eq!(seconds(Duration::from_secs(3720)), "1h02m");
    }
}
