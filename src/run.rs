//! `sluice run`, `sluice validate` and `sluice reset`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use sluice_core::error::with_causes;
use sluice_core::{ErrorKind, Fault, Pipeline};
use tokio_util::sync::CancellationToken;

use crate::{exit, progress, registry, summary};

/// Validate a job file: everything `run` checks before it starts, plugins included, then
/// what the sinks can find out without changing anything (`Sink::check`: e.g. that a MongoDB
/// server has transactions for exactly-once).
pub async fn validate(path: &Path) -> ExitCode {
    let mut pipeline = match registry::toolkit().assemble_file(path, None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return exit::code(&e);
        }
    };
    let (refused, not_asked) = check_sinks(&mut pipeline).await;
    if !refused.is_empty() {
        for r in &refused {
            eprintln!("{r}");
        }
        return ExitCode::from(exit::CONFIG);
    }
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
    unchecked.extend(not_asked);
    if !unchecked.is_empty() {
        println!("Not checked (it needs the services; `sluice run` finds out):");
        for u in unchecked {
            println!("  - {u}");
        }
    }
    ExitCode::SUCCESS
}

/// Ask each sink (`Sink::check`): the refusals as `file: field: message` lines, and the sinks
/// whose service could not be asked, with why.
async fn check_sinks(pipeline: &mut Pipeline) -> (Vec<String>, Vec<String>) {
    let job = pipeline.job_mut();
    let (mut refused, mut not_asked) = (Vec::new(), Vec::new());
    for (i, plan) in job.sinks.iter_mut().enumerate() {
        let ctx = sluice_core::SinkContext {
            job: job.name.clone(),
            sink: plan.name.clone(),
            guarantee: job.delivery.guarantee,
        };
        let Err(e) = plan.sink.check(&ctx).await else {
            continue;
        };
        let sink = format!("sinks[{i}] ({:?}, type {:?})", plan.name, plan.type_name);
        if e.kind != ErrorKind::Config {
            not_asked.push(format!(
                "sink {:?} ({}): could not be asked: {}",
                plan.name,
                plan.type_name,
                with_causes(&e)
            ));
            continue;
        }
        // `guarantee` is the job's, not the sink's: the delivery section names it.
        let field = match e.field.as_deref() {
            Some("guarantee") => "delivery.guarantee".to_string(),
            Some(f) => format!("sinks[{i}].{f}"),
            None => format!("sinks[{i}]"),
        };
        refused.push(format!("{}: {field}: {sink}: {}", job.file, e.message));
    }
    (refused, not_asked)
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

/// Run a job to completion or until a signal. `human_summary`: print the end-of-run summary
/// as a block for people on stderr too (not with JSON logs, whose readers expect JSON lines).
pub async fn run(
    path: &Path,
    state_dir: Option<&Path>,
    show_progress: bool,
    human_summary: bool,
) -> ExitCode {
    // Signal handlers first: loading a job (compiling its plugins) takes a while, and a SIGTERM
    // in that time must stop the job cleanly, not kill the process.
    let shutdown = CancellationToken::new();
    match Signals::install() {
        Ok(signals) => {
            tokio::spawn(signals.watch(shutdown.clone()));
        }
        Err(e) => tracing::warn!(error = %e, "Cannot install signal handlers."),
    }
    let pipeline = match assemble(path, state_dir).await {
        Ok(p) => p,
        Err(code) => return code,
    };
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
