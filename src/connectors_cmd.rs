//! `sluice connectors`: every connector with its config fields, generated from the config types.

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::Value;
use sluice_core::Registry;
use sluice_core::job::SinkCommon;

/// Print the reference (or the raw JSON schemas with `json`).
pub fn print(registry: &Registry, json: bool) {
    let text = render(registry, json);
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The reference as text (or the raw JSON schemas with `json`).
pub fn render(registry: &Registry, json: bool) -> String {
    let mut o = String::new();
    if json {
        let mut out = serde_json::Map::new();
        for e in registry.sources() {
            out.insert(format!("source/{}", e.name), (e.schema)().to_value());
        }
        for e in registry.sinks() {
            out.insert(format!("sink/{}", e.name), (e.schema)().to_value());
        }
        return serde_json::to_string_pretty(&Value::Object(out)).unwrap_or_default() + "\n";
    }
    o.push_str("Sources:\n\n");
    for e in registry.sources() {
        entry(&mut o, e.name, e.doc, &(e.schema)().to_value());
    }
    let _ = writeln!(
        o,
        "Sinks (all also take {}: see the job-file reference):\n",
        SinkCommon::keys()
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for e in registry.sinks() {
        entry(&mut o, e.name, e.doc, &(e.schema)().to_value());
    }
    o
}

fn entry(o: &mut String, name: &str, doc: &str, schema: &Value) {
    let _ = writeln!(o, "  {name} — {doc}");
    for f in fields(schema) {
        let req = if f.required { " (required)" } else { "" };
        let default = f
            .default
            .filter(|d| d != "null")
            .map(|d| format!(" [default: {d}]"))
            .unwrap_or_default();
        let _ = writeln!(o, "    {:<16} {}{req}{default}", f.name, f.ty);
        for line in f.doc.lines() {
            let _ = writeln!(o, "    {:<16}   {line}", "");
        }
    }
    o.push('\n');
}

/// One documented config field.
pub struct Field {
    /// Field name.
    pub name: String,
    /// Type, as a short human string.
    pub ty: String,
    /// Required (no default)?
    pub required: bool,
    /// Default value, as JSON.
    pub default: Option<String>,
    /// The field's doc comment.
    pub doc: String,
}

/// The fields of a connector config schema.
pub fn fields(schema: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, p)| Field {
            name: name.clone(),
            ty: type_of(p, schema),
            required: required.contains(&name.as_str()),
            default: p.get("default").map(|d| d.to_string()),
            doc: p["description"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

fn resolve<'a>(v: &'a Value, root: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/$defs/")
            .and_then(|name| root["$defs"].get(name))
            .unwrap_or(v),
        None => v,
    }
}

fn type_of(v: &Value, root: &Value) -> String {
    // The definition's own name: `#/$defs/Duration`, or `#/$defs/<prefix>.Duration` in the
    // job schema, where nested definitions are prefixed by their owner.
    match v
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit(['/', '.']).next())
    {
        Some("Duration") => return "duration (\"200ms\", \"5s\")".into(),
        Some("ByteSize") => return "size (\"4MiB\" or bytes)".into(),
        _ => {}
    }
    let v = resolve(v, root);
    if let Some(values) = v.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(one_of) = v
        .get("oneOf")
        .or_else(|| v.get("anyOf"))
        .and_then(Value::as_array)
    {
        let parts: Vec<String> = one_of
            .iter()
            .map(|x| match x.get("const") {
                Some(c) => c.to_string(),
                None => type_of(x, root),
            })
            .filter(|s| s != "null")
            .fold(Vec::new(), |mut seen, s| {
                // A choice of tables (any sink type) reads as one "table".
                if !seen.contains(&s) {
                    seen.push(s);
                }
                seen
            });
        return parts.join(" | ");
    }
    match v.get("type") {
        Some(Value::String(t)) if t == "array" => {
            format!("array of {}", type_of(&v["items"], root))
        }
        Some(Value::String(t)) if t == "object" && v.get("properties").is_some() => "table".into(),
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    }
}
