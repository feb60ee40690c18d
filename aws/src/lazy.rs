//! Credentials for clients that are built before the job runs (synchronously, with no I/O) but
//! sign every request: the connection's provider chain is loaded on the first request, once.

use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use tokio::sync::OnceCell;

use crate::AwsConnection;

/// A credentials provider over an [`AwsConnection`] whose SDK configuration (profile files, SSO,
/// an assumed role...) is loaded when credentials are first asked for, then kept; the loaded
/// provider refreshes expiring credentials itself.
pub struct LazyCredentials {
    connection: AwsConnection,
    loaded: OnceCell<SharedCredentialsProvider>,
}

impl LazyCredentials {
    /// A provider for `connection`'s credentials (no I/O until the first request).
    pub fn new(connection: AwsConnection) -> Self {
        Self {
            connection,
            loaded: OnceCell::new(),
        }
    }

    /// Wrapped for SDK-style clients.
    pub fn shared(connection: AwsConnection) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(Self::new(connection))
    }

    async fn provider(&self) -> Result<&SharedCredentialsProvider, CredentialsError> {
        self.loaded
            .get_or_try_init(|| async {
                let config = self
                    .connection
                    .sdk_config()
                    .await
                    .map_err(|e| CredentialsError::invalid_configuration(e.message))?;
                config.credentials_provider().ok_or_else(|| {
                    CredentialsError::not_loaded("no AWS credentials provider in the chain")
                })
            })
            .await
    }
}

/// Never prints the secrets (`AwsAuth`'s own `Debug` masks them).
impl fmt::Debug for LazyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyCredentials")
            .field("auth", &self.connection.auth)
            .field("loaded", &self.loaded.initialized())
            .finish()
    }
}

impl ProvideCredentials for LazyCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.provider().await?.provide_credentials().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AwsAuth;

    #[tokio::test]
    async fn loads_once_and_hands_out_the_configured_keys() {
        let lazy = LazyCredentials::new(AwsConnection {
            region: Some("eu-west-1".into()),
            endpoint: None,
            auth: AwsAuth {
                access_key_id: Some("AKIDLAZY".into()),
                secret_access_key: Some("very-secret".into()),
                ..Default::default()
            },
        });
        assert!(!format!("{lazy:?}").contains("very-secret"));
        let first = lazy.provide_credentials().await.unwrap();
        let second = lazy.provide_credentials().await.unwrap();
        assert_eq!(first.access_key_id(), "AKIDLAZY");
        assert_eq!(second.secret_access_key(), "very-secret");
        assert!(lazy.loaded.initialized());
    }

    #[tokio::test]
    async fn a_bad_connection_is_a_credentials_error_not_a_panic() {
        let lazy = LazyCredentials::new(AwsConnection {
            region: Some("eu-west-1".into()),
            endpoint: Some("not a url".into()),
            auth: AwsAuth::default(),
        });
        let err = lazy.provide_credentials().await.unwrap_err();
        assert!(
            format!("{err}").contains("invalid") || format!("{err:?}").contains("endpoint"),
            "{err:?}"
        );
    }
}
