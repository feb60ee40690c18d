//! Positions of change events: where a change stream resumes.
//!
//! The position of a change event is its **resume token**, behind a fixed-width prefix that
//! orders it. Sluice compares the offsets of one partition (text: by length, then byte-wise) to
//! drop what a checkpoint covers, while a resume token is opaque: its length varies with the
//! document key, and SecantusDB's tokens (hex of a BSON document, little-endian counters) do
//! not even sort like the stream. So an offset is:
//!
//! ```text
//! 692ec3b9 00000004 1 00000000 : 82692EC3B9000000042B0229296E04... ....
//! └ cluster time ─┘  │ └ordinal┘   └ the event's resume token (_data) ┘ └ padding
//!                    └ phase: 0 = a document of the initial snapshot, 1 = a change event
//! ```
//!
//! - the prefix orders: the event's cluster time (seconds, increment), the phase, and the
//!   event's ordinal among the events of that cluster time (the operations of one transaction
//!   share it), all fixed-width hex — unique per event of a stream;
//! - the token is what the stream resumes from (`startAfter`): exactly after that event;
//! - length first: an offset is never shorter than the one before it in the stream
//!   ([`Sequencer::offset`] pads with `.` up to the longest so far, and a resumed stream
//!   starts from the stored offset's length). Offsets of one stream therefore compare like
//!   their prefixes: of two events, the later one is longer, or as long and then greater by
//!   its prefix. The width at an event depends only on the offsets before it in the stream,
//!   so a stream read again from an older checkpoint writes the same offsets;
//! - a token longer than [`MAX_TOKEN`] characters (a document key of a few hundred bytes) is
//!   left out, and so is one that is not hex text (MongoDB before 4.2): the offset is then the
//!   prefix alone, and the stream resumes with `startAtOperationTime` at the cluster time,
//!   skipping that time's events up to the ordinal — the same place;
//! - snapshot documents have no token: a restart inside the snapshot reads it again.

use bson::Timestamp;
use sluice_core::Offset;

/// Longest resume token carried in an offset (hex characters).
pub const MAX_TOKEN: usize = 512;

/// Length of the ordering prefix.
const PREFIX: usize = 25;

/// A decoded position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPosition {
    /// Cluster time of the event (or of the snapshot).
    pub time: Timestamp,
    /// True for a document of the initial snapshot.
    pub snapshot: bool,
    /// Ordinal among the events (or snapshot documents) of that cluster time.
    pub ordinal: u32,
    /// The event's resume token (`_data`), when it is carried.
    pub token: Option<String>,
}

impl EventPosition {
    /// The offset text, without padding.
    fn text(&self) -> String {
        let mut text = format!(
            "{:08x}{:08x}{}{:08x}",
            self.time.time,
            self.time.increment,
            if self.snapshot { '0' } else { '1' },
            self.ordinal
        );
        if let Some(token) = &self.token {
            text.push(':');
            text.push_str(token);
        }
        text
    }

    /// Decode an offset this source wrote (with or without a token, padded or not).
    pub fn parse(offset: &Offset) -> Option<Self> {
        let Offset::Text(t) = offset else {
            return None;
        };
        let t = t.trim_end_matches('.');
        if t.len() < PREFIX || !t.is_ascii() {
            return None;
        }
        let (prefix, rest) = t.split_at(PREFIX);
        let hex = |r: std::ops::Range<usize>| u32::from_str_radix(&prefix[r], 16).ok();
        let snapshot = match &prefix[16..17] {
            "0" => true,
            "1" => false,
            _ => return None,
        };
        let token = match rest.strip_prefix(':') {
            None if rest.is_empty() => None,
            Some(token) if is_token(token) && !snapshot => Some(token.to_string()),
            _ => return None,
        };
        Some(Self {
            time: Timestamp {
                time: hex(0..8)?,
                increment: hex(8..16)?,
            },
            snapshot,
            ordinal: hex(17..25)?,
            token,
        })
    }
}

