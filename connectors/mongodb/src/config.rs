//! Typed configuration of the MongoDB sink and source (the config reference is generated from
//! these doc comments).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use sluice_core::{ConnectorError, HumanDuration, ValuePath};

/// A connection string, kept out of `Debug` output (it may hold a password).
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Url(pub String);

impl Url {
    /// Refuse, for a job confined by the worker, the local files the connection string names
    /// (`tlsCAFile`, `tlsCertificateKeyFile`, a Unix socket host) outside its `--data-dir`.
    pub(crate) fn allow_local(
        &self,
        ctx: &sluice_core::BuildContext,
    ) -> Result<(), ConnectorError> {
        let (head, query) = self.0.split_once('?').unwrap_or((self.0.as_str(), ""));
        let hosts = head
            .split_once("://")
            .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, h)| h))
            .map(|rest| rest.split('/').next().unwrap_or(""))
            .unwrap_or("");
        for host in hosts.split(',') {
            let host = sluice_core::local::percent_decode(host);
            if host.starts_with('/') {
                ctx.allow_file("url", std::path::Path::new(&host))?;
            }
        }
        for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            if ["tlscafile", "tlscertificatekeyfile"].contains(&key.to_ascii_lowercase().as_str()) {
                let path = sluice_core::local::percent_decode(value);
                ctx.allow_file("url", std::path::Path::new(&path))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::client::redact(&self.0))
    }
}

/// How each record is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Insert a new document; one whose `_id` exists is a duplicate key error (rejected, or
    /// counted as written with `ignore_duplicates`).
    #[default]
    Insert,
    /// Set the record's fields on the document matching `key` (or `id`), inserting it when
    /// missing (`$set` with `upsert`); fields the record lacks are kept.
    Upsert,
    /// Replace the whole document matching `key` (or `id`), inserting it when missing.
    Replace,
    /// Delete the document matching `key` (or `id`); the rest of the value is not read.
    Delete,
}

impl WriteMode {
    /// The name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Insert => "insert",
            WriteMode::Upsert => "upsert",
            WriteMode::Replace => "replace",
            WriteMode::Delete => "delete",
        }
    }
}

fn default_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}

fn default_checkpoints() -> String {
    "_sluice_checkpoints".into()
}

/// `type = "mongodb"` sink.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MongoSinkConfig {
    /// Connection string, `"mongodb://host:27017"`; put credentials in through
    /// `"${env:MONGODB_URL}"`. They are never logged nor shown in errors. `mongodb+srv://` is not
    /// supported (no DNS SRV resolver is built in).
    pub url: Url,
    /// Database to write into.
    pub database: String,
    /// Fixed target collection. Exactly one of `collection`, `collection_field` and
    /// `collection_header` is set.
    #[serde(default)]
    pub collection: Option<String>,
    /// Field path of the record whose value (a string) names the target collection.
    #[serde(default)]
    pub collection_field: Option<ValuePath>,
    /// Record header whose value (UTF-8) names the target collection.
    #[serde(default)]
    pub collection_header: Option<String>,
    /// `"insert"` (default), `"upsert"`, `"replace"` or `"delete"`; the last three match the
    /// document by `key` or `id`.
    #[serde(default)]
    pub mode: WriteMode,
    /// Field paths that identify a document (`["device", "site.id"]`): the filter of upsert,
    /// replace and delete. Not with `insert`.
    #[serde(default)]
    pub key: Vec<ValuePath>,
    /// Field path whose value becomes the document's `_id` (and, without `key`, the filter of
    /// upsert, replace and delete). Default: the server assigns an ObjectId.
    #[serde(default)]
    pub id: Option<ValuePath>,
    /// With `mode = "insert"`: count a duplicate key error as written instead of rejecting the
    /// record to the dead-letter sink.
    #[serde(default)]
    pub ignore_duplicates: bool,
    /// Field paths holding ISO 8601 / RFC 3339 timestamps (`"2026-01-02T03:04:05Z"`) to store
    /// as BSON dates; a value that is not such a string rejects the record.
    #[serde(default)]
    pub dates: Vec<ValuePath>,
    /// Collection (in `database`) holding the exactly-once checkpoint of each job and sink.
    #[serde(default = "default_checkpoints")]
    pub checkpoints_collection: String,
    /// Longest wait to connect and to find a usable server before an operation fails (and is
    /// retried with backoff).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

