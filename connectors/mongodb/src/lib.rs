//! Sluice's MongoDB connectors, on the official `mongodb` crate:
//!
//! - the `mongodb` sink ([`sink`]): one unordered bulk write per batch (insert, `$set` upsert,
//!   replace or delete, matched by `key` fields or `_id`), to a fixed collection or one named
//!   by a field or header; every item's error classified (duplicates, validation failures,
//!   stepdowns), never dropped; exactly-once on a replica set with one transaction per batch
//!   holding the documents and the checkpoint ([`checkpoint`]), at-least-once elsewhere;
//! - the `mongodb` source ([`source`]): a change stream on a collection, a database or the
//!   deployment, resumable at the exact event, with an optional initial snapshot.
#![deny(missing_docs)]

pub mod bson_map;
pub mod checkpoint;
pub mod client;
pub mod config;
mod error;
pub mod plan;
pub mod position;
pub mod sink;
mod snapshot;
pub mod source;

use sluice_core::Registry;

pub use config::{MongoSinkConfig, MongoSourceConfig, WriteMode};
pub use sink::{MongoSink, MongoSinkConnector};
pub use source::{MongoSource, MongoSourceConnector};

/// Register the MongoDB sink and source.
pub fn register(registry: &mut Registry) {
    registry.register_sink::<MongoSinkConnector>();
    registry.register_source::<MongoSourceConnector>();
}
