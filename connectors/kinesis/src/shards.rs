//! The shards of a stream and which of them may be read now.
//!
//! Shard lineage: a split closes one shard and opens two children, a merge closes two and opens
//! one. The records of one partition key live in the parent until it closes and in a child
//! after, so a child is read only once every parent it has (parent and adjacent parent) has
//! been read to its end — then per-key order holds across splits and merges. A parent that is
//! no longer listed has aged out of the stream and counts as read.
//!
//! Where a shard starts: after its committed sequence number when the checkpoint has one; at
//! its beginning when it appeared while the source ran, or when a parent of it has a committed
//! position (it was born during an earlier run, whose records in it must not be skipped);
//! otherwise where `start_from` says.
//!
//! After a restart, a parent that was read to its end is read again from its checkpoint: it
//! returns nothing more and reports its end, which is what lets its children go.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sluice_core::Partition;

/// A shard as ListShards shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-000000000001`.
    pub id: String,
    /// The shard it was split from, or one of the two it was merged from.
    pub parent: Option<String>,
    /// The other shard of a merge.
    pub adjacent_parent: Option<String>,
    /// Closed by a split or merge (it has an ending sequence number): no records are added.
    pub closed: bool,
}

/// Where reading a shard begins when there is no iterator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// After this sequence number (`AFTER_SEQUENCE_NUMBER`).
    After(String),
    /// At the shard's oldest record (`TRIM_HORIZON`).
    TrimHorizon,
    /// After the newest record (`LATEST`).
    Latest,
    /// At the first record that arrived at or after this time (`AT_TIMESTAMP`).
    AtTimestamp(SystemTime),
}

/// One shard's reading state.
#[derive(Debug)]
pub struct Shard {
    /// What ListShards said.
    pub info: ShardInfo,
    /// Its partition name in checkpoints: `<stream ARN>/<shard id>`.
    pub partition: Partition,
    /// Where to (re)start when there is no iterator: after the last record read, or the start.
    pub start: Start,
    /// The current shard iterator.
    pub iterator: Option<String>,
    /// Read to its end (the shard is closed and GetRecords returned no next iterator).
    pub finished: bool,
    /// Earliest time of the next GetRecords call (the 5 calls per second limit, idle polling,
    /// backoff). Set before a call is sent: a call dropped halfway still counts at the server.
    pub next_call: Instant,
    /// Earliest time of the next GetShardIterator call (also 5 a second per shard).
    pub next_iterator_call: Instant,
    /// Current backoff after throttling; zero when the last call was not throttled.
    pub backoff: Duration,
    /// The last `MillisBehindLatest`.
    pub behind_ms: Option<i64>,
}

/// The shards known to the source.
#[derive(Debug, Default)]
pub struct ShardTable {
    /// By shard id.
    pub shards: BTreeMap<String, Shard>,
    /// Whether the first listing has been taken in.
    listed_once: bool,
}

impl ShardTable {
    /// Take in a ListShards result. `committed(id)` is the shard's committed sequence number,
    /// `initial` the configured start of shards without one. Returns the ids of new shards.
    pub fn add_listed(
        &mut self,
        listed: Vec<ShardInfo>,
        prefix: &str,
        committed: impl Fn(&str) -> Option<String>,
        initial: &Start,
        now: Instant,
    ) -> Vec<String> {
        let mut new = Vec::new();
        for info in listed {
            if let Some(known) = self.shards.get_mut(&info.id) {
                known.info.closed |= info.closed;
                continue;
            }
            let parent_committed = [&info.parent, &info.adjacent_parent]
                .into_iter()
                .flatten()
                .any(|p| committed(p).is_some());
            let start = match committed(&info.id) {
                Some(seq) => Start::After(seq),
                None if self.listed_once || parent_committed => Start::TrimHorizon,
                None => initial.clone(),
            };
            new.push(info.id.clone());
            self.shards.insert(
                info.id.clone(),
                Shard {
                    partition: Arc::from(format!("{prefix}/{}", info.id)),
                    info,
                    start,
                    iterator: None,
                    finished: false,
                    next_call: now,
                    next_iterator_call: now,
                    backoff: Duration::ZERO,
                    behind_ms: None,
                },
            );
        }
        self.listed_once = true;
        new
    }

    /// True when `id` may be read now: not finished, and every parent it has is finished or
    /// gone from the stream.
    pub fn ready(&self, id: &str) -> bool {
        let Some(shard) = self.shards.get(id) else {
            return false;
        };
        !shard.finished
            && [&shard.info.parent, &shard.info.adjacent_parent]
                .into_iter()
                .flatten()
                .all(|p| self.shards.get(p).is_none_or(|s| s.finished))
    }

    /// The ids of the shards that may be read now.
    pub fn ready_ids(&self) -> Vec<String> {
        self.shards
            .keys()
            .filter(|id| self.ready(id))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(Into::into),
            adjacent_parent: adjacent.map(Into::into),
            closed: false,
        }
    }

    #[test]
    fn children_wait_for_every_parent() {
        let mut t = ShardTable::default();
        let now = Instant::now();
        // 0 split into 1 and 2; 1 and 2 merged into 3.
        t.add_listed(
            vec![
                info("0", None, None),
                info("1", Some("0"), None),
                info("2", Some("0"), None),
                info("3", Some("1"), Some("2")),
            ],
            "arn",
            |_| None,
            &Start::TrimHorizon,
            now,
        );
        assert_eq!(t.ready_ids(), vec!["0"]);
        t.shards.get_mut("0").unwrap().finished = true;
        assert_eq!(t.ready_ids(), vec!["1", "2"]);
        t.shards.get_mut("1").unwrap().finished = true;
        assert_eq!(t.ready_ids(), vec!["2"], "a merge waits for both parents");
        t.shards.get_mut("2").unwrap().finished = true;
        assert_eq!(t.ready_ids(), vec!["3"]);
        assert_eq!(t.shards["3"].partition.as_ref(), "arn/3");
    }

    #[test]
    fn a_parent_gone_from_the_stream_counts_as_read() {
        let mut t = ShardTable::default();
        t.add_listed(
            vec![info("5", Some("4"), None)],
            "arn",
            |_| None,
            &Start::TrimHorizon,
            Instant::now(),
        );
        assert_eq!(t.ready_ids(), vec!["5"]);
    }

    #[test]
    fn where_shards_start() {
        let mut t = ShardTable::default();
        let committed = |id: &str| (id == "0").then(|| "42".to_string());
        t.add_listed(
            vec![
                info("0", None, None),
                info("1", Some("0"), None),
                info("7", None, None),
            ],
            "arn",
            committed,
            &Start::Latest,
            Instant::now(),
        );
        assert_eq!(t.shards["0"].start, Start::After("42".into()));
        assert_eq!(
            t.shards["1"].start,
            Start::TrimHorizon,
            "a child of a committed parent starts at its beginning"
        );
        assert_eq!(t.shards["7"].start, Start::Latest, "start_from applies");
        let new = t.add_listed(
            vec![info("7", None, None), info("8", Some("7"), None)],
            "arn",
            committed,
            &Start::Latest,
            Instant::now(),
        );
        assert_eq!(new, vec!["8"]);
        assert_eq!(
            t.shards["8"].start,
            Start::TrimHorizon,
            "a shard born while running starts at its beginning"
        );
    }
}
