//! The on-disk cache of compiled components, so a restart does not recompile.
//!
//! An artifact is stored as `<dir>/<key>.cwasm`, where `key` is the SHA-256 of the component's
//! bytes, the engine's compatibility hash (wasmtime version, compiler settings, host CPU) and
//! whether fuel metering is on. The cache is best effort: a failure to read or write it is
//! logged and the component is compiled instead.
//!
//! A cached artifact is native code that runs in this process, so the cache is only used when
//! nobody else could have written it: the directory and the file belong to this user and are
//! not writable by group or others (the directory is created `0700`). The cache is kept under a
//! size ([`set_max_size`], default 512 MiB) by removing the artifacts used least recently.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache directory used when none is given: `$SLUICE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/sluice/wasm`, else `~/.cache/sluice/wasm`. `None` when none is known.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("sluice").join("wasm"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| {
            PathBuf::from(home)
                .join(".cache")
                .join("sluice")
                .join("wasm")
        })
}

/// Feeds `Hash` output into SHA-256, so the key is stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0
    }
}

/// SHA-256 of the component bytes: identifies a plugin's content.
pub(crate) fn content_hash(wasm: &[u8]) -> [u8; 32] {
    Sha256::digest(wasm).into()
}

/// The artifact key for `content` compiled by `engine`.
pub(crate) fn artifact_key(engine: &Engine, content: &[u8; 32], fuel: bool) -> String {
    let mut h = ShaHasher(Sha256::new());
    h.write(content);
    engine.precompile_compatibility_hash().hash(&mut h);
    h.write(&[u8::from(fuel)]);
    h.write(b"sluice-transform-artifact-v1");
    let digest: [u8; 32] = h.0.finalize().into();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The largest the cache may grow, in bytes (default 512 MiB).
static MAX_SIZE: AtomicU64 = AtomicU64::new(512 << 20);

/// Keep the cache under `bytes` (`--cache-max-size`): after each new artifact, the least
/// recently used ones are removed until it fits.
pub fn set_max_size(bytes: u64) {
    MAX_SIZE.store(bytes, Ordering::Relaxed);
}

/// Why `path` (the cache directory or an artifact) cannot be trusted, if it cannot: it must
/// belong to this process's user and not be writable by group or others.
fn untrusted(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Some(format!(
            "it belongs to uid {}, not to this user ({me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "it is writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    if meta.file_type().is_symlink() {
        return Some("it is a symbolic link".into());
    }
    None
}

/// Whether the cache directory may be used; says once per process why not.
fn usable(dir: &Path) -> bool {
    match untrusted(dir) {
        None => true,
        Some(why) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::warn!(dir = %dir.display(), reason = %why, "Not using the compiled-plugin cache: someone else could put code there. Plugins are compiled instead; fix the directory's owner and mode (0700) to cache again.");
            });
            false
        }
    }
}

/// Load a previously stored artifact. `None` when there is none or it cannot be used.
pub(crate) fn load(engine: &Engine, dir: &Path, key: &str) -> Option<Component> {
    let path = dir.join(format!("{key}.cwasm"));
    if !path.is_file() || !usable(dir) {
        return None;
    }
    if let Some(why) = untrusted(&path) {
        tracing::warn!(path = %path.display(), reason = %why, "Ignoring a cached wasm artifact someone else could have written.");
        return None;
    }
    match deserialize(engine, &path) {
        Ok(component) => {
            // Its use time, for pruning the least recently used first.
            if let Ok(file) = std::fs::File::options().append(true).open(&path) {
                let _ = file.set_modified(SystemTime::now());
            }
            Some(component)
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "Ignoring unusable cached wasm artifact.");
            None
        }
    }
}

/// Deserialize an artifact file.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that the file holds an artifact produced by `serialize` of a
    // compatible engine and is not modified while mapped. Files in the cache directory are only
    // written by `store` below (atomically, by rename), under a name derived from the engine's
    // compatibility hash; wasmtime additionally checks the artifact header and engine settings.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Store an artifact, atomically (write a temporary file, then rename).
pub(crate) fn store(dir: &Path, key: &str, component: &Component) {
    let result = (|| -> Result<(), String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| e.to_string())?;
        if !usable(dir) {
            return Ok(());
        }
        let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
        let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, dir.join(format!("{key}.cwasm"))).map_err(|e| e.to_string())?;
        prune(dir, MAX_SIZE.load(Ordering::Relaxed)).map_err(|e| format!("pruning: {e}"))
    })();
    if let Err(error) = result {
        tracing::warn!(dir = %dir.display(), error, "Could not cache the compiled wasm artifact.");
    }
}

/// Remove the least recently used artifacts until the cache holds at most `max` bytes.
fn prune(dir: &Path, max: u64) -> std::io::Result<()> {
    let mut artifacts = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "cwasm") {
            let meta = entry.metadata()?;
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            artifacts.push((used, meta.len(), entry.path()));
        }
    }
    let mut total: u64 = artifacts.iter().map(|(_, len, _)| len).sum();
    artifacts.sort();
    for (_, len, path) in artifacts {
        if total <= max {
            break;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), bytes = len, "Pruned a compiled-plugin cache entry.");
                total -= len;
            }
            // Another process pruned it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_directory_others_can_write_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("wasm");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&cache)
            .unwrap();
        assert_eq!(untrusted(&cache), None);
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        let why = untrusted(&cache).unwrap();
        assert!(why.contains("writable by group or others"), "{why}");
        assert!(!usable(&cache));
        let file = cache.join("x.cwasm");
        std::fs::write(&file, b"not code").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(untrusted(&file).is_some());
    }

    #[test]
    fn pruning_removes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for (name, age) in [("old", 30), ("mid", 20), ("new", 10)] {
            let path = dir.path().join(format!("{name}.cwasm"));
            std::fs::write(&path, vec![0u8; 1000]).unwrap();
            let file = std::fs::File::options().append(true).open(&path).unwrap();
            file.set_modified(now - Duration::from_secs(age)).unwrap();
        }
        std::fs::write(dir.path().join("other.txt"), vec![0u8; 5000]).unwrap();
        prune(dir.path(), 2500).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["mid.cwasm", "new.cwasm", "other.txt"]);
        prune(dir.path(), 0).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
