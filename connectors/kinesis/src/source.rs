//! The Kinesis source: ListShards, then a GetRecords loop per readable shard.
//!
//! - Shards are listed at open (ListShards, every page), again every `discover_interval` and
//!   at once when a shard is read to its end, so shards made by a split or merge are picked up
//!   without a restart; [`crate::shards`] decides which may be read (lineage) and from where.
//! - Each readable shard gets an iterator (GetShardIterator `AFTER_SEQUENCE_NUMBER` its last
//!   record, else per `start_from`) and is read with GetRecords, at most 5 calls a second, and
//!   only every `poll_interval` while it returns nothing. The due shards are read concurrently;
//!   their results are taken in only when all calls are back, without an `.await` in between,
//!   so a dropped `next_batch` loses nothing (an iterator can be used again).
//! - `ProvisionedThroughputExceededException` backs that shard off (doubling, with jitter, up
//!   to 10 s) and counts a throttle; an expired iterator is acquired again after the last
//!   record read.
//! - Positions are (`<stream ARN>/<shard id>`, sequence number): the runtime's offset store
//!   keeps them (at-least-once) or the sinks do (exactly-once); `open` resumes after them.
//! - With `consumer` (enhanced fan-out) no shard is polled: each readable shard gets a
//!   subscription task ([`crate::fanout`]) whose events wait in a channel until `next_batch`
//!   takes them in. Discovery, lineage, positions and lag are the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::operation::get_shard_iterator::builders::GetShardIteratorFluentBuilder;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_smithy_types::DateTime;
use futures::future::join_all;
use rand::Rng;
use sluice_aws::{error_code, sdk_error};
use sluice_core::{
    Batch, BuildContext, Checkpoint, ConnectorError, Offset, Source, SourceConnector, async_trait,
};

use crate::config::{KinesisSourceConfig, StartFrom, parse_timestamp};
use crate::error::is_throttle;
use crate::fanout;
use crate::records::{Raw, convert};
use crate::shards::{ShardInfo, ShardTable, Start};
use crate::stream::StreamRef;

/// Least time between two GetRecords calls on one shard (Kinesis allows 5 a second).
const MIN_CALL_INTERVAL: Duration = Duration::from_millis(200);
/// Longest backoff of a throttled shard.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The `kinesis` source type.
pub struct KinesisSourceConnector;

impl SourceConnector for KinesisSourceConnector {
    const TYPE: &'static str = "kinesis";
    const DOC: &'static str = "Records of a Kinesis data stream (GetRecords per shard, following splits and merges); KPL aggregates de-aggregated.";
    type Config = KinesisSourceConfig;

    fn build(config: Self::Config, _ctx: &BuildContext) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(KinesisSource::new(config)?))
    }
}

/// The Kinesis source.
pub struct KinesisSource {
    config: KinesisSourceConfig,
    stream: StreamRef,
    initial: Start,
    client: Option<Client>,
    /// The stream's ARN, the prefix of its partitions (known after `open`).
    arn: String,
    /// Committed sequence number per shard id, from the checkpoint `open` got.
    resume: BTreeMap<String, String>,
    table: ShardTable,
    next_discovery: Instant,
    /// An error of a shard's call that came with records of other shards: returned next time.
    pending_error: Option<ConnectorError>,
    throttles: u64,
    /// Enhanced fan-out's state, when `consumer` is set (after `open`).
    fanout: Option<FanOut>,
}

/// The subscriptions of enhanced fan-out.
struct FanOut {
    consumer_arn: String,
    tx: tokio::sync::mpsc::Sender<fanout::Event>,
    rx: tokio::sync::mpsc::Receiver<fanout::Event>,
    /// The task of each subscribed shard, and the flag that tells it the shard is closed.
    tasks: BTreeMap<String, (tokio::task::JoinHandle<()>, Arc<AtomicBool>)>,
}

impl Drop for FanOut {
    fn drop(&mut self) {
        for (task, _) in self.tasks.values() {
            task.abort();
        }
    }
}

impl KinesisSource {
    /// A source for `config` (no I/O until `open`).
    pub fn new(config: KinesisSourceConfig) -> Result<Self, ConnectorError> {
        config.validate()?;
        let initial = match &config.start_from {
            StartFrom::TrimHorizon => Start::TrimHorizon,
            StartFrom::Latest => Start::Latest,
            StartFrom::AtTimestamp(t) => {
                Start::AtTimestamp(parse_timestamp(t).map_err(|e| e.at("start_from"))?)
            }
        };
        Ok(Self {
            stream: StreamRef::parse(&config.stream),
            config,
            initial,
            client: None,
            arn: String::new(),
            resume: BTreeMap::new(),
            table: ShardTable::default(),
            next_discovery: Instant::now(),
            pending_error: None,
            throttles: 0,
            fanout: None,
        })
    }

