//! `--shutdown-timeout`: a SIGTERM while a sink keeps failing drains for at most the timeout,
//! says what it waits on, then exits 130 with positions at the last commit (a restart resumes
//! there); without a failing sink the same signal drains and exits 0 at once.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn job(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    write_job(
        dir,
        "job.toml",
        &format!(
            r#"
api_version = 1
name = "grace"
[source]
type = "datagen"
rate = 100
[[sinks]]
name = "hook"
type = "http"
url = "{url}"
"#
        ),
    )
}

#[test]
fn a_drain_stuck_on_a_failing_sink_ends_at_the_timeout_naming_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), &webhook_always_503());
    let mut child = sluice()
        .arg("run")
        .arg(&job)
        .args(["--no-progress", "--shutdown-timeout", "3s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the sink fail a few times first.
    std::thread::sleep(Duration::from_secs(3));
    let signalled = Instant::now();
    signal(&child, "TERM");
    let status = wait_with_deadline(&mut child, Duration::from_secs(30));
    let waited = signalled.elapsed();
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(10),
        "exited {waited:?} after the signal\n{err}"
    );
    assert!(err.contains("Shutdown timeout passed"), "{err}");
    assert!(err.contains("sink `hook`"), "the log names the sink: {err}");
    assert!(err.contains("503"), "and why it fails: {err}");
}
