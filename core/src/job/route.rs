//! `when`: which records a sink takes. A condition tests a record header or a field of the
//! record's JSON value (the one dotted field-path syntax, [`ValuePath`]), or combines other
//! conditions with `not`, `all` and `any`:
//!
//! ```toml
//! when = { header = "route", equals = "alert" }
//! when = { field = "status", in = ["error", "fatal"] }
//! when = { field = "reading.temperature_c", gte = 80 }
//! when = { not = { field = "debug", exists = true } }
//! when = { all = [{ field = "level", equals = "error" }, { header = "tenant", exists = true }] }
//! ```
//!
//! A condition is checked when the job is loaded, so a typo is a config error at the option
//! with its line rather than a sink that silently never receives anything.

use std::cell::OnceCell;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::path::FieldPath;
use crate::record::Record;
use crate::value_path::ValuePath;
use sluice_value_path::{as_number, loosely_equal};

/// A per-sink routing condition (see the module docs). Exactly one subject — `header`,
/// `field`, `not`, `all` or `any` — and, for `header` and `field`, one test: `equals`, `in`,
/// `exists`, or numeric bounds (`gt`, `gte`, `lt`, `lte`, which may be combined into a
/// range). With no test, the header or field only has to be present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCondition {
    /// A record header to test; its value is text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A field of the record's JSON value to test, as a dotted path (`reading.status`). A
    /// record whose value is not a JSON object has no fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<ValuePath>,
    /// The value it must equal. Numbers compare by value (`80` equals `80.0`); text and a
    /// number or boolean are equal when written the same way (`"80"` equals `80`: headers
    /// are text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// Values it must equal one of (compared as `equals` does).
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    /// `true`: it must be present; `false`: it must be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// It must be a number (or text that reads as one) greater than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// ... greater than or equal to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// ... less than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    /// ... less than or equal to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
    /// Matches when this condition does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<RouteCondition>>,
    /// Matches when every one of these does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<RouteCondition>>,
    /// Matches when at least one of these does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<RouteCondition>>,
}

/// A record as conditions see it: its JSON value is parsed once, on first use, however many
/// sinks test fields of it.
pub struct RouteInput<'a> {
    record: &'a Record,
    json: OnceCell<Option<Value>>,
}

impl<'a> RouteInput<'a> {
    /// Wrap a record; nothing is parsed yet.
    pub fn new(record: &'a Record) -> Self {
        Self {
            record,
            json: OnceCell::new(),
        }
    }

    fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(&self.record.value).ok())
            .as_ref()
    }
}

