//! Known secrets (passwords, tokens, keys) in jobs that connect, fail and retry: none of them
//! appears in the debug log of `sluice run`, in `sluice validate`'s output, or in any answer of
//! the worker's API and its log. Needs `scripts/services.sh up` (PostgreSQL, OpenSearch, the
//! Kafka-protocol broker).

mod common;
mod worker_support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use worker_support::{Body, Worker, eventually};

/// Every secret of the jobs below, each distinctive enough to be found anywhere.
const SECRETS: [(&str, &str); 6] = [
    ("pg_user_password", "pg-pass-Q7x2K"),
    ("pg_query_password", "pg-query-M3v8Z"),
    ("os_password", "os-pass-T5n1W"),
    ("http_bearer", "bearer-tok-R9d4P"),
    ("kafka_password", "kafka-pass-H2j6L"),
    ("aws_secret", "aws-secret-B8c3Y"),
];

fn env_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/services.sh up and source target/services.env")
    })
}

/// Jobs whose secrets come from `${file:<dir>/<name>}`: one per connector that takes one.
fn jobs(secrets_dir: &Path, hook: &str) -> Vec<(String, String)> {
    let s = |name: &str| format!("${{file:{}/{name}}}", secrets_dir.display());
    // trust authentication here: any password is accepted, so the job runs and logs.
    let pg = env_url("SLUICE_TEST_POSTGRES_URL");
    let pg_host = pg
        .trim_start_matches("postgres://")
        .split('@')
        .nth(1)
        .unwrap();
    let os = env_url("SLUICE_TEST_OPENSEARCH_URL");
    let kafka = env_url("SLUICE_TEST_KAFKA_BROKERS");
    let head = |name: &str| {
        format!(
            "api_version = 1\nname = \"{name}\"\n[source]\ntype = \"datagen\"\ncount = 50\n[[sinks]]\n"
        )
    };
    let retry = "retry = { max_elapsed = \"2s\" }\n";
    vec![
        (
            "sec-pg".into(),
            format!(
                "{}type = \"sql\"\nurl = \"postgres://postgres:{}@{pg_host}\"\ntable = \"sec_pg\"\ncreate_table = true\nschema = [{{ name = \"seq\", type = \"BIGINT\" }}]\n{retry}",
                head("sec-pg"),
                s("pg_user_password")
            ),
        ),
        (
            "sec-pgq".into(),
            format!(
                "{}type = \"sql\"\nurl = \"postgres://{pg_host}?user=postgres&password={}\"\ntable = \"sec_pgq\"\ncreate_table = true\nschema = [{{ name = \"seq\", type = \"BIGINT\" }}]\n{retry}",
                head("sec-pgq"),
                s("pg_query_password")
            ),
        ),
        (
            "sec-os".into(),
            format!(
                "{}type = \"opensearch\"\nurl = \"{os}\"\nindex = \"sec-os\"\nauth = {{ user = \"admin\", password = \"{}\" }}\n{retry}",
                head("sec-os"),
                s("os_password")
            ),
        ),
        (
            "sec-http".into(),
            format!(
                "{}type = \"http\"\nurl = \"{hook}\"\nauth = {{ bearer = \"{}\" }}\n{retry}",
                head("sec-http"),
                s("http_bearer")
            ),
        ),
        (
            "sec-kafka".into(),
            format!(
                "{}type = \"kafka\"\nbrokers = \"{kafka}\"\ntopic = \"sec-kafka\"\nsasl = {{ mechanism = \"PLAIN\", username = \"u\", password = \"{}\" }}\n{retry}",
                head("sec-kafka"),
                s("kafka_password")
            ),
        ),
        (
            "sec-aws".into(),
            format!(
                "{}type = \"opensearch\"\nurl = \"{os}\"\nindex = \"sec-aws\"\naws = {{ region = \"eu-west-1\", auth = {{ access_key_id = \"AKIDSEC\", secret_access_key = \"{}\" }} }}\n{retry}",
                head("sec-aws"),
                s("aws_secret")
            ),
        ),
    ]
}

fn write_secrets(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, value) in SECRETS {
        std::fs::write(dir.join(name), value).unwrap();
    }
}

fn assert_clean(what: &str, text: &str) {
    for (name, value) in SECRETS {
        assert!(
            !text.contains(value),
            "{what} shows the secret {name}:\n{text}"
        );
    }
}

#[test]
fn run_and_validate_never_print_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    write_secrets(&secrets);
    let hook = webhook_always_503();
    for (name, text) in jobs(&secrets, &hook) {
        let job = write_job(dir.path(), &format!("{name}.toml"), &text);
        let validate = sluice().arg("validate").arg(&job).output().unwrap();
        assert_clean(
            &format!("sluice validate {name}"),
            &format!(
                "{}{}",
                String::from_utf8_lossy(&validate.stdout),
                String::from_utf8_lossy(&validate.stderr)
            ),
        );
        let mut child = sluice()
            .arg("run")
            .arg(&job)
            .arg("--no-progress")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Bounded: the jobs end (50 records), or fail once their 2 s retry budget is spent.
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(40) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if child.try_wait().unwrap().is_none() {
            signal(&child, "KILL");
        }
        let out = child.wait_with_output().unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(log.contains(&name), "the log is about job {name}: {log}");
        assert_clean(&format!("the debug log of job {name}"), &log);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_api_and_log_never_show_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    write_secrets(&secrets);
    let hook = webhook_always_503();
    let allow = format!("file:{}", secrets.display());
    let worker = Worker::start(
        &dir.path().join("state"),
        &["--allow-interpolation", &allow],
    )
    .await;
    let jobs = jobs(&secrets, &hook);
    let mut answers = String::new();
    for (name, text) in &jobs {
        let (code, body) = worker
            .call(Method::POST, "/jobs", Some(Body::Toml(text.clone())))
            .await;
        assert!(code == 201 || code == 422, "{name}: {code} {body}");
        answers.push_str(&body.to_string());
    }
    // Until every job has connected and either finished or failed at least once (its retries
    // and errors are then in the answers and the log).
    eventually(
        "every job to finish or fail",
        Duration::from_secs(60),
        || {
            let worker = &worker;
            async move {
                let jobs = worker.get("/jobs").await;
                let settled = jobs.as_array()?.iter().all(|j| {
                    matches!(j["state"].as_str(), Some("finished" | "failed"))
                        || j["restarts"].as_u64().unwrap_or(0) > 0
                        || !j["last_error"].is_null()
                });
                settled.then_some(())
            }
        },
    )
    .await;
    answers.push_str(&worker.get("/jobs").await.to_string());
    for (name, _) in &jobs {
        for path in ["", "/status", "/offsets"] {
            let (_, body) = worker
                .call(Method::GET, &format!("/jobs/{name}{path}"), None)
                .await;
            answers.push_str(&body.to_string());
        }
        answers.push_str(&worker.text(&format!("/jobs/{name}/config")).await);
    }
    answers.push_str(&worker.text("/metrics").await);
    assert_clean("the worker's answers", &answers);
    assert_clean("the worker's log", &worker.log_tail());
    let full_log = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(!full_log.is_empty());
    assert_clean("the worker's whole log", &full_log);
}
