//! Fuzz harnesses (bolero) of job loading: TOML parsing, `${..}` interpolation and the typed
//! configs. Each runs about 1 s under `cargo test`; `scripts/fuzz.sh core <harness> <seconds>`
//! runs one longer. Properties: loading never panics, and no error quotes a value that a
//! reference expanded to (the secret file's content below).

use std::path::Path;

use super::interpolate::Interpolation;
use super::load::load_job_with;
use crate::Registry;

/// The content of `secret.txt` beside the fuzzed job: it must never appear in an error.
const SECRET: &str = "s3cr3t-Value-7781";

/// Pieces of job files, so that random picks make inputs that get past the TOML parser.
const PIECES: &[&str] = &[
    "api_version = 1\n",
    "name = \"j\"\n",
    "name = \"${file:secret.txt}\"\n",
    "[source]\n",
    "type = \"mem\"\n",
    "count = 3\n",
    "count = \"${file:secret.txt}\"\n",
    "partition = \"${file:secret.txt}\"\n",
    "replay = \"${file:secret.txt}x\"\n",
    "[[sinks]]\n",
    "type = \"nope\"\n",
    "type = \"${file:secret.txt}\"\n",
    "[errors]\n",
    "tolerance = \"all\"\n",
    "tolerance = \"${file:secret.txt}\"\n",
    "dead_letter = { type = \"file\", path = \"d\" }\n",
    "[delivery]\n",
    "guarantee = \"exactly-once\"\n",
    "commit_interval = \"${file:secret.txt}\"\n",
    "[[transforms]]\n",
    "plugin = \"${file:secret.txt}.wasm\"\n",
    "with = { a = \"${file:secret.txt}\" }\n",
    "${file:secret.txt}",
    "${env:SLUICE_FUZZ_UNSET:-d}",
    "${env:SLUICE_FUZZ_UNSET}",
    "${file:missing}",
    "${file:../secret.txt}",
    "$${",
    "${",
    "$",
    "}",
    "\"",
    "'",
    "'''",
    " = ",
    "\n",
    "[",
    "]",
    "{",
    ",",
    ".",
    "#",
    "é",
    "\\u00e9",
    "1",
    "x",
];

/// The job text of `picks` (each byte one piece).
fn job_text(picks: &[u8]) -> String {
    picks
        .iter()
        .map(|&p| PIECES[usize::from(p) % PIECES.len()])
        .collect()
}

/// A directory with `secret.txt`, for every iteration of one harness.
fn base_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("secret.txt"), SECRET).expect("secret file");
    dir
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register_source::<crate::testing::MemSourceConnector>();
    registry
}

/// Load `text` from `base` under `policy`; no panic, and no error quotes the secret.
fn load(text: &str, base: &Path, policy: &Interpolation) {
    let registry = registry();
    let result = load_job_with(
        text,
        "fuzz.toml",
        base,
        Some(&base.join("state")),
        &registry,
        policy,
        None,
    );
    if let Err(e) = result
        && !text.contains(SECRET)
    {
        let shown = e.to_string();
        assert!(
            !shown.contains(SECRET),
            "an error quotes the secret: {shown}"
        );
    }
}

fn policies(base: &Path) -> [Interpolation; 3] {
    [
        Interpolation::All,
        Interpolation::none(),
        Interpolation::Only {
            env: vec!["SLUICE_FUZZ_*".into()],
            files: vec![std::fs::canonicalize(base).expect("canonical temp dir")],
        },
    ]
}

#[test]
fn fuzz_job_loader_bytes() {
    let base = base_dir();
    let policies = policies(base.path());
    bolero::check!().for_each(|input: &[u8]| {
        let text = String::from_utf8_lossy(input);
        for policy in &policies {
            load(&text, base.path(), policy);
        }
    });
}

#[test]
fn fuzz_job_loader_pieces() {
    let base = base_dir();
    let policies = policies(base.path());
    bolero::check!()
        .with_type::<Vec<u8>>()
        .for_each(|picks: &Vec<u8>| {
            let text = job_text(picks);
            for policy in &policies {
                load(&text, base.path(), policy);
            }
        });
}

#[test]
fn the_pieces_make_jobs_that_load_and_errors_that_hide_the_secret() {
    // The count is the secret, not a number: the error says so without quoting it.
    let p = |s: &str| PIECES.iter().position(|x| *x == s).unwrap() as u8;
    let text = job_text(&[
        p("api_version = 1\n"),
        p("name = \"j\"\n"),
        p("[source]\n"),
        p("type = \"mem\"\n"),
        p("count = \"${file:secret.txt}\"\n"),
        p("[[sinks]]\n"),
        p("type = \"nope\"\n"),
    ]);
    let base = base_dir();
    let err = load_job_with(
        &text,
        "fuzz.toml",
        base.path(),
        None,
        &registry(),
        &Interpolation::All,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("source.count"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
    load(&text, base.path(), &Interpolation::All);
}
