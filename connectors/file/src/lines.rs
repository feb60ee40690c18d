//! Splitting a chunk of bytes into line records without copying, and what makes a line a good
//! record: JSON as RFC 8259 defines it (UTF-8, one value), not nested too deep, not too long.

use std::sync::Arc;

use bytes::Bytes;
use sluice_core::{Batch, DeadRecord, Position, Record};

use crate::LineFormat;

/// How much of a line over `max_line_bytes` its dead letter keeps.
pub(crate) const TOO_LONG_HEAD: usize = 4096;

/// What a line must be to become a record; other lines are dead-lettered with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LineRules {
    /// JSON lines are checked; text lines are taken as they are.
    pub format: LineFormat,
    /// Longer lines are dead-lettered (their first [`TOO_LONG_HEAD`] bytes), never buffered whole.
    pub max_line_bytes: usize,
    /// JSON nested deeper than this (arrays and objects) is dead-lettered
    /// ([`sluice_core::json::check_json`]).
    pub max_json_depth: usize,
}

impl LineRules {
    /// The defaults of the file source's `max_line_bytes` and `max_json_depth`.
    pub(crate) fn new(format: LineFormat) -> Self {
        Self {
            format,
            max_line_bytes: crate::config::DEFAULT_MAX_LINE_BYTES as usize,
            max_json_depth: sluice_core::json::DEFAULT_MAX_DEPTH,
        }
    }

    /// Why `line` cannot be a record, if it cannot: what is wrong, and the detail.
    fn problem(&self, line: &[u8]) -> Option<(&'static str, String)> {
        if line.len() > self.max_line_bytes {
            return Some((
                "line too long",
                format!(
                    "{} bytes (max_line_bytes = {})",
                    line.len(),
                    self.max_line_bytes
                ),
            ));
        }
        if self.format != LineFormat::Json {
            return None;
        }
        sluice_core::json::check_json(line, self.max_json_depth)
            .err()
            .map(|e| ("invalid JSON", format!("{e} of the line")))
    }
}

