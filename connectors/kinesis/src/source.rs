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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
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
            listed.extend(out.shards().iter().map(|s| ShardInfo {
                id: s.shard_id().to_string(),
                parent: s.parent_shard_id().map(String::from),
                adjacent_parent: s.adjacent_parent_shard_id().map(String::from),
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
            let call = match &shard.start {
                Start::After(seq) => call
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(seq),
                Start::TrimHorizon => call.shard_iterator_type(ShardIteratorType::TrimHorizon),
                Start::Latest => call.shard_iterator_type(ShardIteratorType::Latest),
                Start::AtTimestamp(t) => call
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from(*t)),
            };
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
                        let raw = Raw {
                            data: bytes::Bytes::copy_from_slice(r.data().as_ref()),
                            partition_key: r.partition_key().unwrap_or_default().to_string(),
                            sequence_number: r.sequence_number().to_string(),
                            arrival_ms: r
                                .approximate_arrival_timestamp()
                                .and_then(|t| t.to_millis().ok()),
                        };
                        shard.start = Start::After(raw.sequence_number.clone());
                        convert(
                            raw,
                            &shard.partition,
                            self.config.format,
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
        self.discover().await?;
        self.ensure_iterators().await
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
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
