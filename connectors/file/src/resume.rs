//! Where a file source starts reading, given the checkpoint it resumes from and the file it
//! finds at its path (see `fingerprint` for what a partition is).
//!
//! - The checkpoint has this file's partition (inode and fingerprint), at a position that can
//!   still be a line end of it: resume there.
//! - It has the partition, but the file is now shorter than the position or has no line end
//!   there: the file was truncated or rewritten in place — read it from byte 0 as a new
//!   generation, with a warning.
//! - It has no partition of this file, but a path-named one from before partitions were
//!   identities (`/jobs/x/in.jsonl`) that points at this file: take that position (an upgrade
//!   does not replay), checked the same way.
//! - Otherwise the file is new: read from byte 0. When the checkpoint holds positions of other
//!   files, a warning names them: the file the job read before was replaced while it was not
//!   running, and whatever remained unread of it cannot be found at this path.

use std::fmt::Write;

use sluice_core::{Checkpoint, Offset};

use crate::fingerprint::{self, Fingerprint, Identity};

/// What the source knows about the file at its path when it opens.
pub(crate) struct Observed<'a> {
    /// Its inode.
    pub ino: u64,
    /// Its fingerprint, `None` while its first line is incomplete.
    pub fingerprint: Option<Fingerprint>,
    /// Its size.
    pub size: u64,
    /// True when byte `p - 1` of the file is a newline.
    pub line_end: &'a dyn Fn(u64) -> bool,
    /// True when an old path-named partition points at this file.
    pub legacy: &'a dyn Fn(&str) -> bool,
}

/// Where to start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Start {
    /// Byte offset to read from.
    pub offset: u64,
    /// The file's partition; `None` until its first line is complete.
    pub identity: Option<Identity>,
    /// Why positions in the checkpoint were not used, for the log.
    pub warning: Option<String>,
    /// An old path-named partition whose position was taken over.
    pub migrated_from: Option<String>,
    /// The checkpoint has no position of this file (the warning, if any, names the others).
    pub new_file: bool,
}

/// Decide where to start (see the module doc).
pub(crate) fn start(resume: &Checkpoint, file: &Observed<'_>) -> Start {
    let fresh = |identity: Option<Identity>| Start {
        offset: 0,
        identity,
        warning: lost(resume),
        migrated_from: None,
        new_file: true,
    };
    let Some(fp) = file.fingerprint else {
        return fresh(None);
    };
    let usable =
        |pos: u64| pos == 0 || pos == file.size || (pos < file.size && (file.line_end)(pos));
    let mut newest: Option<(u32, &str, u64)> = None;
    let base = Identity {
        ino: file.ino,
        fingerprint: fp,
        generation: 1,
    };
    for (partition, offset) in &resume.offsets {
        if let (Some(g), Some(pos)) = (base.generation_of(partition), position(offset))
            && newest.is_none_or(|(n, _, _)| g > n)
        {
            newest = Some((g, &**partition, pos));
        }
    }
    if let Some((generation, partition, pos)) = newest {
        if usable(pos) {
            return Start {
                offset: pos,
                identity: Some(Identity { generation, ..base }),
                warning: None,
                migrated_from: None,
                new_file: false,
            };
        }
        return Start {
            offset: 0,
            identity: Some(next_identity(file.ino, fp, resume, None)),
            warning: Some(rewritten(partition, pos, file.size)),
            migrated_from: None,
            new_file: false,
        };
    }
    let legacy = resume
        .offsets
        .iter()
        .filter(|(p, _)| !fingerprint::is_identity(p) && (file.legacy)(p))
        .filter_map(|(p, o)| Some((position(o)?, p)))
        .max();
    if let Some((pos, partition)) = legacy {
        let usable = usable(pos);
        return Start {
            offset: if usable { pos } else { 0 },
            identity: Some(base),
            warning: (!usable).then(|| rewritten(partition, pos, file.size)),
            migrated_from: Some(partition.to_string()),
            new_file: false,
        };
    }
    fresh(Some(base))
}

/// The partition of a file with this inode and fingerprint: a generation after every one the
/// checkpoint or this run (`previous`) already used for it, since positions of one partition
/// never go back.
pub(crate) fn next_identity(
    ino: u64,
    fingerprint: Fingerprint,
    resume: &Checkpoint,
    previous: Option<Identity>,
) -> Identity {
    let base = Identity {
        ino,
        fingerprint,
        generation: 0,
    };
    let used = resume
        .offsets
        .keys()
        .filter_map(|p| base.generation_of(p))
        .chain(previous.and_then(|p| base.generation_of(&p.partition())))
        .max()
        .unwrap_or(0);
    Identity {
        generation: used + 1,
        ..base
    }
}

fn position(offset: &Offset) -> Option<u64> {
    match offset {
        Offset::Int(i) => Some((*i).max(0) as u64),
        Offset::Text(_) => None,
    }
}

