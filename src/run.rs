//! `sluice run`, `sluice validate` and `sluice reset`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sluice_core::error::with_causes;
use sluice_core::metrics::JobMetrics;
use sluice_core::{Fault, Pipeline};
use tokio_util::sync::CancellationToken;

use crate::{exit, progress, registry, summary};

/// Validate a job file: everything `run` checks before it starts, plugins included.
pub fn validate(path: &Path) -> ExitCode {
    let pipeline = match registry::toolkit().assemble_file(path, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return exit::code(&e);
        }
    };
    let job = pipeline.job();
    println!(
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
    // What could only be checked by connecting: said, not silently assumed.
    let mut unchecked: Vec<String> = job
        .source
        .unchecked()
        .into_iter()
        .map(|u| format!("source ({}): {u}", job.source_type))
        .collect();
    for plan in job.sinks.iter().chain(job.dead_letter.as_ref()) {
        unchecked.extend(
            plan.sink
                .unchecked()
                .into_iter()
                .map(|u| format!("sink {:?} ({}): {u}", plan.name, plan.type_name)),
        );
    }
    if !unchecked.is_empty() {
        println!("Not checked (it needs the services; `sluice run` finds out):");
        for u in unchecked {
            println!("  - {u}");
        }
    }
    ExitCode::SUCCESS
}

/// Assemble a job off the async threads (plugins compile).
async fn assemble(path: &Path, state_dir: Option<&Path>) -> Result<Pipeline, ExitCode> {
    let (path, state_dir) = (path.to_path_buf(), state_dir.map(Path::to_path_buf));
    let assembled = tokio::task::spawn_blocking(move || {
        registry::toolkit().assemble_file(&path, state_dir.as_deref())
    })
    .await;
    match assembled {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => {
            eprintln!("{e}");
            Err(exit::code(&e))
        }
        Err(e) => {
            eprintln!("sluice: assembling the job panicked: {e}");
            Err(ExitCode::from(exit::INTERNAL))
        }
    }
}

/// How `sluice run` behaves around the job.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// A live progress line on a terminal.
    pub show_progress: bool,
    /// Print the end-of-run summary as a block for people on stderr too (not with JSON logs,
    /// whose readers expect JSON lines).
    pub human_summary: bool,
    /// Longest drain after the first signal.
    pub shutdown_timeout: Duration,
}

/// Run a job to completion or until a signal.
pub async fn run(path: &Path, state_dir: Option<&Path>, options: RunOptions) -> ExitCode {
    let RunOptions {
        show_progress,
        human_summary,
        shutdown_timeout,
    } = options;
    // Signal handlers first: loading a job (compiling its plugins) takes a while, and a SIGTERM
    // in that time must stop the job cleanly, not kill the process.
    let shutdown = CancellationToken::new();
    let draining: Arc<OnceLock<Arc<JobMetrics>>> = Arc::default();
    match Signals::install() {
        Ok(signals) => {
            tokio::spawn(signals.watch(shutdown.clone(), shutdown_timeout, draining.clone()));
        }
        Err(e) => tracing::warn!(error = %e, "Cannot install signal handlers."),
    }
    let pipeline = match assemble(path, state_dir).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let _ = draining.set(pipeline.metrics());
    let name = pipeline.job().name.clone();
    let guarantee = pipeline.job().delivery.guarantee;
    if shutdown.is_cancelled() {
        tracing::info!(job = %name, "Stopped by a signal before the job started; nothing was read.");
        return ExitCode::SUCCESS;
    }
    // Where each sink writes, for the summary: the run consumes the job.
    let places = summary::JobPlaces::of(pipeline.job(), path, state_dir);
    tracing::info!(job = %name, %guarantee, "Job starting.");
    let metrics = pipeline.metrics();
    let progress_done = CancellationToken::new();
    let progress =
        show_progress.then(|| tokio::spawn(progress::report(metrics, progress_done.clone())));
    let started = Instant::now();
    let result = pipeline.run(shutdown.clone()).await;
    let elapsed = started.elapsed();
    // The progress line is cleared before anything else is printed.
    progress_done.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    match result {
        Ok(report) => {
            let end = summary::Ending {
                report: &report,
                elapsed,
                interrupted: shutdown.is_cancelled(),
            };
            summary::log(&places, &end);
            if human_summary {
                eprint!("{}", summary::render(&places, &end));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Reported once, here, with its cause chain and whose fault it is.
            tracing::error!(
                job = %name,
                error = %with_causes(&e),
                kind = %e.kind(),
                retryable = e.retryable(),
                "Job failed; positions were committed only up to durable data, a restart resumes there."
            );
            exit::code(&e)
        }
    }
}

/// `sluice reset`: forget a job's positions, sink checkpoints included, after a warning.
pub async fn reset(path: &Path, state_dir: Option<&Path>, yes: bool) -> ExitCode {
    let job = match registry::toolkit().load_file(path, state_dir) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("{e}");
            return exit::code(&e);
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
            eprintln!("sluice: resetting job {name} failed: {}", with_causes(&e));
            exit::code(&e)
        }
    }
}

/// How often a long drain says what it waits on.
const DRAIN_REPORT: Duration = Duration::from_secs(5);

/// What a drain is waiting on: the sinks with a write call in progress (a sink retrying a
/// service that is down), with how long and the job's last error; else the pipeline as a whole.
fn waiting_on(metrics: Option<&Arc<JobMetrics>>) -> String {
    let Some(metrics) = metrics else {
        return "the job to load (plugins compiling)".into();
    };
    let writing: Vec<String> = metrics
        .sinks
        .iter()
        .filter_map(|s| {
            let busy = s.writing_for()?;
            Some(format!(
                "sink `{}` (a write in progress for {}, {} failed attempts so far)",
                s.name,
                humantime::format_duration(Duration::from_secs(busy.as_secs())),
                JobMetrics::get(&s.errors)
            ))
        })
        .collect();
    if writing.is_empty() {
        return "in-flight records to be written and committed".into();
    }
    match metrics.last_error.lock().clone() {
        Some(last) => format!("{}; last error: {last}", writing.join(", ")),
        None => writing.join(", "),
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

    /// First SIGINT/SIGTERM: graceful drain, for at most `timeout`, saying every few seconds
    /// what it waits on. Second signal, or the timeout: exit at once (positions stay at the last
    /// commit; a restart resumes there).
    async fn watch(
        mut self,
        shutdown: CancellationToken,
        timeout: Duration,
        metrics: Arc<OnceLock<Arc<JobMetrics>>>,
    ) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        tracing::info!(
            timeout = %humantime::format_duration(timeout),
            "Shutting down: draining in-flight records, flushing sinks, committing. Signal again to exit at once."
        );
        shutdown.cancel();
        let started = Instant::now();
        let mut tick = tokio::time::interval(DRAIN_REPORT);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = self.int.recv() => break tracing::warn!("Second signal: exiting without draining."),
                _ = self.term.recv() => break tracing::warn!("Second signal: exiting without draining."),
                _ = tokio::time::sleep_until((started + timeout).into()) => {
                    break tracing::error!(
                        timeout = %humantime::format_duration(timeout),
                        waiting_on = %waiting_on(metrics.get()),
                        "Shutdown timeout passed while draining: exiting without draining further. Positions stay at the last commit; a restart resumes there (raise --shutdown-timeout to wait longer)."
                    );
                }
                _ = tick.tick() => tracing::info!(
                    elapsed = %humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                    waiting_on = %waiting_on(metrics.get()),
                    "Still draining."
                ),
            }
        }
        std::process::exit(i32::from(exit::NOT_DRAINED));
    }
}
