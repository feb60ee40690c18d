//! A SIGTERM that arrives while `sluice run` is still loading its job (before the pipeline
//! starts) stops it cleanly, exit 0 — it does not kill the process.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

#[test]
fn sigterm_while_the_job_loads_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", 100);
    // The job file reads its source path from a FIFO: loading blocks until the test writes,
    // which pins the moment the signal arrives to the loading phase.
    let gate = dir.path().join("gate");
    let made = std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap();
    assert!(made.success());
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "early"
[source]
type = "file"
path = "${file:gate}"
[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    let mut child = spawn_run(&job);
    // Opening a FIFO for writing returns once the reader (sluice, loading the job) opened it.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = gate.clone();
    std::thread::spawn(move || {
        let f = std::fs::OpenOptions::new().write(true).open(&path);
        let _ = tx.send(f);
    });
    let mut writer = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("sluice opens the gate while loading")
        .unwrap();
    signal(&child, "TERM");
    // The signal is delivered before sluice returns to user space: it cannot load on first.
    let _ = writer.write_all(b"in.jsonl\n");
    drop(writer);
    let status = wait_with_deadline(&mut child, Duration::from_secs(30));
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(0), "exit status {status:?}: {err}");
    // Nothing was read; a later run delivers everything.
    let mut again = spawn_run(&job);
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&gate).unwrap();
        f.write_all(b"in.jsonl\n").unwrap();
    });
    assert!(wait_with_deadline(&mut again, Duration::from_secs(30)).success());
    writer.join().unwrap();
    let (counts, _) = seq_counts(&dir.path().join("out.jsonl"));
    assert_all_present(&counts, 100);
}
