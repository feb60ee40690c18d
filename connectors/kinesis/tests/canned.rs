//! What no emulator does, with canned HTTP responses from the AWS SDK's own test utilities
//! (`aws-smithy-http-client`'s `StaticReplayClient`): per-entry PutRecords failures
//! (throttling, `InternalFailure`, a refused entry), a failed second call of one write,
//! GetRecords throttling and an expired shard iterator. The SDK's own retries are off, so every
//! retry seen here is the connector's.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use serde_json::{Value, json};
use sluice_connector_kinesis::{
    KinesisSink, KinesisSinkConfig, KinesisSource, KinesisSourceConfig,
};
use sluice_core::testing::{test_key, test_record};
use sluice_core::{Guarantee, Record, Sink, SinkContext, Source};

const ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s";

fn ok(body: Value) -> ReplayEvent {
    respond(200, None, body)
}

fn error(code: &str, message: &str) -> ReplayEvent {
    respond(400, Some(code), json!({"__type": code, "message": message}))
}

fn respond(status: u16, code: Option<&str>, body: Value) -> ReplayEvent {
    let request = http::Request::builder()
        .uri("https://kinesis.us-east-1.amazonaws.com/")
        .body(SdkBody::empty())
        .unwrap();
    let mut response = http::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1");
    if let Some(code) = code {
        response = response.header("x-amzn-ErrorType", code);
    }
    ReplayEvent::new(
        request,
        response.body(SdkBody::from(body.to_string())).unwrap(),
    )
}

fn describe() -> ReplayEvent {
    ok(json!({"StreamDescriptionSummary": {
        "StreamName": "s", "StreamARN": ARN, "StreamStatus": "ACTIVE",
        "StreamModeDetails": {"StreamMode": "PROVISIONED"}, "RetentionPeriodHours": 24,
        "StreamCreationTimestamp": 1_700_000_000, "EnhancedMonitoring": [], "OpenShardCount": 1
    }}))
}

fn client(events: Vec<ReplayEvent>) -> (Client, StaticReplayClient) {
    let replay = StaticReplayClient::new(events);
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
        .http_client(replay.clone())
        .retry_config(RetryConfig::disabled())
        .build();
    (Client::from_conf(conf), replay)
}

/// The JSON bodies of the requests sent, in order.
fn bodies(replay: &StaticReplayClient) -> Vec<Value> {
    replay
        .actual_requests()
        .map(|r| serde_json::from_slice(r.body().bytes().unwrap_or_default()).unwrap_or_default())
        .collect()
}

fn sink_config() -> KinesisSinkConfig {
    toml::from_str("stream = 's'\nregion = 'us-east-1'").unwrap()
}

fn ctx() -> SinkContext {
    SinkContext {
        job: "canned".into(),
        sink: "kinesis".into(),
        guarantee: Guarantee::AtLeastOnce,
    }
}

fn records(n: u64) -> Vec<Record> {
    let p: std::sync::Arc<str> = std::sync::Arc::from("mem");
    (0..n).map(|s| test_record(&p, s)).collect()
}

#[tokio::test]
async fn only_failed_entries_are_retried_and_refused_ones_rejected_with_their_code_canned() {
    let (client, replay) = client(vec![
        describe(),
        ok(json!({"FailedRecordCount": 3, "Records": [
            {"SequenceNumber": "1", "ShardId": "shardId-000000000000"},
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"},
            {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service failure."},
            {"ErrorCode": "KMSAccessDeniedException", "ErrorMessage": "no access to the key"},
        ]})),
        ok(json!({"FailedRecordCount": 0, "Records": [
            {"SequenceNumber": "2", "ShardId": "shardId-000000000000"},
            {"SequenceNumber": "3", "ShardId": "shardId-000000000000"},
        ]})),
    ]);
    let mut sink = KinesisSink::with_client(sink_config(), client).unwrap();
    sink.open(&ctx()).await.unwrap();
    let batch = records(4);
    let report = sink.write(&batch, None).await.unwrap();
    assert_eq!(report.retry, vec![1, 2]);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].0, 3);
    assert_eq!(
        report.rejected[0].1,
        "KMSAccessDeniedException: no access to the key"
    );
    // The runtime sends exactly the `retry` records again.
    let again = [batch[1].clone(), batch[2].clone()];
    let report = sink.write(&again, None).await.unwrap();
    assert_eq!(report, sluice_core::WriteReport::ok());
    let sent = bodies(&replay);
    assert_eq!(sent[1]["Records"].as_array().unwrap().len(), 4);
    let retried = sent[2]["Records"].as_array().unwrap();
    assert_eq!(retried.len(), 2, "only the failed entries went again");
    assert_eq!(retried[0]["PartitionKey"], test_key(1));
    assert_eq!(retried[1]["PartitionKey"], test_key(2));
}

