//! The `_bulk` body of one write, and what its response says about each action.
//!
//! Every record becomes one action line (and, except for `delete`, one document line) of an
//! NDJSON body. The response lists one item per action, in order; each is classified on its
//! own ([`classify_item`]): done, worth another try (429, 5xx), or refused for good (the other
//! 4xx: mapping errors, version conflicts unless they are expected). Nothing is dropped: every
//! action of the body ends up in exactly one of those three.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::config::BulkAction;

/// Append the action line of one record.
pub fn push_action(body: &mut Vec<u8>, action: BulkAction, index: &str, id: &str) {
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(action.as_str().as_bytes());
    body.extend_from_slice(b"\":{\"_index\":");
    push_json_str(body, index);
    body.extend_from_slice(b",\"_id\":");
    push_json_str(body, id);
    if action == BulkAction::Update {
        // Two writers updating one document conflict; the server re-reads and retries.
        body.extend_from_slice(b",\"retry_on_conflict\":3");
    }
    body.extend_from_slice(b"}}\n");
}

/// Append the document line of one record (nothing for `delete`).
pub fn push_document(body: &mut Vec<u8>, action: BulkAction, doc: &[u8]) {
    match action {
        BulkAction::Delete => {}
        BulkAction::Update => {
            body.extend_from_slice(b"{\"doc\":");
            body.extend_from_slice(doc);
            body.extend_from_slice(b",\"doc_as_upsert\":true}\n");
        }
        BulkAction::Index | BulkAction::Create => {
            body.extend_from_slice(doc);
            body.push(b'\n');
        }
    }
}

fn push_json_str(body: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *body, s);
}

/// A record value as one line of JSON object, or the reason it is not one. `parsed` is the
/// value already parsed as JSON, when the caller needed its fields.
pub fn document<'a>(value: &'a [u8], parsed: Option<&Value>) -> Result<Cow<'a, [u8]>, String> {
    match parsed {
        Some(Value::Object(_)) => {}
        Some(other) => return Err(format!("the value is {}, not a JSON object", kind(other))),
        None => {
            let first = value.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'{') {
                return Err(if value.is_empty() {
                    "the value is empty, not a JSON object".into()
                } else {
                    "the value is not a JSON object".into()
                });
            }
            sluice_core::json::check_json(value, sluice_core::json::DEFAULT_MAX_DEPTH)
                .map_err(|e| format!("the value is not valid JSON: {e}"))?;
        }
    }
    if !value.contains(&b'\n') {
        return Ok(Cow::Borrowed(value));
    }
    // NDJSON: one document per line. JSON strings cannot hold a raw newline, so only the
    // whitespace between tokens has one; writing the value again drops it.
    let doc: Value = match parsed {
        Some(v) => v.clone(),
        None => serde_json::from_slice(value)
            .map_err(|e| format!("the value is not valid JSON: {e}"))?,
    };
    serde_json::to_vec(&doc)
        .map(Cow::Owned)
        .map_err(|e| format!("the value cannot be written again as JSON: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What became of one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written (or, for a delete, the document is gone).
    Done,
    /// A transient refusal (429 back-pressure, 5xx): send it again.
    Retry(String),
    /// Refused for good: the reason goes to the dead-letter sink.
    Reject(String),
}

/// How to read a 409.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflicts {
    /// A version conflict rejects the record.
    Reject,
    /// A version conflict counts as written: the user said so, or the id is position-derived
    /// and the action is `create` (only an earlier delivery of the same record makes that id).
    Written,
}

/// Classify one response item by its HTTP status and error.
pub fn classify_item(action: BulkAction, item: &Item, conflicts: Conflicts) -> Outcome {
    let status = item.status;
    if (200..300).contains(&status) {
        return Outcome::Done;
    }
    if status == 404 && action == BulkAction::Delete && item.error.is_none() {
        // `result: not_found`: there was nothing to delete, which is what a delete wants.
        return Outcome::Done;
    }
    if status == 409 && conflicts == Conflicts::Written {
        return Outcome::Done;
    }
    let reason = item.reason();
    if status == 429 || status >= 500 {
        Outcome::Retry(reason)
    } else {
        Outcome::Reject(reason)
    }
}

/// The part of a `_bulk` response read on every write: whether any item failed.
#[derive(Debug, Deserialize)]
pub struct Head {
    /// True when at least one item failed.
    pub errors: bool,
}

/// A `_bulk` response, read when `errors` is true.
#[derive(Debug, Deserialize)]
pub struct Response {
    /// One entry per action, in order: `{ "<action>": Item }`.
    pub items: Vec<std::collections::BTreeMap<String, Item>>,
}

/// One action's result.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Item {
    /// HTTP status of this action.
    pub status: u16,
    /// The error, when it failed (`{type, reason, caused_by}`).
    #[serde(default)]
    pub error: Option<Value>,
}

