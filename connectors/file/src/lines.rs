//! Splitting a chunk of bytes into line records without copying.

use std::sync::Arc;

use bytes::Bytes;
use sluice_core::{Batch, DeadRecord, Position, Record};

use crate::LineFormat;

/// Split `chunk` (which starts at byte `base` of the partition) into records for every complete
/// line; `origin` names the input in the reason of a bad line (partitions need not be readable). Returns the batch and the number of bytes consumed (up to and including the last
/// newline); the rest is an incomplete line. With `final_chunk`, a trailing line without a
/// newline is taken too.
pub(crate) fn split_lines(
    chunk: &Bytes,
    base: u64,
    partition: &Arc<str>,
    origin: &str,
    format: LineFormat,
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
        if format == LineFormat::Json
            && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&record.value)
        {
            batch.dead.push(DeadRecord {
                record,
                stage: "source".into(),
                reason: format!(
                    "invalid JSON at byte {} of {origin}: {e}",
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
        let (batch, used) = split_lines(&chunk, 100, &p, "f", LineFormat::Json, false);
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
        let (batch, used) = split_lines(&chunk.slice(used..), 127, &p, "f", LineFormat::Text, true);
        assert_eq!(batch.records.len(), 1);
        assert_eq!(used, 4);
        assert_eq!(batch.records[0].position.offset, Offset::Int(131));
    }
}
