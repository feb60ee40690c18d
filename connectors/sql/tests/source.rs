//! SQL source against real databases: the three polling modes, type mapping, and restarts that
//! neither lose nor repeat committed rows. Needs `scripts/services.sh up`.

mod common;

use common::{Target, connect, env, exec, unique};
use serde_json::{Value, json};
use sluice_connector_sql::{SqlSource, SqlSourceConfig};
use sluice_core::{Checkpoint, Record, Source};

fn config(url: &str, extra: Value) -> SqlSourceConfig {
    let mut v = json!({"url": url, "poll_interval": "10ms", "stop_when_caught_up": true});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

/// Read until the source is caught up; returns every record.
async fn drain(cfg: SqlSourceConfig, resume: Option<Checkpoint>) -> Vec<Record> {
    let mut src = SqlSource::new(cfg, ".".into()).unwrap();
    src.open(resume).await.unwrap();
    let mut out = Vec::new();
    while let Some(batch) = src.next_batch().await.unwrap() {
        out.extend(batch.records);
    }
    src.close().await.unwrap();
    out
}

fn values(records: &[Record]) -> Vec<Value> {
    records
        .iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect()
}

fn checkpoint_after(record: &Record) -> Checkpoint {
    let mut cp = Checkpoint::default();
    cp.advance(&record.position);
    cp
}

fn ts_type(target: Target) -> &'static str {
    match target {
        Target::Postgres => "TIMESTAMPTZ",
        Target::MySql => "DATETIME(6)",
        Target::Sqlite => "TEXT",
    }
}

async fn incrementing_mode_resumes_without_loss_or_repeat(target: Target) {
    let env = env(target);
    let table = unique("src_inc");
    let db = connect(&env.url).await;
    let d = db.dialect();
    let q = d.quote(&table);
    exec(
        &db,
        &format!("CREATE TABLE {q} (id BIGINT PRIMARY KEY, name VARCHAR(20))"),
    )
    .await;
    let insert = |from: i64, to: i64| {
        let rows: Vec<String> = (from..to).map(|i| format!("({i}, 'n{i}')")).collect();
        format!("INSERT INTO {q} (id, name) VALUES {}", rows.join(", "))
    };
    exec(&db, &insert(1, 26)).await;
    let cfg = config(
        &env.url,
        json!({"table": table, "mode": "incrementing", "incrementing_column": "id", "batch_size": 10}),
    );
    let first = drain(cfg.clone(), None).await;
    assert_eq!(first.len(), 25);
    assert_eq!(values(&first)[0], json!({"id": 1, "name": "n1"}));
    // Restart after a commit in the middle: exactly the rest comes again.
    let cp = checkpoint_after(&first[11]);
    let rest = drain(cfg.clone(), Some(cp)).await;
    let ids: Vec<i64> = values(&rest)
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (13..26).collect::<Vec<_>>());
    // New rows after the last commit.
    exec(&db, &insert(26, 31)).await;
    let cp = checkpoint_after(first.last().unwrap());
    let new = drain(cfg, Some(cp)).await;
    let ids: Vec<i64> = values(&new)
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (26..31).collect::<Vec<_>>());
}

async fn timestamp_mode_never_splits_equal_timestamps(target: Target) {
    let env = env(target);
    let table = unique("src_ts");
    let db = connect(&env.url).await;
    let q = db.dialect().quote(&table);
    exec(
        &db,
        &format!(
            "CREATE TABLE {q} (k VARCHAR(10), updated_at {} NOT NULL)",
            ts_type(target)
        ),
    )
    .await;
    let t1 = "2026-11-25 10:00:00.250000";
    let t2 = "2026-11-25 10:00:01.000000";
    let mut rows = Vec::new();
    for i in 0..5 {
        rows.push(format!("('a{i}', '{t1}')"));
    }
    rows.push(format!("('b0', '{t2}')"));
    rows.push(format!("('b1', '{t2}')"));
    exec(
        &db,
        &format!("INSERT INTO {q} (k, updated_at) VALUES {}", rows.join(", ")),
    )
    .await;
    let cfg = config(
        &env.url,
        json!({"table": table, "mode": "timestamp", "timestamp_column": "updated_at", "batch_size": 3}),
    );
    let all = drain(cfg.clone(), None).await;
    let mut keys: Vec<String> = values(&all)
        .iter()
        .map(|v| v["k"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["a0", "a1", "a2", "a3", "a4", "b0", "b1"]);
    for w in all.windows(2) {
        assert!(w[0].position.offset <= w[1].position.offset);
    }
    assert!(all[0].timestamp.is_some());
    // An update moves a row past the cursor: it is read again, alone.
    let cp = checkpoint_after(all.last().unwrap());
    exec(
        &db,
        &format!("UPDATE {q} SET updated_at = '2026-11-25 10:00:02.000000' WHERE k = 'a3'"),
    )
    .await;
    let again = drain(cfg, Some(cp)).await;
    assert_eq!(
        values(&again)
            .iter()
            .map(|v| v["k"].clone())
            .collect::<Vec<_>>(),
        vec![json!("a3")]
    );
}

async fn timestamp_incrementing_mode_breaks_ties_by_id(target: Target) {
    let env = env(target);
    let table = unique("src_tsid");
    let db = connect(&env.url).await;
    let q = db.dialect().quote(&table);
    exec(
        &db,
        &format!(
            "CREATE TABLE {q} (id BIGINT PRIMARY KEY, updated_at {} NOT NULL)",
            ts_type(target)
        ),
    )
    .await;
    let rows: Vec<String> = (1..=9)
        .map(|i| format!("({i}, '2026-11-25 10:00:0{}.000000')", i / 4))
        .collect();
    exec(
        &db,
        &format!(
            "INSERT INTO {q} (id, updated_at) VALUES {}",
            rows.join(", ")
        ),
    )
    .await;
    let cfg = config(
        &env.url,
        json!({"table": table, "mode": "timestamp-incrementing", "timestamp_column": "updated_at",
               "incrementing_column": "id", "batch_size": 2}),
    );
    let all = drain(cfg.clone(), None).await;
    let ids: Vec<i64> = values(&all)
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (1..=9).collect::<Vec<_>>());
    for w in all.windows(2) {
        assert!(
            w[0].position.offset < w[1].position.offset,
            "{:?}",
            (&w[0].position, &w[1].position)
        );
    }
    // Resume in the middle of a group of equal timestamps.
    let rest = drain(cfg, Some(checkpoint_after(&all[4]))).await;
    let ids: Vec<i64> = values(&rest)
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (6..=9).collect::<Vec<_>>());
}

