//! Source and sink against a real Kafka-protocol broker (Tansu, started by
//! `scripts/services/kafka.sh`), through the `Source` / `Sink` traits.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use sluice_connector_kafka::{KafkaSink, KafkaSource};
use sluice_core::{Checkpoint, Guarantee, Header, Offset, Position, Record, Sink, Source};

fn rec(i: usize) -> Record {
    Record {
        key: Some(Bytes::from(format!("k{i}"))),
        value: Bytes::from(format!("{{\"seq\":{i}}}")),
        headers: vec![Header {
            name: "h".into(),
            value: Bytes::from(format!("v{i}")),
        }],
        timestamp: Some(1_700_000_000_000 + i as i64),
        position: Position::int(Arc::from("gen/0"), i as i64),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_keeps_key_value_headers_timestamp() {
    let b = brokers();
    let topic = unique("rt");
    create_topic(&b, &topic, 3).await;
    let mut sink = KafkaSink::new(sink_config(&b, &format!("topic = '{topic}'")));
    sink.open(&sink_ctx("rt", Guarantee::AtLeastOnce))
        .await
        .unwrap();
    let records: Vec<Record> = (0..500).map(rec).collect();
    let report = sink.write(&records, None).await.unwrap();
    assert!(
        report.rejected.is_empty() && report.retry.is_empty(),
        "{report:?}"
    );
    sink.close().await.unwrap();

    let mut source = KafkaSource::new(
        source_config(&b, &topic, &unique("g")),
        Guarantee::AtLeastOnce,
    );
    source.open(None).await.unwrap();
    let got = read_n(&mut source, 500, Duration::from_secs(30)).await;
    assert!(got.dead.is_empty());
    let mut by_seq: Vec<&Record> = got.records.iter().collect();
    by_seq.sort_by_key(|r| {
        serde_json::from_slice::<serde_json::Value>(&r.value).unwrap()["seq"]
            .as_u64()
            .unwrap()
    });
    for (i, r) in by_seq.iter().enumerate() {
        assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
        assert_eq!(
            r.header("h").map(|v| v.to_vec()),
            Some(format!("v{i}").into_bytes())
        );
        assert_eq!(r.timestamp, Some(1_700_000_000_000 + i as i64));
        assert!(r.position.partition.starts_with(&format!("{topic}/")));
    }
    // Lag per partition is published from librdkafka statistics (`lag_interval` = 1s here).
    let lag = source.lag_handle();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lag.lag().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no lag figures: {:?}",
            lag.lag()
        );
        // Statistics are served by the consumer's poll: keep it polling.
        let _ = tokio::time::timeout(Duration::from_millis(200), source.next_batch()).await;
    }
    assert!(
        lag.lag()
            .keys()
            .all(|k| k.starts_with(&format!("{topic}/"))),
        "{:?}",
        lag.lag()
    );
    // The same figures through `Source::lag`, which the runtime publishes in the job metrics.
    let via_trait = Source::lag(&source).expect("lag known");
    assert_eq!(via_trait.len(), lag.lag().len());
    source.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_committed_offsets_and_dead_letters_bad_values() {
    let b = brokers();
    let topic = unique("resume");
    let group = unique("g");
    create_topic(&b, &topic, 1).await;
    let mut sink = KafkaSink::new(sink_config(&b, &format!("topic = '{topic}'")));
    sink.open(&sink_ctx("resume", Guarantee::AtLeastOnce))
        .await
        .unwrap();
    let mut records: Vec<Record> = (0..100).map(rec).collect();
    records[10].value = Bytes::from_static(b"not json");
    sink.write(&records, None).await.unwrap();

    let mut source = KafkaSource::new(source_config(&b, &topic, &group), Guarantee::AtLeastOnce);
    source.open(None).await.unwrap();
    let got = read_n(&mut source, 60, Duration::from_secs(30)).await;
    assert_eq!(
        got.dead.len(),
        1,
        "the undecodable value is dead-lettered, not skipped"
    );
    assert_eq!(got.dead[0].record.position.offset, Offset::Int(10));
    assert!(
        got.dead[0].reason.contains("not JSON"),
        "{}",
        got.dead[0].reason
    );
    // Commit up to offset 49 only: the restart must resume at 50.
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from(format!("{topic}/0")), 49));
    source.commit(&cp).await.unwrap();
    source.close().await.unwrap();

    let mut again = KafkaSource::new(source_config(&b, &topic, &group), Guarantee::AtLeastOnce);
    again.open(None).await.unwrap();
    let rest = read_n(&mut again, 50, Duration::from_secs(30)).await;
    let first = rest
        .records
        .iter()
        .map(|r| r.position.offset.clone())
        .min()
        .unwrap();
    assert_eq!(first, Offset::Int(50));
    assert_eq!(rest.records.len(), 50);
    again.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_sink_reads_back_only_committed_checkpoints() {
    let b = brokers();
    let topic = unique("eos");
    create_topic(&b, &topic, 1).await;
    let job = unique("job");
    let cfg = sink_config(
        &b,
        &format!("topic = '{topic}'\ntransaction_timeout = '10s'"),
    );
    let mut sink = KafkaSink::new(cfg.clone());
    sink.open(&sink_ctx(&job, Guarantee::ExactlyOnce))
        .await
        .unwrap();
    assert_eq!(sink.committed_checkpoint().await.unwrap(), None);
    let records: Vec<Record> = (0..10).map(rec).collect();
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("gen/0"), 9));
    sink.write(&records, Some(&cp)).await.unwrap();
    let mut cp2 = cp.clone();
    cp2.advance(&Position::int(Arc::from("gen/0"), 19));
    let more: Vec<Record> = (10..20).map(rec).collect();
    sink.write(&more, Some(&cp2)).await.unwrap();
    drop(sink); // a crash: no close

    // A zombie with the same transactional.id writes a progress record claiming more, and its
    // transaction is aborted: on this broker `read_committed` still shows that record, so the
    // sink must not believe it (it trusts only the transactional offset of the progress group).
    {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let zombie: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("transactional.id", format!("sluice-{job}-kafka"))
            .create()
            .unwrap();
        zombie.init_transactions(Duration::from_secs(10)).unwrap();
        zombie.begin_transaction().unwrap();
        let fake = r#"{"seq":3,"checkpoint":{"offsets":{"gen/0":{"int":999}}}}"#;
        let key = format!("sluice-{job}-kafka");
        zombie
            .send(
                BaseRecord::to("_sluice_progress")
                    .partition(0)
                    .key(&key)
                    .payload(fake),
            )
            .unwrap();
        zombie.flush(Duration::from_secs(10)).unwrap();
        zombie.abort_transaction(Duration::from_secs(10)).unwrap();
    }

    // A second producer with the same transactional.id fences the first and sees cp2.
    let mut next = KafkaSink::new(cfg.clone());
    next.open(&sink_ctx(&job, Guarantee::ExactlyOnce))
        .await
        .unwrap();
    assert_eq!(
        next.committed_checkpoint().await.unwrap(),
        Some(cp2.clone())
    );
    next.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let b = brokers();
    let topic = unique("fence");
    create_topic(&b, &topic, 1).await;
    let job = unique("job");
    let cfg = sink_config(
        &b,
        &format!("topic = '{topic}'\ntransaction_timeout = '10s'"),
    );
    let mut old = KafkaSink::new(cfg.clone());
    old.open(&sink_ctx(&job, Guarantee::ExactlyOnce))
        .await
        .unwrap();
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("gen/0"), 0));
    old.write(&[rec(0)], Some(&cp)).await.unwrap();

    let mut new = KafkaSink::new(cfg);
    new.open(&sink_ctx(&job, Guarantee::ExactlyOnce))
        .await
        .unwrap();
    let mut cp1 = cp.clone();
    cp1.advance(&Position::int(Arc::from("gen/0"), 1));
    let err = old.write(&[rec(1)], Some(&cp1)).await.unwrap_err();
    assert!(
        !err.retryable,
        "a fenced zombie must stop, not retry: {err:?}"
    );
    new.write(&[rec(1)], Some(&cp1)).await.unwrap();
    assert_eq!(new.committed_checkpoint().await.unwrap(), Some(cp1));
}

