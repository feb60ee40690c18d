//! Exactly-once with a sink that (almost) never receives anything: its checkpoint must still
//! move, or every restart replays the job from the start and writes its dead letters again.
//! file → file archive + a file sink whose `when` never matches, with malformed input lines
//! dead-lettered; kill -9 at random moments, restart, then run the finished job once more.

mod common;

use std::collections::BTreeMap;

use common::*;

const RECORDS: u64 = 200_000;
/// One malformed line after every this many records.
const BAD_EVERY: u64 = 1_000;

#[test]
fn idle_sink_and_dead_letters_survive_kill_nine_without_replays() {
    let dir = tempfile::tempdir().unwrap();
    let good = generate_input(dir.path(), "good.jsonl", RECORDS);
    let mut input = String::new();
    let mut bad = 0u64;
    for (i, line) in std::fs::read_to_string(&good).unwrap().lines().enumerate() {
        input.push_str(line);
        input.push('\n');
        if (i as u64 + 1).is_multiple_of(BAD_EVERY) {
            input.push_str(&format!("not json #{bad}\n"));
            bad += 1;
        }
    }
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "rare"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
read_size = "16KiB"
[[sinks]]
name = "archive"
type = "file"
path = "out/archive.jsonl"
batch = { max_records = 100, max_wait = "20ms" }
[[sinks]]
name = "alerts"
type = "file"
path = "out/alerts.jsonl"
when = { header = "route", equals = "alert" }
[errors]
tolerance = "all"
dead_letter = { type = "file", path = "out/dlq.jsonl" }
"#,
    );
    let kills = run_with_kills(&job, 12);
    assert!(kills >= 10, "only {kills} kills landed mid-run");

    let (counts, corrupt) = seq_counts(&dir.path().join("out/archive.jsonl"));
    assert!(
        corrupt.is_empty(),
        "corrupt lines: {:?}",
        &corrupt[..corrupt.len().min(3)]
    );
    let duplicates = assert_all_present(&counts, RECORDS);
    assert_eq!(duplicates, 0, "{duplicates} duplicates after {kills} kills");
    let alerts = std::fs::read_to_string(dir.path().join("out/alerts.jsonl")).unwrap_or_default();
    assert!(alerts.is_empty(), "nothing matches the alerts route");
    assert_each_dead_letter_once(&dir.path().join("out/dlq.jsonl"), bad);

    // The finished job, run again, reads nothing: every sink's checkpoint is at the end.
    let out = sluice()
        .env("SLUICE_LOG", "info")
        .args(["--log-format", "json", "run", "--no-progress"])
        .arg(&job)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let finished = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "Job finished.")
        .expect("a `Job finished.` log line");
    assert_eq!(
        finished["fields"]["records_in"], 0,
        "the re-run read records again: {finished}"
    );
    assert_each_dead_letter_once(&dir.path().join("out/dlq.jsonl"), bad);
    println!(
        "rare route, exactly-once: {kills} kill -9s, {RECORDS} records and {bad} dead letters, each once; re-run read nothing"
    );
}

/// The dead-letter file holds each malformed line `not json #0` … `#(bad-1)` exactly once.
fn assert_each_dead_letter_once(path: &std::path::Path, bad: u64) {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON envelope");
        let value = v["record"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *seen.entry(value).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        twice.is_empty(),
        "dead letters written more than once: {twice:?}"
    );
    for k in 0..bad {
        assert!(
            seen.contains_key(&format!("not json #{k}")),
            "dead letter #{k} missing"
        );
    }
    assert_eq!(seen.len() as u64, bad, "unexpected dead letters");
}
