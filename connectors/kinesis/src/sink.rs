//! The Kinesis sink: PutRecords, every entry classified on its own.
//!
//! A write's records become PutRecords entries ([`crate::plan`]); a record that cannot be one
//! (over 1 MiB with its key, no partition key) is rejected before anything is sent. The entries
//! go out in calls of at most 500 entries and 5 MiB, one after the other. Each response is read
//! entry by entry: an entry that failed with `ProvisionedThroughputExceededException` or
//! `InternalFailure` is reported as `retry` (the runtime sends exactly those again, after a
//! backoff with jitter: a call is never replayed whole), any other error code as `rejected`
//! with its code and message (the runtime dead-letters it).
//!
//! When a call fails as a whole after earlier calls of the same write succeeded, the entries
//! of that call and the later ones are reported as `retry` (if the failure is transient), so
//! what was written is not written again. A failure of the first call is the write's error.
//!
//! Kinesis has no transactions: at-least-once. A record retried after a crash or a lost
//! response is appended again (consumers see it twice, with a new sequence number).

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use sluice_aws::sdk_error;
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Record, Sink, SinkConnector, SinkContext,
    WriteReport, async_trait,
};

use crate::config::KinesisSinkConfig;
use crate::error::entry_is_retryable;
use crate::plan::{self, Entry, Planner};
use crate::stream::StreamRef;

/// The `kinesis` sink type.
pub struct KinesisSinkConnector;

impl SinkConnector for KinesisSinkConnector {
    const TYPE: &'static str = "kinesis";
    const DOC: &'static str = "Records into a Kinesis data stream via PutRecords; failed entries retried or dead-lettered one by one (at-least-once).";
    type Config = KinesisSinkConfig;

    fn build(config: Self::Config, _ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(KinesisSink::new(config)?))
    }
}

/// The Kinesis sink.
pub struct KinesisSink {
    config: KinesisSinkConfig,
    stream: StreamRef,
    planner: Planner,
    client: Option<Client>,
}

impl KinesisSink {
    /// A sink for `config` (no I/O until `open`).
    pub fn new(config: KinesisSinkConfig) -> Result<Self, ConnectorError> {
        config.validate()?;
        Ok(Self {
            stream: StreamRef::parse(&config.stream),
            planner: Planner {
                partition_key: config.partition_key.clone(),
                explicit_hash_key: config.explicit_hash_key.clone(),
            },
            config,
            client: None,
        })
    }

    /// A sink that talks through `client` (tests with canned HTTP responses).
    pub fn with_client(config: KinesisSinkConfig, client: Client) -> Result<Self, ConnectorError> {
        let mut sink = Self::new(config)?;
        sink.client = Some(client);
        Ok(sink)
    }

    fn request_entry(e: &Entry, r: &Record) -> Result<PutRecordsRequestEntry, ConnectorError> {
        PutRecordsRequestEntry::builder()
            .data(Blob::new(r.value.to_vec()))
            .partition_key(e.partition_key.clone())
            .set_explicit_hash_key(e.explicit_hash_key.clone())
            .build()
            .map_err(|err| ConnectorError::internal(format!("building a PutRecords entry: {err}")))
    }

    /// Send one call; fold its per-entry results into `report`.
    async fn put(
        &self,
        client: &Client,
        entries: &[Entry],
        records: &[Record],
        report: &mut WriteReport,
    ) -> Result<(), ConnectorError> {
        let request: Vec<PutRecordsRequestEntry> = entries
            .iter()
            .map(|e| Self::request_entry(e, &records[e.index]))
            .collect::<Result<_, _>>()?;
        let out = self
            .stream
            .put_records(client)
            .set_records(Some(request))
            .send()
            .await
            .map_err(|e| sdk_error(&format!("PutRecords to {}", self.stream), e))?;
        if out.records().len() != entries.len() {
            return Err(ConnectorError::external(format!(
                "PutRecords to {}: {} results for {} entries",
                self.stream,
                out.records().len(),
                entries.len()
            )));
        }
        let mut throttled = 0usize;
        for (e, result) in entries.iter().zip(out.records()) {
            let Some(code) = result.error_code() else {
                continue;
            };
            if entry_is_retryable(code) {
                throttled += 1;
                report.retry.push(e.index);
            } else {
                let message = result.error_message().unwrap_or("no message");
                report
                    .rejected
                    .push((e.index, format!("{code}: {message}")));
            }
        }
        if throttled > 0 {
            tracing::debug!(stream = %self.stream, entries = throttled, "PutRecords entries failed transiently.");
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for KinesisSink {
    async fn open(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        if self.client.is_none() {
            let config = self.config.connection().sdk_config().await?;
            self.client = Some(Client::new(&config));
        }
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| ConnectorError::internal("no client"))?;
        let summary = self.stream.describe(client).await?;
        tracing::info!(stream = %self.stream, status = %summary, "Connected to Kinesis.");
        Ok(())
    }

    /// `kinesis://<endpoint or region>/<stream>`.
    fn destination(&self) -> Option<String> {
        let place = self
            .config
            .endpoint
            .clone()
            .or_else(|| self.config.region.clone())
            .unwrap_or_else(|| "default-region".into());
        Some(format!("kinesis://{place}/{}", self.stream.name()))
    }

    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that the Kinesis stream {} exists and accepts PutRecords with the job's credentials",
            self.stream
        )]
    }

    async fn write(
        &mut self,
        records: &[Record],
        _checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let client = self
            .client
            .clone()
            .ok_or_else(|| ConnectorError::internal("kinesis sink used before open"))?;
        let mut report = WriteReport::ok();
        let mut entries = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            match self.planner.entry(i, r) {
                Ok(e) => entries.push(e),
                Err(reason) => report.rejected.push((i, reason)),
            }
        }
        let calls = plan::cut(&entries, records);
        for (n, range) in calls.iter().enumerate() {
            match self
                .put(&client, &entries[range.clone()], records, &mut report)
                .await
            {
                Ok(()) => {}
                // Earlier calls are durable: send only this call's entries and the later ones
                // again, never the whole write.
                Err(e) if n > 0 && e.retryable => {
                    tracing::warn!(error = %e.message, stream = %self.stream, "PutRecords failed; retrying the rest of the write.");
                    report
                        .retry
                        .extend(entries[range.start..].iter().map(|e| e.index));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        report.retry.sort_unstable();
        report.rejected.sort_unstable_by_key(|(i, _)| *i);
        Ok(report)
    }
}
