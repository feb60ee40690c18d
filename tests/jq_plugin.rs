//! The bundled `jq` plugin in a job: a filter edits records, drops them (`empty`), fans them
//! out (several outputs), and dead-letters the ones it fails on with jq's message.
//! Needs `plugins/dist/jq.wasm` (`scripts/build-plugins.sh`).

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// jq.wasm is 2 MB: compiling it takes tens of seconds in a debug build. Compile it once, into
/// sluice's component cache, before the tests run their jobs side by side (each would compile
/// it again otherwise); the other tests wait here meanwhile.
fn compile_once() {
    static COMPILED: OnceLock<()> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let job = write(dir.path(), ".");
        let out = run(&["validate", job.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
    });
}

/// A job: 1,000 datagen records through the jq plugin with `filter` into out.jsonl, failed
/// records into dlq.jsonl.
fn job(dir: &Path, filter: &str) -> std::path::PathBuf {
    compile_once();
    write(dir, filter)
}

fn write(dir: &Path, filter: &str) -> std::path::PathBuf {
    write_job(
        dir,
        "job.toml",
        &format!(
            r#"
api_version = 1
name = "jq"
[source]
type = "datagen"
count = 1000
[[transforms]]
plugin = "{root}/plugins/dist/jq.wasm"
with = {{ filter = '{filter}' }}
[[sinks]]
type = "file"
path = "out.jsonl"
fsync = false
[errors]
tolerance = "all"
dead_letter = {{ type = "file", path = "dlq.jsonl" }}
"#,
            root = env!("CARGO_MANIFEST_DIR")
        ),
    )
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_filter_computes_a_field_and_deletes_one() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(
        dir.path(),
        ".temp_f = .temperature_c * 9 / 5 + 32 | del(.firmware)",
    );
    run_job_ok(&job, Duration::from_secs(120));
    let (counts, bad) = seq_counts(&dir.path().join("out.jsonl"));
    assert!(bad.is_empty(), "{bad:?}");
    assert_all_present(&counts, 1000);
    assert_eq!(counts.values().sum::<u32>(), 1000);
    for record in lines(&dir.path().join("out.jsonl")) {
        let c = record["temperature_c"].as_f64().unwrap();
        let f = record["temp_f"].as_f64().unwrap();
        assert!((f - (c * 9.0 / 5.0 + 32.0)).abs() < 1e-9, "{record}");
        assert!(record.get("firmware").is_none(), "{record}");
        assert!(record["device_id"].is_string(), "{record}");
    }
    assert!(lines(&dir.path().join("dlq.jsonl")).is_empty());
}

#[test]
fn empty_drops_records_and_several_outputs_fan_out() {
    let dir = tempfile::tempdir().unwrap();
    // Odd seqs yield nothing; even ones yield two records each.
    let job = job(
        dir.path(),
        "select(.seq % 2 == 0) | {seq, site, part: (1, 2)}",
    );
    run_job_ok(&job, Duration::from_secs(120));
    let out = lines(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), 1000, "500 inputs kept, two records each");
    for pair in out.chunks(2) {
        let seq = pair[0]["seq"].as_u64().unwrap();
        assert_eq!(seq % 2, 0, "{pair:?}");
        assert_eq!(pair[1]["seq"], pair[0]["seq"], "{pair:?}");
        assert_eq!((&pair[0]["part"], &pair[1]["part"]), (&1.into(), &2.into()));
        let keys: Vec<&String> = pair[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["seq", "site", "part"]);
    }
    let (counts, _) = seq_counts(&dir.path().join("out.jsonl"));
    assert_eq!(counts.len(), 500);
    assert!(counts.values().all(|n| *n == 2));
    assert!(lines(&dir.path().join("dlq.jsonl")).is_empty());
}

#[test]
fn records_the_filter_fails_on_go_to_the_dead_letter_with_jqs_message() {
    let dir = tempfile::tempdir().unwrap();
    // seq % 100 == 7: an error the filter raises; == 42: a type error jq finds (string - 1).
    let filter = r#"if .seq % 100 == 7 then error("seq \(.seq) rejected") elif .seq % 100 == 42 then .site - 1 else .checked = true end"#;
    let job = job(dir.path(), filter);
    run_job_ok(&job, Duration::from_secs(120));
    let (counts, bad) = seq_counts(&dir.path().join("out.jsonl"));
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(counts.len(), 980);
    assert!(!counts.contains_key(&7) && !counts.contains_key(&42));
    let dlq = lines(&dir.path().join("dlq.jsonl"));
    assert_eq!(dlq.len(), 20, "{dlq:?}");
    for entry in &dlq {
        assert_eq!(entry["stage"], "transform:jq", "{entry}");
        // The dead letter keeps the record as it came in.
        let value: Value =
            serde_json::from_str(entry["record"]["value"].as_str().unwrap()).unwrap();
        let seq = value["seq"].as_u64().unwrap();
        let reason = entry["reason"].as_str().unwrap();
        match seq % 100 {
            7 => assert!(reason.contains(&format!("seq {seq} rejected")), "{entry}"),
            42 => assert!(
                reason.contains(&format!("cannot calculate {} - 1", value["site"])),
                "{entry}"
            ),
            _ => panic!("seq {seq} dead-lettered: {entry}"),
        }
    }
}

#[test]
fn a_filter_that_does_not_compile_fails_validation_at_the_filter_key() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), ".temp_f = .temperature_c * | del(.firmware)");
    let out = run(&["validate", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "transforms[0].with.filter: plugin `jq` rejected its configuration: expected term, found `|`"
        ),
        "{err}"
    );
}
