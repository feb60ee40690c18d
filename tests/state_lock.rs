//! Two processes must not run the same job: the second would commit positions the first has
//! not made durable.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_second_run_of_the_same_job_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        "api_version = 1\nname = \"slow\"\n[source]\ntype = \"datagen\"\nrate = 200.0\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let mut first = spawn_run(&job);
    // Wait until the first run holds the lock (its state directory appears).
    let lock = dir.path().join(".sluice/slow/offsets.db");
    let start = std::time::Instant::now();
    while !lock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "first run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut second = spawn_run(&job);
    let status = wait_with_deadline(&mut second, Duration::from_secs(30));
    let err = stderr_of(&mut second);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("another process is running this job"), "{err}");
    signal(&first, "TERM");
    assert!(wait_with_deadline(&mut first, Duration::from_secs(30)).success());
}
