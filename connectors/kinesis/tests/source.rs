//! The source against a Kinesis endpoint (`SLUICE_TEST_KINESIS_ENDPOINT`): every shard read,
//! a split and a merge while it runs (nothing lost, per-key order kept), `start_from`, KPL
//! aggregates; with enhanced fan-out (`consumer`) too: every shard read through SubscribeToShard,
//! a restart resuming at the checkpoint, a split and a merge. `SLUICE_TEST_KINESIS_RECORDS` makes
//! the split/merge runs longer (default 120).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sluice_connector_kinesis::kpl::{SubRecord, aggregate};
use sluice_connector_kinesis::records::{ARRIVAL_TIME, PARTITION_KEY, SEQUENCE_NUMBER};
use sluice_core::{BuildContext, Checkpoint, Guarantee, Record, Registry, Source};

fn source(config: toml::Table) -> Box<dyn Source> {
    let mut registry = Registry::new();
    sluice_connector_kinesis::register(&mut registry);
    let ctx = BuildContext::new("kinesis-test", ".", ".", Guarantee::AtLeastOnce);
    registry
        .source("kinesis")
        .unwrap()
        .build(config, &ctx)
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn config(stream: &str) -> toml::Table {
    let mut t = common::base_config(stream);
    t.insert("poll_interval".into(), "100ms".into());
    t.insert("discover_interval".into(), "500ms".into());
    t
}

/// Read until `want` records came (60 s at most).
async fn read(source: &mut dyn Source, want: usize) -> Vec<Record> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "only {} of {want} records", got.len());
        if let Ok(batch) = tokio::time::timeout(left, source.next_batch()).await {
            let batch = batch.unwrap().unwrap();
            assert!(batch.dead.is_empty(), "{:?}", batch.dead[0].reason);
            got.extend(batch.records);
        }
    }
    got
}

fn json_records(prefix: &str, range: std::ops::Range<u64>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            let key = format!("{prefix}-{i}");
            (key.clone(), json!({"key": key}).to_string().into_bytes())
        })
        .collect()
}

#[tokio::test]
async fn reads_every_shard_with_kinesis_headers() {
    let client = common::client().await;
    let stream = common::unique("multi");
    common::create_stream(&client, &stream, 3).await;
    let seqs = common::put(&client, &stream, &json_records("r", 0..30)).await;
    let mut s = source(config(&stream));
    s.open(None).await.unwrap();
    let got = read(s.as_mut(), 30).await;
    let mut keys: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap())
        .collect();
    keys.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("r-{i}")).collect();
    want.sort();
    assert_eq!(keys, want);
    let shards: std::collections::BTreeSet<&str> =
        got.iter().map(|r| r.position.partition.as_ref()).collect();
    assert_eq!(shards.len(), 3, "records from all three shards: {shards:?}");
    assert!(
        shards.iter().all(|p| p.starts_with("arn:aws:kinesis:")),
        "{shards:?}"
    );
    for r in &got {
        assert_eq!(r.header(PARTITION_KEY), r.key.as_ref());
        let seq = r.header(SEQUENCE_NUMBER).unwrap();
        assert!(seqs.iter().any(|s| s.as_bytes() == seq.as_ref()));
        assert_eq!(r.position.offset.to_string().as_bytes(), seq.as_ref());
        assert!(r.header(ARRIVAL_TIME).is_some() && r.timestamp.is_some());
    }
    s.close().await.unwrap();
}

/// The open shards sorted by starting hash key: (id, start, end).
async fn open_shards(client: &Client, stream: &str) -> Vec<(String, u128, u128)> {
    let out = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut open: Vec<(String, u128, u128)> = out
        .shards()
        .iter()
        .filter(|s| {
            s.sequence_number_range()
                .is_none_or(|r| r.ending_sequence_number().is_none())
        })
        .map(|s| {
            let r = s.hash_key_range().unwrap();
            (
                s.shard_id().to_string(),
                r.starting_hash_key().parse().unwrap(),
                r.ending_hash_key().parse().unwrap(),
            )
        })
        .collect();
    open.sort_by_key(|s| s.1);
    open
}

