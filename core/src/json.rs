//! The one JSON check of Sluice: is a value JSON as RFC 8259 defines it, nested no deeper than
//! a limit? Sources that take JSON (file, stdin, Kafka, Kinesis) dead-letter what fails it, and
//! sinks that only need to know a value is JSON (HTTP, OpenSearch, S3) ask it instead of
//! parsing.
//!
//! [`check_json`] is a validating scanner, not a parser: it builds nothing, needs one byte of
//! stack per open array or object (an explicit stack, no recursion, so a 100,000-deep document
//! is refused at the limit instead of overflowing anything), and reads each byte once after
//! one UTF-8 pass over the whole input. It enforces:
//!
//! - UTF-8 everywhere (RFC 8259 §8.1), inside strings too; a byte order mark is refused
//!   ("MUST NOT add a byte order mark", and a parser may refuse it: a BOM in the middle of a
//!   stream of lines is data corruption, not a header);
//! - strings: only the escapes of §7, `\u` escapes forming whole characters (a surrogate pair,
//!   never a lone surrogate, which no UTF-8 text can hold), no raw control character;
//! - numbers by the grammar of §6 (no leading zero, no `+`, no `.5`, no `NaN`); a number out of
//!   the range of a 64-bit float, like `1e999`, is JSON (§6 leaves range to implementations)
//!   and is accepted — a consumer that parses numbers as `f64` may still refuse it;
//! - nesting of arrays and objects at most `max_depth` deep;
//! - exactly one value, with only JSON whitespace (space, tab, CR, LF) around it.
//!
//! Errors say what is wrong and at which byte of the input ([`JsonError`]).

use std::fmt;

/// The default depth limit of the sources' `max_json_depth`: 127. serde_json (and so every
/// Sluice plugin built with the SDK, and the sinks that parse values) refuses a document
/// nested 128 deep, so whatever passes the check at 127 also parses downstream.
pub const DEFAULT_MAX_DEPTH: usize = 127;

/// `DEFAULT_MAX_DEPTH`, for `#[serde(default = "sluice_core::json::default_max_depth")]`.
pub fn default_max_depth() -> usize {
    DEFAULT_MAX_DEPTH
}

/// A connector's `max_json_depth` option, checked: at least 1 (0 would refuse every array and
/// object).
pub fn max_depth_option(max_json_depth: usize) -> Result<usize, crate::ConnectorError> {
    if max_json_depth == 0 {
        return Err(
            crate::ConnectorError::config("max_json_depth must be at least 1").at("max_json_depth"),
        );
    }
    Ok(max_json_depth)
}

/// Why a value is not JSON, and where: `at` is the offset of the offending byte (the input's
/// length when it ends too early).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at byte {at}")]
pub struct JsonError {
    /// What is wrong.
    pub problem: JsonProblem,
    /// The byte offset in the input.
    pub at: usize,
}

/// What is wrong with a value that is not JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonProblem {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// A UTF-8 byte order mark starts the input.
    ByteOrderMark,
    /// Nothing but whitespace.
    Empty,
    /// The input ends inside a value.
    UnexpectedEnd,
    /// A character that cannot stand here; `expected` says what could.
    Unexpected {
        /// The character found.
        found: char,
        /// What the grammar allows here.
        expected: &'static str,
    },
    /// A raw control character (U+0000 to U+001F) inside a string.
    ControlCharacter(u8),
    /// A backslash followed by something that is not an escape of RFC 8259.
    InvalidEscape,
    /// A `\u` escape of half a surrogate pair without its other half.
    LoneSurrogate,
    /// A number not following the grammar; says what is missing.
    InvalidNumber(&'static str),
    /// Arrays and objects nested deeper than the limit.
    TooDeep(usize),
    /// Something other than whitespace after the value.
    TrailingData,
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonProblem::InvalidUtf8 => f.write_str("invalid UTF-8"),
            JsonProblem::ByteOrderMark => f.write_str("a byte order mark (not allowed in JSON)"),
            JsonProblem::Empty => f.write_str("no value"),
            JsonProblem::UnexpectedEnd => f.write_str("unexpected end of input"),
            JsonProblem::Unexpected { found, expected } => {
                write!(f, "unexpected {found:?}, expected {expected},")
            }
            JsonProblem::ControlCharacter(b) => {
                write!(f, "control character U+{b:04X} in a string (escape it)")
            }
            JsonProblem::InvalidEscape => f.write_str("invalid escape in a string"),
            JsonProblem::LoneSurrogate => f.write_str("lone surrogate \\u escape in a string"),
            JsonProblem::InvalidNumber(what) => write!(f, "invalid number: {what}"),
            JsonProblem::TooDeep(max) => write!(f, "nesting deeper than {max}"),
            JsonProblem::TrailingData => f.write_str("more than one value (trailing data)"),
        }
    }
}

