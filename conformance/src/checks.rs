//! The checks. Each is one test of a connector's `tests/conformance.rs` (see
//! [`conformance_tests!`](crate::conformance_tests)); each makes its own [`Fixture`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use sluice_core::testing::{key_of, test_key, test_record};
use sluice_core::{
    Checkpoint, ConnectorError, ErrorKind, Guarantee, Partition, Position, Record, Sink, Source,
};

use crate::job::{self, Fixture, build_sink, build_source, job_text, run_job, sink_context};
use crate::{Harness, Test, kill};

const PARTITION: &str = "conformance";

fn partition() -> Partition {
    Arc::from(PARTITION)
}

/// Generated records `seqs`, at positions `conformance`/seq.
fn records(seqs: std::ops::Range<u64>) -> Vec<Record> {
    let p = partition();
    seqs.map(|i| test_record(&p, i)).collect()
}

/// The checkpoint after record `seq`.
fn checkpoint_at(seq: u64) -> Checkpoint {
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(partition(), seq as i64));
    cp
}

fn not_applicable(test: &Test, why: &str) {
    eprintln!("{}: not applicable: {why}", test.check);
}

fn guarantee_of<H: Harness>(h: &H) -> Guarantee {
    if h.claims().exactly_once {
        Guarantee::ExactlyOnce
    } else {
        Guarantee::AtLeastOnce
    }
}

/// Every key of `keys`, with the number of copies.
fn counts(keys: &[String]) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for k in keys {
        *counts.entry(k.clone()).or_insert(0) += 1;
    }
    counts
}

/// Assert `keys` holds exactly the keys of `seqs`, each once.
fn assert_exactly(keys: &[String], seqs: impl IntoIterator<Item = u64>, what: &str) {
    let got = counts(keys);
    let want: BTreeMap<String, u32> = seqs.into_iter().map(|s| (test_key(s), 1)).collect();
    let missing: Vec<&String> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<&String> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    let twice: Vec<(&String, &u32)> = got.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && twice.is_empty(),
        "{what}: missing {missing:?}, unexpected {extra:?}, more than once {twice:?} ({} keys read)",
        keys.len()
    );
}

fn assert_clean(report: &sluice_core::WriteReport, what: &str) {
    assert!(
        report.rejected.is_empty() && report.retry.is_empty() && !report.rolled_back,
        "{what}: a clean write reported {report:?}"
    );
}

async fn open_sink<H: Harness>(h: &H, fx: &Fixture, guarantee: Guarantee) -> Box<dyn Sink> {
    let mut sink = build_sink(h, fx, h.sink_config(fx), guarantee);
    if let Err(e) = sink.open(&sink_context(fx, guarantee)).await {
        panic!("opening the sink failed: {e}");
    }
    sink
}

