//! librdkafka client settings from a typed config: brokers, TLS, SASL, client id and extra
//! properties (minus the ones Sluice owns).

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use sluice_core::{BuildContext, ConnectorError};

use crate::config::{SaslConfig, TlsConfig};

/// The connection part of a source or sink config, borrowed from it.
pub(crate) struct Connection<'a> {
    pub brokers: &'a str,
    pub client_id: Option<&'a str>,
    pub tls: Option<&'a TlsConfig>,
    pub sasl: Option<&'a SaslConfig>,
    pub properties: &'a BTreeMap<String, String>,
}

/// Properties no user may set through `properties`: Sluice sets them from typed fields or needs
/// them to keep its delivery guarantees.
const ALWAYS_OWNED: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `brokers`"),
    ("metadata.broker.list", "set `brokers`"),
    ("client.id", "set `client_id`"),
    ("security.protocol", "use the `tls` and `sasl` tables"),
    ("sasl.mechanism", "use `sasl.mechanism`"),
    ("sasl.mechanisms", "use `sasl.mechanism`"),
    ("sasl.username", "use `sasl.username`"),
    ("sasl.password", "use `sasl.password`"),
    ("ssl.ca.location", "use `tls.ca_file`"),
    ("ssl.certificate.location", "use `tls.cert_file`"),
    ("ssl.key.location", "use `tls.key_file`"),
    ("ssl.key.password", "use `tls.key_password`"),
    (
        "transactional.id",
        "Sluice derives it per job and sink (sink `transactional_id`)",
    ),
];

/// What a librdkafka property reaches on the worker's machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Local {
    /// Its value is a path librdkafka reads or writes.
    File,
    /// It loads native code or runs a command (what, in words).
    Code(&'static str),
}

/// The librdkafka properties (2.12) that reach the local machine: the ones that load native
/// code or run a command, refused outright in jobs submitted through the worker's API, and the
/// ones naming files, which such jobs may only point under the worker's `--data-dir`. The
/// `ssl.ca/certificate/key.location` files are set through `tls` (see [`ALWAYS_OWNED`]) and
/// checked the same way. The operator's own job files may use all of them.
pub(crate) const LOCAL_PROPERTIES: &[(&str, Local)] = &[
    (
        "plugin.library.paths",
        Local::Code("loads shared libraries"),
    ),
    (
        "ssl.engine.location",
        Local::Code("loads an OpenSSL engine library"),
    ),
    (
        "ssl.engine.id",
        Local::Code("selects an OpenSSL engine to load"),
    ),
    (
        "ssl.providers",
        Local::Code("loads OpenSSL provider modules"),
    ),
    (
        "sasl.kerberos.kinit.cmd",
        Local::Code("runs a shell command"),
    ),
    ("ssl.crl.location", Local::File),
    ("ssl.keystore.location", Local::File),
    ("https.ca.location", Local::File),
    ("sasl.kerberos.keytab", Local::File),
    ("sasl.oauthbearer.assertion.file", Local::File),
    ("sasl.oauthbearer.assertion.private.key.file", Local::File),
    ("sasl.oauthbearer.assertion.jwt.template.file", Local::File),
    ("offset.store.path", Local::File),
];

