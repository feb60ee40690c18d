//! Fixtures, and building connectors and jobs the way Sluice does: from TOML tables through the
//! registry and the job loader, so the checks see what a user's job file would get.

use std::path::{Path, PathBuf};

use sluice_core::job::load_job_str;
use sluice_core::testing::MemSourceConnector;
use sluice_core::{
    BuildContext, Guarantee, Pipeline, Registry, RunReport, Sink, SinkContext, Source,
};
use tokio_util::sync::CancellationToken;

use crate::{Harness, Test};

/// One test's own destination: a unique name (for a table, a topic, a group) and a scratch
/// directory (for files, SQLite databases, job files and state), removed afterwards.
pub struct Fixture {
    /// Unique per test and run: lowercase letters, digits and `_`, at most 40 characters.
    pub name: String,
    /// Scratch directory of the test.
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A fresh fixture for `test` (nothing made yet: [`Harness::prepare`] does that).
    pub fn new(test: &Test) -> Self {
        let short: String = test
            .check
            .split('_')
            .filter_map(|w| w.chars().next())
            .collect();
        let n: u32 = rand::random();
        let name = format!("conf_{short}_{}_{n:08x}", std::process::id());
        let dir = match tempfile::Builder::new()
            .prefix("sluice-conformance")
            .tempdir()
        {
            Ok(dir) => dir,
            Err(e) => panic!("cannot make a scratch directory: {e}"),
        };
        Self { name, dir }
    }

    /// A path inside the scratch directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// The registry of a job in the suite: the connector's types and the `mem` test source.
pub(crate) fn registry<H: Harness>(h: &H) -> Registry {
    let mut registry = Registry::new();
    h.register(&mut registry);
    registry.register_source::<MemSourceConnector>();
    registry
}

/// The build context of a connector built outside a job file: the job is named like the
/// fixture, so checkpoints of other tests and runs (stored by job and sink) are never shared.
pub(crate) fn context(fx: &Fixture, guarantee: Guarantee) -> BuildContext {
    BuildContext::new(fx.name.clone(), fx.dir.path(), fx.path("state"), guarantee)
}

/// What a sink is told when opened in the suite.
pub(crate) fn sink_context(fx: &Fixture, guarantee: Guarantee) -> SinkContext {
    SinkContext {
        job: fx.name.clone(),
        sink: "under-test".into(),
        guarantee,
    }
}

/// Build the connector's sink from a config table, as the loader does.
pub(crate) fn build_sink<H: Harness>(
    h: &H,
    fx: &Fixture,
    config: toml::Table,
    guarantee: Guarantee,
) -> Box<dyn Sink> {
    let registry = registry(h);
    let kind = h.sink_type().unwrap_or_default();
    let Some(entry) = registry.sink(kind) else {
        panic!("the harness's register() registers no sink {kind:?}")
    };
    match entry.build(config, &context(fx, guarantee)) {
        Ok(sink) => sink,
        Err(e) => panic!(
            "the harness's sink config is refused: {}: {}",
            e.path, e.message
        ),
    }
}

/// Build the connector's source from a config table, as the loader does.
pub(crate) fn build_source<H: Harness>(
    h: &H,
    fx: &Fixture,
    config: toml::Table,
    guarantee: Guarantee,
) -> Box<dyn Source> {
    let registry = registry(h);
    let kind = h.source_type().unwrap_or_default();
    let Some(entry) = registry.source(kind) else {
        panic!("the harness's register() registers no source {kind:?}")
    };
    match entry.build(config, &context(fx, guarantee)) {
        Ok(source) => source,
        Err(e) => panic!(
            "the harness's source config is refused: {}: {}",
            e.path, e.message
        ),
    }
}

/// A job file: `source` and `sink` are `(type, table)`; the sink batches at most `batch`
/// records and waits at most 20 ms.
pub(crate) fn job_text(
    name: &str,
    guarantee: Guarantee,
    source: (&str, toml::Table),
    sink: (&str, toml::Table),
    batch: usize,
) -> String {
    let mut doc = toml::Table::new();
    doc.insert("api_version".into(), 1.into());
    doc.insert("name".into(), name.into());
    let mut delivery = toml::Table::new();
    delivery.insert("guarantee".into(), guarantee.to_string().into());
    delivery.insert("commit_interval".into(), "50ms".into());
    doc.insert("delivery".into(), delivery.into());
    let mut src = source.1;
    src.insert("type".into(), source.0.into());
    doc.insert("source".into(), src.into());
    let mut snk = sink.1;
    snk.insert("type".into(), sink.0.into());
    let mut batching = toml::Table::new();
    batching.insert(
        "max_records".into(),
        i64::try_from(batch).unwrap_or(i64::MAX).into(),
    );
    batching.insert("max_wait".into(), "20ms".into());
    snk.insert("batch".into(), batching.into());
    doc.insert("sinks".into(), toml::Value::Array(vec![snk.into()]));
    match toml::to_string(&doc) {
        Ok(text) => text,
        Err(e) => panic!("cannot write a job file: {e}"),
    }
}

/// Load a job file's text from `dir` with the suite's registry, or its errors as text.
pub(crate) fn load<H: Harness>(
    h: &H,
    dir: &Path,
    text: &str,
) -> Result<sluice_core::LoadedJob, String> {
    load_job_str(text, "job.toml", dir, None, &registry(h)).map_err(|e| e.to_string())
}

/// Run a job to its end in this process, with `transforms`.
pub(crate) async fn run_job<H: Harness>(
    h: &H,
    dir: &Path,
    text: &str,
    transforms: Vec<Box<dyn sluice_core::Transform>>,
) -> Result<RunReport, String> {
    let job = load(h, dir, text)?;
    Pipeline::new(job, transforms)
        .run(CancellationToken::new())
        .await
        .map_err(|e| e.to_string())
}
