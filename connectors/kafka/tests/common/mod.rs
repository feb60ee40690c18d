//! Helpers shared by the Kafka connector tests.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use sluice_connector_kafka::{KafkaSinkConfig, KafkaSourceConfig};
use sluice_core::{Batch, Guarantee, Record, SinkContext, Source};

/// The broker started by `scripts/services/kafka.sh`. Missing = a failed test, never a skip.
pub fn brokers() -> String {
    std::env::var("SLUICE_TEST_KAFKA_BROKERS").expect(
        "SLUICE_TEST_KAFKA_BROKERS is not set: run `eval \"$(bash scripts/services/kafka.sh start)\"` first",
    )
}

pub fn unique(prefix: &str) -> String {
    let n: u64 = rand::random();
    format!("{prefix}-{}-{:x}", std::process::id(), n & 0xffff_ffff)
}

pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let r = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .unwrap();
    for x in r {
        x.unwrap();
    }
}

pub fn source_config(brokers: &str, topic: &str, group: &str) -> KafkaSourceConfig {
    let table: toml::Table = toml::from_str(&format!(
        "brokers = '{brokers}'\ntopics = ['{topic}']\ngroup = '{group}'\nsession_timeout = '6s'\nbatch_wait = '20ms'\nlag_interval = '1s'"
    ))
    .unwrap();
    toml::Value::Table(table).try_into().unwrap()
}

pub fn sink_config(brokers: &str, extra: &str) -> KafkaSinkConfig {
    let table: toml::Table = toml::from_str(&format!("brokers = '{brokers}'\n{extra}")).unwrap();
    toml::Value::Table(table).try_into().unwrap()
}

pub fn sink_ctx(job: &str, guarantee: Guarantee) -> SinkContext {
    SinkContext {
        job: job.into(),
        sink: "kafka".into(),
        guarantee,
    }
}

/// Read batches until `want` records (and dead records) arrived or the deadline passes.
pub async fn read_n(source: &mut dyn Source, want: usize, within: Duration) -> Batch {
    let deadline = Instant::now() + within;
    let mut all = Batch::default();
    while all.records.len() + all.dead.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {want} records within {within:?}",
            all.records.len() + all.dead.len()
        );
        if let Ok(b) = tokio::time::timeout(left, source.next_batch()).await {
            let b = b.unwrap().expect("kafka source never ends");
            all.records.extend(b.records);
            all.dead.extend(b.dead);
        }
    }
    all
}

/// Values as strings, in order.
pub fn values(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
        .collect()
}

/// Count of each value.
pub fn counts(records: &[Record]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for v in values(records) {
        *m.entry(v).or_default() += 1;
    }
    m
}
