//! The one way from job text to a runnable job: connectors built and checked, every plugin
//! compiled and initialised with its `with` table. `sluice run`, `sluice validate`, the
//! worker's create/update/validate endpoints and its jobs directory all go through a
//! [`Toolkit`], so a job that one of them accepts, the others accept too.

use std::path::Path;
use std::sync::Arc;

use super::interpolate::Interpolation;
use super::load::{
    ConfigError, JobError, LoadedJob, build_sink, build_source, load_job_with, read_job_file,
};
use super::path::{ConfigIssue, FieldPath};
use crate::connector::BuildContext;
use crate::job::Guarantee;
use crate::local::Confinement;
use crate::registry::Registry;
use crate::runtime::Pipeline;
use crate::transform::{Transform, TransformError, TransformErrorKind, TransformSpec};

/// Builds transforms: the WebAssembly host implements it (the core never names wasmtime).
pub trait TransformFactory: Send + Sync {
    /// Load (compile or reuse) the plugin of `spec` and `init` it with `spec.with`.
    /// `spec.plugin` is absolute. Blocking and CPU-bound: call it off the async threads.
    fn build(&self, spec: &TransformSpec) -> Result<Box<dyn Transform>, TransformError>;
}

/// A factory for builds without a plugin host (tests, tools): any transform is refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTransforms;

impl TransformFactory for NoTransforms {
    fn build(&self, spec: &TransformSpec) -> Result<Box<dyn Transform>, TransformError> {
        Err(TransformError::new(
            spec.display_name(),
            TransformErrorKind::Init,
            "this build has no plugin host",
        ))
    }
}

/// The connectors compiled in and the plugin host: everything needed to assemble jobs.
#[derive(Clone)]
pub struct Toolkit {
    registry: Arc<Registry>,
    transforms: Arc<dyn TransformFactory>,
    interpolation: Arc<Interpolation>,
    confinement: Option<Arc<Confinement>>,
}

impl std::fmt::Debug for Toolkit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolkit").finish_non_exhaustive()
    }
}

impl Toolkit {
    /// A toolkit of these connectors and this plugin host.
    pub fn new(registry: Registry, transforms: impl TransformFactory + 'static) -> Self {
        Self {
            registry: Arc::new(registry),
            transforms: Arc::new(transforms),
            interpolation: Arc::new(Interpolation::All),
            confinement: None,
        }
    }

    /// The same toolkit, expanding only the `${...}` references `policy` allows (jobs that
    /// arrive through the worker's API; the operator's own job files may read anything).
    pub fn with_interpolation(&self, policy: Interpolation) -> Self {
        Self {
            interpolation: Arc::new(policy),
            ..self.clone()
        }
    }

    /// The same toolkit, letting jobs name local files only where `confinement` allows (jobs
    /// that arrive through the worker's API, confined to its `--data-dir` and
    /// `--plugins-dir`).
    pub fn with_confinement(&self, confinement: Confinement) -> Self {
        Self {
            confinement: Some(Arc::new(confinement)),
            ..self.clone()
        }
    }

    /// The connectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Build and check a job file's connectors, without its plugins (for `sluice reset`, which
    /// must work for a job whose plugin no longer loads).
    pub fn load_file(&self, path: &Path, state_dir: Option<&Path>) -> Result<LoadedJob, JobError> {
        let (text, label, base) = read_job_file(path)?;
        self.load_str(&text, &label, &base, state_dir)
    }

    /// Check one connector config (a `[source]` table, or a `[[sinks]]` entry with its runtime
    /// settings) the way a job load builds it, for the worker's validate endpoint: `Ok(())` or
    /// the problems with their field paths inside the table. `scratch_dir` stands in for the
    /// job's directories. `type` must be in the table.
    pub fn check_connector(
        &self,
        sink: bool,
        table: toml::Table,
        scratch_dir: &Path,
    ) -> Result<(), Vec<ConfigIssue>> {
        let ctx = BuildContext::new("validate", scratch_dir, scratch_dir, Guarantee::AtLeastOnce)
            .confined(self.confinement.clone());
        let root = FieldPath::root();
        if sink {
            build_sink(table, &root, &self.registry, &ctx).map(drop)
        } else {
            build_source(table, &root, &self.registry, &ctx)
                .map(drop)
                .map_err(|i| vec![i])
        }
    }

    /// Build and check a job's connectors from text, without its plugins.
    pub fn load_str(
        &self,
        text: &str,
        label: &str,
        base_dir: &Path,
        state_dir: Option<&Path>,
    ) -> Result<LoadedJob, JobError> {
        load_job_with(
            text,
            label,
            base_dir,
            state_dir,
            &self.registry,
            &self.interpolation,
            self.confinement.as_ref(),
        )
    }

    /// Assemble a job file: connectors built and checked, plugins compiled and initialised.
    /// `state_dir` overrides the default `.sluice/<job>` beside the file. Blocking.
    pub fn assemble_file(
        &self,
        path: &Path,
        state_dir: Option<&Path>,
    ) -> Result<Pipeline, JobError> {
        let (text, label, base) = read_job_file(path)?;
        self.assemble_str(&text, &label, &base, state_dir)
    }

    /// Assemble a job from text; `label` names it in errors, relative paths resolve against
    /// `base_dir`. Every problem is reported at once, each with its line and field path —
    /// a plugin's rejection of its `with` table too. Blocking.
    pub fn assemble_str(
        &self,
        text: &str,
        label: &str,
        base_dir: &Path,
        state_dir: Option<&Path>,
    ) -> Result<Pipeline, JobError> {
        let job = self.load_str(text, label, base_dir, state_dir)?;
        // One chain per transform thread, each with its own plugin instances; a transform that
        // does not build is reported once, from the first chain.
        let threads = job.pipeline.transform_threads.max(1);
        let mut chains: Vec<Vec<Box<dyn Transform>>> = Vec::with_capacity(threads);
        let mut errors = Vec::new();
        for _ in 0..threads {
            let mut chain = Vec::with_capacity(job.transforms.len());
            for (i, spec) in job.transforms.iter().enumerate() {
                match self.transforms.build(spec) {
                    Ok(t) => chain.push(t),
                    Err(e) => {
                        let mut error = transform_error(text, label, i, &e);
                        // A plugin may quote its `with` values, which references filled in.
                        error.message = job.expanded.redact(&error.message);
                        errors.push(error);
                    }
                }
            }
            if !errors.is_empty() {
                return Err(JobError { errors });
            }
            chains.push(chain);
        }
        Ok(Pipeline::with_chains(job, chains))
    }
}

/// A transform that did not build, located in the job file: a rejected `with` field at its own
/// line, any other rejection at the `with` table, a plugin that does not load at `plugin`.
fn transform_error(text: &str, label: &str, index: usize, e: &TransformError) -> ConfigError {
    let entry = FieldPath::root().key("transforms").index(index);
    let path = match (&e.field, e.kind) {
        (Some(field), _) => match FieldPath::parse(field) {
            Some(field) => field.under(&entry.key("with")),
            None => entry.key("with"),
        },
        (None, TransformErrorKind::Init) if e.message.starts_with("rejected") => entry.key("with"),
        (None, _) => entry.key("plugin"),
    };
    let line = toml_edit::Document::parse(text.to_string())
        .ok()
        .and_then(|doc| path.line_in(&doc));
    ConfigError {
        file: label.to_string(),
        line,
        path: path.to_string(),
        message: format!("plugin `{}` {}", e.plugin, e.message),
    }
}
