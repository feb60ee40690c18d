//! The MongoDB sink against the server from `scripts/services.sh up mongodb`
//! (`SLUICE_TEST_MONGODB_URL`): write modes matched by key and `_id`, BSON types, collections
//! from a field, per-item errors (validation, duplicate keys) reported and dead-lettered.

mod common;

use common::{DB, coll, docs, open_sink, record, run_job, unique, url};
use mongodb::bson::{Bson, doc};
use sluice_core::Guarantee;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn upsert_replace_and_delete_match_documents_by_key() {
    let name = unique("modes");
    let sink = |mode: &str| {
        format!(
            "url = '{}'\ndatabase = '{DB}'\ncollection = '{name}'\nmode = '{mode}'\nkey = ['dev', 'site.id']",
            url()
        )
    };
    let mut up = open_sink("modes", &sink("upsert"), Guarantee::AtLeastOnce).await;
    let r = up
        .write(
            &[
                record(0, r#"{"dev":"a","site":{"id":1},"t":1}"#),
                record(1, r#"{"dev":"a","site":{"id":1},"x":2}"#),
                record(2, r#"{"dev":"b","site":{"id":1},"t":3}"#),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(r, sluice_core::WriteReport::ok());
    let all = docs(&name).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let a = all
        .iter()
        .find(|d| d.get_str("dev").ok() == Some("a"))
        .unwrap();
    assert_eq!(
        (a.get_i32("t").ok(), a.get_i32("x").ok()),
        (Some(1), Some(2)),
        "upsert merges: {a}"
    );

    let mut replace = open_sink("modes", &sink("replace"), Guarantee::AtLeastOnce).await;
    replace
        .write(&[record(3, r#"{"dev":"a","site":{"id":1},"y":4}"#)], None)
        .await
        .unwrap();
    let a = coll(&name)
        .await
        .find_one(doc! {"dev": "a"})
        .await
        .unwrap()
        .unwrap();
    assert!(
        a.get("t").is_none() && a.get_i32("y").ok() == Some(4),
        "replace replaces: {a}"
    );

    let mut delete = open_sink("modes", &sink("delete"), Guarantee::AtLeastOnce).await;
    delete
        .write(
            &[
                record(4, r#"{"dev":"a","site":{"id":1}}"#),
                record(5, r#"{"dev":"zz","site":{"id":1}}"#),
            ],
            None,
        )
        .await
        .unwrap();
    let left: Vec<String> = docs(&name)
        .await
        .iter()
        .map(|d| d.get_str("dev").unwrap().to_string())
        .collect();
    assert_eq!(left, vec!["b"]);
    for mut s in [up, replace, delete] {
        s.close().await.unwrap();
    }
}

#[tokio::test]
async fn json_becomes_bson_types_and_dates_and_ids_come_from_fields() {
    let name = unique("types");
    let mut sink = open_sink(
        "types",
        &format!("url = '{}'\ndatabase = '{DB}'\ncollection = '{name}'\nid = 'n'\ndates = ['at', 'meta.seen']", url()),
        Guarantee::AtLeastOnce,
    )
    .await;
    let report = sink
        .write(
            &[
                record(0, r#"{"n":1,"big":5000000000,"f":1.5,"s":"x","arr":[1,"a",null],"at":"2026-01-02T03:04:05Z","meta":{"seen":"2026-01-02T03:04:05.250+01:00"}}"#),
                record(1, r#"{"n":2,"at":"not a time"}"#),
                record(2, r#"[1,2]"#),
                record(3, r#"{"n":18446744073709551615}"#),
            ],
            None,
        )
        .await
        .unwrap();
    let rejected: Vec<usize> = report.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(rejected, vec![1, 2, 3], "{report:?}");
    assert!(report.rejected[0].1.contains("RFC 3339"), "{report:?}");
    let d = coll(&name)
        .await
        .find_one(doc! {"_id": 1})
        .await
        .unwrap()
        .expect("_id from `n`");
    assert_eq!(d.get("big"), Some(&Bson::Int64(5_000_000_000)));
    assert_eq!(d.get("f"), Some(&Bson::Double(1.5)));
    assert_eq!(d.get_array("arr").unwrap().len(), 3);
    assert_eq!(
        d.get_datetime("at").unwrap().timestamp_millis(),
        1_767_323_045_000
    );
    let seen = d
        .get_document("meta")
        .unwrap()
        .get_datetime("seen")
        .unwrap();
    assert_eq!(seen.timestamp_millis(), 1_767_319_445_250);
    sink.close().await.unwrap();
}

#[tokio::test]
async fn collections_come_from_a_field() {
    let (a, b) = (unique("route_a"), unique("route_b"));
    let mut sink = open_sink(
        "route",
        &format!(
            "url = '{}'\ndatabase = '{DB}'\ncollection_field = 'to'",
            url()
        ),
        Guarantee::ExactlyOnce,
    )
    .await;
    let mut cp = sluice_core::Checkpoint::default();
    cp.advance(&sluice_core::Position::int(std::sync::Arc::from("test"), 2));
    let report = sink
        .write(
            &[
                record(0, &format!(r#"{{"to":"{a}","v":1}}"#)),
                record(1, &format!(r#"{{"to":"{b}","v":2}}"#)),
                record(2, &format!(r#"{{"to":"{a}","v":3}}"#)),
            ],
            Some(&cp),
        )
        .await
        .unwrap();
    assert_eq!(report, sluice_core::WriteReport::ok());
    assert_eq!((docs(&a).await.len(), docs(&b).await.len()), (2, 1));
    assert_eq!(sink.committed_checkpoint().await.unwrap(), Some(cp));
    sink.close().await.unwrap();
}

#[tokio::test]
async fn validation_failures_and_duplicates_are_reported_per_item() {
    let name = unique("items");
    common::create_validated(&name).await;
    coll(&name)
        .await
        .insert_one(doc! {"_id": 2, "seq": 2})
        .await
        .unwrap();
    let config = |extra: &str| {
        format!(
            "url = '{}'\ndatabase = '{DB}'\ncollection = '{name}'\nid = 'seq'\n{extra}",
            url()
        )
    };
    let batch = [
        record(0, r#"{"seq":0}"#),
        record(1, r#"{"seq":"one"}"#),
        record(2, r#"{"seq":2}"#),
        record(3, r#"{"seq":3}"#),
    ];
    // At-least-once: everything else is written, the refused items are named.
    let mut sink = open_sink("items", &config(""), Guarantee::AtLeastOnce).await;
    let report = sink.write(&batch, None).await.unwrap();
    assert!(!report.rolled_back && report.retry.is_empty());
    let rejected: Vec<usize> = report.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(rejected, vec![1, 2], "{report:?}");
    assert!(
        report.rejected[0].1.contains("validation"),
        "{:?}",
        report.rejected[0]
    );
    assert!(
        report.rejected[1].1.contains("DuplicateKey") || report.rejected[1].1.contains("11000"),
        "{:?}",
        report.rejected[1]
    );
    assert_eq!(docs(&name).await.len(), 3);
    sink.close().await.unwrap();

    // Ignored duplicates count as written.
    let mut sink = open_sink(
        "items",
        &config("ignore_duplicates = true"),
        Guarantee::AtLeastOnce,
    )
    .await;
    let report = sink.write(&batch, None).await.unwrap();
    let rejected: Vec<usize> = report.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(rejected, vec![1], "{report:?}");
    sink.close().await.unwrap();
}

/// Exactly-once, through a job: a transaction with a refused item is rolled back, the refused
/// records go to the dead-letter file, everything else is written once with its checkpoint.
#[tokio::test]
async fn a_job_dead_letters_refused_items_and_writes_the_rest_once() {
    let name = unique("dlq");
    common::create_validated(&name).await;
    // seq 7 and 17 already exist: their inserts are duplicate keys.
    coll(&name)
        .await
        .insert_many([
            doc! {"_id": 7, "seq": 7, "key": "old"},
            doc! {"_id": 17, "seq": 17, "key": "old"},
        ])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        r#"
api_version = 1
name = "{name}"
[delivery]
guarantee = "exactly-once"
[source]
type = "mem"
count = 30
batch = 10
[[sinks]]
type = "mongodb"
url = "{url}"
database = "{DB}"
collection = "{name}"
id = "seq"
batch = {{ max_records = 10, max_wait = "20ms" }}
[errors]
tolerance = "all"
dead_letter = {{ type = "file", path = "dlq.jsonl" }}
"#,
        url = url()
    );
    let report = run_job(dir.path(), &job, CancellationToken::new()).await;
    assert_eq!(report.records_in, 30);
    let all = docs(&name).await;
    assert_eq!(all.len(), 30, "28 new documents and the 2 that were there");
    let old: Vec<i32> = all
        .iter()
        .filter(|d| d.get_str("key").ok() == Some("old"))
        .map(|d| d.get_i32("_id").unwrap())
        .collect();
    assert_eq!(old, vec![7, 17]);
    let dead = std::fs::read_to_string(dir.path().join("dlq.jsonl")).unwrap();
    let lines: Vec<&str> = dead.lines().collect();
    assert_eq!(lines.len(), 2, "{dead}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("11000") || l.contains("uplicate")),
        "{dead}"
    );
}

/// A standalone server has no transactions: exactly-once is refused by `check` (what
/// `sluice validate` calls) and by `open`, naming the guarantee; at-least-once writes there.
#[tokio::test]
async fn exactly_once_is_refused_on_a_standalone_server() {
    let standalone = std::env::var("SLUICE_TEST_MONGODB_STANDALONE_URL").expect(
        "SLUICE_TEST_MONGODB_STANDALONE_URL is not set: run `bash scripts/services.sh up mongodb-standalone` and load target/services.env first",
    );
    let name = unique("standalone");
    let config = format!("url = '{standalone}'\ndatabase = '{DB}'\ncollection = '{name}'");
    let table: toml::Table = toml::from_str(&config).unwrap();
    let ctx = sluice_core::BuildContext::new("standalone", ".", ".", Guarantee::ExactlyOnce);
    let mut sink = match common::registry()
        .sink("mongodb")
        .unwrap()
        .build(table, &ctx)
    {
        Ok(sink) => sink,
        Err(e) => panic!("{}: {}", e.path, e.message),
    };
    let sctx = sluice_core::SinkContext {
        job: "standalone".into(),
        sink: "mongodb".into(),
        guarantee: Guarantee::ExactlyOnce,
    };
    for refused in [sink.check(&sctx).await, sink.open(&sctx).await] {
        let e = refused.expect_err("exactly-once on a standalone server");
        assert_eq!(e.kind, sluice_core::ErrorKind::Config, "{e}");
        assert_eq!(e.field.as_deref(), Some("guarantee"), "{e}");
        assert!(e.message.contains("standalone server"), "{e}");
    }
    let mut sink = open_sink("standalone", &config, Guarantee::AtLeastOnce).await;
    let report = sink.write(&[record(0, r#"{"v":1}"#)], None).await.unwrap();
    assert_eq!(report, sluice_core::WriteReport::ok());
    let client = mongodb::Client::with_uri_str(&standalone).await.unwrap();
    let count = client
        .database(DB)
        .collection::<mongodb::bson::Document>(&name)
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(count, 1);
    sink.close().await.unwrap();
}
