//! Helpers for the Kafka end-to-end tests: the broker from `scripts/services/kafka.sh`, producing
//! test data through the Kafka sink, running `sluice` until a condition holds.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use sluice_connector_kafka::{KafkaSink, KafkaSinkConfig, admin};
use sluice_core::{Guarantee, Position, Record, Sink, SinkContext};

/// The broker; missing = a failed test, never a skip.
pub fn brokers() -> String {
    std::env::var("SLUICE_TEST_KAFKA_BROKERS").expect(
        "SLUICE_TEST_KAFKA_BROKERS is not set: run `eval \"$(bash scripts/services/kafka.sh start)\"` (or scripts/services.sh up) first",
    )
}

pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::random();
    format!("{prefix}-{}-{n:08x}", std::process::id())
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    rt().block_on(admin::create_topic(brokers, topic, partitions))
        .unwrap();
}

/// Produce raw values (in order, round-robin over partitions by key) through the Kafka sink.
pub fn produce_values(brokers: &str, topic: &str, values: &[String]) {
    let values: Vec<Vec<u8>> = values.iter().map(|v| v.clone().into_bytes()).collect();
    produce_bytes(brokers, topic, &values);
}

/// [`produce_values`] for values that need not be text.
pub fn produce_bytes(brokers: &str, topic: &str, values: &[Vec<u8>]) {
    let cfg: KafkaSinkConfig = serde_json::from_value(serde_json::json!({
        "brokers": brokers, "topic": topic, "linger": "5ms"
    }))
    .unwrap();
    rt().block_on(async {
        let mut sink = KafkaSink::new(cfg);
        let ctx = SinkContext {
            job: "test-producer".into(),
            sink: "kafka".into(),
            guarantee: Guarantee::AtLeastOnce,
        };
        sink.open(&ctx).await.unwrap();
        for chunk in values.chunks(10_000) {
            let records: Vec<Record> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut r = Record::new(v.clone(), Position::int(Arc::from("t/0"), i as i64));
                    r.key = Some(format!("k{i}").into());
                    r
                })
                .collect();
            let report = sink.write(&records, None).await.unwrap();
            assert!(
                report.rejected.is_empty() && report.retry.is_empty(),
                "{report:?}"
            );
        }
        sink.close().await.unwrap();
    });
}

/// `{"seq": i, ...}` values for `range`, about 220 bytes each like datagen's.
pub fn seq_values(range: std::ops::Range<u64>) -> Vec<String> {
    range
        .map(|i| {
            format!(
                "{{\"device_id\":\"dev-{:04}\",\"site\":\"plant-{}\",\"line\":{},\"ts\":\"2026-11-25T00:00:00Z\",\"seq\":{i},\"temperature_c\":21.5,\"vibration_mm_s\":1.25,\"humidity_pct\":40.0,\"status\":\"ok\"}}",
                i % 1000,
                i % 7,
                i % 3
            )
        })
        .collect()
}

/// Produce `count` datagen records into `topic` with `sluice run` (a bounded job).
pub fn datagen_into(dir: &Path, brokers: &str, topic: &str, count: u64) {
    let job = write(
        dir,
        &format!("gen-{topic}.toml"),
        &format!(
            r#"api_version = 1
name = "gen-{topic}"
[source]
type = "datagen"
count = {count}
[[sinks]]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
batch = {{ max_records = 10000 }}
"#
        ),
    );
    let out = sluice()
        .arg("run")
        .arg(&job)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "datagen → kafka failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sluice() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_LOG", "warn,sluice_connector_kafka=info")
        .env_remove("SLUICE_LOG_FORMAT");
    cmd
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `sluice run JOB` in the background, stderr to `<job>.log`.
pub fn spawn(job: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(job.with_extension("log"))
        .unwrap();
    sluice()
        .arg("run")
        .arg(job)
        .arg("--no-progress")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

pub fn log_of(job: &Path) -> String {
    std::fs::read_to_string(job.with_extension("log")).unwrap_or_default()
}

/// Wait until `cond` holds (polling), failing with `what` and the job's log after `within`.
pub fn wait_for(job: &Path, within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            tail(&log_of(job))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// SIGTERM and wait for a clean exit (graceful drain).
pub fn stop(child: &mut Child, job: &Path) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "sluice exited with {status} after SIGTERM; log:\n{}",
                tail(&log_of(job))
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice did not stop within 60s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `seq` → count in a JSON-lines file (missing file: empty).
pub fn file_seqs(path: &Path) -> BTreeMap<u64, u32> {
    let mut m = BTreeMap::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        if let Some(s) = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["seq"].as_u64())
        {
            *m.entry(s).or_insert(0) += 1;
        }
    }
    m
}

