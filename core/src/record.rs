//! The record model: what flows from a source, through transforms, into sinks.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One header of a record (Kafka-style: a name and opaque bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: Bytes,
}

/// A single record.
///
/// Values are opaque bytes; most connectors carry JSON documents. The `position` says where the
/// record came from, so the runtime can commit the source only after the record is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Optional key (Kafka key, Kinesis partition key, SQL primary key, ...).
    pub key: Option<Bytes>,
    /// The payload.
    pub value: Bytes,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Event time in milliseconds since the Unix epoch, when the source knows it.
    pub timestamp: Option<i64>,
    /// Where the record sits in its source. Outputs of a transform carry their input's position.
    pub position: Position,
}

impl Record {
    /// A record with only a value and a position.
    pub fn new(value: impl Into<Bytes>, position: Position) -> Self {
        Self {
            key: None,
            value: value.into(),
            headers: Vec::new(),
            timestamp: None,
            position,
        }
    }

    /// Approximate in-memory size, used for `max_bytes` batching.
    pub fn size_hint(&self) -> usize {
        self.value.len()
            + self.key.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|h| h.name.len() + h.value.len())
                .sum::<usize>()
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| &h.value)
    }
}

/// A source partition's name: a file path, `topic/partition`, a shard id, a table.
pub type Partition = Arc<str>;

/// Where a record sits within its source partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The source partition.
    pub partition: Partition,
    /// The offset within the partition.
    pub offset: Offset,
}

impl Position {
    /// A position with an integer offset.
    pub fn int(partition: Partition, offset: i64) -> Self {
        Self {
            partition,
            offset: Offset::Int(offset),
        }
    }
}

impl Default for Position {
    fn default() -> Self {
        Self {
            partition: Arc::from(""),
            offset: Offset::Int(-1),
        }
    }
}

/// An offset inside a partition.
///
/// Offsets of one partition are totally ordered; exactly-once sinks rely on that to drop records
/// at or before their checkpoint. `Text` offsets (Kinesis sequence numbers, SQL cursors) compare
/// by length first and then byte-wise, which is numeric order for decimal strings and plain order
/// for fixed-width encodings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Offset {
    /// An integer offset: a Kafka offset, a byte offset in a file, a sequence number.
    Int(i64),
    /// A textual offset: a Kinesis sequence number, an encoded SQL cursor.
    Text(String),
}

impl PartialOrd for Offset {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Offset {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Offset::Int(a), Offset::Int(b)) => a.cmp(b),
            (Offset::Text(a), Offset::Text(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Offset::Int(_), Offset::Text(_)) => Ordering::Less,
            (Offset::Text(_), Offset::Int(_)) => Ordering::Greater,
        }
    }
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Offset::Int(i) => write!(f, "{i}"),
            Offset::Text(s) => f.write_str(s),
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.partition, self.offset)
    }
}

/// For each source partition, the last position that is safe to resume after.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Partition → last durable offset.
    pub offsets: BTreeMap<Partition, Offset>,
}

impl Checkpoint {
    /// True when no partition has a position yet.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The offset of one partition.
    pub fn get(&self, partition: &str) -> Option<&Offset> {
        self.offsets.get(partition)
    }

    /// Record that everything up to `position` (inclusive) is done.
    pub fn advance(&mut self, position: &Position) {
        match self.offsets.get_mut(&position.partition) {
            Some(existing) => {
                if position.offset > *existing {
                    *existing = position.offset.clone();
                }
            }
            None => {
                self.offsets
                    .insert(position.partition.clone(), position.offset.clone());
            }
        }
    }

    /// Fold another checkpoint into this one, keeping the later offset of each partition.
    pub fn merge(&mut self, other: &Checkpoint) {
        for (partition, offset) in &other.offsets {
            self.advance(&Position {
                partition: partition.clone(),
                offset: offset.clone(),
            });
        }
    }

    /// True when `position` is at or before this checkpoint (already done).
    pub fn covers(&self, position: &Position) -> bool {
        self.offsets
            .get(&position.partition)
            .is_some_and(|done| position.offset <= *done)
    }

    /// The per-partition minimum of several checkpoints: where to resume so that no sink misses
    /// anything. A partition missing from any checkpoint is missing from the result.
    pub fn earliest<'a>(checkpoints: impl IntoIterator<Item = &'a Checkpoint>) -> Checkpoint {
        let mut iter = checkpoints.into_iter();
        let Some(first) = iter.next() else {
            return Checkpoint::default();
        };
        let mut out = first.clone();
        for cp in iter {
            out.offsets
                .retain(|partition, offset| match cp.offsets.get(partition) {
                    Some(other) => {
                        if other < offset {
                            *offset = other.clone();
                        }
                        true
                    }
                    None => false,
                });
        }
        out
    }
}

