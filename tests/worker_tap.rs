//! `GET /jobs/{name}/tap` and `sluice tap` / `sluice top` against a real worker: samples at the
//! source, after a plugin, per routed sink; limits and bad parameters.

mod common;
mod worker_support;

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use worker_support::{Body, Worker, eventually, plugins_dist};

/// A running job: datagen (paced) → add-field → `archive` (everything) and `hot` (routed on a
/// field).
fn tapped_job(dir: &std::path::Path) -> String {
    format!(
        r#"api_version = 1
name = "tapped"

[source]
type = "datagen"
rate = 2000
batch_size = 50

[[transforms]]
name = "enrich"
plugin = "{plugins}/add-field.wasm"
with = {{ set = {{ pipeline = "tapped" }} }}

[[sinks]]
name = "archive"
type = "file"
path = "{dir}/archive.jsonl"

[[sinks]]
name = "hot"
type = "file"
path = "{dir}/hot.jsonl"
when = {{ field = "temperature_c", gt = 30.0 }}
"#,
        plugins = plugins_dist(),
        dir = dir.display()
    )
}

async fn lines(w: &Worker, query: &str) -> Vec<Value> {
    let resp = w
        .request(Method::GET, &format!("/jobs/tapped/tap?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = resp.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tap_samples_each_stage_of_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins_dist();
    let w = Worker::start_with_data(
        &dir.path().join("state"),
        dir.path(),
        &["--plugins-dir", &plugins],
    )
    .await;
    let (code, body) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(tapped_job(dir.path()))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    w.wait_state("tapped", "running").await;

    let source = lines(&w, "stage=source&limit=5").await;
    assert_eq!(source.len(), 5, "{source:?}");
    for r in &source {
        assert_eq!(r["stage"], "source", "{r}");
        assert!(r["value"]["seq"].is_u64(), "the value is JSON: {r}");
        assert!(
            r["value"].get("pipeline").is_none(),
            "before the plugin: {r}"
        );
        assert!(r["partition"].is_string() && r["offset"].is_u64(), "{r}");
    }

    let enriched = lines(&w, "stage=transform:enrich&limit=3").await;
    assert_eq!(enriched.len(), 3);
    assert!(
        enriched.iter().all(|r| r["value"]["pipeline"] == "tapped"),
        "{enriched:?}"
    );

    // A route's sink sees only what its condition picks.
    let hot = lines(&w, "stage=sink:hot&limit=20").await;
    assert_eq!(hot.len(), 20);
    assert!(
        hot.iter()
            .all(|r| r["stage"] == "sink:hot" && r["value"]["temperature_c"].as_f64() > Some(30.0)),
        "{hot:?}"
    );

    // Several stages in one stream; a quarter of the records, evenly spread.
    let both = lines(&w, "stage=source,sink:*&sample=0.25&limit=40").await;
    let stages: std::collections::BTreeSet<&str> =
        both.iter().filter_map(|r| r["stage"].as_str()).collect();
    assert!(
        stages.contains("source") && stages.contains("sink:archive"),
        "{stages:?}"
    );
    assert!(!stages.contains("transform:enrich"), "{stages:?}");
    let seqs: Vec<u64> = both
        .iter()
        .filter(|r| r["stage"] == "source")
        .filter_map(|r| r["value"]["seq"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|p| p[1] - p[0] == 4),
        "every 4th record at rate 0.25: {seqs:?}"
    );

    // A stream with nothing to send ends at its time limit, empty.
    let started = std::time::Instant::now();
    assert!(
        lines(&w, "stage=transform:nothing-here&seconds=1")
            .await
            .is_empty()
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    for bad in [
        "sample=0",
        "sample=2",
        "limit=0",
        "seconds=99999",
        "limit=x",
    ] {
        let (code, body) = w
            .call(Method::GET, &format!("/jobs/tapped/tap?{bad}"), None)
            .await;
        assert_eq!(code, 400, "{bad}: {body}");
    }
    let (code, _) = w.call(Method::GET, "/jobs/nope/tap", None).await;
    assert_eq!(code, 404);

    // The job goes on as if nobody had looked.
    eventually("more records archived", Duration::from_secs(10), || async {
        let n = std::fs::read_to_string(dir.path().join("archive.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        (n > 500).then_some(())
    })
    .await;

    // The CLI: `sluice tap` prints the samples as JSON lines; `sluice top` the rates.
    let base = w.url("");
    let cli = |args: &[&str]| {
        let out = tokio::task::block_in_place(|| {
            common::sluice()
                .args(args)
                .args(["--worker", &base])
                .output()
                .unwrap()
        });
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = cli(&["tap", "tapped", "--stage", "sink:hot", "--limit", "3"]);
    let printed: Vec<Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), 3, "{printed:?}");
    assert!(
        printed.iter().all(|r| r["stage"] == "sink:hot"),
        "{printed:?}"
    );
    let table = cli(&["top", "--once", "--interval", "500ms"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("tapped "))
        .unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "running", "{row}");
    let in_rate: f64 = cols[2].parse().unwrap();
    assert!(in_rate > 500.0 && in_rate < 5000.0, "about 2000/s: {row}");
    assert!(
        table.lines().any(|l| l.trim_start().starts_with("hot ")),
        "{table}"
    );

    // A paused job has nothing to show: the stream ends at once instead of at its time limit.
    let (code, body) = w.call(Method::PUT, "/jobs/tapped/pause", None).await;
    assert_eq!(code, 200, "{body}");
    let started = std::time::Instant::now();
    assert!(lines(&w, "seconds=60").await.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = tokio::task::block_in_place(|| {
        common::sluice()
            .args(["tap", "tapped", "--worker", &base])
            .output()
            .unwrap()
    });
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("job \"tapped\" is paused"),
        "{out:?}"
    );
}