    /// A source that talks through `client` (tests with canned HTTP responses).
    pub fn with_client(
        config: KinesisSourceConfig,
        client: Client,
    ) -> Result<Self, ConnectorError> {
        let mut source = Self::new(config)?;
        source.client = Some(client);
        Ok(source)
    }

    /// GetRecords and GetShardIterator calls throttled so far.
    pub fn throttles(&self) -> u64 {
        self.throttles
    }

    fn client(&self) -> Result<Client, ConnectorError> {
        self.client
            .clone()
            .ok_or_else(|| ConnectorError::internal("kinesis source used before open"))
    }

    /// ListShards, every page, and take the result in.
    async fn discover(&mut self) -> Result<(), ConnectorError> {
        let client = self.client()?;
        // Marked before the calls: a `next_batch` dropped halfway must not make every later
        // call list the shards again (a service may still be answering the dropped ones).
        self.next_discovery = Instant::now() + self.config.discover_interval.0;
        let listed = match self.list_shards(&client).await {
            Ok(listed) => listed,
            Err(e) => {
                self.next_discovery = Instant::now();
                return Err(e);
            }
        };
        let resume = &self.resume;
        let new = self.table.add_listed(
            listed,
            &self.arn,
            |id| resume.get(id).cloned(),
            &self.initial,
            Instant::now(),
        );
        if !new.is_empty() {
            tracing::info!(stream = %self.stream, shards = ?new, "Kinesis shards found.");
        }
        Ok(())
    }