/// Partitions [`Checkpoint`]'s `Display` lists before it shortens the rest to a count; the
/// alternate form (`{:#}`) lists them all.
const DISPLAY_PARTITIONS: usize = 4;

/// For people and logs: `partition@offset` per partition, comma-separated (`datagen@999999`,
/// `file:…@1024, file:…@2048`); more than a few partitions end in `… and N more` unless
/// formatted with `{:#}`. An empty checkpoint reads `nothing`.
impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.offsets.is_empty() {
            return f.write_str("nothing");
        }
        let shown = if f.alternate() {
            usize::MAX
        } else {
            DISPLAY_PARTITIONS
        };
        for (i, (partition, offset)) in self.offsets.iter().enumerate() {
            if i == shown {
                return write!(f, ", … and {} more", self.offsets.len() - shown);
            }
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{partition}@{offset}")?;
        }
        Ok(())
    }
}

/// A record that could not be processed, on its way to the dead-letter sink.
#[derive(Clone, Debug)]
pub struct DeadRecord {
    /// The original record (for a decode failure: the raw bytes as read).
    pub record: Record,
    /// The stage that failed: `source`, `transform:<name>`, `sink:<name>`.
    pub stage: String,
    /// Why it failed.
    pub reason: String,
}

/// What a source yields: records in source order, plus records that failed to decode.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Decoded records, in source order.
    pub records: Vec<Record>,
    /// Records that could not be decoded. Their positions count as consumed once they are
    /// dead-lettered.
    pub dead: Vec<DeadRecord>,
}

impl Batch {
    /// A batch of decoded records.
    pub fn new(records: Vec<Record>) -> Self {
        Self {
            records,
            dead: Vec::new(),
        }
    }

    /// True when the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.dead.is_empty()
    }

    /// The furthest position per partition in this batch.
    pub fn checkpoint(&self) -> Checkpoint {
        let mut cp = Checkpoint::default();
        for r in &self.records {
            cp.advance(&r.position);
        }
        for d in &self.dead {
            cp.advance(&d.record.position);
        }
        cp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(p: &str, o: i64) -> Position {
        Position::int(Arc::from(p), o)
    }

    #[test]
    fn text_offsets_order_numerically() {
        let a = Offset::Text("99".into());
        let b = Offset::Text("100".into());
        assert!(a < b);
    }

    #[test]
    fn checkpoint_advance_keeps_maximum() {
        let mut cp = Checkpoint::default();
        cp.advance(&pos("a", 5));
        cp.advance(&pos("a", 3));
        assert_eq!(cp.get("a"), Some(&Offset::Int(5)));
        assert!(cp.covers(&pos("a", 5)));
        assert!(!cp.covers(&pos("a", 6)));
        assert!(!cp.covers(&pos("b", 0)));
    }

    #[test]
    fn checkpoint_displays_readably_and_shortens_long_lists() {
        assert_eq!(Checkpoint::default().to_string(), "nothing");
        let mut cp = Checkpoint::default();
        cp.advance(&pos("datagen", 999_999));
        assert_eq!(cp.to_string(), "datagen@999999");
        cp.advance(&Position {
            partition: Arc::from("shard-1"),
            offset: Offset::Text("4960".into()),
        });
        assert_eq!(cp.to_string(), "datagen@999999, shard-1@4960");
        let mut many = Checkpoint::default();
        for p in 0..7 {
            many.advance(&pos(&format!("t/{p}"), p));
        }
        assert_eq!(many.to_string(), "t/0@0, t/1@1, t/2@2, t/3@3, … and 3 more");
        assert_eq!(
            format!("{many:#}"),
            "t/0@0, t/1@1, t/2@2, t/3@3, t/4@4, t/5@5, t/6@6"
        );
    }

    #[test]
    fn earliest_takes_minimum_and_drops_missing_partitions() {
        let mut a = Checkpoint::default();
        a.advance(&pos("x", 10));
        a.advance(&pos("y", 4));
        let mut b = Checkpoint::default();
        b.advance(&pos("x", 7));
        let e = Checkpoint::earliest([&a, &b]);
        assert_eq!(e.get("x"), Some(&Offset::Int(7)));
        assert_eq!(e.get("y"), None);
    }
}
