//! OpenSearch for the root tests (`scripts/services.sh up opensearch`): its URL, one request,
//! and the documents of an index counted by `seq`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub fn opensearch_url() -> String {
    std::env::var("SLUICE_TEST_OPENSEARCH_URL").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_OPENSEARCH_URL is not set: run scripts/services.sh up and source target/services.env"
        )
    })
}

/// One request to the server; panics on a transport error or a status ≥ 300.
pub async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> Value {
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
pub async fn seq_counts(base: &str, index: &str) -> (BTreeMap<u64, u32>, u64) {
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
