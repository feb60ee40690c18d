//! The exactly-once proof for file → S3 (Parquet, partitioned by arrival hour) on moto
//! (`scripts/services.sh up moto pyarrow`): kill -9 at random moments, restart, then list every
//! object, read every row back (with the `parquet` crate AND pyarrow): every generated record
//! exactly once. `SLUICE_S3_CRASH_KILLS` / `SLUICE_S3_CRASH_RECORDS` make it longer (at least
//! 10 kills).

mod common;

use std::collections::BTreeMap;

use common::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn endpoint() -> String {
    std::env::var("SLUICE_TEST_AWS_ENDPOINT").expect(
        "SLUICE_TEST_AWS_ENDPOINT is not set: run `bash scripts/services.sh up moto` and source target/services.env",
    )
}

fn python() -> String {
    std::env::var("SLUICE_TEST_PYARROW_PYTHON").expect(
        "SLUICE_TEST_PYARROW_PYTHON is not set: run `bash scripts/services.sh up pyarrow` and source target/services.env",
    )
}

async fn client() -> aws_sdk_s3::Client {
    let conn = sluice_aws::AwsConnection {
        region: Some(
            std::env::var("SLUICE_TEST_AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        ),
        endpoint: Some(endpoint()),
        auth: Default::default(),
    };
    let sdk = conn.sdk_config().await.expect("sdk config");
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Every data object (key, body) of the bucket.
async fn objects(bucket: &str) -> Vec<(String, bytes::Bytes)> {
    let c = client().await;
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        for key in page.contents().iter().filter_map(|o| o.key()) {
            if key.contains("_sluice/") {
                continue;
            }
            let body = c.get_object().bucket(bucket).key(key).send().await.unwrap();
            out.push((
                key.to_string(),
                body.body.collect().await.unwrap().into_bytes(),
            ));
        }
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return out,
        }
    }
}

fn seqs_of_parquet(body: &bytes::Bytes) -> Vec<u64> {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body.clone())
            .unwrap()
            .build()
            .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
        w.write(&batch.unwrap()).unwrap();
        w.finish().unwrap();
        for line in String::from_utf8(w.into_inner()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            out.push(v["seq"].as_u64().expect("a row without seq"));
        }
    }
    out
}

#[test]
fn kill_nine_into_s3_neither_loses_nor_duplicates() {
    let records = env_or("SLUICE_S3_CRASH_RECORDS", 20_000);
    let kills = env_or("SLUICE_S3_CRASH_KILLS", 10).max(10) as u32;
    let python = python();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n: u32 = rand::random();
    let bucket = format!("s3-crash-{}-{n:08x}", std::process::id());
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
name = "s3crash"
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
prefix = "readings/dt={{date}}/hour={{hour}}/"
format = "parquet"
compression = "zstd"
partition_time = "arrival"
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
            key.starts_with("readings/dt=") && key.ends_with(".parquet"),
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
    let files = tempfile::tempdir().unwrap();
    for (i, (_, body)) in objects.iter().enumerate() {
        std::fs::write(files.path().join(format!("{i}.parquet")), body).unwrap();
    }
    let script = "import sys, glob, pyarrow.parquet as pq\nseqs = [s for p in glob.glob(sys.argv[1] + '/*.parquet') for s in pq.read_table(p).column('seq').to_pylist()]\nprint(len(seqs), len(set(seqs)), min(seqs), max(seqs))";
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(files.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{records} {records} 0 {}", records - 1)
    );
    println!(
        "file → S3 Parquet exactly-once: {landed} kill -9s, {records} records in {} objects, 0 lost, 0 duplicated",
        objects.len()
    );
}
