//! Host bindings generated from `wit/transform.wit`.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "transform",
    path: "wit",
});
