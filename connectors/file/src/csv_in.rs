//! Reading CSV (`format = "csv"`): rows split with `csv_core`'s incremental parser, so a quoted
//! field may hold delimiters, quotes (`""`) and newlines, and a row is only taken once its end
//! has been read; each row becomes a JSON object of its columns, in column order.
//!
//! Rows end at a newline outside quotes (a CR before it is dropped), blank lines are skipped,
//! and a row's position is the byte offset just past its newline, as for JSON lines: a restart
//! resumes after the last committed row. The columns come from `columns` or from the first row
//! (the header), which a source resuming in the middle of a file reads again from byte 0
//! ([`CsvRead::header_from`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use sluice_core::{Batch, ConnectorError, DeadRecord, Position, Record};

use crate::config::{CsvInput, CsvType};
use crate::lines::{LineRules, TOO_LONG_HEAD};

/// Checks a CSV delimiter: one ASCII character that cannot be part of the quoting or the line
/// structure.
pub(crate) fn delimiter(c: char) -> Result<u8, ConnectorError> {
    match u8::try_from(c) {
        Ok(b) if b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r') => Ok(b),
        _ => Err(ConnectorError::config(format!(
            "delimiter {c:?} must be one ASCII character other than a quote, CR or newline"
        ))
        .at("csv.delimiter")),
    }
}

/// A source's CSV settings and the columns it knows.
#[derive(Clone, Debug)]
pub(crate) struct CsvRead {
    delimiter: u8,
    header: bool,
    types: BTreeMap<String, CsvType>,
    /// The column names with their types; `None` while the header row is still to be read.
    columns: Option<Arc<[(String, CsvType)]>>,
}

impl CsvRead {
    /// Check the options (errors name their field under `csv`).
    pub(crate) fn new(options: &CsvInput) -> Result<Self, ConnectorError> {
        let delimiter = delimiter(options.delimiter)?;
        let mut read = Self {
            delimiter,
            header: options.header,
            types: options.types.clone(),
            columns: None,
        };
        match (options.header, options.columns.is_empty()) {
            (true, false) => {
                return Err(ConnectorError::config(
                    "with `header = true` the columns are the first row's; set `header = false` to name them in `columns`",
                )
                .at("csv.columns"));
            }
            (false, true) => {
                return Err(ConnectorError::config(
                    "with `header = false` the columns must be named: `columns = [\"a\", \"b\"]`",
                )
                .at("csv.columns"));
            }
            (false, false) => {
                read.set_columns(options.columns.clone())
                    .map_err(|e| ConnectorError::config(e).at("csv.columns"))?;
            }
            (true, true) => {}
        }
        Ok(read)
    }

