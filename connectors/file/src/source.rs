//! The file source: JSON lines or text, read to the end (bounded) or followed like `tail -F`.
//! A record's position is the byte offset just past its line in a partition that is the file's
//! identity (`fingerprint`), so a restart resumes exactly after the last committed line of the
//! same file, however its path is spelled (`resume`), and a rotated or rewritten file is never
//! read at another file's offset (`follow`). CSV rows are split and decoded by `csv_in`, a
//! gzip/zstd file is read through `decompress` (positions in decompressed bytes), and a
//! directory or glob is many of these sources, one per file (`many`).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use sluice_core::{
    Batch, BuildContext, Checkpoint, ConnectorError, DeadRecord, Position, Record, Source,
    SourceConnector,
};

use crate::LineFormat;
use crate::config::{CsvInput, FileSourceConfig};
use crate::csv_in::{CsvRead, RowEnd, split_rows};
use crate::decompress::{Codec, Decompressed};
use crate::fingerprint::{DiskId, Fingerprint, Identity};
use crate::follow::{self, Change};
use crate::lines::{LineRules, TOO_LONG_HEAD, split_lines};
use crate::resume::{self, Observed, next_identity};
use sluice_core::local::canonical_target;

/// Registers the file source.
pub struct FileSourceConnector;

impl SourceConnector for FileSourceConnector {
    const TYPE: &'static str = "file";
    const DOC: &'static str = "Reads JSON lines, text or CSV from a file, a directory or a glob (gzip/zstd decompressed), once or following it as it grows.";
    type Config = FileSourceConfig;

    fn build(
        config: FileSourceConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        if config.read_size.0 == 0 {
            return Err(ConnectorError::config("read_size must be at least 1 byte").at("read_size"));
        }
        if config.max_line_bytes.0 == 0 {
            return Err(
                ConnectorError::config("max_line_bytes must be at least 1 byte")
                    .at("max_line_bytes"),
            );
        }
        sluice_core::json::max_depth_option(config.max_json_depth)?;
        let csv = csv_options(config.format, config.csv.as_ref())?;
        let rules = LineRules {
            format: config.format,
            max_line_bytes: usize::try_from(config.max_line_bytes.0).unwrap_or(usize::MAX),
            max_json_depth: config.max_json_depth,
        };
        if let Some(pattern) = crate::many::Pattern::of(&config.path, ctx)? {
            return Ok(Box::new(crate::many::Many::new(
                pattern, config, rules, csv, ctx,
            )?));
        }
        let path = ctx.local_file("path", &config.path)?;
        // A bounded read of a file that is not there can never succeed: say so at the job
        // file's line, before anything runs. A followed file may appear later.
        if !config.follow && !path.exists() {
            return Err(ConnectorError::config(format!(
                "input file {} does not exist (set `follow = true` to wait for it to appear)",
                path.display()
            ))
            .at("path"));
        }
        let codec = Codec::check_follow(config.compression, &path, config.follow)?;
        Ok(Box::new(FileSource::new(path, config, rules, csv, codec)))
    }
}

impl FileSource {
    /// A source of the one file at `path` (options checked).
    pub(crate) fn new(
        path: PathBuf,
        config: FileSourceConfig,
        rules: LineRules,
        csv: Option<CsvRead>,
        codec: Option<Codec>,
    ) -> Self {
        FileSource {
            origin: path.display().to_string(),
            rules,
            csv,
            codec,
            decoder: None,
            discarding: None,
            path,
            config,
            file: None,
            identity: None,
            previous: None,
            resume: Checkpoint::default(),
            offset: 0,
            pending: Bytes::new(),
            rotated_at: None,
            at_end: false,
            done: false,
            quiet: false,
        }
    }
}

/// The CSV reader of a source with `format = "csv"` (its options checked); `csv` options with
/// another format are refused.
pub(crate) fn csv_options(
    format: LineFormat,
    options: Option<&CsvInput>,
) -> Result<Option<CsvRead>, ConnectorError> {
    match (format, options) {
        (LineFormat::Csv, options) => {
            Ok(Some(CsvRead::new(options.unwrap_or(&CsvInput::default()))?))
        }
        (_, Some(_)) => {
            Err(ConnectorError::config("`csv` options need `format = \"csv\"`").at("csv"))
        }
        (_, None) => Ok(None),
    }
}

/// The file being read.
struct OpenFile {
    file: Arc<std::fs::File>,
    disk: DiskId,
}

/// A line over `max_line_bytes` being skipped: where it started and its first bytes, for its
/// dead letter.
struct Discard {
    start: u64,
    head: Bytes,
    /// CSV: where the row ends (a quoted field may hold newlines); otherwise the next newline.
    row: Option<RowEnd>,
}