/// Whether `input` is one JSON value (RFC 8259) whose arrays and objects nest at most
/// `max_depth` deep; see the [module documentation](self) for exactly what is checked.
/// A `max_depth` of 0 allows only scalars.
pub fn check_json(input: &[u8], max_depth: usize) -> Result<(), JsonError> {
    let text = std::str::from_utf8(input).map_err(|e| JsonError {
        problem: JsonProblem::InvalidUtf8,
        at: e.valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        return Err(JsonError {
            problem: JsonProblem::ByteOrderMark,
            at: 0,
        });
    }
    Scanner {
        text,
        bytes: input,
        pos: 0,
        open: Vec::new(),
        max_depth,
    }
    .run()
}

/// What the scanner waits for next (after whitespace).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    /// A value (the top level, after `:`, after `,` in an array).
    Value,
    /// A value or `]` (right after `[`).
    ValueOrEndArray,
    /// A key or `}` (right after `{`).
    KeyOrEndObject,
    /// A key (after `,` in an object).
    Key,
    /// `:` after a key.
    Colon,
    /// `,` or the end of the innermost array or object.
    CommaOrEnd,
    /// Nothing: the value is complete.
    Done,
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// The open arrays (`b'['`) and objects (`b'{'`), innermost last.
    open: Vec<u8>,
    max_depth: usize,
}

