//! SQL sink against real databases: insert, upsert, tombstones, type mapping, rejected rows,
//! exactly-once checkpoints. Needs `scripts/services.sh up` (PostgreSQL, MariaDB); SQLite is
//! embedded.

mod common;

use std::sync::Arc;

use common::{Target, connect, count, env, exec, rows, text, unique};
use serde_json::json;
use sluice_connector_sql::db::Dialect;
use sluice_connector_sql::{SqlSink, SqlSinkConfig};
use sluice_core::{
    Checkpoint, Guarantee, Offset, Position, Record, Sink, SinkContext, WriteReport,
};

fn config(url: &str, table: &str, extra: serde_json::Value) -> SqlSinkConfig {
    let mut v = json!({"url": url, "table": table});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

fn rec(value: serde_json::Value, offset: i64) -> Record {
    Record::new(
        serde_json::to_vec(&value).unwrap(),
        Position::int(Arc::from("p"), offset),
    )
}

async fn open(cfg: SqlSinkConfig, guarantee: Guarantee, job: &str) -> SqlSink {
    let mut sink = SqlSink::new(cfg, ".".into()).unwrap();
    sink.open(&SinkContext {
        job: job.into(),
        sink: "sql".into(),
        guarantee,
    })
    .await
    .unwrap();
    sink
}

fn readings_schema(target: Target) -> serde_json::Value {
    let (text_t, ts, json_t, bytes_t, bool_t) = match target {
        Target::Postgres => ("TEXT", "TIMESTAMPTZ", "JSONB", "BYTEA", "BOOLEAN"),
        Target::MySql => ("VARCHAR(64)", "DATETIME(3)", "JSON", "BLOB", "BOOLEAN"),
        Target::Sqlite => ("TEXT", "TEXT", "TEXT", "BLOB", "BOOLEAN"),
    };
    json!([
        {"name": "device_id", "type": text_t},
        {"name": "seq", "type": "BIGINT"},
        {"name": "temperature_c", "type": "DOUBLE PRECISION"},
        {"name": "price", "type": "DECIMAL(10,2)"},
        {"name": "ok", "type": bool_t},
        {"name": "ts", "type": ts},
        {"name": "meta", "type": json_t},
        {"name": "raw", "type": bytes_t},
        {"name": "note", "type": "VARCHAR(8)"},
    ])
}

fn reading(seq: i64) -> serde_json::Value {
    json!({
        "device_id": format!("dev-{seq:04}"),
        "seq": seq,
        "temperature_c": 71.25,
        "price": "12.50",
        "ok": seq % 2 == 0,
        "ts": "2026-11-25T10:00:00.123Z",
        "meta": {"fw": "1.4.2", "tags": [1, 2]},
        "raw": "AAEC",
        "note": "hi",
        "ignored": "extra fields are ignored"
    })
}

async fn inserts_and_maps_types(target: Target) {
    let env = env(target);
    let table = unique("sink_types");
    let cfg = config(
        &env.url,
        &table,
        json!({"create_table": true, "schema": readings_schema(target), "key": ["seq"], "statement_rows": 7}),
    );
    let mut sink = open(cfg, Guarantee::AtLeastOnce, "types").await;
    let records: Vec<Record> = (0..50).map(|i| rec(reading(i), i)).collect();
    let report = sink.write(&records, None).await.unwrap();
    assert!(report.rejected.is_empty(), "{report:?}");
    sink.close().await.unwrap();

    let db = connect(&env.url).await;
    let d = db.dialect();
    assert_eq!(count(&db, &table).await, 50);
    let cols = [
        "device_id",
        "seq",
        "temperature_c",
        "price",
        "ok",
        "meta",
        "raw",
        "note",
    ];
    let select: Vec<String> = cols.iter().map(|c| text(d, &d.quote(c))).collect();
    let r = rows(
        &db,
        &format!(
            "SELECT {} FROM {} WHERE {} = 3",
            select.join(", "),
            d.quote(&table),
            d.quote("seq")
        ),
    )
    .await;
    let r: Vec<String> = r[0].iter().map(|c| c.clone().unwrap_or_default()).collect();
    assert_eq!(r[0], "dev-0003");
    assert_eq!(r[1], "3");
    assert_eq!(r[2].parse::<f64>().unwrap(), 71.25);
    let price = if target == Target::Sqlite {
        "12.5"
    } else {
        "12.50"
    };
    assert_eq!(r[3], price);
    assert!(matches!(r[4].as_str(), "false" | "0"), "{}", r[4]);
    let meta: serde_json::Value = serde_json::from_str(&r[5]).unwrap();
    assert_eq!(meta, json!({"fw": "1.4.2", "tags": [1, 2]}));
    let raw_hex = rows(
        &db,
        &format!(
            "SELECT {} FROM {} WHERE {} = 3",
            match d {
                Dialect::Postgres => "encode(raw, 'hex')".to_string(),
                _ => "HEX(raw)".to_string(),
            },
            d.quote(&table),
            d.quote("seq")
        ),
    )
    .await;
    assert_eq!(
        raw_hex[0][0].as_deref().map(str::to_ascii_lowercase),
        Some("000102".into())
    );
    assert_eq!(r[7], "hi");
    let ts = rows(
        &db,
        &format!(
            "SELECT {} FROM {} WHERE {} = 3",
            text(d, &d.quote("ts")),
            d.quote(&table),
            d.quote("seq")
        ),
    )
    .await;
    let ts = ts[0][0].clone().unwrap();
    assert!(
        ts.starts_with("2026-11-25") && ts.contains("10:00:00.123"),
        "{ts}"
    );
}

async fn upserts_and_deletes_tombstones(target: Target) {
    let env = env(target);
    let table = unique("sink_upsert");
    let key_t = if target == Target::MySql {
        "VARCHAR(32)"
    } else {
        "TEXT"
    };
    let cfg = config(
        &env.url,
        &table,
        json!({
            "create_table": true,
            "schema": [{"name": "device_id", "type": key_t}, {"name": "n", "type": "BIGINT"}],
            "key": ["device_id"], "mode": "upsert", "delete_on_tombstone": true
        }),
    );
    let mut sink = open(cfg, Guarantee::AtLeastOnce, "upsert").await;
    let mut records = vec![
        rec(json!({"device_id": "a", "n": 1}), 0),
        rec(json!({"device_id": "b", "n": 1}), 1),
        rec(json!({"device_id": "a", "n": 2}), 2),
        rec(json!({"device_id": "c", "n": 1}), 3),
    ];
    let mut tomb = Record::new(Vec::new(), Position::int(Arc::from("p"), 4));
    tomb.key = Some(
        serde_json::to_vec(&json!({"device_id": "c"}))
            .unwrap()
            .into(),
    );
    records.push(tomb);
    let mut tomb = Record::new(Vec::new(), Position::int(Arc::from("p"), 5));
    tomb.key = Some("b".as_bytes().to_vec().into());
    records.push(tomb);
    let report = sink.write(&records, None).await.unwrap();
    assert!(report.rejected.is_empty(), "{report:?}");
    let report = sink
        .write(&[rec(json!({"device_id": "a", "n": 3}), 6)], None)
        .await
        .unwrap();
    assert!(report.rejected.is_empty());
    sink.close().await.unwrap();
    let db = connect(&env.url).await;
    let d = db.dialect();
    let r = rows(
        &db,
        &format!(
            "SELECT {}, {} FROM {} ORDER BY 1",
            text(d, "device_id"),
            text(d, "n"),
            d.quote(&table)
        ),
    )
    .await;
    assert_eq!(r, vec![vec![Some("a".to_string()), Some("3".to_string())]]);
}

async fn rejected_rows_roll_the_write_back_and_the_rest_lands_with_the_checkpoint(target: Target) {
    let env = env(target);
    let table = unique("sink_reject");
    let db = connect(&env.url).await;
    let d = db.dialect();
    // SQLite enforces types only in STRICT tables and lengths only by CHECK.
    let ddl = match target {
        Target::Sqlite => format!(
            "CREATE TABLE {} (id INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL CHECK (length(name) <= 8), n INTEGER) STRICT",
            d.quote(&table)
        ),
        _ => format!(
            "CREATE TABLE {} (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(8) NOT NULL, n INTEGER)",
            d.quote(&table)
        ),
    };
    exec(&db, &ddl).await;
    let job = unique("job");
    let cfg = config(
        &env.url,
        &table,
        json!({"offsets_table": "sluice_offsets_test"}),
    );
    let mut sink = open(cfg.clone(), Guarantee::ExactlyOnce, &job).await;
    assert_eq!(sink.committed_checkpoint().await.unwrap(), None);
    let records = vec![
        rec(json!({"id": 1, "name": "ok"}), 0),
        rec(json!({"id": 2, "name": null}), 1), // NOT NULL
        rec(json!({"id": 3, "name": "ok", "n": 5}), 2),
        rec(json!({"id": 1, "name": "dup"}), 3), // duplicate key
        rec(json!({"id": 4, "name": "ok", "n": "abc"}), 4), // not an integer
        rec(json!({"id": 5, "name": "much too long"}), 5), // too long
        Record::new(&b"not json"[..], Position::int(Arc::from("p"), 6)),
        rec(json!({"id": 6, "name": "ok"}), 7),
    ];
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("p"), 7));
    let report = sink.write(&records, Some(&cp)).await.unwrap();
    let idx: Vec<usize> = report.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(idx, vec![1, 3, 4, 5, 6], "{report:?}");
    for (_, msg) in &report.rejected {
        assert!(!msg.is_empty());
    }
    // Nothing committed, checkpoint included: the runtime dead-letters first.
    assert!(report.rolled_back);
    assert_eq!(count(&db, &table).await, 0);
    assert_eq!(sink.committed_checkpoint().await.unwrap(), None);
    // Then it writes the rest with the same checkpoint.
    let rest: Vec<Record> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !idx.contains(i))
        .map(|(_, r)| r.clone())
        .collect();
    let report = sink.write(&rest, Some(&cp)).await.unwrap();
    assert_eq!(report, WriteReport::ok());
    sink.close().await.unwrap();
    assert_eq!(count(&db, &table).await, 3);
    // The checkpoint landed with the rows.
    let mut again = open(cfg, Guarantee::ExactlyOnce, &job).await;
    let stored = again.committed_checkpoint().await.unwrap().unwrap();
    assert_eq!(stored.get("p"), Some(&Offset::Int(7)));
    // A second write advances it; an empty write with a checkpoint too.
    let mut cp2 = Checkpoint::default();
    cp2.advance(&Position::int(Arc::from("p"), 9));
    again
        .write(&[rec(json!({"id": 7, "name": "ok"}), 8)], Some(&cp2))
        .await
        .unwrap();
    let mut cp3 = Checkpoint::default();
    cp3.advance(&Position::int(Arc::from("p"), 12));
    again.write(&[], Some(&cp3)).await.unwrap();
    assert_eq!(
        again
            .committed_checkpoint()
            .await
            .unwrap()
            .unwrap()
            .get("p"),
        Some(&Offset::Int(12))
    );
    again.close().await.unwrap();
    assert_eq!(count(&db, &table).await, 4);
}

