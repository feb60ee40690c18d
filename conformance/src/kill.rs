//! The kill -9 loop. A connector crate's test binary has no `sluice` executable, so the test
//! re-runs itself: the parent writes a job file and starts `<this test binary> --exact <this
//! test>` with [`CHILD_ENV`] naming the job file; in the child the same test runs that job in
//! process (the core runtime and the connector under test, slowed by a pacing transform so it
//! can be caught mid-write) and prints a mark once records flow. The parent SIGKILLs it at a
//! random moment after the mark, restarts it, at least ten times, lets the last run finish, and
//! counts every record by its unique key.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use sluice_core::metrics::JobMetrics;
use sluice_core::testing::{Pace, test_key};
use sluice_core::{Guarantee, Pipeline};
use tokio_util::sync::CancellationToken;

use crate::job::{self, Fixture, job_text};
use crate::{Harness, Test, kill_loop_size};

/// Set in a kill-loop child: the job file it runs.
pub const CHILD_ENV: &str = "SLUICE_CONFORMANCE_CHILD";
/// Set in a kill-loop child: microseconds the pacing transform spends per record.
const PACE_ENV: &str = "SLUICE_CONFORMANCE_PACE_US";
/// What the child prints once the job has read its first records.
const MARK: &str = "SLUICE-CONFORMANCE: records are flowing";
/// How long a whole paced run takes, about: long enough for ten kills to land mid-run.
const PACED_RUN: Duration = Duration::from_secs(3);

/// What the job of a kill loop reads.
pub(crate) enum Feed {
    /// Generated records (`type = "mem"`), into the sink under test.
    Generated,
    /// The connector's own source, fed by the harness, into its sink.
    Source,
}

