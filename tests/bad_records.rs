//! Malformed records: dead-lettered with `tolerance = "all"`, or the job stops with
//! `tolerance = "none"` without committing past them. Nothing is skipped silently.

mod common;

use std::time::Duration;

use common::*;

fn input(dir: &std::path::Path) {
    let mut text = String::new();
    for i in 0..1000 {
        if i % 100 == 7 {
            text.push_str(&format!("{{\"seq\": {i}, broken\n"));
        } else {
            text.push_str(&format!("{{\"seq\":{i}}}\n"));
        }
    }
    std::fs::write(dir.join("in.jsonl"), text).unwrap();
}

#[test]
fn malformed_lines_go_to_the_dead_letter_file_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path());
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "dlq"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "file"
path = "out.jsonl"
[errors]
tolerance = "all"
dead_letter = { type = "file", path = "dlq.jsonl" }
"#,
    );
    run_job_ok(&job, Duration::from_secs(60));
    let (counts, _) = seq_counts(&dir.path().join("out.jsonl"));
    assert_eq!(counts.len(), 990);
    let dlq = std::fs::read_to_string(dir.path().join("dlq.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = dlq
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 10);
    let first = &entries[0];
    assert_eq!(first["stage"], "source");
    assert_eq!(first["record"]["value"], "{\"seq\": 7, broken");
    let reason = first["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("invalid JSON at byte ") && reason.contains("in.jsonl: "),
        "{first}"
    );
    // The partition is the file's identity, not its path (README: "Partition identity").
    assert!(
        first["position"]["partition"]
            .as_str()
            .unwrap()
            .starts_with("file:"),
        "{first}"
    );
    assert!(first["time_ms"].as_i64().unwrap() > 0);
    // Every input record is accounted for: written or dead-lettered.
    assert_eq!(counts.len() + entries.len(), 1000);
}

#[test]
fn tolerance_none_stops_at_the_bad_record_and_does_not_commit_past_it() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path());
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "strict"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    for _ in 0..2 {
        let mut child = spawn_run(&job);
        let status = wait_with_deadline(&mut child, Duration::from_secs(60));
        let err = stderr_of(&mut child);
        // Exit code 3: a data fault. The failure is reported once, with whose fault it is.
        assert_eq!(status.code(), Some(3), "{err}");
        assert_eq!(err.matches("bad record at ").count(), 1, "{err}");
        assert!(err.contains("kind=data"), "{err}");
        assert!(err.contains("in source: invalid JSON at byte "), "{err}");
        assert!(
            err.contains("errors.tolerance = \"none\" stops the job"),
            "{err}"
        );
    }
    // The second run hit the same record again: its position was never committed.
    let (counts, _) = seq_counts(&dir.path().join("out.jsonl"));
    assert!(!counts.contains_key(&7));
}

#[test]
fn a_sink_that_cannot_open_fails_the_job_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path());
    std::fs::write(
        dir.path().join("blocker"),
        "a file where a directory should be",
    )
    .unwrap();
    let job_text = |path: &str| {
        format!(
            "api_version = 1\nname = \"down\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n[[sinks]]\ntype = \"file\"\npath = \"{path}\"\n[errors]\ntolerance = \"all\"\ndead_letter = {{ type = \"file\", path = \"dlq.jsonl\" }}\n"
        )
    };
    let job = write_job(dir.path(), "job.toml", &job_text("blocker/out.jsonl"));
    let mut child = spawn_run(&job);
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    let err = stderr_of(&mut child);
    // Exit code 4: an external fault that waiting will not fix.
    assert_eq!(status.code(), Some(4), "{err}");
    assert_eq!(
        err.matches("sink `file` failed: opening ").count(),
        1,
        "{err}"
    );
    // Fix the destination: the job starts from the beginning, nothing was lost.
    write_job(dir.path(), "job.toml", &job_text("fixed/out.jsonl"));
    let mut child = spawn_run(&job);
    assert!(wait_with_deadline(&mut child, Duration::from_secs(60)).success());
    let (counts, _) = seq_counts(&dir.path().join("fixed/out.jsonl"));
    assert_eq!(counts.len(), 990);
}

/// A plugin that loops forever on one record of a 1,000-line file (read in one batch): the
/// batch is narrowed down, so only that record is dead-lettered (with the deadline error) and
/// the other 999 are written.
#[test]
fn a_poison_record_is_dead_lettered_alone_not_with_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..1000)
        .map(|i| {
            if i == 613 {
                format!("{{\"seq\":{i},\"note\":\"loop\"}}\n")
            } else {
                format!("{{\"seq\":{i}}}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), text).unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        &format!(
            r#"
api_version = 1
name = "poison"
[source]
type = "file"
path = "in.jsonl"
[[transforms]]
plugin = "{root}/plugins/dist/infinite-loop.wasm"
limits = {{ deadline = "200ms" }}
[[sinks]]
type = "file"
path = "out.jsonl"
[errors]
tolerance = "all"
dead_letter = {{ type = "file", path = "dlq.jsonl" }}
"#,
            root = env!("CARGO_MANIFEST_DIR")
        ),
    );
    run_job_ok(&job, Duration::from_secs(120));
    let (counts, _) = seq_counts(&dir.path().join("out.jsonl"));
    assert_eq!(counts.len(), 999, "every other record is written");
    assert!(!counts.contains_key(&613));
    let dlq = std::fs::read_to_string(dir.path().join("dlq.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = dlq
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{dlq}");
    assert_eq!(entries[0]["stage"], "transform:infinite-loop");
    assert!(
        entries[0]["reason"].as_str().unwrap().contains("deadline"),
        "{}",
        entries[0]
    );
}
