//! The SNS sink against moto server (`SLUICE_TEST_AWS_ENDPOINT`): subject and attributes from
//! fields and headers, batches of ten, FIFO topics whose replays SNS deduplicates (seen by an
//! SQS FIFO queue subscribed to the topic), the rate limit, and an unknown topic.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_topic, endpoint, region, sent, sent_keys, subscribe_queue, unique};
use sluice_core::testing::{test_key, test_record};
use sluice_core::{
    BuildContext, ErrorKind, Guarantee, Header, Position, Record, Registry, Sink, SinkContext,
};

fn build(arn: &str, extra: &str) -> Box<dyn Sink> {
    let text = format!(
        "topic_arn = {arn:?}\nendpoint = {:?}\nregion = {:?}\n{extra}",
        endpoint(),
        region()
    );
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut registry = Registry::new();
    sluice_connector_sns::register(&mut registry);
    let ctx = BuildContext::new("snstest", ".", ".", Guarantee::AtLeastOnce);
    registry
        .sink("sns")
        .unwrap()
        .build(table, &ctx)
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn sctx() -> SinkContext {
    SinkContext {
        job: "snstest".into(),
        sink: "alerts".into(),
        guarantee: Guarantee::AtLeastOnce,
    }
}

async fn open(arn: &str, extra: &str) -> Box<dyn Sink> {
    let mut sink = build(arn, extra);
    sink.open(&sctx()).await.unwrap_or_else(|e| panic!("{e}"));
    sink
}

/// An alert: `{"key", "device", "level", "title"}` at position `n` of partition `p0`.
fn alert(n: u64) -> Record {
    let value = serde_json::json!({
        "key": test_key(n),
        "device": format!("d{}", n % 3),
        "level": n % 5,
        "title": format!("Sensor {n}\ntoo hot"),
    });
    let mut r = Record::new(value.to_string(), Position::int(Arc::from("p0"), n as i64));
    r.headers.push(Header {
        name: "source".into(),
        value: "edge-7".into(),
    });
    r
}

#[tokio::test]
async fn publishes_batches_with_subject_and_attributes_from_fields_and_headers() {
    let arn = create_topic(&unique("alerts")).await;
    let queue = subscribe_queue(&arn).await;
    let mut sink = open(
        &arn,
        "subject = { field = 'title' }\n\
         message_attributes = { level = { field = 'level' }, source = { header = 'source' }, kind = { value = 'alert' }, missing = { field = 'nope' } }",
    )
    .await;
    let records: Vec<Record> = (0..25).map(alert).collect();
    let report = sink.write(&records, None).await.unwrap();
    assert!(
        report.rejected.is_empty() && report.retry.is_empty(),
        "{report:?}"
    );
    let got = sent(&queue).await;
    assert_eq!(got.len(), 25);
    let mut keys: Vec<String> = sent_keys(&queue).await;
    keys.sort();
    let mut want: Vec<String> = (0..25).map(test_key).collect();
    want.sort();
    assert_eq!(keys, want);
    let first = got
        .iter()
        .find(|s| s.message.contains(&test_key(3)))
        .unwrap();
    assert_eq!(first.subject.as_deref(), Some("Sensor 3 too hot"));
    assert_eq!(first.attributes["level"]["Type"], "Number");
    assert_eq!(first.attributes["level"]["Value"], "3");
    assert_eq!(first.attributes["source"]["Value"], "edge-7");
    assert_eq!(first.attributes["kind"]["Type"], "String");
    assert!(first.attributes.get("missing").is_none());
    sink.close().await.unwrap();
}

#[tokio::test]
async fn a_single_record_is_published_and_a_plain_text_value_is_fine() {
    let arn = create_topic(&unique("one")).await;
    let queue = subscribe_queue(&arn).await;
    let mut sink = open(&arn, "").await;
    let r = Record::new("disk full on db-1", Position::int(Arc::from("p"), 0));
    sink.write(&[r], None).await.unwrap();
    let got = sent(&queue).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, "disk full on db-1");
}

/// A FIFO topic: the group from a field, and a record written again (a retry, a replay after a
/// crash) carries the same deduplication id, so the subscribed FIFO queue gets it once.
#[tokio::test]
async fn fifo_replays_are_deduplicated_by_sns() {
    let arn = create_topic(&format!("{}.fifo", unique("fifo"))).await;
    let queue = subscribe_queue(&arn).await;
    let mut sink = open(&arn, "message_group_id = { field = 'device' }").await;
    let records: Vec<Record> = (0..12).map(alert).collect();
    sink.write(&records, None).await.unwrap();
    // The replay: a new sink (a restarted job) writes the same positions again.
    sink.close().await.unwrap();
    let mut again = open(&arn, "message_group_id = { field = 'device' }").await;
    again.write(&records[4..], None).await.unwrap();
    let got = sent(&queue).await;
    let first = got
        .iter()
        .find(|s| s.message.contains(&test_key(0)))
        .unwrap();
    assert_eq!(first.group.as_deref(), Some("d0"));
    let mut keys = sent_keys(&queue).await;
    keys.sort();
    let mut want: Vec<String> = (0..12).map(test_key).collect();
    want.sort();
    assert_eq!(keys, want, "the subscriber got each record once");
}

#[tokio::test]
async fn fifo_records_without_a_group_are_rejected() {
    let arn = create_topic(&format!("{}.fifo", unique("nogroup"))).await;
    let queue = subscribe_queue(&arn).await;
    let mut sink = open(&arn, "message_group_id = { field = 'device' }").await;
    let report = sink
        .write(&[alert(0), test_record(&Arc::from("p1"), 1)], None)
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].0, 1);
    assert!(report.rejected[0].1.contains("message group"));
    assert_eq!(sent(&queue).await.len(), 1);
}

#[tokio::test]
async fn max_per_second_paces_publishing() {
    let arn = create_topic(&unique("paced")).await;
    let queue = subscribe_queue(&arn).await;
    let mut sink = open(&arn, "max_per_second = 10.0").await;
    let records: Vec<Record> = (0..30).map(alert).collect();
    let started = Instant::now();
    sink.write(&records, None).await.unwrap();
    let took = started.elapsed();
    // A burst of 10, then 20 more at 10 a second.
    assert!(
        took >= Duration::from_millis(1900),
        "30 messages at 10/s took {took:?}"
    );
    assert_eq!(sent(&queue).await.len(), 30);
}

#[tokio::test]
async fn an_unknown_topic_fails_open_as_a_config_error() {
    let arn = format!("arn:aws:sns:{}:123456789012:{}", region(), unique("absent"));
    let mut sink = build(&arn, "");
    let err = sink.open(&sctx()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err:?}");
    assert!(!err.retryable);
    assert!(err.message.contains(&arn), "{err}");
}