/// Schema, generated reference and deserialisation agree: every property of every connector
/// of the crate is documented in its schema and listed in `docs/connectors.md` under its
/// connector, and every property of the connectors under test is accepted by their typed
/// config (with its schema default, or the harness's value).
pub async fn config_schema_docs_and_deserialisation_agree<H: Harness>(h: &H, _test: &Test) {
    let fx = Fixture::new(_test);
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/connectors.md"
    ))
    .unwrap_or_else(|e| panic!("docs/connectors.md: {e}"));
    let mut registry = sluice_core::Registry::new();
    h.register(&mut registry);
    let mut entries: Vec<(&str, &str, &str, serde_json::Value, Option<toml::Table>)> = Vec::new();
    for e in registry.sources() {
        let valid = (Some(e.name) == h.source_type()).then(|| h.source_config(&fx));
        entries.push(("Sources:", e.name, e.doc, (e.schema)().to_value(), valid));
    }
    for e in registry.sinks() {
        let valid = (Some(e.name) == h.sink_type()).then(|| h.sink_config(&fx));
        entries.push(("Sinks", e.name, e.doc, (e.schema)().to_value(), valid));
    }
    assert!(!entries.is_empty(), "register() registers nothing");
    for (section, name, doc, schema, valid) in entries {
        let listed = reference_fields(&docs, section, name, doc).unwrap_or_else(|| {
            panic!("docs/connectors.md has no entry `{name} — {doc}` under {section}: run scripts/gen-docs.sh")
        });
        let props = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (prop, spec) in &props {
            let described = spec["description"]
                .as_str()
                .is_some_and(|d| !d.trim().is_empty());
            assert!(
                described,
                "{name}.{prop} has no doc comment (the reference is made from it)"
            );
            assert!(
                listed.contains(prop),
                "{name}.{prop} is missing from docs/connectors.md: run scripts/gen-docs.sh"
            );
        }
        for field in &listed {
            assert!(
                props.contains_key(field),
                "docs/connectors.md lists {name}.{field}, which its config does not have: run scripts/gen-docs.sh"
            );
        }
        let Some(valid) = valid else { continue };
        let build = |table: toml::Table| -> Result<(), String> {
            let ctx = job::context(&fx, Guarantee::AtLeastOnce);
            let built = if section == "Sinks" {
                registry
                    .sink(name)
                    .map(|e| e.build(table, &ctx).map(|_| ()))
            } else {
                registry
                    .source(name)
                    .map(|e| e.build(table, &ctx).map(|_| ()))
            };
            match built {
                Some(Ok(())) => Ok(()),
                Some(Err(issue)) => Err(format!("{}: {}", issue.path, issue.message)),
                None => Err("not registered".into()),
            }
        };
        build(valid.clone())
            .unwrap_or_else(|e| panic!("the harness's {name} config is refused: {e}"));
        for (prop, spec) in &props {
            let mut table = valid.clone();
            if !table.contains_key(prop) {
                let Some(default) = spec.get("default").filter(|d| !d.is_null()) else {
                    continue;
                };
                let value = toml::Value::try_from(default.clone()).unwrap_or_else(|e| {
                    panic!("{name}.{prop}: default {default} is not TOML: {e}")
                });
                table.insert(prop.clone(), value);
            }
            if let Err(e) = build(table) {
                assert!(
                    !e.contains("unknown field"),
                    "{name}.{prop} is in the schema but its typed config refuses it: {e}"
                );
                panic!("{name}.{prop} with its schema default is refused: {e}");
            }
        }
    }
}

/// The field names `docs/connectors.md` lists under `  name — doc` in `section`.
fn reference_fields(docs: &str, section: &str, name: &str, doc: &str) -> Option<Vec<String>> {
    let start = docs.lines().position(|l| l.starts_with(section))?;
    let head = format!("  {name} — {doc}");
    let mut lines = docs.lines().skip(start + 1).skip_while(|l| *l != head);
    lines.next()?;
    let mut fields = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            break;
        }
        let Some(rest) = line.strip_prefix("    ") else {
            break;
        };
        if !rest.starts_with(' ')
            && let Some(field) = rest.split_whitespace().next()
        {
            fields.push(field.to_string());
        }
    }
    Some(fields)
}

/// Unknown keys in the connector's tables are refused when the job is loaded, with the file,
/// line and field path of the key.
pub async fn unknown_keys_are_refused_with_their_path<H: Harness>(h: &H, test: &Test) {
    let fx = Fixture::new(test);
    let mem = || {
        let mut t = toml::Table::new();
        t.insert("count".into(), 1.into());
        t
    };
    let mut checked = 0;
    if let Some(kind) = h.sink_type() {
        let mut sink = h.sink_config(&fx);
        sink.insert("no_such_option".into(), true.into());
        let text = job_text(
            &fx.name,
            Guarantee::AtLeastOnce,
            ("mem", mem()),
            (kind, sink),
            10,
        );
        let err = job::load(h, fx.dir.path(), &text).expect_err("an unknown sink key was accepted");
        assert!(
            err.lines().any(|l| l.starts_with("job.toml:")
                && l.contains(": sinks[0].no_such_option: unknown field")),
            "the error does not name file, line and path: {err}"
        );
        checked += 1;
    }
    if let Some(kind) = h.source_type() {
        let mut source = h.source_config(&fx);
        source.insert("no_such_option".into(), true.into());
        let sink = match h.sink_type() {
            Some(k) => (k, h.sink_config(&fx)),
            None => panic!("a source-only connector needs a sink in the suite"),
        };
        let text = job_text(&fx.name, Guarantee::AtLeastOnce, (kind, source), sink, 10);
        let err =
            job::load(h, fx.dir.path(), &text).expect_err("an unknown source key was accepted");
        assert!(
            err.lines().any(|l| l.starts_with("job.toml:")
                && l.contains(": source.no_such_option: unknown field")),
            "the error does not name file, line and path: {err}"
        );
        checked += 1;
    }
    assert!(checked > 0, "the harness names neither a source nor a sink");
}

