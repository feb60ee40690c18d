//! Where a path really points: the one spelling of a file's location that does not depend on
//! how a job file wrote it (`./a`, `a`, `../dir/a`, symlinked directories).

use std::path::{Component, Path, PathBuf};

/// The canonical absolute path of `path`, also when the file (or some of its parent
/// directories) does not exist yet: the longest existing ancestor is canonicalised and the
/// missing rest appended, with `.` and `..` resolved lexically (nothing below it exists, so no
/// symlink can change their meaning).
pub(crate) fn canonical_target(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut missing = Vec::new();
    let mut existing = absolute.as_path();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(existing) {
            let mut out = canonical;
            for part in missing.iter().rev() {
                push_lexically(&mut out, part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(Component::Normal(name));
                existing = parent;
            }
            // `..` or `.` as the last component of a missing path: step over it lexically.
            (Some(parent), None) => {
                if let Some(last) = existing.components().next_back() {
                    missing.push(last);
                }
                existing = parent;
            }
            (None, _) => {
                let mut out = PathBuf::new();
                for part in absolute.components() {
                    push_lexically(&mut out, &part);
                }
                return out;
            }
        }
    }
}

fn push_lexically(out: &mut PathBuf, part: &Component<'_>) {
    match part {
        Component::CurDir => {}
        Component::ParentDir => {
            out.pop();
        }
        other => out.push(other.as_os_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_file_agree_whether_or_not_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let a = canonical_target(&dir.path().join("out.jsonl"));
        let b = canonical_target(&dir.path().join("./sub/../out.jsonl"));
        assert_eq!(a, real.join("out.jsonl"));
        assert_eq!(a, b);
        // Missing directories too.
        let c = canonical_target(&dir.path().join("new/./deeper/../o.jsonl"));
        assert_eq!(c, real.join("new/o.jsonl"));
        std::fs::write(dir.path().join("out.jsonl"), "").unwrap();
        assert_eq!(canonical_target(&dir.path().join("sub/../out.jsonl")), a);
    }
}
