//! Sluice SQL connectors for PostgreSQL, MySQL/MariaDB and SQLite, chosen by URL scheme:
//!
//! - the `sql` sink: JSON records → rows (insert or upsert, deletes on tombstones, multi-row
//!   statements), exactly-once with the checkpoint in a `sluice_offsets` table written in the
//!   same transaction as the rows;
//! - the `sql` source: incremental query polling by an increasing column, a timestamp column, or
//!   both, with rows as JSON.
#![deny(missing_docs)]

pub mod config;
pub mod db;
pub mod decode;
pub mod error;
mod fields;
pub mod offsets;
mod plan;
pub mod schema;
pub mod sink;
pub mod source;
pub mod values;

use sluice_core::{
    BuildContext, ConnectorError, Registry, Sink, SinkConnector, Source, SourceConnector,
};

pub use config::{SqlSinkConfig, SqlSourceConfig};
pub use sink::SqlSink;
pub use source::SqlSource;

/// Register the SQL connectors.
pub fn register(registry: &mut Registry) {
    registry.register_sink::<SqlSinkConnector>();
    registry.register_source::<SqlSourceConnector>();
}

/// `type = "sql"` sink.
pub struct SqlSinkConnector;

impl SinkConnector for SqlSinkConnector {
    const TYPE: &'static str = "sql";
    const DOC: &'static str = "Rows in PostgreSQL, MySQL/MariaDB or SQLite (insert/upsert; exactly-once via a checkpoint table).";
    type Config = SqlSinkConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Sink>, ConnectorError> {
        allow_local_files(&config.url, config.tls.as_ref(), ctx)?;
        Ok(Box::new(
            SqlSink::new(config, ctx.base_dir.clone())?.with_retry(ctx.retry.clone()),
        ))
    }
}

/// `type = "sql"` source.
pub struct SqlSourceConnector;

impl SourceConnector for SqlSourceConnector {
    const TYPE: &'static str = "sql";
    const DOC: &'static str = "Rows of a PostgreSQL, MySQL/MariaDB or SQLite table or query, polled incrementally by an increasing column and/or a timestamp.";
    type Config = SqlSourceConfig;

    fn build(config: Self::Config, ctx: &BuildContext) -> Result<Box<dyn Source>, ConnectorError> {
        allow_local_files(&config.url, config.tls.as_ref(), ctx)?;
        Ok(Box::new(SqlSource::new(config, ctx.base_dir.clone())?))
    }
}

/// Refuse, for a confined job, the local files the connection would use outside what the
/// worker allows (a SQLite file, a socket, certificates).
fn allow_local_files(
    url: &str,
    tls: Option<&config::TlsConfig>,
    ctx: &BuildContext,
) -> Result<(), ConnectorError> {
    for (field, path) in db::local_files(url, tls, &ctx.base_dir) {
        ctx.allow_file(field, &path)?;
    }
    Ok(())
}
