#![cfg(feature = "opensearch")]
//! The crash proof for datagen → OpenSearch through the `sluice` binary: `kill -9` the job at
//! random moments (10 times), restart it each time, then read every document back. The sink is
//! at-least-once, but its default document `_id` is derived from the job and the record's
//! source position, so a record delivered again overwrites its document: the index must end
//! with exactly one document per input record — none lost, none twice.
//!
//! Needs `scripts/services.sh up` (SLUICE_TEST_OPENSEARCH_URL in the environment).

mod common;
mod opensearch_support;

use common::{run_with_kills, write_job};
use opensearch_support::{call, opensearch_url, seq_counts};

/// `_search` returns at most 10,000 hits in one page: the whole index is read in one call.
const RECORDS: u64 = 10_000;
const KILLS: u32 = 10;

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
