//! Positions of change events: where a change stream resumes.
//!
//! A change stream's resume token is opaque and its encoding varies in length, while Sluice
//! compares offsets of one partition (text by length, then bytes) to drop what a checkpoint
//! covers. So the position is what a resume token encodes first, in a fixed-width text that
//! orders like the stream: the event's cluster time (seconds and increment), a phase (`0` for
//! a document of the initial snapshot, `1` for a change event) and the event's ordinal among
//! the events of that cluster time (the operations of one transaction share it), all in hex:
//! `65f1a2b3` `00000004` `1` `00000000`. The stream resumes with `startAtOperationTime` at that
//! cluster time and skips the events of that time up to the ordinal: the same place a resume
//! token names. The token itself travels as the `mongodb.resume_token` header.

use bson::Timestamp;
use sluice_core::Offset;

/// A decoded position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPosition {
    /// Cluster time of the event (or of the snapshot).
    pub time: Timestamp,
    /// True for a document of the initial snapshot.
    pub snapshot: bool,
    /// Ordinal among the events (or snapshot documents) of that cluster time.
    pub ordinal: u32,
}

impl EventPosition {
    /// The offset text.
    pub fn offset(&self) -> Offset {
        Offset::Text(format!(
            "{:08x}{:08x}{}{:08x}",
            self.time.time,
            self.time.increment,
            if self.snapshot { '0' } else { '1' },
            self.ordinal
        ))
    }

    /// Decode an offset this source wrote.
    pub fn parse(offset: &Offset) -> Option<Self> {
        let Offset::Text(t) = offset else {
            return None;
        };
        if t.len() != 25 || !t.is_ascii() {
            return None;
        }
        let hex = |r: std::ops::Range<usize>| u32::from_str_radix(&t[r], 16).ok();
        let snapshot = match &t[16..17] {
            "0" => true,
            "1" => false,
            _ => return None,
        };
        Some(Self {
            time: Timestamp {
                time: hex(0..8)?,
                increment: hex(8..16)?,
            },
            snapshot,
            ordinal: hex(17..25)?,
        })
    }
}

/// Numbers the events of a stream by cluster time and skips those a checkpoint covers.
#[derive(Clone, Debug, Default)]
pub struct Sequencer {
    last: Option<(Timestamp, u32)>,
    /// Skip events at this cluster time up to (including) this ordinal.
    skip: Option<(Timestamp, u32)>,
}

impl Sequencer {
    /// A sequencer resuming strictly after the event at (`time`, `ordinal`).
    pub fn after(time: Timestamp, ordinal: u32) -> Self {
        Self {
            last: None,
            skip: Some((time, ordinal)),
        }
    }

    /// The position of the next event, or `None` when it is covered (to be skipped).
    pub fn next(&mut self, time: Timestamp) -> Option<EventPosition> {
        let ordinal = match self.last {
            Some((t, n)) if t == time => n.saturating_add(1),
            _ => 0,
        };
        self.last = Some((time, ordinal));
        if let Some((t, n)) = self.skip {
            if time == t && ordinal <= n {
                return None;
            }
            self.skip = None;
        }
        Some(EventPosition {
            time,
            snapshot: false,
            ordinal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(time: u32, increment: u32) -> Timestamp {
        Timestamp { time, increment }
    }

    #[test]
    fn offsets_round_trip_and_order_like_the_stream() {
        let a = EventPosition {
            time: ts(5, 1),
            snapshot: true,
            ordinal: 9,
        };
        let b = EventPosition {
            time: ts(5, 2),
            snapshot: false,
            ordinal: 0,
        };
        let c = EventPosition {
            time: ts(5, 2),
            snapshot: false,
            ordinal: 1,
        };
        assert_eq!(EventPosition::parse(&a.offset()), Some(a));
        assert!(a.offset() < b.offset() && b.offset() < c.offset());
        assert_eq!(EventPosition::parse(&Offset::Int(3)), None);
    }

    #[test]
    fn resumes_strictly_after_an_event_of_a_transaction() {
        let mut s = Sequencer::after(ts(7, 1), 1);
        assert_eq!(s.next(ts(7, 1)), None);
        assert_eq!(s.next(ts(7, 1)), None);
        assert_eq!(s.next(ts(7, 1)).map(|p| p.ordinal), Some(2));
        assert_eq!(s.next(ts(7, 2)).map(|p| p.ordinal), Some(0));
        let mut fresh = Sequencer::default();
        assert_eq!(fresh.next(ts(1, 1)).map(|p| p.ordinal), Some(0));
    }
}
