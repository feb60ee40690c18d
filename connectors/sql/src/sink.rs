//! The SQL sink: JSON records → rows, in multi-row statements inside one transaction per write,
//! with the exactly-once checkpoint in the same transaction.
//!
//! Rejected rows: the fast path runs the whole write as plain multi-row statements. When the
//! database rejects one (constraint, type), the transaction is rolled back and the write is run
//! again with a savepoint around each statement; a statement that fails is rolled back to its
//! savepoint and its rows are retried one by one, each under its own savepoint, so one pass
//! finds every row the database refuses. If any row is refused (or could not be turned into a
//! row at all), the transaction is rolled back — rows and checkpoint — and the write reports
//! them with `rolled_back`: the runtime dead-letters them (or stops the job) before writing the
//! others again with the same checkpoint. So a checkpoint never covers a refused row that is
//! not yet dead-lettered, and a job stopped by one has committed nothing of its write. Clean
//! batches pay nothing for this.
//!
//! Replays under at-least-once: after a crash the source replays records the table already
//! holds. With `mode = "insert"` into a table with a unique key, such a record hits the key. A
//! row refused for a duplicate key counts as written when the table holds a row equal to it in
//! every written column (the replayed row itself); a different row with the same key is still
//! refused, so a genuine conflict is never hidden. With exactly-once nothing is replayed and a
//! duplicate key is always refused.

use std::path::PathBuf;

use async_trait::async_trait;
use sluice_core::job::RetryConfig;
use sluice_core::runtime::Backoff;
use sluice_core::{Checkpoint, ConnectorError, Guarantee, Record, Sink, SinkContext, WriteReport};

use crate::config::{SqlSinkConfig, WriteMode};
use crate::db::{Db, Dialect, Tx, database_identity, table_identity};
use crate::error::{Failure, classify, connector_error, is_unique_violation};
use crate::offsets::{self, Offsets};
use crate::plan::{Op, OpKind, Plan};

/// The SQL sink.
pub struct SqlSink {
    config: SqlSinkConfig,
    base_dir: PathBuf,
    db: Option<Db>,
    plan: Option<Plan>,
    offsets: Option<Offsets>,
    /// What the offsets table holds for this sink (exactly-once).
    committed: Checkpoint,
    /// The last write failed: its commit may have landed anyway.
    uncertain: bool,
    /// The policy the runtime retries this sink's writes under.
    retry: RetryConfig,
}

enum AttemptError {
    /// A row was rejected on the fast path: go again with savepoints.
    Row,
    Other(ConnectorError),
}

impl SqlSink {
    /// A sink for a validated config (no I/O yet).
    pub fn new(config: SqlSinkConfig, base_dir: PathBuf) -> Result<Self, ConnectorError> {
        Dialect::of_url(&config.url)?;
        if config.mode == WriteMode::Upsert && config.key.is_empty() {
            return Err(ConnectorError::config(
                "key: mode = \"upsert\" needs the key columns",
            ));
        }
        if config.delete_on_tombstone && config.key.is_empty() {
            return Err(ConnectorError::config(
                "key: delete_on_tombstone needs the key columns",
            ));
        }
        if config.create_table && config.schema.is_empty() {
            return Err(ConnectorError::config(
                "schema: create_table needs a declared schema, e.g. schema = [{ name = \"id\", type = \"BIGINT\" }]",
            ));
        }
        if config.statement_rows == 0 {
            return Err(ConnectorError::config("statement_rows: must be at least 1"));
        }
        Ok(Self {
            config,
            base_dir,
            db: None,
            plan: None,
            offsets: None,
            committed: Checkpoint::default(),
            uncertain: false,
            retry: RetryConfig::default(),
        })
    }

