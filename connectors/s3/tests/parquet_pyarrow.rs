//! Parquet objects of the S3 sink read by an independent reader: pyarrow (pinned, in the venv
//! `scripts/services.sh up pyarrow` makes; `SLUICE_TEST_PYARROW_PYTHON`), besides the `parquet`
//! crate. The schema is inferred from the first write; a later record that does not fit it is
//! rejected (dead letter) and the rest written.

mod common;

use std::sync::Arc;

use sluice_core::testing::test_key;
use sluice_core::{Guarantee, Position, Record};

fn python() -> String {
    std::env::var("SLUICE_TEST_PYARROW_PYTHON").expect(
        "SLUICE_TEST_PYARROW_PYTHON is not set: run `bash scripts/services.sh up pyarrow` and source target/services.env",
    )
}

fn reading(seq: u64, temp: &str) -> Record {
    let mut r = Record::new(
        format!(
            "{{\"key\":\"{}\",\"device\":\"d{}\",\"temp\":{temp},\"ok\":true}}",
            test_key(seq),
            seq % 3
        ),
        Position::int(Arc::from("p"), seq as i64),
    );
    r.timestamp = Some(1_767_324_600_000);
    r
}

#[tokio::test]
async fn parquet_with_an_inferred_schema_is_read_back_by_pyarrow() {
    let python = python();
    let bucket = common::unique("s3-parquet");
    common::create_bucket(&bucket).await;
    let table = common::sink_table(
        &bucket,
        "prefix = 'readings/dt={date}/hour={hour}/'\nformat = 'parquet'\ncompression = 'gzip'",
    );
    let mut sink = common::open_sink(table, "pq", Guarantee::AtLeastOnce).await;
    let first: Vec<Record> = (0..30).map(|i| reading(i, &format!("{i}.5"))).collect();
    assert_eq!(
        sink.write(&first, None).await.unwrap(),
        sluice_core::WriteReport::ok()
    );
    let mut second: Vec<Record> = (30..40).map(|i| reading(i, "20.25")).collect();
    second[4] = reading(34, "\"hot\"");
    let report = sink.write(&second, None).await.unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].0, 4);
    assert!(
        report.rejected[0].1.contains("Parquet schema"),
        "{report:?}"
    );
    sink.close().await.unwrap();

    let objects = common::data_keys(&bucket).await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut from_crate = Vec::new();
    for (n, key) in objects.iter().enumerate() {
        assert!(
            key.starts_with("readings/dt=2026-01-02/hour=03/pq-archive-"),
            "{key}"
        );
        assert!(key.ends_with(".parquet"), "{key}");
        let body = common::get(&bucket, key).await;
        from_crate.extend(
            common::parquet_rows(&body)
                .into_iter()
                .map(|d| d["key"].as_str().unwrap().to_string()),
        );
        std::fs::write(dir.path().join(format!("{n}.parquet")), &body).unwrap();
    }
    let script = r#"
import json, sys, glob
import pyarrow.parquet as pq
keys = []
for path in sorted(glob.glob(sys.argv[1] + "/*.parquet")):
    t = pq.read_table(path)
    assert t.schema.field("temp").type == "double", t.schema
    assert t.schema.field("ok").type == "bool", t.schema
    keys += t.column("key").to_pylist()
print(json.dumps(keys))
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(
        out.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut from_pyarrow: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    from_pyarrow.sort();
    from_crate.sort();
    let want: Vec<String> = (0..40).filter(|&i| i != 34).map(test_key).collect();
    assert_eq!(from_pyarrow, want);
    assert_eq!(from_crate, want);
}
