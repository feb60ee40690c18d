//! Transforms that decide where a record goes: `Filter`, `RegexRouter` and `TimestampRouter`.
//!
//! ```toml
//! with = { type = "Filter", when = { field = "level", equals = "debug" } }   # drops matches
//! with = { type = "RegexRouter", regex = "sensors-(.*)", replacement = "readings-$1" }
//! ```
//!
//! `Filter` drops the records its `when` matches (Kafka's Filter with a predicate; use
//! `not = {...}` for `negate = true`). `when` is a route condition ([`crate::cond`]).
//!
//! `RegexRouter` rewrites the `topic` header (`header = "..."` for another): when the regex
//! matches the header's whole text, the header becomes `replacement`, where `$1` / `${name}`
//! are the regex's groups (write `${1}` when a letter, digit or `_` follows). A record without
//! the header, or whose header does not match, passes unchanged. Sinks choose by that header:
//! a route `when = { header = "topic", equals = "readings-eu" }`, or the Kafka sink's
//! `topic_header = "topic"`.
//!
//! `TimestampRouter` sets that header to `topic_format` (default `${topic}-${timestamp}`), where
//! `${timestamp}` is the record's timestamp written with `timestamp_format` (strftime, UTC,
//! default `%Y%m%d`); a record without a timestamp fails, one without the header passes
//! unchanged when the format uses `${topic}`.

use regex_bites::Regex;
use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::{config_at, config_error};

use crate::cond::{Cond, When};
use crate::doc::Doc;
use crate::{Flow, Step, TOPIC_HEADER, at};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterConfig {
    when: When,
}

struct Filter {
    when: Cond,
}

pub fn filter(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: FilterConfig = config_at(at_, with)?;
    Ok(Box::new(Filter {
        when: c.when.compile(&at(at_, "when"))?,
    }))
}

impl Step for Filter {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        Ok(if self.when.test(doc) {
            Flow::Drop
        } else {
            Flow::Next
        })
    }
}

fn topic_header() -> String {
    TOPIC_HEADER.to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegexRouterConfig {
    regex: String,
    replacement: String,
    #[serde(default = "topic_header")]
    header: String,
}

struct RegexRouter {
    regex: Regex,
    replacement: String,
    header: String,
}

/// Why `replacement` refers to a group `regex` does not have, if it does.
fn check_groups(regex: &Regex, replacement: &str) -> Result<(), String> {
    let mut rest = replacement;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            rest = after;
            continue;
        }
        let name = if let Some(braced) = rest.strip_prefix('{') {
            let Some(end) = braced.find('}') else {
                return Err("`${` without a closing `}`".into());
            };
            rest = &braced[end + 1..];
            &braced[..end]
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            rest = &rest[end..];
            name
        };
        if name.is_empty() {
            return Err("a `$` names no group (write `$$` for a dollar sign)".into());
        }
        let known = match name.parse::<usize>() {
            Ok(n) => n < regex.captures_len(),
            Err(_) => regex.capture_names().flatten().any(|n| n == name),
        };
        if !known {
            return Err(format!(
                "`${name}` is not a group of `regex` (it has {}; write `${{1}}` when a letter, digit or `_` follows a group number)",
                regex.captures_len() - 1
            ));
        }
    }
    Ok(())
}

pub fn regex_router(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: RegexRouterConfig = config_at(at_, with)?;
    // Kafka's RegexRouter matches the whole topic name (Java's `Matcher.matches`).
    let regex = Regex::new(&format!("^(?:{})$", c.regex))
        .map_err(|e| config_error(&at(at_, "regex"), format!("not a regex: {e}")))?;
    check_groups(&regex, &c.replacement).map_err(|e| config_error(&at(at_, "replacement"), e))?;
    if c.header.is_empty() {
        return Err(config_error(&at(at_, "header"), "an empty header name"));
    }
    Ok(Box::new(RegexRouter {
        regex,
        replacement: c.replacement,
        header: c.header,
    }))
}

impl Step for RegexRouter {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let Some(current) = doc.record.header(&self.header) else {
            return Ok(Flow::Next);
        };
        let Ok(current) = std::str::from_utf8(current) else {
            return Ok(Flow::Next);
        };
        if self.regex.is_match(current) {
            let routed = self
                .regex
                .replace(current, self.replacement.as_str())
                .into_owned();
            doc.record.set_header(&self.header, routed);
        }
        Ok(Flow::Next)
    }
}

fn topic_format() -> String {
    "${topic}-${timestamp}".to_string()
}

fn date_format() -> String {
    "%Y%m%d".to_string()
}

/// `TimestampRouter`: the topic header becomes `topic_format` with `${topic}` (its old text)
/// and `${timestamp}` (the record's timestamp written with `timestamp_format`, strftime, UTC).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimestampRouter {
    #[serde(default = "topic_format")]
    topic_format: String,
    #[serde(default = "date_format")]
    timestamp_format: String,
    #[serde(default = "topic_header")]
    header: String,
}

