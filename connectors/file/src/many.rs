//! Many files as one source: `path` a glob (`logs/*.jsonl`, `in/**/*.csv`) or a directory (its
//! regular files, not its subdirectories). Every matching file is read by its own
//! [`FileSource`], so it is its own partition (its identity: inode and fingerprint), resumes at
//! its own position and keeps its own CSV header and compression (by its own extension with
//! `compression = "auto"`).
//!
//! Read to the end (the default), the files found at start are read one after another in
//! path order. With `follow = true` they are read round-robin, and the pattern is looked at
//! again every `poll_interval`: a new matching file is opened with every position known so far
//! (the checkpoint it started from, plus what this run read), so a file that was only renamed
//! within the pattern (`app.log` to `app.log.1`) continues where it was instead of being read
//! again. A file open under another path (a hard link, a rename not yet noticed) is not opened
//! twice. A followed file whose path is gone is finished and closed after one more poll
//! interval.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use sluice_core::{Batch, BuildContext, Checkpoint, ConnectorError, Source};

use crate::config::FileSourceConfig;
use crate::csv_in::CsvRead;
use crate::decompress::Codec;
use crate::fingerprint::DiskId;
use crate::lines::LineRules;
use crate::source::{FileSource, Step};

/// The files a `path` names, when it names more than one file.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    /// An absolute glob.
    glob: String,
}

impl Pattern {
    /// `Some` when `path` is a glob or a directory, resolved against the job's directory.
    pub(crate) fn of(path: &Path, ctx: &BuildContext) -> Result<Option<Self>, ConnectorError> {
        let text = path.to_string_lossy();
        if text.contains(['*', '?', '[']) {
            // Confinement is checked on the directory the glob starts from, and on every file.
            let fixed: PathBuf = path
                .components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                .collect();
            let base = ctx.local_file("path", &fixed)?;
            let rest: PathBuf = path.components().skip(fixed.components().count()).collect();
            let glob = format!(
                "{}/{}",
                glob::Pattern::escape(&base.to_string_lossy()),
                rest.to_string_lossy()
            );
            glob::Pattern::new(&glob).map_err(|e| {
                ConnectorError::config(format!("{text:?} is not a valid glob: {e}")).at("path")
            })?;
            return Ok(Some(Self { glob }));
        }
        let resolved = ctx.local_file("path", path)?;
        if resolved.is_dir() {
            let glob = format!("{}/*", glob::Pattern::escape(&resolved.to_string_lossy()));
            return Ok(Some(Self { glob }));
        }
        Ok(None)
    }

