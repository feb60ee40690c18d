//! A file source's partition is the file, not the spelling of its path: a respelled path or a
//! moved job sends nothing again, and a file replaced, rotated or truncated is read from its
//! start instead of at the old file's offset.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn eos_job(path: &str) -> String {
    format!(
        "api_version = 1\nname = \"ident\"\n[delivery]\nguarantee = \"exactly-once\"\n[source]\ntype = \"file\"\npath = \"{path}\"\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n"
    )
}

fn run_to_end(job: &Path) -> String {
    let mut child = spawn_run(job);
    let status = wait_with_deadline(&mut child, Duration::from_secs(120));
    let stderr = stderr_of(&mut child);
    assert!(status.success(), "run failed: {stderr}");
    stderr
}

#[test]
fn respelling_the_path_or_moving_the_job_sends_nothing_again() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a");
    std::fs::create_dir(&dir).unwrap();
    generate_input(&dir, "in.jsonl", 20_000);
    let job = write_job(&dir, "job.toml", &eos_job("in.jsonl"));
    run_to_end(&job);
    write_job(&dir, "job.toml", &eos_job("./in.jsonl"));
    run_to_end(&job);
    let (counts, _) = seq_counts(&dir.join("out.jsonl"));
    assert_eq!(assert_all_present(&counts, 20_000), 0, "after ./in.jsonl");
    let moved = root.path().join("b");
    std::fs::rename(&dir, &moved).unwrap();
    run_to_end(&moved.join("job.toml"));
    let (counts, _) = seq_counts(&moved.join("out.jsonl"));
    assert_eq!(
        assert_all_present(&counts, 20_000),
        0,
        "after moving the job"
    );
}

fn write_lines(path: &Path, tag: &str, seqs: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for seq in seqs {
        writeln!(f, "{{\"seq\":{seq},\"tag\":\"{tag}\"}}").unwrap();
    }
}

/// (tag, seq) → deliveries in a JSON-lines file.
fn tagged(path: &Path) -> BTreeMap<(String, u64), u32> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            v["tag"].as_str().unwrap().to_string(),
            v["seq"].as_u64().unwrap(),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

fn expect(tag: &str, seqs: std::ops::Range<u64>) -> Vec<(String, u64)> {
    seqs.map(|s| (tag.to_string(), s)).collect()
}

#[test]
fn a_file_replaced_while_stopped_is_read_whole_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_lines(&input, "old", 0..1_000);
    let job = write_job(
        dir.path(),
        "job.toml",
        "api_version = 1\nname = \"replace\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n[errors]\ntolerance = \"all\"\n",
    );
    run_to_end(&job);
    let next = dir.path().join("next.jsonl");
    write_lines(&next, "new", 0..2_000);
    std::fs::rename(&next, &input).unwrap();
    let stderr = run_to_end(&job);
    let got = tagged(&dir.path().join("out.jsonl"));
    let mut want = expect("new", 0..2_000);
    want.extend(expect("old", 0..1_000));
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), want);
    assert!(got.values().all(|n| *n == 1), "duplicates");
    assert!(
        stderr.contains("WARN")
            && stderr.contains("no position for this file")
            && stderr.contains("file:"),
        "no warning naming the old partition: {stderr}"
    );
}

fn follow_job(dir: &Path) -> std::path::PathBuf {
    write_job(
        dir,
        "job.toml",
        r#"
api_version = 1
name = "tail"
[delivery]
commit_interval = "50ms"
[source]
type = "file"
path = "app.log"
follow = true
poll_interval = "20ms"
[[sinks]]
type = "file"
path = "out.jsonl"
batch = { max_wait = "20ms" }
"#,
    )
}

fn wait_for(out: &Path, n: usize) {
    let start = Instant::now();
    loop {
        let got = tagged(out).len();
        if got >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "only {got} of {n} records arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(child: &mut std::process::Child) {
    signal(child, "TERM");
    let status = wait_with_deadline(child, Duration::from_secs(30));
    assert!(status.success(), "{}", stderr_of(child));
}

#[test]
fn following_a_truncated_then_rotated_file_loses_nothing_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.log");
    let out = dir.path().join("out.jsonl");
    write_lines(&app, "a", 0..10);
    let job = follow_job(dir.path());
    let mut child = spawn_run(&job);
    wait_for(&out, 10);
    // `: > app.log`, then 30 new lines.
    std::fs::write(&app, "").unwrap();
    write_lines(&app, "b", 0..30);
    wait_for(&out, 40);
    // Rotation by rename: the writer finishes the old file, a new one starts.
    std::fs::rename(&app, dir.path().join("app.log.1")).unwrap();
    write_lines(&dir.path().join("app.log.1"), "b", 30..35);
    write_lines(&app, "c", 0..30);
    wait_for(&out, 75);
    stop(&mut child);
    // Truncated while stopped: the restart reads it from the start, it does not fail.
    std::fs::write(&app, "").unwrap();
    write_lines(&app, "d", 0..5);
    let mut child = spawn_run(&job);
    wait_for(&out, 80);
    stop(&mut child);
    let got = tagged(&out);
    let mut want = expect("a", 0..10);
    want.extend(expect("b", 0..35));
    want.extend(expect("c", 0..30));
    want.extend(expect("d", 0..5));
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), want);
    assert!(got.values().all(|n| *n == 1), "duplicates: {got:?}");
}
