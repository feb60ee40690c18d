//! The S3 sink against moto (`scripts/services.sh up moto`): objects per partition, every
//! format and compression read back, rejected records, multipart uploads, and the exactly-once
//! recovery of a write that stopped before its commit.

mod common;

use std::sync::Arc;

use sluice_core::testing::{test_key, test_record};
use sluice_core::{Checkpoint, Guarantee, Position, Record, SinkContext};

fn records(range: std::ops::Range<u64>) -> Vec<Record> {
    let p: Arc<str> = Arc::from("p");
    range.map(|i| test_record(&p, i)).collect()
}

fn cp(last: i64) -> Checkpoint {
    let mut c = Checkpoint::default();
    c.advance(&Position::int(Arc::from("p"), last));
    c
}

fn keys_of(docs: &[(String, serde_json::Value)]) -> Vec<String> {
    let mut keys: Vec<String> = docs
        .iter()
        .map(|(_, d)| d["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

fn expected(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(test_key).collect()
}

#[tokio::test]
async fn objects_are_partitioned_by_event_time_and_field() {
    let bucket = common::unique("s3-part");
    common::create_bucket(&bucket).await;
    let table = common::sink_table(
        &bucket,
        "prefix = 'r/dt={date}/hour={hour}/device={field:device}/'\ncompression = 'gzip'",
    );
    let mut sink = common::open_sink(table, "part", Guarantee::AtLeastOnce).await;
    // 2026-01-02T03:30Z and one hour later; devices a and b.
    let base = 1_767_324_600_000_i64;
    let p: Arc<str> = Arc::from("p");
    let batch: Vec<Record> = (0..40)
        .map(|i| {
            let device = if i % 2 == 0 { "a" } else { "b" };
            let mut r = Record::new(
                format!("{{\"key\":\"{}\",\"device\":\"{device}\"}}", test_key(i)),
                Position::int(p.clone(), i as i64),
            );
            r.timestamp = Some(base + if i < 20 { 0 } else { 3_600_000 });
            r
        })
        .collect();
    let report = sink.write(&batch, None).await.unwrap();
    assert_eq!(report, sluice_core::WriteReport::ok());
    sink.close().await.unwrap();
    let docs = common::all_documents(&bucket).await;
    let mut objects: Vec<&str> = docs.iter().map(|(k, _)| k.as_str()).collect();
    objects.dedup();
    assert_eq!(objects.len(), 4, "{objects:?}");
    for (key, doc) in &docs {
        let seq: u64 = doc["key"].as_str().unwrap()[1..].parse().unwrap();
        let hour = if seq < 20 { "03" } else { "04" };
        let device = doc["device"].as_str().unwrap();
        let want = format!("r/dt=2026-01-02/hour={hour}/device={device}/part-archive-");
        assert!(key.starts_with(&want), "{key} for {doc}");
        assert!(key.ends_with(".jsonl.gz"), "{key}");
    }
    assert_eq!(keys_of(&docs), expected(0..40));
}

#[tokio::test]
async fn plain_and_zstd_json_lines_read_back() {
    for compression in ["none", "zstd"] {
        let bucket = common::unique(&format!("s3-{compression}"));
        common::create_bucket(&bucket).await;
        let table = common::sink_table(
            &bucket,
            &format!("prefix = 'logs/'\ncompression = '{compression}'"),
        );
        let mut sink = common::open_sink(table, "lines", Guarantee::AtLeastOnce).await;
        sink.write(&records(0..25), None).await.unwrap();
        sink.write(&records(25..50), None).await.unwrap();
        sink.close().await.unwrap();
        let docs = common::all_documents(&bucket).await;
        assert_eq!(keys_of(&docs), expected(0..50), "{compression}");
        let objects = common::data_keys(&bucket).await;
        assert_eq!(objects.len(), 2, "{objects:?}");
    }
}

#[tokio::test]
async fn records_that_cannot_be_placed_are_rejected_and_the_rest_written() {
    let bucket = common::unique("s3-reject");
    common::create_bucket(&bucket).await;
    let table = common::sink_table(&bucket, "prefix = 'by/{field:key}/'");
    let mut sink = common::open_sink(table, "reject", Guarantee::AtLeastOnce).await;
    let mut batch = records(0..4);
    batch[1].value = "{not json".into();
    batch[2].value = "{\"seq\":2}".into();
    let report = sink.write(&batch, None).await.unwrap();
    let idx: Vec<usize> = report.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, vec![1, 2], "{report:?}");
    assert!(
        report.rejected[0].1.contains("not valid JSON"),
        "{report:?}"
    );
    assert!(report.rejected[1].1.contains("no field key"), "{report:?}");
    let docs = common::all_documents(&bucket).await;
    assert_eq!(keys_of(&docs), vec![test_key(0), test_key(3)]);
}

#[tokio::test]
async fn large_objects_go_up_in_parts() {
    let bucket = common::unique("s3-multi");
    common::create_bucket(&bucket).await;
    let table = common::sink_table(&bucket, "prefix = 'big/'\npart_size = '5MiB'");
    let mut sink = common::open_sink(table, "multi", Guarantee::AtLeastOnce).await;
    let p: Arc<str> = Arc::from("p");
    let pad = "x".repeat(2000);
    let batch: Vec<Record> = (0..6000)
        .map(|i| {
            Record::new(
                format!("{{\"key\":\"{}\",\"pad\":\"{pad}\"}}", test_key(i)),
                Position::int(p.clone(), i as i64),
            )
        })
        .collect();
    sink.write(&batch, None).await.unwrap();
    let objects = common::data_keys(&bucket).await;
    assert_eq!(objects.len(), 1);
    let head = common::client()
        .await
        .head_object()
        .bucket(&bucket)
        .key(&objects[0])
        .send()
        .await
        .unwrap();
    // A multipart upload's ETag ends with the number of parts: 12 MB in 5 MiB parts.
    assert!(
        head.e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .ends_with("-3"),
        "{:?}",
        head.e_tag()
    );
    let docs = common::all_documents(&bucket).await;
    assert_eq!(keys_of(&docs), expected(0..6000));
}

#[tokio::test]
async fn exactly_once_deletes_the_objects_of_a_write_that_did_not_commit() {
    let bucket = common::unique("s3-eo");
    common::create_bucket(&bucket).await;
    let table = || common::sink_table(&bucket, "prefix = 'eo/'\ncompression = 'gzip'");
    let mut sink = common::open_sink(table(), "eo", Guarantee::ExactlyOnce).await;
    sink.write(&records(0..10), Some(&cp(9))).await.unwrap();
    sink.write(&records(10..20), Some(&cp(19))).await.unwrap();
    sink.close().await.unwrap();
    let second: Vec<String> = {
        let mut before = common::data_keys(&bucket).await;
        before.sort();
        assert_eq!(before.len(), 2);
        let docs = common::all_documents(&bucket).await;
        docs.iter()
            .filter(|(_, d)| d["seq"].as_u64() >= Some(10))
            .map(|(k, _)| k.clone())
            .take(1)
            .collect()
    };
    // What a crash between the upload and the commit leaves: the second write's object, and
    // a checkpoint object that still says 9 and names that object as pending.
    let state_key = "eo/_sluice/eo/archive.json";
    let mut state: serde_json::Value =
        serde_json::from_slice(&common::get(&bucket, state_key).await).unwrap();
    state["checkpoint"] = serde_json::to_value(cp(9)).unwrap();
    state["pending"] = serde_json::json!(second);
    common::client()
        .await
        .put_object()
        .bucket(&bucket)
        .key(state_key)
        .body(serde_json::to_vec(&state).unwrap().into())
        .send()
        .await
        .unwrap();
    let mut sink = common::open_sink(table(), "eo", Guarantee::ExactlyOnce).await;
    assert_eq!(sink.committed_checkpoint().await.unwrap(), Some(cp(9)));
    assert_eq!(
        common::data_keys(&bucket).await.len(),
        1,
        "the pending object is gone"
    );
    // The source delivers 10..20 again, cut differently this time.
    sink.write(&records(10..15), Some(&cp(14))).await.unwrap();
    sink.write(&records(15..20), Some(&cp(19))).await.unwrap();
    sink.close().await.unwrap();
    let docs = common::all_documents(&bucket).await;
    assert_eq!(keys_of(&docs), expected(0..20), "each record exactly once");
}

#[tokio::test]
async fn the_same_range_written_again_overwrites_its_objects() {
    let bucket = common::unique("s3-same");
    common::create_bucket(&bucket).await;
    let table = || common::sink_table(&bucket, "prefix = 'same/'");
    let mut sink = common::open_sink(table(), "same", Guarantee::ExactlyOnce).await;
    sink.write(&records(0..10), Some(&cp(9))).await.unwrap();
    let first = common::data_keys(&bucket).await;
    sink.close().await.unwrap();
    // As if the commit never happened: no checkpoint object (the write is replayed from the
    // start with the same range).
    common::client()
        .await
        .delete_object()
        .bucket(&bucket)
        .key("same/_sluice/same/archive.json")
        .send()
        .await
        .unwrap();
    let mut again = common::open_sink(table(), "same", Guarantee::ExactlyOnce).await;
    again.write(&records(0..10), Some(&cp(9))).await.unwrap();
    assert_eq!(
        common::data_keys(&bucket).await,
        first,
        "same key, overwritten"
    );
    assert_eq!(
        keys_of(&common::all_documents(&bucket).await),
        expected(0..10)
    );
}

#[tokio::test]
async fn a_checkpoint_object_of_another_prefix_is_refused() {
    let bucket = common::unique("s3-ident");
    common::create_bucket(&bucket).await;
    let mut sink = common::open_sink(
        common::sink_table(&bucket, "prefix = 'x/a-{date}/'"),
        "ident",
        Guarantee::ExactlyOnce,
    )
    .await;
    sink.write(&records(0..3), Some(&cp(2))).await.unwrap();
    sink.close().await.unwrap();
    let mut registry = sluice_core::Registry::new();
    sluice_connector_s3::register(&mut registry);
    let ctx = sluice_core::BuildContext::new("ident", ".", ".", Guarantee::ExactlyOnce);
    let mut other = registry
        .sink("s3")
        .unwrap()
        .build(common::sink_table(&bucket, "prefix = 'x/b-{date}/'"), &ctx)
        .unwrap();
    let err = other
        .open(&SinkContext {
            job: "ident".into(),
            sink: "archive".into(),
            guarantee: Guarantee::ExactlyOnce,
        })
        .await
        .unwrap_err();
    assert!(err.message.contains("was written for"), "{}", err.message);
    assert!(!err.retryable);
}

#[tokio::test]
async fn reset_checkpoint_changes_what_a_restart_resumes_from() {
    let bucket = common::unique("s3-reset");
    common::create_bucket(&bucket).await;
    let table = || common::sink_table(&bucket, "prefix = 'reset/'");
    let mut sink = common::open_sink(table(), "reset", Guarantee::ExactlyOnce).await;
    sink.write(&records(0..10), Some(&cp(9))).await.unwrap();
    sink.close().await.unwrap();
    let ctx = SinkContext {
        job: "reset".into(),
        sink: "archive".into(),
        guarantee: Guarantee::ExactlyOnce,
    };
    sink.reset_checkpoint(&ctx, Some(&cp(4))).await.unwrap();
    let mut reopened = common::open_sink(table(), "reset", Guarantee::ExactlyOnce).await;
    assert_eq!(reopened.committed_checkpoint().await.unwrap(), Some(cp(4)));
    reopened.close().await.unwrap();
    sink.reset_checkpoint(&ctx, None).await.unwrap();
    let mut reopened = common::open_sink(table(), "reset", Guarantee::ExactlyOnce).await;
    assert_eq!(reopened.committed_checkpoint().await.unwrap(), None);
    // Data already written stays.
    assert_eq!(
        keys_of(&common::all_documents(&bucket).await),
        expected(0..10)
    );
}
