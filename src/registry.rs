//! The connectors compiled into this binary: one line per connector family, each behind its
//! cargo feature.

use sluice_core::Registry;
use sluice_core::job::Toolkit;

/// Register every built-in connector.
pub fn register_builtins(registry: &mut Registry) {
    #[cfg(feature = "file")]
    sluice_connector_file::register(registry);
    #[cfg(feature = "http")]
    sluice_connector_http::register(registry);
    #[cfg(feature = "kafka")]
    sluice_connector_kafka::register(registry);
    #[cfg(feature = "kinesis")]
    sluice_connector_kinesis::register(registry);
    #[cfg(feature = "mongodb")]
    sluice_connector_mongodb::register(registry);
    #[cfg(feature = "opensearch")]
    sluice_connector_opensearch::register(registry);
    #[cfg(feature = "s3")]
    sluice_connector_s3::register(registry);
    #[cfg(feature = "firehose")]
    sluice_connector_firehose::register(registry);
    #[cfg(feature = "sns")]
    sluice_connector_sns::register(registry);
    #[cfg(feature = "sql")]
    sluice_connector_sql::register(registry);
}

/// A registry with every built-in connector.
pub fn builtin() -> Registry {
    let mut registry = Registry::new();
    register_builtins(&mut registry);
    registry
}

/// Every built-in connector and the WebAssembly host: what assembles jobs.
pub fn toolkit() -> Toolkit {
    Toolkit::new(builtin(), sluice_transforms::WasmHost)
}
