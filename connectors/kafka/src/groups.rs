//! Live source consumers of this process, by cluster and group, so a transactional Kafka sink can
//! commit the source's offsets inside its transactions with the member's real group metadata
//! (generation and member id: the broker then fences a stale member, KIP-447).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;
use rdkafka::consumer::{Consumer, ConsumerGroupMetadata, StreamConsumer};

use crate::source::SourceContext;

type Key = (String, String);
/// Groups whose offsets a transactional sink of this process commits inside its transactions.
static CLAIMED: LazyLock<Mutex<std::collections::HashSet<Key>>> = LazyLock::new(Mutex::default);
static LIVE: LazyLock<Mutex<HashMap<Key, Weak<StreamConsumer<SourceContext>>>>> =
    LazyLock::new(Mutex::default);

fn key(brokers: &str, group: &str) -> Key {
    (brokers.trim().to_string(), group.to_string())
}

/// Remember a source consumer (replaces a dead one of the same group).
pub(crate) fn register(brokers: &str, group: &str, consumer: &Arc<StreamConsumer<SourceContext>>) {
    let mut live = LIVE.lock();
    live.retain(|_, w| w.strong_count() > 0);
    live.insert(key(brokers, group), Arc::downgrade(consumer));
}

/// The group metadata of the live source consumer of `group` on `brokers`, if there is one.
pub(crate) fn metadata(brokers: &str, group: &str) -> Option<ConsumerGroupMetadata> {
    let consumer = LIVE.lock().get(&key(brokers, group))?.upgrade()?;
    consumer.group_metadata()
}

/// A transactional sink commits `group`'s offsets inside its transactions from now on: the
/// source must not commit them itself (a late plain commit could move them back behind the
/// last committed transaction).
pub(crate) fn claim_offsets(brokers: &str, group: &str) {
    CLAIMED.lock().insert(key(brokers, group));
}

/// True when a transactional sink of this process commits `group`'s offsets.
pub(crate) fn offsets_claimed(brokers: &str, group: &str) -> bool {
    CLAIMED.lock().contains(&key(brokers, group))
}
