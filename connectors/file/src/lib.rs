//! Sluice's built-in local connectors: files (source and sink), stdin, stdout, and `datagen`,
//! a deterministic generator of IoT sensor readings for demos, tests and benchmarks. Files and
//! pipes carry JSON lines, text or CSV (`csv_in`, `csv_out`); the file source reads gzip/zstd
//! (`decompress`), directories and globs (`many`), the file sink can write gzip (`gzip_out`).
#![deny(missing_docs)]

pub mod config;
mod csv_in;
mod csv_out;
pub mod datagen;
mod decompress;
mod error;
mod fingerprint;
mod follow;
mod gzip_out;
mod lines;
mod many;
mod resume;
pub mod sink;
mod sink_state;
pub mod source;
pub mod stdio;
mod timefmt;

use sluice_core::Registry;

/// Register every connector of this crate.
pub fn register(registry: &mut Registry) {
    registry.register_source::<source::FileSourceConnector>();
    registry.register_source::<stdio::StdinConnector>();
    registry.register_source::<datagen::DatagenConnector>();
    registry.register_sink::<sink::FileSinkConnector>();
    registry.register_sink::<stdio::StdoutConnector>();
}

pub use config::{
    Compression, CsvInput, CsvOutput, CsvType, DatagenConfig, FileSinkConfig, FileSourceConfig,
    LineFormat, OutputFormat, StdinConfig, StdoutConfig,
};
