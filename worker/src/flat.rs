//! A job as Kafka Connect sees a connector config: one flat map of strings. [`flatten`] and
//! [`unflatten`] are the two directions; the job's JSON Schema (`sluice_core::job::job_schema`,
//! the schema `docs/job.schema.json` is) decides the types on the way back, so no rule here
//! knows any connector.
//!
//! The rules, both ways (docs/worker.md, "Kafka Connect compatibility"):
//!
//! - A key is the dotted path of the TOML key: `source.type`, `delivery.guarantee`,
//!   `sinks.0.batch.max_bytes`. An array element is its index (`sinks.0`, `source.topics.1`):
//!   sinks and transforms keep their order, which a map of names would lose.
//! - A segment that is empty, all digits, or holds a `.` or `"` is a TOML quoted key:
//!   `source.properties."ssl.ca.location"`. On the way in, under a map of strings (Kafka's
//!   `properties`) the rest of an unquoted key is one key: `source.properties.ssl.ca.location`.
//! - A value is a string: strings as they are, numbers, booleans and dates in TOML spelling. On
//!   the way back the schema says what the field is: `"10"` is the integer 10 in `count` and
//!   the string "10" in `name`. Where the schema allows several types (a size: `4194304` or
//!   `"4MiB"`) or says nothing (a plugin's `with`), a TOML literal is read as what it spells
//!   and anything else is a string; [`flatten`] writes a string that would read as something
//!   else as a TOML string (`"\"10\""`), so every job comes back as it was.
//! - An empty table is `{}`, an empty array `[]`. Where the schema wants an array, a value that
//!   is not a TOML array is Connect's comma-separated list (`source.topics = "a,b"`).

use std::collections::BTreeMap;

use serde_json::Value;
use toml::Value as Toml;

/// A flat config: Connect's `Map<String, String>`.
pub type Flat = BTreeMap<String, String>;

/// One problem of a flat config, by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatError {
    /// The flat key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The job schema, walked by path.
struct Schema<'a> {
    root: &'a Value,
}

/// What the schema allows at one place: `None` is anything (no schema there).
type Types = Option<Vec<&'static str>>;

