//! The sink inside a real job against a Kinesis endpoint (`SLUICE_TEST_KINESIS_ENDPOINT`): a
//! file source with one record over 1 MiB among normal ones; the big one goes to the dead-letter
//! file with `RecordTooLarge`, every other record lands in the stream exactly once, keyed by
//! the configured field.

mod common;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sluice_core::{Pipeline, Registry, job::load_job_str};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn an_oversized_record_goes_to_the_dead_letter_and_the_rest_are_written_once() {
    let client = common::client().await;
    let stream = common::unique("sink");
    common::create_stream(&client, &stream, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..40u64 {
        let note = if i == 17 {
            "x".repeat(1024 * 1024)
        } else {
            "ok".into()
        };
        lines.push(
            json!({"key": format!("k{i}"), "device": format!("dev-{}", i % 4), "note": note})
                .to_string(),
        );
    }
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let job = format!(
        r#"
api_version = 1
name = "kinesis-sink"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "kinesis"
stream = "{stream}"
endpoint = "{endpoint}"
region = "{region}"
partition_key = {{ field = "device" }}
batch = {{ max_records = 16 }}
[errors]
tolerance = "all"
dead_letter = {{ type = "file", path = "dlq.jsonl" }}
"#,
        endpoint = common::endpoint(),
        region = common::region(),
    );
    let mut registry = Registry::new();
    sluice_connector_kinesis::register(&mut registry);
    sluice_connector_file::register(&mut registry);
    let loaded = load_job_str(
        &job,
        "job.toml",
        dir.path(),
        Some(&dir.path().join("state")),
        &registry,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let report = Pipeline::new(loaded, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.records_in, 40);

    let dead = std::fs::read_to_string(dir.path().join("dlq.jsonl")).unwrap();
    let dead: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("RecordTooLarge"), "{reason}");

    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for (_, partition_key, data) in common::read_all(&client, &stream).await {
        let v: Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(
            v["device"].as_str().unwrap(),
            partition_key,
            "keyed by the field"
        );
        *counts
            .entry(v["key"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let want: BTreeMap<String, u32> = (0..40u64)
        .filter(|i| *i != 17)
        .map(|i| (format!("k{i}"), 1))
        .collect();
    assert_eq!(counts, want, "every other record exactly once");
}