    /// The same sink, its writes retried under `retry` (the job's `retry` table for this sink):
    /// no wait inside the database client outlasts one step of it.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Connect and get ready to write, once.
    async fn open_once(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let db = Db::connect_within(
            &self.config.url,
            self.config.tls.as_ref(),
            &self.base_dir,
            2,
            &self.retry,
        )
        .await?;
        let ready = self.prepare(&db, ctx).await;
        match ready {
            Ok(plan) => {
                self.plan = Some(plan);
                self.db = Some(db);
                Ok(())
            }
            Err(e) => {
                db.close().await;
                Err(e)
            }
        }
    }

    /// The write plan and (exactly-once) the checkpoint, on an open database.
    async fn prepare(&mut self, db: &Db, ctx: &SinkContext) -> Result<Plan, ConnectorError> {
        let mut plan = Plan::build(db, &self.config).await?;
        plan.replays_are_written =
            ctx.guarantee != Guarantee::ExactlyOnce && self.config.mode == WriteMode::Insert;
        if ctx.guarantee == Guarantee::ExactlyOnce {
            let offsets = Offsets::new(
                db.dialect(),
                &self.config.offsets_table,
                &ctx.job,
                &ctx.sink,
                &table_identity(&self.config.url, &self.config.table),
            );
            offsets.ensure_table(db).await?;
            offsets.claim(db).await?;
            self.committed = offsets.load(db).await?;
            self.offsets = Some(offsets);
        }
        tracing::info!(
            table = %self.config.table,
            columns = plan.targets.len(),
            rows_per_statement = plan.insert_rows,
            "SQL sink ready."
        );
        Ok(plan)
    }

    fn db(&self) -> Result<&Db, ConnectorError> {
        self.db
            .as_ref()
            .ok_or_else(|| ConnectorError::internal("SQL sink used before open"))
    }

    /// The parts of the sink one transaction uses, borrowed apart.
    fn tx_parts(&mut self) -> Result<TxParts<'_>, AttemptError> {
        let Self {
            db,
            plan,
            offsets,
            committed,
            config,
            ..
        } = self;
        let (Some(db), Some(plan)) = (db.as_ref(), plan.as_mut()) else {
            return Err(AttemptError::Other(ConnectorError::internal(
                "SQL sink used before open",
            )));
        };
        Ok(TxParts {
            db,
            plan,
            config,
            offsets: offsets.as_ref(),
            committed,
        })
    }

    /// One transaction: see [`run_tx`].
    async fn attempt(
        &mut self,
        ops: &[Op],
        checkpoint: Option<&Checkpoint>,
        mode: TxMode,
    ) -> Result<Vec<(usize, String)>, AttemptError> {
        let p = self.tx_parts()?;
        let store = p
            .offsets
            .zip(checkpoint)
            .map(|(o, cp)| (o, p.committed, cp));
        run_tx(p.db, p.plan, ops, mode, store).await
    }
}

/// What one transaction of a write needs from the sink.
struct TxParts<'a> {
    db: &'a Db,
    plan: &'a mut Plan,
    config: &'a SqlSinkConfig,
    offsets: Option<&'a Offsets>,
    committed: &'a Checkpoint,
}

