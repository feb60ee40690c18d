//! The OpenSearch sink: one `_bulk` request per write, every item classified on its own.
//!
//! A write's records become the actions of one `_bulk` body (sized by the sink's `batch`
//! settings). Records that cannot become an action (not a JSON object, no id or index field, no
//! event time for a date index) are rejected before anything is sent. The response is then read
//! item by item: 2xx is written; 429 and 5xx items are reported as `retry` (the runtime sends
//! only those again, with backoff); other 4xx items (mapping errors, version conflicts unless
//! expected) are reported as `rejected` with the item's error type and reason (the runtime
//! dead-letters them). A failure of the whole request (no answer, 429/5xx for the request) is a
//! retryable error: the runtime sends the whole write again, which overwrites the same ids.
//!
//! Not transactional: at-least-once. With the default, position-derived ids (see
//! [`crate::route`]) a record delivered again overwrites its own document, so the index holds
//! each input record once.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Position, Record, Sink, SinkConnector, SinkContext,
    WriteReport, async_trait,
};

use crate::bulk::{self, Conflicts, Head, Outcome, classify_item, push_action, push_document};
use crate::client::Client;
use crate::config::{BulkAction, OpenSearchSinkConfig};
use crate::error::status_error;
use crate::route::{IdSource, IndexTemplate};

/// The `opensearch` sink type.
pub struct OpenSearchSinkConnector;

impl SinkConnector for OpenSearchSinkConnector {
    const TYPE: &'static str = "opensearch";
    const DOC: &'static str = "Documents in OpenSearch via _bulk (index/create/update/delete); failed items retried or dead-lettered one by one.";
    type Config = OpenSearchSinkConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(OpenSearchSink::new(config, ctx)?))
    }
}

/// What one record becomes in the `_bulk` body.
struct Action<'r> {
    index: Cow<'r, str>,
    id: String,
    /// The document line (empty for `delete`).
    doc: Cow<'r, [u8]>,
}

/// The OpenSearch sink.
pub struct OpenSearchSink {
    action: BulkAction,
    client: Client,
    template: IndexTemplate,
    /// The index when it does not depend on the record.
    fixed_index: Option<String>,
    ids: IdSource,
    conflicts: Conflicts,
    opened: bool,
    /// The records the last write reported as `retry`, with the ids they were sent with: the
    /// runtime sends exactly these again, and a position-derived id of the second output of one
    /// input must not become the first's when it comes alone.
    pending: Vec<(Position, String)>,
}

impl OpenSearchSink {
    /// A sink for `config` in the job `ctx` is for (no I/O until `open`).
    pub fn new(config: OpenSearchSinkConfig, ctx: &BuildContext) -> Result<Self, ConnectorError> {
        config.validate()?;
        let template = IndexTemplate::parse(&config.index)?;
        let fixed_index = template.is_fixed().then(|| config.index.clone());
        let ids = match &config.id {
            Some(path) => IdSource::Field(path.clone()),
            None => IdSource::Position {
                job: ctx.job.clone(),
            },
        };
        let conflicts = if config.ignore_version_conflicts
            || (config.action == BulkAction::Create && config.id.is_none())
        {
            Conflicts::Written
        } else {
            Conflicts::Reject
        };
        Ok(Self {
            action: config.action,
            client: Client::new(&config, ctx)?,
            template,
            fixed_index,
            ids,
            conflicts,
            opened: false,
            pending: Vec::new(),
        })
    }

    /// The ids the last write's `retry` records were sent with, when `records` are those.
    fn retried_ids(&self, records: &[Record]) -> Option<Vec<String>> {
        let same = self.pending.len() == records.len()
            && self
                .pending
                .iter()
                .zip(records)
                .all(|((p, _), r)| *p == r.position);
        same.then(|| self.pending.iter().map(|(_, id)| id.clone()).collect())
    }

