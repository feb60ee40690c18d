//! `--jobs-dir`: every `*.toml` file in the directory is a job. The directory is scanned at
//! start and then every second: a new file creates its job, a changed file replaces the
//! definition (restarting the job), a removed file deletes the job. A file that does not
//! validate is logged and skipped; the version already running (if any) keeps running.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config;
use super::model::{Desired, JobDef};
use super::supervisor::{CreateError, Supervisor};

/// How often the directory is scanned.
const POLL: Duration = Duration::from_secs(1);

/// Watches one directory.
pub struct JobsDir {
    sup: Arc<Supervisor>,
    dir: PathBuf,
    /// Content of each file as last applied (or rejected).
    seen: BTreeMap<PathBuf, String>,
}

impl JobsDir {
    /// A watcher of `dir` (made absolute, so stored file paths stay meaningful).
    pub fn new(sup: Arc<Supervisor>, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            sup,
            dir: std::fs::canonicalize(dir)?,
            seen: BTreeMap::new(),
        })
    }

    /// Scan until `shutdown` fires.
    pub async fn watch(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.cancelled() => return,
            }
            self.scan().await;
        }
    }

    /// One pass over the directory.
    pub async fn scan(&mut self) {
        let files = match self.list().await {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "Cannot read the jobs directory.");
                return;
            }
        };
        let present: BTreeSet<PathBuf> = files.keys().cloned().collect();
        // Removed files (also those removed while the worker was down).
        for job in self.sup.list() {
            let def = job.control().def;
            if let Some(file) = &def.source_file
                && file.starts_with(&self.dir)
                && !present.contains(file)
            {
                let Some(_op) = job.lock_live().await else {
                    continue;
                };
                tracing::info!(job = %job.name, file = %file.display(), "Job file removed; deleting the job.");
                if let Err(e) = self.sup.delete(&job).await {
                    tracing::error!(job = %job.name, error = %e, "Could not delete the job.");
                }
            }
        }
        self.seen.retain(|path, _| present.contains(path));
        for (path, text) in files {
            if self.seen.get(&path) == Some(&text) {
                continue;
            }
            self.seen.insert(path.clone(), text.clone());
            self.apply(path, text).await;
        }
    }

    async fn list(&self) -> std::io::Result<BTreeMap<PathBuf, String>> {
        let mut files = BTreeMap::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") && entry.file_type().await?.is_file() {
                match tokio::fs::read_to_string(&path).await {
                    Ok(text) => {
                        files.insert(path, text);
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "Cannot read job file.")
                    }
                }
            }
        }
        Ok(files)
    }

    async fn apply(&self, path: PathBuf, text: String) {
        let ctx = &self.sup.ctx;
        let Some(name) = config::job_name(&text).filter(|n| !n.starts_with('.')) else {
            tracing::error!(file = %path.display(), "Job file has no valid `name`; skipped.");
            return;
        };
        let def = JobDef {
            name: name.clone(),
            config: text,
            source_file: Some(path.clone()),
        };
        if let Err(e) = ctx.assemble(&def).await {
            tracing::error!(file = %path.display(), errors = %e, "Job file is invalid; skipped.");
            return;
        }
        // The file now names another job: the old one goes.
        for job in self.sup.list() {
            if job.name != name && job.control().def.source_file.as_ref() == Some(&path) {
                let Some(_op) = job.lock_live().await else {
                    continue;
                };
                if let Err(e) = self.sup.delete(&job).await {
                    tracing::error!(job = %job.name, error = %e, "Could not delete the job.");
                }
            }
        }
        match self.sup.get(&name) {
            None => match self.sup.create(def, Desired::Running).await {
                Ok(_) => tracing::info!(job = %name, file = %path.display(), "Job file loaded."),
                Err(CreateError::Exists | CreateError::ShuttingDown) => {}
                Err(CreateError::Store(e)) => {
                    tracing::error!(job = %name, error = %e, "Could not create the job.")
                }
            },
            Some(job) if job.control().def.source_file.as_ref() == Some(&path) => {
                if *job.control().def != def
                    && let Some(_op) = job.lock_live().await
                {
                    match self.sup.update_config(&job, def).await {
                        Ok(_) => tracing::info!(job = %name, "Job file changed; job updated."),
                        Err(e) => {
                            tracing::error!(job = %name, error = %e, "Could not update the job.")
                        }
                    }
                }
            }
            Some(_) => tracing::error!(
                job = %name,
                file = %path.display(),
                "A job of that name already exists (created through the API or another file); file skipped."
            ),
        }
    }
}