impl SqlSink {
    /// Insert-only writes, the common case, pipelined: the next statement's rows are built from
    /// their records while the database runs the current one, so turning JSON into parameters
    /// does not add to the time the database takes. Anything that is not a plain insert of
    /// every record (a record that is not a row, a tombstone, a refused row) rolls back with
    /// [`AttemptError::Row`], and the write is done again the careful way (see `write`).
    async fn attempt_inserts(
        &mut self,
        records: &[Record],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), AttemptError> {
        let TxParts {
            db,
            plan,
            config,
            offsets,
            committed,
        } = self.tx_parts()?;
        let dialect = db.dialect();
        let other =
            |ctx: &str, e: &sqlx::Error| AttemptError::Other(connector_error(dialect, ctx, e));
        let rows = plan.insert_rows;
        let mut chunks = records.chunks(rows).enumerate();
        let mut tx = db.begin().await.map_err(|e| other("begin", &e))?;
        let mut next = chunks
            .next()
            .map(|(k, c)| plan.inserts(k * rows, c, config));
        while let Some(current) = next.take() {
            let Some(ops) = current else {
                let _ = tx.rollback().await;
                return Err(AttemptError::Row);
            };
            let sql = plan.sql(OpKind::Insert, ops.len());
            let persistent = ops.len() == rows || ops.len() == 1;
            let plan = &*plan;
            let (done, upcoming) = tokio::join!(
                tx.exec(&sql, ops.iter().flat_map(|op| &op.params), persistent),
                async {
                    chunks
                        .next()
                        .map(|(k, c)| plan.inserts(k * rows, c, config))
                }
            );
            if let Err(e) = done {
                return Err(match classify(dialect, &e) {
                    Failure::Row(_) => {
                        let _ = tx.rollback().await;
                        AttemptError::Row
                    }
                    f => AttemptError::Other(f.into_connector("write")),
                });
            }
            next = upcoming;
        }
        if let (Some(offsets), Some(cp)) = (offsets, checkpoint) {
            offsets
                .store(&mut tx, committed, cp)
                .await
                .map_err(AttemptError::Other)?;
        }
        tx.commit().await.map_err(|e| other("commit", &e))
    }
}

/// How [`run_tx`] runs a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxMode {
    /// Plain statements; the first refused row aborts with [`AttemptError::Row`].
    Fast,
    /// Savepoints around statements and rows to find every refused row; commit only when none
    /// is refused and `roll_back` is false (records refused before reaching the database).
    Find { roll_back: bool },
}

/// Run one write in a transaction; `store` = (offsets, what they hold, the new checkpoint) adds
/// the checkpoint before the commit. Returns the refused rows; when there are any (or
/// `TxMode::Find { roll_back: true }`), the transaction was rolled back, else committed.
async fn run_tx(
    db: &Db,
    plan: &mut Plan,
    ops: &[Op],
    mode: TxMode,
    store: Option<(&Offsets, &Checkpoint, &Checkpoint)>,
) -> Result<Vec<(usize, String)>, AttemptError> {
    let dialect = db.dialect();
    let other = |ctx: &str, e: &sqlx::Error| AttemptError::Other(connector_error(dialect, ctx, e));
    let mut tx = db.begin().await.map_err(|e| other("begin", &e))?;
    let mut rejected = Vec::new();
    let mut start = 0;
    while start < ops.len() {
        let kind = ops[start].kind;
        let limit = match kind {
            OpKind::Insert => plan.insert_rows,
            OpKind::Delete => plan.delete_rows,
        };
        let mut end = start + 1;
        while end < ops.len() && end - start < limit && ops[end].kind == kind {
            end += 1;
        }
        let chunk = &ops[start..end];
        start = end;
        if mode == TxMode::Fast {
            match plan.exec(&mut tx, chunk).await {
                Ok(()) => continue,
                Err(e) => {
                    return Err(match classify(dialect, &e) {
                        Failure::Row(_) => {
                            let _ = tx.rollback().await;
                            AttemptError::Row
                        }
                        f => AttemptError::Other(f.into_connector("write")),
                    });
                }
            }
        }
        let raw = |e: sqlx::Error| other("savepoint", &e);
        tx.raw("SAVEPOINT sluice_stmt").await.map_err(raw)?;
        match plan.exec(&mut tx, chunk).await {
            Ok(()) => {}
            Err(e) => match classify(dialect, &e) {
                Failure::Row(_) => {
                    tx.raw("ROLLBACK TO SAVEPOINT sluice_stmt")
                        .await
                        .map_err(raw)?;
                    for op in chunk {
                        if let Some(message) = plan.exec_row(&mut tx, op).await? {
                            rejected.push((op.index, message));
                        }
                    }
                }
                f => return Err(AttemptError::Other(f.into_connector("write"))),
            },
        }
        tx.raw("RELEASE SAVEPOINT sluice_stmt").await.map_err(raw)?;
    }
    if !rejected.is_empty() || mode == (TxMode::Find { roll_back: true }) {
        tx.rollback().await.map_err(|e| other("rollback", &e))?;
        return Ok(rejected);
    }
    if let Some((offsets, old, new)) = store {
        offsets
            .store(&mut tx, old, new)
            .await
            .map_err(AttemptError::Other)?;
    }
    tx.commit().await.map_err(|e| other("commit", &e))?;
    Ok(rejected)
}