impl MongoSinkConfig {
    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        check_url(&self.url.0)?;
        check_name(&self.database, "database")?;
        let routes = [
            self.collection.is_some(),
            self.collection_field.is_some(),
            self.collection_header.is_some(),
        ];
        if routes.iter().filter(|set| **set).count() != 1 {
            return Err(ConnectorError::config(
                "set exactly one of `collection`, `collection_field` and `collection_header`",
            )
            .at("collection"));
        }
        if let Some(c) = &self.collection {
            check_name(c, "collection")?;
        }
        check_name(&self.checkpoints_collection, "checkpoints_collection")?;
        match self.mode {
            WriteMode::Insert if !self.key.is_empty() => {
                return Err(ConnectorError::config(
                    "`key` matches documents for upsert, replace and delete; with mode = \"insert\" use `id` for the _id",
                )
                .at("key"));
            }
            WriteMode::Upsert | WriteMode::Replace | WriteMode::Delete
                if self.key.is_empty() && self.id.is_none() =>
            {
                return Err(ConnectorError::config(format!(
                    "mode = \"{}\" needs `key` (fields that identify a document) or `id`",
                    self.mode.as_str()
                ))
                .at("key"));
            }
            _ => {}
        }
        if self.ignore_duplicates && self.mode != WriteMode::Insert {
            return Err(ConnectorError::config(
                "`ignore_duplicates` only applies to mode = \"insert\"",
            )
            .at("ignore_duplicates"));
        }
        if self.timeout.0.is_zero() {
            return Err(ConnectorError::config("`timeout` must be above zero").at("timeout"));
        }
        Ok(())
    }
}

/// Where the change stream starts when there is no stored position: `"now"` or
/// `{ at_operation_time = ... }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// `"now"`: changes made after the source starts.
    #[default]
    Now,
    /// `{ at_operation_time = 1767225600 }`: changes from this cluster time on.
    At(OperationTime),
}

/// A cluster time: `seconds` since the Unix epoch and the `increment` of an operation within
/// that second. Written as seconds (`1767225600`) or `"seconds.increment"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationTime {
    /// Seconds since the Unix epoch.
    pub seconds: u32,
    /// Ordinal of the operation within that second.
    pub increment: u32,
}

impl OperationTime {
    fn parse(text: &str) -> Option<Self> {
        let (s, i) = text.split_once('.').unwrap_or((text, "0"));
        Some(Self {
            seconds: s.parse().ok()?,
            increment: i.parse().ok()?,
        })
    }
}