/// `{"dev": d, "n": n}` for devices `0..devices`, `n` in `range`, partition key `dev-d`.
fn device_records(devices: u64, range: std::ops::Range<u64>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for n in range {
        for d in 0..devices {
            out.push((
                format!("dev-{d}"),
                json!({"dev": d, "n": n}).to_string().into_bytes(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn a_split_and_a_merge_during_a_run_lose_nothing_and_keep_per_key_order() {
    split_and_merge(None).await;
}

#[tokio::test]
async fn a_split_and_a_merge_under_enhanced_fan_out_lose_nothing_and_keep_per_key_order() {
    split_and_merge(Some(common::unique("efo-reshard"))).await;
}

/// Split and merge while the source reads (through `consumer` when given).
async fn split_and_merge(consumer: Option<String>) {
    let total = common::records_from_env("SLUICE_TEST_KINESIS_RECORDS", 120);
    const DEVICES: u64 = 8;
    let per_phase = (total / DEVICES / 3).max(2);
    let client = common::client().await;
    let stream = common::unique("reshard");
    common::create_stream(&client, &stream, 2).await;

    // Few records per call: the reader stays behind the writer, so children have records
    // while their parents still have unread ones — lineage decides the order.
    let mut c = config(&stream);
    c.insert("max_records".into(), 4.into());
    if let Some(name) = consumer {
        c.insert("consumer".into(), name.into());
    }
    let mut s = source(c);
    s.open(None).await.unwrap();
    let seen: Arc<Mutex<BTreeMap<u64, Vec<u64>>>> = Arc::default();
    let want = (DEVICES * per_phase * 3) as usize;
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut count = 0;
            while count < want {
                let batch = tokio::time::timeout(Duration::from_secs(60), s.next_batch())
                    .await
                    .expect("no records for 60 s")
                    .unwrap()
                    .unwrap();
                for r in batch.records {
                    let v: Value = serde_json::from_slice(&r.value).unwrap();
                    let (d, n) = (v["dev"].as_u64().unwrap(), v["n"].as_u64().unwrap());
                    seen.lock().entry(d).or_default().push(n);
                    count += 1;
                }
            }
            s
        })
    };

    common::put(&client, &stream, &device_records(DEVICES, 0..per_phase)).await;
    // Split the first shard in the middle of its hash range.
    let open = open_shards(&client, &stream).await;
    let (id, lo, hi) = open[0].clone();
    client
        .split_shard()
        .stream_name(&stream)
        .shard_to_split(&id)
        .new_starting_hash_key((lo + (hi - lo) / 2).to_string())
        .send()
        .await
        .unwrap();
    common::wait_active(&client, &stream).await;
    common::put(
        &client,
        &stream,
        &device_records(DEVICES, per_phase..2 * per_phase),
    )
    .await;
    // Merge two adjacent open shards (the split's upper child and the other first shard).
    let open = open_shards(&client, &stream).await;
    let pair = open
        .windows(2)
        .find(|w| w[0].2 + 1 == w[1].1)
        .expect("two adjacent open shards");
    client
        .merge_shards()
        .stream_name(&stream)
        .shard_to_merge(&pair[0].0)
        .adjacent_shard_to_merge(&pair[1].0)
        .send()
        .await
        .unwrap();
    common::wait_active(&client, &stream).await;
    common::put(
        &client,
        &stream,
        &device_records(DEVICES, 2 * per_phase..3 * per_phase),
    )
    .await;

    let mut s = reader.await.unwrap();
    // A grace period: nothing more may come (no duplicates).
    let extra = tokio::time::timeout(Duration::from_millis(1500), s.next_batch()).await;
    if let Ok(batch) = extra {
        assert!(batch.unwrap().unwrap().is_empty(), "records read twice");
    }
    s.close().await.unwrap();
    let seen = seen.lock().clone();
    assert_eq!(seen.len() as u64, DEVICES);
    for (d, ns) in seen.iter() {
        let expected: Vec<u64> = (0..3 * per_phase).collect();
        assert_eq!(ns, &expected, "device {d}: every record once, in order");
    }
    let shards = client
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .unwrap();
    assert_eq!(
        shards.shards().len(),
        5,
        "2 shards, a split (+2), a merge (+1)"
    );
}

#[tokio::test]
async fn start_from_latest_and_at_timestamp() {
    let client = common::client().await;
    let stream = common::unique("start");
    common::create_stream(&client, &stream, 1).await;
    common::put(&client, &stream, &json_records("old", 0..5)).await;
    let mut c = config(&stream);
    c.insert("start_from".into(), "latest".into());
    let mut latest = source(c);
    latest.open(None).await.unwrap();
    // Arrival times have a resolution of a millisecond: keep the two groups apart.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_millis(20)).await;
    common::put(&client, &stream, &json_records("new", 0..5)).await;
    let got = read(latest.as_mut(), 5).await;
    assert!(
        got.iter()
            .all(|r| r.key.as_ref().unwrap().starts_with(b"new-"))
    );

    let mut c = config(&stream);
    let mut at = toml::Table::new();
    at.insert("at_timestamp".into(), between.into());
    c.insert("start_from".into(), at.into());
    let mut from_time = source(c);
    from_time.open(None).await.unwrap();
    let got = read(from_time.as_mut(), 5).await;
    assert!(
        got.iter()
            .all(|r| r.key.as_ref().unwrap().starts_with(b"new-"))
    );
}

#[tokio::test]
async fn kpl_aggregated_records_are_read_as_their_user_records() {
    let client = common::client().await;
    let stream = common::unique("kpl");
    common::create_stream(&client, &stream, 1).await;
    let subs: Vec<SubRecord> = (0..10)
        .map(|i| SubRecord {
            partition_key: format!("user-{i}"),
            explicit_hash_key: None,
            data: Bytes::from(json!({"i": i}).to_string()),
        })
        .collect();
    let mut records = vec![("agg".to_string(), aggregate(&subs))];
    records.push(("plain".into(), json!({"i": 10}).to_string().into_bytes()));
    common::put(&client, &stream, &records).await;
    let mut s = source(config(&stream));
    s.open(None).await.unwrap();
    let got = read(s.as_mut(), 11).await;
    let is: Vec<u64> = got
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.value).unwrap()["i"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(is, (0..11).collect::<Vec<u64>>());
    assert_eq!(got[3].key.as_deref(), Some(&b"user-3"[..]));
    assert_eq!(
        got[0].position, got[9].position,
        "one Kinesis record, one position"
    );
    assert_ne!(got[9].position, got[10].position);
}

/// The keys of `records`, sorted.
fn sorted_keys(records: &[Record]) -> Vec<String> {
    let mut keys: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap())
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn enhanced_fan_out_reads_every_shard_and_resumes_at_the_checkpoint() {
    let client = common::client().await;
    let stream = common::unique("efo");
    common::create_stream(&client, &stream, 3).await;
    common::put(&client, &stream, &json_records("a", 0..30)).await;
    let mut c = config(&stream);
    c.insert("consumer".into(), common::unique("sluice-efo").into());

    let mut s = source(c.clone());
    s.open(None).await.unwrap();
    let got = read(s.as_mut(), 30).await;
    let mut want: Vec<String> = (0..30).map(|i| format!("a-{i}")).collect();
    want.sort();
    assert_eq!(sorted_keys(&got), want);
    let shards: std::collections::BTreeSet<&str> =
        got.iter().map(|r| r.position.partition.as_ref()).collect();
    assert_eq!(shards.len(), 3, "records from all three shards: {shards:?}");
    for r in &got {
        assert_eq!(
            r.position.offset.to_string().as_bytes(),
            r.header(SEQUENCE_NUMBER).unwrap().as_ref()
        );
    }
    // Lag comes from the events' MillisBehindLatest.
    assert!(s.lag().is_some_and(|l| l.len() == 3), "{:?}", s.lag());
    // The checkpoint of the first 20 records of the run: a restart goes on after them.
    let mut cp = Checkpoint::default();
    for r in &got[..20] {
        cp.advance(&r.position);
    }
    let committed: std::collections::BTreeSet<String> =
        sorted_keys(&got[..20]).into_iter().collect();
    s.close().await.unwrap();
    drop(s);

    common::put(&client, &stream, &json_records("b", 0..30)).await;
    // The same consumer again (it exists now: reused), from the checkpoint.
    let mut s = source(c);
    s.open(Some(cp)).await.unwrap();
    let got = read(s.as_mut(), 40).await;
    let extra = tokio::time::timeout(Duration::from_millis(1500), s.next_batch()).await;
    if let Ok(batch) = extra {
        assert!(batch.unwrap().unwrap().is_empty(), "records read twice");
    }
    let mut want: Vec<String> = (0..30)
        .map(|i| format!("a-{i}"))
        .filter(|k| !committed.contains(k))
        .chain((0..30).map(|i| format!("b-{i}")))
        .collect();
    want.sort();
    assert_eq!(
        sorted_keys(&got),
        want,
        "everything after the checkpoint, once, and nothing before it"
    );
    s.close().await.unwrap();
    let consumers = client
        .list_stream_consumers()
        .stream_arn(got[0].position.partition.rsplit_once('/').unwrap().0)
        .send()
        .await
        .unwrap();
    assert_eq!(consumers.consumers().len(), 1, "the consumer was reused");
}
