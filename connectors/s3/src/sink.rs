//! The S3 sink: every write becomes one object per rendered prefix, named from the range of
//! source positions it covers.
//!
//! Buffering: the runtime's `batch` hints (`max_records`, `max_bytes`, `max_wait`) decide when a
//! write happens; the write then splits its records by rendered `prefix` (the partitions of
//! Firehose's dynamic partitioning) and puts one object per partition. An object is never
//! appended to: S3 objects are immutable, and a write must be durable when it returns (the
//! checkpoint is committed right after it), so a partition's buffer is flushed with every write.
//! Raise `batch.max_wait` / `max_bytes` for fewer, larger objects.
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

use arrow_schema::SchemaRef;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Guarantee, Record, Sink, SinkConnector, SinkContext,
    WriteReport, async_trait,
};

use crate::client::Bucket;
use crate::config::{Format, PartitionTime, S3SinkConfig};
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

    /// Place and encode the records: objects by key, and the records refused.
    fn plan(
        &mut self,
        records: &[Record],
        id: &str,
        stem: &str,
    ) -> Result<(Vec<Object>, Refused), ConnectorError> {
        let now = Utc::now();
        let mut rejected: Refused = Vec::new();
        // Rendered prefix → (record index, line) of its records.
        let mut groups: BTreeMap<String, Vec<Line<'_>>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            match self.place(r, now) {
                Ok((prefix, line)) => groups.entry(prefix).or_default().push((i, line)),
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
        let ext = self.config.extension();
        let mut objects = Vec::with_capacity(groups.len());
        for (prefix, lines) in groups {
            let key = format!("{prefix}{stem}-{id}.{ext}");
            let body = match (&self.config.format, &self.schema) {
                (Format::Json, _) => {
                    let size = lines.iter().map(|(_, l)| l.len() + 1).sum();
                    encode::json_lines(
                        lines.iter().map(|(_, l)| l.as_ref()),
                        size,
                        self.config.compression,
                    )?
                }
                (Format::Parquet, None) => {
                    let why = "no JSON object among the first write's records to infer a Parquet schema from";
                    rejected.extend(lines.iter().map(|(i, _)| (*i, why.to_string())));
                    continue;
                }
                (Format::Parquet, Some(schema)) => {
                    let values: Vec<&[u8]> = lines.iter().map(|(_, l)| l.as_ref()).collect();
                    let (file, misfits) =
                        encode::parquet_file(schema, &values, self.config.compression)?;
                    rejected.extend(misfits.into_iter().map(|(j, why)| (lines[j].0, why)));
                    match file {
                        Some(f) => f,
                        None => continue,
                    }
                }
            };
            objects.push(Object {
                key,
                body: Bytes::from(body),
            });
        }
        rejected.sort_unstable_by_key(|(i, _)| *i);
        Ok((objects, rejected))
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
                serde_json::from_slice::<serde::de::IgnoredAny>(&r.value)
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

#[async_trait]
impl Sink for S3Sink {
    async fn open(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        let bucket = self.connect().await.map_err(|e| ConnectorError {
            message: format!("opening the S3 sink: {}", e.message),
            ..e
        })?;
        let state = if ctx.guarantee == Guarantee::ExactlyOnce {
            let (key, mut state) = self.load_state(&bucket, ctx).await?;
            state::recover(&bucket, &key, &mut state).await?;
            Some((key, state))
        } else {
            None
        };
        tracing::info!(bucket = bucket.name(), prefix = %self.template.text(), "Connected to S3.");
        self.opened = Some(Opened {
            bucket,
            stem: format!("{}-{}", safe(&ctx.job), safe(&ctx.sink)),
            state,
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
        self.opened = None;
        Ok(())
    }
}
