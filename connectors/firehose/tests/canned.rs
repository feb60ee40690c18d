//! Canned Firehose answers for what moto never produces: per-record failures inside a
//! successful PutRecordBatch (`FailedPutCount`), and a throttled or failing call in the middle
//! of a write. The client is the real `aws-sdk-firehose` one; only its HTTP connection is
//! replaced by `StaticReplayClient` (aws-smithy-http-client's test-util).

use aws_sdk_firehose::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use serde_json::{Value, json};
use sluice_connector_firehose::{FirehoseSink, FirehoseSinkConfig};
use sluice_core::testing::test_record;
use sluice_core::{Guarantee, Record, Sink, SinkContext};

fn config() -> FirehoseSinkConfig {
    let t: toml::Table = toml::from_str("stream = 'canned'").unwrap();
    toml::Value::Table(t).try_into().unwrap()
}

fn response(status: u16, body: Value) -> http::Response<SdkBody> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(SdkBody::from(body.to_string()))
        .unwrap()
}

fn request() -> http::Request<SdkBody> {
    http::Request::builder()
        .uri("http://firehose.test/")
        .body(SdkBody::empty())
        .unwrap()
}

/// A sink whose calls get `answers` in order (the first one answers DescribeDeliveryStream).
async fn sink(answers: Vec<http::Response<SdkBody>>) -> (FirehoseSink, StaticReplayClient) {
    let describe = response(
        200,
        json!({"DeliveryStreamDescription": {
            "DeliveryStreamName": "canned",
            "DeliveryStreamARN": "arn:aws:firehose:us-east-1:123456789012:deliverystream/canned",
            "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamType": "DirectPut",
            "VersionId": "1",
            "Destinations": [],
            "HasMoreDestinations": false
        }}),
    );
    let events = std::iter::once(describe)
        .chain(answers)
        .map(|a| ReplayEvent::new(request(), a))
        .collect();
    let http = StaticReplayClient::new(events);
    let conf = aws_sdk_firehose::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
        .endpoint_url("http://firehose.test")
        .retry_config(RetryConfig::disabled())
        .http_client(http.clone())
        .build();
    let mut s = FirehoseSink::with_client(config(), aws_sdk_firehose::Client::from_conf(conf));
    s.open(&SinkContext {
        job: "canned".into(),
        sink: "firehose".into(),
        guarantee: Guarantee::AtLeastOnce,
    })
    .await
    .unwrap();
    (s, http)
}

fn records(n: u64) -> Vec<Record> {
    let p = std::sync::Arc::from("p");
    (0..n).map(|i| test_record(&p, i)).collect()
}

/// The records of each PutRecordBatch the sink sent (decoded `Data`).
fn sent(http: &StaticReplayClient) -> Vec<Vec<String>> {
    use base64::Engine;
    http.actual_requests()
        .skip(1)
        .map(|r| {
            let body: Value = serde_json::from_slice(r.body().bytes().unwrap()).unwrap();
            body["Records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|rec| {
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(rec["Data"].as_str().unwrap())
                        .unwrap();
                    String::from_utf8(data).unwrap()
                })
                .collect()
        })
        .collect()
}

fn ok_entries(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"RecordId": format!("id{i}")}))
        .collect()
}

#[tokio::test]
async fn failed_put_count_retries_throttled_records_and_dead_letters_refused_ones() {
    let mut entries = ok_entries(4);
    entries[1] = json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."});
    entries[3] = json!({"ErrorCode": "KMS.AccessDeniedException", "ErrorMessage": "the key policy denies kms:GenerateDataKey"});
    let (mut s, http) = sink(vec![
        response(
            200,
            json!({"FailedPutCount": 2, "Encrypted": false, "RequestResponses": entries}),
        ),
        response(
            200,
            json!({"FailedPutCount": 0, "RequestResponses": ok_entries(1)}),
        ),
    ])
    .await;
    let batch = records(4);
    let report = s.write(&batch, None).await.unwrap();
    assert_eq!(report.retry, vec![1], "{report:?}");
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].0, 3);
    assert!(
        report.rejected[0]
            .1
            .starts_with("KMS.AccessDeniedException: the key policy"),
        "{:?}",
        report.rejected
    );
    // The runtime sends exactly the retried record again: never the whole batch.
    let again = s.write(&batch[1..2], None).await.unwrap();
    assert_eq!(again, sluice_core::WriteReport::ok());
    let calls = sent(&http);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].len(), 4);
    assert_eq!(
        calls[1],
        vec![format!("{}\n", sluice_core::testing::test_value(1))]
    );
}

#[tokio::test]
async fn a_throttled_later_call_retries_only_its_records_and_the_rest() {
    let (mut s, http) = sink(vec![
        response(
            200,
            json!({"FailedPutCount": 0, "RequestResponses": ok_entries(500)}),
        ),
        response(
            400,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        ),
    ])
    .await;
    let batch = records(1200);
    let report = s.write(&batch, None).await.unwrap();
    assert!(report.rejected.is_empty());
    assert_eq!(report.retry, (500..1200).collect::<Vec<_>>());
    let calls = sent(&http);
    assert_eq!(
        calls.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![500, 500]
    );
}

#[tokio::test]
async fn a_failing_first_call_is_a_retryable_error_with_the_cause() {
    let (mut s, _http) = sink(vec![response(
        500,
        json!({"__type": "ServiceUnavailableException", "message": "Service unavailable"}),
    )])
    .await;
    let err = s.write(&records(3), None).await.unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert!(
        err.message.contains("ServiceUnavailableException"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_record_over_1000_kib_is_rejected_without_a_call() {
    let (mut s, http) = sink(vec![response(
        200,
        json!({"FailedPutCount": 0, "RequestResponses": ok_entries(2)}),
    )])
    .await;
    let mut batch = records(3);
    batch[1].value = bytes::Bytes::from(vec![b'x'; 1_000 * 1024]);
    let report = s.write(&batch, None).await.unwrap();
    assert_eq!(
        report.rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1]
    );
    assert!(
        report.rejected[0].1.contains("at most"),
        "{:?}",
        report.rejected
    );
    assert_eq!(sent(&http)[0].len(), 2);
}
