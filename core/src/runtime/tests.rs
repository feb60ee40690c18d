//! Pipeline tests with in-memory sources and sinks (`crate::testing`: the runtime's own
//! mechanics; connectors are tested against real services in their crates and in the
//! end-to-end tests).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::connector::WriteReport;
use crate::connector::{Sink, Source};
use crate::error::ConnectorError;
use crate::job::{
    BatchConfig, DeliveryConfig, PipelineConfig, RetryConfig, RouteCondition, SinkCommon,
};
use crate::record::{Batch, Header, Offset, Position, Record};
use crate::testing::{MemSink, MemSource};
use crate::transform::{Outcome, Transform, TransformError, TransformErrorKind};
use crate::units::HumanDuration;

fn fast_retry() -> RetryConfig {
    RetryConfig {
        initial_backoff: HumanDuration(Duration::from_millis(1)),
        max_backoff: HumanDuration(Duration::from_millis(5)),
        max_elapsed: HumanDuration(Duration::from_millis(300)),
    }
}

fn plan(name: &str, sink: MemSink, max_records: usize) -> SinkPlan {
    SinkPlan {
        name: name.into(),
        type_name: "mem".into(),
        common: SinkCommon {
            name: Some(name.into()),
            batch: BatchConfig {
                max_records,
                ..Default::default()
            },
            retry: fast_retry(),
            when: None,
        },
        sink: Box::new(sink),
    }
}

fn job(
    source: MemSource,
    sinks: Vec<SinkPlan>,
    guarantee: Guarantee,
    tolerance: Tolerance,
    dlq: Option<MemSink>,
    dir: &std::path::Path,
) -> LoadedJob {
    LoadedJob {
        name: "t".into(),
        file: "t.toml".into(),
        base_dir: dir.to_path_buf(),
        state_dir: dir.join("state"),
        delivery: DeliveryConfig {
            guarantee,
            commit_interval: HumanDuration(Duration::from_millis(10)),
        },
        source_type: "mem".into(),
        source: Box::new(source),
        transforms: Vec::new(),
        sinks,
        tolerance,
        dead_letter: dlq.map(|d| plan("dlq", d, 1000)),
        pipeline: PipelineConfig::default(),
        raw: toml::Table::new(),
        text: String::new(),
        expanded: Default::default(),
    }
}

fn source(count: i64) -> MemSource {
    MemSource::new(count)
}

fn ints(records: &[Record]) -> Vec<i64> {
    records
        .iter()
        .map(|r| match r.position.offset {
            Offset::Int(i) => i,
            Offset::Text(_) => -1,
        })
        .collect()
}

#[tokio::test]
async fn every_record_reaches_every_sink_and_the_end_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (MemSink::default(), MemSink::default());
    let j = job(
        source(100),
        vec![plan("a", a.clone(), 10), plan("b", b.clone(), 33)],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    let report = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ints(&a.written.lock()), (0..100).collect::<Vec<_>>());
    assert_eq!(ints(&b.written.lock()), (0..100).collect::<Vec<_>>());
    assert_eq!(report.committed.get("mem"), Some(&Offset::Int(99)));
    // The offset store has it: a second run reads nothing.
    let j = job(
        source(100),
        vec![plan("a", a.clone(), 10)],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    let report = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.records_in, 0);
}

