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

use std::collections::HashMap;

use bson::Document;
use mongodb::options::WriteModel;
use mongodb::{Client, ClientSession, Namespace};
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Guarantee, Record, Sink, SinkConnector, SinkContext,
    WriteReport, async_trait,
};

use crate::checkpoint::Checkpoints;
use crate::client::{self, Topology};
use crate::config::MongoSinkConfig;
use crate::error::{ItemOutcome, insert_errors, inserted_item, item, item_errors, mongo_error};
use crate::plan::Planner;

/// The `mongodb` sink type.
pub struct MongoSinkConnector;

impl SinkConnector for MongoSinkConnector {
    const TYPE: &'static str = "mongodb";
    const DOC: &'static str = "Documents in MongoDB via bulk writes (insert/upsert/replace/delete); exactly-once with a transaction per batch on a replica set.";
    type Config = MongoSinkConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        config.validate()?;
        config.url.allow_local(ctx)?;
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

    /// At-least-once: the writes outside any transaction, item errors classified.
    async fn write_plain(
        &mut self,
        models: Vec<Planned>,
        mut report: WriteReport,
    ) -> Result<WriteReport, ConnectorError> {
        if models.is_empty() {
            return Ok(report);
        }
        let what = self.what();
        let client = self.client.as_ref().ok_or_else(not_open)?;
        let (index, models): (Vec<usize>, Vec<WriteModel>) = models.into_iter().unzip();
        let refused = send(client, models, None, None, &what).await?;
        let mut first_retry = None;
        for (n, outcome) in refused {
            let i = index[n];
            match outcome {
                ItemOutcome::Duplicate(_) if self.config.ignore_duplicates => {}
                ItemOutcome::Duplicate(m) | ItemOutcome::Reject(m) => report.rejected.push((i, m)),
                ItemOutcome::Retry(m) => {
                    report.retry.push(i);
                    first_retry.get_or_insert(m);
                }
            }
        }
        if let Some(reason) = first_retry {
            tracing::warn!(records = report.retry.len(), first = %reason, "MongoDB refused items for now; they will be written again.");
        }
        report.rejected.sort_unstable_by_key(|(i, _)| *i);
        report.retry.sort_unstable();
        Ok(report)
    }

    fn what(&self) -> String {
        format!(
            "write to {} on {}",
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
        let models = models.iter().map(|(_, m)| m.clone()).collect();
        let sent = send(
            client,
            models,
            Some((checkpoints, cp)),
            Some(&mut *session),
            &what,
        )
        .await;
        match sent {
            Ok(refused) if refused.is_empty() => {}
            failed => {
                // Nothing of it may stay: the server aborts on a write error already, and a
                // failure to abort leaves a transaction that times out on its own.
                if let Err(abort) = session.abort_transaction().await {
                    tracing::debug!(error = %abort, "Aborting the transaction failed.");
                }
                let mut refused = failed?;
                refused.sort_by_key(|(n, _)| *n);
                return Ok(Attempt::Refused(refused));
            }
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

/// Send `models` — in `session`'s transaction when given, with the checkpoint last — and
/// return the items the server refused: (index into `models`, what it said). `Err` is a
/// failure of the whole call (or of the checkpoint's write).
///
/// Inserts go as one unordered `insert_many` per collection: the server's plain `insert`
/// command is its fastest write (SecantusDB's `bulkWrite` takes twice as long per document),
/// and its per-document errors come back by index like a bulk write's. In a transaction the
/// first collection with a refused document ends the attempt (the server aborted the
/// transaction). Other modes (and a mix of them) go as one unordered bulk write holding the
/// checkpoint too.
async fn send(
    client: &Client,
    models: Vec<WriteModel>,
    checkpoint: Option<(&Checkpoints, &Checkpoint)>,
    mut session: Option<&mut ClientSession>,
    what: &str,
) -> Result<Vec<(usize, ItemOutcome)>, ConnectorError> {
    let total = models.len();
    if models.iter().all(|m| matches!(m, WriteModel::InsertOne(_))) {
        let mut refused = Vec::new();
        for group in inserts(models) {
            let coll = client
                .database(&group.namespace.db)
                .collection::<Document>(&group.namespace.coll);
            let insert = coll.insert_many(group.docs).ordered(false);
            let result = match session.as_deref_mut() {
                Some(s) => insert.session(s).await,
                None => insert.await,
            };
            let Err(e) = result else { continue };
            let Some(errors) = insert_errors(&e) else {
                return Err(mongo_error(what, &e));
            };
            for err in errors {
                let n = *group.at.get(err.index).ok_or_else(|| {
                    ConnectorError::internal(format!(
                        "the server reported an error for document {} of {}",
                        err.index,
                        group.at.len()
                    ))
                })?;
                refused.push((n, inserted_item(err)));
            }
            if session.is_some() {
                return Ok(refused);
            }
        }
        if refused.is_empty()
            && let Some((checkpoints, cp)) = checkpoint
        {
            checkpoints.store(cp, session).await?;
        }
        return Ok(refused);
    }
    let all = models
        .into_iter()
        .chain(checkpoint.map(|(checkpoints, cp)| checkpoints.model(cp)));
    let bulk = client.bulk_write(all).ordered(false);
    let result = match session {
        Some(s) => bulk.session(s).await,
        None => bulk.await,
    };
    let Err(e) = result else {
        return Ok(Vec::new());
    };
    let Some(bulk) = item_errors(&e) else {
        return Err(mongo_error(what, &e));
    };
    let mut refused = Vec::with_capacity(bulk.write_errors.len());
    for (n, err) in &bulk.write_errors {
        if *n >= total {
            return Err(mongo_error(&format!("{what}: storing the checkpoint"), &e));
        }
        refused.push((*n, item(err)));
    }
    Ok(refused)
}

/// Inserts into one collection: the documents and the indexes of their models.
struct Inserts {
    namespace: Namespace,
    at: Vec<usize>,
    docs: Vec<Document>,
}

/// Insert models grouped by collection, in order of first appearance (other models are left
/// out: the caller checked there are none).
fn inserts(models: Vec<WriteModel>) -> Vec<Inserts> {
    let mut groups: Vec<Inserts> = Vec::new();
    // Usually one collection; many when routed by a field or header.
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (n, m) in models.into_iter().enumerate() {
        let WriteModel::InsertOne(m) = m else {
            continue;
        };
        let name = format!("{}.{}", m.namespace.db, m.namespace.coll);
        let g = *by_name.entry(name).or_insert_with(|| {
            groups.push(Inserts {
                namespace: m.namespace,
                at: Vec::new(),
                docs: Vec::new(),
            });
            groups.len() - 1
        });
        groups[g].at.push(n);
        groups[g].docs.push(m.document);
    }
    groups
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
            topology.exactly_once(&client::hosts(&self.config.url.0))?;
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
            "that {} accepts writes to {} (with exactly-once, `sluice validate` asks the server whether it has transactions)",
            client::hosts(&self.config.url.0),
            self.covered()
        )]
    }

    fn transactional(&self) -> bool {
        true
    }

    /// Exactly-once: ask the server what it is (`hello`, nothing written) and refuse one
    /// without transactions, as `open` would.
    async fn check(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        if ctx.guarantee != Guarantee::ExactlyOnce {
            return Ok(());
        }
        let (client, topology) = self.connect().await?;
        client.shutdown().await;
        topology.exactly_once(&client::hosts(&self.config.url.0))
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
