//! The `prefix` key template: literal text, time parts and field values.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::{ConnectorError, ValuePath};

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A chrono format string (`%Y-%m-%d`).
    Time(&'static str),
    Field(ValuePath),
}

/// A parsed `prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTemplate {
    text: String,
    parts: Vec<Part>,
}

impl KeyTemplate {
    /// Parse `text`; an unknown placeholder is a config error at `prefix`.
    pub fn parse(text: &str) -> Result<Self, ConnectorError> {
        let bad = |m: String| ConnectorError::config(m).at("prefix");
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(bad(format!("{text:?}: a '{{' without its '}}'")));
            };
            let name = &rest[open + 1..open + close];
            parts.push(match name {
                "date" => Part::Time("%Y-%m-%d"),
                "year" => Part::Time("%Y"),
                "month" => Part::Time("%m"),
                "day" => Part::Time("%d"),
                "hour" => Part::Time("%H"),
                "minute" => Part::Time("%M"),
                _ => match name.strip_prefix("field:") {
                    Some(path) => Part::Field(
                        ValuePath::parse(path).map_err(|e| bad(format!("{{{name}}}: {e}")))?,
                    ),
                    None => {
                        return Err(bad(format!(
                            "unknown placeholder {{{name}}}: use {{date}} {{year}} {{month}} {{day}} {{hour}} {{minute}} or {{field:path}}"
                        )));
                    }
                },
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self {
            text: text.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The literal text before the first placeholder: every key starts with it.
    pub fn fixed_start(&self) -> &str {
        match self.parts.first() {
            Some(Part::Text(t)) => t,
            _ => "",
        }
    }

    /// True when rendering needs the record's value parsed.
    pub fn needs_value(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }

    /// True when the template has a time placeholder (`{date}`, `{hour}`...).
    pub fn uses_time(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Time(_)))
    }

    /// True when the template has no placeholder.
    pub fn is_fixed(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The prefix of one record; `Err` is why the record cannot be placed (it is dead-lettered).
    pub fn render(&self, value: Option<&Value>, time: DateTime<Utc>) -> Result<String, String> {
        let mut out = String::with_capacity(self.text.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Time(f) => out.push_str(&time.format(f).to_string()),
                Part::Field(path) => {
                    let v = value
                        .and_then(|v| path.get(v))
                        .ok_or_else(|| format!("no field {path} for the key prefix"))?;
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(format!("field {path} is not a string, number or boolean"));
                        }
                    };
                    // A slash or an empty value would change the folder structure of the key.
                    if s.is_empty() || s.contains('/') || s == "." || s == ".." {
                        return Err(format!(
                            "field {path} = {s:?} cannot be part of a key (empty, '/', '.' or '..')"
                        ));
                    }
                    out.push_str(&s);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn renders_time_and_fields() {
        let t = KeyTemplate::parse("r/dt={date}/hour={hour}/d={field:dev.id}/").unwrap();
        assert_eq!(t.fixed_start(), "r/dt=");
        assert!(t.needs_value());
        let time = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let v: Value = serde_json::json!({"dev": {"id": 7}});
        assert_eq!(
            t.render(Some(&v), time).unwrap(),
            "r/dt=2026-03-04/hour=05/d=7/"
        );
        assert!(t.render(Some(&serde_json::json!({})), time).is_err());
        let slash = serde_json::json!({"dev": {"id": "a/b"}});
        assert!(t.render(Some(&slash), time).is_err());
    }

    #[test]
    fn unknown_placeholders_are_config_errors() {
        let e = KeyTemplate::parse("x/{week}/").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("prefix"));
        assert!(KeyTemplate::parse("x/{date").is_err());
        assert!(KeyTemplate::parse("plain/").unwrap().is_fixed());
    }
}
