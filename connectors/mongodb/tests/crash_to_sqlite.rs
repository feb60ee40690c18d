//! Crash proof of the change-stream source with another transactional sink: MongoDB's change
//! stream into SQLite (the `sql` sink) under exactly-once, killed with SIGKILL at least ten
//! times (`SLUICE_CONFORMANCE_KILLS`, `SLUICE_CONFORMANCE_RECORDS`), then every record counted
//! by its unique key in the table: none lost, none twice. The kill loop is the conformance
//! suite's (`sluice_conformance::checks::kill_nine_loop_from_the_source`), driven by a harness
//! whose source is MongoDB and whose sink is SQLite.

mod common;

use std::ops::Range;

use sluice_conformance::{Claims, Fixture, Harness, Test, toml};
use sluice_core::{Registry, async_trait};
use sqlx::Connection;

struct MongoToSqlite;

impl MongoToSqlite {
    fn db(fx: &Fixture) -> String {
        format!("sqlite://{}?mode=rwc", fx.path("out.db").display())
    }
}

#[async_trait]
impl Harness for MongoToSqlite {
    fn source_type(&self) -> Option<&'static str> {
        Some("mongodb")
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("sql")
    }

    fn register(&self, registry: &mut Registry) {
        sluice_connector_mongodb::register(registry);
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
        let mut db = sqlx::SqliteConnection::connect(&Self::db(fx))
            .await
            .unwrap();
        sqlx::query(&format!(
            "CREATE TABLE {} (key TEXT NOT NULL, seq BIGINT NOT NULL, note TEXT)",
            fx.name
        ))
        .execute(&mut db)
        .await
        .unwrap();
        db.close().await.unwrap();
        let t = common::operation_time().await;
        std::fs::write(fx.path("start"), format!("{}.{}", t.time, t.increment)).unwrap();
    }

    fn sink_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("url".into(), Self::db(fx).into());
        t.insert("table".into(), fx.name.clone().into());
        t
    }

    async fn written_keys(&self, fx: &Fixture) -> Vec<String> {
        let mut db = sqlx::SqliteConnection::connect(&Self::db(fx))
            .await
            .unwrap();
        let keys: Vec<(String,)> = sqlx::query_as(&format!("SELECT key FROM {}", fx.name))
            .fetch_all(&mut db)
            .await
            .unwrap();
        db.close().await.unwrap();
        keys.into_iter().map(|(k,)| k).collect()
    }

    fn source_config(&self, fx: &Fixture) -> toml::Table {
        let start = std::fs::read_to_string(fx.path("start")).expect("the fixture's start time");
        let mut from = toml::Table::new();
        from.insert("at_operation_time".into(), start.into());
        let mut t = toml::Table::new();
        t.insert("url".into(), common::url().into());
        t.insert("database".into(), common::DB.into());
        t.insert("collection".into(), format!("{}_in", fx.name).into());
        t.insert("start_from".into(), from.into());
        t.insert("output".into(), "document".into());
        t.insert("batch".into(), 20.into());
        t
    }

    async fn feed_source(&self, fx: &Fixture, seqs: Range<u64>) {
        common::feed(&format!("{}_in", fx.name), seqs).await;
    }
}

#[test]
fn change_stream_into_sqlite_survives_kill_nine_exactly_once() {
    let test = Test::new(
        module_path!(),
        "change_stream_into_sqlite_survives_kill_nine_exactly_once",
    );
    sluice_conformance::runtime().block_on(
        sluice_conformance::checks::kill_nine_loop_from_the_source(&MongoToSqlite, &test),
    );
}
