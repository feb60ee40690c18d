//! Reading batches (guest) and outcomes (host). Every length and count comes from the other
//! side and is checked against the bytes actually present before it is used, including for
//! allocation sizes.

use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

use crate::{DecodeError, FLAG_KEY, FLAG_TIMESTAMP, Header, Outcome, RecordFields, Tag};

/// The fewest bytes a `record` takes: flags, the value's length, the header count.
const MIN_RECORD: usize = 1 + 4 + 4;
/// The fewest bytes a header takes: two lengths.
const MIN_HEADER: usize = 4 + 4;

struct Reader {
    buf: Bytes,
    /// Invariant: `pos <= buf.len()`.
    pos: usize,
}

impl Reader {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let slice = self
            .pos
            .checked_add(N)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or(DecodeError::Truncated { at: self.pos })?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.pos += N;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A length-prefixed byte string, sliced from the buffer without copying.
    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let at = self.pos;
        let n = self.u32()?;
        if n > self.left() {
            return Err(DecodeError::Truncated { at });
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        let b = self.bytes()?;
        core::str::from_utf8(&b)
            .map(String::from)
            .map_err(|_| DecodeError::NotUtf8 { at })
    }

    fn record(&mut self) -> Result<RecordFields, DecodeError> {
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
        let mut headers = Vec::with_capacity(n_headers.min(self.left() / MIN_HEADER));
        for _ in 0..n_headers {
            headers.push(Header {
                name: self.string()?,
                value: self.bytes()?,
            });
        }
        Ok(RecordFields {
            key,
            value,
            headers,
            timestamp,
        })
    }

    /// Succeeds only at the end of the buffer.
    fn end(&self) -> Result<(), DecodeError> {
        match self.left() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// A batch (host → plugin) being decoded: an iterator over its records, each sliced from the
/// buffer without copying. After the last record it checks that no bytes trail; after an
/// error it ends.
pub struct BatchReader {
    r: Reader,
    remaining: usize,
    time_ms: i64,
}

impl BatchReader {
    /// Read the batch header.
    pub fn new(buf: impl Into<Bytes>) -> Result<Self, DecodeError> {
        let mut r = Reader {
            buf: buf.into(),
            pos: 0,
        };
        let remaining = r.u32()?;
        let time_ms = r.i64()?;
        if remaining == 0 {
            r.end()?;
        }
        Ok(Self {
            r,
            remaining,
            time_ms,
        })
    }

    /// The host's wall clock when it sent the batch, milliseconds since the Unix epoch.
    pub fn time_ms(&self) -> i64 {
        self.time_ms
    }
}

impl Iterator for BatchReader {
    type Item = Result<RecordFields, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let result = self.r.record().and_then(|record| {
            if self.remaining == 0 {
                self.r.end()?;
            }
            Ok(record)
        });
        if result.is_err() {
            self.remaining = 0;
        }
        Some(result)
    }

    /// The upper bound is also bounded by the bytes left, so it is safe to allocate for even
    /// when the count in the buffer is hostile.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let fit = self.r.left() / MIN_RECORD + 1;
        (0, Some(self.remaining.min(fit)))
    }
}

/// Outcomes (plugin → host) being decoded, one per input record.
pub struct OutcomeReader {
    r: Reader,
    remaining: usize,
}

impl OutcomeReader {
    /// Read the outcome count; it must equal `expected`, the number of input records.
    pub fn new(buf: impl Into<Bytes>, expected: usize) -> Result<Self, DecodeError> {
        let mut r = Reader {
            buf: buf.into(),
            pos: 0,
        };
        let found = r.u32()?;
        if found != expected {
            return Err(DecodeError::OutcomeCount { found, expected });
        }
        if found == 0 {
            r.end()?;
        }
        Ok(Self {
            r,
            remaining: found,
        })
    }

    /// Outcomes not read yet.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The next outcome, building each of its output records with `make`. Call it once per
    /// input record, in order; after the last outcome it checks that no bytes trail.
    pub fn next_outcome<R>(
        &mut self,
        make: impl FnMut(RecordFields) -> R,
    ) -> Result<Outcome<R>, DecodeError> {
        if self.remaining == 0 {
            return Err(DecodeError::NoOutcomeLeft);
        }
        self.remaining -= 1;
        let result = self.read(make);
        if result.is_err() {
            self.remaining = 0;
        }
        result
    }

    fn read<R>(
        &mut self,
        mut make: impl FnMut(RecordFields) -> R,
    ) -> Result<Outcome<R>, DecodeError> {
        let at = self.r.pos;
        let tag = self.r.u8()?;
        let outcome = match Tag::from_u8(tag) {
            Some(Tag::Keep) => Outcome::Keep,
            Some(Tag::Ok) => {
                let n = self.r.u32()?;
                let mut records = Vec::with_capacity(n.min(self.r.left() / MIN_RECORD));
                for _ in 0..n {
                    records.push(make(self.r.record()?));
                }
                Outcome::Ok(records)
            }
            Some(Tag::Dropped) => Outcome::Dropped,
            Some(Tag::Failed) => Outcome::Failed(self.r.string()?),
            None => return Err(DecodeError::UnknownTag { tag, at }),
        };
        if self.remaining == 0 {
            self.r.end()?;
        }
        Ok(outcome)
    }
}
