//! The MongoDB change-stream source against the server from `scripts/services.sh up mongodb`:
//! headers and update lookups, a job that resumes where it stopped after a restart, and the
//! initial snapshot continuing into the stream without a gap or a duplicate.

mod common;

use std::time::{Duration, Instant};

use common::{DB, coll, feed, operation_time, registry, run_job, unique, url};
use mongodb::bson::doc;
use sluice_core::testing::{key_of, test_key};
use sluice_core::{BuildContext, Guarantee, Record, Source};
use tokio_util::sync::CancellationToken;

fn source(extra: &str) -> Box<dyn Source> {
    let table: toml::Table = toml::from_str(&format!("url = '{}'\n{extra}", url())).unwrap();
    let ctx = BuildContext::new("src", ".", ".", Guarantee::AtLeastOnce);
    match registry().source("mongodb").unwrap().build(table, &ctx) {
        Ok(s) => s,
        Err(e) => panic!("{}: {}", e.path, e.message),
    }
}

/// Read until `want` records came (60 s at most).
async fn read(source: &mut dyn Source, want: usize) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} records",
            got.len()
        );
        if let Ok(batch) =
            tokio::time::timeout(Duration::from_millis(500), source.next_batch()).await
        {
            got.extend(batch.unwrap().unwrap().records);
        }
    }
    got
}

fn header<'a>(r: &'a Record, name: &str) -> &'a str {
    std::str::from_utf8(r.header(name).unwrap_or_else(|| panic!("no header {name}"))).unwrap()
}

