//! `sluice-core`: the record model, the `Source`/`Sink`/`Transform` contracts, the pipeline
//! runtime with its delivery guarantees, checkpoints, the offset store and the job-file model.
//!
//! No connector and no WebAssembly code lives here: connectors are crates of their own that
//! implement [`Source`] / [`Sink`] and register in a [`Registry`]; the WebAssembly host
//! implements [`Transform`].
#![deny(missing_docs)]

pub mod chain;
pub mod connector;
pub mod error;
pub mod job;
pub mod json;
pub mod local;
pub mod metrics;
pub mod offset_store;
pub mod record;
pub mod registry;
pub mod runtime;
pub mod secret;
pub mod tap;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transform;
pub mod units;
pub mod value_path;

pub use async_trait::async_trait;
pub use connector::{BuildContext, Sink, SinkContext, Source, WriteReport};
pub use error::{ConnectorError, ErrorKind, Fault};
pub use job::{Guarantee, LoadedJob};
pub use record::{Batch, Checkpoint, DeadRecord, Header, Offset, Partition, Position, Record};
pub use registry::{Registry, SinkConnector, SourceConnector};
pub use runtime::{Pipeline, RunReport, RuntimeError};
pub use secret::Secret;
pub use transform::{
    Outcome, Transform, TransformError, TransformErrorKind, TransformLimits, TransformSpec,
};
pub use units::{ByteSize, HumanDuration};
pub use value_path::ValuePath;
