//! The MongoDB sink: one unordered bulk write per batch (`Client::bulk_write`, the `bulkWrite`
//! command of MongoDB 8.0+, which SecantusDB speaks too), every item's error classified.
//!
//! At-least-once: the bulk write runs outside any transaction. Items the server refuses are
//! read from the bulk write error one by one: a duplicate key on insert is rejected (or counted
//! as written with `ignore_duplicates`), a validation failure is rejected with the server's
//! message, stepdowns and write conflicts are reported as `retry`. A failure of the whole call
//! (network, no primary) is a retryable error.
//!
//! Exactly-once (a replica set or sharded cluster): each write is one transaction holding the
//! batch's documents and the checkpoint document ([`crate::checkpoint`]), in one bulk write.
//! A record that cannot be mapped, or an item the server refuses, aborts the transaction and
//! the write reports `rolled_back` with the refused records (the runtime dead-letters them and
//! writes the others again with the same checkpoint); ignored duplicates are left out and the
//! transaction runs again without them. `TransientTransactionError`s, stepdowns and network
//! errors are retryable errors. A commit whose outcome is unknown is settled on the next write
//! by reading the checkpoint back: if it landed, so did the documents.

use bson::Document;
use mongodb::options::WriteModel;
use mongodb::{Client, ClientSession};
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Guarantee, Record, Sink, SinkConnector, SinkContext,
    WriteReport, async_trait,
};

use crate::checkpoint::Checkpoints;
use crate::client::{self, Topology};
use crate::config::MongoSinkConfig;
use crate::error::{ItemOutcome, item, item_errors, mongo_error};
use crate::plan::Planner;

/// The `mongodb` sink type.
pub struct MongoSinkConnector;

impl SinkConnector for MongoSinkConnector {
    const TYPE: &'static str = "mongodb";
    const DOC: &'static str = "Documents in MongoDB via bulk writes (insert/upsert/replace/delete); exactly-once with a transaction per batch on a replica set.";
    type Config = MongoSinkConfig;

    fn build(config: Self::Config, _ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        config.validate()?;
        Ok(Box::new(MongoSink::new(config)))
    }
}

/// A record's write model, with the record's index in the write.
type Planned = (usize, WriteModel);

/// What a transaction attempt came to.
enum Attempt {
    Committed,
    /// Items the server refused (index into the attempt's records, outcome); nothing written.
    Refused(Vec<(usize, ItemOutcome)>),
}

/// The MongoDB sink.
pub struct MongoSink {
    config: MongoSinkConfig,
    planner: Planner,
    client: Option<Client>,
    /// Set with exactly-once (transactions).
    checkpoints: Option<Checkpoints>,
    session: Option<ClientSession>,
    /// The checkpoint the last committed transaction stored.
    committed: Checkpoint,
    /// The last transaction failed in a way that may have committed it.
    uncertain: bool,
}

impl MongoSink {
    /// A sink for a validated `config` (no I/O until `open`).
    pub fn new(config: MongoSinkConfig) -> Self {
        Self {
            planner: Planner::new(&config),
            config,
            client: None,
            checkpoints: None,
            session: None,
            committed: Checkpoint::default(),
            uncertain: false,
        }
    }

    fn shown(&self) -> String {
        client::redact(&self.config.url.0)
    }

    /// `database.collection` as configured (what a checkpoint covers).
    fn covered(&self) -> String {
        format!(
            "{}.{}",
            self.config.database,
            self.planner.collection_spec()
        )
    }

    fn checkpoints_for(&self, client: &Client, ctx: &SinkContext) -> Checkpoints {
        let coll = client
            .database(&self.config.database)
            .collection::<Document>(&self.config.checkpoints_collection);
        Checkpoints::new(coll, &ctx.job, &ctx.sink, &self.covered())
    }

    async fn connect(&self) -> Result<(Client, Topology), ConnectorError> {
        let client = client::connect(&self.config.url.0, self.config.timeout.0, "sluice").await?;
        let topology = client::hello(&client, &self.shown()).await?;
        Ok((client, topology))
    }

    /// Map every record: the models to send with the index of their record, and the rejects.
    fn plan(&self, records: &[Record]) -> (Vec<Planned>, Vec<(usize, String)>) {
        let mut models = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (i, r) in records.iter().enumerate() {
            match self.planner.plan(r) {
                Ok(m) => models.push((i, m)),
                Err(reason) => rejected.push((i, reason)),
            }
        }
        (models, rejected)
    }

