//! S3 on moto for the root tests (`scripts/services.sh up moto pyarrow`): a client, every data
//! object of a bucket, and the rows of Parquet objects read by the `parquet` crate and by pyarrow.
#![allow(dead_code)]

pub fn endpoint() -> String {
    std::env::var("SLUICE_TEST_AWS_ENDPOINT").expect(
        "SLUICE_TEST_AWS_ENDPOINT is not set: run `bash scripts/services.sh up moto` and source target/services.env",
    )
}

pub fn python() -> String {
    std::env::var("SLUICE_TEST_PYARROW_PYTHON").expect(
        "SLUICE_TEST_PYARROW_PYTHON is not set: run `bash scripts/services.sh up pyarrow` and source target/services.env",
    )
}

pub async fn client() -> aws_sdk_s3::Client {
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
pub async fn objects(bucket: &str) -> Vec<(String, bytes::Bytes)> {
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

/// Every row of a Parquet object, as JSON.
pub fn parquet_rows(body: &bytes::Bytes) -> Vec<serde_json::Value> {
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
            out.push(serde_json::from_str(line).unwrap());
        }
    }
    out
}

pub fn seqs_of_parquet(body: &bytes::Bytes) -> Vec<u64> {
    parquet_rows(body)
        .iter()
        .map(|v| v["seq"].as_u64().expect("a row without seq"))
        .collect()
}

/// What pyarrow reads from the Parquet `objects` (a file each): rows, distinct `seq`s, the
/// smallest and the largest.
pub fn pyarrow_seqs(python: &str, objects: &[(String, bytes::Bytes)]) -> (usize, usize, u64, u64) {
    let files = tempfile::tempdir().unwrap();
    for (i, (_, body)) in objects.iter().enumerate() {
        std::fs::write(files.path().join(format!("{i}.parquet")), body).unwrap();
    }
    let script = "import sys, glob, pyarrow.parquet as pq\nseqs = [s for p in glob.glob(sys.argv[1] + '/*.parquet') for s in pq.read_table(p).column('seq').to_pylist()]\nprint(len(seqs), len(set(seqs)), min(seqs), max(seqs))";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(files.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0] as usize, v[1] as usize, v[2], v[3])
}
