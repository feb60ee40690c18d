//! The on-disk cache of compiled components, so a restart does not recompile.
//!
//! An artifact is stored as `<dir>/<key>.cwasm`, where `key` is the SHA-256 of the component's
//! bytes, the engine's compatibility hash (wasmtime version, compiler settings, host CPU) and
//! whether fuel metering is on. The cache is best effort: a failure to read or write it is
//! logged and the component is compiled instead.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

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

/// Load a previously stored artifact. `None` when there is none or it cannot be used.
pub(crate) fn load(engine: &Engine, dir: &Path, key: &str) -> Option<Component> {
    let path = dir.join(format!("{key}.cwasm"));
    if !path.is_file() {
        return None;
    }
    match deserialize(engine, &path) {
        Ok(component) => Some(component),
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
        let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, dir.join(format!("{key}.cwasm"))).map_err(|e| e.to_string())
    })();
    if let Err(error) = result {
        tracing::warn!(dir = %dir.display(), error, "Could not cache the compiled wasm artifact.");
    }
}