impl Plan {
    /// Run one operation under its own savepoint. `Some(message)` when the database refuses
    /// it (and it is not a replay of a row already there, see the module docs).
    async fn exec_row(&mut self, tx: &mut Tx, op: &Op) -> Result<Option<String>, AttemptError> {
        let dialect = self.dialect;
        let raw = |e: sqlx::Error| AttemptError::Other(connector_error(dialect, "savepoint", &e));
        tx.raw("SAVEPOINT sluice_row").await.map_err(raw)?;
        let refused = match self.exec(tx, std::slice::from_ref(op)).await {
            Ok(()) => None,
            Err(e) => match classify(dialect, &e) {
                Failure::Row(message) => {
                    tx.raw("ROLLBACK TO SAVEPOINT sluice_row")
                        .await
                        .map_err(raw)?;
                    let replay = self.replays_are_written
                        && op.kind == OpKind::Insert
                        && is_unique_violation(&e)
                        && self.same_row_exists(tx, op).await?;
                    (!replay).then_some(message)
                }
                f => return Err(AttemptError::Other(f.into_connector("write"))),
            },
        };
        tx.raw("RELEASE SAVEPOINT sluice_row").await.map_err(raw)?;
        Ok(refused)
    }

    /// True when the table holds a row equal to `op` in every written column (see
    /// [`Plan::same_row_sql`]). A comparison the database cannot make counts as "not equal".
    async fn same_row_exists(&mut self, tx: &mut Tx, op: &Op) -> Result<bool, AttemptError> {
        let d = self.dialect;
        let sql = self.same_row_sql();
        let raw = |e: sqlx::Error| AttemptError::Other(connector_error(d, "savepoint", &e));
        match tx.fetch_text(&sql, &op.params).await {
            Ok(rows) => Ok(!rows.is_empty()),
            Err(e) => {
                tracing::warn!(error = %e, table = %self.table, "Could not compare a duplicate key with the stored row; refusing the row.");
                tx.raw("ROLLBACK TO SAVEPOINT sluice_row")
                    .await
                    .map_err(raw)?;
                Ok(false)
            }
        }
    }

    async fn exec(&mut self, tx: &mut Tx, chunk: &[Op]) -> Result<(), sqlx::Error> {
        let kind = chunk[0].kind;
        let full = match kind {
            OpKind::Insert => self.insert_rows,
            OpKind::Delete => self.delete_rows,
        };
        let sql = self.sql(kind, chunk.len());
        let persistent = chunk.len() == full || chunk.len() == 1;
        let params = chunk.iter().flat_map(|op| &op.params);
        tx.exec(&sql, params, persistent).await.map(|_| ())
    }
}

