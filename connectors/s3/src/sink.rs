//! The S3 sink: objects per rendered prefix, named from the range of source positions they
//! cover.
//!
//! Buffering, two ways:
//! - Without `buffering`, the runtime's `batch` hints (`max_records`, `max_bytes`, `max_wait`)
//!   decide when a write happens; the write splits its records by rendered `prefix` (the
//!   partitions of Firehose's dynamic partitioning) and puts one object per partition, so every
//!   partition is flushed with every write (a write must be durable when it returns).
//! - With `buffering` (exactly-once only), each partition holds its records across writes
//!   until it reaches its own record, byte or age bound, and the stored checkpoint stays at the
//!   earliest position a held record needs replayed from; after a crash the replay brings the
//!   held records back and the checkpoint object's `flushed` entries drop those already in an
//!   object (see [`crate::state`]). A write that places a record by the clock (arrival time, or
//!   event time for a record without one) flushes every partition: such a record may land in
//!   another partition when replayed, so it must never be held.
//!
//! Object keys: `<rendered prefix><job>-<sink>-<range id>.<ext>`, the range id derived from
//! the checkpoints before and after the write (exactly-once) or from the first and last
//! position of the write (at-least-once), so that a replay of the same range overwrites the
//! same objects. See [`crate::state`] for the exactly-once protocol.
//!
//! Records that cannot be placed or encoded (not JSON, a missing partition field, a value that
//! does not fit the Parquet schema) are rejected before anything is uploaded; they go to the
//! dead letter and the others are written (`rolled_back` is never needed: nothing of a rejected
//! record reaches S3).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Guarantee, Position, Record, Sink, SinkConnector,
    SinkContext, WriteReport, async_trait,
};

use crate::client::Bucket;
use crate::config::{Buffering, Format, PartitionTime, S3SinkConfig};
use crate::encode::{self, Refused};
use crate::state::{self, SinkState, range_id, safe};
use crate::template::KeyTemplate;

/// The `s3` sink type.
pub struct S3SinkConnector;

impl SinkConnector for S3SinkConnector {
    const TYPE: &'static str = "s3";
    const DOC: &'static str = "Objects in S3 (JSON lines, gzip/zstd, or Parquet) under a partitioned key template; exactly-once by checkpoint-derived keys.";
    type Config = S3SinkConfig;

    fn build(config: Self::Config, _ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(S3Sink::new(config)?))
    }
}

/// What `open` made.
struct Opened {
    bucket: Bucket,
    /// Key stem of this job and sink: `<job>-<sink>`.
    stem: String,
    /// Exactly-once: the checkpoint object's key and what it holds.
    state: Option<(String, SinkState)>,
    /// With `buffering`: records held per rendered prefix.
    held: BTreeMap<String, Held>,
    /// With `buffering`: the checkpoint of the last write (the stored one lags behind it while
    /// records are held).
    head: Checkpoint,
}

/// Encoded records of one partition.
enum Body {
    /// JSON lines, uncompressed (compression is of the whole object).
    Lines(Vec<u8>),
    /// Parquet rows, one batch per write.
    Rows(Vec<RecordBatch>),
}

impl Body {
    /// How much there is, to undo an append.
    fn len(&self) -> usize {
        match self {
            Body::Lines(l) => l.len(),
            Body::Rows(r) => r.len(),
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Body::Lines(l) => l.truncate(len),
            Body::Rows(r) => r.truncate(len),
        }
    }

    fn append(&mut self, more: Body) {
        match (self, more) {
            (Body::Lines(l), Body::Lines(m)) => l.extend_from_slice(&m),
            (Body::Rows(r), Body::Rows(m)) => r.extend(m),
            _ => unreachable!("one format per sink"),
        }
    }
}

/// Records held for one partition (with `buffering`).
struct Held {
    /// The checkpoint before the write that brought the first of them: resuming there
    /// replays all of them.
    since: Checkpoint,
    /// When the first of them arrived.
    started: Instant,
    records: usize,
    /// Bytes of their JSON.
    bytes: usize,
    body: Body,
}

/// How to undo one write's appends to a partition.
struct Undo {
    prefix: String,
    /// `None`: the write created the partition's buffer.
    before: Option<(usize, usize, usize)>,
}

/// The S3 sink.
pub struct S3Sink {
    config: S3SinkConfig,
    template: KeyTemplate,
    /// The Parquet schema: configured, or inferred from the first write of this run.
    schema: Option<SchemaRef>,
    opened: Option<Opened>,
}

