#![cfg(feature = "sql")]
//! Rows the database refuses go to the dead-letter sink with the database's message, and the
//! rest of the batch lands — with exactly-once, in the same transaction as the checkpoint, so a
//! second run writes nothing again.

mod common;

use std::time::Duration;

use common::{spawn_run, stderr_of, wait_with_deadline, write_job};
use sluice_connector_sql::db::Db;

#[test]
fn refused_rows_are_dead_lettered_and_the_rest_lands_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..1000 {
        let line = match i {
            // NOT NULL violation, CHECK violation, not an integer.
            100 => format!(r#"{{"id": {i}, "name": null}}"#),
            500 => format!(r#"{{"id": {i}, "name": "far too long a name"}}"#),
            900 => format!(r#"{{"id": "x{i}", "name": "n"}}"#),
            _ => format!(r#"{{"id": {i}, "name": "n{i}"}}"#),
        };
        lines.push(line);
    }
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = Db::connect("sqlite://out.db", None, dir.path(), 1)
            .await
            .unwrap();
        db.exec(
            "CREATE TABLE rows (id INTEGER NOT NULL, name TEXT NOT NULL CHECK (length(name) <= 10)) STRICT",
            &[],
        )
        .await
        .unwrap();
        db.close().await;
    });
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"
api_version = 1
name = "sql-dlq"
[delivery]
guarantee = "exactly-once"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "sql"
url = "sqlite://out.db"
table = "rows"
batch = { max_records = 300 }
[errors]
tolerance = "all"
dead_letter = { type = "file", path = "dlq.jsonl" }
"#,
    );
    for _ in 0..2 {
        let mut child = spawn_run(&job);
        let status = wait_with_deadline(&mut child, Duration::from_secs(120));
        assert!(status.success(), "run failed: {}", stderr_of(&mut child));
    }
    let count: i64 = rt.block_on(async {
        let db = Db::connect("sqlite://out.db", None, dir.path(), 1)
            .await
            .unwrap();
        let rows = db
            .fetch_text("SELECT CAST(COUNT(*) AS TEXT) FROM rows", &[])
            .await
            .unwrap();
        db.close().await;
        rows[0][0].as_deref().unwrap().parse().unwrap()
    });
    assert_eq!(count, 997, "every other row lands once, across both runs");
    let dlq = std::fs::read_to_string(dir.path().join("dlq.jsonl")).unwrap();
    let dead: Vec<serde_json::Value> = dlq
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 3, "{dlq}");
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert!(reasons[0].contains("NOT NULL"), "{reasons:?}");
    assert!(reasons[1].contains("CHECK"), "{reasons:?}");
    // Text in an integer column is refused by the sink before the database sees it.
    assert!(
        reasons[2].contains("column \"id\": expected an integer"),
        "{reasons:?}"
    );
    assert!(
        dead.iter()
            .all(|d| d["stage"].as_str().unwrap().starts_with("sink:"))
    );
}
