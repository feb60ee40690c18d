//! The host half of the batch encoding described in `wit/ENCODING.md`: encode a batch of
//! records, decode the plugin's outcomes. All integers are little-endian.

use bytes::Bytes;
use sluice_core::record::{Header, Record};
use sluice_core::transform::Outcome;

const FLAG_KEY: u8 = 1;
const FLAG_TIMESTAMP: u8 = 2;

const TAG_KEEP: u8 = 0;
const TAG_OK: u8 = 1;
const TAG_DROPPED: u8 = 2;
const TAG_FAILED: u8 = 3;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Encode `records` into `out` (cleared first; its capacity is reused across calls).
pub(crate) fn encode_batch(out: &mut Vec<u8>, records: &[Record], time_ms: i64) {
    out.clear();
    let body: usize = records
        .iter()
        .map(|r| 13 + r.size_hint() + 8 * r.headers.len() + 9)
        .sum();
    out.reserve(12 + body);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    for r in records {
        let flags = if r.key.is_some() { FLAG_KEY } else { 0 }
            | if r.timestamp.is_some() {
                FLAG_TIMESTAMP
            } else {
                0
            };
        out.push(flags);
        if let Some(key) = &r.key {
            put_bytes(out, key);
        }
        if let Some(ts) = r.timestamp {
            out.extend_from_slice(&ts.to_le_bytes());
        }
        put_bytes(out, &r.value);
        out.extend_from_slice(&(r.headers.len() as u32).to_le_bytes());
        for h in &r.headers {
            put_bytes(out, h.name.as_bytes());
            put_bytes(out, &h.value);
        }
    }
}

struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let slice = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or_else(|| format!("output truncated at byte {}", self.pos))?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A length-prefixed byte string, sliced from the buffer without copying.
    fn bytes(&mut self) -> Result<Bytes, String> {
        let n = self.u32()?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| format!("output truncated at byte {}", self.pos))?;
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    fn string(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
    }

    fn record(&mut self, input: &Record) -> Result<Record, String> {
        let flags = self.u8()?;
        let key = if flags & FLAG_KEY != 0 {
            Some(self.bytes()?)
        } else {
            None
        };
        let timestamp = if flags & FLAG_TIMESTAMP != 0 {
            Some(self.i64()?)
        } else {
            None
        };
        let value = self.bytes()?;
        let n_headers = self.u32()?;
        let mut headers = Vec::with_capacity(n_headers.min(64));
        for _ in 0..n_headers {
            headers.push(Header {
                name: self.string()?,
                value: self.bytes()?,
            });
        }
        Ok(Record {
            key,
            value,
            headers,
            timestamp,
            position: input.position.clone(),
        })
    }
}

/// Decode the outcomes of `inputs`: exactly one per input. Output records carry their input's
/// position; `keep` clones the input (reference counts only).
pub(crate) fn decode_outcomes(buf: Vec<u8>, inputs: &[Record]) -> Result<Vec<Outcome>, String> {
    let mut r = Reader {
        buf: Bytes::from(buf),
        pos: 0,
    };
    let count = r.u32()?;
    if count != inputs.len() {
        return Err(format!(
            "{count} outcomes for {} input records",
            inputs.len()
        ));
    }
    let mut outcomes = Vec::with_capacity(count);
    for input in inputs {
        let outcome = match r.u8()? {
            TAG_KEEP => Outcome::Ok(vec![input.clone()]),
            TAG_OK => {
                let n = r.u32()?;
                let mut records = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    records.push(r.record(input)?);
                }
                Outcome::Ok(records)
            }
            TAG_DROPPED => Outcome::Dropped,
            TAG_FAILED => Outcome::Failed(r.string()?),
            tag => return Err(format!("unknown outcome tag {tag} at byte {}", r.pos - 1)),
        };
        outcomes.push(outcome);
    }
    if r.pos != r.buf.len() {
        return Err(format!(
            "{} trailing bytes after the outcomes",
            r.buf.len() - r.pos
        ));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::record::Position;
    use std::sync::Arc;

    #[test]
    fn keep_clones_input_with_position() {
        let input = Record::new("v", Position::int(Arc::from("p"), 7));
        let mut buf = 1u32.to_le_bytes().to_vec();
        buf.push(TAG_KEEP);
        let out = decode_outcomes(buf, std::slice::from_ref(&input)).unwrap();
        assert_eq!(out, vec![Outcome::Ok(vec![input])]);
    }

    #[test]
    fn rejects_wrong_outcome_count() {
        let input = Record::new("v", Position::default());
        let buf = 2u32.to_le_bytes().to_vec();
        let err = decode_outcomes(buf, &[input]).unwrap_err();
        assert!(err.contains("2 outcomes for 1"), "{err}");
    }

    #[test]
    fn rejects_truncated_output() {
        let input = Record::new("v", Position::default());
        let mut buf = 1u32.to_le_bytes().to_vec();
        buf.extend_from_slice(&[TAG_FAILED, 9, 0, 0, 0, b'x']);
        assert!(decode_outcomes(buf, &[input]).is_err());
    }
}
