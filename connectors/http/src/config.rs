//! Typed configuration of the HTTP sink (the config reference is generated from these).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_core::{ConnectorError, HumanDuration, Secret};

/// How records become request bodies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One record per request, its JSON value as the body (`application/json`): what Slack,
    /// PagerDuty and most webhooks take.
    #[default]
    Json,
    /// Up to `max_records` records per request as one JSON array (`application/json`).
    JsonArray,
    /// Up to `max_records` records per request, one JSON value per line
    /// (`application/x-ndjson`).
    Ndjson,
}

/// Credentials: `bearer` (a token), or `user` and `password` (HTTP basic). Write them as
/// `"${env:VAR}"` rather than inline; they are never logged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpAuth {
    /// Bearer token (`Authorization: Bearer ...`); instead of `user` / `password`.
    #[serde(default)]
    pub bearer: Option<Secret>,
    /// User name for HTTP basic authentication (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    /// Password for HTTP basic authentication (with `user`).
    #[serde(default)]
    pub password: Option<Secret>,
}

/// TLS settings of an `https://` URL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    /// PEM file of the CA certificate(s) that sign the server's certificate (relative to the job
    /// file); the system trust store when absent. Host names are checked.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

fn default_max_records() -> usize {
    100
}

fn default_max_attempts() -> u32 {
    5
}

fn default_retry_backoff() -> HumanDuration {
    HumanDuration(Duration::from_millis(500))
}

fn default_max_retry_wait() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// `type = "http"` sink: POSTs records as JSON to a URL (a webhook).
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// The URL to POST to (`http://` or `https://`). Webhook URLs often hold a secret in their
    /// path (Slack): write it as `"${env:VAR}"`; messages and logs show only scheme, host and
    /// port.
    pub url: String,
    /// `"json"` (default: one record per request), `"json_array"` (a JSON array of up to
    /// `max_records` records) or `"ndjson"` (one record per line). Every record's value must be
    /// JSON; one that is not is dead-lettered without being sent.
    #[serde(default)]
    pub encoding: Encoding,
    /// Most records in one request with `"json_array"` and `"ndjson"`.
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// Extra request headers (`{ "X-Api-Key" = "${env:API_KEY}" }`); values are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Credentials; none when absent.
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// TLS settings for an `https://` URL.
    #[serde(default)]
    pub tls: Option<HttpTls>,
    /// Longest wait for one request (connecting, sending, the answer).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Tries of one request answered by 408, 429 or 5xx, or not answered at all, before its
    /// records go back to the runtime to be retried later (at-least-once: they are not dropped).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First wait between tries, doubled after each; a `Retry-After` header (seconds or an HTTP
    /// date) replaces it.
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff: HumanDuration,
    /// Longest wait between two tries: a `Retry-After` asking for more hands the records back to
    /// the runtime instead of blocking the sink.
    #[serde(default = "default_max_retry_wait")]
    pub max_retry_wait: HumanDuration,
}

/// Never prints header values or the URL's path (either may hold a secret).
impl fmt::Debug for HttpSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSinkConfig")
            .field("url", &shown_url(&self.url))
            .field("encoding", &self.encoding)
            .field("max_records", &self.max_records)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout.0)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// `scheme://host:port` of a URL: what messages may show of it.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or_default()
        ),
        Err(_) => "<not a URL>".to_string(),
    }
}

impl HttpSinkConfig {
    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<reqwest::Url, ConnectorError> {
        // The parse error is not shown with the text: the URL may hold a secret.
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| ConnectorError::config(format!("`url` is not a URL: {e}")).at("url"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(
                ConnectorError::config("`url`: the scheme must be http or https").at("url"),
            );
        }
        if url.host_str().is_none() {
            return Err(ConnectorError::config("`url` names no host").at("url"));
        }
        if self.max_records == 0 {
            return Err(
                ConnectorError::config("`max_records` must be at least 1").at("max_records")
            );
        }
        if self.max_attempts == 0 {
            return Err(
                ConnectorError::config("`max_attempts` must be at least 1").at("max_attempts")
            );
        }
        if self.timeout.0.is_zero() {
            return Err(ConnectorError::config("`timeout` must be above zero").at("timeout"));
        }
        if let Some(auth) = &self.auth {
            match (&auth.bearer, &auth.user, &auth.password) {
                (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                (Some(_), _, _) => {
                    return Err(ConnectorError::config(
                        "auth: `bearer` and `user`/`password` exclude each other",
                    )
                    .at("auth"));
                }
                _ => {
                    return Err(ConnectorError::config(
                        "auth: set `bearer`, or `user` and `password`",
                    )
                    .at("auth"));
                }
            }
        }
        for name in self.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(
                    ConnectorError::config(format!("{name:?} is not a valid header name"))
                        .at(format!("headers.{name}")),
                );
            }
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(ConnectorError::config(
                    "the value is not a valid header value (control characters?)",
                )
                .at(format!("headers.{name}")));
            }
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> HttpSinkConfig {
        let table: toml::Table = toml::from_str(src).unwrap();
        toml::Value::Table(table).try_into().unwrap()
    }

    #[test]
    fn defaults_and_checks() {
        let c = parse("url = 'https://hooks.example.com/services/T0/B0/secret'");
        assert_eq!(c.encoding, Encoding::Json);
        c.validate().unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret") && shown.contains("hooks.example.com:443"));
        let c = parse("url = 'ftp://x'");
        assert_eq!(c.validate().unwrap_err().field.as_deref(), Some("url"));
        let c = parse("url = 'http://x'\nauth = { bearer = 't', user = 'u' }");
        assert_eq!(c.validate().unwrap_err().field.as_deref(), Some("auth"));
        let c = parse("url = 'http://x'\nauth = { user = 'u' }");
        assert!(c.validate().is_err());
        let c = parse("url = 'http://x'\nheaders = { 'bad name' = 'v' }");
        assert_eq!(
            c.validate().unwrap_err().field.as_deref(),
            Some("headers.bad name")
        );
        let c = parse("url = 'http://x'\nencoding = 'ndjson'\nmax_records = 0");
        assert_eq!(
            c.validate().unwrap_err().field.as_deref(),
            Some("max_records")
        );
    }
}