impl Item {
    /// `409 version_conflict_engine_exception: [id]: version conflict, ... (caused by ...)`.
    pub fn reason(&self) -> String {
        let mut out = self.status.to_string();
        let mut next = self.error.as_ref();
        let mut first = true;
        while let Some(e) = next {
            if !first {
                out.push_str(" (caused by");
            }
            match e {
                Value::Object(m) => {
                    let ty = m.get("type").and_then(Value::as_str).unwrap_or("error");
                    let reason = m.get("reason").and_then(Value::as_str).unwrap_or("");
                    out.push(' ');
                    out.push_str(ty);
                    if !reason.is_empty() {
                        out.push_str(": ");
                        out.push_str(reason);
                    }
                    next = m.get("caused_by");
                }
                other => {
                    out.push(' ');
                    out.push_str(&other.to_string());
                    next = None;
                }
            }
            if !first {
                out.push(')');
            }
            first = false;
        }
        out
    }
}

impl Response {
    /// The item of each action, or `Err` when the response does not have one per action.
    pub fn into_items(self, expected: usize) -> Result<Vec<Item>, String> {
        if self.items.len() != expected {
            return Err(format!(
                "the _bulk response has {} items for {expected} actions",
                self.items.len()
            ));
        }
        self.items
            .into_iter()
            .map(|m| {
                m.into_values()
                    .next()
                    .ok_or_else(|| "a _bulk response item names no action".to_string())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn body_lines_per_action() {
        let mut body = Vec::new();
        push_action(&mut body, BulkAction::Index, "i", "a\"b");
        push_document(&mut body, BulkAction::Index, br#"{"x":1}"#);
        push_action(&mut body, BulkAction::Update, "i", "c");
        push_document(&mut body, BulkAction::Update, br#"{"x":2}"#);
        push_action(&mut body, BulkAction::Delete, "i", "d");
        push_document(&mut body, BulkAction::Delete, b"");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            concat!(
                "{\"index\":{\"_index\":\"i\",\"_id\":\"a\\\"b\"}}\n{\"x\":1}\n",
                "{\"update\":{\"_index\":\"i\",\"_id\":\"c\",\"retry_on_conflict\":3}}\n",
                "{\"doc\":{\"x\":2},\"doc_as_upsert\":true}\n",
                "{\"delete\":{\"_index\":\"i\",\"_id\":\"d\"}}\n"
            )
        );
    }

    #[test]
    fn documents_are_one_line_objects() {
        assert!(matches!(document(b"{\"a\":1}", None), Ok(Cow::Borrowed(_))));
        let multi = document(b"{\n  \"a\": \"x\\ny\"\n}", None).unwrap();
        assert_eq!(&multi[..], br#"{"a":"x\ny"}"#);
        assert!(
            document(b"[1]", None)
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(document(b"", None).unwrap_err().contains("empty"));
        assert!(
            document(b"{\"a\":", None)
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            document(b"3", Some(&json!(3)))
                .unwrap_err()
                .contains("a number")
        );
    }

    fn item(v: Value) -> Item {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn items_are_done_retried_or_rejected() {
        use BulkAction::*;
        let ok = item(json!({"status": 201}));
        assert_eq!(classify_item(Index, &ok, Conflicts::Reject), Outcome::Done);
        let gone = item(json!({"status": 404, "result": "not_found"}));
        assert_eq!(
            classify_item(Delete, &gone, Conflicts::Reject),
            Outcome::Done
        );
        let conflict = item(json!({"status": 409, "error": {
            "type": "version_conflict_engine_exception", "reason": "[a]: version conflict"}}));
        assert_eq!(
            classify_item(Create, &conflict, Conflicts::Reject),
            Outcome::Reject("409 version_conflict_engine_exception: [a]: version conflict".into())
        );
        assert_eq!(
            classify_item(Create, &conflict, Conflicts::Written),
            Outcome::Done
        );
        let busy = item(json!({"status": 429, "error": {
            "type": "es_rejected_execution_exception", "reason": "queue full"}}));
        assert!(matches!(
            classify_item(Index, &busy, Conflicts::Reject),
            Outcome::Retry(_)
        ));
        let down = item(json!({"status": 503, "error": {"type": "unavailable_shards_exception"}}));
        assert!(matches!(
            classify_item(Index, &down, Conflicts::Reject),
            Outcome::Retry(_)
        ));
        let mapping = item(json!({"status": 400, "error": {
            "type": "mapper_parsing_exception", "reason": "failed to parse field [x]",
            "caused_by": {"type": "illegal_argument_exception", "reason": "For input string"}}}));
        assert_eq!(
            classify_item(Index, &mapping, Conflicts::Written),
            Outcome::Reject(
                "400 mapper_parsing_exception: failed to parse field [x] (caused by illegal_argument_exception: For input string)"
                    .into()
            )
        );
    }

    #[test]
    fn a_response_needs_one_item_per_action() {
        let r: Response = serde_json::from_value(json!({"took": 1, "errors": true,
            "items": [{"index": {"status": 201}}]}))
        .unwrap();
        assert!(r.into_items(2).is_err());
        let r: Response =
            serde_json::from_value(json!({"items": [{"index": {"status": 201}}]})).unwrap();
        assert_eq!(r.into_items(1).unwrap()[0].status, 201);
    }
}
