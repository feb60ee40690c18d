//! Fast tests on librdkafka's in-process mock cluster: rebalances between members of one
//! group, injected broker errors, per-record failure mapping. (Its transactions are not real:
//! exactly-once is tested against the real broker.)

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sluice_connector_kafka::{KafkaSink, KafkaSource};
use sluice_core::{Guarantee, Position, Record, Sink, Source};

async fn produce(brokers: &str, topic: &str, from: usize, n: usize) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut fs = Vec::new();
    for i in from..from + n {
        let v = format!("{{\"seq\":{i}}}");
        let k = format!("{i}");
        fs.push(
            p.send_result(FutureRecord::to(topic).payload(&v).key(&k))
                .unwrap(),
        );
    }
    for f in fs {
        f.await.unwrap().unwrap();
    }
}

/// Two members of one group: the second joins mid-stream, partitions move, and every record is
/// delivered by one member or the other (commits happen as if each batch were durable at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_between_two_members_delivers_every_record() {
    let mock = MockCluster::new(1).unwrap();
    let b = mock.bootstrap_servers();
    let topic = "rebalance";
    mock.create_topic(topic, 4, 1).unwrap();
    let n = 4000;
    produce(&b, topic, 0, n / 2).await;
    let group = unique("g");
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let b_owns = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let member = |name: &'static str| {
        let (b, group, seen, b_owns) = (b.clone(), group.clone(), seen.clone(), b_owns.clone());
        let mut cfg = source_config(&b, topic, &group);
        cfg.batch_size = 50;
        async move {
            let mut s = KafkaSource::new(cfg, Guarantee::AtLeastOnce);
            s.open(None).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut mine = 0usize;
            while seen.lock().len() < n && Instant::now() < deadline {
                if name == "b" && !s.assignment().is_empty() {
                    b_owns.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let Ok(batch) =
                    tokio::time::timeout(Duration::from_millis(200), s.next_batch()).await
                else {
                    continue;
                };
                let batch = batch.unwrap().unwrap();
                assert!(batch.dead.is_empty());
                mine += batch.records.len();
                for v in values(&batch.records) {
                    seen.lock().insert(v);
                }
                // As the runtime does: a failed commit (rebalance in progress) is covered by a later one.
                let _ = s.commit(&batch.checkpoint()).await;
                // Slow down so the handover happens mid-stream.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let assigned = s.assignment();
            s.close().await.unwrap();
            (name, mine, assigned)
        }
    };
    let a = tokio::spawn(member("a"));
    // Let `a` take everything and read part of it, then `b` joins and more data arrives.
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().len() < n / 4 {
        assert!(Instant::now() < deadline, "member a read nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bm = tokio::spawn(member("b"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b_owns.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "member b never got a partition");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    produce(&b, topic, n / 2, n / 2).await;
    let (ra, rb) = (a.await.unwrap(), bm.await.unwrap());
    let seen = seen.lock();
    assert_eq!(
        seen.len(),
        n,
        "records lost across the handover: {ra:?} {rb:?}"
    );
    assert!(
        rb.1 > 0,
        "the second member never got a partition: {ra:?} {rb:?}"
    );
    let overlap: Vec<_> = ra.2.iter().filter(|p| rb.2.contains(p)).collect();
    assert!(overlap.is_empty(), "both members own {overlap:?}");
}

/// Transient broker errors are retried inside the producer; a record too large for the broker
/// is rejected (dead-lettered) by index while the others are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_maps_per_record_failures_and_survives_transient_errors() {
    let mock = MockCluster::new(1).unwrap();
    let b = mock.bootstrap_servers();
    mock.create_topic("out", 2, 1).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let mut sink = KafkaSink::new(sink_config(&b, "topic = 'out'"));
    sink.open(&sink_ctx("mock", Guarantee::AtLeastOnce))
        .await
        .unwrap();
    let pos = |i| Position::int(Arc::from("src/0"), i);
    let records = vec![
        Record::new("{\"a\":1}", pos(0)),
        Record::new(Bytes::from(vec![b'x'; 2 << 20]), pos(1)),
        Record::new("{\"a\":3}", pos(2)),
    ];
    let report = sink.write(&records, None).await.unwrap();
    assert!(report.retry.is_empty(), "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].0, 1);
    assert!(
        report.rejected[0].1.to_lowercase().contains("size"),
        "{report:?}"
    );

    let mut s = KafkaSource::new(
        source_config(&b, "out", &unique("g")),
        Guarantee::AtLeastOnce,
    );
    s.open(None).await.unwrap();
    let got = read_n(&mut s, 2, Duration::from_secs(30)).await;
    let mut v = values(&got.records);
    v.sort();
    assert_eq!(v, vec!["{\"a\":1}", "{\"a\":3}"]);
    s.close().await.unwrap();
}

/// A record whose topic field is missing is rejected, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_without_a_topic_is_rejected() {
    let mock = MockCluster::new(1).unwrap();
    let b = mock.bootstrap_servers();
    mock.create_topic("a", 1, 1).unwrap();
    let mut sink = KafkaSink::new(sink_config(&b, "topic_field = 'dest'"));
    sink.open(&sink_ctx("mock", Guarantee::AtLeastOnce))
        .await
        .unwrap();
    let pos = |i| Position::int(Arc::from("src/0"), i);
    let records = vec![
        Record::new("{\"dest\":\"a\"}", pos(0)),
        Record::new("{\"other\":1}", pos(1)),
    ];
    let report = sink.write(&records, None).await.unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].0, 1);
}
