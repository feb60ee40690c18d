//! The SNS sink: records published as messages, one `Publish` for a single message, else
//! `PublishBatch` calls of at most 10 entries and 256 KiB.
//!
//! A record that cannot be a message (not UTF-8, too large, no group id on a FIFO topic) is
//! rejected before anything is sent. Each call's entries are then classified on their own
//! ([`crate::error::failed_entry`]): published; throttled or failed on SNS's side → `retry`
//! (the runtime backs off and sends exactly those again); refused (`InvalidParameter`, KMS
//! errors) → `rejected` with the code and message (dead letter). A whole call that fails
//! transiently fails the write when nothing of it was published yet, and otherwise hands the
//! rest back as `retry`; unknown topics and refused credentials fail it as configuration
//! errors.
//!
//! At-least-once. On a FIFO topic every message carries a deduplication id derived from its
//! source position ([`crate::entry::dedup_id`]), so SNS drops a copy sent again within five
//! minutes: a retry, or a replay after a crash, is delivered once.

use std::collections::HashMap;

use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use sluice_aws::{error_code, sdk_error};
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, ErrorKind, Position, Record, Sink, SinkConnector,
    SinkContext, WriteReport, async_trait,
};

use crate::config::SnsSinkConfig;
use crate::entry::{Entry, MAX_BYTES, Planner};
use crate::error::{Outcome, failed_entry};
use crate::rate::RateLimit;

/// Most entries of one PublishBatch call.
const MAX_ENTRIES: usize = 10;

/// The `sns` sink type.
pub struct SnsSinkConnector;

impl SinkConnector for SnsSinkConnector {
    const TYPE: &'static str = "sns";
    const DOC: &'static str = "Messages to an SNS topic (alerts): Publish/PublishBatch, subject and attributes from fields or headers, FIFO dedup ids from source positions, rate limit.";
    type Config = SnsSinkConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(SnsSink::new(config, ctx)?))
    }
}

/// The SNS sink.
pub struct SnsSink {
    config: SnsSinkConfig,
    planner: Planner,
    client: Option<Client>,
    rate: Option<RateLimit>,
    /// The records the last write reported as `retry`, with their deduplication ids: the
    /// runtime sends exactly these again, and the second output of one input must keep its id
    /// when it comes alone.
    pending: Vec<(Position, Option<String>)>,
}

impl SnsSink {
    /// A sink for `config` in the job `ctx` is for (no I/O until `open`).
    pub fn new(config: SnsSinkConfig, ctx: &BuildContext) -> Result<Self, ConnectorError> {
        config.validate()?;
        Ok(Self {
            planner: Planner::new(&config, &ctx.job),
            rate: config.max_per_second.map(RateLimit::new),
            config,
            client: None,
            pending: Vec::new(),
        })
    }

    fn retried_dedup(&self, records: &[Record]) -> Option<Vec<Option<String>>> {
        let same = self.pending.len() == records.len()
            && self
                .pending
                .iter()
                .zip(records)
                .all(|((p, _), r)| *p == r.position);
        same.then(|| self.pending.iter().map(|(_, d)| d.clone()).collect())
    }

    /// Most entries of one call: 10, or the rate limit's burst when lower.
    fn per_call(&self) -> usize {
        self.rate
            .as_ref()
            .map_or(MAX_ENTRIES, |r| r.burst().min(MAX_ENTRIES))
    }

    /// Publish `entries` in one call: the outcome of each, in order, or the whole call's error.
    async fn publish(
        &self,
        client: &Client,
        entries: &[(usize, Entry)],
    ) -> Result<Vec<Outcome>, ConnectorError> {
        let arn = &self.config.topic_arn;
        if let [(_, e)] = entries {
            let mut call = client
                .publish()
                .topic_arn(arn)
                .message(&e.message)
                .set_subject(e.subject.clone())
                .set_message_group_id(e.group.clone())
                .set_message_deduplication_id(e.dedup.clone());
            for (name, value) in &e.attributes {
                call = call.message_attributes(name, attribute(value)?);
            }
            return match call.send().await {
                Ok(_) => Ok(vec![Outcome::Done]),
                Err(err) => {
                    let code = error_code(&err).map(str::to_string);
                    let mapped = sdk_error(&format!("Publish to {arn}"), err);
                    match (mapped.kind, mapped.retryable) {
                        // A message SNS refuses (InvalidParameter...): this record only.
                        (ErrorKind::External, false) => Ok(vec![Outcome::Reject(strip_what(
                            &mapped.message,
                            code.as_deref(),
                        ))]),
                        _ => Err(mapped),
                    }
                }
            };
        }
        let mut batch = Vec::with_capacity(entries.len());
        for (n, (_, e)) in entries.iter().enumerate() {
            let mut b = PublishBatchRequestEntry::builder()
                .id(n.to_string())
                .message(&e.message)
                .set_subject(e.subject.clone())
                .set_message_group_id(e.group.clone())
                .set_message_deduplication_id(e.dedup.clone());
            for (name, value) in &e.attributes {
                b = b.message_attributes(name, attribute(value)?);
            }
            batch.push(b.build().map_err(|err| {
                ConnectorError::internal(format!("building a PublishBatch entry: {err}"))
            })?);
        }
        let out = client
            .publish_batch()
            .topic_arn(arn)
            .set_publish_batch_request_entries(Some(batch))
            .send()
            .await
            .map_err(|err| sdk_error(&format!("PublishBatch to {arn}"), err))?;
        let mut outcomes: Vec<Option<Outcome>> = (0..entries.len()).map(|_| None).collect();
        let slot = |id: Option<&str>| id.and_then(|s| s.parse::<usize>().ok());
        for ok in out.successful() {
            if let Some(o) = slot(ok.id()).and_then(|n| outcomes.get_mut(n)) {
                *o = Some(Outcome::Done);
            }
        }
        for failed in out.failed() {
            if let Some(o) = slot(Some(failed.id())).and_then(|n| outcomes.get_mut(n)) {
                *o = Some(failed_entry(
                    failed.code(),
                    failed.message(),
                    failed.sender_fault(),
                ));
            }
        }
        // An entry SNS reported neither way: its fate is unknown, so it is sent again.
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Retry("not in the PublishBatch answer".into())))
            .collect())
    }
}

