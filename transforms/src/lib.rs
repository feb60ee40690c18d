//! WebAssembly transform host (being written).
