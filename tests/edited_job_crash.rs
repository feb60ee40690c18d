#![cfg(feature = "sql")]
//! Exactly-once while an operator edits the job between crashes: file → file archive + SQLite,
//! `kill -9` at random moments, and before every restart the job file is rewritten the way people
//! do — the input path spelled differently, the SQLite URL spelled differently, the sinks
//! reordered, batch sizes and the commit interval changed, and a third sink added half-way. In
//! the end every sink holds every record exactly once (the added sink too: it starts from the
//! beginning on its own checkpoint, while the others skip what they have).

mod common;

use common::*;
use sluice_connector_sql::db::Db;

const RECORDS: u64 = 200_000;
const KILLS: u32 = 10;
/// From this kill on, the job has a third sink.
const ADD_SINK_AT: u32 = 4;

/// The job as it stands after `landed` kills.
fn job_variant(landed: u32) -> String {
    let path = ["in.jsonl", "./in.jsonl", "sub/../in.jsonl"][landed as usize % 3];
    let url = ["sqlite://out/db.sqlite", "sqlite://./out/db.sqlite"][landed as usize % 2];
    let (records, interval) = [(100, "50ms"), (700, "20ms"), (2_000, "100ms")][landed as usize % 3];
    let archive = format!(
        r#"
[[sinks]]
name = "archive"
type = "file"
path = "out/archive.jsonl"
batch = {{ max_records = {records}, max_wait = "20ms" }}
"#
    );
    let db = format!(
        r#"
[[sinks]]
name = "db"
type = "sql"
url = "{url}"
table = "readings"
create_table = true
key = ["seq"]
schema = [
  {{ name = "seq", type = "BIGINT", nullable = false }},
  {{ name = "device_id", type = "TEXT" }},
]
batch = {{ max_records = {records}, max_wait = "20ms" }}
"#
    );
    let late = if landed >= ADD_SINK_AT {
        "\n[[sinks]]\nname = \"late\"\ntype = \"file\"\npath = \"out/late.jsonl\"\n"
    } else {
        ""
    };
    // Sinks are named, so their order is cosmetic: swap it every other run.
    let sinks = if landed.is_multiple_of(2) {
        format!("{archive}{db}{late}")
    } else {
        format!("{late}{db}{archive}")
    };
    format!(
        r#"
api_version = 1
name = "edited"
[delivery]
guarantee = "exactly-once"
commit_interval = "{interval}"
[source]
type = "file"
path = "{path}"
read_size = "16KiB"
{sinks}"#
    )
}

fn sqlite_counts(dir: &std::path::Path) -> (i64, i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = Db::connect("sqlite://out/db.sqlite", None, dir, 1)
            .await
            .unwrap();
        let rows = db
            .fetch_text(
                "SELECT CAST(COUNT(*) AS TEXT), CAST(COUNT(DISTINCT seq) AS TEXT) FROM readings",
                &[],
            )
            .await
            .unwrap();
        db.close().await;
        let n = |i: usize| rows[0][i].as_deref().unwrap_or("-1").parse().unwrap();
        (n(0), n(1))
    })
}

#[test]
fn exactly_once_holds_when_the_job_is_edited_between_kills() {
    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", RECORDS);
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    let job = dir.path().join("job.toml");
    let landed = run_with_kills_editing(&job, KILLS, |landed| {
        std::fs::write(&job, job_variant(landed)).unwrap();
    });
    assert!(landed >= KILLS, "only {landed} kills landed mid-run");

    for file in ["out/archive.jsonl", "out/late.jsonl"] {
        let (counts, corrupt) = seq_counts(&dir.path().join(file));
        assert!(corrupt.is_empty(), "{file}: corrupt lines {corrupt:?}");
        let duplicates = assert_all_present(&counts, RECORDS);
        assert_eq!(
            duplicates, 0,
            "{file}: {duplicates} duplicates after {landed} kills"
        );
    }
    let (rows, distinct) = sqlite_counts(dir.path());
    assert_eq!(
        (rows, distinct),
        (RECORDS as i64, RECORDS as i64),
        "SQLite rows (all, distinct seq) after {landed} kills with edits"
    );
    println!(
        "edited job, exactly-once: {landed} kill -9s with an edit before each restart; {RECORDS} records once in each of 3 sinks"
    );
}
