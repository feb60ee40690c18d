//! The chaos runner: every delivery pair under `kill -9` and faults, one table.
//!
//! For each pair: prepare input and destination, run the job and `kill -9` it `kills` times at
//! random moments (every other kill once the destination has grown in that run, the others at
//! any moment, startup and recovery included), then start it once more and inject the pair's
//! faults one after the other while it runs (each once records flow, for `outage`), let it
//! finish, and count every record by its unique `seq` at the destination: lost (never arrived)
//! and duplicated (extra copies). The peak RSS is the largest `VmHWM` of any run.
#![allow(dead_code)]

pub mod pairs;
pub mod proxy;
pub mod tansu;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use rand::Rng;

/// What a run is asked to do (`scripts/chaos.sh` sets the environment).
#[derive(Clone, Debug)]
pub struct Settings {
    /// kill -9s per pair (`SLUICE_CHAOS_KILLS`).
    pub kills: u32,
    /// Only these pairs (`SLUICE_CHAOS_PAIRS`, comma-separated names); all when empty.
    pub pairs: Vec<String>,
    /// How long a sink outage, a slow sink or a locked database lasts (`SLUICE_CHAOS_OUTAGE_SECS`).
    pub outage: Duration,
    /// Latency the slow proxy adds to every chunk (`SLUICE_CHAOS_LATENCY_MS`).
    pub latency: Duration,
    /// Where to write the Markdown table (`SLUICE_CHAOS_REPORT`).
    pub report: Option<PathBuf>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

impl Settings {
    /// From the environment; the defaults are the CI-sized run.
    pub fn from_env() -> Settings {
        Settings {
            kills: env_u64("SLUICE_CHAOS_KILLS", 3) as u32,
            pairs: std::env::var("SLUICE_CHAOS_PAIRS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            outage: Duration::from_secs(env_u64("SLUICE_CHAOS_OUTAGE_SECS", 4)),
            latency: Duration::from_millis(env_u64("SLUICE_CHAOS_LATENCY_MS", 100)),
            report: std::env::var_os("SLUICE_CHAOS_REPORT").map(PathBuf::from),
        }
    }
}

/// A fault injected while the last run of a pair is writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The sink's server unreachable for `outage` (connections dropped and refused by a proxy).
    Outage,
    /// Every request and answer to the sink `latency` late, for `outage`.
    Slow,
    /// The SQLite file locked by another connection (`BEGIN EXCLUSIVE`) for `outage`.
    Lock,
    /// The source's Kafka broker killed, down a few seconds, started again.
    BrokerRestart,
}

impl Fault {
    /// Its name in the table.
    pub fn label(self, s: &Settings) -> String {
        let secs = s.outage.as_secs();
        match self {
            Fault::Outage => format!("outage {secs}s"),
            Fault::Slow => format!("slow +{}ms {secs}s", s.latency.as_millis()),
            Fault::Lock => format!("lock {secs}s"),
            Fault::BrokerRestart => "broker restart".into(),
        }
    }
}

/// Records at the destination, by unique key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Distinct keys among the expected ones (`0..records`).
    pub distinct: u64,
    /// Every record found, copies included (keys outside the expected range too).
    pub found: u64,
}

impl Tally {
    /// From `seq` → copies.
    pub fn of(counts: &std::collections::BTreeMap<u64, u32>, records: u64) -> Tally {
        Tally {
            distinct: counts.range(..records).count() as u64,
            found: counts.values().map(|c| u64::from(*c)).sum(),
        }
    }
}

/// One delivery pair under test.
pub trait Pair {
    /// Its name (`SLUICE_CHAOS_PAIRS` selects by it).
    fn name(&self) -> &'static str;
    /// "exactly-once", or "at-least-once" (with a note).
    fn guarantee(&self) -> &'static str;
    /// A duplicate is a failure (exactly-once, or idempotent writes).
    fn strict(&self) -> bool;
    /// Faults that apply to it.
    fn faults(&self) -> Vec<Fault>;
    /// How many records the job moves, each with a unique `seq` in `0..records`.
    fn records(&self) -> u64;
    /// Make input and destination; the job file.
    fn prepare(&mut self, h: &Harness, dir: &Path) -> PathBuf;
    /// A number that grows while records arrive at the destination.
    fn progress(&mut self, h: &Harness) -> u64;
    /// For a job that never ends by itself (a stream source): all records have arrived.
    fn done(&mut self, h: &Harness) -> Option<bool> {
        let _ = h;
        None
    }
    /// Start (`on`) or end a fault.
    fn fault(&mut self, h: &Harness, fault: Fault, on: bool);
    /// Count what the destination holds.
    fn tally(&mut self, h: &Harness) -> Tally;
    /// Remove what the run made in shared services.
    fn cleanup(&mut self, h: &Harness) {
        let _ = h;
    }
}

/// What a pair's runs share: the settings and a runtime for clients and proxies.
pub struct Harness {
    /// The run's settings.
    pub settings: Settings,
    /// Runs the proxies and the clients that count.
    pub rt: tokio::runtime::Runtime,
}

