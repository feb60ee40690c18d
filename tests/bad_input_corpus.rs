#![cfg(all(
    feature = "file",
    feature = "sql",
    feature = "kafka",
    feature = "kinesis"
))]
//! The bad-input corpus (`tests/corpus/`, plus a huge and a 100,000-deep document made here)
//! through every source format — the file source, stdin (JSON and text), Kafka (the broker of
//! `scripts/services.sh`) and Kinesis (kinesis-local) — into the file sink and the SQL sinks
//! (SQLite, PostgreSQL, MariaDB). Counted per sink: every input line is delivered or
//! dead-lettered with a reason, none is lost; and the source dead-letters exactly the lines
//! the corpus says are not JSON. Blank lines are not records (the line sources skip them), so
//! the corpus has none.

mod common;
mod kafka_support;
#[path = "../connectors/kinesis/tests/common/mod.rs"]
mod kinesis;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{stderr_of, wait_with_deadline, write_job};
use sluice_connector_sql::db::Db;

/// Each corpus file and how many of its lines are not JSON (RFC 8259, depth 127). A file in
/// `tests/corpus/` missing here fails the test.
const CORPUS: &[(&str, usize)] = &[
    ("bom.jsonl", 2),
    ("crlf.jsonl", 1),
    ("deep.jsonl", 2),
    ("malformed.jsonl", 13),
    ("nul.jsonl", 3),
    ("sql_types.jsonl", 0),
    ("surrogates.jsonl", 4),
    ("truncated.jsonl", 0),
    ("truncated_value.jsonl", 1),
    ("utf8.jsonl", 6),
];

/// One input: its name, bytes, and how many of its lines the source dead-letters as JSON.
struct Input {
    name: String,
    bytes: Vec<u8>,
    not_json: usize,
}

impl Input {
    /// Its records as a line source makes them: split at `\n`, one `\r` before it dropped,
    /// the last line taken without a newline.
    fn lines(&self) -> Vec<&[u8]> {
        let mut lines: Vec<&[u8]> = self
            .bytes
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .collect();
        if self.bytes.ends_with(b"\n") {
            lines.pop();
        }
        assert!(
            lines.iter().all(|l| !l.is_empty()),
            "{}: a blank line",
            self.name
        );
        lines
    }
}

/// The committed corpus, plus `huge.jsonl` (a 4 MiB document, over the file source's 1 MiB
/// reads) and `deep_100000.jsonl` (a 100,000-deep array) when `generated`.
fn corpus(generated: bool) -> Vec<Input> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = CORPUS.iter().map(|(n, _)| *n).collect();
    assert_eq!(on_disk, listed, "every corpus file is listed in CORPUS");
    let mut inputs: Vec<Input> = CORPUS
        .iter()
        .map(|(name, not_json)| Input {
            name: name.to_string(),
            bytes: std::fs::read(dir.join(name)).unwrap(),
            not_json: *not_json,
        })
        .collect();
    if generated {
        let blob = "x".repeat(4 << 20);
        inputs.push(Input {
            name: "huge.jsonl".into(),
            bytes: format!("{{\"id\": 1, \"name\": \"{blob}\"}}\n{{\"id\": 2}}\n").into_bytes(),
            not_json: 0,
        });
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    inputs.push(Input {
        name: "deep_100000.jsonl".into(),
        bytes: format!("{deep}\n{{\"id\": 1}}\n").into_bytes(),
        not_json: 1,
    });
    inputs
}

/// The dead letters of a run: stage → count; each has a non-empty reason.
fn dead_letters(path: &Path) -> BTreeMap<String, usize> {
    let mut stages = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let dead: serde_json::Value = serde_json::from_str(line).unwrap();
        let reason = dead["reason"].as_str().unwrap_or_default();
        assert!(
            !reason.trim().is_empty(),
            "a dead letter without a reason: {line}"
        );
        *stages
            .entry(dead["stage"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    stages
}

/// Lines in a file the file sink wrote (missing: 0).
fn lines_in(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Every line of `what` is delivered or dead-lettered with a reason: `delivered` by the sink
/// named `sink`, the dead letters in `dlq`; the source refused exactly `not_json`.
fn assert_accounted(
    what: &str,
    lines: usize,
    not_json: usize,
    sink: &str,
    delivered: usize,
    dlq: &Path,
) {
    let dead = dead_letters(dlq);
    let at_source = dead.get("source").copied().unwrap_or(0);
    let at_sink = dead.get(&format!("sink:{sink}")).copied().unwrap_or(0);
    assert_eq!(
        at_source, not_json,
        "{what}: dead-lettered at the source ({dead:?})"
    );
    assert_eq!(
        delivered + at_sink + at_source,
        lines,
        "{what} into {sink}: {delivered} delivered + {at_sink} refused by the sink + {at_source} refused by the source"
    );
}

const ERRORS: &str =
    "[errors]\ntolerance = \"all\"\ndead_letter = { type = \"file\", path = \"dlq.jsonl\" }\n";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/services.sh up and source target/services.env")
    })
}

