//! Typed configuration of the SQL sink and source (the config reference is generated from these).

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use sluice_core::{HumanDuration, ValuePath};

/// TLS settings for PostgreSQL and MySQL/MariaDB (not allowed with SQLite).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `"disable"`, `"prefer"` (default), `"require"`, `"verify-ca"` or `"verify-full"`.
    #[serde(default)]
    pub mode: TlsMode,
    /// PEM file with the certificate authority to trust (for `verify-ca` / `verify-full`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// How a server connection uses TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it.
    #[default]
    Prefer,
    /// TLS required, certificate not checked.
    Require,
    /// TLS with the certificate checked against the CA.
    VerifyCa,
    /// TLS with the certificate and host name checked.
    VerifyFull,
}

/// How the sink writes rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Plain `INSERT`: a duplicate key is a rejected row — except under at-least-once when the
    /// stored row equals the new one in every written column (a replay after a crash), which
    /// counts as written.
    #[default]
    Insert,
    /// Insert or update by `key` (`ON CONFLICT ... DO UPDATE` / `ON DUPLICATE KEY UPDATE`).
    Upsert,
}

/// One column of a declared schema (used by `create_table`).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnDecl {
    /// Column name.
    pub name: String,
    /// SQL type, in the target database's dialect (`BIGINT`, `TEXT`, `VARCHAR(64)`, `TIMESTAMPTZ`).
    #[serde(rename = "type")]
    pub sql_type: String,
    /// Whether NULL is allowed (default true; key columns are always NOT NULL).
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

fn default_statement_rows() -> usize {
    1000
}

fn default_offsets_table() -> String {
    "sluice_offsets".into()
}

/// `type = "sql"` sink.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlSinkConfig {
    /// Database URL; the scheme picks the database: `postgres://`, `mysql://` (or `mariadb://`),
    /// `sqlite://path.db` (relative to the job file) or `sqlite::memory:`.
    pub url: String,
    /// Target table (`name` or `schema.name`).
    pub table: String,
    /// `"insert"` (default) or `"upsert"` (needs `key`).
    #[serde(default)]
    pub mode: WriteMode,
    /// Key columns: the conflict target of `upsert` and the match of tombstone deletes.
    #[serde(default)]
    pub key: Vec<String>,
    /// Explicit mapping column → field of the JSON value, as a field path: `"id"` for a
    /// top-level field, `"customer.email"` for a nested one. Without it, every column of the
    /// table (except identity, auto-increment and generated ones) takes the top-level field of
    /// the same name. A field a record lacks is NULL.
    #[serde(default)]
    pub columns: Option<BTreeMap<String, ValuePath>>,
    /// Delete the row with the record's key when the value is empty (a tombstone). The key
    /// columns come from the record key (a JSON object, or a scalar with one key column).
    /// Without it, a tombstone is a rejected record.
    #[serde(default)]
    pub delete_on_tombstone: bool,
    /// Create the table from `schema` when it does not exist.
    #[serde(default)]
    pub create_table: bool,
    /// Declared schema for `create_table`; `key` becomes the primary key.
    #[serde(default)]
    pub schema: Vec<ColumnDecl>,
    /// Most rows in one multi-row statement, also capped by parameters per statement: 65535 for
    /// PostgreSQL and MySQL (their limit), 128 for SQLite (where it writes fastest).
    #[serde(default = "default_statement_rows")]
    pub statement_rows: usize,
    /// Table holding exactly-once checkpoints (job, sink, partition, position), written in the
    /// same transaction as the rows.
    #[serde(default = "default_offsets_table")]
    pub offsets_table: String,
    /// TLS for PostgreSQL / MySQL; without it the URL's own parameters (`sslmode=...`) apply.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// How the source finds new rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SourceMode {
    /// Rows with `incrementing_column` greater than the last one seen (append-only tables).
    Incrementing,
    /// Rows with `timestamp_column` later than the last one seen (captures updates).
    Timestamp,
    /// `timestamp_column` then `incrementing_column` as tie-break: updates, no loss on equal
    /// timestamps.
    TimestampIncrementing,
}

fn default_poll_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}

fn default_batch_size() -> usize {
    1000
}

/// `type = "sql"` source: incremental query polling.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlSourceConfig {
    /// Database URL (see the sink).
    pub url: String,
    /// Table to read (`name` or `schema.name`); exactly one of `table` and `query`.
    #[serde(default)]
    pub table: Option<String>,
    /// Custom `SELECT` to read from; it is wrapped, so it must not end with ORDER BY / LIMIT.
    #[serde(default)]
    pub query: Option<String>,
    /// `"incrementing"`, `"timestamp"` or `"timestamp-incrementing"`.
    pub mode: SourceMode,
    /// Strictly increasing integer column (modes `incrementing`, `timestamp-incrementing`).
    #[serde(default)]
    pub incrementing_column: Option<String>,
    /// Timestamp column (modes `timestamp`, `timestamp-incrementing`).
    #[serde(default)]
    pub timestamp_column: Option<String>,
    /// Pause between polls that found nothing new.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// Most rows fetched by one poll (one batch).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// End the source (a bounded job) once a poll finds nothing new.
    #[serde(default)]
    pub stop_when_caught_up: bool,
    /// Partition name in positions; defaults to the table name, or `"query"`.
    #[serde(default)]
    pub partition: Option<String>,
    /// TLS for PostgreSQL / MySQL.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}