#[tokio::test]
async fn events_carry_operation_namespace_key_and_cluster_time() {
    let name = unique("events");
    let t = operation_time().await;
    let c = coll(&name).await;
    c.insert_many([doc! {"_id": 1, "v": 1}, doc! {"_id": 2}])
        .await
        .unwrap();
    c.update_one(doc! {"_id": 1}, doc! {"$set": {"v": 2}})
        .await
        .unwrap();
    c.delete_one(doc! {"_id": 2}).await.unwrap();
    let mut s = source(&format!(
        "database = '{DB}'\ncollection = '{name}'\nfull_document = 'updateLookup'\nstart_from = {{ at_operation_time = '{}.{}' }}\npipeline = '[{{\"$match\": {{\"operationType\": {{\"$in\": [\"update\", \"delete\"]}}}}}}]'",
        t.time, t.increment
    ));
    s.open(None).await.unwrap();
    let got = read(s.as_mut(), 2).await;
    assert_eq!(header(&got[0], "mongodb.operation_type"), "update");
    assert_eq!(header(&got[1], "mongodb.operation_type"), "delete");
    assert_eq!(header(&got[0], "mongodb.namespace"), format!("{DB}.{name}"));
    assert_eq!(header(&got[0], "mongodb.document_key"), r#"{"_id":1}"#);
    assert!(header(&got[0], "mongodb.cluster_time").contains('.'));
    assert!(!header(&got[0], "mongodb.resume_token").is_empty());
    let event: serde_json::Value = serde_json::from_slice(&got[0].value).unwrap();
    assert_eq!(
        event["updateDescription"]["updatedFields"]["v"], 2,
        "{event}"
    );
    assert_eq!(event["fullDocument"]["v"], 2, "updateLookup: {event}");
    assert!(got[0].position.offset < got[1].position.offset);
    s.close().await.unwrap();
}

/// A job reading the change stream into another collection, stopped and started again: the
/// second run continues after the stored position (the offset store), nothing twice.
#[tokio::test]
async fn a_job_resumes_the_change_stream_after_a_restart() {
    let (input, output) = (unique("resume_in"), unique("resume_out"));
    let t = operation_time().await;
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        r#"
api_version = 1
name = "{output}"
[source]
type = "mongodb"
url = "{url}"
database = "{DB}"
collection = "{input}"
output = "document"
start_from = {{ at_operation_time = "{}.{}" }}
batch = 20
[[sinks]]
type = "mongodb"
url = "{url}"
database = "{DB}"
collection = "{output}"
batch = {{ max_records = 20, max_wait = "20ms" }}
"#,
        t.time,
        t.increment,
        url = url()
    );
    feed(&input, 0..50).await;
    for (run, total) in [(1, 50usize), (2, 80)] {
        let stop = CancellationToken::new();
        let job_run = tokio::spawn({
            let (dir, job, stop) = (dir.path().to_path_buf(), job.clone(), stop.clone());
            async move { run_job(&dir, &job, stop).await }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while common::keys(&output).await.len() < total {
            assert!(
                Instant::now() < deadline,
                "run {run}: the job did not copy {total} documents"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.cancel();
        job_run.await.unwrap();
        if run == 1 {
            feed(&input, 50..80).await;
        }
    }
    let mut keys = common::keys(&output).await;
    keys.sort();
    let mut want: Vec<String> = (0..80).map(test_key).collect();
    want.sort();
    assert_eq!(keys, want);
}

/// The snapshot reads what was there, the stream adds what came during and after the read:
/// every key once, whatever the interleaving.
#[tokio::test]
async fn the_snapshot_continues_into_the_stream_without_gap_or_duplicate() {
    let name = unique("snap");
    feed(&name, 0..300).await;
    let mut s = source(&format!(
        "database = '{DB}'\ncollection = '{name}'\nsnapshot = true\noutput = 'document'\nbatch = 50"
    ));
    s.open(None).await.unwrap();
    let writer = tokio::spawn({
        let name = name.clone();
        async move {
            for chunk in (300..400u64).collect::<Vec<_>>().chunks(10) {
                feed(&name, chunk[0]..chunk[chunk.len() - 1] + 1).await;
            }
        }
    });
    let first = read(s.as_mut(), 300).await;
    assert!(
        first[..300]
            .iter()
            .all(|r| header(r, "mongodb.operation_type") == "snapshot"),
        "the snapshot comes first"
    );
    writer.await.unwrap();
    let mut all = first;
    all.extend(read(s.as_mut(), 400 - all.len()).await);
    // Nothing more than the 400.
    if let Ok(more) = tokio::time::timeout(Duration::from_millis(700), s.next_batch()).await {
        all.extend(more.unwrap().unwrap().records);
    }
    let mut keys: Vec<String> = all
        .iter()
        .map(|r| key_of(&r.value).expect("a key"))
        .collect();
    keys.sort();
    let mut want: Vec<String> = (0..400).map(test_key).collect();
    want.sort();
    assert_eq!(keys.len(), want.len(), "no duplicate, no gap");
    assert_eq!(keys, want);
    let offsets: Vec<_> = all.iter().map(|r| r.position.offset.clone()).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "positions increase"
    );
    s.close().await.unwrap();
}

/// Each offset carries its event's resume token, and offsets keep the stream's order although
/// the tokens' lengths vary with the document key (a long string `_id`, then short ones); a
/// source opened at one of them goes on with the very next event (`startAfter`).
#[tokio::test]
async fn offsets_carry_resume_tokens_and_resume_right_after_them() {
    let name = unique("tokens");
    let t = operation_time().await;
    let c = coll(&name).await;
    let long = "x".repeat(120);
    c.insert_one(doc! {"_id": &long}).await.unwrap();
    for id in 1..=3 {
        c.insert_one(doc! {"_id": id}).await.unwrap();
    }
    c.insert_one(doc! {"_id": "y"}).await.unwrap();
    let config = format!(
        "database = '{DB}'\ncollection = '{name}'\nstart_from = {{ at_operation_time = '{}.{}' }}",
        t.time, t.increment
    );
    let mut s = source(&config);
    s.open(None).await.unwrap();
    let got = read(s.as_mut(), 5).await;
    s.close().await.unwrap();
    for r in &got {
        let token = header(r, "mongodb.resume_token");
        let offset = r.position.offset.to_string();
        assert!(
            offset.contains(&format!(":{token}")),
            "{offset} carries {token}"
        );
    }
    let offsets: Vec<_> = got.iter().map(|r| r.position.offset.clone()).collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "positions increase: {offsets:?}"
    );

    let mut cp = sluice_core::Checkpoint::default();
    cp.advance(&got[1].position);
    let mut again = source(&config);
    again.open(Some(cp)).await.unwrap();
    let rest = read(again.as_mut(), 3).await;
    let keys: Vec<&str> = rest
        .iter()
        .map(|r| header(r, "mongodb.document_key"))
        .collect();
    assert_eq!(keys, [r#"{"_id":2}"#, r#"{"_id":3}"#, r#"{"_id":"y"}"#]);
    let offsets_again: Vec<_> = rest.iter().map(|r| r.position.offset.clone()).collect();
    assert_eq!(
        offsets_again,
        offsets[2..],
        "the same offsets when read again"
    );
    again.close().await.unwrap();
}