    /// At-least-once: one unordered bulk write, item errors classified.
    async fn write_plain(
        &mut self,
        models: Vec<Planned>,
        mut report: WriteReport,
    ) -> Result<WriteReport, ConnectorError> {
        if models.is_empty() {
            return Ok(report);
        }
        let client = self.client.as_ref().ok_or_else(not_open)?;
        let (index, models): (Vec<usize>, Vec<WriteModel>) = models.into_iter().unzip();
        let result = client.bulk_write(models).ordered(false).await;
        if let Err(e) = result {
            let Some(bulk) = item_errors(&e) else {
                return Err(mongo_error(&self.what(), &e));
            };
            let mut first_retry = None;
            for (n, err) in &bulk.write_errors {
                let Some(&i) = index.get(*n) else {
                    return Err(ConnectorError::internal(format!(
                        "the server reported an error for item {n} of {}",
                        index.len()
                    )));
                };
                match item(err) {
                    ItemOutcome::Duplicate(_) if self.config.ignore_duplicates => {}
                    ItemOutcome::Duplicate(m) | ItemOutcome::Reject(m) => {
                        report.rejected.push((i, m))
                    }
                    ItemOutcome::Retry(m) => {
                        report.retry.push(i);
                        first_retry.get_or_insert(m);
                    }
                }
            }
            if let Some(reason) = first_retry {
                tracing::warn!(records = report.retry.len(), first = %reason, "MongoDB refused items for now; they will be written again.");
            }
        }
        report.rejected.sort_unstable_by_key(|(i, _)| *i);
        report.retry.sort_unstable();
        Ok(report)
    }

    fn what(&self) -> String {
        format!(
            "bulk write to {} on {}",
            self.covered(),
            client::hosts(&self.config.url.0)
        )
    }

    /// One transaction: the models, then the checkpoint; committed, or refused items.
    async fn attempt(
        &mut self,
        models: &[Planned],
        cp: &Checkpoint,
    ) -> Result<Attempt, ConnectorError> {
        let what = self.what();
        let (Some(client), Some(checkpoints), Some(session)) = (
            self.client.as_ref(),
            self.checkpoints.as_ref(),
            self.session.as_mut(),
        ) else {
            return Err(not_open());
        };
        session
            .start_transaction()
            .await
            .map_err(|e| mongo_error(&format!("starting a transaction for the {what}"), &e))?;
        let all = models
            .iter()
            .map(|(_, m)| m.clone())
            .chain(std::iter::once(checkpoints.model(cp)));
        let result = client
            .bulk_write(all)
            .ordered(false)
            .session(&mut *session)
            .await;
        if let Err(e) = result {
            // Nothing of it may stay: the server aborts on a write error already, and a
            // failure to abort leaves a transaction that times out on its own.
            if let Err(abort) = session.abort_transaction().await {
                tracing::debug!(error = %abort, "Aborting the transaction failed.");
            }
            let Some(bulk) = item_errors(&e) else {
                return Err(mongo_error(&what, &e));
            };
            let mut refused = Vec::with_capacity(bulk.write_errors.len());
            for (n, err) in &bulk.write_errors {
                if *n >= models.len() {
                    return Err(mongo_error(&format!("{what}: storing the checkpoint"), &e));
                }
                refused.push((*n, item(err)));
            }
            refused.sort_by_key(|(n, _)| *n);
            return Ok(Attempt::Refused(refused));
        }
        if let Err(e) = session.commit_transaction().await {
            self.uncertain = true;
            return Err(mongo_error(&format!("committing the {what}"), &e));
        }
        Ok(Attempt::Committed)
    }

    /// Exactly-once: a transaction with the checkpoint; refused items roll it back.
    async fn write_transaction(
        &mut self,
        mut models: Vec<Planned>,
        rejected: Vec<(usize, String)>,
        cp: &Checkpoint,
    ) -> Result<WriteReport, ConnectorError> {
        if !rejected.is_empty() {
            return Ok(WriteReport {
                rejected,
                retry: Vec::new(),
                rolled_back: true,
            });
        }
        if self.uncertain {
            let stored = self
                .checkpoints
                .as_ref()
                .ok_or_else(not_open)?
                .load(None)
                .await?;
            self.uncertain = false;
            let landed = *cp != self.committed && covers(&stored, cp);
            self.committed = stored;
            if landed {
                tracing::info!(collection = %self.covered(), "The previous transaction had committed; not writing it again.");
                return Ok(WriteReport::ok());
            }
        }
        loop {
            match self.attempt(&models, cp).await? {
                Attempt::Committed => {
                    self.committed = cp.clone();
                    return Ok(WriteReport::ok());
                }
                Attempt::Refused(items) => {
                    let mut rejected = Vec::new();
                    let mut ignored = Vec::new();
                    for (n, outcome) in items {
                        let i = models[n].0;
                        match outcome {
                            ItemOutcome::Duplicate(_) if self.config.ignore_duplicates => {
                                ignored.push(n)
                            }
                            ItemOutcome::Duplicate(m) | ItemOutcome::Reject(m) => {
                                rejected.push((i, m))
                            }
                            ItemOutcome::Retry(m) => {
                                return Err(ConnectorError::transient(format!(
                                    "{}: an item failed for now: {m}",
                                    self.what()
                                )));
                            }
                        }
                    }
                    if !rejected.is_empty() {
                        return Ok(WriteReport {
                            rejected,
                            retry: Vec::new(),
                            rolled_back: true,
                        });
                    }
                    if ignored.is_empty() {
                        return Err(ConnectorError::internal(
                            "a bulk write failed without an item error",
                        ));
                    }
                    // Documents already there count as written: run it again without them.
                    let mut n = 0;
                    models.retain(|_| {
                        n += 1;
                        !ignored.contains(&(n - 1))
                    });
                }
            }
        }
    }
}

