//! The `sluice_offsets` table: the exactly-once checkpoint of each (job, sink), one row per
//! source partition, written in the same transaction as the rows it covers.

use sluice_core::{Checkpoint, ConnectorError, Offset};

use crate::db::{Db, Dialect, Param, TextRows, Tx};
use crate::error::{Failure, classify, connector_error};
use crate::schema;

/// Reads and writes one sink's checkpoint.
#[derive(Clone, Debug)]
pub struct Offsets {
    dialect: Dialect,
    table: String,
    quoted: String,
    job: String,
    sink: String,
}

impl Offsets {
    /// Offsets of `job`/`sink` in `table`.
    pub fn new(dialect: Dialect, table: &str, job: &str, sink: &str) -> Self {
        Self {
            dialect,
            table: table.to_string(),
            quoted: dialect.quote_path(table),
            job: job.to_string(),
            sink: sink.to_string(),
        }
    }

    fn col(&self, name: &str) -> String {
        self.dialect.quote(name)
    }

    fn p(&self, n: usize) -> String {
        self.dialect.placeholder(n)
    }

    /// Create the table if it is missing.
    pub async fn ensure_table(&self, db: &Db) -> Result<(), ConnectorError> {
        let (job, sink, part, pos) = match self.dialect {
            // InnoDB keys are limited to 3072 bytes (4 bytes per utf8mb4 character).
            Dialect::MySql => ("VARCHAR(190)", "VARCHAR(190)", "VARCHAR(380)", "TEXT"),
            _ => ("TEXT", "TEXT", "TEXT", "TEXT"),
        };
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} ({} {job} NOT NULL, {} {sink} NOT NULL, {} {part} NOT NULL, {} {pos} NOT NULL, PRIMARY KEY ({}, {}, {}))",
            self.quoted,
            self.col("job"),
            self.col("sink"),
            self.col("partition"),
            self.col("position"),
            self.col("job"),
            self.col("sink"),
            self.col("partition"),
        );
        schema::create_if_missing(db, &self.table, &ddl).await
    }

    fn select_sql(&self) -> String {
        format!(
            "SELECT {}, {} FROM {} WHERE {} = {} AND {} = {}",
            self.col("partition"),
            self.col("position"),
            self.quoted,
            self.col("job"),
            self.p(1),
            self.col("sink"),
            self.p(2)
        )
    }

    fn key_params(&self) -> [Param; 2] {
        [
            Param::Text(Some(self.job.clone())),
            Param::Text(Some(self.sink.clone())),
        ]
    }

    /// The stored checkpoint (empty when none).
    pub async fn load(&self, db: &Db) -> Result<Checkpoint, ConnectorError> {
        let rows = db
            .fetch_text(&self.select_sql(), &self.key_params())
            .await
            .map_err(|e| connector_error(self.dialect, "reading checkpoint", &e))?;
        decode(rows)
    }

    /// Store `new` in the transaction, given that `old` is what the table holds now. A row that
    /// moved meanwhile means another writer for the same job and sink: a permanent error.
    pub async fn store(
        &self,
        tx: &mut Tx,
        old: &Checkpoint,
        new: &Checkpoint,
    ) -> Result<(), ConnectorError> {
        for (partition, offset) in &new.offsets {
            let before = old.get(partition);
            if before == Some(offset) {
                continue;
            }
            let enc = encode(offset)?;
            let fence = || {
                ConnectorError::external(format!(
                    "the checkpoint of job `{}` sink `{}` partition `{partition}` changed under this writer: is another instance of the job running?",
                    self.job, self.sink
                ))
            };
            let result = match before {
                Some(before) => {
                    let sql = format!(
                        "UPDATE {} SET {} = {} WHERE {} = {} AND {} = {} AND {} = {} AND {} = {}",
                        self.quoted,
                        self.col("position"),
                        self.p(1),
                        self.col("job"),
                        self.p(2),
                        self.col("sink"),
                        self.p(3),
                        self.col("partition"),
                        self.p(4),
                        self.col("position"),
                        self.p(5)
                    );
                    let params = [
                        Param::Text(Some(enc)),
                        Param::Text(Some(self.job.clone())),
                        Param::Text(Some(self.sink.clone())),
                        Param::Text(Some(partition.to_string())),
                        Param::Text(Some(encode(before)?)),
                    ];
                    tx.exec(&sql, &params, true).await
                }
                None => {
                    let sql = format!(
                        "INSERT INTO {} ({}, {}, {}, {}) VALUES ({}, {}, {}, {})",
                        self.quoted,
                        self.col("job"),
                        self.col("sink"),
                        self.col("partition"),
                        self.col("position"),
                        self.p(1),
                        self.p(2),
                        self.p(3),
                        self.p(4)
                    );
                    let params = [
                        Param::Text(Some(self.job.clone())),
                        Param::Text(Some(self.sink.clone())),
                        Param::Text(Some(partition.to_string())),
                        Param::Text(Some(enc)),
                    ];
                    tx.exec(&sql, &params, true).await
                }
            };
            match result {
                Ok(1) => {}
                Ok(_) => return Err(fence()),
                Err(e) => {
                    return Err(match classify(self.dialect, &e) {
                        Failure::Row(_) => fence(),
                        other => other.into_connector("storing checkpoint"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Offsets reset: `None` deletes this sink's rows; `Some` sets those partitions and keeps
    /// the others. One transaction; nothing to do when the table does not exist.
    pub async fn reset(
        &self,
        db: &Db,
        partitions: Option<&Checkpoint>,
    ) -> Result<(), ConnectorError> {
        if schema::columns(db, &self.table).await?.is_empty() {
            if partitions.is_none() {
                return Ok(());
            }
            self.ensure_table(db).await?;
        }
        let old = self.load(db).await?;
        let mut new = old.clone();
        let dialect = self.dialect;
        let err = |ctx: &str, e: &sqlx::Error| connector_error(dialect, ctx, e);
        let mut tx = db.begin().await.map_err(|e| err("begin", &e))?;
        match partitions {
            None => {
                let sql = format!(
                    "DELETE FROM {} WHERE {} = {} AND {} = {}",
                    self.quoted,
                    self.col("job"),
                    self.p(1),
                    self.col("sink"),
                    self.p(2)
                );
                tx.exec(&sql, &self.key_params(), false)
                    .await
                    .map_err(|e| err("resetting checkpoint", &e))?;
            }
            Some(cp) => {
                new.offsets.extend(cp.offsets.clone());
                self.store(&mut tx, &old, &new).await?;
            }
        }
        tx.commit().await.map_err(|e| err("commit", &e))
    }
}

fn encode(offset: &Offset) -> Result<String, ConnectorError> {
    serde_json::to_string(offset)
        .map_err(|e| ConnectorError::internal(format!("encoding offset: {e}")))
}

fn decode(rows: TextRows) -> Result<Checkpoint, ConnectorError> {
    let mut cp = Checkpoint::default();
    for row in rows {
        let mut it = row.into_iter();
        let partition = it.next().flatten().unwrap_or_default();
        let position = it.next().flatten().unwrap_or_default();
        let offset: Offset = serde_json::from_str(&position).map_err(|e| {
            ConnectorError::external(format!(
                "corrupt checkpoint for partition {partition}: {position:?}: {e}"
            ))
        })?;
        cp.offsets.insert(partition.into(), offset);
    }
    Ok(cp)
}

/// True when `stored` is at or past `wanted` in every partition of `wanted`.
pub fn covers(stored: &Checkpoint, wanted: &Checkpoint) -> bool {
    wanted
        .offsets
        .iter()
        .all(|(p, o)| stored.get(p).is_some_and(|s| s >= o))
}
