#![cfg(feature = "sql")]
//! A row the database refuses is dead-lettered before any checkpoint covers it, or — with
//! `errors.tolerance = "none"` — stops the job having committed nothing of its write: a restart
//! stops at the same row again instead of skipping it (exactly-once) or writing the accepted rows
//! twice (at-least-once). And with upsert, an earlier version of a key is not lost when the
//! last version in the same write is refused.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{spawn_run, stderr_of, wait_with_deadline, write_job};
use sluice_connector_sql::db::Db;

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn create(dir: &Path, ddl: &str) {
    block_on(async {
        let db = Db::connect("sqlite://out.db", None, dir, 1).await.unwrap();
        db.exec(ddl, &[]).await.unwrap();
        db.close().await;
    });
}

/// The rows of `SELECT a, b ...` as text pairs.
fn pairs(dir: &Path, sql: &str) -> Vec<(String, String)> {
    block_on(async {
        let db = Db::connect("sqlite://out.db", None, dir, 1).await.unwrap();
        let rows = db.fetch_text(sql, &[]).await.unwrap();
        db.close().await;
        rows.into_iter()
            .map(|r| {
                (
                    r[0].clone().unwrap_or_default(),
                    r[1].clone().unwrap_or_default(),
                )
            })
            .collect()
    })
}

fn job(guarantee: &str, tolerance: &str, mode: &str) -> String {
    format!(
        r#"
api_version = 1
name = "sql-reject"
[delivery]
guarantee = "{guarantee}"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "sql"
url = "sqlite://out.db"
table = "rows"
{mode}
[errors]
tolerance = "{tolerance}"
dead_letter = {{ type = "file", path = "dlq.jsonl" }}
"#
    )
}

/// Run the job to its end; returns (success, stderr).
fn run(job: &Path) -> (bool, String) {
    let mut child = spawn_run(job);
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    (status.success(), stderr_of(&mut child))
}

fn dead_letters(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("dlq.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn a_refused_row_stops_every_run_and_nothing_is_written_twice(guarantee: &str) {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..10)
        .map(|i| match i {
            5 => format!(r#"{{"id": {i}, "name": null}}"#),
            _ => format!(r#"{{"id": {i}, "name": "n{i}"}}"#),
        })
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    // No key: a row written twice shows up twice.
    create(
        dir.path(),
        "CREATE TABLE rows (id INTEGER NOT NULL, name TEXT NOT NULL)",
    );
    let path = write_job(dir.path(), "job.toml", &job(guarantee, "none", ""));
    let counts = || -> BTreeMap<String, String> {
        pairs(
            dir.path(),
            "SELECT CAST(id AS TEXT), CAST(COUNT(*) AS TEXT) FROM rows GROUP BY id",
        )
        .into_iter()
        .collect()
    };
    for attempt in 1..=3 {
        let (ok, err) = run(&path);
        assert!(
            !ok,
            "{guarantee}: run {attempt} succeeded although line 6 is still refused"
        );
        assert!(
            err.contains("bad record") && err.contains("NOT NULL constraint failed"),
            "{guarantee}: run {attempt}: {err}"
        );
        let c = counts();
        assert!(
            c.values().all(|n| n == "1"),
            "{guarantee}: run {attempt} wrote rows twice: {c:?}"
        );
        assert!(!c.contains_key("5"));
    }
    // Dead-lettering it instead lets the job finish: every other row exactly once.
    std::fs::write(dir.path().join("job.toml"), job(guarantee, "all", "")).unwrap();
    let (ok, err) = run(&path);
    assert!(ok, "{guarantee}: {err}");
    let c = counts();
    let want: BTreeMap<String, String> = (0..10)
        .filter(|i| *i != 5)
        .map(|i| (i.to_string(), "1".to_string()))
        .collect();
    assert_eq!(c, want, "{guarantee}");
    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["record"]["value"], lines[5]);
}

#[test]
fn exactly_once_a_refused_row_stops_every_run_and_nothing_is_written_twice() {
    a_refused_row_stops_every_run_and_nothing_is_written_twice("exactly-once");
}

#[test]
fn at_least_once_a_refused_row_stops_every_run_and_nothing_is_written_twice() {
    a_refused_row_stops_every_run_and_nothing_is_written_twice("at-least-once");
}

#[test]
fn upsert_keeps_the_earlier_version_of_a_key_whose_last_version_is_refused() {
    for guarantee in ["exactly-once", "at-least-once"] {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            r#"{"device_id": "a", "n": 1}"#,
            r#"{"device_id": "b", "n": 1}"#,
            r#"{"device_id": "b", "n": 2}"#,
            r#"{"device_id": "a", "n": null}"#,
        ];
        std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
        create(
            dir.path(),
            "CREATE TABLE rows (device_id TEXT PRIMARY KEY, n INTEGER NOT NULL)",
        );
        let path = write_job(
            dir.path(),
            "job.toml",
            &job(guarantee, "all", "mode = \"upsert\"\nkey = [\"device_id\"]"),
        );
        let (ok, err) = run(&path);
        assert!(ok, "{guarantee}: {err}");
        let rows = pairs(
            dir.path(),
            "SELECT device_id, CAST(n AS TEXT) FROM rows ORDER BY device_id",
        );
        assert_eq!(
            rows,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            "{guarantee}: the valid earlier version of `a` must land"
        );
        let dead = dead_letters(dir.path());
        assert_eq!(dead.len(), 1, "{guarantee}: {dead:?}");
        assert_eq!(dead[0]["record"]["value"], lines[3]);
    }
}
