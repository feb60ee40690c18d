//! Credentials: the standard AWS chain unless the job names static keys, a profile or a role.

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use schemars::JsonSchema;
use serde::Deserialize;
use sluice_core::{ConnectorError, Secret};

/// `auth = { ... }`: how to sign requests. Empty (the default) uses the standard AWS chain:
/// environment (`AWS_ACCESS_KEY_ID`...), shared config and credentials files, SSO, web identity
/// (EKS), container and instance metadata (ECS, EC2). Write keys as `"${env:VAR}"`, never inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsAuth {
    /// Static access key id (with `secret_access_key`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Static secret access key (with `access_key_id`).
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary static credentials.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// A named profile of `~/.aws/config` instead of the default one.
    #[serde(default)]
    pub profile: Option<String>,
    /// ARN of a role to assume (through STS) with the credentials above or the chain's.
    #[serde(default)]
    pub assume_role: Option<String>,
    /// External id required by the role's trust policy (with `assume_role`).
    #[serde(default)]
    pub external_id: Option<Secret>,
}

impl AwsAuth {
    /// Checks that need no I/O; errors name `auth.<field>`.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => Err(ConnectorError::config(
                "`access_key_id` needs `secret_access_key`",
            )
            .at("auth.secret_access_key")),
            (None, Some(_)) => Err(ConnectorError::config(
                "`secret_access_key` needs `access_key_id`",
            )
            .at("auth.access_key_id")),
            (None, None) if self.session_token.is_some() => Err(ConnectorError::config(
                "`session_token` goes with `access_key_id` and `secret_access_key`",
            )
            .at("auth.session_token")),
            (Some(_), Some(_)) if self.profile.is_some() => Err(ConnectorError::config(
                "static keys and `profile` exclude each other",
            )
            .at("auth.profile")),
            _ if self.external_id.is_some() && self.assume_role.is_none() => {
                Err(ConnectorError::config("`external_id` needs `assume_role`")
                    .at("auth.external_id"))
            }
            _ => Ok(()),
        }
    }

    /// The static keys as a provider, when the job names them.
    pub(crate) fn static_credentials(&self) -> Option<Credentials> {
        let (id, secret) = (
            self.access_key_id.as_ref()?,
            self.secret_access_key.as_ref()?,
        );
        Some(Credentials::new(
            id,
            secret.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "sluice-job",
        ))
    }
}

/// `config` with its credentials replaced by those of `role`, assumed with the original ones.
pub(crate) async fn assume_role(
    config: SdkConfig,
    role: &str,
    external_id: Option<&str>,
) -> SdkConfig {
    let mut builder = AssumeRoleProvider::builder(role)
        .session_name("sluice")
        .configure(&config);
    if let Some(id) = external_id {
        builder = builder.external_id(id);
    }
    let provider = builder.build().await;
    config
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let auth = AwsAuth {
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("very-secret".into()),
            session_token: Some("tok-secret".into()),
            ..Default::default()
        };
        let shown = format!("{auth:?}");
        assert!(shown.contains("AKID"));
        assert!(!shown.contains("very-secret") && !shown.contains("tok-secret"));
    }

    #[test]
    fn half_a_key_pair_is_refused() {
        let auth = AwsAuth {
            access_key_id: Some("AKID".into()),
            ..Default::default()
        };
        let err = auth.validate().unwrap_err();
        assert_eq!(err.field.as_deref(), Some("auth.secret_access_key"));
    }
}