/// What the harness claims is what the connectors say (`transactional`, `can_seek`), and a
/// job asking for exactly-once from a sink that cannot do it is refused when loaded.
pub async fn claims_match_the_connectors<H: Harness>(h: &H, test: &Test) {
    let fx = Fixture::new(test);
    let claims = h.claims();
    if h.sink_type().is_some() {
        let sink = build_sink(h, &fx, h.sink_config(&fx), Guarantee::ExactlyOnce);
        assert_eq!(
            sink.transactional(),
            claims.exactly_once,
            "Sink::transactional vs Claims::exactly_once"
        );
        assert!(
            sink.destination().is_some(),
            "a sink that talks to a real destination names it (Sink::destination)"
        );
        if !claims.exactly_once {
            let mut mem = toml::Table::new();
            mem.insert("count".into(), 1.into());
            let text = job_text(
                &fx.name,
                Guarantee::ExactlyOnce,
                ("mem", mem),
                (h.sink_type().unwrap_or_default(), h.sink_config(&fx)),
                10,
            );
            assert!(
                job::load(h, fx.dir.path(), &text).is_err(),
                "exactly-once with a non-transactional sink was accepted"
            );
        }
    }
    if h.source_type().is_some() {
        let source = build_source(h, &fx, h.source_config(&fx), Guarantee::ExactlyOnce);
        assert_eq!(
            source.can_seek(),
            claims.can_seek,
            "Source::can_seek vs Claims::can_seek"
        );
    }
}

/// Write, close, reopen: the sink's `committed_checkpoint` is what the last write committed
/// (with exactly-once), and everything written is there once.
pub async fn sink_write_close_reopen_returns_the_committed_checkpoint<H: Harness>(
    h: &H,
    test: &Test,
) {
    if h.sink_type().is_none() {
        return not_applicable(test, "no sink");
    }
    let fx = Fixture::new(test);
    h.prepare(&fx).await;
    let g = guarantee_of(h);
    let eo = g == Guarantee::ExactlyOnce;
    let mut sink = open_sink(h, &fx, g).await;
    assert_eq!(
        sink.committed_checkpoint()
            .await
            .expect("committed_checkpoint"),
        None,
        "a fresh destination has no checkpoint"
    );
    for (range, last) in [(0..10, 9), (10..20, 19)] {
        let cp = checkpoint_at(last);
        let report = sink
            .write(&records(range), eo.then_some(&cp))
            .await
            .expect("write");
        assert_clean(&report, "write");
        sink.close().await.expect("close");
        sink = open_sink(h, &fx, g).await;
        let committed = sink
            .committed_checkpoint()
            .await
            .expect("committed_checkpoint after reopening");
        assert_eq!(
            committed,
            eo.then_some(cp),
            "committed_checkpoint after write, close, reopen"
        );
    }
    sink.close().await.expect("close");
    assert_exactly(&h.written_keys(&fx).await, 0..20, "read back");
}

