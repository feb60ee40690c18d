//! The exactly-once proofs for file → S3 (Parquet; partitioned by arrival hour, and by a field
//! with per-partition buffering) on moto
//! (`scripts/services.sh up moto pyarrow`): kill -9 at random moments, restart, then list every
//! object, read every row back (with the `parquet` crate AND pyarrow): every generated record
//! exactly once. `SLUICE_S3_CRASH_KILLS` / `SLUICE_S3_CRASH_RECORDS` make it longer (at least
//! 10 kills).

mod common;
mod s3_support;

use std::collections::BTreeMap;

use common::*;
use s3_support::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kill_nine_into_s3_neither_loses_nor_duplicates() {
    kill_nine_run(
        "s3crash",
        "prefix = \"readings/dt={date}/hour={hour}/\"\npartition_time = \"arrival\"",
    );
}

/// Per-partition buffering: each site's records are held across writes (up to 700 records or
/// 300 ms), so the stored checkpoint lags behind the held records and a restart replays them,
/// skipping what each site's objects already hold.
#[test]
fn kill_nine_with_per_partition_buffering_neither_loses_nor_duplicates() {
    kill_nine_run(
        "s3crashbuf",
        "prefix = \"readings/site={field:site}/\"\nbuffering = { max_records = 700, max_wait = \"300ms\" }",
    );
}

/// file → S3 Parquet, exactly-once, `partitioning` the sink's prefix and buffering lines.
fn kill_nine_run(name: &str, partitioning: &str) {
    let records = env_or("SLUICE_S3_CRASH_RECORDS", 20_000);
    let kills = env_or("SLUICE_S3_CRASH_KILLS", 10).max(10) as u32;
    let python = python();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n: u32 = rand::random();
    let bucket = format!("{name}-{}-{n:08x}", std::process::id());
    rt.block_on(async {
        client()
            .await
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
    });

    let dir = tempfile::tempdir().unwrap();
    generate_input(dir.path(), "in.jsonl", records);
    let job = write_job(
        dir.path(),
        "job.toml",
        &format!(
            r#"
api_version = 1
name = "{name}"
[delivery]
guarantee = "exactly-once"
commit_interval = "50ms"
[source]
type = "file"
path = "in.jsonl"
read_size = "16KiB"
[[sinks]]
type = "s3"
bucket = "{bucket}"
endpoint = "{}"
region = "us-east-1"
force_path_style = true
{partitioning}
format = "parquet"
compression = "zstd"
batch = {{ max_records = 200, max_wait = "20ms" }}
"#,
            endpoint()
        ),
    );
    let landed = run_with_kills(&job, kills);
    assert!(landed >= 5, "only {landed} kills landed mid-run");

    let objects = rt.block_on(objects(&bucket));
    let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
    for (key, body) in &objects {
        assert!(
            key.starts_with("readings/") && key.ends_with(".parquet"),
            "{key}"
        );
        for seq in seqs_of_parquet(body) {
            *counts.entry(seq).or_insert(0) += 1;
        }
    }
    let duplicates = assert_all_present(&counts, records);
    assert_eq!(
        duplicates, 0,
        "exactly-once wrote {duplicates} duplicates after {landed} kills"
    );

    // The independent reader agrees.
    assert_eq!(
        pyarrow_seqs(&python, &objects),
        (records as usize, records as usize, 0, records - 1)
    );
    println!(
        "{name}: file → S3 Parquet exactly-once: {landed} kill -9s, {records} records in {} objects, 0 lost, 0 duplicated",
        objects.len()
    );
}
