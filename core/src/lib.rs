//! `sluice-core`: the record model, the `Source`/`Sink`/`Transform` contracts, the pipeline
//! runtime with its delivery guarantees, checkpoints, the offset store and the job-file model.
#![deny(missing_docs)]

pub mod record;
pub mod transform;
pub mod units;

pub use record::{Batch, Checkpoint, DeadRecord, Header, Offset, Partition, Position, Record};
pub use transform::{Outcome, Transform, TransformError, TransformErrorKind, TransformLimits, TransformSpec};
