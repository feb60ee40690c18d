//! The guest half of the batch encoding (`transforms/wit/ENCODING.md`): decode a batch, encode
//! outcomes. All integers are little-endian.

use bytes::Bytes;

use crate::record::{Header, Outcome, Record};

const FLAG_KEY: u8 = 1;
const FLAG_TIMESTAMP: u8 = 2;

const TAG_KEEP: u8 = 0;
const TAG_OK: u8 = 1;
const TAG_DROPPED: u8 = 2;
const TAG_FAILED: u8 = 3;

struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<Bytes, String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| format!("batch truncated at byte {}", self.pos))?;
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.pos + N;
        let slice = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| format!("batch truncated at byte {}", self.pos))?;
        self.pos = end;
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

    fn bytes(&mut self) -> Result<Bytes, String> {
        let n = self.u32()?;
        self.take(n)
    }
}

/// A batch being decoded, without copying values out of the buffer.
pub(crate) struct BatchReader {
    r: Reader,
    /// Records not yet read.
    remaining: usize,
    /// Host wall-clock time of the call, milliseconds since the Unix epoch.
    pub time_ms: i64,
}

impl BatchReader {
    /// Read the batch header.
    pub fn new(buf: Vec<u8>) -> Result<Self, String> {
        let mut r = Reader {
            buf: Bytes::from(buf),
            pos: 0,
        };
        let remaining = r.u32()?;
        let time_ms = r.i64()?;
        Ok(Self {
            r,
            remaining,
            time_ms,
        })
    }

    /// All the records.
    pub fn collect(mut self) -> Result<Vec<Record>, String> {
        let mut records = Vec::with_capacity(self.remaining.min(self.r.buf.len()));
        while self.remaining > 0 {
            self.remaining -= 1;
            records.push(self.read_record()?);
        }
        Ok(records)
    }

    fn read_record(&mut self) -> Result<Record, String> {
        let r = &mut self.r;
        let flags = r.u8()?;
        let key = if flags & FLAG_KEY != 0 {
            Some(r.bytes()?)
        } else {
            None
        };
        let timestamp = if flags & FLAG_TIMESTAMP != 0 {
            Some(r.i64()?)
        } else {
            None
        };
        let value = r.bytes()?;
        let n_headers = r.u32()?;
        let mut headers = Vec::with_capacity(n_headers.min(64));
        for _ in 0..n_headers {
            let name = r.bytes()?;
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| "header name is not UTF-8".to_string())?;
            headers.push(Header {
                name,
                value: r.bytes()?,
            });
        }
        Ok(Record {
            key,
            value,
            headers,
            timestamp,
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_record(out: &mut Vec<u8>, r: &Record) {
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

/// Start an outcome buffer for `count` outcomes.
pub(crate) fn start_outcomes(count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + count);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out
}

/// Append one outcome.
pub(crate) fn put_outcome(out: &mut Vec<u8>, outcome: &Outcome) {
    match outcome {
        Outcome::Keep => out.push(TAG_KEEP),
        Outcome::Ok(records) => {
            out.push(TAG_OK);
            out.extend_from_slice(&(records.len() as u32).to_le_bytes());
            for r in records {
                put_record(out, r);
            }
        }
        Outcome::Dropped => out.push(TAG_DROPPED),
        Outcome::Failed(reason) => {
            out.push(TAG_FAILED);
            put_bytes(out, reason.as_bytes());
        }
    }
}
