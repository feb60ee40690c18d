//! The `sluice_offsets` table: the exactly-once checkpoint of each (job, sink), one row per
//! source partition, written in the same transaction as the rows it covers.
//!
//! Each row also names its destination: the table it covers, as identified within this
//! database (`Dialect`-normalized, e.g. MySQL's `database.table`). The database itself needs no
//! naming — the row lives in it, so a URL spelled differently (or a restored copy) still finds
//! the right checkpoint. On open (`Offsets::claim`), before the checkpoint is believed:
//! - rows of this (job, sink) naming another table are refused: the sink's name now means
//!   another sink (unnamed sinks are numbered by order, so adding one before it shifts names),
//!   or its table changed — believing them would skip that table's history;
//! - rows of another (job, sink) naming this table are refused: the job or sink was renamed —
//!   ignoring them would send the table everything again;
//! - rows of this (job, sink) without a destination (written before the column existed, which
//!   `ensure_table` adds) are adopted.

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
    /// The table the checkpoint covers (see the module docs).
    destination: String,
}

impl Offsets {
    /// Offsets of `job`/`sink`, covering table `destination`, in `table`.
    pub fn new(dialect: Dialect, table: &str, job: &str, sink: &str, destination: &str) -> Self {
        Self {
            dialect,
            table: table.to_string(),
            quoted: dialect.quote_path(table),
            job: job.to_string(),
            sink: sink.to_string(),
            destination: destination.to_string(),
        }
    }

    fn col(&self, name: &str) -> String {
        self.dialect.quote(name)
    }

    fn p(&self, n: usize) -> String {
        self.dialect.placeholder(n)
    }

    /// The type of the `destination` column ('' = written before the column existed).
    fn destination_type(&self) -> &'static str {
        match self.dialect {
            Dialect::MySql => "VARCHAR(1024) NOT NULL DEFAULT ''",
            _ => "TEXT NOT NULL DEFAULT ''",
        }
    }

    /// Create the table if it is missing; add the `destination` column to a table made by an
    /// older version.
    pub async fn ensure_table(&self, db: &Db) -> Result<(), ConnectorError> {
        let (job, sink, part, pos) = match self.dialect {
            // InnoDB keys are limited to 3072 bytes (4 bytes per utf8mb4 character).
            Dialect::MySql => ("VARCHAR(190)", "VARCHAR(190)", "VARCHAR(380)", "TEXT"),
            _ => ("TEXT", "TEXT", "TEXT", "TEXT"),
        };
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} ({} {job} NOT NULL, {} {sink} NOT NULL, {} {part} NOT NULL, {} {pos} NOT NULL, {} {}, PRIMARY KEY ({}, {}, {}))",
            self.quoted,
            self.col("job"),
            self.col("sink"),
            self.col("partition"),
            self.col("position"),
            self.col("destination"),
            self.destination_type(),
            self.col("job"),
            self.col("sink"),
            self.col("partition"),
        );
        schema::create_if_missing(db, &self.table, &ddl).await?;
        let has_destination =
            |cols: &[schema::Column]| cols.iter().any(|c| c.name == "destination");
        if has_destination(&schema::columns(db, &self.table).await?) {
            return Ok(());
        }
        let alter = format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            self.quoted,
            self.col("destination"),
            self.destination_type()
        );
        if let Err(e) = db.exec(&alter, &[]).await {
            // Another sink (or job) may have added it meanwhile.
            if !has_destination(&schema::columns(db, &self.table).await?) {
                return Err(connector_error(
                    self.dialect,
                    &format!("adding column destination to {}", self.table),
                    &e,
                ));
            }
        }
        tracing::info!(table = %self.table, "Added column destination to the checkpoint table.");
        Ok(())
    }

    /// Check that the stored checkpoints agree with this sink's (job, sink, destination) —
    /// see the module docs — and adopt rows of this sink that name no destination yet.
    pub async fn claim(&self, db: &Db) -> Result<(), ConnectorError> {
        let sql = format!(
            "SELECT DISTINCT {}, {}, {} FROM {} WHERE ({} = {} AND {} = {}) OR {} = {}",
            self.col("job"),
            self.col("sink"),
            self.col("destination"),
            self.quoted,
            self.col("job"),
            self.p(1),
            self.col("sink"),
            self.p(2),
            self.col("destination"),
            self.p(3),
        );
        let [job, sink] = self.key_params();
        let params = [job, sink, Param::Text(Some(self.destination.clone()))];
        let rows = db
            .fetch_text(&sql, &params)
            .await
            .map_err(|e| connector_error(self.dialect, "reading checkpoints", &e))?;
        let mut legacy = false;
        for row in rows {
            let mut it = row.into_iter().map(Option::unwrap_or_default);
            let (job, sink, dest) = (
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
            );
            let mine = job == self.job && sink == self.sink;
            if mine && dest.is_empty() {
                legacy = true;
            } else if mine && dest != self.destination {
                return Err(ConnectorError::config(format!(
                    "{} holds the exactly-once checkpoint of job `{job}` sink `{sink}` for table `{dest}`, but this sink writes to table `{}`. Unnamed sinks are named by their order (sql, sql-2, ...): if sinks were added, removed or reordered, give each one its old name (`name = ...`). If this sink's table really changed and it should start over, delete that checkpoint: DELETE FROM {} WHERE job = '{job}' AND sink = '{sink}'",
                    self.table, self.destination, self.table
                )));
            } else if !mine {
                return Err(ConnectorError::config(format!(
                    "table `{}` already has an exactly-once checkpoint in {} under job `{job}` sink `{sink}`, not job `{}` sink `{}`: was the job or the sink renamed? Rename it back, or move the checkpoint: UPDATE {} SET job = '{}', sink = '{}' WHERE job = '{job}' AND sink = '{sink}'. If another job really writes to this table too, give one of them its own `offsets_table`",
                    self.destination,
                    self.table,
                    self.job,
                    self.sink,
                    self.table,
                    self.job,
                    self.sink
                )));
            }
        }
        if legacy {
            let sql = format!(
                "UPDATE {} SET {} = {} WHERE {} = {} AND {} = {} AND {} = ''",
                self.quoted,
                self.col("destination"),
                self.p(1),
                self.col("job"),
                self.p(2),
                self.col("sink"),
                self.p(3),
                self.col("destination"),
            );
            let [job, sink] = self.key_params();
            db.exec(
                &sql,
                &[Param::Text(Some(self.destination.clone())), job, sink],
            )
            .await
            .map_err(|e| connector_error(self.dialect, "recording checkpoint destination", &e))?;
            tracing::info!(job = %self.job, sink = %self.sink, table = %self.destination, "Checkpoint written before destinations were recorded; now tied to this table.");
        }
        Ok(())
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
                        "INSERT INTO {} ({}, {}, {}, {}, {}) VALUES ({}, {}, {}, {}, {})",
                        self.quoted,
                        self.col("job"),
                        self.col("sink"),
                        self.col("partition"),
                        self.col("position"),
                        self.col("destination"),
                        self.p(1),
                        self.p(2),
                        self.p(3),
                        self.p(4),
                        self.p(5)
                    );
                    let params = [
                        Param::Text(Some(self.job.clone())),
                        Param::Text(Some(self.sink.clone())),
                        Param::Text(Some(partition.to_string())),
                        Param::Text(Some(enc)),
                        Param::Text(Some(self.destination.clone())),
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
