//! Turning records into PutRecords entries, and cutting them into calls within the API limits:
//! at most 500 entries and 5 MiB (data plus partition keys) per call, 1 MiB per entry.

use std::hash::{Hash, Hasher};

use serde_json::Value;
use sluice_core::{Record, ValuePath};

use crate::config::PartitionKey;

/// Most entries in one PutRecords call.
pub const MAX_ENTRIES: usize = 500;
/// Most bytes (data plus partition keys) in one PutRecords call.
pub const MAX_CALL_BYTES: usize = 5 * 1024 * 1024;
/// Most bytes (data plus partition key) of one entry.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// Longest partition key, in Unicode characters.
pub const MAX_KEY_CHARS: usize = 256;

/// One record as a PutRecords entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index of the record in the written slice.
    pub index: usize,
    /// Its partition key.
    pub partition_key: String,
    /// Its explicit hash key, if configured.
    pub explicit_hash_key: Option<String>,
}

impl Entry {
    /// Bytes the entry counts against the limits.
    pub fn size(&self, record: &Record) -> usize {
        record.value.len() + self.partition_key.len()
    }
}

/// Makes entries from records.
#[derive(Clone, Debug)]
pub struct Planner {
    /// Where partition keys come from.
    pub partition_key: PartitionKey,
    /// Where explicit hash keys come from.
    pub explicit_hash_key: Option<ValuePath>,
}

impl Planner {
    /// The entry of `records[index]`; `Err` is the reason to dead-letter it.
    pub fn entry(&self, index: usize, record: &Record) -> Result<Entry, String> {
        let needs_json = matches!(self.partition_key, PartitionKey::Field(_))
            || self.explicit_hash_key.is_some();
        let parsed: Option<Value> = if needs_json {
            Some(
                serde_json::from_slice(&record.value)
                    .map_err(|e| format!("the value is not valid JSON: {e}"))?,
            )
        } else {
            None
        };
        let partition_key = match &self.partition_key {
            PartitionKey::RecordKey => match &record.key {
                Some(k) => String::from_utf8(k.to_vec())
                    .map_err(|_| "the record key is not UTF-8 text".to_string())?,
                None => position_hash(record),
            },
            PartitionKey::Hash => position_hash(record),
            PartitionKey::Field(path) => scalar(path, parsed.as_ref())?,
            PartitionKey::Header(name) => {
                let v = record
                    .header(name)
                    .ok_or_else(|| format!("the record has no header {name:?}"))?;
                String::from_utf8(v.to_vec())
                    .map_err(|_| format!("header {name:?} is not UTF-8 text"))?
            }
        };
        if partition_key.is_empty() {
            return Err("the partition key is empty".into());
        }
        let chars = partition_key.chars().count();
        if chars > MAX_KEY_CHARS {
            return Err(format!(
                "the partition key has {chars} characters; Kinesis takes at most {MAX_KEY_CHARS}"
            ));
        }
        let explicit_hash_key = match &self.explicit_hash_key {
            Some(path) => {
                let h = scalar(path, parsed.as_ref())?;
                if !crate::seq::is_sequence_number(&h) || h.len() > 39 {
                    return Err(format!(
                        "explicit hash key {h:?} is not a decimal integer below 2^128"
                    ));
                }
                Some(h)
            }
            None => None,
        };
        let entry = Entry {
            index,
            partition_key,
            explicit_hash_key,
        };
        let size = entry.size(record);
        if size > MAX_ENTRY_BYTES {
            return Err(format!(
                "RecordTooLarge: {size} bytes with its partition key; a Kinesis record holds at most {MAX_ENTRY_BYTES}"
            ));
        }
        Ok(entry)
    }
}

/// A field's value as a key: a string as is, a number or boolean as written.
fn scalar(path: &ValuePath, value: Option<&Value>) -> Result<String, String> {
    match value.and_then(|v| path.get(v)) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(v.to_string()),
        Some(_) => Err(format!("field {path} is not a string or number")),
        None => Err(format!("the record has no field {path}")),
    }
}

