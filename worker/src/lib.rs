//! `sluice worker`: a long-lived daemon that hosts many jobs behind a REST API (in the spirit
//! of Kafka Connect's worker), with metrics, health endpoints and a status page.
//!
//! - `store`: job definitions, desired state and status in `<state-dir>/worker.db` (SQLite);
//!   each job's positions live in its own offset store under `<state-dir>/jobs/<name>/`.
//! - `supervisor` + `runner`: one runner task per job runs its pipeline, stops it gracefully on
//!   request and restarts it with backoff when it fails.
//! - `api` + `jobs_api`: the HTTP routes; `view`, `prometheus`, `page`: what they render.
//! - `connect_api`, `connect_plugins`, `connect_view`, `flat`: Kafka Connect's REST API on
//!   the same jobs, through the same functions.
//! - `jobs_dir`: TOML files in `--jobs-dir`, loaded at start and reloaded on change.

mod api;
mod config;
mod connect_api;
mod connect_plugins;
mod connect_view;
mod error;
mod flat;
mod guard;
mod jobs_api;
mod jobs_dir;
mod latency;
mod model;
mod offsets;
mod openapi;
mod page;
mod prometheus;
mod runner;
mod store;
mod supervisor;
mod tap_api;
mod tls;
mod view;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use sluice_core::job::Interpolation;
use sluice_core::local::Confinement;
use tokio_util::sync::CancellationToken;

use supervisor::{Ctx, Supervisor};

/// `sluice worker`: host many jobs behind a REST API.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Address to serve the API on.
    #[arg(long, default_value = "127.0.0.1:8083", env = "SLUICE_WORKER_LISTEN")]
    pub listen: SocketAddr,
    /// Directory for job definitions, states and positions (created if missing).
    #[arg(long, env = "SLUICE_WORKER_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Directory of job files (`*.toml`), loaded at start and reloaded when they change.
    #[arg(long, env = "SLUICE_WORKER_JOBS_DIR")]
    pub jobs_dir: Option<PathBuf>,
    /// File holding a bearer token; when set, every request but /healthz and /readyz needs
    /// `Authorization: Bearer <token>`.
    #[arg(long, env = "SLUICE_WORKER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve on a non-loopback `--listen` without a token: anyone who reaches the port can run
    /// jobs. Without this flag such a worker refuses to start.
    #[arg(long, env = "SLUICE_WORKER_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// What `${env:...}` / `${file:...}` in jobs submitted through the API may read:
    /// `env:PREFIX_*,env:NAME,file:/etc/sluice/secrets/`. Nothing by default (the worker's
    /// environment and files are not the API caller's); job files in `--jobs-dir` may read
    /// anything.
    #[arg(long, env = "SLUICE_WORKER_ALLOW_INTERPOLATION", value_parser = parse_interpolation)]
    pub allow_interpolation: Option<Interpolation>,
    /// A directory whose files jobs submitted through the API may read and write: file
    /// source and sink paths, SQLite databases, dead-letter files, certificates, sockets —
    /// every local path a connector opens, compared after `..` and symlinks are resolved.
    /// Repeat for more; relative paths in API jobs resolve against the first. Without it, API
    /// jobs may name no local file at all. The worker's --state-dir stays off limits; job files
    /// in --jobs-dir (the operator's) are not confined.
    #[arg(long = "data-dir", value_name = "DIR", env = "SLUICE_WORKER_DATA_DIR")]
    pub data_dir: Vec<PathBuf>,
    /// A directory of WebAssembly plugins (`transforms[].plugin`) jobs submitted through the
    /// API may load. Repeat for more. Without it, API jobs may use no plugin.
    #[arg(
        long = "plugins-dir",
        value_name = "DIR",
        env = "SLUICE_WORKER_PLUGINS_DIR"
    )]
    pub plugins_dir: Vec<PathBuf>,
    /// PEM certificate chain: serve HTTPS (with `--tls-key`) instead of plain HTTP.
    #[arg(long, env = "SLUICE_WORKER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "SLUICE_WORKER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

fn parse_interpolation(spec: &str) -> Result<Interpolation, String> {
    Interpolation::parse(spec)
}

fn read_token(path: &std::path::Path) -> anyhow::Result<Arc<str>> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let token = token.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "the token file {} is empty",
        path.display()
    );
    Ok(Arc::from(token))
}

