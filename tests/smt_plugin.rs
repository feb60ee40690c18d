//! The bundled `smt` plugin (Kafka Connect's single message transforms) in real jobs: a file of
//! CDC-like records through every transform in one chain, routed by the header `RegexRouter`
//! rewrites, with the records a step cannot handle dead-lettered with the step's reason; a
//! one-transform config and record metadata (`InsertField` on datagen's timestamps, records
//! split by day with `TimestampRouter`); config errors reported at the key. Needs `plugins/dist/smt.wasm` (`scripts/build-plugins.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const PLUGIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/dist/smt.wasm");

/// Compile the plugin once into sluice's component cache before the tests run jobs side by
/// side (each would compile it again otherwise).
fn compile_once() {
    static COMPILED: OnceLock<()> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let job = job(
            dir.path(),
            "[source]\ntype = \"datagen\"\ncount = 1",
            r#"{ type = "Flatten" }"#,
            "",
        );
        let out = run(&["validate", job.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A job file: `source`, the smt plugin with `with`, `sinks`, and a file dead letter.
fn job(dir: &Path, source: &str, with: &str, sinks: &str) -> PathBuf {
    let sinks = if sinks.is_empty() {
        "[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\nfsync = false"
    } else {
        sinks
    };
    write_job(
        dir,
        "job.toml",
        &format!(
            r#"api_version = 1
name = "smt"
{source}
[[transforms]]
plugin = "{PLUGIN}"
with = {with}
{sinks}
[errors]
tolerance = "all"
dead_letter = {{ type = "file", path = "dlq.jsonl" }}
"#
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

/// Input record `i`: a CDC-style envelope around a reading. Every fifth is a debug record;
/// record 7 has a count no int8 holds; record 13 has no device id.
fn input(i: u64) -> Value {
    let mut device = json!({"id": format!("d-{}", i % 4), "site": if i.is_multiple_of(2) { "eu" } else { "us" }});
    if i == 13 {
        device.as_object_mut().unwrap().remove("id");
    }
    json!({"payload": {"op": "c", "after": {
        "seq": i,
        "device": device,
        "reading": {"t": format!("2{}.5", i % 10), "raw": "0xff"},
        "level": if i % 5 == 4 { "debug" } else { "info" },
        "count": if i == 7 { 300 } else { i },
        "ts": 1_795_600_800_000u64 + i * 1000,
        "pin": "1234",
    }}})
}

/// What record `i` becomes after the chain in [`every_transform_in_one_chain`].
fn expected(i: u64) -> Value {
    let site = if i.is_multiple_of(2) { "eu" } else { "us" };
    let id = format!("d-{}", i % 4);
    json!({
        "row_seq": i,
        "row_device_id": id,
        "row_device_site": site,
        "row_reading_t": format!("2{}.5", i % 10).parse::<f64>().unwrap(),
        "row_severity": "info",
        "row_count": i,
        "row_ts": format!("2026-11-25T10:00:{:02}.000Z", i),
        "row_pin": "****",
        "row_pipeline": "sluice",
        "row_key_json": json!({"device": {"id": id}}).to_string(),
        "row_key": id,
        "row_routed_to": format!("readings-{site}"),
    })
}

#[test]
fn every_transform_in_one_chain() {
    compile_once();
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..40).map(|i| format!("{}\n", input(i))).collect();
    std::fs::write(dir.path().join("in.jsonl"), text).unwrap();
    let with = r#"{ steps = [
    { type = "ExtractField", field = "payload.after" },
    { type = "Filter", when = { field = "level", equals = "debug" } },
    { type = "Cast", fields = { "reading.t" = "float64", count = "int8" } },
    { type = "MaskField", fields = ["pin"], replacement = "****" },
    { type = "TimestampConverter", field = "ts", target_type = "rfc3339" },
    { type = "ValueToKey", fields = ["device.id"] },
    { type = "InsertField", key_field = "key_json" },
    { type = "ExtractField$Key", field = "device.id" },
    { type = "HeaderFrom", fields = ["device.site"], headers = ["topic"], operation = "copy" },
    { type = "RegexRouter", regex = "(eu|us)", replacement = "readings-$1" },
    { type = "ReplaceField", exclude = ["reading.raw"], rename = { level = "severity" } },
    { type = "InsertField", static_field = "pipeline", static_value = "sluice", key_field = "key", topic_field = "routed_to" },
    { type = "HoistField", field = "row" },
    { type = "Flatten", delimiter = "_" },
] }"#;
    let sinks = r#"[[sinks]]
name = "eu"
type = "file"
path = "eu.jsonl"
fsync = false
when = { header = "topic", equals = "readings-eu" }
[[sinks]]
name = "us"
type = "file"
path = "us.jsonl"
fsync = false
when = { header = "topic", equals = "readings-us" }"#;
    let job = job(
        dir.path(),
        "[source]\ntype = \"file\"\npath = \"in.jsonl\"",
        with,
        sinks,
    );
    run_job_ok(&job, Duration::from_secs(120));

    let kept: Vec<u64> = (0..40)
        .filter(|i| i % 5 != 4 && *i != 7 && *i != 13)
        .collect();
    for (file, parity) in [("eu.jsonl", 0), ("us.jsonl", 1)] {
        let out = lines(&dir.path().join(file));
        let want: Vec<Value> = kept
            .iter()
            .filter(|i| *i % 2 == parity)
            .map(|i| expected(*i))
            .collect();
        assert_eq!(out, want, "{file}");
    }
    // Keys keep the value's order, renamed in place.
    let first = std::fs::read_to_string(dir.path().join("eu.jsonl")).unwrap();
    assert!(
        first.starts_with(r#"{"row_seq":0,"row_device_id":"d-0","row_device_site":"eu","row_reading_t":20.5,"row_severity":"info","#),
        "{first}"
    );

    let dlq = lines(&dir.path().join("dlq.jsonl"));
    let reasons: Vec<(&str, &str)> = dlq
        .iter()
        .map(|e| (e["stage"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "transform:smt",
                "steps[2] (Cast): field `count`: 300 is out of int8's range"
            ),
            (
                "transform:smt",
                "steps[5] (ValueToKey): field `device.id` is missing"
            ),
        ],
        "{dlq:?}"
    );
    // The dead letter keeps the record as it came in.
    let original: Value =
        serde_json::from_str(dlq[0]["record"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(original, input(7));
}

#[test]
fn one_transform_inserts_record_metadata() {
    compile_once();
    let dir = tempfile::tempdir().unwrap();
    let job = job(
        dir.path(),
        "[source]\ntype = \"datagen\"\ncount = 50\nstart_time = \"2026-11-25T10:00:00Z\"\nstep = \"1s\"",
        r#"{ type = "InsertField", timestamp_field = "meta.event_ms", static_field = "meta.by", static_value = "sluice" }"#,
        "",
    );
    run_job_ok(&job, Duration::from_secs(120));
    let out = lines(&dir.path().join("out.jsonl"));
    assert_eq!(out.len(), 50);
    for record in &out {
        let seq = record["seq"].as_u64().unwrap();
        assert_eq!(
            record["meta"],
            json!({"event_ms": 1_795_600_800_000u64 + seq * 1000, "by": "sluice"}),
            "{record}"
        );
        assert!(record["device_id"].is_string(), "{record}");
    }
    assert!(lines(&dir.path().join("dlq.jsonl")).is_empty());
}

#[test]
fn timestamp_router_splits_records_by_day_and_dropped_headers_route_nothing() {
    compile_once();
    let dir = tempfile::tempdir().unwrap();
    let sinks = r#"[[sinks]]
name = "day1"
type = "file"
path = "25.jsonl"
fsync = false
when = { header = "topic", equals = "readings-20261125" }
[[sinks]]
name = "day2"
type = "file"
path = "26.jsonl"
fsync = false
when = { header = "topic", equals = "readings-20261126" }
[[sinks]]
name = "debug"
type = "file"
path = "debug.jsonl"
fsync = false
when = { header = "debug", exists = true }"#;
    let job = job(
        dir.path(),
        "[source]\ntype = \"datagen\"\ncount = 20\nstart_time = \"2026-11-25T23:59:50Z\"\nstep = \"1s\"",
        r#"{ steps = [
    { type = "InsertHeader", header = "topic", value_literal = "readings" },
    { type = "InsertHeader", header = "debug", value_literal = "1" },
    { type = "TimestampRouter" },
    { type = "DropHeaders", headers = ["debug"] },
] }"#,
        sinks,
    );
    run_job_ok(&job, Duration::from_secs(120));
    let seqs = |file: &str| -> Vec<u64> {
        lines(&dir.path().join(file))
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs("25.jsonl"), (0..10).collect::<Vec<_>>());
    assert_eq!(seqs("26.jsonl"), (10..20).collect::<Vec<_>>());
    assert_eq!(
        seqs("debug.jsonl"),
        [] as [u64; 0],
        "DropHeaders removed the header"
    );
}

#[test]
fn config_errors_name_the_key_and_stop_the_job_before_it_runs() {
    compile_once();
    let dir = tempfile::tempdir().unwrap();
    let source = "[source]\ntype = \"datagen\"\ncount = 1";
    let cases = [
        (
            r#"{ type = "RegexRouter", regex = "sensors-(", replacement = "x" }"#,
            "transforms[0].with.regex: plugin `smt` rejected its configuration: not a regex",
        ),
        (
            r#"{ steps = [{ type = "Flatten" }, { type = "Cast", fields = { count = "int128" } }] }"#,
            "transforms[0].with.steps[1].fields.count: plugin `smt` rejected its configuration: unknown variant `int128`",
        ),
        (
            r#"{ steps = [{ type = "SetSchemaMetadata" }] }"#,
            "transforms[0].with.steps[0].type: plugin `smt` rejected its configuration: unknown transform `SetSchemaMetadata`",
        ),
    ];
    for (with, says) in cases {
        let job = job(dir.path(), source, with, "");
        let out = run(&["validate", job.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{with}: {err}");
        assert!(err.contains(says), "{with}: {err}");
        let out = sluice()
            .arg("run")
            .arg(&job)
            .arg("--no-progress")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{with}");
        assert!(!dir.path().join("out.jsonl").exists());
    }
}
