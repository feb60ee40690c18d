#![cfg(feature = "opensearch")]
//! The crash proof for datagen → OpenSearch through the `sluice` binary: `kill -9` the job at
//! random moments (10 times), restart it each time, then read every document back. The sink is
//! at-least-once, but its default document `_id` is derived from the job and the record's
//! source position, so a record delivered again overwrites its document: the index must end
//! with exactly one document per input record — none lost, none twice.
//!
//! Needs `scripts/services.sh up` (SLUICE_TEST_OPENSEARCH_URL in the environment).

mod common;

use std::collections::BTreeMap;

use common::{run_with_kills, write_job};
use serde_json::{Value, json};

/// `_search` returns at most 10,000 hits in one page: the whole index is read in one call.
const RECORDS: u64 = 10_000;
const KILLS: u32 = 10;

fn opensearch_url() -> String {
    std::env::var("SLUICE_TEST_OPENSEARCH_URL").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_OPENSEARCH_URL is not set: run scripts/services.sh up and source target/services.env"
        )
    })
}

/// One request to the server; panics on a transport error or a status ≥ 300.
async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let mut request = client.request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("OpenSearch answers");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON answer");
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// How many documents carry each `seq`, and how many documents there are.
async fn seq_counts(base: &str, index: &str) -> (BTreeMap<u64, u32>, u64) {
    use reqwest::Method;
    call(Method::POST, format!("{base}/{index}/_refresh"), None).await;
    let count = call(Method::GET, format!("{base}/{index}/_count"), None).await["count"]
        .as_u64()
        .expect("a count");
    let found = call(
        Method::POST,
        format!("{base}/{index}/_search"),
        Some(json!({"size": 10_000, "query": {"match_all": {}}})),
    )
    .await;
    let mut seqs = BTreeMap::new();
    for hit in found["hits"]["hits"].as_array().expect("hits") {
        let seq = hit["_source"]["seq"]
            .as_u64()
            .expect("a seq in every document");
        *seqs.entry(seq).or_insert(0) += 1;
    }
    (seqs, count)
}

#[test]
fn datagen_to_opensearch_survives_kill_nine_with_one_document_per_record() {
    let base = opensearch_url();
    let dir = tempfile::tempdir().unwrap();
    let index = format!("crash-{}", std::process::id());
    let job = write_job(
        dir.path(),
        "job.toml",
        &format!(
            r#"
api_version = 1
name = "opensearch-crash"
[delivery]
guarantee = "at-least-once"
commit_interval = "100ms"
[source]
type = "datagen"
count = {RECORDS}
rate = 4000
batch_size = 200
[[sinks]]
type = "opensearch"
url = "{base}"
index = "{index}"
batch = {{ max_records = 500, max_wait = "50ms" }}
"#
        ),
    );
    let landed = run_with_kills(&job, KILLS);
    assert!(landed >= KILLS, "only {landed} kills landed mid-run");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (seqs, count) = rt.block_on(seq_counts(&base, &index));
    let missing: Vec<u64> = (0..RECORDS)
        .filter(|s| !seqs.contains_key(s))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "records lost: first missing seq {missing:?}"
    );
    let twice: Vec<(&u64, &u32)> = seqs.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(twice.is_empty(), "documents written twice: {twice:?}");
    assert_eq!(count, RECORDS, "_count disagrees with the documents read");
    rt.block_on(call(
        reqwest::Method::DELETE,
        format!("{base}/{index}"),
        None,
    ));
    println!("datagen → OpenSearch: {landed} kill -9s, {count} documents, one per record");
}