/// The message after `what: ` (the topic is the same for every record).
fn strip_what(message: &str, code: Option<&str>) -> String {
    match code.and_then(|c| message.find(&format!(": {c}"))) {
        Some(at) => message[at + 2..].to_string(),
        None => message.to_string(),
    }
}

fn attribute(a: &crate::entry::Attribute) -> Result<MessageAttributeValue, ConnectorError> {
    MessageAttributeValue::builder()
        .data_type(a.data_type())
        .string_value(a.text())
        .build()
        .map_err(|e| ConnectorError::internal(format!("building a message attribute: {e}")))
}

#[async_trait]
impl Sink for SnsSink {
    async fn open(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        let sdk = self.config.connection().sdk_config().await?;
        let client = Client::new(&sdk);
        let arn = &self.config.topic_arn;
        client
            .get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("opening the SNS sink: topic {arn}"), e))?;
        tracing::info!(topic = %arn, fifo = self.config.fifo(), "Publishing to SNS.");
        self.client = Some(client);
        Ok(())
    }

    /// `sns://<topic ARN>`.
    fn destination(&self) -> Option<String> {
        Some(format!("sns://{}", self.config.topic_arn))
    }

    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that topic {} exists and the credentials may publish to it",
            self.config.topic_arn
        )]
    }

    async fn write(
        &mut self,
        records: &[Record],
        _checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let Some(client) = self.client.clone() else {
            return Err(ConnectorError::internal("sns sink used before open"));
        };
        let mut report = WriteReport::ok();
        let reused = self.retried_dedup(records);
        let mut ordinals: HashMap<&Position, u32> = HashMap::new();
        let mut planned: Vec<(usize, Entry)> = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let n = ordinals.entry(&r.position).or_insert(0);
            let ordinal = *n;
            *n += 1;
            let reuse = reused.as_ref().and_then(|d| d[i].as_deref());
            match self.planner.plan(r, ordinal, reuse) {
                Ok(e) => planned.push((i, e)),
                Err(reason) => report.rejected.push((i, reason)),
            }
        }
        self.pending.clear();
        // Calls of at most `per_call` entries and 256 KiB.
        let per_call = self.per_call();
        let mut calls: Vec<std::ops::Range<usize>> = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (n, (_, e)) in planned.iter().enumerate() {
            if n > start && (n - start == per_call || bytes + e.size > MAX_BYTES) {
                calls.push(start..n);
                (start, bytes) = (n, 0);
            }
            bytes += e.size;
        }
        if start < planned.len() {
            calls.push(start..planned.len());
        }
        let mut first_retry = None;
        for (c, range) in calls.iter().enumerate() {
            let entries = &planned[range.clone()];
            if let Some(rate) = self.rate.as_mut() {
                rate.wait(entries.len()).await;
            }
            let outcomes = match self.publish(&client, entries).await {
                Ok(o) => o,
                Err(e) if e.kind == ErrorKind::Config || (e.retryable && c == 0) => return Err(e),
                Err(e) if e.retryable => {
                    tracing::warn!(error = %e, "SNS calls fail; the rest of the write goes back to the runtime.");
                    for (i, entry) in &planned[range.start..] {
                        report.retry.push(*i);
                        self.pending
                            .push((records[*i].position.clone(), entry.dedup.clone()));
                    }
                    break;
                }
                // The whole call refused (a batch SNS will not take): its records, for good.
                Err(e) => entries
                    .iter()
                    .map(|_| Outcome::Reject(e.message.clone()))
                    .collect(),
            };
            for ((i, entry), outcome) in entries.iter().zip(outcomes) {
                match outcome {
                    Outcome::Done => {}
                    Outcome::Retry(reason) => {
                        report.retry.push(*i);
                        self.pending
                            .push((records[*i].position.clone(), entry.dedup.clone()));
                        first_retry.get_or_insert(reason);
                    }
                    Outcome::Reject(reason) => report.rejected.push((*i, reason)),
                }
            }
        }
        if let Some(reason) = first_retry {
            tracing::warn!(records = report.retry.len(), first = %reason, "SNS refused messages for now; they will be sent again.");
        }
        report.rejected.sort_unstable_by_key(|(i, _)| *i);
        // `retry` is in index order (calls go in order), as `pending` is: the runtime sends
        // exactly those records again, in that order.
        debug_assert!(report.retry.windows(2).all(|w| w[0] < w[1]));
        Ok(report)
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        self.client = None;
        self.pending.clear();
        Ok(())
    }
}
