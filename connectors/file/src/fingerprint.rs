//! What a file source's partition is: the identity of the file itself, not the spelling of its
//! path. A partition is `file:<inode>:<fingerprint>[:<generation>]`:
//!
//! - the inode tells a renamed or moved file (same inode: the same partition, nothing is read
//!   twice) from a new file put in its place (log rotation: a new partition, read from byte 0).
//!   The device number is left out of the stored key because it can change across reboots and
//!   mounts (overlay and btrfs); it is only compared within one run.
//! - the fingerprint — the first 64 bits of the SHA-256 of the file's first line, at most
//!   [`FINGERPRINT_MAX`] bytes — tells a reused inode or a file rewritten in place from the
//!   one the checkpoint knew. Like Vector's `checksum` fingerprint, it needs a complete first
//!   line, so a file is identified only once it has one (nothing can be read before anyway).
//! - the generation counts rewrites that keep both (a file truncated in place and written again
//!   with the same first line): positions of one partition only grow, so a rewrite that starts
//!   again at byte 0 needs a partition of its own.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// At most this many bytes of the first line are fingerprinted.
pub(crate) const FINGERPRINT_MAX: usize = 4096;

const PREFIX: &str = "file:";

/// Where a file is on disk: stable while it is renamed within its filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct DiskId {
    /// Device number (compared within one run only).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl DiskId {
    /// The disk identity of an open file or a path's metadata.
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A fingerprint of a file's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    /// The first 64 bits of the SHA-256 of the fingerprinted bytes.
    pub hash: u64,
    /// How many bytes from the start it covers.
    pub len: usize,
}

impl Fingerprint {
    /// The fingerprint of a file that starts with `head`: its first line (through the
    /// newline), at most [`FINGERPRINT_MAX`] bytes. `None` while the first line is incomplete,
    /// unless `at_end`: then `head` is the whole file, read once to its end, and all of it counts.
    pub(crate) fn of(head: &[u8], at_end: bool) -> Option<Self> {
        let window = &head[..head.len().min(FINGERPRINT_MAX)];
        let len = match memchr::memchr(b'\n', window) {
            Some(nl) => nl + 1,
            None if window.len() == FINGERPRINT_MAX || (at_end && !window.is_empty()) => {
                window.len()
            }
            None => return None,
        };
        let digest = Sha256::digest(&head[..len]);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Some(Self {
            hash: u64::from_be_bytes(first),
            len,
        })
    }

    /// Read the start of `file` and fingerprint it.
    pub(crate) fn read(file: &std::fs::File, at_end: bool) -> std::io::Result<Option<Self>> {
        let head = read_head(file)?;
        Ok(Self::of(&head, at_end))
    }

    /// True when `file` still starts with the bytes this fingerprint was taken of.
    pub(crate) fn matches(&self, file: &std::fs::File) -> std::io::Result<bool> {
        let head = read_head(file)?;
        Ok(head.len() >= self.len && Self::of(&head[..self.len], true) == Some(*self))
    }
}

fn read_head(file: &std::fs::File) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0u8; FINGERPRINT_MAX];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    head.truncate(filled);
    Ok(head)
}

/// A file source partition (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// Inode number.
    pub ino: u64,
    /// Fingerprint of the first line.
    pub fingerprint: Fingerprint,
    /// Rewrites in place that kept inode and fingerprint; 1 for the first.
    pub generation: u32,
}

impl Identity {
    /// The partition name in checkpoints and positions.
    pub(crate) fn partition(&self) -> Arc<str> {
        let base = format!("{PREFIX}{}:{:016x}", self.ino, self.fingerprint.hash);
        match self.generation {
            0 | 1 => Arc::from(base),
            g => Arc::from(format!("{base}:{g}")),
        }
    }

    /// True when `partition` names this file (inode and fingerprint), in any generation; then
    /// that generation.
    pub(crate) fn generation_of(&self, partition: &str) -> Option<u32> {
        let (ino, hash, generation) = parse(partition)?;
        (ino == self.ino && hash == self.fingerprint.hash).then_some(generation)
    }
}

/// True when `partition` has the shape this source gives its partitions (older versions named
/// partitions by path).
pub(crate) fn is_identity(partition: &str) -> bool {
    parse(partition).is_some()
}

fn parse(partition: &str) -> Option<(u64, u64, u32)> {
    let mut parts = partition.strip_prefix(PREFIX)?.split(':');
    let ino = parts.next()?.parse().ok()?;
    let hash = u64::from_str_radix(parts.next()?, 16).ok()?;
    let generation = match parts.next() {
        Some(g) => g.parse().ok()?,
        None => 1,
    };
    parts.next().is_none().then_some((ino, hash, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_needs_a_complete_first_line_and_ignores_the_rest() {
        assert_eq!(Fingerprint::of(b"{\"a\":1", false), None);
        let one = Fingerprint::of(b"{\"a\":1}\n", false).unwrap();
        assert_eq!(one.len, 8);
        assert_eq!(
            Fingerprint::of(b"{\"a\":1}\n{\"b\":2}\n{\"c", false),
            Some(one)
        );
        assert_ne!(Fingerprint::of(b"{\"a\":2}\n", false), Some(one));
        // Read to its end, an unterminated line counts as it is.
        assert_eq!(Fingerprint::of(b"{\"a\":1", true).unwrap().len, 6);
        assert_eq!(Fingerprint::of(b"", true), None);
        // A first line longer than the window: the window.
        let long = vec![b'x'; FINGERPRINT_MAX + 10];
        assert_eq!(Fingerprint::of(&long, false).unwrap().len, FINGERPRINT_MAX);
    }

    #[test]
    fn partitions_round_trip_with_their_generation() {
        let id = Identity {
            ino: 42,
            fingerprint: Fingerprint::of(b"x\n", false).unwrap(),
            generation: 1,
        };
        let p = id.partition();
        assert!(p.starts_with("file:42:"), "{p}");
        assert_eq!(id.generation_of(&p), Some(1));
        let third = Identity {
            generation: 3,
            ..id
        };
        assert_eq!(id.generation_of(&third.partition()), Some(3));
        assert!(is_identity(&third.partition()));
        assert!(!is_identity("/data/in.jsonl"));
        let other = Identity { ino: 43, ..id };
        assert_eq!(id.generation_of(&other.partition()), None);
    }
}
