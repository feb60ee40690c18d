//! Sluice's Kafka connectors, on librdkafka (rdkafka):
//!
//! - source `kafka`: a consumer-group member with manual offsets, committed only once the
//!   records are durable in every sink ([`source`]);
//! - sink `kafka`: an idempotent producer that awaits delivery reports, or with exactly-once a
//!   transactional producer that stores its checkpoint in the same transaction ([`sink`],
//!   [`txn`]).
#![deny(missing_docs)]

pub mod admin;
mod client;
pub mod config;
mod error;
mod groups;
pub mod msk;
mod rebalance;
pub mod sink;
pub mod source;
pub mod txn;

use sluice_core::Registry;

pub use config::{KafkaSinkConfig, KafkaSourceConfig};
pub use rebalance::LagHandle;
pub use sink::{KafkaSink, KafkaSinkConnector};
pub use source::{KafkaSource, KafkaSourceConnector};

/// Register the Kafka source and sink.
pub fn register(registry: &mut Registry) {
    registry.register_source::<KafkaSourceConnector>();
    registry.register_sink::<KafkaSinkConnector>();
}