#[tokio::test]
async fn transient_failures_are_retried_and_per_record_failures_handled() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemSink::default();
    {
        let mut script = sink.script.lock();
        script.push_back(Err(ConnectorError::transient("connection reset")));
        script.push_back(Err(ConnectorError::transient("connection reset")));
        // Second record throttled, third rejected for good.
        script.push_back(Ok(WriteReport {
            rejected: vec![(2, "too big".into())],
            retry: vec![1],
            rolled_back: false,
        }));
    }
    let dlq = MemSink::default();
    let j = job(
        source(10),
        vec![plan("s", sink.clone(), 100)],
        Guarantee::AtLeastOnce,
        Tolerance::All,
        Some(dlq.clone()),
        dir.path(),
    );
    let report = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    let mut got = ints(&sink.written.lock());
    got.sort();
    assert_eq!(got, vec![0, 1, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(report.dead_lettered, 1);
    let dead = dlq.written.lock();
    let envelope: serde_json::Value = serde_json::from_slice(&dead[0].value).unwrap();
    assert_eq!(envelope["stage"], "sink:s");
    assert_eq!(envelope["reason"], "too big");
    assert_eq!(envelope["record"]["value"], "{\"i\":2}");
}

#[tokio::test]
async fn a_sink_that_stays_down_fails_the_job_without_committing_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let good = MemSink::default();
    let down = MemSink::default();
    for _ in 0..10_000 {
        down.script
            .lock()
            .push_back(Err(ConnectorError::transient("connection refused")));
    }
    let j = job(
        source(50),
        vec![plan("good", good.clone(), 5), plan("down", down.clone(), 5)],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    let err = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("sink `down` failed: connection refused (gave up after"),
        "{err}"
    );
    assert!(*down.calls.lock() > 2, "retried");
    let store = OffsetStore::open(&dir.path().join("state/offsets.db"))
        .await
        .unwrap();
    assert_eq!(
        store.load("t").await.unwrap(),
        None,
        "nothing may be committed past what `down` holds"
    );
}

#[tokio::test]
async fn tolerance_none_stops_on_a_bad_record_and_all_dead_letters_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = source(30);
    src.bad_every = Some(10);
    let j = job(
        src,
        vec![plan("s", MemSink::default(), 100)],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    let err = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bad record at mem@9 in source: bad"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut src = source(30);
    src.bad_every = Some(10);
    let (sink, dlq) = (MemSink::default(), MemSink::default());
    let j = job(
        src,
        vec![plan("s", sink.clone(), 100)],
        Guarantee::AtLeastOnce,
        Tolerance::All,
        Some(dlq.clone()),
        dir.path(),
    );
    let report = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sink.written.lock().len(), 27);
    assert_eq!(report.dead_lettered, 3);
    assert_eq!(report.committed.get("mem"), Some(&Offset::Int(29)));
}

#[tokio::test]
async fn exactly_once_sinks_skip_what_their_checkpoint_covers_and_get_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut ahead = MemSink::default();
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("mem"), 59));
    ahead.committed = Some(cp);
    let mut behind = MemSink::default();
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("mem"), 19));
    behind.committed = Some(cp);
    let j = job(
        source(100),
        vec![
            plan("ahead", ahead.clone(), 8),
            plan("behind", behind.clone(), 8),
        ],
        Guarantee::ExactlyOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ints(&ahead.written.lock()), (60..100).collect::<Vec<_>>());
    assert_eq!(ints(&behind.written.lock()), (20..100).collect::<Vec<_>>());
    let last = behind.checkpoints.lock().last().cloned().unwrap();
    assert_eq!(last.get("mem"), Some(&Offset::Int(99)));
}

/// Emits each input twice, drops odd ones, fails multiples of 5, and tags by a header.
struct Twice;

impl Transform for Twice {
    fn name(&self) -> &str {
        "twice"
    }
    fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
        Ok(records
            .iter()
            .map(|r| {
                let Offset::Int(i) = r.position.offset else {
                    unreachable!()
                };
                if i % 5 == 0 {
                    Outcome::Failed(format!("{i} is a multiple of 5"))
                } else if i % 2 == 1 {
                    Outcome::Dropped
                } else {
                    let mut tagged = r.clone();
                    tagged.headers.push(Header {
                        name: "route".into(),
                        value: "alert".into(),
                    });
                    // A careless transform that loses the position: the runtime restores it.
                    tagged.position = Position::default();
                    Outcome::Ok(vec![r.clone(), tagged])
                }
            })
            .collect())
    }
}

