#![cfg(feature = "kafka")]
//! End-to-end tests of the `sluice` binary with Kafka (the broker from
//! `scripts/services/kafka.sh`): round trips, restart from committed offsets, dead letters, and
//! two processes sharing one consumer group.

mod kafka_support;

use std::time::Duration;

use kafka_support::*;

fn kafka_to_file(
    name: &str,
    brokers: &str,
    topic: &str,
    group: &str,
    out: &str,
    extra: &str,
) -> String {
    format!(
        r#"api_version = 1
name = "{name}"
[delivery]
commit_interval = "200ms"
[source]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group = "{group}"
session_timeout = "6s"
[[sinks]]
type = "file"
path = "{out}"
batch = {{ max_records = 2000, max_wait = "50ms" }}
{extra}
"#
    )
}

/// datagen → Kafka (bounded job) → file; then the restarted job resumes from the committed
/// offsets: it reads only the records produced since, and rewrites none of the old ones.
#[test]
fn round_trip_and_restart_resumes_from_committed_offsets() {
    let b = brokers();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("e2e-in");
    let group = unique("e2e-g");
    create_topic(&b, &topic, 3);
    datagen_into(dir.path(), &b, &topic, 20_000);

    let job = write(
        dir.path(),
        "job.toml",
        &kafka_to_file("e2e", &b, &topic, &group, "out.jsonl", ""),
    );
    let out = dir.path().join("out.jsonl");
    let mut child = spawn(&job);
    wait_for(
        &job,
        Duration::from_secs(60),
        "20000 records in the file",
        || file_seqs(&out).len() == 20_000,
    );
    wait_for(&job, Duration::from_secs(30), "offsets committed", || {
        committed_total(&b, &group, &topic) == 20_000
    });
    stop(&mut child, &job);
    assert_eq!(
        assert_complete(&file_seqs(&out), 20_000, "first run"),
        0,
        "duplicates on a clean run"
    );

    produce_values(&b, &topic, &seq_values(20_000..21_000));
    let mut child = spawn(&job);
    wait_for(
        &job,
        Duration::from_secs(60),
        "the 1000 new records",
        || file_seqs(&out).len() == 21_000,
    );
    wait_for(&job, Duration::from_secs(30), "offsets committed", || {
        committed_total(&b, &group, &topic) == 21_000
    });
    stop(&mut child, &job);
    let dups = assert_complete(&file_seqs(&out), 21_000, "after restart");
    assert_eq!(
        dups, 0,
        "the restart replayed records that were already committed"
    );
}

/// Values that are not JSON go to the dead-letter file with a reason; the rest go through and
/// the offsets move past both.
#[test]
fn undecodable_values_go_to_the_dead_letter_sink() {
    let b = brokers();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("e2e-bad");
    let group = unique("e2e-g");
    create_topic(&b, &topic, 1);
    let mut values = seq_values(0..100);
    for i in [3, 50, 99] {
        values[i] = format!("not json {i}");
    }
    produce_values(&b, &topic, &values);
    let job = write(
        dir.path(),
        "job.toml",
        &kafka_to_file(
            "bad",
            &b,
            &topic,
            &group,
            "out.jsonl",
            "[errors]\ntolerance = \"all\"\ndead_letter = { type = \"file\", path = \"dlq.jsonl\" }",
        ),
    );
    let mut child = spawn(&job);
    let dlq = dir.path().join("dlq.jsonl");
    wait_for(
        &job,
        Duration::from_secs(60),
        "97 good records and 3 dead letters",
        || {
            file_seqs(&dir.path().join("out.jsonl")).len() == 97
                && std::fs::read_to_string(&dlq)
                    .map(|s| s.lines().count())
                    .unwrap_or(0)
                    == 3
        },
    );
    wait_for(
        &job,
        Duration::from_secs(30),
        "offsets past the bad records",
        || committed_total(&b, &group, &topic) == 100,
    );
    stop(&mut child, &job);
    let text = std::fs::read_to_string(&dlq).unwrap();
    assert!(
        text.contains("not JSON"),
        "dead letters carry the reason: {text}"
    );
    assert!(
        text.contains("not json 50") || text.contains("bm90IGpzb24gNTA"),
        "dead letters carry the raw value: {text}"
    );
}

/// Two `sluice` processes in one group: the second joins mid-stream, partitions are split, and
/// every record reaches one of the two outputs.
#[test]
fn two_processes_in_one_group_share_the_partitions_and_lose_nothing() {
    let b = brokers();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("e2e-group");
    let group = unique("e2e-g");
    create_topic(&b, &topic, 4);
    let n = 40_000u64;
    produce_values(&b, &topic, &seq_values(0..n / 2));
    let job_a = write(
        dir.path(),
        "a.toml",
        &kafka_to_file("a", &b, &topic, &group, "a.jsonl", ""),
    );
    let job_b = write(
        dir.path(),
        "b.toml",
        &kafka_to_file("b", &b, &topic, &group, "b.jsonl", ""),
    );
    let (out_a, out_b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let mut a = spawn(&job_a);
    wait_for(&job_a, Duration::from_secs(60), "process a to read", || {
        !file_seqs(&out_a).is_empty()
    });
    let mut pb = spawn(&job_b);
    wait_for(
        &job_b,
        Duration::from_secs(60),
        "process b to get partitions",
        || log_of(&job_b).contains("Kafka partitions assigned"),
    );
    // The second half arrives while both run, in slices.
    for k in 0..10 {
        let from = n / 2 + k * n / 20;
        produce_values(&b, &topic, &seq_values(from..from + n / 20));
    }
    let union = || {
        let mut m = file_seqs(&out_a);
        for (s, c) in file_seqs(&out_b) {
            *m.entry(s).or_insert(0) += c;
        }
        m
    };
    wait_for(
        &job_a,
        Duration::from_secs(120),
        "every record in a or b",
        || union().len() as u64 == n,
    );
    wait_for(&job_a, Duration::from_secs(30), "offsets committed", || {
        committed_total(&b, &group, &topic) == n as i64
    });
    stop(&mut a, &job_a);
    stop(&mut pb, &job_b);
    let dups = assert_complete(&union(), n, "two members");
    let (ca, cb) = (file_seqs(&out_a).len(), file_seqs(&out_b).len());
    assert!(cb > 0, "process b never wrote anything (a: {ca})");
    println!("two members: a wrote {ca}, b wrote {cb}, {dups} duplicates across the handover");
}
