//! Live samples of the records passing each stage of a running job, for `sluice tap` (what
//! `vector tap` is to Vector): after the source, after each transform, as handed to each sink,
//! and as dead-lettered.
//!
//! A tap never slows the job down: with no subscriber a stage pays one atomic load per batch,
//! and a subscriber that reads too slowly loses samples (counted, and reported in its stream)
//! instead of holding a batch back.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::record::{DeadRecord, Offset, Record};

/// Samples a subscriber may have unread before newer ones are dropped.
const QUEUE: usize = 1024;

/// Where in the pipeline a record was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage<'a> {
    /// As read from the source.
    Source,
    /// As output by the transform of this name.
    Transform(&'a str),
    /// As handed to the sink of this name (after its route).
    Sink(&'a str),
    /// As sent to the dead letter.
    DeadLetter,
}

impl std::fmt::Display for Stage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Source => f.write_str("source"),
            Stage::Transform(name) => write!(f, "transform:{name}"),
            Stage::Sink(name) => write!(f, "sink:{name}"),
            Stage::DeadLetter => f.write_str("dead-letter"),
        }
    }
}

/// Which stages a subscriber wants: names as [`Stage`] prints them, where a trailing `*`
/// matches any rest (`sink:*`). Empty: every stage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageFilter(Vec<String>);

impl StageFilter {
    /// A filter from comma-separated patterns (`"source,sink:*"`); empty or `*` for all.
    pub fn parse(patterns: &str) -> Self {
        Self(
            patterns
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty() && *p != "*")
                .map(str::to_string)
                .collect(),
        )
    }

    /// Whether a stage printed as `stage` passes.
    pub fn matches(&self, stage: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => stage.starts_with(prefix),
                None => p == stage,
            })
    }
}

/// One sampled record, as a tap stream carries it (one JSON object per line).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tapped {
    /// The stage, as [`Stage`] prints it.
    pub stage: String,
    /// The source partition the record came from.
    pub partition: String,
    /// Its offset there (a number or a string).
    pub offset: serde_json::Value,
    /// Event time, ms since the Unix epoch, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// The key as text (invalid UTF-8 replaced), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value: the JSON document when it is one, else its text (invalid UTF-8 replaced).
    pub value: serde_json::Value,
    /// Headers, name to text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Why it was dead-lettered (`dead-letter` stage only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Tapped {
    fn new(stage: &str, record: &Record, reason: Option<&str>) -> Self {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Self {
            stage: stage.to_string(),
            partition: record.position.partition.to_string(),
            offset: match &record.position.offset {
                Offset::Int(n) => (*n).into(),
                other => other.to_string().into(),
            },
            timestamp: record.timestamp,
            key: record.key.as_deref().map(text),
            value: serde_json::from_slice(&record.value)
                .unwrap_or_else(|_| text(&record.value).into()),
            headers: record
                .headers
                .iter()
                .map(|h| (h.name.clone(), text(&h.value)))
                .collect(),
            reason: reason.map(str::to_string),
        }
    }
}

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq)]
pub enum TapEvent {
    /// A sampled record.
    Record(Box<Tapped>),
    /// Samples lost since the last event because the subscriber read too slowly.
    Lost(u64),
}

struct Subscriber {
    filter: StageFilter,
    /// Fraction of the matching records to send, in (0, 1].
    rate: f64,
    /// Records seen per stage, for the sampling (a handful of stages: a list is enough).
    seen: Vec<(String, u64)>,
    /// Samples dropped since the last one that got through.
    lost: u64,
    tx: mpsc::Sender<TapEvent>,
}

impl Subscriber {
    /// Which of the next `n` records of `stage` are sampled: every one at rate 1, else those
    /// where `seen × rate` passes a whole number — evenly spread per stage, the same on every
    /// run.
    fn sample(&mut self, stage: &str, n: usize) -> impl Iterator<Item = usize> + use<> {
        let seen = match self.seen.iter_mut().find(|(s, _)| s == stage) {
            Some((_, seen)) => seen,
            None => {
                self.seen.push((stage.to_string(), 0));
                &mut self.seen.last_mut().expect("just pushed").1
            }
        };
        let (start, rate) = (*seen, self.rate);
        *seen += n as u64;
        (0..n).filter(move |i| {
            let k = start + *i as u64;
            ((k + 1) as f64 * rate).floor() > (k as f64 * rate).floor()
        })
    }

    /// Send without waiting; false when the subscriber is gone.
    fn send(&mut self, event: TapEvent) -> bool {
        if self.lost > 0 {
            match self.tx.try_send(TapEvent::Lost(self.lost)) {
                Ok(()) => self.lost = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.lost += 1;
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lost += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The taps of one job: the stages report to it, subscribers read from it.
#[derive(Default)]
pub struct Taps {
    active: AtomicUsize,
    subscribers: Mutex<Vec<Subscriber>>,
}

impl std::fmt::Debug for Taps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Taps")
            .field("subscribers", &self.active.load(Ordering::Relaxed))
            .finish()
    }
}

impl Taps {
    /// Subscribe to the stages `filter` selects, a fraction `rate` (clamped to (0, 1]) of
    /// their records. The subscription ends when the receiver is dropped.
    pub fn subscribe(&self, filter: StageFilter, rate: f64) -> mpsc::Receiver<TapEvent> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rate = if rate.is_finite() && rate > 0.0 {
            rate.min(1.0)
        } else {
            1.0
        };
        let mut subs = self.subscribers.lock();
        subs.push(Subscriber {
            filter,
            rate,
            seen: Vec::new(),
            lost: 0,
            tx,
        });
        self.active.store(subs.len(), Ordering::Release);
        rx
    }

    /// Whether anyone listens: the stages' fast path.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire) > 0
    }

