//! The batch encoding that carries records from the Sluice host into a transform plugin and
//! outcomes back: one buffer each way per `process` call. The host (`sluice-transforms`)
//! encodes batches and decodes outcomes; the guest SDK (`sluice-plugin-sdk`) does the
//! opposite. Both use this crate, so the two halves cannot drift apart.
//!
//! - [`encode_batch`] / [`BatchReader`]: host → plugin.
//! - [`encode_outcomes`] / [`OutcomeReader`]: plugin → host.
//!
//! Each side keeps its own record type and implements [`WireRecord`] for it; decoding hands
//! out [`RecordFields`] sliced from the buffer without copying. Decoding never panics: bad
//! input is a [`DecodeError`].
//!
//! The format itself, below, is `transforms/wit/ENCODING.md` (included here verbatim; the tag
//! table is checked against [`Tag`] by this crate's tests).
//!
#![doc = include_str!("../../transforms/wit/ENCODING.md")]
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

mod decode;
mod encode;
mod error;

use alloc::string::String;
use alloc::vec::Vec;

pub use bytes::Bytes;
pub use decode::{BatchReader, OutcomeReader};
pub use encode::{encode_batch, encode_outcomes};
pub use error::{DecodeError, EncodeError};

/// `record` flag: a key follows.
const FLAG_KEY: u8 = 1;
/// `record` flag: a timestamp follows.
const FLAG_TIMESTAMP: u8 = 2;

/// The tag byte that starts each outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// The input record, unchanged; no payload.
    Keep = 0,
    /// Zero or more records in place of the input.
    Ok = 1,
    /// Dropped on purpose; no payload.
    Dropped = 2,
    /// Failed, with a reason; the host dead-letters the input.
    Failed = 3,
}

impl Tag {
    /// Every tag, in tag order.
    pub const ALL: [Tag; 4] = [Tag::Keep, Tag::Ok, Tag::Dropped, Tag::Failed];

    /// The tag's name in `ENCODING.md`.
    pub fn name(self) -> &'static str {
        match self {
            Tag::Keep => "keep",
            Tag::Ok => "ok",
            Tag::Dropped => "dropped",
            Tag::Failed => "failed",
        }
    }

    fn from_u8(tag: u8) -> Option<Tag> {
        Tag::ALL.get(usize::from(tag)).copied()
    }
}

/// One record header: a name and opaque bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: Bytes,
}

/// The fields of a decoded record. Key, value and header values are slices of the decoded
/// buffer (`Bytes`), not copies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordFields {
    /// Optional key.
    pub key: Option<Bytes>,
    /// The payload.
    pub value: Bytes,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
}

/// A record the encoder can write. Host and guest implement it for their own record types.
pub trait WireRecord {
    /// Optional key.
    fn key(&self) -> Option<&[u8]>;
    /// The payload.
    fn value(&self) -> &[u8];
    /// Event time in milliseconds since the Unix epoch.
    fn timestamp(&self) -> Option<i64>;
    /// Headers as (name, value), in order.
    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])>;
}

impl WireRecord for RecordFields {
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

impl<T: WireRecord + ?Sized> WireRecord for &T {
    fn key(&self) -> Option<&[u8]> {
        (**self).key()
    }
    fn value(&self) -> &[u8] {
        (**self).value()
    }
    fn timestamp(&self) -> Option<i64> {
        (**self).timestamp()
    }
    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        (**self).headers()
    }
}

/// What became of one input record, as it crosses the boundary. `R` is the record type of the
/// side at hand: a [`WireRecord`] when encoding, whatever the `make` closure of
/// [`OutcomeReader::next_outcome`] builds when decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<R> {
    /// Pass the input on unchanged: nothing is copied back.
    Keep,
    /// Zero, one or many records in place of the input.
    Ok(Vec<R>),
    /// Dropped on purpose.
    Dropped,
    /// Failed, with a reason (dead-lettered by the host).
    Failed(String),
}
