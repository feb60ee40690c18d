//! JSON record values to BSON documents and back.
//!
//! A record value must be a JSON object. Integers become `int32` when they fit, else `int64`
//! (one beyond `int64` cannot be stored exactly and rejects the record); other numbers become
//! `double`; strings, booleans, null, arrays and objects map one to one. The fields named by
//! `dates` must hold RFC 3339 timestamps and become BSON dates. Field names holding a NUL byte
//! cannot be BSON keys and reject the record. Extended JSON wrappers (`{"$oid": ...}`,
//! `{"$date": ...}`, `{"$numberLong": ...}`) become their BSON types. Change events go the other way as relaxed
//! Extended JSON (`{"$date": ...}`, `{"$oid": ...}`).

use bson::{Bson, DateTime, Document};
use serde_json::{Map, Number, Value};
use sluice_core::ValuePath;

/// The largest document MongoDB stores; a JSON value larger than this cannot be one.
pub const MAX_DOCUMENT: usize = 16 * 1024 * 1024;

/// A JSON object as a BSON document; `Err` is why the record cannot be one.
pub fn document(value: &Value, dates: &[ValuePath]) -> Result<Document, String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "the value is a JSON {}, not an object: a document must be an object",
            kind(value)
        ));
    };
    let mut doc = object(map)?;
    for path in dates {
        to_date(&mut doc, path)?;
    }
    Ok(doc)
}

/// A JSON value as BSON (for `_id` and key values too).
pub fn bson(value: &Value) -> Result<Bson, String> {
    Ok(match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => number(n)?,
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(bson).collect::<Result<_, _>>()?),
        Value::Object(map) => match extended(value, map) {
            Some(b) => b,
            None => Bson::Document(object(map)?),
        },
    })
}

/// An Extended JSON wrapper (`{"$oid": ...}`, `{"$date": ...}`, `{"$numberDecimal": ...}`),
/// as this source writes them, becomes its BSON type again.
fn extended(value: &Value, map: &Map<String, Value>) -> Option<Bson> {
    if map.is_empty() || map.len() > 2 || !map.keys().all(|k| k.starts_with('$')) {
        return None;
    }
    match Bson::try_from(value.clone()) {
        Ok(Bson::Document(_)) | Err(_) => None,
        Ok(b) => Some(b),
    }
}

fn object(map: &Map<String, Value>) -> Result<Document, String> {
    let mut doc = Document::new();
    for (k, v) in map {
        if k.contains('\0') {
            return Err(format!(
                "field name {k:?} holds a NUL byte, which BSON cannot store"
            ));
        }
        doc.insert(k.clone(), bson(v)?);
    }
    Ok(doc)
}

fn number(n: &Number) -> Result<Bson, String> {
    if let Some(i) = n.as_i64() {
        return Ok(match i32::try_from(i) {
            Ok(small) => Bson::Int32(small),
            Err(_) => Bson::Int64(i),
        });
    }
    if n.is_u64() {
        return Err(format!(
            "the integer {n} is beyond BSON's 64-bit signed range"
        ));
    }
    n.as_f64()
        .map(Bson::Double)
        .ok_or_else(|| format!("the number {n} cannot be stored"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Turn the string at `path` into a BSON date; a record without the field is left alone.
fn to_date(doc: &mut Document, path: &ValuePath) -> Result<(), String> {
    let (last, parents) = match path.segments().split_last() {
        Some(split) => split,
        None => return Ok(()),
    };
    let mut here = doc;
    for segment in parents {
        match here.get_mut(segment) {
            Some(Bson::Document(inner)) => here = inner,
            _ => return Ok(()),
        }
    }
    let Some(slot) = here.get_mut(last) else {
        return Ok(());
    };
    if let Bson::DateTime(_) = slot {
        // Already a date (an Extended JSON `{"$date": ...}`).
        return Ok(());
    }
    let Bson::String(text) = slot else {
        return Err(format!(
            "`dates`: field {path} is not a timestamp string but {slot}"
        ));
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        format!("`dates`: field {path} = {text:?} is not an RFC 3339 timestamp: {e}")
    })?;
    *slot = Bson::DateTime(DateTime::from_millis(parsed.timestamp_millis()));
    Ok(())
}

/// A change event (or a snapshot document) as relaxed Extended JSON.
pub fn to_json(doc: Document) -> Value {
    Bson::Document(doc).into_relaxed_extjson()
}

/// Parse the `pipeline` option: a JSON array of stage objects.
pub fn pipeline(text: &str) -> Result<Vec<Document>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("`pipeline` is not JSON: {e}"))?;
    let Value::Array(stages) = value else {
        return Err("`pipeline` must be a JSON array of stages".into());
    };
    stages
        .iter()
        .map(|stage| {
            // Extended JSON, so `{"$date": ...}` in a $match works.
            match Bson::try_from(stage.clone()) {
                Ok(Bson::Document(d)) => Ok(d),
                Ok(_) => Err(format!("`pipeline`: the stage {stage} is not an object")),
                Err(e) => Err(format!("`pipeline`: the stage {stage}: {e}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(p: &str) -> ValuePath {
        ValuePath::parse(p).unwrap()
    }

    #[test]
    fn json_maps_to_bson_types() {
        let v = json!({"a": 1, "b": 5_000_000_000i64, "c": 1.5, "d": "x", "e": [true, null],
            "f": {"g": "2026-01-02T03:04:05.678Z"}, "h": "2026-01-02T03:04:05Z"});
        let doc = document(&v, &[path("f.g"), path("missing")]).unwrap();
        assert_eq!(doc.get("a"), Some(&Bson::Int32(1)));
        assert_eq!(doc.get("b"), Some(&Bson::Int64(5_000_000_000)));
        assert_eq!(doc.get("c"), Some(&Bson::Double(1.5)));
        assert_eq!(doc.get_array("e").unwrap().len(), 2);
        let g = doc.get_document("f").unwrap().get("g").unwrap();
        assert_eq!(g, &Bson::DateTime(DateTime::from_millis(1_767_323_045_678)));
        assert_eq!(
            doc.get("h"),
            Some(&Bson::String("2026-01-02T03:04:05Z".into()))
        );
        let oid = json!({"_id": {"$oid": "65f1a2b3c4d5e6f708192a3b"}, "n": {"$numberLong": "5"}});
        let doc = document(&oid, &[]).unwrap();
        assert!(matches!(doc.get("_id"), Some(Bson::ObjectId(_))));
        assert_eq!(doc.get("n"), Some(&Bson::Int64(5)));
    }

    #[test]
    fn what_cannot_be_a_document_is_refused() {
        assert!(document(&json!([1]), &[]).unwrap_err().contains("array"));
        assert!(
            document(&json!({"n": u64::MAX}), &[])
                .unwrap_err()
                .contains("range")
        );
        assert!(
            document(&json!({"t": "yesterday"}), &[path("t")])
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(document(&json!({"t": 5}), &[path("t")]).is_err());
        assert!(document(&json!({"a\u{0}b": 5}), &[]).is_err());
    }

    #[test]
    fn pipelines_are_arrays_of_stages() {
        let p = pipeline(r#"[{"$match": {"operationType": "insert"}}]"#).unwrap();
        assert_eq!(p.len(), 1);
        assert!(pipeline(r#"{"$match": {}}"#).is_err());
        assert!(pipeline("[1]").is_err());
    }
}
