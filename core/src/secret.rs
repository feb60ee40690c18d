//! [`Secret`]: a password, token or key from a job file that cannot be printed by accident.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value of a connector's configuration (a password, a token, a secret key). Its text
/// is only handed out by [`Secret::expose`], where it is sent to the service; `Debug` and
/// `Serialize` write `***`, so a config printed in a log line, an error or an API answer never
/// carries it. There is no `Display` on purpose: `format!("Bearer {token}")` does not compile,
/// rather than sending `***`. In a job file it is an ordinary string, best written as `"${env:VAR}"` or
/// `"${file:PATH}"`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it to the service.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

/// Written as `"***"`: a serialized config (an API answer, a dump) holds no secret.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// A string in the job file's schema.
impl JsonSchema for Secret {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Config {
        user: String,
        password: Option<Secret>,
    }

    #[test]
    fn nothing_prints_the_value_but_expose() {
        let c: Config = toml::from_str("user = 'u'\npassword = 'hunter2'").unwrap();
        let password = c.password.as_ref().unwrap();
        assert_eq!(password.expose(), "hunter2");
        for shown in [
            format!("{c:?}"),
            format!("{c:#?}"),
            serde_json::to_string(&c).unwrap(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
    }

    #[test]
    fn the_schema_is_a_string() {
        let schema = schemars::schema_for!(Secret);
        assert_eq!(schema.get("type").and_then(|t| t.as_str()), Some("string"));
    }
}
