//! The ack tracker: decides which checkpoint is safe to commit.
//!
//! Every source batch gets an increasing id and registers the furthest position per partition it
//! holds. Each sink reports a watermark: "every batch up to this id is durable here". A batch is
//! committable once every sink's watermark has reached it; the committed checkpoint only ever
//! covers such batches, in order, so a crash replays from a point where nothing was lost.
//!
//! A batch also holds its share of the job's in-flight byte budget (`max_in_flight_bytes`)
//! until it is durable everywhere: the permits go back to the source when the batch leaves
//! `pending`.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::record::Checkpoint;

/// Tracks in-flight batches and per-sink acknowledgements.
#[derive(Debug)]
pub struct AckTracker {
    watermarks: Vec<Option<u64>>,
    pending: BTreeMap<u64, (Checkpoint, Option<OwnedSemaphorePermit>)>,
    committable: Checkpoint,
    dirty: bool,
    budget: Arc<Semaphore>,
    budget_bytes: u32,
}

impl AckTracker {
    /// A tracker for `sinks` sinks, starting from the checkpoint the job resumed at, with
    /// `budget` bytes of batches in flight at most (see [`AckTracker::budget`]).
    pub fn new(sinks: usize, resumed: Checkpoint, budget: u64) -> Self {
        let budget_bytes = u32::try_from(budget).unwrap_or(u32::MAX).max(1);
        Self {
            watermarks: vec![None; sinks],
            pending: BTreeMap::new(),
            committable: resumed,
            dirty: false,
            budget: Arc::new(Semaphore::new(budget_bytes as usize)),
            budget_bytes,
        }
    }

    /// The in-flight byte budget and what a batch of `bytes` takes of it (a batch larger than
    /// the whole budget takes all of it, so it waits for the pipeline to empty instead of
    /// forever). Acquire the permits before [`AckTracker::register`].
    pub fn budget(&self, bytes: usize) -> (Arc<Semaphore>, u32) {
        let want = u32::try_from(bytes).unwrap_or(u32::MAX);
        (self.budget.clone(), want.min(self.budget_bytes))
    }

    /// Register a batch before any sink can see it, with the budget it holds until it is
    /// durable everywhere. Ids must increase.
    pub fn register(&mut self, batch: u64, delta: Checkpoint, held: Option<OwnedSemaphorePermit>) {
        debug_assert!(
            self.pending
                .keys()
                .next_back()
                .is_none_or(|last| *last < batch)
        );
        self.pending.insert(batch, (delta, held));
        self.advance();
    }

    /// Sink `sink` has durably written every batch with id `<= upto`.
    pub fn ack(&mut self, sink: usize, upto: u64) {
        let w = &mut self.watermarks[sink];
        if w.is_none_or(|cur| upto > cur) {
            *w = Some(upto);
            self.advance();
        }
    }

