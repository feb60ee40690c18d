#![cfg(feature = "sql")]
//! An exactly-once SQL checkpoint belongs to its job, its sink and its table. Adding an unnamed
//! sink before an existing one (which renumbers the sinks) or renaming the job is refused with a
//! message, instead of handing one table's checkpoint to another sink (which then skips
//! history) and re-sending everything to the first. Naming the sinks resolves it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{spawn_run, stderr_of, wait_with_deadline, write_job};
use sluice_connector_sql::db::Db;

const ROWS: usize = 100;

fn sink(table: &str, name: Option<&str>) -> String {
    let name = name
        .map(|n| format!("name = \"{n}\"\n"))
        .unwrap_or_default();
    format!(
        "[[sinks]]\ntype = \"sql\"\n{name}url = \"sqlite://out.db\"\ntable = \"{table}\"\ncreate_table = true\nschema = [{{ name = \"id\", type = \"BIGINT\" }}]\n"
    )
}

fn job(name: &str, sinks: &[String]) -> String {
    format!(
        "api_version = 1\nname = \"{name}\"\n[delivery]\nguarantee = \"exactly-once\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n{}",
        sinks.concat()
    )
}

fn run(dir: &Path, toml: &str) -> (bool, String) {
    let path = write_job(dir, "job.toml", toml);
    let mut child = spawn_run(&path);
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    (status.success(), stderr_of(&mut child))
}

/// (rows, distinct ids) of a table; (0, 0) when it does not exist.
fn counts(dir: &Path, table: &str) -> (i64, i64) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let db = Db::connect("sqlite://out.db", None, dir, 1).await.unwrap();
            let rows = db
                .fetch_text(
                    &format!(
                        "SELECT CAST(COUNT(*) AS TEXT), CAST(COUNT(DISTINCT id) AS TEXT) FROM \"{table}\""
                    ),
                    &[],
                )
                .await;
            db.close().await;
            match rows {
                Ok(r) => (
                    r[0][0].as_deref().unwrap().parse().unwrap(),
                    r[0][1].as_deref().unwrap().parse().unwrap(),
                ),
                Err(_) => (0, 0),
            }
        })
}

#[test]
fn a_sink_added_before_another_or_a_renamed_job_is_refused_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..ROWS).map(|i| format!(r#"{{"id": {i}}}"#)).collect();
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let full = (ROWS as i64, ROWS as i64);

    let (ok, err) = run(dir.path(), &job("ident", &[sink("a", None)]));
    assert!(ok, "{err}");
    assert_eq!(counts(dir.path(), "a"), full);

    // A new unnamed sink before it: it would be `sql` and `a`'s sink `sql-2`.
    let (ok, err) = run(
        dir.path(),
        &job("ident", &[sink("b", None), sink("a", None)]),
    );
    assert!(!ok, "renumbered sinks must be refused");
    assert!(err.contains("named by their order"), "{err}");
    assert_eq!(counts(dir.path(), "a"), full, "nothing re-sent to `a`");
    assert_eq!(counts(dir.path(), "b").0, 0);

    // The job renamed.
    let (ok, err) = run(dir.path(), &job("ident-renamed", &[sink("a", None)]));
    assert!(!ok, "a renamed job must be refused");
    assert!(err.contains("renamed"), "{err}");
    assert_eq!(counts(dir.path(), "a"), full, "nothing re-sent to `a`");

    // Naming the sinks as they were resolves it: `a` gets nothing again, `b` its history.
    let (ok, err) = run(
        dir.path(),
        &job("ident", &[sink("b", Some("b")), sink("a", Some("sql"))]),
    );
    assert!(ok, "{err}");
    assert_eq!(counts(dir.path(), "a"), full);
    assert_eq!(counts(dir.path(), "b"), full);
}
