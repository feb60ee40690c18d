//! The HTTP side: the `opensearch` client over every configured node, the version check at
//! open, and one `_bulk` request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use opensearch::OpenSearch;
use opensearch::auth::Credentials;
use opensearch::cert::{Certificate, CertificateValidation};
use opensearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use opensearch::http::transport::{Connection, ConnectionPool, TransportBuilder};
use opensearch::http::{Method, StatusCode, Url};
use sluice_core::{BuildContext, ConnectorError};

use crate::config::OpenSearchSinkConfig;
use crate::error::{request_error, status_error};

/// The nodes, taken in turn: each request goes to the next one.
#[derive(Clone, Debug)]
struct RoundRobin {
    nodes: Arc<Vec<Connection>>,
    next: Arc<AtomicUsize>,
}

impl ConnectionPool for RoundRobin {
    fn next(&self) -> Connection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.nodes.len();
        self.nodes[i].clone()
    }
}

/// A client of the configured cluster.
#[derive(Clone, Debug)]
pub struct Client {
    client: OpenSearch,
    nodes: usize,
    timeout: Duration,
    /// `host:port,...` (sorted), for messages: never credentials.
    hosts: String,
    /// The SigV4 credentials (`aws`), checked once at open.
    aws_credentials: Option<SharedCredentialsProvider>,
}

/// The nodes' `host:port`, sorted and joined by commas; `Err` names a bad URL.
pub fn parse_urls(urls: &[String]) -> Result<(Vec<Url>, String), ConnectorError> {
    let mut parsed = Vec::new();
    let mut hosts = Vec::new();
    for (i, text) in urls.iter().enumerate() {
        let at = if urls.len() == 1 {
            "url".to_string()
        } else {
            format!("url[{i}]")
        };
        let url = Url::parse(text).map_err(|e| {
            ConnectorError::config(format!("{text:?} is not a URL: {e}")).at(at.clone())
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConnectorError::config(format!(
                "{text:?}: the scheme must be http or https"
            ))
            .at(at));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConnectorError::config(
                "credentials in a node URL would be logged: move them to `auth`",
            )
            .at(at));
        }
        let Some(host) = url.host_str() else {
            return Err(ConnectorError::config(format!("{text:?} names no host")).at(at));
        };
        let port = url.port_or_known_default().unwrap_or(9200);
        hosts.push(format!("{host}:{port}"));
        parsed.push(url);
    }
    hosts.sort();
    hosts.dedup();
    Ok((parsed, hosts.join(",")))
}

