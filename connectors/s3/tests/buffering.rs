//! Per-partition buffering (`buffering`) against moto (`scripts/services.sh up moto`): what a
//! write spanning several partitions makes with and without it, each partition's own record and
//! age bounds, the stored checkpoint lagging behind held records, and a restart that replays
//! from there without writing any record twice.

mod common;

use std::sync::Arc;

use sluice_core::testing::test_key;
use sluice_core::{Checkpoint, Guarantee, Position, Record, SinkContext};

/// Record `i` of device `a` (i % 3 != 0) or `b` (i % 3 == 0): two partitions interleaved.
fn reading(i: u64) -> Record {
    let device = if i.is_multiple_of(3) { "b" } else { "a" };
    Record::new(
        format!(
            "{{\"key\":\"{}\",\"seq\":{i},\"device\":\"{device}\"}}",
            test_key(i)
        ),
        Position::int(Arc::from("p"), i as i64),
    )
}

fn readings(range: std::ops::Range<u64>) -> Vec<Record> {
    range.map(reading).collect()
}

/// The job's first write names partition `p` (no record yet): a partition the stored
/// checkpoint does not name yet flushes everything, so holding starts after it.
async fn first_sight(sink: &mut Box<dyn sluice_core::Sink>) {
    sink.write(&[], Some(&cp(-1))).await.unwrap();
}

fn cp(last: i64) -> Checkpoint {
    let mut c = Checkpoint::default();
    c.advance(&Position::int(Arc::from("p"), last));
    c
}

/// Sequence numbers per object, by key, and each object's rows on one device.
async fn objects(bucket: &str) -> Vec<(String, Vec<u64>)> {
    let mut out = Vec::new();
    for key in common::data_keys(bucket).await {
        let docs = common::documents(&key, &common::get(bucket, &key).await);
        let device = key.split("dev=").nth(1).unwrap().split('/').next().unwrap();
        for d in &docs {
            assert_eq!(d["device"].as_str(), Some(device), "{key}: {d}");
        }
        let seqs = docs.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
        out.push((key, seqs));
    }
    out
}

fn all_seqs(objects: &[(String, Vec<u64>)]) -> Vec<u64> {
    let mut seqs: Vec<u64> = objects.iter().flat_map(|(_, s)| s.clone()).collect();
    seqs.sort_unstable();
    seqs
}

#[tokio::test]
async fn without_buffering_every_write_makes_one_object_per_partition_it_touches() {
    let bucket = common::unique("s3-nobuf");
    common::create_bucket(&bucket).await;
    let table = common::sink_table(&bucket, "prefix = 'r/dev={field:device}/'");
    let mut sink = common::open_sink(table, "nobuf", Guarantee::ExactlyOnce).await;
    // Two writes, each spanning both partitions (they interleave across the writes).
    sink.write(&readings(0..6), Some(&cp(5))).await.unwrap();
    sink.write(&readings(6..12), Some(&cp(11))).await.unwrap();
    sink.close().await.unwrap();
    let objects = objects(&bucket).await;
    assert_eq!(objects.len(), 4, "{objects:?}");
    assert_eq!(all_seqs(&objects), (0..12).collect::<Vec<_>>());
}