/// At-least-once replays rows after a crash: into a keyed table with `mode = "insert"`, a
/// replayed row equal to the stored one counts as written (every column type compared), while
/// a different row with the same key is still refused.
async fn at_least_once_insert_takes_a_replayed_row_but_refuses_a_different_one(target: Target) {
    let env = env(target);
    let table = unique("sink_replay");
    let cfg = config(
        &env.url,
        &table,
        json!({"create_table": true, "schema": readings_schema(target), "key": ["seq"], "statement_rows": 7}),
    );
    let mut sink = open(cfg, Guarantee::AtLeastOnce, "replay").await;
    let mut with_nulls = reading(7);
    with_nulls["meta"] = serde_json::Value::Null;
    with_nulls["note"] = serde_json::Value::Null;
    let records: Vec<Record> = (0..20)
        .map(|i| {
            rec(
                if i == 7 {
                    with_nulls.clone()
                } else {
                    reading(i)
                },
                i,
            )
        })
        .collect();
    assert_eq!(
        sink.write(&records[..10], None).await.unwrap(),
        WriteReport::ok()
    );
    // A crash replays 5..10 before 10..20 are new.
    assert_eq!(
        sink.write(&records[5..], None).await.unwrap(),
        WriteReport::ok()
    );
    let mut changed = reading(3);
    changed["temperature_c"] = json!(99.5);
    let report = sink
        .write(&[rec(reading(20), 20), rec(changed, 21)], None)
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].0, 1);
    assert!(report.rolled_back);
    sink.close().await.unwrap();
    let db = connect(&env.url).await;
    assert_eq!(count(&db, &table).await, 20);
}

