//! The baseline of the datagen → S3 benchmark (`bench/s3/run.sh`): a plain `aws-sdk-s3` loop on
//! the same endpoint writing the same objects as the sink: the same datagen records in
//! 10,000-record slices (the sink's default `batch.max_records`), each slice one object of
//! gzip JSON lines or of zstd Parquet (schema inferred from the first slice), one PutObject
//! each, every answer checked.
//!
//! ```text
//! s3_loop ENDPOINT BUCKET RECORDS json-gz|parquet
//!     Prints `seconds=S records=N bytes=B`.
//! ```

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use arrow_json::ReaderBuilder;
use aws_sdk_s3::primitives::ByteStream;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_aws::AwsConnection;
use sluice_core::{BuildContext, Guarantee, Registry};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: s3_loop ENDPOINT BUCKET RECORDS json-gz|parquet");
        std::process::exit(2);
    }
    let (endpoint, bucket, records, format) = (
        &args[1],
        &args[2],
        args[3].parse::<u64>().unwrap(),
        args[4].as_str(),
    );
    let mut registry = Registry::new();
    sluice_connector_file::register(&mut registry);
    let table: toml::Table =
        toml::from_str(&format!("count = {records}\nbatch_size = 10000")).unwrap();
    let ctx = BuildContext::new("bench", ".", ".", Guarantee::AtLeastOnce);
    let mut source = match registry.source("datagen").unwrap().build(table, &ctx) {
        Ok(s) => s,
        Err(e) => panic!("{}", e.message),
    };
    source.open(None).await.unwrap();
    let conn = AwsConnection {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.clone()),
        auth: Default::default(),
    };
    let sdk = conn.sdk_config().await.unwrap();
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let started = Instant::now();
    let mut schema = None;
    let (mut done, mut bytes, mut n) = (0u64, 0u64, 0u64);
    while let Some(batch) = source.next_batch().await.unwrap() {
        let body = match format {
            "json-gz" => {
                let mut plain = Vec::with_capacity(batch.records.len() * 240);
                for r in &batch.records {
                    plain.extend_from_slice(&r.value);
                    plain.push(b'\n');
                }
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(plain.len() / 4),
                    flate2::Compression::default(),
                );
                enc.write_all(&plain).unwrap();
                enc.finish().unwrap()
            }
            "parquet" => {
                let schema = schema
                    .get_or_insert_with(|| {
                        let values = batch
                            .records
                            .iter()
                            .map(|r| serde_json::from_slice::<serde_json::Value>(&r.value));
                        Arc::new(
                            arrow_json::reader::infer_json_schema_from_iterator(values.map(|v| {
                                v.map_err(|e| arrow_schema::ArrowError::JsonError(e.to_string()))
                            }))
                            .unwrap(),
                        )
                    })
                    .clone();
                let mut decoder = ReaderBuilder::new(schema.clone())
                    .with_batch_size(batch.records.len())
                    .build_decoder()
                    .unwrap();
                for r in &batch.records {
                    decoder.decode(&r.value).unwrap();
                    decoder.decode(b"\n").unwrap();
                }
                let rows = decoder.flush().unwrap().unwrap();
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                let mut w = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
                w.write(&rows).unwrap();
                w.into_inner().unwrap()
            }
            other => panic!("unknown format {other}"),
        };
        bytes += body.len() as u64;
        let ext = if format == "parquet" {
            "parquet"
        } else {
            "jsonl.gz"
        };
        client
            .put_object()
            .bucket(bucket)
            .key(format!("loop/bench-{n:06}.{ext}"))
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        n += 1;
        done += batch.records.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("seconds={secs:.3} records={done} bytes={bytes}");
}