#[tokio::test]
async fn each_partition_buffers_to_its_own_bound_and_a_restart_replays_the_held_ones_once() {
    let bucket = common::unique("s3-buf");
    common::create_bucket(&bucket).await;
    let table = || {
        common::sink_table(
            &bucket,
            "prefix = 'r/dev={field:device}/'\ncompression = 'gzip'\nbuffering = { max_records = 10, max_wait = '1h' }",
        )
    };
    let mut sink = common::open_sink(table(), "buf", Guarantee::ExactlyOnce).await;
    first_sight(&mut sink).await;
    // Six records per write: four of `a`, two of `b`.
    for w in 0..2 {
        sink.write(&readings(w * 6..w * 6 + 6), Some(&cp(w as i64 * 6 + 5)))
            .await
            .unwrap();
    }
    assert!(common::data_keys(&bucket).await.is_empty(), "both held");
    assert_eq!(
        sink.committed_checkpoint().await.unwrap(),
        Some(cp(-1)),
        "a replay must start before the first held record"
    );
    sink.write(&readings(12..18), Some(&cp(17))).await.unwrap();
    let after_three = objects(&bucket).await;
    assert_eq!(after_three.len(), 1, "only `a` reached 10: {after_three:?}");
    assert!(after_three[0].0.contains("dev=a/"));
    assert_eq!(after_three[0].1.len(), 12);
    assert_eq!(
        sink.committed_checkpoint().await.unwrap(),
        Some(cp(-1)),
        "`b` holds 0"
    );
    sink.write(&readings(18..24), Some(&cp(23))).await.unwrap();
    sink.write(&readings(24..30), Some(&cp(29))).await.unwrap();
    let after_five = objects(&bucket).await;
    assert_eq!(after_five.len(), 2, "`b` reached 10: {after_five:?}");
    assert_eq!(
        sink.committed_checkpoint().await.unwrap(),
        Some(cp(17)),
        "`a` holds 8 records from after 17"
    );
    // kill -9: the held records of `a` (18..30) die with the process; nothing is closed.
    drop(sink);
    let mut sink = common::open_sink(table(), "buf", Guarantee::ExactlyOnce).await;
    let resume = sink.committed_checkpoint().await.unwrap();
    assert_eq!(resume, Some(cp(17)));
    // The source replays from 18, cut differently; `b`'s 18..30 are in its object already.
    sink.write(&readings(18..27), Some(&cp(26))).await.unwrap();
    sink.write(&readings(27..40), Some(&cp(39))).await.unwrap();
    sink.close().await.unwrap();
    let done = objects(&bucket).await;
    assert_eq!(
        all_seqs(&done),
        (0..40).collect::<Vec<_>>(),
        "every record once: {done:?}"
    );
    let mut reopened = common::open_sink(table(), "buf", Guarantee::ExactlyOnce).await;
    assert_eq!(
        reopened.committed_checkpoint().await.unwrap(),
        Some(cp(39)),
        "close wrote everything held"
    );
}

#[tokio::test]
async fn a_partition_is_written_when_its_oldest_record_waited_max_wait() {
    let bucket = common::unique("s3-bufage");
    common::create_bucket(&bucket).await;
    let table = common::sink_table(
        &bucket,
        "prefix = 'r/dev={field:device}/'\nformat = 'parquet'\nbuffering = { max_records = 1000, max_wait = '1s' }",
    );
    let mut sink = common::open_sink(table, "bufage", Guarantee::ExactlyOnce).await;
    first_sight(&mut sink).await;
    sink.write(&readings(1..3), Some(&cp(2))).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // `a` has waited 1 s, `b` (record 3) just arrived.
    sink.write(&readings(3..4), Some(&cp(3))).await.unwrap();
    let objs = objects(&bucket).await;
    assert_eq!(objs.len(), 1, "{objs:?}");
    assert!(objs[0].0.contains("dev=a/") && objs[0].0.ends_with(".parquet"));
    assert_eq!(objs[0].1, vec![1, 2]);
    assert_eq!(sink.committed_checkpoint().await.unwrap(), Some(cp(2)));
    sink.close().await.unwrap();
    assert_eq!(all_seqs(&objects(&bucket).await), vec![1, 2, 3]);
}

