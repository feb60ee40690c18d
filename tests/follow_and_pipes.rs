//! `follow` mode picks up lines appended later; stdin → stdout works as a filter in a pipe.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn follow_mode_reads_appended_lines_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"seq\":0}\n{\"seq\":1}\n").unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "tail"
[delivery]
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
follow = true
poll_interval = "20ms"
[[sinks]]
type = "file"
path = "out.jsonl"
batch = { max_wait = "20ms" }
"#,
    );
    let out = dir.path().join("out.jsonl");
    let wait_for = |n: usize| {
        let start = Instant::now();
        loop {
            let (counts, _) = seq_counts(&out);
            if counts.len() >= n {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "only {} of {n} records arrived",
                counts.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut child = spawn_run(&job);
    wait_for(2);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    // Half a line first: it must wait for the rest.
    f.write_all(b"{\"seq\":2}\n{\"se").unwrap();
    f.flush().unwrap();
    wait_for(3);
    f.write_all(b"q\":3}\n").unwrap();
    f.flush().unwrap();
    wait_for(4);
    signal(&child, "TERM");
    assert!(wait_with_deadline(&mut child, Duration::from_secs(30)).success());
    // Appended while stopped: picked up after the restart, nothing read twice.
    f.write_all(b"{\"seq\":4}\n").unwrap();
    let mut child = spawn_run(&job);
    wait_for(5);
    signal(&child, "TERM");
    assert!(wait_with_deadline(&mut child, Duration::from_secs(30)).success());
    let (counts, bad) = seq_counts(&out);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(assert_all_present(&counts, 5), 0);
}

#[test]
fn stdin_to_stdout_is_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        "api_version = 1\nname = \"pipe\"\n[source]\ntype = \"stdin\"\n[[sinks]]\ntype = \"stdout\"\n",
    );
    let mut child = sluice()
        .args(["run", job.to_str().unwrap(), "--no-progress"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..1000 {
            writeln!(stdin, "{{\"seq\":{i}}}").unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1000);
    assert_eq!(lines[999], "{\"seq\":999}");
}
