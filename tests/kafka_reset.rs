#![cfg(feature = "kafka")]
//! `sluice reset` on an exactly-once job into Kafka: the sink's checkpoint lives in its progress
//! topic, so a reset must move it there too, or the re-run would skip everything.

mod kafka_support;

use std::path::Path;

use kafka_support::*;

const RECORDS: u64 = 2_000;

fn run_to_end(job: &Path) {
    let out = sluice()
        .arg("run")
        .arg(job)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reset_rewinds_the_checkpoint_in_the_kafka_progress_topic() {
    let b = brokers();
    let dir = tempfile::tempdir().unwrap();
    let (topic, name) = (unique("reset-out"), unique("reset"));
    create_topic(&b, &topic, 2);
    let job = write(
        dir.path(),
        "job.toml",
        &format!(
            r#"api_version = 1
name = "{name}"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "datagen"
count = {RECORDS}
[[sinks]]
type = "kafka"
brokers = "{b}"
topic = "{topic}"
transaction_timeout = "10s"
batch = {{ max_records = 500 }}
"#
        ),
    );
    run_to_end(&job);
    // A re-run of the finished job resumes at its end: nothing more is written.
    run_to_end(&job);
    let once = topic_seqs(&b, &topic);
    assert_eq!(once.len() as u64, RECORDS);
    assert!(
        once.values().all(|c| *c == 1),
        "a re-run without reset wrote again"
    );

    let out = sluice()
        .args(["reset", "--yes"])
        .arg(&job)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reset failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_to_end(&job);
    let twice = topic_seqs(&b, &topic);
    assert_eq!(twice.len() as u64, RECORDS);
    assert!(
        twice.values().all(|c| *c == 2),
        "after the reset every record is written again, once"
    );
}
