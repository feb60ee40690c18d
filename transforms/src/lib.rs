//! Sluice's WebAssembly transform host.
//!
//! Transforms are WebAssembly components exporting the `sluice:transform@0.1.0` world
//! (`wit/transform.wit`): `init(config)` once per instance with the job's `with` table, then
//! `process(batch)` returning one outcome per input record. Batches cross the boundary as one
//! encoded buffer each way (`wit/ENCODING.md`); plugin authors use the `sluice-plugin-sdk` crate
//! and never see it.
//!
//! - Each component is compiled once per process ([`Loader`]) and the compiled artifact is
//!   cached on disk keyed by content hash and engine settings ([`default_cache_dir`]), so a
//!   restart does not recompile.
//! - Each [`WasmTransform`] owns one instance (created from a shared `InstancePre`) and reuses
//!   it across batches; after any failed call it is re-created before the next batch.
//! - Every call runs under [`TransformLimits`](sluice_core::transform::TransformLimits): an
//!   epoch deadline, fuel (when non-zero), a memory cap and an output-size cap. Exceeding one
//!   fails the batch with a [`TransformError`] naming the plugin and the limit.
//! - The sandbox grants no file system, network, environment or clock (the batch carries the
//!   host's time instead); standard error is captured into error reports.
//!
//! This is the only crate that names wasmtime types.
#![deny(missing_docs)]

mod bindings;
mod cache;
mod engine;
mod instance;
mod loader;
mod wire;

use std::path::Path;

use sluice_core::transform::{Transform, TransformError, TransformSpec};

pub use cache::{default_cache_dir, set_max_size as set_cache_max_size};
pub use instance::WasmTransform;
pub use loader::{ArtifactSource, Loader, Plugin};

/// The WIT package every plugin must implement.
pub const WIT_PACKAGE: &str = "sluice:transform@0.1.0";

/// Load one transform: read and compile (or reuse) its plugin, instantiate it and call `init`
/// with the spec's `with` table. The plugin path is relative to `base_dir` (the job file's
/// directory). Uses [`Loader::global`].
pub fn load_transform(
    spec: &TransformSpec,
    base_dir: &Path,
) -> Result<WasmTransform, TransformError> {
    Loader::global().transform(spec, base_dir)
}

/// The plugin host as the job assembly's transform factory ([`Loader::global`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct WasmHost;

impl sluice_core::job::TransformFactory for WasmHost {
    fn build(&self, spec: &TransformSpec) -> Result<Box<dyn Transform>, TransformError> {
        // The job assembly resolved `spec.plugin` against the job file's directory already.
        load_transform(spec, Path::new("/")).map(|t| Box::new(t) as Box<dyn Transform>)
    }
}
