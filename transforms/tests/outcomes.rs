//! Bundled plugins through the host: every outcome kind, positions, init errors, chains.

mod common;

use std::path::Path;

use common::{loader, records, single_value, spec};
use serde_json::json;
use sluice_core::chain::{Chain, Fate};
use sluice_core::record::Position;
use sluice_core::transform::{Outcome, Transform, TransformErrorKind};

const HOT: &str = r#"{"device_id":"dev-0042","site":"plant-3","line":"L2","ts":"2026-11-25T10:00:00.000Z","seq":42,"temperature_c":93.7,"vibration_mm_s":2.41,"humidity_pct":40.2,"pressure_kpa":101.2,"firmware":"1.4.2","status":"ok"}"#;
const NORMAL: &str = r#"{"device_id":"dev-0043","site":"plant-3","line":"L2","ts":"2026-11-25T10:00:00.010Z","seq":43,"temperature_c":71.3,"vibration_mm_s":2.41,"humidity_pct":40.2,"pressure_kpa":101.2,"firmware":"1.4.2","status":"ok"}"#;

#[test]
fn filter_keeps_and_drops_and_fails_invalid_records() {
    let (_dir, loader) = loader();
    let spec = spec(
        "filter",
        json!({"field": "temperature_c", "op": "gt", "value": 90}),
    );
    let mut t = loader.transform(&spec, Path::new("/")).unwrap();
    let input = records(&[HOT, NORMAL, "not json"]);
    let out = t.process(&input).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], Outcome::Ok(vec![input[0].clone()]));
    assert_eq!(out[1], Outcome::Dropped);
    assert!(
        matches!(&out[2], Outcome::Failed(reason) if reason.contains("not JSON")),
        "{:?}",
        out[2]
    );
}

