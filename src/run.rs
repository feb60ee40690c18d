//! `sluice run`, `sluice validate`, `sluice reset` and `sluice offsets`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sluice_core::error::with_causes;
use sluice_core::metrics::JobMetrics;
use sluice_core::offset_store::OffsetStore;
use sluice_core::{Checkpoint, Fault, Offset, Pipeline};
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
    // The same check the worker runs on a job submitted to it.
    let unchecked = match pipeline.job_mut().check().await {
        Ok(unchecked) => unchecked,
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
    let unchecked: Vec<String> = unchecked
        .needs_running
        .into_iter()
        .chain(unchecked.not_asked)
        .collect();
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

/// The checkpoint in a job's offset store, without creating the store.
async fn stored(
    state_dir: &Path,
    job: &str,
) -> Result<Option<Checkpoint>, sluice_core::ConnectorError> {
    let path = state_dir.join("offsets.db");
    if !path.exists() {
        return Ok(None);
    }
    let store = OffsetStore::open(&path).await?;
    let cp = store.load(job).await;
    store.close().await;
    cp
}

/// `sluice offsets`: the job's committed positions, one `partition<TAB>offset` line each.
pub async fn offsets(path: &Path, state_dir: Option<&Path>) -> ExitCode {
    let job = match registry::toolkit().load_file(path, state_dir) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("{e}");
            return exit::code(&e);
        }
    };
    if job.source.owns_offsets() {
        eprintln!(
            "The {} source keeps its own offsets (a consumer group): see them there.",
            job.source_type
        );
        return ExitCode::SUCCESS;
    }
    match stored(&job.state_dir, &job.name).await {
        Ok(Some(cp)) => {
            for (partition, offset) in &cp.offsets {
                println!("{partition}\t{offset}");
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!(
                "Job {:?} has committed no positions (in {}): its next run starts at the beginning of the source, or where the source's configuration says.",
                job.name,
                job.state_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "sluice: reading the positions of job {}: {}",
                job.name,
                with_causes(&e)
            );
            exit::code(&e)
        }
    }
}

/// Parse `--set PARTITION=OFFSET` values. An offset keeps the kind of the partition's stored
/// one (text for a Kinesis sequence number, however short); for a partition not stored yet a
/// decimal that fits 64 bits is a number, anything else text.
fn parse_set(set: &[String], stored: Option<&Checkpoint>) -> Result<Checkpoint, String> {
    let mut cp = Checkpoint::default();
    for arg in set {
        let Some((partition, offset)) = arg.rsplit_once('=') else {
            return Err(format!("--set {arg:?}: expected PARTITION=OFFSET"));
        };
        if partition.is_empty() || offset.is_empty() {
            return Err(format!("--set {arg:?}: expected PARTITION=OFFSET"));
        }
        let offset = match (
            stored.and_then(|cp| cp.get(partition)),
            offset.parse::<i64>(),
        ) {
            (Some(Offset::Text(_)), _) => Offset::Text(offset.to_string()),
            (Some(Offset::Int(_)), Err(_)) => {
                return Err(format!(
                    "--set {arg:?}: partition {partition} has numeric offsets, {offset:?} is not one"
                ));
            }
            (_, Ok(n)) => Offset::Int(n),
            (None, Err(_)) => Offset::Text(offset.to_string()),
        };
        cp.offsets.insert(partition.into(), offset);
    }
    Ok(cp)
}

/// `sluice reset`: forget a job's positions, sink checkpoints included, after a warning; with
/// `set`, move only those partitions.
pub async fn reset(path: &Path, state_dir: Option<&Path>, yes: bool, set: &[String]) -> ExitCode {
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
    let patch = if set.is_empty() {
        None
    } else {
        let current = match stored(&job.state_dir, &name).await {
            Ok(cp) => cp,
            Err(e) => {
                eprintln!(
                    "sluice: reading the positions of job {name}: {}",
                    with_causes(&e)
                );
                return exit::code(&e);
            }
        };
        match parse_set(set, current.as_ref()) {
            Ok(cp) => Some(cp),
            Err(e) => {
                eprintln!("sluice: {e}");
                return ExitCode::from(2);
            }
        }
    };
    match &patch {
        None => eprintln!(
            "Resetting job {name:?} forgets its positions: the offset store in {} and the checkpoints stored with the sinks ({}).\n\
             WARNING: data already written to the sinks stays there. The next run starts from the beginning of the source and writes it all again, dead letters included: with exactly-once too, the sinks will hold it twice.",
            job.state_dir.display(),
            sinks.join(", ")
        ),
        Some(cp) => eprintln!(
            "Setting the positions of job {name:?} for {} (other partitions keep theirs): in the offset store in {} and, with exactly-once, the checkpoints stored with the sinks ({}).\n\
             WARNING: the next run continues after these positions; what the sinks hold after them is written again, what lies between the old and the new positions is skipped when moving forward.",
            cp.offsets
                .keys()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            job.state_dir.display(),
            sinks.join(", ")
        ),
    }
    if job.source.owns_offsets() {
        eprintln!(
            "The {} source keeps its own offsets (a consumer group): reset them there too, or the next run resumes from them.",
            job.source_type
        );
    }
    if !yes {
        eprintln!(
            "Nothing was changed. To reset, run: sluice reset {}{} --yes",
            path.display(),
            set.iter()
                .map(|s| format!(" --set '{s}'"))
                .collect::<String>()
        );
        return ExitCode::from(1);
    }
    match sluice_core::runtime::reset_positions(job, patch.as_ref()).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_offsets_keep_the_kind_of_the_stored_ones() {
        let mut stored = Checkpoint::default();
        stored
            .offsets
            .insert("arn/shardId-0".into(), Offset::Text("99".into()));
        stored.offsets.insert("file".into(), Offset::Int(7));
        let cp = parse_set(
            &[
                "arn/shardId-0=42".into(),
                "file=3".into(),
                "new=x1".into(),
                "n=5".into(),
            ],
            Some(&stored),
        )
        .unwrap();
        assert_eq!(cp.get("arn/shardId-0"), Some(&Offset::Text("42".into())));
        assert_eq!(cp.get("file"), Some(&Offset::Int(3)));
        assert_eq!(cp.get("new"), Some(&Offset::Text("x1".into())));
        assert_eq!(cp.get("n"), Some(&Offset::Int(5)));
        assert!(parse_set(&["file=abc".into()], Some(&stored)).is_err());
        assert!(parse_set(&["no-equals".into()], None).is_err());
        assert!(parse_set(&["=1".into()], None).is_err());
    }
}
