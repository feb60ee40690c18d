//! A sink's buffer: collects units (the records one source batch produced for this sink) and
//! cuts writes by `max_records` / `max_bytes`, never splitting the outputs of one input record
//! across two writes (so an exactly-once checkpoint never covers half of them).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::record::{Checkpoint, Record};

/// What the router hands a sink for one source batch. `records` may be empty (all filtered).
#[derive(Clone, Debug)]
pub struct Unit {
    /// The source batch id.
    pub id: u64,
    /// Records for this sink, in order.
    pub records: Vec<Record>,
    /// Furthest source position per partition of the whole source batch.
    pub delta: Arc<Checkpoint>,
}

#[derive(Debug)]
struct Boundary {
    id: u64,
    /// Index in `records` one past this unit's last record.
    end: usize,
    delta: Arc<Checkpoint>,
}

/// Records waiting to be written, with the unit boundaries between them.
#[derive(Debug, Default)]
pub struct SinkBuffer {
    records: Vec<Record>,
    bytes: usize,
    units: VecDeque<Boundary>,
    /// Highest unit id entirely written.
    done: Option<u64>,
}

/// A write cut from the buffer.
#[derive(Debug)]
pub struct Cut {
    /// Number of records from the front.
    pub len: usize,
    /// Bytes in those records.
    pub bytes: usize,
}

impl SinkBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a unit.
    pub fn push(&mut self, unit: Unit) {
        self.bytes += unit.records.iter().map(Record::size_hint).sum::<usize>();
        if self.records.is_empty() {
            self.records = unit.records;
        } else {
            self.records.extend(unit.records);
        }
        self.units.push_back(Boundary {
            id: unit.id,
            end: self.records.len(),
            delta: unit.delta,
        });
        self.settle_empty_units();
    }

    /// Number of buffered records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Buffered bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Highest unit id whose records are all written.
    pub fn done(&self) -> Option<u64> {
        self.done
    }

    /// The buffered records.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Choose the next write: at most `max_records` and about `max_bytes` (always at least one
    /// record), extended so records sharing a position stay together.
    pub fn cut(&self, max_records: usize, max_bytes: usize) -> Cut {
        let mut len = 0;
        let mut bytes = 0;
        for r in &self.records {
            let size = r.size_hint();
            if len > 0 && (len >= max_records || bytes + size > max_bytes) {
                break;
            }
            len += 1;
            bytes += size;
        }
        while len > 0
            && len < self.records.len()
            && self.records[len].position == self.records[len - 1].position
        {
            bytes += self.records[len].size_hint();
            len += 1;
        }
        Cut { len, bytes }
    }

    /// The checkpoint after writing the first `len` records: `base` plus every unit completed
    /// by the write, plus the positions of the written records of the unit left partial.
    pub fn checkpoint_after(&self, base: &Checkpoint, len: usize) -> Checkpoint {
        let mut cp = base.clone();
        let mut partial_from = 0;
        for b in &self.units {
            if b.end <= len {
                cp.merge(&b.delta);
                partial_from = b.end;
            } else {
                break;
            }
        }
        for r in &self.records[partial_from..len] {
            cp.advance(&r.position);
        }
        cp
    }

    /// Remove the first `len` records after they were written; returns the new `done` id if it
    /// advanced.
    pub fn consume(&mut self, cut: &Cut) -> Option<u64> {
        let before = self.done;
        self.records.drain(..cut.len);
        self.bytes = self.bytes.saturating_sub(cut.bytes);
        for b in self.units.iter_mut() {
            b.end = b.end.saturating_sub(cut.len);
        }
        self.settle_empty_units();
        (self.done != before).then_some(self.done).flatten()
    }

    /// Units whose records are all written (end at index 0) are done.
    fn settle_empty_units(&mut self) {
        while let Some(b) = self.units.front() {
            if b.end == 0 {
                self.done = Some(b.id);
                self.units.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Offset, Position};

    fn unit(id: u64, offsets: &[i64]) -> Unit {
        let p: Arc<str> = Arc::from("p");
        let records: Vec<Record> = offsets
            .iter()
            .map(|o| Record::new(vec![b'x'; 10], Position::int(p.clone(), *o)))
            .collect();
        let mut delta = Checkpoint::default();
        for r in &records {
            delta.advance(&r.position);
        }
        Unit {
            id,
            records,
            delta: Arc::new(delta),
        }
    }

    #[test]
    fn empty_units_complete_immediately_when_nothing_is_pending() {
        let mut b = SinkBuffer::new();
        b.push(unit(1, &[]));
        assert_eq!(b.done(), Some(1));
    }

    #[test]
    fn watermark_advances_only_past_fully_written_units() {
        let mut b = SinkBuffer::new();
        b.push(unit(1, &[0, 1, 2]));
        b.push(unit(2, &[3, 4]));
        b.push(unit(3, &[]));
        let cut = b.cut(4, usize::MAX);
        assert_eq!(cut.len, 4);
        let cp = b.checkpoint_after(&Checkpoint::default(), cut.len);
        assert_eq!(cp.get("p"), Some(&Offset::Int(3)));
        assert_eq!(b.consume(&cut), Some(1));
        let cut = b.cut(10, usize::MAX);
        assert_eq!(b.consume(&cut), Some(3));
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn cut_keeps_outputs_of_one_input_together() {
        let mut b = SinkBuffer::new();
        b.push(unit(1, &[0, 1, 1, 1, 2]));
        assert_eq!(b.cut(2, usize::MAX).len, 4);
    }

    #[test]
    fn cut_respects_bytes_but_takes_at_least_one() {
        let mut b = SinkBuffer::new();
        b.push(unit(1, &[0, 1, 2]));
        assert_eq!(b.cut(100, 25).len, 2);
        assert_eq!(b.cut(100, 1).len, 1);
    }
}