#[tokio::test]
async fn a_record_placed_by_the_clock_flushes_every_partition() {
    let bucket = common::unique("s3-bufclock");
    common::create_bucket(&bucket).await;
    let table = common::sink_table(
        &bucket,
        "prefix = 'r/dev={field:device}/h={hour}/'\nbuffering = { max_records = 1000 }",
    );
    let mut sink = common::open_sink(table, "bufclock", Guarantee::ExactlyOnce).await;
    first_sight(&mut sink).await;
    let stamped = |range: std::ops::Range<u64>| -> Vec<Record> {
        readings(range)
            .into_iter()
            .map(|mut r| {
                r.timestamp = Some(1_767_324_600_000);
                r
            })
            .collect()
    };
    sink.write(&stamped(0..6), Some(&cp(5))).await.unwrap();
    assert!(
        common::data_keys(&bucket).await.is_empty(),
        "event time: held"
    );
    // Record 6 has no event time: its hour comes from the clock and would differ on a replay.
    let mut batch = stamped(6..8);
    batch[0].timestamp = None;
    sink.write(&batch, Some(&cp(7))).await.unwrap();
    assert_eq!(
        all_seqs(&objects(&bucket).await),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(sink.committed_checkpoint().await.unwrap(), Some(cp(7)));
}

#[tokio::test]
async fn a_new_source_partition_flushes_what_is_held_so_every_stored_checkpoint_names_it() {
    let bucket = common::unique("s3-bufnew");
    common::create_bucket(&bucket).await;
    let table = common::sink_table(
        &bucket,
        "prefix = 'r/dev={field:device}/'\nbuffering = { max_records = 1000, max_wait = '1h' }",
    );
    let mut sink = common::open_sink(table, "bufnew", Guarantee::ExactlyOnce).await;
    // The very first records: held, they would have nothing to be replayed from (a Kafka
    // source would restart an unnamed partition at its group offset, past them): written.
    sink.write(&readings(0..3), Some(&cp(2))).await.unwrap();
    assert_eq!(all_seqs(&objects(&bucket).await), vec![0, 1, 2]);
    sink.write(&readings(3..6), Some(&cp(5))).await.unwrap();
    assert_eq!(
        objects(&bucket).await.len(),
        2,
        "held now that `p` is named"
    );
    // Partition `q` appears: what is held is written, and the stored checkpoint names both.
    let mut next = cp(8);
    let q: Vec<Record> = (100..103)
        .map(|i| {
            let mut r = reading(i);
            r.position = Position::int(Arc::from("q"), i as i64);
            r
        })
        .collect();
    next.advance(&Position::int(Arc::from("q"), 102));
    let mut batch = readings(6..9);
    batch.extend(q);
    sink.write(&batch, Some(&next)).await.unwrap();
    assert_eq!(
        all_seqs(&objects(&bucket).await),
        vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 100, 101, 102]
    );
    assert_eq!(sink.committed_checkpoint().await.unwrap(), Some(next));
    sink.close().await.unwrap();
}

#[tokio::test]
async fn buffering_without_exactly_once_is_refused() {
    let bucket = common::unique("s3-bufalo");
    common::create_bucket(&bucket).await;
    let mut registry = sluice_core::Registry::new();
    sluice_connector_s3::register(&mut registry);
    let ctx = sluice_core::BuildContext::new("bufalo", ".", ".", Guarantee::AtLeastOnce);
    let mut sink = registry
        .sink("s3")
        .unwrap()
        .build(
            common::sink_table(&bucket, "buffering = { max_records = 5 }"),
            &ctx,
        )
        .unwrap();
    let err = sink
        .open(&SinkContext {
            job: "bufalo".into(),
            sink: "archive".into(),
            guarantee: Guarantee::AtLeastOnce,
        })
        .await
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("buffering"), "{err:?}");
    assert!(err.message.contains("exactly-once"), "{}", err.message);
}

#[tokio::test]
async fn an_idle_sink_asks_to_be_woken_at_max_wait_and_an_empty_write_then_flushes() {
    let bucket = common::unique("s3-bufwake");
    common::create_bucket(&bucket).await;
    let table = common::sink_table(
        &bucket,
        "prefix = 'r/dev={field:device}/'\nbuffering = { max_records = 1000, max_wait = '800ms' }",
    );
    let mut sink = common::open_sink(table, "bufwake", Guarantee::ExactlyOnce).await;
    first_sight(&mut sink).await;
    assert_eq!(sink.wake_at(), None, "nothing held, nothing to wake for");
    let before = std::time::Instant::now();
    sink.write(&readings(1..4), Some(&cp(3))).await.unwrap();
    let wake = sink.wake_at().expect("held records ask for a wake-up");
    let wait = wake.saturating_duration_since(before);
    assert!(
        wait >= std::time::Duration::from_millis(700)
            && wait <= std::time::Duration::from_millis(900),
        "wake-up {wait:?} after the write, max_wait is 800ms"
    );
    assert!(common::data_keys(&bucket).await.is_empty(), "held");
    tokio::time::sleep_until(wake.into()).await;
    // What the runtime does at that instant: an empty write with the current checkpoint.
    sink.write(&[], Some(&cp(3))).await.unwrap();
    assert_eq!(all_seqs(&objects(&bucket).await), vec![1, 2, 3]);
    assert_eq!(sink.committed_checkpoint().await.unwrap(), Some(cp(3)));
    assert_eq!(sink.wake_at(), None, "flushed: nothing held");
    sink.close().await.unwrap();
}