/// The progress record names the sink's destination: the same `transactional.id` (same job and
/// sink names) writing another topic — an unnamed sink renumbered by a sink added before it —
/// is refused instead of taking over the other topic's checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_progress_of_another_topic_is_refused() {
    let b = brokers();
    let (topic, other) = (unique("eos_dest"), unique("eos_dest_other"));
    create_topic(&b, &topic, 1).await;
    create_topic(&b, &other, 1).await;
    let job = unique("job");
    let cfg = |t: &str| sink_config(&b, &format!("topic = '{t}'\ntransaction_timeout = '10s'"));
    let mut sink = KafkaSink::new(cfg(&topic));
    sink.open(&sink_ctx(&job, Guarantee::ExactlyOnce))
        .await
        .unwrap();
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("gen/0"), 0));
    sink.write(&[rec(0)], Some(&cp)).await.unwrap();
    sink.close().await.unwrap();

    let mut moved = KafkaSink::new(cfg(&other));
    let Err(err) = moved.open(&sink_ctx(&job, Guarantee::ExactlyOnce)).await else {
        panic!("progress of another topic must be refused");
    };
    assert!(
        err.message.contains(&topic) && err.message.contains("name = "),
        "{}",
        err.message
    );
    let mut same = KafkaSink::new(cfg(&topic));
    same.open(&sink_ctx(&job, Guarantee::ExactlyOnce))
        .await
        .unwrap();
    assert_eq!(same.committed_checkpoint().await.unwrap(), Some(cp));
    same.close().await.unwrap();
}
