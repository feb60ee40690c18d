//! The default job (`connector.toml`, README command 1) stays valid and works.

mod common;

use std::time::Duration;

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_default_job_validates() {
    let out = run(&["validate", &format!("{ROOT}/connector.toml")]);
    assert!(
        out.status.success(),
        "connector.toml does not validate (run scripts/build-plugins.sh first): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_default_job_runs_and_writes_every_sink() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(format!("{ROOT}/connector.toml"))
        .unwrap()
        .replace("count = 1_000_000", "count = 20_000")
        .replace("\"plugins/dist/", &format!("\"{ROOT}/plugins/dist/"));
    let job = write_job(dir.path(), "connector.toml", &text);
    let mut child = spawn_run(&job);
    let status = wait_with_deadline(&mut child, Duration::from_secs(120));
    let summary = stderr_of(&mut child);
    assert!(status.success(), "{summary}");
    let (counts, bad) = seq_counts(&dir.path().join("out/archive/readings.jsonl"));
    assert!(bad.is_empty());
    assert_eq!(assert_all_present(&counts, 20_000), 0);
    let alerts: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("out/archive/readings.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v["anomaly"] == true)
            .collect();
    assert!(
        !alerts.is_empty(),
        "datagen makes about 1% anomalous readings"
    );
    assert!(
        alerts
            .iter()
            .all(|v| v["temperature_c"].as_f64().unwrap() > 90.0)
    );
    let devices: std::collections::BTreeSet<String> =
        std::fs::read_to_string(dir.path().join("out/archive/readings.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["device_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
    let db = dir.path().join("out/iot.db");
    let (alert_rows, device_rows) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let a: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let d: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM device_latest")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        (a, d)
    });
    assert_eq!(
        alert_rows as usize,
        alerts.len(),
        "every anomaly is an alert row"
    );
    assert_eq!(device_rows as usize, devices.len(), "one row per device");

    // The summary gives each sink's own count and where it wrote (README: "What you get").
    let out = std::fs::canonicalize(dir.path()).unwrap().join("out");
    let db = format!("sqlite://{}", out.join("iot.db").display());
    for line in [
        format!(
            "  archive       wrote 20000 to {}",
            out.join("archive/readings.jsonl").display()
        ),
        format!("  device-state  wrote 20000 to {db}/device_latest"),
        format!(
            "  alerts        wrote {:>5} to {db}/alerts (only records with header route = \"alert\")",
            alert_rows
        ),
        format!(
            "dead-lettered 0 to {}",
            out.join("dead-letter.jsonl").display()
        ),
    ] {
        assert!(summary.contains(&line), "{line:?} missing from\n{summary}");
    }

    // Run again: the generator's count is reached; the run says so instead of writing nothing
    // quietly.
    let mut again = spawn_run(&job);
    let status = wait_with_deadline(&mut again, Duration::from_secs(60));
    let err = stderr_of(&mut again);
    assert!(status.success(), "{err}");
    assert!(
        err.contains(
            "Nothing new to read: job \"iot-anomalies\" already read its input up to datagen@19999"
        ),
        "{err}"
    );
}
