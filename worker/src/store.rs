//! The worker's own store: job definitions, desired state and last status, in an embedded
//! SQLite database (`<state-dir>/worker.db`). Positions live in each job's offset store.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::model::Desired;

/// One stored job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    /// Job name (primary key).
    pub name: String,
    /// The definition as TOML text (JSON submissions are converted on the way in).
    pub config: String,
    /// The jobs-dir file it came from; `None` for jobs created through the API.
    pub source_file: Option<PathBuf>,
    /// What the operator asked for.
    pub desired: Desired,
    /// The last observed state (informational: the desired state decides what runs).
    pub status: String,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// Durable job definitions.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Open (creating if needed) `worker.db` in `state_dir`.
    pub async fn open(state_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating state directory {}", state_dir.display()))?;
        let path = state_dir.join("worker.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS jobs (
                name TEXT PRIMARY KEY,
                config TEXT NOT NULL,
                source_file TEXT,
                desired TEXT NOT NULL,
                status TEXT NOT NULL,
                last_error TEXT,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL)",
        )
        .execute(&pool)
        .await
        .context("creating the jobs table")?;
        Ok(Self { pool })
    }

    /// Every stored job, by name.
    pub async fn list(&self) -> anyhow::Result<Vec<JobRow>> {
        let rows = sqlx::query(
            "SELECT name, config, source_file, desired, status, last_error FROM jobs ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .context("listing jobs")?;
        rows.into_iter()
            .map(|row| {
                let desired: String = row.get(3);
                Ok(JobRow {
                    name: row.get(0),
                    config: row.get(1),
                    source_file: row.get::<Option<String>, _>(2).map(PathBuf::from),
                    desired: desired.parse().map_err(|e: String| {
                        anyhow::anyhow!("job {}: {e}", row.get::<String, _>(0))
                    })?,
                    status: row.get(4),
                    last_error: row.get(5),
                })
            })
            .collect()
    }

    /// Insert a new job or replace an existing one's definition and desired state.
    pub async fn upsert(&self, row: &JobRow) -> anyhow::Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO jobs (name, config, source_file, desired, status, last_error, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET config = excluded.config,
                source_file = excluded.source_file, desired = excluded.desired,
                updated_at = excluded.updated_at",
        )
        .bind(&row.name)
        .bind(&row.config)
        .bind(row.source_file.as_ref().map(|p| p.display().to_string()))
        .bind(row.desired.as_str())
        .bind(&row.status)
        .bind(&row.last_error)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .with_context(|| format!("saving job {}", row.name))?;
        Ok(())
    }

    /// Record a new desired state.
    pub async fn set_desired(&self, name: &str, desired: Desired) -> anyhow::Result<()> {
        sqlx::query("UPDATE jobs SET desired = ?, updated_at = ? WHERE name = ?")
            .bind(desired.as_str())
            .bind(now_millis())
            .bind(name)
            .execute(&self.pool)
            .await
            .with_context(|| format!("saving the state of job {name}"))?;
        Ok(())
    }

    /// Record the observed state and last error.
    pub async fn set_status(
        &self,
        name: &str,
        status: &str,
        last_error: Option<&str>,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE jobs SET status = ?, last_error = ?, updated_at = ? WHERE name = ?")
            .bind(status)
            .bind(last_error)
            .bind(now_millis())
            .bind(name)
            .execute(&self.pool)
            .await
            .with_context(|| format!("saving the status of job {name}"))?;
        Ok(())
    }

    /// Forget a job.
    pub async fn delete(&self, name: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM jobs WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .with_context(|| format!("deleting job {name}"))?;
        Ok(())
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_definitions_and_desired_state_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let row = JobRow {
            name: "a".into(),
            config: "name = \"a\"".into(),
            source_file: None,
            desired: Desired::Running,
            status: "starting".into(),
            last_error: None,
        };
        store.upsert(&row).await.unwrap();
        store.set_desired("a", Desired::Paused).await.unwrap();
        store.set_status("a", "paused", Some("boom")).await.unwrap();
        store.close().await;
        let store = Store::open(dir.path()).await.unwrap();
        let rows = store.list().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].desired, Desired::Paused);
        assert_eq!(rows[0].status, "paused");
        assert_eq!(rows[0].last_error.as_deref(), Some("boom"));
        store.delete("a").await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
    }
}