/// A running file source. Its partition is the identity of the file it reads, not its path
/// (see `fingerprint`); following, it moves on to the next file when the path is rotated.
pub struct FileSource {
    path: PathBuf,
    /// The path as shown in the reason of a bad line.
    origin: String,
    config: FileSourceConfig,
    rules: LineRules,
    /// With `format = "csv"`: the columns, once known.
    csv: Option<CsvRead>,
    /// The file is compressed: read through `decoder`, positions in decompressed bytes.
    codec: Option<Codec>,
    decoder: Option<Arc<Mutex<Decompressed>>>,
    /// A line longer than `max_line_bytes` is being skipped to its end.
    discarding: Option<Discard>,
    file: Option<OpenFile>,
    /// The partition of the open file, with its name; `None` until its first line is complete
    /// (then `offset` is 0).
    identity: Option<(Identity, Arc<str>)>,
    /// The partition read before a rotation or rewrite in this run.
    previous: Option<Identity>,
    /// The checkpoint `open` got: new partitions take generations after the ones it used.
    resume: Checkpoint,
    /// File offset of the first byte of `pending`.
    offset: u64,
    /// Bytes read but not yet emitted (an incomplete last line).
    pending: Bytes,
    /// When the path was seen naming another file; the open one is finished after one more
    /// poll interval, in case its writer was still writing.
    rotated_at: Option<Instant>,
    /// The last read reached the end of the file. Following, data read after that is first
    /// checked for a rewrite in place.
    at_end: bool,
    done: bool,
    /// One of many files (a glob): a checkpoint without this file's partition is no news.
    pub(crate) quiet: bool,
}

impl FileSource {
    fn err(&self, what: &str, e: &std::io::Error) -> ConnectorError {
        crate::error::io(what, &self.path, e)
    }

    fn open_file(&self) -> Result<OpenFile, ConnectorError> {
        let file = std::fs::File::open(&self.path).map_err(|e| self.err("opening", &e))?;
        let meta = file
            .metadata()
            .map_err(|e| self.err("reading metadata of", &e))?;
        Ok(OpenFile {
            disk: DiskId::of(&meta),
            file: Arc::new(file),
        })
    }

    fn open_handle(&self) -> Result<&OpenFile, ConnectorError> {
        self.file
            .as_ref()
            .ok_or_else(|| ConnectorError::internal("file source not open"))
    }

    /// Read more bytes after what is pending: `read_size`, or as many as are pending when an
    /// incomplete line is longer, so a long line is copied a bounded number of times (the
    /// buffer grows geometrically), and nothing is copied when the file has no new bytes. The
    /// read runs off the executor and state changes only when it returns, so dropping this
    /// future loses nothing.
    async fn read_more(&mut self) -> Result<usize, ConnectorError> {
        let file = self.open_handle()?.file.clone();
        let leftover = self.pending.clone();
        let at = self.offset + leftover.len() as u64;
        let size = self.config.read_size.as_usize().max(leftover.len());
        let decoder = self.decoder.clone();
        let (chunk, n) = tokio::task::spawn_blocking(move || {
            if let Some(decoder) = decoder {
                // Poisoned only by a panic in a read, which fails the job anyway.
                let mut decoder = decoder
                    .lock()
                    .map_err(|_| std::io::Error::other("a decompressing read panicked"))?;
                let more = decoder.read_at(at, size)?;
                if more.is_empty() {
                    return Ok((None, 0));
                }
                let mut buf = Vec::with_capacity(leftover.len() + more.len());
                buf.extend_from_slice(&leftover);
                buf.extend_from_slice(&more);
                return Ok((Some(buf), more.len()));
            }
            // Only a regular file's length says whether there is more (a FIFO's is 0).
            let meta = file.metadata()?;
            if meta.is_file() && meta.len() <= at {
                return Ok::<_, std::io::Error>((None, 0));
            }
            let mut buf = vec![0u8; leftover.len() + size];
            buf[..leftover.len()].copy_from_slice(&leftover);
            let n = file.read_at(&mut buf[leftover.len()..], at)?;
            buf.truncate(leftover.len() + n);
            Ok((Some(buf), n))
        })
        .await
        .map_err(|e| crate::error::task("read", &e))?
        .map_err(|e| self.err("reading", &e))?;
        if let Some(chunk) = chunk {
            self.pending = Bytes::from(chunk);
        }
        self.at_end = n < size;
        Ok(n)
    }

