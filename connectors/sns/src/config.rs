//! Typed configuration of the SNS sink (the config reference is generated from these).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use sluice_aws::{AwsAuth, AwsConnection};
use sluice_core::{ConnectorError, ValuePath};

/// Where a value (a subject, an attribute, a group id) comes from: exactly one of `field`,
/// `header` or `value`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pick {
    /// A field of the record's JSON value (`"alert.severity"`); a string, number or boolean.
    #[serde(default)]
    pub field: Option<ValuePath>,
    /// A header of the record (its bytes as UTF-8).
    #[serde(default)]
    pub header: Option<String>,
    /// A fixed value.
    #[serde(default)]
    pub value: Option<String>,
}

impl Pick {
    fn validate(&self, at: &str) -> Result<(), ConnectorError> {
        let set = [
            self.field.is_some(),
            self.header.is_some(),
            self.value.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(
                ConnectorError::config("set exactly one of `field`, `header` or `value`").at(at),
            );
        }
        Ok(())
    }
}

/// `type = "sns"` sink: each record's value is published as one SNS message.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnsSinkConfig {
    /// ARN of the topic (`arn:aws:sns:eu-west-1:123456789012:alerts`); a name ending in `.fifo`
    /// is a FIFO topic.
    pub topic_arn: String,
    /// AWS region; the standard chain (`AWS_REGION`, profile) when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint URL instead of SNS's own (emulators, VPC endpoints).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Credentials; the standard AWS chain when absent.
    #[serde(default)]
    pub auth: AwsAuth,
    /// The message subject (email subscriptions show it): `{ field = "title" }`,
    /// `{ header = "subject" }` or `{ value = "Sensor alert" }`. Cut to SNS's 100 characters,
    /// line breaks and control characters replaced by spaces; none when the field is missing.
    #[serde(default)]
    pub subject: Option<Pick>,
    /// Message attributes by name (`{ severity = { field = "level" } }`), what subscription
    /// filter policies match on: a number becomes a `Number` attribute, anything else a
    /// `String`; an attribute whose field or header is missing is left out.
    #[serde(default)]
    pub message_attributes: BTreeMap<String, Pick>,
    /// FIFO topics: the message group (messages of one group are delivered in order), e.g.
    /// `{ field = "device" }`; required for a FIFO topic, refused for a standard one. A record
    /// without it is dead-lettered. The deduplication id is derived from the job and the
    /// record's source position, so a record sent again after a crash is dropped by SNS (within
    /// its 5-minute deduplication window).
    #[serde(default)]
    pub message_group_id: Option<Pick>,
    /// Most messages published per second (a token bucket; bursts of at most one second's
    /// worth). Alerts after a `when` route can come in storms: this keeps a subscriber (a pager,
    /// an SMS bill) from being flooded. Unlimited when absent.
    #[serde(default)]
    pub max_per_second: Option<f64>,
}

impl SnsSinkConfig {
    /// Whether the topic is a FIFO topic (its name ends in `.fifo`).
    pub fn fifo(&self) -> bool {
        self.topic_arn.ends_with(".fifo")
    }

    /// The AWS connection of the sink.
    pub fn connection(&self) -> AwsConnection {
        AwsConnection {
            region: self.region.clone().or_else(|| self.arn_region()),
            endpoint: self.endpoint.clone(),
            auth: self.auth.clone(),
        }
    }

    /// The region named in the topic ARN.
    fn arn_region(&self) -> Option<String> {
        let region = self.topic_arn.split(':').nth(3)?;
        (!region.is_empty()).then(|| region.to_string())
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let parts: Vec<&str> = self.topic_arn.split(':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty() {
            return Err(ConnectorError::config(format!(
                "{:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                self.topic_arn
            ))
            .at("topic_arn"));
        }
        self.connection().validate()?;
        if let Some(s) = &self.subject {
            s.validate("subject")?;
        }
        if self.message_attributes.len() > 10 {
            return Err(ConnectorError::config(
                "SNS takes at most 10 message attributes per message",
            )
            .at("message_attributes"));
        }
        for (name, pick) in &self.message_attributes {
            let at = format!("message_attributes.{name}");
            pick.validate(&at)?;
            let ok_name = !name.is_empty()
                && name.len() <= 256
                && !name.starts_with('.')
                && !name.ends_with('.')
                && !name.contains("..")
                && !name.to_ascii_lowercase().starts_with("aws.")
                && !name.to_ascii_lowercase().starts_with("amazon.")
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok_name {
                return Err(ConnectorError::config(
                    "an attribute name is letters, digits, `_`, `-` and `.` (not at either end, not doubled), at most 256, not starting with `AWS.` or `Amazon.`",
                )
                .at(at));
            }
        }
        match (&self.message_group_id, self.fifo()) {
            (Some(g), true) => g.validate("message_group_id")?,
            (None, true) => {
                return Err(ConnectorError::config(
                    "a FIFO topic (.fifo) needs `message_group_id`, e.g. { field = \"device\" }",
                )
                .at("message_group_id"));
            }
            (Some(_), false) => {
                return Err(ConnectorError::config(
                    "`message_group_id` is for FIFO topics (a topic ARN ending in .fifo)",
                )
                .at("message_group_id"));
            }
            (None, false) => {}
        }
        if let Some(rate) = self.max_per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(
                ConnectorError::config("`max_per_second` must be above zero").at("max_per_second"),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> SnsSinkConfig {
        let table: toml::Table = toml::from_str(src).unwrap();
        toml::Value::Table(table).try_into().unwrap()
    }

    const ARN: &str = "topic_arn = 'arn:aws:sns:eu-west-1:123456789012:alerts'\n";
    const FIFO: &str = "topic_arn = 'arn:aws:sns:eu-west-1:123456789012:alerts.fifo'\n";

    #[test]
    fn the_region_comes_from_the_arn_unless_given() {
        let c = parse(ARN);
        c.validate().unwrap();
        assert!(!c.fifo());
        assert_eq!(c.connection().region.as_deref(), Some("eu-west-1"));
        let c = parse(&format!("{ARN}region = 'us-east-2'"));
        assert_eq!(c.connection().region.as_deref(), Some("us-east-2"));
        let c = parse("topic_arn = 'alerts'");
        assert_eq!(
            c.validate().unwrap_err().field.as_deref(),
            Some("topic_arn")
        );
    }

    #[test]
    fn fifo_topics_need_a_group_and_others_refuse_one() {
        let c = parse(FIFO);
        assert_eq!(
            c.validate().unwrap_err().field.as_deref(),
            Some("message_group_id")
        );
        parse(&format!("{FIFO}message_group_id = {{ field = 'device' }}"))
            .validate()
            .unwrap();
        let c = parse(&format!("{ARN}message_group_id = {{ value = 'g' }}"));
        assert!(c.validate().is_err());
    }

    #[test]
    fn picks_name_one_source_and_attribute_names_are_checked() {
        let c = parse(&format!("{ARN}subject = {{ field = 'a', header = 'b' }}"));
        assert_eq!(c.validate().unwrap_err().field.as_deref(), Some("subject"));
        let c = parse(&format!(
            "{ARN}message_attributes = {{ 'AWS.x' = {{ value = 'v' }} }}"
        ));
        assert_eq!(
            c.validate().unwrap_err().field.as_deref(),
            Some("message_attributes.AWS.x")
        );
        let c = parse(&format!("{ARN}max_per_second = 0.0"));
        assert!(c.validate().is_err());
    }
}
