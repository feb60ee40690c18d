//! Typed configuration of the Firehose sink (the config reference is generated from these).

use schemars::JsonSchema;
use serde::Deserialize;
use sluice_aws::{AwsAuth, AwsConnection};
use sluice_core::ConnectorError;

/// `type = "firehose"` sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirehoseSinkConfig {
    /// The delivery stream's name (it must exist).
    pub stream: String,
    /// The region (`eu-west-1`); the standard chain (`AWS_REGION`, profile) when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint URL instead of AWS's (emulators, VPC endpoints).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Credentials; the standard AWS chain when absent.
    #[serde(default)]
    pub auth: AwsAuth,
    /// End every record with a newline (`\n`), so that the objects Firehose writes to S3 are
    /// JSON lines. Default true; false sends values as they are.
    #[serde(default = "default_true")]
    pub newline: bool,
}

fn default_true() -> bool {
    true
}

impl FirehoseSinkConfig {
    /// The AWS connection of this sink.
    pub fn connection(&self) -> AwsConnection {
        AwsConnection {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            auth: self.auth.clone(),
        }
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.connection().validate()?;
        let n = self.stream.len();
        if n == 0
            || n > 64
            || !self
                .stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(ConnectorError::config(format!(
                "stream {:?} is not a delivery stream name (1-64 of a-z A-Z 0-9 _ . -)",
                self.stream
            ))
            .at("stream"));
        }
        Ok(())
    }
}