/// The SQL sinks: name, URL, and the column types of `(id, name, amount)` in its dialect.
fn sql_targets() -> [(&'static str, String, [&'static str; 3]); 3] {
    [
        (
            "sqlite",
            "sqlite://out.db".into(),
            ["INTEGER", "TEXT", "REAL"],
        ),
        (
            "postgres",
            env("SLUICE_TEST_POSTGRES_URL"),
            ["BIGINT", "TEXT", "DOUBLE PRECISION"],
        ),
        (
            "mariadb",
            env("SLUICE_TEST_MYSQL_URL"),
            ["BIGINT", "TEXT", "DOUBLE"],
        ),
    ]
}

fn sql_sink(name: &str, url: &str, table: &str, types: [&str; 3]) -> String {
    format!(
        r#"[[sinks]]
name = "{name}"
type = "sql"
url = "{url}"
table = "{table}"
create_table = true
schema = [
  {{ name = "id", type = "{}", nullable = false }},
  {{ name = "name", type = "{}" }},
  {{ name = "amount", type = "{}" }},
]
"#,
        types[0], types[1], types[2]
    )
}

/// Rows in `table`, which is then dropped.
async fn count_and_drop(url: &str, dir: &Path, table: &str) -> usize {
    let db = Db::connect(url, None, dir, 1).await.unwrap();
    let cast = if url.starts_with("mysql") {
        "CHAR"
    } else {
        "TEXT"
    };
    let rows = db
        .fetch_text(
            &format!("SELECT CAST(COUNT(*) AS {cast}) FROM {table}"),
            &[],
        )
        .await
        .unwrap();
    db.exec(&format!("DROP TABLE {table}"), &[]).await.unwrap();
    db.close().await;
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

/// Each input through the file source into the file sink and the three SQL sinks at once.
#[test]
fn the_corpus_through_the_file_source_into_the_file_and_sql_sinks_loses_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let targets = sql_targets();
    for (i, input) in corpus(true).iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.jsonl"), &input.bytes).unwrap();
        let table = format!("corpus_{}_{i}", std::process::id());
        let mut job = "api_version = 1\nname = \"corpus\"\n[source]\ntype = \"file\"\npath = \"in.jsonl\"\n[[sinks]]\nname = \"file\"\ntype = \"file\"\npath = \"out.jsonl\"\n"
            .to_string();
        for (name, url, types) in &targets {
            job.push_str(&sql_sink(name, url, &table, *types));
        }
        job.push_str(ERRORS);
        let job = write_job(dir.path(), "job.toml", &job);
        let mut child = common::spawn_run(&job);
        let status = wait_with_deadline(&mut child, Duration::from_secs(60));
        assert!(
            status.success(),
            "{}: {}",
            input.name,
            stderr_of(&mut child)
        );
        let lines = input.lines().len();
        let dlq = dir.path().join("dlq.jsonl");
        let out = lines_in(&dir.path().join("out.jsonl"));
        assert_accounted(&input.name, lines, input.not_json, "file", out, &dlq);
        assert_eq!(
            out + input.not_json,
            lines,
            "{}: the file sink takes every JSON line",
            input.name
        );
        let mut tally = format!("{}: {lines} lines, file {out}", input.name);
        for (name, url, _) in &targets {
            let rows = rt.block_on(count_and_drop(url, dir.path(), &table));
            assert_accounted(&input.name, lines, input.not_json, name, rows, &dlq);
            tally.push_str(&format!(", {name} {rows}"));
        }
        eprintln!(
            "{tally} rows; dead letters by stage {:?}",
            dead_letters(&dlq)
        );
    }
}

