//! The file sink: one value per line, fsync'd before a write counts as durable, rotated by size,
//! exactly-once through a checkpoint sidecar (see `sink_state`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Guarantee, Record, Sink, SinkConnector, SinkContext,
    WriteReport,
};

use crate::config::{FileSinkConfig, OutputCompression};
use crate::csv_out::CsvWrite;
use crate::sink_state::{self, SinkState};
use sluice_core::local::canonical_target;

/// Registers the file sink.
pub struct FileSinkConnector;

impl SinkConnector for FileSinkConnector {
    const TYPE: &'static str = "file";
    const DOC: &'static str = "Appends each record value as one line (or a CSV row) to a file, optionally gzip-compressed; fsync per write; size-based rotation; exactly-once via a checkpoint sidecar.";
    type Config = FileSinkConfig;

    fn build(config: FileSinkConfig, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        if config.rotate_bytes.is_some_and(|b| b.0 == 0) {
            return Err(ConnectorError::config("rotate_bytes must be more than 0"));
        }
        let csv = CsvWrite::from_config(config.format, config.csv.as_ref())?;
        Ok(Box::new(FileSink {
            path: ctx.local_file("path", &config.path)?,
            csv,
            config,
            open: None,
            state: None,
        }))
    }
}

/// A running file sink.
pub struct FileSink {
    path: PathBuf,
    /// With `format = "csv"`: the columns, once known.
    csv: Option<CsvWrite>,
    config: FileSinkConfig,
    open: Option<OpenFile>,
    /// With exactly-once: the last committed state (see `sink_state`).
    state: Option<SinkState>,
}

/// The active file, moved to a blocking thread for each write.
struct OpenFile {
    file: File,
    size: u64,
}

fn open_append(path: &Path) -> std::io::Result<OpenFile> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let existed = path.exists();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    if !existed {
        // A new file's name is durable only once its directory is: without this, data fsync'd
        // into it (and committed) can vanish with the name on power loss.
        sink_state::sync_dir(path)?;
    }
    let size = file.metadata()?.len();
    Ok(OpenFile { file, size })
}

/// Cut a torn last line — the bytes after the last newline, left by a process killed inside a
/// write — so the next line does not glue onto it. Returns how many bytes were cut. Only for
/// at-least-once: those bytes were never committed, so the source sends them again. CSV rows
/// may hold newlines in quoted fields, so there the file is parsed to its last complete row.
fn cut_torn_tail(open: &mut OpenFile, csv: Option<&CsvWrite>, gzip: bool) -> std::io::Result<u64> {
    const STEP: u64 = 64 * 1024;
    if gzip {
        // One member per write: keep the complete members.
        let keep = crate::gzip_out::complete_members(&open.file, open.size)?;
        return cut_to(open, keep);
    }
    if let Some(csv) = csv {
        let keep = crate::csv_in::last_row_end(&open.file, open.size, csv.delimiter())?;
        return cut_to(open, keep);
    }
    let mut end = open.size;
    let mut buf = vec![0u8; STEP as usize];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(STEP);
        let chunk = &mut buf[..(end - start) as usize];
        open.file.read_exact_at(chunk, start)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            break start + i as u64 + 1;
        }
        end = start;
    };
    cut_to(open, keep)
}

fn cut_to(open: &mut OpenFile, keep: u64) -> std::io::Result<u64> {
    let cut = open.size - keep;
    if cut > 0 {
        open.file.set_len(keep)?;
        open.file.sync_all()?;
        open.size = keep;
    }
    Ok(cut)
}

