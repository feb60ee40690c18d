//! Kinesis records into Sluice records: KPL aggregates split into their user records, data
//! checked against `format`, partition key / sequence number / arrival time as headers.

use bytes::Bytes;
use sluice_core::{DeadRecord, Header, Offset, Partition, Position, Record};

use crate::config::{DataFormat, Decoding};
use crate::kpl;

/// Header with the record's partition key.
pub const PARTITION_KEY: &str = "kinesis.partition_key";
/// Header with the record's sequence number.
pub const SEQUENCE_NUMBER: &str = "kinesis.sequence_number";
/// Header with the record's arrival time (milliseconds since the Unix epoch).
pub const ARRIVAL_TIME: &str = "kinesis.arrival_time";
/// Header with the index of a user record inside a KPL aggregate.
pub const SUB_SEQUENCE: &str = "kinesis.sub_sequence_number";

/// One record as GetRecords returned it.
#[derive(Clone, Debug)]
pub struct Raw {
    /// Its data.
    pub data: Bytes,
    /// Its partition key.
    pub partition_key: String,
    /// Its sequence number.
    pub sequence_number: String,
    /// Its arrival time, milliseconds since the Unix epoch.
    pub arrival_ms: Option<i64>,
}

impl Raw {
    /// A record of a GetRecords answer or a SubscribeToShard event.
    pub fn from_sdk(r: &aws_sdk_kinesis::types::Record) -> Self {
        Raw {
            data: Bytes::copy_from_slice(r.data().as_ref()),
            partition_key: r.partition_key().unwrap_or_default().to_string(),
            sequence_number: r.sequence_number().to_string(),
            arrival_ms: r
                .approximate_arrival_timestamp()
                .and_then(|t| t.to_millis().ok()),
        }
    }
}

/// Why data does not match its decoding, if it does not.
pub fn decode_problem(decoding: Decoding, data: &[u8]) -> Option<String> {
    match decoding.format {
        DataFormat::Bytes => None,
        DataFormat::Text => std::str::from_utf8(data)
            .err()
            .map(|e| format!("data is not UTF-8 text: {e}")),
        DataFormat::Json => sluice_core::json::check_json(data, decoding.max_json_depth)
            .err()
            .map(|e| format!("data is not JSON: {e}")),
    }
}

