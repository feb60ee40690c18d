//! Sluice's Kinesis Data Streams connector, on `aws-sdk-kinesis` and the shared AWS connection
//! (`sluice-aws`): the `kinesis` source and the `kinesis` sink.
//!
//! Source ([`source`]): ListShards with paging, shard lineage (a child is read once its parents
//! are read to their end, so per-key order holds across splits and merges), new shards without a
//! restart, GetShardIterator after the committed sequence number or per `start_from`, GetRecords
//! per shard at most 5 times a second with backoff on throttling, expired iterators acquired
//! again, KPL aggregates de-aggregated ([`kpl`]), `MillisBehindLatest` per shard as lag.
//! Positions are (stream ARN + shard id, sequence number); sequence numbers compare as big
//! integers ([`seq`]). Exactly-once into transactional sinks through their checkpoints.
//!
//! Sink ([`sink`]): PutRecords within the API limits ([`plan`]), failed entries retried one by
//! one or dead-lettered with their error code. Kinesis has no transactions: at-least-once.
#![deny(missing_docs)]

pub mod config;
mod error;
pub mod fanout;
pub mod kpl;
pub mod plan;
pub mod records;
pub mod seq;
pub mod shards;
pub mod sink;
pub mod source;
pub mod stream;

use sluice_core::Registry;

pub use config::{
    DataFormat, Decoding, KinesisSinkConfig, KinesisSourceConfig, PartitionKey, StartFrom,
};
pub use sink::{KinesisSink, KinesisSinkConnector};
pub use source::{KinesisSource, KinesisSourceConnector};

/// Register the Kinesis source and sink.
pub fn register(registry: &mut Registry) {
    registry.register_source::<KinesisSourceConnector>();
    registry.register_sink::<KinesisSinkConnector>();
}
