//! Sluice's Amazon Data Firehose sink, on `aws-sdk-firehose` through the shared AWS connection
//! (`sluice-aws`): PutRecordBatch within the service's limits (500 records, 4 MiB per call,
//! 1,000 KiB per record), optional newline after every record, and each record's answer
//! classified on its own ([`sink`]). At-least-once.
//!
//! SDK errors are classified by `sluice_aws::sdk_error`, like every AWS connector's.
#![deny(missing_docs)]

pub mod batch;
pub mod config;
pub mod sink;

use sluice_core::Registry;

pub use config::FirehoseSinkConfig;
pub use sink::{FirehoseSink, FirehoseSinkConnector};

/// Register the Firehose sink.
pub fn register(registry: &mut Registry) {
    registry.register_sink::<FirehoseSinkConnector>();
}
