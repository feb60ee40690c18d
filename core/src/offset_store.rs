//! The offset store: positions of sources that do not keep their own, in an embedded SQLite
//! database in the job's state directory. A checkpoint is saved in one transaction, so a crash
//! leaves either the old or the new checkpoint, never a mix.

use std::path::Path;
use std::str::FromStr;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::ConnectorError;
use crate::record::{Checkpoint, Offset};

/// Durable per-job checkpoints.
#[derive(Clone, Debug)]
pub struct OffsetStore {
    pool: SqlitePool,
}

fn db_err(context: &str, e: sqlx::Error) -> ConnectorError {
    ConnectorError::transient(format!("offset store: {context}: {e}"))
}

impl OffsetStore {
    /// Open (creating if needed) the store at `path`.
    pub async fn open(path: &Path) -> Result<Self, ConnectorError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ConnectorError::io("creating state directory", &e))?;
        }
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| db_err("bad path", e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| db_err("open", e))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS sluice_offsets (
                job TEXT NOT NULL,
                partition TEXT NOT NULL,
                offset TEXT NOT NULL,
                updated_at INTEGER NOT NULL,
                PRIMARY KEY (job, partition))",
        )
        .execute(&pool)
        .await
        .map_err(|e| db_err("create table", e))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS sluice_jobs (
                job TEXT PRIMARY KEY,
                guarantee TEXT NOT NULL,
                updated_at INTEGER NOT NULL)",
        )
        .execute(&pool)
        .await
        .map_err(|e| db_err("create table", e))?;
        Ok(Self { pool })
    }

    /// The job's last saved checkpoint, `None` if it never saved one.
    pub async fn load(&self, job: &str) -> Result<Option<Checkpoint>, ConnectorError> {
        let rows = sqlx::query("SELECT partition, offset FROM sluice_offsets WHERE job = ?")
            .bind(job)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_err("load", e))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut cp = Checkpoint::default();
        for row in rows {
            let partition: String = row.get(0);
            let offset: String = row.get(1);
            let offset: Offset = serde_json::from_str(&offset).map_err(|e| {
                ConnectorError::internal(format!(
                    "offset store: corrupt offset for {partition}: {e}"
                ))
            })?;
            cp.offsets.insert(partition.into(), offset);
        }
        Ok(Some(cp))
    }

    /// Save a whole checkpoint atomically (partitions it lacks keep their old rows).
    pub async fn save(&self, job: &str, cp: &Checkpoint) -> Result<(), ConnectorError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut tx = self.pool.begin().await.map_err(|e| db_err("begin", e))?;
        for (partition, offset) in &cp.offsets {
            let offset = serde_json::to_string(offset)
                .map_err(|e| ConnectorError::internal(format!("offset store: encode: {e}")))?;
            sqlx::query(
                "INSERT INTO sluice_offsets (job, partition, offset, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (job, partition) DO UPDATE SET offset = excluded.offset, updated_at = excluded.updated_at",
            )
            .bind(job)
            .bind(partition.as_ref())
            .bind(offset)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("save", e))?;
        }
        tx.commit().await.map_err(|e| db_err("commit", e))
    }

    /// Replace the job's checkpoint entirely (offset reset), or with `None` forget the job:
    /// its checkpoint and the guarantee its state was made with.
    pub async fn reset(&self, job: &str, cp: Option<&Checkpoint>) -> Result<(), ConnectorError> {
        sqlx::query("DELETE FROM sluice_offsets WHERE job = ?")
            .bind(job)
            .execute(&self.pool)
            .await
            .map_err(|e| db_err("reset", e))?;
        match cp {
            Some(cp) => self.save(job, cp).await,
            None => sqlx::query("DELETE FROM sluice_jobs WHERE job = ?")
                .bind(job)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(|e| db_err("reset", e)),
        }
    }

    /// The delivery guarantee the job's state was made with (`"at-least-once"`,
    /// `"exactly-once"`), `None` when not recorded.
    pub async fn guarantee(&self, job: &str) -> Result<Option<String>, ConnectorError> {
        let row = sqlx::query("SELECT guarantee FROM sluice_jobs WHERE job = ?")
            .bind(job)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db_err("load guarantee", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Record the delivery guarantee the job's state is made with.
    pub async fn set_guarantee(&self, job: &str, guarantee: &str) -> Result<(), ConnectorError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        sqlx::query(
            "INSERT INTO sluice_jobs (job, guarantee, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (job) DO UPDATE SET guarantee = excluded.guarantee, updated_at = excluded.updated_at",
        )
        .bind(job)
        .bind(guarantee)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| db_err("save guarantee", e))
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::Position;

    #[tokio::test]
    async fn saves_and_loads_checkpoints_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/offsets.db");
        let store = OffsetStore::open(&path).await.unwrap();
        assert_eq!(store.load("job").await.unwrap(), None);
        let mut cp = Checkpoint::default();
        cp.advance(&Position::int(Arc::from("a"), 42));
        cp.advance(&Position {
            partition: Arc::from("b"),
            offset: Offset::Text("4960".into()),
        });
        store.save("job", &cp).await.unwrap();
        store.close().await;
        let store = OffsetStore::open(&path).await.unwrap();
        assert_eq!(store.load("job").await.unwrap(), Some(cp));
        assert_eq!(store.load("other").await.unwrap(), None);
        store.reset("job", None).await.unwrap();
        assert_eq!(store.load("job").await.unwrap(), None);
    }

    #[tokio::test]
    async fn records_the_guarantee_until_the_job_is_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(&dir.path().join("offsets.db"))
            .await
            .unwrap();
        assert_eq!(store.guarantee("job").await.unwrap(), None);
        store.set_guarantee("job", "exactly-once").await.unwrap();
        assert_eq!(
            store.guarantee("job").await.unwrap().as_deref(),
            Some("exactly-once")
        );
        store
            .reset("job", Some(&Checkpoint::default()))
            .await
            .unwrap();
        assert_eq!(
            store.guarantee("job").await.unwrap().as_deref(),
            Some("exactly-once")
        );
        store.reset("job", None).await.unwrap();
        assert_eq!(store.guarantee("job").await.unwrap(), None);
    }
}
