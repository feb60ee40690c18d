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
    },
    /// Start a job over: forget its positions everywhere a run resumes from (the offset store,
    /// and with exactly-once each sink's stored checkpoint). Data already in the sinks stays
    /// there and is written again by the next run.
    Reset {
        /// The job file.
        job: PathBuf,
        /// State directory, as given to `sluice run`.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Do it (without it, only say what would be reset).
        #[arg(long)]
        yes: bool,
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
            } => {
                let human = matches!(cli.log_format, LogFormat::Text);
                run::run(&job, state_dir.as_deref(), !no_progress, human).await
            }
            Command::Reset {
                job,
                state_dir,
                yes,
            } => run::reset(&job, state_dir.as_deref(), yes).await,
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
