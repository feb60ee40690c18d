//! Bad job files produce errors that name the file, the line and the field.

mod common;

use common::*;

fn validate(toml: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(dir.path(), "job.toml", toml);
    let out = run(&["validate", job.to_str().unwrap()]);
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&job.display().to_string(), "job.toml");
    (
        out.status.success(),
        stderr,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const GOOD_SOURCE: &str = "[source]\ntype = \"datagen\"\ncount = 10\n";

#[test]
fn a_valid_job_validates() {
    let (ok, err, out) = validate(&format!(
        "api_version = 1\nname = \"ok\"\n{GOOD_SOURCE}[[sinks]]\ntype = \"stdout\"\n"
    ));
    assert!(ok, "{err}");
    assert!(
        out.contains("is valid: datagen → 0 transform(s) → 1 sink(s)"),
        "{out}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_line_and_path() {
    let (ok, err, _) = validate(&format!(
        "api_version = 1\nname = \"j\"\n{GOOD_SOURCE}[[sinks]]\ntype = \"file\"\npath = \"o\"\nrotate_byts = 10\n"
    ));
    assert!(!ok);
    assert!(
        err.contains("job.toml:9: sinks[0].rotate_byts: unknown field `rotate_byts`, expected one of `path`, `rotate_bytes`, `fsync`"),
        "{err}"
    );
}

#[test]
fn bad_units_and_types_name_the_field() {
    let (ok, err, _) = validate(
        "api_version = 1\nname = \"j\"\n[delivery]\ncommit_interval = \"soon\"\n[source]\ntype = \"datagen\"\ncount = \"many\"\n[[sinks]]\ntype = \"stdout\"\nbatch = { max_bytes = \"4 parsecs\" }\n",
    );
    assert!(!ok);
    assert!(err.contains("job.toml:4: delivery.commit_interval: expected a duration like \"200ms\" or \"5s\", got \"soon\""), "{err}");
    assert!(
        err.contains("job.toml:7: source.count: invalid type: string \"many\", expected u64"),
        "{err}"
    );
    assert!(
        err.contains("job.toml:10: sinks[0].batch.max_bytes: unknown size unit \"parsecs\""),
        "{err}"
    );
}

#[test]
fn unknown_connector_types_list_the_known_ones() {
    let (ok, err, _) = validate(
        "api_version = 1\nname = \"j\"\n[source]\ntype = \"kafak\"\n[[sinks]]\ntype = \"stdout\"\n",
    );
    assert!(!ok);
    assert!(
        err.contains("job.toml:4: source.type: unknown source type \"kafak\" (known: "),
        "{err}"
    );
    assert!(err.contains("datagen"), "{err}");
}

#[test]
fn syntax_errors_have_a_line() {
    let (ok, err, _) = validate("api_version = 1\nname = \"j\"\n[source\ntype = \"datagen\"\n");
    assert!(!ok);
    assert!(err.starts_with("job.toml:3: (syntax):"), "{err}");
}

#[test]
fn missing_environment_variables_are_reported() {
    let (ok, err, _) = validate(&format!(
        "api_version = 1\nname = \"j\"\n{GOOD_SOURCE}[[sinks]]\ntype = \"file\"\npath = \"${{env:SLUICE_TEST_SURELY_UNSET}}\"\n"
    ));
    assert!(!ok);
    assert!(
        err.contains(
            "job.toml:8: sinks[0].path: environment variable SLUICE_TEST_SURELY_UNSET is not set"
        ),
        "{err}"
    );
}

#[test]
fn exactly_once_with_a_non_transactional_sink_is_refused() {
    let (ok, err, _) = validate(
        "api_version = 1\nname = \"j\"\n[delivery]\nguarantee = \"exactly-once\"\n[source]\ntype = \"stdin\"\n[[sinks]]\ntype = \"stdout\"\n",
    );
    assert!(!ok);
    assert!(
        err.contains("job.toml:4: delivery.guarantee: exactly-once needs a source that can resume at a checkpoint; source type \"stdin\" cannot"),
        "{err}"
    );
    assert!(
        err.contains("job.toml:4: delivery.guarantee: exactly-once needs sinks that store their checkpoint atomically with the data; sinks[0] (\"stdout\", type \"stdout\") cannot"),
        "{err}"
    );
}

#[test]
fn missing_plugins_are_reported() {
    let (ok, err, _) = validate(&format!(
        "api_version = 1\nname = \"j\"\n{GOOD_SOURCE}[[transforms]]\nplugin = \"nope.wasm\"\n[[sinks]]\ntype = \"stdout\"\n"
    ));
    assert!(!ok);
    assert!(
        err.contains("job.toml:7: transforms[0].plugin: plugin file "),
        "{err}"
    );
    assert!(err.contains("nope.wasm does not exist"), "{err}");
}

/// A plugin's rejection of its `with` table points at the job file's line and the `with` key.
#[test]
fn plugin_config_errors_name_the_line_and_the_with_key() {
    let plugin = format!("{}/plugins/dist/add-field.wasm", env!("CARGO_MANIFEST_DIR"));
    let (ok, err, _) = validate(&format!(
        "api_version = 1\nname = \"j\"\n{GOOD_SOURCE}\n[[transforms]]\nplugin = \"{plugin}\"\n[transforms.with]\nset = {{ a = 1 }}\ntimestamp_format = \"julian\"\n[[sinks]]\ntype = \"stdout\"\n"
    ));
    assert!(!ok);
    assert!(
        err.starts_with("job.toml:11: transforms[0].with.timestamp_format: plugin `add-field` rejected its configuration: unknown variant `julian`"),
        "{err}"
    );
    // A rejection the plugin makes itself, through the SDK's `config_error`.
    let (ok, err, _) = validate(&format!(
        "api_version = 1\nname = \"j\"\n{GOOD_SOURCE}\n[[transforms]]\nplugin = \"{plugin}\"\nwith = {{ rename = {{ a = 5 }} }}\n[[sinks]]\ntype = \"stdout\"\n"
    ));
    assert!(!ok);
    assert!(
        err.starts_with("job.toml:9: transforms[0].with.rename.a: plugin `add-field` rejected its configuration: expected the new field name as a string"),
        "{err}"
    );
}

/// `validate` checks what it can without side effects and lists what it could not.
#[test]
fn validate_checks_the_input_file_and_says_what_it_could_not_check() {
    let (ok, err, _) = validate(
        "api_version = 1\nname = \"j\"\n[source]\ntype = \"file\"\npath = \"missing.jsonl\"\n[[sinks]]\ntype = \"stdout\"\n",
    );
    assert!(!ok);
    assert!(
        err.starts_with("job.toml:5: source.path: input file ")
            && err.contains("missing.jsonl does not exist"),
        "{err}"
    );
    // Following a file that is not there yet is fine: it waits for it.
    let (ok, err, _) = validate(
        "api_version = 1\nname = \"j\"\n[source]\ntype = \"file\"\npath = \"missing.jsonl\"\nfollow = true\n[[sinks]]\ntype = \"stdout\"\n",
    );
    assert!(ok, "{err}");

    let (ok, err, out) = validate(&format!(
        "api_version = 1\nname = \"j\"\n{GOOD_SOURCE}[[sinks]]\ntype = \"sql\"\nurl = \"postgres://u:secret@db.invalid:5432/x\"\ntable = \"t\"\n"
    ));
    assert!(ok, "{err}");
    assert!(out.contains("Not checked"), "{out}");
    assert!(
        out.contains("sink \"sql\" (sql): that ") && out.contains("db.invalid:5432"),
        "{out}"
    );
    assert!(
        !out.contains("secret"),
        "a password is never printed: {out}"
    );
}
