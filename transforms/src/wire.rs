//! The host's side of the batch encoding (crate `sluice-wire`, specified in
//! `wit/ENCODING.md`): core records in, core outcomes out.

use sluice_core::record::{Header, Record};
use sluice_core::transform::Outcome;
use sluice_wire::{OutcomeReader, RecordFields, WireRecord};

/// A core record as the encoder sees it. (A wrapper: the trait and the record type both
/// belong to other crates.)
struct Wire<'a>(&'a Record);

impl WireRecord for Wire<'_> {
    fn key(&self) -> Option<&[u8]> {
        self.0.key.as_deref()
    }
    fn value(&self) -> &[u8] {
        &self.0.value
    }
    fn timestamp(&self) -> Option<i64> {
        self.0.timestamp
    }
    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0
            .headers
            .iter()
            .map(|h| (h.name.as_str(), &h.value[..]))
    }
}

/// Encode `records` into `out` (cleared first; its capacity is reused across calls).
pub(crate) fn encode_batch(
    out: &mut Vec<u8>,
    records: &[Record],
    time_ms: i64,
) -> Result<(), String> {
    sluice_wire::encode_batch(out, time_ms, records.iter().map(Wire))
        .map_err(|e| format!("cannot encode the batch: {e}"))
}

/// An output record: the plugin's fields, the input's position.
fn output(fields: RecordFields, input: &Record) -> Record {
    Record {
        key: fields.key,
        value: fields.value,
        headers: fields
            .headers
            .into_iter()
            .map(|h| Header {
                name: h.name,
                value: h.value,
            })
            .collect(),
        timestamp: fields.timestamp,
        position: input.position.clone(),
    }
}

/// Decode the outcomes of `inputs`: exactly one per input. Output records carry their input's
/// position; `keep` clones the input (reference counts only).
pub(crate) fn decode_outcomes(buf: Vec<u8>, inputs: &[Record]) -> Result<Vec<Outcome>, String> {
    let mut reader = OutcomeReader::new(buf, inputs.len()).map_err(|e| e.to_string())?;
    let mut outcomes = Vec::with_capacity(inputs.len());
    for input in inputs {
        let outcome = reader
            .next_outcome(|fields| output(fields, input))
            .map_err(|e| e.to_string())?;
        outcomes.push(match outcome {
            sluice_wire::Outcome::Keep => Outcome::Ok(vec![input.clone()]),
            sluice_wire::Outcome::Ok(records) => Outcome::Ok(records),
            sluice_wire::Outcome::Dropped => Outcome::Dropped,
            sluice_wire::Outcome::Failed(reason) => Outcome::Failed(reason),
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_core::record::Position;
    use std::sync::Arc;

    #[test]
    fn keep_clones_input_with_position() {
        let input = Record::new("v", Position::int(Arc::from("p"), 7));
        let mut buf = Vec::new();
        sluice_wire::encode_outcomes(&mut buf, [sluice_wire::Outcome::<RecordFields>::Keep])
            .unwrap();
        let out = decode_outcomes(buf, std::slice::from_ref(&input)).unwrap();
        assert_eq!(out, vec![Outcome::Ok(vec![input])]);
    }

    /// What the host encodes, the plugin side reads back field for field; what a plugin
    /// returns comes back as core records at the input's position.
    #[test]
    fn records_cross_both_ways_with_every_field() {
        let mut input = Record::new("v", Position::int(Arc::from("p"), 3));
        input.key = Some(Bytes::from_static(b"k"));
        input.timestamp = Some(-4);
        input.headers.push(Header {
            name: "h".into(),
            value: Bytes::from_static(b"x"),
        });
        let mut batch = Vec::new();
        encode_batch(&mut batch, std::slice::from_ref(&input), 99).unwrap();
        let guest: Vec<RecordFields> = sluice_wire::BatchReader::new(batch)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(guest.len(), 1);
        assert_eq!(guest[0].key.as_deref(), Some(&b"k"[..]));
        let mut out = Vec::new();
        sluice_wire::encode_outcomes(&mut out, [sluice_wire::Outcome::Ok(guest)]).unwrap();
        let outcomes = decode_outcomes(out, std::slice::from_ref(&input)).unwrap();
        assert_eq!(outcomes, vec![Outcome::Ok(vec![input])]);
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
        buf.extend_from_slice(&[3, 9, 0, 0, 0, b'x']);
        let err = decode_outcomes(buf, &[input]).unwrap_err();
        assert!(err.contains("truncated at byte 5"), "{err}");
    }
}