/// `sluice run` of a stdin job fed `bytes`.
fn run_stdin(dir: &Path, format: &str, bytes: &[u8]) {
    let job = write_job(
        dir,
        "job.toml",
        &format!(
            "api_version = 1\nname = \"corpus-stdin\"\n[source]\ntype = \"stdin\"\nformat = \"{format}\"\n[[sinks]]\nname = \"file\"\ntype = \"file\"\npath = \"out.jsonl\"\n{ERRORS}"
        ),
    );
    let mut child = common::sluice()
        .arg("run")
        .arg(&job)
        .arg("--no-progress")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{}", stderr_of(&mut child));
    writer.join().unwrap().unwrap();
}

/// Each input on stdin, as JSON and as text, into the file sink.
#[test]
fn the_corpus_through_stdin_as_json_and_as_text_loses_nothing() {
    for input in corpus(true) {
        for (format, not_json) in [("json", input.not_json), ("text", 0)] {
            let dir = tempfile::tempdir().unwrap();
            run_stdin(dir.path(), format, &input.bytes);
            let what = format!("{} on stdin as {format}", input.name);
            let out = lines_in(&dir.path().join("out.jsonl"));
            let lines = input.lines().len();
            assert_accounted(
                &what,
                lines,
                not_json,
                "file",
                out,
                &dir.path().join("dlq.jsonl"),
            );
            assert_eq!(out + not_json, lines, "{what}");
        }
    }
}

/// Every line of the corpus (not the huge document: over a broker's and Kinesis' record size
/// limits) as one message/record each: the values, and how many are not JSON.
fn messages() -> (Vec<Vec<u8>>, usize) {
    let inputs = corpus(false);
    let values = inputs
        .iter()
        .flat_map(|i| i.lines().into_iter().map(<[u8]>::to_vec))
        .collect();
    (values, inputs.iter().map(|i| i.not_json).sum())
}

/// Run `job` until its file sink and dead letters hold `n` lines, then stop it; check the
/// count.
fn run_until_accounted(job: &Path, n: usize, not_json: usize, what: &str) {
    let dir = job.parent().unwrap();
    let (out, dlq) = (dir.join("out.jsonl"), dir.join("dlq.jsonl"));
    let mut child = kafka_support::spawn(job);
    kafka_support::wait_for(job, Duration::from_secs(40), what, || {
        lines_in(&out) + lines_in(&dlq) >= n
    });
    kafka_support::stop(&mut child, job);
    assert_accounted(what, n, not_json, "file", lines_in(&out), &dlq);
    assert_eq!(lines_in(&out) + not_json, n, "{what}");
}

/// The corpus as Kafka messages, through the Kafka source into the file sink.
#[test]
fn the_corpus_through_the_kafka_source_loses_nothing() {
    let brokers = kafka_support::brokers();
    let topic = kafka_support::unique("corpus");
    kafka_support::create_topic(&brokers, &topic, 1);
    let (values, not_json) = messages();
    kafka_support::produce_bytes(&brokers, &topic, &values);
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        &format!(
            "api_version = 1\nname = \"corpus-kafka\"\n[source]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup = \"{topic}\"\nbatch_wait = \"20ms\"\n[[sinks]]\nname = \"file\"\ntype = \"file\"\npath = \"out.jsonl\"\n{ERRORS}"
        ),
    );
    run_until_accounted(&job, values.len(), not_json, "the corpus from Kafka");
}

/// The corpus as Kinesis records, through the Kinesis source into the file sink.
#[test]
fn the_corpus_through_the_kinesis_source_loses_nothing() {
    let (values, not_json) = messages();
    let stream = kafka_support::rt().block_on(async {
        let client = kinesis::client().await;
        let stream = kinesis::unique("corpus");
        kinesis::create_stream(&client, &stream, 1).await;
        let records: Vec<(String, Vec<u8>)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), v.clone()))
            .collect();
        kinesis::put_placed(&client, &stream, &records).await;
        stream
    });
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        &format!(
            "api_version = 1\nname = \"corpus-kinesis\"\n[source]\ntype = \"kinesis\"\nstream = \"{stream}\"\nendpoint = \"{}\"\nregion = \"{}\"\npoll_interval = \"100ms\"\n[[sinks]]\nname = \"file\"\ntype = \"file\"\npath = \"out.jsonl\"\n{ERRORS}",
            kinesis::endpoint(),
            kinesis::region()
        ),
    );
    run_until_accounted(&job, values.len(), not_json, "the corpus from Kinesis");
}
