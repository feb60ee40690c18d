//! Writing batches (host) and outcomes (guest).

use alloc::vec::Vec;

use crate::{EncodeError, FLAG_KEY, FLAG_TIMESTAMP, Outcome, Tag, WireRecord};

fn len32(what: &'static str, len: usize) -> Result<[u8; 4], EncodeError> {
    u32::try_from(len)
        .map(u32::to_le_bytes)
        .map_err(|_| EncodeError::TooLong { what, len })
}

fn put_bytes(out: &mut Vec<u8>, what: &'static str, b: &[u8]) -> Result<(), EncodeError> {
    out.extend_from_slice(&len32(what, b.len())?);
    out.extend_from_slice(b);
    Ok(())
}

/// A `u32` count written as zero now and patched by [`patch_count`] once known: counting
/// while writing keeps the count equal to what was written, whatever an iterator promised.
fn count_slot(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

fn patch_count(out: &mut [u8], at: usize, what: &'static str, n: usize) -> Result<(), EncodeError> {
    let bytes = len32(what, n)?;
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&bytes);
    }
    Ok(())
}

fn put_record<R: WireRecord>(out: &mut Vec<u8>, r: &R) -> Result<(), EncodeError> {
    let key = r.key();
    let timestamp = r.timestamp();
    let flags = if key.is_some() { FLAG_KEY } else { 0 }
        | if timestamp.is_some() {
            FLAG_TIMESTAMP
        } else {
            0
        };
    out.push(flags);
    if let Some(key) = key {
        put_bytes(out, "key", key)?;
    }
    if let Some(ts) = timestamp {
        out.extend_from_slice(&ts.to_le_bytes());
    }
    put_bytes(out, "value", r.value())?;
    let slot = count_slot(out);
    let mut n = 0;
    for (name, value) in r.headers() {
        put_bytes(out, "header name", name.as_bytes())?;
        put_bytes(out, "header value", value)?;
        n += 1;
    }
    if n > 0 {
        patch_count(out, slot, "header count", n)?;
    }
    Ok(())
}

/// Encode a batch (host → plugin) into `out`, replacing its contents; its capacity is reused
/// across calls. `time_ms` is the host's wall clock in milliseconds since the Unix epoch.
pub fn encode_batch<R: WireRecord>(
    out: &mut Vec<u8>,
    time_ms: i64,
    records: impl IntoIterator<Item = R>,
) -> Result<(), EncodeError> {
    out.clear();
    let slot = count_slot(out);
    out.extend_from_slice(&time_ms.to_le_bytes());
    let mut n = 0;
    for r in records {
        put_record(out, &r)?;
        n += 1;
    }
    patch_count(out, slot, "record count", n)
}

/// Encode outcomes (plugin → host) into `out`, replacing its contents. The host accepts them
/// only if there is exactly one per input record.
pub fn encode_outcomes<R: WireRecord>(
    out: &mut Vec<u8>,
    outcomes: impl IntoIterator<Item = Outcome<R>>,
) -> Result<(), EncodeError> {
    out.clear();
    let slot = count_slot(out);
    let mut n = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Keep => out.push(Tag::Keep as u8),
            Outcome::Ok(records) => {
                out.push(Tag::Ok as u8);
                out.extend_from_slice(&len32("output record count", records.len())?);
                for r in &records {
                    put_record(out, r)?;
                }
            }
            Outcome::Dropped => out.push(Tag::Dropped as u8),
            Outcome::Failed(reason) => {
                out.push(Tag::Failed as u8);
                put_bytes(out, "failure reason", reason.as_bytes())?;
            }
        }
        n += 1;
    }
    patch_count(out, slot, "outcome count", n)
}