async fn a_second_writer_of_the_same_checkpoint_is_fenced(target: Target) {
    let env = env(target);
    let table = unique("sink_fence");
    let db = connect(&env.url).await;
    exec(
        &db,
        &format!(
            "CREATE TABLE {} (id BIGINT PRIMARY KEY)",
            db.dialect().quote(&table)
        ),
    )
    .await;
    let job = unique("job");
    let cfg = config(
        &env.url,
        &table,
        json!({"offsets_table": "sluice_offsets_test"}),
    );
    let mut a = open(cfg.clone(), Guarantee::ExactlyOnce, &job).await;
    a.committed_checkpoint().await.unwrap();
    let mut b = open(cfg, Guarantee::ExactlyOnce, &job).await;
    b.committed_checkpoint().await.unwrap();
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("p"), 0));
    a.write(&[rec(json!({"id": 1}), 0)], Some(&cp))
        .await
        .unwrap();
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("p"), 1));
    let err = b
        .write(&[rec(json!({"id": 2}), 1)], Some(&cp))
        .await
        .unwrap_err();
    assert!(err.message.contains("another instance"), "{}", err.message);
    a.close().await.unwrap();
    b.close().await.unwrap();
    assert_eq!(count(&db, &table).await, 1);
}

async fn open_as(
    url: &str,
    table: &str,
    offsets: &str,
    job: &str,
    sink: &str,
) -> Result<SqlSink, sluice_core::ConnectorError> {
    let mut s = SqlSink::new(
        config(url, table, json!({"offsets_table": offsets})),
        ".".into(),
    )
    .unwrap();
    s.open(&SinkContext {
        job: job.into(),
        sink: sink.into(),
        guarantee: Guarantee::ExactlyOnce,
    })
    .await
    .map(|()| s)
}