/// With exactly-once, records a sink's committed checkpoint covers are not written again when
/// the source delivers them again (a job run twice over a redelivering source).
pub async fn exactly_once_drops_covered_records_on_redelivery<H: Harness>(h: &H, test: &Test) {
    let Some(kind) = h.sink_type() else {
        return not_applicable(test, "no sink");
    };
    if !h.claims().exactly_once {
        return not_applicable(test, "the sink does not claim exactly-once");
    }
    let fx = Fixture::new(test);
    h.prepare(&fx).await;
    for (count, replay) in [(30, false), (60, true)] {
        let mut mem = toml::Table::new();
        mem.insert("count".into(), count.into());
        mem.insert("batch".into(), 7.into());
        mem.insert("replay".into(), replay.into());
        let text = job_text(
            &fx.name,
            Guarantee::ExactlyOnce,
            ("mem", mem),
            (kind, h.sink_config(&fx)),
            10,
        );
        let report = run_job(h, fx.dir.path(), &text, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("run failed: {e}"));
        assert_eq!(
            report.records_in, count as u64,
            "the source delivered everything (again)"
        );
    }
    assert_exactly(
        &h.written_keys(&fx).await,
        0..60,
        "after a redelivery of 0..30",
    );
}

/// A record the destination refuses comes back in the `WriteReport` as rejected (never as an
/// error that stops the job, never silently dropped): either everything else is durable, or
/// (`rolled_back`) nothing is, and writing the others again with the same checkpoint works.
pub async fn partial_failures_map_to_rejected_or_retry<H: Harness>(h: &H, test: &Test) {
    if h.sink_type().is_none() {
        return not_applicable(test, "no sink");
    }
    let Some(bad) = h.rejected_value() else {
        return not_applicable(
            test,
            "the destination refuses no record (the harness names none)",
        );
    };
    let fx = Fixture::new(test);
    h.prepare(&fx).await;
    let g = guarantee_of(h);
    let eo = g == Guarantee::ExactlyOnce;
    let mut sink = open_sink(h, &fx, g).await;
    let mut batch = records(0..3);
    batch[1] = Record::new(bad, batch[1].position.clone());
    batch[1].key = Some(test_key(1).into());
    let cp = checkpoint_at(2);
    let report = match sink.write(&batch, eo.then_some(&cp)).await {
        Ok(report) => report,
        Err(e) => panic!("a refused record failed the whole write instead of being reported: {e}"),
    };
    assert_eq!(
        report.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![1],
        "{report:?}"
    );
    assert!(report.retry.is_empty(), "{report:?}");
    eprintln!("rejected with: {}", report.rejected[0].1);
    if report.rolled_back {
        assert!(
            h.written_keys(&fx).await.is_empty(),
            "rolled_back, yet records are durable"
        );
        let again = [batch[0].clone(), batch[2].clone()];
        let report = sink
            .write(&again, eo.then_some(&cp))
            .await
            .expect("writing the others again");
        assert_clean(&report, "writing the others again");
    }
    sink.close().await.expect("close");
    assert_exactly(
        &h.written_keys(&fx).await,
        [0, 2],
        "after a rejected record",
    );
    if eo {
        let mut sink = open_sink(h, &fx, g).await;
        assert_eq!(
            sink.committed_checkpoint()
                .await
                .expect("committed_checkpoint"),
            Some(cp)
        );
        sink.close().await.expect("close");
    }
}

/// A sink whose service does not answer fails quickly (within 15 s) with a retryable external
/// error, or reports its records as `retry`: the runtime then backs off instead of stopping.
pub async fn unreachable_service_fails_fast_and_retryably<H: Harness>(h: &H, test: &Test) {
    if h.sink_type().is_none() {
        return not_applicable(test, "no sink");
    }
    let fx = Fixture::new(test);
    let Some(config) = h.unreachable_sink_config(&fx) else {
        return not_applicable(
            test,
            "the sink talks to no service (the harness names no unreachable config)",
        );
    };
    let g = guarantee_of(h);
    let started = Instant::now();
    let mut sink = build_sink(h, &fx, config, g);
    let check = |e: &ConnectorError| {
        eprintln!("failed with: {e}");
        assert!(
            e.retryable && e.kind == ErrorKind::External,
            "not a retryable external fault: {e:?}"
        );
        assert!(
            !e.message.contains("pool timed out"),
            "the real cause is lost: {e}"
        );
    };
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        if let Err(e) = sink.open(&sink_context(&fx, g)).await {
            return check(&e);
        }
        let cp = checkpoint_at(0);
        match sink
            .write(&records(0..1), (g == Guarantee::ExactlyOnce).then_some(&cp))
            .await
        {
            Err(e) => check(&e),
            Ok(report) => assert_eq!(
                report.retry,
                vec![0],
                "a write to nowhere reported {report:?}"
            ),
        }
    })
    .await;
    assert!(outcome.is_ok(), "no answer within 60 s");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?} to fail");
}

