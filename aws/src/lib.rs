//! The AWS connection every AWS connector shares (Kinesis, Firehose, S3, SNS, MSK IAM, OpenSearch
//! SigV4): where to connect ([`AwsConnection`]), which credentials to sign with ([`AwsAuth`]), and
//! how an SDK error maps to a [`ConnectorError`] ([`sdk_error`]), and SigV4 signing outside an
//! SDK client ([`sign`]: presigned URLs; [`LazyCredentials`]: a provider for clients built before
//! the job runs).
//!
//! Connector configs take `region` and `endpoint` as top-level keys and the credentials as an
//! `auth` table, as Vector's AWS sinks do, and turn them into one [`AwsConnection`].

mod auth;
mod error;
mod lazy;
pub mod sign;

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::{Builder, tls};
use aws_smithy_types::timeout::TimeoutConfig;
use sluice_core::ConnectorError;

pub use auth::AwsAuth;
/// The SDK configuration and credentials types, for connectors that sign outside an SDK client.
pub use aws_config::SdkConfig;
pub use aws_credential_types::Credentials;
pub use error::{error_code, sdk_error};
pub use lazy::LazyCredentials;

/// How long connecting to an AWS endpoint may take before the call fails (and is retried by the
/// runtime): an unreachable endpoint fails within seconds, not after the OS's TCP timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as whom a connector talks to AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsConnection {
    /// The region (`eu-west-1`); the standard chain (`AWS_REGION`, profile) when `None`.
    pub region: Option<String>,
    /// An endpoint URL instead of the service's own (emulators, VPC endpoints, S3-compatible
    /// stores).
    pub endpoint: Option<String>,
    /// The credentials.
    pub auth: AwsAuth,
}

impl AwsConnection {
    /// Checks that need no I/O; errors name the connector-level field (`endpoint`, `auth.…`).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConnectorError::config(format!(
                "endpoint {endpoint:?} is not an http:// or https:// URL"
            ))
            .at("endpoint"));
        }
        if let Some(region) = &self.region
            && region.trim().is_empty()
        {
            return Err(ConnectorError::config("`region` is empty").at("region"));
        }
        self.auth.validate()
    }

    /// The SDK configuration: region, endpoint, credentials provider, an HTTPS client over
    /// rustls, and a connect timeout. Each service client is built from it
    /// (`aws_sdk_kinesis::Client::new(&config)`).
    ///
    /// A region is required: from `region`, `AWS_REGION`/`AWS_DEFAULT_REGION` or the profile.
    pub async fn sdk_config(&self) -> Result<SdkConfig, ConnectorError> {
        self.validate()?;
        let http = Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            );
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(profile) = &self.auth.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(static_creds) = self.auth.static_credentials() {
            loader = loader.credentials_provider(static_creds);
        }
        let config = loader.load().await;
        let config = match &self.auth.assume_role {
            Some(role) => {
                auth::assume_role(
                    config,
                    role,
                    self.auth.external_id.as_ref().map(|i| i.expose()),
                )
                .await
            }
            None => config,
        };
        if config.region().is_none() {
            return Err(ConnectorError::config(
                "no AWS region: set `region`, or AWS_REGION in the environment",
            )
            .at("region"));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_must_be_a_url() {
        let conn = AwsConnection {
            endpoint: Some("localhost:4566".into()),
            ..Default::default()
        };
        let err = conn.validate().unwrap_err();
        assert_eq!(err.field.as_deref(), Some("endpoint"));
    }

    #[tokio::test]
    async fn region_and_endpoint_reach_the_sdk_config() {
        let conn = AwsConnection {
            region: Some("eu-north-1".into()),
            endpoint: Some("http://127.0.0.1:4566".into()),
            auth: AwsAuth {
                access_key_id: Some("AKIDEXAMPLE".into()),
                secret_access_key: Some("secret".into()),
                ..Default::default()
            },
        };
        let config = conn.sdk_config().await.unwrap();
        assert_eq!(config.region().unwrap().as_ref(), "eu-north-1");
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:4566"));
        let provider = config.credentials_provider().unwrap();
        use aws_credential_types::provider::ProvideCredentials;
        let creds = provider.provide_credentials().await.unwrap();
        assert_eq!(creds.access_key_id(), "AKIDEXAMPLE");
    }
}
