//! Loading a job file: parse, interpolate, deserialize in two steps, check capabilities.
//! Every problem is reported with its file, line and field path; all of them at once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::interpolate::{Expanded, Interpolation, Interpolator};
use super::path::{ConfigIssue, FieldPath};
use super::{
    DeliveryConfig, ErrorsConfig, Guarantee, MAX_IN_FLIGHT_BYTES, MAX_TRANSFORM_THREADS,
    PipelineConfig, RawJob, SinkCommon, Tolerance,
};
use crate::connector::{BuildContext, Sink, Source};
use crate::local::Confinement;
use crate::registry::{Registry, typed_config, typed_value};
use crate::transform::TransformSpec;

/// A problem in a job file, tied to where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The job file (or `<input>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Field path like `sinks[0].batch.max_bytes`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}: {}", self.file, line, self.path, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.path, self.message),
        }
    }
}

/// Every problem found in a job file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct JobError {
    /// The problems, in document order as far as known.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl crate::error::Fault for JobError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Config
    }

    fn retryable(&self) -> bool {
        false
    }
}

/// A sink ready to run, with its runtime settings.
pub struct SinkPlan {
    /// Unique name within the job.
    pub name: String,
    /// Connector type.
    pub type_name: String,
    /// Batching and retry settings.
    pub common: SinkCommon,
    /// The sink itself.
    pub sink: Box<dyn Sink>,
}

/// A job file that passed validation, with its connectors built.
pub struct LoadedJob {
    /// The job name.
    pub name: String,
    /// Where it was loaded from.
    pub file: String,
    /// Directory for relative paths.
    pub base_dir: PathBuf,
    /// State directory (offset store, default dead-letter file).
    pub state_dir: PathBuf,
    /// `[delivery]`.
    pub delivery: DeliveryConfig,
    /// The source's connector type.
    pub source_type: String,
    /// The source.
    pub source: Box<dyn Source>,
    /// `[[transforms]]`, in order (built by the caller, which owns the WebAssembly host).
    pub transforms: Vec<TransformSpec>,
    /// `[[sinks]]`.
    pub sinks: Vec<SinkPlan>,
    /// What to do with bad records.
    pub tolerance: Tolerance,
    /// Dead-letter sink, when records may be dead-lettered.
    pub dead_letter: Option<SinkPlan>,
    /// `[pipeline]`.
    pub pipeline: PipelineConfig,
    /// The interpolated job as TOML (for display; secrets included, do not log).
    pub raw: toml::Table,
    /// The job's text as written, before interpolation: where errors found after loading
    /// ([`LoadedJob::check`]) are located.
    pub text: String,
    /// The values `${...}` references expanded to: [`Expanded::redact`] keeps them out of
    /// messages.
    pub expanded: Expanded,
}

impl fmt::Debug for LoadedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedJob")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("source", &self.source_type)
            .field(
                "sinks",
                &self.sinks.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Load and validate a job file. `state_dir` overrides the default `.sluice/<job>` beside it.
pub fn load_job_file(
    path: &Path,
    state_dir: Option<&Path>,
    registry: &Registry,
) -> Result<LoadedJob, JobError> {
    let (text, label, base) = read_job_file(path)?;
    load_job_str(&text, &label, &base, state_dir, registry)
}

/// A job file's text, its label in errors and the directory its relative paths resolve in.
pub(crate) fn read_job_file(path: &Path) -> Result<(String, String, PathBuf), JobError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| JobError {
        errors: vec![ConfigError {
            file: label.clone(),
            line: None,
            path: "(file)".into(),
            message: format!("cannot read job file: {e}"),
        }],
    })?;
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    Ok((text, label, base))
}

/// Load and validate a job from text. `label` names it in errors.
pub fn load_job_str(
    text: &str,
    label: &str,
    base_dir: &Path,
    state_dir: Option<&Path>,
    registry: &Registry,
) -> Result<LoadedJob, JobError> {
    load_job_with(
        text,
        label,
        base_dir,
        state_dir,
        registry,
        &Interpolation::All,
        None,
    )
}