#[tokio::test]
async fn transform_outcomes_are_routed_and_keep_their_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (all, alerts, dlq) = (MemSink::default(), MemSink::default(), MemSink::default());
    let mut alert_plan = plan("alerts", alerts.clone(), 100);
    alert_plan.common.when = Some(RouteCondition::header_equals("route", "alert"));
    let j = job(
        source(20),
        vec![plan("all", all.clone(), 3), alert_plan],
        Guarantee::AtLeastOnce,
        Tolerance::All,
        Some(dlq.clone()),
        dir.path(),
    );
    let report = Pipeline::new(j, vec![Box::new(Twice)])
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        ints(&all.written.lock()),
        vec![2, 2, 4, 4, 6, 6, 8, 8, 12, 12, 14, 14, 16, 16, 18, 18]
    );
    assert_eq!(
        ints(&alerts.written.lock()),
        vec![2, 4, 6, 8, 12, 14, 16, 18]
    );
    assert_eq!(report.dropped, 8, "odd, not a multiple of 5");
    assert_eq!(report.dead_lettered, 4, "0, 5, 10, 15");
    assert_eq!(report.committed.get("mem"), Some(&Offset::Int(19)));
}

/// Fails every batch, like a plugin that traps.
struct Trap;

impl Transform for Trap {
    fn name(&self) -> &str {
        "trap"
    }
    fn process(&mut self, _records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
        Err(TransformError::new(
            "trap",
            TransformErrorKind::Trap,
            "unreachable",
        ))
    }
}

#[tokio::test]
async fn a_failing_transform_dead_letters_its_batch_or_stops_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, dlq) = (MemSink::default(), MemSink::default());
    let j = job(
        source(20),
        vec![plan("s", sink.clone(), 100)],
        Guarantee::AtLeastOnce,
        Tolerance::All,
        Some(dlq.clone()),
        dir.path(),
    );
    let report = Pipeline::new(j, vec![Box::new(Trap)])
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.dead_lettered, 20);
    assert!(sink.written.lock().is_empty());
    let envelope: serde_json::Value = serde_json::from_slice(&dlq.written.lock()[0].value).unwrap();
    assert_eq!(
        envelope["reason"],
        "transform `trap` failed (trap): unreachable"
    );

    let dir = tempfile::tempdir().unwrap();
    let j = job(
        source(20),
        vec![plan("s", MemSink::default(), 100)],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    let err = Pipeline::new(j, vec![Box::new(Trap)])
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("in transform:trap: transform `trap` failed (trap)"),
        "{err}"
    );
}

/// Panics, like a host bug.
struct Panics;

impl Transform for Panics {
    fn name(&self) -> &str {
        "panics"
    }
    fn process(&mut self, _records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
        panic!("boom")
    }
}

#[tokio::test]
async fn a_panicking_transform_fails_the_job_instead_of_ending_it_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let j = job(
        source(20),
        vec![plan("s", MemSink::default(), 100)],
        Guarantee::AtLeastOnce,
        Tolerance::All,
        Some(MemSink::default()),
        dir.path(),
    );
    let err = Pipeline::new(j, vec![Box::new(Panics)])
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the transform stage panicked: boom"),
        "{err}"
    );
}

#[tokio::test]
async fn shutdown_drains_and_commits_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemSink::default();
    let j = job(
        source(i64::MAX),
        vec![plan("s", sink.clone(), 50)],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    let token = CancellationToken::new();
    let stopper = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stopper.cancel();
    });
    let report = Pipeline::new(j, Vec::new()).run(token).await.unwrap();
    let written = sink.written.lock().len() as i64;
    assert!(written > 0);
    assert_eq!(
        report.records_in as i64, written,
        "everything read was written"
    );
    assert_eq!(report.committed.get("mem"), Some(&Offset::Int(written - 1)));
}

/// A sink whose scripted first write rejects record 2 and rolls back; records 0..5 in one cut.
fn rolling_back_sink(log: &Arc<Mutex<Vec<String>>>) -> MemSink {
    let sink = MemSink {
        log: log.clone(),
        tag: "s",
        ..Default::default()
    };
    sink.script.lock().push_back(Ok(WriteReport {
        rejected: vec![(2, "NOT NULL constraint failed".into())],
        retry: Vec::new(),
        rolled_back: true,
    }));
    sink
}