impl<'de> Deserialize<'de> for StartFrom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StartFrom;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"now\" or { at_operation_time = <seconds or \"seconds.increment\"> }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StartFrom, E> {
                if v == "now" {
                    Ok(StartFrom::Now)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StartFrom, A::Error> {
                let mut at = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "at_operation_time" {
                        return Err(de::Error::unknown_field(&key, &["at_operation_time"]));
                    }
                    at = Some(map.next_value::<OperationTime>()?);
                }
                at.map(StartFrom::At)
                    .ok_or_else(|| de::Error::missing_field("at_operation_time"))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for OperationTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OperationTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("seconds since the epoch or \"seconds.increment\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OperationTime, E> {
                u32::try_from(v)
                    .map(|seconds| OperationTime {
                        seconds,
                        increment: 0,
                    })
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OperationTime, E> {
                u32::try_from(v)
                    .map(|seconds| OperationTime {
                        seconds,
                        increment: 0,
                    })
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OperationTime, E> {
                OperationTime::parse(v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for StartFrom {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "StartFrom".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "const": "now" },
                {
                    "type": "object",
                    "properties": {
                        "at_operation_time": {
                            "anyOf": [
                                { "type": "integer", "minimum": 0 },
                                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$" }
                            ]
                        }
                    },
                    "required": ["at_operation_time"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// What a change event's record carries for an update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FullDocument {
    /// Only the change description (`updateDescription`); the value's `fullDocument` is absent.
    #[default]
    #[serde(rename = "default")]
    Default,
    /// Look the current document up for updates (it may be newer than the change).
    #[serde(rename = "updateLookup")]
    UpdateLookup,
    /// The post-image when the collection records them, otherwise none.
    #[serde(rename = "whenAvailable")]
    WhenAvailable,
}

/// What a record's value holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// The whole change event.
    #[default]
    Event,
    /// The document (`fullDocument`), or the `documentKey` when there is none (a delete).
    Document,
}

fn default_batch() -> usize {
    500
}

/// `type = "mongodb"` source: a change stream.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MongoSourceConfig {
    /// Connection string, `"mongodb://host:27017"` (see the sink's `url`). The server must be a
    /// replica set or a sharded cluster: change streams need an oplog.
    pub url: Url,
    /// Database to watch; without it, the whole deployment.
    #[serde(default)]
    pub database: Option<String>,
    /// Collection to watch (needs `database`); without it, every collection of `database`.
    #[serde(default)]
    pub collection: Option<String>,
    /// Aggregation stages after `$changeStream`, as a JSON array string:
    /// `'[{"$match": {"operationType": "insert"}}]'`.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// `"updateLookup"` or `"whenAvailable"` to carry the document after an update; default:
    /// only the change.
    #[serde(default)]
    pub full_document: FullDocument,
    /// Where to start without a stored position: `"now"` (default) or
    /// `{ at_operation_time = <seconds> }`.
    #[serde(default)]
    pub start_from: StartFrom,
    /// `"event"` (default): the record is the whole change event; `"document"`: the document
    /// after the change (`fullDocument`), or the `documentKey` of a delete.
    #[serde(default)]
    pub output: Output,
    /// Read the collection first (each document as an `insert`-like `snapshot` event), then
    /// continue with the changes made since the read began, without a gap or a duplicate.
    /// Needs `collection`.
    #[serde(default)]
    pub snapshot: bool,
    /// Most events per batch.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Longest wait to connect and to find a usable server.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

impl MongoSourceConfig {
    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        check_url(&self.url.0)?;
        if let Some(db) = &self.database {
            check_name(db, "database")?;
        }
        if let Some(c) = &self.collection {
            check_name(c, "collection")?;
            if self.database.is_none() {
                return Err(
                    ConnectorError::config("`collection` needs `database`").at("collection")
                );
            }
        }
        if self.snapshot && self.collection.is_none() {
            return Err(ConnectorError::config(
                "`snapshot` reads one collection: set `database` and `collection`",
            )
            .at("snapshot"));
        }
        if let Some(p) = &self.pipeline {
            crate::bson_map::pipeline(p).map_err(|e| ConnectorError::config(e).at("pipeline"))?;
        }
        if self.batch == 0 {
            return Err(ConnectorError::config("`batch` must be at least 1").at("batch"));
        }
        if self.timeout.0.is_zero() {
            return Err(ConnectorError::config("`timeout` must be above zero").at("timeout"));
        }
        Ok(())
    }
}

fn check_url(url: &str) -> Result<(), ConnectorError> {
    if url.starts_with("mongodb+srv://") {
        return Err(ConnectorError::config(
            "mongodb+srv:// URLs are not supported (no DNS SRV resolver is built in): list the hosts, mongodb://h1,h2,h3/",
        )
        .at("url"));
    }
    if !url.starts_with("mongodb://") {
        return Err(ConnectorError::config(
            "`url` must start with mongodb:// (e.g. mongodb://localhost:27017)",
        )
        .at("url"));
    }
    Ok(())
}

fn check_name(name: &str, field: &str) -> Result<(), ConnectorError> {
    if name.is_empty()
        || name.contains(['\0', '$'])
        || (field != "collection" && name.contains(['/', '\\', '.', ' ', '"']))
    {
        return Err(
            ConnectorError::config(format!("`{field}` {name:?} is not a valid name")).at(field),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(src: &str) -> MongoSinkConfig {
        let table: toml::Table = toml::from_str(src).unwrap();
        toml::Value::Table(table).try_into().unwrap()
    }

    #[test]
    fn modes_need_their_keys() {
        let base = "url = 'mongodb://h'\ndatabase = 'd'\ncollection = 'c'\n";
        sink(base).validate().unwrap();
        let e = sink(&format!("{base}mode = 'upsert'"))
            .validate()
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("key"));
        sink(&format!("{base}mode = 'delete'\nid = 'n'"))
            .validate()
            .unwrap();
        let e = sink(&format!("{base}key = ['a']")).validate().unwrap_err();
        assert_eq!(e.field.as_deref(), Some("key"));
        let e = sink(&format!("{base}collection_field = 'a'"))
            .validate()
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("collection"));
        let e = sink("url = 'mongodb+srv://h'\ndatabase = 'd'\ncollection = 'c'")
            .validate()
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("url"));
    }

    #[test]
    fn the_url_is_redacted_in_debug() {
        let c = sink("url = 'mongodb://u:secret@h/'\ndatabase = 'd'\ncollection = 'c'");
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn start_from_now_or_an_operation_time() {
        let src = |s: &str| -> MongoSourceConfig {
            let table: toml::Table = toml::from_str(&format!("url = 'mongodb://h'\n{s}")).unwrap();
            toml::Value::Table(table).try_into().unwrap()
        };
        assert_eq!(src("start_from = 'now'").start_from, StartFrom::Now);
        assert_eq!(
            src("start_from = { at_operation_time = 5 }").start_from,
            StartFrom::At(OperationTime {
                seconds: 5,
                increment: 0
            })
        );
        assert_eq!(
            src("start_from = { at_operation_time = '5.3' }").start_from,
            StartFrom::At(OperationTime {
                seconds: 5,
                increment: 3
            })
        );
        let table: toml::Table =
            toml::from_str("url = 'mongodb://h'\nstart_from = 'later'").unwrap();
        assert!(
            toml::Value::Table(table)
                .try_into::<MongoSourceConfig>()
                .is_err()
        );
        assert_eq!(
            src("full_document = 'updateLookup'").full_document,
            FullDocument::UpdateLookup
        );
    }
}
