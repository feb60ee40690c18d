//! Conditions for `Filter`: the route `when` syntax of job files (`core/src/job/route.rs`), with
//! the same meaning, plus `matches` (a regex the whole text must match, for Kafka's
//! `TopicNameMatches`).
//!
//! ```toml
//! when = { header = "topic", matches = "debug-.*" }
//! when = { field = "status", in = ["error", "fatal"] }
//! when = { not = { field = "reading.t", gte = 80 } }
//! when = { all = [{ field = "level", equals = "debug" }, { header = "tenant", exists = false }] }
//! ```

use regex_bites::Regex;
use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::{ValuePath, as_number, config_error, loosely_equal};

use crate::at;
use crate::doc::Doc;

/// A condition as written (see the module docs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    field: Option<ValuePath>,
    #[serde(default)]
    equals: Option<Value>,
    #[serde(default, rename = "in")]
    one_of: Option<Vec<Value>>,
    #[serde(default)]
    exists: Option<bool>,
    #[serde(default)]
    matches: Option<String>,
    #[serde(default)]
    gt: Option<f64>,
    #[serde(default)]
    gte: Option<f64>,
    #[serde(default)]
    lt: Option<f64>,
    #[serde(default)]
    lte: Option<f64>,
    #[serde(default)]
    not: Option<Box<When>>,
    #[serde(default)]
    all: Option<Vec<When>>,
    #[serde(default)]
    any: Option<Vec<When>>,
}

/// A checked condition, its regex compiled.
#[derive(Debug)]
pub enum Cond {
    /// Matches when the inner one does not.
    Not(Box<Cond>),
    /// Matches when all do.
    All(Vec<Cond>),
    /// Matches when one does.
    Any(Vec<Cond>),
    /// A test of a header or a field.
    Test(Subject, Test),
}

/// What a test looks at.
#[derive(Debug)]
pub enum Subject {
    /// A header's text.
    Header(String),
    /// A field of the JSON value.
    Field(ValuePath),
}

/// How it is tested.
#[derive(Debug)]
pub enum Test {
    /// Present.
    Present,
    /// Present (`true`) or absent (`false`).
    Exists(bool),
    /// Equal to one of these.
    OneOf(Vec<Value>),
    /// A number within bounds (gt, gte, lt, lte).
    Range([Option<f64>; 4]),
    /// Text the regex matches whole.
    Matches(Regex),
}