impl Scanner<'_> {
    fn run(mut self) -> Result<(), JsonError> {
        let mut next = Next::Value;
        loop {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            let Some(&b) = self.bytes.get(self.pos) else {
                return match next {
                    Next::Done => Ok(()),
                    Next::Value if self.open.is_empty() => Err(self.error(JsonProblem::Empty)),
                    _ => Err(self.error(JsonProblem::UnexpectedEnd)),
                };
            };
            next = match next {
                Next::Value => self.value(b)?,
                Next::ValueOrEndArray if b == b']' => self.close(),
                Next::ValueOrEndArray => self.value(b)?,
                Next::KeyOrEndObject if b == b'}' => self.close(),
                Next::KeyOrEndObject | Next::Key if b == b'"' => {
                    self.string()?;
                    Next::Colon
                }
                Next::KeyOrEndObject => return Err(self.unexpected("a string key or '}'")),
                Next::Key => return Err(self.unexpected("a string key")),
                Next::Colon if b == b':' => {
                    self.pos += 1;
                    Next::Value
                }
                Next::Colon => return Err(self.unexpected("':'")),
                Next::CommaOrEnd => match (b, self.open.last()) {
                    (b',', Some(b'[')) => {
                        self.pos += 1;
                        Next::Value
                    }
                    (b',', _) => {
                        self.pos += 1;
                        Next::Key
                    }
                    (b']', Some(b'[')) | (b'}', Some(b'{')) => self.close(),
                    (_, Some(b'[')) => return Err(self.unexpected("',' or ']'")),
                    _ => return Err(self.unexpected("',' or '}'")),
                },
                Next::Done => return Err(self.error(JsonProblem::TrailingData)),
            };
        }
    }

    /// A value starting with `b` at `pos`; returns what may follow it.
    fn value(&mut self, b: u8) -> Result<Next, JsonError> {
        match b {
            b'[' | b'{' => {
                if self.open.len() >= self.max_depth {
                    return Err(self.error(JsonProblem::TooDeep(self.max_depth)));
                }
                self.open.push(b);
                self.pos += 1;
                return Ok(if b == b'[' {
                    Next::ValueOrEndArray
                } else {
                    Next::KeyOrEndObject
                });
            }
            b'"' => self.string()?,
            b'-' | b'0'..=b'9' => self.number()?,
            b't' => self.literal("true")?,
            b'f' => self.literal("false")?,
            b'n' => self.literal("null")?,
            _ => return Err(self.unexpected("a value")),
        }
        Ok(self.after_value())
    }

    fn after_value(&self) -> Next {
        if self.open.is_empty() {
            Next::Done
        } else {
            Next::CommaOrEnd
        }
    }

    /// The `]` or `}` at `pos` closes the innermost array or object.
    fn close(&mut self) -> Next {
        self.open.pop();
        self.pos += 1;
        self.after_value()
    }

    fn literal(&mut self, word: &'static str) -> Result<(), JsonError> {
        for &w in word.as_bytes() {
            match self.bytes.get(self.pos) {
                Some(&b) if b == w => self.pos += 1,
                Some(_) => return Err(self.unexpected(word)),
                None => return Err(self.error(JsonProblem::UnexpectedEnd)),
            }
        }
        Ok(())
    }

    /// The string whose opening quote is at `pos`; leaves `pos` after its closing quote.
    fn string(&mut self) -> Result<(), JsonError> {
        self.pos += 1;
        loop {
            // Plain characters (the input is known to be UTF-8: multi-byte characters are
            // whole, and none of their bytes is below 0x80).
            let rest = &self.bytes[self.pos..];
            let plain = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(rest.len());
            self.pos += plain;
            match self.bytes.get(self.pos) {
                None => return Err(self.error(JsonProblem::UnexpectedEnd)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => self.escape()?,
                Some(&b) => return Err(self.error(JsonProblem::ControlCharacter(b))),
            }
        }
    }

    /// The escape whose backslash is at `pos`.
    fn escape(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        match self.bytes.get(self.pos + 1) {
            None => Err(self.error_at(JsonProblem::UnexpectedEnd, self.bytes.len())),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = self.hex4(self.pos + 2)?;
                self.pos += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate: a low one must follow at once.
                        let low = if self.bytes[self.pos..].starts_with(b"\\u") {
                            Some(self.hex4(self.pos + 2)?)
                        } else {
                            None
                        };
                        match low {
                            Some(0xDC00..=0xDFFF) => {
                                self.pos += 6;
                                Ok(())
                            }
                            _ => Err(self.error_at(JsonProblem::LoneSurrogate, start)),
                        }
                    }
                    0xDC00..=0xDFFF => Err(self.error_at(JsonProblem::LoneSurrogate, start)),
                    _ => Ok(()),
                }
            }
            Some(_) => Err(self.error_at(JsonProblem::InvalidEscape, start)),
        }
    }

    /// The four hex digits at `at`.
    fn hex4(&self, at: usize) -> Result<u16, JsonError> {
        let mut unit = 0u16;
        for i in at..at + 4 {
            let digit = match self.bytes.get(i) {
                None => return Err(self.error_at(JsonProblem::UnexpectedEnd, self.bytes.len())),
                Some(&b) => (b as char).to_digit(16),
            };
            match digit {
                Some(d) => unit = (unit << 4) | d as u16,
                None => return Err(self.error_at(JsonProblem::InvalidEscape, i)),
            }
        }
        Ok(unit)
    }

    /// The number starting at `pos`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<(), JsonError> {
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
                    return Err(self.error(JsonProblem::InvalidNumber("a leading zero")));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.number_error("a digit")),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !self.digits() {
                return Err(self.number_error("a digit after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !self.digits() {
                return Err(self.number_error("a digit in the exponent"));
            }
        }
        Ok(())
    }

    /// Skip digits; whether there was at least one.
    fn digits(&mut self) -> bool {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn number_error(&self, expected: &'static str) -> JsonError {
        if self.pos == self.bytes.len() {
            self.error(JsonProblem::UnexpectedEnd)
        } else {
            self.error(JsonProblem::InvalidNumber(expected))
        }
    }

    fn unexpected(&self, expected: &'static str) -> JsonError {
        let found = self
            .text
            .get(self.pos..)
            .and_then(|s| s.chars().next())
            .unwrap_or('\0');
        self.error(JsonProblem::Unexpected { found, expected })
    }

    fn error(&self, problem: JsonProblem) -> JsonError {
        self.error_at(problem, self.pos)
    }

    fn error_at(&self, problem: JsonProblem, at: usize) -> JsonError {
        JsonError { problem, at }
    }
}

#[cfg(test)]
mod tests;
