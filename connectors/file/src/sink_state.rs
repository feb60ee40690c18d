//! Exactly-once for the file sink: a sidecar file records, after every write, how long the file
//! was and which checkpoint that length covers. It is replaced atomically (write, fsync, rename,
//! fsync the directory) after the data is fsync'd. On open, anything past the recorded length
//! (written by a run that crashed before its checkpoint) is cut off, and a rotation that
//! happened after the last checkpoint is undone, so the source replays exactly what is missing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_core::Checkpoint;

/// What the sidecar holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SinkState {
    /// Job that owns the file.
    pub job: String,
    /// Sink name within the job.
    pub sink: String,
    /// Rotated files (`<path>.1` … `<path>.N`) that existed at the checkpoint.
    pub rotations: u32,
    /// Length of the active file at the checkpoint.
    pub length: u64,
    /// The checkpoint covered by everything up to `length`.
    pub checkpoint: Checkpoint,
}

/// `<path>.sluice-checkpoint`
pub(crate) fn sidecar_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sluice-checkpoint", path.display()))
}

/// `<path>.<n>`
pub(crate) fn rotated_path(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// Number of consecutive rotated files `<path>.1`, `<path>.2`, … that exist.
pub(crate) fn count_rotations(path: &Path) -> u32 {
    let mut n = 0;
    while rotated_path(path, n + 1).exists() {
        n += 1;
    }
    n
}

/// Read the sidecar, if any.
pub(crate) fn load(path: &Path) -> std::io::Result<Option<SinkState>> {
    match std::fs::read(sidecar_path(path)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replace the sidecar atomically and durably.
pub(crate) fn store(path: &Path, state: &SinkState) -> std::io::Result<()> {
    let side = sidecar_path(path);
    let tmp = PathBuf::from(format!("{}.tmp", side.display()));
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(state).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &side)?;
    sync_dir(path)
}

/// fsync the directory holding `path`, so that names created or renamed in it are durable.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    DIR_SYNCS.with(|n| n.set(n.get() + 1));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
thread_local! {
    /// Directory fsyncs made by this thread, so tests can check that a new name is made durable.
    pub(crate) static DIR_SYNCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Bring the files back to the state the sidecar describes. Returns what was discarded, in
/// bytes, for the log.
pub(crate) fn recover(path: &Path, state: &SinkState) -> std::io::Result<u64> {
    let mut discarded = 0;
    let now = count_rotations(path);
    if now > state.rotations {
        // Rotated after the checkpoint: the checkpointed active file is `<path>.<rotations+1>`.
        for n in (state.rotations + 2)..=now {
            discarded += std::fs::metadata(rotated_path(path, n))?.len();
            std::fs::remove_file(rotated_path(path, n))?;
        }
        if let Ok(m) = std::fs::metadata(path) {
            discarded += m.len();
        }
        std::fs::rename(rotated_path(path, state.rotations + 1), path)?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = file.metadata()?.len();
    if len > state.length {
        discarded += len - state.length;
        file.set_len(state.length)?;
        file.sync_all()?;
    } else if len < state.length {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes but its exactly-once checkpoint says {} were committed: the file was changed outside Sluice",
                path.display(),
                state.length
            ),
        ));
    }
    sync_dir(path)?;
    Ok(discarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_uncommitted_bytes_and_undoes_a_late_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        std::fs::write(&p, "a\nb\n").unwrap();
        let state = SinkState {
            length: 2,
            ..Default::default()
        };
        store(&p, &state).unwrap();
        assert_eq!(load(&p).unwrap(), Some(state.clone()));
        assert_eq!(recover(&p, &state).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\n");
        // A rotation after the checkpoint, then a partial write into the new file.
        std::fs::write(&p, "a\nb\n").unwrap();
        std::fs::rename(&p, rotated_path(&p, 1)).unwrap();
        std::fs::write(&p, "c\n").unwrap();
        assert_eq!(recover(&p, &state).unwrap(), 4);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\n");
        assert_eq!(count_rotations(&p), 0);
    }
}
