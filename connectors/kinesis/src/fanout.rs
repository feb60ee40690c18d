//! Enhanced fan-out (`consumer = "name"`): a registered stream consumer and one SubscribeToShard
//! subscription per readable shard, pushing records instead of being polled.
//!
//! - [`register`]: RegisterStreamConsumer, or the existing consumer of that name, then waits
//!   until it is ACTIVE.
//! - [`spawn`]: a task per shard that subscribes, forwards every event into the source's channel
//!   and subscribes again when a subscription ends (the service ends each after 5 minutes; the
//!   task also ends it itself then, in case an endpoint does not) — after the event's
//!   continuation sequence number (`AFTER_SEQUENCE_NUMBER`). A record at or before the last one
//!   forwarded is never forwarded again, whatever the service resends.
//! - An event with `ChildShards` is the shard's last: the shard is read to its end, the task
//!   ends, and the source takes the children into its lineage (they wait for every parent).
//!   Endpoints that never send that event (kinesis-local keeps a closed shard's subscription
//!   open with empty events) are covered too: once ListShards shows the shard closed, an empty
//!   event makes the task ask GetRecords after its last position, and a closed shard with
//!   nothing more and no next iterator is read to its end.
//! - A refused or broken subscription (`ResourceInUseException` while an earlier subscription
//!   of a killed process still holds the shard, throttling, a dropped connection) is retried
//!   with backoff; any other error goes to the source, which fails the job with it.
//!
//! The channel is bounded: a source that does not take events in stops the tasks' reading, and
//! so the service's pushing. Events wait in the channel while a `next_batch` is dropped, so the
//! source stays cancel-safe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream,
};
use aws_smithy_types::DateTime;
use rand::Rng;
use sluice_aws::{error_code, sdk_error};
use sluice_core::ConnectorError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::records::Raw;
use crate::shards::{ShardInfo, Start};
use crate::stream::StreamRef;

/// How long one subscription lives before it is renewed (the service's own limit).
pub const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Shortest and longest wait before subscribing again after a refused or broken subscription.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest wait for a new consumer to become ACTIVE.
const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(120);

/// What a shard's subscription task reports.
#[derive(Debug)]
pub enum Event {
    /// One SubscribeToShard event.
    Records {
        /// The shard.
        shard: String,
        /// Its new records, in order, none at or before one forwarded earlier.
        records: Vec<Raw>,
        /// `MillisBehindLatest`.
        behind_ms: i64,
        /// The shards this one was split or merged into, when the event names them.
        children: Vec<ShardInfo>,
        /// The shard is read to its end: its last event.
        ended: bool,
    },
    /// The subscription failed for good.
    Failed {
        /// The shard.
        shard: String,
        /// Why.
        error: ConnectorError,
    },
}

