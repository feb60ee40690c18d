//! `sluice run` and `sluice validate`.

use std::path::Path;
use std::process::ExitCode;

use sluice_core::job::load_job_file;
use tokio_util::sync::CancellationToken;

use crate::{pipeline, progress, registry};

/// Exit code for an invalid job file.
const EXIT_CONFIG: u8 = 2;

/// Validate a job file: everything `run` checks before it starts, plugins included.
pub fn validate(path: &Path) -> ExitCode {
    let registry = registry::builtin();
    let job = match load_job_file(path, None, &registry) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let summary = format!(
        "{}: job {:?} is valid: {} → {} transform(s) → {} sink(s) [{}], {} guarantee",
        job.file,
        job.name,
        job.source_type,
        job.transforms.len(),
        job.sinks.len(),
        job.sinks
            .iter()
            .map(|s| format!("{} ({})", s.name, s.type_name))
            .collect::<Vec<_>>()
            .join(", "),
        job.delivery.guarantee
    );
    match pipeline::build(job) {
        Ok(_) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Run a job to completion or until a signal.
pub async fn run(path: &Path, state_dir: Option<&Path>, show_progress: bool) -> ExitCode {
    // Signal handlers first: loading a job (compiling its plugins) takes a while, and a SIGTERM
    // in that time must stop the job cleanly, not kill the process.
    let shutdown = CancellationToken::new();
    match Signals::install() {
        Ok(signals) => {
            tokio::spawn(signals.watch(shutdown.clone()));
        }
        Err(e) => tracing::warn!(error = %e, "Cannot install signal handlers."),
    }
    let registry = registry::builtin();
    let job = match load_job_file(path, state_dir, &registry) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let name = job.name.clone();
    let guarantee = job.delivery.guarantee;
    let pipeline = match pipeline::build(job) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if shutdown.is_cancelled() {
        tracing::info!(job = %name, "Stopped by a signal before the job started; nothing was read.");
        return ExitCode::SUCCESS;
    }
    tracing::info!(job = %name, %guarantee, "Job starting.");
    let metrics = pipeline.metrics();
    let progress_done = CancellationToken::new();
    let progress =
        show_progress.then(|| tokio::spawn(progress::report(metrics, progress_done.clone())));
    let result = pipeline.run(shutdown.clone()).await;
    progress_done.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    match result {
        Ok(report) => {
            let out = report
                .records_out
                .iter()
                .map(|(n, c)| format!("{n}={c}"))
                .collect::<Vec<_>>()
                .join(" ");
            tracing::info!(
                job = %name,
                records_in = report.records_in,
                records_out = %out,
                dropped = report.dropped,
                dead_lettered = report.dead_lettered,
                interrupted = shutdown.is_cancelled(),
                "Job finished."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(job = %name, error = %e, "Job failed; positions were committed only up to durable data, a restart resumes there.");
            eprintln!("sluice: job {name} failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// `sluice reset`: forget a job's positions, sink checkpoints included, after a warning.
pub async fn reset(path: &Path, state_dir: Option<&Path>, yes: bool) -> ExitCode {
    let registry = registry::builtin();
    let job = match load_job_file(path, state_dir, &registry) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let name = job.name.clone();
    let mut sinks: Vec<&str> = job.sinks.iter().map(|s| s.name.as_str()).collect();
    sinks.extend(job.dead_letter.as_ref().map(|s| s.name.as_str()));
    eprintln!(
        "Resetting job {name:?} forgets its positions: the offset store in {} and the checkpoints stored with the sinks ({}).\n\
         WARNING: data already written to the sinks stays there. The next run starts from the beginning of the source and writes it all again, dead letters included: with exactly-once too, the sinks will hold it twice.",
        job.state_dir.display(),
        sinks.join(", ")
    );
    if job.source.owns_offsets() {
        eprintln!(
            "The {} source keeps its own offsets (a consumer group): reset them there too, or the next run resumes from them.",
            job.source_type
        );
    }
    if !yes {
        eprintln!(
            "Nothing was changed. To reset, run: sluice reset {} --yes",
            path.display()
        );
        return ExitCode::from(1);
    }
    match sluice_core::runtime::reset_positions(job, None).await {
        Ok(report) => {
            eprintln!(
                "Job {name:?} reset (sink checkpoints: {}).",
                if report.sinks.is_empty() {
                    "none".to_string()
                } else {
                    report.sinks.join(", ")
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice: resetting job {name} failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGINT and SIGTERM, registered with the OS as soon as this is built.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// First SIGINT/SIGTERM: graceful drain. Second: exit at once (positions stay at the last
    /// commit).
    async fn watch(mut self, shutdown: CancellationToken) {
        for round in 0..2 {
            tokio::select! {
                _ = self.int.recv() => {}
                _ = self.term.recv() => {}
            }
            if round == 0 {
                tracing::info!(
                    "Shutting down: draining in-flight records, flushing sinks, committing. Signal again to exit at once."
                );
                shutdown.cancel();
            } else {
                tracing::warn!("Second signal: exiting without draining.");
                std::process::exit(130);
            }
        }
    }
}