/// Checkpoints name their table: an old `sluice_offsets` gains the column and its rows are
/// adopted by their sink; a checkpoint is then refused to a sink of another table (sinks
/// renumbered) and to another job or sink name on its table (renamed), instead of skipping or
/// replaying history.
async fn checkpoints_name_their_table_and_renames_are_refused(target: Target) {
    let env = env(target);
    let (table, other, offsets) = (unique("dest_a"), unique("dest_b"), unique("offsets_old"));
    let db = connect(&env.url).await;
    let d = db.dialect();
    for t in [&table, &other] {
        exec(&db, &format!("CREATE TABLE {} (id BIGINT)", d.quote(t))).await;
    }
    let key_t = if target == Target::MySql {
        "VARCHAR(190)"
    } else {
        "TEXT"
    };
    // The table as versions without destinations made it, holding one checkpoint.
    exec(
        &db,
        &format!(
            "CREATE TABLE {} (job {key_t} NOT NULL, sink {key_t} NOT NULL, {} {key_t} NOT NULL, position TEXT NOT NULL, PRIMARY KEY (job, sink, {}))",
            d.quote(&offsets),
            d.quote("partition"),
            d.quote("partition")
        ),
    )
    .await;
    let job = unique("job");
    let position = serde_json::to_string(&Offset::Int(5)).unwrap();
    exec(
        &db,
        &format!(
            "INSERT INTO {} VALUES ('{job}', 'sql', 'p', '{position}')",
            d.quote(&offsets)
        ),
    )
    .await;
    let mut sink = open_as(&env.url, &table, &offsets, &job, "sql")
        .await
        .unwrap();
    let cp = sink.committed_checkpoint().await.unwrap().unwrap();
    assert_eq!(
        cp.get("p"),
        Some(&Offset::Int(5)),
        "the old checkpoint is kept"
    );
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("p"), 6));
    cp.advance(&Position::int(Arc::from("q"), 0));
    sink.write(&[rec(json!({"id": 6}), 6)], Some(&cp))
        .await
        .unwrap();
    sink.close().await.unwrap();
    // The same sink name now writing another table: sinks were renumbered.
    let Err(err) = open_as(&env.url, &other, &offsets, &job, "sql").await else {
        panic!("a checkpoint of another table must be refused");
    };
    assert!(
        err.message.contains("named by their order") && err.message.contains(&table),
        "{}",
        err.message
    );
    // Another sink or job name on the same table: renamed.
    for (j, s) in [(job.as_str(), "sql-2"), ("renamed", "sql")] {
        let Err(err) = open_as(&env.url, &table, &offsets, j, s).await else {
            panic!("a checkpoint under another name must be refused");
        };
        assert!(err.message.contains("renamed"), "{}", err.message);
    }
    // The sink as it was still resumes, both partitions.
    let mut sink = open_as(&env.url, &table, &offsets, &job, "sql")
        .await
        .unwrap();
    let cp = sink.committed_checkpoint().await.unwrap().unwrap();
    assert_eq!(
        (cp.get("p"), cp.get("q")),
        (Some(&Offset::Int(6)), Some(&Offset::Int(0)))
    );
    sink.close().await.unwrap();
    assert_eq!(count(&db, &table).await, 1);
}