/// The ARN of the stream consumer `name` of `stream_arn`, registered if it does not exist,
/// once it is ACTIVE.
pub async fn register(
    client: &Client,
    stream_arn: &str,
    name: &str,
) -> Result<String, ConnectorError> {
    let what = format!("registering stream consumer {name:?} of {stream_arn}");
    match client
        .register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name(name)
        .send()
        .await
    {
        Ok(out) => {
            let c = out
                .consumer()
                .ok_or_else(|| ConnectorError::external(format!("{what}: no consumer")))?;
            tracing::info!(
                consumer = name,
                arn = c.consumer_arn(),
                "Registered Kinesis stream consumer."
            );
            if *c.consumer_status() == ConsumerStatus::Active {
                return Ok(c.consumer_arn().to_string());
            }
        }
        // It exists (an earlier run registered it): use it.
        Err(e) if error_code(&e) == Some("ResourceInUseException") => {}
        Err(e) => return Err(sdk_error(&what, e)),
    }
    let deadline = Instant::now() + ACTIVATION_TIMEOUT;
    loop {
        let out = client
            .describe_stream_consumer()
            .stream_arn(stream_arn)
            .consumer_name(name)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("describing stream consumer {name:?}"), e))?;
        let d = out.consumer_description().ok_or_else(|| {
            ConnectorError::external(format!(
                "describing stream consumer {name:?}: no description"
            ))
        })?;
        match d.consumer_status() {
            ConsumerStatus::Active => return Ok(d.consumer_arn().to_string()),
            ConsumerStatus::Deleting => {
                return Err(ConnectorError::transient(format!(
                    "stream consumer {name:?} is being deleted; try again once it is gone"
                )));
            }
            _ if Instant::now() > deadline => {
                return Err(ConnectorError::transient(format!(
                    "stream consumer {name:?} did not become ACTIVE within {ACTIVATION_TIMEOUT:?}"
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// What a subscription task needs.
pub struct Subscription {
    /// A client of the endpoint.
    pub client: Client,
    /// The stream (for the end-of-shard check).
    pub stream: StreamRef,
    /// The registered consumer.
    pub consumer_arn: String,
    /// The shard.
    pub shard: String,
    /// Where reading begins.
    pub start: Start,
    /// Set by the source once ListShards shows the shard closed.
    pub closed: Arc<AtomicBool>,
}

/// Start the subscription task of a shard; its events go to `tx`.
pub fn spawn(sub: Subscription, tx: mpsc::Sender<Event>) -> JoinHandle<()> {
    tokio::spawn(run(sub, tx))
}

/// How one subscription ended.
enum Outcome {
    /// The shard is read to its end, or nobody listens any more.
    Done,
    /// Subscribe again (after the continuation sequence number kept in `start`).
    Again,
}

async fn run(mut sub: Subscription, tx: mpsc::Sender<Event>) {
    let mut last = match &sub.start {
        Start::After(seq) => Some(seq.clone()),
        _ => None,
    };
    let shard = sub.shard.clone();
    let mut backoff = Duration::ZERO;
    loop {
        match subscribe(&mut sub, &mut last, &tx).await {
            Ok(Outcome::Done) => return,
            Ok(Outcome::Again) => backoff = Duration::ZERO,
            Err(e) if e.retryable => {
                backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                tracing::warn!(shard = %shard, error = %e.message, backoff = ?backoff, "Kinesis subscription failed; subscribing again.");
                let jitter = rand::rng().random_range(0.5..1.0);
                tokio::time::sleep(backoff.mul_f64(jitter)).await;
            }
            Err(error) => {
                let _ = tx.send(Event::Failed { shard, error }).await;
                return;
            }
        }
    }
}

fn starting_position(start: &Start) -> StartingPosition {
    let b = StartingPosition::builder();
    let b = match start {
        Start::After(seq) => b
            .r#type(ShardIteratorType::AfterSequenceNumber)
            .sequence_number(seq),
        Start::TrimHorizon => b.r#type(ShardIteratorType::TrimHorizon),
        Start::Latest => b.r#type(ShardIteratorType::Latest),
        Start::AtTimestamp(t) => b
            .r#type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from(*t)),
    };
    // The type is always set, the only required field.
    b.build()
        .unwrap_or_else(|_| unreachable!("a starting position has its type"))
}

/// Codes after which subscribing again can succeed: the shard still has a subscription of
/// this consumer (a killed process's, until the service drops it), throttling, a failure of
/// the service.
fn retry_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ResourceInUseException"
                | "LimitExceededException"
                | "KMSThrottlingException"
                | "InternalFailureException"
                | "InternalFailure"
                | "ServiceUnavailable"
        )
    )
}

/// Whether an error inside a subscription's event stream is worth subscribing again for: no
/// answer or a broken stream (`None`), or a modelled error whose kind says so (the events'
/// errors carry no code in their metadata, so the variant decides).
fn stream_error_is_transient(error: Option<&SubscribeToShardEventStreamError>) -> bool {
    match error {
        None => true,
        Some(
            SubscribeToShardEventStreamError::ResourceInUseException(_)
            | SubscribeToShardEventStreamError::KmsThrottlingException(_)
            | SubscribeToShardEventStreamError::InternalFailureException(_),
        ) => true,
        Some(other) => retry_code(other.code()),
    }
}

/// Whether a closed shard has nothing after `start`: GetRecords there returns no record and no
/// next iterator.
async fn read_to_end(sub: &Subscription) -> Result<bool, ConnectorError> {
    let what = format!("checking the end of {} {}", sub.stream, sub.shard);
    let call = sub
        .stream
        .get_shard_iterator(&sub.client)
        .shard_id(&sub.shard);
    let call = crate::source::iterator_at(call, &sub.start);
    let out = call.send().await.map_err(|e| sdk_error(&what, e))?;
    let Some(iterator) = out.shard_iterator() else {
        return Ok(true);
    };
    let got = sub
        .stream
        .get_records(&sub.client)
        .shard_iterator(iterator)
        .limit(1)
        .send()
        .await
        .map_err(|e| sdk_error(&what, e))?;
    Ok(got.records().is_empty() && got.next_shard_iterator().is_none())
}

/// Least time between two end-of-shard checks of one closed shard.
const END_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// One subscription, until it ends.
async fn subscribe(
    sub: &mut Subscription,
    last: &mut Option<String>,
    tx: &mpsc::Sender<Event>,
) -> Result<Outcome, ConnectorError> {
    let shard = sub.shard.clone();
    let what = format!("SubscribeToShard {shard}");
    let renew_at = tokio::time::Instant::now() + SUBSCRIPTION_LIFETIME;
    let mut next_end_check = Instant::now();
    let out = match sub
        .client
        .subscribe_to_shard()
        .consumer_arn(&sub.consumer_arn)
        .shard_id(&shard)
        .starting_position(starting_position(&sub.start))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if retry_code(error_code(&e)) => {
            return Err(ConnectorError::transient(format!(
                "{what}: {}",
                sluice_core::error::with_causes(&e)
            )));
        }
        Err(e) => return Err(sdk_error(&what, e)),
    };
    let mut events = out.event_stream;
    loop {
        let next = match tokio::time::timeout_at(renew_at, events.recv()).await {
            Err(_) | Ok(Ok(None)) => return Ok(Outcome::Again),
            Ok(Ok(Some(next))) => next,
            Ok(Err(e)) => {
                let message = format!("{what}: {}", sluice_core::error::with_causes(&e));
                return Err(if stream_error_is_transient(e.as_service_error()) {
                    ConnectorError::transient(message)
                } else {
                    ConnectorError::external(message)
                });
            }
        };
        let SubscribeToShardEventStream::SubscribeToShardEvent(event) = next else {
            continue;
        };
        let mut records = Vec::with_capacity(event.records().len());
        for r in event.records() {
            let raw = Raw::from_sdk(r);
            if last
                .as_deref()
                .is_some_and(|l| crate::seq::compare(&raw.sequence_number, l).is_le())
            {
                continue;
            }
            *last = Some(raw.sequence_number.clone());
            records.push(raw);
        }
        let children: Vec<ShardInfo> = event
            .child_shards()
            .iter()
            .map(|c| {
                let mut parents = c.parent_shards().iter().cloned();
                ShardInfo {
                    id: c.shard_id().to_string(),
                    parent: parents.next(),
                    adjacent_parent: parents.next(),
                    closed: false,
                }
            })
            .collect();
        let continuation = event.continuation_sequence_number();
        if !continuation.is_empty() {
            sub.start = Start::After(continuation.to_string());
        } else if let Some(l) = last.as_ref() {
            sub.start = Start::After(l.clone());
        }
        let mut ended = !children.is_empty();
        if !ended
            && records.is_empty()
            && sub.closed.load(Ordering::Relaxed)
            && Instant::now() >= next_end_check
        {
            next_end_check = Instant::now() + END_CHECK_INTERVAL;
            ended = read_to_end(sub).await?;
        }
        let sent = tx
            .send(Event::Records {
                shard: shard.clone(),
                records,
                behind_ms: event.millis_behind_latest(),
                children,
                ended,
            })
            .await;
        if sent.is_err() || ended {
            return Ok(Outcome::Done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_positions_follow_the_shard_start() {
        let p = starting_position(&Start::After("42".into()));
        assert_eq!(*p.r#type(), ShardIteratorType::AfterSequenceNumber);
        assert_eq!(p.sequence_number(), Some("42"));
        let p = starting_position(&Start::TrimHorizon);
        assert_eq!(*p.r#type(), ShardIteratorType::TrimHorizon);
        assert!(retry_code(Some("ResourceInUseException")));
        assert!(!retry_code(Some("ResourceNotFoundException")));
        assert!(stream_error_is_transient(None));
        let in_use = SubscribeToShardEventStreamError::ResourceInUseException(
            aws_sdk_kinesis::types::error::ResourceInUseException::builder().build(),
        );
        assert!(stream_error_is_transient(Some(&in_use)));
        let gone = SubscribeToShardEventStreamError::ResourceNotFoundException(
            aws_sdk_kinesis::types::error::ResourceNotFoundException::builder().build(),
        );
        assert!(!stream_error_is_transient(Some(&gone)));
    }
}