pub fn timestamp_router(at_: &str, with: Value) -> Result<Box<dyn Step>, String> {
    let c: TimestampRouter = config_at(at_, with)?;
    jiff::fmt::strtime::format(c.timestamp_format.as_str(), jiff::Timestamp::UNIX_EPOCH)
        .map_err(|e| config_error(&at(at_, "timestamp_format"), e))?;
    if c.header.is_empty() {
        return Err(config_error(&at(at_, "header"), "an empty header name"));
    }
    Ok(Box::new(c))
}

impl Step for TimestampRouter {
    fn apply(&self, doc: &mut Doc) -> Result<Flow, String> {
        let topic = match doc.record.header(&self.header) {
            Some(t) => String::from_utf8_lossy(t).into_owned(),
            None if self.topic_format.contains("${topic}") => return Ok(Flow::Next),
            None => String::new(),
        };
        let ms = doc
            .record
            .timestamp
            .ok_or("the record has no timestamp to route by")?;
        let ts =
            jiff::Timestamp::from_millisecond(ms).map_err(|e| format!("timestamp {ms}: {e}"))?;
        let stamp = jiff::fmt::strtime::format(self.timestamp_format.as_str(), ts)
            .map_err(|e| e.to_string())?;
        let routed = self
            .topic_format
            .replace("${topic}", &topic)
            .replace("${timestamp}", &stamp);
        doc.record.set_header(&self.header, routed);
        Ok(Flow::Next)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use serde_json::json;
    use sluice_plugin_sdk::Record;

    #[test]
    fn filter_drops_matching_records() {
        let with = json!({"type": "Filter", "when": {"field": "level", "in": ["debug", "trace"]}});
        assert_eq!(run(with.clone(), r#"{"level":"debug"}"#), Ok(None));
        assert!(run(with.clone(), r#"{"level":"error"}"#).unwrap().is_some());
        assert!(
            run(with, "not json").unwrap().is_some(),
            "no fields: no match"
        );
        let e = smt(json!({"type": "Filter"})).err().unwrap();
        assert_eq!(e, "invalid config: missing field `when`");
        let e = smt(json!({"steps": [{"type": "Filter", "when": {"field": "a", "gt": "x"}}]}))
            .err()
            .unwrap();
        assert!(e.starts_with("`steps[0].when.gt`: invalid type"), "{e}");
    }

    #[test]
    fn regex_router_rewrites_the_topic_header_when_it_matches_whole() {
        let plugin = smt(
            json!({"type": "RegexRouter", "regex": "sensors-(?<site>[a-z]+)-(\\d+)",
            "replacement": "readings-${site}_$2"}),
        )
        .unwrap();
        let routed = |topic: Option<&str>| {
            let mut r = Record::new("not json either");
            if let Some(t) = topic {
                r.set_header("topic", t.to_string());
            }
            let out = run_record(&plugin, r).unwrap().unwrap();
            assert_eq!(out.value, "not json either");
            out.header("topic")
                .map(|h| String::from_utf8(h.to_vec()).unwrap())
        };
        assert_eq!(
            routed(Some("sensors-eu-7")).as_deref(),
            Some("readings-eu_7")
        );
        assert_eq!(
            routed(Some("xsensors-eu-7")).as_deref(),
            Some("xsensors-eu-7")
        );
        assert_eq!(routed(None), None);
    }

    #[test]
    fn timestamp_router_appends_the_records_date() {
        let plugin = smt(json!({"type": "TimestampRouter"})).unwrap();
        let mut r = Record::new("{}");
        r.set_header("topic", "sensors");
        r.timestamp = Some(1_795_600_800_123);
        let out = run_record(&plugin, r.clone()).unwrap().unwrap();
        assert_eq!(out.header("topic").unwrap(), "sensors-20261125");
        let plugin = smt(
            json!({"type": "TimestampRouter", "topic_format": "archive/${timestamp}",
            "timestamp_format": "%Y/%m/%d/%H"}),
        )
        .unwrap();
        let out = run_record(&plugin, r.clone()).unwrap().unwrap();
        assert_eq!(out.header("topic").unwrap(), "archive/2026/11/25/10");
        r.timestamp = None;
        let e = run_record(&plugin, r).unwrap_err();
        assert_eq!(
            e,
            "TimestampRouter: the record has no timestamp to route by"
        );
        let e = smt(json!({"type": "TimestampRouter", "timestamp_format": "%Y %"}))
            .err()
            .unwrap();
        assert!(e.starts_with("`timestamp_format`: "), "{e}");
    }

    #[test]
    fn bad_regexes_and_replacements_are_config_errors() {
        let e = smt(json!({"type": "RegexRouter", "regex": "a(", "replacement": "b"}))
            .err()
            .unwrap();
        assert!(e.starts_with("`regex`: not a regex"), "{e}");
        let e = smt(json!({"type": "RegexRouter", "regex": "a(.)", "replacement": "$1_x"}))
            .err()
            .unwrap();
        assert!(e.starts_with("`replacement`: `$1_x` is not a group"), "{e}");
        let e = smt(json!({"type": "RegexRouter", "regex": "a(.)", "replacement": "$2"}))
            .err()
            .unwrap();
        assert!(e.contains("it has 1"), "{e}");
        assert!(
            smt(json!({"type": "RegexRouter", "regex": "a(.)", "replacement": "$$${1}_x"})).is_ok()
        );
    }
}
