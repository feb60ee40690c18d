#![cfg(feature = "sql")]
//! A SQLite database locked by another connection is a transient fault retried within the sink's
//! `retry` budget, not a 30 s wait hidden inside one statement: a lock released in time delays
//! the job and loses nothing; a lock held past the budget stops the job, within about the budget,
//! with an error that says the database is locked, and a rerun delivers every record once.

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::{spawn_run, stderr_of, wait_with_deadline, write_job};
use sluice_connector_sql::db::Db;
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

const RECORDS: i64 = 20_000;

/// An exactly-once datagen → SQLite job of about 10 s (2,000 records/s) with a short retry
/// budget: 500 ms backoff steps, `max_elapsed`.
fn job(dir: &Path, max_elapsed: &str) -> std::path::PathBuf {
    write_job(
        dir,
        "job.toml",
        &format!(
            r#"
api_version = 1
name = "sqlite-lock"
[delivery]
guarantee = "exactly-once"
commit_interval = "100ms"
[source]
type = "datagen"
count = {RECORDS}
rate = 2000
batch_size = 200
[[sinks]]
type = "sql"
url = "sqlite://out.db"
table = "readings"
create_table = true
schema = [
  {{ name = "seq", type = "BIGINT", nullable = false }},
  {{ name = "device_id", type = "TEXT" }},
]
batch = {{ max_records = 200, max_wait = "50ms" }}
retry = {{ initial_backoff = "100ms", max_backoff = "500ms", max_elapsed = "{max_elapsed}" }}
"#
        ),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// (rows, distinct seq) in the table.
async fn counts(dir: &Path) -> (i64, i64) {
    let db = Db::connect("sqlite://out.db", None, dir, 1).await.unwrap();
    let rows = db
        .fetch_text(
            "SELECT CAST(COUNT(*) AS TEXT), CAST(COUNT(DISTINCT seq) AS TEXT) FROM readings",
            &[],
        )
        .await
        .unwrap_or_default();
    db.close().await;
    let n = |i: usize| -> i64 {
        rows.first()
            .and_then(|r| r[i].as_deref())
            .map_or(0, |v| v.parse().unwrap())
    };
    (n(0), n(1))
}

/// Wait until the running job has written rows, then take the database's write lock from
/// another connection (`BEGIN EXCLUSIVE`, waiting for the sink's open transaction to end).
fn lock_once_writing(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    job: &mut Child,
) -> SqliteConnection {
    let start = Instant::now();
    while rt.block_on(counts(dir)).0 == 0 {
        assert!(
            job.try_wait().unwrap().is_none(),
            "the job ended before writing"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job never wrote"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=rw", dir.join("out.db").display());
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("PRAGMA busy_timeout = 10000")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    })
}

fn unlock(rt: &tokio::runtime::Runtime, mut conn: SqliteConnection) {
    rt.block_on(async {
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    });
}

#[test]
fn a_lock_released_within_the_retry_budget_delays_the_job_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), "30s");
    let rt = rt();
    let mut child = spawn_run(&job);
    let lock = lock_once_writing(&rt, dir.path(), &mut child);
    let (held_at, _) = rt.block_on(counts(dir.path()));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job stopped while the lock was held: {}",
        stderr_of(&mut child)
    );
    unlock(&rt, lock);
    let status = wait_with_deadline(&mut child, Duration::from_secs(120));
    let log = stderr_of(&mut child);
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("database is locked"),
        "the lock was never met (rows when locked: {held_at}); log:\n{log}"
    );
    assert_eq!(
        rt.block_on(counts(dir.path())),
        (RECORDS, RECORDS),
        "(rows, distinct seq) after the lock went away"
    );
}

#[test]
fn a_lock_held_past_the_retry_budget_stops_the_job_naming_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), "2s");
    let rt = rt();
    let mut child = spawn_run(&job);
    let lock = lock_once_writing(&rt, dir.path(), &mut child);
    let locked = Instant::now();
    // Before: a fixed 30 s busy timeout inside the first write, whatever `max_elapsed` said.
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    let took = locked.elapsed();
    let log = stderr_of(&mut child);
    assert!(!status.success(), "the job succeeded under a lock: {log}");
    assert!(
        took < Duration::from_secs(8),
        "the job took {took:?} to give up on a 2 s budget: {log}"
    );
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        log.contains("database is locked") && log.contains("gave up after"),
        "the error does not say the database is locked (last line: {last}); log:\n{log}"
    );
    unlock(&rt, lock);
    let mut again = spawn_run(&job);
    let status = wait_with_deadline(&mut again, Duration::from_secs(120));
    assert!(status.success(), "rerun: {}", stderr_of(&mut again));
    assert_eq!(
        rt.block_on(counts(dir.path())),
        (RECORDS, RECORDS),
        "(rows, distinct seq) after the rerun"
    );
}

/// Opening needs the write lock too on a new database (the table and the checkpoint table are
/// created): a lock held when the job starts is waited out within the budget as well.
#[test]
fn a_lock_held_when_the_job_starts_is_waited_out_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), "30s");
    let rt = rt();
    let lock = rt.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("out.db").display());
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    });
    let mut child = spawn_run(&job);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job stopped while the lock was held: {}",
        stderr_of(&mut child)
    );
    unlock(&rt, lock);
    let status = wait_with_deadline(&mut child, Duration::from_secs(120));
    let log = stderr_of(&mut child);
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("database is locked"),
        "the lock was never met; log:\n{log}"
    );
    assert_eq!(rt.block_on(counts(dir.path())), (RECORDS, RECORDS));
}