/// A resume token's `_data` that fits in an offset: hex text of at most [`MAX_TOKEN`].
pub fn is_token(data: &str) -> bool {
    !data.is_empty() && data.len() <= MAX_TOKEN && data.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Numbers the events of a stream by cluster time, skips those a checkpoint covers, and
/// writes offsets that never get shorter.
#[derive(Clone, Debug, Default)]
pub struct Sequencer {
    last: Option<(Timestamp, u32)>,
    /// Skip events at this cluster time up to (including) this ordinal.
    skip: Option<(Timestamp, u32)>,
    /// Length of the longest offset so far.
    width: usize,
}

impl Sequencer {
    /// Number the next events as following the event at (`time`, `ordinal`).
    pub fn continue_after(&mut self, time: Timestamp, ordinal: u32) {
        self.last = Some((time, ordinal));
        self.skip = None;
    }

    /// Skip the events up to (including) the one at (`time`, `ordinal`): the stream was
    /// opened at `time`, not at a token.
    pub fn skip_through(&mut self, time: Timestamp, ordinal: u32) {
        self.last = None;
        self.skip = Some((time, ordinal));
    }

    /// The stream opens again at `time` (not at a token): skip what was read of that time.
    pub fn reopen_at(&mut self, time: Timestamp) {
        if let Some((t, n)) = self.last
            && t == time
        {
            self.skip_through(t, n);
        }
    }

    /// Start from the length of a stored offset (offsets are never shorter than it).
    pub fn widen(&mut self, stored: &Offset) {
        self.width = self.width.max(stored.to_string().len());
    }

    /// The ordinal of the next event, at `time`, or `None` when it is covered (to be skipped).
    pub fn next(&mut self, time: Timestamp) -> Option<u32> {
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
        Some(ordinal)
    }

    /// The offset of `position`, the next in the stream: padded to the longest offset so far.
    pub fn offset(&mut self, position: &EventPosition) -> Offset {
        let mut text = position.text();
        if text.len() < self.width {
            let pad = self.width - text.len();
            text.extend(std::iter::repeat_n('.', pad));
        }
        self.width = text.len();
        Offset::Text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(time: u32, increment: u32) -> Timestamp {
        Timestamp { time, increment }
    }

    fn event(time: Timestamp, ordinal: u32, token: Option<&str>) -> EventPosition {
        EventPosition {
            time,
            snapshot: false,
            ordinal,
            token: token.map(str::to_string),
        }
    }

    #[test]
    fn offsets_round_trip_and_order_like_the_stream() {
        let mut s = Sequencer::default();
        let snap = EventPosition {
            time: ts(5, 1),
            snapshot: true,
            ordinal: 9,
            token: None,
        };
        // Tokens of varying length, in an order of their own (SecantusDB's do not sort).
        let events = [
            event(ts(5, 2), 0, Some("77000000AA")),
            event(ts(5, 2), 1, Some("44")),
            event(ts(5, 3), 0, None),
            event(ts(6, 0), 0, Some("440000001073")),
            event(ts(6, 1), 0, Some("1")),
        ];
        let offsets: Vec<Offset> = std::iter::once(&snap)
            .chain(&events)
            .map(|p| s.offset(p))
            .collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "offsets order like the stream: {offsets:?}"
        );
        assert_eq!(EventPosition::parse(&offsets[0]), Some(snap));
        for (o, p) in offsets[1..].iter().zip(&events) {
            assert_eq!(EventPosition::parse(o).as_ref(), Some(p), "{o}");
        }
        // As long as the offset before it (a prefix and a 10-character token).
        assert_eq!(
            offsets[2].to_string(),
            format!("0000000500000002100000001:44{}", ".".repeat(8))
        );
        assert_eq!(EventPosition::parse(&Offset::Int(3)), None);
        assert_eq!(EventPosition::parse(&Offset::Text("12".into())), None);
        let bad = Offset::Text(format!("{}:not hex", &offsets[1].to_string()[..25]));
        assert_eq!(EventPosition::parse(&bad), None);
    }

    #[test]
    fn a_stream_read_again_writes_the_same_offsets() {
        let events = [
            event(ts(1, 1), 0, Some("AAAA")),
            event(ts(1, 2), 0, Some("AAAAAAAAAAAA")),
            event(ts(1, 3), 0, Some("AA")),
            event(ts(1, 3), 1, Some("AAAAAA")),
            event(ts(1, 4), 0, Some("AAAAAAAAAAAAAAAAAAAA")),
            event(ts(1, 5), 0, Some("A")),
        ];
        let mut first = Sequencer::default();
        let once: Vec<Offset> = events.iter().map(|p| first.offset(p)).collect();
        // Resumed after the third event: the same offsets follow, and the first run's later
        // offsets still compare after the resumed run's earlier ones.
        let stored = &once[2];
        let p = EventPosition::parse(stored).unwrap();
        let mut again = Sequencer::default();
        again.widen(stored);
        again.continue_after(p.time, p.ordinal);
        assert_eq!(again.next(ts(1, 3)), Some(1), "the transaction goes on");
        let replay: Vec<Offset> = events[3..].iter().map(|p| again.offset(p)).collect();
        assert_eq!(replay, once[3..]);
    }

    #[test]
    fn resumes_strictly_after_an_event_of_a_transaction() {
        let mut s = Sequencer::default();
        s.skip_through(ts(7, 1), 1);
        assert_eq!(s.next(ts(7, 1)), None);
        assert_eq!(s.next(ts(7, 1)), None);
        assert_eq!(s.next(ts(7, 1)), Some(2));
        assert_eq!(s.next(ts(7, 2)), Some(0));
        let mut fresh = Sequencer::default();
        assert_eq!(fresh.next(ts(1, 1)), Some(0));
        // Opened again at the same time after an error: what was read is skipped.
        fresh.reopen_at(ts(1, 1));
        assert_eq!(fresh.next(ts(1, 1)), None);
        assert_eq!(fresh.next(ts(1, 1)), Some(1));
    }

    #[test]
    fn old_offsets_without_a_token_still_parse() {
        let o = Offset::Text("692ec3b900000004100000002".into());
        let p = EventPosition::parse(&o).unwrap();
        assert_eq!((p.time, p.ordinal, p.token), (ts(0x692ec3b9, 4), 2, None));
        assert!(!is_token(&"A".repeat(MAX_TOKEN + 1)));
    }
}
