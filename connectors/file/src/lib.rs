//! File connectors (being written).
