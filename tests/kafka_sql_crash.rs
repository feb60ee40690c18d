#![cfg(all(feature = "kafka", feature = "sql"))]
//! The exactly-once proof for Kafka → PostgreSQL: 100,000 records, `kill -9` at random moments
//! at least ten times, restart; the table ends with exactly one row per record. The SQL sink
//! stores its checkpoint (Kafka `topic/partition` offsets) in the same database transaction as
//! the rows, and the Kafka source seeks to it on start.
//!
//! Needs `scripts/services.sh up` (Kafka and PostgreSQL endpoints in the environment).

mod kafka_support;

use kafka_support::*;
use sluice_connector_sql::db::Db;

const RECORDS: u64 = 100_000;

#[test]
fn kafka_to_postgres_exactly_once_survives_kill_nine() {
    let b = brokers();
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL").expect(
        "SLUICE_TEST_POSTGRES_URL is not set: run scripts/services.sh up and source target/services.env",
    );
    let dir = tempfile::tempdir().unwrap();
    let (input, group, name) = (unique("pg-in"), unique("pg-g"), unique("kafka-pg"));
    let table = format!("kafka_crash_{}", std::process::id());
    create_topic(&b, &input, 4);
    datagen_into(dir.path(), &b, &input, RECORDS);
    // No unique key on seq: a duplicate would show up as a second row.
    let job = write(
        dir.path(),
        "job.toml",
        &format!(
            r#"api_version = 1
name = "{name}"
[delivery]
guarantee = "exactly-once"
commit_interval = "100ms"
[source]
type = "kafka"
brokers = "{b}"
topics = ["{input}"]
group = "{group}"
session_timeout = "6s"
batch_size = 200
# Small fetches and batches keep each run short enough to be killed ten times.
properties = {{ "max.partition.fetch.bytes" = "32768" }}
[[sinks]]
type = "sql"
url = "{url}"
table = "{table}"
create_table = true
schema = [
  {{ name = "seq", type = "BIGINT", nullable = false }},
  {{ name = "device_id", type = "TEXT" }},
  {{ name = "ts", type = "TEXT" }},
  {{ name = "temperature_c", type = "DOUBLE PRECISION" }},
]
batch = {{ max_records = 200, max_wait = "20ms" }}
"#
        ),
    );
    let kills = crash_loop(
        &job,
        &b,
        &group,
        &input,
        RECORDS,
        50,
        || committed_total(&b, &group, &input) as u64,
        |_| {},
    );
    assert!(kills >= KILLS, "only {kills} kills landed mid-run");
    let (rows, distinct, min, max) = rt().block_on(async {
        let db = Db::connect(&url, None, dir.path(), 1).await.unwrap();
        let sql = format!(
            "SELECT (COUNT(*))::text, (COUNT(DISTINCT seq))::text, (MIN(seq))::text, (MAX(seq))::text FROM {}",
            db.dialect().quote(&table)
        );
        let r = db.fetch_text(&sql, &[]).await.unwrap();
        db.exec(&format!("DROP TABLE {}", db.dialect().quote(&table)), &[])
            .await
            .unwrap();
        db.close().await;
        let n = |i: usize| -> i64 { r[0][i].as_deref().unwrap_or("-1").parse().unwrap() };
        (n(0), n(1), n(2), n(3))
    });
    assert_eq!(
        distinct, RECORDS as i64,
        "records lost: {distinct} distinct seq values"
    );
    assert_eq!((min, max), (0, RECORDS as i64 - 1));
    assert_eq!(
        rows,
        distinct,
        "exactly-once wrote {} rows twice",
        rows - distinct
    );
    println!(
        "kafka → PostgreSQL exactly-once: {kills} kill -9s, {rows} rows, {distinct} distinct, 0 duplicates"
    );
}
