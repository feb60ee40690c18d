//! Kafka Connect's `/connector-plugins`: the connector types this worker has (a Sluice
//! connector type is Connect's plugin class), and the validation of one connector config, in
//! Connect's `ConfigInfos` shape. The config is validated by the same function the native
//! API used (`config::validate_connector`, confined like an API job).

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::Registry;
use utoipa::{IntoParams, ToSchema};

use super::api::App;
use super::config::{self, Kind};
use super::connect_api::{flat_config, json_body};
use super::connect_view::{CONNECTOR_CLASS, TASKS_MAX};
use super::error::{ApiError, ConnectError, ConnectErrorBody, FieldError};
use super::flat::{self, Flat};

/// A connector type, as Connect lists a plugin.
#[derive(Serialize, ToSchema)]
pub struct PluginInfo {
    /// The type name, as in a job's `type = "..."` (Connect's plugin class).
    class: &'static str,
    /// Source or sink.
    #[serde(rename = "type")]
    kind: Kind,
    /// The worker's version.
    version: &'static str,
    /// What it does.
    doc: &'static str,
    /// JSON Schema of its config.
    #[schema(value_type = Object)]
    schema: Value,
}

/// Connector types (Connect's plugins).
///
/// Each with its kind (source or sink), the worker's version, a description and the JSON
/// Schema of its config. A type that is both (`file`) is listed twice.
#[utoipa::path(get, path = "/connector-plugins", tag = "kafka-connect", responses(
    (status = 200, description = "Every connector type", body = Vec<PluginInfo>),
))]
pub async fn connector_plugins(State(app): State<App>) -> Json<Vec<PluginInfo>> {
    let registry = app.sup.ctx.toolkit.registry();
    let sources = registry
        .sources()
        .map(|e| (Kind::Source, e.name, e.doc, (e.schema)()));
    let sinks = registry
        .sinks()
        .map(|e| (Kind::Sink, e.name, e.doc, (e.schema)()));
    Json(
        sources
            .chain(sinks)
            .map(|(kind, class, doc, schema)| PluginInfo {
                class,
                kind,
                version: env!("CARGO_PKG_VERSION"),
                doc,
                schema: schema.into(),
            })
            .collect(),
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KindQuery {
    /// Source or sink. Required when the type is both (such as `file` or `mongodb`: 400
    /// without it); optional otherwise.
    kind: Option<Kind>,
}

/// What a connector type is, from `?kind=` or the registry.
fn plugin_kind(registry: &Registry, plugin: &str, kind: Option<Kind>) -> Result<Kind, ApiError> {
    if let Some(kind) = kind {
        return Ok(kind);
    }
    match (
        registry.source(plugin).is_some(),
        registry.sink(plugin).is_some(),
    ) {
        (true, true) => Err(ApiError::bad_request(format!(
            "{plugin:?} is both a source and a sink type: add ?kind=source or ?kind=sink"
        ))),
        (true, false) => Ok(Kind::Source),
        (false, true) => Ok(Kind::Sink),
        (false, false) => Err(ApiError::not_found(format!("no connector type {plugin:?}"))),
    }
}

/// One setting's definition.
#[derive(Serialize, ToSchema)]
pub struct ConfigKeyInfo {
    /// The flat key.
    name: String,
    /// `STRING`, `LONG`, `DOUBLE`, `BOOLEAN` or `LIST`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Whether it must be given.
    required: bool,
    /// Its default, as a string.
    default_value: Option<String>,
    /// `HIGH` for required settings, `MEDIUM` otherwise.
    importance: &'static str,
    /// What it is.
    documentation: String,
    /// `Source` or `Sink`.
    group: String,
    /// Always `NONE`.
    width: &'static str,
    /// The key.
    display_name: String,
    /// Always empty.
    dependents: Vec<String>,
    /// Its place in the connector's settings.
    order: usize,
}

/// One setting's value and its problems.
#[derive(Serialize, ToSchema)]
pub struct ConfigValueInfo {
    /// The flat key.
    name: String,
    /// The value given, if any.
    value: Option<String>,
    /// The values it may take, when they are a fixed set.
    recommended_values: Vec<String>,
    /// What is wrong with it.
    errors: Vec<String>,
    /// Always true.
    visible: bool,
}

/// One setting in a validation.
#[derive(Serialize, ToSchema)]
pub struct ConfigInfo {
    /// What it is.
    definition: ConfigKeyInfo,
    /// What was given.
    value: ConfigValueInfo,
}

/// `PUT /connector-plugins/{plugin}/config/validate`: Connect's `ConfigInfos`.
#[derive(Serialize, ToSchema)]
pub struct ConfigInfos {
    /// The connector type.
    name: String,
    /// Problems found; 0 when the config is valid.
    error_count: usize,
    /// The groups of the settings: `Source` or `Sink`.
    groups: Vec<String>,
    /// Every setting of the type, and every key given.
    configs: Vec<ConfigInfo>,
}

/// Follow `$ref`s.
fn resolve<'a>(root: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(pointer) = v
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
        else {
            break;
        };
        match root.pointer(pointer) {
            Some(target) => v = target,
            None => break,
        }
    }
    v
}

