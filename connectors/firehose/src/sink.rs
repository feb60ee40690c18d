//! The Firehose sink: PutRecordBatch calls within the service's limits, each record's answer
//! classified on its own.
//!
//! A write's records are cut into calls of at most 500 records and 4 MiB ([`crate::batch`]);
//! a record above 1,000 KiB is rejected before anything is sent. The answer of a call lists
//! one entry per record: without an error code it is delivered; `ServiceUnavailableException`
//! and `InternalFailure` (throttling, the service's own trouble) are reported as `retry` (the
//! runtime sends only those again, with backoff); any other code (a KMS key that cannot be
//! used, ...) rejects the record with that code and message (the runtime dead-letters it). A
//! failure of a whole call after earlier calls of the write succeeded reports the records of
//! that call and the later ones as `retry`, so the delivered ones are never sent again; only
//! when the first call fails is the write an error (nothing of it was delivered).
//!
//! Firehose has no transactions and no idempotent puts: the sink is at-least-once. A record is
//! sent again only when its own put was not acknowledged (or after a crash, from the last
//! committed source position).

use aws_sdk_firehose::Client;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record as FirehoseRecord;
use sluice_aws::sdk_error;
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Record, Sink, SinkConnector, SinkContext,
    WriteReport, async_trait,
};

use crate::batch::{self, MAX_RECORD_BYTES};
use crate::config::FirehoseSinkConfig;

/// Per-record error codes that a later attempt may not get (AWS documents these two).
const RETRYABLE: &[&str] = &["ServiceUnavailableException", "InternalFailure"];

/// The `firehose` sink type.
pub struct FirehoseSinkConnector;

impl SinkConnector for FirehoseSinkConnector {
    const TYPE: &'static str = "firehose";
    const DOC: &'static str = "Records into an Amazon Data Firehose delivery stream (PutRecordBatch); failed records retried or dead-lettered one by one. At-least-once.";
    type Config = FirehoseSinkConfig;

    fn build(config: Self::Config, _ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        config.validate()?;
        Ok(Box::new(FirehoseSink::new(config)))
    }
}

/// The Firehose sink.
pub struct FirehoseSink {
    config: FirehoseSinkConfig,
    client: Option<Client>,
}

impl FirehoseSink {
    /// A sink for `config` (no I/O until `open`).
    pub fn new(config: FirehoseSinkConfig) -> Self {
        Self {
            config,
            client: None,
        }
    }

    /// A sink that uses `client` instead of connecting (tests with canned answers).
    pub fn with_client(config: FirehoseSinkConfig, client: Client) -> Self {
        Self {
            config,
            client: Some(client),
        }
    }

    fn data(&self, r: &Record) -> Blob {
        let mut data = Vec::with_capacity(r.value.len() + 1);
        data.extend_from_slice(&r.value);
        if self.config.newline && !r.value.ends_with(b"\n") {
            data.push(b'\n');
        }
        Blob::new(data)
    }

    fn size(&self, r: &Record) -> usize {
        r.value.len() + usize::from(self.config.newline && !r.value.ends_with(b"\n"))
    }
}

#[async_trait]
impl Sink for FirehoseSink {
    async fn open(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        let client = match self.client.take() {
            Some(c) => c,
            None => {
                let sdk = self.config.connection().sdk_config().await?;
                Client::new(&sdk)
            }
        };
        let what = format!("DescribeDeliveryStream {}", self.config.stream);
        let described = client
            .describe_delivery_stream()
            .delivery_stream_name(&self.config.stream)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("opening the Firehose sink: {what}"), e))?;
        if let Some(d) = described.delivery_stream_description {
            tracing::info!(stream = %self.config.stream, status = %d.delivery_stream_status.as_str(), "Connected to Firehose.");
        }
        self.client = Some(client);
        Ok(())
    }

    fn destination(&self) -> Option<String> {
        Some(format!(
            "firehose://{}/{}",
            self.config.region.as_deref().unwrap_or("default-region"),
            self.config.stream
        ))
    }

    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that delivery stream {} exists and accepts PutRecordBatch with these credentials",
            self.config.stream
        )]
    }

    async fn write(
        &mut self,
        records: &[Record],
        _checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let Some(client) = self.client.clone() else {
            return Err(ConnectorError::internal("firehose sink used before open"));
        };
        let mut report = WriteReport::ok();
        // Indices of the records that can be sent, and their sizes.
        let mut sendable = Vec::with_capacity(records.len());
        let mut sizes = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let size = self.size(r);
            if size > MAX_RECORD_BYTES {
                report.rejected.push((
                    i,
                    format!("the record is {size} bytes; Firehose takes at most {MAX_RECORD_BYTES} bytes per record"),
                ));
            } else {
                sendable.push(i);
                sizes.push(size);
            }
        }
        let what = format!("PutRecordBatch to {}", self.config.stream);
        for (n, call) in batch::calls(&sizes).into_iter().enumerate() {
            let idx = &sendable[call.clone()];
            let entries: Vec<FirehoseRecord> = idx
                .iter()
                .map(|&i| {
                    FirehoseRecord::builder()
                        .data(self.data(&records[i]))
                        .build()
                        .map_err(|e| ConnectorError::internal(format!("building a record: {e}")))
                })
                .collect::<Result<_, _>>()?;
            let answer = client
                .put_record_batch()
                .delivery_stream_name(&self.config.stream)
                .set_records(Some(entries))
                .send()
                .await;
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    let e = sdk_error(&what, e);
                    if n == 0 || !e.retryable {
                        return Err(e);
                    }
                    // Earlier calls are delivered: only this one and the rest go again.
                    tracing::warn!(error = %e, records = sendable.len() - call.start, "PutRecordBatch failed after earlier calls of the write succeeded; retrying the rest.");
                    report.retry.extend_from_slice(&sendable[call.start..]);
                    break;
                }
            };
            if answer.failed_put_count == 0 {
                continue;
            }
            let responses = answer.request_responses;
            if responses.len() != idx.len() {
                return Err(ConnectorError::external(format!(
                    "{what}: {} answers for {} records",
                    responses.len(),
                    idx.len()
                )));
            }
            for (&i, entry) in idx.iter().zip(&responses) {
                let Some(code) = entry.error_code() else {
                    continue;
                };
                if RETRYABLE.contains(&code) {
                    report.retry.push(i);
                } else {
                    let message = entry.error_message().unwrap_or("no message");
                    report.rejected.push((i, format!("{code}: {message}")));
                }
            }
        }
        if !report.retry.is_empty() {
            tracing::warn!(records = report.retry.len(), stream = %self.config.stream, "Firehose refused records for now; they will be sent again.");
        }
        report.rejected.sort_unstable_by_key(|(i, _)| *i);
        report.retry.sort_unstable();
        Ok(report)
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}
