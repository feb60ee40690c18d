//! Submitted configs: TOML as is, JSON converted to the same model (and kept as TOML text), and
//! validation of whole jobs and of single connector configs.

use std::path::Path;

use sluice_core::job::Toolkit;
use sluice_core::job::path::FieldPath;

use super::error::{ApiError, FieldError};

/// Turn a request body into TOML text. The content type says which it is (the guard lets only
/// TOML and JSON through): a TOML body that looks like JSON is TOML, and not valid.
pub fn to_toml_text(content_type: Option<&str>, body: &[u8]) -> Result<String, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    let is_json = content_type.is_some_and(|c| super::guard::media_type(c) == "application/json");
    if !is_json {
        return Ok(text.to_string());
    }
    let table = json_to_table(text)?;
    toml::to_string(&table)
        .map_err(|e| ApiError::bad_request(format!("cannot convert to TOML: {e}")))
}

/// Parse a JSON object into a TOML table, reporting the path of what TOML cannot hold (null).
pub fn json_to_table(text: &str) -> Result<toml::Table, ApiError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ApiError::invalid_config(vec![FieldError {
            path: "(syntax)".into(),
            line: Some(e.line()),
            message: format!("invalid JSON: {e}"),
        }])
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request("expected a JSON object"));
    }
    if let Some(path) = find_null(&value, &FieldPath::root()) {
        return Err(ApiError::invalid_config(vec![FieldError {
            path: path.to_string(),
            line: None,
            message: "null is not allowed (TOML has no null: leave the field out)".into(),
        }]));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("cannot convert to TOML: {e}")))
}

fn find_null(value: &serde_json::Value, path: &FieldPath) -> Option<FieldPath> {
    match value {
        serde_json::Value::Null => Some(path.clone()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_null(v, &path.index(i))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| find_null(v, &path.key(k))),
        _ => None,
    }
}

/// The `name` of a job definition, if it has a readable one.
pub fn job_name(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    table.get("name")?.as_str().map(str::to_string)
}

/// Whether a connector type is a source or a sink.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A source type.
    Source,
    /// A sink type.
    Sink,
}

/// Validate one connector config the way a job load builds it; `Ok(errors)` (empty when
/// valid), `Err` for an unknown type.
pub fn validate_connector(
    toolkit: &Toolkit,
    kind: Kind,
    type_name: &str,
    mut table: toml::Table,
    scratch_dir: &Path,
) -> Result<Vec<FieldError>, ApiError> {
    let known = match kind {
        Kind::Source => toolkit.registry().source(type_name).is_some(),
        Kind::Sink => toolkit.registry().sink(type_name).is_some(),
    };
    if !known {
        return Err(ApiError::not_found(format!(
            "no {} type {type_name:?}",
            if kind == Kind::Sink { "sink" } else { "source" }
        )));
    }
    match table.get("type") {
        Some(toml::Value::String(t)) if t != type_name => {
            return Ok(vec![FieldError {
                path: "type".into(),
                line: None,
                message: format!("the config says type {t:?} but the URL says {type_name:?}"),
            }]);
        }
        Some(toml::Value::String(_)) | None => {}
        Some(_) => {
            return Ok(vec![FieldError {
                path: "type".into(),
                line: None,
                message: "expected a string".into(),
            }]);
        }
    }
    table.insert("type".into(), type_name.into());
    let result = toolkit.check_connector(kind == Kind::Sink, table, scratch_dir);
    Ok(result
        .err()
        .into_iter()
        .flatten()
        .map(|i| FieldError {
            path: i.path.to_string(),
            line: None,
            message: clean_message(&i.message),
        })
        .collect())
}

/// A deserializer message without the trailing field context TOML appends (the path is
/// reported on its own).
pub fn clean_message(message: &str) -> String {
    let message = message.trim();
    match message.rfind("\nin `") {
        Some(i) => message[..i].trim().to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_json_definitions_to_toml() {
        let text = to_toml_text(
            Some("application/json"),
            br#"{"api_version": 1, "name": "j", "source": {"type": "datagen", "count": 3},
                "sinks": [{"type": "stdout"}]}"#,
        )
        .unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(table["name"].as_str(), Some("j"));
        assert_eq!(table["source"]["count"].as_integer(), Some(3));
        assert_eq!(job_name(&text).as_deref(), Some("j"));
    }

    #[test]
    fn reports_the_path_of_a_json_null() {
        let err = json_to_table(r#"{"sinks": [{"type": "file", "path": null}]}"#).unwrap_err();
        assert!(format!("{err:?}").contains("sinks[0].path"), "{err:?}");
    }

    #[test]
    fn the_content_type_says_json_not_the_first_character() {
        // TOML that looks like JSON stays TOML (and does not parse as a job).
        assert_eq!(to_toml_text(Some("application/toml"), b"{}").unwrap(), "{}");
        let text = to_toml_text(Some("Application/JSON; charset=utf-8"), br#"{"name": "j"}"#);
        assert_eq!(job_name(&text.unwrap()).as_deref(), Some("j"));
    }

    #[test]
    fn keeps_toml_text_as_submitted() {
        let body = b"# comment\napi_version = 1\n";
        assert_eq!(
            to_toml_text(Some("application/toml"), body).unwrap(),
            "# comment\napi_version = 1\n"
        );
    }
}
