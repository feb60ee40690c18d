#![cfg(feature = "sql")]
//! The exactly-once proof for datagen → SQL: `kill -9` the job at random moments at least ten
//! times, restart it each time, and check that the table ends with exactly the 200,000
//! expected rows — none missing, none twice — on PostgreSQL, MariaDB and SQLite. The same run
//! with at-least-once in insert mode must lose nothing (duplicates are reported).
//!
//! Needs `scripts/services.sh up` (PostgreSQL and MariaDB endpoints in the environment).

mod common;

use std::time::Duration;

use common::{spawn_run, stderr_of, wait_with_deadline, write_job};
use rand::Rng;
use sluice_connector_sql::db::{Db, Dialect};

const RECORDS: i64 = 200_000;

fn url_from_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/services.sh up and source target/services.env")
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Postgres,
    MySql,
    Sqlite,
}

struct Counts {
    rows: i64,
    distinct: i64,
    min: i64,
    max: i64,
}

async fn counts(url: &str, base: &std::path::Path, table: &str) -> Counts {
    let db = Db::connect(url, None, base, 1).await.unwrap();
    let d = db.dialect();
    let t = |e: &str| match d {
        Dialect::Postgres => format!("({e})::text"),
        Dialect::MySql => format!("CAST({e} AS CHAR)"),
        Dialect::Sqlite => format!("CAST({e} AS TEXT)"),
    };
    let sql = format!(
        "SELECT {}, {}, {}, {} FROM {}",
        t("COUNT(*)"),
        t("COUNT(DISTINCT seq)"),
        t("MIN(seq)"),
        t("MAX(seq)"),
        d.quote(table)
    );
    let rows = db.fetch_text(&sql, &[]).await.unwrap();
    db.exec(&format!("DROP TABLE {}", d.quote(table)), &[])
        .await
        .unwrap();
    db.close().await;
    let n = |i: usize| -> i64 { rows[0][i].as_deref().unwrap_or("-1").parse().unwrap() };
    Counts {
        rows: n(0),
        distinct: n(1),
        min: n(2),
        max: n(3),
    }
}

/// `keyed`: `seq` is the primary key and the sink inserts (no upsert), so an at-least-once
/// replay meets rows already there; it must count them as written, not stop the job
/// (`errors.tolerance` is "none").
fn crash_and_restart(target: Target, exactly_once: bool) {
    crash_and_restart_into(target, exactly_once, false);
}

fn crash_and_restart_into(target: Target, exactly_once: bool, keyed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let suffix = format!(
        "{}_{}{}",
        std::process::id(),
        if exactly_once { "eos" } else { "alo" },
        if keyed { "_keyed" } else { "" }
    );
    let table = format!("crash_{suffix}");
    let (url, text_t) = match target {
        Target::Postgres => (url_from_env("SLUICE_TEST_POSTGRES_URL"), "TEXT"),
        Target::MySql => (url_from_env("SLUICE_TEST_MYSQL_URL"), "VARCHAR(40)"),
        Target::Sqlite => ("sqlite://out.db".to_string(), "TEXT"),
    };
    let guarantee = if exactly_once {
        "exactly-once"
    } else {
        "at-least-once"
    };
    // Without `keyed`, no unique key on seq: a duplicate must show up as a second row.
    let key = if keyed { "key = [\"seq\"]" } else { "" };
    let job = write_job(
        dir.path(),
        "job.toml",
        &format!(
            r#"
api_version = 1
name = "sql-crash-{suffix}"
[delivery]
guarantee = "{guarantee}"
commit_interval = "100ms"
[source]
type = "datagen"
count = {RECORDS}
rate = 10000
batch_size = 500
[[sinks]]
type = "sql"
url = "{url}"
table = "{table}"
create_table = true
{key}
schema = [
  {{ name = "seq", type = "BIGINT", nullable = false }},
  {{ name = "device_id", type = "{text_t}" }},
  {{ name = "ts", type = "{text_t}" }},
  {{ name = "temperature_c", type = "DOUBLE PRECISION" }},
]
batch = {{ max_records = 2000, max_wait = "50ms" }}
"#
        ),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::rng();
    let mut kills = 0;
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 100, "the job never finished");
        let mut child = spawn_run(&job);
        std::thread::sleep(Duration::from_millis(rng.random_range(200..2000)));
        if kills < 10 && child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
            continue;
        }
        let status = wait_with_deadline(&mut child, Duration::from_secs(300));
        let err = stderr_of(&mut child);
        assert!(status.success(), "final run failed: {err}");
        break;
    }
    assert!(kills >= 10, "only {kills} kills landed mid-run");
    let c = rt.block_on(counts(&url, dir.path(), &table));
    assert_eq!(
        c.distinct, RECORDS,
        "records lost: {} distinct seq values",
        c.distinct
    );
    assert_eq!((c.min, c.max), (0, RECORDS - 1));
    let duplicates = c.rows - c.distinct;
    if exactly_once || keyed {
        assert_eq!(duplicates, 0, "exactly-once wrote {duplicates} rows twice");
    }
    println!(
        "datagen → {} {guarantee}: {kills} kill -9s, {} rows, {} distinct seq, {duplicates} duplicates",
        match target {
            Target::Postgres => "PostgreSQL",
            Target::MySql => "MariaDB",
            Target::Sqlite => "SQLite",
        },
        c.rows,
        c.distinct
    );
}

