//! Two sinks on one destination (the dead-letter sink included) are refused before anything
//! runs: the second writer would cut or overwrite what the first committed.

mod common;

use common::*;

#[test]
fn a_dead_letter_file_that_is_a_sinks_file_is_refused_by_validate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    // Committed output of an earlier run: must survive.
    std::fs::write(dir.path().join("out.jsonl"), "{\"seq\":0}\n").unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"api_version = 1
name = "clash"
[source]
type = "datagen"
count = 10
[[sinks]]
type = "file"
path = "out.jsonl"
[errors]
tolerance = "all"
dead_letter = { type = "file", path = "./sub/../out.jsonl" }
"#,
    );
    let out = run(&["validate", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "validate accepted it: {err}");
    let want = format!(
        "job.toml:11: errors.dead_letter: sink \"dead-letter\" writes to {}, the destination of sink \"file\" (sinks[0])",
        std::fs::canonicalize(dir.path())
            .unwrap()
            .join("out.jsonl")
            .display()
    );
    assert!(
        err.replace(&job.display().to_string(), "job.toml")
            .contains(&want),
        "{err}\nwanted: {want}"
    );
    let out = run(&["run", job.to_str().unwrap(), "--no-progress"]);
    assert!(!out.status.success(), "run accepted it");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(),
        "{\"seq\":0}\n"
    );
}

#[test]
fn two_sinks_on_one_file_or_on_stdout_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"api_version = 1
name = "clash"
[source]
type = "datagen"
count = 10
[[sinks]]
type = "file"
path = "out.jsonl"
[[sinks]]
type = "stdout"
[[sinks]]
type = "file"
name = "again"
path = "./out.jsonl"
[[sinks]]
type = "stdout"
"#,
    );
    let out = run(&["validate", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).replace(&job.display().to_string(), "job.toml");
    assert!(!out.status.success());
    assert!(
        err.contains("job.toml:11: sinks[2]: sink \"again\" writes to")
            && err.contains("the destination of sink \"file\" (sinks[0])"),
        "{err}"
    );
    assert!(
        err.contains("job.toml:15: sinks[3]: sink \"stdout-2\" writes to stdout, the destination of sink \"stdout\" (sinks[1])"),
        "{err}"
    );
}
