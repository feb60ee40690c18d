//! The OpenSearch sink against the server from `scripts/services.sh up`
//! (`SLUICE_TEST_OPENSEARCH_URL`): each action, date-pattern and field indices, refused items
//! dead-lettered with their reason while the rest land, several nodes. What the emulator never
//! does (429 and 5xx items, whole-request failures, other cluster versions) is tested against
//! a canned-response server on 127.0.0.1 (`common::canned`): the tests whose names end in
//! `_canned`.

mod common;

use std::sync::Arc;

use common::canned::{Canned, bulk_response, root};
use common::{Doc, build, create_index, ctx, docs, open, unique, url};
use opensearch::http::Method;
use serde_json::{Value, json};
use sluice_core::{ErrorKind, Position, Record};

fn record(value: &str, partition: &str, offset: i64) -> Record {
    Record::new(
        value.to_string(),
        Position::int(Arc::from(partition), offset),
    )
}

fn by_id(docs: &[Doc]) -> std::collections::BTreeMap<String, Value> {
    docs.iter()
        .map(|d| (d.id.clone(), d.source.clone()))
        .collect()
}

#[tokio::test]
async fn index_replaces_and_position_ids_make_replays_overwrite() {
    let index = unique("act-index");
    let config = format!("url = '{}'\nindex = '{index}'", url());
    let mut sink = open("jobi", &config).await;
    let batch: Vec<Record> = (0..5)
        .map(|i| record(&format!(r#"{{"n":{i}}}"#), "p", i))
        .collect();
    assert_eq!(sink.write(&batch, None).await.unwrap(), Default::default());
    // The same records again (a replay after a crash), one of them changed.
    let mut again = batch.clone();
    again[2] = record(r#"{"n":2,"again":true}"#, "p", 2);
    assert_eq!(sink.write(&again, None).await.unwrap(), Default::default());
    sink.close().await.unwrap();
    let got = by_id(&docs(&index).await);
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got["jobi/p/2"], json!({"n": 2, "again": true}));
    assert_eq!(got["jobi/p/4"], json!({"n": 4}));
}

#[tokio::test]
async fn several_outputs_of_one_input_get_ordinal_ids() {
    let index = unique("act-outputs");
    let mut sink = open("jobo", &format!("url = '{}'\nindex = '{index}'", url())).await;
    let batch = vec![
        record(r#"{"part":0}"#, "p", 7),
        record(r#"{"part":1}"#, "p", 7),
        record(r#"{"part":0}"#, "p", 8),
    ];
    sink.write(&batch, None).await.unwrap();
    sink.write(&batch, None).await.unwrap();
    let got = by_id(&docs(&index).await);
    let ids: Vec<&String> = got.keys().collect();
    assert_eq!(ids, ["jobo/p/7", "jobo/p/7#1", "jobo/p/8"]);
}

#[tokio::test]
async fn create_rejects_a_conflict_unless_told_or_replaying() {
    let index = unique("act-create");
    let base = format!("url = '{}'\nindex = '{index}'\naction = 'create'", url());
    // By a field id: a second create of the same id is a 409, dead-lettered with its reason...
    let mut sink = open("jobc", &format!("{base}\nid = 'id'")).await;
    let first = vec![record(r#"{"id":"a","v":1}"#, "p", 0)];
    assert_eq!(sink.write(&first, None).await.unwrap(), Default::default());
    let second = vec![
        record(r#"{"id":"a","v":2}"#, "p", 1),
        record(r#"{"id":"b","v":1}"#, "p", 2),
    ];
    let report = sink.write(&second, None).await.unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].0, 0);
    assert!(
        report.rejected[0]
            .1
            .starts_with("409 version_conflict_engine_exception"),
        "{report:?}"
    );
    // ... unless conflicts are ignored.
    let mut lenient = open(
        "jobc",
        &format!("{base}\nid = 'id'\nignore_version_conflicts = true"),
    )
    .await;
    assert_eq!(
        lenient.write(&second, None).await.unwrap(),
        Default::default()
    );
    // With position ids, a conflict is a replay of the same record: written.
    let mut replaying = open("jobc", &base).await;
    let batch = vec![record(r#"{"v":1}"#, "q", 0), record(r#"{"v":2}"#, "q", 1)];
    replaying.write(&batch, None).await.unwrap();
    assert_eq!(
        replaying.write(&batch, None).await.unwrap(),
        Default::default()
    );
    let got = by_id(&docs(&index).await);
    assert_eq!(
        got["a"],
        json!({"id": "a", "v": 1}),
        "create never replaces"
    );
    assert_eq!(got.len(), 4, "{got:?}");
}

#[tokio::test]
async fn update_merges_and_upserts() {
    let index = unique("act-update");
    let mut sink = open(
        "jobu",
        &format!(
            "url = '{}'\nindex = '{index}'\naction = 'update'\nid = 'device.id'",
            url()
        ),
    )
    .await;
    let batch = vec![
        record(r#"{"device":{"id":"d1"},"temp":20}"#, "p", 0),
        record(r#"{"device":{"id":"d1"},"humidity":40}"#, "p", 1),
        record(r#"{"device":{"id":7},"temp":5}"#, "p", 2),
    ];
    assert_eq!(sink.write(&batch, None).await.unwrap(), Default::default());
    let got = by_id(&docs(&index).await);
    assert_eq!(
        got["d1"],
        json!({"device": {"id": "d1"}, "temp": 20, "humidity": 40})
    );
    assert_eq!(got["7"], json!({"device": {"id": 7}, "temp": 5}));
}

#[tokio::test]
async fn delete_removes_by_id_and_a_missing_document_counts_as_deleted() {
    let index = unique("act-delete");
    let indexing = format!("url = '{}'\nindex = '{index}'\nid = 'id'", url());
    let mut sink = open("jobd", &indexing).await;
    let batch: Vec<Record> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, id)| record(&format!(r#"{{"id":"{id}"}}"#), "p", i as i64))
        .collect();
    sink.write(&batch, None).await.unwrap();
    let mut deleting = open("jobd", &format!("{indexing}\naction = 'delete'")).await;
    let deletes = vec![
        record(r#"{"id":"b"}"#, "p", 3),
        record(r#"{"id":"never-written"}"#, "p", 4),
        record(r#"{"no_id":1}"#, "p", 5),
    ];
    let report = deleting.write(&deletes, None).await.unwrap();
    assert!(report.retry.is_empty(), "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].0, 2);
    assert!(report.rejected[0].1.contains("id field `id` is missing"));
    let got = by_id(&docs(&index).await);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["a", "c"]);
}

#[tokio::test]
async fn date_pattern_indices_follow_the_event_time() {
    let prefix = unique("readings");
    let config = format!("url = '{}'\nindex = '{prefix}-{{yyyy.MM.dd}}'", url());
    let mut sink = open("jobt", &config).await;
    // 2026-11-24T23:59:59.999Z, 2026-11-25T00:00:00Z, 2026-11-26T12:00:00Z
    let times = [1_795_564_799_999_i64, 1_795_564_800_000, 1_795_694_400_000];
    let mut batch: Vec<Record> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut r = record(&format!(r#"{{"n":{i}}}"#), "p", i as i64);
            r.timestamp = Some(*t);
            r
        })
        .collect();
    batch.push(record(r#"{"n":3}"#, "p", 3));
    let report = sink.write(&batch, None).await.unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].0, 3);
    assert!(report.rejected[0].1.contains("no event time"), "{report:?}");
    let mut got: Vec<(String, Value)> = docs(&format!("{prefix}-*"))
        .await
        .into_iter()
        .map(|d| (d.index, d.source))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            (format!("{prefix}-2026.11.24"), json!({"n": 0})),
            (format!("{prefix}-2026.11.25"), json!({"n": 1})),
            (format!("{prefix}-2026.11.26"), json!({"n": 2})),
        ]
    );
}

#[tokio::test]
async fn field_indices_route_each_record() {
    let prefix = unique("logs");
    let config = format!("url = '{}'\nindex = '{prefix}-{{service}}'", url());
    let mut sink = open("jobf", &config).await;
    let batch = vec![
        record(r#"{"service":"api","m":1}"#, "p", 0),
        record(r#"{"service":"db","m":2}"#, "p", 1),
        record(r#"{"m":3}"#, "p", 2),
        record(r#"{"service":"API","m":4}"#, "p", 3),
    ];
    let report = sink.write(&batch, None).await.unwrap();
    let rejected: Vec<usize> = report.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(rejected, vec![2, 3], "{report:?}");
    assert!(report.rejected[0].1.contains("`service` is missing"));
    assert!(
        report.rejected[1]
            .1
            .contains("invalid_index_name_exception"),
        "the cluster's reason: {report:?}"
    );
    let mut got: Vec<String> = docs(&format!("{prefix}-*"))
        .await
        .into_iter()
        .map(|d| d.index)
        .collect();
    got.sort();
    assert_eq!(got, vec![format!("{prefix}-api"), format!("{prefix}-db")]);
}

#[tokio::test]
async fn refused_items_are_rejected_with_their_reason_while_the_rest_are_indexed() {
    let index = unique("refused");
    create_index(&index, json!({"seq": {"type": "long"}})).await;
    let config = format!(
        "url = '{}'\nindex = '{index}'\naction = 'create'\nid = 'id'",
        url()
    );
    let mut sink = open("jobr", &config).await;
    sink.write(&[record(r#"{"id":"taken","seq":0}"#, "p", 0)], None)
        .await
        .unwrap();
    let batch = vec![
        record(r#"{"id":"a","seq":1}"#, "p", 1),
        record(r#"{"id":"b","seq":"one"}"#, "p", 2),
        record(r#"{"id":"c","seq":3}"#, "p", 3),
        record(r#"{"id":"taken","seq":4}"#, "p", 4),
        record("not json", "p", 5),
        record(r#"{"id":"d","seq":6}"#, "p", 6),
    ];
    let report = sink.write(&batch, None).await.unwrap();
    assert!(report.retry.is_empty() && !report.rolled_back, "{report:?}");
    let rejected: Vec<(usize, &str)> = report
        .rejected
        .iter()
        .map(|(i, r)| (*i, r.as_str()))
        .collect();
    assert_eq!(rejected.len(), 3, "{report:?}");
    assert_eq!(rejected[0].0, 1);
    assert!(
        rejected[0].1.starts_with("400 mapper_parsing_exception"),
        "{report:?}"
    );
    assert_eq!(rejected[1].0, 3);
    assert!(
        rejected[1]
            .1
            .starts_with("409 version_conflict_engine_exception"),
        "{report:?}"
    );
    assert_eq!(rejected[2].0, 4);
    assert!(rejected[2].1.contains("not valid JSON"), "{report:?}");
    let got = by_id(&docs(&index).await);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["a", "c", "d", "taken"]);
    assert_eq!(got["taken"]["seq"], json!(0));
}

#[tokio::test]
async fn several_nodes_skip_one_that_does_not_answer() {
    let index = unique("nodes");
    let config = format!(
        "url = ['http://127.0.0.1:1', '{}']\nindex = '{index}'",
        url()
    );
    let mut sink = open("jobn", &config).await;
    for round in 0..3 {
        let batch = vec![record(r#"{"x":1}"#, "p", round)];
        assert_eq!(sink.write(&batch, None).await.unwrap(), Default::default());
    }
    assert_eq!(docs(&index).await.len(), 3);
    let host = url().trim_start_matches("http://").to_string();
    let mut hosts = ["127.0.0.1:1".to_string(), host];
    hosts.sort();
    assert_eq!(
        sink.destination().unwrap(),
        format!("opensearch://{}/{index}", hosts.join(","))
    );
}

#[tokio::test]
async fn credentials_are_sent_and_never_named() {
    let canned = Canned::start(|r, _| match r.path.as_str() {
        "/" => (200, root("opensearch", "2.19.1")),
        _ => (200, bulk_response(r, &[201])),
    })
    .await;
    let config = format!(
        "url = '{}'\nindex = 'i'\nauth = {{ token = 's3cret' }}",
        canned.url
    );
    let mut sink = open("jobk", &config).await;
    sink.write(&[record("{}", "p", 0)], None).await.unwrap();
    let bulk = &canned.to("/_bulk")[0];
    assert_eq!(bulk.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(bulk.header("content-type"), Some("application/x-ndjson"));
    assert!(!sink.destination().unwrap().contains("s3cret"));

    let basic = format!(
        "url = '{}'\nindex = 'i'\nauth = {{ user = 'admin', password = 'pw' }}",
        canned.url
    );
    let mut sink = open("jobk", &basic).await;
    sink.write(&[record("{}", "p", 0)], None).await.unwrap();
    // admin:pw
    assert_eq!(
        canned.to("/_bulk")[1].header("authorization"),
        Some("Basic YWRtaW46cHc=")
    );
}

#[tokio::test]
async fn throttled_and_failing_items_are_retried_alone_with_their_ids_canned() {
    // Records 1 and 2 are two outputs of one input (position p@11).
    let canned = Canned::start(|r, _| match r.path.as_str() {
        "/" => (200, root("opensearch", "3.1.0")),
        _ if r.actions().len() == 5 => (200, bulk_response(r, &[201, 201, 429, 503, 400])),
        _ => (200, bulk_response(r, &vec![201; r.actions().len()])),
    })
    .await;
    let mut sink = open("jobq", &format!("url = '{}'\nindex = 'q'", canned.url)).await;
    let batch = vec![
        record(r#"{"n":0}"#, "p", 10),
        record(r#"{"n":1}"#, "p", 11),
        record(r#"{"n":2}"#, "p", 11),
        record(r#"{"n":3}"#, "p", 12),
        record(r#"{"n":4}"#, "p", 13),
    ];
    let report = sink.write(&batch, None).await.unwrap();
    assert_eq!(report.retry, vec![2, 3], "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].0, 4);
    assert!(
        report.rejected[0]
            .1
            .starts_with("400 mapper_parsing_exception")
    );
    // The runtime sends exactly the retry records again: they keep their ids (the second
    // output of p@11 stays `#1` although it now comes alone).
    let again = vec![batch[2].clone(), batch[3].clone()];
    assert_eq!(sink.write(&again, None).await.unwrap(), Default::default());
    let bulks = canned.to("/_bulk");
    let ids = |r: &common::canned::Request| -> Vec<String> {
        r.actions().into_iter().map(|(_, _, id)| id).collect()
    };
    assert_eq!(
        ids(&bulks[0]),
        [
            "jobq/p/10",
            "jobq/p/11",
            "jobq/p/11#1",
            "jobq/p/12",
            "jobq/p/13"
        ]
    );
    assert_eq!(ids(&bulks[1]), ["jobq/p/11#1", "jobq/p/12"]);
}

#[tokio::test]
async fn a_whole_request_failure_is_retryable_canned() {
    let canned = Canned::start(|r, n| match (r.path.as_str(), n) {
        ("/", _) => (200, root("opensearch", "1.3.20")),
        (_, 1) => (
            503,
            r#"{"error":{"type":"cluster_block_exception","reason":"blocked"}}"#.into(),
        ),
        (_, 2) => (
            429,
            r#"{"error":{"type":"circuit_breaking_exception","reason":"too much data"}}"#.into(),
        ),
        (_, 3) => (200, "<html>a proxy</html>".into()),
        (_, 4) => (413, String::new()),
        _ => (200, bulk_response(r, &[201])),
    })
    .await;
    let mut sink = open("jobw", &format!("url = '{}'\nindex = 'w'", canned.url)).await;
    let batch = [record("{}", "p", 0)];
    for want in [
        "cluster_block_exception: blocked",
        "circuit_breaking_exception",
        "not a _bulk response",
    ] {
        let e = sink.write(&batch, None).await.unwrap_err();
        assert!(e.retryable && e.kind == ErrorKind::External, "{e:?}");
        assert!(e.message.contains(want), "{e}");
    }
    let e = sink.write(&batch, None).await.unwrap_err();
    assert!(!e.retryable && e.message.contains("batch.max_bytes"), "{e}");
    assert_eq!(sink.write(&batch, None).await.unwrap(), Default::default());
}

#[tokio::test]
async fn open_refuses_clusters_it_cannot_write_to_canned() {
    for (distribution, number, ok) in [
        ("opensearch", "3.8.0", true),
        ("opensearch", "1.0.0", true),
        ("elasticsearch", "7.10.2", true),
        ("elasticsearch", "8.11.0", false),
        ("opensearch", "4.0.0", false),
    ] {
        let answer = root(distribution, number);
        let canned = Canned::start(move |_, _| (200, answer.clone())).await;
        let mut sink = build("jobv", &format!("url = '{}'\nindex = 'v'", canned.url));
        match sink.open(&ctx("jobv")).await {
            Ok(()) => assert!(ok, "{distribution} {number} was accepted"),
            Err(e) => {
                assert!(!ok, "{distribution} {number}: {e}");
                assert_eq!(e.kind, ErrorKind::Config, "{e:?}");
                assert!(!e.retryable);
                assert!(
                    e.message.contains(&format!("{distribution} \"{number}\"")),
                    "{e}"
                );
                assert!(e.message.contains("OpenSearch 1.x–3.x"), "{e}");
            }
        }
    }
    let canned = Canned::start(|_, _| {
        (401, r#"{"error":{"type":"security_exception","reason":"missing authentication credentials"}}"#.into())
    })
    .await;
    let mut sink = build("jobv", &format!("url = '{}'\nindex = 'v'", canned.url));
    let e = sink.open(&ctx("jobv")).await.unwrap_err();
    assert!(e.kind == ErrorKind::Config && !e.retryable, "{e:?}");
    assert!(
        e.message
            .contains("security_exception: missing authentication credentials"),
        "{e}"
    );
}

#[tokio::test]
async fn the_index_exists_after_open_only_when_written() {
    // Opening checks the cluster; it creates nothing.
    let index = unique("untouched");
    let mut sink = open("jobx", &format!("url = '{}'\nindex = '{index}'", url())).await;
    sink.close().await.unwrap();
    let (status, _) = common::call(Method::Head, &format!("/{index}"), None).await;
    assert_eq!(status, 404);
}
