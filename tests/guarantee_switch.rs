//! Switching a job's delivery guarantee with state in place is refused with a message naming
//! the way to do it (`sluice reset`), in both directions; without prior state it just runs.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const RECORDS: u64 = 300;

fn job_with(dir: &Path, guarantee: &str) -> std::path::PathBuf {
    write_job(
        dir,
        "job.toml",
        &format!(
            r#"
api_version = 1
name = "switch"
[delivery]
guarantee = "{guarantee}"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "file"
path = "out/out.jsonl"
"#
        ),
    )
}

fn run_job(job: &Path) -> (bool, String) {
    let mut child = spawn_run(job);
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    (status.success(), stderr_of(&mut child))
}

fn lines(dir: &Path) -> usize {
    let (counts, bad) = seq_counts(&dir.join("out/out.jsonl"));
    assert!(bad.is_empty());
    counts.values().map(|c| *c as usize).sum()
}

fn switch_is_refused_until_reset(from: &str, to: &str) {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", RECORDS);
    let job = job_with(dir.path(), from);
    let (ok, err) = run_job(&job);
    assert!(ok, "{err}");
    assert_eq!(lines(dir.path()), RECORDS as usize);

    let job = job_with(dir.path(), to);
    let (ok, err) = run_job(&job);
    assert!(!ok, "a switch from {from} to {to} must be refused");
    assert!(
        err.contains(&format!(
            "asks for {to} delivery, but its positions were made with {from}"
        )) && err.contains("sluice reset"),
        "{err}"
    );
    assert_eq!(
        lines(dir.path()),
        RECORDS as usize,
        "nothing written, nothing cut"
    );

    let out = run(&["reset", job.to_str().unwrap(), "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, err) = run_job(&job);
    assert!(ok, "after a reset the switch runs: {err}");
    assert_eq!(
        lines(dir.path()),
        2 * RECORDS as usize,
        "started over, as reset warns"
    );
    // And the new guarantee sticks: another run resumes at the end.
    let (ok, err) = run_job(&job);
    assert!(ok, "{err}");
    assert_eq!(lines(dir.path()), 2 * RECORDS as usize);
}

#[test]
fn switching_at_least_once_to_exactly_once_is_refused_until_reset() {
    switch_is_refused_until_reset("at-least-once", "exactly-once");
}

#[test]
fn switching_exactly_once_to_at_least_once_is_refused_until_reset() {
    switch_is_refused_until_reset("exactly-once", "at-least-once");
}

#[test]
fn a_job_without_prior_state_runs_under_either_guarantee() {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", RECORDS);
    // A first run stopped before it committed anything leaves no positions.
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let job = job_with(dir.path(), "exactly-once");
    std::fs::rename(dir.path().join("in.jsonl"), dir.path().join("later.jsonl")).unwrap();
    std::fs::rename(dir.path().join("empty.jsonl"), dir.path().join("in.jsonl")).unwrap();
    let (ok, err) = run_job(&job);
    assert!(ok, "{err}");
    std::fs::rename(dir.path().join("later.jsonl"), dir.path().join("in.jsonl")).unwrap();
    let job = job_with(dir.path(), "at-least-once");
    let (ok, err) = run_job(&job);
    assert!(ok, "no positions yet, so no switch to refuse: {err}");
    assert_eq!(lines(dir.path()), RECORDS as usize);
}
