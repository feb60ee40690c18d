//! `sluice schema`: the JSON Schema of a whole job file (for editor completion), and the job-file
//! reference rendered from it — both generated from the types the loader uses.

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::Value;
use sluice_core::Registry;
use sluice_core::job::job_schema;

use crate::connectors_cmd::fields;

/// Print the JSON Schema, or the job-file reference with `reference`.
pub fn print(registry: &Registry, reference: bool) {
    let schema = job_schema(registry);
    let text = if reference {
        render_reference(&schema)
    } else {
        serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The job-level sections with their fields, as text (connectors: `sluice connectors`).
pub fn render_reference(schema: &Value) -> String {
    let defs = &schema["$defs"];
    let mut o = String::new();
    let top = &schema["properties"];
    o.push_str("Top level:\n\n");
    for key in ["api_version", "name"] {
        let _ = writeln!(
            o,
            "    {key:<16} {}",
            top[key]["description"].as_str().unwrap_or_default()
        );
    }
    o.push_str("    source           a source table; `type` selects the connector (see `sluice connectors`)\n");
    o.push_str("    sinks            an array of sink tables (`[[sinks]]`), at least one\n\n");
    let sections = [
        ("[delivery]", "DeliveryConfig"),
        ("[[transforms]]", "TransformSpec"),
        ("[[transforms]].limits", "TransformLimits"),
        (
            "[[sinks]] (every sink, besides its connector's fields)",
            "SinkCommon",
        ),
        ("[[sinks]].batch", "BatchConfig"),
        ("[[sinks]].retry", "RetryConfig"),
        ("[[sinks]].when", "RouteCondition"),
        ("[errors]", "ErrorsConfig"),
        ("[pipeline]", "PipelineConfig"),
    ];
    for (title, def) in sections {
        // Nested types were absorbed under their parent's prefix; any copy will do.
        let Some(schema) = find_def(defs, def) else {
            continue;
        };
        let _ = writeln!(o, "{title}:");
        let mut root = schema.clone();
        root["$defs"] = defs.clone();
        for f in fields(&root) {
            let default = f
                .default
                .filter(|d| d != "null")
                .map(|d| format!(" [default: {d}]"))
                .unwrap_or_default();
            let req = if f.required { " (required)" } else { "" };
            let _ = writeln!(o, "    {:<16} {}{req}{default}", f.name, f.ty);
            for line in f.doc.lines() {
                let _ = writeln!(o, "    {:<16}   {line}", "");
            }
        }
        o.push('\n');
    }
    o
}

fn find_def<'a>(defs: &'a Value, name: &str) -> Option<&'a Value> {
    let defs = defs.as_object()?;
    defs.get(name).or_else(|| {
        defs.iter()
            .find(|(k, _)| k.rsplit('.').next() == Some(name))
            .map(|(_, v)| v)
    })
}
