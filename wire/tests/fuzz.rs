//! Fuzz harnesses (bolero) of the encoding, host side (`encode_batch`, `OutcomeReader`) and
//! guest side (`BatchReader`, `encode_outcomes`; the plugin SDK calls exactly these). Each runs
//! about 1 s under `cargo test`; `scripts/fuzz.sh wire <harness> <seconds>` runs one longer.
//! Properties: decode(encode(x)) == x both ways, and any bytes decode to a value or an error,
//! never a panic, and what decodes encodes again to something that decodes the same.

use bytes::Bytes;
use sluice_wire::{
    BatchReader, DecodeError, Header, Outcome, OutcomeReader, RecordFields, encode_batch,
    encode_outcomes,
};

/// A record as bolero generates it: key, value, headers, timestamp.
type RawRecord = (
    Option<Vec<u8>>,
    Vec<u8>,
    Vec<(String, Vec<u8>)>,
    Option<i64>,
);

fn record((key, value, headers, timestamp): &RawRecord) -> RecordFields {
    RecordFields {
        key: key.clone().map(Bytes::from),
        value: Bytes::from(value.clone()),
        headers: headers
            .iter()
            .map(|(name, value)| Header {
                name: name.clone(),
                value: Bytes::from(value.clone()),
            })
            .collect(),
        timestamp: *timestamp,
    }
}

/// An outcome from a tag (mod 4), records and a reason.
fn outcome((tag, records, reason): &(u8, Vec<RawRecord>, String)) -> Outcome<RecordFields> {
    match tag % 4 {
        0 => Outcome::Keep,
        1 => Outcome::Ok(records.iter().map(record).collect()),
        2 => Outcome::Dropped,
        _ => Outcome::Failed(reason.clone()),
    }
}

fn decode_batch(buf: &[u8]) -> Result<(i64, Vec<RecordFields>), DecodeError> {
    let reader = BatchReader::new(Bytes::copy_from_slice(buf))?;
    let time_ms = reader.time_ms();
    Ok((time_ms, reader.collect::<Result<_, _>>()?))
}

fn decode_outcomes(buf: &[u8], expected: usize) -> Result<Vec<Outcome<RecordFields>>, DecodeError> {
    let mut reader = OutcomeReader::new(Bytes::copy_from_slice(buf), expected)?;
    (0..expected)
        .map(|_| reader.next_outcome(|fields| fields))
        .collect()
}

#[test]
fn fuzz_batch_round_trip() {
    bolero::check!()
        .with_type::<(i64, Vec<RawRecord>)>()
        .for_each(|(time_ms, raw)| {
            let records: Vec<RecordFields> = raw.iter().map(record).collect();
            let mut buf = Vec::new();
            encode_batch(&mut buf, *time_ms, &records).expect("encode");
            assert_eq!(decode_batch(&buf), Ok((*time_ms, records)));
        });
}

#[test]
fn fuzz_outcomes_round_trip() {
    bolero::check!()
        .with_type::<Vec<(u8, Vec<RawRecord>, String)>>()
        .for_each(|raw| {
            let outcomes: Vec<Outcome<RecordFields>> = raw.iter().map(outcome).collect();
            let mut buf = Vec::new();
            encode_outcomes(&mut buf, outcomes.iter().cloned()).expect("encode");
            assert_eq!(decode_outcomes(&buf, outcomes.len()), Ok(outcomes));
        });
}

/// Any bytes, read as a batch and as outcomes (the first byte picks how many are expected).
#[test]
fn fuzz_decode_any_bytes() {
    bolero::check!().for_each(|input: &[u8]| {
        if let Ok((time_ms, records)) = decode_batch(input) {
            let mut again = Vec::new();
            encode_batch(&mut again, time_ms, &records).expect("encode");
            assert!(again.len() <= input.len());
            assert_eq!(decode_batch(&again), Ok((time_ms, records)));
        }
        let expected = usize::from(input.first().copied().unwrap_or(0) % 8);
        if let Ok(outcomes) = decode_outcomes(input, expected) {
            let mut again = Vec::new();
            encode_outcomes(&mut again, outcomes.iter().cloned()).expect("encode");
            assert_eq!(decode_outcomes(&again, expected), Ok(outcomes));
        }
    });
}