/// A record's index in the write and its line in the object.
type Line<'r> = (usize, Cow<'r, [u8]>);

/// One object of a write.
struct Object {
    key: String,
    body: Bytes,
}

impl S3Sink {
    /// A sink for `config` (no I/O until `open`).
    pub fn new(config: S3SinkConfig) -> Result<Self, ConnectorError> {
        config.validate()?;
        let template = KeyTemplate::parse(&config.prefix)?;
        let schema = config.schema.as_ref().map(encode::configured_schema);
        Ok(Self {
            config,
            template,
            schema,
            opened: None,
        })
    }

    /// `s3://bucket/prefix`, what the checkpoint object is tied to.
    fn identity(&self) -> String {
        format!("s3://{}/{}", self.config.bucket, self.template.text())
    }

    async fn connect(&self) -> Result<Bucket, ConnectorError> {
        let sdk = self.config.connection().sdk_config().await?;
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(self.config.force_path_style)
            .build();
        let bucket = Bucket::new(
            aws_sdk_s3::Client::from_conf(s3),
            self.config.bucket.clone(),
            self.config.part_size.as_usize(),
        );
        bucket.check().await?;
        Ok(bucket)
    }

    fn state_key(&self, ctx: &SinkContext) -> String {
        state::state_key(self.template.fixed_start(), &ctx.job, &ctx.sink)
    }

    /// Read the checkpoint object and check it belongs here.
    async fn load_state(
        &self,
        bucket: &Bucket,
        ctx: &SinkContext,
    ) -> Result<(String, SinkState), ConnectorError> {
        let key = self.state_key(ctx);
        let identity = self.identity();
        let state = match state::load(bucket, &key).await? {
            Some(s) if s.destination != identity => {
                return Err(ConnectorError::config(format!(
                    "the checkpoint object s3://{}/{key} was written for {}, not {identity}: reset the job's offsets (`sluice reset`) or use another job or sink name",
                    bucket.name(),
                    s.destination
                )));
            }
            Some(s) => s,
            None => SinkState {
                job: ctx.job.clone(),
                sink: ctx.sink.clone(),
                destination: identity,
                ..SinkState::default()
            },
        };
        Ok((key, state))
    }