impl RouteCondition {
    /// A condition on a header having `value` (the classic header route).
    pub fn header_equals(header: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            header: Some(header.into()),
            equals: Some(Value::String(value.into())),
            ..Self::default()
        }
    }

    /// Does `record` match?
    pub fn matches(&self, record: &Record) -> bool {
        self.test(&RouteInput::new(record))
    }

    /// Does the record behind `input` match? Its value is parsed at most once over calls.
    pub fn test(&self, input: &RouteInput<'_>) -> bool {
        if let Some(inner) = &self.not {
            return !inner.test(input);
        }
        if let Some(all) = &self.all {
            return all.iter().all(|c| c.test(input));
        }
        if let Some(any) = &self.any {
            return any.iter().any(|c| c.test(input));
        }
        let header;
        let subject = match (&self.header, &self.field) {
            (Some(name), _) => match input.record.header(name) {
                Some(v) => {
                    header = Value::String(String::from_utf8_lossy(v).into_owned());
                    Some(&header)
                }
                None => None,
            },
            (None, Some(path)) => input.json().and_then(|v| path.get(v)),
            (None, None) => None,
        };
        self.test_subject(subject)
    }

    fn test_subject(&self, subject: Option<&Value>) -> bool {
        if let Some(want) = self.exists {
            return subject.is_some() == want;
        }
        let Some(subject) = subject else {
            return false;
        };
        if let Some(want) = &self.equals {
            return loosely_equal(subject, want);
        }
        if let Some(wants) = &self.one_of {
            return wants.iter().any(|w| loosely_equal(subject, w));
        }
        if self.has_bounds() {
            let Some(n) = as_number(subject) else {
                return false;
            };
            return self.gt.is_none_or(|b| n > b)
                && self.gte.is_none_or(|b| n >= b)
                && self.lt.is_none_or(|b| n < b)
                && self.lte.is_none_or(|b| n <= b);
        }
        true
    }

    fn has_bounds(&self) -> bool {
        self.gt.is_some() || self.gte.is_some() || self.lt.is_some() || self.lte.is_some()
    }

    /// Why this condition can never work as written, and where inside it (relative to the
    /// `when` key): one subject, one kind of test, finite bounds, non-empty lists.
    pub fn check(&self) -> Result<(), (FieldPath, String)> {
        let here = FieldPath::root();
        let subjects: Vec<&str> = [
            ("header", self.header.is_some()),
            ("field", self.field.is_some()),
            ("not", self.not.is_some()),
            ("all", self.all.is_some()),
            ("any", self.any.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        match subjects.as_slice() {
            [] => {
                return Err((
                    here,
                    "names nothing to test: give `header`, `field`, `not`, `all` or `any`".into(),
                ));
            }
            [_] => {}
            several => {
                return Err((
                    here,
                    format!(
                        "tests {} at once; one condition has one subject (combine conditions with `all` or `any`)",
                        several.join(" and ")
                    ),
                ));
            }
        }
        let tests: Vec<&str> = [
            ("equals", self.equals.is_some()),
            ("in", self.one_of.is_some()),
            ("exists", self.exists.is_some()),
            ("gt/gte/lt/lte", self.has_bounds()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        if self.header.is_none() && self.field.is_none() {
            if let Some(test) = tests.first() {
                return Err((
                    here.key(test.split('/').next().unwrap_or(test).to_string()),
                    "tests a header or a field: put it in the condition that names one".into(),
                ));
            }
        } else if tests.len() > 1 {
            return Err((
                here,
                format!(
                    "has {} at once; give one test (numeric bounds may be combined into a range)",
                    tests.join(" and ")
                ),
            ));
        }
        for (key, bound) in [
            ("gt", self.gt),
            ("gte", self.gte),
            ("lt", self.lt),
            ("lte", self.lte),
        ] {
            if bound.is_some_and(|b| !b.is_finite()) {
                return Err((here.key(key), "must be a finite number".into()));
            }
        }
        if self.one_of.as_ref().is_some_and(Vec::is_empty) {
            return Err((here.key("in"), "an empty list matches no record".into()));
        }
        if let Some(inner) = &self.not {
            inner
                .check()
                .map_err(|(p, m)| (p.under(&here.key("not")), m))?;
        }
        for (key, list) in [("all", &self.all), ("any", &self.any)] {
            let Some(list) = list else { continue };
            if list.is_empty() {
                return Err((here.key(key), "needs at least one condition".into()));
            }
            for (i, c) in list.iter().enumerate() {
                c.check()
                    .map_err(|(p, m)| (p.under(&here.key(key).index(i)), m))?;
            }
        }
        Ok(())
    }
}

/// As written in a job file, for the run summary and status: `header route = "alert"`,
/// `field level in ["error","fatal"]`, `not (field debug exists)`.
impl fmt::Display for RouteCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, word: &str, cs: &[RouteCondition]| {
            let parts: Vec<String> = cs.iter().map(|c| format!("({c})")).collect();
            write!(f, "{}", parts.join(&format!(" {word} ")))
        };
        if let Some(inner) = &self.not {
            return write!(f, "not ({inner})");
        }
        if let Some(all) = &self.all {
            return list(f, "and", all);
        }
        if let Some(any) = &self.any {
            return list(f, "or", any);
        }
        match (&self.header, &self.field) {
            (Some(h), _) => write!(f, "header {h}")?,
            (None, Some(p)) => write!(f, "field {}", p.as_str())?,
            (None, None) => return Ok(()),
        }
        if let Some(v) = &self.equals {
            return write!(f, " = {v}");
        }
        if let Some(vs) = &self.one_of {
            return write!(f, " in {}", Value::Array(vs.clone()));
        }
        if let Some(e) = self.exists {
            return f.write_str(if e { " exists" } else { " is absent" });
        }
        for (op, bound) in [
            (">", self.gt),
            (">=", self.gte),
            ("<", self.lt),
            ("<=", self.lte),
        ] {
            if let Some(b) = bound {
                write!(f, " {op} {b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Header, Position};
    use bytes::Bytes;
    use std::sync::Arc;

    fn when(toml_text: &str) -> RouteCondition {
        let table: toml::Table = toml::from_str(&format!("when = {toml_text}")).unwrap();
        table["when"].clone().try_into().unwrap()
    }

    fn record(value: &str, headers: &[(&str, &str)]) -> Record {
        let mut r = Record::new(value.to_string(), Position::int(Arc::from("p"), 0));
        r.headers = headers
            .iter()
            .map(|(n, v)| Header {
                name: (*n).into(),
                value: Bytes::from(v.to_string()),
            })
            .collect();
        r
    }

    #[test]
    fn field_tests_read_the_json_value() {
        let r = record(
            r#"{"status":"error","reading":{"t":81.5,"n":"80"},"ok":true}"#,
            &[],
        );
        let yes = [
            r#"{ field = "status", equals = "error" }"#,
            r#"{ field = "status", in = ["fatal", "error"] }"#,
            r#"{ field = "reading.t", gt = 80 }"#,
            r#"{ field = "reading.t", gte = 81.5, lt = 82 }"#,
            r#"{ field = "reading.n", equals = 80 }"#,
            r#"{ field = "reading.n", lte = 80 }"#,
            r#"{ field = "ok", equals = true }"#,
            r#"{ field = "reading", exists = true }"#,
            r#"{ field = "debug", exists = false }"#,
            r#"{ not = { field = "status", equals = "ok" } }"#,
            r#"{ all = [{ field = "status", exists = true }, { field = "reading.t", lt = 100 }] }"#,
            r#"{ any = [{ field = "nope", exists = true }, { field = "ok", equals = true }] }"#,
        ];
        for c in yes {
            assert!(when(c).matches(&r), "{c} should match");
        }
        let no = [
            r#"{ field = "status", equals = "ok" }"#,
            r#"{ field = "status", in = ["ok"] }"#,
            r#"{ field = "reading.t", gt = 81.5 }"#,
            r#"{ field = "status", gt = 0 }"#,
            r#"{ field = "debug", exists = true }"#,
            r#"{ field = "debug" }"#,
            r#"{ field = "reading.t.deeper", exists = true }"#,
            r#"{ not = { field = "status", exists = true } }"#,
            r#"{ all = [{ field = "status", exists = true }, { field = "reading.t", gt = 100 }] }"#,
        ];
        for c in no {
            assert!(!when(c).matches(&r), "{c} should not match");
        }
    }

    #[test]
    fn header_tests_read_header_text_and_a_value_that_is_not_json_has_no_fields() {
        let r = record("not json", &[("route", "alert"), ("level", "3")]);
        assert!(when(r#"{ header = "route", equals = "alert" }"#).matches(&r));
        assert!(when(r#"{ header = "route" }"#).matches(&r));
        assert!(when(r#"{ header = "level", gte = 3 }"#).matches(&r));
        assert!(when(r#"{ header = "level", equals = 3 }"#).matches(&r));
        assert!(!when(r#"{ header = "route", equals = "other" }"#).matches(&r));
        assert!(!when(r#"{ header = "missing" }"#).matches(&r));
        assert!(!when(r#"{ field = "route", exists = true }"#).matches(&r));
        assert!(when(r#"{ field = "route", exists = false }"#).matches(&r));
        assert_eq!(
            RouteCondition::header_equals("route", "alert"),
            when(r#"{ header = "route", equals = "alert" }"#)
        );
    }

    #[test]
    fn conditions_that_cannot_work_are_refused_with_where() {
        let cases = [
            ("{}", "", "names nothing"),
            (r#"{ header = "a", field = "b" }"#, "", "one subject"),
            (r#"{ field = "a", equals = 1, in = [1] }"#, "", "one test"),
            (r#"{ field = "a", in = [] }"#, "in", "empty list"),
            (r#"{ field = "a", gt = nan }"#, "gt", "finite"),
            (r#"{ all = [] }"#, "all", "at least one"),
            (
                r#"{ any = [{ field = "a" }, { equals = 1 }] }"#,
                "any[1]",
                "names nothing",
            ),
            (
                r#"{ not = { header = "h", exists = true, equals = "x" } }"#,
                "not",
                "one test",
            ),
            (
                r#"{ all = [{ field = "a" }], equals = 3 }"#,
                "equals",
                "header or a field",
            ),
        ];
        for (text, at, says) in cases {
            let (path, message) = when(text).check().unwrap_err();
            assert_eq!(path, FieldPath::parse(at).unwrap_or_default(), "{text}");
            assert!(message.contains(says), "{text}: {message}");
        }
        for ok in [
            r#"{ field = "a", gte = 1, lt = 2 }"#,
            r#"{ header = "h" }"#,
            r#"{ any = [{ field = "a" }, { not = { header = "b" } }] }"#,
        ] {
            assert_eq!(when(ok).check(), Ok(()), "{ok}");
        }
        let err = toml::from_str::<toml::Table>(r#"when = { field = "a..b" }"#)
            .unwrap()
            .remove("when")
            .unwrap()
            .try_into::<RouteCondition>()
            .unwrap_err();
        assert!(err.to_string().contains("empty segment"), "{err}");
    }

    #[test]
    fn shown_as_written() {
        assert_eq!(
            when(r#"{ header = "route", equals = "alert" }"#).to_string(),
            r#"header route = "alert""#
        );
        assert_eq!(
            when(r#"{ not = { field = "a.b", in = ["x", 1] } }"#).to_string(),
            r#"not (field a.b in ["x",1])"#
        );
        assert_eq!(
            when(r#"{ any = [{ field = "t", gte = 80, lt = 90 }, { header = "h", exists = false }] }"#)
                .to_string(),
            "(field t >= 80 < 90) or (header h is absent)"
        );
    }
}
