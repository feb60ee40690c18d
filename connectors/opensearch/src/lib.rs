//! Sluice's OpenSearch connector, on the `opensearch` crate: the `opensearch` sink.
//!
//! - one `_bulk` request per write (sized by the sink's `batch` settings), with `index`,
//!   `create`, `update` (`doc_as_upsert`) or `delete` actions;
//! - the index fixed, from a field, or from the record's event time (`readings-{yyyy.MM.dd}`);
//! - each item of the response classified on its own ([`bulk`]): 429 and 5xx items retried, the
//!   other 4xx items dead-lettered with the item's error type and reason, never dropped;
//! - `_id` from a field, or derived from the record's source position ([`route`]) so that a
//!   replay after a crash overwrites instead of duplicating: not transactional (at-least-once),
//!   but the index ends up holding every input once;
//! - at open, the cluster must answer and report OpenSearch 1.x–3.x (or Elasticsearch 7.10).
#![deny(missing_docs)]

pub mod bulk;
mod client;
pub mod config;
mod error;
pub mod route;
pub mod sink;

use sluice_core::Registry;

pub use config::{BulkAction, OpenSearchSinkConfig};
pub use sink::{OpenSearchSink, OpenSearchSinkConnector};

/// Register the OpenSearch sink.
pub fn register(registry: &mut Registry) {
    registry.register_sink::<OpenSearchSinkConnector>();
}
