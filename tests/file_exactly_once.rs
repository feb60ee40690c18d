//! The exactly-once proof for file → file: kill -9 at random moments, restart, and check that
//! the sink holds every record exactly once.

mod common;

use std::time::Duration;

use common::*;

const RECORDS: u64 = 200_000;

#[test]
fn kill_nine_and_restart_neither_loses_nor_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", RECORDS);
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "eos"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
read_size = "16KiB"
[[sinks]]
type = "file"
path = "out/out.jsonl"
rotate_bytes = "4MiB"
batch = { max_records = 100, max_wait = "20ms" }
"#,
    );
    let kills = run_with_kills(&job, 10);
    assert!(kills >= 5, "only {kills} kills landed mid-run");
    let (counts, bad) = seq_counts(&dir.path().join("out/out.jsonl"));
    assert!(
        bad.is_empty(),
        "corrupt lines: {:?}",
        &bad[..bad.len().min(3)]
    );
    let duplicates = assert_all_present(&counts, RECORDS);
    assert_eq!(
        duplicates, 0,
        "exactly-once wrote {duplicates} duplicates after {kills} kills"
    );
    // Run again: everything is committed, nothing new is written.
    let mut again = spawn_run(&job);
    assert!(wait_with_deadline(&mut again, Duration::from_secs(60)).success());
    let (counts, _) = seq_counts(&dir.path().join("out/out.jsonl"));
    assert_eq!(counts.values().map(|c| u64::from(*c)).sum::<u64>(), RECORDS);
    println!(
        "file → file exactly-once: {kills} kill -9s, {RECORDS} records, none lost, none duplicated"
    );
}