    /// Index, id and document line of one record; `Err` is the reason to reject it.
    fn plan<'r>(
        &'r self,
        r: &'r Record,
        ordinal: u32,
        reused: Option<&str>,
    ) -> Result<Action<'r>, String> {
        let needs_value = self.template.needs_value() || matches!(self.ids, IdSource::Field(_));
        let parsed: Option<Value> = if needs_value {
            Some(
                serde_json::from_slice(&r.value)
                    .map_err(|e| format!("the value is not valid JSON: {e}"))?,
            )
        } else {
            None
        };
        let index = match &self.fixed_index {
            Some(i) => Cow::Borrowed(i.as_str()),
            None => Cow::Owned(self.template.render(parsed.as_ref(), r.timestamp)?),
        };
        let id = match (&self.ids, reused) {
            (IdSource::Field(path), _) => IdSource::from_field(path, parsed.as_ref())?,
            (IdSource::Position { .. }, Some(id)) => id.to_string(),
            (IdSource::Position { job }, None) => {
                IdSource::from_position(job, &r.position, ordinal)
            }
        };
        let doc = match self.action {
            BulkAction::Delete => Cow::Borrowed(&[][..]),
            _ => bulk::document(&r.value, parsed.as_ref())?,
        };
        Ok(Action { index, id, doc })
    }
}

#[async_trait]
impl Sink for OpenSearchSink {
    async fn open(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        let version = self
            .client
            .check_version()
            .await
            .map_err(|e| ConnectorError {
                message: format!("opening the OpenSearch sink: {}", e.message),
                ..e
            })?;
        tracing::info!(cluster = %version, hosts = self.client.hosts(), index = %self.template.text(), "Connected to OpenSearch.");
        self.opened = true;
        Ok(())
    }

    /// `opensearch://host:port,.../index` (the index as configured, placeholders included).
    fn destination(&self) -> Option<String> {
        Some(format!(
            "opensearch://{}/{}",
            self.client.hosts(),
            self.template.text()
        ))
    }

    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that {} answers, runs OpenSearch 1.x–3.x (or Elasticsearch 7.10) and accepts writes to {}",
            self.client.hosts(),
            self.template.text()
        )]
    }

    async fn write(
        &mut self,
        records: &[Record],
        _checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        if !self.opened {
            return Err(ConnectorError::internal("opensearch sink used before open"));
        }
        let mut report = WriteReport::ok();
        let reused = self.retried_ids(records);
        let size: usize = records.iter().map(|r| r.value.len()).sum();
        let mut body = Vec::with_capacity(size + records.len() * 96);
        // (record index, id) of each action in the body, in order.
        let mut sent: Vec<(usize, String)> = Vec::with_capacity(records.len());
        let mut ordinals: HashMap<&Position, u32> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            let ordinal = match self.ids {
                IdSource::Position { .. } => {
                    let n = ordinals.entry(&r.position).or_insert(0);
                    *n += 1;
                    *n - 1
                }
                IdSource::Field(_) => 0,
            };
            let reuse = reused.as_ref().map(|ids| ids[i].as_str());
            match self.plan(r, ordinal, reuse) {
                Ok(a) => {
                    push_action(&mut body, self.action, &a.index, &a.id);
                    push_document(&mut body, self.action, &a.doc);
                    sent.push((i, a.id));
                }
                Err(reason) => report.rejected.push((i, reason)),
            }
        }
        self.pending.clear();
        if sent.is_empty() {
            return Ok(report);
        }
        let (status, response) = self.client.bulk(Bytes::from(body)).await?;
        let what = format!("POST /_bulk on {}", self.client.hosts());
        if !status.is_success() {
            return Err(status_error(&what, status, &response));
        }
        let unreadable = |e: serde_json::Error| {
            ConnectorError::transient(format!("{what}: the response is not a _bulk response: {e}"))
        };
        let head: Head = serde_json::from_slice(&response).map_err(unreadable)?;
        if head.errors {
            let items = serde_json::from_slice::<bulk::Response>(&response)
                .map_err(unreadable)?
                .into_items(sent.len())
                .map_err(|e| ConnectorError::external(format!("{what}: {e}")))?;
            let mut first_retry = None;
            for ((i, id), item) in sent.into_iter().zip(items) {
                match classify_item(self.action, &item, self.conflicts) {
                    Outcome::Done => {}
                    Outcome::Retry(reason) => {
                        report.retry.push(i);
                        self.pending.push((records[i].position.clone(), id));
                        first_retry.get_or_insert(reason);
                    }
                    Outcome::Reject(reason) => report.rejected.push((i, reason)),
                }
            }
            if let Some(reason) = first_retry {
                tracing::warn!(records = report.retry.len(), first = %reason, "OpenSearch refused items for now; they will be sent again.");
            }
            report.rejected.sort_unstable_by_key(|(i, _)| *i);
        }
        Ok(report)
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        self.opened = false;
        self.pending.clear();
        Ok(())
    }
}
