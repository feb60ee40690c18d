//! Turning a validated job into a runnable pipeline (the glue between the core runtime and the
//! WebAssembly host).

use anyhow::Context as _;
use sluice_core::{LoadedJob, Pipeline};

/// Load the job's transform chain (compile or reuse each plugin, `init` it with its `with`
/// table) and build the pipeline.
pub fn build(job: LoadedJob) -> anyhow::Result<Pipeline> {
    let transforms = sluice_transforms::load_chain(&job.transforms, &job.base_dir)
        .with_context(|| format!("{}: loading transforms", job.file))?;
    Ok(Pipeline::new(job, transforms))
}
