//! Property tests of the encoding: whatever one side writes, the other reads back unchanged;
//! whatever bytes arrive, decoding returns an error instead of panicking.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_wire::{
    BatchReader, DecodeError, Header, Outcome, OutcomeReader, RecordFields, Tag, encode_batch,
    encode_outcomes,
};

fn record() -> impl Strategy<Value = RecordFields> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(
            ("\\PC{0,8}", proptest::collection::vec(any::<u8>(), 0..8)),
            0..4,
        ),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(key, value, headers, timestamp)| RecordFields {
            key: key.map(Bytes::from),
            value: Bytes::from(value),
            headers: headers
                .into_iter()
                .map(|(name, value)| Header {
                    name,
                    value: Bytes::from(value),
                })
                .collect(),
            timestamp,
        })
}

fn outcome() -> impl Strategy<Value = Outcome<RecordFields>> {
    prop_oneof![
        Just(Outcome::Keep),
        proptest::collection::vec(record(), 0..4).prop_map(Outcome::Ok),
        Just(Outcome::Dropped),
        "\\PC{0,16}".prop_map(Outcome::Failed),
    ]
}

fn decode_batch(buf: Vec<u8>) -> Result<(i64, Vec<RecordFields>), DecodeError> {
    let reader = BatchReader::new(buf)?;
    let time_ms = reader.time_ms();
    Ok((time_ms, reader.collect::<Result<_, _>>()?))
}

fn decode_outcomes(
    buf: Vec<u8>,
    expected: usize,
) -> Result<Vec<Outcome<RecordFields>>, DecodeError> {
    let mut reader = OutcomeReader::new(buf, expected)?;
    (0..expected)
        .map(|_| reader.next_outcome(|fields| fields))
        .collect()
}

fn encoded_batch(records: &[RecordFields], time_ms: i64) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_batch(&mut buf, time_ms, records).unwrap();
    buf
}

fn encoded_outcomes(outcomes: &[Outcome<RecordFields>]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_outcomes(&mut buf, outcomes.iter().cloned()).unwrap();
    buf
}

proptest! {
    #[test]
    fn batches_round_trip(records in proptest::collection::vec(record(), 0..8), time_ms: i64) {
        let buf = encoded_batch(&records, time_ms);
        prop_assert_eq!(decode_batch(buf), Ok((time_ms, records)));
    }

    #[test]
    fn outcomes_round_trip(outcomes in proptest::collection::vec(outcome(), 0..8)) {
        let buf = encoded_outcomes(&outcomes);
        prop_assert_eq!(decode_outcomes(buf, outcomes.len()), Ok(outcomes));
    }

    #[test]
    fn truncated_batches_are_rejected(
        records in proptest::collection::vec(record(), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let buf = encoded_batch(&records, 7);
        let len = cut.index(buf.len());
        let result = decode_batch(buf[..len].to_vec());
        prop_assert!(
            matches!(result, Err(DecodeError::Truncated { .. })),
            "{len} of {} bytes: {result:?}", buf.len()
        );
    }

    #[test]
    fn truncated_outcomes_are_rejected(
        outcomes in proptest::collection::vec(outcome(), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let buf = encoded_outcomes(&outcomes);
        let len = cut.index(buf.len());
        let result = decode_outcomes(buf[..len].to_vec(), outcomes.len());
        prop_assert!(
            matches!(result, Err(DecodeError::Truncated { .. })),
            "{len} of {} bytes: {result:?}", buf.len()
        );
    }

    #[test]
    fn trailing_bytes_are_rejected(
        records in proptest::collection::vec(record(), 0..4),
        outcomes in proptest::collection::vec(outcome(), 0..4),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let mut batch = encoded_batch(&records, 0);
        batch.extend_from_slice(&extra);
        prop_assert_eq!(
            decode_batch(batch),
            Err(DecodeError::TrailingBytes { count: extra.len() })
        );
        let mut out = encoded_outcomes(&outcomes);
        out.extend_from_slice(&extra);
        prop_assert_eq!(
            decode_outcomes(out, outcomes.len()),
            Err(DecodeError::TrailingBytes { count: extra.len() })
        );
    }

    #[test]
    fn wrong_outcome_counts_are_rejected(
        outcomes in proptest::collection::vec(outcome(), 0..6),
        expected in 0usize..8,
    ) {
        prop_assume!(expected != outcomes.len());
        let buf = encoded_outcomes(&outcomes);
        prop_assert_eq!(
            decode_outcomes(buf, expected).err(),
            Some(DecodeError::OutcomeCount { found: outcomes.len(), expected })
        );
    }

    /// Garbage, and garbage behind a plausible header, decodes to an error or to something,
    /// never to a panic or an allocation sized by a hostile count.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..96),
        expected in 0usize..4,
    ) {
        let _ = decode_batch(bytes.clone());
        let _ = decode_outcomes(bytes.clone(), expected);
        let mut with_count = (expected as u32).to_le_bytes().to_vec();
        with_count.extend_from_slice(&bytes);
        let _ = decode_outcomes(with_count, expected);
    }
}

#[test]
fn keep_is_one_byte_per_outcome() {
    let buf = encoded_outcomes(&[Outcome::Keep, Outcome::Dropped]);
    assert_eq!(buf, [2, 0, 0, 0, Tag::Keep as u8, Tag::Dropped as u8]);
}

#[test]
fn unknown_tags_are_rejected_with_their_offset() {
    let buf = vec![1, 0, 0, 0, 9];
    assert_eq!(
        decode_outcomes(buf, 1),
        Err(DecodeError::UnknownTag { tag: 9, at: 4 })
    );
}

#[test]
fn huge_counts_fail_without_allocating_for_them() {
    let mut batch = u32::MAX.to_le_bytes().to_vec();
    batch.extend_from_slice(&0i64.to_le_bytes());
    let reader = BatchReader::new(batch).unwrap();
    assert_eq!(reader.size_hint().1, Some(1));
    let mut out = 1u32.to_le_bytes().to_vec();
    out.push(Tag::Ok as u8);
    out.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_outcomes(out, 1),
        Err(DecodeError::Truncated { at: 9 })
    ));
}

#[test]
fn reading_past_the_last_outcome_is_an_error() {
    let mut reader = OutcomeReader::new(encoded_outcomes(&[Outcome::Keep]), 1).unwrap();
    assert_eq!(reader.next_outcome(|f| f), Ok(Outcome::Keep));
    assert_eq!(reader.next_outcome(|f| f), Err(DecodeError::NoOutcomeLeft));
}

/// ENCODING.md is the specification; its tag table must say what the code does.
#[test]
fn encoding_md_tag_table_matches_the_code() {
    let doc = include_str!("../../transforms/wit/ENCODING.md");
    let rows: Vec<(u8, String)> = doc
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let tag = cells.next()?.parse().ok()?;
            let name = cells.next()?.split('`').nth(1)?.to_string();
            Some((tag, name))
        })
        .collect();
    let code: Vec<(u8, String)> = Tag::ALL
        .iter()
        .map(|&t| (t as u8, t.name().to_string()))
        .collect();
    assert_eq!(rows, code);
}
