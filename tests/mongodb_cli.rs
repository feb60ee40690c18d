#![cfg(feature = "mongodb")]
//! The MongoDB connectors through the `sluice` binary, against the servers from
//! `scripts/services.sh up mongodb mongodb-standalone`:
//! - a change stream's position is its resume token, shown by the worker's offsets API,
//!   resumed after a stop with no gap and no duplicate, and set back by a PATCH;
//! - `sluice validate` asks the server and refuses exactly-once to a standalone server (no
//!   transactions), naming `delivery.guarantee`.
//!
//! Documents go into MongoDB through Sluice itself (a file → mongodb job), so this needs no
//! driver of its own.

mod common;
mod worker_support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{run, write_job};
use reqwest::Method;
use serde_json::json;
use worker_support::{Body, Worker, eventually};

const DB: &str = "sluice_test";

/// A test server's URL from the environment; missing = a failed test, never a skip.
fn env_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run `bash scripts/services.sh up mongodb mongodb-standalone` and load target/services.env first")
    })
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Insert the records `seqs` into `collection` through a `sluice run` of a file → mongodb job.
fn feed(dir: &Path, collection: &str, seqs: std::ops::Range<u64>) {
    let first = seqs.start;
    let input = dir.join(format!("feed-{first}.jsonl"));
    let lines: String = seqs
        .map(|s| format!("{{\"seq\":{s},\"key\":\"k{s}\"}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let job = write_job(
        dir,
        "feed.toml",
        &format!(
            r#"api_version = 1
name = "feed"
[source]
type = "file"
path = "{}"
[[sinks]]
type = "mongodb"
url = "{}"
database = "{DB}"
collection = "{collection}"
"#,
            input.display(),
            env_url("SLUICE_TEST_MONGODB_URL")
        ),
    );
    let out = run(&[
        "run",
        job.to_str().unwrap(),
        "--no-progress",
        "--state-dir",
        dir.join(format!("feed-state-{first}")).to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "feeding {collection} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many times each seq is in a file sink's output.
fn seq_counts(path: &Path) -> std::collections::BTreeMap<u64, u32> {
    let (counts, bad) = common::seq_counts(path);
    assert!(bad.is_empty(), "lines without a seq: {bad:?}");
    counts
}

async fn wait_for_lines(out: &Path, lines: u32) {
    eventually(
        &format!("{lines} lines in {}", out.display()),
        Duration::from_secs(60),
        || async { (seq_counts(out).values().sum::<u32>() >= lines).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn change_stream_positions_are_resume_tokens_shown_resumed_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let input = unique("cli_in");
    let out = dir.path().join("out.jsonl");
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    // The stream starts a little before now: the collection is new, so nothing older is in it.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 5;
    let job = format!(
        r#"api_version = 1
name = "cdc"
[delivery]
commit_interval = "50ms"
[source]
type = "mongodb"
url = "{url}"
database = "{DB}"
collection = "{input}"
output = "document"
start_from = {{ at_operation_time = {now} }}
[[sinks]]
type = "file"
path = "{out}"
batch = {{ max_records = 5, max_wait = "20ms" }}
"#,
        url = env_url("SLUICE_TEST_MONGODB_URL"),
        out = out.display()
    );
    feed(dir.path(), &input, 0..10);
    let (code, created) = w.call(Method::POST, "/jobs", Some(Body::Toml(job))).await;
    assert_eq!(code, 201, "{created}");
    wait_for_lines(&out, 10).await;
    let (code, stopped) = w.call(Method::PUT, "/jobs/cdc/stop", None).await;
    assert_eq!(code, 200, "{stopped}");

    // The stored position: the ordering prefix, then the last event's resume token.
    let offsets = w.get("/jobs/cdc/offsets").await;
    let rows = offsets["offsets"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{offsets}");
    assert_eq!(rows[0]["partition"], format!("mongodb:{DB}.{input}"));
    let after_ten = rows[0]["offset"]
        .as_str()
        .expect("a text offset")
        .to_string();
    let (prefix, token) = after_ten.split_at(25);
    assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit()), "{after_ten}");
    let token = token
        .strip_prefix(':')
        .unwrap_or_else(|| panic!("no resume token in {after_ten}"))
        .trim_end_matches('.');
    assert!(
        token.len() > 16 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{after_ten}"
    );

    // Stopped while 10 more come: started again, it copies exactly those.
    feed(dir.path(), &input, 10..20);
    let (code, _) = w.call(Method::PUT, "/jobs/cdc/resume", None).await;
    assert_eq!(code, 200);
    wait_for_lines(&out, 20).await;
    let (code, _) = w.call(Method::PUT, "/jobs/cdc/stop", None).await;
    assert_eq!(code, 200);
    let counts = seq_counts(&out);
    assert_eq!(counts.len(), 20, "{counts:?}");
    assert!(counts.values().all(|c| *c == 1), "no duplicate: {counts:?}");
    let after_twenty = w.get("/jobs/cdc/offsets").await["offsets"][0]["offset"].clone();
    assert_ne!(after_twenty, json!(after_ten));

    // Set back to the position after the tenth event: the next run copies 10..19 again.
    let (code, patched) = w
        .call(
            Method::PATCH,
            "/jobs/cdc/offsets",
            Some(Body::Json(json!({"offsets": [
                {"partition": format!("mongodb:{DB}.{input}"), "offset": after_ten}
            ]}))),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(
        w.get("/jobs/cdc/offsets").await["offsets"][0]["offset"],
        json!(after_ten)
    );
    let (code, _) = w.call(Method::PUT, "/jobs/cdc/resume", None).await;
    assert_eq!(code, 200);
    wait_for_lines(&out, 30).await;
    let (code, _) = w.call(Method::PUT, "/jobs/cdc/stop", None).await;
    assert_eq!(code, 200);
    let counts = seq_counts(&out);
    let twice: Vec<u64> = counts
        .iter()
        .filter(|(_, c)| **c == 2)
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(twice, (10..20).collect::<Vec<_>>(), "{counts:?}");
    assert_eq!(counts.values().sum::<u32>(), 30, "{counts:?}");
}

/// A job `name` into MongoDB with `guarantee`, to `url`, that writes nothing when checked.
fn check_job(name: &str, guarantee: &str, url: &str) -> String {
    format!(
        r#"api_version = 1
name = "{name}"
[delivery]
guarantee = "{guarantee}"
[source]
type = "datagen"
count = 1
[[sinks]]
type = "mongodb"
url = "{url}"
database = "{DB}"
collection = "never_written"
timeout = "2s"
"#
    )
}

/// `sluice validate` on a job into MongoDB with `guarantee`, to `url`.
fn validate(dir: &Path, guarantee: &str, url: &str) -> std::process::Output {
    let job = write_job(
        dir,
        &format!("{guarantee}.toml"),
        &check_job("check", guarantee, url),
    );
    run(&["validate", job.to_str().unwrap()])
}

/// The worker checks a submitted job as `sluice validate` does: the sink's refusal is a 422
/// at the field and line; a server that cannot be asked leaves the job accepted (201) with
/// `not_checked` saying why.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_checks_a_submitted_job_like_validate() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::start(&dir.path().join("state"), &[]).await;
    let standalone = env_url("SLUICE_TEST_MONGODB_STANDALONE_URL");
    let (code, err) = w
        .call(
            Method::POST,
            "/jobs",
            Some(Body::Toml(check_job("alone", "exactly-once", &standalone))),
        )
        .await;
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["error"], "invalid_config", "{err}");
    assert_eq!(err["errors"][0]["path"], "delivery.guarantee", "{err}");
    assert_eq!(err["errors"][0]["line"], 4, "{err}");
    let message = err["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("standalone server"), "{message}");
    assert_eq!(w.get("/jobs").await, json!([]), "nothing was created");

    let (code, body) = w
        .call(
            Method::PUT,
            "/jobs/unreachable/config",
            Some(Body::Toml(check_job(
                "unreachable",
                "exactly-once",
                "mongodb://127.0.0.1:9",
            ))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let why = body["not_checked"].as_str().unwrap_or_default();
    assert!(why.contains("could not be asked"), "{body}");

    let set = env_url("SLUICE_TEST_MONGODB_URL");
    let (code, body) = w
        .call(
            Method::POST,
            "/jobs?initial_state=stopped",
            Some(Body::Toml(check_job("replica", "exactly-once", &set))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert!(body.get("not_checked").is_none(), "{body}");
}

#[test]
fn validate_refuses_exactly_once_to_a_standalone_server() {
    let dir = tempfile::tempdir().unwrap();
    let standalone = env_url("SLUICE_TEST_MONGODB_STANDALONE_URL");
    let out = validate(dir.path(), "exactly-once", &standalone);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a config error: {stderr}");
    assert!(
        stderr.contains("delivery.guarantee")
            && stderr.contains("standalone server")
            && stderr.contains("sinks[0]"),
        "{stderr}"
    );

    // At-least-once is fine there; exactly-once is fine on a replica set.
    let out = validate(dir.path(), "at-least-once", &standalone);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set = env_url("SLUICE_TEST_MONGODB_URL");
    let out = validate(dir.path(), "exactly-once", &set);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("could not be asked"), "{stdout}");

    // A server that does not answer cannot be asked: said, not an error.
    let out = validate(dir.path(), "exactly-once", "mongodb://127.0.0.1:9");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("could not be asked"), "{stdout}");
}