#[tokio::test]
async fn a_rolled_back_write_dead_letters_first_then_writes_the_rest_with_the_same_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = rolling_back_sink(&log);
    let dlq = MemSink {
        log: log.clone(),
        tag: "dlq",
        ..Default::default()
    };
    let mut src = source(5);
    src.batch = 5;
    let j = job(
        src,
        vec![plan("s", sink.clone(), 100)],
        Guarantee::ExactlyOnce,
        Tolerance::All,
        Some(dlq.clone()),
        dir.path(),
    );
    let report = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        *log.lock(),
        vec!["s: 0,1,2,3,4 rolled back", "dlq: 2", "s: 0,1,3,4"],
        "dead letters are durable before the rest is written"
    );
    assert_eq!(ints(&sink.written.lock()), vec![0, 1, 3, 4]);
    assert_eq!(report.dead_lettered, 1);
    assert_eq!(report.records_out, vec![("s".to_string(), 4)]);
    let cps = sink.checkpoints.lock();
    assert_eq!(
        cps.len(),
        1,
        "only the second write carried a committed checkpoint"
    );
    assert_eq!(cps[0].get("mem"), Some(&Offset::Int(4)));
}

#[tokio::test]
async fn a_rolled_back_write_with_tolerance_none_stops_having_committed_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = rolling_back_sink(&log);
    let mut src = source(5);
    src.batch = 5;
    let j = job(
        src,
        vec![plan("s", sink.clone(), 100)],
        Guarantee::ExactlyOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    let err = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bad record at mem@2 in sink:s: NOT NULL constraint failed"),
        "{err}"
    );
    assert_eq!(*log.lock(), vec!["s: 0,1,2,3,4 rolled back"]);
    assert!(sink.written.lock().is_empty());
    assert!(
        sink.checkpoints.lock().is_empty(),
        "no checkpoint committed"
    );
}

#[tokio::test]
async fn a_report_naming_records_outside_the_write_fails_the_sink_instead_of_panicking() {
    for report in [
        WriteReport {
            rejected: vec![(99, "x".into())],
            ..Default::default()
        },
        WriteReport {
            retry: vec![5],
            ..Default::default()
        },
        WriteReport {
            rolled_back: true,
            ..Default::default()
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sink = MemSink::default();
        sink.script.lock().push_back(Ok(report.clone()));
        let mut src = source(5);
        src.batch = 5;
        let j = job(
            src,
            vec![plan("odd", sink.clone(), 100)],
            Guarantee::AtLeastOnce,
            Tolerance::All,
            Some(MemSink::default()),
            dir.path(),
        );
        let err = Pipeline::new(j, Vec::new())
            .run(CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("sink `odd` failed: the sink "),
            "{report:?}: {err}"
        );
    }
}

fn checkpoint_at(offset: i64) -> Checkpoint {
    let mut cp = Checkpoint::default();
    cp.advance(&Position::int(Arc::from("mem"), offset));
    cp
}

#[tokio::test]
async fn a_sink_whose_route_never_matches_still_moves_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (all, rare) = (MemSink::default(), MemSink::default());
    let never = |sink: &MemSink| {
        let mut p = plan("rare", sink.clone(), 100);
        p.common.when = Some(RouteCondition::header_equals("route", "never"));
        p
    };
    let j = job(
        source(100),
        vec![plan("all", all.clone(), 10), never(&rare)],
        Guarantee::ExactlyOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert!(rare.written.lock().is_empty());
    let rare_cp = rare.checkpoints.lock().last().cloned();
    assert_eq!(
        rare_cp.as_ref().and_then(|cp| cp.get("mem")),
        Some(&Offset::Int(99)),
        "the idle sink stores a checkpoint over what it did not get"
    );
    // A re-run resumes from both sinks' checkpoints: nothing is read again.
    let (mut all2, mut rare2) = (MemSink::default(), MemSink::default());
    all2.committed = all.checkpoints.lock().last().cloned();
    rare2.committed = rare_cp;
    let j = job(
        source(100),
        vec![plan("all", all2.clone(), 10), never(&rare2)],
        Guarantee::ExactlyOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    let report = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.records_in, 0);
    assert_eq!(*rare2.calls.lock(), 0, "nothing moved: no empty write");
}

#[tokio::test]
async fn replayed_dead_letters_are_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = source(100);
    src.bad_every = Some(10);
    // The sink holds up to 29; the dead-letter sink's own checkpoint says 69.
    let sink = MemSink {
        committed: Some(checkpoint_at(29)),
        ..MemSink::default()
    };
    let dlq = MemSink {
        committed: Some(checkpoint_at(69)),
        ..MemSink::default()
    };
    let j = job(
        src,
        vec![plan("s", sink.clone(), 10)],
        Guarantee::ExactlyOnce,
        Tolerance::All,
        Some(dlq.clone()),
        dir.path(),
    );
    let report = Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ints(&dlq.written.lock()), vec![79, 89, 99]);
    assert_eq!(report.dead_lettered, 3);
    let last = dlq.checkpoints.lock().last().cloned().unwrap();
    assert_eq!(
        last.get("mem"),
        Some(&Offset::Int(99)),
        "the checkpoint travels with the dead letters"
    );

    // Without a checkpoint of its own, the sinks' checkpoints still tell what was written.
    let dir = tempfile::tempdir().unwrap();
    let mut src = source(100);
    src.bad_every = Some(10);
    let ahead = MemSink {
        committed: Some(checkpoint_at(49)),
        ..MemSink::default()
    };
    let behind = MemSink {
        committed: Some(checkpoint_at(9)),
        ..MemSink::default()
    };
    let dlq = MemSink::default();
    let j = job(
        src,
        vec![plan("ahead", ahead, 10), plan("behind", behind, 10)],
        Guarantee::ExactlyOnce,
        Tolerance::All,
        Some(dlq.clone()),
        dir.path(),
    );
    Pipeline::new(j, Vec::new())
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ints(&dlq.written.lock()), vec![59, 69, 79, 89, 99]);
}