/// [`load_job_str`], expanding only the references `policy` allows, and with a `confinement`
/// refusing local files and plugins outside what it allows (jobs from the worker's API). No
/// error message quotes a value a reference expanded to.
pub(crate) fn load_job_with(
    text: &str,
    label: &str,
    base_dir: &Path,
    state_dir: Option<&Path>,
    registry: &Registry,
    policy: &Interpolation,
    confinement: Option<&Arc<Confinement>>,
) -> Result<LoadedJob, JobError> {
    let doc = match toml_edit::Document::parse(text.to_string()) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            return Err(JobError {
                errors: vec![ConfigError {
                    file: label.to_string(),
                    line,
                    path: "(syntax)".into(),
                    message: e.message().trim().to_string(),
                }],
            });
        }
    };
    let mut interpolator = Interpolator {
        base_dir,
        policy,
        expanded: Expanded::default(),
    };
    let mut table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(e) => {
            let issue = ConfigIssue::new(FieldPath::root(), e.message().to_string());
            return Err(JobError {
                errors: vec![ConfigError {
                    file: label.to_string(),
                    line: issue.path.line_in(&doc),
                    path: issue.path.to_string(),
                    message: issue.message,
                }],
            });
        }
    };
    let mut issues = Vec::new();
    interpolator.table(&mut table, &FieldPath::root(), &mut issues);
    let expanded = interpolator.expanded;
    let locate = |issue: ConfigIssue| ConfigError {
        file: label.to_string(),
        line: issue.path.line_in(&doc),
        path: issue.path.to_string(),
        message: expanded.redact(&issue.message),
    };
    let fail = |issues: Vec<ConfigIssue>| JobError {
        errors: issues.into_iter().map(locate).collect(),
    };

    if !issues.is_empty() {
        return Err(fail(issues));
    }
    let Some(raw) = parse_top_level(&table, &mut issues) else {
        return Err(fail(issues));
    };
    if raw.api_version != super::API_VERSION {
        issues.push(ConfigIssue::new(
            FieldPath::root().key("api_version"),
            format!(
                "unsupported api_version {} (this sluice understands {})",
                raw.api_version,
                super::API_VERSION
            ),
        ));
    }
    if let Err(why) = check_job_name(&raw.name) {
        issues.push(ConfigIssue::new(FieldPath::root().key("name"), why));
    }
    let state_dir = state_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| base_dir.join(".sluice").join(&raw.name));
    let ctx = BuildContext::new(
        raw.name.clone(),
        base_dir,
        state_dir.clone(),
        raw.delivery.guarantee,
    )
    .confined(confinement.cloned());

    let source_path = FieldPath::root().key("source");
    let source = build_source(raw.source.clone(), &source_path, registry, &ctx)
        .map_err(|i| issues.push(i))
        .ok();

    if raw.sinks.is_empty() {
        issues.push(ConfigIssue::new(
            FieldPath::root().key("sinks"),
            "a job needs at least one [[sinks]] entry",
        ));
    }
    let mut sinks = Vec::new();
    let mut sink_paths = Vec::new();
    for (i, sink) in raw.sinks.iter().enumerate() {
        let path = FieldPath::root().key("sinks").index(i);
        match build_sink(sink.clone(), &path, registry, &ctx) {
            Ok(plan) => {
                sinks.push(plan);
                sink_paths.push(path);
            }
            Err(found) => issues.extend(found),
        }
    }
    name_sinks(&mut sinks, &mut issues);

    let dead_letter = build_dead_letter(&raw.errors, &state_dir, registry, &ctx, &mut issues);
    let writers = sinks.iter().zip(sink_paths).chain(
        dead_letter
            .iter()
            .map(|d| (d, FieldPath::root().key("errors").key("dead_letter"))),
    );
    check_one_writer_per_destination(writers, &mut issues);

    for (i, t) in raw.transforms.iter().enumerate() {
        let field = FieldPath::root().key("transforms").index(i).key("plugin");
        let plugin = ctx.resolve(&t.plugin);
        // Checked first: whether a file outside the allowed directories exists is not for an
        // untrusted job to learn.
        if let Some(Err(why)) = ctx.confinement().map(|c| c.check_plugin(&plugin)) {
            issues.push(ConfigIssue::new(field, why));
        } else if !plugin.is_file() {
            issues.push(ConfigIssue::new(
                field,
                format!("plugin file {} does not exist", plugin.display()),
            ));
        }
    }

    if raw.delivery.guarantee == Guarantee::ExactlyOnce {
        check_exactly_once(source.as_ref(), &sinks, &mut issues);
    }
    if raw.pipeline.channel_capacity == 0 {
        issues.push(ConfigIssue::new(
            FieldPath::root().key("pipeline").key("channel_capacity"),
            "must be at least 1",
        ));
    }
    if !(1..=MAX_TRANSFORM_THREADS).contains(&raw.pipeline.transform_threads) {
        issues.push(ConfigIssue::new(
            FieldPath::root().key("pipeline").key("transform_threads"),
            format!("must be from 1 to {MAX_TRANSFORM_THREADS}"),
        ));
    }
    if let Some(budget) = raw.pipeline.max_in_flight_bytes {
        let field = FieldPath::root().key("pipeline").key("max_in_flight_bytes");
        let largest = sinks
            .iter()
            .map(|s| s.common.batch.max_bytes)
            .max()
            .unwrap_or_default();
        if budget < largest {
            issues.push(ConfigIssue::new(
                field,
                format!(
                    "{} bytes is less than a sink's batch.max_bytes ({} bytes): that sink's batches could never fill",
                    budget.0, largest.0
                ),
            ));
        } else if budget.0 > MAX_IN_FLIGHT_BYTES {
            issues.push(ConfigIssue::new(field, "must be below 4GiB"));
        }
    }

    if !issues.is_empty() {
        return Err(fail(issues));
    }
    let Some((source_type, source)) = source else {
        return Err(fail(vec![ConfigIssue::new(
            source_path,
            "source did not build",
        )]));
    };
    let transforms = raw
        .transforms
        .into_iter()
        .map(|mut t| {
            t.plugin = ctx.resolve(&t.plugin);
            t
        })
        .collect();
    Ok(LoadedJob {
        name: raw.name,
        file: label.to_string(),
        base_dir: base_dir.to_path_buf(),
        state_dir,
        delivery: raw.delivery,
        source_type,
        source,
        transforms,
        sinks,
        tolerance: raw.errors.tolerance,
        dead_letter,
        pipeline: raw.pipeline,
        raw: table,
        text: text.to_string(),
        expanded,
    })
}