impl<'a> Schema<'a> {
    /// Follow `$ref`s to the schema they name.
    fn resolve(&self, mut v: &'a Value) -> &'a Value {
        for _ in 0..32 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix("#/").map(|p| format!("/{p}")) {
                    Some(pointer) => match self.root.pointer(&pointer) {
                        Some(target) => v = target,
                        None => return v,
                    },
                    None => return v,
                },
                None => return v,
            }
        }
        v
    }

    /// The alternatives of a schema (`oneOf`/`anyOf`), or the schema itself.
    fn variants(&self, v: &'a Value) -> Vec<&'a Value> {
        let v = self.resolve(v);
        let alternatives = ["oneOf", "anyOf"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_array));
        match alternatives {
            Some(items) => items.iter().flat_map(|i| self.variants(i)).collect(),
            None => vec![v],
        }
    }

    /// The JSON types a schema allows (`None`: no constraint).
    fn types(&self, node: Option<&'a Value>) -> Types {
        let node = node?;
        let mut out = Vec::new();
        for v in self.variants(node) {
            let named = match v.get("type") {
                Some(Value::String(t)) => vec![t.as_str()],
                Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let consts: Vec<&Value> = match (v.get("const"), v.get("enum")) {
                (Some(c), _) => vec![c],
                (None, Some(Value::Array(e))) => e.iter().collect(),
                _ => Vec::new(),
            };
            if named.is_empty() && consts.is_empty() {
                return None;
            }
            for t in named {
                out.push(match t {
                    "string" => "string",
                    "integer" => "integer",
                    "number" => "number",
                    "boolean" => "boolean",
                    "array" => "array",
                    "object" => "object",
                    _ => "null",
                });
            }
            for c in consts {
                out.push(match c {
                    Value::String(_) => "string",
                    Value::Number(n) if n.is_f64() => "number",
                    Value::Number(_) => "integer",
                    Value::Bool(_) => "boolean",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                    Value::Null => "null",
                });
            }
        }
        Some(out)
    }

    /// The schema of `key` in the table `node`; `kind` is the table's own `type` (a source or
    /// sink variant is chosen by it). `None` when the schema says nothing there.
    fn child(&self, node: Option<&'a Value>, key: &str, kind: Option<&str>) -> Option<&'a Value> {
        let objects: Vec<&Value> = self
            .variants(node?)
            .into_iter()
            .filter(|v| v.get("properties").is_some() || v.get("additionalProperties").is_some())
            .collect();
        let chosen = kind
            .and_then(|kind| {
                objects.iter().find(|v| {
                    v.pointer("/properties/type/const").and_then(Value::as_str) == Some(kind)
                })
            })
            .or_else(|| {
                objects
                    .iter()
                    .find(|v| v.pointer(&format!("/properties/{}", escape(key))).is_some())
            })
            .or(objects.first())?;
        if let Some(p) = chosen.get("properties").and_then(|p| p.get(key)) {
            return Some(p);
        }
        match chosen.get("additionalProperties") {
            Some(extra @ Value::Object(_)) => Some(extra),
            _ => None,
        }
    }

    /// The schema of an array's items.
    fn item(&self, node: Option<&'a Value>) -> Option<&'a Value> {
        self.variants(node?)
            .into_iter()
            .find_map(|v| v.get("items"))
    }

    /// A map whose values are scalars (Kafka's `properties`): the rest of a key is one key.
    fn scalar_map(&self, node: Option<&'a Value>) -> Option<&'a Value> {
        self.variants(node?).into_iter().find_map(|v| {
            let extra = v.get("additionalProperties").filter(|e| e.is_object())?;
            let scalar = self
                .types(Some(extra))
                .is_some_and(|ts| ts.iter().all(|t| !matches!(*t, "object" | "array")));
            (v.get("properties").is_none() && scalar).then_some(extra)
        })
    }
}

/// A JSON pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A TOML literal (`10`, `true`, `"x"`, `[1, 2]`), if `s` is one.
fn literal(s: &str) -> Option<Toml> {
    let table: toml::Table = toml::from_str(&format!("v = {s}")).ok()?;
    table.get("v").cloned()
}

fn allowed(v: &Toml, types: &[&str]) -> bool {
    let has = |t: &str| types.contains(&t);
    match v {
        Toml::String(_) | Toml::Datetime(_) => has("string"),
        Toml::Integer(_) => has("integer") || has("number"),
        Toml::Float(_) => has("number"),
        Toml::Boolean(_) => has("boolean"),
        Toml::Array(_) => has("array"),
        Toml::Table(_) => has("object"),
    }
}

/// A flat value back into TOML at a place the schema describes as `types`.
fn leaf(s: &str, types: &Types) -> Toml {
    let string_only = types
        .as_ref()
        .is_some_and(|ts| ts.iter().all(|t| matches!(*t, "string" | "null")));
    if string_only {
        return Toml::String(s.to_string());
    }
    match (literal(s), types) {
        (Some(v), None) => v,
        (Some(v), Some(ts)) if allowed(&v, ts) => v,
        // A string; when the schema wants something else the loader says so at this path.
        _ => Toml::String(s.to_string()),
    }
}

/// A scalar in its plain spelling.
fn plain(v: &Toml) -> String {
    match v {
        Toml::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A segment of a flat key, quoted when it must be.
fn segment(key: &str) -> String {
    let bare = !key.is_empty()
        && !key.contains(['.', '"', '\''])
        && !key.bytes().all(|b| b.is_ascii_digit());
    if bare {
        key.to_string()
    } else {
        Toml::String(key.to_string()).to_string()
    }
}

fn join(prefix: &str, seg: &str) -> String {
    if prefix.is_empty() {
        seg.to_string()
    } else {
        format!("{prefix}.{seg}")
    }
}

/// A job table as a flat config.
pub fn flatten(table: &toml::Table, schema: &Value) -> Flat {
    let schema = Schema { root: schema };
    let mut out = Flat::new();
    flatten_table("", table, Some(schema.root), &schema, &mut out);
    out
}

fn flatten_table<'a>(
    prefix: &str,
    table: &toml::Table,
    node: Option<&'a Value>,
    schema: &Schema<'a>,
    out: &mut Flat,
) {
    let kind = table.get("type").and_then(Toml::as_str);
    for (k, v) in table {
        let child = schema.child(node, k, kind);
        flatten_value(&join(prefix, &segment(k)), v, child, schema, out);
    }
}

fn flatten_value<'a>(
    key: &str,
    v: &Toml,
    node: Option<&'a Value>,
    schema: &Schema<'a>,
    out: &mut Flat,
) {
    match v {
        Toml::Table(t) if t.is_empty() => {
            out.insert(key.to_string(), "{}".into());
        }
        Toml::Table(t) => flatten_table(key, t, node, schema, out),
        Toml::Array(a) if a.is_empty() => {
            out.insert(key.to_string(), "[]".into());
        }
        Toml::Array(a) => {
            let item = schema.item(node);
            for (i, v) in a.iter().enumerate() {
                flatten_value(&join(key, &i.to_string()), v, item, schema, out);
            }
        }
        scalar => {
            let mut text = plain(scalar);
            if leaf(&text, &schema.types(node)) != *scalar {
                text = scalar.to_string();
            }
            out.insert(key.to_string(), text);
        }
    }
}

/// One segment of a parsed key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seg {
    text: String,
    quoted: bool,
}

/// Split a flat key into its segments (quoted ones decoded).
fn split(key: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let mut rest = key;
    loop {
        if let Some(quote) = rest.bytes().next().filter(|b| matches!(b, b'"' | b'\'')) {
            // The shortest prefix that is a TOML string.
            let end = (1..rest.len())
                .filter(|i| rest.as_bytes()[*i] == quote)
                .find_map(|i| match literal(&rest[..=i]) {
                    Some(Toml::String(s)) => Some((i + 1, s)),
                    _ => None,
                });
            let Some((end, text)) = end else {
                return Err("an unterminated quoted segment".into());
            };
            segs.push(Seg { text, quoted: true });
            rest = &rest[end..];
            if rest.is_empty() {
                return Ok(segs);
            }
            rest = rest
                .strip_prefix('.')
                .ok_or("a quoted segment must be followed by `.` or the end")?;
        } else {
            let (head, tail) = match rest.split_once('.') {
                Some((h, t)) => (h, Some(t)),
                None => (rest, None),
            };
            if head.is_empty() {
                return Err("an empty segment (quote it: `\"\"`)".into());
            }
            segs.push(Seg {
                text: head.to_string(),
                quoted: false,
            });
            match tail {
                Some(t) => rest = t,
                None => return Ok(segs),
            }
        }
    }
}

/// Flat keys gathered into a tree.
#[derive(Debug)]
enum Tree {
    Leaf(String),
    Branch(BTreeMap<Seg, (String, Tree)>),
}

fn insert(
    tree: &mut BTreeMap<Seg, (String, Tree)>,
    key: &str,
    segs: &[Seg],
    value: &str,
) -> Result<(), String> {
    let Some((first, rest)) = segs.split_first() else {
        return Ok(());
    };
    let entry = tree.entry(first.clone());
    match (entry, rest.is_empty()) {
        (std::collections::btree_map::Entry::Vacant(v), true) => {
            v.insert((key.to_string(), Tree::Leaf(value.to_string())));
            Ok(())
        }
        (std::collections::btree_map::Entry::Vacant(v), false) => {
            let (_, sub) = v.insert((key.to_string(), Tree::Branch(BTreeMap::new())));
            match sub {
                Tree::Branch(sub) => insert(sub, key, rest, value),
                Tree::Leaf(_) => Ok(()),
            }
        }
        (std::collections::btree_map::Entry::Occupied(mut o), false) => match &mut o.get_mut().1 {
            Tree::Branch(sub) => insert(sub, key, rest, value),
            Tree::Leaf(_) => Err(format!(
                "{} has a value and keys under it ({})",
                o.get().0,
                key
            )),
        },
        (std::collections::btree_map::Entry::Occupied(o), true) => Err(format!(
            "{key} has a value and keys under it ({})",
            o.get().0
        )),
    }
}

/// A flat config as a job table, typed by the job schema. Every problem is reported, by key.
pub fn unflatten(flat: &Flat, schema: &Value) -> Result<toml::Table, Vec<FlatError>> {
    let schema = Schema { root: schema };
    let mut errors = Vec::new();
    let mut root = BTreeMap::new();
    for (key, value) in flat {
        let inserted = split(key).and_then(|segs| insert(&mut root, key, &segs, value));
        if let Err(message) = inserted {
            errors.push(FlatError {
                key: key.clone(),
                message,
            });
        }
    }
    let table = build_table("", &root, Some(schema.root), &schema, &mut errors);
    if errors.is_empty() {
        Ok(table)
    } else {
        Err(errors)
    }
}

fn build_table<'a>(
    prefix: &str,
    map: &BTreeMap<Seg, (String, Tree)>,
    node: Option<&'a Value>,
    schema: &Schema<'a>,
    errors: &mut Vec<FlatError>,
) -> toml::Table {
    if let Some(values) = schema.scalar_map(node) {
        // Kafka's `properties`: `a.b.c` under it is the key "a.b.c".
        let mut leaves = Vec::new();
        collapse(String::new(), map, &mut leaves);
        let types = schema.types(Some(values));
        return leaves
            .into_iter()
            .map(|(k, v)| {
                let value = leaf(&v, &types);
                (k, value)
            })
            .collect();
    }
    let kind = map
        .iter()
        .find(|(s, _)| s.text == "type")
        .and_then(|(_, (_, t))| match t {
            Tree::Leaf(v) => Some(v.as_str()),
            Tree::Branch(_) => None,
        });
    map.iter()
        .map(|(seg, (_, sub))| {
            let key = join(prefix, &segment(&seg.text));
            let child = schema.child(node, &seg.text, kind);
            (seg.text.clone(), build(&key, sub, child, schema, errors))
        })
        .collect()
}

/// The leaves under a tree, by their keys joined with `.`.
fn collapse(prefix: String, map: &BTreeMap<Seg, (String, Tree)>, out: &mut Vec<(String, String)>) {
    for (seg, (_, sub)) in map {
        let key = if prefix.is_empty() {
            seg.text.clone()
        } else {
            format!("{prefix}.{}", seg.text)
        };
        match sub {
            Tree::Leaf(v) => out.push((key, v.clone())),
            Tree::Branch(m) => collapse(key, m, out),
        }
    }
}

fn build<'a>(
    key: &str,
    tree: &Tree,
    node: Option<&'a Value>,
    schema: &Schema<'a>,
    errors: &mut Vec<FlatError>,
) -> Toml {
    let types = schema.types(node);
    let has = |t: &str| types.as_ref().is_some_and(|ts| ts.contains(&t));
    match tree {
        Tree::Leaf(s) if s == "{}" && (types.is_none() || has("object")) => {
            Toml::Table(toml::Table::new())
        }
        Tree::Leaf(s) if has("array") && !has("string") => match literal(s) {
            Some(Toml::Array(a)) => Toml::Array(a),
            // Connect's list: comma-separated.
            _ => {
                let item = schema.types(schema.item(node));
                Toml::Array(
                    s.split(',')
                        .map(str::trim)
                        .filter(|i| !i.is_empty())
                        .map(|i| leaf(i, &item))
                        .collect(),
                )
            }
        },
        Tree::Leaf(s) => leaf(s, &types),
        Tree::Branch(map) => {
            let indexed = map
                .keys()
                .all(|s| !s.quoted && s.text.parse::<usize>().is_ok());
            let wants_array = match &types {
                Some(_) => has("array") && !has("object"),
                None => indexed,
            };
            if !wants_array {
                return Toml::Table(build_table(key, map, node, schema, errors));
            }
            let item = schema.item(node);
            let mut items: Vec<(usize, &Seg, &Tree)> = map
                .iter()
                .filter_map(|(s, (_, t))| s.text.parse::<usize>().ok().map(|i| (i, s, t)))
                .collect();
            items.sort_by_key(|(i, _, _)| *i);
            let contiguous = items.len() == map.len()
                && items
                    .iter()
                    .enumerate()
                    .all(|(n, (i, s, _))| n == *i && !s.quoted);
            if !contiguous {
                errors.push(FlatError {
                    key: key.to_string(),
                    message: format!("an array: its keys are {key}.0, {key}.1, ... with no gap"),
                });
                return Toml::Array(Vec::new());
            }
            Toml::Array(
                items
                    .into_iter()
                    .map(|(i, _, t)| build(&join(key, &i.to_string()), t, item, schema, errors))
                    .collect(),
            )
        }
    }
}