/// True when `stored` is at or past `cp` in every partition of `cp`.
fn covers(stored: &Checkpoint, cp: &Checkpoint) -> bool {
    cp.offsets
        .iter()
        .all(|(p, o)| stored.get(p).is_some_and(|s| s >= o))
}

fn not_open() -> ConnectorError {
    ConnectorError::internal("mongodb sink used before open")
}

#[async_trait]
impl Sink for MongoSink {
    async fn open(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let (client, topology) = self.connect().await?;
        if ctx.guarantee == Guarantee::ExactlyOnce {
            if !topology.has_transactions() {
                return Err(ConnectorError::config(format!(
                    "delivery.guarantee = \"exactly-once\" needs multi-document transactions, which {} ({}) does not have: use a replica set (a one-node set will do) or guarantee = \"at-least-once\"",
                    client::hosts(&self.config.url.0),
                    topology.describe()
                ))
                .at("guarantee"));
            }
            let checkpoints = self.checkpoints_for(&client, ctx);
            checkpoints.ensure_collection().await?;
            if let Some(c) = self.planner.fixed_collection() {
                let coll = client
                    .database(&self.config.database)
                    .collection::<Document>(c);
                Checkpoints::new(coll, "", "", "")
                    .ensure_collection()
                    .await?;
            }
            checkpoints.claim().await?;
            self.committed = checkpoints.load(None).await?;
            self.session = Some(
                client
                    .start_session()
                    // Causal consistency would make the transaction's first command (the bulk
                    // write) carry `readConcern.afterClusterTime`, which SecantusDB refuses on
                    // bulkWrite; writes in a transaction on the primary need none.
                    .causal_consistency(false)
                    .await
                    .map_err(|e| mongo_error("starting a session", &e))?,
            );
            self.checkpoints = Some(checkpoints);
        } else if !topology.has_transactions() {
            tracing::info!(server = %topology.describe(), "MongoDB has no transactions here: the sink is at-least-once.");
        }
        tracing::info!(
            server = %topology.describe(),
            hosts = %client::hosts(&self.config.url.0),
            collection = %self.covered(),
            mode = self.config.mode.as_str(),
            transactions = self.checkpoints.is_some(),
            "MongoDB sink ready."
        );
        self.client = Some(client);
        Ok(())
    }

    /// `mongodb://hosts/database.collection` (never credentials).
    fn destination(&self) -> Option<String> {
        Some(format!(
            "mongodb://{}/{}",
            client::hosts(&self.config.url.0),
            self.covered()
        ))
    }

    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that {} answers and accepts writes to {} (and, for exactly-once, is a replica set or sharded cluster: transactions)",
            client::hosts(&self.config.url.0),
            self.covered()
        )]
    }

    fn transactional(&self) -> bool {
        true
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>, ConnectorError> {
        let Some(checkpoints) = &self.checkpoints else {
            return Ok(None);
        };
        self.committed = checkpoints.load(None).await?;
        Ok((!self.committed.is_empty()).then(|| self.committed.clone()))
    }

    async fn reset_checkpoint(
        &mut self,
        ctx: &SinkContext,
        partitions: Option<&Checkpoint>,
    ) -> Result<(), ConnectorError> {
        let client = client::connect(&self.config.url.0, self.config.timeout.0, "sluice").await?;
        let result = self.checkpoints_for(&client, ctx).reset(partitions).await;
        client.shutdown().await;
        result
    }

    async fn write(
        &mut self,
        records: &[Record],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        if self.client.is_none() {
            return Err(not_open());
        }
        let (models, rejected) = self.plan(records);
        match checkpoint.filter(|_| self.checkpoints.is_some()) {
            Some(cp) => self.write_transaction(models, rejected, cp).await,
            None => {
                let report = WriteReport {
                    rejected,
                    ..WriteReport::default()
                };
                self.write_plain(models, report).await
            }
        }
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        self.session = None;
        if let Some(client) = self.client.take() {
            client.shutdown().await;
        }
        Ok(())
    }
}