/// Hold an exclusive lock on the state directory for the life of the worker: two workers on
/// one state directory would run every job twice. The OS releases it when the process dies.
fn lock_state_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))?;
    let path = dir.join("worker.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another worker is using the state directory {}",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Wait for SIGINT or SIGTERM.
async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot listen for SIGTERM.");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Run the worker until SIGINT/SIGTERM, then drain and commit every job.
pub async fn run(args: WorkerArgs, toolkit: sluice_core::job::Toolkit) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let stop = CancellationToken::new();
    let signals = tokio::spawn({
        let stop = stop.clone();
        async move {
            termination().await;
            tracing::info!("Shutting down: draining every job.");
            stop.cancel();
        }
    });
    let served = serve(listener, args, toolkit, stop).await;
    signals.abort();
    served
}

/// Serve the worker on `listener` until `stop` fires, then drain and commit every job. This is
/// the worker embedded in another program (or a test): it installs no signal handler.
pub async fn serve(
    listener: tokio::net::TcpListener,
    args: WorkerArgs,
    toolkit: sluice_core::job::Toolkit,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    // Read before anything starts: a bad certificate stops the worker with the file's name.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let listen = listener.local_addr()?;
    let loopback_only = listen.ip().is_loopback();
    anyhow::ensure!(
        loopback_only || token.is_some() || args.allow_unauthenticated,
        "refusing to serve on {listen} without a token: anyone who reaches it could run jobs. \
         Set --token-file, listen on 127.0.0.1, or pass --allow-unauthenticated"
    );
    if !loopback_only && token.is_none() {
        tracing::warn!(%listen, "The worker API is open to anyone who reaches {listen}: no token (--allow-unauthenticated).");
    }
    let _lock = lock_state_dir(&args.state_dir)?;
    let store = store::Store::open(&args.state_dir).await?;
    let state_dir = std::fs::canonicalize(&args.state_dir)?;
    let confinement = Confinement::new(&args.data_dir, &args.plugins_dir)
        .context("opening a --data-dir or --plugins-dir")?
        .with_private(&state_dir);
    let data_dir = args
        .data_dir
        .first()
        .map(std::fs::canonicalize)
        .transpose()?;
    let shutdown = CancellationToken::new();
    let sup = Arc::new(Supervisor::new(Ctx {
        store: store.clone(),
        api_toolkit: toolkit
            .with_interpolation(
                args.allow_interpolation
                    .clone()
                    .unwrap_or_else(Interpolation::none),
            )
            .with_confinement(confinement),
        toolkit,
        state_dir,
        data_dir,
        shutdown: shutdown.clone(),
    }));
    let ready = Arc::new(AtomicBool::new(false));
    let app = api::App {
        sup: sup.clone(),
        token,
        ready: ready.clone(),
        loopback_only,
        worker_id: Arc::from(listen.to_string()),
    };
    let router = api::router(app);
    let stopped = shutdown.clone().cancelled_owned();
    let (server, scheme) = match &tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config.clone())?;
            let served = axum::serve(listener, router).with_graceful_shutdown(stopped);
            (tokio::spawn(served.into_future()), "https")
        }
        None => {
            let served = axum::serve(listener, router).with_graceful_shutdown(stopped);
            (tokio::spawn(served.into_future()), "http")
        }
    };
    tracing::info!(%listen, %scheme, state_dir = %args.state_dir.display(), "Worker listening.");

    let resumed = sup.start_stored().await?;
    let watcher = match &args.jobs_dir {
        Some(dir) => {
            let mut jobs_dir = jobs_dir::JobsDir::new(sup.clone(), dir)
                .with_context(|| format!("opening the jobs directory {}", dir.display()))?;
            jobs_dir.scan().await;
            Some(tokio::spawn(jobs_dir.watch(shutdown.clone())))
        }
        None => None,
    };
    ready.store(true, Ordering::SeqCst);
    tracing::info!(jobs = sup.list().len(), resumed, "Worker ready.");

    tokio::select! {
        _ = stop.cancelled() => {}
        _ = shutdown.cancelled() => {}
    }
    ready.store(false, Ordering::SeqCst);
    shutdown.cancel();
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    sup.join_all().await;
    let served = server.await;
    store.close().await;
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e).context("serving the API"),
        Err(e) => anyhow::bail!("the API server panicked: {e}"),
    }
    tracing::info!("Worker stopped; every job drained and committed.");
    Ok(())
}