    /// The regular files matching now, in path order.
    fn files(&self) -> Result<Vec<PathBuf>, ConnectorError> {
        let paths = glob::glob(&self.glob).map_err(|e| {
            ConnectorError::config(format!("{} is not a valid glob: {e}", self.glob)).at("path")
        })?;
        let mut out = Vec::new();
        for entry in paths {
            match entry {
                Ok(p) if p.is_file() => out.push(p),
                Ok(_) => {}
                // A directory the walk cannot enter: not a file of ours to read.
                Err(e) => {
                    tracing::warn!(error = %e, pattern = %self.glob, "Cannot look into a directory of the pattern.")
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// One file being read.
struct Member {
    path: PathBuf,
    source: FileSource,
    /// Following: when its path was first seen naming no file.
    gone_since: Option<Instant>,
}

/// A running source of many files (see the module doc).
pub(crate) struct Many {
    pattern: Pattern,
    config: FileSourceConfig,
    rules: LineRules,
    csv: Option<CsvRead>,
    ctx: BuildContext,
    members: Vec<Member>,
    /// Paths that have a member.
    paths: BTreeSet<PathBuf>,
    /// The member to read next.
    next: usize,
    /// The checkpoint `open` got, advanced over every record read since: where a file found
    /// later starts.
    known: Checkpoint,
    scanned_at: Option<Instant>,
}

impl Many {
    /// Check the pattern: read to the end, it must match a file now.
    pub(crate) fn new(
        pattern: Pattern,
        config: FileSourceConfig,
        rules: LineRules,
        csv: Option<CsvRead>,
        ctx: &BuildContext,
    ) -> Result<Self, ConnectorError> {
        if config.follow
            && matches!(
                config.compression,
                crate::config::Compression::Gzip | crate::config::Compression::Zstd
            )
        {
            return Err(ConnectorError::config(format!(
                "compression = {:?} with `follow = true`: a compressed file can only be read once it is complete",
                config.compression.as_str()
            ))
            .at("follow"));
        }
        let many = Self {
            pattern,
            config,
            rules,
            csv,
            ctx: ctx.clone(),
            members: Vec::new(),
            paths: BTreeSet::new(),
            next: 0,
            known: Checkpoint::default(),
            scanned_at: None,
        };
        if !many.config.follow && many.pattern.files()?.is_empty() {
            return Err(ConnectorError::config(format!(
                "no file matches {} (set `follow = true` to wait for files to appear)",
                many.pattern.glob
            ))
            .at("path"));
        }
        Ok(many)
    }

    /// Open a member for every matching file that has none.
    async fn scan(&mut self) -> Result<(), ConnectorError> {
        self.scanned_at = Some(Instant::now());
        let open: HashMap<DiskId, &Path> = self
            .members
            .iter()
            .filter_map(|m| Some((m.source.disk()?, m.path.as_path())))
            .collect();
        let mut found = Vec::new();
        for path in self.pattern.files()? {
            if self.paths.contains(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if let Some(other) = open.get(&DiskId::of(&meta)) {
                tracing::debug!(path = %path.display(), open_as = %other.display(), "Already reading this file under another path.");
                continue;
            }
            found.push(path);
        }
        for path in found {
            self.ctx.allow_file("path", &path)?;
            let codec = Codec::of(self.config.compression, &path);
            if let Some(codec) = codec.filter(|_| self.config.follow) {
                return Err(ConnectorError::config(format!(
                    "{} matches the pattern and is read as {} (by its extension): a compressed file cannot be followed; narrow the pattern or set `compression = \"none\"`",
                    path.display(),
                    codec.name()
                ))
                .at("path"));
            }
            let mut csv = self.csv.clone();
            if let Some(csv) = &mut csv {
                csv.restart();
            }
            let mut source =
                FileSource::new(path.clone(), self.config.clone(), self.rules, csv, codec);
            source.quiet = true;
            source.open(Some(self.known.clone())).await?;
            tracing::info!(path = %path.display(), "Reading a file of the pattern.");
            self.paths.insert(path.clone());
            self.members.push(Member {
                path,
                source,
                gone_since: None,
            });
        }
        Ok(())
    }

    fn emitted(&mut self, batch: &Batch) {
        for r in &batch.records {
            self.known.advance(&r.position);
        }
        for d in &batch.dead {
            self.known.advance(&d.record.position);
        }
    }

    /// Following: close members whose path has named no file for a poll interval, after their
    /// last (unterminated) line.
    fn finish_gone(&mut self) -> Result<Option<Batch>, ConnectorError> {
        let poll = self.config.poll_interval.0;
        let mut i = 0;
        while i < self.members.len() {
            let member = &mut self.members[i];
            if member.path.exists() {
                member.gone_since = None;
                i += 1;
                continue;
            }
            let since = *member.gone_since.get_or_insert_with(Instant::now);
            if since.elapsed() < poll {
                i += 1;
                continue;
            }
            let last = member.source.finish()?;
            let member = self.members.remove(i);
            self.paths.remove(&member.path);
            tracing::info!(path = %member.path.display(), "The file left the pattern; finished it.");
            if let Some(batch) = last {
                self.emitted(&batch);
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Source for Many {
    // Building checked that a bounded pattern matches a file.
    fn unchecked(&self) -> Vec<String> {
        Vec::new()
    }

    async fn open(&mut self, resume: Option<Checkpoint>) -> Result<(), ConnectorError> {
        self.known = resume.unwrap_or_default();
        self.scan().await
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, ConnectorError> {
        loop {
            let mut idle = 0;
            while idle < self.members.len() {
                let i = self.next % self.members.len();
                match self.members[i].source.step().await? {
                    Step::Batch(batch) => {
                        self.emitted(&batch);
                        // Read to the end: one file after another. Following: round-robin.
                        if self.config.follow {
                            self.next = i + 1;
                        }
                        return Ok(Some(batch));
                    }
                    Step::Done => {
                        let member = self.members.remove(i);
                        tracing::debug!(path = %member.path.display(), "Read the file to its end.");
                    }
                    Step::Idle | Step::Again => {
                        self.next = i + 1;
                        idle += 1;
                    }
                }
            }
            if !self.config.follow {
                return Ok(None);
            }
            if let Some(batch) = self.finish_gone()? {
                return Ok(Some(batch));
            }
            let poll = self.config.poll_interval.0;
            if self.scanned_at.is_none_or(|at| at.elapsed() >= poll) {
                let before = self.members.len();
                self.scan().await?;
                if self.members.len() > before {
                    continue;
                }
            }
            tokio::time::sleep(poll).await;
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
    use crate::source::FileSourceConnector;
    use sluice_core::units::{ByteSize, HumanDuration};
    use sluice_core::{Guarantee, Record, SourceConnector};

    fn ctx(dir: &Path) -> BuildContext {
        BuildContext::new(
            "t",
            dir.to_path_buf(),
            dir.join("state"),
            Guarantee::AtLeastOnce,
        )
    }

    fn config(path: &str, follow: bool) -> FileSourceConfig {
        FileSourceConfig {
            path: path.into(),
            format: crate::LineFormat::Json,
            csv: None,
            compression: crate::config::Compression::Auto,
            follow,
            poll_interval: HumanDuration(Duration::from_millis(10)),
            read_size: ByteSize(64),
            max_line_bytes: ByteSize(crate::config::DEFAULT_MAX_LINE_BYTES),
            max_json_depth: sluice_core::json::DEFAULT_MAX_DEPTH,
        }
    }

    fn append(path: &Path, tag: &str, from: u32, to: u32) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for i in from..to {
            writeln!(f, "{{\"{tag}\":{i}}}").unwrap();
        }
    }

    fn values(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect()
    }

    fn expected(tag: &str, from: u32, to: u32) -> Vec<String> {
        (from..to).map(|i| format!("{{\"{tag}\":{i}}}")).collect()
    }

    /// Everything read after `cp`, and the checkpoint after it.
    async fn read_all(dir: &Path, path: &str, cp: &Checkpoint) -> (Vec<Record>, Checkpoint) {
        let mut src = FileSourceConnector::build(config(path, false), &ctx(dir)).unwrap();
        src.open(Some(cp.clone())).await.unwrap();
        let mut out = Vec::new();
        while let Some(b) = src.next_batch().await.unwrap() {
            out.extend(b.records);
        }
        let mut after = cp.clone();
        for r in &out {
            after.advance(&r.position);
        }
        (out, after)
    }

    #[tokio::test]
    async fn every_file_of_a_glob_is_its_own_partition_and_resumes_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        append(&logs.join("b.jsonl"), "b", 0, 5);
        append(&logs.join("a.jsonl"), "a", 0, 10);
        append(&logs.join("skip.txt"), "x", 0, 3);
        let (all, cp) = read_all(dir.path(), "logs/*.jsonl", &Checkpoint::default()).await;
        let mut want = expected("a", 0, 10);
        want.extend(expected("b", 0, 5));
        assert_eq!(values(&all), want, "file after file, in path order");
        assert_eq!(cp.offsets.len(), 2);
        // More in one file, a new file: only those are read.
        append(&logs.join("b.jsonl"), "b", 5, 8);
        append(&logs.join("c.jsonl"), "c", 0, 2);
        let (rest, cp) = read_all(dir.path(), "logs/*.jsonl", &cp).await;
        let mut want = expected("b", 5, 8);
        want.extend(expected("c", 0, 2));
        assert_eq!(values(&rest), want);
        // A directory is its regular files.
        let (again, _) = read_all(dir.path(), "logs", &cp).await;
        assert_eq!(values(&again), expected("x", 0, 3), "only skip.txt is new");
        // Read to the end, a pattern that matches nothing is a config error.
        let err = FileSourceConnector::build(config("logs/*.csv", false), &ctx(dir.path()))
            .err()
            .unwrap();
        assert_eq!(err.field.as_deref(), Some("path"));
        assert!(err.message.contains("no file matches"), "{err}");
    }

    #[tokio::test]
    async fn following_a_glob_picks_up_new_files_and_renames_within_it_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("app.log"), "a", 0, 3);
        let mut src =
            FileSourceConnector::build(config("app.log*", true), &ctx(dir.path())).unwrap();
        src.open(None).await.unwrap();
        let mut got = Vec::new();
        assert_eq!(take(&mut src, &mut got, 3).await, expected("a", 0, 3));
        // Rotation: renamed within the pattern, a new file at the old path.
        std::fs::rename(dir.path().join("app.log"), dir.path().join("app.log.1")).unwrap();
        append(&dir.path().join("app.log.1"), "a", 3, 5);
        append(&dir.path().join("app.log"), "b", 0, 2);
        let mut want = expected("a", 0, 5);
        want.extend(expected("b", 0, 2));
        assert_eq!(take(&mut src, &mut got, 7).await, want);
        // A little later nothing more comes: app.log.1 was not read again.
        append(&dir.path().join("app.log.2"), "c", 0, 1);
        want.extend(expected("c", 0, 1));
        assert_eq!(take(&mut src, &mut got, 8).await, want);
    }

    /// Read until `got` holds `n` records, within a deadline; their values.
    async fn take(src: &mut Box<dyn Source>, got: &mut Vec<Record>, n: usize) -> Vec<String> {
        tokio::time::timeout(Duration::from_secs(10), async {
            while got.len() < n {
                got.extend(src.next_batch().await.unwrap().unwrap().records);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("only {} of {n} records came", got.len()));
        values(got)
    }
}