#[test]
fn anomaly_flags_routes_and_preserves_positions() {
    let (_dir, loader) = loader();
    let spec = spec(
        "anomaly",
        json!({"field": "temperature_c", "max": 90.0, "header": "route"}),
    );
    let mut t = loader.transform(&spec, Path::new("/")).unwrap();
    let input = records(&[HOT, NORMAL]);
    let out = t.process(&input).unwrap();
    let Outcome::Ok(hot) = &out[0] else {
        panic!("{:?}", out[0])
    };
    assert!(single_value(&out[0]).ends_with(r#""status":"ok","anomaly":true}"#));
    assert_eq!(
        hot[0].header("route").map(|v| &v[..]),
        Some(&b"anomaly"[..])
    );
    assert_eq!(hot[0].position, input[0].position);
    let Outcome::Ok(normal) = &out[1] else {
        panic!("{:?}", out[1])
    };
    assert!(single_value(&out[1]).ends_with(r#""anomaly":false}"#));
    assert!(normal[0].headers.is_empty());
    assert_eq!(normal[0].position, Position::int("test".into(), 1));
}

#[test]
fn init_rejection_is_an_init_error_with_the_plugins_message() {
    let (_dir, loader) = loader();
    let bad = spec(
        "anomaly",
        json!({"field": "temperature_c", "min": 100.0, "max": 90.0}),
    );
    let err = loader.transform(&bad, Path::new("/")).unwrap_err();
    assert_eq!(err.kind, TransformErrorKind::Init);
    assert_eq!(err.plugin, "anomaly");
    // The SDK's `config_error` names the field; the host keeps it apart from the message.
    assert_eq!(err.field.as_deref(), Some("min"), "{err}");
    assert_eq!(
        err.message,
        "rejected its configuration: 100 must not exceed `max` (90)"
    );

    let unknown = spec("filter", json!({"field": "x", "op": "similar"}));
    let err = loader.transform(&unknown, Path::new("/")).unwrap_err();
    assert_eq!(err.kind, TransformErrorKind::Init);
    assert!(err.message.contains("unknown variant `similar`"), "{err}");
    assert_eq!(err.field.as_deref(), Some("op"), "{err}");
}

#[test]
fn redact_replaces_fields_and_add_field_appends() {
    let (_dir, loader) = loader();
    let mut redact = loader
        .transform(
            &spec("redact", json!({"fields": ["device_id"], "mode": "mask"})),
            Path::new("/"),
        )
        .unwrap();
    let out = redact.process(&records(&[NORMAL])).unwrap();
    assert!(single_value(&out[0]).starts_with(r#"{"device_id":"***","site""#));

    let mut add = loader
        .transform(
            &spec(
                "add-field",
                json!({"set": {"pipeline": "sluice"}, "timestamp": "processed_at"}),
            ),
            Path::new("/"),
        )
        .unwrap();
    let out = add.process(&records(&[NORMAL])).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&single_value(&out[0])).unwrap();
    assert_eq!(doc["pipeline"], "sluice");
    assert!(
        doc["processed_at"].as_str().unwrap().starts_with("20"),
        "{doc}"
    );
}

#[test]
fn noop_copy_mode_round_trips_key_headers_and_timestamp() {
    let (_dir, loader) = loader();
    let mut t = loader
        .transform(&spec("noop", json!({"mode": "copy"})), Path::new("/"))
        .unwrap();
    let mut input = records(&[NORMAL, ""]);
    input[0].key = Some("k1".into());
    input[0].timestamp = Some(1_795_600_800_000);
    input[0].headers.push(sluice_core::record::Header {
        name: "h".into(),
        value: "v".into(),
    });
    let out = t.process(&input).unwrap();
    assert_eq!(
        out,
        vec![
            Outcome::Ok(vec![input[0].clone()]),
            Outcome::Ok(vec![input[1].clone()])
        ]
    );
    assert_eq!(t.process(&[]).unwrap(), vec![]);
}

#[test]
fn chain_runs_plugins_in_order_and_accounts_for_every_input() {
    let (_dir, loader) = loader();
    let stages: Vec<Box<dyn Transform>> = vec![
        Box::new(
            loader
                .transform(
                    &spec("filter", json!({"field": "seq", "op": "exists"})),
                    Path::new("/"),
                )
                .unwrap(),
        ),
        Box::new(
            loader
                .transform(
                    &spec("anomaly", json!({"field": "temperature_c", "max": 90.0})),
                    Path::new("/"),
                )
                .unwrap(),
        ),
        Box::new(
            loader
                .transform(
                    &spec("redact", json!({"fields": ["device_id"]})),
                    Path::new("/"),
                )
                .unwrap(),
        ),
    ];
    let mut chain = Chain::new(stages);
    assert_eq!(chain.names(), ["filter", "anomaly", "redact"]);
    let input = records(&[HOT, r#"{"no_seq":1}"#, r#"{"seq":1}"#, NORMAL]);
    let processed = chain.process(&input);
    let out = &processed.fates;
    assert_eq!(out.len(), 4);
    let Fate::Written(first) = out[0].clone() else {
        panic!("{:?}", out[0])
    };
    let first = &processed.records[first];
    let text = |r: &sluice_core::Record| String::from_utf8(r.value.to_vec()).unwrap();
    assert!(text(&first[0]).contains(r#""device_id":"***""#));
    assert!(text(&first[0]).ends_with(r#""anomaly":true}"#));
    assert_eq!(first[0].position, input[0].position);
    assert_eq!(out[1], Fate::Dropped);
    assert!(
        matches!(&out[2], Fate::Failed { stage, reason } if stage == "anomaly" && reason.starts_with("no numeric")),
        "{:?}",
        out[2]
    );
    let Fate::Written(last) = out[3].clone() else {
        panic!("{:?}", out[3])
    };
    let last = &processed.records[last];
    assert_eq!(last[0].position, input[3].position);
    // Only written inputs' outputs are in the batch.
    assert_eq!(processed.records.len(), first.len() + last.len());
}

#[test]
fn plugins_resolve_relative_to_the_job_directory() {
    let mut s = spec("noop", json!({}));
    s.plugin = "noop.wasm".into();
    s.name = None;
    let t = sluice_transforms::load_transform(&s, &common::dist_dir()).unwrap();
    assert_eq!(t.name(), "noop");

    let mut missing = spec("noop", json!({}));
    missing.plugin = "does-not-exist.wasm".into();
    let Err(err) = sluice_transforms::load_transform(&missing, &common::dist_dir()) else {
        panic!("a missing plugin must not load");
    };
    assert_eq!(err.kind, TransformErrorKind::Init);
    assert!(err.message.contains("cannot read plugin"), "{err}");
}