/// Connect's type name of a property, and its fixed values.
fn connect_type(root: &Value, prop: &Value) -> (&'static str, Vec<String>) {
    let prop = resolve(root, prop);
    let variants: Vec<&Value> = ["oneOf", "anyOf"]
        .iter()
        .find_map(|k| prop.get(*k).and_then(Value::as_array))
        .map(|vs| vs.iter().map(|v| resolve(root, v)).collect())
        .unwrap_or_else(|| vec![prop]);
    let consts: Vec<String> = variants
        .iter()
        .filter_map(|v| v.get("const").and_then(Value::as_str).map(str::to_string))
        .chain(
            prop.get("enum")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string)),
        )
        .collect();
    let named = variants.iter().find_map(|v| match v.get("type") {
        Some(Value::String(t)) if t != "null" => Some(t.clone()),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_string),
        _ => None,
    });
    let kind = match named.as_deref() {
        Some("integer") => "LONG",
        Some("number") => "DOUBLE",
        Some("boolean") => "BOOLEAN",
        Some("array") => "LIST",
        _ => "STRING",
    };
    (kind, consts)
}

/// Validate one connector config, sent as Connect sends it: a flat object of strings.
///
/// The keys are those of the connector's table in a job, flat (`path`, `batch.max_bytes`;
/// docs/worker.md, "Kafka Connect compatibility"); `connector.class`, `name` and `tasks.max`
/// are Connect's and are not part of it. Sink configs may include the runtime settings every
/// sink has (batch, retry, when). An invalid config is a 200 with `error_count` and each
/// problem at its key.
#[utoipa::path(put, path = "/connector-plugins/{plugin}/config/validate", tag = "kafka-connect",
    params(
        ("plugin" = String, Path, description = "A connector type, as listed by `GET /connector-plugins`"),
        KindQuery,
    ),
    // Optional (openapi::OPTIONAL_BODIES): no body is the empty config.
    request_body(description = "The connector's config as a flat object of strings; none is the empty config",
        content = BTreeMap<String, String>, content_type = "application/json"),
    responses(
        (status = 200, description = "Validated: `error_count` says whether the config is valid", body = ConfigInfos),
        (status = 400, description = "A malformed request: a body that is not an object of strings, a bad `kind`, or a type that is both a source and a sink without `kind`", body = ConnectErrorBody),
        (status = 404, description = "No connector type of that name (and kind)", body = ConnectErrorBody),
    ),
)]
pub async fn validate_plugin(
    State(app): State<App>,
    Path(plugin): Path<String>,
    q: Result<Query<KindQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<ConfigInfos>, ConnectError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let ctx = &app.sup.ctx;
    let kind = plugin_kind(ctx.toolkit.registry(), &plugin, q.kind)?;
    let given: Flat = if body.iter().all(u8::is_ascii_whitespace) {
        Flat::new()
    } else {
        flat_config(json_body(&body)?)?
    };
    let mut errors: Vec<FieldError> = Vec::new();
    let mut error = |path: &str, message: String| {
        errors.push(FieldError {
            path: path.to_string(),
            line: None,
            message,
        })
    };
    let mut job = Flat::new();
    let prefix = match kind {
        Kind::Source => "source",
        Kind::Sink => "sinks.0",
    };
    for (key, value) in &given {
        match key.as_str() {
            CONNECTOR_CLASS if *value != plugin => error(
                key,
                format!("the config says class {value:?} but the URL says {plugin:?}"),
            ),
            CONNECTOR_CLASS | TASKS_MAX | "name" => {}
            _ => {
                job.insert(format!("{prefix}.{key}"), value.clone());
            }
        }
    }
    job.insert(format!("{prefix}.type"), plugin.clone());
    let schema = sluice_core::job::job_schema(ctx.toolkit.registry());
    let table = match flat::unflatten(&job, &schema) {
        Ok(mut table) => {
            let connector = match kind {
                Kind::Source => table.remove("source"),
                Kind::Sink => table
                    .remove("sinks")
                    .and_then(|s| s.as_array().and_then(|a| a.first().cloned())),
            };
            connector.and_then(|c| match c {
                toml::Value::Table(t) => Some(t),
                _ => None,
            })
        }
        Err(problems) => {
            for p in problems {
                let key = p.key.strip_prefix(&format!("{prefix}.")).unwrap_or(&p.key);
                error(key, p.message);
            }
            None
        }
    };
    if let Some(table) = table {
        // Confined like a job submitted through the API: the config comes from the same callers.
        let scratch = ctx.api_base_dir(&ctx.state_dir.join("validate"));
        errors.extend(config::validate_connector(
            &ctx.api_toolkit,
            kind,
            &plugin,
            table,
            &scratch,
        )?);
    }
    Ok(Json(infos(&schema, &plugin, kind, &given, &errors)))
}