fn rewritten(partition: &str, pos: u64, size: u64) -> String {
    format!(
        "the file is {size} bytes with no line ending at byte {pos}, where partition {partition} was committed: it was truncated or rewritten in place, so it is read from the start"
    )
}

fn lost(resume: &Checkpoint) -> Option<String> {
    if resume.is_empty() {
        return None;
    }
    let mut names = String::new();
    for (i, (p, o)) in resume.offsets.iter().enumerate() {
        if i == 5 {
            let _ = write!(names, ", and {} more", resume.offsets.len() - 5);
            break;
        }
        let _ = write!(names, "{}{p} (at byte {o})", if i > 0 { ", " } else { "" });
    }
    Some(format!(
        "the checkpoint has no position for this file, only for {names}: the file the job read before was replaced while the job was not running; it is read from the start, and whatever remained unread of the old file cannot be found here"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn fp(line: &[u8]) -> Option<Fingerprint> {
        Fingerprint::of(line, false)
    }

    fn cp(entries: &[(&str, i64)]) -> Checkpoint {
        let mut c = Checkpoint::default();
        for (p, o) in entries {
            c.offsets.insert(Arc::from(*p), Offset::Int(*o));
        }
        c
    }

    fn legacy(partition: &str) -> bool {
        partition == "/jobs/x/./in.jsonl"
    }

    fn observe<'a>(
        fingerprint: Option<Fingerprint>,
        size: u64,
        ends: &'a dyn Fn(u64) -> bool,
    ) -> Observed<'a> {
        Observed {
            ino: 7,
            fingerprint,
            size,
            line_end: ends,
            legacy: &legacy,
        }
    }

    #[test]
    fn resumes_its_own_partition_and_takes_over_a_path_named_one() {
        let id = Identity {
            ino: 7,
            fingerprint: fp(b"a\n").unwrap(),
            generation: 1,
        };
        let ends = |p: u64| p.is_multiple_of(2);
        let file = observe(id.fingerprint.into(), 100, &ends);
        let s = start(
            &cp(&[(&id.partition(), 40), ("/jobs/x/./in.jsonl", 60)]),
            &file,
        );
        assert_eq!((s.offset, s.identity, s.warning), (40, Some(id), None));
        let s = start(&cp(&[("/jobs/x/./in.jsonl", 60), ("/other", 90)]), &file);
        assert_eq!((s.offset, s.identity), (60, Some(id)));
        assert_eq!(s.migrated_from.as_deref(), Some("/jobs/x/./in.jsonl"));
        assert_eq!(s.warning, None);
    }

    #[test]
    fn a_file_truncated_or_replaced_is_read_from_the_start_with_a_warning() {
        let id = Identity {
            ino: 7,
            fingerprint: fp(b"a\n").unwrap(),
            generation: 1,
        };
        let ends = |p: u64| p.is_multiple_of(2);
        // Same first line, but shorter than the committed position: a new generation.
        let file = observe(id.fingerprint.into(), 30, &ends);
        let s = start(&cp(&[(&id.partition(), 40)]), &file);
        assert_eq!(s.offset, 0);
        assert_eq!(s.identity.unwrap().generation, 2);
        assert!(s.warning.unwrap().contains("truncated or rewritten"));
        // No line end at the position.
        let file = observe(id.fingerprint.into(), 100, &ends);
        let s = start(&cp(&[(&id.partition(), 41)]), &file);
        assert_eq!((s.offset, s.identity.unwrap().generation), (0, 2));
        // Another file at the path (other first line or other inode): new, the old one named.
        let file = observe(fp(b"b\n"), 100, &ends);
        let s = start(&cp(&[(&id.partition(), 40)]), &file);
        assert_eq!((s.offset, s.identity.unwrap().generation), (0, 1));
        let warning = s.warning.unwrap();
        assert!(
            warning.contains(&format!("{} (at byte 40)", id.partition())),
            "{warning}"
        );
        // Empty now: no identity yet, the old partition named.
        let s = start(&cp(&[(&id.partition(), 40)]), &observe(None, 0, &ends));
        assert_eq!((s.offset, s.identity), (0, None));
        assert!(s.warning.is_some());
        // First run: nothing to say.
        assert_eq!(start(&Checkpoint::default(), &file).warning, None);
    }

    #[test]
    fn a_rewrite_gets_a_generation_after_every_used_one() {
        let f = fp(b"a\n").unwrap();
        let g1 = Identity {
            ino: 7,
            fingerprint: f,
            generation: 1,
        };
        let g3 = Identity {
            generation: 3,
            ..g1
        };
        assert_eq!(next_identity(7, f, &Checkpoint::default(), None), g1);
        assert_eq!(
            next_identity(7, f, &cp(&[(&g3.partition(), 5)]), None).generation,
            4
        );
        assert_eq!(
            next_identity(7, f, &Checkpoint::default(), Some(g3)).generation,
            4
        );
        assert_eq!(
            next_identity(8, f, &cp(&[(&g3.partition(), 5)]), None).generation,
            1
        );
    }
}
