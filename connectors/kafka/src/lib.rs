//! Sluice's Kafka connectors, on librdkafka (rdkafka):
//!
//! - source `kafka`: a consumer-group member with manual offsets, committed only once the
//!   records are durable in every sink ([`source`]);
//! - sink `kafka`: an idempotent producer that awaits delivery reports, or with exactly-once a
//!   transactional producer that stores its checkpoint in the same transaction ([`sink`],
//!   [`txn`]).
#![deny(missing_docs)]

pub mod admin;
pub mod config;
mod error;
mod groups;
pub mod sink;
pub mod source;
pub mod txn;

use sluice_core::Registry;

pub use sink::{KafkaSink, KafkaSinkConfig, KafkaSinkConnector};
pub use source::{KafkaSource, KafkaSourceConfig, KafkaSourceConnector, LagHandle};

/// Register the Kafka source and sink.
pub fn register(registry: &mut Registry) {
    registry.register_source::<KafkaSourceConnector>();
    registry.register_sink::<KafkaSinkConnector>();
}