/// Connect's `ConfigInfos`: every setting of the type, every key given, every problem.
fn infos(
    schema: &Value,
    plugin: &str,
    kind: Kind,
    given: &Flat,
    errors: &[FieldError],
) -> ConfigInfos {
    let group = match kind {
        Kind::Source => "Source",
        Kind::Sink => "Sink",
    };
    let variants = schema
        .pointer(&format!("/$defs/{group}/oneOf"))
        .and_then(Value::as_array);
    let variant = variants
        .into_iter()
        .flatten()
        .map(|v| resolve(schema, v))
        .find(|v| v.get("title").and_then(Value::as_str) == Some(plugin));
    let props = variant
        .and_then(|v| v.get("properties"))
        .and_then(Value::as_object);
    let required: BTreeSet<&str> = variant
        .and_then(|v| v.get("required"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in errors {
        by_key
            .entry(flat::flat_path(&e.path))
            .or_default()
            .push(e.message.clone());
    }
    // The type's settings in their order, then the other keys given or in error.
    let mut keys: Vec<String> = props
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .filter(|k| k != "type")
        .collect();
    for k in given.keys().chain(by_key.keys()) {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    let configs = keys
        .into_iter()
        .enumerate()
        .map(|(order, key)| {
            let prop = props.and_then(|p| p.get(&key));
            let (type_name, recommended) = prop
                .map(|p| connect_type(schema, p))
                .unwrap_or(("STRING", Vec::new()));
            let documentation = prop
                .and_then(|p| p.get("description"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let default_value = prop.and_then(|p| p.get("default")).and_then(|d| match d {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            });
            let is_required = required.contains(key.as_str());
            ConfigInfo {
                definition: ConfigKeyInfo {
                    name: key.clone(),
                    kind: type_name,
                    required: is_required,
                    default_value,
                    importance: if is_required { "HIGH" } else { "MEDIUM" },
                    documentation,
                    group: group.to_string(),
                    width: "NONE",
                    display_name: key.clone(),
                    dependents: Vec::new(),
                    order,
                },
                value: ConfigValueInfo {
                    value: given.get(&key).cloned(),
                    recommended_values: recommended,
                    errors: by_key.get(&key).cloned().unwrap_or_default(),
                    visible: true,
                    name: key,
                },
            }
        })
        .collect();
    ConfigInfos {
        name: plugin.to_string(),
        error_count: errors.len(),
        groups: vec![group.to_string()],
        configs,
    }
}