/// Append `data` (rotating first when it would pass the limit), fsync, and with exactly-once
/// record the new length and checkpoint in the sidecar.
fn write_blocking(
    mut open: OpenFile,
    path: &Path,
    config: &FileSinkConfig,
    header: Option<&[u8]>,
    data: &[u8],
    mut state: Option<SinkState>,
    checkpoint: Option<Checkpoint>,
) -> std::io::Result<(OpenFile, Option<SinkState>)> {
    let gzip = config.compression == OutputCompression::Gzip;
    let compressed;
    let data = if gzip && !data.is_empty() {
        // The header (when the file starts here) goes into the write's member below.
        compressed = crate::gzip_out::member(data)?;
        &compressed[..]
    } else {
        data
    };
    if let Some(limit) = config.rotate_bytes
        && open.size > 0
        && open.size + data.len() as u64 > limit.0
    {
        open.file.sync_all()?;
        drop(open);
        let n = sink_state::free_rotation(path, state.as_ref().map_or(1, |s| s.rotations + 1));
        std::fs::rename(path, sink_state::rotated_path(path, n))?;
        // Creating the new file syncs the directory, which makes the rename durable too.
        open = open_append(path)?;
        if let Some(st) = state.as_mut() {
            // The rotation commits on its own, before new data goes in (see `sink_state`).
            st.rotations = n;
            st.length = 0;
            sink_state::store(path, st)?;
        }
    }
    if let Some(header) = header.filter(|_| open.size == 0 && !data.is_empty()) {
        // A CSV header starts every file, and commits with its first rows (with gzip, as a
        // member of its own before the first write's).
        let member;
        let header = if gzip {
            member = crate::gzip_out::member(header)?;
            &member[..]
        } else {
            header
        };
        open.file.write_all(header)?;
        open.size += header.len() as u64;
    }
    open.file.write_all(data)?;
    open.size += data.len() as u64;
    if config.fsync || state.is_some() {
        open.file.sync_data()?;
    }
    if let (Some(st), Some(cp)) = (state.as_mut(), checkpoint) {
        st.length = open.size;
        st.checkpoint = cp;
        sink_state::store(path, st)?;
    }
    Ok((open, state))
}

/// Each value as one line.
pub(crate) fn lines_of(records: &[Record]) -> Vec<u8> {
    let mut data = Vec::with_capacity(records.iter().map(|r| r.value.len() + 1).sum());
    for r in records {
        data.extend_from_slice(&r.value);
        data.push(b'\n');
    }
    data
}

impl FileSink {
    fn gzip(&self) -> bool {
        self.config.compression == OutputCompression::Gzip
    }

    fn io(&self, what: &str, e: &std::io::Error) -> ConnectorError {
        crate::error::io(what, &self.path, e)
    }

    /// Open the file; with exactly-once first bring it back to the state its sidecar records
    /// (read again from disk: a failed write may have stored a rotation this sink's copy of the
    /// state does not know).
    fn reopen(&mut self) -> Result<OpenFile, ConnectorError> {
        if self.state.is_some() {
            let mut state = sink_state::load(&self.path)
                .map_err(|e| self.io("reading the checkpoint of", &e))?
                .ok_or_else(|| {
                    ConnectorError::external(format!(
                        "the exactly-once checkpoint {} disappeared",
                        sink_state::sidecar_path(&self.path).display()
                    ))
                })?;
            let done = sink_state::recover(&self.path, &mut state)
                .map_err(|e| self.io("recovering", &e))?;
            if done.finished_rotation {
                tracing::info!(path = %self.path.display(), rotation = state.rotations, "Finished a rotation interrupted before its checkpoint.");
            }
            if done.discarded > 0 {
                tracing::info!(path = %self.path.display(), bytes = done.discarded, "Discarded data written after the last exactly-once checkpoint.");
            }
            self.state = Some(state);
        }
        let mut open = open_append(&self.path).map_err(|e| self.io("opening", &e))?;
        if self.state.is_none() {
            let cut = cut_torn_tail(&mut open, self.csv.as_ref(), self.gzip())
                .map_err(|e| self.io("repairing", &e))?;
            if cut > 0 {
                tracing::warn!(path = %self.path.display(), bytes = cut, "Cut a torn last line left by an interrupted write; the source sends it again.");
            }
        }
        let gzip = self.gzip();
        if let Some(csv) = self.csv.as_mut().filter(|_| open.size > 0) {
            csv.adopt_header(&self.path, gzip)
                .map_err(|e| crate::error::io("appending to", &self.path, &e))?;
        }
        Ok(open)
    }
}

#[async_trait]
impl Sink for FileSink {
    fn unchecked(&self) -> Vec<String> {
        vec![format!(
            "that {} can be created or appended to (permissions, free space)",
            self.path.display()
        )]
    }

