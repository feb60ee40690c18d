//! Crash proofs across connectors, with the conformance suite's kill -9 loop (at least ten
//! kills at random moments, every record counted by its unique key):
//!
//! - `kinesis_to_sqlite::kill_nine_loop_from_the_source` and
//!   `kinesis_to_postgres::kill_nine_loop_from_the_source`: Kinesis → SQLite / PostgreSQL
//!   (`SLUICE_TEST_POSTGRES_URL`) with exactly-once. The SQL sink stores the Kinesis positions
//!   (stream ARN + shard, sequence number) in the transaction of its rows and the source resumes
//!   after them: 0 lost, 0 duplicated.
//! - `sqlite_to_kinesis::kill_nine_loop_from_the_source`: SQLite → Kinesis, at-least-once:
//!   0 lost (duplicates allowed: Kinesis has no transactions).
//!
//! `SLUICE_CONFORMANCE_RECORDS` / `SLUICE_CONFORMANCE_KILLS` make the loops longer.

mod common;

use std::ops::Range;

use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_connector_sql::db::Db;
use sluice_core::testing::{test_key, test_value};
use sluice_core::{Registry, async_trait};

fn sqlite_url(fx: &Fixture) -> String {
    format!("sqlite://{}", fx.path("test.db").display())
}

async fn connect(url: &str) -> Db {
    Db::connect(url, None, std::path::Path::new("."), 1)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test database: {e}"))
}

async fn sqlite(fx: &Fixture) -> Db {
    connect(&sqlite_url(fx)).await
}

async fn exec(db: &Db, sql: &str) {
    db.exec(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The database a Kinesis → SQL kill loop writes into.
#[derive(Clone, Copy)]
enum Database {
    /// A SQLite file in the fixture's directory.
    Sqlite,
    /// The PostgreSQL server of `SLUICE_TEST_POSTGRES_URL` (a table per fixture).
    Postgres,
}

/// Kinesis (`<fixture>-in`) → table `<fixture>` of `db`, exactly-once.
struct KinesisToSql {
    db: Database,
}

impl KinesisToSql {
    fn url(&self, fx: &Fixture) -> String {
        match self.db {
            Database::Sqlite => sqlite_url(fx),
            Database::Postgres => std::env::var("SLUICE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
                panic!(
                    "SLUICE_TEST_POSTGRES_URL is not set: run `scripts/services.sh up postgres` and source target/services.env"
                )
            }),
        }
    }
}

#[async_trait]
impl Harness for KinesisToSql {
    fn source_type(&self) -> Option<&'static str> {
        Some("kinesis")
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("sql")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_kinesis::register(registry);
        sluice_connector_sql::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims {
            exactly_once: true,
            can_seek: true,
            readback_shows_aborted: false,
            replays_overwrite: false,
        }
    }

    async fn prepare(&self, fx: &Fixture) {
        let client = common::client().await;
        common::create_stream(&client, &format!("{}-in", fx.name), 3).await;
        let db = connect(&self.url(fx)).await;
        // No unique key: a record written twice shows up twice.
        exec(
            &db,
            &format!(
                "CREATE TABLE {} (\"key\" VARCHAR(40) NOT NULL, seq BIGINT NOT NULL, note TEXT)",
                fx.name
            ),
        )
        .await;
        db.close().await;
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("url".into(), self.url(fx).into());
        t.insert("table".into(), fx.name.clone().into());
        t
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        let db = connect(&self.url(fx)).await;
        let rows = db
            .fetch_text(&format!("SELECT \"key\" FROM {}", fx.name), &[])
            .await
            .expect("reading the table");
        db.close().await;
        rows.into_iter()
            .map(|r| r[0].clone().unwrap_or_default())
            .collect()
    }

    fn source_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = common::base_config(&format!("{}-in", fx.name));
        t.insert("max_records".into(), 20.into());
        t.insert("poll_interval".into(), "200ms".into());
        t
    }

    async fn feed_source(&self, fx: &Fixture, seqs: Range<u64>) {
        let client = common::client().await;
        let records: Vec<(String, Vec<u8>)> = seqs
            .map(|s| (test_key(s), test_value(s).into_bytes()))
            .collect();
        common::put(&client, &format!("{}-in", fx.name), &records).await;
    }
}

/// SQLite table `<fixture>_in` → Kinesis stream `<fixture>`, at-least-once.
struct SqliteToKinesis;

#[async_trait]
impl Harness for SqliteToKinesis {
    fn source_type(&self) -> Option<&'static str> {
        Some("sql")
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("kinesis")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_kinesis::register(registry);
        sluice_connector_sql::register(registry);
    }

    fn claims(&self) -> Claims {
        Claims {
            exactly_once: false,
            can_seek: true,
            readback_shows_aborted: false,
            replays_overwrite: false,
        }
    }

    async fn prepare(&self, fx: &Fixture) {
        let client = common::client().await;
        common::create_stream(&client, &fx.name, 2).await;
        let db = sqlite(fx).await;
        exec(
            &db,
            &format!(
                "CREATE TABLE {}_in (id INTEGER PRIMARY KEY AUTOINCREMENT, \"key\" VARCHAR(40), seq BIGINT, note TEXT)",
                fx.name
            ),
        )
        .await;
        db.close().await;
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        common::base_config(&fx.name)
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        let client = common::client().await;
        let mut keys = Vec::new();
        for (key, copies) in common::key_counts(&client, &fx.name).await {
            keys.extend(std::iter::repeat_n(key, copies as usize));
        }
        keys
    }

    fn source_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("url".into(), sqlite_url(fx).into());
        t.insert("table".into(), format!("{}_in", fx.name).into());
        t.insert("mode".into(), "incrementing".into());
        t.insert("incrementing_column".into(), "id".into());
        t.insert("batch_size".into(), 20.into());
        t.insert("poll_interval".into(), "50ms".into());
        t.insert("stop_when_caught_up".into(), true.into());
        t
    }

    fn source_is_bounded(&self) -> bool {
        true
    }

    async fn feed_source(&self, fx: &Fixture, seqs: Range<u64>) {
        let db = sqlite(fx).await;
        let seqs: Vec<u64> = seqs.collect();
        for chunk in seqs.chunks(500) {
            let values: Vec<String> = chunk
                .iter()
                .map(|s| {
                    let v: serde_json::Value = serde_json::from_str(&test_value(*s)).unwrap();
                    format!(
                        "('{}', {s}, '{}')",
                        test_key(*s),
                        v["note"].as_str().unwrap()
                    )
                })
                .collect();
            exec(
                &db,
                &format!(
                    "INSERT INTO {}_in (\"key\", seq, note) VALUES {}",
                    fx.name,
                    values.join(", ")
                ),
            )
            .await;
        }
        db.close().await;
    }
}

mod kinesis_to_sqlite {
    use super::*;
    sluice_conformance::conformance_tests!(@each KinesisToSql { db: Database::Sqlite }; kill_nine_loop_from_the_source);
}

mod kinesis_to_postgres {
    use super::*;
    sluice_conformance::conformance_tests!(@each KinesisToSql { db: Database::Postgres }; kill_nine_loop_from_the_source);
}

mod sqlite_to_kinesis {
    use super::*;
    sluice_conformance::conformance_tests!(@each SqliteToKinesis; kill_nine_loop_from_the_source);
}