const TOP_LEVEL: [&str; 8] = [
    "api_version",
    "name",
    "delivery",
    "source",
    "transforms",
    "sinks",
    "errors",
    "pipeline",
];

/// Deserialize each top-level section on its own, so one bad section does not hide the
/// problems of the others.
fn parse_top_level(table: &toml::Table, issues: &mut Vec<ConfigIssue>) -> Option<RawJob> {
    let root = FieldPath::root();
    for key in table.keys() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            issues.push(ConfigIssue::new(
                root.key(key.clone()),
                format!(
                    "unknown field `{key}`, expected one of {}",
                    TOP_LEVEL.join(", ")
                ),
            ));
        }
    }
    fn section<T: serde::de::DeserializeOwned>(
        table: &toml::Table,
        key: &str,
        required: bool,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<Option<T>> {
        match table.get(key) {
            None if required => {
                issues.push(ConfigIssue::new(
                    FieldPath::root(),
                    format!("missing field `{key}`"),
                ));
                None
            }
            None => Some(None),
            Some(v) => match typed_value::<T>(v.clone(), &FieldPath::root().key(key)) {
                Ok(t) => Some(Some(t)),
                Err(issue) => {
                    issues.push(issue);
                    None
                }
            },
        }
    }
    let api_version = section::<u32>(table, "api_version", true, issues);
    let name = section::<String>(table, "name", true, issues);
    let delivery = section(table, "delivery", false, issues);
    let source = section(table, "source", true, issues);
    let transforms = section(table, "transforms", false, issues);
    let sinks = section(table, "sinks", true, issues);
    let errors = section(table, "errors", false, issues);
    let pipeline = section(table, "pipeline", false, issues);
    Some(RawJob {
        api_version: api_version??,
        name: name??,
        // A bad optional section is already reported; go on with its defaults to check the rest.
        delivery: delivery.flatten().unwrap_or_default(),
        source: source??,
        transforms: transforms.flatten().unwrap_or_default(),
        sinks: sinks??,
        errors: errors.flatten().unwrap_or_default(),
        pipeline: pipeline.flatten().unwrap_or_default(),
    })
}

