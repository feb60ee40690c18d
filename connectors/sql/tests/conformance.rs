//! The shared connector conformance suite (`sluice-conformance`) for the `sql` source and sink,
//! on PostgreSQL and MariaDB (endpoints from `scripts/services.sh up`) and SQLite: two tables per
//! test (`<name>_in` for the source, `<name>` for the sink, with no unique key so that a record
//! written twice shows up twice).

mod common;

use std::ops::Range;

use common::{Target, connect, exec, rows};
use sluice_conformance::{Claims, Fixture, Harness, toml};
use sluice_core::testing::{test_key, test_value};
use sluice_core::{Registry, async_trait};

struct SqlHarness {
    target: Target,
}

impl SqlHarness {
    fn url(&self, fx: &Fixture) -> String {
        match self.target {
            Target::Sqlite => format!("sqlite://{}", fx.path("test.db").display()),
            other => common::env(other).url,
        }
    }
}

#[async_trait]
impl Harness for SqlHarness {
    fn source_type(&self) -> Option<&'static str> {
        Some("sql")
    }

    fn sink_type(&self) -> Option<&'static str> {
        Some("sql")
    }

    fn register(&self, registry: &mut Registry) {
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
        let db = connect(&self.url(fx)).await;
        let (id, note) = match self.target {
            Target::Postgres => ("id BIGSERIAL PRIMARY KEY", "TEXT"),
            Target::MySql => ("id BIGINT AUTO_INCREMENT PRIMARY KEY", "TEXT"),
            Target::Sqlite => ("id INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT"),
        };
        let (name, key) = (&fx.name, db.dialect().quote("key"));
        exec(
            &db,
            &format!(
                "CREATE TABLE {name} ({key} VARCHAR(40) NOT NULL, seq BIGINT NOT NULL, note {note})"
            ),
        )
        .await;
        exec(
            &db,
            &format!("CREATE TABLE {name}_in ({id}, {key} VARCHAR(40), seq BIGINT, note {note})"),
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
        let key = db.dialect().quote("key");
        let keys = rows(&db, &format!("SELECT {key} FROM {}", fx.name)).await;
        db.close().await;
        keys.into_iter()
            .map(|r| r[0].clone().unwrap_or_default())
            .collect()
    }

    fn source_config(&self, fx: &Fixture) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("url".into(), self.url(fx).into());
        t.insert("table".into(), format!("{}_in", fx.name).into());
        t.insert("mode".into(), "incrementing".into());
        t.insert("incrementing_column".into(), "id".into());
        t.insert("batch_size".into(), 20.into());
        t.insert("poll_interval".into(), "50ms".into());
        t.insert("stop_when_caught_up".into(), true.into());
        t
    }

    async fn feed_source(&self, fx: &Fixture, seqs: Range<u64>) {
        let db = connect(&self.url(fx)).await;
        let seqs: Vec<u64> = seqs.collect();
        for chunk in seqs.chunks(500) {
            let values: Vec<String> = chunk
                .iter()
                .map(|s| {
                    let note = serde_json::from_str::<serde_json::Value>(&test_value(*s)).unwrap()
                        ["note"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    format!("('{}', {s}, '{note}')", test_key(*s))
                })
                .collect();
            let key = db.dialect().quote("key");
            exec(
                &db,
                &format!(
                    "INSERT INTO {}_in ({key}, seq, note) VALUES {}",
                    fx.name,
                    values.join(", ")
                ),
            )
            .await;
        }
        db.close().await;
    }

    fn source_is_bounded(&self) -> bool {
        true
    }

    /// No `seq`: NULL into a NOT NULL column.
    fn rejected_value(&self) -> Option<String> {
        Some(format!(
            "{{\"key\":\"{}\",\"note\":\"no seq\"}}",
            test_key(1)
        ))
    }

    fn unreachable_sink_config(&self, fx: &Fixture) -> Option<toml::Table> {
        let url = match self.target {
            Target::Postgres => "postgres://postgres@127.0.0.1:1/test",
            Target::MySql => "mysql://root@127.0.0.1:1/test",
            Target::Sqlite => return None,
        };
        let mut t = self.sink_config(fx);
        t.insert("url".into(), url.into());
        Some(t)
    }
}

mod postgres {
    use super::*;
    sluice_conformance::conformance_tests!(SqlHarness {
        target: Target::Postgres
    });
}

mod mariadb {
    use super::*;
    sluice_conformance::conformance_tests!(SqlHarness {
        target: Target::MySql
    });
}

mod sqlite {
    use super::*;
    sluice_conformance::conformance_tests!(SqlHarness {
        target: Target::Sqlite
    });
}
