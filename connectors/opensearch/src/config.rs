//! Typed configuration of the OpenSearch sink (the config reference is generated from these).

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sluice_core::{ConnectorError, HumanDuration, Secret, ValuePath};

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// User name for HTTP basic authentication (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    /// Password for HTTP basic authentication (with `user`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Bearer token (`Authorization: Bearer ...`); instead of `user` / `password`.
    #[serde(default)]
    pub token: Option<Secret>,
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

/// The AWS service an Amazon OpenSearch endpoint signs for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AwsService {
    /// Amazon OpenSearch Service domains.
    #[default]
    Es,
    /// Amazon OpenSearch Serverless collections.
    Aoss,
}

impl AwsService {
    /// The SigV4 signing name.
    pub fn as_str(self) -> &'static str {
        match self {
            AwsService::Es => "es",
            AwsService::Aoss => "aoss",
        }
    }
}

/// `aws = { region = "eu-west-1", service = "es" }`: sign every request with AWS Signature
/// Version 4, for Amazon OpenSearch Service (`es`) and OpenSearch Serverless (`aoss`), with
/// the credentials of `auth` (the standard AWS chain when absent: environment, profile, SSO,
/// web identity, container and instance metadata). Instead of the top-level `auth`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSigningConfig {
    /// The domain's or collection's region; `AWS_REGION` (or `AWS_DEFAULT_REGION`) when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// `"es"` (default: a managed domain) or `"aoss"` (a Serverless collection).
    #[serde(default)]
    pub service: AwsService,
    /// AWS credentials: static keys (`"${env:VAR}"`), a `profile`, or a role to
    /// `assume_role`; the standard chain when absent.
    #[serde(default)]
    pub auth: sluice_aws::AwsAuth,
}

impl AwsSigningConfig {
    /// The region requests are signed for: `region`, else the environment's.
    pub fn region(&self) -> Result<String, ConnectorError> {
        let from_env = || {
            ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|r| !r.trim().is_empty()))
        };
        self.region
            .clone()
            .filter(|r| !r.trim().is_empty())
            .or_else(from_env)
            .ok_or_else(|| {
                ConnectorError::config(
                    "no AWS region to sign for: set `aws.region`, or AWS_REGION in the environment",
                )
                .at("aws.region")
            })
    }

    /// Where the credentials come from (the OpenSearch nodes are the endpoint, not an AWS one).
    pub fn connection(&self) -> Result<sluice_aws::AwsConnection, ConnectorError> {
        let connection = sluice_aws::AwsConnection {
            region: Some(self.region()?),
            endpoint: None,
            auth: self.auth.clone(),
        };
        connection.validate().map_err(|e| match e.field.clone() {
            Some(field) => ConnectorError {
                field: Some(format!("aws.{field}")),
                ..e
            },
            None => e,
        })?;
        Ok(connection)
    }
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
    /// Sign requests with AWS SigV4 (Amazon OpenSearch Service or Serverless) instead of `auth`.
    #[serde(default)]
    pub aws: Option<AwsSigningConfig>,
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
        if let Some(aws) = &self.aws {
            if self.auth.is_some() {
                return Err(ConnectorError::config(
                    "`aws` (SigV4) and `auth` (basic or bearer) exclude each other: AWS signs with `aws.auth`",
                )
                .at("aws"));
            }
            aws.connection()?;
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

    #[test]
    fn aws_signing_is_checked_without_io() {
        let c = parse(
            "url = 'https://d'\nindex = 'i'\naws = { region = 'eu-west-1', service = 'aoss' }",
        );
        c.validate().unwrap();
        let aws = c.aws.as_ref().unwrap();
        assert_eq!(
            (aws.service.as_str(), aws.region().unwrap().as_str()),
            ("aoss", "eu-west-1")
        );
        let c =
            parse("url = 'https://d'\nindex = 'i'\naws = { region = 'r' }\nauth = { token = 't' }");
        assert_eq!(c.validate().unwrap_err().field.as_deref(), Some("aws"));
        let c = parse(
            "url = 'https://d'\nindex = 'i'\naws = { region = 'r', auth = { access_key_id = 'k' } }",
        );
        assert_eq!(
            c.validate().unwrap_err().field.as_deref(),
            Some("aws.auth.secret_access_key")
        );
        let table: toml::Table =
            toml::from_str("url = 'https://d'\nindex = 'i'\naws = { service = 'lambda' }").unwrap();
        let e = toml::Value::Table(table)
            .try_into::<OpenSearchSinkConfig>()
            .unwrap_err();
        assert!(e.to_string().contains("aoss"), "{e}");
    }
}