fn take_type(table: &mut toml::Table, path: &FieldPath) -> Result<String, ConfigIssue> {
    match table.remove("type") {
        Some(toml::Value::String(s)) => Ok(s),
        Some(_) => Err(ConfigIssue::new(path.key("type"), "expected a string")),
        None => Err(ConfigIssue::new(path.clone(), "missing field `type`")),
    }
}

pub(crate) fn build_source(
    mut table: toml::Table,
    path: &FieldPath,
    registry: &Registry,
    ctx: &BuildContext,
) -> Result<(String, Box<dyn Source>), ConfigIssue> {
    let kind = take_type(&mut table, path)?;
    let entry = registry.source(&kind).ok_or_else(|| {
        let known: Vec<_> = registry.sources().map(|e| e.name).collect();
        ConfigIssue::new(
            path.key("type"),
            format!("unknown source type {kind:?} (known: {})", known.join(", ")),
        )
    })?;
    let source = entry.build(table, ctx).map_err(|i| ConfigIssue {
        path: i.path.under(path),
        message: i.message,
    })?;
    Ok((kind, source))
}

pub(crate) fn build_sink(
    mut table: toml::Table,
    path: &FieldPath,
    registry: &Registry,
    ctx: &BuildContext,
) -> Result<SinkPlan, Vec<ConfigIssue>> {
    let kind = take_type(&mut table, path).map_err(|i| vec![i])?;
    let entry = registry.sink(&kind).ok_or_else(|| {
        let known: Vec<_> = registry.sinks().map(|e| e.name).collect();
        vec![ConfigIssue::new(
            path.key("type"),
            format!("unknown sink type {kind:?} (known: {})", known.join(", ")),
        )]
    })?;
    // The runtime settings and the connector's own config are checked both, so one bad
    // setting does not hide the connector's problems.
    let common_table = SinkCommon::split_off(&mut table);
    let common = typed_config::<SinkCommon>(common_table)
        .map_err(|i| ConfigIssue {
            path: i.path.under(path),
            message: i.message,
        })
        .and_then(|common| {
            if common.batch.max_records == 0 {
                return Err(ConfigIssue::new(
                    path.key("batch").key("max_records"),
                    "must be at least 1",
                ));
            }
            if let Some(when) = &common.when {
                when.check()
                    .map_err(|(at, why)| ConfigIssue::new(at.under(&path.key("when")), why))?;
            }
            Ok(common)
        });
    // The sink is built knowing the retry policy it will run under (a bad `retry` table is
    // reported above; the connector is still checked, under the default policy).
    let retried = common.as_ref().map(|c| ctx.with_retry(c.retry.clone()));
    let sink = entry
        .build(table, retried.as_ref().unwrap_or(ctx))
        .map_err(|i| ConfigIssue {
            path: i.path.under(path),
            message: i.message,
        });
    match (common, sink) {
        (Ok(common), Ok(sink)) => Ok(SinkPlan {
            name: common.name.clone().unwrap_or_default(),
            type_name: kind,
            common,
            sink,
        }),
        (common, sink) => Err(common.err().into_iter().chain(sink.err()).collect()),
    }
}

/// Give unnamed sinks their type as name (`file`, `file-2`, ...) and reject duplicates.
fn name_sinks(sinks: &mut [SinkPlan], issues: &mut Vec<ConfigIssue>) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in sinks.iter_mut().enumerate() {
        if s.name.is_empty() {
            let mut n = 1;
            let mut candidate = s.type_name.clone();
            while seen.contains(&candidate) {
                n += 1;
                candidate = format!("{}-{n}", s.type_name);
            }
            s.name = candidate;
        } else if seen.contains(&s.name) {
            issues.push(ConfigIssue::new(
                FieldPath::root().key("sinks").index(i).key("name"),
                format!("duplicate sink name {:?}", s.name),
            ));
        }
        seen.insert(s.name.clone());
    }
}

