//! schemathesis against a real worker: requests generated from the worker's own OpenAPI
//! document (`GET /openapi.json`), each answer checked against it — status, content type,
//! body schema, schema-valid requests accepted and invalid ones refused, undocumented methods
//! 405, a deleted job gone and a created one there — once without a token and once with one.
//! 0 failures.
//!
//! schemathesis is installed by `bash scripts/services.sh up` (scripts/services/schemathesis.sh,
//! pinned, into target/services/venv-schemathesis), which exports SLUICE_TEST_SCHEMATHESIS.
//! The run is bounded (`--max-examples`) with a fixed seed; for a longer one, set
//! SLUICE_SCHEMATHESIS_EXAMPLES (e.g. 500) and SLUICE_SCHEMATHESIS_SEED. What schemathesis
//! cannot be told by the document (a job config's validity depends on this worker) is in
//! tests/schemathesis.toml; tests/schemathesis_hooks.py sends a TOML body as text.

mod worker_support;

use std::process::Command;
use std::time::Instant;

use worker_support::Worker;

/// Examples per operation in CI (the two runs take about 10 s each here).
const EXAMPLES: &str = "40";
/// A fixed seed, so CI runs the same requests every time.
const SEED: &str = "20261203";
/// The one check that needs what this API does not have: two users.
const NOT_MEANINGFUL: &str = "object_level_authorization";

fn schemathesis() -> String {
    std::env::var("SLUICE_TEST_SCHEMATHESIS").expect(
        "SLUICE_TEST_SCHEMATHESIS is not set: run `bash scripts/services.sh up schemathesis` \
         and source target/services.env",
    )
}

/// Run schemathesis against `w` and assert it found nothing.
fn run_schemathesis(w: &Worker, token: Option<&str>) {
    let examples =
        std::env::var("SLUICE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| EXAMPLES.to_string());
    let seed = std::env::var("SLUICE_SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.to_string());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis_hooks.py");
    let mut cmd = Command::new(schemathesis());
    cmd.env("SCHEMATHESIS_HOOKS", hooks)
        .args(["--config-file", config, "--no-color", "run"])
        .arg(w.url("/openapi.json"))
        .args(["--checks", "all", "--exclude-checks", NOT_MEANINGFUL])
        // Stateful: sequences that follow the links from a created job (use after delete,
        // a created job that is not found).
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &examples, "--seed", &seed])
        // One worker: hypothesis' lambda descriptions are not thread-safe (a runtime error
        // inside schemathesis with two).
        .args(["--workers", "1", "--request-timeout", "40"])
        .args(["--generation-database", "none"])
        // Its caches (.schemathesis/, .hypothesis/) go to the test's temporary directory.
        .current_dir(
            w.state_dir
                .parent()
                .expect("the state dir is in a temporary dir"),
        );
    if let Some(token) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let started = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "running {}: {e} (run `bash scripts/services.sh up schemathesis`)",
            schemathesis()
        )
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "schemathesis ({} s, token: {}):\n{text}",
        started.elapsed().as_secs(),
        token.is_some()
    );
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?}):\n{text}\n{}",
        out.status.code(),
        w.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_agrees_with_its_openapi_document_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::start_with_data(&dir.path().join("state"), dir.path(), &[]).await;
    run_schemathesis(&w, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_agrees_with_its_openapi_document_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "schemathesis-token-0123456789";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let w = Worker::start_with_token(
        &dir.path().join("state"),
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--token-file",
            token_file.to_str().unwrap(),
        ],
        Some(token),
    )
    .await;
    // Without the token, every route but the probes is refused, and the document says so.
    let (code, _) = w.call(reqwest::Method::GET, "/jobs", None).await;
    assert_eq!(code, 200);
    let anonymous = reqwest::get(w.url("/jobs")).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let doc = w.get("/openapi.json").await;
    assert_eq!(
        doc["paths"]["/jobs"]["get"]["security"][0]["bearer"],
        serde_json::json!([])
    );
    assert!(
        doc["paths"]["/jobs"]["get"]["responses"]["401"].is_object(),
        "{doc}"
    );
    run_schemathesis(&w, Some(token));
}