    async fn open(&mut self, ctx: &SinkContext) -> Result<(), ConnectorError> {
        if ctx.guarantee == Guarantee::ExactlyOnce {
            let loaded = sink_state::load(&self.path)
                .map_err(|e| self.io("reading the checkpoint of", &e))?;
            let state = match loaded {
                Some(state) if state.job != ctx.job || state.sink != ctx.sink => {
                    return Err(ConnectorError::config(format!(
                        "{} belongs to job {:?} sink {:?}; an exactly-once file sink needs a file of its own",
                        self.path.display(),
                        state.job,
                        state.sink
                    )));
                }
                Some(state) => state,
                None => {
                    // First run: what is already in the file is not ours; start the record there.
                    let length = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
                    let mut state = SinkState {
                        job: ctx.job.clone(),
                        sink: ctx.sink.clone(),
                        rotations: 0,
                        length,
                        checkpoint: Checkpoint::default(),
                        seq: 0,
                    };
                    if let Some(dir) = self.path.parent() {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| self.io("creating the directory of", &e))?;
                    }
                    sink_state::store(&self.path, &mut state)
                        .map_err(|e| self.io("writing the checkpoint of", &e))?;
                    state
                }
            };
            self.state = Some(state);
        }
        self.open = Some(self.reopen()?);
        Ok(())
    }

    /// The file's canonical path: two spellings of one file are one destination.
    fn destination(&self) -> Option<String> {
        Some(canonical_target(&self.path).display().to_string())
    }

    fn transactional(&self) -> bool {
        true
    }

    async fn committed_checkpoint(&mut self) -> Result<Option<Checkpoint>, ConnectorError> {
        Ok(self
            .state
            .as_ref()
            .map(|s| s.checkpoint.clone())
            .filter(|cp| !cp.is_empty()))
    }

    /// Rewrite the sidecar: the file as it is now (nothing is cut) with the new checkpoint.
    async fn reset_checkpoint(
        &mut self,
        ctx: &SinkContext,
        partitions: Option<&Checkpoint>,
    ) -> Result<(), ConnectorError> {
        let loaded =
            sink_state::load(&self.path).map_err(|e| self.io("reading the checkpoint of", &e))?;
        let mut state = match loaded {
            Some(state) if state.job != ctx.job || state.sink != ctx.sink => {
                return Err(ConnectorError::config(format!(
                    "{} belongs to job {:?} sink {:?}, not to this job",
                    self.path.display(),
                    state.job,
                    state.sink
                )));
            }
            Some(state) => state,
            None if partitions.is_none() => return Ok(()),
            None => SinkState {
                job: ctx.job.clone(),
                sink: ctx.sink.clone(),
                ..SinkState::default()
            },
        };
        match partitions {
            None => state.checkpoint = Checkpoint::default(),
            Some(cp) => state.checkpoint.offsets.extend(cp.offsets.clone()),
        }
        // The active file stays what the sidecar names (rotation numbers only grow); its
        // length is what is on disk now, so the next open cuts nothing.
        state.length = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io("creating the directory of", &e))?;
        }
        sink_state::store(&self.path, &mut state)
            .map_err(|e| self.io("writing the checkpoint of", &e))
    }

    async fn write(
        &mut self,
        records: &[Record],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let (data, header) = match self.csv.as_mut() {
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
                (encoded.rows, csv.header_row())
            }
            None => (lines_of(records), None),
        };
        // After a failed write the file is reopened: with at-least-once a partial last line is
        // cut (the retry sends it again); with exactly-once the file is cut back to the
        // checkpoint.
        let open = match self.open.take() {
            Some(open) => open,
            None => self.reopen()?,
        };
        let (path, config) = (self.path.clone(), self.config.clone());
        let (state, cp) = (self.state.clone(), checkpoint.cloned());
        let result = tokio::task::spawn_blocking(move || {
            write_blocking(open, &path, &config, header.as_deref(), &data, state, cp)
        })
        .await
        .map_err(|e| crate::error::task("write", &e))?;
        let (open, state) = result.map_err(|e| self.io("writing", &e))?;
        self.open = Some(open);
        self.state = state;
        Ok(WriteReport::ok())
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(open) = self.open.take() {
            open.file.sync_all().map_err(|e| self.io("closing", &e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use sluice_core::Position;
    use sluice_core::units::ByteSize;

    /// A file sink of job "t" writing `path` (relative to `dir`), built and opened.
    async fn opened(
        dir: &Path,
        path: &str,
        rotate_bytes: Option<u64>,
        guarantee: Guarantee,
    ) -> Box<dyn Sink> {
        let ctx = BuildContext::new("t", dir.to_path_buf(), dir.join("s"), guarantee);
        let config = FileSinkConfig {
            path: path.into(),
            rotate_bytes: rotate_bytes.map(ByteSize),
            fsync: true,
            format: Default::default(),
            csv: None,
            compression: OutputCompression::None,
        };
        let mut sink = FileSinkConnector::build(config, &ctx).unwrap();
        sink.open(&SinkContext {
            job: "t".into(),
            sink: "file".into(),
            guarantee,
        })
        .await
        .unwrap();
        sink
    }

    #[tokio::test]
    async fn at_least_once_cuts_a_torn_last_line_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.jsonl");
        std::fs::write(&path, "{\"i\":0}\n{\"i\":1}\n{\"i\"").unwrap();
        let mut sink = opened(dir.path(), "o.jsonl", None, Guarantee::AtLeastOnce).await;
        let p: Arc<str> = Arc::from("x");
        sink.write(&[Record::new("{\"i\":2}", Position::int(p, 1))], None)
            .await
            .unwrap();
        sink.close().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n"
        );
        // A file that is one torn line is cut to nothing.
        let mut open = open_append(&path).unwrap();
        std::fs::write(&path, "{\"i\"").unwrap();
        open.size = 4;
        assert_eq!(cut_torn_tail(&mut open, None, false).unwrap(), 4);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[tokio::test]
    async fn exactly_once_survives_a_crash_mid_rotation_after_rotated_files_were_shipped() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = dir.path().join("shipped");
        std::fs::create_dir(&shipped).unwrap();
        let path = dir.path().join("o.jsonl");
        let ship = |tag: &str| {
            for n in 1..10 {
                let rotated = sink_state::rotated_path(&path, n);
                if rotated.exists() {
                    std::fs::rename(&rotated, shipped.join(format!("{tag}-{n}"))).unwrap();
                }
            }
        };
        let ctx = BuildContext::new(
            "t",
            dir.path().to_path_buf(),
            dir.path().join("s"),
            Guarantee::ExactlyOnce,
        );
        let sink_ctx = SinkContext {
            job: "t".into(),
            sink: "file".into(),
            guarantee: Guarantee::ExactlyOnce,
        };
        let config = FileSinkConfig {
            path: "o.jsonl".into(),
            rotate_bytes: Some(ByteSize(10)),
            fsync: true,
            format: Default::default(),
            csv: None,
            compression: OutputCompression::None,
        };
        let p: Arc<str> = Arc::from("x");
        let rec = |i: i64| Record::new(format!("{{\"i\":{i}}}"), Position::int(p.clone(), i));
        let cp = |i: i64| {
            let mut c = Checkpoint::default();
            c.advance(&Position::int(p.clone(), i));
            c
        };
        let mut sink = FileSinkConnector::build(config.clone(), &ctx).unwrap();
        sink.open(&sink_ctx).await.unwrap();
        sink.write(&[rec(0)], Some(&cp(0))).await.unwrap();
        sink.write(&[rec(1)], Some(&cp(1))).await.unwrap(); // rotates
        ship("a");
        // The next write rotates again and "crashes" before its checkpoint is stored: a
        // directory in the sidecar's place makes the store fail; the sidecar is put back
        // as it was.
        let side = sink_state::sidecar_path(&path);
        let aside = dir.path().join("sidecar-aside");
        std::fs::rename(&side, &aside).unwrap();
        std::fs::create_dir(&side).unwrap();
        assert!(sink.write(&[rec(2)], Some(&cp(2))).await.is_err());
        drop(sink);
        ship("b");
        std::fs::remove_dir(&side).unwrap();
        std::fs::rename(&aside, &side).unwrap();
        let mut sink = FileSinkConnector::build(config, &ctx).unwrap();
        sink.open(&sink_ctx).await.unwrap();
        assert_eq!(sink.committed_checkpoint().await.unwrap(), Some(cp(1)));
        sink.write(&[rec(2)], Some(&cp(2))).await.unwrap();
        sink.write(&[rec(3)], Some(&cp(3))).await.unwrap();
        sink.close().await.unwrap();
        ship("c");
        let mut lines = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(&shipped)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.push(path.clone());
        for f in files {
            lines.extend(
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(String::from),
            );
        }
        lines.sort();
        assert_eq!(lines, ["{\"i\":0}", "{\"i\":1}", "{\"i\":2}", "{\"i\":3}"]);
    }

    #[tokio::test]
    async fn gzip_csv_output_is_one_member_per_write_and_recovery_cuts_at_a_member() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.csv.gz");
        let p: Arc<str> = Arc::from("x");
        let rec = |i: i64| Record::new(format!("{{\"i\":{i}}}"), Position::int(p.clone(), i));
        let cp = |i: i64| {
            let mut c = Checkpoint::default();
            c.advance(&Position::int(p.clone(), i));
            c
        };
        let decoded = || {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            text
        };
        let torn = || {
            let member = crate::gzip_out::member(b"9\n").unwrap();
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&member[..member.len() - 2]).unwrap();
        };
        for guarantee in [Guarantee::ExactlyOnce, Guarantee::AtLeastOnce] {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(sink_state::sidecar_path(&path));
            let ctx = BuildContext::new(
                "t",
                dir.path().to_path_buf(),
                dir.path().join("s"),
                guarantee,
            );
            let sink_ctx = SinkContext {
                job: "t".into(),
                sink: "file".into(),
                guarantee,
            };
            let config = FileSinkConfig {
                path: "o.csv.gz".into(),
                rotate_bytes: None,
                fsync: true,
                format: crate::config::OutputFormat::Csv,
                csv: None,
                compression: OutputCompression::Gzip,
            };
            let mut sink = FileSinkConnector::build(config.clone(), &ctx).unwrap();
            sink.open(&sink_ctx).await.unwrap();
            sink.write(&[rec(0), rec(1)], Some(&cp(1))).await.unwrap();
            sink.write(&[rec(2)], Some(&cp(2))).await.unwrap();
            drop(sink);
            // A write cut short by a crash.
            torn();
            let mut sink = FileSinkConnector::build(config, &ctx).unwrap();
            sink.open(&sink_ctx).await.unwrap();
            sink.write(&[rec(3)], Some(&cp(3))).await.unwrap();
            sink.close().await.unwrap();
            assert_eq!(decoded(), "i\n0\n1\n2\n3\n", "{guarantee:?}");
        }
    }

    #[test]
    fn creating_or_rotating_a_file_syncs_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.jsonl");
        let syncs = || sink_state::DIR_SYNCS.with(|n| n.get());
        let before = syncs();
        let open = open_append(&path).unwrap();
        assert_eq!(syncs(), before + 1, "creating the file");
        drop(open);
        let open = open_append(&path).unwrap();
        assert_eq!(syncs(), before + 1, "opening an existing file");
        let config = FileSinkConfig {
            path: path.clone(),
            rotate_bytes: Some(ByteSize(4)),
            fsync: true,
            format: Default::default(),
            csv: None,
            compression: OutputCompression::None,
        };
        let (open, _) = write_blocking(open, &path, &config, None, b"abc\n", None, None).unwrap();
        let (_, _) = write_blocking(open, &path, &config, None, b"def\n", None, None).unwrap();
        assert_eq!(syncs(), before + 2, "rotating");
    }

    #[tokio::test]
    async fn appends_lines_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = opened(dir.path(), "out/o.jsonl", Some(30), Guarantee::AtLeastOnce).await;
        let p: Arc<str> = Arc::from("x");
        let recs: Vec<Record> = (0..3)
            .map(|i| Record::new(format!("{{\"i\":{i}}}"), Position::int(p.clone(), i)))
            .collect();
        sink.write(&recs, None).await.unwrap();
        sink.write(&recs, None).await.unwrap();
        sink.close().await.unwrap();
        let first = std::fs::read_to_string(dir.path().join("out/o.jsonl.1")).unwrap();
        let second = std::fs::read_to_string(dir.path().join("out/o.jsonl")).unwrap();
        assert_eq!(first, "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n");
        assert_eq!(second, first);
    }
}
