//! De-aggregation of records written by the Kinesis Producer Library (KPL).
//!
//! An aggregated record's data is `F3 89 9A C2` (magic), then a protobuf `AggregatedRecord`,
//! then the MD5 of that protobuf (16 bytes):
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! ```
//!
//! Data that does not start with the magic, is too short, or whose checksum does not match is
//! an ordinary record (what the KPL's own de-aggregator does). The messages are small and
//! fixed, so a hand-written decoder of the few wire types they use replaces a protobuf crate.

use bytes::Bytes;
use md5::{Digest, Md5};

/// The first bytes of every KPL-aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// One user record inside an aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubRecord {
    /// Its partition key.
    pub partition_key: String,
    /// Its explicit hash key, if the producer set one.
    pub explicit_hash_key: Option<String>,
    /// Its data.
    pub data: Bytes,
}

/// The user records of `data` when it is a KPL aggregate; `None` for an ordinary record.
/// `Err` when the checksum matches but the protobuf is malformed (the record is then
/// dead-lettered, not passed on as if it were user data).
pub fn deaggregate(data: &Bytes) -> Option<Result<Vec<SubRecord>, String>> {
    if data.len() < MAGIC.len() + DIGEST_LEN || data[..MAGIC.len()] != MAGIC {
        return None;
    }
    let body = &data[MAGIC.len()..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    Some(decode_aggregate(data, MAGIC.len(), data.len() - DIGEST_LEN))
}

/// Encode user records as one aggregate (what the KPL writes); used by tests and benchmarks.
pub fn aggregate(records: &[SubRecord]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut hashes: Vec<&str> = Vec::new();
    let mut body = Vec::new();
    let mut entries = Vec::new();
    for r in records {
        let k = index_of(&mut keys, &r.partition_key);
        let mut entry = Vec::new();
        put_varint(&mut entry, 1 << 3);
        put_varint(&mut entry, k as u64);
        if let Some(h) = &r.explicit_hash_key {
            let i = index_of(&mut hashes, h);
            put_varint(&mut entry, 2 << 3);
            put_varint(&mut entry, i as u64);
        }
        put_bytes(&mut entry, 3, &r.data);
        entries.push(entry);
    }
    for k in &keys {
        put_bytes(&mut body, 1, k.as_bytes());
    }
    for h in &hashes {
        put_bytes(&mut body, 2, h.as_bytes());
    }
    for e in &entries {
        put_bytes(&mut body, 3, e);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(Md5::digest(&body).as_slice());
    out
}

fn index_of<'a>(table: &mut Vec<&'a str>, value: &'a str) -> usize {
    match table.iter().position(|v| *v == value) {
        Some(i) => i,
        None => {
            table.push(value);
            table.len() - 1
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A protobuf field: its number and its value (a varint, or a byte range of `buf`).
enum Field {
    Varint(u64),
    Bytes(usize, usize),
    Other,
}

/// Reads the fields of `buf[start..end]`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .filter(|_| self.pos < self.end)
                .ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 64 bits".into())
    }

    fn next(&mut self) -> Result<Option<(u64, Field)>, String> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let tag = self.varint()?;
        let field = match tag & 7 {
            0 => Field::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                let start = self.pos;
                let end = start.checked_add(len).filter(|e| *e <= self.end);
                let end = end.ok_or("length past the end")?;
                self.pos = end;
                Field::Bytes(start, end)
            }
            1 => {
                self.pos += 8;
                Field::Other
            }
            5 => {
                self.pos += 4;
                Field::Other
            }
            t => return Err(format!("unsupported wire type {t}")),
        };
        if self.pos > self.end {
            return Err("field past the end".into());
        }
        Ok(Some((tag >> 3, field)))
    }
}

fn text(buf: &[u8], start: usize, end: usize) -> Result<String, String> {
    String::from_utf8(buf[start..end].to_vec()).map_err(|_| "a key is not UTF-8".to_string())
}

fn decode_aggregate(data: &Bytes, start: usize, end: usize) -> Result<Vec<SubRecord>, String> {
    let buf = &data[..];
    let mut keys = Vec::new();
    let mut hashes = Vec::new();
    let mut raw = Vec::new();
    let mut r = Reader {
        buf,
        pos: start,
        end,
    };
    while let Some((number, field)) = r.next()? {
        match (number, field) {
            (1, Field::Bytes(s, e)) => keys.push(text(buf, s, e)?),
            (2, Field::Bytes(s, e)) => hashes.push(text(buf, s, e)?),
            (3, Field::Bytes(s, e)) => raw.push((s, e)),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    for (s, e) in raw {
        let (mut key, mut hash, mut payload) = (None, None, None);
        let mut r = Reader {
            buf,
            pos: s,
            end: e,
        };
        while let Some((number, field)) = r.next()? {
            match (number, field) {
                (1, Field::Varint(v)) => key = Some(v),
                (2, Field::Varint(v)) => hash = Some(v),
                (3, Field::Bytes(s, e)) => payload = Some(data.slice(s..e)),
                _ => {}
            }
        }
        let lookup = |table: &Vec<String>, i: u64| {
            usize::try_from(i)
                .ok()
                .and_then(|i| table.get(i).cloned())
                .ok_or_else(|| format!("table index {i} out of range"))
        };
        let key = key.ok_or("a sub-record without partition_key_index")?;
        out.push(SubRecord {
            partition_key: lookup(&keys, key)?,
            explicit_hash_key: hash.map(|h| lookup(&hashes, h)).transpose()?,
            data: payload.ok_or("a sub-record without data")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(key: &str, data: &str) -> SubRecord {
        SubRecord {
            partition_key: key.into(),
            explicit_hash_key: None,
            data: Bytes::from(data.to_string()),
        }
    }

    #[test]
    fn round_trips_an_aggregate() {
        let mut records = vec![sub("a", "{\"n\":1}"), sub("b", "{\"n\":2}"), sub("a", "x")];
        records[1].explicit_hash_key = Some("123".into());
        let data = Bytes::from(aggregate(&records));
        assert_eq!(deaggregate(&data).unwrap().unwrap(), records);
    }

    #[test]
    fn ordinary_records_are_left_alone() {
        assert!(deaggregate(&Bytes::from_static(b"{\"n\":1}")).is_none());
        let mut data = aggregate(&[sub("a", "b")]);
        let last = data.len() - 1;
        data[last] ^= 1; // checksum no longer matches: not an aggregate
        assert!(deaggregate(&Bytes::from(data)).is_none());
    }

    #[test]
    fn a_malformed_aggregate_is_an_error() {
        // A valid checksum over a truncated protobuf.
        let body = [0x1a, 0x05, 0x08];
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&body);
        data.extend_from_slice(Md5::digest(body).as_slice());
        assert!(deaggregate(&Bytes::from(data)).unwrap().is_err());
    }
}
