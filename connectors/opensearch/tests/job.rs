//! The sink inside a real job (the core runtime, a `mem` source): items the cluster throttles
//! are sent again by the runtime, alone, until written; items it refuses go to the dead-letter
//! sink (here an `opensearch` sink on the test server, `SLUICE_TEST_OPENSEARCH_URL`) with the
//! cluster's reason. The main sink talks to a canned-response server (`common::canned`), since
//! the emulator never throttles.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use common::canned::{Canned, root};
use common::{docs, unique, url};
use serde_json::{Value, json};
use sluice_core::testing::MemSourceConnector;
use sluice_core::{Pipeline, job::load_job_str};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_job_retries_throttled_items_alone_and_dead_letters_refused_ones_canned() {
    // seq % 10 == 7: refused for good (400); seq % 4 == 1: throttled (429) the first time.
    let throttled: Arc<Mutex<HashSet<String>>> = Arc::default();
    let first_time = throttled.clone();
    let canned = Canned::start(move |r, _| {
        if r.path == "/" {
            return (200, root("opensearch", "3.0.0"));
        }
        let items: Vec<Value> = r
            .documents()
            .into_iter()
            .map(|(id, doc)| {
                let seq = doc["seq"].as_u64().unwrap();
                let status = if seq % 10 == 7 {
                    400
                } else if seq % 4 == 1 && first_time.lock().insert(id.clone()) {
                    429
                } else {
                    201
                };
                let mut item = json!({"_index": "main", "_id": id, "status": status});
                if status == 400 {
                    item["error"] = json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [seq]"});
                } else if status == 429 {
                    item["error"] = json!({"type": "es_rejected_execution_exception", "reason": "queue full"});
                }
                json!({"index": item})
            })
            .collect();
        (200, json!({"took": 1, "errors": true, "items": items}).to_string())
    })
    .await;
    let dlq = unique("dlq");
    let dir = std::env::temp_dir().join(unique("os-job"));
    std::fs::create_dir_all(&dir).unwrap();
    let job = format!(
        r#"
api_version = 1
name = "osjob"
[delivery]
guarantee = "at-least-once"
[source]
type = "mem"
count = 40
batch = 10
[[sinks]]
type = "opensearch"
url = "{canned}"
index = "main"
batch = {{ max_records = 10, max_wait = "20ms" }}
retry = {{ initial_backoff = "10ms", max_backoff = "50ms" }}
[errors]
tolerance = "all"
dead_letter = {{ type = "opensearch", url = "{real}", index = "{dlq}" }}
"#,
        canned = canned.url,
        real = url(),
    );
    let mut registry = common::registry();
    registry.register_source::<MemSourceConnector>();
    let loaded = load_job_str(&job, "job.toml", &dir, Some(&dir.join("state")), &registry)
        .unwrap_or_else(|e| panic!("{e}"));
    let report = Pipeline::new(loaded, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.records_in, 40);

    // How often each seq was sent, and what the server answered the last time.
    let mut sent: BTreeMap<u64, u32> = BTreeMap::new();
    for r in canned.to("/_bulk") {
        for (_, doc) in r.documents() {
            *sent.entry(doc["seq"].as_u64().unwrap()).or_default() += 1;
        }
    }
    for seq in 0..40u64 {
        let want = if seq % 4 == 1 && seq % 10 != 7 { 2 } else { 1 };
        assert_eq!(
            sent.get(&seq),
            Some(&want),
            "seq {seq} sent {:?} times",
            sent.get(&seq)
        );
    }
    let dead = docs(&dlq).await;
    let mut dead_seqs: Vec<u64> = dead
        .iter()
        .map(|d| {
            let reason = d.source["reason"].as_str().unwrap_or_default();
            assert!(
                reason.starts_with("400 mapper_parsing_exception"),
                "{}",
                d.source
            );
            let value: Value =
                serde_json::from_str(d.source["record"]["value"].as_str().unwrap()).unwrap();
            value["seq"].as_u64().unwrap()
        })
        .collect();
    dead_seqs.sort();
    assert_eq!(dead_seqs, vec![7, 17, 27, 37]);
    assert_eq!(
        throttled.lock().len(),
        8,
        "1, 5, 9, 13, 21, 25, 29, 33 throttled once each (17 and 37 are refused first)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