    /// Name the columns; refused when a name repeats or a typed column is missing.
    fn set_columns(&mut self, names: Vec<String>) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(format!("column {name:?} appears twice"));
            }
        }
        if let Some(missing) = self.types.keys().find(|t| !seen.contains(t.as_str())) {
            return Err(format!(
                "`types` names column {missing:?}, which is not one of the columns {names:?}"
            ));
        }
        let typed = names
            .into_iter()
            .map(|n| {
                let t = self.types.get(&n).copied().unwrap_or_default();
                (n, t)
            })
            .collect();
        self.columns = Some(typed);
        Ok(())
    }

    /// The field separator.
    pub(crate) fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Forget the header, for a new file read from byte 0.
    pub(crate) fn restart(&mut self) {
        if self.header {
            self.columns = None;
        }
    }

    /// True while the header row is still to be read.
    pub(crate) fn needs_header(&self) -> bool {
        self.columns.is_none()
    }

    /// Take the header from `head`, the first bytes of the input (`at_end`: all of it).
    /// `Ok(false)` while its first row is incomplete.
    pub(crate) fn header_from(
        &mut self,
        head: &[u8],
        origin: &str,
        at_end: bool,
    ) -> Result<bool, ConnectorError> {
        let mut parser = Parser::new(self.delimiter);
        match parser.next_row(head, at_end) {
            Some(row) => {
                self.take_header(&row, origin)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn take_header(&mut self, row: &Row, origin: &str) -> Result<(), ConnectorError> {
        let mut names = Vec::with_capacity(row.fields.len());
        for (i, field) in row.fields.iter().enumerate() {
            // Spreadsheets start their files with a UTF-8 byte order mark.
            let field = match (i, field.strip_prefix(b"\xEF\xBB\xBF")) {
                (0, Some(rest)) => rest,
                _ => field,
            };
            let name = std::str::from_utf8(field).map_err(|_| {
                ConnectorError::data(format!(
                    "the CSV header of {origin} is not UTF-8 (column {})",
                    i + 1
                ))
            })?;
            names.push(name.to_string());
        }
        self.set_columns(names).map_err(|e| {
            ConnectorError::data(format!("the CSV header of {origin} cannot be used: {e}"))
        })
    }
}

/// One parsed row: its fields (unescaped) and where it is in the chunk.
struct Row {
    fields: Vec<Vec<u8>>,
    /// Offset of its first byte (after skipped blank lines).
    start: usize,
    /// Offset just past its newline (or the end of the input).
    end: usize,
}

/// `csv_core`'s reader, fed one complete row at a time.
struct Parser {
    reader: csv_core::Reader,
    at: usize,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl Parser {
    fn new(delimiter: u8) -> Self {
        let reader = csv_core::ReaderBuilder::new()
            .delimiter(delimiter)
            // Only LF ends a row, so a position is always just past a newline (what `resume`
            // checks); a CR before it is dropped from the last field.
            .terminator(csv_core::Terminator::Any(b'\n'))
            .build();
        Self {
            reader,
            at: 0,
            out: vec![0; 4096],
            ends: vec![0; 64],
        }
    }

    /// The next complete row of `input` after the previous one; `None` when the rest is not a
    /// complete row (with `at_end`, a last row without a newline is complete).
    fn next_row(&mut self, input: &[u8], at_end: bool) -> Option<Row> {
        let begin = self.at;
        let (mut pos, mut nout, mut nend) = (begin, 0, 0);
        let mut ended = false;
        loop {
            // Every byte is in: an empty read ends the last row.
            let input = if ended { &[][..] } else { &input[pos..] };
            let (res, nin, o, e) =
                self.reader
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nend..]);
            pos += nin;
            nout += o;
            nend += e;
            match res {
                csv_core::ReadRecordResult::InputEmpty if at_end && !ended => ended = true,
                csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::End => {
                    // Incomplete: parse it again from its start when more bytes came.
                    self.reader.reset();
                    return None;
                }
                csv_core::ReadRecordResult::OutputFull => {
                    let len = self.out.len();
                    self.out.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::Record => break,
            }
        }
        self.at = pos;
        let mut fields = Vec::with_capacity(nend);
        let mut from = 0;
        for &end in &self.ends[..nend] {
            fields.push(self.out[from..end].to_vec());
            from = end;
        }
        if let Some(last) = fields.last_mut()
            && last.last() == Some(&b'\r')
        {
            last.pop();
        }
        let start = begin
            + input[begin..pos]
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r'))
                .count();
        Some(Row {
            fields,
            start,
            end: pos,
        })
    }
}

/// Split `chunk` (byte `base` of the partition) into one record per complete row, like
/// [`crate::lines::split_lines`]: the batch and the bytes consumed. The first row is the header
/// while the columns are unknown; a header that cannot name the columns is an error.
pub(crate) fn split_rows(
    chunk: &Bytes,
    base: u64,
    partition: &Arc<str>,
    origin: &str,
    rules: &LineRules,
    csv: &mut CsvRead,
    final_chunk: bool,
) -> Result<(Batch, usize), ConnectorError> {
    let mut batch = Batch::default();
    let mut parser = Parser::new(csv.delimiter);
    let mut used = 0;
    while let Some(row) = parser.next_row(chunk, final_chunk) {
        used = row.end;
        // A blank last line (all skipped) is no row.
        if row.start >= row.end || (row.fields.len() == 1 && row.fields[0].is_empty()) {
            continue;
        }
        let Some(columns) = csv.columns.clone() else {
            csv.take_header(&row, origin)?;
            continue;
        };
        let mut raw_end = row.end;
        while raw_end > row.start && matches!(chunk[raw_end - 1], b'\n' | b'\r') {
            raw_end -= 1;
        }
        let record = Record::new(
            chunk.slice(row.start..raw_end),
            Position::int(partition.clone(), (base + row.end as u64) as i64),
        );
        let too_long = raw_end - row.start > rules.max_line_bytes;
        let decoded = if too_long {
            Err((
                "line too long",
                format!(
                    "{} bytes (max_line_bytes = {})",
                    raw_end - row.start,
                    rules.max_line_bytes
                ),
            ))
        } else {
            to_json(&row.fields, &columns, csv.header)
        };
        match decoded {
            Ok(json) => batch.records.push(Record {
                value: Bytes::from(json),
                ..record
            }),
            Err((what, detail)) => {
                let mut record = record;
                if too_long {
                    record.value.truncate(TOO_LONG_HEAD);
                }
                batch.dead.push(DeadRecord {
                    record,
                    stage: "source".into(),
                    reason: format!(
                        "{what} at byte {} of {origin}: {detail}",
                        base + row.start as u64
                    ),
                });
            }
        }
    }
    // At the end, whatever follows the last row is blank lines.
    Ok((batch, if final_chunk { chunk.len() } else { used }))
}

/// Where a row being skipped (longer than `max_line_bytes`) ends, fed chunk by chunk: a
/// newline inside a quoted field does not end it.
pub(crate) struct RowEnd {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl RowEnd {
    /// At the start of a row.
    pub(crate) fn new(delimiter: u8) -> Self {
        Self {
            reader: csv_core::ReaderBuilder::new()
                .delimiter(delimiter)
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build(),
            out: vec![0; 64 * 1024],
            ends: vec![0; 1024],
        }
    }

    /// The next bytes of the row: `Some(n)` when it ends after `n` of them.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut pos = 0;
        while pos < bytes.len() {
            // Only where the row ends matters: field bytes are overwritten freely.
            let (res, nin, _, _) =
                self.reader
                    .read_record(&bytes[pos..], &mut self.out, &mut self.ends);
            pos += nin;
            if res == csv_core::ReadRecordResult::Record {
                return Some(pos);
            }
        }
        None
    }
}

/// The end of the last complete row of the first `size` bytes of `file`: where an at-least-once
/// sink cuts a row torn by a crash, which may hold newlines in quoted fields (the delimiter
/// matters: a quote opens a quoted field only at the start of a field).
pub(crate) fn last_row_end(file: &std::fs::File, size: u64, delimiter: u8) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut reader = csv_core::ReaderBuilder::new()
        .delimiter(delimiter)
        .terminator(csv_core::Terminator::Any(b'\n'))
        .build();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut out, mut ends) = (vec![0u8; 64 * 1024], vec![0usize; 1024]);
    let (mut at, mut last) = (0u64, 0u64);
    while at < size {
        let want = buf.len().min((size - at) as usize);
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        let mut pos = 0;
        while pos < n {
            // Only where rows end matters: field bytes are overwritten freely.
            let (res, nin, _, _) = reader.read_record(&buf[pos..n], &mut out, &mut ends);
            pos += nin;
            if res == csv_core::ReadRecordResult::Record {
                last = at + pos as u64;
            }
        }
        at += n as u64;
    }
    // A row ends with its newline; blank lines after it are no row.
    Ok(last)
}

