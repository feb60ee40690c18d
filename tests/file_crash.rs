//! The at-least-once proof for file → file: kill -9 at random moments, restart, and check that
//! every record reached the sink.

mod common;

use std::time::Duration;

use common::*;

// Enough that 10 kills land on a quiet machine with a fast disk (200,000 once gave 4).
const RECORDS: u64 = 500_000;

#[test]
fn kill_nine_and_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", RECORDS);
    // Small reads and writes with fsync make the run long enough to be killed many times.
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "crash"
[delivery]
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
read_size = "16KiB"
[[sinks]]
type = "file"
path = "out/out.jsonl"
rotate_bytes = "8MiB"
batch = { max_records = 100, max_wait = "20ms" }
"#,
    );
    let kills = run_with_kills(&job, 10);
    assert!(
        kills >= 5,
        "only {kills} kills landed mid-run; the job is too fast for this test"
    );
    let (counts, bad) = seq_counts(&dir.path().join("out/out.jsonl"));
    assert!(
        bad.is_empty(),
        "corrupt lines in the sink: {:?}",
        &bad[..bad.len().min(3)]
    );
    let duplicates = assert_all_present(&counts, RECORDS);
    println!(
        "file → file at-least-once: {kills} kill -9s, {RECORDS} records, all present, {duplicates} duplicate deliveries"
    );
}

#[test]
fn sigterm_drains_and_commits_so_restart_adds_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", 50_000);
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "drain"
[source]
type = "file"
path = "in.jsonl"
read_size = "8KiB"
[[sinks]]
type = "file"
path = "out.jsonl"
batch = { max_records = 100 }
"#,
    );
    let mut child = spawn_run(&job);
    // Interrupt once the job is writing (or has already finished).
    let out = dir.path().join("out.jsonl");
    let start = std::time::Instant::now();
    while std::fs::metadata(&out).map_or(true, |m| m.len() == 0)
        && child.try_wait().unwrap().is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the job never wrote"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let interrupted = child.try_wait().unwrap().is_none();
    if interrupted {
        signal(&child, "TERM");
    }
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    assert!(
        status.success(),
        "graceful shutdown must exit 0: {}",
        stderr_of(&mut child)
    );
    let mut again = spawn_run(&job);
    assert!(wait_with_deadline(&mut again, Duration::from_secs(120)).success());
    let (counts, _) = seq_counts(&dir.path().join("out.jsonl"));
    let duplicates = assert_all_present(&counts, 50_000);
    assert_eq!(
        duplicates, 0,
        "a drained shutdown commits everything it wrote (interrupted: {interrupted})"
    );
}

#[test]
fn a_torn_last_line_left_by_a_kill_is_cut_before_the_next_run_appends() {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", 1_000);
    // What a kill -9 inside a write leaves: whole lines, then half of one.
    let out = dir.path().join("out.jsonl");
    let input = std::fs::read_to_string(dir.path().join("in.jsonl")).unwrap();
    let mut torn: String = input.lines().take(10).map(|l| format!("{l}\n")).collect();
    let eleventh = input.lines().nth(10).unwrap();
    torn.push_str(&eleventh[..eleventh.len() / 2]);
    std::fs::write(&out, torn).unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        "api_version = 1\nname = \"torn\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let mut child = spawn_run(&job);
    assert!(wait_with_deadline(&mut child, Duration::from_secs(60)).success());
    let (counts, bad) = seq_counts(&out);
    assert!(bad.is_empty(), "corrupt lines in the sink: {bad:?}");
    assert_eq!(assert_all_present(&counts, 1_000), 10);
}