/// Holds what it is given (reported durable, as a sink with buffering of its own does) and
/// lets it out on the first write at least `hold` after the oldest held record came.
struct HoldingSink {
    hold: Duration,
    held: Vec<Record>,
    since: Option<std::time::Instant>,
    flushed: Arc<Mutex<Vec<(Record, Duration)>>>,
    calls: Arc<Mutex<usize>>,
}

#[async_trait::async_trait]
impl Sink for HoldingSink {
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    fn wake_at(&self) -> Option<std::time::Instant> {
        self.since.map(|t| t + self.hold)
    }

    async fn write(
        &mut self,
        records: &[Record],
        _: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        *self.calls.lock() += 1;
        if !records.is_empty() && self.since.is_none() {
            self.since = Some(std::time::Instant::now());
        }
        self.held.extend_from_slice(records);
        if let Some(since) = self.since.filter(|t| t.elapsed() >= self.hold) {
            let age = since.elapsed();
            let mut flushed = self.flushed.lock();
            flushed.extend(self.held.drain(..).map(|r| (r, age)));
            self.since = None;
        }
        Ok(WriteReport::ok())
    }
}

/// Yields one batch, then nothing until the job is stopped.
struct QuietSource(Option<Batch>);

#[async_trait::async_trait]
impl Source for QuietSource {
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    async fn open(&mut self, _: Option<Checkpoint>) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        match self.0.take() {
            Some(b) => Ok(Some(b)),
            None => std::future::pending().await,
        }
    }
}

