//! The JSON Schema of a whole job file, assembled from the job-level types and every registered
//! connector's config type — the same types the loader deserializes into, so the schema cannot
//! drift from what `sluice run` accepts. Editors use it for completion (`sluice schema`); the
//! job-file reference in `docs/` is rendered from it.

use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use super::{DeliveryConfig, ErrorsConfig, PipelineConfig, SinkCommon};
use crate::registry::Registry;
use crate::transform::TransformSpec;

/// The JSON Schema (draft 2020-12) of a job file for the connectors in `registry`.
pub fn job_schema(registry: &Registry) -> Value {
    let mut defs = Map::new();
    let delivery = absorb::<DeliveryConfig>("DeliveryConfig", &mut defs);
    let errors = absorb::<ErrorsConfig>("ErrorsConfig", &mut defs);
    let pipeline = absorb::<PipelineConfig>("PipelineConfig", &mut defs);
    let transform = absorb::<TransformSpec>("TransformSpec", &mut defs);
    let common = absorb::<SinkCommon>("SinkCommon", &mut defs);

    let sources: Vec<Value> = registry
        .sources()
        .map(|e| {
            let schema = absorb_value((e.schema)().to_value(), &format!("source.{}", e.name));
            connector_variant(e.name, e.doc, schema, None, &mut defs)
        })
        .collect();
    let sinks: Vec<Value> = registry
        .sinks()
        .map(|e| {
            let schema = absorb_value((e.schema)().to_value(), &format!("sink.{}", e.name));
            connector_variant(e.name, e.doc, schema, Some(&common), &mut defs)
        })
        .collect();
    defs.insert("Sink".into(), json!({ "oneOf": sinks }));
    defs.insert("Source".into(), json!({ "oneOf": sources }));
    // `errors.dead_letter` is a sink table like any `[[sinks]]` entry.
    if let Some(dl) = defs
        .get_mut("ErrorsConfig")
        .and_then(|e| e.pointer_mut("/properties/dead_letter"))
    {
        let description = dl.get("description").cloned().unwrap_or(Value::Null);
        *dl = json!({ "$ref": "#/$defs/Sink", "description": description });
    }

    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Sluice job file (connector.toml)",
        "type": "object",
        "additionalProperties": false,
        "required": ["api_version", "name", "source", "sinks"],
        "properties": {
            "api_version": {
                "description": "The job-file format version; this build understands 1.",
                "const": super::API_VERSION,
            },
            "name": {
                "description": "The job name: letters, digits, '-', '_' and '.'. It names the state directory and every checkpoint.",
                "type": "string",
                "pattern": "^[A-Za-z0-9._-]+$",
            },
            "delivery": delivery,
            "source": { "$ref": "#/$defs/Source", "description": "Exactly one source; `type` selects the connector." },
            "transforms": {
                "description": "WebAssembly transforms, run in order.",
                "type": "array",
                "items": transform,
            },
            "sinks": {
                "description": "One or more sinks; every record goes to every sink unless the sink has `when`.",
                "type": "array",
                "minItems": 1,
                "items": { "$ref": "#/$defs/Sink" },
            },
            "errors": errors,
            "pipeline": pipeline,
        },
        "$defs": defs,
    })
}

/// A source or sink variant: the connector's own fields, `type`, and (for sinks) the runtime
/// settings every sink has.
fn connector_variant(
    name: &str,
    doc: &str,
    mut schema: Value,
    common: Option<&Value>,
    defs: &mut Map<String, Value>,
) -> Value {
    let common_props = common
        .and_then(|c| resolve(c, defs))
        .and_then(|c| c.get("properties").cloned());
    if let Some(obj) = schema.as_object_mut() {
        // The connector's nested definitions were moved to the root already.
        for (k, v) in obj
            .remove("$defs")
            .and_then(|d| d.as_object().cloned())
            .unwrap_or_default()
        {
            defs.insert(k, v);
        }
        obj.remove("$schema");
        obj.insert("title".into(), json!(name));
        obj.insert("description".into(), json!(doc));
        let props = obj
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(props) = props {
            props.insert(
                "type".into(),
                json!({ "const": name, "description": "The connector type." }),
            );
            if let Some(Value::Object(common)) = common_props {
                for (k, v) in common {
                    props.entry(k).or_insert(v);
                }
            }
        }
        match obj.get_mut("required").and_then(Value::as_array_mut) {
            Some(req) => req.push(json!("type")),
            None => {
                obj.insert("required".into(), json!(["type"]));
            }
        }
    }
    schema
}

fn resolve<'a>(v: &'a Value, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r.strip_prefix("#/$defs/").and_then(|n| defs.get(n)),
        None => Some(v),
    }
}

/// The schema of `T` as a `$ref` to `#/$defs/<name>`, its own definitions moved into `defs`.
fn absorb<T: JsonSchema>(name: &str, defs: &mut Map<String, Value>) -> Value {
    let mut schema = absorb_value(schemars::schema_for!(T).to_value(), name);
    if let Some(obj) = schema.as_object_mut() {
        if let Some(Value::Object(inner)) = obj.remove("$defs") {
            defs.extend(inner);
        }
        obj.remove("$schema");
    }
    defs.insert(name.to_string(), schema);
    json!({ "$ref": format!("#/$defs/{name}") })
}

/// Prefix the nested definitions of one schema with `prefix.`, so that two connectors' types of
/// the same name (every connector has a `Format`, say) cannot collide at the root.
fn absorb_value(mut schema: Value, prefix: &str) -> Value {
    if let Some(Value::Object(inner)) = schema.get_mut("$defs").map(Value::take) {
        let renamed: Map<String, Value> = inner
            .into_iter()
            .map(|(k, v)| (format!("{prefix}.{k}"), v))
            .collect();
        schema["$defs"] = Value::Object(renamed);
    }
    rewrite_refs(&mut schema, prefix);
    schema
}

fn rewrite_refs(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(obj) => {
            if let Some(Value::String(r)) = obj.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/$defs/{prefix}.{name}");
            }
            for child in obj.values_mut() {
                rewrite_refs(child, prefix);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| rewrite_refs(c, prefix)),
        _ => {}
    }
}
