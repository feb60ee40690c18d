//! What goes wrong when encoding or decoding.

use core::fmt;

/// A buffer that breaks the encoding. `at` fields are byte offsets into the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ends inside a field that starts at `at`.
    Truncated {
        /// Offset of the field that does not fit.
        at: usize,
    },
    /// Bytes remain after the last record or outcome.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The outcome count differs from the number of input records.
    OutcomeCount {
        /// The count in the buffer.
        found: usize,
        /// The number of input records.
        expected: usize,
    },
    /// An outcome tag that [`Tag`](crate::Tag) does not know.
    UnknownTag {
        /// The tag byte.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A header name or failure reason that is not UTF-8.
    NotUtf8 {
        /// Offset of the string's length prefix.
        at: usize,
    },
    /// [`OutcomeReader::next_outcome`](crate::OutcomeReader::next_outcome) was called after
    /// the last outcome: a bug in the caller, reported instead of reading past the count.
    NoOutcomeLeft,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { at } => write!(f, "truncated at byte {at}"),
            DecodeError::TrailingBytes { count } => {
                write!(f, "{count} trailing bytes after the last entry")
            }
            DecodeError::OutcomeCount { found, expected } => {
                write!(f, "{found} outcomes for {expected} input records")
            }
            DecodeError::UnknownTag { tag, at } => {
                write!(f, "unknown outcome tag {tag} at byte {at}")
            }
            DecodeError::NotUtf8 { at } => write!(f, "the string at byte {at} is not UTF-8"),
            DecodeError::NoOutcomeLeft => f.write_str("read past the last outcome"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Something the encoding cannot represent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A length or count does not fit the format's `u32`.
    TooLong {
        /// What was too long (`"value"`, `"record count"`, ...).
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong { what, len } => {
                write!(f, "{what} of {len} does not fit the encoding's u32")
            }
        }
    }
}

impl core::error::Error for EncodeError {}