/// A loader's field path (`sinks[0].batch.max_bytes`) as a flat key (`sinks.0.batch.max_bytes`).
pub fn flat_path(path: &str) -> String {
    path.replace('[', ".").replace(']', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        let mut registry = sluice_core::Registry::new();
        sluice_connector_file::register(&mut registry);
        sluice_core::job::job_schema(&registry)
    }

    const JOB: &str = r#"
api_version = 1
name = "round-trip"

[delivery]
guarantee = "exactly-once"
commit_interval = "1s"

[source]
type = "datagen"
count = 10
rate = 2.5
seed = 7

[[transforms]]
plugin = "plugins/anomaly.wasm"
with = { field = "temperature_c", max = 90.0, label = "10", list = [1, 2], empty = {}, "a.b" = true, "0" = "zero" }

[[sinks]]
name = "out"
type = "file"
path = "out.jsonl"
batch = { max_records = 500, max_bytes = "4MiB", max_wait = "200ms" }

[[sinks]]
name = "42"
type = "file"
path = "alerts.jsonl"
batch = { max_bytes = 1048576 }
when = { header = "route", equals = "alert" }

[errors]
tolerance = "all"
dead_letter = { type = "file", path = "dlq.jsonl" }
"#;

    #[test]
    fn a_job_round_trips_through_a_flat_config() {
        let schema = schema();
        let table: toml::Table = toml::from_str(JOB).unwrap();
        let flat = flatten(&table, &schema);
        let get = |k: &str| flat.get(k).map(String::as_str);
        assert_eq!(get("source.type"), Some("datagen"));
        assert_eq!(get("source.count"), Some("10"));
        assert_eq!(get("source.rate"), Some("2.5"));
        assert_eq!(get("sinks.0.batch.max_bytes"), Some("4MiB"));
        assert_eq!(get("sinks.1.batch.max_bytes"), Some("1048576"));
        // A sink named "42" stays a string: the schema says `name` is one.
        assert_eq!(get("sinks.1.name"), Some("42"));
        assert_eq!(get("transforms.0.with.max"), Some("90.0"));
        // Where nothing says it is a string, a string that reads as a number is quoted.
        assert_eq!(get("transforms.0.with.label"), Some("\"10\""));
        assert_eq!(get("transforms.0.with.list.1"), Some("2"));
        assert_eq!(get("transforms.0.with.empty"), Some("{}"));
        assert_eq!(get("transforms.0.with.\"a.b\""), Some("true"));
        assert_eq!(get("transforms.0.with.\"0\""), Some("zero"));
        assert_eq!(get("errors.dead_letter.path"), Some("dlq.jsonl"));
        assert_eq!(unflatten(&flat, &schema).unwrap(), table, "{flat:#?}");
    }

    #[test]
    fn the_schema_types_connect_style_values() {
        let schema = schema();
        let flat: Flat = [
            ("api_version", "1"),
            ("name", "1234"),
            ("source.type", "datagen"),
            ("source.count", "5"),
            ("source.start_time", "2026-11-25T00:00:00Z"),
            ("sinks.0.type", "file"),
            ("sinks.0.path", "true"),
            ("sinks.0.batch.max_records", "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let table = unflatten(&flat, &schema).unwrap();
        assert_eq!(table["name"].as_str(), Some("1234"));
        assert_eq!(table["api_version"].as_integer(), Some(1));
        assert_eq!(table["source"]["count"].as_integer(), Some(5));
        assert_eq!(
            table["source"]["start_time"].as_str(),
            Some("2026-11-25T00:00:00Z")
        );
        assert_eq!(table["sinks"][0]["path"].as_str(), Some("true"));
        assert_eq!(
            table["sinks"][0]["batch"]["max_records"].as_integer(),
            Some(7)
        );
    }

    #[test]
    fn bad_keys_are_reported_by_key() {
        let schema = schema();
        let flat: Flat = [
            ("source", "x"),
            ("source.type", "datagen"),
            ("sinks.1.type", "file"),
            ("a..b", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let errors = unflatten(&flat, &schema).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a..b", "source.type", "sinks"], "{errors:?}");
    }

    /// Kafka's shapes, by a schema of their own: a map of strings whose keys hold dots, and a
    /// list of topics.
    #[test]
    fn string_maps_take_dotted_keys_and_lists_take_commas() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"source": {"type": "object", "properties": {
                "topics": {"type": "array", "items": {"type": "string"}},
                "properties": {"type": "object", "additionalProperties": {"type": "string"}},
            }}},
        });
        let flat: Flat = [
            ("source.topics", "a, b"),
            ("source.properties.ssl.ca.location", "/ca.pem"),
            ("source.properties.\"client.rack\"", "r1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let table = unflatten(&flat, &schema).unwrap();
        let expected: toml::Table = toml::from_str(
            "[source]\ntopics = [\"a\", \"b\"]\nproperties = { \"ssl.ca.location\" = \"/ca.pem\", \"client.rack\" = \"r1\" }\n",
        )
        .unwrap();
        assert_eq!(table, expected);
        let back = flatten(&table, &schema);
        assert_eq!(back["source.topics.1"], "b", "{back:?}");
        assert_eq!(back["source.properties.\"ssl.ca.location\""], "/ca.pem");
        assert_eq!(unflatten(&back, &schema).unwrap(), table);
    }

    #[test]
    fn quoted_segments_and_paths() {
        assert_eq!(
            split(r#"a."b.c".0"#).unwrap(),
            vec![
                Seg {
                    text: "a".into(),
                    quoted: false
                },
                Seg {
                    text: "b.c".into(),
                    quoted: true
                },
                Seg {
                    text: "0".into(),
                    quoted: false
                },
            ]
        );
        assert!(split(r#"a."b"#).is_err());
        assert_eq!(
            flat_path("sinks[0].batch.max_bytes"),
            "sinks.0.batch.max_bytes"
        );
    }
}
