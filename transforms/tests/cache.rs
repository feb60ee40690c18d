//! Compiled artifacts are cached on disk: a second process (a new loader) does not recompile.

mod common;

use std::sync::Arc;

use sluice_transforms::{ArtifactSource, Loader};

#[test]
fn second_loader_loads_the_compiled_artifact_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::plugin("noop");
    let first = Loader::new(Some(dir.path().to_path_buf()));
    let compiled = first.load("noop", &path, false).unwrap();
    assert_eq!(compiled.source(), ArtifactSource::Compiled);
    // Same loader: the very same compiled plugin.
    assert!(Arc::ptr_eq(
        &compiled,
        &first.load("noop", &path, false).unwrap()
    ));
    let artifacts = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(artifacts, 1);

    let restarted = Loader::new(Some(dir.path().to_path_buf()));
    let cached = restarted.load("noop", &path, false).unwrap();
    assert_eq!(cached.source(), ArtifactSource::DiskCache);
    // Fuel metering needs a differently compiled artifact.
    let fueled = restarted.load("noop", &path, true).unwrap();
    assert_eq!(fueled.source(), ArtifactSource::Compiled);
}

#[test]
fn a_corrupt_artifact_is_ignored_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::plugin("noop");
    Loader::new(Some(dir.path().to_path_buf()))
        .load("noop", &path, false)
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let plugin = Loader::new(Some(dir.path().to_path_buf()))
        .load("noop", &path, false)
        .unwrap();
    assert_eq!(plugin.source(), ArtifactSource::Compiled);
}
