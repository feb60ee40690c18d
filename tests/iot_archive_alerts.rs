#![cfg(all(feature = "kafka", feature = "s3", feature = "sns"))]
//! `examples/iot-archive-alerts.toml`, the file as shipped, against the emulators: Kafka (Tansu)
//! → the anomaly plugin → S3 Parquet by hour + SNS (moto, read back through a subscribed SQS
//! queue). Only the environment differs from production: `KAFKA_BROKERS`, `ARCHIVE_BUCKET`,
//! `ALERT_TOPIC_ARN` and `AWS_ENDPOINT_URL` name the emulators' resources (unique per run), and
//! `ARCHIVE_FLUSH` shortens the archive's `max_wait`. Checks: every record archived once, in
//! Parquet that pyarrow reads, under `readings/dt=…/hour=…/`; one SNS message per anomalous
//! reading and none for the others; nothing dead-lettered.
//! Needs `scripts/build-plugins.sh` (the plugin) and `scripts/services.sh up kafka moto pyarrow`.

mod kafka_support;
mod s3_support;
#[path = "../connectors/sns/tests/common/mod.rs"]
mod sns_common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use kafka_support::{brokers, create_topic, datagen_into, log_of, stop, unique, wait_for};

const RECORDS: u64 = 3_000;

/// `seq` → (count, flagged as an anomaly) of every row in the archive's data objects.
fn archived(rt: &tokio::runtime::Runtime, bucket: &str) -> BTreeMap<u64, (u32, bool)> {
    let mut rows = BTreeMap::new();
    for (key, body) in rt.block_on(s3_support::objects(bucket)) {
        if !key.ends_with(".parquet") {
            continue;
        }
        for row in s3_support::parquet_rows(&body) {
            let seq = row["seq"].as_u64().expect("a row without seq");
            let flagged = row["anomaly"].as_bool().expect("a row without the flag");
            let e = rows.entry(seq).or_insert((0, flagged));
            e.0 += 1;
        }
    }
    rows
}

#[test]
fn the_iot_archive_alerts_example_archives_every_reading_and_alerts_once_per_anomaly() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/iot-archive-alerts.toml"
    );
    let b = brokers();
    let python = s3_support::python();
    let rt = kafka_support::rt();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("iot-readings");
    create_topic(&b, &topic, 3);
    datagen_into(dir.path(), &b, &topic, RECORDS);

    let bucket = unique("iot-archive");
    rt.block_on(async {
        s3_support::client()
            .await
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
    });
    let (arn, queue) = rt.block_on(async {
        let arn = sns_common::create_topic(&sns_common::unique("iot-alerts")).await;
        let queue = sns_common::subscribe_queue(&arn).await;
        (arn, queue)
    });

    let log_path = dir.path().join("run.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = kafka_support::sluice()
        .arg("run")
        .arg(example)
        .arg("--no-progress")
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("KAFKA_BROKERS", &b)
        .env("IOT_TOPIC", &topic)
        .env("IOT_GROUP", unique("iot-archive-alerts"))
        .env("ARCHIVE_BUCKET", &bucket)
        .env("ALERT_TOPIC_ARN", &arn)
        .env("ARCHIVE_FLUSH", "1s")
        .env("AWS_ENDPOINT_URL", s3_support::endpoint())
        .env(
            "AWS_REGION",
            std::env::var("SLUICE_TEST_AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // `log_of`/`wait_for` read `<job>.log`: point them at this run's log.
    let job = log_path.with_extension("toml");
    wait_for(
        &job,
        Duration::from_secs(120),
        "every reading archived",
        || archived(&rt, &bucket).len() as u64 == RECORDS,
    );
    let rows = archived(&rt, &bucket);
    let anomalies: Vec<u64> = rows
        .iter()
        .filter(|(_, (_, flagged))| *flagged)
        .map(|(seq, _)| *seq)
        .collect();
    assert!(
        !anomalies.is_empty(),
        "datagen makes about 1% anomalous readings"
    );
    let alerted = || -> Vec<u64> {
        let mut seqs: Vec<u64> = rt
            .block_on(sns_common::sent(&queue))
            .iter()
            .map(|s| {
                let v: serde_json::Value = serde_json::from_str(&s.message).unwrap();
                v["seq"].as_u64().expect("an alert without seq")
            })
            .collect();
        seqs.sort_unstable();
        seqs
    };
    wait_for(
        &job,
        Duration::from_secs(60),
        "one alert per anomaly",
        || alerted().len() >= anomalies.len(),
    );
    stop(&mut child, &job);
    let log = log_of(&job);

    // The archive: every reading once, in hour folders, readable by pyarrow.
    let rows = archived(&rt, &bucket);
    assert_eq!(rows.len() as u64, RECORDS, "{log}");
    let twice: Vec<_> = rows.iter().filter(|(_, (n, _))| *n != 1).collect();
    assert!(twice.is_empty(), "archived more than once: {twice:?}");
    let objects = rt.block_on(s3_support::objects(&bucket));
    for (key, _) in &objects {
        let rest = key
            .strip_prefix("readings/dt=")
            .unwrap_or_else(|| panic!("{key} outside readings/ (dead letters?)"));
        let (date, rest) = rest.split_once("/hour=").unwrap();
        let (hour, name) = rest.split_once('/').unwrap();
        assert_eq!(date.len(), 10, "{key}");
        assert!(
            hour.len() == 2 && hour.parse::<u32>().unwrap() < 24,
            "{key}"
        );
        assert!(
            name.starts_with("iot-archive-alerts-archive-") && name.ends_with(".parquet"),
            "{key}"
        );
    }
    assert_eq!(
        s3_support::pyarrow_seqs(&python, &objects),
        (RECORDS as usize, RECORDS as usize, 0, RECORDS - 1)
    );

    // The alerts: exactly the flagged readings, once each, subject = the device.
    assert_eq!(alerted(), anomalies, "one SNS message per anomaly");
    for sent in rt.block_on(sns_common::sent(&queue)) {
        let v: serde_json::Value = serde_json::from_str(&sent.message).unwrap();
        assert!(v["temperature_c"].as_f64().unwrap() > 90.0, "{v}");
        assert_eq!(sent.subject.as_deref(), v["device_id"].as_str());
    }
    println!(
        "iot-archive-alerts: {RECORDS} readings in {} Parquet objects, {} alerts",
        objects.len(),
        anomalies.len()
    );
}