/// A row as a JSON object, or what is wrong with it.
fn to_json(
    fields: &[Vec<u8>],
    columns: &[(String, CsvType)],
    header: bool,
) -> Result<String, (&'static str, String)> {
    if fields.len() != columns.len() {
        let named = if header {
            "the header has"
        } else {
            "`columns` has"
        };
        return Err((
            "wrong number of fields",
            format!("{} fields, {named} {}", fields.len(), columns.len()),
        ));
    }
    let mut json = String::with_capacity(fields.iter().map(|f| f.len() + 8).sum::<usize>() + 2);
    json.push('{');
    for (i, (field, (name, kind))) in fields.iter().zip(columns).enumerate() {
        if i > 0 {
            json.push(',');
        }
        let text = std::str::from_utf8(field).map_err(|e| {
            (
                "invalid UTF-8",
                format!("column {name:?} at byte {}", e.valid_up_to()),
            )
        })?;
        push_json_string(&mut json, name);
        json.push(':');
        let bad = |what: &str| {
            (
                "bad value",
                format!("column {name:?}: {text:?} is not {what}"),
            )
        };
        let typed = text.trim();
        match kind {
            CsvType::String => push_json_string(&mut json, text),
            _ if typed.is_empty() => json.push_str("null"),
            CsvType::Int => {
                let n: i64 = typed.parse().map_err(|_| bad("an int"))?;
                json.push_str(&n.to_string());
            }
            CsvType::Float => {
                let n = typed
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .ok_or_else(|| bad("a finite float"))?;
                json.push_str(&n.to_string());
            }
            CsvType::Bool => {
                if typed.eq_ignore_ascii_case("true") {
                    json.push_str("true");
                } else if typed.eq_ignore_ascii_case("false") {
                    json.push_str("false");
                } else {
                    return Err(bad("a bool (true or false)"));
                }
            }
        }
    }
    json.push('}');
    Ok(json)
}