impl Client {
    /// Make the client (no I/O): URLs, credentials and the CA file are checked here.
    pub fn new(config: &OpenSearchSinkConfig, ctx: &BuildContext) -> Result<Self, ConnectorError> {
        let (urls, hosts) = parse_urls(&config.url.0)?;
        let nodes: Vec<Connection> = urls.into_iter().map(Connection::new).collect();
        let count = nodes.len();
        let pool = RoundRobin {
            nodes: Arc::new(nodes),
            next: Arc::new(AtomicUsize::new(0)),
        };
        let mut builder = TransportBuilder::new(pool).timeout(config.request_timeout.0);
        if let Some(auth) = &config.auth {
            let credentials = match (&auth.user, &auth.password, &auth.token) {
                (Some(u), Some(p), None) => Credentials::Basic(u.clone(), p.expose().to_string()),
                (None, None, Some(t)) => Credentials::Bearer(t.expose().to_string()),
                _ => {
                    return Err(ConnectorError::config(
                        "auth: set `user` and `password`, or `token`",
                    )
                    .at("auth"));
                }
            };
            builder = builder.auth(credentials);
        }
        let mut aws_credentials = None;
        if let Some(aws) = &config.aws {
            // The chain (profile files, SSO, roles) is loaded on the first request, in `open`.
            let credentials = sluice_aws::LazyCredentials::shared(aws.connection()?);
            let region = aws_types::region::Region::new(aws.region()?);
            builder = builder
                .auth(Credentials::AwsSigV4(credentials.clone(), region))
                .service_name(aws.service.as_str());
            aws_credentials = Some(credentials);
        }
        if let Some(ca) = config.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            let path = ctx.local_file("tls.ca_file", ca)?;
            let pem = std::fs::read(&path).map_err(|e| {
                ConnectorError::config(format!("tls.ca_file {}: {e}", path.display()))
                    .at("tls.ca_file")
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                ConnectorError::config(format!(
                    "tls.ca_file {}: not a PEM certificate: {e}",
                    path.display()
                ))
                .at("tls.ca_file")
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder.build().map_err(|e| {
            ConnectorError::config(format!("making the OpenSearch client: {e}")).caused_by(&e)
        })?;
        Ok(Self {
            client: OpenSearch::new(transport),
            nodes: count,
            timeout: config.request_timeout.0,
            hosts,
            aws_credentials,
        })
    }

    /// `host:port,...` of the nodes.
    pub fn hosts(&self) -> &str {
        &self.hosts
    }

    /// Send a request; on a failure to reach a node, the next node gets it (each node once).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), ConnectorError> {
        let what = format!("{} {path} on {}", method_name(method), self.hosts);
        let mut last = None;
        for _ in 0..self.nodes {
            let mut headers = HeaderMap::new();
            if body.is_some() {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                );
            }
            let sent = self
                .client
                .send(
                    method,
                    path,
                    headers,
                    None::<&()>,
                    body.clone(),
                    Some(timeout),
                )
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status_code();
                    let bytes = response
                        .bytes()
                        .await
                        .map_err(|e| request_error(&what, &e))?;
                    return Ok((status, bytes));
                }
                Err(e) => last = Some(request_error(&what, &e)),
            }
        }
        Err(last.unwrap_or_else(|| ConnectorError::internal(format!("{what}: no node"))))
    }

    /// `GET /` on the nodes until one answers: the cluster must be OpenSearch 1.x–3.x, or
    /// Elasticsearch 7.10 (what OpenSearch forked from, and what it reports in compatibility
    /// mode). Within 10 s (less than `request_timeout` when that is shorter).
    pub async fn check_version(&self) -> Result<String, ConnectorError> {
        if let Some(provider) = &self.aws_credentials {
            // A missing profile or a refused role is the job's fault, said once here, rather
            // than a request failure retried forever.
            provider.provide_credentials().await.map_err(|e| {
                ConnectorError::config(format!(
                    "loading the AWS credentials to sign requests with: {}",
                    sluice_core::error::with_causes(&e)
                ))
                .at("aws.auth")
            })?;
        }
        let timeout = self.timeout.min(Duration::from_secs(10));
        let (status, body) = self.send(Method::Get, "/", None, timeout).await?;
        let what = format!("GET / on {}", self.hosts);
        if !status.is_success() {
            return Err(status_error(&what, status, &body));
        }
        let info: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            ConnectorError::external(format!(
                "{what}: the answer is not JSON ({e}): is this an OpenSearch node?"
            ))
        })?;
        let number = info["version"]["number"].as_str().unwrap_or_default();
        let distribution = info["version"]["distribution"]
            .as_str()
            .unwrap_or("elasticsearch");
        supported(distribution, number)
            .map_err(|why| ConnectorError::config(format!("{what}: {why}")).at("url"))?;
        Ok(format!("{distribution} {number}"))
    }

    /// POST one `_bulk` body: the HTTP status and the response body.
    pub async fn bulk(&self, body: Bytes) -> Result<(StatusCode, Bytes), ConnectorError> {
        self.send(Method::Post, "/_bulk", Some(body), self.timeout)
            .await
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

/// Whether a cluster reporting `distribution` and version `number` is one this sink can write to.
pub fn supported(distribution: &str, number: &str) -> Result<(), String> {
    let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    let ok = matches!(
        (distribution, major, minor),
        ("opensearch", Some(1..=3), _) | ("elasticsearch", Some(7), Some(10))
    );
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the cluster reports {distribution} {number:?}; this sink writes to OpenSearch 1.x–3.x or Elasticsearch 7.10"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(supported("opensearch", "3.8.0").is_ok());
        assert!(supported("opensearch", "1.0.0").is_ok());
        assert!(supported("elasticsearch", "7.10.2").is_ok());
        assert!(supported("elasticsearch", "8.11.0").is_err());
        assert!(supported("opensearch", "4.0.0").is_err());
        assert!(supported("elasticsearch", "").is_err());
    }

    #[test]
    fn urls_are_checked_and_hosts_named_without_credentials() {
        let (_, hosts) = parse_urls(&["https://b:9201".into(), "http://a".into()]).unwrap();
        assert_eq!(hosts, "a:80,b:9201");
        let e = parse_urls(&["http://u:p@a:9200".into()]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("url"));
        assert!(!e.message.contains(":p@"));
        let e = parse_urls(&["a:9200".into(), "ftp://x".into()]).unwrap_err();
        assert!(
            e.field.as_deref().is_some_and(|f| f.starts_with("url[")),
            "{e:?}"
        );
    }
}
