//! The connector registry: plain code that lists every connector type with its typed config.
//!
//! Connector authors implement [`SourceConnector`] / [`SinkConnector`] with a typed `Config`;
//! the registry erases them so the runtime deals with raw config tables while authors see
//! typed structs (and the config reference is generated from the same types).

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;

use crate::connector::{BuildContext, Sink, Source};
use crate::error::{ConnectorError, with_causes};
use crate::job::path::{ConfigIssue, FieldPath};

/// A source connector type.
pub trait SourceConnector: 'static {
    /// The `type` value in a job file.
    const TYPE: &'static str;
    /// One-line description.
    const DOC: &'static str;
    /// The typed configuration (every field documented, unknown fields denied).
    type Config: DeserializeOwned + JsonSchema;
    /// Build the source (no I/O yet: `open` does that).
    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Source>, ConnectorError>;
}

/// A sink connector type.
pub trait SinkConnector: 'static {
    /// The `type` value in a job file.
    const TYPE: &'static str;
    /// One-line description.
    const DOC: &'static str;
    /// The typed configuration (every field documented, unknown fields denied).
    type Config: DeserializeOwned + JsonSchema;
    /// Build the sink (no I/O yet: `open` does that).
    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError>;
}

type BuildFn<T> = fn(toml::Table, &BuildContext) -> Result<T, ConfigIssue>;

/// One registered connector type, type-erased.
pub struct Entry<T> {
    /// The `type` value.
    pub name: &'static str,
    /// One-line description.
    pub doc: &'static str,
    /// JSON schema of the config.
    pub schema: fn() -> Schema,
    build: BuildFn<T>,
}

impl<T> Entry<T> {
    /// Deserialize `config` into the typed config and build the connector.
    pub fn build(&self, config: toml::Table, ctx: &BuildContext) -> Result<T, ConfigIssue> {
        (self.build)(config, ctx)
    }
}

/// All connector types known to this binary.
#[derive(Default)]
pub struct Registry {
    sources: BTreeMap<&'static str, Entry<Box<dyn Source>>>,
    sinks: BTreeMap<&'static str, Entry<Box<dyn Sink>>>,
}

/// Deserialize one value, keeping the path (under `path`) of the failing field.
pub fn typed_value<C: DeserializeOwned>(
    value: toml::Value,
    path: &FieldPath,
) -> Result<C, ConfigIssue> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = FieldPath::from_serde(e.path());
        ConfigIssue::new(inner.under(path), e.into_inner().message().to_string())
    })
}

/// Deserialize a typed config from a table, keeping the path of the failing field.
pub fn typed_config<C: DeserializeOwned>(config: toml::Table) -> Result<C, ConfigIssue> {
    serde_path_to_error::deserialize(toml::Value::Table(config)).map_err(|e| {
        let path = FieldPath::from_serde(e.path());
        ConfigIssue::new(path, e.into_inner().message().to_string())
    })
}

fn build_source<C: SourceConnector>(
    config: toml::Table,
    ctx: &BuildContext,
) -> Result<Box<dyn Source>, ConfigIssue> {
    let typed = typed_config::<C::Config>(config)?;
    C::build(typed, ctx).map_err(build_issue)
}

/// A connector's refusal to build, at the field it names (`ConnectorError::at`) when it names
/// one.
fn build_issue(e: ConnectorError) -> ConfigIssue {
    let path = e
        .field
        .as_deref()
        .and_then(FieldPath::parse)
        .unwrap_or_else(FieldPath::root);
    ConfigIssue::new(path, with_causes(&e))
}

fn build_sink<C: SinkConnector>(
    config: toml::Table,
    ctx: &BuildContext,
) -> Result<Box<dyn Sink>, ConfigIssue> {
    let typed = typed_config::<C::Config>(config)?;
    C::build(typed, ctx).map_err(build_issue)
}

fn schema_of<C: JsonSchema>() -> Schema {
    schemars::schema_for!(C)
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a source type.
    pub fn register_source<C: SourceConnector>(&mut self) {
        self.sources.insert(
            C::TYPE,
            Entry {
                name: C::TYPE,
                doc: C::DOC,
                schema: schema_of::<C::Config>,
                build: build_source::<C>,
            },
        );
    }

    /// Register a sink type.
    pub fn register_sink<C: SinkConnector>(&mut self) {
        self.sinks.insert(
            C::TYPE,
            Entry {
                name: C::TYPE,
                doc: C::DOC,
                schema: schema_of::<C::Config>,
                build: build_sink::<C>,
            },
        );
    }

    /// A source type by name.
    pub fn source(&self, name: &str) -> Option<&Entry<Box<dyn Source>>> {
        self.sources.get(name)
    }

    /// A sink type by name.
    pub fn sink(&self, name: &str) -> Option<&Entry<Box<dyn Sink>>> {
        self.sinks.get(name)
    }

    /// Every source type, by name.
    pub fn sources(&self) -> impl Iterator<Item = &Entry<Box<dyn Source>>> {
        self.sources.values()
    }

    /// Every sink type, by name.
    pub fn sinks(&self) -> impl Iterator<Item = &Entry<Box<dyn Sink>>> {
        self.sinks.values()
    }
}
