//! Loading plugins: read, compile once per process (or load the compiled artifact from the disk
//! cache), link, and keep an `InstancePre` from which instances are cheap to create.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sluice_core::transform::{TransformError, TransformErrorKind, TransformSpec};
use wasmtime::component::{Component, HasSelf, Linker};

use crate::bindings::TransformPre;
use crate::instance::{HostState, WasmTransform};
use crate::{cache, engine};

/// Where a plugin's compiled artifact came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactSource {
    /// Compiled from the `.wasm` file in this process.
    Compiled,
    /// Loaded from the on-disk artifact cache.
    DiskCache,
}

/// A compiled, linked plugin. Shared by every transform instance that uses it.
pub struct Plugin {
    path: PathBuf,
    source: ArtifactSource,
    fuel: bool,
    pre: TransformPre<HostState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("source", &self.source)
            .field("fuel", &self.fuel)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The `.wasm` file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the compiled artifact came from.
    pub fn source(&self) -> ArtifactSource {
        self.source
    }

    /// Whether instances meter fuel.
    pub fn fuel_metering(&self) -> bool {
        self.fuel
    }

    pub(crate) fn pre(&self) -> &TransformPre<HostState> {
        &self.pre
    }
}

/// A component's content hash and whether it is compiled with fuel metering.
type PluginKey = ([u8; 32], bool);

/// Loads plugins, compiling each distinct component once per loader and caching compiled
/// artifacts on disk. Use [`Loader::global`] unless you need a separate cache.
pub struct Loader {
    cache_dir: Option<PathBuf>,
    plugins: Mutex<HashMap<PluginKey, Arc<Plugin>>>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

fn init_error(plugin: &str, message: String) -> TransformError {
    TransformError::new(plugin, TransformErrorKind::Init, message)
}

impl Loader {
    /// A loader caching compiled artifacts in `cache_dir` (`None`: no disk cache).
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        Self {
            cache_dir,
            plugins: Mutex::new(HashMap::new()),
        }
    }

    /// The process-wide loader, caching in [`default_cache_dir`](crate::default_cache_dir).
    pub fn global() -> &'static Loader {
        static GLOBAL: OnceLock<Loader> = OnceLock::new();
        GLOBAL.get_or_init(|| Loader::new(cache::default_cache_dir()))
    }

    /// Load (or reuse) the plugin at `path`; `fuel` selects the fuel-metering engine.
    /// `name` is used in errors.
    pub fn load(&self, name: &str, path: &Path, fuel: bool) -> Result<Arc<Plugin>, TransformError> {
        let wasm = std::fs::read(path)
            .map_err(|e| init_error(name, format!("cannot read plugin {}: {e}", path.display())))?;
        let hash = cache::content_hash(&wasm);
        let mut plugins = self
            .plugins
            .lock()
            .map_err(|_| init_error(name, "plugin cache lock poisoned".into()))?;
        if let Some(plugin) = plugins.get(&(hash, fuel)) {
            return Ok(plugin.clone());
        }
        let engine = engine::engine(fuel).map_err(|e| init_error(name, e))?;
        let key = cache::artifact_key(engine, &hash, fuel);
        let cached = self
            .cache_dir
            .as_deref()
            .and_then(|dir| cache::load(engine, dir, &key));
        let (component, source) = match cached {
            Some(component) => (component, ArtifactSource::DiskCache),
            None => {
                let started = std::time::Instant::now();
                let component = Component::new(engine, &wasm).map_err(|e| {
                    init_error(
                        name,
                        format!("{} is not a valid component: {e:#}", path.display()),
                    )
                })?;
                tracing::debug!(
                    plugin = name,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Compiled wasm plugin."
                );
                if let Some(dir) = &self.cache_dir {
                    cache::store(dir, &key, &component);
                }
                (component, ArtifactSource::Compiled)
            }
        };
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| {
                crate::bindings::Transform::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            })
            .map_err(|e| init_error(name, format!("cannot link host functions: {e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(TransformPre::new)
            .map_err(|e| {
                init_error(
                    name,
                    format!(
                        "{} does not fit the sluice:transform@0.1.0 world: {e:#}",
                        path.display()
                    ),
                )
            })?;
        let plugin = Arc::new(Plugin {
            path: path.to_path_buf(),
            source,
            fuel,
            pre,
        });
        plugins.insert((hash, fuel), plugin.clone());
        Ok(plugin)
    }

    /// Load the plugin of `spec` (its path relative to `base_dir`), instantiate it and call its
    /// `init` with the spec's `with` table.
    pub fn transform(
        &self,
        spec: &TransformSpec,
        base_dir: &Path,
    ) -> Result<WasmTransform, TransformError> {
        let name = spec.display_name();
        let path = base_dir.join(&spec.plugin);
        let plugin = self.load(&name, &path, spec.limits.fuel > 0)?;
        WasmTransform::new(name, plugin, &spec.with, spec.limits.clone())
    }
}
