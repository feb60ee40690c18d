//! Amazon MSK IAM authentication: SASL/OAUTHBEARER whose token is a SigV4-presigned
//! `kafka-cluster:Connect` URL, as AWS's signer libraries make it
//! (`aws-msk-iam-sasl-signer-python`, `-go`, `-js`):
//!
//! 1. `https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect`, presigned for the
//!    service `kafka-cluster` in the region, valid 900 s ([`sluice_aws::sign::presign_get`]);
//! 2. a `User-Agent` parameter appended (not signed);
//! 3. the URL base64url-encoded without padding: the token. Its lifetime is the signing time
//!    plus 900 s.
//!
//! librdkafka asks for a token through the OAUTHBEARER refresh callback when a client starts
//! and again at 80 % of the token's lifetime ([`KafkaAuth::generate_oauth_token`]); each time
//! the credentials come from the connection's provider, so expiring ones (an instance role, an
//! assumed role) are renewed too.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use parking_lot::Mutex;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::consumer::ConsumerContext;
use sluice_aws::{AwsConnection, Credentials, SdkConfig};
use sluice_core::ConnectorError;

use crate::config::{SaslConfig, SaslMechanism};

/// How long a token is valid (what AWS's signers use).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The `User-Agent` parameter of the token.
pub const USER_AGENT: &str = concat!("sluice/", env!("CARGO_PKG_VERSION"));
/// Credentials closer to their expiry than this are fetched again before signing.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// The presigned `kafka-cluster:Connect` URL for `region`, signed at `time`.
pub fn signed_url(
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<String, ConnectorError> {
    let base = format!("https://kafka.{region}.amazonaws.com/");
    let mut url = sluice_aws::sign::presign_get(
        &base,
        &[("Action", "kafka-cluster:Connect")],
        "kafka-cluster",
        region,
        credentials,
        time,
        TOKEN_LIFETIME,
    )?;
    url.push_str("&User-Agent=");
    url.push_str(&sluice_aws::sign::encode(USER_AGENT));
    Ok(url)
}

/// The token for `region` signed at `time`, and when it expires (milliseconds since the epoch).
pub fn token(
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<(String, i64), ConnectorError> {
    let url = signed_url(region, credentials, time)?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_bytes());
    // The signature's time has whole seconds: the expiry counts from there, as AWS's signers do.
    let signed_secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let expiry_ms = (signed_secs + TOKEN_LIFETIME.as_secs()) as i64 * 1000;
    Ok((token, expiry_ms))
}

/// What signs MSK IAM tokens for one client: the region and the credentials provider.
pub struct MskIam {
    region: String,
    config: SdkConfig,
    runtime: tokio::runtime::Handle,
    cached: Mutex<Option<Credentials>>,
}

impl MskIam {
    /// From `sasl = { mechanism = "aws-msk-iam", region, auth }`: loads the AWS configuration
    /// (must run inside the Tokio runtime the client lives in).
    pub async fn new(connection: &AwsConnection) -> Result<Self, ConnectorError> {
        let config = connection.sdk_config().await.map_err(|e| ConnectorError {
            field: e.field.as_ref().map(|f| format!("sasl.{f}")),
            ..e
        })?;
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| ConnectorError::config("no AWS region").at("sasl.region"))?;
        let me = Self {
            region,
            config,
            runtime: tokio::runtime::Handle::current(),
            cached: Mutex::new(None),
        };
        // Fail at open, with the real cause, when no credentials can be found.
        let creds = sluice_aws::sign::credentials(&me.config).await?;
        *me.cached.lock() = Some(creds);
        Ok(me)
    }

    /// The region tokens are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Credentials to sign with: the cached ones unless they expire soon, else fresh ones from
    /// the provider. librdkafka calls this from a thread that may be a Tokio worker (the
    /// consumer is polled from async code), where blocking on the runtime is not allowed: the
    /// provider runs on a helper thread instead (a few times an hour at most).
    fn credentials(&self) -> Result<Credentials, ConnectorError> {
        if let Some(c) = self.cached.lock().as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|at| at > SystemTime::now() + CREDENTIALS_MARGIN);
            if fresh {
                return Ok(c.clone());
            }
        }
        let config = &self.config;
        let runtime = &self.runtime;
        let creds = std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(sluice_aws::sign::credentials(config)))
                .join()
                .unwrap_or_else(|_| {
                    Err(ConnectorError::internal("loading AWS credentials panicked"))
                })
        })?;
        *self.cached.lock() = Some(creds.clone());
        Ok(creds)
    }

    /// A fresh token, signed now.
    pub fn token(&self) -> Result<OAuthToken, ConnectorError> {
        let creds = self.credentials()?;
        let (token, lifetime_ms) = token(&self.region, &creds, SystemTime::now())?;
        Ok(OAuthToken {
            token,
            // MSK takes the identity from the signature; librdkafka wants a non-empty name.
            principal_name: "aws-msk-iam".into(),
            lifetime_ms,
        })
    }
}

/// The librdkafka context of Sluice's Kafka clients other than the source consumer: the MSK IAM
/// token callback when `sasl.mechanism = "aws-msk-iam"`, librdkafka's defaults otherwise.
#[derive(Clone, Default)]
pub struct KafkaAuth {
    /// The token signer, with MSK IAM.
    pub msk: Option<Arc<MskIam>>,
}

impl KafkaAuth {
    /// The context for a client with `sasl`: a token signer with `aws-msk-iam` (loading the AWS
    /// configuration and checking credentials can be found), none otherwise.
    pub async fn for_sasl(sasl: Option<&SaslConfig>) -> Result<Self, ConnectorError> {
        match sasl {
            Some(s) if s.mechanism == SaslMechanism::AwsMskIam => Ok(Self {
                msk: Some(Arc::new(MskIam::new(&s.connection()).await?)),
            }),
            _ => Ok(Self::default()),
        }
    }

    /// A token for librdkafka's OAUTHBEARER refresh callback.
    pub fn oauth_token(&self) -> Result<OAuthToken, Box<dyn Error>> {
        let Some(msk) = &self.msk else {
            return Err("OAUTHBEARER needs sasl.mechanism = \"aws-msk-iam\"".into());
        };
        match msk.token() {
            Ok(t) => {
                tracing::debug!(
                    region = msk.region(),
                    expires_ms = t.lifetime_ms,
                    "MSK IAM token signed."
                );
                Ok(t)
            }
            Err(e) => {
                tracing::warn!(error = %e, "Signing an MSK IAM token failed; librdkafka will ask again.");
                Err(e.message.into())
            }
        }
    }
}

impl ClientContext for KafkaAuth {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn Error>> {
        self.oauth_token()
    }
}

impl ConsumerContext for KafkaAuth {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_the_unpadded_base64url_of_the_signed_url() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let (tok, expiry) = token("eu-west-1", &creds, time).unwrap();
        assert!(!tok.contains('=') && !tok.contains('+') && !tok.contains('/'));
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&tok)
                .unwrap(),
        )
        .unwrap();
        assert!(url.starts_with(
            "https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&"
        ));
        assert!(
            url.ends_with(&format!(
                "&User-Agent=sluice%2F{}",
                env!("CARGO_PKG_VERSION")
            )),
            "{url}"
        );
        assert_eq!(expiry, (1_700_000_000 + 900) * 1000);
    }
}
