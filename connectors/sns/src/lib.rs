//! Sluice's SNS connector, on `aws-sdk-sns` and the shared AWS connection (`sluice-aws`): the
//! `sns` sink, for alerts.
//!
//! - `Publish` for one message, `PublishBatch` (at most 10 entries and 256 KiB) for more;
//! - subject and message attributes from fields of the record or its headers;
//! - FIFO topics: the message group from a field, the deduplication id derived from the
//!   record's source position, so a record sent again is dropped by SNS ([`entry`]);
//! - per-entry failures of `PublishBatch` classified on their own: throttled or SNS-side
//!   failures retried (only those), refusals dead-lettered with code and message ([`sink`]);
//! - `max_per_second`, since alerts usually follow a `when` route and can come in storms.
#![deny(missing_docs)]

pub mod config;
pub mod entry;
mod error;
mod rate;
pub mod sink;

use sluice_core::Registry;

pub use config::SnsSinkConfig;
pub use sink::{SnsSink, SnsSinkConnector};

/// Register the SNS sink.
pub fn register(registry: &mut Registry) {
    registry.register_sink::<SnsSinkConnector>();
}