async fn explicit_column_mapping_with_field_paths(target: Target) {
    let env = env(target);
    let table = unique("sink_map");
    let db = connect(&env.url).await;
    let d = db.dialect();
    let auto = match target {
        Target::Postgres => "id BIGSERIAL PRIMARY KEY",
        Target::MySql => "id BIGINT AUTO_INCREMENT PRIMARY KEY",
        Target::Sqlite => "id INTEGER PRIMARY KEY",
    };
    exec(
        &db,
        &format!(
            "CREATE TABLE {} ({auto}, temp DOUBLE PRECISION, site VARCHAR(16), email VARCHAR(32))",
            d.quote(&table)
        ),
    )
    .await;
    let cfg = config(
        &env.url,
        &table,
        json!({"columns": {"temp": "reading.temp", "site": "where", "email": "customer.email"}}),
    );
    let mut sink = open(cfg, Guarantee::AtLeastOnce, "map").await;
    sink.write(
        &[
            rec(
                json!({"reading": {"temp": 1.5}, "where": "plant-1", "customer": {"email": "a@b.c"}}),
                0,
            ),
            rec(json!({"reading": {}, "where": "plant-2"}), 1),
        ],
        None,
    )
    .await
    .unwrap();
    sink.close().await.unwrap();
    let r = rows(
        &db,
        &format!(
            "SELECT {}, {}, {} FROM {} ORDER BY id",
            text(d, "temp"),
            text(d, "site"),
            text(d, "email"),
            d.quote(&table)
        ),
    )
    .await;
    assert_eq!(
        r[0][0].as_deref().map(|s| s.parse::<f64>().unwrap()),
        Some(1.5)
    );
    assert_eq!(r[0][1].as_deref(), Some("plant-1"));
    assert_eq!(
        r[0][2].as_deref(),
        Some("a@b.c"),
        "a nested field by its dotted path"
    );
    assert_eq!(r[1][0], None);
    assert_eq!(r[1][2], None, "a record without the field writes NULL");
}

/// A column mapped to a path that can never name a field (a JSON pointer, an empty segment) is
/// refused when the job is loaded, at the option's line, not written as NULL forever.
#[test]
fn a_malformed_column_path_is_a_config_error_at_its_line() {
    let mut registry = sluice_core::Registry::new();
    sluice_connector_sql::register(&mut registry);
    registry.register_source::<sluice_core::testing::MemSourceConnector>();
    for (path, says) in [
        ("/customer/email", "write \"customer.email\""),
        ("customer..email", "empty segment"),
    ] {
        let job = format!(
            "api_version = 1\nname = \"paths\"\n[source]\ntype = \"mem\"\ncount = 1\n[[sinks]]\ntype = \"sql\"\nurl = \"sqlite::memory:\"\ntable = \"t\"\ncolumns = {{ email = \"{path}\" }}\n"
        );
        let err = sluice_core::job::load_job_str(
            &job,
            "job.toml",
            std::path::Path::new("."),
            None,
            &registry,
        )
        .expect_err("a malformed path was accepted")
        .to_string();
        assert!(
            err.starts_with("job.toml:10: sinks[0].columns.email: "),
            "{err}"
        );
        assert!(err.contains(says), "{err}");
    }
}

async fn missing_table_is_a_config_error(target: Target) {
    let env = env(target);
    let mut sink = SqlSink::new(config(&env.url, &unique("nope"), json!({})), ".".into()).unwrap();
    let err = sink
        .open(&SinkContext {
            job: "j".into(),
            sink: "s".into(),
            guarantee: Guarantee::AtLeastOnce,
        })
        .await
        .unwrap_err();
    assert!(err.message.contains("create_table"), "{}", err.message);
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
    inserts_and_maps_types,
    upserts_and_deletes_tombstones,
    rejected_rows_roll_the_write_back_and_the_rest_lands_with_the_checkpoint,
    at_least_once_insert_takes_a_replayed_row_but_refuses_a_different_one,
    a_second_writer_of_the_same_checkpoint_is_fenced,
    checkpoints_name_their_table_and_renames_are_refused,
    explicit_column_mapping_with_field_paths,
    missing_table_is_a_config_error,
);