async fn custom_query_maps_types_faithfully(target: Target) {
    let env = env(target);
    let table = unique("src_types");
    let db = connect(&env.url).await;
    let q = db.dialect().quote(&table);
    let (ddl, insert) = match target {
        Target::Postgres => (
            format!(
                "CREATE TABLE {q} (id INTEGER PRIMARY KEY, big BIGINT, f DOUBLE PRECISION, dec NUMERIC(20,6), ok BOOLEAN, name TEXT, at TIMESTAMPTZ, local TIMESTAMP, day DATE, doc JSONB, raw BYTEA, u UUID)"
            ),
            format!(
                "INSERT INTO {q} VALUES (1, 9007199254740993, 1.5, 12345678901234.000001, true, 'é', '2026-11-25 11:00:00.5+01', '2026-11-25 10:00:00', '2026-11-25', '{{\"a\": [1, 2]}}', '\\x000102', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
            ),
        ),
        Target::MySql => (
            format!(
                "CREATE TABLE {q} (id INTEGER PRIMARY KEY, big BIGINT, f DOUBLE, `dec` DECIMAL(20,6), ok BOOLEAN, name VARCHAR(10), at TIMESTAMP(6) NULL, local DATETIME, day DATE, doc JSON, raw BLOB, u CHAR(36))"
            ),
            format!(
                "INSERT INTO {q} VALUES (1, 9007199254740993, 1.5, 12345678901234.000001, true, 'é', '2026-11-25 10:00:00.5', '2026-11-25 10:00:00', '2026-11-25', '{{\"a\": [1, 2]}}', X'000102', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
            ),
        ),
        Target::Sqlite => (
            format!(
                "CREATE TABLE {q} (id INTEGER PRIMARY KEY, big BIGINT, f REAL, dec TEXT, ok BOOLEAN, name TEXT, at TEXT, local TEXT, day TEXT, doc JSON, raw BLOB, u TEXT)"
            ),
            format!(
                "INSERT INTO {q} VALUES (1, 9007199254740993, 1.5, '12345678901234.000001', 1, 'é', '2026-11-25T10:00:00.500000Z', '2026-11-25T10:00:00.000000', '2026-11-25', '{{\"a\": [1, 2]}}', X'000102', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
            ),
        ),
    };
    exec(&db, &ddl).await;
    exec(&db, &insert).await;
    let cfg = config(
        &env.url,
        json!({"query": format!("SELECT * FROM {q}"), "mode": "incrementing", "incrementing_column": "id"}),
    );
    let rows = values(&drain(cfg, None).await);
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r["big"], json!(9007199254740993_i64));
    assert_eq!(r["f"], json!(1.5));
    assert_eq!(r["dec"], json!("12345678901234.000001"));
    assert_eq!(r["ok"], json!(true));
    assert_eq!(r["name"], json!("é"));
    assert_eq!(r["at"], json!("2026-11-25T10:00:00.500000Z"));
    assert_eq!(r["local"], json!("2026-11-25T10:00:00.000000"));
    assert_eq!(r["day"], json!("2026-11-25"));
    match target {
        // MariaDB's JSON is LONGTEXT with a binary collation, which the driver cannot tell
        // from a BLOB: it arrives as base64 (CAST(doc AS CHAR) in a custom query gives text).
        Target::MySql => {
            use base64::Engine;
            let text = base64::engine::general_purpose::STANDARD
                .decode(r["doc"].as_str().unwrap())
                .unwrap();
            let doc: Value = serde_json::from_slice(&text).unwrap();
            assert_eq!(doc, json!({"a": [1, 2]}));
        }
        // SQLite has no JSON type: the text comes as stored.
        Target::Sqlite => assert_eq!(r["doc"], json!("{\"a\": [1, 2]}")),
        Target::Postgres => assert_eq!(r["doc"], json!({"a": [1, 2]})),
    }
    assert_eq!(r["raw"], json!("AAEC"));
    assert_eq!(r["u"], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    let nulls = rows[1].as_object().unwrap();
    assert!(
        nulls
            .iter()
            .filter(|(k, _)| *k != "id")
            .all(|(_, v)| v.is_null()),
        "{nulls:?}"
    );
}

macro_rules! per_database {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Target::Postgres).await })*
        }
        mod mysql {
            $(#[tokio::test] async fn $name() { super::$name(super::Target::MySql).await })*
        }
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Target::Sqlite).await })*
        }
    };
}

per_database!(
    incrementing_mode_resumes_without_loss_or_repeat,
    timestamp_mode_never_splits_equal_timestamps,
    timestamp_incrementing_mode_breaks_ties_by_id,
    custom_query_maps_types_faithfully,
);