fn build_dead_letter(
    errors: &ErrorsConfig,
    state_dir: &Path,
    registry: &Registry,
    ctx: &BuildContext,
    issues: &mut Vec<ConfigIssue>,
) -> Option<SinkPlan> {
    let path = FieldPath::root().key("errors").key("dead_letter");
    // The default file in the job's state directory is the runtime's choice, not the job's:
    // a confined job may have it.
    let trusted;
    let (table, ctx) = match (&errors.dead_letter, errors.tolerance) {
        (Some(t), _) => (t.clone(), ctx),
        (None, Tolerance::All) => {
            let mut t = toml::Table::new();
            t.insert("type".into(), "file".into());
            let file = state_dir.join("dead-letter.jsonl");
            t.insert("path".into(), file.display().to_string().into());
            trusted = ctx.trusted();
            (t, &trusted)
        }
        (None, Tolerance::None) => return None,
    };
    let mut table = table;
    table.entry("name").or_insert_with(|| "dead-letter".into());
    match build_sink(table, &path, registry, ctx) {
        Ok(plan) => Some(plan),
        Err(found) => {
            issues.extend(found);
            None
        }
    }
}

/// Two sinks writing to one destination (a file, a table, a topic) would overwrite or cut each
/// other's data and checkpoints, so each destination gets one writer, the dead-letter sink
/// included. Sinks that cannot name their destination are not compared.
fn check_one_writer_per_destination<'a>(
    writers: impl Iterator<Item = (&'a SinkPlan, FieldPath)>,
    issues: &mut Vec<ConfigIssue>,
) {
    let mut seen: std::collections::BTreeMap<String, (String, FieldPath)> = Default::default();
    for (plan, path) in writers {
        let Some(destination) = plan.sink.destination() else {
            continue;
        };
        match seen.get(&destination) {
            Some((first, first_path)) => issues.push(ConfigIssue::new(
                path,
                format!(
                    "sink {:?} writes to {destination}, the destination of sink {first:?} ({first_path}); two writers on one destination would overwrite each other's data and checkpoints",
                    plan.name
                ),
            )),
            None => {
                seen.insert(destination, (plan.name.clone(), path));
            }
        }
    }
}

fn check_exactly_once(
    source: Option<&(String, Box<dyn Source>)>,
    sinks: &[SinkPlan],
    issues: &mut Vec<ConfigIssue>,
) {
    let guarantee = FieldPath::root().key("delivery").key("guarantee");
    if let Some((kind, source)) = source
        && !source.can_seek()
    {
        issues.push(ConfigIssue::new(
            guarantee.clone(),
            format!(
                "exactly-once needs a source that can resume at a checkpoint; source type {kind:?} cannot"
            ),
        ));
    }
    for (i, s) in sinks.iter().enumerate() {
        if !s.sink.transactional() {
            issues.push(ConfigIssue::new(
                guarantee.clone(),
                format!(
                    "exactly-once needs sinks that store their checkpoint atomically with the data; sinks[{i}] ({:?}, type {:?}) cannot — use \"at-least-once\" or a transactional sink (sql)",
                    s.name, s.type_name
                ),
            ));
        }
    }
}

/// The longest job name: names become directory and file names (`.sluice/<name>/`,
/// `<name>.toml` in the worker), which most file systems cap at 255 bytes.
pub const MAX_JOB_NAME: usize = 128;

/// A job name is a file name on every platform: letters, digits, `-`, `_`, `.`, not starting
/// with `.` (so never `.` or `..`), at most [`MAX_JOB_NAME`] characters.
pub fn check_job_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.starts_with('.')
        || name.len() > MAX_JOB_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "a job name is 1 to {MAX_JOB_NAME} letters, digits, '-', '_' and '.', not starting with '.'"
        ));
    }
    Ok(())
}
