//! Exactly-once for the file sink: a sidecar file records, after every write, which file is
//! active (its rotation number), how long it was and which checkpoint that length covers. It is
//! replaced atomically (write, fsync, rename, fsync the directory) after the data is fsync'd.
//!
//! Recovery relies only on what the sink owns — the sidecar and the active file `<path>` —
//! never on which rotated files `<path>.N` are on disk: other processes may ship them away at
//! any time. The protocol:
//!
//! - Write: append, fsync, store `{rotations, length, checkpoint}`.
//! - Rotate, only at a committed boundary (the active file holds exactly `length` committed
//!   bytes, `length > 0`): rename `<path>` to `<path>.N` (N: the first free number after
//!   `rotations`), create an empty `<path>` and fsync the directory, then store
//!   `{rotations: N, length: 0, checkpoint}` — the rotation commits on its own, before any new
//!   data goes into the new file.
//! - Open: if `<path>` is missing or empty while the sidecar says `length > 0`, a rotation
//!   stopped before its own commit: its rotated file is complete and committed, so the
//!   rotation is finished (sidecar `{rotations + 1, 0}`), wherever that file is now. Otherwise
//!   anything past `length` (written by a run that crashed before its checkpoint) is cut off;
//!   a file shorter than `length` was changed outside Sluice and is refused.

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
    /// The number of the last rotated file this sink made (`<path>.N`); 0 before the first
    /// rotation. The next rotation takes the first free number after it.
    pub rotations: u32,
    /// Length of the active file `<path>` at the checkpoint.
    pub length: u64,
    /// The checkpoint covered by everything written up to here.
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

/// The first `n >= from` with no `<path>.<n>`: a rotation never overwrites a file, ours or not.
pub(crate) fn free_rotation(path: &Path, from: u32) -> u32 {
    let mut n = from.max(1);
    while rotated_path(path, n).exists() {
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

/// What recovery did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Uncommitted bytes cut from the active file.
    pub discarded: u64,
    /// A rotation that stopped before its own commit was finished.
    pub finished_rotation: bool,
}

/// Bring the active file back to the state the sidecar describes (see the module doc); with a
/// finished rotation `state` is updated and stored.
pub(crate) fn recover(path: &Path, state: &mut SinkState) -> std::io::Result<Recovered> {
    let mut done = Recovered::default();
    let len = match std::fs::metadata(path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if state.length > 0 && len.unwrap_or(0) == 0 {
        state.rotations += 1;
        state.length = 0;
        store(path, state)?;
        done.finished_rotation = true;
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = file.metadata()?.len();
    if len > state.length {
        done.discarded = len - state.length;
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
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_uncommitted_bytes_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        std::fs::write(&p, "a\nb\n").unwrap();
        let mut state = SinkState {
            length: 2,
            ..Default::default()
        };
        store(&p, &state).unwrap();
        assert_eq!(load(&p).unwrap(), Some(state.clone()));
        assert_eq!(recover(&p, &mut state).unwrap().discarded, 2);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a\n");
        std::fs::write(&p, "a").unwrap();
        assert!(recover(&p, &mut state).is_err(), "shorter than committed");
    }

    #[test]
    fn finishes_a_rotation_cut_short_even_when_the_rotated_file_was_shipped_away() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.jsonl");
        std::fs::write(&p, "a\nb\n").unwrap();
        let mut state = SinkState {
            rotations: 7,
            length: 4,
            ..Default::default()
        };
        store(&p, &state).unwrap();
        // Renamed, then killed before the new file was created; a shipper took the file.
        std::fs::rename(&p, rotated_path(&p, 8)).unwrap();
        std::fs::rename(rotated_path(&p, 8), dir.path().join("shipped")).unwrap();
        let done = recover(&p, &mut state).unwrap();
        assert!(done.finished_rotation);
        assert_eq!((state.rotations, state.length), (8, 0));
        assert_eq!(load(&p).unwrap(), Some(state.clone()));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        assert_eq!(free_rotation(&p, state.rotations + 1), 9);
    }
}