    /// Every shard of the stream (every page of ListShards).
    async fn list_shards(&self, client: &Client) -> Result<Vec<ShardInfo>, ConnectorError> {
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // Later pages name only the token (the API refuses the stream with it).
            let call = match &token {
                None => self.stream.list_shards(client),
                Some(t) => client.list_shards().next_token(t.as_str()),
            };
            let out = call
                .send()
                .await
                .map_err(|e| sdk_error(&format!("listing the shards of {}", self.stream), e))?;
            listed.extend(out.shards().iter().map(|s| {
                ShardInfo {
                    id: s.shard_id().to_string(),
                    parent: s.parent_shard_id().map(String::from),
                    adjacent_parent: s.adjacent_parent_shard_id().map(String::from),
                    closed: s
                        .sequence_number_range()
                        .is_some_and(|r| r.ending_sequence_number().is_some()),
                }
            }));
            token = out.next_token().map(String::from);
            if token.is_none() {
                return Ok(listed);
            }
        }
    }

    /// An iterator for every readable shard that has none.
    async fn ensure_iterators(&mut self) -> Result<(), ConnectorError> {
        let client = self.client()?;
        let now = Instant::now();
        for id in self.table.ready_ids() {
            let Some(shard) = self.table.shards.get_mut(&id) else {
                continue;
            };
            if shard.iterator.is_some() || shard.next_call > now || shard.next_iterator_call > now {
                continue;
            }
            shard.next_iterator_call = now + MIN_CALL_INTERVAL;
            let call = self.stream.get_shard_iterator(&client).shard_id(&id);
            let call = iterator_at(call, &shard.start);
            match call.send().await {
                Ok(out) => {
                    let shard =
                        self.table.shards.get_mut(&id).ok_or_else(|| {
                            ConnectorError::internal(format!("shard {id} vanished"))
                        })?;
                    shard.iterator = out.shard_iterator().map(String::from);
                    if shard.iterator.is_none() {
                        shard.finished = true;
                    }
                }
                Err(e) if is_throttle(error_code(&e)) => self.throttled(&id),
                Err(e) => {
                    return Err(sdk_error(
                        &format!("GetShardIterator for {} {id}", self.stream),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    fn throttled(&mut self, id: &str) {
        self.throttles += 1;
        if let Some(shard) = self.table.shards.get_mut(id) {
            shard.backoff = (shard.backoff * 2).clamp(MIN_CALL_INTERVAL, MAX_BACKOFF);
            let jitter = rand::rng().random_range(0.5..1.0);
            shard.next_call = Instant::now() + shard.backoff.mul_f64(jitter);
            tracing::warn!(stream = %self.stream, shard = id, backoff = ?shard.backoff, throttles = self.throttles, "Kinesis read throttled; backing off.");
        }
    }

    /// One round: GetRecords on every due shard at once, results taken in together.
    async fn read_round(&mut self, due: Vec<(String, String)>) -> Result<Batch, ConnectorError> {
        let client = self.client()?;
        let limit = self.config.max_records;
        // Counted from the moment they are sent, whether or not the answers are awaited.
        let sent = Instant::now();
        for (id, _) in &due {
            if let Some(shard) = self.table.shards.get_mut(id) {
                shard.next_call = sent + MIN_CALL_INTERVAL;
            }
        }
        let calls = due.iter().map(|(_, iterator)| {
            self.stream
                .get_records(&client)
                .shard_iterator(iterator)
                .limit(limit)
                .send()
        });
        let results = join_all(calls).await;
        // From here on no .await: the round is taken in whole or not at all.
        let now = Instant::now();
        let mut batch = Batch::default();
        let mut closed = false;
        for ((id, _), result) in due.into_iter().zip(results) {
            match result {
                Ok(out) => {
                    let Some(shard) = self.table.shards.get_mut(&id) else {
                        continue;
                    };
                    for r in out.records() {
                        let raw = Raw::from_sdk(r);
                        shard.start = Start::After(raw.sequence_number.clone());
                        convert(
                            raw,
                            &shard.partition,
                            self.config.decoding(),
                            &mut batch.records,
                            &mut batch.dead,
                        );
                    }
                    shard.behind_ms = out.millis_behind_latest();
                    shard.backoff = Duration::ZERO;
                    shard.iterator = out.next_shard_iterator().map(String::from);
                    shard.next_call = now
                        + if out.records().is_empty() {
                            self.config.poll_interval.0.max(MIN_CALL_INTERVAL)
                        } else {
                            MIN_CALL_INTERVAL
                        };
                    if shard.iterator.is_none() {
                        shard.finished = true;
                        closed = true;
                        tracing::info!(stream = %self.stream, shard = %id, "Kinesis shard read to its end.");
                    }
                }
                Err(e) => match error_code(&e) {
                    code if is_throttle(code) => self.throttled(&id),
                    Some("ExpiredIteratorException") => {
                        if let Some(shard) = self.table.shards.get_mut(&id) {
                            tracing::info!(stream = %self.stream, shard = %id, "Kinesis iterator expired; acquiring a new one.");
                            shard.iterator = None;
                        }
                    }
                    _ => {
                        let err = sdk_error(&format!("GetRecords on {} {id}", self.stream), e);
                        if err.retryable {
                            tracing::warn!(error = %err.message, "Kinesis read failed; retrying that shard.");
                            self.throttled(&id);
                        } else if self.pending_error.is_none() {
                            self.pending_error = Some(err);
                        }
                    }
                },
            }
        }
        if closed {
            // The children of a closed shard may be new: look now.
            self.next_discovery = now;
        }
        Ok(batch)
    }
}

impl KinesisSource {
    /// `next_batch` with enhanced fan-out: subscribe every readable shard that has no
    /// subscription, then take in the events that are waiting (at least one).
    async fn next_pushed(&mut self) -> Result<Option<Batch>, ConnectorError> {
        loop {
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
            if Instant::now() >= self.next_discovery {
                self.discover().await?;
            }
            let client = self.client()?;
            let Some(f) = self.fanout.as_mut() else {
                return Err(ConnectorError::internal("kinesis fan-out used before open"));
            };
            for (id, (_, closed)) in &f.tasks {
                if self.table.shards.get(id).is_some_and(|s| s.info.closed) {
                    closed.store(true, Ordering::Relaxed);
                }
            }
            for id in self.table.ready_ids() {
                if f.tasks.contains_key(&id) {
                    continue;
                }
                let shard = &self.table.shards[&id];
                tracing::info!(stream = %self.stream, shard = %id, start = ?shard.start, "Subscribing to Kinesis shard.");
                let closed = Arc::new(AtomicBool::new(shard.info.closed));
                let task = fanout::spawn(
                    fanout::Subscription {
                        client: client.clone(),
                        stream: self.stream.clone(),
                        consumer_arn: f.consumer_arn.clone(),
                        shard: id.clone(),
                        start: shard.start.clone(),
                        closed: closed.clone(),
                    },
                    f.tx.clone(),
                );
                f.tasks.insert(id, (task, closed));
            }
            // Cancel-safe: an event stays in the channel until `recv` returns it.
            let first = tokio::select! {
                event = f.rx.recv() => event,
                () = tokio::time::sleep_until(self.next_discovery.into()) => continue,
            };
            let Some(first) = first else {
                return Err(ConnectorError::internal(
                    "kinesis subscriptions' channel closed",
                ));
            };
            // From here on no .await: what was received is taken in whole.
            let mut events = vec![first];
            while events.len() < 256 {
                match f.rx.try_recv() {
                    Ok(e) => events.push(e),
                    Err(_) => break,
                }
            }
            let mut batch = Batch::default();
            for event in events {
                self.take_event(event, &mut batch);
            }
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
    }

    /// Take in one subscription event: its records into `batch`, the shard's position and lag,
    /// its end and its children.
    fn take_event(&mut self, event: fanout::Event, batch: &mut Batch) {
        match event {
            fanout::Event::Records {
                shard: id,
                records,
                behind_ms,
                children,
                ended,
            } => {
                let Some(shard) = self.table.shards.get_mut(&id) else {
                    return;
                };
                for raw in records {
                    shard.start = Start::After(raw.sequence_number.clone());
                    convert(
                        raw,
                        &shard.partition,
                        self.config.decoding(),
                        &mut batch.records,
                        &mut batch.dead,
                    );
                }
                shard.behind_ms = Some(behind_ms);
                if !ended {
                    return;
                }
                shard.finished = true;
                // Its children may not be listed yet.
                self.next_discovery = Instant::now();
                tracing::info!(stream = %self.stream, shard = %id, children = ?children, "Kinesis shard read to its end.");
                if let Some(f) = self.fanout.as_mut() {
                    f.tasks.remove(&id);
                }
                let resume = &self.resume;
                self.table.add_listed(
                    children,
                    &self.arn,
                    |id| resume.get(id).cloned(),
                    &self.initial,
                    Instant::now(),
                );
            }
            fanout::Event::Failed { shard, error } => {
                if let Some(f) = self.fanout.as_mut() {
                    f.tasks.remove(&shard);
                }
                if self.pending_error.is_none() {
                    self.pending_error = Some(error);
                }
            }
        }
    }
}

#[async_trait]
impl Source for KinesisSource {
    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        if self.client.is_none() {
            let config = self.config.connection().sdk_config().await?;
            self.client = Some(Client::new(&config));
        }
        let summary = self.stream.describe(&self.client()?).await?;
        self.arn = summary.arn.clone();
        let prefix = format!("{}/", self.arn);
        self.resume.clear();
        for (partition, offset) in resume.iter().flat_map(|cp| cp.offsets.iter()) {
            let Some(shard) = partition.strip_prefix(&prefix) else {
                continue;
            };
            match offset {
                Offset::Text(seq) if crate::seq::is_sequence_number(seq) => {
                    self.resume.insert(shard.to_string(), seq.clone());
                }
                other => {
                    return Err(ConnectorError::config(format!(
                        "the checkpoint of {partition} is {other}, not a Kinesis sequence number (reset the job's offsets)"
                    )));
                }
            }
        }
        tracing::info!(stream = %self.stream, arn = %self.arn, status = %summary, resumed = self.resume.len(), "Opened Kinesis stream.");
        self.fanout = None;
        if let Some(name) = self.config.consumer.clone() {
            let consumer_arn = fanout::register(&self.client()?, &self.arn, &name).await?;
            // A few events per shard: enough to keep every subscription flowing.
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            self.fanout = Some(FanOut {
                consumer_arn,
                tx,
                rx,
                tasks: BTreeMap::new(),
            });
            self.table = ShardTable::default();
            return self.discover().await;
        }
        self.discover().await?;
        self.ensure_iterators().await
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        if self.fanout.is_some() {
            return self.next_pushed().await;
        }
        loop {
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
            if Instant::now() >= self.next_discovery {
                self.discover().await?;
            }
            self.ensure_iterators().await?;
            let now = Instant::now();
            let mut due = Vec::new();
            let mut wake = self.next_discovery;
            for id in self.table.ready_ids() {
                let shard = &self.table.shards[&id];
                match &shard.iterator {
                    Some(it) if shard.next_call <= now => due.push((id.clone(), it.clone())),
                    _ => wake = wake.min(shard.next_call.max(now + Duration::from_millis(10))),
                }
            }
            if due.is_empty() {
                tokio::time::sleep_until(wake.into()).await;
                continue;
            }
            let batch = self.read_round(due).await?;
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
    }

    fn lag(&self) -> Option<BTreeMap<String, u64>> {
        let lag: BTreeMap<String, u64> = self
            .table
            .shards
            .values()
            .filter(|s| !s.finished)
            .filter_map(|s| {
                let ms = u64::try_from(s.behind_ms?).ok()?;
                Some((s.partition.to_string(), ms))
            })
            .collect();
        (!lag.is_empty()).then_some(lag)
    }

    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that the Kinesis stream {} exists and may be read with the job's credentials",
            self.stream
        )]
    }
}

/// A GetShardIterator call that starts where `start` says (polling and fan-out alike).
pub(crate) fn iterator_at(
    call: GetShardIteratorFluentBuilder,
    start: &Start,
) -> GetShardIteratorFluentBuilder {
    match start {
        Start::After(seq) => call
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq),
        Start::TrimHorizon => call.shard_iterator_type(ShardIteratorType::TrimHorizon),
        Start::Latest => call.shard_iterator_type(ShardIteratorType::Latest),
        Start::AtTimestamp(t) => call
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from(*t)),
    }
}
