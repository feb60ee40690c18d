//! Connecting: the driver's client made from a connection string, what the server is (`hello`),
//! and the connection string with its credentials blanked for logs and errors.

use std::time::Duration;

use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use sluice_core::ConnectorError;

use crate::error::mongo_error;

/// The connection string without its password (and user): `mongodb://***@host:27017/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // Credentials end at the last '@' before the first '/' (the host list cannot hold '@').
    let hosts_end = rest.find('/').unwrap_or(rest.len());
    match rest[..hosts_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// The host list of a connection string (no credentials, no path): `h1:27017,h2:27017`.
pub fn hosts(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hosts = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    hosts.rsplit_once('@').map_or(hosts, |(_, h)| h).to_string()
}

/// What `hello` says about the deployment.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The replica set's name, for a replica set member.
    pub set_name: Option<String>,
    /// A `mongos` router of a sharded cluster.
    pub sharded: bool,
    /// Highest wire version (8.0 = 25).
    pub max_wire_version: i32,
}

impl Topology {
    /// Multi-document transactions work (replica sets from 4.0, sharded clusters from 4.2).
    pub fn has_transactions(&self) -> bool {
        (self.set_name.is_some() && self.max_wire_version >= 7)
            || (self.sharded && self.max_wire_version >= 8)
    }

    /// The server has an oplog, so change streams work.
    pub fn has_change_streams(&self) -> bool {
        self.set_name.is_some() || self.sharded
    }

    /// For logs.
    pub fn describe(&self) -> String {
        match (&self.set_name, self.sharded) {
            (Some(set), _) => format!("replica set {set}"),
            (None, true) => "sharded cluster".into(),
            (None, false) => "standalone server".into(),
        }
    }
}

/// A client for `url`: connecting and selecting a server each give up after `timeout`, so an
/// unreachable server fails fast with the driver's cause.
pub async fn connect(
    url: &str,
    timeout: Duration,
    app: &str,
) -> Result<mongodb::Client, ConnectorError> {
    let shown = redact(url);
    let mut options = ClientOptions::parse(url).await.map_err(|e| {
        // The driver's parse errors may quote the string: say only what kind of problem it is.
        let what = match e.kind.as_ref() {
            mongodb::error::ErrorKind::InvalidArgument { .. } => "an invalid connection string",
            _ => "a connection string the driver cannot use",
        };
        ConnectorError::config(format!("{shown} is {what}: {}", scrub(&e.to_string(), url)))
            .at("url")
    })?;
    options.connect_timeout = Some(timeout);
    options.server_selection_timeout = Some(timeout);
    options.app_name.get_or_insert_with(|| app.to_string());
    mongodb::Client::with_options(options)
        .map_err(|e| mongo_error(&format!("connecting to {shown}"), &e))
}

/// Ask the server what it is.
pub async fn hello(client: &mongodb::Client, shown: &str) -> Result<Topology, ConnectorError> {
    let reply: Document = client
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .map_err(|e| mongo_error(&format!("hello to {shown}"), &e))?;
    Ok(Topology::from_hello(&reply))
}

impl Topology {
    /// What a `hello` reply says.
    pub fn from_hello(reply: &Document) -> Self {
        let max_wire_version = match reply.get("maxWireVersion") {
            Some(mongodb::bson::Bson::Int32(v)) => *v,
            Some(mongodb::bson::Bson::Int64(v)) => i32::try_from(*v).unwrap_or(i32::MAX),
            _ => 0,
        };
        Topology {
            set_name: reply.get_str("setName").ok().map(str::to_string),
            sharded: reply.get_str("msg").is_ok_and(|m| m == "isdbgrid"),
            max_wire_version,
        }
    }

    /// Exactly-once needs transactions: a config error at `guarantee` (the job's
    /// `delivery.guarantee`) when this server has none. `hosts` names the server.
    pub fn exactly_once(&self, hosts: &str) -> Result<(), ConnectorError> {
        if self.has_transactions() {
            return Ok(());
        }
        Err(ConnectorError::config(format!(
            "delivery.guarantee = \"exactly-once\" needs multi-document transactions, which {hosts} ({}) does not have: use a replica set (a one-node set will do) or guarantee = \"at-least-once\"",
            self.describe()
        ))
        .at("guarantee"))
    }
}

/// `text` with any occurrence of the URL's password removed.
pub fn scrub(text: &str, url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let creds = &rest[..rest.find('/').unwrap_or(rest.len())];
    match creds.rfind('@') {
        Some(at) => {
            let userinfo = &creds[..at];
            let mut out = text.replace(url, &redact(url));
            if !userinfo.is_empty() {
                out = out.replace(userinfo, "***");
                if let Some((_, password)) = userinfo.split_once(':')
                    && !password.is_empty()
                {
                    out = out.replace(password, "***");
                }
            }
            out
        }
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let url = "mongodb://app:s3cret@h1:27017,h2/db?authSource=admin";
        assert_eq!(redact(url), "mongodb://***@h1:27017,h2/db?authSource=admin");
        assert_eq!(hosts(url), "h1:27017,h2");
        assert_eq!(redact("mongodb://h:1/"), "mongodb://h:1/");
        assert_eq!(hosts("mongodb://h:1"), "h:1");
        let said = scrub("auth failed for app:s3cret (password s3cret)", url);
        assert!(!said.contains("s3cret"), "{said}");
    }

    /// The decision behind refusing exactly-once, from `hello` replies as servers give them
    /// (a standalone `mongod`, a replica set member, a `mongos`, a replica set too old for
    /// transactions). `tests/sink.rs` checks it against a real standalone server too.
    #[test]
    fn exactly_once_needs_a_replica_set_or_a_sharded_cluster() {
        let standalone = doc! { "isWritablePrimary": true, "maxWireVersion": 25, "ok": 1.0 };
        let set = doc! { "isWritablePrimary": true, "setName": "rs0", "maxWireVersion": 25i64 };
        let mongos = doc! { "isWritablePrimary": true, "msg": "isdbgrid", "maxWireVersion": 21 };
        let old_set = doc! { "ismaster": true, "setName": "rs0", "maxWireVersion": 6 };
        let e = Topology::from_hello(&standalone)
            .exactly_once("h:27017")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("guarantee"));
        assert!(
            e.message.contains("h:27017 (standalone server)") && e.message.contains("replica set"),
            "{}",
            e.message
        );
        assert!(Topology::from_hello(&set).exactly_once("h").is_ok());
        assert!(Topology::from_hello(&mongos).exactly_once("h").is_ok());
        assert!(Topology::from_hello(&old_set).exactly_once("h").is_err());
    }
}