    /// Place the records: their lines grouped by rendered prefix, the records refused, and
    /// whether any record's prefix came from the clock (it would render differently on a
    /// replay). A record whose partition's `flushed` entry covers its position is already in
    /// an object and left out. Infers the Parquet schema on the first write of a run.
    fn group<'r>(
        &mut self,
        records: &'r [Record],
        flushed: Option<&BTreeMap<String, Checkpoint>>,
    ) -> (BTreeMap<String, Vec<Line<'r>>>, Refused, bool) {
        let now = Utc::now();
        let mut rejected: Refused = Vec::new();
        let mut clock = false;
        let mut groups: BTreeMap<String, Vec<Line<'r>>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            match self.place(r, now) {
                Ok((prefix, line)) => {
                    if flushed
                        .and_then(|f| f.get(&prefix))
                        .is_some_and(|cp| cp.covers(&r.position))
                    {
                        continue;
                    }
                    clock |= self.template.uses_time()
                        && (self.config.partition_time == PartitionTime::Arrival
                            || r.timestamp.is_none());
                    groups.entry(prefix).or_default().push((i, line));
                }
                Err(reason) => rejected.push((i, reason)),
            }
        }
        if self.config.format == Format::Parquet && self.schema.is_none() {
            let values = groups.values().flatten().map(|(_, v)| v.as_ref());
            self.schema = encode::infer_schema(values);
            if let Some(s) = &self.schema {
                tracing::info!(schema = %s, "Inferred the Parquet schema from the first write.");
            }
        }
        (groups, rejected, clock)
    }

    /// Encode one partition's lines: the body (`None` when every record was refused) and the
    /// records refused (indices into the write).
    fn encode(&self, lines: &[Line<'_>]) -> Result<(Option<Body>, Refused), ConnectorError> {
        match (&self.config.format, &self.schema) {
            (Format::Json, _) => {
                let size = lines.iter().map(|(_, l)| l.len() + 1).sum();
                let mut plain = Vec::with_capacity(size);
                for (_, l) in lines {
                    plain.extend_from_slice(l);
                    plain.push(b'\n');
                }
                Ok((Some(Body::Lines(plain)), Vec::new()))
            }
            (Format::Parquet, None) => {
                let why =
                    "no JSON object among the first write's records to infer a Parquet schema from";
                Ok((
                    None,
                    lines.iter().map(|(i, _)| (*i, why.to_string())).collect(),
                ))
            }
            (Format::Parquet, Some(schema)) => {
                let values: Vec<&[u8]> = lines.iter().map(|(_, l)| l.as_ref()).collect();
                let (rows, misfits) = encode::rows(schema, &values)?;
                let refused = misfits
                    .into_iter()
                    .map(|(j, why)| (lines[j].0, why))
                    .collect();
                Ok((rows.map(|r| Body::Rows(vec![r])), refused))
            }
        }
    }

    /// The object body of an encoded partition.
    fn finish(&self, body: &Body) -> Result<Bytes, ConnectorError> {
        let compression = self.config.compression;
        let bytes = match (body, &self.schema) {
            (Body::Lines(plain), _) => encode::compress(plain, compression)?,
            (Body::Rows(batches), Some(schema)) => {
                encode::parquet_of(schema, batches, compression)?
            }
            (Body::Rows(_), None) => {
                return Err(ConnectorError::internal("Parquet rows without a schema"));
            }
        };
        Ok(Bytes::from(bytes))
    }

    /// Place and encode the records: objects by key, and the records refused.
    fn plan(
        &mut self,
        records: &[Record],
        id: &str,
        stem: &str,
    ) -> Result<(Vec<Object>, Refused), ConnectorError> {
        let (groups, mut rejected, _) = self.group(records, None);
        let ext = self.config.extension();
        let mut objects = Vec::with_capacity(groups.len());
        for (prefix, lines) in groups {
            let (body, refused) = self.encode(&lines)?;
            rejected.extend(refused);
            if let Some(body) = body {
                objects.push(Object {
                    key: format!("{prefix}{stem}-{id}.{ext}"),
                    body: self.finish(&body)?,
                });
            }
        }
        rejected.sort_unstable_by_key(|(i, _)| *i);
        Ok((objects, rejected))
    }

    /// An exactly-once write with `buffering`: the records join their partitions' buffers,
    /// the partitions that reached a bound become objects (all of them when `all`, or when a
    /// record's partition came from the clock), and the stored checkpoint moves to where a
    /// replay would bring back every record still held (see [`crate::state`]).
    async fn write_held(
        &mut self,
        records: &[Record],
        next: &Checkpoint,
        buffering: &Buffering,
        all: bool,
    ) -> Result<WriteReport, ConnectorError> {
        let flushed = match &self.opened {
            Some(Opened {
                state: Some((_, s)),
                ..
            }) => s.flushed.clone(),
            _ => return Err(ConnectorError::internal("s3 sink used before open")),
        };
        let (groups, mut rejected, clock) = self.group(records, Some(&flushed));
        let mut encoded = Vec::with_capacity(groups.len());
        for (prefix, lines) in groups {
            let bytes: usize = lines.iter().map(|(_, l)| l.len() + 1).sum();
            let (body, refused) = self.encode(&lines)?;
            let count = lines.len() - refused.len();
            rejected.extend(refused);
            if let Some(body) = body {
                encoded.push((prefix, body, count, bytes));
            }
        }
        rejected.sort_unstable_by_key(|(i, _)| *i);
        let Some(opened) = self.opened.as_mut() else {
            return Err(ConnectorError::internal("s3 sink used before open"));
        };
        let mut undo = Vec::with_capacity(encoded.len());
        for (prefix, body, count, bytes) in encoded {
            let held = opened.held.get(&prefix);
            undo.push(Undo {
                prefix: prefix.clone(),
                before: held.map(|h| (h.body.len(), h.records, h.bytes)),
            });
            match opened.held.get_mut(&prefix) {
                Some(h) => {
                    h.body.append(body);
                    h.records += count;
                    h.bytes += bytes;
                }
                None => {
                    let h = Held {
                        since: opened.head.clone(),
                        started: Instant::now(),
                        records: count,
                        bytes,
                        body,
                    };
                    opened.held.insert(prefix, h);
                }
            }
        }
        // A source partition the checkpoint before this write does not name yet: a record of
        // it held now would have no position to be replayed from in the stored checkpoint (the
        // earliest of the held ones), so a restart would start that partition wherever the
        // source starts unknown partitions (a Kafka group's committed offset, already past
        // it). Flushing everything once, when a partition first appears, keeps every held
        // record's partition in every stored checkpoint.
        let new_partition = next
            .offsets
            .keys()
            .any(|p| !opened.head.offsets.contains_key(p));
        let all = all || clock || new_partition;
        let due: Vec<String> = opened
            .held
            .iter()
            .filter(|(_, h)| {
                all || h.records >= buffering.max_records
                    || h.bytes as u64 >= buffering.max_bytes.0
                    || h.started.elapsed() >= buffering.max_wait.0
            })
            .map(|(p, _)| p.clone())
            .collect();
        let taken: Vec<(String, Held)> = due
            .into_iter()
            .filter_map(|p| opened.held.remove_entry(&p))
            .collect();
        let stem = opened.stem.clone();
        let result = match self.held_objects(&taken, &stem, next) {
            Ok(objects) => match self.opened.as_mut() {
                Some(opened) => commit_held(opened, objects, &taken, next).await,
                None => Err(ConnectorError::internal("s3 sink used before open")),
            },
            Err(e) => Err(e),
        };
        let Some(opened) = self.opened.as_mut() else {
            return Err(ConnectorError::internal("s3 sink used before open"));
        };
        match result {
            Ok(()) => {
                opened.head = next.clone();
                Ok(WriteReport {
                    rejected,
                    ..WriteReport::ok()
                })
            }
            Err(e) => {
                // Nothing of this write happened: the runtime writes the same records again.
                opened.held.extend(taken);
                for u in undo.into_iter().rev() {
                    match u.before {
                        None => {
                            opened.held.remove(&u.prefix);
                        }
                        Some((len, records, bytes)) => {
                            if let Some(h) = opened.held.get_mut(&u.prefix) {
                                h.body.truncate(len);
                                h.records = records;
                                h.bytes = bytes;
                            }
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// The objects of the `taken` partitions, each named from its range: the checkpoint
    /// before its first record and the checkpoint after this write.
    fn held_objects(
        &self,
        taken: &[(String, Held)],
        stem: &str,
        next: &Checkpoint,
    ) -> Result<Vec<Object>, ConnectorError> {
        let ext = self.config.extension();
        let mut objects = Vec::with_capacity(taken.len());
        for (prefix, h) in taken {
            let id = range_id(&[
                &serde_json::to_vec(&h.since).unwrap_or_default(),
                &serde_json::to_vec(next).unwrap_or_default(),
            ]);
            objects.push(Object {
                key: format!("{prefix}{stem}-{id}.{ext}"),
                body: self.finish(&h.body)?,
            });
        }
        Ok(objects)
    }

    /// The rendered prefix and the line of one record; `Err` is why it is refused.
    fn place<'r>(
        &self,
        r: &'r Record,
        now: DateTime<Utc>,
    ) -> Result<(String, Cow<'r, [u8]>), String> {
        let parsed: Option<Value> = if self.template.needs_value() {
            Some(
                serde_json::from_slice(&r.value)
                    .map_err(|e| format!("the value is not valid JSON: {e}"))?,
            )
        } else {
            if self.config.format == Format::Json {
                sluice_core::json::check_json(&r.value, sluice_core::json::DEFAULT_MAX_DEPTH)
                    .map_err(|e| format!("the value is not valid JSON: {e}"))?;
            }
            None
        };
        let time = match (self.config.partition_time, r.timestamp) {
            (PartitionTime::Event, Some(ms)) => DateTime::from_timestamp_millis(ms).unwrap_or(now),
            _ => now,
        };
        let prefix = if self.template.is_fixed() {
            self.template.text().to_string()
        } else {
            self.template.render(parsed.as_ref(), time)?
        };
        // One record, one line: a pretty-printed document is made compact.
        let line = if r.value.contains(&b'\n') {
            let v: Value = match parsed {
                Some(v) => v,
                None => serde_json::from_slice(&r.value)
                    .map_err(|e| format!("the value is not valid JSON: {e}"))?,
            };
            Cow::Owned(serde_json::to_vec(&v).map_err(|e| e.to_string())?)
        } else {
            Cow::Borrowed(&r.value[..])
        };
        Ok((prefix, line))
    }
}

/// Most uploads in flight at once (a write with many partitions makes many objects).
const PARALLEL_UPLOADS: usize = 16;

/// Upload every object, up to [`PARALLEL_UPLOADS`] at once.
async fn upload(bucket: &Bucket, objects: Vec<Object>) -> Result<(), ConnectorError> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut first_error = None;
    let mut note = |done: Option<Result<Result<(), ConnectorError>, tokio::task::JoinError>>| {
        if let Some(done) = done {
            let result = done.map_err(|e| ConnectorError::internal(format!("an upload task: {e}")));
            if let Err(e) = result.and_then(|r| r) {
                first_error.get_or_insert(e);
            }
        }
    };
    for o in objects {
        if tasks.len() >= PARALLEL_UPLOADS {
            note(tasks.join_next().await);
        }
        let bucket = bucket.clone();
        tasks.spawn(async move { bucket.put(&o.key, o.body).await });
    }
    while let Some(done) = tasks.join_next().await {
        note(Some(done));
    }
    first_error.map_or(Ok(()), Err)
}

/// Upload the objects of the partitions `taken` from the buffers and store the checkpoint
/// object: the stored checkpoint becomes the earliest of the held partitions' `since` and
/// `next`, and each taken partition's `flushed` entry `next`.
async fn commit_held(
    opened: &mut Opened,
    objects: Vec<Object>,
    taken: &[(String, Held)],
    next: &Checkpoint,
) -> Result<(), ConnectorError> {
    let Opened {
        bucket,
        state: Some((key, s)),
        held,
        ..
    } = opened
    else {
        return Err(ConnectorError::internal("s3 sink used before open"));
    };
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    if !objects.is_empty() {
        // Name the objects before making them (as without buffering): a crash from here on
        // leaves them to the next open to delete.
        for k in &keys {
            if !s.pending.contains(k) {
                s.pending.push(k.clone());
            }
        }
        state::store(bucket, key, s).await?;
        upload(bucket, objects).await?;
    }
    // An earlier, failed attempt at this write may have named other keys.
    for stale in s.pending.iter().filter(|k| !keys.contains(k)) {
        bucket.delete(stale).await?;
    }
    let mut committed = s.clone();
    committed.pending.clear();
    for (prefix, _) in taken {
        committed.flushed.insert(prefix.clone(), next.clone());
    }
    let resume = Checkpoint::earliest(held.values().map(|h| &h.since).chain(std::iter::once(next)));
    // A partition's entry matters only while a replay from `resume` reaches into its range.
    committed.flushed.retain(|_, cp| {
        cp.offsets.iter().any(|(p, o)| {
            !resume.covers(&Position {
                partition: p.clone(),
                offset: o.clone(),
            })
        })
    });
    committed.checkpoint = resume;
    if committed != *s {
        state::store(bucket, key, &committed).await?;
        *s = committed;
    }
    Ok(())
}

#[async_trait]
impl Sink for S3Sink {
    async fn open(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let bucket = self.connect().await.map_err(|e| ConnectorError {
            message: format!("opening the S3 sink: {}", e.message),
            ..e
        })?;
        if self.config.buffering.is_some() && ctx.guarantee != Guarantee::ExactlyOnce {
            return Err(ConnectorError::config(
                "`buffering` holds records across writes, which only an exactly-once job replays after a crash: set guarantee = \"exactly-once\", or leave `buffering` out and use the sink's `batch` hints",
            )
            .at("buffering"));
        }
        let state = if ctx.guarantee == Guarantee::ExactlyOnce {
            let (key, mut state) = self.load_state(&bucket, ctx).await?;
            state::recover(&bucket, &key, &mut state).await?;
            Some((key, state))
        } else {
            None
        };
        tracing::info!(bucket = bucket.name(), prefix = %self.template.text(), "Connected to S3.");
        let head = state
            .as_ref()
            .map(|(_, s)| s.checkpoint.clone())
            .unwrap_or_default();
        self.opened = Some(Opened {
            bucket,
            stem: format!("{}-{}", safe(&ctx.job), safe(&ctx.sink)),
            state,
            held: BTreeMap::new(),
            head,
        });
        Ok(())
    }

    fn destination(&self) -> Option<String> {
        Some(match &self.config.endpoint {
            Some(endpoint) => format!(
                "{}/{}/{}",
                endpoint.trim_end_matches('/'),
                self.config.bucket,
                self.template.text()
            ),
            None => self.identity(),
        })
    }

    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that bucket {} exists and accepts writes with these credentials",
            self.config.bucket
        )]
    }

    fn transactional(&self) -> bool {
        true
    }

    /// With `buffering`: when the oldest held partition reaches `max_wait`, so the runtime's
    /// empty write flushes it while no record comes.
    fn wake_at(&self) -> Option<Instant> {
        let max_wait = self.config.buffering.as_ref()?.max_wait.0;
        let opened = self.opened.as_ref()?;
        opened.held.values().map(|h| h.started + max_wait).min()
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>, ConnectorError> {
        Ok(self
            .opened
            .as_ref()
            .and_then(|o| o.state.as_ref())
            .map(|(_, s)| s.checkpoint.clone())
            .filter(|cp| !cp.is_empty()))
    }

    async fn reset_checkpoint(
        &mut self,
        ctx: &SinkContext,
        partitions: Option<&Checkpoint>,
    ) -> Result<(), ConnectorError> {
        let bucket = self.connect().await?;
        let (key, mut state) = self.load_state(&bucket, ctx).await?;
        state::recover(&bucket, &key, &mut state).await?;
        // Positions of the partitions' last objects are about positions before the reset.
        state.flushed.clear();
        match partitions {
            None => state.checkpoint = Checkpoint::default(),
            Some(cp) => {
                for (p, o) in &cp.offsets {
                    state.checkpoint.offsets.insert(p.clone(), o.clone());
                }
            }
        }
        state::store(&bucket, &key, &state).await
    }

    async fn write(
        &mut self,
        records: &[Record],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let Some(opened) = self.opened.as_ref() else {
            return Err(ConnectorError::internal("s3 sink used before open"));
        };
        if let (Some(buffering), Some(next), Some(_)) =
            (self.config.buffering.clone(), checkpoint, &opened.state)
        {
            return self.write_held(records, next, &buffering, false).await;
        }
        let stem = opened.stem.clone();
        let id = match (checkpoint, &opened.state) {
            (Some(next), Some((_, s))) => range_id(&[
                &serde_json::to_vec(&s.checkpoint).unwrap_or_default(),
                &serde_json::to_vec(next).unwrap_or_default(),
            ]),
            _ => match (records.first(), records.last()) {
                (Some(a), Some(b)) => range_id(&[
                    a.position.to_string().as_bytes(),
                    b.position.to_string().as_bytes(),
                    &records.len().to_le_bytes(),
                ]),
                _ => return Ok(WriteReport::ok()),
            },
        };
        let (objects, rejected) = self.plan(records, &id, &stem)?;
        let Some(opened) = self.opened.as_mut() else {
            return Err(ConnectorError::internal("s3 sink used before open"));
        };
        match (checkpoint, &mut opened.state) {
            (Some(next), Some((key, s))) => {
                let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
                if !objects.is_empty() {
                    // Name the objects before making them: a crash from here on leaves them to
                    // the next open to delete.
                    for k in &keys {
                        if !s.pending.contains(k) {
                            s.pending.push(k.clone());
                        }
                    }
                    state::store(&opened.bucket, key, s).await?;
                    upload(&opened.bucket, objects).await?;
                }
                // An earlier, failed attempt at this range may have named other keys (records
                // placed by arrival time): they hold copies of this write's records.
                for stale in s.pending.iter().filter(|k| !keys.contains(k)) {
                    opened.bucket.delete(stale).await?;
                }
                if keys.is_empty() && *next == s.checkpoint && s.pending.is_empty() {
                    return Ok(WriteReport {
                        rejected,
                        ..WriteReport::ok()
                    });
                }
                let mut committed = s.clone();
                committed.checkpoint = next.clone();
                committed.pending.clear();
                state::store(&opened.bucket, key, &committed).await?;
                *s = committed;
            }
            _ => upload(&opened.bucket, objects).await?,
        }
        Ok(WriteReport {
            rejected,
            ..WriteReport::ok()
        })
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        let held = self.opened.as_ref().filter(|o| !o.held.is_empty());
        if let (Some(buffering), Some(opened)) = (self.config.buffering.clone(), held) {
            // Everything held becomes objects, under the checkpoint of the last write.
            let head = opened.head.clone();
            self.write_held(&[], &head, &buffering, true).await?;
        }
        self.opened = None;
        Ok(())
    }
}