impl Connection<'_> {
    /// Refuse, for a job confined by the worker, the TLS files and `properties` that reach
    /// outside its `--data-dir` or load code ([`LOCAL_PROPERTIES`]). Before anything opens
    /// them.
    pub fn allow_local(&self, ctx: &BuildContext) -> Result<(), ConnectorError> {
        if let Some(tls) = self.tls {
            for (field, file) in [
                ("tls.ca_file", &tls.ca_file),
                ("tls.cert_file", &tls.cert_file),
                ("tls.key_file", &tls.key_file),
            ] {
                if let Some(path) = file {
                    // librdkafka opens it as written.
                    ctx.allow_file(field, path)?;
                }
            }
        }
        for (key, value) in self.properties {
            let key = key.trim();
            match LOCAL_PROPERTIES.iter().find(|(k, _)| *k == key) {
                Some((_, Local::Code(what))) => {
                    ctx.allow_code("properties", &format!("properties.\"{key}\" {what}"))?;
                }
                Some((_, Local::File)) => {
                    for path in value
                        .split([';', ','])
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                    {
                        ctx.allow_file("properties", std::path::Path::new(path))?;
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    /// A librdkafka config with the connection settings, after checking that `properties` sets
    /// nothing Sluice owns (`owned`: the connector's own list, with the reason for each).
    pub fn client_config(&self, owned: &[(&str, &str)]) -> Result<ClientConfig, ConnectorError> {
        if self.brokers.trim().is_empty() {
            return Err(ConnectorError::config(
                "`brokers` is empty: give a comma-separated list of host:port",
            ));
        }
        for key in self.properties.keys() {
            let k = key.trim();
            if let Some((_, why)) = ALWAYS_OWNED.iter().chain(owned).find(|(o, _)| *o == k) {
                return Err(ConnectorError::config(format!(
                    "properties.\"{k}\" is managed by Sluice and cannot be set here: {why}"
                )));
            }
        }
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.trim());
        c.set("client.id", self.client_id.unwrap_or("sluice"));
        let protocol = match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some(tls) = self.tls {
            if let Some(p) = &tls.ca_file {
                c.set("ssl.ca.location", p.display().to_string());
            }
            if let Some(p) = &tls.cert_file {
                c.set("ssl.certificate.location", p.display().to_string());
            }
            if let Some(p) = &tls.key_file {
                c.set("ssl.key.location", p.display().to_string());
            }
            if let Some(p) = &tls.key_password {
                c.set("ssl.key.password", p.expose());
            }
            c.set(
                "ssl.endpoint.identification.algorithm",
                if tls.verify_hostname { "https" } else { "none" },
            );
        }
        if let Some(sasl) = self.sasl {
            sasl.validate()?;
            // aws-msk-iam is OAUTHBEARER with the token from the client's context
            // (`crate::msk::KafkaAuth`); the others take a user name and password.
            c.set("sasl.mechanism", sasl.mechanism.as_str());
            if let (Some(user), Some(password)) = (&sasl.username, &sasl.password) {
                c.set("sasl.username", user);
                c.set("sasl.password", password.expose());
            }
        }
        for (k, v) in self.properties {
            c.set(k.trim(), v);
        }
        Ok(c)
    }
}

/// Milliseconds of a duration, as librdkafka properties want them.
pub(crate) fn millis(d: std::time::Duration) -> String {
    d.as_millis().max(1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SaslMechanism;

    fn conn<'a>(props: &'a BTreeMap<String, String>) -> Connection<'a> {
        Connection {
            brokers: "127.0.0.1:9092",
            client_id: None,
            tls: None,
            sasl: None,
            properties: props,
        }
    }

    #[test]
    fn rejects_properties_sluice_owns_with_a_reason() {
        let mut props = BTreeMap::new();
        props.insert("transactional.id".to_string(), "x".to_string());
        let err = conn(&props).client_config(&[]).unwrap_err();
        assert!(err.message.contains("transactional.id"), "{}", err.message);
        assert!(err.message.contains("managed by Sluice"), "{}", err.message);

        let mut props = BTreeMap::new();
        props.insert("enable.auto.commit".to_string(), "true".to_string());
        let err = conn(&props)
            .client_config(&[("enable.auto.commit", "offsets are committed by Sluice")])
            .unwrap_err();
        assert!(
            err.message.contains("enable.auto.commit"),
            "{}",
            err.message
        );
    }

    #[test]
    fn derives_security_protocol_from_tls_and_sasl() {
        let props = BTreeMap::new();
        let tls = TlsConfig {
            verify_hostname: true,
            ..Default::default()
        };
        let sasl = SaslConfig {
            mechanism: SaslMechanism::ScramSha512,
            username: Some("u".into()),
            password: Some("p".into()),
            region: None,
            auth: Default::default(),
        };
        let c = Connection {
            tls: Some(&tls),
            sasl: Some(&sasl),
            ..conn(&props)
        }
        .client_config(&[])
        .unwrap();
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        let c = conn(&props).client_config(&[]).unwrap();
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
    }

    #[test]
    fn msk_iam_is_oauthbearer_without_a_password() {
        let props = BTreeMap::new();
        let sasl = SaslConfig {
            mechanism: SaslMechanism::AwsMskIam,
            username: None,
            password: None,
            region: Some("eu-west-1".into()),
            auth: Default::default(),
        };
        let c = Connection {
            sasl: Some(&sasl),
            ..conn(&props)
        }
        .client_config(&[])
        .unwrap();
        assert_eq!(c.get("sasl.mechanism"), Some("OAUTHBEARER"));
        assert_eq!(c.get("sasl.password"), None);
        let wrong = SaslConfig {
            username: Some("u".into()),
            ..sasl.clone()
        };
        let e = Connection {
            sasl: Some(&wrong),
            ..conn(&props)
        }
        .client_config(&[])
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("sasl.username"));
        let scram = SaslConfig {
            mechanism: SaslMechanism::ScramSha256,
            username: Some("u".into()),
            ..sasl
        };
        let e = Connection {
            sasl: Some(&scram),
            ..conn(&props)
        }
        .client_config(&[])
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("sasl.mechanism"));
    }
}
