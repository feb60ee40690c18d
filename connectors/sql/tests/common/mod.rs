//! Shared helpers of the SQL integration tests: endpoints from the environment (set by
//! `scripts/services.sh up`), unique table names, and reading tables back as text.
#![allow(dead_code, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};

use sluice_connector_sql::db::{Db, Dialect};

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Postgres,
    MySql,
    Sqlite,
}

pub struct Env {
    pub url: String,
    /// Keeps a SQLite file alive.
    pub _dir: Option<tempfile::TempDir>,
}

fn from_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        // Also accept the file the service script writes, so `cargo test` works without
        // sourcing it first.
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/services.env");
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix(&format!("export {var}="))
                        .map(|v| v.trim().to_string())
                })
            })
            .unwrap_or_else(|| {
                panic!(
                    "{var} is not set: run scripts/services.sh up (and source target/services.env)"
                )
            })
    })
}

pub fn env(target: Target) -> Env {
    match target {
        Target::Postgres => Env {
            url: from_env("SLUICE_TEST_POSTGRES_URL"),
            _dir: None,
        },
        Target::MySql => Env {
            url: from_env("SLUICE_TEST_MYSQL_URL"),
            _dir: None,
        },
        Target::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            Env {
                url: format!("sqlite://{}", dir.path().join("test.db").display()),
                _dir: Some(dir),
            }
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A table name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

pub async fn connect(url: &str) -> Db {
    Db::connect(url, None, std::path::Path::new("."), 2)
        .await
        .unwrap()
}

/// `expr` cast to text in the dialect.
pub fn text(d: Dialect, expr: &str) -> String {
    match d {
        Dialect::Postgres => format!("({expr})::text"),
        Dialect::MySql => format!("CAST({expr} AS CHAR)"),
        Dialect::Sqlite => format!("CAST({expr} AS TEXT)"),
    }
}

/// All rows of a query, as text.
pub async fn rows(db: &Db, sql: &str) -> Vec<Vec<Option<String>>> {
    db.fetch_text(sql, &[]).await.unwrap()
}

pub async fn count(db: &Db, table: &str) -> i64 {
    let d = db.dialect();
    let r = rows(
        db,
        &format!("SELECT {} FROM {}", text(d, "COUNT(*)"), d.quote(table)),
    )
    .await;
    r[0][0].as_ref().unwrap().parse().unwrap()
}

pub async fn exec(db: &Db, sql: &str) {
    db.exec(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
