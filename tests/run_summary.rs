//! What `sluice run` tells a person when a job ends: one summary block with the time, what was
//! read, what each sink wrote and where, dead letters and where they went; a re-run of a
//! finished bounded job says there was nothing new; checkpoints in logs read as positions.

mod common;

use std::path::Path;

use common::*;

/// 1000 lines, every 100th (from 7) malformed: 990 records and 10 dead letters.
fn job(dir: &Path) -> std::path::PathBuf {
    let mut text = String::new();
    for i in 0..1000 {
        if i % 100 == 7 {
            text.push_str(&format!("{{\"seq\": {i}, broken\n"));
        } else {
            text.push_str(&format!("{{\"seq\":{i}}}\n"));
        }
    }
    std::fs::write(dir.join("in.jsonl"), text).unwrap();
    write_job(
        dir,
        "job.toml",
        r#"
api_version = 1
name = "summary"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
name = "archive"
type = "file"
path = "out/archive.jsonl"
[[sinks]]
name = "alerts"
type = "file"
path = "out/alerts.jsonl"
when = { header = "route", equals = "alert" }
[errors]
tolerance = "all"
dead_letter = { type = "file", path = "out/dlq.jsonl" }
"#,
    )
}

fn run_job(job: &Path, extra: &[&str]) -> (bool, String) {
    let out = sluice()
        .args(extra)
        .arg("run")
        .arg("--no-progress")
        .arg(job)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_summary_says_what_each_sink_wrote_and_where_and_a_rerun_that_there_is_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path());
    let out = std::fs::canonicalize(dir.path()).unwrap().join("out");

    let (ok, err) = run_job(&job, &[]);
    assert!(ok, "{err}");
    assert!(
        !err.contains('\x1b'),
        "no terminal escapes in a pipe: {err:?}"
    );
    assert!(
        err.contains("Job \"summary\" finished in ") && err.contains(": read 1000 records ("),
        "{err}"
    );
    // Per sink, not the minimum over sinks: the routed sink got nothing, the archive everything.
    let archive = format!(
        "  archive  wrote 990 to {}\n",
        out.join("archive.jsonl").display()
    );
    assert!(err.contains(&archive), "{archive:?} missing from\n{err}");
    let alerts = format!(
        "  alerts   wrote   0 to {} (only records with header route = \"alert\")\n",
        out.join("alerts.jsonl").display()
    );
    assert!(err.contains(&alerts), "{alerts:?} missing from\n{err}");
    let dead = format!(
        "dropped by transforms 0 · dead-lettered 10 to {}\n",
        out.join("dlq.jsonl").display()
    );
    assert!(err.contains(&dead), "{dead:?} missing from\n{err}");
    assert_eq!(err.matches("finished in").count(), 1, "one summary: {err}");

    // The input is read to its end: a second run says so, and how to start over.
    let (ok, err) = run_job(&job, &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains("Nothing new to read: job \"summary\" already read its input up to file:"),
        "{err}"
    );
    assert!(err.contains("@"), "the position read up to: {err}");
    assert!(
        err.contains(&format!("sluice reset {} --yes", job.display())),
        "{err}"
    );
    assert!(!err.contains("finished in"), "no bland summary: {err}");
}

#[test]
fn json_logs_carry_the_summary_and_readable_checkpoints_and_no_text_block() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path());
    let json_run = |job: &Path| {
        let out = sluice()
            .env("SLUICE_LOG", "info")
            .args(["--log-format", "json", "run", "--no-progress"])
            .arg(job)
            .output()
            .unwrap();
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        for line in err.lines() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "not a JSON line: {line:?}"
            );
        }
        let events: Vec<serde_json::Value> = err
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        events
    };
    let first = json_run(&job);
    let finished = first
        .iter()
        .find(|v| v["fields"]["message"] == "Job finished.")
        .expect("a `Job finished.` event");
    let f = &finished["fields"];
    assert_eq!(f["records_in"], 1000, "{finished}");
    assert_eq!(f["records_out"], "archive=990,alerts=0", "{finished}");
    assert_eq!(f["dead_lettered"], 10, "{finished}");
    assert!(
        f["dead_letter_to"].as_str().unwrap().ends_with("dlq.jsonl"),
        "{finished}"
    );
    assert!(
        f["destinations"]
            .as_str()
            .unwrap()
            .contains("archive.jsonl"),
        "{finished}"
    );
    assert_eq!(f["interrupted"], false, "{finished}");
    assert_eq!(f["nothing_new"], false, "{finished}");

    let second = json_run(&job);
    let resuming = second
        .iter()
        .find(|v| v["fields"]["message"] == "Resuming from checkpoint.")
        .expect("a `Resuming from checkpoint.` event");
    let cp = resuming["fields"]["checkpoint"].as_str().unwrap();
    assert!(
        cp.starts_with("file:") && cp.contains('@') && !cp.contains("Int("),
        "a readable position: {cp}"
    );
    let finished = second
        .iter()
        .find(|v| v["fields"]["message"] == "Job finished.")
        .unwrap();
    assert_eq!(finished["fields"]["nothing_new"], true, "{finished}");
    assert_eq!(finished["fields"]["resumed_from"], cp, "{finished}");
}