impl Harness {
    /// A harness for `settings`.
    pub fn new(settings: Settings) -> Harness {
        Harness {
            settings,
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The pair.
    pub pair: &'static str,
    /// Its guarantee.
    pub guarantee: &'static str,
    /// kill -9s that landed while the job ran.
    pub kills: u32,
    /// Faults injected while the job ran.
    pub faults: Vec<String>,
    /// Records the job moves.
    pub records: u64,
    /// Records never delivered.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Largest peak RSS of any run, KiB.
    pub max_rss_kib: u64,
    /// Wall time of the pair, preparing and counting included.
    pub time: Duration,
    /// Why the pair failed, if it did.
    pub error: Option<String>,
    /// Duplicates are a failure for it.
    pub strict: bool,
}

impl Row {
    /// Nothing lost, nothing duplicated where that is promised, every run as expected.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.lost == 0 && (!self.strict || self.duplicated == 0)
    }
}

/// Peak resident set size of a running process, KiB (0 once it is gone).
pub fn peak_rss_kib(child: &Child) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// A run of the job, watched: its peak RSS is sampled while it lives.
struct Run {
    child: Child,
    peak: u64,
}

impl Run {
    fn start(job: &Path) -> Run {
        Run {
            child: crate::kafka_support::spawn(job),
            peak: 0,
        }
    }

    /// Sample the RSS; the exit status once it has ended.
    fn poll(&mut self) -> Option<std::process::ExitStatus> {
        self.peak = self.peak.max(peak_rss_kib(&self.child));
        self.child.try_wait().unwrap()
    }

    /// Watch for `d`, sampling; the exit status if it ended meanwhile.
    fn watch(&mut self, d: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + d;
        loop {
            if let Some(status) = self.poll() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
    }

    fn kill(&mut self) {
        self.peak = self.peak.max(peak_rss_kib(&self.child));
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

/// The last lines of a job's log.
fn log_tail(job: &Path) -> String {
    let log = crate::kafka_support::log_of(job);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Wait (sampling) until `pair` makes progress beyond `before`, the run ends, or `within`.
fn wait_progress(h: &Harness, pair: &mut dyn Pair, run: &mut Run, before: u64, within: Duration) {
    let until = Instant::now() + within;
    while run.poll().is_none() && Instant::now() < until && pair.progress(h) <= before {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run one pair through kills and faults; its line of the table.
pub fn run_pair(h: &Harness, pair: &mut dyn Pair) -> Row {
    let started = Instant::now();
    let s = &h.settings;
    let dir = tempfile::tempdir().unwrap();
    let job = pair.prepare(h, dir.path());
    let mut rng = rand::rng();
    let mut row = Row {
        pair: pair.name(),
        guarantee: pair.guarantee(),
        kills: 0,
        faults: Vec::new(),
        records: pair.records(),
        lost: 0,
        duplicated: 0,
        max_rss_kib: 0,
        time: Duration::ZERO,
        error: None,
        strict: pair.strict(),
    };
    let mut finished = false;
    let mut failed_runs = 0;
    // The kill phase.
    while row.kills < s.kills && !finished {
        let before = pair.progress(h);
        let mut run = Run::start(&job);
        if row.kills.is_multiple_of(2) {
            wait_progress(h, pair, &mut run, before, Duration::from_secs(60));
        }
        let status = run.watch(Duration::from_millis(rng.random_range(20..400)));
        match status {
            None if pair.done(h) == Some(true) => {
                crate::kafka_support::stop(&mut run.child, &job);
                finished = true;
            }
            None => {
                run.kill();
                row.kills += 1;
            }
            Some(st) if st.success() => finished = true,
            Some(st) => {
                failed_runs += 1;
                if failed_runs > 3 {
                    row.error = Some(format!("runs keep failing ({st}): {}", log_tail(&job)));
                    finished = true;
                }
            }
        }
        row.max_rss_kib = row.max_rss_kib.max(run.peak);
    }
    // The last run, with the faults.
    if !finished && row.error.is_none() {
        let mut run = Run::start(&job);
        for fault in pair.faults() {
            let before = pair.progress(h);
            wait_progress(h, pair, &mut run, before, Duration::from_secs(60));
            if run.poll().is_some() || pair.done(h) == Some(true) {
                break;
            }
            pair.fault(h, fault, true);
            let ended = run.watch(s.outage);
            pair.fault(h, fault, false);
            row.faults.push(fault.label(s));
            if let Some(st) = ended.filter(|st| !st.success()) {
                row.error = Some(format!(
                    "{st} during {}: {}",
                    fault.label(s),
                    log_tail(&job)
                ));
                break;
            }
        }
        if row.error.is_none() {
            let until = Instant::now() + Duration::from_secs(900);
            loop {
                if let Some(st) = run.watch(Duration::from_millis(200)) {
                    if !st.success() {
                        row.error = Some(format!("last run: {st}: {}", log_tail(&job)));
                    }
                    break;
                }
                if pair.done(h) == Some(true) {
                    crate::kafka_support::stop(&mut run.child, &job);
                    break;
                }
                if Instant::now() > until {
                    run.kill();
                    row.error = Some(format!("did not finish: {}", log_tail(&job)));
                    break;
                }
            }
        } else {
            run.kill();
        }
        row.max_rss_kib = row.max_rss_kib.max(run.peak);
    }
    let tally = pair.tally(h);
    row.lost = row.records - tally.distinct;
    row.duplicated = tally.found - tally.distinct;
    pair.cleanup(h);
    row.time = started.elapsed();
    row
}

/// The table, Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| pair | guarantee | kills | faults | records | lost | duplicated | max RSS | time |\n| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let faults = if r.faults.is_empty() {
            "—".to_string()
        } else {
            r.faults.join(", ")
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} MiB | {:.0} s |",
            r.pair,
            r.guarantee,
            r.kills,
            faults,
            r.records,
            r.lost,
            r.duplicated,
            r.max_rss_kib as f64 / 1024.0,
            r.time.as_secs_f64(),
        );
    }
    for r in rows.iter().filter(|r| r.error.is_some()) {
        let _ = write!(
            t,
            "\n{} FAILED: {}\n",
            r.pair,
            r.error
                .as_deref()
                .unwrap_or_default()
                .replace('\n', "\n    ")
        );
    }
    t
}
