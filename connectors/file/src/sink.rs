//! The file sink: one value per line, fsync'd before a write counts as durable, rotated by size,
//! exactly-once through a checkpoint sidecar (see `sink_state`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use sluice_core::units::ByteSize;
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Guarantee, Record, Sink, SinkConnector, SinkContext,
    WriteReport,
};

use crate::sink_state::{self, SinkState};

/// `type = "file"` sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to append to (relative to the job file). Parent directories are created.
    pub path: PathBuf,
    /// Rotate when the file would grow past this size: the full file is renamed to
    /// `<path>.<n>` (n = 1, 2, ...) and a new one started. Off by default.
    #[serde(default)]
    pub rotate_bytes: Option<ByteSize>,
    /// fsync after every write (the default). Turning it off trades durability on power loss
    /// (not on process crash) for speed.
    #[serde(default = "yes")]
    pub fsync: bool,
}

fn yes() -> bool {
    true
}

/// Registers the file sink.
pub struct FileSinkConnector;

impl SinkConnector for FileSinkConnector {
    const TYPE: &'static str = "file";
    const DOC: &'static str = "Appends each record value as one line to a file; fsync per write; size-based rotation; exactly-once via a checkpoint sidecar.";
    type Config = FileSinkConfig;

    fn build(config: FileSinkConfig, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        if config.rotate_bytes.is_some_and(|b| b.0 == 0) {
            return Err(ConnectorError::config("rotate_bytes must be more than 0"));
        }
        Ok(Box::new(FileSink {
            path: ctx.resolve(&config.path),
            config,
            open: None,
            state: None,
        }))
    }
}

/// A running file sink.
pub struct FileSink {
    path: PathBuf,
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
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok(OpenFile { file, size })
}

/// Append `data` (rotating first when it would pass the limit), fsync, and with exactly-once
/// record the new length and checkpoint in the sidecar.
fn write_blocking(
    mut open: OpenFile,
    path: &Path,
    config: &FileSinkConfig,
    data: &[u8],
    mut state: Option<SinkState>,
    checkpoint: Option<Checkpoint>,
) -> std::io::Result<(OpenFile, Option<SinkState>)> {
    if let Some(limit) = config.rotate_bytes
        && open.size > 0
        && open.size + data.len() as u64 > limit.0
    {
        open.file.sync_all()?;
        drop(open);
        let n = sink_state::count_rotations(path) + 1;
        std::fs::rename(path, sink_state::rotated_path(path, n))?;
        open = open_append(path)?;
    }
    open.file.write_all(data)?;
    open.size += data.len() as u64;
    if config.fsync || state.is_some() {
        open.file.sync_data()?;
    }
    if let (Some(st), Some(cp)) = (state.as_mut(), checkpoint) {
        st.length = open.size;
        st.rotations = sink_state::count_rotations(path);
        st.checkpoint = cp;
        sink_state::store(path, st)?;
    }
    Ok((open, state))
}

impl FileSink {
    fn io(&self, what: &str, e: &std::io::Error) -> ConnectorError {
        ConnectorError::io(&format!("{what} {}", self.path.display()), e)
    }

    /// Open the file; with exactly-once first cut it back to its last checkpoint.
    fn reopen(&mut self) -> Result<OpenFile, ConnectorError> {
        if let Some(state) = &self.state {
            let discarded =
                sink_state::recover(&self.path, state).map_err(|e| self.io("recovering", &e))?;
            if discarded > 0 {
                tracing::info!(path = %self.path.display(), bytes = discarded, "Discarded data written after the last exactly-once checkpoint.");
            }
        }
        open_append(&self.path).map_err(|e| self.io("opening", &e))
    }
}

#[async_trait]
impl Sink for FileSink {
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
                    let state = SinkState {
                        job: ctx.job.clone(),
                        sink: ctx.sink.clone(),
                        rotations: sink_state::count_rotations(&self.path),
                        length,
                        checkpoint: Checkpoint::default(),
                    };
                    if let Some(dir) = self.path.parent() {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| self.io("creating the directory of", &e))?;
                    }
                    sink_state::store(&self.path, &state)
                        .map_err(|e| self.io("writing the checkpoint of", &e))?;
                    state
                }
            };
            self.state = Some(state);
        }
        self.open = Some(self.reopen()?);
        Ok(())
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
        state.length = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        state.rotations = sink_state::count_rotations(&self.path);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io("creating the directory of", &e))?;
        }
        sink_state::store(&self.path, &state).map_err(|e| self.io("writing the checkpoint of", &e))
    }

    async fn write(
        &mut self,
        records: &[Record],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<WriteReport, ConnectorError> {
        let mut data = Vec::with_capacity(records.iter().map(|r| r.value.len() + 1).sum());
        for r in records {
            data.extend_from_slice(&r.value);
            data.push(b'\n');
        }
        // After a failed write the file is reopened: with at-least-once a partial line may stay
        // and the retry appends after it; with exactly-once it is cut back to the checkpoint.
        let open = match self.open.take() {
            Some(open) => open,
            None => self.reopen()?,
        };
        let (path, config) = (self.path.clone(), self.config.clone());
        let (state, cp) = (self.state.clone(), checkpoint.cloned());
        let result = tokio::task::spawn_blocking(move || {
            write_blocking(open, &path, &config, &data, state, cp)
        })
        .await
        .map_err(|e| ConnectorError::internal(format!("write task: {e}")))?;
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

    #[tokio::test]
    async fn appends_lines_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = BuildContext {
            job: "t".into(),
            base_dir: dir.path().to_path_buf(),
            state_dir: dir.path().join("s"),
            guarantee: Guarantee::AtLeastOnce,
        };
        let config = FileSinkConfig {
            path: "out/o.jsonl".into(),
            rotate_bytes: Some(ByteSize(30)),
            fsync: true,
        };
        let mut sink = FileSinkConnector::build(config, &ctx).unwrap();
        sink.open(&SinkContext {
            job: "t".into(),
            sink: "file".into(),
            guarantee: Guarantee::AtLeastOnce,
        })
        .await
        .unwrap();
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
