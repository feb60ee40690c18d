//! The record a plugin sees, and what it returns for it.

use std::fmt::Display;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_wire::{RecordFields, WireRecord};

/// One header of a record: a name and opaque bytes. (The encoding's own type: headers cross
/// the boundary without conversion.)
pub use sluice_wire::Header;

/// A record as a plugin sees it.
///
/// The fields borrow from the batch buffer the host handed over (`Bytes` slices), so reading a
/// record costs no copy. Assign a new value to change it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Optional key.
    pub key: Option<Bytes>,
    /// The payload; most sources carry one JSON document.
    pub value: Bytes,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Event time in milliseconds since the Unix epoch, when the source knows it.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with only a value.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self {
            value: value.into(),
            ..Self::default()
        }
    }

    /// A record whose value is `value` serialized as JSON.
    pub fn from_json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self::new(serde_json::to_vec(value)?))
    }

    /// The value parsed as JSON into `T` (a struct, or `serde_json::Value`, or a `Map`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.value)
    }

    /// Replace the value with `value` serialized as JSON.
    pub fn set_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        self.value = Bytes::from(serde_json::to_vec(value)?);
        Ok(())
    }

    /// The value as UTF-8 text.
    pub fn value_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.value)
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| &h.value)
    }

    /// Set a header, replacing the first one with the same name or appending a new one.
    pub fn set_header(&mut self, name: &str, value: impl Into<Bytes>) {
        let value = value.into();
        match self.headers.iter_mut().find(|h| h.name == name) {
            Some(h) => h.value = value,
            None => self.headers.push(Header {
                name: name.to_string(),
                value,
            }),
        }
    }

    /// Remove every header with this name.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|h| h.name != name);
    }
}

/// A decoded record: the fields move over, nothing is copied.
impl From<RecordFields> for Record {
    fn from(f: RecordFields) -> Self {
        Self {
            key: f.key,
            value: f.value,
            headers: f.headers,
            timestamp: f.timestamp,
        }
    }
}

impl WireRecord for Record {
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }
    fn value(&self) -> &[u8] {
        &self.value
    }
    fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }
    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|h| (h.name.as_str(), &h.value[..]))
    }
}

/// What became of one input record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Pass the input record on unchanged. Cheapest: nothing is copied back to the host.
    Keep,
    /// Zero, one or many output records, in place of the input.
    Ok(Vec<Record>),
    /// Drop the record on purpose (filtered out).
    Dropped,
    /// The record failed; the host sends it to the dead-letter sink with this reason.
    Failed(String),
}

impl Outcome {
    /// One output record in place of the input.
    pub fn one(record: Record) -> Self {
        Outcome::Ok(vec![record])
    }

    /// A failure with this reason.
    pub fn failed(reason: impl Display) -> Self {
        Outcome::Failed(reason.to_string())
    }

    /// The same outcome in the encoding's terms (moves, no copies).
    pub(crate) fn into_wire(self) -> sluice_wire::Outcome<Record> {
        match self {
            Outcome::Keep => sluice_wire::Outcome::Keep,
            Outcome::Ok(records) => sluice_wire::Outcome::Ok(records),
            Outcome::Dropped => sluice_wire::Outcome::Dropped,
            Outcome::Failed(reason) => sluice_wire::Outcome::Failed(reason),
        }
    }
}

/// What a transform function may return: an [`Outcome`], or a `Result` whose error becomes
/// [`Outcome::Failed`] (so `?` works inside a transform).
pub trait IntoOutcome {
    /// Convert into an outcome.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for Outcome {
    fn into_outcome(self) -> Outcome {
        self
    }
}

impl<E: Display> IntoOutcome for Result<Outcome, E> {
    fn into_outcome(self) -> Outcome {
        self.unwrap_or_else(Outcome::failed)
    }
}