/// `seq` → count of the values in a topic.
pub fn topic_seqs(brokers: &str, topic: &str) -> BTreeMap<u64, u32> {
    let values = admin::read_all(brokers, topic, true, Duration::from_secs(120)).unwrap();
    let mut m = BTreeMap::new();
    for v in values {
        if let Some(s) = serde_json::from_slice::<serde_json::Value>(&v)
            .ok()
            .and_then(|v| v["seq"].as_u64())
        {
            *m.entry(s).or_insert(0) += 1;
        }
    }
    m
}

/// Sum of a group's committed offsets on `topic` (= records consumed, when it started at 0).
pub fn committed_total(brokers: &str, group: &str, topic: &str) -> i64 {
    thread_local! {
        static WATCHES: std::cell::RefCell<BTreeMap<(String, String, String), admin::GroupWatch>> =
            const { std::cell::RefCell::new(BTreeMap::new()) };
    }
    WATCHES.with(|w| {
        let mut w = w.borrow_mut();
        let key = (brokers.to_string(), group.to_string(), topic.to_string());
        if !w.contains_key(&key) {
            let Ok(watch) = admin::GroupWatch::new(brokers, group, topic) else {
                return 0;
            };
            w.insert(key.clone(), watch);
        }
        w[&key].committed().map(|m| m.values().sum()).unwrap_or(0)
    })
}

/// Sum of a topic's high watermarks.
pub fn end_total(brokers: &str, topic: &str) -> i64 {
    admin::watermarks(brokers, topic)
        .unwrap()
        .values()
        .map(|(_, h)| h)
        .sum()
}

/// Every seq in `0..n` present; returns the number of extra copies.
pub fn assert_complete(counts: &BTreeMap<u64, u32>, n: u64, what: &str) -> u64 {
    let missing: Vec<u64> = (0..n)
        .filter(|s| !counts.contains_key(s))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: records lost, first missing seqs {missing:?} ({} of {n} present)",
        counts.len()
    );
    counts.values().map(|c| u64::from(c - 1)).sum()
}

/// Kill -9s per crash proof.
pub const KILLS: usize = 10;

/// Run `job` until the group has committed all `records`, killing it `KILLS` times once
/// `progress` (a measure that grows while records move: committed offsets, output size) has
/// grown in that run, after a random delay below `max_delay_ms`; `after_kill` runs after each
/// kill. Returns the number of kills.
#[allow(clippy::too_many_arguments)]
pub fn crash_loop(
    job: &Path,
    brokers: &str,
    group: &str,
    topic: &str,
    records: u64,
    max_delay_ms: u64,
    mut progress: impl FnMut() -> u64,
    mut after_kill: impl FnMut(usize),
) -> usize {
    let mut rng = rand::rng();
    let mut kills = 0;
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the job never finished; log:\n{}",
            tail(&log_of(job))
        );
        let before = progress();
        let mut child: Child = spawn(job);
        if kills < KILLS && committed_total(brokers, group, topic) < records as i64 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while progress() == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..max_delay_ms)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                println!(
                    "kill {kills}: progress {before} → {}, committed {} of {records}",
                    progress(),
                    committed_total(brokers, group, topic)
                );
                after_kill(kills);
                continue;
            }
        }
        wait_for(
            job,
            Duration::from_secs(120),
            "every offset committed",
            || committed_total(brokers, group, topic) == records as i64,
        );
        stop(&mut child, job);
        return kills;
    }
}
