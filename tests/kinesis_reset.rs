#![cfg(all(feature = "kinesis", feature = "file"))]
//! Kinesis positions (`<stream ARN>/<shard id>`, sequence number) through the offsets tools, on
//! the endpoint of `scripts/services.sh up kinesis` (`SLUICE_TEST_KINESIS_ENDPOINT`):
//!
//! - `sluice offsets` shows each shard's last sequence number; `sluice reset --set` moves one
//!   shard back and the next run reads exactly that shard's later records again; `sluice reset`
//!   starts everything over (the file sink's exactly-once checkpoint too).
//! - The worker's `GET /jobs/{name}/offsets` shows the same, `PATCH` moves one shard back,
//!   `DELETE` starts over.

mod common;
#[path = "../connectors/kinesis/tests/common/mod.rs"]
mod kinesis;
mod worker_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use worker_support::{Body, Worker, eventually};

const RECORDS: u64 = 200;

/// A stream with two shards holding records `{"seq": n}` for `0..RECORDS`; returns its name
/// and, per shard id, the sequence numbers of its records in order with their `seq`.
async fn fed_stream(prefix: &str) -> (String, BTreeMap<String, Vec<(String, u64)>>) {
    let client = kinesis::client().await;
    let stream = kinesis::unique(prefix);
    kinesis::create_stream(&client, &stream, 2).await;
    let records: Vec<(String, Vec<u8>)> = (0..RECORDS)
        .map(|n| {
            (
                format!("k{n}"),
                json!({ "seq": n }).to_string().into_bytes(),
            )
        })
        .collect();
    let placed = kinesis::put_placed(&client, &stream, &records).await;
    let mut shards: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for (n, (shard, seq)) in placed.into_iter().enumerate() {
        shards.entry(shard).or_default().push((seq, n as u64));
    }
    assert_eq!(shards.len(), 2, "records in both shards");
    (stream, shards)
}

/// Kinesis → JSON-lines file, exactly-once.
fn job_text(name: &str, stream: &str, out: &Path) -> String {
    format!(
        r#"api_version = 1
name = "{name}"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "kinesis"
stream = "{stream}"
endpoint = "{}"
region = "{}"
poll_interval = "100ms"
[[sinks]]
type = "file"
path = "{}"
"#,
        kinesis::endpoint(),
        kinesis::region(),
        out.display()
    )
}

/// How many times each `seq` is in the file.
fn counts(out: &Path) -> BTreeMap<u64, u32> {
    let (counts, bad) = seq_counts(out);
    assert!(bad.is_empty(), "lines without a seq: {bad:?}");
    counts
}

fn total(out: &Path) -> u64 {
    counts(out).values().map(|c| u64::from(*c)).sum()
}

