//! Sinks routed on a field of the record's JSON value (`when = { field = ... }`): each record
//! goes where its condition sends it, and a condition that cannot work is a config error at
//! its line.

mod common;

use common::*;

#[test]
fn records_go_to_the_sinks_their_fields_select() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        r#"api_version = 1
name = "field-routes"
[source]
type = "datagen"
count = 300
[[sinks]]
name = "late"
type = "file"
path = "late.jsonl"
when = { field = "seq", gte = 200 }
[[sinks]]
name = "early"
type = "file"
path = "early.jsonl"
when = { not = { field = "seq", gte = 200 } }
[[sinks]]
name = "picked"
type = "file"
path = "picked.jsonl"
when = { any = [{ field = "seq", in = [3, 5] }, { field = "seq", equals = "7" }] }
"#,
    );
    let out = run(&["run", job.to_str().unwrap(), "--no-progress"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let seqs = |file: &str| -> Vec<u64> {
        let (counts, bad) = seq_counts(&dir.path().join(file));
        assert!(bad.is_empty(), "{file}: {bad:?}");
        assert!(counts.values().all(|&n| n == 1), "{file}: duplicates");
        counts.into_keys().collect()
    };
    let (late, early) = (seqs("late.jsonl"), seqs("early.jsonl"));
    assert_eq!(early.len() + late.len(), 300);
    assert!(
        late.iter().all(|&s| s >= 200) && late.len() == 100,
        "{late:?}"
    );
    assert!(early.iter().all(|&s| s < 200), "{early:?}");
    assert_eq!(seqs("picked.jsonl"), vec![3, 5, 7]);
    assert!(
        stderr.contains(r#"(only records with (field seq in [3,5]) or (field seq = "7"))"#),
        "{stderr}"
    );
}

#[test]
fn a_condition_that_cannot_work_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "job.toml",
        "api_version = 1\nname = \"j\"\n[source]\ntype = \"datagen\"\ncount = 1\n[[sinks]]\ntype = \"stdout\"\nwhen = { all = [{ field = \"a\" }, { field = \"b\", equals = 1, gt = 0 }] }\n[[sinks]]\ntype = \"stdout\"\nwhen = { field = \"a..b\" }\n",
    );
    let out = run(&["validate", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).replace(&job.display().to_string(), "job.toml");
    assert!(!out.status.success());
    assert!(
        err.contains("job.toml:8: sinks[0].when.all[1]: has equals and gt/gte/lt/lte at once"),
        "{err}"
    );
    assert!(
        err.contains("job.toml:11: sinks[1].when.field:") && err.contains("empty segment"),
        "{err}"
    );
}
