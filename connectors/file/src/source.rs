//! The file source: JSON lines or text, read to the end (bounded) or followed like `tail -f`.
//! A record's position is the byte offset just past its line, so a restart resumes exactly
//! after the last committed line.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;
use sluice_core::units::{ByteSize, HumanDuration};
use sluice_core::{
    Batch, BuildContext, Checkpoint, ConnectorError, Offset, Source, SourceConnector,
};

use crate::LineFormat;
use crate::lines::split_lines;

/// `type = "file"` source.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The file to read (relative to the job file).
    pub path: PathBuf,
    /// `"json"` (default): one JSON document per line, invalid lines are bad records.
    /// `"text"`: each line as is.
    #[serde(default)]
    pub format: LineFormat,
    /// Keep reading as the file grows (`tail -f`) instead of stopping at its end.
    #[serde(default)]
    pub follow: bool,
    /// With `follow`: how often to look for new data.
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// Bytes read per batch.
    #[serde(default = "default_read_size")]
    pub read_size: ByteSize,
}

fn default_poll() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}

fn default_read_size() -> ByteSize {
    ByteSize(1 << 20)
}

/// Registers the file source.
pub struct FileSourceConnector;

impl SourceConnector for FileSourceConnector {
    const TYPE: &'static str = "file";
    const DOC: &'static str =
        "Reads JSON lines or text from a file, once or following it as it grows.";
    type Config = FileSourceConfig;

    fn build(
        config: FileSourceConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        if config.read_size.0 == 0 {
            return Err(ConnectorError::config("read_size must be at least 1 byte"));
        }
        let path = ctx.resolve(&config.path);
        Ok(Box::new(FileSource {
            partition: Arc::from(path.display().to_string()),
            path,
            config,
            file: None,
            offset: 0,
            pending: Bytes::new(),
            done: false,
        }))
    }
}

/// A running file source.
pub struct FileSource {
    path: PathBuf,
    partition: Arc<str>,
    config: FileSourceConfig,
    file: Option<Arc<std::fs::File>>,
    /// File offset of the first byte of `pending`.
    offset: u64,
    /// Bytes read but not yet emitted (an incomplete last line).
    pending: Bytes,
    done: bool,
}

impl FileSource {
    fn err(&self, what: &str, e: &std::io::Error) -> ConnectorError {
        ConnectorError::io(&format!("{what} {}", self.path.display()), e)
    }

    /// Read up to `read_size` bytes after what is pending. The read runs off the executor and
    /// state changes only when it returns, so dropping this future loses nothing.
    async fn read_more(&mut self) -> Result<usize, ConnectorError> {
        let file = self
            .file
            .clone()
            .ok_or_else(|| ConnectorError::internal("file source not open"))?;
        let leftover = self.pending.clone();
        let at = self.offset + leftover.len() as u64;
        let size = self.config.read_size.as_usize();
        let (chunk, n) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; leftover.len() + size];
            buf[..leftover.len()].copy_from_slice(&leftover);
            let n = file.read_at(&mut buf[leftover.len()..], at)?;
            buf.truncate(leftover.len() + n);
            Ok::<_, std::io::Error>((buf, n))
        })
        .await
        .map_err(|e| ConnectorError::internal(format!("read task: {e}")))?
        .map_err(|e| self.err("reading", &e))?;
        self.pending = Bytes::from(chunk);
        Ok(n)
    }

    fn take_batch(&mut self, final_chunk: bool) -> Option<Batch> {
        if self.pending.is_empty() {
            return None;
        }
        let chunk = self.pending.clone();
        let (batch, used) = split_lines(
            &chunk,
            self.offset,
            &self.partition,
            self.config.format,
            final_chunk,
        );
        self.offset += used as u64;
        self.pending = chunk.slice(used..);
        (!batch.is_empty()).then_some(batch)
    }
}

#[async_trait]
impl Source for FileSource {
    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        let file = std::fs::File::open(&self.path).map_err(|e| self.err("opening", &e))?;
        let len = file
            .metadata()
            .map_err(|e| self.err("reading metadata of", &e))?
            .len();
        if let Some(Offset::Int(pos)) = resume.as_ref().and_then(|cp| cp.get(&self.partition)) {
            let pos = *pos as u64;
            if pos > len {
                return Err(ConnectorError::external(format!(
                    "{} is {len} bytes but the committed position is {pos}: the file was truncated or replaced; reset the job's offsets to read it again",
                    self.path.display()
                )));
            }
            tracing::info!(path = %self.path.display(), offset = pos, "Resuming file.");
            self.offset = pos;
        }
        self.file = Some(Arc::new(file));
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let n = self.read_more().await?;
            if n > 0 {
                if let Some(batch) = self.take_batch(false) {
                    return Ok(Some(batch));
                }
                continue;
            }
            if self.config.follow {
                tokio::time::sleep(self.config.poll_interval.0).await;
                continue;
            }
            self.done = true;
            return Ok(self.take_batch(true));
        }
    }

    fn expected_total(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use sluice_core::Guarantee;

    fn ctx(dir: &std::path::Path) -> BuildContext {
        BuildContext {
            job: "t".into(),
            base_dir: dir.to_path_buf(),
            state_dir: dir.join("state"),
            guarantee: Guarantee::AtLeastOnce,
        }
    }

    fn config(path: &str, read_size: u64) -> FileSourceConfig {
        FileSourceConfig {
            path: path.into(),
            format: LineFormat::Json,
            follow: false,
            poll_interval: default_poll(),
            read_size: ByteSize(read_size),
        }
    }

    async fn drain(source: &mut Box<dyn Source>) -> Vec<Batch> {
        let mut out = Vec::new();
        while let Some(b) = source.next_batch().await.unwrap() {
            out.push(b);
        }
        out
    }

    #[tokio::test]
    async fn resumes_exactly_after_the_committed_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = std::fs::File::create(dir.path().join("in.jsonl")).unwrap();
        for i in 0..100 {
            writeln!(f, "{{\"i\":{i}}}").unwrap();
        }
        let mut src = FileSourceConnector::build(config("in.jsonl", 64), &ctx(dir.path())).unwrap();
        src.open(None).await.unwrap();
        let batches = drain(&mut src).await;
        let records: Vec<_> = batches.iter().flat_map(|b| b.records.clone()).collect();
        assert_eq!(records.len(), 100);
        // Resume after the 42nd record.
        let mut cp = Checkpoint::default();
        cp.advance(&records[41].position);
        let mut src = FileSourceConnector::build(config("in.jsonl", 64), &ctx(dir.path())).unwrap();
        src.open(Some(cp)).await.unwrap();
        let rest: Vec<_> = drain(&mut src)
            .await
            .into_iter()
            .flat_map(|b| b.records)
            .collect();
        assert_eq!(rest.len(), 58);
        assert_eq!(&rest[0].value[..], b"{\"i\":42}");
    }

    #[tokio::test]
    async fn refuses_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.jsonl"), "{}\n").unwrap();
        let mut cp = Checkpoint::default();
        let p = dir.path().join("in.jsonl").display().to_string();
        cp.offsets.insert(Arc::from(p), Offset::Int(1000));
        let mut src = FileSourceConnector::build(config("in.jsonl", 64), &ctx(dir.path())).unwrap();
        let err = src.open(Some(cp)).await.err().unwrap();
        assert!(err.message.contains("truncated"), "{}", err.message);
    }
}
