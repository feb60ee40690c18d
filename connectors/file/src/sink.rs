//! The file sink: one value per line, fsync'd before a write counts as durable, rotated by size.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use sluice_core::units::ByteSize;
use sluice_core::{
    BuildContext, Checkpoint, ConnectorError, Record, Sink, SinkConnector, SinkContext, WriteReport,
};

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
    const DOC: &'static str =
        "Appends each record value as one line to a file; fsync per write; size-based rotation.";
    type Config = FileSinkConfig;

    fn build(config: FileSinkConfig, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        if config.rotate_bytes.is_some_and(|b| b.0 == 0) {
            return Err(ConnectorError::config("rotate_bytes must be more than 0"));
        }
        Ok(Box::new(FileSink {
            path: ctx.resolve(&config.path),
            config,
            file: None,
            size: 0,
        }))
    }
}

/// A running file sink.
pub struct FileSink {
    path: PathBuf,
    config: FileSinkConfig,
    file: Option<File>,
    size: u64,
}

fn open_append(path: &Path) -> std::io::Result<(File, u64)> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// The first free `<path>.<n>`.
fn rotation_target(path: &Path) -> PathBuf {
    let mut n = 1u32;
    loop {
        let candidate = PathBuf::from(format!("{}.{n}", path.display()));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

impl FileSink {
    fn write_blocking(
        mut file: File,
        mut size: u64,
        path: &Path,
        config: &FileSinkConfig,
        data: &[u8],
    ) -> std::io::Result<(File, u64)> {
        if let Some(limit) = config.rotate_bytes
            && size > 0
            && size + data.len() as u64 > limit.0
        {
            file.sync_all()?;
            drop(file);
            std::fs::rename(path, rotation_target(path))?;
            (file, size) = open_append(path)?;
        }
        file.write_all(data)?;
        if config.fsync {
            file.sync_data()?;
        }
        Ok((file, size + data.len() as u64))
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn open(&mut self, _ctx: &SinkContext) -> Result<(), ConnectorError> {
        let (file, size) = open_append(&self.path)
            .map_err(|e| ConnectorError::io(&format!("opening {}", self.path.display()), &e))?;
        self.file = Some(file);
        self.size = size;
        Ok(())
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
        // After a failed write the file is reopened: a partial line may be on disk and the
        // retry appends after it (at-least-once; readers skip an incomplete line).
        let file = match self.file.take() {
            Some(f) => f,
            None => {
                let (f, size) = open_append(&self.path).map_err(|e| {
                    ConnectorError::io(&format!("reopening {}", self.path.display()), &e)
                })?;
                self.size = size;
                f
            }
        };
        let (path, config, size) = (self.path.clone(), self.config.clone(), self.size);
        let result = tokio::task::spawn_blocking(move || {
            FileSink::write_blocking(file, size, &path, &config, &data)
        })
        .await
        .map_err(|e| ConnectorError::internal(format!("write task: {e}")))?;
        let (file, size) = result
            .map_err(|e| ConnectorError::io(&format!("writing {}", self.path.display()), &e))?;
        self.file = Some(file);
        self.size = size;
        Ok(WriteReport::ok())
    }

    async fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(file) = self.file.take() {
            file.sync_all()
                .map_err(|e| ConnectorError::io(&format!("closing {}", self.path.display()), &e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use sluice_core::{Guarantee, Position};

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
