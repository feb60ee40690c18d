//! Helpers shared by the S3 sink tests: moto from `scripts/services.sh up moto`
//! (`SLUICE_TEST_AWS_ENDPOINT`, `SLUICE_TEST_AWS_REGION`), a bucket per test, and reading back
//! every object the sink made (JSON lines plain/gzip/zstd, Parquet through the `parquet` crate).
#![allow(dead_code, missing_docs)]

use std::io::Read;

use aws_sdk_s3::Client;
use bytes::Bytes;
use sluice_aws::{AwsAuth, AwsConnection};
use sluice_core::{BuildContext, Guarantee, Registry, Sink, SinkContext};

/// The emulator's endpoint. Missing = a failed test, never a skip.
pub fn endpoint() -> String {
    std::env::var("SLUICE_TEST_AWS_ENDPOINT").expect(
        "SLUICE_TEST_AWS_ENDPOINT is not set: run `bash scripts/services.sh up moto` and source target/services.env",
    )
}

pub fn region() -> String {
    std::env::var("SLUICE_TEST_AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}

/// A bucket name no other test or run uses (lowercase, dashes).
pub fn unique(prefix: &str) -> String {
    let n: u32 = rand_u32();
    format!("{prefix}-{}-{n:08x}", std::process::id()).replace('_', "-")
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

pub async fn client() -> Client {
    let conn = AwsConnection {
        region: Some(region()),
        endpoint: Some(endpoint()),
        auth: AwsAuth::default(),
    };
    let sdk = conn.sdk_config().await.expect("sdk config");
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

pub async fn create_bucket(name: &str) {
    client()
        .await
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateBucket {name}: {e:?}"));
}

/// Every key in the bucket (paged).
pub async fn list(bucket: &str) -> Vec<String> {
    let c = client().await;
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = c
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListObjectsV2 {bucket}: {e:?}"));
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return keys,
        }
    }
}

/// Data objects only (not the `_sluice/` checkpoint objects).
pub async fn data_keys(bucket: &str) -> Vec<String> {
    list(bucket)
        .await
        .into_iter()
        .filter(|k| !k.contains("_sluice/"))
        .collect()
}

pub async fn get(bucket: &str, key: &str) -> Bytes {
    client()
        .await
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObject {key}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
}

/// The JSON documents of one object, decoded by its extension.
pub fn documents(key: &str, body: &Bytes) -> Vec<serde_json::Value> {
    if key.ends_with(".parquet") {
        return parquet_rows(body);
    }
    let mut text = String::new();
    if key.ends_with(".gz") {
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
    } else if key.ends_with(".zst") {
        text = String::from_utf8(zstd::decode_all(&body[..]).unwrap()).unwrap();
    } else {
        text = String::from_utf8(body.to_vec()).unwrap();
    }
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{key}: {l:?}: {e}")))
        .collect()
}

/// The rows of a Parquet file as JSON objects (through arrow-json's writer).
pub fn parquet_rows(body: &Bytes) -> Vec<serde_json::Value> {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body.clone())
            .expect("a Parquet file")
            .build()
            .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
        w.write(&batch).unwrap();
        w.finish().unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        out.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    out
}

/// Every document in every data object of the bucket, with its object's key.
pub async fn all_documents(bucket: &str) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for key in data_keys(bucket).await {
        let body = get(bucket, &key).await;
        out.extend(documents(&key, &body).into_iter().map(|d| (key.clone(), d)));
    }
    out
}

/// The sink config table for `bucket` on the emulator, plus `extra` TOML.
pub fn sink_table(bucket: &str, extra: &str) -> toml::Table {
    let mut t: toml::Table = toml::from_str(extra).unwrap();
    t.insert("bucket".into(), bucket.into());
    t.insert("endpoint".into(), endpoint().into());
    t.insert("region".into(), region().into());
    t.insert("force_path_style".into(), true.into());
    t
}

/// A sink built the way a job file builds it, and opened.
pub async fn open_sink(table: toml::Table, job: &str, g: Guarantee) -> Box<dyn Sink> {
    let mut registry = Registry::new();
    sluice_connector_s3::register(&mut registry);
    let ctx = BuildContext::new(job, ".", ".", g);
    let mut sink = registry.sink("s3").unwrap().build(table, &ctx).unwrap();
    sink.open(&SinkContext {
        job: job.into(),
        sink: "archive".into(),
        guarantee: g,
    })
    .await
    .unwrap();
    sink
}
