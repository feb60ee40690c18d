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
use crate::lines::{LineRules, split_lines};

/// Registers the stdin source.
pub struct StdinConnector;

impl SourceConnector for StdinConnector {
    const TYPE: &'static str = "stdin";
    const DOC: &'static str =
        "Reads JSON lines or text from standard input until it closes (cannot resume).";
    type Config = StdinConfig;

    fn build(config: StdinConfig, _ctx: &BuildContext) -> Result<Box<dyn Source>, ConnectorError> {
        let mut rules = LineRules::new(config.format);
        rules.max_json_depth = sluice_core::json::max_depth_option(config.max_json_depth)?;
        Ok(Box::new(Stdin {
            rules,
            rx: None,
            read: 0,
            partition: Arc::from("stdin"),
        }))
    }
}

/// A running stdin source. A reader thread feeds chunks of whole lines through a channel, so
/// `next_batch` is cancel-safe.
pub struct Stdin {
    rules: LineRules,
    rx: Option<mpsc::Receiver<std::io::Result<Vec<u8>>>>,
    read: u64,
    partition: Arc<str>,
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
            None => Ok(None),
            Some(Err(e)) => Err(ConnectorError::io("reading stdin", &e)),
            Some(Ok(chunk)) => {
                let chunk = Bytes::from(chunk);
                let (batch, used) = split_lines(
                    &chunk,
                    self.read,
                    &self.partition,
                    "stdin",
                    &self.rules,
                    true,
                );
                self.read += used as u64;
                Ok(Some(batch))
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
    const DOC: &'static str = "Writes each record value as one line to standard output.";
    type Config = StdoutConfig;

    fn build(_config: StdoutConfig, _ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        Ok(Box::new(Stdout))
    }
}

/// The stdout sink.
pub struct Stdout;

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
        let mut data = Vec::with_capacity(records.iter().map(|r| r.value.len() + 1).sum());
        for r in records {
            data.extend_from_slice(&r.value);
            data.push(b'\n');
        }
        tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(&data)?;
            out.flush()
        })
        .await
        .map_err(|e| crate::error::task("stdout", &e))?
        .map_err(|e| ConnectorError::io("writing stdout", &e))?;
        Ok(WriteReport::ok())
    }
}
