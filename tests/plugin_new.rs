//! `sluice plugin new`, `build` and `test` in a directory outside the repository: the crate
//! `plugin new` writes builds from the SDK copy the binary carries, with no path back into a
//! Sluice checkout and no registry that has the SDK.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

/// The plugins' shared target dir (as in scripts/build-plugins.sh), so the build reuses the
/// compiled dependencies.
fn plugins_target() -> PathBuf {
    std::env::var_os("SLUICE_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/target"))
}

fn sluice_in(dir: &Path, args: &[&str]) -> Output {
    let out = common::sluice()
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", plugins_target())
        .args(args)
        .output()
        .expect("start sluice");
    assert!(
        out.status.success(),
        "sluice {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn plugin_new_crate_builds_and_runs_outside_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    assert!(!dir.path().canonicalize().unwrap().starts_with(&repo));

    sluice_in(dir.path(), &["plugin", "new", "tag-it"]);
    let manifest = std::fs::read_to_string(dir.path().join("tag-it/Cargo.toml")).unwrap();
    assert!(
        !manifest.contains(&*repo.to_string_lossy()),
        "the crate points back into the repository:\n{manifest}"
    );

    let built = sluice_in(dir.path(), &["plugin", "build", "tag-it"]);
    let stdout = String::from_utf8(built.stdout).unwrap();
    let wasm = stdout.lines().last().expect("the component's path");
    assert!(
        wasm.ends_with("wasm32-wasip2/release/tag_it.wasm"),
        "{stdout}"
    );

    std::fs::write(dir.path().join("in.jsonl"), "{\"seq\":1}\n[2]\n").unwrap();
    let tested = sluice_in(
        dir.path(),
        &[
            "plugin", "test", wasm, "--input", "in.jsonl", "--with", "value=7",
        ],
    );
    let stdout = String::from_utf8(tested.stdout).unwrap();
    assert!(
        stdout.contains(r#"line 1: ok {"seq":1,"tagged_by":7}"#),
        "{stdout}"
    );
    assert!(stdout.contains("line 2: failed: "), "{stdout}");
    assert!(
        stdout.contains("2 records: 1 ok, 0 dropped, 1 failed"),
        "{stdout}"
    );
}