/// `sluice run` until the file holds `lines` lines, then a little longer (nothing more may
/// come), then SIGTERM: the run drains, commits and exits 0.
fn run_until(job: &Path, out: &Path, lines: u64) {
    let mut child: Child = spawn_run(job);
    let deadline = Instant::now() + Duration::from_secs(60);
    while total(out) < lines {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run stopped ({status}): {}", stderr_of(&mut child));
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {lines} lines within 60 s",
            total(out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(800));
    signal(&child, "TERM");
    let status = wait_with_deadline(&mut child, Duration::from_secs(30));
    assert!(status.success(), "{}", stderr_of(&mut child));
    assert_eq!(total(out), lines, "more records than expected were written");
}

/// The ARN-prefixed partition of `shard` among `partitions`.
fn partition_of<'a>(partitions: impl IntoIterator<Item = &'a String>, shard: &str) -> String {
    partitions
        .into_iter()
        .find(|p| p.ends_with(&format!("/{shard}")))
        .unwrap_or_else(|| panic!("no partition of {shard}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_offsets_show_and_reset_move_kinesis_shard_positions() {
    let (stream, shards) = fed_stream("cli-reset").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let job = write_job(
        dir.path(),
        "job.toml",
        &job_text("kinesis-reset", &stream, &out),
    );
    let job_arg = job.to_str().unwrap();
    run_until(&job, &out, RECORDS);
    assert!(counts(&out).values().all(|c| *c == 1));

    // One line per shard: the ARN-prefixed shard and its last sequence number.
    let shown = run(&["offsets", job_arg]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: BTreeMap<String, String> = String::from_utf8(shown.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (p, o) = l.split_once('\t').expect("PARTITION<TAB>OFFSET");
            (p.to_string(), o.to_string())
        })
        .collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    for (shard, records) in &shards {
        let p = partition_of(shown.keys(), shard);
        assert!(p.starts_with("arn:aws:kinesis:"), "{p}");
        assert_eq!(shown[&p], records.last().unwrap().0, "last of {shard}");
    }

    // Move the first shard back to its 10th record: only its later records come again.
    let (shard, records) = shards.iter().next().unwrap();
    let partition = partition_of(shown.keys(), shard);
    let set = format!("{partition}={}", records[9].0);
    let dry = run(&["reset", job_arg, "--set", &set]);
    assert!(!dry.status.success(), "without --yes nothing changes");
    assert!(String::from_utf8_lossy(&dry.stderr).contains(&partition));
    let done = run(&["reset", job_arg, "--set", &set, "--yes"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let again: Vec<u64> = records[10..].iter().map(|(_, n)| *n).collect();
    run_until(&job, &out, RECORDS + again.len() as u64);
    let c = counts(&out);
    for n in 0..RECORDS {
        let want = if again.contains(&n) { 2 } else { 1 };
        assert_eq!(c.get(&n), Some(&want), "seq {n}");
    }

    // Start over: everything once more.
    let done = run(&["reset", job_arg, "--yes"]);
    assert!(done.status.success());
    run_until(&job, &out, 2 * RECORDS + again.len() as u64);
    let c = counts(&out);
    for n in 0..RECORDS {
        let want = if again.contains(&n) { 3 } else { 2 };
        assert_eq!(c.get(&n), Some(&want), "seq {n}");
    }
}

/// The worker's rows as partition → offset (a string: sequence numbers are text).
fn rows(body: &Value) -> BTreeMap<String, String> {
    body["offsets"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| {
            let offset = r["offset"]
                .as_str()
                .unwrap_or_else(|| panic!("a sequence number is a string: {r}"));
            (
                r["partition"].as_str().unwrap().to_string(),
                offset.to_string(),
            )
        })
        .collect()
}

async fn wait_total(out: &Path, lines: u64) {
    eventually(
        &format!("{lines} lines in {}", out.display()),
        Duration::from_secs(60),
        || async { (total(out) >= lines).then_some(()) },
    )
    .await;
}

/// Once `lines` are in, nothing more comes, and the job can be stopped.
async fn settle(w: &Worker, job: &str, out: &Path, lines: u64) {
    wait_total(out, lines).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (code, body) = w
        .call(Method::PUT, &format!("/jobs/{job}/stop"), None)
        .await;
    assert_eq!(code, 200, "{body}");
    w.wait_state(job, "stopped").await;
    assert_eq!(total(out), lines, "more records than expected were written");
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_offsets_show_patch_and_delete_kinesis_shard_positions() {
    let (stream, shards) = fed_stream("worker-reset").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    let (code, body) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(job_text("kreset", &stream, &out))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    settle(&w, "kreset", &out, RECORDS).await;

    let shown = rows(&w.get("/jobs/kreset/offsets").await);
    assert_eq!(shown.len(), 2, "{shown:?}");
    for (shard, records) in &shards {
        let p = partition_of(shown.keys(), shard);
        assert_eq!(shown[&p], records.last().unwrap().0, "last of {shard}");
    }

    // The second shard back to its 5th record.
    let (shard, records) = shards.iter().nth(1).unwrap();
    let partition = partition_of(shown.keys(), shard);
    let (code, body) = w
        .call(
            Method::PATCH,
            "/jobs/kreset/offsets",
            Some(Body::Json(json!({
                "offsets": [{ "partition": partition, "offset": records[4].0 }]
            }))),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(rows(&body)[&partition], records[4].0);
    let (code, body) = w.call(Method::PUT, "/jobs/kreset/resume", None).await;
    assert_eq!(code, 200, "{body}");
    let again: Vec<u64> = records[5..].iter().map(|(_, n)| *n).collect();
    settle(&w, "kreset", &out, RECORDS + again.len() as u64).await;
    let c = counts(&out);
    for n in 0..RECORDS {
        let want = if again.contains(&n) { 2 } else { 1 };
        assert_eq!(c.get(&n), Some(&want), "seq {n}");
    }

    let (code, body) = w.call(Method::DELETE, "/jobs/kreset/offsets", None).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = w.call(Method::PUT, "/jobs/kreset/resume", None).await;
    assert_eq!(code, 200, "{body}");
    settle(&w, "kreset", &out, 2 * RECORDS + again.len() as u64).await;
    let c = counts(&out);
    for n in 0..RECORDS {
        let want = if again.contains(&n) { 3 } else { 2 };
        assert_eq!(c.get(&n), Some(&want), "seq {n}");
    }
}
