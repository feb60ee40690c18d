//! The MongoDB source: a change stream on a collection, a database or the whole deployment.
//!
//! Each change event is one record: by default the event itself as relaxed Extended JSON
//! (`operationType`, `ns`, `documentKey`, `fullDocument`, `updateDescription`, ...), or with
//! `output = "document"` the document alone (`fullDocument`, or the `documentKey` of a delete).
//! The key is the document key; headers carry `mongodb.operation_type`, `mongodb.namespace`,
//! `mongodb.document_key`, `mongodb.cluster_time` (`seconds.increment`) and
//! `mongodb.resume_token`. The position is the event's resume token behind a prefix that orders
//! it ([`crate::position`]), stored like any offset (the offset store or the sinks' checkpoints,
//! shown and reset through the worker's offsets API and `sluice reset`); the stream resumes
//! after it with `startAfter`.
//!
//! With `snapshot = true` the collection is read first ([`crate::snapshot`]); its documents
//! come as `operationType: "snapshot"` events, then the stream continues after the read's
//! cluster time. A restart that stops inside the snapshot reads it again (at a new time).

use std::sync::Arc;

use bson::{Bson, Document, Timestamp};
use futures_util::{FutureExt, StreamExt};
use mongodb::Client;
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::ResumeToken;
use mongodb::options::{ChangeStreamOptions, FullDocumentType};
use sluice_core::{
    Batch, BuildContext, Checkpoint, ConnectorError, Header, Partition, Position, Record, Source,
    SourceConnector, async_trait,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bson_map;
use crate::client;
use crate::config::{FullDocument, MongoSourceConfig, Output, StartFrom};
use crate::error::mongo_error;
use crate::position::{EventPosition, Sequencer, is_token};
use crate::snapshot::{self, Item};

/// The `mongodb` source type.
pub struct MongoSourceConnector;

impl SourceConnector for MongoSourceConnector {
    const TYPE: &'static str = "mongodb";
    const DOC: &'static str = "Change events of a MongoDB collection, database or deployment (change streams), resumable at the exact event, with an optional initial snapshot.";
    type Config = MongoSourceConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Source>, ConnectorError> {
        config.validate()?;
        config.url.allow_local(ctx)?;
        Ok(Box::new(MongoSource::new(config)))
    }
}

/// Where the change stream opens (or opens again after an error).
#[derive(Clone, Debug)]
enum Start {
    /// The server's present (`start_from = "now"`).
    Now,
    /// `startAtOperationTime`; the sequencer skips what a checkpoint covers of that time.
    At(Timestamp),
    /// `startAfter` this resume token (`_data`): the next event after it.
    After(String),
}

/// Reading the snapshot: documents arrive on `rx`, numbered from the read's cluster time.
struct SnapshotRead {
    rx: mpsc::Receiver<Item>,
    time: Option<Timestamp>,
    next: u32,
}

/// The MongoDB change-stream source.
pub struct MongoSource {
    config: MongoSourceConfig,
    partition: Partition,
    client: Option<Client>,
    snapshot: Option<SnapshotRead>,
    stream: Option<ChangeStream<Document>>,
    /// The stream being opened.
    opening: Option<JoinHandle<Result<ChangeStream<Document>, ConnectorError>>>,
    sequencer: Sequencer,
    /// Where the stream opens: from the stored position or `start_from`, after the snapshot,
    /// then after the last event read (a stream failing mid-way opens again there).
    start: Start,
    /// Records read but not yet returned: kept here so a dropped `next_batch` loses nothing.
    pending: Vec<Record>,
}

impl MongoSource {
    /// A source for a validated `config` (no I/O until `open`).
    pub fn new(config: MongoSourceConfig) -> Self {
        let namespace = match (&config.database, &config.collection) {
            (Some(d), Some(c)) => format!("{d}.{c}"),
            (Some(d), None) => d.clone(),
            _ => "*".into(),
        };
        Self {
            partition: Arc::from(format!("mongodb:{namespace}")),
            config,
            client: None,
            snapshot: None,
            stream: None,
            opening: None,
            sequencer: Sequencer::default(),
            start: Start::Now,
            pending: Vec::new(),
        }
    }

    fn shown(&self) -> String {
        client::hosts(&self.config.url.0)
    }

    /// Open the change stream on a task of its own, so that a `next_batch` dropped while the
    /// server answers (opening at an old cluster time can take a while) does not start over.
    fn start_stream(&mut self) -> Result<(), ConnectorError> {
        let client = self.client.clone().ok_or_else(not_open)?;
        let pipeline = match &self.config.pipeline {
            Some(p) => {
                bson_map::pipeline(p).map_err(|e| ConnectorError::config(e).at("pipeline"))?
            }
            None => Vec::new(),
        };
        let mut options = ChangeStreamOptions::default();
        options.full_document = match self.config.full_document {
            FullDocument::Default => None,
            FullDocument::UpdateLookup => Some(FullDocumentType::UpdateLookup),
            FullDocument::WhenAvailable => Some(FullDocumentType::WhenAvailable),
        };
        match &self.start {
            Start::Now => {}
            Start::At(t) => {
                options.start_at_operation_time = Some(*t);
                self.sequencer.reopen_at(*t);
            }
            Start::After(token) => options.start_after = Some(resume_token(token)?),
        }
        options.batch_size = Some(u32::try_from(self.config.batch).unwrap_or(u32::MAX));
        let what = format!(
            "opening a change stream on {} at {}",
            self.partition,
            self.shown()
        );
        let target = (self.config.database.clone(), self.config.collection.clone());
        self.opening = Some(tokio::spawn(async move {
            let opened = match &target {
                (Some(d), Some(c)) => {
                    let coll = client.database(d).collection::<Document>(c);
                    coll.watch().pipeline(pipeline).with_options(options).await
                }
                (Some(d), None) => {
                    client
                        .database(d)
                        .watch()
                        .pipeline(pipeline)
                        .with_options(options)
                        .await
                }
                _ => {
                    client
                        .watch()
                        .pipeline(pipeline)
                        .with_options(options)
                        .await
                }
            };
            opened
                .map(|s| s.with_type::<Document>())
                .map_err(|e| mongo_error(&what, &e))
        }));
        Ok(())
    }

    /// Wait for the stream [`Self::start_stream`] is opening (cancel-safe: the task goes on).
    async fn finish_opening(&mut self) -> Result<(), ConnectorError> {
        if self.opening.is_none() {
            self.start_stream()?;
        }
        let Some(task) = self.opening.as_mut() else {
            return Err(not_open());
        };
        let opened = task.await;
        self.opening = None;
        let stream = opened
            .map_err(|e| ConnectorError::internal(format!("opening the change stream: {e}")))??;
        tracing::info!(stream = %self.partition, start = ?self.start, "MongoDB change stream open.");
        self.stream = Some(stream);
        Ok(())
    }

    /// One change event as a record; `None` when a checkpoint covers it.
    fn event_record(&mut self, event: Document) -> Result<Option<Record>, ConnectorError> {
        let time = match event.get("clusterTime") {
            Some(Bson::Timestamp(t)) => *t,
            _ => {
                return Err(ConnectorError::external(format!(
                    "a change event on {} has no clusterTime (was it removed by `pipeline`?)",
                    self.partition
                )));
            }
        };
        let Some(ordinal) = self.sequencer.next(time) else {
            return Ok(None);
        };
        let token = event
            .get_document("_id")
            .ok()
            .and_then(|t| t.get_str("_data").ok())
            .filter(|t| is_token(t))
            .map(str::to_string);
        self.start = match &token {
            Some(t) => Start::After(t.clone()),
            None => Start::At(time),
        };
        let position = EventPosition {
            time,
            snapshot: false,
            ordinal,
            token,
        };
        let op = event
            .get_str("operationType")
            .unwrap_or("unknown")
            .to_string();
        if op == "invalidate" {
            return Err(ConnectorError::external(format!(
                "the change stream on {} was invalidated (the collection was dropped or renamed)",
                self.partition
            )));
        }
        Ok(Some(self.record(event, &op, position)))
    }

    fn record(&mut self, mut event: Document, op: &str, position: EventPosition) -> Record {
        let namespace = event.get_document("ns").ok().map(|ns| {
            let db = ns.get_str("db").unwrap_or_default();
            match ns.get_str("coll") {
                Ok(c) => format!("{db}.{c}"),
                Err(_) => db.to_string(),
            }
        });
        let key = event.get_document("documentKey").ok().cloned();
        let token = event
            .get_document("_id")
            .ok()
            .and_then(|t| t.get_str("_data").ok().map(str::to_string));
        let wall = match event.get("wallTime") {
            Some(Bson::DateTime(d)) => Some(d.timestamp_millis()),
            _ => None,
        };
        let key_json = key.clone().map(|k| bson_map::to_json(k).to_string());
        let value = match self.config.output {
            Output::Event => bson_map::to_json(event),
            Output::Document => match event.remove("fullDocument") {
                Some(Bson::Document(d)) => bson_map::to_json(d),
                _ => bson_map::to_json(key.unwrap_or_default()),
            },
        };
        let mut headers = vec![header("mongodb.operation_type", op)];
        if let Some(ns) = namespace {
            headers.push(header("mongodb.namespace", &ns));
        }
        if let Some(k) = &key_json {
            headers.push(header("mongodb.document_key", k));
        }
        headers.push(header(
            "mongodb.cluster_time",
            &format!("{}.{}", position.time.time, position.time.increment),
        ));
        if let Some(t) = token {
            headers.push(header("mongodb.resume_token", &t));
        }
        Record {
            key: key_json.map(Into::into),
            value: value.to_string().into(),
            headers,
            timestamp: Some(wall.unwrap_or(i64::from(position.time.time) * 1000)),
            position: Position {
                partition: self.partition.clone(),
                offset: self.sequencer.offset(&position),
            },
        }
    }

    /// Move snapshot documents into `pending`; true when there is a batch to return, false
    /// once the snapshot is done and nothing of it is pending.
    async fn read_snapshot(&mut self) -> Result<bool, ConnectorError> {
        let batch = self.config.batch;
        loop {
            let Some(read) = self.snapshot.as_mut() else {
                return Ok(!self.pending.is_empty());
            };
            // Cancel-safe: `recv` loses nothing when dropped, and each item moves into `self`
            // before the next await.
            let item = if self.pending.is_empty() {
                read.rx.recv().await
            } else {
                match read.rx.recv().now_or_never() {
                    Some(item) => item,
                    None => return Ok(true),
                }
            };
            match item {
                Some(Item::Time(t)) => read.time = Some(t),
                Some(Item::Document(d)) => {
                    let time = read.time.ok_or_else(|| {
                        ConnectorError::internal("a snapshot document came before its time")
                    })?;
                    let position = EventPosition {
                        time,
                        snapshot: true,
                        ordinal: read.next,
                        token: None,
                    };
                    read.next = read.next.saturating_add(1);
                    let event = snapshot_event(&self.config, d);
                    let record = self.record(event, "snapshot", position);
                    self.pending.push(record);
                    if self.pending.len() >= batch {
                        return Ok(true);
                    }
                }
                Some(Item::End) => {
                    // The read holds everything up to and including its time: the stream
                    // starts there and skips the events of that very cluster time.
                    if let Some(t) = read.time {
                        self.start = Start::At(t);
                        self.sequencer.skip_through(t, u32::MAX);
                    }
                    self.snapshot = None;
                    tracing::info!(stream = %self.partition, "Snapshot read; following the change stream.");
                    return Ok(!self.pending.is_empty());
                }
                Some(Item::Failed(e)) => {
                    // Start the read over (at a new time) when asked again.
                    self.restart_snapshot()?;
                    return Err(e);
                }
                None => {
                    self.restart_snapshot()?;
                    return Err(ConnectorError::internal("the snapshot reader stopped"));
                }
            }
        }
    }

    fn restart_snapshot(&mut self) -> Result<(), ConnectorError> {
        let (Some(d), Some(c)) = (&self.config.database, &self.config.collection) else {
            return Err(ConnectorError::internal("a snapshot without a collection"));
        };
        let client = self.client.clone().ok_or_else(not_open)?;
        self.pending.clear();
        self.snapshot = Some(SnapshotRead {
            rx: snapshot::start(client, d.clone(), c.clone(), self.config.batch),
            time: None,
            next: 0,
        });
        Ok(())
    }
}

/// A snapshot document dressed as a change event.
fn snapshot_event(config: &MongoSourceConfig, d: Document) -> Document {
    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
    let mut event = Document::new();
    event.insert("operationType", "snapshot");
    let mut ns = Document::new();
    ns.insert("db", config.database.clone().unwrap_or_default());
    ns.insert("coll", config.collection.clone().unwrap_or_default());
    event.insert("ns", ns);
    let mut key = Document::new();
    key.insert("_id", id);
    event.insert("documentKey", key);
    event.insert("fullDocument", d);
    event
}

/// The driver's resume token for a stored `_data`.
fn resume_token(data: &str) -> Result<ResumeToken, ConnectorError> {
    let mut token = Document::new();
    token.insert("_data", data);
    bson::deserialize_from_bson(Bson::Document(token)).map_err(|e| {
        ConnectorError::internal(format!(
            "the resume token {data} is not one the driver takes: {e}"
        ))
    })
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_string(),
        value: value.to_string().into_bytes().into(),
    }
}

