//! Helpers shared by the host tests: locating built plugins, specs and records.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use sluice_core::record::{Position, Record};
use sluice_core::transform::{TransformLimits, TransformSpec};

/// `plugins/dist`, where `scripts/build-plugins.sh` puts the components.
pub fn dist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist")
}

/// The path of a built plugin; fails the test (never skips it) when it is missing.
pub fn plugin(name: &str) -> PathBuf {
    let path = dist_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh first (needs `rustup target add wasm32-wasip2`)",
        path.display()
    );
    path
}

/// A spec for a bundled plugin with a `with` table and default limits.
pub fn spec(name: &str, with: serde_json::Value) -> TransformSpec {
    TransformSpec {
        plugin: plugin(name),
        name: Some(name.to_string()),
        with,
        limits: TransformLimits::default(),
    }
}

/// Records with these values, at positions `test@0`, `test@1`, ...
pub fn records(values: &[&str]) -> Vec<Record> {
    let partition: Arc<str> = Arc::from("test");
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Record::new(v.to_string(), Position::int(partition.clone(), i as i64)))
        .collect()
}

/// A loader shared by the tests of one binary, caching artifacts under the target directory so
/// reruns skip compilation.
pub fn loader() -> ((), &'static sluice_transforms::Loader) {
    static LOADER: std::sync::OnceLock<sluice_transforms::Loader> = std::sync::OnceLock::new();
    let loader = LOADER.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sluice-wasm-cache");
        sluice_transforms::Loader::new(Some(dir))
    });
    ((), loader)
}

/// The value of the single output record of an outcome.
pub fn single_value(outcome: &sluice_core::transform::Outcome) -> String {
    match outcome {
        sluice_core::transform::Outcome::Ok(out) if out.len() == 1 => {
            String::from_utf8(out[0].value.to_vec()).expect("utf-8")
        }
        other => panic!("expected one output record, got {other:?}"),
    }
}
