//! Helpers shared by the OpenSearch connector tests: the server from
//! `scripts/services/opensearch.sh` (`SLUICE_TEST_OPENSEARCH_URL`), plain REST calls through
//! the `opensearch` crate, and sinks built the way a job file builds them.
#![allow(dead_code, missing_docs)]

pub mod canned;

use opensearch::OpenSearch;
use opensearch::http::Method;
use opensearch::http::headers::HeaderMap;
use opensearch::http::transport::Transport;
use serde_json::{Value, json};
use sluice_core::{BuildContext, Guarantee, Registry, Sink, SinkContext};

/// The server started by `scripts/services/opensearch.sh`. Missing = a failed test, never a skip.
pub fn url() -> String {
    std::env::var("SLUICE_TEST_OPENSEARCH_URL").expect(
        "SLUICE_TEST_OPENSEARCH_URL is not set: run `eval \"$(bash scripts/services/opensearch.sh start)\"` first",
    )
}

/// A lowercase name no other test or run uses (an index name).
pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::random();
    format!("{prefix}-{}-{n:08x}", std::process::id())
}

/// One REST call to `base`: the status and the JSON body (`null` when empty).
pub async fn call_at(base: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = OpenSearch::new(Transport::single_node(base).unwrap());
    let body = body.map(|b| serde_json::to_vec(&b).unwrap());
    let response = client
        .send(method, path, HeaderMap::new(), None::<&()>, body, None)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status_code().as_u16();
    let bytes = response.bytes().await.unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    (status, value)
}

/// One REST call to the test server.
pub async fn call(method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call_at(&url(), method, path, body).await
}

/// Create `index` with these field mappings (`{"seq": {"type": "long"}}`).
pub async fn create_index(index: &str, properties: Value) {
    let (status, body) = call(
        Method::Put,
        &format!("/{index}"),
        Some(json!({"mappings": {"properties": properties}})),
    )
    .await;
    assert!(status < 300, "creating {index}: {status} {body}");
}

/// One stored document.
#[derive(Clone, Debug)]
pub struct Doc {
    pub index: String,
    pub id: String,
    pub source: Value,
}

/// Every document of the indices `pattern` names, after a `_refresh`; `_count` must agree with
/// what `_search` returned (so nothing was cut off).
pub async fn docs(pattern: &str) -> Vec<Doc> {
    let (status, body) = call(Method::Post, &format!("/{pattern}/_refresh"), None).await;
    assert!(status < 300, "refresh {pattern}: {status} {body}");
    let (status, count) = call(Method::Get, &format!("/{pattern}/_count"), None).await;
    assert!(status < 300, "count {pattern}: {status} {count}");
    let count = count["count"].as_u64().expect("a count");
    let (status, found) = call(
        Method::Post,
        &format!("/{pattern}/_search"),
        Some(json!({"size": 10000, "query": {"match_all": {}}})),
    )
    .await;
    assert!(status < 300, "search {pattern}: {status} {found}");
    let hits: Vec<Doc> = found["hits"]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| Doc {
            index: h["_index"].as_str().unwrap().to_string(),
            id: h["_id"].as_str().unwrap().to_string(),
            source: h["_source"].clone(),
        })
        .collect();
    assert_eq!(
        hits.len() as u64,
        count,
        "_search and _count of {pattern} disagree"
    );
    hits
}

/// The registry with this crate's sink.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    sluice_connector_opensearch::register(&mut registry);
    registry
}

/// Build the sink from TOML as a job file would (job `job`), without opening it.
pub fn build(job: &str, toml_src: &str) -> Box<dyn Sink> {
    let table: toml::Table = toml::from_str(toml_src).unwrap();
    let ctx = BuildContext::new(job, ".", ".", Guarantee::AtLeastOnce);
    match registry().sink("opensearch").unwrap().build(table, &ctx) {
        Ok(sink) => sink,
        Err(e) => panic!("{}: {}", e.path, e.message),
    }
}

pub fn ctx(job: &str) -> SinkContext {
    SinkContext {
        job: job.into(),
        sink: "opensearch".into(),
        guarantee: Guarantee::AtLeastOnce,
    }
}

/// Build and open the sink.
pub async fn open(job: &str, toml_src: &str) -> Box<dyn Sink> {
    let mut sink = build(job, toml_src);
    sink.open(&ctx(job))
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    sink
}