/// Closing twice is harmless, for the sink and for the source.
pub async fn double_close_is_harmless<H: Harness>(h: &H, test: &Test) {
    let fx = Fixture::new(test);
    h.prepare(&fx).await;
    let g = guarantee_of(h);
    if h.sink_type().is_some() {
        let mut sink = open_sink(h, &fx, g).await;
        let cp = checkpoint_at(0);
        let report = sink
            .write(&records(0..1), (g == Guarantee::ExactlyOnce).then_some(&cp))
            .await
            .expect("write");
        assert_clean(&report, "write");
        sink.close().await.expect("first close");
        sink.close().await.expect("second close");
        assert_exactly(&h.written_keys(&fx).await, 0..1, "after two closes");
    }
    if h.source_type().is_some() {
        h.feed_source(&fx, 0..5).await;
        let mut source = build_source(h, &fx, h.source_config(&fx), g);
        source.open(None).await.expect("open");
        let got = read_keys(source.as_mut(), 5, h.source_is_bounded()).await;
        assert_eq!(got.len(), 5);
        source.close().await.expect("first close");
        source.close().await.expect("second close");
    }
}

/// Read records until `want` came (and, for a bounded source, its end; for an unbounded one a
/// short grace period that would show extra copies). Keys in read order, with positions.
async fn read_keys(source: &mut dyn Source, want: usize, bounded: bool) -> Vec<(String, Position)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {want} records within 60 s",
            got.len()
        );
        let wait = if got.len() >= want && !bounded {
            Duration::from_millis(500).min(left)
        } else {
            left
        };
        match tokio::time::timeout(wait, source.next_batch()).await {
            Err(_) if got.len() >= want => break,
            Err(_) => continue,
            Ok(Err(e)) => panic!("next_batch failed: {e}"),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(batch))) => {
                assert!(
                    batch.dead.is_empty(),
                    "valid records came as dead: {:?}",
                    batch.dead.first().map(|d| &d.reason)
                );
                for r in batch.records {
                    let key = key_of(&r.value).unwrap_or_else(|| {
                        panic!(
                            "a record without a `key` field: {:?}",
                            String::from_utf8_lossy(&r.value)
                        )
                    });
                    got.push((key, r.position));
                }
            }
        }
    }
    got
}

/// A source opened at a checkpoint continues strictly after it: nothing before it again,
/// nothing after it missing (with a source that owns its offsets and cannot seek: after
/// `commit`).
pub async fn source_resumes_after_its_checkpoint<H: Harness>(h: &H, test: &Test) {
    if h.source_type().is_none() {
        return not_applicable(test, "no source");
    }
    let fx = Fixture::new(test);
    h.prepare(&fx).await;
    let bounded = h.source_is_bounded();
    let g = if h.claims().can_seek {
        Guarantee::ExactlyOnce
    } else {
        Guarantee::AtLeastOnce
    };
    h.feed_source(&fx, 0..50).await;
    let mut source = build_source(h, &fx, h.source_config(&fx), g);
    source.open(None).await.expect("open");
    let first = read_keys(source.as_mut(), 50, bounded).await;
    let keys: Vec<String> = first.iter().map(|(k, _)| k.clone()).collect();
    assert_exactly(&keys, 0..50, "first read");
    let mut cp = Checkpoint::default();
    for (_, position) in &first[..20] {
        cp.advance(position);
    }
    let resume = if g == Guarantee::AtLeastOnce && source.owns_offsets() {
        source.commit(&cp).await.expect("commit");
        None
    } else {
        Some(cp)
    };
    source.close().await.expect("close");
    h.feed_source(&fx, 50..60).await;
    let mut source = build_source(h, &fx, h.source_config(&fx), g);
    source.open(resume).await.expect("reopen");
    let rest: Vec<String> = read_keys(source.as_mut(), 40, bounded)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    source.close().await.expect("close");
    let mut want: Vec<String> = keys[20..].to_vec();
    want.extend((50..60).map(test_key));
    let (mut rest_sorted, mut want_sorted) = (rest.clone(), want);
    rest_sorted.sort();
    want_sorted.sort();
    assert_eq!(
        rest_sorted, want_sorted,
        "after reopening at the checkpoint of the first 20 records"
    );
}