    /// Report the records a stage passed on.
    pub fn observe(&self, stage: Stage<'_>, records: &[Record]) {
        if self.is_active() && !records.is_empty() {
            let records: Vec<_> = records.iter().map(|r| (r, None)).collect();
            self.publish(&stage.to_string(), &records);
        }
    }

    /// Report dead-lettered records, with their reasons.
    pub fn observe_dead(&self, dead: &[DeadRecord]) {
        if self.is_active() && !dead.is_empty() {
            let stage = Stage::DeadLetter.to_string();
            let records: Vec<_> = dead
                .iter()
                .map(|d| (&d.record, Some(d.reason.as_str())))
                .collect();
            self.publish(&stage, &records);
        }
    }

    fn publish<'r>(&self, stage: &str, records: &[(&'r Record, Option<&'r str>)]) {
        let mut subs = self.subscribers.lock();
        // A record sampled by several subscribers is converted once.
        let mut converted: Vec<Option<Tapped>> = vec![None; records.len()];
        let before = subs.len();
        subs.retain_mut(|sub| {
            if !sub.filter.matches(stage) {
                return true;
            }
            for i in sub.sample(stage, records.len()) {
                let (record, reason) = records[i];
                let tapped = converted[i]
                    .get_or_insert_with(|| Tapped::new(stage, record, reason))
                    .clone();
                if !sub.send(TapEvent::Record(Box::new(tapped))) {
                    return false;
                }
            }
            true
        });
        if subs.len() != before {
            self.active.store(subs.len(), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Partition, Position};

    fn records(n: i64) -> Vec<Record> {
        (0..n)
            .map(|i| {
                Record::new(
                    format!("{{\"n\":{i}}}"),
                    Position::int(Partition::from("p"), i),
                )
            })
            .collect()
    }

    fn drain(rx: &mut mpsc::Receiver<TapEvent>) -> Vec<TapEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn filters_match_stage_names_and_prefixes() {
        let f = StageFilter::parse("source, sink:*");
        assert!(f.matches("source"));
        assert!(f.matches("sink:archive"));
        assert!(!f.matches("transform:enrich"));
        assert!(StageFilter::parse("").matches("dead-letter"));
        assert!(StageFilter::parse("*").matches("transform:x"));
    }

    #[test]
    fn a_rate_samples_evenly_and_a_stage_filter_selects() {
        let taps = Taps::default();
        assert!(!taps.is_active());
        let mut quarter = taps.subscribe(StageFilter::parse("transform:*"), 0.25);
        let mut all = taps.subscribe(StageFilter::default(), 1.0);
        taps.observe(Stage::Source, &records(8));
        taps.observe(Stage::Transform("enrich"), &records(8));
        let q = drain(&mut quarter);
        assert_eq!(q.len(), 2, "{q:?}");
        let TapEvent::Record(first) = &q[0] else {
            panic!("{q:?}")
        };
        assert_eq!(first.stage, "transform:enrich");
        assert_eq!(first.value, serde_json::json!({"n": 3}));
        assert_eq!(first.offset, serde_json::json!(3));
        assert_eq!(drain(&mut all).len(), 16);

        // Counted per stage across batches: every 4th record of the stage, wherever the
        // batches split.
        let mut src = taps.subscribe(StageFilter::parse("source"), 0.25);
        taps.observe(Stage::Source, &records(3));
        taps.observe(Stage::Transform("enrich"), &records(8));
        taps.observe(Stage::Source, &records(5));
        let offsets: Vec<_> = drain(&mut src)
            .into_iter()
            .map(|e| match e {
                TapEvent::Record(r) => r.offset,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(offsets, [serde_json::json!(0), serde_json::json!(4)]);
    }

    #[test]
    fn a_slow_reader_loses_samples_and_is_told_how_many() {
        let taps = Taps::default();
        let mut rx = taps.subscribe(StageFilter::default(), 1.0);
        taps.observe(Stage::Source, &records(QUEUE as i64 + 10));
        assert_eq!(drain(&mut rx).len(), QUEUE);
        taps.observe(Stage::Source, &records(1));
        assert_eq!(drain(&mut rx)[0], TapEvent::Lost(10));
    }

    #[test]
    fn a_dropped_receiver_unsubscribes() {
        let taps = Taps::default();
        drop(taps.subscribe(StageFilter::default(), 1.0));
        assert!(taps.is_active());
        taps.observe(Stage::Source, &records(1));
        assert!(!taps.is_active());
    }
}
