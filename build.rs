//! Embeds the plugin SDK's sources into the `sluice` binary, so `sluice plugin new` can write
//! a project that builds without this repository and without a registry that has the SDK.
//!
//! Generates `$OUT_DIR/plugin_sdk_files.rs`: one `(path, bytes)` entry per file, the paths
//! relative to this repository. The project keeps that layout under `vendor/sluice/`, so the
//! relative paths inside the copied crates (the SDK's `../../wire`, its WIT at
//! `../../transforms/wit`) hold there unchanged.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The directories copied, and which of their files: everything the crates need to build,
/// nothing of their tests.
const TREES: &[(&str, &[&str])] = &[
    ("plugins/sdk", &["Cargo.toml", "README.md", "src"]),
    ("wire", &["Cargo.toml", "src"]),
    ("value-path", &["Cargo.toml", "src"]),
    ("transforms/wit", &["."]),
];

fn files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            files(&entry, out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut list = Vec::new();
    for (dir, parts) in TREES {
        println!("cargo:rerun-if-changed={dir}");
        for part in *parts {
            files(&root.join(dir).join(part), &mut list)?;
        }
    }
    // The plugins workspace's lock file: a new project starts from the versions the SDK is
    // tested with (cargo drops the entries it does not need).
    println!("cargo:rerun-if-changed=plugins/Cargo.lock");
    list.push(root.join("plugins/Cargo.lock"));

    let mut code = String::from("&[\n");
    for path in &list {
        let relative = path.strip_prefix(&root).unwrap_or(path);
        let relative = relative
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let _ = writeln!(
            code,
            "    ({relative:?}, include_bytes!({:?}).as_slice()),",
            path.display().to_string()
        );
    }
    code.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    std::fs::write(out.join("plugin_sdk_files.rs"), code)
}
