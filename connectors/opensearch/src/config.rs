//! Typed configuration of the OpenSearch sink (the config reference is generated from these).

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sluice_core::{ConnectorError, HumanDuration, ValuePath};

/// The `_bulk` action of every record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    /// Create or replace the document (`index`).
    #[default]
    Index,
    /// Create the document; one that exists is a version conflict (409).
    Create,
    /// Merge the record into the document, creating it when missing (`doc_as_upsert`).
    Update,
    /// Delete the document with the record's `id` (the value is only read for `id`).
    Delete,
}

impl BulkAction {
    /// The action's name in `_bulk` and in its response items.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Index => "index",
            BulkAction::Create => "create",
            BulkAction::Update => "update",
            BulkAction::Delete => "delete",
        }
    }
}

/// The node URLs: one string or a list of strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUrls(pub Vec<String>);

impl<'de> Deserialize<'de> for NodeUrls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeUrls;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a node URL like \"http://localhost:9200\" or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeUrls, E> {
                Ok(NodeUrls(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeUrls, A::Error> {
                let mut urls = Vec::new();
                while let Some(u) = seq.next_element::<String>()? {
                    urls.push(u);
                }
                Ok(NodeUrls(urls))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for NodeUrls {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "NodeUrls".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            ]
        })
    }
}

/// Credentials: `user` and `password` (HTTP basic), or `token` (a bearer token). Write them as
/// `"${env:VAR}"` rather than inline.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// User name for HTTP basic authentication (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    /// Password for HTTP basic authentication (with `user`).
    #[serde(default)]
    pub password: Option<String>,
    /// Bearer token (`Authorization: Bearer ...`); instead of `user` / `password`.
    #[serde(default)]
    pub token: Option<String>,
}

/// Never prints the secrets.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// TLS settings of `https://` nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificate(s) that sign the nodes' certificates (relative to the job
    /// file); the system trust store when absent. Host names are checked.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_request_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}

/// `type = "opensearch"` sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenSearchSinkConfig {
    /// Node URL(s), `"http://localhost:9200"` or a list: requests go round robin, and to the next
    /// node when one cannot be reached. No credentials in URLs: use `auth`.
    pub url: NodeUrls,
    /// Target index: a fixed name (`"readings"`); `{field.path}` takes a part from a field of the
    /// record (`"logs-{service}"`); `{yyyy.MM.dd}` formats the record's event time in UTC
    /// (`"readings-{yyyy.MM.dd}"`; a placeholder made only of `yyyy` `yy` `MM` `dd` `HH` `mm`
    /// `ss` and `.` `-` `_` is a date, any other a field path).
    pub index: String,
    /// `"index"` (default, create or replace), `"create"` (a document that exists is a
    /// conflict), `"update"` (merge, `doc_as_upsert`) or `"delete"` (needs `id`).
    #[serde(default)]
    pub action: BulkAction,
    /// Field path whose value (a string or number) is the document `_id`. Default: derived from
    /// the job name and the record's source position, so a record delivered again after a
    /// crash overwrites its document instead of adding a second one (effectively once).
    #[serde(default)]
    pub id: Option<ValuePath>,
    /// Count a version conflict (409) as written instead of rejecting the record. With
    /// `action = "create"` and the default `id`, a conflict is a replay and always counts as
    /// written.
    #[serde(default)]
    pub ignore_version_conflicts: bool,
    /// Credentials; none when absent.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS settings for `https://` nodes.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Longest wait for one request (a `_bulk` call) before it counts as failed and is retried.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
}

impl OpenSearchSinkConfig {
    /// Checks that need no I/O (the URLs are parsed where the client is made).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.url.0.is_empty() {
            return Err(ConnectorError::config("`url` names no node").at("url"));
        }
        if self.action == BulkAction::Delete && self.id.is_none() {
            return Err(ConnectorError::config(
                "action = \"delete\" needs `id`: the field naming the document to delete",
            )
            .at("id"));
        }
        if self.request_timeout.0.is_zero() {
            return Err(
                ConnectorError::config("`request_timeout` must be above zero")
                    .at("request_timeout"),
            );
        }
        if let Some(auth) = &self.auth {
            match (&auth.user, &auth.password, &auth.token) {
                (Some(_), Some(_), None) | (None, None, Some(_)) => {}
                (_, _, Some(_)) => {
                    return Err(ConnectorError::config(
                        "auth: `token` and `user`/`password` exclude each other",
                    )
                    .at("auth"));
                }
                _ => {
                    return Err(ConnectorError::config(
                        "auth: set `user` and `password` (basic), or `token` (bearer)",
                    )
                    .at("auth"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> OpenSearchSinkConfig {
        let table: toml::Table = toml::from_str(src).unwrap();
        toml::Value::Table(table).try_into().unwrap()
    }

    #[test]
    fn url_is_one_node_or_a_list() {
        let one = parse("url = 'http://a:9200'\nindex = 'i'");
        assert_eq!(one.url.0, vec!["http://a:9200"]);
        let two = parse("url = ['http://a:9200', 'http://b:9200']\nindex = 'i'");
        assert_eq!(two.url.0.len(), 2);
    }

    #[test]
    fn delete_needs_an_id_and_auth_is_one_kind() {
        let c = parse("url = 'http://a'\nindex = 'i'\naction = 'delete'");
        assert_eq!(c.validate().unwrap_err().field.as_deref(), Some("id"));
        let c = parse("url = 'http://a'\nindex = 'i'\nauth = { user = 'u' }");
        assert!(c.validate().is_err());
        let c = parse("url = 'http://a'\nindex = 'i'\nauth = { token = 't', user = 'u' }");
        assert!(c.validate().is_err());
        let c = parse("url = 'http://a'\nindex = 'i'\nauth = { user = 'u', password = 'p' }");
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("'p'") && format!("{c:?}").contains("***"));
    }
}