/// A stable hash of the record's source position, as a partition key.
fn position_hash(record: &Record) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    record.position.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Cut `entries` into calls: consecutive runs of at most [`MAX_ENTRIES`] entries and
/// [`MAX_CALL_BYTES`] bytes. Every entry is at most [`MAX_ENTRY_BYTES`], so each fits a call.
pub fn cut(entries: &[Entry], records: &[Record]) -> Vec<std::ops::Range<usize>> {
    let mut calls = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in entries.iter().enumerate() {
        let size = e.size(&records[e.index]);
        if i > start && (i - start == MAX_ENTRIES || bytes + size > MAX_CALL_BYTES) {
            calls.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < entries.len() {
        calls.push(start..entries.len());
    }
    calls
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use sluice_core::{Header, Position};

    use super::*;

    fn record(value: &str, n: i64) -> Record {
        Record::new(value.to_string(), Position::int(Arc::from("p"), n))
    }

    fn planner(key: PartitionKey) -> Planner {
        Planner {
            partition_key: key,
            explicit_hash_key: None,
        }
    }

    #[test]
    fn partition_keys_from_key_field_header_or_hash() {
        let mut r = record("{\"dev\":{\"id\":7}}", 1);
        let p = planner(PartitionKey::RecordKey);
        let hashed = p.entry(0, &r).unwrap().partition_key;
        assert_eq!(hashed.len(), 16, "no key: the position's hash");
        r.key = Some(Bytes::from_static(b"k1"));
        assert_eq!(p.entry(0, &r).unwrap().partition_key, "k1");
        let p = planner(PartitionKey::Field(ValuePath::parse("dev.id").unwrap()));
        assert_eq!(p.entry(0, &r).unwrap().partition_key, "7");
        let p = planner(PartitionKey::Header("h".into()));
        assert!(p.entry(0, &r).unwrap_err().contains("no header"));
        r.headers.push(Header {
            name: "h".into(),
            value: Bytes::from_static(b"v"),
        });
        assert_eq!(p.entry(0, &r).unwrap().partition_key, "v");
        let p = planner(PartitionKey::Hash);
        assert_eq!(p.entry(0, &r).unwrap().partition_key, hashed);
    }

    #[test]
    fn oversized_and_keyless_records_are_refused() {
        let big = "x".repeat(MAX_ENTRY_BYTES);
        let p = planner(PartitionKey::Hash);
        let err = p.entry(0, &record(&big, 1)).unwrap_err();
        assert!(err.starts_with("RecordTooLarge"), "{err}");
        let p = planner(PartitionKey::Field(ValuePath::parse("id").unwrap()));
        assert!(p.entry(0, &record("{}", 1)).is_err());
        assert!(p.entry(0, &record("not json", 1)).is_err());
        let long = format!("{{\"id\":\"{}\"}}", "k".repeat(257));
        assert!(p.entry(0, &record(&long, 1)).unwrap_err().contains("256"));
    }

    #[test]
    fn explicit_hash_keys_must_be_128_bit_integers() {
        let p = Planner {
            partition_key: PartitionKey::Hash,
            explicit_hash_key: Some(ValuePath::parse("h").unwrap()),
        };
        let e = p.entry(
            0,
            &record("{\"h\":\"170141183460469231731687303715884105728\"}", 1),
        );
        assert!(e.unwrap().explicit_hash_key.is_some());
        assert!(p.entry(0, &record("{\"h\":\"-1\"}", 1)).is_err());
        let too_big = format!("{{\"h\":\"{}\"}}", "9".repeat(40));
        assert!(p.entry(0, &record(&too_big, 1)).is_err());
    }

    #[test]
    fn calls_stay_within_500_entries_and_5_mib() {
        let small: Vec<Record> = (0..1201).map(|n| record("{}", n)).collect();
        let p = planner(PartitionKey::Hash);
        let entries: Vec<Entry> = small
            .iter()
            .enumerate()
            .map(|(i, r)| p.entry(i, r).unwrap())
            .collect();
        let lens: Vec<usize> = cut(&entries, &small).iter().map(|r| r.len()).collect();
        assert_eq!(lens, vec![500, 500, 201]);
        let chunk = "x".repeat(900 * 1024);
        let big: Vec<Record> = (0..12).map(|n| record(&chunk, n)).collect();
        let entries: Vec<Entry> = big
            .iter()
            .enumerate()
            .map(|(i, r)| p.entry(i, r).unwrap())
            .collect();
        let calls = cut(&entries, &big);
        for c in &calls {
            let bytes: usize = entries[c.clone()]
                .iter()
                .map(|e| e.size(&big[e.index]))
                .sum();
            assert!(bytes <= MAX_CALL_BYTES, "{bytes}");
        }
        assert_eq!(calls.iter().map(|r| r.len()).sum::<usize>(), 12);
        assert_eq!(calls.len(), 3, "5 + 5 + 2 records of 900 KiB");
    }
}
