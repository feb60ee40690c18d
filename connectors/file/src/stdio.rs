//! stdin source and stdout sink, for pipes and quick experiments.

use std::io::{BufRead, Write};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sluice_core::{
    Batch, BuildContext, Checkpoint, ConnectorError, Record, Sink, SinkConnector, Source,
    SourceConnector, WriteReport,
};
use tokio::sync::mpsc;

use crate::config::{StdinConfig, StdoutConfig};
use crate::csv_in::{CsvRead, split_rows};
use crate::csv_out::CsvWrite;
use crate::lines::{LineRules, split_lines};
use crate::source::csv_options;

/// Registers the stdin source.
pub struct StdinConnector;

impl SourceConnector for StdinConnector {
    const TYPE: &'static str = "stdin";
    const DOC: &'static str =
        "Reads JSON lines, text or CSV from standard input until it closes (cannot resume).";
    type Config = StdinConfig;

    fn build(config: StdinConfig, _ctx: &BuildContext) -> Result<Box<dyn Source>, ConnectorError> {
        let mut rules = LineRules::new(config.format);
        rules.max_json_depth = sluice_core::json::max_depth_option(config.max_json_depth)?;
        Ok(Box::new(Stdin {
            rules,
            csv: csv_options(config.format, config.csv.as_ref())?,
            rx: None,
            read: 0,
            pending: Bytes::new(),
            partition: Arc::from("stdin"),
        }))
    }
}

/// A running stdin source. A reader thread feeds chunks of whole lines through a channel, so
/// `next_batch` is cancel-safe.
pub struct Stdin {
    rules: LineRules,
    /// With `format = "csv"`: the columns, once known.
    csv: Option<CsvRead>,
    rx: Option<mpsc::Receiver<std::io::Result<Vec<u8>>>>,
    /// Bytes consumed: the offset of the first byte of `pending`.
    read: u64,
    /// An incomplete last line or row (a quoted CSV field may span chunks), kept until the
    /// rest comes or the input ends.
    pending: Bytes,
    partition: Arc<str>,
}

impl Stdin {
    /// The complete lines or rows of `pending` (all of it with `at_end`).
    fn split(&mut self, at_end: bool) -> Result<Batch, ConnectorError> {
        let chunk = std::mem::take(&mut self.pending);
        let (batch, used) = match &mut self.csv {
            Some(csv) => split_rows(
                &chunk,
                self.read,
                &self.partition,
                "stdin",
                &self.rules,
                csv,
                at_end,
            )?,
            None => split_lines(
                &chunk,
                self.read,
                &self.partition,
                "stdin",
                &self.rules,
                at_end,
            ),
        };
        self.read += used as u64;
        self.pending = chunk.slice(used..);
        Ok(batch)
    }
}

#[async_trait]
impl Source for Stdin {
    // Standard input is always there.
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    async fn open(&mut self, _resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        let (tx, rx) = mpsc::channel(4);
        std::thread::Builder::new()
            .name("sluice-stdin".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                let mut lock = stdin.lock();
                loop {
                    let mut chunk = Vec::with_capacity(64 * 1024);
                    let mut line = Vec::new();
                    let mut eof = false;
                    while chunk.len() < 64 * 1024 {
                        line.clear();
                        match lock.read_until(b'\n', &mut line) {
                            Ok(0) => {
                                eof = true;
                                break;
                            }
                            Ok(_) => {
                                chunk.extend_from_slice(&line);
                                if !lock.fill_buf().map(|b| !b.is_empty()).unwrap_or(false) {
                                    break;
                                }
                            }
                            Err(e) => {
                                let _ = tx.blocking_send(Err(e));
                                return;
                            }
                        }
                    }
                    if !chunk.is_empty() && tx.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                    if eof {
                        return;
                    }
                }
            })
            .map_err(|e| ConnectorError::internal(format!("cannot start stdin reader: {e}")))?;
        self.rx = Some(rx);
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        let rx = self
            .rx
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("stdin not open"))?;
        match rx.recv().await {
            None if self.pending.is_empty() => Ok(None),
            None => self.split(true).map(Some),
            Some(Err(e)) => Err(ConnectorError::io("reading stdin", &e)),
            Some(Ok(chunk)) => {
                // The reader sends whole lines, so only a CSV row with a quoted newline (or a
                // last line without one) waits here for the next chunk.
                self.pending = if self.pending.is_empty() {
                    Bytes::from(chunk)
                } else {
                    let mut joined = self.pending.to_vec();
                    joined.extend_from_slice(&chunk);
                    Bytes::from(joined)
                };
                self.split(false).map(Some)
            }
        }
    }

    fn can_seek(&self) -> bool {
        false
    }
}

/// Registers the stdout sink.
pub struct StdoutConnector;

impl SinkConnector for StdoutConnector {
    const TYPE: &'static str = "stdout";
    const DOC: &'static str =
        "Writes each record value as one line, or CSV rows, to standard output.";
    type Config = StdoutConfig;

    fn build(config: StdoutConfig, _ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(Stdout {
            csv: CsvWrite::from_config(config.format, config.csv.as_ref())?,
            header_written: false,
        }))
    }
}

/// The stdout sink.
pub struct Stdout {
    /// With `format = "csv"`: the columns, once known.
    csv: Option<CsvWrite>,
    /// The CSV header went out (once per run: standard output is one stream).
    header_written: bool,
}

#[async_trait]
impl Sink for Stdout {
    // Standard output is always there.
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    fn destination(&self) -> Option<String> {
        Some("stdout".into())
    }

    async fn write(
        &mut self,
        records: &[Record],
        _cp: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let mut header = false;
        let data = match self.csv.as_mut() {
            Some(csv) => {
                let encoded = csv.encode(records);
                if !encoded.rejected.is_empty() {
                    // Nothing is written: the runtime dead-letters these, then writes the rest.
                    return Ok(WriteReport {
                        rejected: encoded.rejected,
                        retry: Vec::new(),
                        rolled_back: true,
                    });
                }
                let mut data = Vec::new();
                if !self.header_written && !encoded.rows.is_empty() {
                    data.extend(csv.header_row().unwrap_or_default());
                    header = true;
                }
                data.extend(encoded.rows);
                data
            }
            None => crate::sink::lines_of(records),
        };
        tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(&data)?;
            out.flush()
        })
        .await
        .map_err(|e| crate::error::task("stdout", &e))?
        .map_err(|e| ConnectorError::io("writing stdout", &e))?;
        self.header_written |= header;
        Ok(WriteReport::ok())
    }
}