/// Run the loop (or, in a child, the job).
pub(crate) async fn run<H: Harness>(h: &H, test: &Test, feed: Feed, sink_kind: &str) {
    if let Ok(job) = std::env::var(CHILD_ENV) {
        return child(h, Path::new(&job)).await;
    }
    let fx = Fixture::new(test);
    h.prepare(&fx).await;
    let (n, want_kills) = kill_loop_size(h.kill_loop_records());
    let claims = h.claims();
    let (guarantee, source, bounded) = match feed {
        Feed::Generated => {
            let mut mem = toml::Table::new();
            mem.insert("count".into(), i64::try_from(n).unwrap_or(i64::MAX).into());
            mem.insert("batch".into(), 20.into());
            let g = if claims.exactly_once {
                Guarantee::ExactlyOnce
            } else {
                Guarantee::AtLeastOnce
            };
            (g, ("mem", mem), true)
        }
        Feed::Source => {
            h.feed_source(&fx, 0..n).await;
            let g = if claims.exactly_once && claims.can_seek {
                Guarantee::ExactlyOnce
            } else {
                Guarantee::AtLeastOnce
            };
            let kind = h.source_type().unwrap_or_default();
            (g, (kind, h.source_config(&fx)), h.source_is_bounded())
        }
    };
    let batch = h.kill_loop_batch();
    let job_path = fx.path("job.toml");
    let write_job = |run: u32| {
        let source = match feed {
            Feed::Generated => source.clone(),
            Feed::Source => (source.0, h.kill_loop_source_config(&fx, run)),
        };
        let text = job_text(
            &fx.name,
            guarantee,
            source,
            (sink_kind, h.sink_config(&fx)),
            batch,
        );
        std::fs::write(&job_path, &text).unwrap_or_else(|e| panic!("writing the job: {e}"));
    };
    let pace_us = u64::try_from(PACED_RUN.as_micros()).unwrap_or(u64::MAX) / n;

    let started = Instant::now();
    let mut kills = 0u32;
    for run in 1.. {
        assert!(run < 10 * want_kills + 20, "the job never finished");
        write_job(run);
        let log = fx.path(&format!("child-{run}.log"));
        let mut child = spawn(test, &job_path, pace_us, &log);
        let flowing = wait_for_mark(&mut child, Duration::from_secs(90)).await;
        if kills < want_kills && flowing {
            let pause = rand::rng().random_range(10..250);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill(); // SIGKILL
                let _ = child.wait();
                kills += 1;
                continue;
            }
        }
        if bounded {
            let status = wait_with_deadline(&mut child, Duration::from_secs(180)).await;
            assert!(status.success(), "the last run failed:\n{}", tail(&log));
        } else {
            // An unbounded source never ends its job: wait for every record, then stop it.
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                let keys = h.written_keys(&fx).await;
                let present: std::collections::BTreeSet<&String> = keys.iter().collect();
                if (0..n).all(|s| present.contains(&test_key(s))) {
                    break;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("the last run stopped ({status}):\n{}", tail(&log));
                }
                assert!(
                    Instant::now() < deadline,
                    "the last run did not write everything within 180 s:\n{}",
                    tail(&log)
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        break;
    }
    assert!(
        kills >= want_kills,
        "only {kills} of {want_kills} kills landed mid-run"
    );

    let keys = h.written_keys(&fx).await;
    let mut copies = std::collections::BTreeMap::new();
    for k in &keys {
        *copies.entry(k.as_str()).or_insert(0u64) += 1;
    }
    let missing: Vec<String> = (0..n)
        .map(test_key)
        .filter(|k| !copies.contains_key(k.as_str()))
        .collect();
    let duplicates: u64 = copies.values().map(|c| c - 1).sum();
    eprintln!(
        "kill -9 loop ({guarantee}): {kills} kills, {n} records, {} lost, {duplicates} duplicates, {:.1} s",
        missing.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        missing.is_empty(),
        "records lost: {} (first {:?})",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        copies.len() as u64,
        n,
        "records that were never generated were written"
    );
    if guarantee == Guarantee::ExactlyOnce || claims.replays_overwrite {
        if claims.readback_shows_aborted {
            // What transactions open at the kills held may show up again; one per kill.
            let bound = u64::from(kills) * batch as u64;
            assert!(
                duplicates <= bound,
                "{duplicates} duplicates: more than the {kills} aborted transactions can hold"
            );
        } else {
            assert_eq!(
                duplicates, 0,
                "{guarantee} wrote records twice (the connector claims exactly-once or that replays overwrite)"
            );
        }
    }
}

/// In the child: run the job to its end (or until killed), printing the mark once records flow.
async fn child<H: Harness>(h: &H, job_path: &Path) {
    let text =
        std::fs::read_to_string(job_path).unwrap_or_else(|e| panic!("{}: {e}", job_path.display()));
    let dir = job_path.parent().unwrap_or(Path::new("."));
    let job = job::load(h, dir, &text).unwrap_or_else(|e| panic!("{e}"));
    let pace = std::env::var(PACE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let pipeline = Pipeline::new(
        job,
        vec![Box::new(Pace {
            per_record: Duration::from_micros(pace),
        })],
    );
    let metrics = pipeline.metrics();
    tokio::spawn(async move {
        while JobMetrics::get(&metrics.records_in) == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        println!("{MARK}");
    });
    if let Err(e) = pipeline.run(CancellationToken::new()).await {
        panic!("the job failed: {e}");
    }
}

fn spawn(test: &Test, job: &Path, pace_us: u64, log: &Path) -> Child {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary: {e}"));
    let stderr = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    Command::new(exe)
        .args([
            test.full_name.as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, job)
        .env(PACE_ENV, pace_us.to_string())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("starting the child: {e}"))
}

/// Wait until the child prints the mark (true) or exits (false). The pipe is read on a thread
/// of its own (it blocks); the test's async threads only wait on a channel.
async fn wait_for_mark(child: &mut Child, within: Duration) -> bool {
    let Some(out) = child.stdout.take() else {
        return false;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.contains(MARK) {
                let _ = tx.send(());
            }
        }
    });
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(())) => true,
        Ok(None) => false,
        Err(_) => {
            let _ = child.kill();
            panic!("no records flowed within {within:?}");
        }
    }
}

async fn wait_with_deadline(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not finish within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The end of a child's log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