/// `next_batch` futures dropped at random moments (as the runtime does to commit or shut down)
/// lose and duplicate nothing.
pub async fn next_batch_is_cancel_safe<H: Harness>(h: &H, test: &Test) {
    if h.source_type().is_none() {
        return not_applicable(test, "no source");
    }
    let fx = Fixture::new(test);
    h.prepare(&fx).await;
    const N: u64 = 300;
    h.feed_source(&fx, 0..N).await;
    let mut source = build_source(h, &fx, h.source_config(&fx), Guarantee::AtLeastOnce);
    source.open(None).await.expect("open");
    let bounded = h.source_is_bounded();
    let mut keys = Vec::new();
    let (mut dropped, mut ended) = (0, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while (keys.len() as u64) < N && Instant::now() < deadline {
        // A third of the calls are dropped at their first await, the rest at a random moment.
        let mut rng = rand::rng();
        let wait = match rng.random_range(0..3) {
            0 => Duration::ZERO,
            1 => Duration::from_micros(rng.random_range(0..500)),
            _ => Duration::from_micros(rng.random_range(0..5_000)),
        };
        match tokio::time::timeout(wait, source.next_batch()).await {
            Err(_) => dropped += 1,
            Ok(Err(e)) => panic!("next_batch failed: {e}"),
            Ok(Ok(None)) => {
                ended = true;
                break;
            }
            Ok(Ok(Some(batch))) => {
                keys.extend(batch.records.iter().filter_map(|r| key_of(&r.value)))
            }
        }
    }
    // Anything left (and, unbounded, extra copies) with whole calls.
    if !ended {
        keys.extend(
            read_keys(
                source.as_mut(),
                N as usize - keys.len().min(N as usize),
                bounded,
            )
            .await
            .into_iter()
            .map(|(k, _)| k),
        );
    }
    source.close().await.expect("close");
    eprintln!(
        "{dropped} next_batch futures dropped, {} keys, ended: {ended}",
        keys.len()
    );
    if dropped == 0 {
        // Even calls with a zero timeout completed: every `next_batch` finished at its first
        // poll (SQLite answers in place), so there was no await to be dropped at.
        eprintln!("every next_batch completed at its first poll: nothing could be dropped");
    }
    assert_exactly(&keys, 0..N, "reading with dropped futures");
}

/// kill -9 a job writing generated records into the sink, at random moments, at least ten
/// times; restart it each time: nothing lost, and with exactly-once nothing twice.
pub async fn kill_nine_loop_into_the_sink<H: Harness>(h: &H, test: &Test) {
    let Some(kind) = h.sink_type() else {
        return not_applicable(test, "no sink");
    };
    kill::run(h, test, kill::Feed::Generated, kind).await;
}

/// kill -9 a job reading the connector's own source into its sink, at least ten times: nothing
/// lost, and with exactly-once (a source that can seek) nothing twice.
pub async fn kill_nine_loop_from_the_source<H: Harness>(h: &H, test: &Test) {
    let (Some(_), Some(kind)) = (h.source_type(), h.sink_type()) else {
        return not_applicable(test, "needs the connector's source and sink");
    };
    kill::run(h, test, kill::Feed::Source, kind).await;
}