    /// The complete lines pending, as a batch. The first lines of a file also give it its
    /// partition.
    fn take_batch(&mut self, final_chunk: bool) -> Result<Option<Batch>, ConnectorError> {
        if self.pending.is_empty() && !(final_chunk && self.discarding.is_some()) {
            return Ok(None);
        }
        let partition = match &self.identity {
            Some((_, partition)) => partition.clone(),
            None => {
                // No identity yet means reading started at byte 0: `pending` is the file's head.
                let Some(fp) = Fingerprint::of(&self.pending, final_chunk) else {
                    return Ok(None);
                };
                let ino = self.open_handle()?.disk.ino;
                let identity = next_identity(ino, fp, &self.resume, self.previous);
                let partition = identity.partition();
                self.identity = Some((identity, partition.clone()));
                partition
            }
        };
        let mut batch = Batch::default();
        if let Some(dead) = self.finish_discarding(&partition, final_chunk) {
            batch.dead.push(dead);
        } else if self.discarding.is_some() {
            return Ok(None);
        }
        let chunk = self.pending.clone();
        let (lines, used) = match &mut self.csv {
            Some(csv) => split_rows(
                &chunk,
                self.offset,
                &partition,
                &self.origin,
                &self.rules,
                csv,
                final_chunk,
            )?,
            None => split_lines(
                &chunk,
                self.offset,
                &partition,
                &self.origin,
                &self.rules,
                final_chunk,
            ),
        };
        batch.records.extend(lines.records);
        batch.dead.extend(lines.dead);
        self.offset += used as u64;
        self.pending = chunk.slice(used..);
        if !final_chunk && self.pending.len() > self.rules.max_line_bytes {
            // An incomplete line already over the limit: keep its head, skip the rest.
            let head = &self.pending[..TOO_LONG_HEAD.min(self.pending.len())];
            let row = self.csv.as_ref().map(|csv| {
                let mut row = RowEnd::new(csv.delimiter());
                // An incomplete row: it does not end in what is pending.
                let _ = row.feed(&self.pending);
                row
            });
            self.discarding = Some(Discard {
                start: self.offset,
                head: Bytes::copy_from_slice(head),
                row,
            });
            self.offset += self.pending.len() as u64;
            self.pending = Bytes::new();
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// While skipping a line over `max_line_bytes`: drop what is pending up to its end; at the
    /// end (a newline, or the end of the input), its dead letter, positioned after the line.
    fn finish_discarding(&mut self, partition: &Arc<str>, final_chunk: bool) -> Option<DeadRecord> {
        let discard = self.discarding.as_mut()?;
        let row_end = match discard.row.as_mut() {
            Some(row) => row.feed(&self.pending),
            None => memchr::memchr(b'\n', &self.pending).map(|newline| newline + 1),
        };
        let end = match row_end {
            Some(end) => end,
            None if final_chunk => self.pending.len(),
            None => {
                self.offset += self.pending.len() as u64;
                self.pending = Bytes::new();
                return None;
            }
        };
        self.offset += end as u64;
        self.pending = self.pending.slice(end..);
        let length = self.offset - discard.start;
        let reason = format!(
            "line too long at byte {} of {}: {length} bytes (max_line_bytes = {})",
            discard.start, self.origin, self.rules.max_line_bytes
        );
        let record = Record::new(
            discard.head.clone(),
            Position::int(partition.clone(), self.offset as i64),
        );
        self.discarding = None;
        Some(DeadRecord {
            record,
            stage: "source".into(),
            reason,
        })
    }

    /// Start again at byte 0 of `file`, under a new partition.
    fn restart_with(&mut self, file: OpenFile) {
        if let Some((identity, _)) = self.identity.take() {
            self.previous = Some(identity);
        }
        self.file = Some(file);
        self.offset = 0;
        self.pending = Bytes::new();
        self.discarding = None;
        self.rotated_at = None;
        if let Some(csv) = &mut self.csv {
            csv.restart();
        }
    }

    /// With a CSV header, resuming after byte 0: read the header row again from the start of
    /// the file, so the rows after it map to the same columns.
    fn read_csv_header(&mut self, file: &std::fs::File) -> Result<(), ConnectorError> {
        let Some(csv) = self.csv.as_mut().filter(|c| c.needs_header()) else {
            return Ok(());
        };
        let mut head = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut decoder = match self.codec {
            Some(codec) => Some(
                file.try_clone()
                    .and_then(|f| Decompressed::new(codec, f))
                    .map_err(|e| crate::error::io("reading", &self.path, &e))?,
            ),
            None => None,
        };
        loop {
            let at = head.len() as u64;
            let n = match decoder.as_mut() {
                Some(d) => d.read_at(at, buf.len()).map(|more| {
                    buf[..more.len()].copy_from_slice(&more);
                    more.len()
                }),
                None => file.read_at(&mut buf, at),
            }
            .map_err(|e| crate::error::io("reading", &self.path, &e))?;
            head.extend_from_slice(&buf[..n]);
            if csv.header_from(&head, &self.origin, n == 0)? {
                return Ok(());
            }
            if n == 0 || head.len() > self.rules.max_line_bytes {
                return Err(ConnectorError::data(format!(
                    "the CSV header of {} could not be read again to resume after byte {}: the file has no complete first row within max_line_bytes",
                    self.origin, self.offset
                )));
            }
        }
    }

    /// After reaching the end: was the file rewritten in place, so that what was just read
    /// is not the continuation of what was emitted? Then start it again from byte 0.
    fn rewritten_after_wait(&mut self) -> Result<bool, ConnectorError> {
        let handle = self.open_handle()?;
        let read_to = self.offset + self.pending.len() as u64;
        let identity = self.identity.as_ref().map(|(i, _)| i);
        let change = follow::rewritten(&handle.file, read_to, self.offset, identity)
            .map_err(|e| self.err("checking", &e))?;
        if change == Change::Rewritten {
            self.restart_in_place()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn restart_in_place(&mut self) -> Result<(), ConnectorError> {
        tracing::warn!(path = %self.path.display(), partition = self.identity.as_ref().map_or("", |i| &*i.1), offset = self.offset, "The file was truncated or rewritten in place; reading it again from the start.");
        let same = self.open_file()?;
        self.restart_with(same);
        Ok(())
    }

    /// At the end of the followed file: look for a rotation or a rewrite, or wait.
    fn at_end_while_following(&mut self) -> Result<Step, ConnectorError> {
        let poll = self.config.poll_interval.0;
        if self.rotated_at.is_some_and(|at| at.elapsed() >= poll) {
            // Read to its end once more after the rotation was seen: it is finished, and so is
            // a last line without a newline.
            let last = self.take_batch(true)?;
            let next = self.open_file()?;
            tracing::info!(path = %self.path.display(), partition = self.identity.as_ref().map_or("", |i| &*i.1), "The file was rotated; finished the old one, reading the new one from the start.");
            self.restart_with(next);
            return Ok(last.map_or(Step::Again, Step::Batch));
        }
        let handle = self.open_handle()?;
        let read_to = self.offset + self.pending.len() as u64;
        let identity = self.identity.as_ref().map(|(i, _)| i);
        let change = follow::detect(
            &self.path,
            &handle.file,
            handle.disk,
            read_to,
            self.offset,
            identity,
        )
        .map_err(|e| self.err("checking", &e))?;
        match change {
            Change::None => {}
            Change::Rotated => {
                self.rotated_at.get_or_insert_with(Instant::now);
            }
            Change::Rewritten => {
                self.restart_in_place()?;
                return Ok(Step::Again);
            }
        }
        Ok(Step::Idle)
    }

    /// Read on until there is a batch, the input ends, or (following) the file has nothing new
    /// for now. Cancel-safe like `next_batch`.
    pub(crate) async fn step(&mut self) -> Result<Step, ConnectorError> {
        loop {
            if self.done {
                return Ok(Step::Done);
            }
            let was_at_end = self.at_end;
            let n = self.read_more().await?;
            if n > 0 && was_at_end && self.config.follow && self.rewritten_after_wait()? {
                continue;
            }
            if n > 0 {
                if let Some(batch) = self.take_batch(false)? {
                    return Ok(Step::Batch(batch));
                }
                continue;
            }
            if self.config.follow {
                match self.at_end_while_following()? {
                    Step::Again => continue,
                    step => return Ok(step),
                }
            }
            self.done = true;
            return Ok(self.take_batch(true)?.map_or(Step::Done, Step::Batch));
        }
    }

    /// Take what is pending as the last line of the input (a file that went away).
    pub(crate) fn finish(&mut self) -> Result<Option<Batch>, ConnectorError> {
        self.done = true;
        self.take_batch(true)
    }

    /// The file open now (following, it changes with rotations).
    pub(crate) fn disk(&self) -> Option<DiskId> {
        self.file.as_ref().map(|f| f.disk)
    }
}

/// What one [`FileSource::step`] came to.
pub(crate) enum Step {
    /// Records (or dead letters).
    Batch(Batch),
    /// Following: nothing new now; look again after the poll interval.
    Idle,
    /// Look again at once (a rotation or rewrite was handled).
    Again,
    /// The input is read to its end.
    Done,
}

#[async_trait]
impl Source for FileSource {
    // Building checked that the input exists (unless following, which waits for it).
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        let open = self.open_file()?;
        let size = open
            .file
            .metadata()
            .map_err(|e| self.err("reading metadata of", &e))?
            .len();
        let fingerprint = Fingerprint::read(&open.file, !self.config.follow)
            .map_err(|e| self.err("reading", &e))?;
        let here = canonical_target(&self.path);
        let file = open.file.clone();
        let compressed = self.codec.is_some();
        // In a compressed file a position is a decompressed offset: the raw bytes cannot say
        // whether it is a line end, and the file, complete, is not rewritten in place.
        let size = if compressed { u64::MAX } else { size };
        let line_end = move |pos: u64| {
            let mut last = [0u8; 1];
            compressed || matches!(file.read_at(&mut last, pos - 1), Ok(1) if last[0] == b'\n')
        };
        let legacy = |p: &str| Path::new(p).is_absolute() && canonical_target(Path::new(p)) == here;
        let resume = resume.unwrap_or_default();
        let start = resume::start(
            &resume,
            &Observed {
                ino: open.disk.ino,
                fingerprint,
                size,
                line_end: &line_end,
                legacy: &legacy,
            },
        );
        let partition = start.identity.map(|i| i.partition());
        if let Some(warning) = start
            .warning
            .as_ref()
            .filter(|_| !(self.quiet && start.new_file))
        {
            tracing::warn!(path = %self.path.display(), partition = partition.as_deref().unwrap_or_default(), "{warning}");
        }
        if let Some(old) = &start.migrated_from {
            tracing::info!(path = %self.path.display(), from = %old, to = ?partition, "Took over the position of a partition named by path.");
        }
        if start.offset > 0 {
            tracing::info!(path = %self.path.display(), offset = start.offset, "Resuming file.");
        }
        self.identity = start.identity.zip(partition);
        self.offset = start.offset;
        self.resume = resume;
        if self.offset > 0 {
            self.read_csv_header(&open.file)?;
        }
        if let Some(codec) = self.codec {
            let decoder = open
                .file
                .try_clone()
                .and_then(|f| Decompressed::new(codec, f))
                .map_err(|e| self.err("reading", &e))?;
            self.decoder = Some(Arc::new(Mutex::new(decoder)));
        }
        self.file = Some(open);
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        loop {
            match self.step().await? {
                Step::Batch(batch) => return Ok(Some(batch)),
                Step::Done => return Ok(None),
                Step::Idle => tokio::time::sleep(self.config.poll_interval.0).await,
                Step::Again => {}
            }
        }
    }

    fn expected_total(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use std::time::Duration;

    use super::*;
    use sluice_core::units::{ByteSize, HumanDuration};
    use sluice_core::{Guarantee, Offset, Record};

    fn ctx(dir: &std::path::Path) -> BuildContext {
        BuildContext::new(
            "t",
            dir.to_path_buf(),
            dir.join("state"),
            Guarantee::AtLeastOnce,
        )
    }

    fn config(path: &str, read_size: u64) -> FileSourceConfig {
        FileSourceConfig {
            path: path.into(),
            format: LineFormat::Json,
            csv: None,
            compression: crate::config::Compression::Auto,
            follow: false,
            poll_interval: crate::config::default_poll(),
            read_size: ByteSize(read_size),
            max_line_bytes: ByteSize(crate::config::DEFAULT_MAX_LINE_BYTES),
            max_json_depth: sluice_core::json::DEFAULT_MAX_DEPTH,
        }
    }

    /// Every record and dead letter of `path`, read `read_size` bytes at a time with
    /// `max_line_bytes`, after `cp`.
    async fn read_with_limit(
        dir: &std::path::Path,
        read_size: u64,
        max_line_bytes: u64,
        cp: Option<Checkpoint>,
    ) -> (Vec<Record>, Vec<sluice_core::DeadRecord>) {
        let mut cfg = config("in.jsonl", read_size);
        cfg.max_line_bytes = ByteSize(max_line_bytes);
        let mut src = FileSourceConnector::build(cfg, &ctx(dir)).unwrap();
        src.open(cp).await.unwrap();
        let (mut records, mut dead) = (Vec::new(), Vec::new());
        for batch in drain(&mut src).await {
            records.extend(batch.records);
            dead.extend(batch.dead);
        }
        (records, dead)
    }

    #[tokio::test]
    async fn a_line_over_max_line_bytes_is_dead_lettered_without_being_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(20_000));
        let text = format!("{{\"i\":0}}\n{long}\n{{\"i\":1}}\n{long}");
        std::fs::write(dir.path().join("in.jsonl"), &text).unwrap();
        let (records, dead) = read_with_limit(dir.path(), 256, 1000, None).await;
        let values: Vec<&[u8]> = records.iter().map(|r| &r.value[..]).collect();
        assert_eq!(values, [&b"{\"i\":0}"[..], &b"{\"i\":1}"[..]]);
        assert_eq!(dead.len(), 2, "both long lines, the last without a newline");
        let first_end = 8 + long.len() as i64 + 1;
        assert_eq!(dead[0].record.position.offset, Offset::Int(first_end));
        assert_eq!(
            dead[1].record.position.offset,
            Offset::Int(text.len() as i64)
        );
        // Its head: what was buffered when it went over the limit, at most 4 KiB.
        let head = dead[0].record.value.len();
        assert!(head > 1000 && head <= TOO_LONG_HEAD, "{head}");
        assert!(long.as_bytes().starts_with(&dead[0].record.value));
        assert_eq!(
            dead[0].reason,
            format!(
                "line too long at byte 8 of {}: {} bytes (max_line_bytes = 1000)",
                dir.path().join("in.jsonl").display(),
                long.len() + 1
            )
        );
        // Resuming after the first dead letter skips it and finds the rest.
        let mut cp = Checkpoint::default();
        cp.advance(&dead[0].record.position);
        let (records, dead) = read_with_limit(dir.path(), 256, 1000, Some(cp)).await;
        assert_eq!(records.len(), 1);
        assert_eq!(&records[0].value[..], b"{\"i\":1}");
        assert_eq!(dead.len(), 1);
    }

    #[tokio::test]
    async fn a_long_line_under_the_limit_is_read_whole_across_many_reads() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{{\"pad\":\"{}\"}}", "y".repeat(300_000));
        std::fs::write(
            dir.path().join("in.jsonl"),
            format!("{long}\n{{\"i\":1}}\n"),
        )
        .unwrap();
        let (records, dead) = read_with_limit(dir.path(), 64, 1 << 20, None).await;
        assert!(dead.is_empty(), "{:?}", dead.first().map(|d| &d.reason));
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].value.len(), long.len());
    }