#[tokio::test]
async fn a_throttled_second_call_resends_only_its_own_entries_canned() {
    let results: Vec<Value> = (0..500)
        .map(|i| json!({"SequenceNumber": i.to_string(), "ShardId": "shardId-000000000000"}))
        .collect();
    let (client, _replay) = client(vec![
        describe(),
        ok(json!({"FailedRecordCount": 0, "Records": results})),
        error("ProvisionedThroughputExceededException", "Rate exceeded"),
    ]);
    let mut sink = KinesisSink::with_client(sink_config(), client).unwrap();
    sink.open(&ctx()).await.unwrap();
    let report = sink.write(&records(600), None).await.unwrap();
    assert_eq!(
        report.retry,
        (500..600).collect::<Vec<usize>>(),
        "the first call's 500 records are written; only the second call's go again"
    );
    assert!(report.rejected.is_empty());
}

fn source_config() -> KinesisSourceConfig {
    toml::from_str("stream = 's'\nregion = 'us-east-1'\npoll_interval = '10ms'").unwrap()
}

fn list_one_shard() -> ReplayEvent {
    ok(json!({"Shards": [{
        "ShardId": "shardId-000000000000",
        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "340282366920938463463374607431768211455"},
        "SequenceNumberRange": {"StartingSequenceNumber": "1"}
    }]}))
}

fn get_records(seqs: &[&str], next: &str) -> ReplayEvent {
    use base64::Engine;
    let records: Vec<Value> = seqs
        .iter()
        .map(|s| {
            let data = base64::engine::general_purpose::STANDARD
                .encode(format!("{{\"key\":\"k{s}\",\"seq\":{s}}}"));
            json!({"SequenceNumber": s, "ApproximateArrivalTimestamp": 1_700_000_000.5,
                   "Data": data, "PartitionKey": format!("k{s}")})
        })
        .collect();
    ok(json!({"Records": records, "NextShardIterator": next, "MillisBehindLatest": 1500}))
}

#[tokio::test]
async fn a_throttled_shard_backs_off_and_reads_on_canned() {
    let (client, replay) = client(vec![
        describe(),
        list_one_shard(),
        ok(json!({"ShardIterator": "it-1"})),
        error(
            "ProvisionedThroughputExceededException",
            "Rate exceeded for shard",
        ),
        get_records(&["100", "101"], "it-2"),
    ]);
    let mut source = KinesisSource::with_client(source_config(), client).unwrap();
    source.open(None).await.unwrap();
    let started = std::time::Instant::now();
    let batch = source.next_batch().await.unwrap().unwrap();
    assert_eq!(batch.records.len(), 2);
    assert_eq!(source.throttles(), 1);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(100),
        "retried after a backoff, not at once"
    );
    let lag = sluice_core::Source::lag(&source).unwrap();
    assert_eq!(lag[&format!("{ARN}/shardId-000000000000")], 1500);
    let sent = bodies(&replay);
    assert_eq!(sent[3]["ShardIterator"], "it-1");
    assert_eq!(sent[4]["ShardIterator"], "it-1", "the same iterator again");
}

#[tokio::test]
async fn an_expired_iterator_is_acquired_again_after_the_last_record_canned() {
    let (client, replay) = client(vec![
        describe(),
        list_one_shard(),
        ok(json!({"ShardIterator": "it-1"})),
        get_records(&["100"], "it-2"),
        error("ExpiredIteratorException", "Iterator expired"),
        ok(json!({"ShardIterator": "it-3"})),
        get_records(&["200"], "it-4"),
    ]);
    let mut source = KinesisSource::with_client(source_config(), client).unwrap();
    source.open(None).await.unwrap();
    let first = source.next_batch().await.unwrap().unwrap();
    assert_eq!(first.records[0].position.offset.to_string(), "100");
    let second = source.next_batch().await.unwrap().unwrap();
    assert_eq!(second.records[0].position.offset.to_string(), "200");
    let sent = bodies(&replay);
    assert_eq!(sent[2]["ShardIteratorType"], "TRIM_HORIZON");
    assert_eq!(sent[5]["ShardIteratorType"], "AFTER_SEQUENCE_NUMBER");
    assert_eq!(sent[5]["StartingSequenceNumber"], "100");
}