/// Convert one Kinesis record into `records` (one, or one per user record of a KPL aggregate,
/// all at the record's position: they are emitted in one batch, so a checkpoint never covers
/// part of an aggregate) or `dead`.
pub fn convert(
    raw: Raw,
    partition: &Partition,
    decoding: Decoding,
    records: &mut Vec<Record>,
    dead: &mut Vec<DeadRecord>,
) {
    let position = Position {
        partition: partition.clone(),
        offset: Offset::Text(raw.sequence_number.clone()),
    };
    let make = |data: Bytes, key: &str, sub: Option<usize>| {
        let mut headers = vec![
            Header {
                name: PARTITION_KEY.into(),
                value: Bytes::from(key.to_string()),
            },
            Header {
                name: SEQUENCE_NUMBER.into(),
                value: Bytes::from(raw.sequence_number.clone()),
            },
        ];
        if let Some(ms) = raw.arrival_ms {
            headers.push(Header {
                name: ARRIVAL_TIME.into(),
                value: Bytes::from(ms.to_string()),
            });
        }
        if let Some(i) = sub {
            headers.push(Header {
                name: SUB_SEQUENCE.into(),
                value: Bytes::from(i.to_string()),
            });
        }
        Record {
            key: Some(Bytes::from(key.to_string())),
            value: data,
            headers,
            timestamp: raw.arrival_ms,
            position: position.clone(),
        }
    };
    let mut push = |record: Record| match decode_problem(decoding, &record.value) {
        None => records.push(record),
        Some(reason) => dead.push(DeadRecord {
            record,
            stage: "source".into(),
            reason,
        }),
    };
    match kpl::deaggregate(&raw.data) {
        None => push(make(raw.data.clone(), &raw.partition_key, None)),
        Some(Ok(subs)) => {
            for (i, sub) in subs.into_iter().enumerate() {
                push(make(sub.data, &sub.partition_key, Some(i)));
            }
        }
        Some(Err(e)) => dead.push(DeadRecord {
            record: make(raw.data.clone(), &raw.partition_key, None),
            stage: "source".into(),
            reason: format!("a KPL aggregate that cannot be decoded: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kpl::{SubRecord, aggregate};

    fn raw(data: Bytes) -> Raw {
        Raw {
            data,
            partition_key: "pk".into(),
            sequence_number: "4959".into(),
            arrival_ms: Some(1_700_000_000_000),
        }
    }

    #[test]
    fn headers_key_and_position() {
        let (mut out, mut dead) = (Vec::new(), Vec::new());
        let p: Partition = Arc::from("arn/shardId-0");
        convert(
            raw(Bytes::from_static(b"{\"a\":1}")),
            &p,
            DataFormat::Json.into(),
            &mut out,
            &mut dead,
        );
        assert!(dead.is_empty());
        let r = &out[0];
        assert_eq!(r.key.as_deref(), Some(&b"pk"[..]));
        assert_eq!(r.header(SEQUENCE_NUMBER).unwrap(), "4959");
        assert_eq!(r.header(ARRIVAL_TIME).unwrap(), "1700000000000");
        assert_eq!(r.timestamp, Some(1_700_000_000_000));
        assert_eq!(r.position.offset, Offset::Text("4959".into()));
    }

    #[test]
    fn bad_data_is_dead_lettered_not_dropped() {
        let (mut out, mut dead) = (Vec::new(), Vec::new());
        let p: Partition = Arc::from("arn/shardId-0");
        convert(
            raw(Bytes::from_static(b"{nope")),
            &p,
            DataFormat::Json.into(),
            &mut out,
            &mut dead,
        );
        assert!(out.is_empty());
        assert!(dead[0].reason.contains("not JSON"));
        convert(
            raw(Bytes::from_static(b"{nope")),
            &p,
            DataFormat::Text.into(),
            &mut out,
            &mut dead,
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn too_deep_json_is_dead_lettered_with_the_limit() {
        let (mut out, mut dead) = (Vec::new(), Vec::new());
        let p: Partition = Arc::from("arn/shardId-0");
        let deep = |n: usize| Bytes::from(format!("{}{}", "[".repeat(n), "]".repeat(n)));
        let decoding = Decoding {
            format: DataFormat::Json,
            max_json_depth: 3,
        };
        convert(raw(deep(3)), &p, decoding, &mut out, &mut dead);
        convert(raw(deep(4)), &p, decoding, &mut out, &mut dead);
        assert_eq!(out.len(), 1);
        assert_eq!(
            dead[0].reason,
            "data is not JSON: nesting deeper than 3 at byte 3"
        );
        // Invalid UTF-8 inside a string is not JSON either.
        convert(
            raw(Bytes::from_static(b"{\"a\":\"\xff\"}")),
            &p,
            decoding,
            &mut out,
            &mut dead,
        );
        assert_eq!(dead[1].reason, "data is not JSON: invalid UTF-8 at byte 6");
    }

    #[test]
    fn kpl_aggregates_become_their_user_records() {
        let subs: Vec<SubRecord> = (0..3)
            .map(|i| SubRecord {
                partition_key: format!("k{i}"),
                explicit_hash_key: None,
                data: Bytes::from(format!("{{\"i\":{i}}}")),
            })
            .collect();
        let (mut out, mut dead) = (Vec::new(), Vec::new());
        let p: Partition = Arc::from("arn/shardId-0");
        convert(
            raw(Bytes::from(aggregate(&subs))),
            &p,
            DataFormat::Json.into(),
            &mut out,
            &mut dead,
        );
        assert!(dead.is_empty());
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].value, "{\"i\":2}");
        assert_eq!(out[2].key.as_deref(), Some(&b"k2"[..]));
        assert_eq!(out[2].header(SUB_SEQUENCE).unwrap(), "2");
        assert!(out.iter().all(|r| r.position == out[0].position));
    }
}
