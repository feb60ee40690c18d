//! Print a topic's watermarks, records per partition and a group's committed offsets:
//! `cargo run -p sluice-connector-kafka --example inspect -- BROKERS TOPIC [GROUP]`.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (brokers, topic) = (&args[1], &args[2]);
    let marks = sluice_connector_kafka::admin::watermarks(brokers, topic).unwrap();
    println!("watermarks: {marks:?}");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "inspect")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in marks.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut stats: BTreeMap<i32, (u64, i64, i64)> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let e = stats.entry(m.partition()).or_insert((0, i64::MAX, -1));
            e.0 += 1;
            e.1 = e.1.min(m.offset());
            e.2 = e.2.max(m.offset());
        }
    }
    println!("per partition (count, min offset, max offset): {stats:?}");
    if let Some(g) = args.get(3) {
        let c = sluice_connector_kafka::admin::committed_offsets(brokers, g, topic).unwrap();
        println!("committed offsets of {g}: {c:?}");
    }
}