    #[tokio::test]
    async fn a_line_nested_deeper_than_max_json_depth_is_dead_lettered_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.jsonl"), "[[1]]\n[[[1]]]\n{\"a\":[]}\n").unwrap();
        let mut cfg = config("in.jsonl", 1 << 20);
        cfg.max_json_depth = 2;
        let mut src = FileSourceConnector::build(cfg.clone(), &ctx(dir.path())).unwrap();
        src.open(None).await.unwrap();
        let batches = drain(&mut src).await;
        let records: usize = batches.iter().map(|b| b.records.len()).sum();
        let dead: Vec<&String> = batches
            .iter()
            .flat_map(|b| &b.dead)
            .map(|d| &d.reason)
            .collect();
        assert_eq!(records, 2);
        assert_eq!(
            dead,
            [&format!(
                "invalid JSON at byte 6 of {}: nesting deeper than 2 at byte 2 of the line",
                dir.path().join("in.jsonl").display()
            )]
        );
        // 0 would refuse every array and object: a config error at the field.
        cfg.max_json_depth = 0;
        let err = FileSourceConnector::build(cfg, &ctx(dir.path()))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("max_json_depth must be at least 1"),
            "{err}"
        );
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

    fn records(batches: Vec<Batch>) -> Vec<Record> {
        batches.into_iter().flat_map(|b| b.records).collect()
    }

    fn write_lines(path: &std::path::Path, from: u32, to: u32) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for i in from..to {
            writeln!(f, "{{\"i\":{i}}}").unwrap();
        }
    }

    /// Everything read from `path` (as `spelled`) after `cp`, and the checkpoint after it.
    async fn read_all(
        dir: &std::path::Path,
        spelled: &str,
        cp: &Checkpoint,
    ) -> (Vec<Record>, Checkpoint) {
        let mut src = FileSourceConnector::build(config(spelled, 64), &ctx(dir)).unwrap();
        src.open(Some(cp.clone())).await.unwrap();
        let rest = records(drain(&mut src).await);
        let mut after = cp.clone();
        for r in &rest {
            after.advance(&r.position);
        }
        (rest, after)
    }

    #[tokio::test]
    async fn another_spelling_or_a_rename_of_the_file_resumes_the_same_partition() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        write_lines(&dir.path().join("in.jsonl"), 0, 100);
        let (all, cp) = read_all(dir.path(), "in.jsonl", &Checkpoint::default()).await;
        assert_eq!(all.len(), 100);
        assert!(all[0].position.partition.starts_with("file:"));
        for spelled in ["./in.jsonl", "sub/../in.jsonl"] {
            let (again, _) = read_all(dir.path(), spelled, &cp).await;
            assert_eq!(again.len(), 0, "{spelled} read again");
        }
        std::fs::rename(
            dir.path().join("in.jsonl"),
            dir.path().join("sub/moved.jsonl"),
        )
        .unwrap();
        write_lines(&dir.path().join("sub/moved.jsonl"), 100, 110);
        let (rest, _) = read_all(dir.path(), "sub/moved.jsonl", &cp).await;
        assert_eq!(rest.len(), 10);
        assert_eq!(&rest[0].value[..], b"{\"i\":100}");
    }

    #[tokio::test]
    async fn a_checkpoint_keyed_by_path_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        write_lines(&dir.path().join("in.jsonl"), 0, 100);
        let (all, _) = read_all(dir.path(), "in.jsonl", &Checkpoint::default()).await;
        // How versions before partition identities named the partition.
        let old_key = ctx(dir.path())
            .resolve("./in.jsonl".as_ref())
            .display()
            .to_string();
        let mut cp = Checkpoint::default();
        cp.offsets
            .insert(Arc::from(old_key), all[41].position.offset.clone());
        let (rest, _) = read_all(dir.path(), "in.jsonl", &cp).await;
        assert_eq!(rest.len(), 58);
        assert_eq!(&rest[0].value[..], b"{\"i\":42}");
        assert_eq!(rest[0].position.partition, all[0].position.partition);
    }

    #[tokio::test]
    async fn a_file_replaced_or_truncated_while_stopped_is_read_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        write_lines(&path, 0, 100);
        let (_, cp) = read_all(dir.path(), "in.jsonl", &Checkpoint::default()).await;
        // Replaced by a longer file (a new inode), first line identical.
        let tmp = dir.path().join("new.jsonl");
        write_lines(&tmp, 0, 300);
        std::fs::rename(&tmp, &path).unwrap();
        let (rest, cp) = read_all(dir.path(), "in.jsonl", &cp).await;
        assert_eq!(rest.len(), 300, "the new file is read whole");
        // Truncated in place and written again, shorter.
        std::fs::write(&path, "").unwrap();
        write_lines(&path, 0, 5);
        let (rest, _) = read_all(dir.path(), "in.jsonl", &cp).await;
        assert_eq!(rest.len(), 5);
        assert!(
            rest[0].position.partition.ends_with(":2"),
            "a new generation"
        );
        // A path-named position past the end: read from the start, not refused.
        let mut old = Checkpoint::default();
        old.offsets
            .insert(Arc::from(path.display().to_string()), Offset::Int(1000));
        let (rest, _) = read_all(dir.path(), "in.jsonl", &old).await;
        assert_eq!(rest.len(), 5);
    }

    /// Read batches until `n` records came, within a deadline.
    async fn take(src: &mut Box<dyn Source>, n: usize) -> Vec<Record> {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while out.len() < n {
                out.extend(src.next_batch().await.unwrap().unwrap().records);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("only {} of {n} records came", out.len()));
        out
    }

    fn values(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect()
    }

    fn lines(from: u32, to: u32) -> Vec<String> {
        (from..to).map(|i| format!("{{\"i\":{i}}}")).collect()
    }

    #[tokio::test]
    async fn a_csv_file_resumed_in_the_middle_reads_its_header_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("id,name\n");
        for i in 0..50 {
            text.push_str(&format!("{i},\"n {i}\"\n"));
        }
        std::fs::write(dir.path().join("in.csv"), text).unwrap();
        let mut cfg = config("in.csv", 64);
        cfg.format = LineFormat::Csv;
        let mut options = crate::config::CsvInput::default();
        options
            .types
            .insert("id".into(), crate::config::CsvType::Int);
        cfg.csv = Some(options);
        let mut src = FileSourceConnector::build(cfg.clone(), &ctx(dir.path())).unwrap();
        src.open(None).await.unwrap();
        let all = records(drain(&mut src).await);
        assert_eq!(all.len(), 50);
        assert_eq!(&all[0].value[..], br#"{"id":0,"name":"n 0"}"#);
        let mut cp = Checkpoint::default();
        cp.advance(&all[19].position);
        let mut src = FileSourceConnector::build(cfg, &ctx(dir.path())).unwrap();
        src.open(Some(cp)).await.unwrap();
        let rest = records(drain(&mut src).await);
        assert_eq!(values(&rest), values(&all[20..]));
    }

    #[tokio::test]
    async fn a_csv_row_over_max_line_bytes_is_skipped_to_its_end_past_quoted_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x\n".repeat(5000);
        let text = format!("id,note\n1,short\n2,\"{long}\"\n3,after\n");
        std::fs::write(dir.path().join("in.csv"), &text).unwrap();
        let mut cfg = config("in.csv", 64);
        cfg.format = LineFormat::Csv;
        cfg.max_line_bytes = ByteSize(1000);
        let mut src = FileSourceConnector::build(cfg, &ctx(dir.path())).unwrap();
        src.open(None).await.unwrap();
        let batches = drain(&mut src).await;
        let dead: Vec<_> = batches.iter().flat_map(|b| &b.dead).collect();
        assert_eq!(
            values(&records(batches.clone())),
            [
                r#"{"id":"1","note":"short"}"#,
                r#"{"id":"3","note":"after"}"#
            ]
        );
        assert_eq!(dead.len(), 1);
        let start = text.find("2,").unwrap();
        assert_eq!(
            dead[0].reason,
            format!(
                "line too long at byte {start} of {}: {} bytes (max_line_bytes = 1000)",
                dir.path().join("in.csv").display(),
                long.len() + 5
            )
        );
        assert_eq!(
            dead[0].record.position.offset,
            Offset::Int(text.find("3,after").unwrap() as i64)
        );
    }

    #[tokio::test]
    async fn gzip_and_zstd_files_are_read_decompressed_and_resume_at_decompressed_offsets() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let text: String = lines(0, 100).iter().map(|l| format!("{l}\n")).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        std::fs::write(dir.path().join("in.jsonl.gz"), gz.finish().unwrap()).unwrap();
        let zst = zstd::encode_all(text.as_bytes(), 1).unwrap();
        std::fs::write(dir.path().join("in.jsonl.zst"), zst).unwrap();
        for name in ["in.jsonl.gz", "in.jsonl.zst"] {
            let (all, _) = read_all(dir.path(), name, &Checkpoint::default()).await;
            assert_eq!(values(&all), lines(0, 100), "{name}");
            let mut cp = Checkpoint::default();
            cp.advance(&all[41].position);
            assert_eq!(
                all[41].position.offset,
                Offset::Int(text.find("{\"i\":42}").unwrap() as i64)
            );
            let (rest, _) = read_all(dir.path(), name, &cp).await;
            assert_eq!(values(&rest), lines(42, 100), "{name}");
        }
        // Following a compressed file is refused at build.
        let mut cfg = config("in.jsonl.gz", 64);
        cfg.follow = true;
        let err = FileSourceConnector::build(cfg, &ctx(dir.path()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("cannot be used with it"), "{err}");
    }

    #[tokio::test]
    async fn following_reads_a_file_truncated_in_place_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        write_lines(&path, 0, 10);
        let mut cfg = config("app.log", 64);
        cfg.follow = true;
        cfg.poll_interval = HumanDuration(Duration::from_millis(10));
        let mut src = FileSourceConnector::build(cfg, &ctx(dir.path())).unwrap();
        src.open(None).await.unwrap();
        assert_eq!(values(&take(&mut src, 10).await), lines(0, 10));
        // `: > app.log`, then 30 lines, all before the source looks again.
        std::fs::write(&path, "").unwrap();
        write_lines(&path, 10, 40);
        assert_eq!(values(&take(&mut src, 30).await), lines(10, 40));
        // The same first line again, written before the source looks.
        std::fs::write(&path, "").unwrap();
        write_lines(&path, 10, 12);
        let again = take(&mut src, 2).await;
        assert_eq!(values(&again), lines(10, 12));
        assert!(
            again[0].position.partition.ends_with(":2"),
            "{}",
            again[0].position
        );
    }

    #[tokio::test]
    async fn following_finishes_a_rotated_file_then_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        write_lines(&path, 0, 10);
        let mut cfg = config("app.log", 64);
        cfg.follow = true;
        cfg.poll_interval = HumanDuration(Duration::from_millis(10));
        let mut src = FileSourceConnector::build(cfg, &ctx(dir.path())).unwrap();
        src.open(None).await.unwrap();
        assert_eq!(values(&take(&mut src, 10).await), lines(0, 10));
        // The writer adds to the file it has open, rotation renames it, a new file starts.
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        write_lines(&dir.path().join("app.log.1"), 10, 15);
        write_lines(&path, 15, 45);
        let got = take(&mut src, 35).await;
        assert_eq!(values(&got), lines(10, 45));
        assert_ne!(got[0].position.partition, got[34].position.partition);
    }
}