    fn advance(&mut self) {
        let Some(min) = self.watermarks.iter().copied().min().flatten() else {
            // No sinks at all never happens in a job; a sink without a watermark blocks.
            return;
        };
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > min {
                break;
            }
            // Dropping the permit gives its bytes back to the source.
            let (delta, _held) = entry.remove();
            self.committable.merge(&delta);
            self.dirty = true;
        }
    }

    /// The checkpoint to commit, if it moved since the last call.
    pub fn take_commit(&mut self) -> Option<Checkpoint> {
        if self.dirty {
            self.dirty = false;
            Some(self.committable.clone())
        } else {
            None
        }
    }

    /// The furthest committable checkpoint (committed or about to be).
    pub fn committable(&self) -> &Checkpoint {
        &self.committable
    }

    /// Batches registered but not yet durable everywhere.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::record::{Offset, Position};

    /// One step of a random run: register the next batch, or a sink acks some prefix.
    #[derive(Clone, Debug)]
    enum Step {
        Register { partition: u8, records: u8 },
        Ack { sink: usize, upto_fraction: u8 },
        Commit,
    }

    fn step(sinks: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..3, 1u8..5).prop_map(|(partition, records)| Step::Register { partition, records }),
            (0..sinks, any::<u8>()).prop_map(|(sink, upto_fraction)| Step::Ack {
                sink,
                upto_fraction
            }),
            Just(Step::Commit),
        ]
    }

    proptest! {
        /// Against a simple model: whatever was committed when the process "crashes" (at any
        /// step) covers only records every sink has durably written, and once everything is
        /// acked the commit covers everything.
        #[test]
        fn commits_only_what_every_sink_has_written(
            sinks in 1usize..4,
            steps in prop::collection::vec(step(3), 1..120),
        ) {
            let mut tracker = AckTracker::new(sinks, Checkpoint::default(), 1 << 20);
            // Model: each batch's records as (partition, offset); per-sink durable prefix.
            let mut batches: Vec<Vec<(u8, i64)>> = Vec::new();
            let mut next_offset = [0i64; 3];
            let mut durable = vec![0usize; sinks]; // number of batches durable per sink
            let mut committed = Checkpoint::default();
            for s in steps {
                match s {
                    Step::Register { partition, records } => {
                        let mut recs = Vec::new();
                        let mut delta = Checkpoint::default();
                        for _ in 0..records {
                            let off = next_offset[partition as usize];
                            next_offset[partition as usize] += 1;
                            recs.push((partition, off));
                            delta.advance(&Position::int(Arc::from(format!("p{partition}")), off));
                        }
                        batches.push(recs);
                        tracker.register(batches.len() as u64, delta, None);
                    }
                    Step::Ack { sink, upto_fraction } => {
                        let sink = sink % sinks;
                        if batches.is_empty() { continue; }
                        // Sinks write in order: the new watermark never goes backwards.
                        let upto = (batches.len() * upto_fraction as usize / 255).max(durable[sink]);
                        durable[sink] = upto;
                        if upto > 0 { tracker.ack(sink, upto as u64); }
                    }
                    Step::Commit => {
                        if let Some(cp) = tracker.take_commit() { committed = cp; }
                    }
                }
                // Crash here: every record the committed checkpoint covers must be durable in
                // every sink (at-least-once: nothing covered may be missing anywhere).
                let everywhere = durable.iter().copied().min().unwrap_or(0);
                for (i, batch) in batches.iter().enumerate() {
                    for (p, off) in batch {
                        let pos = Position::int(Arc::from(format!("p{p}")), *off);
                        if committed.covers(&pos) {
                            prop_assert!(i < everywhere, "committed {pos} but batch {} not durable everywhere", i + 1);
                        }
                    }
                }
            }
            // Liveness: ack everything, and the commit covers every record.
            for sink in 0..sinks {
                if !batches.is_empty() { tracker.ack(sink, batches.len() as u64); }
            }
            if let Some(cp) = tracker.take_commit() { committed = cp; }
            for batch in &batches {
                for (p, off) in batch {
                    let pos = Position::int(Arc::from(format!("p{p}")), *off);
                    prop_assert!(committed.covers(&pos), "{} not committed", pos);
                }
            }
            prop_assert_eq!(tracker.in_flight(), 0);
        }
    }

    #[test]
    fn slowest_sink_holds_the_commit() {
        let mut t = AckTracker::new(2, Checkpoint::default(), 1 << 20);
        let p: Arc<str> = Arc::from("f");
        for i in 1..=3u64 {
            let mut d = Checkpoint::default();
            d.advance(&Position::int(p.clone(), i as i64 * 10));
            t.register(i, d, None);
        }
        t.ack(0, 3);
        assert_eq!(t.take_commit(), None);
        t.ack(1, 2);
        assert_eq!(t.take_commit().unwrap().get("f"), Some(&Offset::Int(20)));
        assert_eq!(t.take_commit(), None);
    }

    #[tokio::test]
    async fn budget_bytes_come_back_when_a_batch_is_durable_everywhere() {
        let mut t = AckTracker::new(2, Checkpoint::default(), 100);
        let (budget, take) = t.budget(60);
        assert_eq!(take, 60);
        let first = budget.clone().acquire_many_owned(take).await.unwrap();
        t.register(1, Checkpoint::default(), Some(first));
        let (_, take) = t.budget(1000);
        assert_eq!(take, 100, "a batch larger than the budget takes all of it");
        assert!(
            budget.clone().try_acquire_many_owned(60).is_err(),
            "40 left"
        );
        t.ack(0, 1);
        assert_eq!(budget.available_permits(), 40, "one sink is not everywhere");
        t.ack(1, 1);
        assert_eq!(budget.available_permits(), 100);
    }
}