/// Split `chunk` (which starts at byte `base` of the partition) into records for every complete
/// line; `origin` names the input in the reason of a bad line (partitions need not be readable). Returns the batch and the number of bytes consumed (up to and including the last
/// newline); the rest is an incomplete line. With `final_chunk`, a trailing line without a
/// newline is taken too.
pub(crate) fn split_lines(
    chunk: &Bytes,
    base: u64,
    partition: &Arc<str>,
    origin: &str,
    rules: &LineRules,
    final_chunk: bool,
) -> (Batch, usize) {
    let mut batch = Batch::default();
    let mut start = 0usize;
    let bytes = &chunk[..];
    let push = |line_start: usize, line_end: usize, next: usize, batch: &mut Batch| {
        let mut end = line_end;
        if end > line_start && bytes[end - 1] == b'\r' {
            end -= 1;
        }
        if end == line_start {
            return;
        }
        let value = chunk.slice(line_start..end);
        let record = Record::new(
            value,
            Position::int(partition.clone(), (base + next as u64) as i64),
        );
        if let Some((what, detail)) = rules.problem(&record.value) {
            let mut record = record;
            if record.value.len() > TOO_LONG_HEAD && end - line_start > rules.max_line_bytes {
                record.value.truncate(TOO_LONG_HEAD);
            }
            batch.dead.push(DeadRecord {
                record,
                stage: "source".into(),
                reason: format!(
                    "{what} at byte {} of {origin}: {detail}",
                    base + line_start as u64
                ),
            });
            return;
        }
        batch.records.push(record);
    };
    for nl in memchr::memchr_iter(b'\n', bytes) {
        push(start, nl, nl + 1, &mut batch);
        start = nl + 1;
    }
    if final_chunk && start < bytes.len() {
        push(start, bytes.len(), bytes.len(), &mut batch);
        start = bytes.len();
    }
    (batch, start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Offset;

    #[test]
    fn splits_complete_lines_and_keeps_the_rest() {
        let p: Arc<str> = Arc::from("f");
        let chunk = Bytes::from_static(b"{\"a\":1}\n\nnot json\r\n{\"b\":2}\n{\"c\"");
        let json = LineRules::new(LineFormat::Json);
        let (batch, used) = split_lines(&chunk, 100, &p, "f", &json, false);
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.dead.len(), 1);
        assert_eq!(&batch.dead[0].record.value[..], b"not json");
        assert!(
            batch.dead[0]
                .reason
                .starts_with("invalid JSON at byte 109 of f: "),
            "{}",
            batch.dead[0].reason
        );
        assert_eq!(batch.records[1].position.offset, Offset::Int(100 + 27));
        assert_eq!(used, 27);
        let text = LineRules::new(LineFormat::Text);
        let (batch, used) = split_lines(&chunk.slice(used..), 127, &p, "f", &text, true);
        assert_eq!(batch.records.len(), 1);
        assert_eq!(used, 4);
        assert_eq!(batch.records[0].position.offset, Offset::Int(131));
    }

    fn reasons(input: &[u8], rules: LineRules) -> Vec<String> {
        let p: Arc<str> = Arc::from("f");
        let (batch, _) = split_lines(&Bytes::copy_from_slice(input), 0, &p, "f", &rules, true);
        batch.dead.into_iter().map(|d| d.reason).collect()
    }

    #[test]
    fn json_means_utf8_and_bounded_depth() {
        let json = LineRules::new(LineFormat::Json);
        // Invalid UTF-8 inside a string: serde_json alone lets it pass.
        let r = reasons(b"{\"a\":\"\xff\xfe\"}\n", json);
        assert_eq!(
            r,
            ["invalid JSON at byte 0 of f: invalid UTF-8 at byte 6 of the line"]
        );
        let deep = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let r = reasons(deep.as_bytes(), json);
        assert_eq!(
            r,
            ["invalid JSON at byte 0 of f: nesting deeper than 127 at byte 127 of the line"]
        );
        // Exactly at the limit, and brackets inside strings (with escaped quotes) do not count.
        let at_limit = format!("{}{}\n", "[".repeat(127), "]".repeat(127));
        assert!(reasons(at_limit.as_bytes(), json).is_empty());
        let quoted = format!("{{\"s\":\"\\\"{}\"}}\n", "[".repeat(500));
        assert!(reasons(quoted.as_bytes(), json).is_empty(), "{quoted}");
        // NUL and CRLF: a NUL byte is not JSON; a CR before the newline is dropped.
        assert_eq!(reasons(b"{\"a\":1}\r\n", json).len(), 0);
        assert_eq!(reasons(b"{\"a\":1}\x00\n", json).len(), 1);
    }

    #[test]
    fn a_complete_line_over_the_limit_keeps_only_its_head() {
        let mut rules = LineRules::new(LineFormat::Text);
        rules.max_line_bytes = 10;
        let p: Arc<str> = Arc::from("f");
        let long = "z".repeat(TOO_LONG_HEAD * 2);
        let chunk = Bytes::from(format!("short\n{long}\nok\n"));
        let (batch, used) = split_lines(&chunk, 0, &p, "f", &rules, false);
        assert_eq!(used, chunk.len());
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.dead.len(), 1);
        assert_eq!(batch.dead[0].record.value.len(), TOO_LONG_HEAD);
        assert_eq!(
            batch.dead[0].reason,
            format!(
                "line too long at byte 6 of f: {} bytes (max_line_bytes = 10)",
                long.len()
            )
        );
    }

    /// Fuzz (bolero; ~1 s under `cargo test`, `scripts/fuzz.sh file <harness> <seconds>`
    /// for longer): any bytes, split at any point into a first read and the rest, give the
    /// same records and dead letters as one read, and every non-empty line is one of them.
    #[test]
    fn fuzz_split_lines() {
        let p: Arc<str> = Arc::from("f");
        bolero::check!().for_each(|input: &[u8]| {
            let Some((&knobs, data)) = input.split_first() else {
                return;
            };
            let mut rules = LineRules::new(if knobs & 1 == 0 {
                LineFormat::Json
            } else {
                LineFormat::Text
            });
            rules.max_line_bytes = usize::from(knobs >> 1) + 1;
            rules.max_json_depth = usize::from(knobs % 5) + 1;
            let chunk = Bytes::copy_from_slice(data);
            let (whole, used) = split_lines(&chunk, 0, &p, "f", &rules, true);
            assert_eq!(used, data.len());
            let lines = data
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty() && *l != b"\r")
                .count();
            assert_eq!(whole.records.len() + whole.dead.len(), lines);
            assert!(whole.dead.iter().all(|d| !d.reason.is_empty()));
            // The same bytes in two reads.
            let cut = usize::from(knobs).min(data.len());
            let (first, used) = split_lines(&chunk.slice(..cut), 0, &p, "f", &rules, false);
            assert!(used <= cut);
            let (rest, used_rest) =
                split_lines(&chunk.slice(used..), used as u64, &p, "f", &rules, true);
            assert_eq!(used + used_rest, data.len());
            let values = |b: &[&Batch]| -> Vec<(Vec<u8>, Offset)> {
                b.iter()
                    .flat_map(|b| &b.records)
                    .map(|r| (r.value.to_vec(), r.position.offset.clone()))
                    .collect()
            };
            assert_eq!(values(&[&whole]), values(&[&first, &rest]));
            let reasons = |b: &[&Batch]| -> Vec<String> {
                b.iter()
                    .flat_map(|b| &b.dead)
                    .map(|d| d.reason.clone())
                    .collect()
            };
            assert_eq!(reasons(&[&whole]), reasons(&[&first, &rest]));
        });
    }
}
