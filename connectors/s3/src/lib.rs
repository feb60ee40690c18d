//! Sluice's S3 archive sink, on `aws-sdk-s3` through the shared AWS connection (`sluice-aws`).
//!
//! - objects of JSON lines (plain, gzip or zstd) or Parquet (`parquet`/`arrow` crates; schema
//!   configured or inferred from the first write; a record that does not fit is dead-lettered);
//! - keys under a template with time partitions from the record's event time or the arrival
//!   time (`{date}`, `{hour}`...) and values from fields (`{field:device}`) ([`template`]);
//! - one object per partition per write, or (`buffering`, exactly-once) per partition when it
//!   reaches its own record, byte or age bound; multipart upload above `part_size`;
//! - exactly-once: object keys derived from the checkpoint range of the write, and a checkpoint
//!   object per job and sink that names the objects of a write before they are made and
//!   commits after them ([`state`]).
//!
//! SDK errors are classified by `sluice_aws::sdk_error`, like every AWS connector's.
#![deny(missing_docs)]

mod client;
pub mod config;
mod encode;
pub mod sink;
pub mod state;
pub mod template;

use sluice_core::Registry;

pub use config::{Compression, Format, S3SinkConfig};
pub use sink::{S3Sink, S3SinkConnector};

/// Register the S3 sink.
pub fn register(registry: &mut Registry) {
    registry.register_sink::<S3SinkConnector>();
}
