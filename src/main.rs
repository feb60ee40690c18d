//! `sluice`: run connector jobs, validate them, list connectors, build and test plugins, and
//! host many jobs as a worker daemon.

mod connectors_cmd;
mod exit;
mod plugin_cli;
mod progress;
mod registry;
mod run;
mod schema_cmd;
mod summary;
mod watch_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Sluice: a pluggable stream-connector framework.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    /// Log format on standard error.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SLUICE_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Largest size of the compiled-plugin cache (`~/.cache/sluice/wasm`, or
    /// `$SLUICE_CACHE_DIR`); the least recently used artifacts are removed beyond it.
    #[arg(
        long,
        global = true,
        default_value = "512MiB",
        env = "SLUICE_CACHE_MAX_SIZE",
        value_parser = parse_size
    )]
    cache_max_size: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job until its source ends (or SIGINT/SIGTERM: drain, commit, exit 0).
    Run {
        /// The job file.
        job: PathBuf,
        /// State directory (offset store, default dead-letter file); default `.sluice/<job>`
        /// beside the job file.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// No live progress line, even on a terminal.
        #[arg(long)]
        no_progress: bool,
        /// After SIGINT/SIGTERM, how long draining may take (a sink that keeps failing is
        /// retried until then) before the process exits without draining further; positions
        /// stay at the last commit, so nothing is lost. Like Kubernetes' grace period.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        shutdown_timeout: std::time::Duration,
    },
    /// Start a job over: forget its positions everywhere a run resumes from (the offset store,
    /// and with exactly-once each sink's stored checkpoint). Data already in the sinks stays
    /// there and is written again by the next run. With `--set`, move only the given
    /// partitions instead.
    Reset {
        /// The job file.
        job: PathBuf,
        /// State directory, as given to `sluice run`.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Do it (without it, only say what would be reset).
        #[arg(long)]
        yes: bool,
        /// `PARTITION=OFFSET`: set this partition's position (the next run continues after
        /// it) and keep the others; repeatable. Partitions as `sluice offsets` shows them.
        #[arg(long = "set", value_name = "PARTITION=OFFSET")]
        set: Vec<String>,
    },
    /// Show a job's committed positions: one `PARTITION<TAB>OFFSET` line per source
    /// partition, from its offset store.
    Offsets {
        /// The job file.
        job: PathBuf,
        /// State directory, as given to `sluice run`.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Check a job file without running it: syntax, fields, connector configs, plugins,
    /// delivery capabilities.
    Validate {
        /// The job file.
        job: PathBuf,
    },
    /// List every connector with its configuration fields.
    Connectors {
        /// Print JSON schemas instead of the reference.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of a job file (for editor completion), or with `--reference` the
    /// job-level reference generated from it.
    Schema {
        /// Print the job-level reference instead of the JSON Schema.
        #[arg(long)]
        reference: bool,
    },
    /// Write, build and try WebAssembly transform plugins.
    #[command(subcommand)]
    Plugin(plugin_cli::PluginCommand),
    /// Run the worker daemon: many jobs, a REST API, metrics and health endpoints.
    Worker(sluice_worker::WorkerArgs),
    /// Print live records of a worker's job at a stage (after the source, a transform, per
    /// sink, dead letters), sampled, as JSON lines.
    Tap(watch_cmd::TapArgs),
    /// Live throughput of a worker's jobs, per job and per sink.
    Top(watch_cmd::TopArgs),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: not in files, pipes or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        // Log lines clear `sluice run`'s live progress line before they are written.
        .with_writer(|| progress::LogWriter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    sluice_transforms::set_cache_max_size(cli.cache_max_size);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run {
                job,
                state_dir,
                no_progress,
                shutdown_timeout,
            } => {
                let options = run::RunOptions {
                    show_progress: !no_progress,
                    human_summary: matches!(cli.log_format, LogFormat::Text),
                    shutdown_timeout,
                };
                run::run(&job, state_dir.as_deref(), options).await
            }
            Command::Reset {
                job,
                state_dir,
                yes,
                set,
            } => run::reset(&job, state_dir.as_deref(), yes, &set).await,
            Command::Offsets { job, state_dir } => run::offsets(&job, state_dir.as_deref()).await,
            Command::Validate { job } => run::validate(&job).await,
            Command::Connectors { json } => {
                connectors_cmd::print(&registry::builtin(), json);
                ExitCode::SUCCESS
            }
            Command::Schema { reference } => {
                schema_cmd::print(&registry::builtin(), reference);
                ExitCode::SUCCESS
            }
            Command::Plugin(cmd) => report(tokio::task::block_in_place(|| plugin_cli::run(cmd))),
            Command::Worker(args) => report(sluice_worker::run(args, registry::toolkit()).await),
            Command::Tap(args) => report(watch_cmd::tap(args).await),
            Command::Top(args) => report(watch_cmd::top(args).await),
        }
    })
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `30s`, `2m`, `500ms`: a duration as job files write them.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like \"30s\": {e}"))
}

/// `512MiB`, `1GB`: a size as job files write them.
fn parse_size(s: &str) -> Result<u64, String> {
    sluice_core::ByteSize::parse(s).map(|b| b.0)
}