#[test]
fn postgres_exactly_once_survives_kill_nine() {
    crash_and_restart(Target::Postgres, true);
}

#[test]
fn mariadb_exactly_once_survives_kill_nine() {
    crash_and_restart(Target::MySql, true);
}

#[test]
fn sqlite_exactly_once_survives_kill_nine() {
    crash_and_restart(Target::Sqlite, true);
}

#[test]
fn postgres_at_least_once_loses_nothing_after_kill_nine() {
    crash_and_restart(Target::Postgres, false);
}

#[test]
fn mariadb_at_least_once_loses_nothing_after_kill_nine() {
    crash_and_restart(Target::MySql, false);
}

#[test]
fn sqlite_at_least_once_loses_nothing_after_kill_nine() {
    crash_and_restart(Target::Sqlite, false);
}

#[test]
fn postgres_at_least_once_keyed_insert_is_not_wedged_by_replays_after_kill_nine() {
    crash_and_restart_into(Target::Postgres, false, true);
}

#[test]
fn mariadb_at_least_once_keyed_insert_is_not_wedged_by_replays_after_kill_nine() {
    crash_and_restart_into(Target::MySql, false, true);
}

#[test]
fn sqlite_at_least_once_keyed_insert_is_not_wedged_by_replays_after_kill_nine() {
    crash_and_restart_into(Target::Sqlite, false, true);
}

/// SQL source → SQL sink with exactly-once: the source's cursor is the checkpoint stored with
/// the rows, so a table copied under repeated `kill -9` arrives exactly once.
#[test]
fn sqlite_table_to_postgres_exactly_once_survives_kill_nine() {
    const ROWS: i64 = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let url = url_from_env("SLUICE_TEST_POSTGRES_URL");
    let table = format!("copy_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let src = Db::connect("sqlite://src.db", None, dir.path(), 1)
            .await
            .unwrap();
        src.exec(
            "CREATE TABLE readings (id INTEGER PRIMARY KEY, seq BIGINT, note TEXT)",
            &[],
        )
        .await
        .unwrap();
        src.exec(
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {})
                 INSERT INTO readings (id, seq, note) SELECT i + 1, i, 'row ' || i FROM n",
                ROWS - 1
            ),
            &[],
        )
        .await
        .unwrap();
        src.close().await;
    });
    let job = write_job(
        dir.path(),
        "job.toml",
        &format!(
            r#"
api_version = 1
name = "sql-copy-{table}"
[delivery]
guarantee = "exactly-once"
[source]
type = "sql"
url = "sqlite://src.db"
table = "readings"
mode = "incrementing"
incrementing_column = "id"
batch_size = 50
stop_when_caught_up = true
[[sinks]]
type = "sql"
url = "{url}"
table = "{table}"
create_table = true
schema = [{{ name = "id", type = "BIGINT" }}, {{ name = "seq", type = "BIGINT" }}, {{ name = "note", type = "TEXT" }}]
batch = {{ max_records = 50, max_wait = "10ms" }}
"#
        ),
    );
    let kills = common::run_with_kills(&job, 10);
    assert!(kills >= 3, "only {kills} kills landed mid-run");
    let c = rt.block_on(counts(&url, dir.path(), &table));
    assert_eq!(
        (c.rows, c.distinct),
        (ROWS, ROWS),
        "lost or duplicated rows"
    );
    assert_eq!((c.min, c.max), (0, ROWS - 1));
    println!("SQLite table → PostgreSQL exactly-once: {kills} kill -9s, {ROWS} rows exactly once");
}