#[tokio::test]
async fn a_sink_holding_records_is_woken_while_the_source_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let hold = Duration::from_millis(300);
    let flushed = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Mutex::new(0));
    let sink = HoldingSink {
        hold,
        held: Vec::new(),
        since: None,
        flushed: flushed.clone(),
        calls: calls.clone(),
    };
    let mut batch = Batch::default();
    for i in 0..3 {
        batch.records.push(Record::new(
            format!("{{\"i\":{i}}}"),
            Position::int("q".into(), i),
        ));
    }
    let mut j = job(
        source(0),
        vec![plan("s", MemSink::default(), 1)],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    j.source = Box::new(QuietSource(Some(batch)));
    j.sinks[0].sink = Box::new(sink);
    let token = CancellationToken::new();
    let run = tokio::spawn(Pipeline::new(j, Vec::new()).run(token.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    {
        let flushed = flushed.lock();
        assert_eq!(flushed.len(), 3, "held records flushed with no new record");
        let age = flushed[0].1;
        assert!(
            age >= hold && age < hold + Duration::from_millis(500),
            "flushed {age:?} after the first record, the sink asked for {hold:?}"
        );
    }
    assert!(
        *calls.lock() < 10,
        "{} writes: the wake-up does not spin",
        calls.lock()
    );
    token.cancel();
    run.await.unwrap().unwrap();
}

/// Counts the bytes of the records it yields.
struct CountingSource {
    inner: MemSource,
    bytes: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl Source for CountingSource {
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        self.inner.open(resume).await
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        let batch = self.inner.next_batch().await?;
        let bytes: usize = batch
            .iter()
            .flat_map(|b| &b.records)
            .map(Record::size_hint)
            .sum();
        self.bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        Ok(batch)
    }
}

#[tokio::test]
async fn the_source_waits_while_the_in_flight_bytes_reach_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sink = MemSink::default();
    // The sink holds everything it gets (a batch that never fills, a wait that never ends):
    // only the byte budget stops the source.
    let mut sink_plan = plan("s", sink.clone(), 1_000_000);
    sink_plan.common.batch.max_wait = HumanDuration(Duration::from_secs(3600));
    let mut j = job(
        source(0),
        vec![sink_plan],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    j.source = Box::new(CountingSource {
        inner: MemSource::new(1_000_000),
        bytes: bytes.clone(),
    });
    j.pipeline.max_in_flight_bytes = Some(crate::units::ByteSize(2000));
    let token = CancellationToken::new();
    let run = tokio::spawn(Pipeline::new(j, Vec::new()).run(token.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let read = bytes.load(std::sync::atomic::Ordering::Relaxed);
    // One batch (7 records of ~10 bytes) may be read past the budget while it waits.
    assert!(
        (1500..=2200).contains(&read),
        "read {read} bytes with a budget of 2000 and nothing durable"
    );
    token.cancel();
    let report = run.await.unwrap().unwrap();
    assert_eq!(
        report.records_in as usize,
        sink.written.lock().len(),
        "what was read is written at shutdown"
    );
}

#[test]
fn the_default_budget_is_64_mib_or_twice_the_sinks_batches() {
    let p = PipelineConfig::default();
    assert_eq!(p.in_flight_budget([4 << 20, 4 << 20]), 64 << 20);
    assert_eq!(p.in_flight_budget([64 << 20, 16 << 20]), 160 << 20);
}

/// Passes records through after a delay that differs per batch, so that on several threads
/// later batches often finish before earlier ones.
struct Uneven;

impl Transform for Uneven {
    fn name(&self) -> &str {
        "uneven"
    }
    fn process(&mut self, records: &[Record]) -> Result<Vec<Outcome>, TransformError> {
        let first = records.first().map_or(0, |r| match r.position.offset {
            Offset::Int(i) => i,
            Offset::Text(_) => 0,
        });
        std::thread::sleep(Duration::from_micros(((first * 7919) % 13) as u64 * 100));
        Ok(records
            .iter()
            .map(|r| Outcome::Ok(vec![r.clone()]))
            .collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_on_several_threads_keep_the_order_the_source_read() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemSink::default();
    let mut src = source(400);
    src.batch = 1;
    let mut j = job(
        src,
        vec![plan("s", sink.clone(), 17)],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    j.pipeline.transform_threads = 3;
    let chains: Vec<Vec<Box<dyn Transform>>> = (0..3)
        .map(|_| vec![Box::new(Uneven) as Box<dyn Transform>])
        .collect();
    let report = Pipeline::with_chains(j, chains)
        .run(CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ints(&sink.written.lock()), (0..400).collect::<Vec<_>>());
    assert_eq!(report.committed.get("mem"), Some(&Offset::Int(399)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_transform_on_one_of_several_threads_stops_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let sink = MemSink::default();
    let j = job(
        source(100),
        vec![plan("s", sink.clone(), 1000)],
        Guarantee::AtLeastOnce,
        Tolerance::None,
        None,
        dir.path(),
    );
    // The second thread's chain traps; the first's passes records on.
    let chains: Vec<Vec<Box<dyn Transform>>> = vec![vec![Box::new(Uneven)], vec![Box::new(Trap)]];
    let err = Pipeline::with_chains(j, chains)
        .run(CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("transform `trap` failed"), "{err}");
    // Only the first batch (on the first thread) came before the trapping one.
    assert!(
        ints(&sink.written.lock()).len() <= 7,
        "nothing after the failed batch"
    );
}
