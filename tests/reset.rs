//! Starting a job over: `sluice reset` and the worker's offsets endpoints reset every place a
//! run resumes from — with exactly-once the checkpoints stored with the sinks' data too.

mod common;
mod worker_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use reqwest::Method;
use worker_support::{Body, Worker, eventually, seqs};

const RECORDS: u64 = 500;

/// How many times each seq is in a file.
fn per_seq(path: &Path) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for s in seqs(path) {
        *m.entry(s).or_insert(0) += 1;
    }
    m
}

fn sqlite_rows(db: &Path) -> (i64, i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let row = sqlx::query("SELECT COUNT(*), COUNT(DISTINCT seq) FROM readings")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        (row.get(0), row.get(1))
    })
}

#[test]
fn reset_starts_an_exactly_once_job_over_in_every_sink_after_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", RECORDS);
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "again"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
name = "archive"
type = "file"
path = "out/archive.jsonl"
[[sinks]]
name = "db"
type = "sql"
url = "sqlite://out.db"
table = "readings"
create_table = true
schema = [{ name = "seq", type = "BIGINT" }, { name = "device_id", type = "TEXT" }]
"#,
    );
    let archive = dir.path().join("out/archive.jsonl");
    let db = dir.path().join("out.db");
    let run_once = || {
        let mut child = spawn_run(&job);
        let status = wait_with_deadline(&mut child, Duration::from_secs(60));
        assert!(status.success(), "{}", stderr_of(&mut child));
    };
    run_once();
    run_once();
    assert!(per_seq(&archive).values().all(|n| *n == 1));
    assert_eq!(per_seq(&archive).len() as u64, RECORDS);
    assert_eq!(sqlite_rows(&db), (RECORDS as i64, RECORDS as i64));

    // Without --yes: the warning, and nothing changes.
    let out = run(&["reset", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("data already written to the sinks stays there")
            && err.contains("archive, db")
            && err.contains("--yes"),
        "{err}"
    );
    run_once();
    assert_eq!(sqlite_rows(&db), (RECORDS as i64, RECORDS as i64));

    let out = run(&["reset", job.to_str().unwrap(), "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_once();
    // Started over: every sink got everything again, as the warning said.
    let counts = per_seq(&archive);
    assert_eq!(counts.len() as u64, RECORDS);
    assert!(
        counts.values().all(|n| *n == 2),
        "each record twice in the file"
    );
    assert_eq!(sqlite_rows(&db), (2 * RECORDS as i64, RECORDS as i64));
}

fn eos_datagen_job(name: &str, out: &Path) -> String {
    format!(
        r#"api_version = 1
name = "{name}"
[delivery]
guarantee = "exactly-once"
commit_interval = "100ms"
[source]
type = "datagen"
count = {RECORDS}
batch_size = 50
[[sinks]]
type = "file"
path = "{}"
"#,
        out.display()
    )
}

async fn wait_lines(w: &Worker, path: &Path, n: usize) {
    eventually(
        &format!("{n} lines in {}", path.display()),
        Duration::from_secs(30),
        || async { (seqs(path).len() >= n).then_some(()) },
    )
    .await;
    let _ = w;
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_offsets_delete_and_job_delete_reset_sink_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eos.jsonl");
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    let (code, body) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(eos_datagen_job("eos", &out))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    w.wait_state("eos", "finished").await;
    assert_eq!(seqs(&out).len() as u64, RECORDS);

    // Stop, forget the offsets, resume: the job starts over although the file sink holds an
    // exactly-once checkpoint at the end.
    let (code, body) = w.call(Method::PUT, "/jobs/eos/stop", None).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = w.call(Method::DELETE, "/jobs/eos/offsets", None).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = w.call(Method::PUT, "/jobs/eos/resume", None).await;
    assert_eq!(code, 200, "{body}");
    wait_lines(&w, &out, 2 * RECORDS as usize).await;
    w.wait_state("eos", "finished").await;
    assert!(per_seq(&out).values().all(|n| *n == 2));

    // Delete the job and create it again: it starts afresh, not from the sink's checkpoint.
    let (code, body) = w.call(Method::DELETE, "/jobs/eos", None).await;
    assert_eq!(code, 204, "{body}");
    let (code, body) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(eos_datagen_job("eos", &out))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    wait_lines(&w, &out, 3 * RECORDS as usize).await;
    w.wait_state("eos", "finished").await;
    assert!(per_seq(&out).values().all(|n| *n == 3));
}
