//! The baseline of the Kafka → Kafka benchmark (`bench/kafka/run.sh`): a plain rdkafka
//! consume → produce loop, with the same delivery care as Sluice, on the same broker.
//!
//! ```text
//! kafka_loop loop BROKERS INPUT OUTPUT GROUP RECORDS alo|eos
//!     at-least-once: produce every record, await the delivery reports of each 10,000-record
//!     slice, then commit the consumer offsets; exactly-once: one transaction per slice with the
//!     offsets sent to the transaction. Prints `seconds=S` from the first record to the last
//!     commit.
//! kafka_loop create BROKERS TOPIC PARTITIONS
//!     create a topic.
//! kafka_loop wait BROKERS GROUP TOPIC RECORDS
//!     wait until GROUP has committed RECORDS offsets on TOPIC; print the Unix time then.
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const SLICE: usize = 10_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("loop") => {
            let records: usize = args[6].parse().unwrap();
            run_loop(
                &args[2],
                &args[3],
                &args[4],
                &args[5],
                records,
                args[7] == "eos",
            )
            .await;
        }
        Some("create") => {
            let partitions: i32 = args[4].parse().unwrap();
            sluice_connector_kafka::admin::create_topic(&args[2], &args[3], partitions)
                .await
                .unwrap();
        }
        Some("wait") => wait(&args[2], &args[3], &args[4], args[5].parse().unwrap()),
        _ => {
            eprintln!(
                "usage: kafka_loop loop BROKERS IN OUT GROUP N alo|eos | wait BROKERS GROUP TOPIC N"
            );
            std::process::exit(2);
        }
    }
}

async fn run_loop(brokers: &str, input: &str, output: &str, group: &str, n: usize, eos: bool) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set(
            "isolation.level",
            if eos {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .unwrap();
    consumer.subscribe(&[input]).unwrap();
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    if eos {
        pc.set("transactional.id", format!("bench-loop-{group}"))
            .set("transaction.timeout.ms", "60000")
            .set("message.timeout.ms", "30000");
    }
    let producer: FutureProducer = pc.create().unwrap();
    let timeout = Duration::from_secs(30);
    if eos {
        producer.init_transactions(timeout).unwrap();
    }
    let mut done = 0usize;
    let mut start: Option<Instant> = None;
    while done < n {
        if eos {
            producer.begin_transaction().unwrap();
        }
        let mut next: HashMap<(String, i32), i64> = HashMap::new();
        let mut futures = Vec::with_capacity(SLICE);
        let slice_end = (done + SLICE).min(n);
        while done < slice_end {
            let m = consumer.recv().await.unwrap();
            start.get_or_insert_with(Instant::now);
            let mut rec =
                FutureRecord::<[u8], [u8]>::to(output).payload(m.payload().unwrap_or_default());
            if let Some(k) = m.key() {
                rec = rec.key(k);
            }
            loop {
                match producer.send_result(rec) {
                    Ok(f) => {
                        futures.push(f);
                        break;
                    }
                    Err((_, back)) => {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            next.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            done += 1;
        }
        for f in futures {
            f.await.unwrap().unwrap();
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in &next {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o)).unwrap();
        }
        if eos {
            let meta = consumer.group_metadata().unwrap();
            producer
                .send_offsets_to_transaction(&tpl, &meta, timeout)
                .unwrap();
            producer.commit_transaction(timeout).unwrap();
        } else {
            consumer.commit(&tpl, CommitMode::Sync).unwrap();
        }
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("seconds={secs:.3} records={n} rate={:.0}", n as f64 / secs);
}

fn wait(brokers: &str, group: &str, topic: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let total: i64 = sluice_connector_kafka::admin::committed_offsets(brokers, group, topic)
            .map(|m| m.values().sum())
            .unwrap_or(0);
        if total >= n {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            println!("{:.3}", now.as_secs_f64());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "group {group} committed only {total} of {n}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
