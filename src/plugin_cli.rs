//! `sluice plugin`: scaffold, build and try WebAssembly transform plugins.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, bail};
use sluice_core::record::{Position, Record};
use sluice_core::transform::{Outcome, Transform, TransformLimits, TransformSpec};

/// The WebAssembly target plugins are built for.
const TARGET: &str = "wasm32-wasip2";

/// Records per `process` call in `sluice plugin test`.
const TEST_BATCH: usize = 512;

/// `sluice plugin ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin crate that builds and passes its own test out of the box.
    New {
        /// Crate name (letters, digits, `-`, `_`; starts with a letter).
        name: String,
        /// Directory to create the crate in (default: `./NAME`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Depend on the SDK crate at PATH (`plugins/sdk` of a Sluice checkout) instead of
        /// the copy of it this binary writes into the new crate's `vendor/sluice/`.
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
    /// Build a plugin crate for wasm32-wasip2 in release mode and print the component's path.
    Build {
        /// The plugin crate (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Run a plugin on a file of JSON lines and print each record's outcome.
    Test {
        /// The plugin component (`.wasm`).
        plugin: PathBuf,
        /// Input records, one JSON document per line.
        #[arg(long)]
        input: PathBuf,
        /// A `with` entry for the plugin's `init`, as `key=value` (repeatable). Values are
        /// read as JSON when they parse (`max=90`, `tags=["a"]`), else as strings; dotted keys
        /// nest (`a.b=1`).
        #[arg(long = "with", value_name = "KEY=VALUE")]
        with: Vec<String>,
    },
}

/// Run a `sluice plugin` subcommand.
pub fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::New { name, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            scaffold(&name, &dir, sdk.as_deref())?;
            println!("Created plugin `{name}` in {}.", dir.display());
            println!(
                "Next: cd {} && cargo test && sluice plugin build",
                dir.display()
            );
            Ok(())
        }
        PluginCommand::Build { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            for wasm in build(&dir)? {
                println!("{}", wasm.display());
            }
            Ok(())
        }
        PluginCommand::Test {
            plugin,
            input,
            with,
        } => test(&plugin, &input, &with),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The SDK's crate, the encoding crate it uses and the WIT contract, as (path in the Sluice
/// repository, contents), embedded by `build.rs`; plus the plugins workspace's `Cargo.lock`.
const SDK_FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/plugin_sdk_files.rs"));

/// Where a new crate keeps its copy of [`SDK_FILES`], in the repository's layout.
const VENDOR_DIR: &str = "vendor/sluice";

/// The lock file among [`SDK_FILES`]; it becomes the new crate's own.
const LOCK_FILE: &str = "plugins/Cargo.lock";

/// The SDK dependency line: the vendored copy, or the SDK at `sdk`.
fn sdk_dependency(sdk: Option<&Path>) -> anyhow::Result<String> {
    let path = match sdk {
        None => format!("{VENDOR_DIR}/plugins/sdk"),
        Some(sdk) => {
            if !sdk.join("Cargo.toml").is_file() {
                bail!(
                    "--sdk {}: no Cargo.toml there; point it at plugins/sdk of a Sluice checkout",
                    sdk.display()
                );
            }
            let sdk = sdk
                .canonicalize()
                .with_context(|| format!("--sdk {}", sdk.display()))?;
            sdk.to_string_lossy().into_owned()
        }
    };
    Ok(format!("sluice-plugin-sdk = {{ path = {path:?} }}"))
}

/// Write the SDK copy under `dir/vendor/sluice`, and the lock file.
fn vendor(dir: &Path, with_sdk: bool) -> anyhow::Result<()> {
    for (path, bytes) in SDK_FILES {
        let target = if *path == LOCK_FILE {
            dir.join("Cargo.lock")
        } else if with_sdk {
            dir.join(VENDOR_DIR).join(path)
        } else {
            continue;
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, bytes)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    if with_sdk {
        let note = dir.join(VENDOR_DIR).join("README.md");
        let text = format!(
            "A copy of the Sluice plugin SDK (`plugins/sdk`), the batch encoding it uses (`wire`),\n\
             its field paths (`value-path`) and the plugin contract (`transforms/wit`), in the\n\
             Sluice repository's layout, written by `sluice plugin new` of sluice {}. To upgrade,\n\
             replace this directory with the one a newer `sluice plugin new` writes.\n",
            env!("CARGO_PKG_VERSION")
        );
        std::fs::write(&note, text).with_context(|| format!("cannot write {}", note.display()))?;
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
description = "A Sluice transform plugin."
publish = false

# A plugin is a WebAssembly component (cdylib); rlib lets `cargo test` run natively.
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
{sdk}
serde = { version = "1", features = ["derive"] }
serde_json = { version = "1", features = ["preserve_order"] }

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A standalone crate, even when created inside another workspace. The SDK copy in vendor/
# is a dependency, not a member: its own tests and dev-dependencies stay out of this crate.
[workspace]
exclude = ["vendor"]
"#;

const LIB_RS: &str = r##"//! `{name}`: a Sluice transform plugin.
//!
//! Build: `sluice plugin build` (or `cargo build --target wasm32-wasip2 --release`).
//! Try:   `sluice plugin test target/wasm32-wasip2/release/{crate}.wasm --input records.jsonl --with field=tagged_by`.

use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_plugin_sdk::{Outcome, Record};

/// The transform's `with` table in the job file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field to set on every record.
    #[serde(default = "default_field")]
    pub field: String,
    /// The value to set it to.
    #[serde(default = "default_value")]
    pub value: Value,
}

fn default_field() -> String {
    "tagged_by".to_string()
}

fn default_value() -> Value {
    Value::from("{name}")
}

/// Set `config.field` on every JSON-object record; records that are not JSON objects fail
/// (they go to the dead-letter sink with the reason).
pub fn transform(mut record: Record, config: &Config) -> Result<Outcome, serde_json::Error> {
    let mut doc: Map<String, Value> = record.json()?;
    doc.insert(config.field.clone(), config.value.clone());
    record.set_json(&doc)?;
    Ok(Outcome::one(record))
}

sluice_plugin_sdk::transform!(transform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_the_field() {
        let config: Config = serde_json::from_str("{}").unwrap();
        let out = transform(Record::new(r#"{"seq":1}"#), &config).unwrap();
        let Outcome::Ok(records) = out else { panic!("{out:?}") };
        assert_eq!(records[0].value_str().unwrap(), r#"{"seq":1,"tagged_by":"{name}"}"#);
    }

    #[test]
    fn fails_records_that_are_not_objects() {
        let config: Config = serde_json::from_str("{}").unwrap();
        assert!(transform(Record::new("[1, 2]"), &config).is_err());
    }
}
"##;

/// Write a new plugin crate at `dir`: with a copy of the SDK, or depending on the SDK at `sdk`.
fn scaffold(name: &str, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<()> {
    if !valid_name(name) {
        bail!(
            "invalid plugin name {name:?}: use letters, digits, `-` and `_`, starting with a letter"
        );
    }
    if dir.exists() && dir.read_dir().map_or(true, |mut d| d.next().is_some()) {
        bail!("{} already exists and is not empty", dir.display());
    }
    let crate_name = name.replace('-', "_");
    let sdk_line = sdk_dependency(sdk)?;
    let fill = |template: &str| {
        template
            .replace("{name}", name)
            .replace("{crate}", &crate_name)
            .replace("{sdk}", &sdk_line)
    };
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        (".gitignore", "/target\n".to_string()),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    vendor(dir, sdk.is_none())
}

/// `cargo build --target wasm32-wasip2 --release` in `dir`; the built components' paths.
fn build(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!("{} has no Cargo.toml", dir.display());
    }
    let mut child = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--target", TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo")?;
    let mut wasm = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.context("reading cargo's output")?;
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let files = msg["filenames"].as_array().into_iter().flatten();
            wasm.extend(
                files
                    .filter_map(|f| f.as_str())
                    .filter(|f| f.ends_with(".wasm"))
                    .map(PathBuf::from),
            );
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!(
            "cargo build failed ({status}); is the target installed? `rustup target add {TARGET}`"
        );
    }
    if wasm.is_empty() {
        bail!("the build produced no .wasm component: is `crate-type = [\"cdylib\"]` set?");
    }
    Ok(wasm)
}

/// Build the `with` table from `key=value` pairs.
fn with_table(pairs: &[String]) -> anyhow::Result<serde_json::Value> {
    let mut root = serde_json::Map::new();
    for pair in pairs {
        let Some((key, raw)) = pair.split_once('=') else {
            bail!("--with {pair:?}: expected KEY=VALUE");
        };
        let value = serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::from(raw));
        let mut parts = key.split('.').peekable();
        let mut map = &mut root;
        while let Some(part) = parts.next() {
            if part.is_empty() {
                bail!("--with {pair:?}: empty key segment");
            }
            if parts.peek().is_none() {
                map.insert(part.to_string(), value.clone());
                break;
            }
            let entry = map
                .entry(part.to_string())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            let Some(next) = entry.as_object_mut() else {
                bail!("--with {pair:?}: `{part}` is already a value, not a table");
            };
            map = next;
        }
    }
    Ok(serde_json::Value::Object(root))
}

fn describe(record: &Record) -> String {
    let mut s = String::from_utf8_lossy(&record.value).into_owned();
    if let Some(key) = &record.key {
        s = format!("key={} {s}", String::from_utf8_lossy(key));
    }
    for h in &record.headers {
        s.push_str(&format!(
            "  [{}={}]",
            h.name,
            String::from_utf8_lossy(&h.value)
        ));
    }
    s
}

/// Run `plugin` on every line of `input` and print the outcomes.
fn test(plugin: &Path, input: &Path, with: &[String]) -> anyhow::Result<()> {
    let spec = TransformSpec {
        plugin: plugin.to_path_buf(),
        name: None,
        with: with_table(with)?,
        limits: TransformLimits::default(),
    };
    let mut transform = sluice_transforms::load_transform(&spec, Path::new("."))?;
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let partition: Arc<str> = Arc::from(input.to_string_lossy().as_ref());
    let mut records = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", input.display()))?;
        if !line.trim().is_empty() {
            records.push(Record::new(
                line,
                Position::int(partition.clone(), i as i64 + 1),
            ));
        }
    }
    let (mut ok, mut dropped, mut failed) = (0, 0, 0);
    let mut out = std::io::stdout().lock();
    for chunk in records.chunks(TEST_BATCH) {
        let outcomes = transform.process(chunk)?;
        for (record, outcome) in chunk.iter().zip(outcomes) {
            let line = &record.position.offset;
            match outcome {
                Outcome::Ok(records) if records.is_empty() => {
                    ok += 1;
                    writeln!(out, "line {line}: ok (no output)")?;
                }
                Outcome::Ok(records) => {
                    ok += 1;
                    for r in records {
                        writeln!(out, "line {line}: ok {}", describe(&r))?;
                    }
                }
                Outcome::Dropped => {
                    dropped += 1;
                    writeln!(out, "line {line}: dropped")?;
                }
                Outcome::Failed(reason) => {
                    failed += 1;
                    writeln!(out, "line {line}: failed: {reason}")?;
                }
            }
        }
    }
    writeln!(
        out,
        "{} records: {ok} ok, {dropped} dropped, {failed} failed",
        records.len()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_pairs_parse_json_values_and_nest_dotted_keys() {
        let with = with_table(&[
            "field=temperature_c".into(),
            "max=90".into(),
            "band.low=-5.5".into(),
            "header=\"route\"".into(),
        ])
        .unwrap();
        assert_eq!(
            with,
            serde_json::json!({"field": "temperature_c", "max": 90, "band": {"low": -5.5}, "header": "route"})
        );
        assert!(with_table(&["novalue".into()]).is_err());
    }

    #[test]
    fn plugin_names_are_checked() {
        assert!(valid_name("tag-hot_2"));
        assert!(!valid_name("2hot"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn scaffold_writes_a_standalone_crate_with_a_copy_of_the_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = dir.path().join("tag-hot");
        scaffold("tag-hot", &crate_dir, None).unwrap();
        let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"tag-hot\""), "{manifest}");
        assert!(
            manifest.contains(r#"sluice-plugin-sdk = { path = "vendor/sluice/plugins/sdk" }"#),
            "{manifest}"
        );
        assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
        // The copy keeps the repository's layout, so the SDK's relative paths resolve.
        let vendor = crate_dir.join(VENDOR_DIR);
        for file in [
            "plugins/sdk/Cargo.toml",
            "plugins/sdk/src/lib.rs",
            "wire/src/lib.rs",
            "value-path/src/lib.rs",
            "transforms/wit/transform.wit",
            "transforms/wit/ENCODING.md",
        ] {
            assert!(vendor.join(file).is_file(), "{file} missing");
        }
        assert!(crate_dir.join("Cargo.lock").is_file());
        let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("sluice_plugin_sdk::transform!(transform);"));
        assert!(lib.contains(r#""tagged_by":"tag-hot""#), "{lib}");
        assert!(
            scaffold("tag-hot", &crate_dir, None).is_err(),
            "must not overwrite"
        );
    }

    /// The embedded copy is the repository's current SDK, byte for byte.
    #[test]
    fn embedded_sdk_files_match_the_repository() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (path, bytes) in SDK_FILES {
            let on_disk = std::fs::read(root.join(path)).unwrap();
            assert!(on_disk == *bytes, "{path} differs from the embedded copy");
        }
    }

    #[test]
    fn scaffold_with_sdk_path_depends_on_it_and_copies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/sdk");
        let crate_dir = dir.path().join("p");
        scaffold("p", &crate_dir, Some(&sdk)).unwrap();
        let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
        let canonical = sdk.canonicalize().unwrap();
        assert!(
            manifest.contains(&format!("path = {:?}", canonical.to_string_lossy())),
            "{manifest}"
        );
        assert!(!crate_dir.join("vendor").exists());
        let missing = dir.path().join("nowhere");
        let err = scaffold("q", &dir.path().join("q"), Some(&missing)).unwrap_err();
        assert!(err.to_string().contains("no Cargo.toml"), "{err}");
    }
}
