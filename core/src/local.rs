//! Where a job may reach on the machine that runs it. Connectors resolve every local path a
//! config names through [`crate::BuildContext::local_file`] (and report native code or commands
//! a client library would run through [`crate::BuildContext::allow_code`]); for a job from an
//! untrusted party — submitted through the worker's API — a [`Confinement`] (the worker's
//! `--data-dir` and `--plugins-dir`) refuses what lies elsewhere, before anything is opened.

use std::path::{Component, Path, PathBuf};

/// The canonical absolute path of `path`, also when the file (or some of its parent
/// directories) does not exist yet: the longest existing ancestor is canonicalised (symlinks
/// followed) and the missing rest appended, with `.` and `..` resolved lexically (nothing below
/// it exists, so no symlink can change their meaning).
pub fn canonical_target(path: &Path) -> PathBuf {
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

/// `%XX` escapes (and `+`) of a URL component decoded, as database drivers do before they open
/// a file a connection string names.
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where jobs from an untrusted party may reach on this machine: files only under the data
/// directories (and never in the private ones, the worker's own state), plugins only under
/// the plugin directories, no native code or command at all. Paths are compared canonical
/// (`..` and symlinks resolved), so no spelling gets out.
#[derive(Clone, Debug, Default)]
pub struct Confinement {
    data_dirs: Vec<PathBuf>,
    plugin_dirs: Vec<PathBuf>,
    private_dirs: Vec<PathBuf>,
}

impl Confinement {
    /// Files under `data_dirs` (`--data-dir`), plugins under `plugin_dirs` (`--plugins-dir`);
    /// each directory must exist. With none, no local file (or plugin) at all.
    pub fn new(data_dirs: &[PathBuf], plugin_dirs: &[PathBuf]) -> std::io::Result<Self> {
        let canonical = |dirs: &[PathBuf]| -> std::io::Result<Vec<PathBuf>> {
            dirs.iter()
                .map(|d| {
                    std::fs::canonicalize(d)
                        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", d.display())))
                })
                .collect()
        };
        Ok(Self {
            data_dirs: canonical(data_dirs)?,
            plugin_dirs: canonical(plugin_dirs)?,
            private_dirs: Vec::new(),
        })
    }

    /// The same, refusing anything under `dir` even inside a data directory (the worker's
    /// state directory: its database and every job's positions).
    pub fn with_private(mut self, dir: &Path) -> Self {
        self.private_dirs.push(canonical_target(dir));
        self
    }

    /// `Err(message)` when a job may not read or write the file (directory, socket) at `path`.
    pub fn check_file(&self, path: &Path) -> Result<(), String> {
        self.check_path(path, &self.data_dirs, "--data-dir", "name local files")
    }

    /// The refusal of a setting that loads native code or runs a command (`what`, in words):
    /// no directory makes that safe.
    pub fn refuse_code(&self, what: &str) -> String {
        format!(
            "{what}: jobs submitted through the worker's API may not load native code or run commands (an operator's job file in --jobs-dir may)"
        )
    }

    /// `Err(message)` when a job may not load the plugin at `path`.
    pub fn check_plugin(&self, path: &Path) -> Result<(), String> {
        self.check_path(path, &self.plugin_dirs, "--plugins-dir", "use plugins")
    }

    fn check_path(
        &self,
        path: &Path,
        allowed: &[PathBuf],
        flag: &str,
        doing: &str,
    ) -> Result<(), String> {
        let real = canonical_target(path);
        if allowed.is_empty() {
            return Err(format!(
                "path {} is outside the worker's {flag}: this worker has none, so jobs submitted through its API may not {doing} (start it with {flag} DIR)",
                path.display()
            ));
        }
        if let Some(private) = self.private_dirs.iter().find(|d| real.starts_with(d)) {
            return Err(format!(
                "path {} is inside the worker's state directory {}, which jobs submitted through its API may not touch",
                path.display(),
                private.display()
            ));
        }
        // Strictly below: a file sink's rotated copies and sidecar sit beside its path.
        if allowed.iter().any(|d| real != *d && real.starts_with(d)) {
            return Ok(());
        }
        let dirs: Vec<String> = allowed.iter().map(|d| d.display().to_string()).collect();
        let resolved = if real.as_path() == path {
            String::new()
        } else {
            format!(" (resolves to {})", real.display())
        };
        Err(format!(
            "path {}{resolved} is outside the worker's {flag} {}",
            path.display(),
            dirs.join(", ")
        ))
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

    #[test]
    fn confines_files_to_the_data_dirs_after_resolving_dots_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let state = data.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let c = Confinement::new(std::slice::from_ref(&data), &[])
            .unwrap()
            .with_private(&state);
        assert_eq!(c.check_file(&data.join("new/out.jsonl")), Ok(()));
        let escape = c.check_file(&data.join("../x.jsonl")).unwrap_err();
        assert!(
            escape.contains("outside the worker's --data-dir"),
            "{escape}"
        );
        assert!(escape.contains("resolves to"), "{escape}");
        assert!(
            c.check_file(&data).is_err(),
            "the directory itself is not below it"
        );
        std::os::unix::fs::symlink(dir.path(), data.join("link")).unwrap();
        let linked = c.check_file(&data.join("link/x.jsonl")).unwrap_err();
        assert!(linked.contains("outside"), "{linked}");
        let private = c.check_file(&state.join("worker.db")).unwrap_err();
        assert!(private.contains("state directory"), "{private}");
        let plugin = c.check_plugin(&data.join("p.wasm")).unwrap_err();
        assert!(plugin.contains("--plugins-dir"), "{plugin}");
    }

    #[test]
    fn without_data_dirs_no_file_at_all() {
        let none = Confinement::default()
            .check_file(Path::new("/tmp/x"))
            .unwrap_err();
        assert!(
            none.contains("has none") && none.contains("--data-dir DIR"),
            "{none}"
        );
    }
}