#[async_trait]
impl Sink for SqlSink {
    /// The runtime retries writes, not opens: a SQLite file locked by another connection
    /// (creating the table or the checkpoint table needs its write lock) is waited out here,
    /// within the same retry budget. A server that cannot be reached still fails at once (the
    /// connect probe says why).
    async fn open(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let sqlite = Dialect::of_url(&self.config.url)? == Dialect::Sqlite;
        let mut backoff = Backoff::new(&self.retry);
        loop {
            match self.open_once(ctx).await {
                Err(e) if sqlite && e.retryable => match backoff.next_delay() {
                    Some(delay) => {
                        tracing::warn!(error = %e, table = %self.config.table, attempt = backoff.attempts(), "Opening the SQL sink failed; retrying.");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// The database (never its credentials) and the table; `None` for in-memory SQLite.
    fn destination(&self) -> Option<String> {
        let db = database_identity(&self.config.url, &self.base_dir)?;
        Some(format!(
            "{db}/{}",
            table_identity(&self.config.url, &self.config.table)
        ))
    }

    fn transactional(&self) -> bool {
        true
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>, ConnectorError> {
        let (Some(db), Some(offsets)) = (&self.db, &self.offsets) else {
            return Ok(None);
        };
        self.committed = offsets.load(db).await?;
        Ok((!self.committed.is_empty()).then(|| self.committed.clone()))
    }

    /// Replace this sink's rows in the offsets table, in one transaction.
    async fn reset_checkpoint(
        &mut self,
        ctx: &SinkContext,
        partitions: Option<&Checkpoint>,
    ) -> Result<(), ConnectorError> {
        let db = Db::connect(
            &self.config.url,
            self.config.tls.as_ref(),
            &self.base_dir,
            1,
        )
        .await?;
        let offsets = Offsets::new(
            db.dialect(),
            &self.config.offsets_table,
            &ctx.job,
            &ctx.sink,
            &table_identity(&self.config.url, &self.config.table),
        );
        let result = offsets.reset(&db, partitions).await;
        db.close().await;
        result
    }

    async fn write(
        &mut self,
        records: &[Record],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let checkpoint = checkpoint.filter(|_| self.offsets.is_some());
        if self.uncertain
            && let (Some(cp), Some(offsets)) = (checkpoint, &self.offsets)
        {
            // The previous attempt failed, maybe after its commit reached the database: if the
            // checkpoint landed, so did the rows.
            let stored = offsets.load(self.db()?).await?;
            self.uncertain = false;
            let landed = *cp != self.committed && offsets::covers(&stored, cp);
            self.committed = stored;
            if landed {
                tracing::info!(table = %self.config.table, "Previous write had committed; not writing it again.");
                return Ok(WriteReport::ok());
            }
        }
        let mut outcome = Err(AttemptError::Row);
        let inserts = self.config.mode == WriteMode::Insert;
        if inserts {
            match self.attempt_inserts(records, checkpoint).await {
                Ok(()) => outcome = Ok(Vec::new()),
                Err(AttemptError::Row) => {}
                Err(AttemptError::Other(e)) => {
                    self.uncertain = true;
                    return Err(e);
                }
            }
        }
        let plan = self
            .plan
            .as_ref()
            .ok_or_else(|| ConnectorError::internal("SQL sink used before open"))?;
        let (ops, mut rejected) = match outcome {
            Ok(_) => (Vec::new(), Vec::new()),
            Err(_) => plan.prepare(records, &self.config),
        };
        // Records that are not rows already mean a rollback: look for refused rows at once.
        let find = TxMode::Find {
            roll_back: !rejected.is_empty(),
        };
        if !inserts && rejected.is_empty() {
            outcome = self.attempt(&ops, checkpoint, TxMode::Fast).await;
        }
        if matches!(outcome, Err(AttemptError::Row)) {
            outcome = self.attempt(&ops, checkpoint, find).await;
        }
        match outcome {
            Ok(rows) => {
                rejected.extend(rows);
                rejected.sort_by_key(|(i, _)| *i);
                let rolled_back = !rejected.is_empty();
                if !rolled_back && let Some(cp) = checkpoint {
                    self.committed = cp.clone();
                }
                Ok(WriteReport {
                    rejected,
                    retry: Vec::new(),
                    rolled_back,
                })
            }
            Err(AttemptError::Row) => Err(ConnectorError::internal(
                "a row was rejected although every statement ran under a savepoint",
            )),
            Err(AttemptError::Other(e)) => {
                self.uncertain = true;
                Err(e)
            }
        }
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(db) = self.db.take() {
            db.close().await;
        }
        Ok(())
    }
}
