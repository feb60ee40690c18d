//! [`Doc`]: a record on its way through the steps. Its value is parsed as JSON on the first step
//! that needs it and written back once, after the last step; steps that only touch the key or
//! headers (`RegexRouter`) leave a value that is not JSON alone.

use serde_json::{Map, Value};
use sluice_plugin_sdk::{Bytes, Record};

/// The value's state.
enum Body {
    /// Not looked at yet: the record's bytes are the value.
    Raw,
    /// Parsed, maybe changed.
    Json(Value),
    /// Not JSON (the parser's message).
    NotJson(String),
}

/// A record being transformed: key, headers and timestamp in `record`, the value parsed once.
pub struct Doc {
    /// The record; its `value` is stale once the value was changed.
    pub record: Record,
    body: Body,
    /// Whether the value was handed out to change (then it is written back).
    changed: bool,
}

/// What a value is, for messages: `a string`, `an object`.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Doc {
    /// Wrap a record; nothing is parsed yet.
    pub fn new(record: Record) -> Self {
        Self {
            record,
            body: Body::Raw,
            changed: false,
        }
    }

    fn parse(&mut self) {
        if let Body::Raw = self.body {
            self.body = match serde_json::from_slice(&self.record.value) {
                Ok(v) => Body::Json(v),
                Err(e) => Body::NotJson(e.to_string()),
            };
        }
    }

    /// The value as JSON, for reading; `None` when it is not JSON (it then has no fields).
    pub fn json(&mut self) -> Option<&Value> {
        self.read().ok()
    }

    /// The value as JSON, for reading; `Err` when it is not JSON.
    pub fn read(&mut self) -> Result<&Value, String> {
        self.parse();
        match &self.body {
            Body::Json(v) => Ok(v),
            Body::NotJson(e) => Err(format!("value is not JSON: {e}")),
            Body::Raw => Err("value not parsed".into()),
        }
    }

    /// The value as JSON, to change; `Err` when it is not JSON.
    pub fn value(&mut self) -> Result<&mut Value, String> {
        self.parse();
        match &mut self.body {
            Body::Json(v) => {
                self.changed = true;
                Ok(v)
            }
            Body::NotJson(e) => Err(format!("value is not JSON: {e}")),
            Body::Raw => Err("value not parsed".into()),
        }
    }

    /// The value as a JSON object, to change; `Err` when it is something else.
    pub fn object(&mut self) -> Result<&mut Map<String, Value>, String> {
        match self.value()? {
            Value::Object(map) => Ok(map),
            other => Err(format!("value is {}, not a JSON object", kind(other))),
        }
    }

    /// Replace the value.
    pub fn set_value(&mut self, value: Value) {
        self.body = Body::Json(value);
        self.changed = true;
    }

    /// Whether the value may have changed; a value only read keeps its text as it came.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The record with its value written back, if it was changed.
    pub fn finish(self) -> Result<Record, String> {
        let mut record = self.record;
        if let (true, Body::Json(v)) = (self.changed, self.body) {
            let text =
                serde_json::to_vec(&v).map_err(|e| format!("cannot write the value: {e}"))?;
            record.value = Bytes::from(text);
        }
        Ok(record)
    }
}