fn push_json_string(out: &mut String, s: &str) {
    // Serialising a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LineFormat;
    use sluice_core::Offset;

    fn read(options: CsvInput) -> CsvRead {
        CsvRead::new(&options).unwrap()
    }

    fn typed() -> CsvInput {
        let mut o = CsvInput::default();
        o.types.insert("temp".into(), CsvType::Float);
        o.types.insert("n".into(), CsvType::Int);
        o.types.insert("ok".into(), CsvType::Bool);
        o
    }

    fn split(
        csv: &mut CsvRead,
        input: &[u8],
        base: u64,
        final_chunk: bool,
    ) -> (Vec<(String, Offset)>, Vec<String>, usize) {
        let p: Arc<str> = Arc::from("f");
        let rules = LineRules::new(LineFormat::Csv);
        let chunk = Bytes::copy_from_slice(input);
        let (batch, used) = split_rows(&chunk, base, &p, "f", &rules, csv, final_chunk).unwrap();
        let records = batch
            .records
            .iter()
            .map(|r| {
                (
                    String::from_utf8(r.value.to_vec()).unwrap(),
                    r.position.offset.clone(),
                )
            })
            .collect();
        (
            records,
            batch.dead.into_iter().map(|d| d.reason).collect(),
            used,
        )
    }

    #[test]
    fn rows_become_typed_objects_in_column_order() {
        let mut csv = read(typed());
        let input = b"name,temp,n,ok\r\na,21.5,3,true\n\n\"b, \"\"q\"\"\", -1 ,,FALSE\nc,x,1,true\nd,1,2\nlast,1e3,0,true";
        let (records, dead, used) = split(&mut csv, input, 0, false);
        assert_eq!(
            records,
            [
                (
                    r#"{"name":"a","temp":21.5,"n":3,"ok":true}"#.to_string(),
                    Offset::Int(30)
                ),
                (
                    r#"{"name":"b, \"q\"","temp":-1.0,"n":null,"ok":false}"#.to_string(),
                    Offset::Int(54)
                ),
            ]
        );
        assert_eq!(
            dead,
            [
                "bad value at byte 54 of f: column \"temp\": \"x\" is not a finite float",
                "wrong number of fields at byte 65 of f: 3 fields, the header has 4",
            ]
        );
        assert_eq!(used, 71, "the last row has no newline yet");
        let (records, _, used) = split(&mut csv, &input[used..], used as u64, true);
        assert_eq!(
            records,
            [(
                r#"{"name":"last","temp":1000.0,"n":0,"ok":true}"#.to_string(),
                Offset::Int(input.len() as i64)
            )]
        );
        assert_eq!(used, input.len() - 71);
    }

    #[test]
    fn a_quoted_newline_stays_in_its_field_and_an_open_quote_waits_for_more() {
        let mut options = CsvInput {
            header: false,
            columns: vec!["a".into(), "b".into()],
            ..CsvInput::default()
        };
        options.delimiter = ';';
        let mut csv = read(options);
        let input = b"1;\"two\nlines\"\n3;\"open\n";
        let (records, dead, used) = split(&mut csv, input, 0, false);
        assert!(dead.is_empty(), "{dead:?}");
        assert_eq!(
            records,
            [(r#"{"a":"1","b":"two\nlines"}"#.to_string(), Offset::Int(14))]
        );
        assert_eq!(used, 14);
        // The same bytes in one read, at the end: the open quote runs to the end of the input.
        let (records, _, used) = split(&mut csv, input, 0, true);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].0, r#"{"a":"3","b":"open\n"}"#);
        assert_eq!(used, input.len());
    }

    #[test]
    fn the_header_is_read_again_from_the_head_of_the_file() {
        let mut csv = read(typed());
        assert!(csv.needs_header());
        assert!(
            !csv.header_from(b"\xEF\xBB\xBFname,temp,n,o", "f", false)
                .unwrap()
        );
        assert!(
            csv.header_from(b"\xEF\xBB\xBFname,temp,n,ok\nx,1,2,true\n", "f", false)
                .unwrap()
        );
        let (records, _, _) = split(&mut csv, b"y,2,3,false\n", 100, false);
        assert_eq!(records[0].0, r#"{"name":"y","temp":2.0,"n":3,"ok":false}"#);
        // A header without a typed column, or with a column twice, cannot map rows.
        let mut csv = read(typed());
        let err = csv
            .header_from(b"name,n,ok\n", "in.csv", false)
            .unwrap_err();
        assert!(
            err.message
                .contains("the CSV header of in.csv cannot be used: `types` names column \"temp\""),
            "{err}"
        );
        let mut csv = read(CsvInput::default());
        let err = csv.header_from(b"a,a\n", "in.csv", false).unwrap_err();
        assert!(err.message.contains("column \"a\" appears twice"), "{err}");
    }

    #[test]
    fn options_that_cannot_work_are_config_errors_at_their_field() {
        let bad = |o: CsvInput| CsvRead::new(&o).unwrap_err();
        let e = bad(CsvInput {
            header: false,
            ..CsvInput::default()
        });
        assert_eq!(e.field.as_deref(), Some("csv.columns"));
        assert!(
            e.message
                .contains("with `header = false` the columns must be named"),
            "{e}"
        );
        let e = bad(CsvInput {
            columns: vec!["a".into()],
            ..CsvInput::default()
        });
        assert!(e.message.contains("set `header = false`"), "{e}");
        let e = bad(CsvInput {
            delimiter: '"',
            ..CsvInput::default()
        });
        assert_eq!(e.field.as_deref(), Some("csv.delimiter"));
        let e = bad(CsvInput {
            delimiter: 'é',
            ..CsvInput::default()
        });
        assert!(e.message.contains("one ASCII character"), "{e}");
        let mut o = CsvInput {
            header: false,
            columns: vec!["a".into()],
            ..CsvInput::default()
        };
        o.types.insert("b".into(), CsvType::Int);
        assert!(bad(o).message.contains("`types` names column \"b\""));
    }

    /// Fuzz: any bytes, split at any point into a first read and the rest, give the same
    /// records and dead letters as one read.
    #[test]
    fn fuzz_split_rows() {
        bolero::check!().for_each(|input: &[u8]| {
            let Some((&knobs, data)) = input.split_first() else {
                return;
            };
            let options = CsvInput {
                header: false,
                columns: vec!["a".into(), "b".into()],
                ..CsvInput::default()
            };
            let mut csv = read(options);
            let (whole, dead_whole, used) = split(&mut csv, data, 0, true);
            assert_eq!(used, data.len());
            let cut = usize::from(knobs).min(data.len());
            let (mut first, mut dead, used) = split(&mut csv, &data[..cut], 0, false);
            assert!(used <= cut);
            let (rest, dead_rest, used_rest) = split(&mut csv, &data[used..], used as u64, true);
            assert_eq!(used + used_rest, data.len());
            first.extend(rest);
            dead.extend(dead_rest);
            assert_eq!(whole, first);
            assert_eq!(dead_whole, dead);
        });
    }
}