impl When {
    /// Check and compile; errors name the key at fault under `at_`.
    pub fn compile(&self, at_: &str) -> Result<Cond, String> {
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
        let here = |message: String| Err(config_error(at_, message));
        match subjects.as_slice() {
            [] => {
                return here(
                    "names nothing to test: give `header`, `field`, `not`, `all` or `any`".into(),
                );
            }
            [_] => {}
            several => {
                return here(format!(
                    "tests {} at once; one condition has one subject (combine conditions with `all` or `any`)",
                    several.join(" and ")
                ));
            }
        }
        let bounds = [self.gt, self.gte, self.lt, self.lte];
        let has_bounds = bounds.iter().any(Option::is_some);
        let tests: Vec<&str> = [
            ("equals", self.equals.is_some()),
            ("in", self.one_of.is_some()),
            ("exists", self.exists.is_some()),
            ("matches", self.matches.is_some()),
            ("gt/gte/lt/lte", has_bounds),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        let list = |key: &str, list: &[When]| -> Result<Vec<Cond>, String> {
            if list.is_empty() {
                return Err(config_error(&at(at_, key), "needs at least one condition"));
            }
            list.iter()
                .enumerate()
                .map(|(i, c)| c.compile(&format!("{}[{i}]", at(at_, key))))
                .collect()
        };
        let subject = match (&self.header, &self.field) {
            (Some(h), _) => Subject::Header(h.clone()),
            (None, Some(f)) => Subject::Field(f.clone()),
            (None, None) => {
                if let Some(test) = tests.first() {
                    let key = test.split('/').next().unwrap_or(test);
                    let message =
                        "tests a header or a field: put it in the condition that names one";
                    return Err(config_error(&at(at_, key), message));
                }
                if let Some(inner) = &self.not {
                    return Ok(Cond::Not(Box::new(inner.compile(&at(at_, "not"))?)));
                }
                if let Some(all) = &self.all {
                    return Ok(Cond::All(list("all", all)?));
                }
                return Ok(Cond::Any(list("any", self.any.as_deref().unwrap_or(&[]))?));
            }
        };
        if tests.len() > 1 {
            return here(format!(
                "has {} at once; give one test (numeric bounds may be combined into a range)",
                tests.join(" and ")
            ));
        }
        for (key, bound) in ["gt", "gte", "lt", "lte"].into_iter().zip(bounds) {
            if bound.is_some_and(|b| !b.is_finite()) {
                return Err(config_error(&at(at_, key), "must be a finite number"));
            }
        }
        let test = if let Some(v) = &self.equals {
            Test::OneOf(vec![v.clone()])
        } else if let Some(vs) = &self.one_of {
            if vs.is_empty() {
                return Err(config_error(
                    &at(at_, "in"),
                    "an empty list matches no record",
                ));
            }
            Test::OneOf(vs.clone())
        } else if let Some(e) = self.exists {
            Test::Exists(e)
        } else if let Some(re) = &self.matches {
            let re = Regex::new(&format!("^(?:{re})$"))
                .map_err(|e| config_error(&at(at_, "matches"), format!("not a regex: {e}")))?;
            Test::Matches(re)
        } else if has_bounds {
            Test::Range(bounds)
        } else {
            Test::Present
        };
        Ok(Cond::Test(subject, test))
    }
}

impl Cond {
    /// Does the record match? A value that is not JSON has no fields.
    pub fn test(&self, doc: &mut Doc) -> bool {
        let (subject, test) = match self {
            Cond::Not(inner) => return !inner.test(doc),
            Cond::All(all) => return all.iter().all(|c| c.test(doc)),
            Cond::Any(any) => return any.iter().any(|c| c.test(doc)),
            Cond::Test(subject, test) => (subject, test),
        };
        let header;
        let value = match subject {
            Subject::Header(name) => match doc.record.header(name) {
                Some(v) => {
                    header = Value::String(String::from_utf8_lossy(v).into_owned());
                    Some(&header)
                }
                None => None,
            },
            Subject::Field(path) => doc.json().and_then(|v| path.get(v)),
        };
        if let Test::Exists(want) = test {
            return value.is_some() == *want;
        }
        let Some(value) = value else {
            return false;
        };
        match test {
            Test::Present | Test::Exists(_) => true,
            Test::OneOf(wants) => wants.iter().any(|w| loosely_equal(value, w)),
            Test::Range([gt, gte, lt, lte]) => as_number(value).is_some_and(|n| {
                gt.is_none_or(|b| n > b)
                    && gte.is_none_or(|b| n >= b)
                    && lt.is_none_or(|b| n < b)
                    && lte.is_none_or(|b| n <= b)
            }),
            Test::Matches(re) => match value {
                Value::String(s) => re.is_match(s),
                Value::Number(_) | Value::Bool(_) => re.is_match(&value.to_string()),
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_plugin_sdk::Record;

    fn when(v: Value) -> Result<Cond, String> {
        let w: When = serde_json::from_value(v).map_err(|e| e.to_string())?;
        w.compile("when")
    }

    #[test]
    fn tests_fields_and_headers_as_routes_do() {
        let mut record =
            Record::new(r#"{"status":"error","reading":{"t":81.5,"n":"80"},"ok":true}"#);
        record.set_header("topic", "debug-7");
        let mut doc = Doc::new(record);
        let yes = [
            json!({"field": "status", "equals": "error"}),
            json!({"field": "status", "in": ["fatal", "error"]}),
            json!({"field": "reading.t", "gte": 81.5, "lt": 82}),
            json!({"field": "reading.n", "equals": 80}),
            json!({"field": "ok", "equals": true}),
            json!({"field": "debug", "exists": false}),
            json!({"field": "reading"}),
            json!({"header": "topic", "matches": "debug-[0-9]+"}),
            json!({"not": {"header": "topic", "matches": "debug"}}),
            json!({"all": [{"field": "status"}, {"any": [{"header": "x"}, {"field": "ok", "equals": "true"}]}]}),
        ];
        for c in yes {
            assert!(when(c.clone()).unwrap().test(&mut doc), "{c} should match");
        }
        let no = [
            json!({"field": "status", "equals": "ok"}),
            json!({"field": "reading.t", "gt": 81.5}),
            json!({"field": "status", "gt": 0}),
            json!({"field": "debug"}),
            json!({"header": "missing"}),
            json!({"header": "topic", "matches": "debug"}),
        ];
        for c in no {
            assert!(
                !when(c.clone()).unwrap().test(&mut doc),
                "{c} should not match"
            );
        }
        let mut not_json = Doc::new(Record::new("not json"));
        assert!(
            !when(json!({"field": "a", "exists": true}))
                .unwrap()
                .test(&mut not_json)
        );
    }

    #[test]
    fn conditions_that_cannot_work_are_refused_with_where() {
        let cases = [
            (json!({}), "`when`: names nothing"),
            (
                json!({"header": "a", "field": "b"}),
                "`when`: tests header and field",
            ),
            (
                json!({"field": "a", "equals": 1, "in": [1]}),
                "`when`: has equals and in",
            ),
            (json!({"field": "a", "in": []}), "`when.in`: an empty list"),
            (json!({"all": []}), "`when.all`: needs at least one"),
            (
                json!({"any": [{"field": "a"}, {"equals": 1}]}),
                "`when.any[1]`: names nothing",
            ),
            (
                json!({"not": {"field": "a", "matches": "("}}),
                "`when.not.matches`: not a regex",
            ),
            (
                json!({"all": [{"field": "a"}], "equals": 3}),
                "`when.equals`: tests a header",
            ),
        ];
        for (c, says) in cases {
            let e = when(c.clone()).unwrap_err();
            assert!(e.starts_with(says), "{c}: {e}");
        }
    }
}
