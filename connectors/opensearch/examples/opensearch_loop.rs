//! The baseline of the datagen → OpenSearch benchmark (`bench/opensearch/run.sh`): a plain
//! `opensearch` crate bulk loop on the same server, with the same records and the same care as
//! the sink (ids from the record's position, every response read, a failed item is fatal).
//!
//! ```text
//! opensearch_loop URL INDEX RECORDS
//!     generate RECORDS datagen readings (seed 42, the `datagen` source's defaults) in
//!     10,000-record slices, index each slice with one _bulk request, check every item.
//!     Prints `seconds=S records=N rate=R`.
//! ```

use std::time::Instant;

use opensearch::OpenSearch;
use opensearch::http::Method;
use opensearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use opensearch::http::transport::Transport;
use sluice_core::{BuildContext, Guarantee, Registry};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: opensearch_loop URL INDEX RECORDS");
        std::process::exit(2);
    }
    let (url, index, records) = (&args[1], &args[2], args[3].parse::<u64>().unwrap());
    let mut registry = Registry::new();
    sluice_connector_file::register(&mut registry);
    let table: toml::Table =
        toml::from_str(&format!("count = {records}\nbatch_size = 10000")).unwrap();
    let ctx = BuildContext::new("bench", ".", ".", Guarantee::AtLeastOnce);
    let mut source = match registry.source("datagen").unwrap().build(table, &ctx) {
        Ok(s) => s,
        Err(e) => panic!("{}", e.message),
    };
    source.open(None).await.unwrap();
    let client = OpenSearch::new(Transport::single_node(url).unwrap());
    let started = Instant::now();
    let mut done = 0u64;
    while let Some(batch) = source.next_batch().await.unwrap() {
        let mut body = Vec::with_capacity(batch.records.len() * 320);
        for r in &batch.records {
            let id = format!("bench/{}/{}", r.position.partition, r.position.offset);
            body.extend_from_slice(b"{\"index\":{\"_index\":");
            serde_json::to_writer(&mut body, index.as_str()).unwrap();
            body.extend_from_slice(b",\"_id\":");
            serde_json::to_writer(&mut body, &id).unwrap();
            body.extend_from_slice(b"}}\n");
            body.extend_from_slice(&r.value);
            body.push(b'\n');
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        let response = client
            .send(
                Method::Post,
                "/_bulk",
                headers,
                None::<&()>,
                Some(body),
                None,
            )
            .await
            .unwrap();
        assert!(response.status_code().is_success());
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["errors"], false, "an item failed: {answer}");
        done += batch.records.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seconds={secs:.3} records={done} rate={:.0}",
        done as f64 / secs
    );
}
