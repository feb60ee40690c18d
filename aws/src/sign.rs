//! AWS Signature Version 4 for connectors that talk to AWS outside an SDK client: a presigned
//! URL (the MSK IAM token is one), on `aws-sigv4`, the SDK's own signer.
//!
//! Credentials come from the connection's provider ([`credentials`]), so static keys, profiles,
//! assumed roles and the instance/container chain all work, and expiring ones are refreshed by
//! the provider.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use sluice_core::ConnectorError;

/// The credentials of `config`'s provider now (refreshed by the provider when they expire).
pub async fn credentials(config: &SdkConfig) -> Result<Credentials, ConnectorError> {
    let provider = config.credentials_provider().ok_or_else(|| {
        ConnectorError::config("no AWS credentials provider: set `auth` or the standard chain")
            .at("auth")
    })?;
    provider.provide_credentials().await.map_err(|e| {
        ConnectorError::config(format!(
            "loading AWS credentials: {}",
            sluice_core::error::with_causes(&e)
        ))
        .at("auth")
        .with_source(e)
    })
}

fn signing_error(what: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::internal(format!("signing {what}: {e}"))
}

/// Percent-encoding of a query value as SigV4 (and botocore) write it: everything but
/// `A-Z a-z 0-9 - _ . ~`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A GET of `base` with the query `params` (name, unencoded value), presigned for `service` in
/// `region` at `time` and valid for `expires`. The URL's query is the operation parameters,
/// then the authentication ones with `X-Amz-Signature` last, as botocore writes it.
pub fn presign_get(
    base: &str,
    params: &[(&str, &str)],
    service: &str,
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
    expires: Duration,
) -> Result<String, ConnectorError> {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let unsigned = if query.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", query.join("&"))
    };
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let identity: Identity = credentials.clone().into();
    let signing = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| signing_error(base, e))?
        .into();
    let request = SignableRequest::new(
        "GET",
        unsigned.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| signing_error(base, e))?;
    let (instructions, _) = sign(request, &signing)
        .map_err(|e| signing_error(base, e))?
        .into_parts();
    let mut auth: Vec<(&str, Cow<'static, str>)> = instructions.params().to_vec();
    // botocore's order: the signature after everything it signs.
    auth.sort_by_key(|(k, _)| *k == "X-Amz-Signature");
    let mut url = unsigned;
    let mut sep = if query.is_empty() { '?' } else { '&' };
    for (k, v) in auth {
        url.push(sep);
        url.push_str(&format!("{}={}", encode(k), encode(&v)));
        sep = '&';
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    /// The order and encoding botocore writes; the signature itself is checked against AWS's
    /// reference signer in `connectors/kafka/tests/msk_iam.rs`.
    #[test]
    fn presigned_urls_put_the_signature_last() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let url = presign_get(
            "https://kafka.eu-west-1.amazonaws.com/",
            &[("Action", "kafka-cluster:Connect")],
            "kafka-cluster",
            "eu-west-1",
            &creds(Some("tok/en")),
            time,
            Duration::from_secs(900),
        )
        .unwrap();
        assert!(
            url.starts_with("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20231114%2Feu-west-1%2Fkafka-cluster%2Faws4_request&X-Amz-Date=20231114T221320Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok%2Fen&X-Amz-Signature="),
            "{url}"
        );
        let sig = url.rsplit("X-Amz-Signature=").next().unwrap();
        assert_eq!(sig.len(), 64);
    }
}
