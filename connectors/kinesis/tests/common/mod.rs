//! Helpers for tests against a Kinesis endpoint (`SLUICE_TEST_KINESIS_ENDPOINT`, set by
//! `scripts/services.sh up kinesis`: kinesis-local here, real AWS elsewhere).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use sluice_aws::AwsConnection;

/// The endpoint; a test that needs it fails (never skips) without it.
pub fn endpoint() -> String {
    std::env::var("SLUICE_TEST_KINESIS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_KINESIS_ENDPOINT is not set: run `scripts/services.sh up kinesis` and source target/services.env"
        )
    })
}

/// The region tests use.
pub fn region() -> String {
    std::env::var("SLUICE_TEST_AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}

/// `stream`, `endpoint` and `region` of a source or sink config.
pub fn base_config(stream: &str) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("stream".into(), stream.into());
    t.insert("endpoint".into(), endpoint().into());
    t.insert("region".into(), region().into());
    t
}

/// A client of the test endpoint (credentials from the environment).
pub async fn client() -> Client {
    let conn = AwsConnection {
        region: Some(region()),
        endpoint: Some(endpoint()),
        auth: Default::default(),
    };
    Client::new(&conn.sdk_config().await.expect("SDK config"))
}

/// A unique stream name.
pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::random();
    format!("{prefix}-{}-{n:08x}", std::process::id())
}

/// Wait until the stream is ACTIVE (it starts CREATING; splits and merges make it UPDATING).
pub async fn wait_active(client: &Client, stream: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await;
        if let Ok(out) = out
            && out
                .stream_description_summary()
                .is_some_and(|d| *d.stream_status() == StreamStatus::Active)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stream {stream} never became ACTIVE"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Create a stream with `shards` shards and wait until it is ACTIVE.
pub async fn create_stream(client: &Client, stream: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(stream)
        .shard_count(shards)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating stream {stream}: {e:?}"));
    wait_active(client, stream).await;
}

/// Put `(partition key, data)` records, 500 per call; every entry must succeed. Returns the
/// sequence numbers.
pub async fn put(client: &Client, stream: &str, records: &[(String, Vec<u8>)]) -> Vec<String> {
    put_placed(client, stream, records)
        .await
        .into_iter()
        .map(|(_, seq)| seq)
        .collect()
}

/// [`put`], returning where each record went: (shard id, sequence number).
pub async fn put_placed(
    client: &Client,
    stream: &str,
    records: &[(String, Vec<u8>)],
) -> Vec<(String, String)> {
    let mut placed = Vec::new();
    for chunk in records.chunks(500) {
        let entries: Vec<PutRecordsRequestEntry> = chunk
            .iter()
            .map(|(k, v)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(k)
                    .data(Blob::new(v.clone()))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRecords to {stream}: {e:?}"));
        assert_eq!(out.failed_record_count(), Some(0), "{out:?}");
        placed.extend(out.records().iter().map(|r| {
            (
                r.shard_id().unwrap_or_default().to_string(),
                r.sequence_number().unwrap_or_default().to_string(),
            )
        }));
    }
    placed
}

/// Every record of every shard (TRIM_HORIZON to the end), as (shard id, partition key, data).
pub async fn read_all(client: &Client, stream: &str) -> Vec<(String, String, Vec<u8>)> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListShards {stream}: {e:?}"));
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetShardIterator: {e:?}"))
            .shard_iterator()
            .map(String::from);
        while let Some(it) = iterator {
            let got = client
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetRecords: {e:?}"));
            for r in got.records() {
                out.push((
                    shard.shard_id().to_string(),
                    r.partition_key().unwrap_or_default().to_string(),
                    r.data().as_ref().to_vec(),
                ));
            }
            if got.records().is_empty() {
                break;
            }
            iterator = got.next_shard_iterator().map(String::from);
        }
    }
    out
}

/// `key` field → copies, of every JSON record of the stream.
pub async fn key_counts(client: &Client, stream: &str) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for (_, _, data) in read_all(client, stream).await {
        let v: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
        if let Some(k) = v["key"].as_str() {
            *counts.entry(k.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// A records count from the environment (`var`), else `default`: small in CI, larger for
/// chaos runs.
pub fn records_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