fn not_open() -> ConnectorError {
    ConnectorError::internal("mongodb source used before open")
}

#[async_trait]
impl Source for MongoSource {
    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        let client = client::connect(&self.config.url.0, self.config.timeout.0, "sluice").await?;
        let topology = client::hello(&client, &self.shown()).await?;
        if !topology.has_change_streams() {
            return Err(ConnectorError::config(format!(
                "{} is a {}: change streams need a replica set (a one-node set will do) or a sharded cluster",
                self.shown(),
                topology.describe()
            ))
            .at("url"));
        }
        self.client = Some(client);
        let stored = resume.as_ref().and_then(|cp| cp.get(&self.partition));
        let resumed = stored
            .map(|o| {
                EventPosition::parse(o).ok_or_else(|| {
                    ConnectorError::config(format!(
                        "the stored position {o} of {} is not one this source writes; reset the job's offsets",
                        self.partition
                    ))
                })
            })
            .transpose()?;
        if let Some(o) = stored {
            // Offsets never get shorter than the stored one (see `crate::position`).
            self.sequencer.widen(o);
        }
        match resumed {
            Some(p) if !p.snapshot => {
                self.sequencer.continue_after(p.time, p.ordinal);
                self.start = match p.token {
                    Some(token) => Start::After(token),
                    None => {
                        self.sequencer.skip_through(p.time, p.ordinal);
                        Start::At(p.time)
                    }
                };
            }
            _ if self.config.snapshot => {
                if resumed.is_some() {
                    tracing::warn!(stream = %self.partition, "Stopped inside the snapshot: reading it again from the start.");
                }
                return self.restart_snapshot();
            }
            _ => {
                self.start = match self.config.start_from {
                    StartFrom::Now => Start::Now,
                    StartFrom::At(t) => Start::At(Timestamp {
                        time: t.seconds,
                        increment: t.increment,
                    }),
                };
            }
        }
        self.start_stream()
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        if self.snapshot.is_some() && self.read_snapshot().await? {
            return Ok(Some(Batch::new(std::mem::take(&mut self.pending))));
        }
        if self.stream.is_none() {
            self.finish_opening().await?;
        }
        let batch = self.config.batch;
        while self.pending.len() < batch {
            let Some(stream) = self.stream.as_mut() else {
                return Err(not_open());
            };
            // Wait for the first event; then take what has arrived without waiting. The
            // stream keeps its in-flight request when this future is dropped.
            let next = if self.pending.is_empty() {
                stream.next().await
            } else {
                match stream.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            };
            match next {
                Some(Ok(event)) => {
                    if let Some(r) = self.event_record(event)? {
                        self.pending.push(r);
                    }
                }
                Some(Err(e)) => {
                    // The driver resumes by itself where it can; what reaches here cannot.
                    self.stream = None;
                    return Err(mongo_error(
                        &format!("reading the change stream on {}", self.partition),
                        &e,
                    ));
                }
                None => {
                    self.stream = None;
                    return Err(ConnectorError::external(format!(
                        "the change stream on {} ended",
                        self.partition
                    )));
                }
            }
        }
        Ok(Some(Batch::new(std::mem::take(&mut self.pending))))
    }

    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that {} answers, is a replica set or sharded cluster (change streams) and lets the user watch {}",
            self.shown(),
            self.partition
        )]
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        self.stream = None;
        if let Some(task) = self.opening.take() {
            task.abort();
        }
        self.snapshot = None;
        self.client = None;
        Ok(())
    }
}
