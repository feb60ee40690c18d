//! The live source consumers of one job, by cluster and group, so that a transactional Kafka
//! sink of the same job can commit the source's offsets inside its transactions with the
//! member's real group metadata (generation and member id: the broker then fences a stale
//! member, KIP-447).
//!
//! One [`Groups`] per job, from the job's `BuildContext::resources`: the source and the sink of
//! one job share it, two jobs in one worker never see each other's entries, and it is dropped
//! with the job's connectors (a deleted job's claim does not outlive it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use rdkafka::consumer::{Consumer, ConsumerGroupMetadata, StreamConsumer};
use sluice_core::BuildContext;

use crate::rebalance::SourceContext;

type Key = (String, String);

/// The Kafka consumer groups of one job: which are claimed by a transactional sink, and the
/// live source consumer of each.
#[derive(Default)]
pub(crate) struct Groups {
    /// Groups whose offsets a transactional sink of this job commits inside its transactions.
    claimed: Mutex<HashSet<Key>>,
    live: Mutex<HashMap<Key, Weak<StreamConsumer<SourceContext>>>>,
}

fn key(brokers: &str, group: &str) -> Key {
    (brokers.trim().to_string(), group.to_string())
}

impl Groups {
    /// The groups of the job `ctx` belongs to.
    pub(crate) fn of_job(ctx: &BuildContext) -> Arc<Groups> {
        ctx.resources().get_or_insert_with(Groups::default)
    }

    /// Remember a source consumer (replaces a dead one of the same group).
    pub(crate) fn register(
        &self,
        brokers: &str,
        group: &str,
        consumer: &Arc<StreamConsumer<SourceContext>>,
    ) {
        let mut live = self.live.lock();
        live.retain(|_, w| w.strong_count() > 0);
        live.insert(key(brokers, group), Arc::downgrade(consumer));
    }

    /// The group metadata of the live source consumer of `group` on `brokers`, if there is one.
    pub(crate) fn metadata(&self, brokers: &str, group: &str) -> Option<ConsumerGroupMetadata> {
        let consumer = self.live.lock().get(&key(brokers, group))?.upgrade()?;
        consumer.group_metadata()
    }

    /// A transactional sink commits `group`'s offsets inside its transactions from now on: the
    /// source must not commit them itself (a late plain commit could move them back behind the
    /// last committed transaction).
    pub(crate) fn claim_offsets(&self, brokers: &str, group: &str) {
        self.claimed.lock().insert(key(brokers, group));
    }

    /// True when a transactional sink of this job commits `group`'s offsets.
    pub(crate) fn offsets_claimed(&self, brokers: &str, group: &str) -> bool {
        self.claimed.lock().contains(&key(brokers, group))
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::Guarantee;

    use super::*;

    fn job(name: &str) -> BuildContext {
        BuildContext::new(name, ".", ".", Guarantee::ExactlyOnce)
    }

    #[test]
    fn a_claim_is_seen_by_its_own_job_only_and_dies_with_it() {
        let (a, b) = (job("a"), job("b"));
        Groups::of_job(&a).claim_offsets("k:9092", "g");
        assert!(
            Groups::of_job(&a).offsets_claimed(" k:9092 ", "g"),
            "the source of the same job sees the sink's claim"
        );
        assert!(
            !Groups::of_job(&b).offsets_claimed("k:9092", "g"),
            "another job with the same group does not"
        );
        let held = Groups::of_job(&a);
        let weak = Arc::downgrade(&held);
        drop((a, held));
        assert!(weak.upgrade().is_none(), "a dropped job's claim is gone");
        assert!(!Groups::of_job(&job("a")).offsets_claimed("k:9092", "g"));
    }
}
