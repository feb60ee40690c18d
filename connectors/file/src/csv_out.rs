//! Writing CSV (`format = "csv"` of the file and stdout sinks) with the `csv` crate: one row per
//! record, a header row at the start of every file. The columns are fixed for a file: from
//! `columns`, or the fields of the first record, or — appending to a file that already has a
//! header (a restart) — that header.

use std::path::Path;

use sluice_core::{ConnectorError, Record};

use crate::config::{CsvOutput, OutputFormat};

/// A sink's CSV settings and its columns, once known.
#[derive(Clone, Debug)]
pub(crate) struct CsvWrite {
    delimiter: u8,
    header: bool,
    columns: Option<Vec<String>>,
}

/// What a batch encodes to.
pub(crate) struct Encoded {
    /// The rows, each ending in a newline.
    pub rows: Vec<u8>,
    /// Records that cannot be rows: index and reason.
    pub rejected: Vec<(usize, String)>,
}

impl CsvWrite {
    /// The CSV writer of a sink with `format = "csv"` (its options checked); `csv` options with
    /// another format are refused.
    pub(crate) fn from_config(
        format: OutputFormat,
        options: Option<&CsvOutput>,
    ) -> Result<Option<Self>, ConnectorError> {
        let options = match (format, options) {
            (OutputFormat::Csv, options) => options.cloned().unwrap_or_default(),
            (_, Some(_)) => {
                return Err(
                    ConnectorError::config("`csv` options need `format = \"csv\"`").at("csv"),
                );
            }
            (_, None) => return Ok(None),
        };
        let delimiter = crate::csv_in::delimiter(options.delimiter)?;
        if !options.header && options.columns.is_empty() {
            return Err(ConnectorError::config(
                "with `header = false` name the columns (`columns = [\"a\", \"b\"]`): without a header, a restart could not know the order the file was written in",
            )
            .at("csv.columns"));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = options.columns.iter().find(|c| !seen.insert(*c)) {
            return Err(
                ConnectorError::config(format!("column {twice:?} appears twice")).at("csv.columns"),
            );
        }
        Ok(Some(Self {
            delimiter,
            header: options.header,
            columns: (!options.columns.is_empty()).then_some(options.columns),
        }))
    }

    /// The field separator.
    pub(crate) fn delimiter(&self) -> u8 {
        self.delimiter
    }

    fn writer(&self) -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new())
    }

    /// The header row for the start of a file, once the columns are known.
    pub(crate) fn header_row(&self) -> Option<Vec<u8>> {
        let columns = self.columns.as_ref().filter(|_| self.header)?;
        let mut w = self.writer();
        w.write_record(columns).ok()?;
        w.into_inner().ok()
    }

    /// Appending to `path`, which already has rows (gzip members with `gzip`): take the
    /// columns from its header when they are not configured.
    pub(crate) fn adopt_header(&mut self, path: &Path, gzip: bool) -> std::io::Result<()> {
        if self.columns.is_some() || !self.header {
            return Ok(());
        }
        let file = match std::fs::File::open(path) {
            Ok(f) => std::io::BufReader::new(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let input: Box<dyn std::io::Read> = if gzip {
            Box::new(flate2::bufread::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(self.delimiter)
            .flexible(true)
            .from_reader(input);
        let mut row = csv::StringRecord::new();
        match reader.read_record(&mut row) {
            Ok(true) => {
                self.columns = Some(row.iter().map(String::from).collect());
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("its CSV header cannot be read: {e}"),
            )),
        }
    }

    /// Encode `records`; the first good one fixes the columns when none are known.
    pub(crate) fn encode(&mut self, records: &[Record]) -> Encoded {
        let mut w = self.writer();
        let mut rejected = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let object = match serde_json::from_slice::<serde_json::Value>(&record.value) {
                Ok(serde_json::Value::Object(o)) => o,
                Ok(_) => {
                    rejected.push((i, "a CSV row needs a JSON object, not another value".into()));
                    continue;
                }
                Err(e) => {
                    rejected.push((i, format!("a CSV row needs a JSON object: {e}")));
                    continue;
                }
            };
            let columns = self
                .columns
                .get_or_insert_with(|| object.keys().cloned().collect());
            let fields = columns.iter().map(|c| match object.get(c) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            });
            if let Err(e) = w.write_record(fields) {
                rejected.push((i, format!("cannot be written as CSV: {e}")));
            }
        }
        let rows = w.into_inner().unwrap_or_default();
        Encoded { rows, rejected }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use sluice_core::Position;

    fn records(values: &[&str]) -> Vec<Record> {
        let p: Arc<str> = Arc::from("x");
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Record::new(v.to_string(), Position::int(p.clone(), i as i64)))
            .collect()
    }

    #[test]
    fn columns_come_from_the_first_record_and_values_are_quoted_as_needed() {
        let mut w = CsvWrite::from_config(OutputFormat::Csv, None)
            .unwrap()
            .unwrap();
        assert_eq!(w.header_row(), None);
        let out = w.encode(&records(&[
            r#"{"b":"x, \"y\"","a":1.5,"n":null}"#,
            "[1]",
            r#"{"a":{"k":[1,2]},"extra":true,"b":"two\nlines"}"#,
        ]));
        assert_eq!(w.header_row().unwrap(), b"b,a,n\n");
        assert_eq!(
            String::from_utf8(out.rows).unwrap(),
            "\"x, \"\"y\"\"\",1.5,\n\"two\nlines\",\"{\"\"k\"\":[1,2]}\",\n"
        );
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].0, 1);
    }

    #[test]
    fn configured_columns_and_delimiter_and_a_header_taken_over() {
        let options = CsvOutput {
            header: true,
            delimiter: '\t',
            columns: vec!["n".into(), "s".into()],
        };
        let mut w = CsvWrite::from_config(OutputFormat::Csv, Some(&options))
            .unwrap()
            .unwrap();
        assert_eq!(w.header_row().unwrap(), b"n\ts\n");
        let out = w.encode(&records(&[r#"{"s":"a","n":2,"z":0}"#]));
        assert_eq!(out.rows, b"2\ta\n");
        // Appending to a file with a header: its columns, not the next record's.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.csv");
        std::fs::write(&path, "q,p\n1,2\n").unwrap();
        let mut w = CsvWrite::from_config(OutputFormat::Csv, None)
            .unwrap()
            .unwrap();
        w.adopt_header(&path, false).unwrap();
        let out = w.encode(&records(&[r#"{"p":"P","q":"Q"}"#]));
        assert_eq!(out.rows, b"Q,P\n");
    }

    #[test]
    fn options_that_cannot_work_are_refused() {
        let e = CsvWrite::from_config(OutputFormat::Json, Some(&CsvOutput::default())).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("csv"));
        let e = CsvWrite::from_config(
            OutputFormat::Csv,
            Some(&CsvOutput {
                header: false,
                ..CsvOutput::default()
            }),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("csv.columns"));
        assert!(
            e.message.contains("with `header = false` name the columns"),
            "{e}"
        );
    }
}
