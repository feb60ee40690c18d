//! While following a file: did the path start naming another file (rotation), or was the file
//! truncated or rewritten in place? Checked each time the reader reaches the end of the file.

use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::fingerprint::{DiskId, Identity};

/// What happened to the followed file since it was opened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing: wait for more data.
    None,
    /// The path names another file now (`mv app.log app.log.1`, a new `app.log`): finish the
    /// open one, then read the new one from byte 0. A path that names no file at all (moved
    /// away, not yet re-created) is not a change: the open file may still grow.
    Rotated,
    /// Shorter than what was read (`: > app.log`), or different bytes where lines were read
    /// (truncated and written again before this check): read it again from byte 0.
    Rewritten,
}

/// Compare the open `file` (identity `disk`, read up to byte `read_to`, records emitted up to
/// byte `emitted`, partition `identity` once known) with what `path` names now.
pub(crate) fn detect(
    path: &Path,
    file: &std::fs::File,
    disk: DiskId,
    read_to: u64,
    emitted: u64,
    identity: Option<&Identity>,
) -> std::io::Result<Change> {
    match std::fs::metadata(path) {
        Ok(meta) if DiskId::of(&meta) != disk => return Ok(Change::Rotated),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    rewritten(file, read_to, emitted, identity)
}

/// The in-place half of [`detect`]: also run right after reading new data that appeared while
/// the reader waited at the end, because a file truncated and written again between two looks
/// is longer than what was read, and only its bytes tell.
pub(crate) fn rewritten(
    file: &std::fs::File,
    read_to: u64,
    emitted: u64,
    identity: Option<&Identity>,
) -> std::io::Result<Change> {
    if file.metadata()?.len() < read_to {
        return Ok(Change::Rewritten);
    }
    if let Some(identity) = identity
        && !identity.fingerprint.matches(file)?
    {
        return Ok(Change::Rewritten);
    }
    if emitted > 0 {
        let mut last = [0u8; 1];
        if file.read_at(&mut last, emitted - 1)? == 0 || last[0] != b'\n' {
            return Ok(Change::Rewritten);
        }
    }
    Ok(Change::None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Fingerprint;

    #[test]
    fn tells_rotation_from_truncation_and_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let disk = DiskId::of(&file.metadata().unwrap());
        let id = Identity {
            ino: disk.ino,
            fingerprint: Fingerprint::read(&file, false).unwrap().unwrap(),
            generation: 1,
        };
        let check = || detect(&path, &file, disk, 8, 8, Some(&id)).unwrap();
        assert_eq!(check(), Change::None);
        // Rewritten in place with more bytes than were read: other first line.
        std::fs::write(&path, "uno\ndos\ntres\n").unwrap();
        assert_eq!(check(), Change::Rewritten);
        // Same first line, other lengths: no line end where reading stopped.
        std::fs::write(&path, "one\nthree\n").unwrap();
        assert_eq!(check(), Change::Rewritten);
        std::fs::write(&path, "").unwrap();
        assert_eq!(check(), Change::Rewritten);
        std::fs::write(&path, "one\ntwo\nmore\n").unwrap();
        assert_eq!(check(), Change::None);
        // Moved away: not a change yet; a new file at the path: rotated.
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        assert_eq!(check(), Change::None);
        std::fs::write(&path, "one\n").unwrap();
        assert_eq!(check(), Change::Rotated);
    }
}
