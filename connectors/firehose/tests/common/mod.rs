//! Helpers of the Firehose tests on moto (`scripts/services.sh up moto`,
//! `SLUICE_TEST_AWS_ENDPOINT`): a delivery stream per test into its own S3 bucket, and reading
//! back what the stream delivered. moto writes one object per PutRecordBatch, the records
//! concatenated (with the sink's newlines: JSON lines).
#![allow(dead_code, missing_docs)]

use aws_sdk_firehose::types::{CompressionFormat, ExtendedS3DestinationConfiguration};
use sluice_aws::{AwsAuth, AwsConnection};

pub fn endpoint() -> String {
    std::env::var("SLUICE_TEST_AWS_ENDPOINT").expect(
        "SLUICE_TEST_AWS_ENDPOINT is not set: run `bash scripts/services.sh up moto` and source target/services.env",
    )
}

pub fn region() -> String {
    std::env::var("SLUICE_TEST_AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}

fn connection() -> AwsConnection {
    AwsConnection {
        region: Some(region()),
        endpoint: Some(endpoint()),
        auth: AwsAuth::default(),
    }
}

pub async fn s3() -> aws_sdk_s3::Client {
    let sdk = connection().sdk_config().await.expect("sdk config");
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

/// A bucket and a delivery stream into it, both named `name`.
pub async fn create_stream(name: &str) {
    let sdk = connection().sdk_config().await.expect("sdk config");
    s3().await
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateBucket {name}: {e:?}"));
    let dest = ExtendedS3DestinationConfiguration::builder()
        .role_arn("arn:aws:iam::123456789012:role/firehose-test")
        .bucket_arn(format!("arn:aws:s3:::{name}"))
        .compression_format(CompressionFormat::Uncompressed)
        .build()
        .unwrap();
    aws_sdk_firehose::Client::new(&sdk)
        .create_delivery_stream()
        .delivery_stream_name(name)
        .extended_s3_destination_configuration(dest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateDeliveryStream {name}: {e:?}"));
}

/// Every line of every object the stream delivered.
pub async fn delivered_lines(bucket: &str) -> Vec<String> {
    let c = s3().await;
    let mut lines = Vec::new();
    let mut token = None;
    loop {
        let out = c
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListObjectsV2 {bucket}: {e:?}"));
        for key in out.contents().iter().filter_map(|o| o.key()) {
            let body = c.get_object().bucket(bucket).key(key).send().await.unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            let text = String::from_utf8(bytes.to_vec()).unwrap();
            lines.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
        }
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return lines,
        }
    }
}

pub fn sink_table(stream: &str) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("stream".into(), stream.into());
    t.insert("endpoint".into(), endpoint().into());
    t.insert("region".into(), region().into());
    t
}
